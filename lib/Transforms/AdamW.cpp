//===- AdamW.cpp - one AdamW training step over @loss_grad ----------------===//
//
// Builds the pure @train_step(data, lr, step, params, m, v) -> (loss,
// params, m, v) in four stages, each a method below: @loss_grad inlined per
// micro-batch and averaged (accumulate), the data-parallel gradient sync
// (synchronise: DDP all-reduce, ZeRO-2 reduce-scatter of the flat, padded
// gradient), optional global-norm clipping across shards and stages (clip),
// and the AdamW update (update; ZeRO-2 updates this rank's piece and gathers
// the pieces back).
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <cmath>
#include <map>

namespace mlir::galv {
#define GEN_PASS_DEF_ADAMW
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// The optimizer settings of the pass.
struct Settings {
  double beta1, beta2, epsilon, weightDecay, clipNorm;
  unsigned microBatches;
};

class StepBuilder {
public:
  StepBuilder(ModuleOp module, func::FuncOp lossGrad, const Settings &settings)
      : module(module), lossGrad(lossGrad), b(module.getContext()),
        loc(lossGrad.getLoc()),
        scalar(RankedTensorType::get({}, b.getF32Type())),
        beta1(settings.beta1), beta2(settings.beta2), epsilon(settings.epsilon),
        weightDecay(settings.weightDecay), clipNorm(settings.clipNorm),
        microBatches(settings.microBatches) {
    plan =
        module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
  }

  LogicalResult build() {
    if (failed(collect()) || failed(createStep()))
      return failure();
    accumulate();
    synchronise();
    if (clipNorm > 0)
      clip();
    update();
    return success();
  }

private:
  /// The parameters @loss_grad differentiates and how it reads them.
  LogicalResult collect();
  /// @train_step's signature, names and shards.
  LogicalResult createStep();
  /// @loss_grad inlined once per micro-batch; losses and gradients averaged.
  void accumulate();
  void synchronise();
  void clip();
  void update();

  /// How the gradient of parameter `k` is synchronised: [kind, size,
  /// stride] (kind 0 DDP, 1 ZeRO-2), empty when it is not.
  ArrayRef<int64_t> syncOf(unsigned k) {
    if (!reads[k])
      return {};
    auto sync = reads[k]->getAttrOfType<DenseI64ArrayAttr>(
        GalvDialect::getGradSyncAttrName());
    return sync ? sync.asArrayRef() : ArrayRef<int64_t>();
  }
  RankedTensorType stateType(unsigned k) {
    return reads[k] ? cast<RankedTensorType>(reads[k].getType())
                    : params[k].getTensorType();
  }
  /// ZeRO-2 keeps the moments as this rank's flat piece of the parameter.
  RankedTensorType momentType(unsigned k) {
    ArrayRef<int64_t> sync = syncOf(k);
    RankedTensorType t = stateType(k);
    if (sync.empty() || sync[0] != 1)
      return t;
    return RankedTensorType::get(
        {static_cast<int64_t>(llvm::divideCeil(t.getNumElements(), sync[1]))},
        t.getElementType());
  }
  Value paramArg(unsigned k) { return body->getArgument(numData + 2 + k); }
  Value mArg(unsigned k) { return body->getArgument(numData + 2 + n + k); }
  Value vArg(unsigned k) { return body->getArgument(numData + 2 + 2 * n + k); }
  Value constant(double v) {
    return ConstantOp::create(
        b, loc, DenseElementsAttr::get(scalar, b.getF32FloatAttr(v)));
  }
  Value mul(Value x, Value y) { return MulOp::create(b, loc, x, y); }
  Value add(Value x, Value y) { return AddOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return SubOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return DivOp::create(b, loc, x, y); }

  /// Each parameter's data-parallel sync, in flat zero-padded form for
  /// ZeRO-2 (whose rank updates its piece).
  struct Sync {
    SmallVector<int64_t> group;
    int64_t count = 0, padded = 0;
    bool zero2 = false;
  };
  Value flatPadded(Value x, const Sync &sync);

