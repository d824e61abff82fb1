//===- AccumulateMicroBatches.cpp - @loss_grad over the micro-batches -----===//
//
// Builds @batch_grad(data..., params...) -> (loss, grads...): @loss_grad
// inlined once per micro-batch, with the trainable parameters read from
// arguments, and the losses and gradients averaged (the mean over the whole
// batch when the micro-batches have equal token counts). The data inputs
// hold the micro-batches stacked along their leading dimension.
//
//===----------------------------------------------------------------------===//

#include "TrainingStep.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <map>

namespace mlir::galv {
#define GEN_PASS_DEF_ACCUMULATEMICROBATCHES
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

class Accumulator {
public:
  Accumulator(ModuleOp module, func::FuncOp lossGrad, unsigned microBatches)
      : module(module), lossGrad(lossGrad), microBatches(microBatches),
        b(module.getContext()), loc(lossGrad.getLoc()) {}

  LogicalResult build() {
    if (failed(collect()) || failed(createFunction()))
      return failure();
    inlineMicroBatches();
    return success();
  }

private:
  /// The parameters @loss_grad differentiates and how it reads them.
  LogicalResult collect();
  /// @batch_grad's signature and argument attributes.
  LogicalResult createFunction();
  /// @loss_grad once per micro-batch, then the averages.
  void inlineMicroBatches();
  /// Backward stage transfers whose result only adds into a gradient:
  /// their pieces are summed over the micro-batches and sent once.
  DenseMap<Operation *, unsigned> deferrableTransfers();

  ModuleOp module;
  func::FuncOp lossGrad;
  unsigned microBatches;
  OpBuilder b;
  Location loc;
  SmallVector<ParameterOp> params;
  SmallVector<GetParameterOp> reads;
  unsigned numData = 0;
  Block *body = nullptr;
};

LogicalResult Accumulator::collect() {
  // The parameters @loss_grad differentiates, in its result order.
  for (unsigned i = 1; i < lossGrad.getNumResults(); ++i) {
    auto name = lossGrad.getResultAttrOfType<StringAttr>(i, "galv.grad_of");
    auto param = name ? module.lookupSymbol<ParameterOp>(name) : ParameterOp();
    if (!param)
      return lossGrad.emitError("result ") << i << " names no parameter";
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

LogicalResult Accumulator::createFunction() {
  FunctionType gradType = lossGrad.getFunctionType();
  numData = gradType.getNumInputs();
  SmallVector<Type> inputs;
  for (auto [i, dataType] : llvm::enumerate(gradType.getInputs())) {
    auto tensor = dyn_cast<RankedTensorType>(dataType);
    if (microBatches > 1 && (!tensor || tensor.getRank() == 0))
      return lossGrad.emitError("micro-batches: data input ")
             << i << " has no batch dimension to split";
    if (microBatches == 1) {
      inputs.push_back(dataType);
      continue;
    }
    SmallVector<int64_t> shape(tensor.getShape());
    shape[0] *= microBatches;
    inputs.push_back(tensor.clone(shape));
  }
  for (auto [k, param] : llvm::enumerate(params))
    inputs.push_back(reads[k] ? reads[k].getType() : param.getTensorType());

  b.setInsertionPointAfter(lossGrad);
  auto batchGrad = func::FuncOp::create(
      b, loc, kBatchGradName, b.getFunctionType(inputs, gradType.getResults()));
  body = batchGrad.addEntryBlock();
  for (unsigned i = 0; i < numData; ++i)
    batchGrad.setArgAttrs(i, lossGrad.getArgAttrDict(i));
  for (auto [k, param] : llvm::enumerate(params)) {
    unsigned arg = numData + k;
    batchGrad.setArgAttr(arg, kParamArgAttrName,
                         FlatSymbolRefAttr::get(param.getSymNameAttr()));
    if (!reads[k])
      continue;
    if (ShardAttr shard = reads[k].getShardAttr())
      batchGrad.setArgAttr(arg, GalvDialect::getShardAttrName(), shard);
    for (StringRef name :
         {GalvDialect::getGradSyncAttrName(), GalvDialect::getStageAttrName()})
      if (Attribute attr = reads[k]->getAttr(name))
        batchGrad.setArgAttr(arg, name, attr);
  }
  for (unsigned i = 0; i < gradType.getNumResults(); ++i)
    batchGrad.setResultAttrs(i, lossGrad.getResultAttrDict(i));
  return success();
}

DenseMap<Operation *, unsigned> Accumulator::deferrableTransfers() {
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
  return deferrable;
}

void Accumulator::inlineMicroBatches() {
  b.setInsertionPointToEnd(body);
  unsigned n = params.size();
  llvm::StringMap<unsigned> paramIndex;
  for (auto [k, p] : llvm::enumerate(params))
    paramIndex[p.getSymName()] = k;
  // A weight another pipeline stage reads (a tied head) moves once per
  // step: its forward transfer is shared by the micro-batches, and the
  // gradient that comes back through the adjoint transfer is summed on the
  // reading stage and sent once, when it only adds into the gradient.
  DenseMap<Operation *, unsigned> deferrable = deferrableTransfers();
  DenseMap<Operation *, Value> shared;
  // By parameter and the stage the gradient comes from.
  std::map<std::pair<unsigned, int64_t>, std::pair<Value, StageTransferOp>>
      deferred;
  auto add = [&](Value x, Value y) { return AddOp::create(b, loc, x, y); };
  Value loss;
  SmallVector<Value> grads(n);
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
          mapping.map(get.getResult(), body->getArgument(numData + it->second));
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
    auto [sum, transfer] = entry;
    grads[key.first] =
        add(grads[key.first],
            StageTransferOp::create(b, loc, sum, transfer.getFrom(),
                                    transfer.getTo()));
  }
  if (microBatches > 1) {
    Value inverse = scalarConstant(b, loc, 1.0 / microBatches);
    loss = MulOp::create(b, loc, loss, inverse);
    for (Value &g : grads)
      g = MulOp::create(b, loc, g, inverse);
  }
  SmallVector<Value> returned = {loss};
  llvm::append_range(returned, grads);
  func::ReturnOp::create(b, loc, returned);
}

struct AccumulateMicroBatchesPass
    : galv::impl::AccumulateMicroBatchesBase<AccumulateMicroBatchesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (microBatches == 0) {
      module.emitError("galv-accumulate-micro-batches: micro-batches must be "
                       "at least 1");
      return signalPassFailure();
    }
    if (module.lookupSymbol(kBatchGradName) ||
        module.lookupSymbol("train_step"))
      return;
    auto lossGrad = module.lookupSymbol<func::FuncOp>("loss_grad");
    if (!lossGrad || lossGrad.isExternal()) {
      module.emitError("galv-accumulate-micro-batches needs func.func "
                       "@loss_grad (run galv-autodiff)");
      return signalPassFailure();
    }
    // A strategy's chunks are the micro-batches.
    unsigned micro = microBatches;
    if (auto plan = module->getAttrOfType<PlanConfigAttr>(
            GalvDialect::getPlanAttrName()))
      if (micro == 1)
        micro = plan.getChunks();
    if (failed(Accumulator(module, lossGrad, micro).build()))
      return signalPassFailure();
  }
};

} // namespace
