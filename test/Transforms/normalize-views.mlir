// RUN: galvatron-opt %s --galv-normalize-views --canonicalize --split-input-file | FileCheck %s
// RUN: galvatron-opt %s --galv-normalize-views --galv-recompose-attention --canonicalize --split-input-file | FileCheck %s --check-prefix=ATTN

// BLOOM: heads merged with the batch ([B * H, S, D]), the scores scaled,
// ALiBi ([B * H, 1, S]) and then a causal mask added. The merges sink to
// meet their inverses: the attention is 4-d, ALiBi a [B, H, 1, S] bias.
// CHECK-LABEL: func.func @heads_merged_with_batch
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x8x4xf32>, %[[K:.*]]: tensor<2x4x8x4xf32>, %[[V:.*]]: tensor<2x4x8x4xf32>)
// CHECK-NOT: tensor<8x{{[0-9]+}}x{{[0-9]+}}xf32>
// CHECK: %[[KT:.*]] = galv.transpose %[[K]] [0, 1, 3, 2] : tensor<2x4x8x4xf32> -> tensor<2x4x4x8xf32>
// CHECK: %[[S:.*]] = galv.matmul %[[Q]], %[[KT]] : tensor<2x4x8x4xf32>, tensor<2x4x4x8xf32> -> tensor<2x4x8x8xf32>
// CHECK: galv.add %{{.*}}, %{{.*}} : tensor<2x4x8x8xf32>, tensor<2x4x1x8xf32> -> tensor<2x4x8x8xf32>
// CHECK: %[[P:.*]] = galv.softmax %{{.*}} axis = -1 : tensor<2x4x8x8xf32>
// CHECK: %[[O:.*]] = galv.matmul %[[P]], %[[V]] : tensor<2x4x8x8xf32>, tensor<2x4x8x4xf32> -> tensor<2x4x8x4xf32>
// CHECK-NOT: tensor<8x{{[0-9]+}}x{{[0-9]+}}xf32>
// CHECK: return %[[O]]
// ATTN-LABEL: func.func @heads_merged_with_batch
// ATTN-SAME: (%[[Q:.*]]: tensor<2x4x8x4xf32>, %[[K:.*]]: tensor<2x4x8x4xf32>, %[[V:.*]]: tensor<2x4x8x4xf32>)
// ATTN: %[[B:.*]] = galv.constant dense<{{\[\[\[\[}}0.000000e+00, 2.500000e-01{{.*}}> : tensor<2x4x1x8xf32>
// ATTN: %[[O:.*]] = galv.attention %[[Q]], %[[K]], %[[V]] mask %[[B]] causal scale = 5.000000e-01 : tensor<2x4x8x4xf32>, tensor<2x4x8x4xf32>, tensor<2x4x8x4xf32>, tensor<2x4x1x8xf32> -> tensor<2x4x8x4xf32>
// ATTN-NEXT: return %[[O]]
func.func @heads_merged_with_batch(%q: tensor<2x4x8x4xf32>, %k: tensor<2x4x8x4xf32>, %v: tensor<2x4x8x4xf32>) -> tensor<2x4x8x4xf32> {
  %scale = galv.constant dense<5.000000e-01> : tensor<f32>
  %alibi = galv.constant dense<[[[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]], [[0.0, 0.0625, 0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375]], [[0.0, 0.015625, 0.03125, 0.046875, 0.0625, 0.078125, 0.09375, 0.109375]], [[0.0, 0.00390625, 0.0078125, 0.01171875, 0.015625, 0.01953125, 0.0234375, 0.02734375]], [[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]], [[0.0, 0.0625, 0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375]], [[0.0, 0.015625, 0.03125, 0.046875, 0.0625, 0.078125, 0.09375, 0.109375]], [[0.0, 0.00390625, 0.0078125, 0.01171875, 0.015625, 0.01953125, 0.0234375, 0.02734375]]]> : tensor<8x1x8xf32>
  %causal = galv.constant dense<[[0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -3.40282347E+38], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<8x8xf32>
  %q3 = galv.reshape %q : tensor<2x4x8x4xf32> -> tensor<8x8x4xf32>
  %k3 = galv.reshape %k : tensor<2x4x8x4xf32> -> tensor<8x8x4xf32>
  %kt = galv.transpose %k3 [0, 2, 1] : tensor<8x8x4xf32> -> tensor<8x4x8xf32>
  %v3 = galv.reshape %v : tensor<2x4x8x4xf32> -> tensor<8x8x4xf32>
  %0 = galv.matmul %q3, %kt : tensor<8x8x4xf32>, tensor<8x4x8xf32> -> tensor<8x8x8xf32>
  %1 = galv.mul %0, %scale : tensor<8x8x8xf32>, tensor<f32> -> tensor<8x8x8xf32>
  %2 = galv.add %1, %alibi : tensor<8x8x8xf32>, tensor<8x1x8xf32> -> tensor<8x8x8xf32>
  %3 = galv.reshape %2 : tensor<8x8x8xf32> -> tensor<2x4x8x8xf32>
  %4 = galv.add %3, %causal : tensor<2x4x8x8xf32>, tensor<8x8xf32> -> tensor<2x4x8x8xf32>
  %5 = galv.softmax %4 axis = -1 : tensor<2x4x8x8xf32>
  %6 = galv.reshape %5 : tensor<2x4x8x8xf32> -> tensor<8x8x8xf32>
  %7 = galv.matmul %6, %v3 : tensor<8x8x8xf32>, tensor<8x8x4xf32> -> tensor<8x8x4xf32>
  %8 = galv.reshape %7 : tensor<8x8x4xf32> -> tensor<2x4x8x4xf32>
  return %8 : tensor<2x4x8x4xf32>
}

// -----

// OPT flattens [B, S, E] to [B * S, E] around its feed-forward block: the
// block runs on [B, S, E] and no reshape is left.
// CHECK-LABEL: func.func @rows_flattened
// CHECK-NOT: galv.reshape
// CHECK: galv.layer_norm %{{.*}} : tensor<2x8x16xf32>
// CHECK: galv.linear %{{.*}} : tensor<2x8x16xf32>, tensor<32x16xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
// CHECK: galv.relu %{{.*}} : tensor<2x8x32xf32>
// CHECK: galv.linear %{{.*}} : tensor<2x8x32xf32>, tensor<16x32xf32> -> tensor<2x8x16xf32>
// CHECK: galv.add %{{.*}} : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
// CHECK-NOT: galv.reshape
func.func @rows_flattened(%x: tensor<2x8x16xf32>, %g: tensor<16xf32>, %b: tensor<16xf32>, %w1: tensor<32x16xf32>, %b1: tensor<32xf32>, %w2: tensor<16x32xf32>) -> tensor<2x8x16xf32> {
  %0 = galv.reshape %x : tensor<2x8x16xf32> -> tensor<16x16xf32>
  %1 = galv.layer_norm %0, %g, %b eps = 1.0e-05 : tensor<16x16xf32>, tensor<16xf32>, tensor<16xf32>
  %2 = galv.linear %1, %w1, %b1 : tensor<16x16xf32>, tensor<32x16xf32>, tensor<32xf32> -> tensor<16x32xf32>
  %3 = galv.relu %2 : tensor<16x32xf32>
  %4 = galv.linear %3, %w2 : tensor<16x32xf32>, tensor<16x32xf32> -> tensor<16x16xf32>
  %5 = galv.add %0, %4 : tensor<16x16xf32>, tensor<16x16xf32> -> tensor<16x16xf32>
  %6 = galv.reshape %5 : tensor<16x16xf32> -> tensor<2x8x16xf32>
  return %6 : tensor<2x8x16xf32>
}

// -----

// PyTorch's multi-head attention: [S, B, E] -> [S, B * H, D] -> [B * H, S, D]
// -> [B, H, S, D] becomes a split of E and one transpose.
// CHECK-LABEL: func.func @heads_merged_in_the_middle
// CHECK-NEXT: %[[R:.*]] = galv.reshape %{{.*}} : tensor<8x2x16xf32> -> tensor<8x2x4x4xf32>
// CHECK-NEXT: %[[T:.*]] = galv.transpose %[[R]] [1, 2, 0, 3] : tensor<8x2x4x4xf32> -> tensor<2x4x8x4xf32>
// CHECK-NEXT: return %[[T]]
func.func @heads_merged_in_the_middle(%x: tensor<8x2x16xf32>) -> tensor<2x4x8x4xf32> {
  %0 = galv.reshape %x : tensor<8x2x16xf32> -> tensor<8x8x4xf32>
  %1 = galv.transpose %0 [1, 0, 2] : tensor<8x8x4xf32> -> tensor<8x8x4xf32>
  %2 = galv.reshape %1 : tensor<8x8x4xf32> -> tensor<2x4x8x4xf32>
  return %2 : tensor<2x4x8x4xf32>
}

// -----

// Heads merged into the features before the output projection stay so:
// that is the form row-parallel linears take.
// CHECK-LABEL: func.func @features_merged
// CHECK: galv.reshape %{{.*}} : tensor<2x8x4x4xf32> -> tensor<2x8x16xf32>
// CHECK-NEXT: galv.linear
func.func @features_merged(%x: tensor<2x8x4x4xf32>, %w: tensor<16x16xf32>) -> tensor<2x8x16xf32> {
  %0 = galv.reshape %x : tensor<2x8x4x4xf32> -> tensor<2x8x16xf32>
  %1 = galv.linear %0, %w : tensor<2x8x16xf32>, tensor<16x16xf32> -> tensor<2x8x16xf32>
  return %1 : tensor<2x8x16xf32>
}

// -----

// Falcon (multi-query): the query heads sliced, the key and value heads
// gathered (directly, or after a transpose) out of [B, S, 6 heads, D]:
// parts [0, 16), [16, 20), [20, 24) of the projection, then viewed.
// CHECK-LABEL: func.func @multi_query_parts
// CHECK: %[[Y:.*]] = galv.linear
// CHECK-DAG: %[[Q:.*]] = galv.slice %[[Y]] [0, 0, 0] [2, 8, 16] [1, 1, 1]
// CHECK-DAG: %[[K:.*]] = galv.slice %[[Y]] [0, 0, 16] [2, 8, 20] [1, 1, 1]
// CHECK-DAG: %[[V:.*]] = galv.slice %[[Y]] [0, 0, 20] [2, 8, 24] [1, 1, 1]
// CHECK-DAG: galv.reshape %[[Q]] : tensor<2x8x16xf32> -> tensor<2x8x4x4xf32>
// CHECK-DAG: galv.reshape %[[K]] : tensor<2x8x4xf32> -> tensor<2x8x1x4xf32>
// CHECK-DAG: %[[VH:.*]] = galv.reshape %[[V]] : tensor<2x8x4xf32> -> tensor<2x8x1x4xf32>
// CHECK-DAG: galv.transpose %[[VH]] [2, 0, 1, 3] : tensor<2x8x1x4xf32> -> tensor<1x2x8x4xf32>
// CHECK-NOT: galv.gather
func.func @multi_query_parts(%x: tensor<2x8x16xf32>, %w: tensor<24x16xf32>) -> (tensor<2x8x4x4xf32>, tensor<2x8x1x4xf32>, tensor<1x2x8x4xf32>) {
  %y = galv.linear %x, %w : tensor<2x8x16xf32>, tensor<24x16xf32> -> tensor<2x8x24xf32>
  %h = galv.reshape %y : tensor<2x8x24xf32> -> tensor<2x8x6x4xf32>
  %q = galv.slice %h [0, 0, 0, 0] [2, 8, 4, 4] [1, 1, 1, 1] : tensor<2x8x6x4xf32> -> tensor<2x8x4x4xf32>
  %i = galv.constant dense<-2> : tensor<1xi64>
  %k = galv.gather %h[%i] axis = 2 : tensor<2x8x6x4xf32>, tensor<1xi64> -> tensor<2x8x1x4xf32>
  %t = galv.transpose %h [2, 0, 1, 3] : tensor<2x8x6x4xf32> -> tensor<6x2x8x4xf32>
  %j = galv.constant dense<5> : tensor<1xi64>
  %v = galv.gather %t[%j] axis = 0 : tensor<6x2x8x4xf32>, tensor<1xi64> -> tensor<1x2x8x4xf32>
  return %q, %k, %v : tensor<2x8x4x4xf32>, tensor<2x8x1x4xf32>, tensor<1x2x8x4xf32>
}

// -----

// PyTorch's packed in-projection: [S, B, 3 * E] viewed as [1, S, B, 3, E],
// the 3 moved to the front and each part gathered: three equal slices.
// CHECK-LABEL: func.func @packed_in_projection
// CHECK: %[[Y:.*]] = galv.linear
// CHECK-DAG: galv.slice %[[Y]] [0, 0, 0] [8, 2, 16] [1, 1, 1]
// CHECK-DAG: galv.slice %[[Y]] [0, 0, 16] [8, 2, 32] [1, 1, 1]
// CHECK-DAG: galv.slice %[[Y]] [0, 0, 32] [8, 2, 48] [1, 1, 1]
// CHECK-NOT: galv.gather
func.func @packed_in_projection(%x: tensor<8x2x16xf32>, %w: tensor<48x16xf32>) -> (tensor<8x2x16xf32>, tensor<8x2x16xf32>, tensor<8x2x16xf32>) {
  %y = galv.linear %x, %w : tensor<8x2x16xf32>, tensor<48x16xf32> -> tensor<8x2x48xf32>
  %0 = galv.reshape %y : tensor<8x2x48xf32> -> tensor<1x8x2x3x16xf32>
  %1 = galv.transpose %0 [3, 1, 2, 0, 4] : tensor<1x8x2x3x16xf32> -> tensor<3x8x2x1x16xf32>
  %2 = galv.reshape %1 : tensor<3x8x2x1x16xf32> -> tensor<3x8x2x16xf32>
  %c0 = galv.constant dense<0> : tensor<i64>
  %c1 = galv.constant dense<1> : tensor<i64>
  %c2 = galv.constant dense<2> : tensor<i64>
  %q = galv.gather %2[%c0] axis = 0 : tensor<3x8x2x16xf32>, tensor<i64> -> tensor<8x2x16xf32>
  %k = galv.gather %2[%c1] axis = 0 : tensor<3x8x2x16xf32>, tensor<i64> -> tensor<8x2x16xf32>
  %v = galv.gather %2[%c2] axis = 0 : tensor<3x8x2x16xf32>, tensor<i64> -> tensor<8x2x16xf32>
  return %q, %k, %v : tensor<8x2x16xf32>, tensor<8x2x16xf32>, tensor<8x2x16xf32>
}

// -----

// GPT-NeoX interleaves q, k and v per head ([B, S, H, 3 * D]): a slice of
// the last dimension is no contiguous part of the projection, and stays.
// CHECK-LABEL: func.func @interleaved_parts
// CHECK: %[[H:.*]] = galv.reshape
// CHECK-NEXT: galv.slice %[[H]] [0, 0, 0, 0] [2, 8, 4, 4] [1, 1, 1, 1]
func.func @interleaved_parts(%x: tensor<2x8x16xf32>, %w: tensor<48x16xf32>) -> tensor<2x8x4x4xf32> {
  %y = galv.linear %x, %w : tensor<2x8x16xf32>, tensor<48x16xf32> -> tensor<2x8x48xf32>
  %h = galv.reshape %y : tensor<2x8x48xf32> -> tensor<2x8x4x12xf32>
  %q = galv.slice %h [0, 0, 0, 0] [2, 8, 4, 4] [1, 1, 1, 1] : tensor<2x8x4x12xf32> -> tensor<2x8x4x4xf32>
  return %q : tensor<2x8x4x4xf32>
}
