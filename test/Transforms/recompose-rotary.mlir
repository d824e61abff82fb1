// RUN: galvatron-opt %s --galv-recompose-rotary --split-input-file | FileCheck %s

// Hugging Face LLaMA: q * cos + rotate_half(q) * sin.
// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x8x8xf32>, %[[C:.*]]: tensor<1x1x8x8xf32>, %[[S:.*]]: tensor<1x1x8x8xf32>)
func.func @rope(%q: tensor<2x4x8x8xf32>, %cos: tensor<1x1x8x8xf32>, %sin: tensor<1x1x8x8xf32>) -> tensor<2x4x8x8xf32> {
  // CHECK: %[[R:.*]] = galv.rotary %[[Q]], %[[C]], %[[S]] : tensor<2x4x8x8xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>
  // CHECK-NEXT: return %[[R]]
  %0 = galv.mul %q, %cos : tensor<2x4x8x8xf32>, tensor<1x1x8x8xf32> -> tensor<2x4x8x8xf32>
  %1 = galv.slice %q [0, 0, 0, 0] [2, 4, 8, 4] [1, 1, 1, 1] : tensor<2x4x8x8xf32> -> tensor<2x4x8x4xf32>
  %2 = galv.slice %q [0, 0, 0, 4] [2, 4, 8, 8] [1, 1, 1, 1] : tensor<2x4x8x8xf32> -> tensor<2x4x8x4xf32>
  %3 = galv.neg %2 : tensor<2x4x8x4xf32>
  %4 = galv.concat %3, %1 axis = -1 : tensor<2x4x8x4xf32>, tensor<2x4x8x4xf32> -> tensor<2x4x8x8xf32>
  %5 = galv.mul %4, %sin : tensor<2x4x8x8xf32>, tensor<1x1x8x8xf32> -> tensor<2x4x8x8xf32>
  %6 = galv.add %0, %5 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32> -> tensor<2x4x8x8xf32>
  return %6 : tensor<2x4x8x8xf32>
}

// -----

// Negative: the halves swapped the wrong way round (no negation of the
// second half) is not rotate_half.
// CHECK-LABEL: func.func @not_rope
func.func @not_rope(%q: tensor<2x4x8x8xf32>, %cos: tensor<1x1x8x8xf32>, %sin: tensor<1x1x8x8xf32>) -> tensor<2x4x8x8xf32> {
  // CHECK-NOT: galv.rotary
  %0 = galv.mul %q, %cos : tensor<2x4x8x8xf32>, tensor<1x1x8x8xf32> -> tensor<2x4x8x8xf32>
  %1 = galv.slice %q [0, 0, 0, 0] [2, 4, 8, 4] [1, 1, 1, 1] : tensor<2x4x8x8xf32> -> tensor<2x4x8x4xf32>
  %2 = galv.slice %q [0, 0, 0, 4] [2, 4, 8, 8] [1, 1, 1, 1] : tensor<2x4x8x8xf32> -> tensor<2x4x8x4xf32>
  %3 = galv.neg %1 : tensor<2x4x8x4xf32>
  %4 = galv.concat %2, %3 axis = 3 : tensor<2x4x8x4xf32>, tensor<2x4x8x4xf32> -> tensor<2x4x8x8xf32>
  %5 = galv.mul %4, %sin : tensor<2x4x8x8xf32>, tensor<1x1x8x8xf32> -> tensor<2x4x8x8xf32>
  %6 = galv.add %0, %5 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32> -> tensor<2x4x8x8xf32>
  return %6 : tensor<2x4x8x8xf32>
}
