// A fused projection taken apart into parts of unequal sizes whose query
// part (three heads of three features) does not split over two ranks is
// refused at the projection.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=2 tp=2" --galv-inline-layers --galv-append-loss --galv-partition -verify-diagnostics
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @qkv.weight : tensor<15x16xf32> trainable
  galv.parameter @dense.weight : tensor<16x9xf32> trainable
  galv.layer_type @block(%x: tensor<2x8x16xf32>, %w: tensor<15x16xf32>, %wo: tensor<16x9xf32>) -> tensor<2x8x16xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["qkv.weight", "dense.weight"]} {
    // expected-error @+1 {{galv-partition: a part of 9 output features of this fused projection does not split over tp = 2}}
    %y = galv.linear %x, %w : tensor<2x8x16xf32>, tensor<15x16xf32> -> tensor<2x8x15xf32>
    %q0 = galv.slice %y [0, 0, 0] [2, 8, 9] [1, 1, 1] : tensor<2x8x15xf32> -> tensor<2x8x9xf32>
    %q1 = galv.reshape %q0 : tensor<2x8x9xf32> -> tensor<2x8x3x3xf32>
    %q = galv.transpose %q1 [0, 2, 1, 3] : tensor<2x8x3x3xf32> -> tensor<2x3x8x3xf32>
    %k0 = galv.slice %y [0, 0, 9] [2, 8, 12] [1, 1, 1] : tensor<2x8x15xf32> -> tensor<2x8x3xf32>
    %k1 = galv.reshape %k0 : tensor<2x8x3xf32> -> tensor<2x8x1x3xf32>
    %k = galv.transpose %k1 [0, 2, 1, 3] : tensor<2x8x1x3xf32> -> tensor<2x1x8x3xf32>
    %v0 = galv.slice %y [0, 0, 12] [2, 8, 15] [1, 1, 1] : tensor<2x8x15xf32> -> tensor<2x8x3xf32>
    %v1 = galv.reshape %v0 : tensor<2x8x3xf32> -> tensor<2x8x1x3xf32>
    %v = galv.transpose %v1 [0, 2, 1, 3] : tensor<2x8x1x3xf32> -> tensor<2x1x8x3xf32>
    %a = galv.attention %q, %k, %v causal scale = 0.5 : tensor<2x3x8x3xf32>, tensor<2x1x8x3xf32>, tensor<2x1x8x3xf32> -> tensor<2x3x8x3xf32>
    %o0 = galv.transpose %a [0, 2, 1, 3] : tensor<2x3x8x3xf32> -> tensor<2x8x3x3xf32>
    %o1 = galv.reshape %o0 : tensor<2x8x3x3xf32> -> tensor<2x8x9xf32>
    %o = galv.linear %o1, %wo : tensor<2x8x9xf32>, tensor<16x9xf32> -> tensor<2x8x16xf32>
    %z = galv.add %x, %o : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    galv.return %z : tensor<2x8x16xf32>
  }
  func.func @forward(%ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %h = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<2x8xi64> -> tensor<2x8x16xf32>
    %w = galv.get_parameter @qkv.weight : tensor<15x16xf32>
    %wo = galv.get_parameter @dense.weight : tensor<16x9xf32>
    %h1 = galv.layer @block(%h) params(%w, %wo) : (tensor<2x8x16xf32>, tensor<15x16xf32>, tensor<16x9xf32>) -> tensor<2x8x16xf32>
    %logits = galv.linear %h1, %wte : tensor<2x8x16xf32>, tensor<32x16xf32> -> tensor<2x8x32xf32>
    return %logits : tensor<2x8x32xf32>
  }
}
