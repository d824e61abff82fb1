// --emit-plan lowers @forward to a tensor table and an instruction stream;
// --decode-plan verifies plan.bin and prints it back.
// RUN: galvatron-translate --emit-plan %s -o %t.bin
// RUN: galvatron-translate --decode-plan %t.bin | FileCheck %s

// CHECK: plan format 3, world size 1, weights 'w.safetensors', 4 constant bytes
// CHECK-NEXT: group [0]
// The chain a -> b -> c -> d needs two 1 KiB slots at a time: the arena holds
// two, and c reuses a's slot once a is dead.
// CHECK-NEXT: rank 0: arena 2048 bytes, 8 tensors, 5 instructions
// CHECK-NEXT: %0 Input F32[16x16] 'x' (1024 bytes)
// CHECK-NEXT: %1 Weight F32[16] 'g' (64 bytes)
// CHECK-NEXT: %2 Constant F32[] @0 (4 bytes)
// CHECK-NEXT: %3 Arena F32[16x16] @0 (1024 bytes)
// CHECK-NEXT: %4 Arena F32[16x16] @1024 (1024 bytes)
// CHECK-NEXT: %5 Arena F32[16x16] @0 (1024 bytes)
// CHECK-NEXT: %6 Arena F32[256] @1024 (1024 bytes)
// CHECK-NEXT: %7 Arena F32[16x16] 'output0' @0 (1024 bytes)
// CHECK-NEXT: %3 = RmsNorm %0, %1 floats[1.000000e-06]
// CHECK-NEXT: %4 = Mul %3, %2
// CHECK-NEXT: %5 = Transpose %4 ints[1, 0]
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
