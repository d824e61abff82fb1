// RUN: galvatron-opt %s --galv-recompose-embedding --split-input-file | FileCheck %s

galv.parameter @wte : tensor<128x32xf32>
// CHECK-LABEL: func.func @lookup
func.func @lookup(%ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
  // CHECK: galv.embedding %{{.*}}[%{{.*}}] : tensor<128x32xf32>, tensor<2x8xi64> -> tensor<2x8x32xf32>
  %w = galv.get_parameter @wte : tensor<128x32xf32>
  %0 = galv.gather %w[%ids] axis = 0 : tensor<128x32xf32>, tensor<2x8xi64> -> tensor<2x8x32xf32>
  return %0 : tensor<2x8x32xf32>
}

// -----

galv.parameter @wte : tensor<128x32xf32>
// Negative: gathering along axis 1, or from an activation, is not a lookup.
// CHECK-LABEL: func.func @not_lookup
func.func @not_lookup(%ids: tensor<2xi64>, %a: tensor<4x32xf32>) -> (tensor<128x2xf32>, tensor<2x32xf32>) {
  // CHECK-NOT: galv.embedding
  // CHECK-COUNT-2: galv.gather
  %w = galv.get_parameter @wte : tensor<128x32xf32>
  %0 = galv.gather %w[%ids] axis = 1 : tensor<128x32xf32>, tensor<2xi64> -> tensor<128x2xf32>
  %1 = galv.gather %a[%ids] axis = 0 : tensor<4x32xf32>, tensor<2xi64> -> tensor<2x32xf32>
  return %0, %1 : tensor<128x2xf32>, tensor<2x32xf32>
}
