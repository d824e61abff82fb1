//===- InitAllGalvatron.h - register what galvatron provides ---*- C++ -*-===//
//
// One place the tools (and anyone embedding galvatron in their own driver)
// register from, as mlir/InitAllDialects.h does for MLIR: the dialects, the
// passes with their pipelines, and the translations. Call each once.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_INITALLGALVATRON_H
#define GALVATRON_INITALLGALVATRON_H

#include "Galv/Galv.h"
#include "galvatron/Import/ONNX.h"
#include "galvatron/Target/LayerSummary.h"
#include "galvatron/Target/Plan.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::galv {

/// The dialects galvatron's IR is written in.
inline void registerAllGalvatronDialects(DialectRegistry &registry) {
  registry.insert<GalvDialect, func::FuncDialect>();
}

/// Every galv pass, the inference and training pipelines, and the generic
/// clean-ups people chain with them.
inline void registerAllGalvatronPasses() {
  registerGalvPasses();
  PassPipelineRegistration<InferencePipelineOptions>(
      "galv-inference-pipeline",
      "Prepare an imported model for --emit-plan: inline the layers, clean "
      "up, then assign stages, schedule and plan memory of @forward",
      [](OpPassManager &pm, const InferencePipelineOptions &options) {
        buildInferencePipeline(pm, options);
      });
  PassPipelineRegistration<TrainingPipelineOptions>(
      "galv-training-pipeline",
      "From imported IR to @train_step: next-token loss, gradients, clipping "
      "and AdamW, then its stages assigned, scheduled and memory-planned",
      [](OpPassManager &pm, const TrainingPipelineOptions &options) {
        buildTrainingPipeline(pm, options);
      });
  registerCanonicalizerPass();
  registerCSEPass();
  registerSymbolDCEPass();
}

/// ONNX import, plan.bin emission and decoding, and the layer summary.
inline void registerAllGalvatronTranslations() {
  registerONNXImportTranslation();
  registerPlanTranslations();
  TranslateFromMLIRRegistration(
      "galv-layer-summary",
      "print a table of the layer instances: type, stage, strategy, "
      "parameters",
      [](Operation *op, raw_ostream &os) -> LogicalResult {
        auto module = dyn_cast<ModuleOp>(op);
        if (!module)
          return op->emitError("expected a builtin.module");
        return printLayerSummary(module, os);
      },
      registerAllGalvatronDialects);
}

} // namespace mlir::galv

#endif // GALVATRON_INITALLGALVATRON_H
