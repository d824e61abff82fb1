// Megatron and ZeRO placement on the tiny GPT-2 fixture (2 layers, hidden
// 32, 4 heads, fused QKV), imported at batch 4.
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --batch-size 4 --seq-len 8 -o %t.mlir
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=TP
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=2 tp-consec=0" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=STRIDED
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 sdp=1" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=ZERO3
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=4,1" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=MIXED

// Data: every rank cuts its quarter of the batch (the embedding and head are
// data parallel over all four ranks); their gradients are all-reduced once.
// TP-LABEL: func.func @loss(%arg0: tensor<1x8xi64> {galv.shard = #galv.shard<cuts = [<axis = 0, group = <size = 4, stride = 1>>]>
// TP: galv.get_parameter @transformer.wte.weight {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 4, stride = 1>>} : tensor<128x32xf32>
// Column-parallel fused QKV: each of query, key, value cut in two.
// TP: @transformer.h.0.attn.c_attn.weight shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>]> {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 2>>} : tensor<32x48xf32>
// Row-parallel projections: cut along their inputs; biases whole.
// TP: @transformer.h.0.attn.c_proj.weight shard <cuts = [<axis = 0, group = <size = 2, stride = 1>>]> {{.*}} : tensor<16x32xf32>
// TP: @transformer.h.0.mlp.c_fc.weight shard <cuts = [<axis = 1, group = <size = 2, stride = 1>>]> {{.*}} : tensor<32x64xf32>
// TP: @transformer.h.0.mlp.c_proj.weight shard <cuts = [<axis = 0, group = <size = 2, stride = 1>>]> {{.*}} : tensor<64x32xf32>
// The layer is 2-way TP x 2-way DP: regather the batch, take this DP half.
// TP: %[[ALL:.*]] = galv.all_gather %{{.*}} axis = 0 group = <size = 4, stride = 1> {{.*}}: tensor<1x8x32xf32> -> tensor<4x8x32xf32>
// TP: %[[X:.*]] = galv.shard_slice %[[ALL]] axis = 0 group = <size = 2, stride = 2> {{.*}}: tensor<4x8x32xf32> -> tensor<2x8x32xf32>
// TP: %[[LN:.*]] = galv.layer_norm %[[X]]
// Megatron's f before the column-parallel linear, g after the row-parallel.
// TP: %[[F:.*]] = galv.replicate %[[LN]] group = <size = 2, stride = 1>
// TP: galv.linear %[[F]], {{.*}} -> tensor<2x8x48xf32>
// TP: galv.split {{.*}} sizes = [16, 16, 16]
// TP: galv.attention {{.*}} : tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32>, tensor<2x2x8x8xf32> -> tensor<2x2x8x8xf32>
// TP: %[[PART:.*]] = galv.linear {{.*}} : tensor<2x8x16xf32>, tensor<16x32xf32> -> tensor<2x8x32xf32>
// TP: %[[G:.*]] = galv.all_reduce sum %[[PART]] group = <size = 2, stride = 1>
// TP: galv.add %[[G]], %{{.*}} tensor<2x8x32xf32>, tensor<32xf32>
// TP: galv.replicate {{.*}} group = <size = 2, stride = 1>
// TP: galv.gelu {{.*}} : tensor<2x8x64xf32>
// TP: galv.all_reduce sum {{.*}} group = <size = 2, stride = 1>
// The head is data parallel over four: this rank's quarter, a local mean,
// then the mean over ranks.
// TP: galv.all_gather {{.*}} axis = 0 group = <size = 2, stride = 2> {{.*}}: tensor<2x8x32xf32> -> tensor<4x8x32xf32>
// TP: galv.shard_slice {{.*}} axis = 0 group = <size = 4, stride = 1> {{.*}}: tensor<4x8x32xf32> -> tensor<1x8x32xf32>
// TP: %[[CE:.*]] = galv.cross_entropy {{.*}} : tensor<1x8x128xf32>, tensor<1x8xi64> -> tensor<f32>
// TP: %[[LOSS:.*]] = galv.all_reduce mean %[[CE]] group = <size = 4, stride = 1>
// TP: return %[[LOSS]]

// Strided TP groups: ranks {0, 2} and {1, 3}; data parallel over {0, 1}.
// STRIDED: @transformer.h.0.attn.c_attn.weight shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 2>>]> {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>}
// STRIDED: galv.shard_slice {{.*}} axis = 0 group = <size = 2, stride = 1> {{.*}}: tensor<4x8x32xf32> -> tensor<2x8x32xf32>
// STRIDED: galv.replicate {{.*}} group = <size = 2, stride = 2>
// STRIDED: galv.all_reduce sum {{.*}} group = <size = 2, stride = 2>

