// RUN: galvatron-opt %s --split-input-file --galv-schedule=function=train_step --verify-diagnostics | FileCheck %s

// Two stages, two micro-batches. GPipe: every forward, then every backward.
// Stage 1's backward sends each gradient back; the loss is broadcast from
// stage 1 after the micro-batches.
// CHECK-LABEL: func.func @train_step_stage0
// CHECK-SAME: (%[[X:.*]]: tensor<4xf32> {galv.name = "x"})
// CHECK-SAME: -> (tensor<4xf32> {galv.name = "loss"}, tensor<4xf32> {galv.name = "grad"})
// CHECK-SAME: attributes {galv.stage = 0 : i64}
// CHECK-NEXT: %[[A0:.*]] = galv.tanh %[[X]] {galv.micro_batch = 0
// CHECK-NEXT: galv.send %[[A0]] to = 1 {galv.micro_batch = 0 : i64} : tensor<4xf32> -> tensor<1xf32>
// CHECK-NEXT: %[[A1:.*]] = galv.tanh %[[X]] {galv.micro_batch = 1
// CHECK-NEXT: galv.send %[[A1]] to = 1 {galv.micro_batch = 1 : i64}
// CHECK-NEXT: %[[R0:.*]] = galv.recv from = 1 {galv.backward, galv.micro_batch = 0 : i64} : tensor<4xf32>
// CHECK-NEXT: %[[B0:.*]] = galv.mul %[[R0]], %[[A0]]
// CHECK-NEXT: %[[R1:.*]] = galv.recv from = 1 {galv.backward, galv.micro_batch = 1 : i64}
// CHECK-NEXT: %[[B1:.*]] = galv.mul %[[R1]], %[[A1]]
// CHECK-NEXT: %[[L:.*]] = galv.recv from = 1 : tensor<4xf32>
// CHECK-NEXT: %[[U:.*]] = galv.add %[[B0]], %[[B1]]
// CHECK-NEXT: return %[[L]], %[[U]]

