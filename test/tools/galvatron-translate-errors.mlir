// Invalid input is refused with the verifier's message and a non-zero exit.
// RUN: not galvatron-translate --galv-layer-summary %s 2>&1 | FileCheck %s
// RUN: not galvatron-translate --galv-layer-summary %t.does-not-exist.mlir 2>&1 | FileCheck %s --check-prefix=MISSING

// CHECK: error: 'galv.get_parameter' op 'nope' does not name a galv.parameter
// MISSING: does-not-exist.mlir
func.func @f() {
  %0 = galv.get_parameter @nope : tensor<2xf32>
  return
}
