// RUN: galvatron-opt %s --split-input-file --galv-plan-memory --verify-diagnostics | FileCheck %s

// A chain needs two 1 KiB slots at a time: %c reuses %a's slot once %a is
// dead, and the arena is the last byte any buffer touches. A result is
// placed before the inputs that die at its instruction are freed, so %b
// never shares %a's slot.
// CHECK-LABEL: func.func @forward_stage0
// CHECK-SAME: attributes {galv.arena_bytes = 2048 : i64, galv.stage = 0 : i64}
// CHECK-NEXT: galv.get_parameter
// CHECK-NOT: galv.offsets
// CHECK-NEXT: galv.tanh {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.exp {{.*}} {galv.offsets = array<i64: 1024>}
// CHECK-NEXT: galv.mul {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.copy {{.*}} {galv.offsets = array<i64: 1024>}
func.func @forward_stage0(%x: tensor<16x16xf32>) -> tensor<16x16xf32> attributes {galv.stage = 0 : i64} {
  %w = galv.get_parameter @w : tensor<16x16xf32>
  %a = galv.tanh %x : tensor<16x16xf32>
  %b = galv.exp %a : tensor<16x16xf32>
  %c = galv.mul %b, %w : tensor<16x16xf32>, tensor<16x16xf32> -> tensor<16x16xf32>
  %d = galv.copy %c : tensor<16x16xf32>
  return %d : tensor<16x16xf32>
}
galv.parameter @w : tensor<16x16xf32>

// -----

// Slots are 64-byte multiples; one offset per result; a send's token is
// placed like any result and freed at once. %n is a result, so it keeps its
// slot to the end and %a takes the slot the split's second piece left.
// CHECK-LABEL: func.func @train_step_stage1
// CHECK-SAME: galv.arena_bytes = 140 : i64
// CHECK-NEXT: galv.recv {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.split {{.*}} {galv.offsets = array<i64: 64, 128>}
// CHECK-NEXT: galv.send {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.neg {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.abs {{.*}} {galv.offsets = array<i64: 128>}
func.func @train_step_stage1() -> (tensor<3xf32>, tensor<1xf32>) attributes {galv.stage = 1 : i64} {
  %p = galv.recv from = 0 : tensor<4xf32>
  %s:2 = galv.split %p axis = 0 sizes = [3, 1] : tensor<4xf32> -> tensor<3xf32>, tensor<1xf32>
  %t = galv.send %s#0 to = 0 : tensor<3xf32> -> tensor<1xf32>
  %n = galv.neg %s#1 : tensor<1xf32>
  %a = galv.abs %s#0 : tensor<3xf32>
  return %a, %n : tensor<3xf32>, tensor<1xf32>
}

// -----

// A reshape is its operand's buffer (a chain of two as well): the buffer
// lives until the last reader of any of them, so %e cannot take it while %r2
// is still read, and %f takes it once all three are dead (%g then takes
// %e's). A reshape of a
// stage result, or one that is itself returned, is a buffer of its own.
// CHECK-LABEL: func.func @train_step_stage0
// CHECK-SAME: galv.arena_bytes = 3072 : i64
// CHECK-NEXT: galv.tanh {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.reshape {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.reshape {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.exp {{.*}} {galv.offsets = array<i64: 1024>}
// CHECK-NEXT: galv.neg {{.*}} {galv.offsets = array<i64: 2048>}
// CHECK-NEXT: galv.abs {{.*}} {galv.offsets = array<i64: 0>}
// CHECK-NEXT: galv.reshape {{.*}} {galv.offsets = array<i64: 1024>}
func.func @train_step_stage0(%x: tensor<16x16xf32>) -> (tensor<16x16xf32>, tensor<256xf32>) attributes {galv.stage = 0 : i64} {
  %a = galv.tanh %x : tensor<16x16xf32>
  %r1 = galv.reshape %a : tensor<16x16xf32> -> tensor<256xf32>
  %r2 = galv.reshape %r1 : tensor<256xf32> -> tensor<16x16xf32>
  %e = galv.exp %a : tensor<16x16xf32>
  %n = galv.neg %r2 : tensor<16x16xf32>
  %f = galv.abs %e : tensor<16x16xf32>
  %g = galv.reshape %n : tensor<16x16xf32> -> tensor<256xf32>
  return %f, %g : tensor<16x16xf32>, tensor<256xf32>
}

// -----

// Functions galv-schedule did not make are left alone.
// CHECK-LABEL: func.func @forward
// CHECK-NOT: galv.offsets
func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a = galv.tanh %x : tensor<4xf32>
  return %a : tensor<4xf32>
}

// -----

func.func @forward_stage0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {galv.stage = 0 : i64} {
  // expected-error @+1 {{is not an instruction of a stage program: run galv-schedule first}}
  %a = galv.stage_transfer %x from = 0 to = 1 : tensor<4xf32>
  return %a : tensor<4xf32>
}
