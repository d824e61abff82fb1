//===- AdamW.cpp - one AdamW training step over @batch_grad ---------------===//
//
// Builds the pure @train_step(data, lr, step, params, m, v) -> (loss,
// params, m, v): @batch_grad's averaged, synchronised (and possibly
// clipped) gradients, then the AdamW update of every parameter; ZeRO-2
// updates this rank's piece and gathers the pieces back. @batch_grad is
// consumed.
//
//===----------------------------------------------------------------------===//

#include "TrainingStep.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <cmath>

namespace mlir::galv {
#define GEN_PASS_DEF_ADAMW
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// The optimizer settings of the pass.
struct Settings {
  double beta1, beta2, epsilon, weightDecay;
  bool fused;
};

class StepBuilder {
public:
  StepBuilder(ModuleOp module, func::FuncOp batchGrad, const Settings &settings)
      : module(module), batchGrad(batchGrad), settings(settings),
        b(module.getContext()), loc(batchGrad.getLoc()) {}

  LogicalResult build() {
    if (failed(collect()))
      return failure();
    createStep();
    inlineBatchGrad();
    update();
    batchGrad.erase();
    return success();
  }

private:
  /// The parameters and how their gradients were synchronised.
  LogicalResult collect();
  /// @train_step's signature, names and shards.
  void createStep();
  /// @batch_grad's body, reading the parameters from the state.
  void inlineBatchGrad();
  void update();

  /// ZeRO-2 keeps the moments as this rank's flat piece of the parameter.
  RankedTensorType momentType(unsigned k) {
    RankedTensorType t = stateTypes[k];
    if (!syncs[k].zero2)
      return t;
    return RankedTensorType::get({syncs[k].padded / syncs[k].group.getSize()},
                                 t.getElementType());
  }
  Value paramArg(unsigned k) { return body->getArgument(numData + 2 + k); }
  Value mArg(unsigned k) { return body->getArgument(numData + 2 + n + k); }
  Value vArg(unsigned k) { return body->getArgument(numData + 2 + 2 * n + k); }
  Value constant(double v) { return scalarConstant(b, loc, v); }
  Value mul(Value x, Value y) { return MulOp::create(b, loc, x, y); }
  Value add(Value x, Value y) { return AddOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return SubOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return DivOp::create(b, loc, x, y); }

