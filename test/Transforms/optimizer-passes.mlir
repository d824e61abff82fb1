// The optimizer's four passes on a hand-written @loss_grad: @w's gradient is
// all-reduced (DDP), @b's is a tensor-parallel piece (the second half of
// dimension 0) whose gradient ZeRO-2 reduce-scatters.
// RUN: galvatron-opt %s --galv-accumulate-micro-batches=micro-batches=2 | FileCheck %s --check-prefix=ACC
// RUN: galvatron-opt %s --galv-accumulate-micro-batches --galv-sync-gradients | FileCheck %s --check-prefix=SYNC
// RUN: galvatron-opt %s --galv-accumulate-micro-batches --galv-sync-gradients \
// RUN:   --galv-clip-gradients=clip-norm=0.5 | FileCheck %s --check-prefix=CLIP
// RUN: galvatron-opt %s --galv-accumulate-micro-batches --galv-sync-gradients \
// RUN:   --galv-adamw | FileCheck %s --check-prefix=STEP
// RUN: galvatron-opt %s --galv-accumulate-micro-batches --galv-sync-gradients \
// RUN:   --galv-adamw=fused=false | FileCheck %s --check-prefix=UNFUSED
// RUN: not galvatron-opt %s --galv-accumulate-micro-batches --galv-adamw 2>&1 \
// RUN:   | FileCheck %s --check-prefix=UNSYNCED
// RUN: not galvatron-opt %s --galv-accumulate-micro-batches --galv-clip-gradients 2>&1 \
// RUN:   | FileCheck %s --check-prefix=CLIP-UNSYNCED
// RUN: not galvatron-opt %s --galv-sync-gradients 2>&1 | FileCheck %s --check-prefix=NO-BATCH
// RUN: not galvatron-opt %s --galv-accumulate-micro-batches=micro-batches=0 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ZERO

galv.parameter @w : tensor<4x3xf32> trainable
galv.parameter @b : tensor<6xf32> trainable

func.func @loss_grad(%x: tensor<2x4xf32> {onnx.name = "x"})
    -> (tensor<f32>, tensor<4x3xf32> {galv.grad_of = "w"},
        tensor<3xf32> {galv.grad_of = "b"}) {
  %w = galv.get_parameter @w {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>} : tensor<4x3xf32>
  %b = galv.get_parameter @b shard #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 1>>]> {galv.grad_sync = #galv.grad_sync<reduce_scatter, group = <size = 2, stride = 1>>} : tensor<3xf32>
  %y = galv.matmul %x, %w : tensor<2x4xf32>, tensor<4x3xf32> -> tensor<2x3xf32>
  %loss = galv.reduce sum %y axes = [0, 1] : tensor<2x3xf32> -> tensor<f32>
  %gb = galv.tanh %b : tensor<3xf32>
  return %loss, %w, %gb : tensor<f32>, tensor<4x3xf32>, tensor<3xf32>
}

// Two micro-batches stacked along the batch dimension, sliced apart, the
// losses and gradients averaged; parameters are arguments that say where
// they came from.
// ACC-LABEL: func.func @batch_grad(%arg0: tensor<4x4xf32> {onnx.name = "x"},
// ACC-SAME: %arg1: tensor<4x3xf32> {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>, galv.param = @w},
// ACC-SAME: %arg2: tensor<3xf32> {galv.grad_sync = #galv.grad_sync<reduce_scatter, group = <size = 2, stride = 1>>, galv.param = @b, galv.shard = #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 1>>]>})
// ACC-SAME: -> (tensor<f32>, tensor<4x3xf32> {galv.grad_of = "w"}, tensor<3xf32> {galv.grad_of = "b"})
// ACC-DAG: galv.slice %arg0 [0, 0] [2, 4] [1, 1] {galv.micro_batch = 0 : i64}
// ACC-DAG: galv.slice %arg0 [2, 0] [4, 4] [1, 1] {galv.micro_batch = 1 : i64}
// ACC-DAG: %[[HALF:.*]] = galv.constant dense<5.000000e-01> : tensor<f32>
// ACC: %[[L:.*]] = galv.mul {{.*}}, %[[HALF]] : tensor<f32>
// ACC: %[[GW:.*]] = galv.mul {{.*}}, %[[HALF]] : tensor<4x3xf32>
// ACC: %[[GB:.*]] = galv.mul {{.*}}, %[[HALF]] : tensor<3xf32>
// ACC: return %[[L]], %[[GW]], %[[GB]]

