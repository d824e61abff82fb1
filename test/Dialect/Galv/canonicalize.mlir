// Folders of the galv ops, run through the canonicalizer.
// RUN: galvatron-opt %s --canonicalize --split-input-file | FileCheck %s

// CHECK-LABEL: func.func @reshape_chain
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x64xf32>)
func.func @reshape_chain(%x: tensor<2x8x64xf32>) -> tensor<16x64xf32> {
  // CHECK: %[[R:.*]] = galv.reshape %[[X]] : tensor<2x8x64xf32> -> tensor<16x64xf32>
  // CHECK-NEXT: return %[[R]]
  %0 = galv.reshape %x : tensor<2x8x64xf32> -> tensor<2x8x4x16xf32>
  %1 = galv.reshape %0 : tensor<2x8x4x16xf32> -> tensor<16x64xf32>
  return %1 : tensor<16x64xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_identity
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>)
func.func @reshape_identity(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // CHECK-NEXT: return %[[X]]
  %0 = galv.reshape %x : tensor<2x8xf32> -> tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_constant
func.func @reshape_constant() -> tensor<2x2xf32> {
  // CHECK-NEXT: %[[C:.*]] = galv.constant dense<{{\[}}[1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
  // CHECK-NEXT: return %[[C]]
  %c = galv.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %0 = galv.reshape %c : tensor<4xf32> -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}

// -----

// CHECK-LABEL: func.func @transpose_pair
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x4x16xf32>)
func.func @transpose_pair(%x: tensor<2x8x4x16xf32>) -> tensor<2x8x4x16xf32> {
  // Transposing heads out and back in again is the identity.
  // CHECK-NEXT: return %[[X]]
  %0 = galv.transpose %x [0, 2, 1, 3] : tensor<2x8x4x16xf32> -> tensor<2x4x8x16xf32>
  %1 = galv.transpose %0 [0, 2, 1, 3] : tensor<2x4x8x16xf32> -> tensor<2x8x4x16xf32>
  return %1 : tensor<2x8x4x16xf32>
}

// -----

// CHECK-LABEL: func.func @transpose_compose
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x4xf32>)
func.func @transpose_compose(%x: tensor<2x3x4xf32>) -> tensor<4x3x2xf32> {
  // [1, 2, 0] then [1, 0, 2] gives [2, 1, 0].
  // CHECK-NEXT: %[[T:.*]] = galv.transpose %[[X]] [2, 1, 0] : tensor<2x3x4xf32> -> tensor<4x3x2xf32>
  // CHECK-NEXT: return %[[T]]
  %0 = galv.transpose %x [1, 2, 0] : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
  %1 = galv.transpose %0 [1, 0, 2] : tensor<3x4x2xf32> -> tensor<4x3x2xf32>
  return %1 : tensor<4x3x2xf32>
}

// -----

// CHECK-LABEL: func.func @identities
// CHECK-SAME: (%[[X:.*]]: tensor<2x3xf32>)
func.func @identities(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
  // CHECK-NEXT: return %[[X]], %[[X]], %[[X]]
  %0 = galv.transpose %x [0, 1] : tensor<2x3xf32> -> tensor<2x3xf32>
  %1 = galv.slice %x [0, 0] [2, 3] [1, 1] : tensor<2x3xf32> -> tensor<2x3xf32>
  %2 = galv.cast %x : tensor<2x3xf32> -> tensor<2x3xf32>
  return %0, %1, %2 : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
}

// -----

// CHECK-LABEL: func.func @kept
func.func @kept(%x: tensor<2x3xf32>) -> (tensor<3x2xf32>, tensor<2x3xf16>, tensor<2x2xf32>) {
  // Real work is not folded away.
  // CHECK: galv.transpose
  // CHECK: galv.cast
  // CHECK: galv.slice
  %0 = galv.transpose %x [1, 0] : tensor<2x3xf32> -> tensor<3x2xf32>
  %1 = galv.cast %x : tensor<2x3xf32> -> tensor<2x3xf16>
  %2 = galv.slice %x [0, 0] [2, 2] [1, 1] : tensor<2x3xf32> -> tensor<2x2xf32>
  return %0, %1, %2 : tensor<3x2xf32>, tensor<2x3xf16>, tensor<2x2xf32>
}

// -----

// CHECK-LABEL: func.func @identity_constants
// CHECK-SAME: (%[[X:.*]]: tensor<2x3xf32>)
func.func @identity_constants(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x2x3xf32>) {
  // x + 0 and 1 * x fold; a zero that broadcasts x to a bigger shape stays.
  // CHECK: %[[B:.*]] = galv.add %[[X]], %{{.*}} : tensor<2x3xf32>, tensor<2x1x1xf32> -> tensor<2x2x3xf32>
  // CHECK-NEXT: return %[[X]], %[[X]], %[[B]]
  %zero = galv.constant dense<0.0> : tensor<f32>
  %one = galv.constant dense<1.0> : tensor<3xf32>
  %bigzero = galv.constant dense<0.0> : tensor<2x1x1xf32>
  %0 = galv.add %x, %zero : tensor<2x3xf32>, tensor<f32> -> tensor<2x3xf32>
  %1 = galv.mul %one, %x : tensor<3xf32>, tensor<2x3xf32> -> tensor<2x3xf32>
  %2 = galv.add %x, %bigzero : tensor<2x3xf32>, tensor<2x1x1xf32> -> tensor<2x2x3xf32>
  return %0, %1, %2 : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x2x3xf32>
}
