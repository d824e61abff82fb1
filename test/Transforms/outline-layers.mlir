// RUN: galvatron-opt %s --galv-outline-layers --split-input-file | FileCheck %s

// Three identical blocks after a prologue, each also reading a value the
// prologue computed once (a mask): one layer type, three instances, the mask
// an activation input, parameter names relative to the block.

// CHECK-LABEL: galv.layer_type @h(
// CHECK-SAME: %{{.*}}: tensor<2x4xf32>, %{{.*}}: tensor<2x4xf32>, %{{.*}}: tensor<4xf32>, %{{.*}}: tensor<4x4xf32>) -> tensor<2x4xf32>
// CHECK-SAME: kind = #galv.layer_kind<encoder>
// CHECK-SAME: param_names = ["ln.weight", "fc.weight"]
// CHECK: galv.rms_norm
// CHECK: galv.linear
// CHECK: galv.add
// CHECK: galv.mul
// CHECK: galv.return
// CHECK-LABEL: func.func @forward
// CHECK: %[[M:.*]] = galv.exp
// CHECK: %[[H0:.*]] = galv.layer @h(%{{.*}}, %[[M]]) params(
// CHECK: %[[H1:.*]] = galv.layer @h(%[[H0]], %[[M]]) params(
// CHECK: %[[H2:.*]] = galv.layer @h(%[[H1]], %[[M]]) params(
// CHECK: galv.tanh %[[H2]]
galv.parameter @h.0.ln.weight : tensor<4xf32>
galv.parameter @h.0.fc.weight : tensor<4x4xf32>
galv.parameter @h.1.ln.weight : tensor<4xf32>
galv.parameter @h.1.fc.weight : tensor<4x4xf32>
galv.parameter @h.2.ln.weight : tensor<4xf32>
galv.parameter @h.2.fc.weight : tensor<4x4xf32>
func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %m = galv.exp %x : tensor<2x4xf32>
  %g0 = galv.get_parameter @h.0.ln.weight : tensor<4xf32>
  %w0 = galv.get_parameter @h.0.fc.weight : tensor<4x4xf32>
  %a0 = galv.rms_norm %x, %g0 eps = 1.0e-06 : tensor<2x4xf32>, tensor<4xf32>
  %b0 = galv.linear %a0, %w0 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %c0 = galv.add %b0, %x : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d0 = galv.mul %c0, %m : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %g1 = galv.get_parameter @h.1.ln.weight : tensor<4xf32>
  %w1 = galv.get_parameter @h.1.fc.weight : tensor<4x4xf32>
  %a1 = galv.rms_norm %d0, %g1 eps = 1.0e-06 : tensor<2x4xf32>, tensor<4xf32>
  %b1 = galv.linear %a1, %w1 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %c1 = galv.add %b1, %d0 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d1 = galv.mul %c1, %m : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %g2 = galv.get_parameter @h.2.ln.weight : tensor<4xf32>
  %w2 = galv.get_parameter @h.2.fc.weight : tensor<4x4xf32>
  %a2 = galv.rms_norm %d1, %g2 eps = 1.0e-06 : tensor<2x4xf32>, tensor<4xf32>
  %b2 = galv.linear %a2, %w2 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %c2 = galv.add %b2, %d1 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d2 = galv.mul %c2, %m : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %out = galv.tanh %d2 : tensor<2x4xf32>
  return %out : tensor<2x4xf32>
}

// -----

// Two runs of different blocks (an encoder stack, then a decoder stack):
// two layer types. Wiring decides, not names: the decoder blocks read the
// encoder output as a second input.

// CHECK-LABEL: galv.layer_type @enc(
// CHECK-SAME: param_names = ["w"]
// CHECK-LABEL: galv.layer_type @dec(
// CHECK-SAME: param_names = ["w"]
// CHECK-LABEL: func.func @forward
// CHECK-COUNT-2: galv.layer @enc
// CHECK-COUNT-2: galv.layer @dec
galv.parameter @enc.0.w : tensor<4x4xf32>
galv.parameter @enc.1.w : tensor<4x4xf32>
galv.parameter @dec.0.w : tensor<4x4xf32>
galv.parameter @dec.1.w : tensor<4x4xf32>
func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %e0w = galv.get_parameter @enc.0.w : tensor<4x4xf32>
  %e0a = galv.linear %x, %e0w : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %e0b = galv.tanh %e0a : tensor<2x4xf32>
  %e0c = galv.add %e0b, %x : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %e0d = galv.exp %e0c : tensor<2x4xf32>
  %e1w = galv.get_parameter @enc.1.w : tensor<4x4xf32>
  %e1a = galv.linear %e0d, %e1w : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %e1b = galv.tanh %e1a : tensor<2x4xf32>
  %e1c = galv.add %e1b, %e0d : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %e1d = galv.exp %e1c : tensor<2x4xf32>
  %d0w = galv.get_parameter @dec.0.w : tensor<4x4xf32>
  %d0a = galv.linear %x, %d0w : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %d0b = galv.sigmoid %d0a : tensor<2x4xf32>
  %d0c = galv.mul %d0b, %e1d : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d0d = galv.relu %d0c : tensor<2x4xf32>
  %d1w = galv.get_parameter @dec.1.w : tensor<4x4xf32>
  %d1a = galv.linear %d0d, %d1w : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %d1b = galv.sigmoid %d1a : tensor<2x4xf32>
  %d1c = galv.mul %d1b, %e1d : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d1d = galv.relu %d1c : tensor<2x4xf32>
  return %d1d : tensor<2x4xf32>
}