// ZeRO-3: layer parameters are flat quarters, gathered on use; the gather's
// gradient is reduce-scattered (no separate gradient sync).
// The gathers sit right before the first use.
// ZERO3: %[[S:.*]] = galv.get_parameter @transformer.h.0.attn.c_attn.weight shard <flat = <size = 4, stride = 1>> : tensor<768xf32>
// ZERO3: galv.layer_norm
// ZERO3: %[[W:.*]] = galv.all_gather %[[S]] axis = 0 group = <size = 4, stride = 1> scatter_grad : tensor<768xf32> -> tensor<3072xf32>
// ZERO3-NEXT: %[[R:.*]] = galv.reshape %[[W]] : tensor<3072xf32> -> tensor<32x96xf32>
// ZERO3: galv.linear %{{.*}}, %[[R]]
// ZERO3-NOT: galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 4, stride = 1>>} : tensor<32x96xf32>

// Mixed degrees: layer 0 is 4-way TP (whole batch), layer 1 4-way DP.
// MIXED: @transformer.h.0.attn.c_attn.weight shard <cuts = [<axis = 1, blocks = 3, group = <size = 4, stride = 1>>]> : tensor<32x24xf32>
// MIXED: galv.all_gather {{.*}} axis = 0 group = <size = 4, stride = 1> {{.*}}: tensor<1x8x32xf32> -> tensor<4x8x32xf32>
// MIXED: galv.attention {{.*}} -> tensor<4x1x8x8xf32>
// MIXED: galv.all_reduce sum {{.*}} group = <size = 4, stride = 1> {{.*}}: tensor<4x8x32xf32>
// MIXED: @transformer.h.1.attn.c_attn.weight {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 4, stride = 1>>} : tensor<32x96xf32>
// MIXED: galv.shard_slice {{.*}} axis = 0 group = <size = 4, stride = 1> {{.*}}: tensor<4x8x32xf32> -> tensor<1x8x32xf32>
// MIXED: galv.attention {{.*}} -> tensor<1x4x8x8xf32>

// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 tp=2 sp=megatron" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=MSP
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 tp=2 sp=ulysses" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=ULYSSES
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 vocab-tp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=VOCAB
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 dp-type=zero2" --galv-training-pipeline | FileCheck %s --check-prefix=ZERO2

// Megatron-SP: the layer input is split along the sequence; the norms run
// on the pieces (their weights' gradients summed over the group); the
// sequence is gathered before the column-parallel linear (its gradient
// reduce-scattered) and reduce-scattered after the row-parallel one.
// MSP: %[[X:.*]] = galv.shard_slice %{{.*}} axis = 1 group = <size = 2, stride = 1> {{.*}}: tensor<4x8x32xf32> -> tensor<4x4x32xf32>
// MSP: galv.replicate %{{.*}} group = <size = 2, stride = 1> {{.*}}: tensor<32xf32>
// MSP: %[[LN:.*]] = galv.layer_norm %[[X]]
// MSP: galv.all_gather %[[LN]] axis = 1 group = <size = 2, stride = 1> scatter_grad {{.*}}: tensor<4x4x32xf32> -> tensor<4x8x32xf32>
// MSP: %[[PART:.*]] = galv.linear {{.*}} : tensor<4x8x16xf32>, tensor<16x32xf32> -> tensor<4x8x32xf32>
// MSP-NEXT: galv.reduce_scatter %[[PART]] axis = 1 group = <size = 2, stride = 1> {{.*}}: tensor<4x8x32xf32> -> tensor<4x4x32xf32>
// MSP-NOT: galv.all_reduce sum

// Ulysses: whole weights (gradients summed over the group) on a split
// sequence; all-to-all to split heads for attention and back.
// ULYSSES: galv.shard_slice %{{.*}} axis = 1 group = <size = 2, stride = 1> {{.*}}: tensor<4x8x32xf32> -> tensor<4x4x32xf32>
// ULYSSES: galv.replicate %{{.*}} group = <size = 2, stride = 1> {{.*}}: tensor<32x96xf32>
// ULYSSES: galv.all_to_all %{{.*}} split = 1 concat = 2 group = <size = 2, stride = 1> {{.*}}: tensor<4x4x4x8xf32> -> tensor<4x2x8x8xf32>
// ULYSSES: galv.attention {{.*}} -> tensor<4x2x8x8xf32>
// ULYSSES: galv.all_to_all %{{.*}} split = 1 concat = 2 group = <size = 2, stride = 1> {{.*}}: tensor<4x8x16xf32> -> tensor<4x4x32xf32>
// ULYSSES-NOT: shard <cuts

