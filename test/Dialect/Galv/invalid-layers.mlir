// Every verifier error of parameters, layer types, layer instances and the
// module attributes galv.weights and galv.plan.
// RUN: galvatron-opt %s --split-input-file --verify-diagnostics

func.func @f() {
  // expected-error @below {{'galv.parameter' op expects parent op 'builtin.module'}}
  galv.parameter @w : tensor<4xf32>
  return
}

// -----

func.func @f() {
  // expected-error @below {{'galv.get_parameter' op 'w' does not name a galv.parameter}}
  %0 = galv.get_parameter @w : tensor<4xf32>
  return
}

// -----

galv.parameter @w : tensor<4xf32>
func.func @f() {
  // expected-error @below {{type 'tensor<8xf32>' differs from parameter 'w' declared as 'tensor<4xf32>'}}
  %0 = galv.get_parameter @w : tensor<8xf32>
  return
}

// -----

galv.parameter @w : tensor<4x8xf32>
func.func @f() {
  // expected-error @below {{'galv.get_parameter' op shard cut 0 axis 2 is out of range for 'tensor<4x8xf32>'}}
  %0 = galv.get_parameter @w shard <cuts = [<axis = 2, group = <size = 2, stride = 1>>]> : tensor<4x4xf32>
  return
}

// -----

// A flat (ZeRO) group pads what it flattens, but the cuts before it must
// still divide their dimensions.
galv.parameter @w : tensor<4x6xf32>
func.func @f() {
  // expected-error @below {{'galv.get_parameter' op shard cut 0 does not divide dimension 1 of 'tensor<4x6xf32>' into 4 equal pieces}}
  %0 = galv.get_parameter @w shard <cuts = [<axis = 1, group = <size = 4, stride = 1>>], flat = <size = 2, stride = 4>> : tensor<3xf32>
  return
}

// -----

galv.parameter @w : tensor<4x6xf32>
func.func @f() {
  // expected-error @below {{type 'tensor<4x6xf32>' is not the shard 'tensor<4x3xf32>' of parameter 'w' declared as 'tensor<4x6xf32>'}}
  %0 = galv.get_parameter @w shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>]> : tensor<4x6xf32>
  return
}

// -----

// expected-error @below {{'galv.parameter' op attribute 'type' failed to satisfy constraint: type attribute of statically shaped tensor of any type values}}
galv.parameter @w : tensor<?xf32>

// -----

// expected-error @below {{names 2 parameters but has only 1 arguments}}
galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["a", "b"]} {
  galv.return %x : tensor<4xf32>
}

// -----

// expected-error @below {{needs at least one activation input before its 1 parameters}}
galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["a"]} {
  galv.return %x : tensor<4xf32>
}

// -----

// expected-error @below {{must return at least one activation}}
galv.layer_type @t(%x: tensor<4xf32>) attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
  galv.return
}

// -----

// expected-error @below {{arguments and results must be statically shaped tensors, got 'f32'}}
galv.layer_type @t(%x: tensor<4xf32>, %s: f32) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
  galv.return %x : tensor<4xf32>
}

// -----

// expected-error @below {{parameter names must not be empty}}
galv.layer_type @t(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = [""]} {
  galv.return %x : tensor<4xf32>
}

// -----

// expected-error @below {{parameter name 'w' repeats}}
galv.layer_type @t(%x: tensor<4xf32>, %w: tensor<4xf32>, %v: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["w", "w"]} {
  galv.return %x : tensor<4xf32>
}

// -----

// expected-error @below {{requires attribute 'kind'}}
galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {param_names = []} {
  galv.return %x : tensor<4xf32>
}

// -----

func.func @f() {
  // expected-error @below {{'galv.layer_type' op expects parent op 'builtin.module'}}
  galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
    galv.return %x : tensor<4xf32>
  }
  return
}

// -----

galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
  %c = galv.constant dense<1.0> : tensor<2xf32>
  // expected-error @below {{returns 'tensor<2xf32>' but layer type @t declares 'tensor<4xf32>'}}
  galv.return %c : tensor<2xf32>
}

// -----

func.func @f() {
  // expected-error @below {{'galv.return' op expects parent op 'galv.layer_type'}}
  galv.return
}

