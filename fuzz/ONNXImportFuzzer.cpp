//===- ONNXImportFuzzer.cpp - libFuzzer target for the ONNX importer ------===//
//
// Feeds arbitrary bytes to the importer as a binary ModelProto, then runs the
// import clean-up pipeline on whatever imports. Diagnostics are swallowed: a
// clean rejection is success, a crash or sanitizer report is a bug.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::MLIRContext *context = [] {
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
  if (imported) {
    mlir::PassManager pm(context);
    mlir::galv::buildImportCleanupPipeline(pm);
    (void)pm.run(*imported->module);
  }
  return 0;
}
