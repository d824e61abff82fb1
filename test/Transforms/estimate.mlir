// galv-estimate on the hand-costed model of annotate-costs.mlir under 2-way
// tensor parallelism: the table, the JSON, and each rank's bytes per
// collective counted from a lowered copy (the equivalence suite checks them
// against the runtime's counts for every strategy it trains).
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-apply-strategy="world-size=2 tp=2 sp=megatron" --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-estimate="out=%t.json" -o %t.mlir | FileCheck %s --check-prefix=TABLE
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// The module is unchanged.
// RUN: FileCheck %s --check-prefix=SAME < %t.mlir
// Without a strategy, costs or a parsable pipeline option: a clear error.
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-estimate 2>&1 | FileCheck %s --check-prefix=NOPLAN
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-apply-strategy="world-size=2 tp=2" --galv-estimate 2>&1 | FileCheck %s --check-prefix=NOCOSTS
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-apply-strategy="world-size=2 tp=2" --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-estimate="training=bogus=1" 2>&1 | FileCheck %s --check-prefix=TRAINING

// TABLE: galv-estimate (native model, hardware 'round-numbers', 2 devices)
// TABLE-NEXT: step time {{.*}} s, {{.*}} samples/s (global batch 2)
// TABLE-NEXT: stage | time (s)   | peak memory (bytes)
// TABLE-NEXT: 0 |
// TABLE-NEXT: rank | stage | plan memory (bytes) | bytes sent per step
// TABLE-NEXT: 0 |     0 |
// TABLE-NEXT: 1 |     0 |

// JSON: "model": "native",
// JSON: "step_time_s":
// JSON: "samples_per_s":
// JSON: "stages": [
// JSON: "time_s":
// JSON: "peak_memory_bytes":
// JSON: "ranks": [
// JSON: "rank": 0,
// JSON: "plan_memory_bytes":
// JSON: "bytes_sent": {
// JSON-NEXT: "all_gather:0,1":
// JSON: "rank": 1,

// SAME: galv.layer @block{{.*}}strategy = #galv.strategy<tp = 2, dp = 1, sp = megatron>
// SAME-NOT: galv.stage

// NOPLAN: error: galv-estimate: the module has no strategy (galv.plan)
// NOCOSTS: error: galv-estimate: the module has no cost attributes (galv.costs)
// TRAINING: error: galv-estimate: cannot parse 'bogus=1' as training-pipeline options

// With kernel rates the step is played out, and trace=DIR writes it per
// rank as galvatron-run --trace writes a measured step: one complete event
// per instruction with its index and kernel class.
// RUN: rm -rf %t.trace
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-apply-strategy="world-size=2 tp=2 sp=megatron" --galv-annotate-costs="hardware=%S/Inputs/hw-round-rates.json" --galv-estimate="out=%t.rates.json trace=%t.trace" -o /dev/null
// RUN: FileCheck %s --check-prefix=PLAYED < %t.rates.json
// RUN: FileCheck %s --check-prefix=TRACE < %t.trace/trace-rank1.json
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-apply-strategy="world-size=2 tp=2" --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-estimate="trace=%t.none" 2>&1 | FileCheck %s --check-prefix=NORATES

// PLAYED: "plan_step_time_s":
// PLAYED: "finish_s":
// PLAYED: "time_by_class_s": {
// TRACE: {"traceEvents":[{"name":"{{[A-Za-z]+}}","cat":"{{compute|comm}}","ph":"X","ts":0.0,"dur":{{[0-9.e+-]+}},"pid":1,"tid":0,"args":{"step":0,"instruction":0
// TRACE-SAME: "cat":"comm"
// NORATES: error: galv-estimate: trace={{.*}}: the step was not played out (no kernel rates in the hardware, or no plan)
