// Round trip of the galv attributes; defaults are elided when printed.
// RUN: galvatron-opt %s --allow-unregistered-dialect | galvatron-opt --allow-unregistered-dialect | FileCheck %s

// CHECK-LABEL: func.func @cost
func.func @cost() {
  // Doubles print as the shortest text that reads back to the same bits.
  // CHECK: #galv.cost<forward_ms = 0.1, backward_ratio = 3.0, parameter_bytes = 28311552, tp_degrees = [1, 2, 4], activation_bytes = [50331648, 29360128, 18874368], checkpoint_bytes = 4194304>
  "test.op"() {c = #galv.cost<forward_ms = 0.1, backward_ratio = 3.0, parameter_bytes = 28311552, tp_degrees = [1, 2, 4], activation_bytes = [50331648, 29360128, 18874368], checkpoint_bytes = 4194304>} : () -> ()
  // CHECK: #galv.cost<forward_ms = 0.0, backward_ratio = 0.3333333333333333, parameter_bytes = 0, tp_degrees = [8], activation_bytes = [0], checkpoint_bytes = 0>
  "test.op"() {c = #galv.cost<forward_ms = 0.0, backward_ratio = 0.3333333333333333, parameter_bytes = 0, tp_degrees = [8], activation_bytes = [0], checkpoint_bytes = 0>} : () -> ()
  return
}

// CHECK-LABEL: func.func @strategy
func.func @strategy() {
  // CHECK: #galv.strategy<tp = 2, dp = 4>
  "test.op"() {s = #galv.strategy<tp = 2, dp = 4, tp_consecutive = true, dp_kind = ddp, sp = none, checkpoint = false, stage = 0>} : () -> ()
  // CHECK: #galv.strategy<tp = 4, dp = 2, tp_consecutive = false, dp_kind = zero3, sp = ulysses, checkpoint = true, stage = 3>
  "test.op"() {s = #galv.strategy<tp = 4, dp = 2, tp_consecutive = false, dp_kind = zero3, sp = ulysses, checkpoint = true, stage = 3>} : () -> ()
  // Parameters may come in any order.
  // CHECK: #galv.strategy<tp = 8, dp = 2, dp_kind = zero2, sp = megatron>
  "test.op"() {s = #galv.strategy<sp = megatron, dp_kind = zero2, dp = 2, tp = 8>} : () -> ()
  return
}

// CHECK-LABEL: func.func @plan
func.func @plan() {
  // CHECK: #galv.plan<world_size = 8, pp = 1, pp_division = [24], chunks = 1, global_batch = 8>
  "test.op"() {p = #galv.plan<world_size = 8, pp = 1, pp_division = [24], chunks = 1, global_batch = 8, schedule = gpipe, default_dp_kind = ddp, vocab_tp = 1, vocab_sp = none, embed_zero3 = false>} : () -> ()
  // CHECK: #galv.plan<world_size = 16, pp = 4, pp_division = [5, 7, 7, 5], chunks = 8, global_batch = 64, schedule = pipedream_flush, default_dp_kind = zero2, vocab_tp = 4, vocab_sp = megatron, embed_zero3 = true>
  "test.op"() {p = #galv.plan<world_size = 16, pp = 4, pp_division = [5, 7, 7, 5], chunks = 8, global_batch = 64, schedule = pipedream_flush, default_dp_kind = zero2, vocab_tp = 4, vocab_sp = megatron, embed_zero3 = true>} : () -> ()
  return
}

// CHECK-LABEL: func.func @parallel
func.func @parallel() {
  // CHECK: #galv.group<size = 2, stride = 1>
  "test.op"() {g = #galv.group<size = 2, stride = 1>} : () -> ()
  // A cut's group is written stripped or in full; blocks = 1 is elided.
  // CHECK: #galv.cut<axis = 0, group = <size = 4, stride = 2>>
  "test.op"() {c = #galv.cut<axis = 0, blocks = 1, group = #galv.group<size = 4, stride = 2>>} : () -> ()
  // CHECK: #galv.cut<axis = 1, blocks = 3, group = <size = 2, stride = 1>>
  "test.op"() {c = #galv.cut<group = <size = 2, stride = 1>, blocks = 3, axis = 1>} : () -> ()
  // CHECK: #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 1>>, <axis = 1, blocks = 3, group = <size = 2, stride = 2>>], flat = <size = 2, stride = 4>>
  "test.op"() {s = #galv.shard<cuts = [#galv.cut<axis = 0, group = <size = 2, stride = 1>>, <axis = 1, blocks = 3, group = <size = 2, stride = 2>>], flat = <size = 2, stride = 4>>} : () -> ()
  // Without cuts or without a flat group, that part is elided.
  // CHECK: #galv.shard<flat = <size = 4, stride = 1>>
  "test.op"() {s = #galv.shard<cuts = [], flat = <size = 4, stride = 1>>} : () -> ()
  // CHECK: #galv.shard<cuts = [<axis = 2, group = <size = 8, stride = 1>>]>
  "test.op"() {s = #galv.shard<cuts = [<axis = 2, group = <size = 8, stride = 1>>]>} : () -> ()
  // CHECK: #galv.grad_sync<all_reduce, group = <size = 4, stride = 1>>
  // CHECK-SAME: #galv.grad_sync<reduce_scatter, group = <size = 2, stride = 2>>
  "test.op"() {a = #galv.grad_sync<all_reduce, group = <size = 4, stride = 1>>, b = #galv.grad_sync<reduce_scatter, group = #galv.group<size = 2, stride = 2>>} : () -> ()
  return
}

// CHECK-LABEL: func.func @enums
func.func @enums() {
  // CHECK: #galv.layer_kind<encoder>
  // CHECK-SAME: #galv<data_parallel_kind zero3>
  // CHECK-SAME: #galv<sequence_parallel_kind ulysses>
  // CHECK-SAME: #galv<pipeline_schedule gpipe>
  // CHECK-SAME: #galv<reduce_kind mean>
  // CHECK-SAME: #galv<compare_predicate ge>
  // CHECK-SAME: #galv<gelu_approximation tanh>
  // CHECK-SAME: #galv<weight_layout in_out>
  "test.op"() {a = #galv.layer_kind<encoder>, b = #galv<data_parallel_kind zero3>, c = #galv<sequence_parallel_kind ulysses>, d = #galv<pipeline_schedule gpipe>, e = #galv<reduce_kind mean>, f = #galv<compare_predicate ge>, g = #galv<gelu_approximation tanh>, h = #galv<weight_layout in_out>} : () -> ()
  return
}
