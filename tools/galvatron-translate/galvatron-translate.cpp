//===- galvatron-translate.cpp - translations in and out of galv ----------===//
//
// The ONNX importer and the plan emitter register here as they land; for now
// the tool carries the layer summary, a readable table of a model's layers.
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"
#include "galvatron/Target/LayerSummary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "mlir/Tools/mlir-translate/Translation.h"

int main(int argc, char **argv) {
  mlir::TranslateFromMLIRRegistration summary(
      "galv-layer-summary",
      "print a table of the layer instances: type, stage, strategy, "
      "parameters",
      [](mlir::Operation *op, llvm::raw_ostream &os) -> mlir::LogicalResult {
        auto module = llvm::dyn_cast<mlir::ModuleOp>(op);
        if (!module)
          return op->emitError("expected a builtin.module");
        return mlir::galv::printLayerSummary(module, os);
      },
      [](mlir::DialectRegistry &registry) {
        registry.insert<mlir::galv::GalvDialect, mlir::func::FuncDialect>();
      });

  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "galvatron translation driver\n"));
}
