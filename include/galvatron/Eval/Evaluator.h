//===- Evaluator.h - run galv IR on the runtime's CPU kernels ---*- C++ -*-===//
//
// Interprets `func.func @forward` op by op (layer instances included) with
// the fp32 CPU kernels of runtime/. The reference the importer and the
// passes are tested against.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_EVAL_EVALUATOR_H
#define GALVATRON_EVAL_EVALUATOR_H

#include "galvatron/runtime/Tensor.h"

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::galv {

/// Runs @forward on `inputs` (in argument order) with `weights` by parameter
/// name. Fails with a diagnostic on an op without a kernel or a missing or
/// mis-shaped weight.
FailureOr<std::vector<galvatron::rt::Tensor>>
evaluateForward(ModuleOp module,
                const std::map<std::string, galvatron::rt::Tensor> &weights,
                std::vector<galvatron::rt::Tensor> inputs,
                StringRef function = "forward");

/// The runtime dtype of an MLIR element type, if the CPU backend has one.
std::optional<galvatron::rt::DType> runtimeDType(Type type);

} // namespace mlir::galv

#endif // GALVATRON_EVAL_EVALUATOR_H