// Stage 1 reads no argument and returns the loss only.
// CHECK-LABEL: func.func @train_step_stage1
// CHECK-SAME: () -> (tensor<4xf32> {galv.name = "loss"}) attributes {galv.stage = 1 : i64}
// CHECK-NEXT: %[[T0:.*]] = galv.recv from = 0 {galv.micro_batch = 0 : i64}
// CHECK-NEXT: %[[E0:.*]] = galv.exp %[[T0]]
// CHECK-NEXT: %[[T1:.*]] = galv.recv from = 0 {galv.micro_batch = 1 : i64}
// CHECK-NEXT: %[[E1:.*]] = galv.exp %[[T1]]
// CHECK-NEXT: %[[G0:.*]] = galv.neg %[[E0]]
// CHECK-NEXT: galv.send %[[G0]] to = 0 {galv.backward, galv.micro_batch = 0 : i64}
// CHECK-NEXT: %[[G1:.*]] = galv.neg %[[E1]]
// CHECK-NEXT: galv.send %[[G1]] to = 0 {galv.backward, galv.micro_batch = 1 : i64}
// CHECK-NEXT: %[[S:.*]] = galv.add %[[E0]], %[[E1]]
// CHECK-NEXT: galv.send %[[S]] to = 0 :
// CHECK-NEXT: return %[[S]]
module attributes {galv.plan = #galv.plan<world_size = 2, pp = 2, pp_division = [1, 1], chunks = 2, global_batch = 2, schedule = gpipe>} {
  func.func @train_step(%x: tensor<4xf32> {galv.name = "x"}) -> (tensor<4xf32> {galv.name = "loss"}, tensor<4xf32> {galv.name = "grad"}) {
    %a0 = galv.tanh %x {galv.micro_batch = 0 : i64, galv.stage = 0 : i64} : tensor<4xf32>
    %t0 = galv.stage_transfer %a0 from = 0 to = 1 {galv.micro_batch = 0 : i64} : tensor<4xf32>
    %a1 = galv.tanh %x {galv.micro_batch = 1 : i64, galv.stage = 0 : i64} : tensor<4xf32>
    %t1 = galv.stage_transfer %a1 from = 0 to = 1 {galv.micro_batch = 1 : i64} : tensor<4xf32>
    %e0 = galv.exp %t0 {galv.micro_batch = 0 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %e1 = galv.exp %t1 {galv.micro_batch = 1 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %g0 = galv.neg %e0 {galv.backward, galv.micro_batch = 0 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %r0 = galv.stage_transfer %g0 from = 1 to = 0 {galv.backward, galv.micro_batch = 0 : i64} : tensor<4xf32>
    %g1 = galv.neg %e1 {galv.backward, galv.micro_batch = 1 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %r1 = galv.stage_transfer %g1 from = 1 to = 0 {galv.backward, galv.micro_batch = 1 : i64} : tensor<4xf32>
    %b0 = galv.mul %r0, %a0 {galv.backward, galv.micro_batch = 0 : i64, galv.stage = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %b1 = galv.mul %r1, %a1 {galv.backward, galv.micro_batch = 1 : i64, galv.stage = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %s = galv.add %e0, %e1 {galv.stage = 1 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %l = galv.stage_broadcast %s from = 1 : tensor<4xf32>
    %u = galv.add %b0, %b1 {galv.stage = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    return %l, %u : tensor<4xf32>, tensor<4xf32>
  }
}

// -----

// The same step under 1F1B: stage 1 (no stage after it) alternates one
// forward and one backward at once; stage 0 runs one forward ahead, which
// with two micro-batches is GPipe's order.
// CHECK-LABEL: func.func @train_step_stage0
// CHECK: galv.tanh {{.*}}galv.micro_batch = 0
// CHECK-NEXT: galv.send
// CHECK-NEXT: galv.tanh {{.*}}galv.micro_batch = 1
// CHECK-NEXT: galv.send
// CHECK-NEXT: galv.recv from = 1 {galv.backward, galv.micro_batch = 0 : i64}
// CHECK-LABEL: func.func @train_step_stage1
// CHECK-NEXT: %[[T0:.*]] = galv.recv from = 0 {galv.micro_batch = 0 : i64}
// CHECK-NEXT: %[[E0:.*]] = galv.exp %[[T0]]
// CHECK-NEXT: %[[G0:.*]] = galv.neg %[[E0]]
// CHECK-NEXT: galv.send %[[G0]] to = 0 {galv.backward, galv.micro_batch = 0 : i64}
// CHECK-NEXT: %[[T1:.*]] = galv.recv from = 0 {galv.micro_batch = 1 : i64}
// CHECK-NEXT: %[[E1:.*]] = galv.exp %[[T1]]
// CHECK-NEXT: %[[G1:.*]] = galv.neg %[[E1]]
// CHECK-NEXT: galv.send %[[G1]] to = 0 {galv.backward, galv.micro_batch = 1 : i64}
module attributes {galv.plan = #galv.plan<world_size = 2, pp = 2, pp_division = [1, 1], chunks = 2, global_batch = 2, schedule = pipedream_flush>} {
  func.func @train_step(%x: tensor<4xf32> {galv.name = "x"}) -> (tensor<4xf32> {galv.name = "loss"}, tensor<4xf32> {galv.name = "grad"}) {
    %a0 = galv.tanh %x {galv.micro_batch = 0 : i64, galv.stage = 0 : i64} : tensor<4xf32>
    %t0 = galv.stage_transfer %a0 from = 0 to = 1 {galv.micro_batch = 0 : i64} : tensor<4xf32>
    %a1 = galv.tanh %x {galv.micro_batch = 1 : i64, galv.stage = 0 : i64} : tensor<4xf32>
    %t1 = galv.stage_transfer %a1 from = 0 to = 1 {galv.micro_batch = 1 : i64} : tensor<4xf32>
    %e0 = galv.exp %t0 {galv.micro_batch = 0 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %e1 = galv.exp %t1 {galv.micro_batch = 1 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %g0 = galv.neg %e0 {galv.backward, galv.micro_batch = 0 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %r0 = galv.stage_transfer %g0 from = 1 to = 0 {galv.backward, galv.micro_batch = 0 : i64} : tensor<4xf32>
    %g1 = galv.neg %e1 {galv.backward, galv.micro_batch = 1 : i64, galv.stage = 1 : i64} : tensor<4xf32>
    %r1 = galv.stage_transfer %g1 from = 1 to = 0 {galv.backward, galv.micro_batch = 1 : i64} : tensor<4xf32>
    %b0 = galv.mul %r0, %a0 {galv.backward, galv.micro_batch = 0 : i64, galv.stage = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %b1 = galv.mul %r1, %a1 {galv.backward, galv.micro_batch = 1 : i64, galv.stage = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %s = galv.add %e0, %e1 {galv.stage = 1 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %l = galv.stage_broadcast %s from = 1 : tensor<4xf32>
    %u = galv.add %b0, %b1 {galv.stage = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    return %l, %u : tensor<4xf32>, tensor<4xf32>
  }
}

// -----

// One stage: what precedes the micro-batches, joined by every constant and
// parameter read (%c3 too), then each micro-batch's forward and backward in
// turn, then the rest. Replication disappears; results that are arguments,
// weights or returned twice are copied; an unused argument is dropped.
// CHECK-LABEL: func.func @train_step_stage0
// CHECK-SAME: (%[[X:.*]]: tensor<4xf32> {galv.name = "x"}, %[[Y:.*]]: tensor<4xf32> {galv.name = "input2"})
// CHECK-SAME: -> (tensor<4xf32> {galv.name = "output0"}, tensor<4xf32> {galv.name = "output1"}, tensor<4xf32> {galv.name = "w"}, tensor<4xf32> {galv.name = "output3"}, tensor<4xf32> {galv.name = "output4"})
// CHECK-NEXT: %[[W:.*]] = galv.get_parameter @w
// CHECK-NEXT: %[[C:.*]] = galv.constant dense<2.0
// CHECK-NEXT: %[[P:.*]] = galv.mul %[[X]], %[[C]]
// CHECK-NEXT: %[[C3:.*]] = galv.constant dense<3.0
// CHECK-NEXT: %[[F0:.*]] = galv.tanh %[[P]] {galv.micro_batch = 0
// CHECK-NEXT: %[[B0:.*]] = galv.mul %[[F0]], %[[W]] {galv.backward, galv.micro_batch = 0
// CHECK-NEXT: %[[F1:.*]] = galv.tanh %[[P]] {galv.micro_batch = 1
// CHECK-NEXT: %[[B1:.*]] = galv.mul %[[F1]], %[[W]] {galv.backward, galv.micro_batch = 1
// CHECK-NEXT: %[[S:.*]] = galv.add %[[B0]], %[[B1]]
// CHECK-NEXT: galv.mul %[[S]], %[[C3]]
// CHECK-NEXT: %[[CX:.*]] = galv.copy %[[X]]
// CHECK-NEXT: %[[CW:.*]] = galv.copy %[[W]]
// CHECK-NEXT: %[[CS:.*]] = galv.copy %[[S]]
// CHECK-NEXT: %[[CY:.*]] = galv.copy %[[Y]]
// CHECK-NEXT: return %[[S]], %[[CX]], %[[CW]], %[[CS]], %[[CY]]
// CHECK-NOT: galv.replicate
module attributes {galv.plan = #galv.plan<world_size = 1, pp = 1, pp_division = [1], chunks = 2, global_batch = 2>} {
  galv.parameter @w : tensor<4xf32> trainable
  func.func @train_step(%x: tensor<4xf32> {galv.name = "x"}, %unused: tensor<4xf32>, %y: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32> {galv.name = "w"}, tensor<4xf32>, tensor<4xf32>) {
    %w = galv.get_parameter @w : tensor<4xf32>
    %c = galv.constant dense<2.0> : tensor<f32>
    %p = galv.mul %x, %c : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
    %wr = galv.replicate %w group = <size = 1, stride = 1> : tensor<4xf32>
    %f0 = galv.tanh %p {galv.micro_batch = 0 : i64} : tensor<4xf32>
    %f1 = galv.tanh %p {galv.micro_batch = 1 : i64} : tensor<4xf32>
    %b0 = galv.mul %f0, %wr {galv.backward, galv.micro_batch = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %b1 = galv.mul %f1, %wr {galv.backward, galv.micro_batch = 1 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %s = galv.add %b0, %b1 : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %c3 = galv.constant dense<3.0> : tensor<f32>
    %q = galv.mul %s, %c3 : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
    return %s, %x, %wr, %s, %y : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
  }
}

// -----

module {
  func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
    %a = galv.tanh %x {galv.stage = 0 : i64} : tensor<4xf32>
    // expected-error @+1 {{runs on every stage but reads a value of stage 0: run galv-assign-stages first}}
    %b = galv.exp %a : tensor<4xf32>
    return %b : tensor<4xf32>
  }
}

// -----

// expected-error @+1 {{galv-schedule needs a func.func @train_step}}
module {
}
