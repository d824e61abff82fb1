// RUN: galvatron-opt %s --galv-recompose-linear --split-input-file | FileCheck %s

galv.parameter @w : tensor<32x64xf32>
galv.parameter @b : tensor<64xf32>
// CHECK-LABEL: func.func @matmul_bias
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>)
func.func @matmul_bias(%x: tensor<2x8x32xf32>) -> tensor<2x8x64xf32> {
  // CHECK-DAG: %[[W:.*]] = galv.get_parameter @w
  // CHECK-DAG: %[[B:.*]] = galv.get_parameter @b
  // CHECK: %[[Y:.*]] = galv.linear %[[X]], %[[W]], %[[B]] layout = in_out : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK-NEXT: return %[[Y]]
  %w = galv.get_parameter @w : tensor<32x64xf32>
  %b = galv.get_parameter @b : tensor<64xf32>
  %0 = galv.matmul %x, %w : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
  // The bias may come first.
  %1 = galv.add %b, %0 : tensor<64xf32>, tensor<2x8x64xf32> -> tensor<2x8x64xf32>
  return %1 : tensor<2x8x64xf32>
}

// -----

galv.parameter @w : tensor<64x32xf32>
// An [out, in] weight read through a transpose.
// CHECK-LABEL: func.func @transposed_weight
func.func @transposed_weight(%x: tensor<2x8x32xf32>) -> tensor<2x8x64xf32> {
  // CHECK: %[[W:.*]] = galv.get_parameter @w : tensor<64x32xf32>
  // CHECK: galv.linear %{{.*}}, %[[W]] : tensor<2x8x32xf32>, tensor<64x32xf32> -> tensor<2x8x64xf32>
  %w = galv.get_parameter @w : tensor<64x32xf32>
  %t = galv.transpose %w [1, 0] : tensor<64x32xf32> -> tensor<32x64xf32>
  %0 = galv.matmul %x, %t : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
  return %0 : tensor<2x8x64xf32>
}

// -----

galv.parameter @w : tensor<32x96xf32>
galv.parameter @b : tensor<96xf32>
// The Reshape -> Gemm -> Reshape form of GPT-2's Conv1D.
// CHECK-LABEL: func.func @flattened
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>)
func.func @flattened(%x: tensor<2x8x32xf32>) -> tensor<2x8x96xf32> {
  // CHECK-NOT: galv.reshape
  // CHECK: %[[Y:.*]] = galv.linear %[[X]], %{{.*}}, %{{.*}} layout = in_out : tensor<2x8x32xf32>, tensor<32x96xf32>, tensor<96xf32> -> tensor<2x8x96xf32>
  // CHECK-NEXT: return %[[Y]]
  %w = galv.get_parameter @w : tensor<32x96xf32>
  %b = galv.get_parameter @b : tensor<96xf32>
  %0 = galv.reshape %x : tensor<2x8x32xf32> -> tensor<16x32xf32>
  %1 = galv.linear %0, %w, %b layout = in_out : tensor<16x32xf32>, tensor<32x96xf32>, tensor<96xf32> -> tensor<16x96xf32>
  %2 = galv.reshape %1 : tensor<16x96xf32> -> tensor<2x8x96xf32>
  return %2 : tensor<2x8x96xf32>
}

// -----

galv.parameter @w : tensor<32x32xf32>
// Heads merged and rows flattened in one reshape: the merge stays.
// CHECK-LABEL: func.func @merge_heads
func.func @merge_heads(%x: tensor<2x8x4x8xf32>) -> tensor<2x8x32xf32> {
  // CHECK: %[[M:.*]] = galv.reshape %{{.*}} : tensor<2x8x4x8xf32> -> tensor<2x8x32xf32>
  // CHECK-NEXT: %[[Y:.*]] = galv.linear %[[M]], %{{.*}} layout = in_out : tensor<2x8x32xf32>, tensor<32x32xf32> -> tensor<2x8x32xf32>
  // CHECK-NEXT: return %[[Y]]
  %w = galv.get_parameter @w : tensor<32x32xf32>
  %0 = galv.reshape %x : tensor<2x8x4x8xf32> -> tensor<16x32xf32>
  %1 = galv.matmul %0, %w : tensor<16x32xf32>, tensor<32x32xf32> -> tensor<16x32xf32>
  %2 = galv.reshape %1 : tensor<16x32xf32> -> tensor<2x8x32xf32>
  return %2 : tensor<2x8x32xf32>
}

// -----

// Negative: an activation times an activation is attention, not a linear;
// an add of a non-parameter is a residual, not a bias.
// CHECK-LABEL: func.func @not_linear
func.func @not_linear(%x: tensor<2x8x32xf32>, %y: tensor<32x64xf32>, %r: tensor<64xf32>) -> tensor<2x8x64xf32> {
  // CHECK: galv.matmul
  // CHECK: galv.add
  // CHECK-NOT: galv.linear
  %0 = galv.matmul %x, %y : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
  %1 = galv.add %0, %r : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  return %1 : tensor<2x8x64xf32>
}

// -----

galv.parameter @w : tensor<64x32xf32>
// A linear whose weight is read through a transpose takes the other layout.
// CHECK-LABEL: func.func @flip_layout
func.func @flip_layout(%x: tensor<2x32xf32>) -> tensor<2x64xf32> {
  // CHECK: %[[W:.*]] = galv.get_parameter @w : tensor<64x32xf32>
  // CHECK-NEXT: galv.linear %{{.*}}, %[[W]] : tensor<2x32xf32>, tensor<64x32xf32> -> tensor<2x64xf32>
  %w = galv.get_parameter @w : tensor<64x32xf32>
  %t = galv.transpose %w [1, 0] : tensor<64x32xf32> -> tensor<32x64xf32>
  %0 = galv.linear %x, %t layout = in_out : tensor<2x32xf32>, tensor<32x64xf32> -> tensor<2x64xf32>
  return %0 : tensor<2x64xf32>
}
