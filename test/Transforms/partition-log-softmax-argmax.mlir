// galv.log_softmax and galv.argmax under tensor and data parallelism: both
// need their axis whole, so a column-parallel result is gathered first; the
// argmax of a batch-split value stays batch-split. log_softmax's adjoint is
// g - exp(y) * sum(g); argmax (an integer index) has none.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=4 tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=4 tp=2" --galv-inline-layers --galv-append-loss --galv-partition --galv-autodiff | FileCheck %s --check-prefix=GRAD

// CHECK-LABEL: func.func @loss
// CHECK: %[[N:.*]] = galv.linear {{.*}} -> tensor<2x8x8xf32>
// CHECK: %[[W:.*]] = galv.all_gather %[[N]] axis = 2 group = <size = 2, stride = 1> {{.*}}: tensor<2x8x8xf32> -> tensor<2x8x16xf32>
// CHECK: galv.log_softmax %[[W]] axis = -1 {{.*}}: tensor<2x8x16xf32>
// CHECK: galv.argmax %{{.*}} axis = -1 {{.*}}: tensor<1x8x16xf32> -> tensor<1x8xi64>

// GRAD-LABEL: func.func @loss_grad
// GRAD: %[[Y:.*]] = galv.log_softmax
// GRAD: %[[E:.*]] = galv.exp %[[Y]]
// GRAD: galv.mul %[[E]], %{{.*}} : tensor<2x8x16xf32>, tensor<2x8x1xf32>
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @fc.weight : tensor<16x16xf32> trainable
  galv.parameter @fc2.weight : tensor<16x16xf32> trainable
  galv.layer_type @block(%x: tensor<4x8x16xf32>, %w: tensor<16x16xf32>) -> tensor<4x8x16xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["fc.weight"]} {
    %n = galv.linear %x, %w : tensor<4x8x16xf32>, tensor<16x16xf32> -> tensor<4x8x16xf32>
    %l = galv.log_softmax %n axis = -1 : tensor<4x8x16xf32>
    %z = galv.add %x, %l : tensor<4x8x16xf32>, tensor<4x8x16xf32> -> tensor<4x8x16xf32>
    galv.return %z : tensor<4x8x16xf32>
  }
  func.func @forward(%ids: tensor<4x8xi64>) -> tensor<4x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %h = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<4x8xi64> -> tensor<4x8x16xf32>
    %w = galv.get_parameter @fc.weight : tensor<16x16xf32>
    %h1 = galv.layer @block(%h) params(%w) : (tensor<4x8x16xf32>, tensor<16x16xf32>) -> tensor<4x8x16xf32>
    %w2 = galv.get_parameter @fc2.weight : tensor<16x16xf32>
    %h2 = galv.layer @block(%h1) params(%w2) : (tensor<4x8x16xf32>, tensor<16x16xf32>) -> tensor<4x8x16xf32>
    %a = galv.argmax %h2 axis = -1 : tensor<4x8x16xf32> -> tensor<4x8xi64>
    %e = galv.embedding %wte[%a] : tensor<32x16xf32>, tensor<4x8xi64> -> tensor<4x8x16xf32>
    %s = galv.add %h2, %e : tensor<4x8x16xf32>, tensor<4x8x16xf32> -> tensor<4x8x16xf32>
    %logits = galv.linear %s, %wte : tensor<4x8x16xf32>, tensor<32x16xf32> -> tensor<4x8x32xf32>
    return %logits : tensor<4x8x32xf32>
  }
}
