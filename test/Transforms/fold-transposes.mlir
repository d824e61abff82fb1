// RUN: galvatron-opt %s --galv-fold-transposes --split-input-file | FileCheck %s

// A weight gradient's transpose(x) * dy reads x transposed; the transpose is
// gone. A transpose with another user stays for it.
// CHECK-LABEL: func.func @weight_grad(
// CHECK-SAME: %[[X:.*]]: tensor<8x4xf32>, %[[DY:.*]]: tensor<8x6xf32>
// CHECK-NEXT: %[[DW:.*]] = galv.matmul %[[X]], %[[DY]] {transpose_lhs} : tensor<8x4xf32>, tensor<8x6xf32> -> tensor<4x6xf32>
// CHECK-NEXT: return %[[DW]]
func.func @weight_grad(%x: tensor<8x4xf32>, %dy: tensor<8x6xf32>) -> tensor<4x6xf32> {
  %xt = galv.transpose %x [1, 0] : tensor<8x4xf32> -> tensor<4x8xf32>
  %dw = galv.matmul %xt, %dy : tensor<4x8xf32>, tensor<8x6xf32> -> tensor<4x6xf32>
  return %dw : tensor<4x6xf32>
}

// -----

// Batched: only a swap of the last two dimensions folds, into either side;
// a transpose that moves a batch dimension stays.
// CHECK-LABEL: func.func @batched(
// CHECK: %[[KT:.*]] = galv.transpose %arg1 [0, 1, 3, 2]
// CHECK: %[[S:.*]] = galv.matmul %arg0, %arg1 {transpose_rhs} : tensor<2x3x5x4xf32>, tensor<2x3x7x4xf32> -> tensor<2x3x5x7xf32>
// CHECK: %[[KEEP:.*]] = galv.transpose %arg2 [1, 0, 2, 3]
// CHECK: galv.matmul %[[S]], %[[KEEP]] : tensor<2x3x5x7xf32>, tensor<2x3x7x4xf32>
// CHECK: galv.reduce sum %[[KT]]
func.func @batched(%q: tensor<2x3x5x4xf32>, %k: tensor<2x3x7x4xf32>, %v: tensor<3x2x7x4xf32>) -> (tensor<2x3x5x4xf32>, tensor<f32>) {
  %kt = galv.transpose %k [0, 1, 3, 2] : tensor<2x3x7x4xf32> -> tensor<2x3x4x7xf32>
  %s = galv.matmul %q, %kt : tensor<2x3x5x4xf32>, tensor<2x3x4x7xf32> -> tensor<2x3x5x7xf32>
  %vt = galv.transpose %v [1, 0, 2, 3] : tensor<3x2x7x4xf32> -> tensor<2x3x7x4xf32>
  %o = galv.matmul %s, %vt : tensor<2x3x5x7xf32>, tensor<2x3x7x4xf32> -> tensor<2x3x5x4xf32>
  %kts = galv.reduce sum %kt axes = [0, 1, 2, 3] : tensor<2x3x4x7xf32> -> tensor<f32>
  return %o, %kts : tensor<2x3x5x4xf32>, tensor<f32>
}

