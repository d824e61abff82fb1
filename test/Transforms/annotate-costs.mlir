// Native costs by hand, on a 1 TFLOP/s, 1 GB/s device (1e9 FLOP and 1e6
// bytes per ms). The layer: a linear of x [2, 4, 8] by W [8, 8] plus b [8]:
// 2 * 64 * 8 + 64 = 1088 FLOPs (1.088e-6 ms) against 544 + 256 = 800 bytes
// (8e-4 ms), so 8e-4 ms for the batch of 2, 4e-4 ms per sample. Parameters
// 256 + 32 bytes; it keeps its result (256 bytes, 128 per sample, 64 at
// tp 2) and a checkpointed layer its input (128 per sample).
// RUN: galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" | FileCheck %s
// bf16 halves every float tensor's bytes and doubles the GEMM rate.
// RUN: galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/hw-round.json precision=bf16" | FileCheck %s --check-prefix=BF16
// The native costs written as Galvatron's model profiles read back the same.
// RUN: rm -rf %t.dir && mkdir -p %t.dir
// RUN: galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/hw-round.json export-profile=%t.dir" -o /dev/null
// RUN: galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/hw-round.json model=galvatron profile=%t.dir/computation_profiling_fp32_model.json,%t.dir/memory_profiling_fp32_model.json" | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: not galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/missing.json" 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/hw-round.json model=magic" 2>&1 | FileCheck %s --check-prefix=MODEL
// RUN: not galvatron-opt %s --galv-annotate-costs="hardware=%S/Inputs/hw-round.json model=galvatron" 2>&1 | FileCheck %s --check-prefix=PROFILE

// CHECK: galv.costs = #galv.model_cost<hardware = "{{.*}}hw-round.json", model = "native", precision = "fp32", profile = "",
// The embedding reads its table and the ids and writes 2x4x8 floats: 512 +
// 64 + 256 bytes, 4.16e-4 ms per sample; the head is a linear to 16 logits:
// 2 * 128 * 8 + 128 FLOPs against 256 + 512 + 64 + 512 bytes, 6.72e-4 ms
// per sample.
// CHECK-SAME: other_forward_ms = 0.001088
// CHECK-SAME: vocab_tp_degrees = [1, 2, 4
// The table [16, 8] and the head [8, 16] (and its bias) split over the
// vocabulary degree.
// CHECK-SAME: first_parameter_bytes = [512, 256, 128
// CHECK-SAME: last_parameter_bytes = [576, 288, 144
// Per sample: the embedding's 128 bytes; the logits' 256 split.
// CHECK-SAME: first_activation_bytes = [128, 128, 128
// CHECK-SAME: last_activation_bytes = [256, 128, 64
// CHECK: galv.layer_type @block
// CHECK-SAME: cost = #galv.cost<forward_ms = 4e-04, backward_ratio = 2.0, parameter_bytes = 288, tp_degrees = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], activation_bytes = [128, 64, 32, 16, 8, 4, 2, 1, 1, 1, 1], checkpoint_bytes = 128>

// ROUNDTRIP: model = "galvatron"
// ROUNDTRIP-SAME: other_forward_ms = 0.001088
// ROUNDTRIP: cost = #galv.cost<forward_ms = 4e-04, backward_ratio = 2.0, parameter_bytes = 288, tp_degrees = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], activation_bytes = [128, 64, 32, 16, 8, 4, 2, 1, 1, 1, 1], checkpoint_bytes = 128>

// BF16: precision = "bf16"
// BF16: cost = #galv.cost<forward_ms = 2e-04, backward_ratio = 2.0, parameter_bytes = 288, tp_degrees = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], activation_bytes = [64, 32, 16, 8, 4, 2, 1, 1, 1, 1, 1], checkpoint_bytes = 64>

// MISSING: error: galv-annotate-costs: {{.*}}missing.json
// MODEL: error: galv-annotate-costs: model 'magic' is not native or galvatron
// PROFILE: error: galv-annotate-costs: model=galvatron needs profile=computation.json,memory.json

module {
  galv.parameter @wte : tensor<16x8xf32> trainable
  galv.parameter @w : tensor<8x8xf32> trainable
  galv.parameter @b : tensor<8xf32> trainable
  galv.parameter @head.w : tensor<8x16xf32> trainable
  galv.parameter @head.b : tensor<16xf32> trainable
  galv.layer_type @block(%x: tensor<2x4x8xf32>, %w: tensor<8x8xf32>,
                         %b: tensor<8xf32>) -> tensor<2x4x8xf32>
      attributes {kind = #galv.layer_kind<decoder>, param_names = ["w", "b"]} {
    %y = galv.linear %x, %w, %b layout = in_out : tensor<2x4x8xf32>, tensor<8x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
    galv.return %y : tensor<2x4x8xf32>
  }
  func.func @forward(%ids: tensor<2x4xi64>) -> tensor<2x4x16xf32> {
    %table = galv.get_parameter @wte : tensor<16x8xf32>
    %x = galv.embedding %table[%ids] : tensor<16x8xf32>, tensor<2x4xi64> -> tensor<2x4x8xf32>
    %w = galv.get_parameter @w : tensor<8x8xf32>
    %b = galv.get_parameter @b : tensor<8xf32>
    %h = galv.layer @block(%x) params(%w, %b) : (tensor<2x4x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
    %hw = galv.get_parameter @head.w : tensor<8x16xf32>
    %hb = galv.get_parameter @head.b : tensor<16xf32>
    %logits = galv.linear %h, %hw, %hb layout = in_out : tensor<2x4x8xf32>, tensor<8x16xf32>, tensor<16xf32> -> tensor<2x4x16xf32>
    return %logits : tensor<2x4x16xf32>
  }
}
