//===- Passes.h - galv passes -----------------------------------*- C++ -*-===//

#ifndef GALVATRON_TRANSFORMS_PASSES_H
#define GALVATRON_TRANSFORMS_PASSES_H

#include "Galv/Galv.h"
#include "mlir/Pass/Pass.h"

namespace mlir::galv {
#define GEN_PASS_DECL
#include "galvatron/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

#endif // GALVATRON_TRANSFORMS_PASSES_H
