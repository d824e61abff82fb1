// Megatron and ZeRO placement on the tiny GPT-2 fixture (2 layers, hidden
// 32, 4 heads, fused QKV), imported at batch 4.
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --batch-size 4 --seq-len 8 -o %t.mlir
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=TP
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=2 tp-consec=0" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=STRIDED
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 sdp=1" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=ZERO3
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=4,1" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=MIXED

// Data: every rank cuts its quarter of the batch (the embedding and head are
// data parallel over all four ranks); their gradients are all-reduced once.
// TP-LABEL: func.func @loss(%arg0: tensor<1x8xi64> {galv.shard = #galv.shard<cuts = [0, 1, 4, 1], flat = []>
// TP: galv.get_parameter @transformer.wte.weight {galv.grad_sync = array<i64: 0, 4, 1>} : tensor<128x32xf32>
// Column-parallel fused QKV: each of query, key, value cut in two.
// TP: @transformer.h.0.attn.c_attn.weight shard <cuts = [1, 3, 2, 1], flat = []> {galv.grad_sync = array<i64: 0, 2, 2>} : tensor<32x48xf32>
// Row-parallel projections: cut along their inputs; biases whole.
// TP: @transformer.h.0.attn.c_proj.weight shard <cuts = [0, 1, 2, 1], flat = []> {{.*}} : tensor<16x32xf32>
// TP: @transformer.h.0.mlp.c_fc.weight shard <cuts = [1, 1, 2, 1], flat = []> {{.*}} : tensor<32x64xf32>
// TP: @transformer.h.0.mlp.c_proj.weight shard <cuts = [0, 1, 2, 1], flat = []> {{.*}} : tensor<64x32xf32>
// The layer is 2-way TP x 2-way DP: regather the batch, take this DP half.
// TP: %[[ALL:.*]] = galv.all_gather %{{.*}} axis = 0 group = [4, 1] {{.*}}: tensor<1x8x32xf32> -> tensor<4x8x32xf32>
// TP: %[[X:.*]] = galv.shard_slice %[[ALL]] axis = 0 group = [2, 2] {{.*}}: tensor<4x8x32xf32> -> tensor<2x8x32xf32>
// TP: %[[LN:.*]] = galv.layer_norm %[[X]]
// Megatron's f before the column-parallel linear, g after the row-parallel.
// TP: %[[F:.*]] = galv.replicate %[[LN]] group = [2, 1]
// TP: galv.linear %[[F]], {{.*}} -> tensor<2x8x48xf32>
// TP: galv.split {{.*}} sizes = [16, 16, 16]
// TP: galv.attention {{.*}} : tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32> -> tensor<2x2x8x8xf32>
// TP: %[[PART:.*]] = galv.linear {{.*}} : tensor<2x8x16xf32>, tensor<16x32xf32> -> tensor<2x8x32xf32>
// TP: %[[G:.*]] = galv.all_reduce sum %[[PART]] group = [2, 1]
// TP: galv.add %[[G]], %{{.*}} tensor<2x8x32xf32>, tensor<32xf32>
// TP: galv.replicate {{.*}} group = [2, 1]
// TP: galv.gelu {{.*}} : tensor<2x8x64xf32>
// TP: galv.all_reduce sum {{.*}} group = [2, 1]
// The head is data parallel over four: this rank's quarter, a local mean,
// then the mean over ranks.
// TP: galv.all_gather {{.*}} axis = 0 group = [2, 2] {{.*}}: tensor<2x8x32xf32> -> tensor<4x8x32xf32>
// TP: galv.shard_slice {{.*}} axis = 0 group = [4, 1] {{.*}}: tensor<4x8x32xf32> -> tensor<1x8x32xf32>
// TP: %[[CE:.*]] = galv.cross_entropy {{.*}} : tensor<1x7x128xf32>, tensor<1x7xi64> -> tensor<f32>
// TP: %[[LOSS:.*]] = galv.all_reduce mean %[[CE]] group = [4, 1]
// TP: return %[[LOSS]]

// Strided TP groups: ranks {0, 2} and {1, 3}; data parallel over {0, 1}.
// STRIDED: @transformer.h.0.attn.c_attn.weight shard <cuts = [1, 3, 2, 2], flat = []> {galv.grad_sync = array<i64: 0, 2, 1>}
// STRIDED: galv.shard_slice {{.*}} axis = 0 group = [2, 1] {{.*}}: tensor<4x8x32xf32> -> tensor<2x8x32xf32>
// STRIDED: galv.replicate {{.*}} group = [2, 2]
// STRIDED: galv.all_reduce sum {{.*}} group = [2, 2]

// ZeRO-3: layer parameters are flat quarters, gathered on use; the gather's
// gradient is reduce-scattered (no separate gradient sync).
// ZERO3: %[[S:.*]] = galv.get_parameter @transformer.h.0.attn.c_attn.weight shard <cuts = [], flat = [4, 1]> : tensor<768xf32>
// ZERO3-NEXT: %[[W:.*]] = galv.all_gather %[[S]] axis = 0 group = [4, 1] scatter_grad : tensor<768xf32> -> tensor<3072xf32>
// ZERO3-NEXT: galv.reshape %[[W]] : tensor<3072xf32> -> tensor<32x96xf32>
// ZERO3-NOT: galv.grad_sync = array<i64: 0, 4, 1>} : tensor<32x96xf32>

// Mixed degrees: layer 0 is 4-way TP (whole batch), layer 1 4-way DP.
// MIXED: @transformer.h.0.attn.c_attn.weight shard <cuts = [1, 3, 4, 1], flat = []> : tensor<32x24xf32>
// MIXED: galv.all_gather {{.*}} axis = 0 group = [4, 1] {{.*}}: tensor<1x8x32xf32> -> tensor<4x8x32xf32>
// MIXED: galv.attention {{.*}} -> tensor<4x1x8x8xf32>
// MIXED: galv.all_reduce sum {{.*}} group = [4, 1] {{.*}}: tensor<4x8x32xf32>
// MIXED: @transformer.h.1.attn.c_attn.weight {galv.grad_sync = array<i64: 0, 4, 1>} : tensor<32x96xf32>
// MIXED: galv.shard_slice {{.*}} axis = 0 group = [4, 1] {{.*}}: tensor<4x8x32xf32> -> tensor<1x8x32xf32>
// MIXED: galv.attention {{.*}} -> tensor<1x4x8x8xf32>
