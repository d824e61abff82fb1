// RUN: galvatron-opt %s --canonicalize --galv-recompose-attention --canonicalize --split-input-file | FileCheck %s

// GPT-2 (TorchScript): k^T straight from [B, S, H, D], scores scaled by a
// multiply, a constant causal mask added.
// CHECK-LABEL: func.func @causal
// CHECK-SAME: (%[[Q:.*]]: tensor<2x2x4x8xf32>, %[[K:.*]]: tensor<2x4x2x8xf32>, %[[V:.*]]: tensor<2x2x4x8xf32>)
func.func @causal(%q: tensor<2x2x4x8xf32>, %k: tensor<2x4x2x8xf32>, %v: tensor<2x2x4x8xf32>) -> tensor<2x2x4x8xf32> {
  // CHECK: %[[KH:.*]] = galv.transpose %[[K]] [0, 2, 1, 3] : tensor<2x4x2x8xf32> -> tensor<2x2x4x8xf32>
  // CHECK: %[[O:.*]] = galv.attention %[[Q]], %[[KH]], %[[V]] causal scale = 0.35355338454246521 : tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32> -> tensor<2x2x4x8xf32>
  // CHECK-NEXT: return %[[O]]
  %scale = galv.constant dense<0.353553385> : tensor<f32>
  %m0 = galv.constant dense<[0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, 0.0, -3.40282347E+38, 0.0, 0.0, 0.0, 0.0]> : tensor<16xf32>
  %mask = galv.reshape %m0 : tensor<16xf32> -> tensor<1x1x4x4xf32>
  %kt = galv.transpose %k [0, 2, 3, 1] : tensor<2x4x2x8xf32> -> tensor<2x2x8x4xf32>
  %0 = galv.matmul %q, %kt : tensor<2x2x4x8xf32>, tensor<2x2x8x4xf32> -> tensor<2x2x4x4xf32>
  %1 = galv.mul %0, %scale : tensor<2x2x4x4xf32>, tensor<f32> -> tensor<2x2x4x4xf32>
  %2 = galv.add %1, %mask : tensor<2x2x4x4xf32>, tensor<1x1x4x4xf32> -> tensor<2x2x4x4xf32>
  %3 = galv.softmax %2 axis = -1 : tensor<2x2x4x4xf32>
  %4 = galv.matmul %3, %v : tensor<2x2x4x4xf32>, tensor<2x2x4x8xf32> -> tensor<2x2x4x8xf32>
  return %4 : tensor<2x2x4x8xf32>
}

// -----

