// Megatron-SP on layers that run on [sequence, batch, features] (PyTorch's
// nn.TransformerEncoder without batch_first): the sequence is the first
// dimension that is not the batch, so the column-parallel linear gathers
// dimension 0 and the row-parallel one reduce-scatters it; the block around
// them keeps its [batch, sequence] split of dimension 1.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=2 tp=2 sp=megatron" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s
// CHECK-LABEL: func.func @loss
// CHECK: galv.layer_norm %{{.*}} : tensor<2x4x16xf32>
// CHECK: %[[T:.*]] = galv.transpose %{{.*}} [1, 0, 2] {{.*}} : tensor<2x4x16xf32> -> tensor<4x2x16xf32>
// CHECK: %[[G:.*]] = galv.all_gather %[[T]] axis = 0 group = <size = 2, stride = 1> scatter_grad {{.*}} -> tensor<8x2x16xf32>
// CHECK: galv.linear %[[G]], %{{.*}} -> tensor<8x2x16xf32>
// CHECK: %[[P:.*]] = galv.linear %{{.*}} : tensor<8x2x16xf32>, tensor<16x16xf32> -> tensor<8x2x16xf32>
// CHECK: %[[R:.*]] = galv.reduce_scatter %[[P]] axis = 0 {{.*}} -> tensor<4x2x16xf32>
// CHECK: galv.transpose %{{.*}} [1, 0, 2] {{.*}} : tensor<4x2x16xf32> -> tensor<2x4x16xf32>
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @ln.weight : tensor<16xf32> trainable
  galv.parameter @fc1.weight : tensor<32x16xf32> trainable
  galv.parameter @fc2.weight : tensor<16x32xf32> trainable
  galv.layer_type @block(%x: tensor<2x8x16xf32>, %g: tensor<16xf32>, %w1: tensor<32x16xf32>, %w2: tensor<16x32xf32>) -> tensor<2x8x16xf32>
      attributes {kind = #galv.layer_kind<encoder>, param_names = ["ln.weight", "fc1.weight", "fc2.weight"]} {
    %n = galv.layer_norm %x, %g eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>
    %t = galv.transpose %n [1, 0, 2] : tensor<2x8x16xf32> -> tensor<8x2x16xf32>
    %h = galv.linear %t, %w1 : tensor<8x2x16xf32>, tensor<32x16xf32> -> tensor<8x2x32xf32>
    %r = galv.relu %h : tensor<8x2x32xf32>
    %y = galv.linear %r, %w2 : tensor<8x2x32xf32>, tensor<16x32xf32> -> tensor<8x2x16xf32>
    %b = galv.transpose %y [1, 0, 2] : tensor<8x2x16xf32> -> tensor<2x8x16xf32>
    %z = galv.add %x, %b : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    galv.return %z : tensor<2x8x16xf32>
  }
  func.func @forward(%ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %h = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<2x8xi64> -> tensor<2x8x16xf32>
    %g = galv.get_parameter @ln.weight : tensor<16xf32>
    %w1 = galv.get_parameter @fc1.weight : tensor<32x16xf32>
    %w2 = galv.get_parameter @fc2.weight : tensor<16x32xf32>
    %h1 = galv.layer @block(%h) params(%g, %w1, %w2) : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<32x16xf32>, tensor<16x32xf32>) -> tensor<2x8x16xf32>
    %logits = galv.linear %h1, %wte : tensor<2x8x16xf32>, tensor<32x16xf32> -> tensor<2x8x32xf32>
    return %logits : tensor<2x8x32xf32>
  }
}