// DDP all-reduces @w's gradient; ZeRO-2 reduce-scatters @b's flattened
// gradient, padded from 3 to 4 elements; the attribute moves to the result.
// SYNC-LABEL: func.func @batch_grad(
// SYNC-SAME: %arg1: tensor<4x3xf32> {galv.param = @w}
// SYNC-SAME: -> (tensor<f32>, tensor<4x3xf32> {galv.grad_of = "w", galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>}, tensor<2xf32> {galv.grad_of = "b", galv.grad_sync = #galv.grad_sync<reduce_scatter, group = <size = 2, stride = 1>>})
// SYNC: %[[W:.*]] = galv.all_reduce sum %arg1 group = <size = 2, stride = 1>
// SYNC: %[[FLAT:.*]] = galv.reshape %{{.*}} : tensor<3xf32> -> tensor<3xf32>
// SYNC: %[[PAD:.*]] = galv.concat %[[FLAT]], %{{.*}} axis = 0 : tensor<3xf32>, tensor<1xf32> -> tensor<4xf32>
// SYNC: %[[B:.*]] = galv.reduce_scatter %[[PAD]] axis = 0 group = <size = 2, stride = 1> : tensor<4xf32> -> tensor<2xf32>
// SYNC: return %{{.*}}, %[[W]], %[[B]]

// Clipping: the squared norms of the synchronised gradients (@b's is its
// reduce-scattered piece), then min(1, 0.5 / (norm + 1e-6)) scales every
// gradient. Without a strategy a stage is one rank, so nothing is weighted
// or all-reduced (the equivalence suite's clip-* strategies cover that).
// CLIP-LABEL: func.func @batch_grad(
// CLIP: galv.reduce sum {{.*}} axes = [0, 1] : tensor<4x3xf32> -> tensor<f32>
// CLIP: galv.reduce sum {{.*}} axes = [0] : tensor<2xf32> -> tensor<f32>
// CLIP: %[[NORM:.*]] = galv.sqrt
// CLIP: galv.constant dense<5.000000e-01>
// CLIP: %[[F:.*]] = galv.min
// CLIP-DAG: galv.mul %{{.*}}, %[[F]] : tensor<4x3xf32>, tensor<f32> -> tensor<4x3xf32>
// CLIP-DAG: galv.mul %{{.*}}, %[[F]] : tensor<2xf32>, tensor<f32> -> tensor<2xf32>

// The step: @batch_grad is consumed; ZeRO-2 keeps @b's moments as the
// rank's flat piece (2 of the 4 padded elements), updates that piece of the
// parameter and gathers the new parameter back.
// STEP-NOT: func.func @batch_grad
// The runtime reads each input's role and parameter, not its name.
// STEP-LABEL: func.func @train_step(%arg0: tensor<2x4xf32> {galv.name = "x"}, %arg1: tensor<f32> {galv.name = "lr", galv.role = #galv.role<learning_rate>}, %arg2: tensor<f32> {galv.name = "step", galv.role = #galv.role<step>},
// STEP-SAME: %arg3: tensor<4x3xf32> {galv.name = "param:w", galv.param = @w, galv.role = #galv.role<parameter>}
// STEP-SAME: %arg4: tensor<3xf32> {galv.name = "param:b", galv.param = @b, galv.role = #galv.role<parameter>, galv.shard = #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 1>>]>}
// STEP-SAME: %arg6: tensor<2xf32> {galv.name = "adam_m:b", galv.param = @b, galv.role = #galv.role<adam_m>, galv.shard = #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 1>>], flat = <size = 2, stride = 1>>}
// STEP: %[[P:.*]], %[[M:.*]], %[[V:.*]] = galv.adamw_update %arg3, %{{.*}}, %arg5, %arg7, %arg1, %arg2 beta1 = 9.000000e-01, beta2 = 0.99899999999999999, eps = 1.000000e-08, weight_decay = 1.000000e-02 : tensor<4x3xf32>, tensor<f32>
// STEP: galv.shard_slice {{.*}} axis = 0 group = <size = 2, stride = 1> : tensor<4xf32> -> tensor<2xf32>
// STEP: galv.adamw_update {{.*}} : tensor<2xf32>, tensor<f32>
// STEP: galv.all_gather {{.*}} axis = 0 group = <size = 2, stride = 1> : tensor<2xf32> -> tensor<4xf32>
// STEP: galv.slice {{.*}} [0] [3] [1] : tensor<4xf32> -> tensor<3xf32>
// STEP: return %{{.*}}, %[[P]], %{{.*}}, %[[M]], %{{.*}}, %[[V]], %{{.*}} :

// Unfused: the same update as elementwise ops, no fused op.
// UNFUSED-LABEL: func.func @train_step
// UNFUSED-NOT: galv.adamw_update
// UNFUSED: galv.sqrt
// UNFUSED-NOT: galv.adamw_update
// UNFUSED: return

// UNSYNCED: error: galv-adamw: the gradient of argument 1 is not synchronised yet (run galv-sync-gradients)
// CLIP-UNSYNCED: error: galv-clip-gradients: the gradient of argument 1 is not synchronised yet (run galv-sync-gradients)
// NO-BATCH: error: galv-sync-gradients needs func.func @batch_grad (run galv-accumulate-micro-batches)
// ZERO: error: galv-accumulate-micro-batches: micro-batches must be at least 1
