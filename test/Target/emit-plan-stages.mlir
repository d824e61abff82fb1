// A two-stage 1F1B step through the plan passes and --emit-plan: each
// rank's instructions in its stage's order (stage 1 alternates forward and
// backward; stage 0 runs one forward ahead), sends and receives paired with
// the rank of the other stage, and the arena offsets galv-plan-memory chose
// (slots reused once their values die).
// RUN: galvatron-opt %s --galv-assign-stages=function=train_step --galv-schedule=function=train_step --galv-plan-memory \
// RUN:   | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s

// CHECK: group [0, 1]
// CHECK-NEXT: rank 0: arena 224 bytes, 11 tensors, 10 instructions, stage 0
// CHECK-NEXT: %0 Input F32[2x4] 'x' Data (32 bytes)
// CHECK-NEXT: %1 Arena F32[2x4] @0 (32 bytes)
// CHECK-NEXT: %2 Arena F32[1] @64 (4 bytes)
// CHECK-NEXT: %3 Arena F32[2x4] @64 (32 bytes)
// CHECK-NEXT: %4 Arena F32[1] @128 (4 bytes)
// CHECK-NEXT: %5 Arena F32[2x4] @128 (32 bytes)
// CHECK-NEXT: %6 Arena F32[2x4] @192 (32 bytes)
// CHECK-NEXT: %7 Arena F32[2x4] @0 (32 bytes)
// CHECK-NEXT: %8 Arena F32[2x4] @128 (32 bytes)
// CHECK-NEXT: %9 Arena F32[2x4] 'loss' @0 (32 bytes)
// CHECK-NEXT: %10 Arena F32[2x4] 'grad' @64 (32 bytes)
// CHECK-NEXT: %1 = Tanh %0
// CHECK-NEXT: %2 = Send %1 {group = 1, peer = 1}
// CHECK-NEXT: %3 = Tanh %0
// CHECK-NEXT: %4 = Send %3 {group = 1, peer = 1}
// CHECK-NEXT: %5 = Recv {group = 1, peer = 1}
// CHECK-NEXT: %6 = Mul %5, %1
// CHECK-NEXT: %7 = Recv {group = 1, peer = 1}
// CHECK-NEXT: %8 = Mul %7, %3
// CHECK-NEXT: %9 = Recv {group = 1, peer = 1}
// CHECK-NEXT: %10 = Add %6, %8
// CHECK-NEXT: rank 1: arena 196 bytes, 10 tensors, 10 instructions, stage 1
// CHECK-NEXT: %0 Arena F32[2x4] @0 (32 bytes)
// CHECK-NEXT: %1 Arena F32[2x4] @64 (32 bytes)
// CHECK-NEXT: %2 Arena F32[2x4] @0 (32 bytes)
// CHECK-NEXT: %3 Arena F32[1] @128 (4 bytes)
// CHECK-NEXT: %4 Arena F32[2x4] @0 (32 bytes)
// CHECK-NEXT: %5 Arena F32[2x4] @128 (32 bytes)
// CHECK-NEXT: %6 Arena F32[2x4] @0 (32 bytes)
// CHECK-NEXT: %7 Arena F32[1] @192 (4 bytes)
// CHECK-NEXT: %8 Arena F32[2x4] 'loss' @0 (32 bytes)
// CHECK-NEXT: %9 Arena F32[1] @64 (4 bytes)
// CHECK-NEXT: %0 = Recv {group = 1, peer = 0}
// CHECK-NEXT: %1 = Exp %0
// CHECK-NEXT: %2 = Neg %1
// CHECK-NEXT: %3 = Send %2 {group = 1, peer = 0}
// CHECK-NEXT: %4 = Recv {group = 1, peer = 0}
// CHECK-NEXT: %5 = Exp %4
// CHECK-NEXT: %6 = Neg %5
// CHECK-NEXT: %7 = Send %6 {group = 1, peer = 0}
// CHECK-NEXT: %8 = Add %1, %5
// CHECK-NEXT: %9 = Send %8 {group = 1, peer = 0}

module attributes {galv.plan = #galv.plan<world_size = 2, pp = 2, pp_division = [1, 1], chunks = 2, global_batch = 2, schedule = pipedream_flush>} {
  func.func @train_step(%x: tensor<2x4xf32> {galv.name = "x"}) -> (tensor<2x4xf32> {galv.name = "loss"}, tensor<2x4xf32> {galv.name = "grad"}) {
    %a0 = galv.tanh %x {galv.micro_batch = 0 : i64, galv.stage = 0 : i64} : tensor<2x4xf32>
    %t0 = galv.stage_transfer %a0 from = 0 to = 1 {galv.micro_batch = 0 : i64} : tensor<2x4xf32>
    %a1 = galv.tanh %x {galv.micro_batch = 1 : i64, galv.stage = 0 : i64} : tensor<2x4xf32>
    %t1 = galv.stage_transfer %a1 from = 0 to = 1 {galv.micro_batch = 1 : i64} : tensor<2x4xf32>
    %e0 = galv.exp %t0 {galv.micro_batch = 0 : i64} : tensor<2x4xf32>
    %e1 = galv.exp %t1 {galv.micro_batch = 1 : i64} : tensor<2x4xf32>
    %g0 = galv.neg %e0 {galv.backward, galv.micro_batch = 0 : i64} : tensor<2x4xf32>
    %r0 = galv.stage_transfer %g0 from = 1 to = 0 {galv.backward, galv.micro_batch = 0 : i64} : tensor<2x4xf32>
    %g1 = galv.neg %e1 {galv.backward, galv.micro_batch = 1 : i64} : tensor<2x4xf32>
    %r1 = galv.stage_transfer %g1 from = 1 to = 0 {galv.backward, galv.micro_batch = 1 : i64} : tensor<2x4xf32>
    %b0 = galv.mul %r0, %a0 {galv.backward, galv.micro_batch = 0 : i64} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
    %b1 = galv.mul %r1, %a1 {galv.backward, galv.micro_batch = 1 : i64} : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
    %s = galv.add %e0, %e1 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
    %l = galv.stage_broadcast %s from = 1 : tensor<2x4xf32>
    %u = galv.add %b0, %b1 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
    return %l, %u : tensor<2x4xf32>, tensor<2x4xf32>
  }
}
