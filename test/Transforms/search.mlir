// galv-search on the hand-costed model of annotate-costs.mlir (1 TFLOP/s,
// 1 GB/s, 2 devices): with room, ZeRO-2 data parallelism; tighter, ZeRO-3;
// tighter still, tensor parallelism; below the smallest plan, a refusal
// that names the memory that would fit. verify-memory=0 shows the cost
// model's own choices; by default the best candidates are lowered and the
// first whose exact plan memory fits wins (VERIFIED), or none does (EXACT).
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 report=%t.md" | FileCheck %s --check-prefix=ROOM
// RUN: FileCheck %s --check-prefix=REPORT < %t.md
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=3.1e-6 verify-memory=0" | FileCheck %s --check-prefix=ZERO3
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=3.06e-6 verify-memory=0 report=%t.json" | FileCheck %s --check-prefix=TIGHT
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=2e-6" 2>&1 | FileCheck %s --check-prefix=NOFIT
// The space options: plain data parallelism only cannot fit the tight
// budget; tensor parallelism only can.
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=3.06e-6 verify-memory=0 space=dp" 2>&1 | FileCheck %s --check-prefix=NOFIT
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 space=tp" | FileCheck %s --check-prefix=TIGHT
// The chosen plan saved as Galvatron's config and applied again is the same.
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=3.06e-6 verify-memory=0" --galv-export-config="path=%t.config.json" -o /dev/null
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-apply-strategy="world-size=2 config=%t.config.json megatron-sp=1" | FileCheck %s --check-prefix=TIGHT
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=5.5e-6 report=%t.verified.md" | FileCheck %s --check-prefix=VERIFIED
// RUN: FileCheck %s --check-prefix=VERIFIED-REPORT < %t.verified.md
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=4.5e-6" 2>&1 | FileCheck %s --check-prefix=EXACT
// apply=0 reports without applying; chunk counts are then free.
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 global-batch=8 chunks=1,2 apply=0 report=%t.apply0.json" | FileCheck %s --check-prefix=NOAPPLY
// RUN: FileCheck %s --check-prefix=NOAPPLY-REPORT < %t.apply0.json
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 chunks=2" 2>&1 | FileCheck %s --check-prefix=CHUNKS
// Bad options and a module without costs.
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-search="world-size=2 memory-gb=1" 2>&1 | FileCheck %s --check-prefix=NOCOSTS
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=4 memory-gb=1" 2>&1 | FileCheck %s --check-prefix=WORLD
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2" 2>&1 | FileCheck %s --check-prefix=BUDGET
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 global-batch=3" 2>&1 | FileCheck %s --check-prefix=BATCH
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 space=4d" 2>&1 | FileCheck %s --check-prefix=SPACE
// RUN: not galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 division=free" 2>&1 | FileCheck %s --check-prefix=DIVISION
// RUN: galvatron-opt %S/annotate-costs.mlir --galv-annotate-costs="hardware=%S/Inputs/hw-round.json" --galv-search="world-size=2 memory-gb=1 division=search" | FileCheck %s --check-prefix=ROOM

// NOAPPLY-NOT: galv.plan
// NOAPPLY-NOT: strategy =
// NOAPPLY-REPORT: "global_batch": 8,
// CHUNKS: error: galv-search: option 'chunks' is for apply=0

// ROOM: galv.plan = #galv.plan<world_size = 2, pp = 1, pp_division = [1], chunks = 1, global_batch = 2, schedule = pipedream_flush, default_dp_kind = zero2>
// ROOM: strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero2>

// REPORT: # galv-search report
// REPORT: native costs on hardware 'round-numbers', 2 devices
// REPORT: ## Chosen
// REPORT: layer 0: tp1 dp2
// REPORT: ## Alternatives
// REPORT: | data parallel (DDP) |

// ZERO3: embed_zero3 = true
// ZERO3: strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero3>

// VERIFIED: embed_zero3 = true
// VERIFIED: strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero2>
// VERIFIED-REPORT: lowered: {{[0-9]+}} bytes on its largest rank
// EXACT: error: galv-search: the best 5 plans fit the cost model's estimate but none fits its exact plan memory (the smallest needs {{[0-9]+}} bytes on its largest rank); raise memory-gb or top

// TIGHT: strategy = #galv.strategy<tp = 2, dp = 1, sp = megatron>

// JSON: "world_size": 2,
// JSON: "chosen": {
// JSON: "layers": [
// JSON-NEXT: "tp2 dp1"
// JSON: "alternatives": [
// JSON: "name": "data parallel (DDP)",
// JSON-NEXT: "fits": false,

// NOFIT: error: galv-search: nothing fits {{.*}} per device; the smallest memory per device that fits is {{.*}} GB ({{[0-9]+}} bytes) (memory-gb={{.*}})
// NOCOSTS: error: galv-search: the module has no cost attributes (galv.costs): run --galv-annotate-costs first
// WORLD: error: galv-search: hardware 'round-numbers' has 1 node(s) of 2 devices; 4 devices on 2 node(s) do not fit it
// BUDGET: error: galv-search: option 'memory-gb' must be positive
// BATCH: error: galv-search: option 'global-batch' 3 holds no multiple of the imported batch 2
// SPACE: error: galv-search: option 'space' is '4d'
// DIVISION: error: galv-search: option 'division' is 'free'; expected even or search
