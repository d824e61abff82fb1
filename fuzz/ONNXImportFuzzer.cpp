//===- ONNXImportFuzzer.cpp - libFuzzer target for the ONNX importer ------===//
//
// Feeds arbitrary bytes to the importer as a binary ModelProto, then runs the
// import clean-up pipeline on whatever imports and, on what survives it,
// the strategy and training passes: --galv-apply-strategy under two small
// strategies (2-way tensor parallelism, 2-way data parallelism), each
// followed by --galv-training-pipeline, on a copy of the module. Diagnostics
// are swallowed: a clean rejection is success, a crash, an abort or a
// sanitizer report is a bug.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <cstdlib>

namespace {

/// The strategies each imported module is trained under.
constexpr const char *kStrategies[] = {
    "builtin.module(galv-apply-strategy{world-size=2 tp=2})",
    "builtin.module(galv-apply-strategy{world-size=2})",
};

/// Runs `strategy` and the training pipeline on a copy of `module`.
void train(mlir::ModuleOp module, const char *strategy) {
  mlir::MLIRContext *context = module.getContext();
  mlir::OwningOpRef<mlir::ModuleOp> copy(module.clone());
  mlir::PassManager pm(context);
  if (mlir::failed(mlir::parsePassPipeline(strategy, pm))) {
    // A pipeline of our own that does not parse is a bug in this target.
    llvm::errs() << "fuzzer: cannot parse " << strategy << "\n";
    std::abort();
  }
  mlir::galv::buildTrainingPipeline(pm, mlir::galv::TrainingPipelineOptions());
  (void)pm.run(*copy);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::MLIRContext *context = [] {
    mlir::galv::registerGalvPasses();
    auto *ctx = new mlir::MLIRContext(mlir::MLIRContext::Threading::DISABLED);
    ctx->getDiagEngine().registerHandler(
        [](mlir::Diagnostic &) { return mlir::success(); });
    return ctx;
  }();
  mlir::galv::ONNXImportOptions options;
  options.batchSize = 2;
  options.seqLen = 4;
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  std::unique_ptr<mlir::galv::ImportedONNX> imported =
      mlir::galv::importONNX(context, bytes, "fuzz/model.onnx", options);
  if (!imported)
    return 0;
  mlir::PassManager pm(context);
  mlir::galv::buildImportCleanupPipeline(pm);
  if (mlir::failed(pm.run(*imported->module)))
    return 0;
  for (const char *strategy : kStrategies)
    train(*imported->module, strategy);
  return 0;
}
