// The optimizer's hyper-parameters reach @train_step through the pipeline's
// options; an unknown option is refused.
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy=world-size=1 \
// RUN:   '--galv-training-pipeline=beta1=0.8 beta2=0.95 eps=1e-6 weight-decay=0.25 clip-norm=1.5' \
// RUN:   | FileCheck %s
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy=world-size=1 \
// RUN:   --galv-training-pipeline | FileCheck %s --check-prefix=DEFAULT
// RUN: not galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy=world-size=1 \
// RUN:   '--galv-training-pipeline=momentum=0.9' 2>&1 | FileCheck %s --check-prefix=BAD

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: galv.name = "lr"
// Clipping scales the gradients by min(1, 1.5 / (norm + 1e-6)).
// CHECK-DAG: galv.constant dense<1.500000e+00> : tensor<f32>
// CHECK: galv.min {{.*}} : tensor<f32>, tensor<f32> -> tensor<f32>
// CHECK: galv.adamw_update {{.*}} beta1 = 8.000000e-01, beta2 = 0.94999999999999996, eps = 9.9999999999999995E-7, weight_decay = 2.500000e-01

// DEFAULT-LABEL: func.func @train_step(
// DEFAULT: galv.adamw_update {{.*}} beta1 = 9.000000e-01, beta2 = 0.99899999999999999, eps = 1.000000e-08, weight_decay = 1.000000e-02
// DEFAULT-NOT: dense<1.500000e+00>
// DEFAULT-NOT: galv.min

// BAD: no such option momentum

// Two micro-batches: the step takes both stacked (2x8 imported, 4x8 here),
// slices them apart and averages the two losses.
// RUN: galvatron-opt %galvatron_src_root/models/examples/tiny-gpt.mlir --galv-apply-strategy=world-size=1 \
// RUN:   '--galv-training-pipeline=micro-batches=2' | FileCheck %s --check-prefix=MICRO
// MICRO-LABEL: func.func @train_step(%arg0: tensor<4x8xi64> {galv.name = "input0"}
// MICRO-DAG: galv.slice %arg0 [0, 0] [2, 8] [1, 1] {{.*}}: tensor<4x8xi64> -> tensor<2x8xi64>
// MICRO-DAG: galv.slice %arg0 [2, 0] [4, 8] [1, 1] {{.*}}: tensor<4x8xi64> -> tensor<2x8xi64>
// MICRO-DAG: galv.constant {{.*}}dense<5.000000e-01> : tensor<f32>
