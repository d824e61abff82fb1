// RUN: galvatron-opt %s --galv-recompose-norms --split-input-file | FileCheck %s

galv.parameter @g : tensor<32xf32>
// LLaMA's RMSNorm as the TorchScript exporter writes it (1 / sqrt).
// CHECK-LABEL: func.func @rms_div
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>)
func.func @rms_div(%x: tensor<2x8x32xf32>) -> tensor<2x8x32xf32> {
  // CHECK: %[[G:.*]] = galv.get_parameter @g
  // CHECK: %[[N:.*]] = galv.rms_norm %[[X]], %[[G]] eps = 9.9999999747524271E-7 : tensor<2x8x32xf32>, tensor<32xf32>
  // CHECK-NEXT: return %[[N]]
  %two = galv.constant dense<2.000000e+00> : tensor<f32>
  %eps = galv.constant dense<9.99999997E-7> : tensor<f32>
  %one = galv.constant dense<1.000000e+00> : tensor<f32>
  %g = galv.get_parameter @g : tensor<32xf32>
  %0 = galv.pow %x, %two : tensor<2x8x32xf32>, tensor<f32> -> tensor<2x8x32xf32>
  %1 = galv.reduce mean %0 axes = [2] keepdims : tensor<2x8x32xf32> -> tensor<2x8x1xf32>
  %2 = galv.add %1, %eps : tensor<2x8x1xf32>, tensor<f32> -> tensor<2x8x1xf32>
  %3 = galv.sqrt %2 : tensor<2x8x1xf32>
  %4 = galv.div %one, %3 : tensor<f32>, tensor<2x8x1xf32> -> tensor<2x8x1xf32>
  %5 = galv.mul %x, %4 : tensor<2x8x32xf32>, tensor<2x8x1xf32> -> tensor<2x8x32xf32>
  %6 = galv.mul %g, %5 : tensor<32xf32>, tensor<2x8x32xf32> -> tensor<2x8x32xf32>
  return %6 : tensor<2x8x32xf32>
}

// -----

// The dynamo exporter's form (Reciprocal) and rsqrt, without a weight.
// CHECK-LABEL: func.func @rms_reciprocal_rsqrt
func.func @rms_reciprocal_rsqrt(%x: tensor<4x16xf32>) -> (tensor<4x16xf32>, tensor<4x16xf32>) {
  // CHECK: %[[ONES:.*]] = galv.constant dense<1.000000e+00> : tensor<16xf32>
  // CHECK: galv.rms_norm %{{.*}}, %[[ONES]] eps = 9.9999997473787516E-6
  // CHECK: galv.rms_norm %{{.*}}, %{{.*}} eps = 9.9999997473787516E-6
  // CHECK-NOT: galv.sqrt
  %eps = galv.constant dense<1.000000e-05> : tensor<f32>
  %0 = galv.mul %x, %x : tensor<4x16xf32>, tensor<4x16xf32> -> tensor<4x16xf32>
  %1 = galv.reduce mean %0 axes = [1] keepdims : tensor<4x16xf32> -> tensor<4x1xf32>
  %2 = galv.add %1, %eps : tensor<4x1xf32>, tensor<f32> -> tensor<4x1xf32>
  %3 = galv.sqrt %2 : tensor<4x1xf32>
  %4 = galv.reciprocal %3 : tensor<4x1xf32>
  %5 = galv.mul %4, %x : tensor<4x1xf32>, tensor<4x16xf32> -> tensor<4x16xf32>
  %6 = galv.rsqrt %2 : tensor<4x1xf32>
  %7 = galv.mul %x, %6 : tensor<4x16xf32>, tensor<4x1xf32> -> tensor<4x16xf32>
  return %5, %7 : tensor<4x16xf32>, tensor<4x16xf32>
}

// -----

galv.parameter @w : tensor<32xf32>
galv.parameter @b : tensor<32xf32>
// Layer norm decomposed (opset < 17 exports).
// CHECK-LABEL: func.func @layer_norm
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>)
func.func @layer_norm(%x: tensor<2x8x32xf32>) -> tensor<2x8x32xf32> {
  // CHECK-DAG: %[[W:.*]] = galv.get_parameter @w
  // CHECK-DAG: %[[B:.*]] = galv.get_parameter @b
  // CHECK: %[[N:.*]] = galv.layer_norm %[[X]], %[[W]], %[[B]] eps = 9.9999997473787516E-6 : tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>
  // CHECK-NEXT: return %[[N]]
  %two = galv.constant dense<2.000000e+00> : tensor<f32>
  %eps = galv.constant dense<1.000000e-05> : tensor<f32>
  %w = galv.get_parameter @w : tensor<32xf32>
  %b = galv.get_parameter @b : tensor<32xf32>
  %0 = galv.reduce mean %x axes = [2] keepdims : tensor<2x8x32xf32> -> tensor<2x8x1xf32>
  %1 = galv.sub %x, %0 : tensor<2x8x32xf32>, tensor<2x8x1xf32> -> tensor<2x8x32xf32>
  %2 = galv.pow %1, %two : tensor<2x8x32xf32>, tensor<f32> -> tensor<2x8x32xf32>
  %3 = galv.reduce mean %2 axes = [2] keepdims : tensor<2x8x32xf32> -> tensor<2x8x1xf32>
  %4 = galv.add %3, %eps : tensor<2x8x1xf32>, tensor<f32> -> tensor<2x8x1xf32>
  %5 = galv.sqrt %4 : tensor<2x8x1xf32>
  %6 = galv.div %1, %5 : tensor<2x8x32xf32>, tensor<2x8x1xf32> -> tensor<2x8x32xf32>
  %7 = galv.mul %6, %w : tensor<2x8x32xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
  %8 = galv.add %7, %b : tensor<2x8x32xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
  return %8 : tensor<2x8x32xf32>
}

// -----

// Negative: a mean over the wrong axis, and a square of another value.
// CHECK-LABEL: func.func @not_norms
func.func @not_norms(%x: tensor<4x16xf32>, %y: tensor<4x16xf32>) -> (tensor<4x16xf32>, tensor<4x16xf32>) {
  // CHECK-NOT: galv.rms_norm
  // CHECK-NOT: galv.layer_norm
  %eps = galv.constant dense<1.000000e-05> : tensor<f32>
  %0 = galv.mul %x, %x : tensor<4x16xf32>, tensor<4x16xf32> -> tensor<4x16xf32>
  %1 = galv.reduce mean %0 axes = [0] keepdims : tensor<4x16xf32> -> tensor<1x16xf32>
  %2 = galv.add %1, %eps : tensor<1x16xf32>, tensor<f32> -> tensor<1x16xf32>
  %3 = galv.rsqrt %2 : tensor<1x16xf32>
  %4 = galv.mul %x, %3 : tensor<4x16xf32>, tensor<1x16xf32> -> tensor<4x16xf32>
  %5 = galv.mul %y, %y : tensor<4x16xf32>, tensor<4x16xf32> -> tensor<4x16xf32>
  %6 = galv.reduce mean %5 axes = [1] keepdims : tensor<4x16xf32> -> tensor<4x1xf32>
  %7 = galv.add %6, %eps : tensor<4x1xf32>, tensor<f32> -> tensor<4x1xf32>
  %8 = galv.rsqrt %7 : tensor<4x1xf32>
  %9 = galv.mul %x, %8 : tensor<4x16xf32>, tensor<4x1xf32> -> tensor<4x16xf32>
  return %4, %9 : tensor<4x16xf32>, tensor<4x16xf32>
}
