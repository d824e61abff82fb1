// The pass runs on verified IR, so a missing layer type never reaches it; an
// unverified module is refused before the pass with the verifier's message.
// RUN: not galvatron-opt %s --galv-inline-layers 2>&1 | FileCheck %s

// CHECK: error: 'galv.layer' op 'nowhere' does not name a galv.layer_type
func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {
  %0 = galv.layer @nowhere(%x) params() : (tensor<2xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}
