// What the played-out step charges a lookup and an attention, against a
// hand-made hardware file (Inputs/hw-round-attention.json: 0.01 ms per
// instruction, movement at 1 ns per byte, attention at 1 ns per FLOP for a
// (batch, head) pair of 1024 FLOPs and 0.01 ns at 8192), on the GPT-2
// fixture (hidden 32, 4 heads of 8, vocabulary 128) at batch 2 x 8 tokens.
// RUN: rm -rf %t.trace
// RUN: galvatron-translate --import-onnx %galvatron_src_root/models/fixtures/gpt2-torchscript/model.onnx --batch-size 2 --seq-len 8 -o %t.mlir
// RUN: galvatron-opt %t.mlir --galv-apply-strategy="world-size=1" --galv-annotate-costs="hardware=%S/Inputs/hw-round-attention.json" --galv-estimate="trace=%t.trace" -o /dev/null
// RUN: FileCheck %s < %t.trace/trace-rank0.json

// The token lookup reads of its [128, 32] table only the 2 x 8 rows it
// copies: ids 128 bytes, rows 2048 read and 2048 written, 4224 bytes (the
// whole table would be 18560): 10 + 4.224 us.
// CHECK: {"name":"Embedding","cat":"compute","ph":"X","ts":0.0,"dur":{{14\.22(4|39)[0-9]*}},
// The causal attention of 2 x 4 (batch, head) pairs of 8 x 8: 0.5 x 4 x
// 512 x 8 = 8192 FLOPs, at the rate of one pair's 1024 FLOPs (1 ns), not
// of the whole call's 8192 (0.01 ns): 10 + 8.192 us.
// CHECK: {"name":"Attention",{{.*}}"dur":{{18\.19(2|19)[0-9]*}},
