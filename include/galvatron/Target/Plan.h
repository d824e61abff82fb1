//===- Plan.h - galv IR to plan.bin, and plan.bin to text -------*- C++ -*-===//

#ifndef GALVATRON_TARGET_PLAN_H
#define GALVATRON_TARGET_PLAN_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::galv {
/// Serialises the stage functions galv-schedule and galv-plan-memory made
/// from the function --plan-function names (`@<fn>_stage<s>`): one program
/// per rank, a tensor table, an instruction per op and the arena offsets as
/// the passes computed them, groups and peers resolved for the rank. Writes
/// the header-wrapped FlatBuffer to `os`.
LogicalResult emitPlan(ModuleOp module, llvm::raw_ostream &os);
/// The same for the stage functions of `function` (what --plan-function
/// names on the command line).
LogicalResult emitPlan(ModuleOp module, StringRef function,
                       llvm::raw_ostream &os);

/// Verifies `bytes` as plan.bin and prints it as text.
LogicalResult decodePlan(StringRef bytes, llvm::raw_ostream &os,
                         std::string &error);

/// Registers --emit-plan and --decode-plan with galvatron-translate.
void registerPlanTranslations();
} // namespace mlir::galv

#endif // GALVATRON_TARGET_PLAN_H
