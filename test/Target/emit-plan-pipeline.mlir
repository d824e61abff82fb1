// Each rank runs its stage's ops in its schedule's order: GPipe runs every
// micro-batch's forward pass, then every backward pass; 1F1B
// (pipedream_flush) lets the first stage run one forward ahead and then
// alternates, so fewer activations are alive at once on the last stage.
// Sends and receives pair up in the same order on both ends.
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --state-dict %galvatron_src_root/models/fixtures/gpt2-torchscript/weights.safetensors --batch-size 2 --seq-len 8 -o %t.mlir
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 pp=2 chunks=3" --galv-training-pipeline | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s --check-prefix=GPIPE
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 pp=2 chunks=3 pipeline=pipedream_flush" --galv-training-pipeline | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s --check-prefix=1F1B

// Stage 0 sends each micro-batch's activation (and, once, the tied
// embedding the head reads), and receives their gradients (the embedding's
// summed over the micro-batches, once); it gets the loss last.
// GPIPE: group [0, 1]
// GPIPE-LABEL: rank 0:
// GPIPE-COUNT-4: = Send
// GPIPE-NOT: Send
// GPIPE-COUNT-5: = Recv
// GPIPE-NOT: Send
// GPIPE-LABEL: rank 1:
// GPIPE-COUNT-4: = Recv
// GPIPE-NOT: Recv
// GPIPE-COUNT-5: = Send

// 1F1B-LABEL: rank 0:
// 1F1B-COUNT-3: = Send
// 1F1B-NOT: = Send
// 1F1B: = Recv
// 1F1B-NOT: = Recv
// 1F1B: = Send
// 1F1B-NOT: = Send
// 1F1B-COUNT-4: = Recv
// 1F1B-LABEL: rank 1:
// 1F1B-COUNT-2: = Recv
// 1F1B-NOT: = Recv
// 1F1B: = Send
// 1F1B-NOT: = Send
// 1F1B: = Recv
// 1F1B-NOT: = Recv
// 1F1B: = Send
// 1F1B-NOT: = Send
// 1F1B: = Recv
// 1F1B-NOT: = Recv
// 1F1B-COUNT-3: = Send
