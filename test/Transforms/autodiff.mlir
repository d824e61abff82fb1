// RUN: galvatron-opt %s --galv-append-loss --galv-autodiff --split-input-file --verify-diagnostics | FileCheck %s

// The loss is next-token cross-entropy over @forward's logits; @loss_grad
// returns it and one gradient per trainable parameter, in declaration order,
// named by galv.grad_of. A frozen parameter gets no gradient.
// CHECK-LABEL: func.func @loss(
// CHECK-SAME: -> tensor<f32>
// CHECK: %[[SHIFTED:.*]] = galv.slice %{{.*}} [0, 1] [2, 4] [1, 1]
// CHECK: %[[IGNORED:.*]] = galv.constant dense<-100> : tensor<2x1xi64>
// CHECK: %[[LABELS:.*]] = galv.concat %[[SHIFTED]], %[[IGNORED]] axis = 1
// CHECK: galv.cross_entropy %{{.*}}, %[[LABELS]] : tensor<2x4x8xf32>, tensor<2x4xi64>
// CHECK-LABEL: func.func @loss_grad(
// CHECK-SAME: -> (tensor<f32>, tensor<8x4xf32> {galv.grad_of = "emb"}, tensor<8xf32> {galv.grad_of = "bias"})
galv.parameter @emb : tensor<8x4xf32> trainable
galv.parameter @frozen : tensor<8x4xf32>
galv.parameter @bias : tensor<8xf32> trainable
func.func @forward(%ids: tensor<2x4xi64>) -> tensor<2x4x8xf32> {
  %e = galv.get_parameter @emb : tensor<8x4xf32>
  %f = galv.get_parameter @frozen : tensor<8x4xf32>
  %b = galv.get_parameter @bias : tensor<8xf32>
  %h = galv.embedding %e[%ids] : tensor<8x4xf32>, tensor<2x4xi64> -> tensor<2x4x4xf32>
  %l = galv.linear %h, %f, %b : tensor<2x4x4xf32>, tensor<8x4xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  return %l : tensor<2x4x8xf32>
}

// -----

galv.parameter @w : tensor<8x4xf32> trainable
galv.parameter @head : tensor<2x8xf32> trainable
func.func @forward(%ids: tensor<2x4xi64>) -> tensor<2x4x8xf32> {
  %w = galv.get_parameter @w : tensor<8x4xf32>
  %hw = galv.get_parameter @head : tensor<2x8xf32>
  %h = galv.embedding %w[%ids] : tensor<8x4xf32>, tensor<2x4xi64> -> tensor<2x4x4xf32>
  // expected-error @below {{no gradient for 'galv.slice': only unit steps}}
  %s = galv.slice %h [0, 0, 0] [2, 4, 4] [1, 1, 2] : tensor<2x4x4xf32> -> tensor<2x4x2xf32>
  %l = galv.linear %s, %hw layout = in_out : tensor<2x4x2xf32>, tensor<2x8xf32> -> tensor<2x4x8xf32>
  return %l : tensor<2x4x8xf32>
}

// -----

// expected-error @below {{galv-append-loss wants @forward(ids [B, S] of integers, ...) -> logits [B, S, V] with S >= 2}}
func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  return %x : tensor<2x4xf32>
}

// -----

// torch.nn.Embedding's padding_idx reaches the table's gradient: the padding
// row stays zero (the tied head still gives it one through the linear).
// CHECK-LABEL: func.func @loss_grad(
// CHECK: galv.embedding_grad %{{.*}}[%{{.*}}] rows = 8 padding_idx = 1 {{.*}}: tensor<2x4x4xf32>, tensor<2x4xi64> -> tensor<8x4xf32>
galv.parameter @tied : tensor<8x4xf32> trainable
func.func @forward(%ids: tensor<2x4xi64>) -> tensor<2x4x8xf32> {
  %e = galv.get_parameter @tied : tensor<8x4xf32>
  %h = galv.embedding %e[%ids] padding_idx = 1 : tensor<8x4xf32>, tensor<2x4xi64> -> tensor<2x4x4xf32>
  %l = galv.linear %h, %e : tensor<2x4x4xf32>, tensor<8x4xf32> -> tensor<2x4x8xf32>
  return %l : tensor<2x4x8xf32>
}
