// RUN: galvatron-opt %s --galv-autocast | FileCheck %s

// A block as PyTorch's autocast runs it: the norm in fp32, the linears and
// attention on bf16 operands (the weights converted where they are read),
// the GELU between two linears in bf16, the residual add in fp32 (the wider
// operand), the additive mask kept fp32, the loss in fp32. The signature
// stays: the logits leave as f32.
// CHECK-LABEL: func.func @block(
// CHECK-SAME: -> (tensor<2x8x16xf32>, tensor<f32>)
func.func @block(%x: tensor<2x8x16xf32>, %g: tensor<16xf32>,
                 %w1: tensor<32x16xf32>, %b1: tensor<32xf32>,
                 %w2: tensor<16x32xf32>, %mask: tensor<2x1x8x8xf32>,
                 %labels: tensor<2x8xi64>) -> (tensor<2x8x16xf32>, tensor<f32>) {
  // CHECK: %[[N:.*]] = galv.layer_norm %arg0, %arg1 eps = {{.*}} : tensor<2x8x16xf32>, tensor<16xf32>
  %n = galv.layer_norm %x, %g eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>
  // CHECK-DAG: %[[NB:.*]] = galv.cast %[[N]] : tensor<2x8x16xf32> -> tensor<2x8x16xbf16>
  // CHECK-DAG: %[[W1:.*]] = galv.cast %arg2 : tensor<32x16xf32> -> tensor<32x16xbf16>
  // CHECK-DAG: %[[B1:.*]] = galv.cast %arg3 : tensor<32xf32> -> tensor<32xbf16>
  // CHECK: %[[H:.*]] = galv.linear %[[NB]], %[[W1]], %[[B1]] : tensor<2x8x16xbf16>, tensor<32x16xbf16>, tensor<32xbf16> -> tensor<2x8x32xbf16>
  %h = galv.linear %n, %w1, %b1 : tensor<2x8x16xf32>, tensor<32x16xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
  // CHECK: %[[A:.*]] = galv.gelu %[[H]] approximate = tanh : tensor<2x8x32xbf16>
  %a = galv.gelu %h approximate = tanh : tensor<2x8x32xf32>
  // CHECK: %[[W2:.*]] = galv.cast %arg4 : tensor<16x32xf32> -> tensor<16x32xbf16>
  // CHECK: %[[O:.*]] = galv.linear %[[A]], %[[W2]] : tensor<2x8x32xbf16>, tensor<16x32xbf16> -> tensor<2x8x16xbf16>
  %o = galv.linear %a, %w2 : tensor<2x8x32xf32>, tensor<16x32xf32> -> tensor<2x8x16xf32>
  // CHECK: %[[OF:.*]] = galv.cast %[[O]] : tensor<2x8x16xbf16> -> tensor<2x8x16xf32>
  // CHECK: %[[R:.*]] = galv.add %arg0, %[[OF]] : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  %r = galv.add %x, %o : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  // CHECK: %[[Q:.*]] = galv.reshape %[[O]] : tensor<2x8x16xbf16> -> tensor<2x8x2x8xbf16>
  %q = galv.reshape %o : tensor<2x8x16xf32> -> tensor<2x8x2x8xf32>
  // CHECK: %[[QT:.*]] = galv.transpose %[[Q]] [0, 2, 1, 3] : tensor<2x8x2x8xbf16> -> tensor<2x2x8x8xbf16>
  %qt = galv.transpose %q [0, 2, 1, 3] : tensor<2x8x2x8xf32> -> tensor<2x2x8x8xf32>
  // CHECK: galv.attention %[[QT]], %[[QT]], %[[QT]] mask %arg5 scale = {{.*}} : tensor<2x2x8x8xbf16>, tensor<2x2x8x8xbf16>, tensor<2x2x8x8xbf16>, tensor<2x1x8x8xf32> -> tensor<2x2x8x8xbf16>
  %att = galv.attention %qt, %qt, %qt mask %mask scale = 0.25 : tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>, tensor<2x1x8x8xf32> -> tensor<2x2x8x8xf32>
  // CHECK: %[[AF:.*]] = galv.cast %{{.*}} : tensor<2x2x8x8xbf16> -> tensor<2x2x8x8xf32>
  // CHECK: galv.softmax %[[AF]] axis = 3 : tensor<2x2x8x8xf32>
  %p = galv.softmax %att axis = 3 : tensor<2x2x8x8xf32>
  // CHECK: %[[LF:.*]] = galv.cast %[[O]] : tensor<2x8x16xbf16> -> tensor<2x8x16xf32>
  // CHECK: galv.cross_entropy %[[LF]], %arg6 {{.*}}: tensor<2x8x16xf32>, tensor<2x8xi64> -> tensor<f32>
  %loss = galv.cross_entropy %o, %labels : tensor<2x8x16xf32>, tensor<2x8xi64> -> tensor<f32>
  // CHECK: %[[RET:.*]] = galv.cast %[[O]] : tensor<2x8x16xbf16> -> tensor<2x8x16xf32>
  // CHECK: return %[[RET]], %{{.*}} : tensor<2x8x16xf32>, tensor<f32>
  return %o, %loss : tensor<2x8x16xf32>, tensor<f32>
}

// Integer and boolean values keep their types; an op with only f32
// operands stays f32.
// CHECK-LABEL: func.func @untouched(
// CHECK: galv.embedding %arg0[%arg1] : tensor<8x4xf32>, tensor<2xi64> -> tensor<2x4xf32>
// CHECK-NOT: galv.cast
func.func @untouched(%table: tensor<8x4xf32>, %ids: tensor<2xi64>) -> tensor<2x4xf32> {
  %e = galv.embedding %table[%ids] : tensor<8x4xf32>, tensor<2xi64> -> tensor<2x4xf32>
  return %e : tensor<2x4xf32>
}

// Megatron's f before two column-parallel linears: its input is narrowed
// once and one bf16 replicate feeds both, so that its gradient all-reduce
// moves bf16.
// CHECK-LABEL: func.func @replicated(
// CHECK-NOT: galv.replicate %arg0
// CHECK: %[[N:.*]] = galv.cast %arg0 : tensor<2x8x16xf32> -> tensor<2x8x16xbf16>
// CHECK: %[[R:.*]] = galv.replicate %[[N]] group = <size = 2, stride = 1> : tensor<2x8x16xbf16>
// CHECK: galv.linear %[[R]], %{{.*}} : tensor<2x8x16xbf16>, tensor<8x16xbf16> -> tensor<2x8x8xbf16>
// CHECK-NOT: galv.replicate
// CHECK: galv.linear %[[R]], %{{.*}} : tensor<2x8x16xbf16>, tensor<8x16xbf16> -> tensor<2x8x8xbf16>
// CHECK-NOT: galv.replicate
func.func @replicated(%x: tensor<2x8x16xf32>, %w1: tensor<8x16xf32>, %w2: tensor<8x16xf32>) -> (tensor<2x8x8xf32>, tensor<2x8x8xf32>) {
  %r = galv.replicate %x group = <size = 2, stride = 1> : tensor<2x8x16xf32>
  %a = galv.linear %r, %w1 : tensor<2x8x16xf32>, tensor<8x16xf32> -> tensor<2x8x8xf32>
  %b = galv.linear %r, %w2 : tensor<2x8x16xf32>, tensor<8x16xf32> -> tensor<2x8x8xf32>
  return %a, %b : tensor<2x8x8xf32>, tensor<2x8x8xf32>
}
