// RUN: galvatron-opt %s --galv-fuse-residual-norm --split-input-file | FileCheck %s

// The residual add and the layer norm of its sum become one op; the sum
// still feeds the next residual add, the norm's result its reader.
// CHECK-LABEL: func.func @layer_norm(
// CHECK: %[[S:.*]], %[[N:.*]] = galv.add_norm %arg0, %arg1, %arg2, %arg3 eps = 1.000000e-05 : tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>
// CHECK-NOT: galv.layer_norm
// CHECK: %[[T:.*]] = galv.tanh %[[N]]
// CHECK: galv.add %[[S]], %[[T]]
func.func @layer_norm(%x: tensor<2x8x16xf32>, %r: tensor<2x8x16xf32>, %g: tensor<16xf32>, %b: tensor<16xf32>) -> tensor<2x8x16xf32> {
  %s = galv.add %x, %r : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  %n = galv.layer_norm %s, %g, %b eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>
  %t = galv.tanh %n : tensor<2x8x16xf32>
  %o = galv.add %s, %t : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  return %o : tensor<2x8x16xf32>
}

// -----

// CHECK-LABEL: func.func @rms_norm(
// CHECK: galv.add_norm %arg0, %arg1, %arg2 rms eps = 9.9999999999999995E-7 : tensor<4x32xf32>, tensor<32xf32>
func.func @rms_norm(%x: tensor<4x32xf32>, %r: tensor<4x32xf32>, %g: tensor<32xf32>) -> (tensor<4x32xf32>, tensor<4x32xf32>) {
  %s = galv.add %x, %r : tensor<4x32xf32>, tensor<4x32xf32> -> tensor<4x32xf32>
  %n = galv.rms_norm %s, %g eps = 1.0e-06 : tensor<4x32xf32>, tensor<32xf32>
  return %s, %n : tensor<4x32xf32>, tensor<4x32xf32>
}

// -----

// Left apart: a broadcasting add (GPT-2's position embedding), a sum read
// before the norm, a bf16 sum, and an add on another pipeline stage.
// CHECK-LABEL: func.func @apart(
// CHECK-NOT: galv.add_norm
// CHECK-COUNT-4: galv.layer_norm
func.func @apart(%x: tensor<2x8x16xf32>, %p: tensor<1x8x16xf32>, %g: tensor<16xf32>,
                 %xb: tensor<2x8x16xbf16>, %gb: tensor<16xbf16>) -> (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xbf16>, tensor<2x8x16xf32>) {
  %s = galv.add %x, %p : tensor<2x8x16xf32>, tensor<1x8x16xf32> -> tensor<2x8x16xf32>
  %n = galv.layer_norm %s, %g eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>
  %s2 = galv.add %x, %x : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  %early = galv.neg %s2 : tensor<2x8x16xf32>
  %n2 = galv.layer_norm %s2, %g eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>
  %s3 = galv.add %xb, %xb : tensor<2x8x16xbf16>, tensor<2x8x16xbf16> -> tensor<2x8x16xbf16>
  %n3 = galv.layer_norm %s3, %gb eps = 1.0e-05 : tensor<2x8x16xbf16>, tensor<16xbf16>
  %s4 = galv.add %x, %n {galv.stage = 0 : i64} : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  %n4 = galv.layer_norm %s4, %g eps = 1.0e-05 {galv.stage = 1 : i64} : tensor<2x8x16xf32>, tensor<16xf32>
  return %n, %early, %n2, %n3, %n4 : tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xbf16>, tensor<2x8x16xf32>
}