// -----

// Negative: blocks that differ (here an epsilon) are not one layer type,
// and a repeat without parameters is not a layer.
// CHECK-LABEL: func.func @forward
// CHECK-NOT: galv.layer
galv.parameter @a : tensor<4xf32>
galv.parameter @b : tensor<4xf32>
func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %ga = galv.get_parameter @a : tensor<4xf32>
  %0 = galv.rms_norm %x, %ga eps = 1.0e-06 : tensor<2x4xf32>, tensor<4xf32>
  %1 = galv.tanh %0 : tensor<2x4xf32>
  %2 = galv.exp %1 : tensor<2x4xf32>
  %3 = galv.add %2, %x : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %gb = galv.get_parameter @b : tensor<4xf32>
  %4 = galv.rms_norm %3, %gb eps = 1.0e-05 : tensor<2x4xf32>, tensor<4xf32>
  %5 = galv.tanh %4 : tensor<2x4xf32>
  %6 = galv.exp %5 : tensor<2x4xf32>
  %7 = galv.add %6, %3 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %8 = galv.tanh %7 : tensor<2x4xf32>
  %9 = galv.exp %8 : tensor<2x4xf32>
  %10 = galv.sigmoid %9 : tensor<2x4xf32>
  %11 = galv.relu %10 : tensor<2x4xf32>
  %12 = galv.tanh %11 : tensor<2x4xf32>
  %13 = galv.exp %12 : tensor<2x4xf32>
  %14 = galv.sigmoid %13 : tensor<2x4xf32>
  %15 = galv.relu %14 : tensor<2x4xf32>
  return %15 : tensor<2x4xf32>
}

// -----

// A value computed from parameters and constants alone (T5's position bias,
// made in block 0) stays outside the layers: all three blocks are instances
// and the bias is an input of each.
// CHECK-LABEL: galv.layer_type @blk(
// CHECK-SAME: %{{.*}}: tensor<2x4xf32>, %{{.*}}: tensor<4x4xf32>, %{{.*}}: tensor<4x4xf32>) -> tensor<2x4xf32>
// CHECK-LABEL: func.func @forward
// CHECK: galv.gather
// CHECK: %[[BIAS:.*]] = galv.reduce
// CHECK-COUNT-3: galv.layer @blk(%{{.*}}, %[[BIAS]]) params(
galv.parameter @rel : tensor<3x4xf32>
galv.parameter @blk.0.w : tensor<4x4xf32>
galv.parameter @blk.1.w : tensor<4x4xf32>
galv.parameter @blk.2.w : tensor<4x4xf32>
func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %buckets = galv.constant dense<[[0, 1, 2, 2], [1, 0, 1, 2], [2, 1, 0, 1], [2, 2, 1, 0]]> : tensor<4x4xi64>
  %w0 = galv.get_parameter @blk.0.w : tensor<4x4xf32>
  %a0 = galv.linear %x, %w0 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %rel = galv.get_parameter @rel : tensor<3x4xf32>
  %g = galv.gather %rel[%buckets] axis = 0 : tensor<3x4xf32>, tensor<4x4xi64> -> tensor<4x4x4xf32>
  %bias = galv.reduce sum %g axes = [2] : tensor<4x4x4xf32> -> tensor<4x4xf32>
  %b0 = galv.matmul %a0, %bias : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %c0 = galv.add %b0, %x : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d0 = galv.tanh %c0 : tensor<2x4xf32>
  %w1 = galv.get_parameter @blk.1.w : tensor<4x4xf32>
  %a1 = galv.linear %d0, %w1 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %b1 = galv.matmul %a1, %bias : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %c1 = galv.add %b1, %d0 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d1 = galv.tanh %c1 : tensor<2x4xf32>
  %w2 = galv.get_parameter @blk.2.w : tensor<4x4xf32>
  %a2 = galv.linear %d1, %w2 : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %b2 = galv.matmul %a2, %bias : tensor<2x4xf32>, tensor<4x4xf32> -> tensor<2x4xf32>
  %c2 = galv.add %b2, %d1 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x4xf32>
  %d2 = galv.tanh %c2 : tensor<2x4xf32>
  return %d2 : tensor<2x4xf32>
}
