// RUN: galvatron-opt %s --galv-append-loss --galv-autodiff | FileCheck %s
// RUN: galvatron-opt %s --galv-append-loss '--galv-autodiff=fused-backward=false' | FileCheck %s --check-prefix=CHAIN

// By default the loss and each norm get one fused gradient op, reading the
// forward's inputs; the scales' and the bias's gradients are its results.
// CHECK-LABEL: func.func @loss_grad(
// CHECK: galv.linear
// CHECK: %[[LOSS:.*]] = galv.cross_entropy %{{.*}}, %[[LABELS:.*]] :
// CHECK-NOT: galv.{{softmax|rsqrt}}
// CHECK: galv.cross_entropy_grad %{{.*}}: tensor<2x4x8xf32>, tensor<2x4xi64>, tensor<f32>
// CHECK-NOT: galv.{{softmax|rsqrt}}
// CHECK: %[[DX:[^,]*]], %[[DG:[^ ]*]] = galv.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} eps = 9.9999999999999995E-7 {{.*}}: tensor<2x4x4xf32>, tensor<4xf32>
// CHECK: %{{[^,]*}}, %[[DLG:[^,]*]], %[[DLB:[^ ]*]] = galv.layer_norm_grad %{{.*}}, %{{.*}}, %[[DX]] eps = 1.000000e-05 {{.*}}: tensor<2x4x4xf32>, tensor<4xf32>
// CHECK: return %[[LOSS]], %{{.*}}, %[[DLG]], %[[DLB]], %[[DG]], %{{.*}} :

// fused-backward=false: the decomposed chains (softmax of the logits, the
// norms' statistics recomputed with reductions).
// CHAIN-LABEL: func.func @loss_grad(
// CHAIN-NOT: galv.{{(cross_entropy|layer_norm|rms_norm)}}_grad
// CHAIN: galv.softmax
// CHAIN: galv.rsqrt
// CHAIN: galv.rsqrt
// CHAIN-NOT: galv.{{(cross_entropy|layer_norm|rms_norm)}}_grad
// CHAIN: return
galv.parameter @emb : tensor<8x4xf32> trainable
galv.parameter @ln_g : tensor<4xf32> trainable
galv.parameter @ln_b : tensor<4xf32> trainable
galv.parameter @rms_g : tensor<4xf32> trainable
galv.parameter @head : tensor<8x4xf32> trainable
func.func @forward(%ids: tensor<2x4xi64>) -> tensor<2x4x8xf32> {
  %e = galv.get_parameter @emb : tensor<8x4xf32>
  %g = galv.get_parameter @ln_g : tensor<4xf32>
  %b = galv.get_parameter @ln_b : tensor<4xf32>
  %r = galv.get_parameter @rms_g : tensor<4xf32>
  %w = galv.get_parameter @head : tensor<8x4xf32>
  %h = galv.embedding %e[%ids] : tensor<8x4xf32>, tensor<2x4xi64> -> tensor<2x4x4xf32>
  %n = galv.layer_norm %h, %g, %b eps = 1.0e-05 : tensor<2x4x4xf32>, tensor<4xf32>, tensor<4xf32>
  %m = galv.rms_norm %n, %r eps = 1.0e-06 : tensor<2x4x4xf32>, tensor<4xf32>
  %l = galv.linear %m, %w : tensor<2x4x4xf32>, tensor<8x4xf32> -> tensor<2x4x8xf32>
  return %l : tensor<2x4x8xf32>
}
