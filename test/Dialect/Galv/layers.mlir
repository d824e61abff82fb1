// Round trip of parameters, layer types, layer instances and the module-level
// weights and plan attributes.
// RUN: galvatron-opt %s | galvatron-opt | FileCheck %s
// RUN: galvatron-opt %s --mlir-print-op-generic | galvatron-opt | FileCheck %s

// CHECK: module attributes {galv.plan = #galv.plan<world_size = 4, pp = 2, pp_division = [1, 2], chunks = 2, global_batch = 8, schedule = pipedream_flush>, galv.weights = "model.safetensors"}
module attributes {galv.weights = "model.safetensors", galv.plan = #galv.plan<world_size = 4, pp = 2, pp_division = [1, 2], chunks = 2, global_batch = 8, schedule = pipedream_flush>} {
  // CHECK: galv.parameter @h.0.w : tensor<4xf32> trainable
  galv.parameter @h.0.w : tensor<4xf32> trainable
  galv.parameter @h.1.w : tensor<4xf32> trainable
  galv.parameter @h.2.w : tensor<4xf32> trainable
  // Quoted names keep characters that a bare identifier cannot hold.
  // CHECK: galv.parameter @"/model/embed:0" : tensor<4xf32>{{$}}
  galv.parameter @"/model/embed:0" : tensor<4xf32>

  // CHECK: galv.layer_type @block(%{{.*}}: tensor<2x4xf32>, %{{.*}}: tensor<4xf32>) -> tensor<2x4xf32>
  // CHECK-SAME: cost = #galv.cost<forward_ms = 0.5, backward_ratio = 2.0
  // CHECK-SAME: kind = #galv.layer_kind<decoder>
  // CHECK-SAME: param_names = ["w"]
  galv.layer_type @block(%x: tensor<2x4xf32>, %w: tensor<4xf32>) -> tensor<2x4xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"],
                  cost = #galv.cost<forward_ms = 0.5, backward_ratio = 2.0, parameter_bytes = 16, tp_degrees = [1, 2], activation_bytes = [32, 16], checkpoint_bytes = 32>} {
    // CHECK: galv.mul
    %y = galv.mul %x, %w : tensor<2x4xf32>, tensor<4xf32> -> tensor<2x4xf32>
    // CHECK: galv.return %{{.*}} : tensor<2x4xf32>
    galv.return %y : tensor<2x4xf32>
  }

  // A layer type with two activation inputs and results and no cost yet.
  // CHECK: galv.layer_type @pair(%{{.*}}: tensor<2x4xf32>, %{{.*}}: tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>) attributes {kind = #galv.layer_kind<encoder>, param_names = []}
  galv.layer_type @pair(%a: tensor<2x4xf32>, %b: tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
      attributes {kind = #galv.layer_kind<encoder>, param_names = []} {
    galv.return %b, %a : tensor<2x4xf32>, tensor<2x4xf32>
  }

  // CHECK-LABEL: func.func @forward
  func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
    // CHECK: galv.get_parameter @h.0.w : tensor<4xf32>
    %w0 = galv.get_parameter @h.0.w : tensor<4xf32>
    %w1 = galv.get_parameter @h.1.w : tensor<4xf32>
    %w2 = galv.get_parameter @h.2.w : tensor<4xf32>
    // CHECK: galv.layer @block(%{{.*}}) params(%{{.*}}) {strategy = #galv.strategy<tp = 2, dp = 1>} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    %h1 = galv.layer @block(%x) params(%w0) {strategy = #galv.strategy<tp = 2, dp = 1>} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    // CHECK: galv.layer @block({{.*}}) params({{.*}}) {strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero3, checkpoint = true, stage = 1>}
    %h2 = galv.layer @block(%h1) params(%w1) {strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero3, checkpoint = true, stage = 1>} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
    // CHECK: galv.layer @pair(%{{.*}}, %{{.*}}) params() {strategy = #galv.strategy<tp = 2, dp = 1, tp_consecutive = false, stage = 1>} : (tensor<2x4xf32>, tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
    %p:2 = galv.layer @pair(%h2, %x) params() {strategy = #galv.strategy<tp = 2, dp = 1, tp_consecutive = false, stage = 1>} : (tensor<2x4xf32>, tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
    return %p#0 : tensor<2x4xf32>
  }
}
