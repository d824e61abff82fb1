// Every verifier error of #galv.cost, #galv.strategy and #galv.plan.
// RUN: galvatron-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect

// expected-error @below {{forward_ms must be a finite non-negative number, got -1}}
"test.op"() {c = #galv.cost<forward_ms = -1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [1], activation_bytes = [0], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{backward_ratio must be a finite positive number, got 0}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 0.0, parameter_bytes = 0, tp_degrees = [1], activation_bytes = [0], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{parameter_bytes must be non-negative, got -4}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = -4, tp_degrees = [1], activation_bytes = [0], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{checkpoint_bytes must be non-negative, got -1}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [1], activation_bytes = [0], checkpoint_bytes = -1>} : () -> ()

// -----

// expected-error @below {{tp_degrees must name at least one degree}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [], activation_bytes = [], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{tp_degrees has 2 entries but activation_bytes has 1}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [1, 2], activation_bytes = [8], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{tp_degrees[1] must be a power of two, got 3}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [1, 3], activation_bytes = [8, 4], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{tp_degrees must be strictly increasing}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [2, 1], activation_bytes = [8, 4], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{activation_bytes[0] must be non-negative, got -8}}
"test.op"() {c = #galv.cost<forward_ms = 1.0, backward_ratio = 2.0, parameter_bytes = 0, tp_degrees = [1], activation_bytes = [-8], checkpoint_bytes = 0>} : () -> ()

// -----

// expected-error @below {{tp must be a power of two, got 6}}
"test.op"() {s = #galv.strategy<tp = 6, dp = 1>} : () -> ()

// -----

// expected-error @below {{dp must be at least 1, got 0}}
"test.op"() {s = #galv.strategy<tp = 1, dp = 0>} : () -> ()

// -----

// expected-error @below {{stage must be non-negative, got -1}}
"test.op"() {s = #galv.strategy<tp = 1, dp = 1, stage = -1>} : () -> ()

// -----

// expected-error @below {{sequence parallelism (megatron) needs tp > 1}}
"test.op"() {s = #galv.strategy<tp = 1, dp = 8, sp = megatron>} : () -> ()

// -----

// expected-error @below {{zero2 shards over data-parallel ranks and needs dp > 1}}
"test.op"() {s = #galv.strategy<tp = 8, dp = 1, dp_kind = zero2>} : () -> ()

// -----

// expected-error @below {{expected 'true' or 'false'}}
// expected-error @below {{failed to parse Galv_StrategyAttr parameter 'checkpoint'}}
"test.op"() {s = #galv.strategy<tp = 1, dp = 1, checkpoint = 1>} : () -> ()

// -----

// expected-error @below {{expected one of [ddp, zero2, zero3] for how data-parallel replicas hold model states, got: fsdp}}
// expected-error @below {{failed to parse Galv_StrategyAttr parameter 'dp_kind'}}
"test.op"() {s = #galv.strategy<tp = 1, dp = 2, dp_kind = fsdp>} : () -> ()

// -----

// expected-error @below {{world_size must be at least 1, got 0}}
"test.op"() {p = #galv.plan<world_size = 0, pp = 1, pp_division = [1], chunks = 1, global_batch = 1>} : () -> ()

// -----

// expected-error @below {{pp must divide world_size 8, got 3}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 3, pp_division = [1, 1, 1], chunks = 1, global_batch = 1>} : () -> ()

// -----

// expected-error @below {{pp_division has 3 stages but pp is 2}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 2, pp_division = [1, 1, 1], chunks = 1, global_batch = 1>} : () -> ()

// -----

// expected-error @below {{pp_division[1] must be at least 1 layer, got 0}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 2, pp_division = [4, 0], chunks = 1, global_batch = 1>} : () -> ()

// -----

// expected-error @below {{chunks must be at least 1, got 0}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 1, pp_division = [4], chunks = 0, global_batch = 8>} : () -> ()

// -----

// expected-error @below {{global_batch 10 must be a positive multiple of chunks 4}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 1, pp_division = [4], chunks = 4, global_batch = 10>} : () -> ()

// -----

// expected-error @below {{vocab_tp 8 must divide the devices per stage 4}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 2, pp_division = [2, 2], chunks = 1, global_batch = 8, vocab_tp = 8>} : () -> ()

// -----

// expected-error @below {{vocab_sp needs vocab_tp > 1}}
"test.op"() {p = #galv.plan<world_size = 8, pp = 2, pp_division = [2, 2], chunks = 1, global_batch = 8, vocab_sp = ulysses>} : () -> ()

// -----

// expected-error @below {{'galv.offsets' must give one offset per result}}
"test.op"() {galv.offsets = array<i64: 0, 64>} : () -> tensor<4xf32>

// -----

// expected-error @below {{'galv.arena_bytes' must be an integer}}
"test.op"() {galv.arena_bytes = "big"} : () -> ()
