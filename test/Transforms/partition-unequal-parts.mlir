// A fused projection taken apart into parts of unequal sizes (Falcon's
// multi-query query_key_value: four query heads, then one key and one value
// head, after galv-normalize-views). Every rank holds the whole weight,
// whose gradient is summed over the group (galv.replicate), and computes
// each part apart: its rows of the query part (column-parallel), the key
// and value heads whole.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=2 tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s
// Under Megatron-SP the sequence is gathered first, whose reduce-scattered
// gradient sums the input's: no replicate of the input.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=2 tp=2 sp=megatron" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=SP
// CHECK-LABEL: func.func @loss
// CHECK: %[[W:.*]] = galv.get_parameter @qkv.weight : tensor<24x16xf32>
// CHECK: %[[WR:.*]] = galv.replicate %[[W]] group = <size = 2, stride = 1>
// CHECK: %[[XR:.*]] = galv.replicate %[[X:.*]] group = <size = 2, stride = 1>
// CHECK: %[[WQ:.*]] = galv.slice %[[WR]] [0, 0] [16, 16] [1, 1]
// CHECK: %[[WQL:.*]] = galv.shard_slice %[[WQ]] axis = 0 group = <size = 2, stride = 1>{{.*}} -> tensor<8x16xf32>
// CHECK: %[[Q:.*]] = galv.linear %[[XR]], %[[WQL]] {{.*}} -> tensor<2x8x8xf32>
// CHECK: %[[WK:.*]] = galv.slice %[[WR]] [16, 0] [20, 16] [1, 1]
// CHECK: %[[K:.*]] = galv.linear %[[XR]], %[[WK]] {{.*}} -> tensor<2x8x4xf32>
// CHECK: %[[WV:.*]] = galv.slice %[[WR]] [20, 0] [24, 16] [1, 1]
// CHECK: %[[V:.*]] = galv.linear %[[XR]], %[[WV]] {{.*}} -> tensor<2x8x4xf32>
// CHECK: galv.slice %[[Q]] [0, 0, 0] [2, 8, 8] [1, 1, 1]
// CHECK: galv.slice %[[K]] [0, 0, 0] [2, 8, 4] [1, 1, 1]
// CHECK: galv.slice %[[V]] [0, 0, 0] [2, 8, 4] [1, 1, 1]
// CHECK: galv.attention {{.*}} : tensor<2x2x8x4xf32>, tensor<2x1x8x4xf32>, tensor<2x1x8x4xf32> -> tensor<2x2x8x4xf32>
// CHECK: galv.all_reduce sum

// SP-LABEL: func.func @loss
// SP: %[[X:.*]] = galv.all_gather %{{.*}} axis = 1 group = <size = 2, stride = 1> scatter_grad
// SP-NOT: galv.replicate %[[X]]
// SP: galv.replicate %{{.*}} group = <size = 2, stride = 1> {{.*}} : tensor<24x16xf32>
// SP-NOT: galv.replicate %[[X]]
// SP: galv.linear %[[X]], %{{.*}} -> tensor<2x8x8xf32>
// SP: galv.linear %[[X]], %{{.*}} -> tensor<2x8x4xf32>
// SP: galv.linear %[[X]], %{{.*}} -> tensor<2x8x4xf32>
// SP: galv.reduce_scatter

module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @qkv.weight : tensor<24x16xf32> trainable
  galv.parameter @dense.weight : tensor<16x16xf32> trainable
  galv.layer_type @block(%x: tensor<2x8x16xf32>, %w: tensor<24x16xf32>, %wo: tensor<16x16xf32>) -> tensor<2x8x16xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["qkv.weight", "dense.weight"]} {
    %y = galv.linear %x, %w : tensor<2x8x16xf32>, tensor<24x16xf32> -> tensor<2x8x24xf32>
    %q0 = galv.slice %y [0, 0, 0] [2, 8, 16] [1, 1, 1] : tensor<2x8x24xf32> -> tensor<2x8x16xf32>
    %q1 = galv.reshape %q0 : tensor<2x8x16xf32> -> tensor<2x8x4x4xf32>
    %q = galv.transpose %q1 [0, 2, 1, 3] : tensor<2x8x4x4xf32> -> tensor<2x4x8x4xf32>
    %k0 = galv.slice %y [0, 0, 16] [2, 8, 20] [1, 1, 1] : tensor<2x8x24xf32> -> tensor<2x8x4xf32>
    %k1 = galv.reshape %k0 : tensor<2x8x4xf32> -> tensor<2x8x1x4xf32>
    %k = galv.transpose %k1 [0, 2, 1, 3] : tensor<2x8x1x4xf32> -> tensor<2x1x8x4xf32>
    %v0 = galv.slice %y [0, 0, 20] [2, 8, 24] [1, 1, 1] : tensor<2x8x24xf32> -> tensor<2x8x4xf32>
    %v1 = galv.reshape %v0 : tensor<2x8x4xf32> -> tensor<2x8x1x4xf32>
    %v = galv.transpose %v1 [0, 2, 1, 3] : tensor<2x8x1x4xf32> -> tensor<2x1x8x4xf32>
    %a = galv.attention %q, %k, %v causal scale = 0.5 : tensor<2x4x8x4xf32>, tensor<2x1x8x4xf32>, tensor<2x1x8x4xf32> -> tensor<2x4x8x4xf32>
    %o0 = galv.transpose %a [0, 2, 1, 3] : tensor<2x4x8x4xf32> -> tensor<2x8x4x4xf32>
    %o1 = galv.reshape %o0 : tensor<2x8x4x4xf32> -> tensor<2x8x16xf32>
    %o = galv.linear %o1, %wo : tensor<2x8x16xf32>, tensor<16x16xf32> -> tensor<2x8x16xf32>
    %z = galv.add %x, %o : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    galv.return %z : tensor<2x8x16xf32>
  }
  func.func @forward(%ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %h = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<2x8xi64> -> tensor<2x8x16xf32>
    %w = galv.get_parameter @qkv.weight : tensor<24x16xf32>
    %wo = galv.get_parameter @dense.weight : tensor<16x16xf32>
    %h1 = galv.layer @block(%h) params(%w, %wo) : (tensor<2x8x16xf32>, tensor<24x16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
    %logits = galv.linear %h1, %wte : tensor<2x8x16xf32>, tensor<32x16xf32> -> tensor<2x8x32xf32>
    return %logits : tensor<2x8x32xf32>
  }
}
