// A weight read by ops of different data-parallel groups (exporters share
// identical initial tensors, here one norm scale for the layer and the
// final norm): each use sums its own gradient over its own group, and
// galv-sync-gradients has nothing left to synchronise.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=4 tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s
// With pipeline stages the shared weight reaches the second stage by a
// transfer, and the replicate sits on the reading stage, after it (layer 0
// has no data parallelism, so its read needs none).
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=4 pp=2 tp=2,1" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=PP
// PP-LABEL: func.func @loss
// PP: %[[G:.*]] = galv.get_parameter @ln.weight {galv.stage = 0 : i64}
// PP: galv.layer_norm %{{.*}}, %[[G]] eps
// PP: %[[T:.*]] = galv.stage_transfer %[[G]] from = 0 to = 1
// PP: %[[R:.*]] = galv.replicate %[[T]] group = <size = 2, stride = 1> {{{.*}}galv.stage = 1 : i64
// PP: galv.layer_norm %{{.*}}, %[[R]] eps
// PP: %[[F:.*]] = galv.replicate %[[T]] group = <size = 2, stride = 1> {galv.stage = 1 : i64}
// PP: galv.layer_norm %{{.*}}, %[[F]] eps = 1.000000e-05 {galv.stage = 1 : i64}

// Megatron-SP layers sum the norm scale's gradient over their (strided)
// tensor-parallel group and their data-parallel group; the final norm,
// data parallel over another group, gets its own replicate: sharing one
// would sum its gradient over both.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=4 tp=2 sp=megatron vocab-tp=2 tp-consec=0" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=SP
// SP-LABEL: func.func @loss
// SP: %[[G:.*]] = galv.get_parameter @ln.weight : tensor<16xf32>
// SP: %[[D:.*]] = galv.replicate %[[G]] group = <size = 2, stride = 1>
// SP: %[[T:.*]] = galv.replicate %[[D]] group = <size = 2, stride = 2>
// SP: galv.layer_norm %{{.*}}, %[[T]]
// SP: galv.layer_norm %{{.*}}, %[[T]]
// SP: %[[H:.*]] = galv.replicate %[[G]] group = <size = 2, stride = 2> :
// SP: galv.layer_norm %{{.*}}, %[[H]]

// A frozen norm scale has no gradient to sum: it is read as it is.
// RUN: sed -e 's/@ln.weight : tensor<16xf32> trainable$/@ln.weight : tensor<16xf32>/' %s | galvatron-opt --galv-apply-strategy="world-size=4 tp=2 sp=megatron vocab-tp=2 tp-consec=0" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=FROZEN
// FROZEN-LABEL: func.func @loss
// FROZEN: %[[G:.*]] = galv.get_parameter @ln.weight : tensor<16xf32>
// FROZEN-NOT: galv.replicate %[[G]]
// FROZEN: galv.layer_norm %{{.*}}, %[[G]]
// FROZEN-NOT: galv.replicate %[[G]]
// FROZEN: galv.layer_norm %{{.*}}, %[[G]]

// CHECK-LABEL: func.func @loss
// CHECK-NOT: @ln.weight {galv.grad_sync
// CHECK: %[[G:.*]] = galv.get_parameter @ln.weight : tensor<16xf32>
// CHECK: %[[L:.*]] = galv.replicate %[[G]] group = <size = 2, stride = 2> {galv.layer = 0
// CHECK: galv.layer_norm %{{.*}}, %[[L]]
// CHECK: %[[H:.*]] = galv.replicate %[[G]] group = <size = 4, stride = 1> :
// CHECK: galv.layer_norm %{{.*}}, %[[H]]
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @ln.weight : tensor<16xf32> trainable
  galv.parameter @fc.weight : tensor<16x16xf32> trainable
  galv.parameter @fc2.weight : tensor<16x16xf32> trainable
  galv.layer_type @block(%x: tensor<4x8x16xf32>, %g: tensor<16xf32>, %w: tensor<16x16xf32>) -> tensor<4x8x16xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["ln.weight", "fc.weight"]} {
    %n = galv.layer_norm %x, %g eps = 1.0e-05 : tensor<4x8x16xf32>, tensor<16xf32>
    %y = galv.linear %n, %w : tensor<4x8x16xf32>, tensor<16x16xf32> -> tensor<4x8x16xf32>
    %z = galv.add %x, %y : tensor<4x8x16xf32>, tensor<4x8x16xf32> -> tensor<4x8x16xf32>
    galv.return %z : tensor<4x8x16xf32>
  }
  func.func @forward(%ids: tensor<4x8xi64>) -> tensor<4x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %h = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<4x8xi64> -> tensor<4x8x16xf32>
    %g = galv.get_parameter @ln.weight : tensor<16xf32>
    %w = galv.get_parameter @fc.weight : tensor<16x16xf32>
    %h1 = galv.layer @block(%h) params(%g, %w) : (tensor<4x8x16xf32>, tensor<16xf32>, tensor<16x16xf32>) -> tensor<4x8x16xf32>
    %w2 = galv.get_parameter @fc2.weight : tensor<16x16xf32>
    %h2 = galv.layer @block(%h1) params(%g, %w2) : (tensor<4x8x16xf32>, tensor<16xf32>, tensor<16x16xf32>) -> tensor<4x8x16xf32>
    %n = galv.layer_norm %h2, %g eps = 1.0e-05 : tensor<4x8x16xf32>, tensor<16xf32>
    %logits = galv.linear %n, %wte : tensor<4x8x16xf32>, tensor<32x16xf32> -> tensor<4x8x32xf32>
    return %logits : tensor<4x8x32xf32>
  }
}
