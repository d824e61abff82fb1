//===- LayerSummary.h - a table of a model's layers -------------*- C++ -*-===//

#ifndef GALVATRON_TARGET_LAYERSUMMARY_H
#define GALVATRON_TARGET_LAYERSUMMARY_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::galv {
/// Writes one row per layer instance in program order (index, layer type,
/// stage, strategy, parameter count and bytes) followed by the totals over
/// every declared parameter. Fails, with a diagnostic, on an instance whose
/// layer type is missing.
LogicalResult printLayerSummary(ModuleOp module, llvm::raw_ostream &os);
} // namespace mlir::galv

#endif // GALVATRON_TARGET_LAYERSUMMARY_H
