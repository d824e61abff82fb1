// RUN: galvatron-opt %s --galv-inline-layers --split-input-file | FileCheck %s
// RUN: galvatron-opt %s --galv-inline-layers=keep-layer-types --split-input-file | FileCheck %s --check-prefix=KEEP

// Two instances of one layer type, each with its own parameters, become two
// copies of the body wired to the right parameters, in order.

// The plan stays for galv-partition, and every inlined op carries its
// instance's strategy.
// CHECK-NOT: galv.layer_type
// CHECK: module attributes {galv.plan = #galv.plan<world_size = 2, pp = 2, pp_division = [1, 1], chunks = 1, global_batch = 2>, galv.weights = "w.safetensors"}
// KEEP: galv.layer_type @block
module attributes {galv.weights = "w.safetensors", galv.plan = #galv.plan<world_size = 2, pp = 2, pp_division = [1, 1], chunks = 1, global_batch = 2>} {
  galv.parameter @h.0.w : tensor<4xf32>
  galv.parameter @h.1.w : tensor<4xf32>
  galv.layer_type @block(%x: tensor<2x4xf32>, %w: tensor<4xf32>) -> tensor<2x4xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
    %y = galv.mul %x, %w : tensor<2x4xf32>, tensor<4xf32> -> tensor<2x4xf32>
    %z = galv.add %y, %x : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
    galv.return %z : tensor<2x4xf32>
  }
  // CHECK-LABEL: func.func @forward
  // CHECK-SAME: (%[[X:.*]]: tensor<2x4xf32>)
  func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
    // CHECK: %[[W0:.*]] = galv.get_parameter @h.0.w
    // CHECK: %[[W1:.*]] = galv.get_parameter @h.1.w
    // CHECK: %[[M0:.*]] = galv.mul %[[X]], %[[W0]] {galv.layer = 0 : i64, galv.strategy = #galv.strategy<tp = 1, dp = 1>}
    // CHECK: %[[A0:.*]] = galv.add %[[M0]], %[[X]] {galv.layer = 0 : i64, galv.strategy = #galv.strategy<tp = 1, dp = 1>}
    // CHECK: %[[M1:.*]] = galv.mul %[[A0]], %[[W1]] {galv.layer = 1 : i64, galv.strategy = #galv.strategy<tp = 1, dp = 1, stage = 1>}
    // CHECK: %[[A1:.*]] = galv.add %[[M1]], %[[A0]] {galv.layer = 1 : i64, galv.strategy = #galv.strategy<tp = 1, dp = 1, stage = 1>}
    // CHECK: return %[[A1]]
    // CHECK-NOT: galv.layer
    %w0 = galv.get_parameter @h.0.w : tensor<4xf32>
    %w1 = galv.get_parameter @h.1.w : tensor<4xf32>
    %h1 = galv.layer @block(%x) params(%w0) {strategy = #galv.strategy<tp = 1, dp = 1>} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    %h2 = galv.layer @block(%h1) params(%w1) {strategy = #galv.strategy<tp = 1, dp = 1, stage = 1>} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    return %h2 : tensor<2x4xf32>
  }
}

// -----

// Several results, and a layer type that returns an argument unchanged.
// CHECK-LABEL: func.func @swap
// CHECK-SAME: (%[[A:.*]]: tensor<2xf32>, %[[B:.*]]: tensor<2xf32>)
// CHECK-NEXT: return %[[B]], %[[A]]
galv.layer_type @pair(%a: tensor<2xf32>, %b: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>)
    attributes {kind = #galv.layer_kind<encoder>, param_names = []} {
  galv.return %b, %a : tensor<2xf32>, tensor<2xf32>
}
func.func @swap(%a: tensor<2xf32>, %b: tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>) {
  %0:2 = galv.layer @pair(%a, %b) params() : (tensor<2xf32>, tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>)
  return %0#0, %0#1 : tensor<2xf32>, tensor<2xf32>
}
