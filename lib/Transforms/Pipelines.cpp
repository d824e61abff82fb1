//===- Pipelines.cpp - pass pipelines built from the galv passes ----------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace {
/// One flat function per entry point: layers inlined, folded, deduplicated.
void buildFlatPipeline(OpPassManager &pm) {
  pm.addPass(galv::createInlineLayers());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSymbolDCEPass());
}

/// What --emit-plan serialises: every op's stage, one function per stage
/// in schedule order, and its buffers placed.
void buildPlanPipeline(OpPassManager &pm, StringRef function) {
  galv::AssignStagesOptions stages;
  stages.function = function.str();
  pm.addPass(galv::createAssignStages(stages));
  galv::ScheduleOptions schedule;
  schedule.function = function.str();
  pm.addPass(galv::createSchedule(schedule));
  pm.addPass(galv::createPlanMemory());
}
} // namespace

void mlir::galv::buildImportCleanupPipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createRecomposeLinear());
  pm.addPass(createRecomposeEmbedding());
  pm.addPass(createRecomposeNorms());
  pm.addPass(createRecomposeActivations());
  pm.addPass(createRecomposeRotary());
  pm.addPass(createRecomposeAttention());
  // Attention over [B * H, S, D] is seen as such once the merge is sunk
  // (recognised forms are matched first: the views of repeat_kv stay).
  pm.addPass(createNormalizeViews());
  pm.addPass(createRecomposeAttention());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSymbolDCEPass());
  pm.addPass(createOutlineLayers());
}

void mlir::galv::buildInferencePipeline(
    OpPassManager &pm, const InferencePipelineOptions &options) {
  buildFlatPipeline(pm);
  if (options.precision == Precision::bf16) {
    pm.addPass(createAutocast());
    pm.addPass(createCSEPass());
  }
  if (options.fuseNorms)
    pm.addPass(createFuseResidualNorm());
  buildPlanPipeline(pm, "forward");
}

void mlir::galv::buildTrainingPipeline(OpPassManager &pm,
                                       const TrainingPipelineOptions &options) {
  buildFlatPipeline(pm);
  pm.addPass(createAppendLoss());
  pm.addPass(createPartition());
  if (options.precision == Precision::bf16)
    pm.addPass(createAutocast());
  AutodiffOptions autodiff;
  autodiff.fusedBackward = options.fusedBackward;
  autodiff.fusedAttention = options.fusedAttention;
  pm.addPass(createAutodiff(autodiff));
  AccumulateMicroBatchesOptions accumulate;
  accumulate.microBatches = options.microBatches;
  pm.addPass(createAccumulateMicroBatches(accumulate));
  pm.addPass(createSyncGradients());
  if (options.clipNorm > 0) {
    ClipGradientsOptions clip;
    clip.clipNorm = options.clipNorm;
    pm.addPass(createClipGradients(clip));
  }
  AdamWOptions adamw;
  adamw.beta1 = options.beta1;
  adamw.beta2 = options.beta2;
  adamw.epsilon = options.epsilon;
  adamw.weightDecay = options.weightDecay;
  adamw.fused = options.fusedAdamW;
  pm.addPass(createAdamW(adamw));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (options.foldTransposes)
    pm.addPass(createFoldTransposes());
  if (options.fuseNorms)
    pm.addPass(createFuseResidualNorm());
  buildPlanPipeline(pm, "train_step");
}