// LLaMA: grouped keys and values repeated by reshape/expand/reshape, scores
// divided by sqrt(d), no mask.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x4x8xf32>, %[[K:.*]]: tensor<1x2x4x8xf32>, %[[V:.*]]: tensor<1x2x4x8xf32>)
func.func @grouped(%q: tensor<1x4x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x4x4x8xf32> {
  // CHECK: %[[O:.*]] = galv.attention %[[Q]], %[[K]], %[[V]] scale = 0.35355339664408242 : tensor<1x4x4x8xf32>, tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32> -> tensor<1x4x4x8xf32>
  // CHECK-NEXT: return %[[O]]
  %d = galv.constant dense<2.82842712> : tensor<f32>
  %k0 = galv.reshape %k : tensor<1x2x4x8xf32> -> tensor<1x2x1x4x8xf32>
  %k1 = galv.expand %k0 : tensor<1x2x1x4x8xf32> -> tensor<1x2x2x4x8xf32>
  %k2 = galv.reshape %k1 : tensor<1x2x2x4x8xf32> -> tensor<1x4x4x8xf32>
  %v0 = galv.reshape %v : tensor<1x2x4x8xf32> -> tensor<1x2x1x4x8xf32>
  %v1 = galv.expand %v0 : tensor<1x2x1x4x8xf32> -> tensor<1x2x2x4x8xf32>
  %v2 = galv.reshape %v1 : tensor<1x2x2x4x8xf32> -> tensor<1x4x4x8xf32>
  %kt = galv.transpose %k2 [0, 1, 3, 2] : tensor<1x4x4x8xf32> -> tensor<1x4x8x4xf32>
  %0 = galv.matmul %q, %kt : tensor<1x4x4x8xf32>, tensor<1x4x8x4xf32> -> tensor<1x4x4x4xf32>
  %1 = galv.div %0, %d : tensor<1x4x4x4xf32>, tensor<f32> -> tensor<1x4x4x4xf32>
  %2 = galv.softmax %1 axis = 3 : tensor<1x4x4x4xf32>
  %3 = galv.matmul %2, %v2 : tensor<1x4x4x4xf32>, tensor<1x4x4x8xf32> -> tensor<1x4x4x8xf32>
  return %3 : tensor<1x4x4x8xf32>
}

// -----

// BERT: a padding mask computed from an input stays an operand.
// CHECK-LABEL: func.func @padding_mask
func.func @padding_mask(%q: tensor<2x2x4x8xf32>, %m: tensor<2x1x1x4xf32>) -> tensor<2x2x4x8xf32> {
  // CHECK: galv.attention %{{.*}}, %{{.*}}, %{{.*}} mask %{{.*}} scale = 1.000000e+00 : tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, tensor<2x2x4x8xf32>, tensor<2x1x1x4xf32> -> tensor<2x2x4x8xf32>
  %kt = galv.transpose %q [0, 1, 3, 2] : tensor<2x2x4x8xf32> -> tensor<2x2x8x4xf32>
  %0 = galv.matmul %q, %kt : tensor<2x2x4x8xf32>, tensor<2x2x8x4xf32> -> tensor<2x2x4x4xf32>
  %1 = galv.add %m, %0 : tensor<2x1x1x4xf32>, tensor<2x2x4x4xf32> -> tensor<2x2x4x4xf32>
  %2 = galv.softmax %1 axis = -1 : tensor<2x2x4x4xf32>
  %3 = galv.matmul %2, %q : tensor<2x2x4x4xf32>, tensor<2x2x4x8xf32> -> tensor<2x2x4x8xf32>
  return %3 : tensor<2x2x4x8xf32>
}

// -----

// Negative: softmax over the wrong axis is not attention.
// CHECK-LABEL: func.func @not_attention
func.func @not_attention(%q: tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32> {
  // CHECK-NOT: galv.attention
  %kt = galv.transpose %q [0, 1, 3, 2] : tensor<1x2x4x8xf32> -> tensor<1x2x8x4xf32>
  %0 = galv.matmul %q, %kt : tensor<1x2x4x8xf32>, tensor<1x2x8x4xf32> -> tensor<1x2x4x4xf32>
  %1 = galv.softmax %0 axis = 2 : tensor<1x2x4x4xf32>
  %2 = galv.matmul %1, %q : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x4x8xf32>
  return %2 : tensor<1x2x4x8xf32>
}

// -----

// T5's decoder: a position bias and a causal mask both added to the scores;
// the causal one becomes the flag, the bias the mask.
// CHECK-LABEL: func.func @bias_and_causal
// CHECK-SAME: (%[[Q:.*]]: tensor<2x2x4x8xf32>, %[[B:.*]]: tensor<1x2x4x4xf32>)
func.func @bias_and_causal(%q: tensor<2x2x4x8xf32>, %bias: tensor<1x2x4x4xf32>) -> tensor<2x2x4x8xf32> {
  // CHECK: galv.attention %[[Q]], %[[Q]], %[[Q]] mask %[[B]] causal scale = 1.000000e+00
  %m0 = galv.constant dense<[0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, 0.0, 0.0, 0.0, -3.40282347E+38, 0.0, 0.0, 0.0, 0.0]> : tensor<16xf32>
  %mask = galv.reshape %m0 : tensor<16xf32> -> tensor<1x1x4x4xf32>
  %kt = galv.transpose %q [0, 1, 3, 2] : tensor<2x2x4x8xf32> -> tensor<2x2x8x4xf32>
  %0 = galv.matmul %q, %kt : tensor<2x2x4x8xf32>, tensor<2x2x8x4xf32> -> tensor<2x2x4x4xf32>
  %1 = galv.add %0, %bias : tensor<2x2x4x4xf32>, tensor<1x2x4x4xf32> -> tensor<2x2x4x4xf32>
  %2 = galv.add %1, %mask : tensor<2x2x4x4xf32>, tensor<1x1x4x4xf32> -> tensor<2x2x4x4xf32>
  %3 = galv.softmax %2 axis = -1 : tensor<2x2x4x4xf32>
  %4 = galv.matmul %3, %q : tensor<2x2x4x4xf32>, tensor<2x2x4x8xf32> -> tensor<2x2x4x8xf32>
  return %4 : tensor<2x2x4x8xf32>
}

// -----

// PyTorch's multi-head attention scales q and k^T by the root of the scale
// each (0.7071 * 0.7071 = 1 / sqrt(4)).
// CHECK-LABEL: func.func @scale_split_over_q_and_k
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x8x4xf32>, %[[K:.*]]: tensor<2x4x8x4xf32>, %[[V:.*]]: tensor<2x4x8x4xf32>)
// CHECK: %[[O:.*]] = galv.attention %[[Q]], %[[K]], %[[V]] scale = 0.49999998{{[0-9]*}} : tensor<2x4x8x4xf32>, tensor<2x4x8x4xf32>, tensor<2x4x8x4xf32> -> tensor<2x4x8x4xf32>
// CHECK-NEXT: return %[[O]]
func.func @scale_split_over_q_and_k(%q: tensor<2x4x8x4xf32>, %k: tensor<2x4x8x4xf32>, %v: tensor<2x4x8x4xf32>) -> tensor<2x4x8x4xf32> {
  %s = galv.constant dense<0.707106769> : tensor<1xf32>
  %kt = galv.transpose %k [0, 1, 3, 2] : tensor<2x4x8x4xf32> -> tensor<2x4x4x8xf32>
  %qs = galv.mul %q, %s : tensor<2x4x8x4xf32>, tensor<1xf32> -> tensor<2x4x8x4xf32>
  %ks = galv.mul %kt, %s : tensor<2x4x4x8xf32>, tensor<1xf32> -> tensor<2x4x4x8xf32>
  %0 = galv.matmul %qs, %ks : tensor<2x4x8x4xf32>, tensor<2x4x4x8xf32> -> tensor<2x4x8x8xf32>
  %1 = galv.softmax %0 axis = -1 : tensor<2x4x8x8xf32>
  %2 = galv.matmul %1, %v : tensor<2x4x8x8xf32>, tensor<2x4x8x4xf32> -> tensor<2x4x8x4xf32>
  return %2 : tensor<2x4x8x4xf32>
}