  ModuleOp module;
  func::FuncOp batchGrad;
  Settings settings;
  OpBuilder b;
  Location loc;
  unsigned numData = 0, n = 0;
  SmallVector<FlatSymbolRefAttr> paramRefs;
  SmallVector<RankedTensorType> stateTypes;
  SmallVector<GradSync> syncs;
  Block *body = nullptr;
  Value loss;
  SmallVector<Value> grads;
};

LogicalResult StepBuilder::collect() {
  if (failed(checkSynchronised(batchGrad, "galv-adamw")))
    return failure();
  numData = numDataArgs(batchGrad);
  n = batchGrad.getNumArguments() - numData;
  StringRef syncName = GalvDialect::getGradSyncAttrName();
  for (unsigned k = 0; k < n; ++k) {
    unsigned arg = numData + k;
    auto param =
        batchGrad.getArgAttrOfType<FlatSymbolRefAttr>(arg, kParamArgAttrName);
    auto type =
        dyn_cast<RankedTensorType>(batchGrad.getArgument(arg).getType());
    if (!param || !type)
      return batchGrad.emitError("galv-adamw: argument ")
             << arg << " is not a tensor parameter";
    paramRefs.push_back(param);
    stateTypes.push_back(type);
    syncs.push_back(gradSyncOf(batchGrad.getResultAttr(1 + k, syncName), type));
  }
  return success();
}

void StepBuilder::createStep() {
  auto scalar = RankedTensorType::get({}, b.getF32Type());
  SmallVector<Type> inputs(batchGrad.getArgumentTypes().take_front(numData));
  SmallVector<Type> results = {batchGrad.getResultTypes()[0]};
  inputs.push_back(scalar); // lr
  inputs.push_back(scalar); // step
  for (int role = 0; role < 3; ++role)
    for (unsigned k = 0; k < n; ++k) {
      Type type = role == 0 ? stateTypes[k] : momentType(k);
      inputs.push_back(type);
      results.push_back(type);
    }

  b.setInsertionPointAfter(batchGrad);
  auto step = func::FuncOp::create(b, loc, "train_step",
                                   b.getFunctionType(inputs, results));
  body = step.addEntryBlock();
  auto name = [&](StringRef text) { return b.getStringAttr(text); };
  for (unsigned i = 0; i < numData; ++i) {
    auto onnxName = batchGrad.getArgAttrOfType<StringAttr>(i, "onnx.name");
    step.setArgAttr(i, "galv.name",
                    onnxName ? onnxName : name("input" + std::to_string(i)));
    if (Attribute shard =
            batchGrad.getArgAttr(i, GalvDialect::getShardAttrName()))
      step.setArgAttr(i, GalvDialect::getShardAttrName(), shard);
  }
  step.setArgAttr(numData, "galv.name", name("lr"));
  step.setArgAttr(numData + 1, "galv.name", name("step"));
  step.setResultAttr(0, "galv.name", name("loss"));
  // What each input is to the runtime (which reads roles, not names); a
  // state result carries its input's role and parameter, so the plan can
  // feed it back.
  auto roleAttr = [&](InputRole r) {
    return InputRoleAttr::get(b.getContext(), r);
  };
  StringRef roleName = GalvDialect::getRoleAttrName(),
            paramName = GalvDialect::getParamAttrName();
  step.setArgAttr(numData, roleName, roleAttr(InputRole::learning_rate));
  step.setArgAttr(numData + 1, roleName, roleAttr(InputRole::step));
  const char *roles[] = {"param:", "adam_m:", "adam_v:"};
  const InputRole stateRoles[] = {InputRole::parameter, InputRole::adam_m,
                                  InputRole::adam_v};
  for (int role = 0; role < 3; ++role)
    for (unsigned k = 0; k < n; ++k) {
      StringAttr label = name(roles[role] + paramRefs[k].getValue().str());
      step.setArgAttr(numData + 2 + role * n + k, "galv.name", label);
      step.setResultAttr(1 + role * n + k, "galv.name", label);
      Attribute stateRole = roleAttr(stateRoles[role]), param = paramRefs[k];
      step.setArgAttr(numData + 2 + role * n + k, roleName, stateRole);
      step.setArgAttr(numData + 2 + role * n + k, paramName, param);
      step.setResultAttr(1 + role * n + k, roleName, stateRole);
      step.setResultAttr(1 + role * n + k, paramName, param);
      // The runtime cuts the state by these shards and consolidates it.
      auto shard = batchGrad.getArgAttrOfType<ShardAttr>(
          numData + k, GalvDialect::getShardAttrName());
      if (role > 0 && syncs[k].zero2)
        shard = ShardAttr::get(b.getContext(),
                               shard ? shard.getCuts() : ArrayRef<CutAttr>(),
                               syncs[k].group);
      if (shard) {
        step.setArgAttr(numData + 2 + role * n + k,
                        GalvDialect::getShardAttrName(), shard);
        step.setResultAttr(1 + role * n + k, GalvDialect::getShardAttrName(),
                           shard);
      }
    }
  b.setInsertionPointToEnd(body);
}

void StepBuilder::inlineBatchGrad() {
  IRMapping mapping;
  for (unsigned i = 0; i < numData; ++i)
    mapping.map(batchGrad.getArgument(i), body->getArgument(i));
  for (unsigned k = 0; k < n; ++k)
    mapping.map(batchGrad.getArgument(numData + k), paramArg(k));
  Operation *ret = batchGrad.getBody().front().getTerminator();
  for (Operation &op : batchGrad.getBody().front().without_terminator())
    b.clone(op, mapping);
  loss = mapping.lookup(ret->getOperand(0));
  for (unsigned k = 0; k < n; ++k)
    grads.push_back(mapping.lookup(ret->getOperand(1 + k)));
}

void StepBuilder::update() {
  double beta1 = settings.beta1, beta2 = settings.beta2;
  // Bias corrections 1 - beta^t = 1 - exp(t ln beta).
  Value lr = body->getArgument(numData), t = body->getArgument(numData + 1);
  // Only the unfused form needs these as ops; galv.adamw_update computes
  // them from lr and t itself.
  Value bc1, bc2, decay;
  if (!settings.fused) {
    bc1 = sub(constant(1.0),
              ExpOp::create(b, loc, mul(t, constant(std::log(beta1)))));
    bc2 = sub(constant(1.0),
              ExpOp::create(b, loc, mul(t, constant(std::log(beta2)))));
    decay = sub(constant(1.0), mul(lr, constant(settings.weightDecay)));
  }
  SmallVector<Value> newParams, newM, newV;
  for (unsigned k = 0; k < n; ++k) {
    Value g = grads[k], p = paramArg(k);
    const GradSync &sync = syncs[k];
    // ZeRO-2 updates this rank's piece and gathers the pieces back.
    if (sync.zero2)
      p = ShardSliceOp::create(b, loc, flatPadded(b, loc, p, sync), 0,
                               sync.group);
    Value next, m, v;
    if (settings.fused) {
      Type type = p.getType();
      auto fused = AdamWUpdateOp::create(
          b, loc, type, type, type, p, g, mArg(k), vArg(k), lr, t,
          b.getF64FloatAttr(beta1), b.getF64FloatAttr(beta2),
          b.getF64FloatAttr(settings.epsilon),
          b.getF64FloatAttr(settings.weightDecay));
      next = fused.getNewParam();
      m = fused.getNewM();
      v = fused.getNewV();
    } else {
      m = add(mul(mArg(k), constant(beta1)), mul(g, constant(1 - beta1)));
      v = add(mul(vArg(k), constant(beta2)),
              mul(mul(g, g), constant(1 - beta2)));
      Value denom =
          add(SqrtOp::create(b, loc, div(v, bc2)), constant(settings.epsilon));
      Value update = mul(div(div(m, bc1), denom), lr);
      next = sub(mul(p, decay), update);
    }
    if (sync.zero2) {
      next = AllGatherOp::create(b, loc, next, 0, sync.group,
                                 /*scatter_grad=*/false);
      if (sync.padded != sync.count)
        next = SliceOp::create(b, loc, next, ArrayRef<int64_t>{0},
                               ArrayRef<int64_t>{sync.count},
                               ArrayRef<int64_t>{1});
      next = ReshapeOp::create(b, loc, stateTypes[k], next);
    }
    newParams.push_back(next);
    newM.push_back(m);
    newV.push_back(v);
  }
  // The last pipeline stage computes the loss; every rank reports it.
  auto plan =
      module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
  if (plan && plan.getPp() > 1)
    loss = StageBroadcastOp::create(b, loc, loss, plan.getPp() - 1);
  SmallVector<Value> returned = {loss};
  llvm::append_range(returned, newParams);
  llvm::append_range(returned, newM);
  llvm::append_range(returned, newV);
  func::ReturnOp::create(b, loc, returned);
}

struct AdamWPass : galv::impl::AdamWBase<AdamWPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (module.lookupSymbol("train_step"))
      return;
    FailureOr<func::FuncOp> batchGrad = lookupBatchGrad(module, "galv-adamw");
    if (failed(batchGrad))
      return signalPassFailure();
    Settings settings{beta1, beta2, epsilon, weightDecay, fused};
    if (failed(StepBuilder(module, *batchGrad, settings).build()))
      return signalPassFailure();
  }
};
} // namespace
