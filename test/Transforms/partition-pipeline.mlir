// Pipeline stages on the tiny GPT-2 (tied embedding and head): layer 0 and
// the embedding on stage 0, layer 1, the head and the loss on stage 1.
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --state-dict %galvatron_src_root/models/fixtures/gpt2-torchscript/weights.safetensors --batch-size 2 --seq-len 8 -o %t.mlir
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 pp=2" --galv-inline-layers --galv-append-loss --galv-partition | FileCheck %s
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 pp=2 chunks=2" --galv-training-pipeline | FileCheck %s --check-prefix=STEP

// CHECK-LABEL: func.func @loss
// CHECK: %[[WTE:.*]] = galv.get_parameter @transformer.wte.weight {galv.stage = 0 : i64}
// CHECK: galv.embedding %[[WTE]][%arg0] {galv.stage = 0 : i64}
// CHECK: galv.add {{.*}}galv.layer = 0 : i64, galv.stage = 0 : i64
// CHECK: galv.get_parameter @transformer.h.1.ln_1.weight {galv.stage = 1 : i64}
// The activation crosses to stage 1 where layer 1 first reads it.
// CHECK: %[[IN1:.*]] = galv.stage_transfer %{{.*}} from = 0 to = 1 {galv.layer = 1 : i64
// CHECK: galv.layer_norm %[[IN1]]
// The head on stage 1 reads the tied embedding through a transfer too.
// CHECK: %[[HEAD:.*]] = galv.stage_transfer %[[WTE]] from = 0 to = 1 {galv.stage = 1 : i64}
// CHECK: galv.linear %{{.*}}, %[[HEAD]] {galv.stage = 1 : i64}
// CHECK: galv.cross_entropy {{.*}}galv.stage = 1 : i64

// The training step: each micro-batch's passes are tagged for the
// schedule; gradients go back by the opposite transfers; every stage
// reports the last stage's loss.
// STEP-LABEL: func.func @train_step
// STEP: galv.stage_transfer {{.*}} from = 0 to = 1 {{{.*}}galv.micro_batch = 0 : i64
// STEP: galv.stage_transfer {{.*}} from = 1 to = 0 {galv.backward, galv.micro_batch = 0 : i64}
// STEP: galv.stage_transfer {{.*}} from = 0 to = 1 {{{.*}}galv.micro_batch = 1 : i64
// STEP: galv.stage_transfer {{.*}} from = 1 to = 0 {galv.backward, galv.micro_batch = 1 : i64}
// STEP: %[[LOSS:.*]] = galv.stage_broadcast %{{.*}} from = 1 : tensor<f32>
// STEP: return %[[LOSS]]
