// Every verifier error of #galv.cost, #galv.strategy, #galv.plan, the
// device groups, cuts, shards and gradient syncs, and the galv attributes
// on ops and function arguments.
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

// -----

// expected-error @below {{group size must be at least 1, got 0}}
"test.op"() {g = #galv.group<size = 0, stride = 1>} : () -> ()

// -----

// expected-error @below {{group stride must be at least 1, got -2}}
"test.op"() {g = #galv.group<size = 2, stride = -2>} : () -> ()

// -----

func.func @f(%x: tensor<8xf32>) -> tensor<8xf32> {
  // expected-error @below {{group size must be at least 1, got 0}}
  %y = galv.all_reduce sum %x group = <size = 0, stride = 1> : tensor<8xf32>
  return %y : tensor<8xf32>
}

// -----

// The [size, stride] arrays groups used to be.
func.func @f(%x: tensor<8xf32>) -> tensor<8xf32> {
  // expected-error @below {{Invalid attribute `group` in property conversion: array<i64: 2, 1>}}
  %y = "galv.all_reduce"(%x) <{kind = #galv<reduce_kind sum>, group = array<i64: 2, 1>}> : (tensor<8xf32>) -> tensor<8xf32>
  return %y : tensor<8xf32>
}

// -----

// expected-error @below {{cut axis must be non-negative, got -1}}
"test.op"() {c = #galv.cut<axis = -1, group = <size = 2, stride = 1>>} : () -> ()

// -----

// expected-error @below {{cut blocks must be at least 1, got 0}}
"test.op"() {c = #galv.cut<axis = 0, blocks = 0, group = <size = 2, stride = 1>>} : () -> ()

// -----

// expected-error @below {{a shard needs a cut or a flat group}}
"test.op"() {s = #galv.shard<cuts = []>} : () -> ()

// -----

// expected-error @below {{shard cut axes must be increasing, got axis 0 after axis 1}}
"test.op"() {s = #galv.shard<cuts = [<axis = 1, group = <size = 2, stride = 1>>, <axis = 0, group = <size = 2, stride = 2>>]>} : () -> ()

// -----

// expected-error @below {{expected one of [all_reduce, reduce_scatter] for how the optimizer sums a data-parallel partial gradient, got: all_gather}}
// expected-error @below {{failed to parse Galv_GradSyncAttr parameter 'kind'}}
"test.op"() {s = #galv.grad_sync<all_gather, group = <size = 2, stride = 1>>} : () -> ()

// -----

// expected-error @below {{'galv.grad_sync' belongs on a galv.get_parameter}}
"test.op"() {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>} : () -> ()

// -----

// The [kind, size, stride] array a gradient sync used to be.
galv.parameter @w : tensor<4xf32> trainable
func.func @f() {
  // expected-error @below {{'galv.grad_sync' must be a #galv.grad_sync}}
  %0 = galv.get_parameter @w {galv.grad_sync = array<i64: 0, 2, 1>} : tensor<4xf32>
  return
}

// -----

// expected-error @below {{'galv.shard' cut 0 axis 2 is out of range for 'tensor<4x8xf32>'}}
func.func @f(%x: tensor<4x8xf32> {galv.shard = #galv.shard<cuts = [<axis = 2, group = <size = 2, stride = 1>>]>}) {
  return
}

// -----

// expected-error @below {{'galv.shard' must be a #galv.shard}}
func.func private @f() -> (tensor<4x8xf32> {galv.shard = [0, 1, 2, 1]})

// -----

// expected-error @below {{'galv.grad_sync' must be a #galv.grad_sync}}
func.func private @f(tensor<4xf32> {galv.grad_sync = array<i64: 0, 2, 1>})

// -----

// A trainable parameter is not frozen.
// expected-error @below {{'galv.frozen' is a string attribute of a galv.parameter that is not trainable}}
galv.parameter @w : tensor<2xf32> trainable {galv.frozen = "rule"}

// -----

// expected-error @below {{'galv.frozen' is a string attribute of a galv.parameter that is not trainable}}
galv.parameter @w : tensor<2xf32> {galv.frozen = 1 : i64}

// -----

// expected-error @below {{'galv.frozen' is a string attribute of a galv.parameter that is not trainable}}
"test.op"() {galv.frozen = "rule"} : () -> ()
