//===- Evaluator.cpp - run galv IR through plan.bin and the runtime -------===//
//
// One execution path: the function is lowered exactly as galvatron-translate
// lowers it (layers inlined, stages assigned, scheduled, memory planned,
// serialised to plan.bin), verified, and run by the runtime's executor on
// its CPU kernels. So the importer and autodiff tests that use this also
// check the plan lowering, the plan verifier and the executor's dispatch.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Eval/Evaluator.h"

#include "Galv/Galv.h"
#include "galvatron/Target/Plan.h"
#include "galvatron/Transforms/Passes.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/PlanFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"

using namespace mlir;
using namespace mlir::galv;
namespace rt = galvatron::rt;

std::optional<rt::DType> mlir::galv::runtimeDType(Type type) {
  if (type.isF32())
    return rt::DType::F32;
  if (type.isF64())
    return rt::DType::F64;
  if (type.isInteger(64))
    return rt::DType::I64;
  if (type.isInteger(32))
    return rt::DType::I32;
  if (type.isInteger(1))
    return rt::DType::Bool;
  return std::nullopt;
}

/// The name galv-schedule gives argument / result `i` of `func` (and so the
/// name the plan binds it by).
static std::string argName(func::FuncOp func, unsigned i) {
  for (StringRef key : {"galv.name", "onnx.name"})
    if (auto name = func.getArgAttrOfType<StringAttr>(i, key))
      return name.str();
  return "input" + std::to_string(i);
}
static std::string resultName(func::FuncOp func, unsigned i) {
  for (StringRef key : {"galv.name", "onnx.name"})
    if (auto name = func.getResultAttrOfType<StringAttr>(i, key))
      return name.str();
  return "output" + std::to_string(i);
}

/// Lowers `function` of a copy of `module` to plan.bin bytes.
static LogicalResult lowerToPlan(ModuleOp module, StringRef function,
                                 std::string &bytes) {
  OwningOpRef<ModuleOp> copy(cast<ModuleOp>(module->clone()));
  PassManager pm(module.getContext());
  pm.addPass(createInlineLayers());
  pm.addPass(createAssignStages(AssignStagesOptions{function.str()}));
  pm.addPass(createSchedule(ScheduleOptions{function.str()}));
  pm.addPass(createPlanMemory());
  if (failed(pm.run(*copy)))
    return failure();
  llvm::raw_string_ostream os(bytes);
  return emitPlan(*copy, function, os);
}

FailureOr<std::vector<rt::Tensor>> mlir::galv::evaluateForward(
    ModuleOp module, const std::map<std::string, rt::Tensor> &weights,
    std::vector<rt::Tensor> inputs, StringRef function) {
  auto func = module.lookupSymbol<func::FuncOp>(function);
  if (!func || func.isExternal())
    return module.emitError("the module has no func.func @") << function;
  if (inputs.size() != func.getNumArguments())
    return module.emitError("@")
           << function << " takes " << func.getNumArguments() << " inputs, "
           << inputs.size() << " given";
  std::map<std::string, rt::Tensor> bound;
  for (auto [i, input] : llvm::enumerate(inputs)) {
    auto type = cast<RankedTensorType>(func.getArgument(i).getType());
    rt::Shape shape(type.getShape().begin(), type.getShape().end());
    if (input.shape != shape)
      return module.emitError("input ")
             << i << " has shape " << rt::shapeString(input.shape) << ", @"
             << function << " wants " << rt::shapeString(shape);
    std::optional<rt::DType> dtype = runtimeDType(type.getElementType());
    if (dtype && input.dtype != *dtype)
      input = rt::cast(input, *dtype);
    bound[argName(func, i)] = std::move(input);
  }
  std::string bytes;
  if (failed(lowerToPlan(module, function, bytes)))
    return failure();
  std::vector<uint8_t> storage(bytes.begin(), bytes.end());
  std::string error;
  const galvatron::plan::Plan *plan = rt::verifyPlan(storage, error);
  if (!plan)
    return module.emitError("the lowered plan does not verify: ") << error;
  std::map<std::string, rt::Tensor> outputs;
  rt::RunStats stats;
  if (!rt::runRank(*plan, 0, bound, weights, outputs, stats, error))
    return module.emitError(error);
  std::vector<rt::Tensor> results;
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    auto it = outputs.find(resultName(func, i));
    if (it == outputs.end())
      return module.emitError("the plan has no output '")
             << resultName(func, i) << "'";
    results.push_back(std::move(it->second));
  }
  return results;
}
