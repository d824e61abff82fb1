// Strategies that do not fit the model or the world are refused with the
// reason.
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=3 tp=2" 2>&1 | FileCheck %s --check-prefix=WORLD
// WORLD: error: galv-apply-strategy: layer 0: tp = 2 does not divide the 3 devices per stage
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 tp=1,1,2" 2>&1 | FileCheck %s --check-prefix=LAYERS
// LAYERS: error: galv-apply-strategy: tp has 3 entries but the model has 2 layers
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=4 pp=3" 2>&1 | FileCheck %s --check-prefix=PP
// PP: error: galv-apply-strategy: pp = 3 does not divide world size 4
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 dp-type=fsdp" 2>&1 | FileCheck %s --check-prefix=KIND
// KIND: error: galv-apply-strategy: default dp type 'fsdp' is not ddp, zero2 or zero3
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 global-batch=5" 2>&1 | FileCheck %s --check-prefix=BATCH
// BATCH: error: galv-apply-strategy: global batch 5 is not 1 chunks x the imported batch 2
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=4 tp=2" 2>&1 | FileCheck %s --check-prefix=SPLIT
// SPLIT: error: galv-apply-strategy: the imported batch 2 does not split over the embedding's dp = 4
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t.missing.json" 2>&1 | FileCheck %s --check-prefix=NOFILE
// NOFILE: error: galv-apply-strategy: cannot read '{{.*}}missing.json'
// RUN: echo '{"pp_deg": 1, "tp_sizes_enc": "1,1"}' > %t.short.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t.short.json" 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: error: galv-apply-strategy: {{.*}}short.json: missing key 'tp_consecutive_flags'
// RUN: echo '{"pp_deg": 1, "tp_size": 2}' > %t.typo.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t.typo.json" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: error: galv-apply-strategy: {{.*}}typo.json: unknown key 'tp_size'
// RUN: echo '{"pp_deg": "x"}' > %t.bad.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t.bad.json" 2>&1 | FileCheck %s --check-prefix=VALUE
// VALUE: error: galv-apply-strategy: {{.*}}bad.json: key 'pp_deg' must be a list of integers
// Heads that do not split over the tensor-parallel group (4 heads, tp 8).
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --batch-size 8 --seq-len 8 --weights-out %t.safetensors | not galvatron-opt --galv-apply-strategy="world-size=8 tp=8" --galv-inline-layers --galv-append-loss --galv-partition 2>&1 | FileCheck %s --check-prefix=HEADS
// HEADS: error: galv-partition: dimension of 4 (heads?) does not split over 8 ranks
// Sequence parallelism needs the sequence (6 here) to split over tp.
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --batch-size 4 --seq-len 6 --weights-out %t.sp.safetensors -o %t.sp.mlir
// RUN: not galvatron-opt %t.sp.mlir --galv-apply-strategy="world-size=4 tp=4 sp=ulysses" 2>&1 | FileCheck %s --check-prefix=SEQ
// SEQ: error: galv-apply-strategy: layer 0: sequence parallelism needs the sequence of 6 to split over tp = 4
