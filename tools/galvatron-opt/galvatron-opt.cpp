//===- galvatron-opt.cpp - run galv passes on MLIR files ------------------===//

#include "Galv/Galv.h"
#include "galvatron/Support/FileChecks.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/raw_ostream.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::galv::GalvDialect, mlir::func::FuncDialect>();

  mlir::galv::registerGalvPasses();
  mlir::PassPipelineRegistration<>(
      "galv-inference-pipeline",
      "Prepare an imported model for --emit-plan: inline the layers, clean "
      "up, then assign stages, schedule and plan memory of @forward",
      [](mlir::OpPassManager &pm) { mlir::galv::buildInferencePipeline(pm); });
  mlir::PassPipelineRegistration<mlir::galv::TrainingPipelineOptions>(
      "galv-training-pipeline",
      "From imported IR to @train_step: next-token loss, gradients, clipping "
      "and AdamW, then its stages assigned, scheduled and memory-planned",
      [](mlir::OpPassManager &pm,
         const mlir::galv::TrainingPipelineOptions &options) {
        mlir::galv::buildTrainingPipeline(pm, options);
      });
  // Generic clean-ups people chain with ours.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();

  auto [input, output] = mlir::registerAndParseCLIOptions(
      argc, argv, "galvatron optimizer driver\n", registry);
  // MlirOptMain truncates -o before it has read all of the input.
  std::string error =
      galvatron::findOutputOverInput({{"-o", output}}, {{"the input", input}});
  if (!error.empty()) {
    llvm::errs() << "galvatron-opt: error: " << error << "\n";
    return 1;
  }
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, input, output, registry));
}