  ModuleOp module;
  func::FuncOp lossGrad;
  OpBuilder b;
  Location loc;
  RankedTensorType scalar;
  PlanConfigAttr plan;
  double beta1, beta2, epsilon, weightDecay, clipNorm;
  unsigned microBatches;
  SmallVector<ParameterOp> params;
  SmallVector<GetParameterOp> reads;
  unsigned numData = 0, n = 0;
  Block *body = nullptr;
  Value loss;
  SmallVector<Value> grads;
  SmallVector<Sync> syncs;
};

LogicalResult StepBuilder::collect() {
  // The parameters @loss_grad differentiates, in its result order.
  for (unsigned i = 1; i < lossGrad.getNumResults(); ++i) {
    auto name = lossGrad.getResultAttrOfType<StringAttr>(i, "galv.grad_of");
    auto param = name ? module.lookupSymbol<ParameterOp>(name) : ParameterOp();
    if (!param) {
      lossGrad.emitError("result ") << i << " names no parameter";
      return failure();
    }
    params.push_back(param);
  }
  // How @loss_grad reads each parameter: its (possibly sharded) type and
  // how its gradient is synchronised across data-parallel ranks.
  reads.resize(params.size());
  for (unsigned k = 0; k < params.size(); ++k) {
    StringRef paramName = params[k].getSymName();
    lossGrad.walk([&](GetParameterOp get) {
      if (!reads[k] && get.getName() == paramName)
        reads[k] = get;
    });
  }
  return success();
}

LogicalResult StepBuilder::createStep() {
  FunctionType gradType = lossGrad.getFunctionType();
  numData = gradType.getNumInputs();
  // With micro-batches, each data input holds all of them stacked along
  // its leading (batch) dimension.
  SmallVector<Type> inputs, results;
  for (auto [i, dataType] : llvm::enumerate(gradType.getInputs())) {
    Type type = dataType;
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (microBatches > 1 && (!tensor || tensor.getRank() == 0)) {
      lossGrad.emitError("micro-batches: data input ")
          << i << " has no batch dimension to split";
      return failure();
    }
    if (microBatches > 1) {
      SmallVector<int64_t> shape(tensor.getShape());
      shape[0] *= microBatches;
      type = tensor.clone(shape);
    }
    inputs.push_back(type);
  }
  inputs.push_back(scalar); // lr
  inputs.push_back(scalar); // step
  results.push_back(gradType.getResult(0));
  for (int role = 0; role < 3; ++role)
    for (unsigned k = 0; k < params.size(); ++k) {
      Type type = role == 0 ? stateType(k) : momentType(k);
      inputs.push_back(type);
      results.push_back(type);
    }

  b.setInsertionPointAfter(lossGrad);
  auto step = func::FuncOp::create(b, loc, "train_step",
                                   b.getFunctionType(inputs, results));
  body = step.addEntryBlock();
  auto name = [&](StringRef text) { return b.getStringAttr(text); };
  for (unsigned i = 0; i < numData; ++i) {
    auto onnxName = lossGrad.getArgAttrOfType<StringAttr>(i, "onnx.name");
    step.setArgAttr(i, "galv.name",
                    onnxName ? onnxName : name("input" + std::to_string(i)));
    if (Attribute shard =
            lossGrad.getArgAttr(i, GalvDialect::getShardAttrName()))
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
  n = params.size();
  for (int role = 0; role < 3; ++role)
    for (unsigned k = 0; k < n; ++k) {
      StringAttr label = name(roles[role] + params[k].getSymName().str());
      step.setArgAttr(numData + 2 + role * n + k, "galv.name", label);
      step.setResultAttr(1 + role * n + k, "galv.name", label);
      Attribute stateRole = roleAttr(stateRoles[role]),
                param = FlatSymbolRefAttr::get(params[k].getSymNameAttr());
      step.setArgAttr(numData + 2 + role * n + k, roleName, stateRole);
      step.setArgAttr(numData + 2 + role * n + k, paramName, param);
      step.setResultAttr(1 + role * n + k, roleName, stateRole);
      step.setResultAttr(1 + role * n + k, paramName, param);
      // The runtime cuts the state by these shards and consolidates it.
      ShardAttr shard = reads[k] ? reads[k].getShardAttr() : ShardAttr();
      ArrayRef<int64_t> sync = syncOf(k);
      if (role > 0 && !sync.empty() && sync[0] == 1)
        shard = ShardAttr::get(b.getContext(),
                               shard ? shard.getCuts() : ArrayRef<int64_t>(),
                               sync.drop_front());
      if (shard) {
        step.setArgAttr(numData + 2 + role * n + k,
                        GalvDialect::getShardAttrName(), shard);
        step.setResultAttr(1 + role * n + k, GalvDialect::getShardAttrName(),
                           shard);
      }
    }
  b.setInsertionPointToEnd(body);
  return success();
}

void StepBuilder::accumulate() {
  // Inline @loss_grad once per micro-batch, with the trainable parameters
  // read from the state, and average the losses and gradients (the mean
  // over the whole batch when the micro-batches have equal token counts).
  b.setInsertionPointToEnd(body);
  llvm::StringMap<unsigned> paramIndex;
  for (auto [k, p] : llvm::enumerate(params))
    paramIndex[p.getSymName()] = k;
  // A weight another pipeline stage reads (a tied head) moves once per
  // step: its forward transfer is shared by the micro-batches, and the
  // gradient that comes back through the adjoint transfer is summed on
  // the reading stage and sent once, when it only adds into the weight's
  // gradient.
  Block &gradBody = lossGrad.getBody().front();
  Operation *gradTerminator = gradBody.getTerminator();
  DenseMap<Operation *, unsigned> deferrable;
  gradBody.walk([&](StageTransferOp transfer) {
    if (!transfer->hasAttr(GalvDialect::getBackwardAttrName()))
      return;
    Value v = transfer.getResult();
    while (v.hasOneUse()) {
      OpOperand &use = *v.getUses().begin();
      Operation *user = use.getOwner();
      if (user == gradTerminator) {
        if (use.getOperandNumber() > 0)
          deferrable[transfer] = use.getOperandNumber() - 1;
        return;
      }
      if (!isa<AddOp>(user) || user->getResult(0).getType() != v.getType())
        return;
      v = user->getResult(0);
    }
  });
  DenseMap<Operation *, Value> shared;
  // By parameter and the stage the gradient comes from.
  std::map<std::pair<unsigned, int64_t>, std::pair<Value, StageTransferOp>>
      deferred;
  grads.assign(n, Value());
  for (unsigned micro = 0; micro < microBatches; ++micro) {
    Operation *last = body->empty() ? nullptr : &body->back();
    IRMapping mapping;
    for (unsigned i = 0; i < numData; ++i) {
      Value data = body->getArgument(i);
      if (microBatches > 1) {
        auto type = cast<RankedTensorType>(lossGrad.getArgument(i).getType());
        SmallVector<int64_t> starts(type.getRank(), 0), limits(type.getShape()),
            steps(type.getRank(), 1);
        starts[0] = micro * type.getDimSize(0);
        limits[0] = starts[0] + type.getDimSize(0);
        data = SliceOp::create(b, loc, data, starts, limits, steps);
      }
      mapping.map(lossGrad.getArgument(i), data);
    }
    Operation *gradReturn = nullptr;
    for (Operation &op : lossGrad.getBody().front()) {
      if (op.hasTrait<OpTrait::IsTerminator>()) {
        gradReturn = &op;
        break;
      }
      if (auto get = dyn_cast<GetParameterOp>(op)) {
        auto it = paramIndex.find(get.getName());
        if (it != paramIndex.end()) {
          mapping.map(get.getResult(), paramArg(it->second));
          continue;
        }
      }
      if (auto transfer = dyn_cast<StageTransferOp>(op)) {
        if (transfer.getInput().getDefiningOp<GetParameterOp>()) {
          Value &once = shared[&op];
          if (!once)
            once = b.clone(op, mapping)->getResult(0);
          mapping.map(transfer.getResult(), once);
          continue;
        }
        auto it = deferrable.find(&op);
        if (it != deferrable.end()) {
          auto &[sum, kind] =
              deferred[{it->second, static_cast<int64_t>(transfer.getFrom())}];
          Value piece = mapping.lookup(transfer.getInput());
          sum = sum ? add(sum, piece) : piece;
          sum.getDefiningOp()->setAttr(GalvDialect::getBackwardAttrName(),
                                       b.getUnitAttr());
          kind = transfer;
          auto type = cast<RankedTensorType>(transfer.getType());
          mapping.map(transfer.getResult(),
                      ConstantOp::create(
                          b, loc,
                          DenseElementsAttr::get(
                              type, b.getFloatAttr(type.getElementType(), 0))));
          continue;
        }
      }
      b.clone(op, mapping);
    }
    Value microLoss = mapping.lookup(gradReturn->getOperand(0));
    Operation *lastCopy = body->empty() ? nullptr : &body->back();
    loss = micro ? add(loss, microLoss) : microLoss;
    for (unsigned k = 0; k < n; ++k) {
      Value g = mapping.lookup(gradReturn->getOperand(1 + k));
      grads[k] = micro ? add(grads[k], g) : g;
    }
    // Pipeline schedules order the ops of each micro-batch, forward and
    // backward (the accumulation belongs to the backward).
    auto first = last ? std::next(Block::iterator(last)) : body->begin();
    for (Operation &op : llvm::make_range(first, body->end())) {
      op.setAttr(GalvDialect::getMicroBatchAttrName(),
                 b.getI64IntegerAttr(micro));
      if (lastCopy && lastCopy->isBeforeInBlock(&op))
        op.setAttr(GalvDialect::getBackwardAttrName(), b.getUnitAttr());
    }
  }
  for (auto &[key, entry] : deferred) {
    unsigned k = key.first;
    auto [sum, transfer] = entry;
    grads[k] =
        add(grads[k], StageTransferOp::create(b, loc, sum, transfer.getFrom(),
                                              transfer.getTo()));
  }
  if (microBatches > 1) {
    Value inverse = constant(1.0 / microBatches);
    loss = mul(loss, inverse);
    for (Value &g : grads)
      g = mul(g, inverse);
  }
}

Value StepBuilder::flatPadded(Value x, const Sync &sync) {
  auto element = cast<RankedTensorType>(x.getType()).getElementType();
  Value flat = ReshapeOp::create(
      b, loc, RankedTensorType::get({sync.count}, element), x);
  if (sync.padded == sync.count)
    return flat;
  Value zeros = ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(
          RankedTensorType::get({sync.padded - sync.count}, element),
          b.getFloatAttr(element, 0)));
  return ConcatOp::create(b, loc, ValueRange{flat, zeros}, 0);
}

void StepBuilder::synchronise() {
  // Each parameter's data-parallel sync, in flat zero-padded form for
  // ZeRO-2 (whose rank updates its piece).
  syncs.assign(n, Sync());
  for (unsigned k = 0; k < n; ++k) {
    ArrayRef<int64_t> kind = syncOf(k);
    Sync &sync = syncs[k];
    sync.group.assign(kind.begin() + (kind.empty() ? 0 : 1), kind.end());
    sync.count = stateType(k).getNumElements();
    sync.padded =
        sync.group.empty()
            ? sync.count
            : llvm::divideCeil(sync.count, sync.group[0]) * sync.group[0];
    sync.zero2 = !kind.empty() && kind[0] == 1;
    if (!kind.empty() && kind[0] == 0)
      // DDP: sum the data-parallel partial gradients.
      grads[k] =
          AllReduceOp::create(b, loc, ReduceKind::sum, grads[k], sync.group);
    else if (sync.zero2)
      // ZeRO-2: each rank reduces its piece.
      grads[k] = ReduceScatterOp::create(b, loc, flatPadded(grads[k], sync), 0,
                                         sync.group);
  }
}

/// Scales every gradient by min(1, clip / (||g|| + 1e-6)).
void StepBuilder::clip() {
  // Scale every gradient by min(1, clip / (||g|| + 1e-6)). Ranks hold
  // pieces of the gradients: a piece held alike by c ranks of a stage
  // counts 1/c, the stage's ranks sum their parts, and the stages
  // theirs on the last stage, which hands the factor to all.
  int64_t perStage = plan ? plan.getDevicesPerStage() : 1;
  int64_t stages = plan ? plan.getPp() : 1;
  std::map<int64_t, Value> partial;
  for (unsigned k = 0; k < n; ++k) {
    Value g = grads[k];
    int64_t rank = cast<RankedTensorType>(g.getType()).getRank();
    SmallVector<int64_t> axes;
    for (int64_t d = 0; d < rank; ++d)
      axes.push_back(d);
    Value sq =
        ReduceOp::create(b, loc, ReduceKind::sum, mul(g, g), axes, false);
    int64_t pieces = syncs[k].zero2 ? syncs[k].group[0] : 1;
    int64_t stage = 0;
    if (reads[k]) {
      if (ShardAttr shard = reads[k].getShardAttr()) {
        ArrayRef<int64_t> cuts = shard.getCuts();
        for (size_t i = 0; i + 3 < cuts.size(); i += 4)
          pieces *= cuts[i + 2];
        if (shard.getFlat().size() == 2)
          pieces *= shard.getFlat()[0];
      }
      if (auto tag = reads[k]->getAttrOfType<IntegerAttr>(
              GalvDialect::getStageAttrName()))
        stage = tag.getInt();
    }
    if (perStage / pieces > 1)
      sq = mul(sq, constant(double(pieces) / double(perStage)));
    Value &sum = partial[stage];
    sum = sum ? add(sum, sq) : sq;
  }
  Value total;
  for (auto &[stage, sum] : partial) {
    if (perStage > 1)
      sum = AllReduceOp::create(b, loc, ReduceKind::sum, sum,
                                ArrayRef<int64_t>{perStage, 1});
    if (stage != stages - 1)
      sum = StageTransferOp::create(b, loc, sum, stage, stages - 1);
    total = total ? add(total, sum) : sum;
  }
  Value norm = SqrtOp::create(b, loc, total);
  Value factor =
      MinOp::create(b, loc, constant(1.0),
                    div(constant(clipNorm), add(norm, constant(1e-6))));
  if (stages > 1)
    factor = StageBroadcastOp::create(b, loc, factor, stages - 1);
  for (Value &g : grads)
    g = mul(g, factor);
}

void StepBuilder::update() {
  // Bias corrections 1 - beta^t = 1 - exp(t ln beta).
  Value lr = body->getArgument(numData), t = body->getArgument(numData + 1);
  Value bc1 = sub(constant(1.0),
                  ExpOp::create(b, loc, mul(t, constant(std::log(beta1)))));
  Value bc2 = sub(constant(1.0),
                  ExpOp::create(b, loc, mul(t, constant(std::log(beta2)))));
  Value decay = sub(constant(1.0), mul(lr, constant(weightDecay)));
  SmallVector<Value> newParams, newM, newV;
  for (unsigned k = 0; k < n; ++k) {
    Value g = grads[k], p = paramArg(k);
    const Sync &sync = syncs[k];
    RankedTensorType full = stateType(k);
    // ZeRO-2 updates this rank's piece and gathers the pieces back.
    if (sync.zero2)
      p = ShardSliceOp::create(b, loc, flatPadded(p, sync), 0, sync.group);
    Value m = add(mul(mArg(k), constant(beta1)), mul(g, constant(1 - beta1)));
    Value v =
        add(mul(vArg(k), constant(beta2)), mul(mul(g, g), constant(1 - beta2)));
    Value denom = add(SqrtOp::create(b, loc, div(v, bc2)), constant(epsilon));
    Value update = mul(div(div(m, bc1), denom), lr);
    Value next = sub(mul(p, decay), update);
    if (sync.zero2) {
      next = AllGatherOp::create(b, loc, next, 0, sync.group,
                                 /*scatter_grad=*/false);
      if (sync.padded != sync.count)
        next = SliceOp::create(b, loc, next, ArrayRef<int64_t>{0},
                               ArrayRef<int64_t>{sync.count},
                               ArrayRef<int64_t>{1});
      next = ReshapeOp::create(b, loc, full, next);
    }
    newParams.push_back(next);
    newM.push_back(m);
    newV.push_back(v);
  }
  // The last pipeline stage computes the loss; every rank reports it.
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
    if (microBatches == 0) {
      module.emitError("galv-adamw: micro-batches must be at least 1");
      return signalPassFailure();
    }
    auto lossGrad = module.lookupSymbol<func::FuncOp>("loss_grad");
    if (!lossGrad || lossGrad.isExternal()) {
      module.emitError("galv-adamw needs func.func @loss_grad (run "
                       "galv-autodiff)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step"))
      return;
    // A strategy's chunks are the micro-batches.
    unsigned micro = microBatches;
    if (auto plan = module->getAttrOfType<PlanConfigAttr>(
            GalvDialect::getPlanAttrName()))
      if (micro == 1)
        micro = plan.getChunks();
    Settings settings{beta1, beta2, epsilon, weightDecay, clipNorm, micro};
    if (failed(StepBuilder(module, lossGrad, settings).build()))
      return signalPassFailure();
  }
};
} // namespace
