//===- Evaluator.h - run galv IR through plan.bin and the runtime -*- C++
//-*-===//
//
// Lowers a function of galv IR the way galvatron-translate does (layers
// inlined, stages, schedule, memory plan, plan.bin) and runs it with the
// runtime's executor on the fp32 CPU kernels: one execution path for the
// tools and the tests that compare the importer and autodiff with PyTorch.
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

/// Runs `function` on `inputs` (in argument order) with `weights` by
/// parameter name. Fails with a diagnostic when the function does not lower
/// or the plan does not run (a missing or mis-shaped weight, an index out of
/// range).
FailureOr<std::vector<galvatron::rt::Tensor>>
evaluateForward(ModuleOp module,
                const std::map<std::string, galvatron::rt::Tensor> &weights,
                std::vector<galvatron::rt::Tensor> inputs,
                StringRef function = "forward");

/// The runtime dtype of an MLIR element type, if the CPU backend has one.
std::optional<galvatron::rt::DType> runtimeDType(Type type);

} // namespace mlir::galv

#endif // GALVATRON_EVAL_EVALUATOR_H
