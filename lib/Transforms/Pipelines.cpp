//===- Pipelines.cpp - pass pipelines built from the galv passes ----------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/Passes.h"

void mlir::galv::buildImportCleanupPipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createRecomposeLinear());
  pm.addPass(createRecomposeEmbedding());
  pm.addPass(createRecomposeNorms());
  pm.addPass(createRecomposeActivations());
  pm.addPass(createRecomposeRotary());
  pm.addPass(createRecomposeAttention());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSymbolDCEPass());
  pm.addPass(createOutlineLayers());
}

void mlir::galv::buildInferencePipeline(OpPassManager &pm) {
  pm.addPass(createInlineLayers());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSymbolDCEPass());
}

void mlir::galv::buildTrainingPipeline(OpPassManager &pm,
                                       const TrainingPipelineOptions &options) {
  buildInferencePipeline(pm);
  pm.addPass(createAppendLoss());
  pm.addPass(createPartition());
  pm.addPass(createAutodiff());
  AdamWOptions adamw;
  adamw.beta1 = options.beta1;
  adamw.beta2 = options.beta2;
  adamw.epsilon = options.epsilon;
  adamw.weightDecay = options.weightDecay;
  adamw.clipNorm = options.clipNorm;
  adamw.microBatches = options.microBatches;
  pm.addPass(createAdamW(adamw));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}
