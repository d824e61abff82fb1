//===- GalvDialect.cpp - galv dialect registration and module checks ------===//

#include "Galv/Galv.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"

using namespace mlir;
using namespace mlir::galv;

#include "Galv/GalvDialect.cpp.inc"

// The per-op rule interfaces (their implementations are in GalvAdjoints,
// GalvCosts, GalvPartitionRules and GalvPlanLowering).
#include "Galv/GalvInterfaces.cpp.inc"

void GalvDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "Galv/GalvOps.cpp.inc"
      >();
}

Operation *GalvDialect::materializeConstant(OpBuilder &builder, Attribute value,
                                            Type type, Location loc) {
  auto elements = dyn_cast<ElementsAttr>(value);
  if (!elements || elements.getType() != type)
    return nullptr;
  return ConstantOp::create(builder, loc, elements);
}

/// Checks the layer instances of `module` against its plan: one strategy per
/// layer when any layer has one, `tp * dp` devices per stage, and stages that
/// follow `pp_division` in program order.
static LogicalResult verifyPlan(ModuleOp module, PlanConfigAttr plan,
                                NamedAttribute attr) {
  SmallVector<LayerOp> layers;
  module.walk([&](LayerOp layer) { layers.push_back(layer); });
  // Once layers are inlined their ops carry the strategies instead.
  if (layers.empty())
    return success();
  if (static_cast<int64_t>(layers.size()) != plan.getNumLayers())
    return module.emitOpError()
           << "'" << attr.getName().getValue() << "' pp_division covers "
           << plan.getNumLayers() << " layers but the module has "
           << layers.size() << " layer instances";

  int64_t layerIndex = 0;
  for (auto [stage, count] : llvm::enumerate(plan.getPpDivision())) {
    for (int64_t i = 0; i < count; ++i, ++layerIndex) {
      LayerOp layer = layers[layerIndex];
      StrategyAttr strategy = layer.getStrategyAttr();
      if (!strategy)
        continue;
      if (strategy.getTp() * strategy.getDp() != plan.getDevicesPerStage())
        return layer.emitOpError()
               << "layer " << layerIndex
               << " uses tp * dp = " << strategy.getTp() * strategy.getDp()
               << " devices but the "
               << "plan has " << plan.getDevicesPerStage()
               << " per stage (world_size " << plan.getWorldSize() << " / pp "
               << plan.getPp() << ")";
      if (strategy.getStage() != static_cast<int64_t>(stage))
        return layer.emitOpError()
               << "layer " << layerIndex << " is on stage "
               << strategy.getStage() << " but pp_division puts it on stage "
               << stage;
    }
  }
  return success();
}

