// A trainable parameter that spans the batch (the dynamo exporter folds the
// position-embedding lookup at constant ids into a [B, S, E] initializer)
// meets the data split over the data-parallel group: it stays whole on
// every rank, each rank takes its rows, and the averaged gradient
// synchronisation gives every row its own gradient. Cutting it over that
// group instead would average different rows' gradients.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=2 tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s
// CHECK-LABEL: func.func @loss
// CHECK: %[[P:.*]] = galv.get_parameter @pos {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>} : tensor<2x8x16xf32>
// CHECK: %[[S:.*]] = galv.shard_slice %[[P]] axis = 0 group = <size = 2, stride = 1> : tensor<2x8x16xf32> -> tensor<1x8x16xf32>
// CHECK: galv.add %{{.*}}, %[[S]] : tensor<1x8x16xf32>, tensor<1x8x16xf32> -> tensor<1x8x16xf32>
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @pos : tensor<2x8x16xf32> trainable
  galv.parameter @fc.weight : tensor<16x16xf32> trainable
  galv.layer_type @block(%x: tensor<2x8x16xf32>, %w: tensor<16x16xf32>) -> tensor<2x8x16xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["fc.weight"]} {
    %y = galv.linear %x, %w : tensor<2x8x16xf32>, tensor<16x16xf32> -> tensor<2x8x16xf32>
    %z = galv.add %x, %y : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    galv.return %z : tensor<2x8x16xf32>
  }
  func.func @forward(%ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %e = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<2x8xi64> -> tensor<2x8x16xf32>
    %pos = galv.get_parameter @pos : tensor<2x8x16xf32>
    %h = galv.add %e, %pos : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    %w = galv.get_parameter @fc.weight : tensor<16x16xf32>
    %h1 = galv.layer @block(%h) params(%w) : (tensor<2x8x16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
    %logits = galv.linear %h1, %wte : tensor<2x8x16xf32>, tensor<32x16xf32> -> tensor<2x8x32xf32>
    return %logits : tensor<2x8x32xf32>
  }
}
