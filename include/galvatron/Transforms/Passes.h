//===- Passes.h - galv passes -----------------------------------*- C++ -*-===//

#ifndef GALVATRON_TRANSFORMS_PASSES_H
#define GALVATRON_TRANSFORMS_PASSES_H

#include "Galv/Galv.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::galv {
#define GEN_PASS_DECL
#include "galvatron/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "galvatron/Transforms/Passes.h.inc"

/// The clean-up after ONNX import: folding, recomposition of the ops the
/// strategy passes reason about, and layer outlining.
void buildImportCleanupPipeline(OpPassManager &pm);

/// From imported galv IR to what --emit-plan lowers for a forward pass: one
/// flat @forward (layers inlined), folded and deduplicated.
void buildInferencePipeline(OpPassManager &pm);
} // namespace mlir::galv

#endif // GALVATRON_TRANSFORMS_PASSES_H
