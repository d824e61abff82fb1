// The plan passes order @forward and place its buffers; --emit-plan
// serialises the result as a tensor table and an instruction stream;
// --decode-plan verifies plan.bin and prints it back.
// RUN: galvatron-opt %s --galv-assign-stages --galv-schedule --galv-plan-memory | galvatron-translate --emit-plan -o %t.bin
// RUN: galvatron-translate --decode-plan %t.bin | FileCheck %s

// --emit-plan derives nothing itself: without the passes' results it says
// which passes to run.
// RUN: not galvatron-translate --emit-plan %s 2>&1 | FileCheck %s --check-prefix=UNSCHEDULED
// RUN: galvatron-opt %s --galv-assign-stages --galv-schedule | not galvatron-translate --emit-plan 2>&1 | FileCheck %s --check-prefix=UNPLACED
// RUN: not galvatron-translate --emit-plan --plan-function=train_step %s 2>&1 | FileCheck %s --check-prefix=MISSING
// UNSCHEDULED: error: --emit-plan serialises a scheduled plan, and @forward_stage0 is missing: run galvatron-opt --galv-assign-stages=function=forward --galv-schedule=function=forward --galv-plan-memory first (--galv-inference-pipeline and --galv-training-pipeline do)
// UNPLACED: error: no arena size (run galv-plan-memory)
// MISSING: error: --emit-plan needs a func.func @train_step

// CHECK: plan format 5, world size 1, weights 'w.safetensors', 4 constant bytes, vocab size 0
// CHECK-NEXT: group [0]
// The chain a -> b -> c -> d needs two 1 KiB slots at a time: the arena holds
// two, and c reuses a's slot once a is dead. The reshape d is c's buffer (its
// Copy lands on its input and moves nothing); e, a stage result, gets a
// buffer of its own.
// CHECK-NEXT: rank 0: arena 2048 bytes, 8 tensors, 5 instructions
// CHECK-NEXT: %0 Input F32[16x16] 'x' Data (1024 bytes)
// CHECK-NEXT: %1 Weight F32[16] 'g' (64 bytes)
// CHECK-NEXT: %2 Constant F32[] @0 (4 bytes)
// CHECK-NEXT: %3 Arena F32[16x16] @0 (1024 bytes)
// CHECK-NEXT: %4 Arena F32[16x16] @1024 (1024 bytes)
// CHECK-NEXT: %5 Arena F32[16x16] @0 (1024 bytes)
// CHECK-NEXT: %6 Arena F32[256] @0 (1024 bytes)
// CHECK-NEXT: %7 Arena F32[16x16] 'output0' @1024 (1024 bytes)
// CHECK-NEXT: %3 = RmsNorm %0, %1 {eps = 1.000000e-06}
// CHECK-NEXT: %4 = Mul %3, %2
// CHECK-NEXT: %5 = Transpose %4 {perm = [1, 0]}
// CHECK-NEXT: %6 = Copy %5
// CHECK-NEXT: %7 = Copy %6
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @g : tensor<16xf32> trainable
  func.func @forward(%x: tensor<16x16xf32> {onnx.name = "x"}) -> tensor<16x16xf32> {
    %g = galv.get_parameter @g : tensor<16xf32>
    %two = galv.constant dense<2.0> : tensor<f32>
    %a = galv.rms_norm %x, %g eps = 1.0e-06 : tensor<16x16xf32>, tensor<16xf32>
    %b = galv.mul %a, %two : tensor<16x16xf32>, tensor<f32> -> tensor<16x16xf32>
    %c = galv.transpose %b [1, 0] : tensor<16x16xf32> -> tensor<16x16xf32>
    %d = galv.reshape %c : tensor<16x16xf32> -> tensor<256xf32>
    %e = galv.reshape %d : tensor<256xf32> -> tensor<16x16xf32>
    return %e : tensor<16x16xf32>
  }
}