LogicalResult GalvDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == getWeightsAttrName()) {
    if (!isa<ModuleOp>(op))
      return op->emitError() << "'" << name << "' belongs on a module";
    if (!isa<StringAttr>(attr.getValue()))
      return op->emitError()
             << "'" << name << "' must name a safetensors file (a string)";
    return success();
  }
  if (name == getShapesOnlyAttrName()) {
    if (!isa<ModuleOp>(op) || !isa<UnitAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' is a unit attribute of a "
                             << "module";
    return success();
  }
  if (name == getPlanAttrName()) {
    auto module = dyn_cast<ModuleOp>(op);
    if (!module)
      return op->emitError() << "'" << name << "' belongs on a module";
    auto plan = dyn_cast<PlanConfigAttr>(attr.getValue());
    if (!plan)
      return op->emitError() << "'" << name << "' must be a #galv.plan";
    return verifyPlan(module, plan, attr);
  }
  if (name == ModelCostAttr::getAttrName()) {
    if (!isa<ModuleOp>(op))
      return op->emitError() << "'" << name << "' belongs on a module";
    if (!isa<ModelCostAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' must be a #galv.model_cost";
    return success();
  }
  if (name == getStrategyAttrName()) {
    if (!isa<StrategyAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' must be a #galv.strategy";
    return success();
  }
  if (name == getLayerAttrName() || name == getStageAttrName() ||
      name == getMicroBatchAttrName()) {
    if (!isa<IntegerAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' must be an integer";
    return success();
  }
  if (name == getRecomputeAttrName() || name == getBackwardAttrName()) {
    if (!isa<UnitAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' is a unit attribute";
    return success();
  }
  if (name == getFrozenAttrName()) {
    auto param = dyn_cast<ParameterOp>(op);
    if (!param || param.getTrainable() || !isa<StringAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' is a string attribute of "
                             << "a galv.parameter that is not trainable";
    return success();
  }
  if (name == getGradSyncAttrName()) {
    if (!isa<GetParameterOp>(op))
      return op->emitError() << "'" << name << "' belongs on a "
                             << "galv.get_parameter";
    if (!isa<GradSyncAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' must be a #galv.grad_sync";
    return success();
  }
  if (name == getOffsetsAttrName()) {
    auto offsets = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!offsets || offsets.size() != static_cast<int64_t>(op->getNumResults()))
      return op->emitError()
             << "'" << name << "' must give one offset per result";
    return success();
  }
  if (name == getArenaBytesAttrName()) {
    if (!isa<IntegerAttr>(attr.getValue()))
      return op->emitError() << "'" << name << "' must be an integer";
    return success();
  }
  return op->emitError() << "unknown galv attribute '" << name << "'";
}

/// The galv attributes of a function argument or result. A #galv.shard
/// describes the piece that value holds: without a flat group every cut is
/// one of its dimensions. The optimizer passes carry a parameter's
/// #galv.grad_sync on its argument and on its gradient's result; a step's
/// #galv.role and galv.param (the galv.parameter its state belongs to) are
/// what --emit-plan turns into input roles.
static LogicalResult verifyValueAttr(Operation *op, StringRef what,
                                     unsigned index, NamedAttribute attr,
                                     Type type) {
  StringRef name = attr.getName().getValue();
  if (name == GalvDialect::getRoleAttrName() &&
      !isa<InputRoleAttr>(attr.getValue()))
    return op->emitError() << what << " " << index << ": '" << name
                           << "' must be a #galv.role";
  if (name == GalvDialect::getParamAttrName()) {
    auto symbol = dyn_cast<FlatSymbolRefAttr>(attr.getValue());
    if (!symbol ||
        !SymbolTable::lookupNearestSymbolFrom<ParameterOp>(op, symbol))
      return op->emitError() << what << " " << index << ": '" << name
                             << "' must name a galv.parameter";
  }
  if (name == GalvDialect::getGradSyncAttrName() &&
      !isa<GradSyncAttr>(attr.getValue()))
    return op->emitError() << "'" << name << "' must be a #galv.grad_sync";
  if (name != GalvDialect::getShardAttrName())
    return success();
  auto shard = dyn_cast<ShardAttr>(attr.getValue());
  if (!shard)
    return op->emitError() << "'" << name << "' must be a #galv.shard";
  auto tensor = dyn_cast_or_null<RankedTensorType>(type);
  if (!tensor)
    return op->emitError() << "'" << name << "' belongs on a ranked tensor";
  if (shard.getFlat())
    return success();
  for (auto [i, cut] : llvm::enumerate(shard.getCuts()))
    if (cut.getAxis() >= tensor.getRank())
      return op->emitError()
             << "'" << name << "' cut " << i << " axis " << cut.getAxis()
             << " is out of range for " << tensor;
  return success();
}

LogicalResult GalvDialect::verifyRegionArgAttribute(Operation *op, unsigned,
                                                    unsigned argIndex,
                                                    NamedAttribute attr) {
  auto func = dyn_cast<FunctionOpInterface>(op);
  return verifyValueAttr(op, "argument", argIndex, attr,
                         func ? func.getArgumentTypes()[argIndex] : Type());
}

LogicalResult GalvDialect::verifyRegionResultAttribute(Operation *op, unsigned,
                                                       unsigned resultIndex,
                                                       NamedAttribute attr) {
  auto func = dyn_cast<FunctionOpInterface>(op);
  return verifyValueAttr(op, "result", resultIndex, attr,
                         func ? func.getResultTypes()[resultIndex] : Type());
}
