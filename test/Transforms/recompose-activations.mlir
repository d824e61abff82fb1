// RUN: galvatron-opt %s --galv-recompose-activations --split-input-file | FileCheck %s

// GPT-2's gelu_new as the TorchScript exporter writes it.
// CHECK-LABEL: func.func @gelu_tanh
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>)
func.func @gelu_tanh(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // CHECK: %[[G:.*]] = galv.gelu %[[X]] approximate = tanh : tensor<2x8xf32>
  // CHECK-NEXT: return %[[G]]
  %half = galv.constant dense<5.000000e-01> : tensor<f32>
  %three = galv.constant dense<3.000000e+00> : tensor<f32>
  %c = galv.constant dense<4.471500e-02> : tensor<f32>
  %s = galv.constant dense<0.797884583> : tensor<f32>
  %one = galv.constant dense<1.000000e+00> : tensor<f32>
  %0 = galv.mul %x, %half : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  %1 = galv.pow %x, %three : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  %2 = galv.mul %1, %c : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  %3 = galv.add %x, %2 : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x8xf32>
  %4 = galv.mul %3, %s : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  %5 = galv.tanh %4 : tensor<2x8xf32>
  %6 = galv.add %5, %one : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  %7 = galv.mul %0, %6 : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x8xf32>
  return %7 : tensor<2x8xf32>
}

// -----

// BERT's erf GELU, factors in another order, x^3 as x*x*x.
// CHECK-LABEL: func.func @gelu_erf
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>)
func.func @gelu_erf(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // CHECK: %[[G:.*]] = galv.gelu %[[X]] : tensor<2x8xf32>
  // CHECK-NEXT: return %[[G]]
  %sqrt2 = galv.constant dense<1.41421354> : tensor<f32>
  %one = galv.constant dense<1.000000e+00> : tensor<f32>
  %half = galv.constant dense<5.000000e-01> : tensor<f32>
  %0 = galv.div %x, %sqrt2 : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  %1 = galv.erf %0 : tensor<2x8xf32>
  %2 = galv.add %one, %1 : tensor<f32>, tensor<2x8xf32> -> tensor<2x8xf32>
  %3 = galv.mul %x, %2 : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x8xf32>
  %4 = galv.mul %3, %half : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
  return %4 : tensor<2x8xf32>
}

// -----

// CHECK-LABEL: func.func @gelu_tanh_cube_as_products
// CHECK: galv.gelu %{{.*}} approximate = tanh
func.func @gelu_tanh_cube_as_products(%x: tensor<4xf32>) -> tensor<4xf32> {
  %half = galv.constant dense<5.000000e-01> : tensor<f32>
  %c = galv.constant dense<4.471500e-02> : tensor<f32>
  %s = galv.constant dense<0.797884583> : tensor<f32>
  %one = galv.constant dense<1.000000e+00> : tensor<f32>
  %x2 = galv.mul %x, %x : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %x3 = galv.mul %x2, %x : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %1 = galv.mul %c, %x3 : tensor<f32>, tensor<4xf32> -> tensor<4xf32>
  %2 = galv.add %1, %x : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %3 = galv.mul %s, %2 : tensor<f32>, tensor<4xf32> -> tensor<4xf32>
  %4 = galv.tanh %3 : tensor<4xf32>
  %5 = galv.add %4, %one : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
  %6 = galv.mul %5, %half : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
  %7 = galv.mul %6, %x : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  return %7 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @silu
// CHECK-SAME: (%[[X:.*]]: tensor<2x8xf32>)
func.func @silu(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // CHECK: %[[S:.*]] = galv.silu %[[X]] : tensor<2x8xf32>
  // CHECK-NEXT: return %[[S]]
  %0 = galv.sigmoid %x : tensor<2x8xf32>
  %1 = galv.mul %0, %x : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x8xf32>
  return %1 : tensor<2x8xf32>
}

// -----

// Negative: wrong constants, and a sigmoid of another value.
// CHECK-LABEL: func.func @not_activations
func.func @not_activations(%x: tensor<4xf32>, %y: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  // CHECK-NOT: galv.gelu
  // CHECK-NOT: galv.silu
  %sqrt3 = galv.constant dense<1.7320508> : tensor<f32>
  %one = galv.constant dense<1.000000e+00> : tensor<f32>
  %half = galv.constant dense<5.000000e-01> : tensor<f32>
  %0 = galv.div %x, %sqrt3 : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
  %1 = galv.erf %0 : tensor<4xf32>
  %2 = galv.add %one, %1 : tensor<f32>, tensor<4xf32> -> tensor<4xf32>
  %3 = galv.mul %x, %2 : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %4 = galv.mul %3, %half : tensor<4xf32>, tensor<f32> -> tensor<4xf32>
  %5 = galv.sigmoid %y : tensor<4xf32>
  %6 = galv.mul %x, %5 : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  return %4, %6 : tensor<4xf32>, tensor<4xf32>
}
