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

/// The inference pipeline, then the loss, reverse-mode gradients and one
/// AdamW step as @train_step (lower it with --emit-plan
/// --plan-function=train_step).
void buildTrainingPipeline(OpPassManager &pm);
} // namespace mlir::galv

#endif // GALVATRON_TRANSFORMS_PASSES_H
