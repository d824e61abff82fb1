// Each rank runs its stage's ops in its schedule's order: GPipe runs every
// micro-batch's forward pass, then every backward pass; 1F1B
// (pipedream_flush) lets the first stage run one forward ahead and then
// alternates, so fewer activations are alive at once on the last stage.
// Sends and receives pair up in the same order on both ends.
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --state-dict %galvatron_src_root/models/fixtures/gpt2-torchscript/weights.safetensors --batch-size 2 --seq-len 8 -o %t.mlir
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 pp=2 chunks=3" --galv-training-pipeline | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s --check-prefix=GPIPE
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=2 pp=2 chunks=3 pipeline=pipedream_flush" --galv-training-pipeline | galvatron-translate --emit-plan --plan-function=train_step | galvatron-translate --decode-plan | FileCheck %s --check-prefix=1F1B

// Stage 0 sends each micro-batch's activation and the tied embedding, and
// receives their gradients; it gets the loss last.
// GPIPE: group [0, 1]
// GPIPE-LABEL: rank 0:
// GPIPE-COUNT-6: = Send
// GPIPE-NOT: Send
// GPIPE-COUNT-7: = Recv
// GPIPE-NOT: Send
// GPIPE-LABEL: rank 1:
// GPIPE-COUNT-6: = Recv
// GPIPE-NOT: Recv
// GPIPE-COUNT-7: = Send

// 1F1B-LABEL: rank 0:
// 1F1B-COUNT-4: = Send
// 1F1B-COUNT-2: = Recv
// 1F1B-COUNT-2: = Send
// 1F1B-COUNT-5: = Recv
// 1F1B-LABEL: rank 1:
// 1F1B-COUNT-2: = Recv
// 1F1B-COUNT-2: = Send
// 1F1B-COUNT-2: = Recv
// 1F1B-COUNT-2: = Send
// 1F1B-COUNT-2: = Recv
// 1F1B-COUNT-3: = Send
