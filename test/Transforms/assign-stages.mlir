// RUN: galvatron-opt %s --split-input-file --galv-assign-stages --verify-diagnostics | FileCheck %s

// An op takes the stage of its staged operands (a transfer's result lives on
// its `to` stage), else its own tag; an op on no stage yet takes the stage
// its users agree on (a transfer's user is its `from` stage); ops feeding
// the return or users on different stages run on every stage.
// CHECK-LABEL: func.func @forward
// CHECK: %[[A:.*]] = galv.tanh %{{.*}} {galv.stage = 0 : i64}
// CHECK: galv.stage_transfer %[[A]] from = 0 to = 1 :
// CHECK: galv.exp %{{.*}} {galv.stage = 1 : i64}
// CHECK: galv.neg %{{.*}} {galv.stage = 1 : i64}
// CHECK: galv.add %{{.*}} {galv.stage = 1 : i64}
// CHECK: galv.abs %{{.*}} {galv.stage = 0 : i64}
// CHECK: galv.sqrt %{{.*}} : tensor<4xf32>
// CHECK: galv.relu %{{.*}} {galv.stage = 1 : i64}
// The stale tag yields to the operands' stage.
// CHECK: galv.sigmoid %{{.*}} {galv.stage = 1 : i64}
module attributes {galv.plan = #galv.plan<world_size = 2, pp = 2, pp_division = [1, 1], chunks = 1, global_batch = 4>} {
  func.func @forward(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
    %a = galv.tanh %x {galv.stage = 0 : i64} : tensor<4xf32>
    %b = galv.stage_transfer %a from = 0 to = 1 : tensor<4xf32>
    %c = galv.exp %b : tensor<4xf32>
    %d = galv.neg %x : tensor<4xf32>
    %e = galv.add %c, %d : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %f = galv.abs %x : tensor<4xf32>
    %g = galv.stage_transfer %f from = 0 to = 1 : tensor<4xf32>
    %h = galv.sqrt %x : tensor<4xf32>
    %i = galv.relu %h : tensor<4xf32>
    %j = galv.add %i, %g {galv.stage = 1 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    %k = galv.sigmoid %j {galv.stage = 0 : i64} : tensor<4xf32>
    return %e, %h, %k : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
  }
}

// -----

module {
  func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
    %a = galv.tanh %x {galv.stage = 0 : i64} : tensor<4xf32>
    %b = galv.exp %x {galv.stage = 1 : i64} : tensor<4xf32>
    // expected-error @+1 {{uses values of pipeline stages 0 and 1 without a transfer}}
    %c = galv.add %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    return %c : tensor<4xf32>
  }
}

// -----

// expected-error @+1 {{galv-assign-stages needs a func.func @forward}}
module {
  func.func @other(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}
