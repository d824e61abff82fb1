//===- ONNX.h - import ONNX models into the galv dialect --------*- C++ -*-===//

#ifndef GALVATRON_IMPORT_ONNX_H
#define GALVATRON_IMPORT_ONNX_H

#include "galvatron/Support/Safetensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <map>
#include <string>

namespace mlir::galv {

struct ONNXImportOptions {
  /// Values for symbolic dimensions: the batch dimension (dimension 0 of the
  /// inputs, or any named like "batch"), the sequence dimension (dimension 1,
  /// or named like "seq"/"sequence"/"length"), and any by name.
  int64_t batchSize = 0;
  int64_t seqLen = 0;
  std::map<std::string, int64_t> namedDims;
};

/// Imports the ONNX model in `bytes` (a binary ModelProto, or protobuf text
/// format when `path` ends in .pbtxt/.textproto/.txt) into a module holding
/// `func.func @forward` over galv ops. `path` locates external data and names
/// the model in diagnostics. Weights the IR reads become galv.parameter ops
/// and their bytes land in `weights`, keyed by initializer name. Shape
/// computations are folded away. Returns null after emitting a diagnostic.
OwningOpRef<ModuleOp>
importONNX(MLIRContext *context, StringRef bytes, StringRef path,
           const ONNXImportOptions &options,
           std::map<std::string, galvatron::SafetensorsTensor> &weights);

/// Registers `--import-onnx` with galvatron-translate.
void registerONNXImportTranslation();

} // namespace mlir::galv

#endif // GALVATRON_IMPORT_ONNX_H