// Vocabulary parallelism: each rank looks up its half of the table and the
// pieces are summed; the tied head gives vocabulary-split logits and the
// cross-entropy reduces its log-sum-exp and target logit over the group.
// VOCAB: galv.get_parameter @transformer.wte.weight shard <cuts = [<axis = 0, group = <size = 2, stride = 1>>]> : tensor<64x32xf32>
// VOCAB: galv.shard_slice %{{.*}} axis = 0 group = <size = 2, stride = 1> : tensor<2xi64> -> tensor<1xi64>
// VOCAB: galv.embedding {{.*}} : tensor<64x32xf32>, tensor<4x8xi64> -> tensor<4x8x32xf32>
// VOCAB: galv.all_reduce sum %{{.*}} group = <size = 2, stride = 1> : tensor<4x8x32xf32>
// VOCAB: galv.linear {{.*}} -> tensor<4x8x64xf32>
// VOCAB: galv.all_reduce max %{{.*}} group = <size = 2, stride = 1> : tensor<32x1xf32>
// VOCAB: galv.all_reduce sum %{{.*}} group = <size = 2, stride = 1> : tensor<32x1xf32>
// VOCAB: galv.all_reduce sum %{{.*}} group = <size = 2, stride = 1> : tensor<32x1xf32>
// VOCAB-NOT: galv.cross_entropy

// ZeRO-2: the flat gradient is reduce-scattered, this rank's half of the
// parameter updated (its moments are halves), then gathered back.
// ZERO2-LABEL: func.func @train_step
// ZERO2-SAME: tensor<1536xf32> {galv.name = "adam_m:transformer.h.0.attn.c_attn.weight", galv.param = @transformer.h.0.attn.c_attn.weight, galv.role = #galv.role<adam_m>, galv.shard = #galv.shard<flat = <size = 2, stride = 1>>}
// ZERO2: galv.reduce_scatter %{{.*}} axis = 0 group = <size = 2, stride = 1> : tensor<4096xf32> -> tensor<2048xf32>
// ZERO2: galv.shard_slice %{{.*}} axis = 0 group = <size = 2, stride = 1> : tensor<4096xf32> -> tensor<2048xf32>
// ZERO2: galv.all_gather %{{.*}} axis = 0 group = <size = 2, stride = 1> : tensor<2048xf32> -> tensor<4096xf32>

// Galvatron's vsp: the vocabulary-parallel embedding reduce-scatters along
// the sequence, the head's norm runs on sequence pieces and the head
// gathers the sequence back (its gradient reduce-scattered).
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 vocab-tp=2 vocab-sp=1" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s --check-prefix=VSP
// VSP: galv.embedding {{.*}} : tensor<64x32xf32>, tensor<4x8xi64> -> tensor<4x8x32xf32>
// VSP: galv.reduce_scatter %{{.*}} axis = 1 group = <size = 2, stride = 1> : tensor<4x8x32xf32> -> tensor<4x4x32xf32>
// VSP: galv.shard_slice %{{.*}} axis = 1 group = <size = 2, stride = 1> : tensor<1x8x32xf32> -> tensor<1x4x32xf32>
// VSP: galv.layer_norm %{{.*}} : tensor<4x4x32xf32>
// VSP: galv.all_gather %{{.*}} axis = 1 group = <size = 2, stride = 1> scatter_grad : tensor<4x4x32xf32> -> tensor<4x8x32xf32>
// VSP: galv.linear {{.*}} -> tensor<4x8x64xf32>

// decode-plan shows each rank's piece: rank 1 of 4 (tp 2 x dp 2, ZeRO-2)
// holds the second half of every QKV block, and a flat half of that as
// Adam state; each input's role (state by parameter), the outputs fed back
// as inputs, and the vocabulary the token ids index.
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=4 tp=2 dp-type=zero2" --galv-training-pipeline | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s --check-prefix=DECODE
// DECODE: plan format 5, world size 4, {{.*}}, vocab size 128
// DECODE-LABEL: rank 1: arena
// DECODE-SAME: stage 0
// DECODE: Input I64[1x8] 'input_ids' Data (64 bytes) of [4x8] axis 0 piece 1/4
// DECODE: Input F32[] 'lr' LearningRate (4 bytes)
// DECODE: Input F32[] 'step' Step (4 bytes)
// DECODE: 'param:transformer.h.0.attn.c_attn.weight' Parameter('transformer.h.0.attn.c_attn.weight') (6144 bytes) of [32x96] axis 1 piece 1/2 per block
// DECODE: 'adam_m:transformer.h.0.attn.c_attn.weight' AdamM('transformer.h.0.attn.c_attn.weight') (3072 bytes) of [32x96] axis 1 piece 1/2 per block flat piece 0/2
// DECODE: = AllReduce {{.*}} {group = {{[0-9]+}}, reduction = Sum}
// DECODE: = ReduceScatter {{.*}} {group = {{[0-9]+}}, axis = 0}
// DECODE: feedback {{([0-9]+->[0-9]+ )+}}(output -> input)
