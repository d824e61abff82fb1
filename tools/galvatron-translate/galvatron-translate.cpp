//===- galvatron-translate.cpp - translations in and out of galv ----------===//
//
// --import-onnx brings a model in; --galv-layer-summary prints a readable table
// of a model's layers. Plan emission registers here when it lands.
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"
#include "galvatron/Import/ONNX.h"
#include "galvatron/Target/LayerSummary.h"
#include "galvatron/Target/Plan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "mlir/Tools/mlir-translate/Translation.h"

int main(int argc, char **argv) {
  mlir::galv::registerONNXImportTranslation();
  mlir::galv::registerPlanTranslations();
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
