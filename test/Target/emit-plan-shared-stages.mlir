// One weight read on three pipeline stages (exporters share identical
// initial tensors): each stage's gradient of it comes back to the owning
// stage by its own transfer, summed over the micro-batches first, and the
// plan lowers for every rank.
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=3 pp=3 chunks=2 pipeline=pipedream_flush" --galv-training-pipeline | FileCheck %s
// RUN: galvatron-opt %s --galv-apply-strategy="world-size=3 pp=3 chunks=2 pipeline=pipedream_flush" --galv-training-pipeline | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s --check-prefix=PLAN

// CHECK-LABEL: func.func @train_step
// CHECK-DAG: galv.stage_transfer %{{.*}} from = 1 to = 0 : tensor<16xf32>
// CHECK-DAG: galv.stage_transfer %{{.*}} from = 2 to = 0 : tensor<16xf32>
// PLAN: world size 3
// PLAN: rank 0:
// PLAN: rank 1:
// PLAN: rank 2:
module attributes {galv.weights = "w.safetensors"} {
  galv.parameter @wte : tensor<32x16xf32> trainable
  galv.parameter @ln.weight : tensor<16xf32> trainable
  galv.parameter @fc.0.weight : tensor<16x16xf32> trainable
  galv.parameter @fc.1.weight : tensor<16x16xf32> trainable
  galv.parameter @fc.2.weight : tensor<16x16xf32> trainable
  galv.layer_type @block(%x: tensor<2x8x16xf32>, %g: tensor<16xf32>, %w: tensor<16x16xf32>) -> tensor<2x8x16xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["ln.weight", "fc.weight"]} {
    %n = galv.layer_norm %x, %g eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>
    %y = galv.linear %n, %w : tensor<2x8x16xf32>, tensor<16x16xf32> -> tensor<2x8x16xf32>
    %z = galv.add %x, %y : tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
    galv.return %z : tensor<2x8x16xf32>
  }
  func.func @forward(%ids: tensor<2x8xi64>) -> tensor<2x8x32xf32> {
    %wte = galv.get_parameter @wte : tensor<32x16xf32>
    %h = galv.embedding %wte[%ids] : tensor<32x16xf32>, tensor<2x8xi64> -> tensor<2x8x16xf32>
    %g = galv.get_parameter @ln.weight : tensor<16xf32>
    %w0 = galv.get_parameter @fc.0.weight : tensor<16x16xf32>
    %h0 = galv.layer @block(%h) params(%g, %w0) : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
    %w1 = galv.get_parameter @fc.1.weight : tensor<16x16xf32>
    %h1 = galv.layer @block(%h0) params(%g, %w1) : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
    %w2 = galv.get_parameter @fc.2.weight : tensor<16x16xf32>
    %h2 = galv.layer @block(%h1) params(%g, %w2) : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16x16xf32>) -> tensor<2x8x16xf32>
    %n = galv.layer_norm %h2, %g eps = 1.0e-05 : tensor<2x8x16xf32>, tensor<16xf32>
    %logits = galv.linear %n, %wte : tensor<2x8x16xf32>, tensor<32x16xf32> -> tensor<2x8x32xf32>
    return %logits : tensor<2x8x32xf32>
  }
}
