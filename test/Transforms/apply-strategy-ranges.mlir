// Strategy values out of range, and GLOBAL list flags given twice, are
// refused naming the key or option and the value (they used to be taken as
// "on", or to read past the layers: pp_division "3,-1").
// RUN: rm -rf %t && mkdir -p %t
// RUN: cp %S/Inputs/galvatron_config_tiny.json %t/base.json
// RUN: sed 's|"dp_types_enc": "0,1"|"dp_types_enc": "7,7"|' %t/base.json > %t/sdp.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/sdp.json" 2>&1 | FileCheck %s --check-prefix=SDP
// SDP: error: galv-apply-strategy: {{.*}}sdp.json: key 'dp_types_enc' has 7 for layer 0; it must be 0 or 1
// RUN: sed 's|"use_sp": "0,0"|"use_sp": "0,5"|' %t/base.json > %t/sp.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/sp.json" 2>&1 | FileCheck %s --check-prefix=SP
// SP: error: galv-apply-strategy: {{.*}}sp.json: key 'use_sp' has 5 for layer 1; it must be 0 or 1
// RUN: sed 's|"checkpoint": "1,0"|"checkpoint": "9,9"|' %t/base.json > %t/ckpt.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/ckpt.json" 2>&1 | FileCheck %s --check-prefix=CKPT
// CKPT: error: galv-apply-strategy: {{.*}}ckpt.json: key 'checkpoint' has 9 for layer 0; it must be 0 or 1
// RUN: sed 's|"tp_consecutive_flags": "1,0"|"tp_consecutive_flags": "1,-1"|' %t/base.json > %t/consec.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/consec.json" 2>&1 | FileCheck %s --check-prefix=CONSEC
// CONSEC: error: galv-apply-strategy: {{.*}}consec.json: key 'tp_consecutive_flags' has -1 for layer 1; it must be 0 or 1
// RUN: sed 's|"vsp": 0|"vsp": 2|' %t/base.json > %t/vsp.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/vsp.json" 2>&1 | FileCheck %s --check-prefix=VSP
// VSP: error: galv-apply-strategy: {{.*}}vsp.json: key 'vsp' has 2; it must be 0 or 1
// RUN: sed 's|"global_bsz": 4|"global_bsz": 0|' %t/base.json > %t/bsz.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/bsz.json" 2>&1 | FileCheck %s --check-prefix=BSZ
// BSZ: error: galv-apply-strategy: {{.*}}bsz.json: key 'global_bsz' has 0; it must be at least 1
// Stages with a negative or zero layer count.
// RUN: sed -e 's|"pp_deg": 1|"pp_deg": 2|' -e 's|"tp_sizes_enc": "2,1"|"tp_sizes_enc": "1,1"|' -e 's|"pp_division": "2"|"pp_division": "3,-1"|' %t/base.json > %t/negative.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/negative.json" 2>&1 | FileCheck %s --check-prefix=NEGATIVE
// NEGATIVE: error: galv-apply-strategy: key 'pp_division' gives stage 1 -1 layers; every stage needs at least one
// RUN: sed -e 's|"pp_deg": 1|"pp_deg": 2|' -e 's|"tp_sizes_enc": "2,1"|"tp_sizes_enc": "1,1"|' -e 's|"pp_division": "2"|"pp_division": "2,0"|' %t/base.json > %t/empty.json
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/empty.json" 2>&1 | FileCheck %s --check-prefix=EMPTY
// EMPTY: error: galv-apply-strategy: key 'pp_division' gives stage 1 0 layers; every stage needs at least one

// GLOBAL flags.
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 checkpoint=5" 2>&1 | FileCheck %s --check-prefix=FCKPT
// FCKPT: error: galv-apply-strategy: option 'checkpoint' has 5; it must be 0 or 1
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 sdp=0,7" 2>&1 | FileCheck %s --check-prefix=FSDP
// FSDP: error: galv-apply-strategy: option 'sdp' has 7 for layer 1; it must be 0 or 1
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 tp=2 tp-consec=9" 2>&1 | FileCheck %s --check-prefix=FCONSEC
// FCONSEC: error: galv-apply-strategy: option 'tp-consec' has 9; it must be 0 or 1
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 tp=1 tp=2" 2>&1 | FileCheck %s --check-prefix=FREPEAT
// FREPEAT: error: galv-apply-strategy: option 'tp' is given 2 times; give it once
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 pp=2 pp=1" 2>&1 | FileCheck %s --check-prefix=FREPEATPP
// FREPEATPP: error: galv-apply-strategy: option 'pp' is given 2 times; give it once
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 global-batch=-2" 2>&1 | FileCheck %s --check-prefix=FBATCH
// FBATCH: error: galv-apply-strategy: option 'global-batch' has -2; it must be positive, or 0 for the imported batch x chunks
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 pp=2 pp-division=3,-1" 2>&1 | FileCheck %s --check-prefix=FNEGATIVE
// FNEGATIVE: error: galv-apply-strategy: option 'pp-division' gives stage 1 -1 layers; every stage needs at least one
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 pp=2 pp-division=2,0" 2>&1 | FileCheck %s --check-prefix=FEMPTY
// FEMPTY: error: galv-apply-strategy: option 'pp-division' gives stage 1 0 layers; every stage needs at least one
// The valid fixture still applies.
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy="world-size=2 config=%t/base.json" -o /dev/null
