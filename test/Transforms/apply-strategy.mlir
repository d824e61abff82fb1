// Strategies from Galvatron's GLOBAL flags and from its config file, and
// the config written back.
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=4 tp=2 tp-consec=0 dp-type=zero3 checkpoint=1 chunks=3 vocab-tp=2" | FileCheck %s --check-prefix=GLOBAL
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%S/Inputs/galvatron_config_tiny.json" | FileCheck %s --check-prefix=CONFIG
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%S/Inputs/galvatron_config_tiny.json" --galv-export-config="path=%t.json" -o /dev/null
// RUN: diff %t.json %S/Inputs/galvatron_config_tiny.json
// Per-layer lists in the flag form.
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 tp=1,2 sdp=1,0 checkpoint=0,1" | FileCheck %s --check-prefix=MIXED

// GLOBAL: galv.plan = #galv.plan<world_size = 4, pp = 1, pp_division = [2], chunks = 3, global_batch = 6, default_dp_kind = zero3, vocab_tp = 2>
// GLOBAL: galv.layer @gpt2_block{{.*}}strategy = #galv.strategy<tp = 2, dp = 2, tp_consecutive = false, dp_kind = zero3, checkpoint = true>
// GLOBAL: galv.layer @gpt2_block{{.*}}strategy = #galv.strategy<tp = 2, dp = 2, tp_consecutive = false, dp_kind = zero3, checkpoint = true>

// CONFIG: galv.plan = #galv.plan<world_size = 2, pp = 1, pp_division = [2], chunks = 2, global_batch = 4, default_dp_kind = zero2>
// CONFIG: strategy = #galv.strategy<tp = 2, dp = 1, checkpoint = true>
// CONFIG: strategy = #galv.strategy<tp = 1, dp = 2, tp_consecutive = false, dp_kind = zero3>

// MIXED: strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero3>
// MIXED: strategy = #galv.strategy<tp = 2, dp = 1, checkpoint = true>