// -----

func.func @f(%x: tensor<4xf32>) {
  // expected-error @below {{'missing' does not name a galv.layer_type}}
  %0 = galv.layer @missing(%x) params() : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

galv.layer_type @t(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
  galv.return %x : tensor<4xf32>
}
func.func @f(%x: tensor<4xf32>, %w: tensor<4xf32>) {
  // expected-error @below {{passes 0 parameters but layer type @t takes 1}}
  %0 = galv.layer @t(%x, %w) params() : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

galv.layer_type @t(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
  galv.return %x : tensor<4xf32>
}
func.func @f(%x: tensor<4xf32>, %w: tensor<2xf32>) {
  // expected-error @below {{operand types 'tensor<4xf32>', 'tensor<2xf32>' differ from layer type @t inputs 'tensor<4xf32>', 'tensor<4xf32>'}}
  %0 = galv.layer @t(%x) params(%w) : (tensor<4xf32>, tensor<2xf32>) -> tensor<4xf32>
  return
}

// -----

galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
  galv.return %x : tensor<4xf32>
}
func.func @f(%x: tensor<4xf32>) {
  // expected-error @below {{result types 'tensor<4xf16>' differ from layer type @t results 'tensor<4xf32>'}}
  %0 = galv.layer @t(%x) params() : (tensor<4xf32>) -> tensor<4xf16>
  return
}

// -----

func.func @f() attributes {galv.weights = "w.safetensors"} {
  // expected-error @above {{'galv.weights' belongs on a module}}
  return
}

// -----

// expected-error @below {{'galv.weights' must name a safetensors file (a string)}}
module attributes {galv.weights = 3 : i64} {
}

// -----

// expected-error @below {{'galv.plan' must be a #galv.plan}}
module attributes {galv.plan = #galv.strategy<tp = 1, dp = 1>} {
}

// -----

func.func @f() attributes {galv.plan = #galv.plan<world_size = 1, pp = 1, pp_division = [1], chunks = 1, global_batch = 1>} {
  // expected-error @above {{'galv.plan' belongs on a module}}
  return
}

// -----

// expected-error @below {{unknown galv attribute 'galv.plans'}}
module attributes {galv.plans = 1 : i64} {
}

// -----

// expected-error @below {{'galv.plan' pp_division covers 3 layers but the module has 1 layer instances}}
module attributes {galv.plan = #galv.plan<world_size = 2, pp = 1, pp_division = [3], chunks = 1, global_batch = 2>} {
  galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
    galv.return %x : tensor<4xf32>
  }
  func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
    %0 = galv.layer @t(%x) params() : (tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}

// -----

module attributes {galv.plan = #galv.plan<world_size = 8, pp = 2, pp_division = [1, 1], chunks = 1, global_batch = 8>} {
  galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
    galv.return %x : tensor<4xf32>
  }
  func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
    %0 = galv.layer @t(%x) params() {strategy = #galv.strategy<tp = 2, dp = 2>} : (tensor<4xf32>) -> tensor<4xf32>
    // expected-error @below {{layer 1 uses tp * dp = 8 devices but the plan has 4 per stage (world_size 8 / pp 2)}}
    %1 = galv.layer @t(%0) params() {strategy = #galv.strategy<tp = 2, dp = 4, stage = 1>} : (tensor<4xf32>) -> tensor<4xf32>
    return %1 : tensor<4xf32>
  }
}

// -----

module attributes {galv.plan = #galv.plan<world_size = 4, pp = 2, pp_division = [1, 1], chunks = 1, global_batch = 8>} {
  galv.layer_type @t(%x: tensor<4xf32>) -> tensor<4xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = []} {
    galv.return %x : tensor<4xf32>
  }
  func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
    %0 = galv.layer @t(%x) params() {strategy = #galv.strategy<tp = 2, dp = 1>} : (tensor<4xf32>) -> tensor<4xf32>
    // expected-error @below {{layer 1 is on stage 0 but pp_division puts it on stage 1}}
    %1 = galv.layer @t(%0) params() {strategy = #galv.strategy<tp = 2, dp = 1>} : (tensor<4xf32>) -> tensor<4xf32>
    return %1 : tensor<4xf32>
  }
}
