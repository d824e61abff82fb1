//===- Autodiff.cpp - reverse-mode differentiation of @loss ---------------===//
//
// Copies @loss into @loss_grad, then walks the forward ops backwards, turning
// each op's output adjoint into adjoints of the operands that depend on
// trainable parameters through the op's AdjointOpInterface rule
// (dialects/Galv/GalvAdjoints.cpp); several uses of a value add their
// adjoints. Checkpointed layers are recomputed before their backward.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

#include "Galv/Adjoint.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::galv {
#define GEN_PASS_DEF_AUTODIFF
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// The driver: which values need adjoints, recomputation of checkpointed
/// layers, ZeRO-3 regathers; each op's own rule builds its adjoints.
class Differentiator : public AdjointBuilder {
public:
  using AdjointBuilder::AdjointBuilder;

  /// Emits the backward pass of `ops` (in forward order) seeded with
  /// d(loss)/d(loss) = 1; fills `paramGrads` by parameter name.
  LogicalResult run(ArrayRef<Operation *> ops, Value loss,
                    llvm::StringMap<Value> &paramGrads);

private:
  LogicalResult backward(Operation *op, ArrayRef<Value> grads) {
    auto rule = dyn_cast<AdjointOpInterface>(op);
    if (!rule)
      return refuse(op, "");
    forward = op;
    return rule.buildAdjoint(*this, grads);
  }
};

LogicalResult Differentiator::run(ArrayRef<Operation *> ops, Value loss,
                                  llvm::StringMap<Value> &paramGrads) {
  // Values that depend on a trainable parameter need adjoints.
  ModuleOp module = (*ops.begin())->getParentOfType<ModuleOp>();
  for (Operation *op : ops) {
    if (auto get = dyn_cast<GetParameterOp>(op)) {
      auto param = module.lookupSymbol<ParameterOp>(get.getNameAttr());
      if (param && param.getTrainable())
        requiresGrad.insert(get.getResult());
      continue;
    }
    if (llvm::any_of(op->getOperands(), [&](Value v) { return needs(v); }))
      for (Value result : op->getResults())
        if (isa<FloatType>(typeOf(result).getElementType()))
          requiresGrad.insert(result);
  }
  if (!needs(loss))
    return success();
  // Checkpointed layers keep only their input: their forward ops run again
  // right before their backward, which then reads the recomputed values.
  auto segmentOf = [](Operation *op) -> int64_t {
    // A pipeline transfer is not redone: its other end would not know.
    if (isa<StageTransferOp>(op))
      return -1;
    auto strategy =
        op->getAttrOfType<StrategyAttr>(GalvDialect::getStrategyAttrName());
    auto layer =
        op->getAttrOfType<IntegerAttr>(GalvDialect::getLayerAttrName());
    return strategy && layer && strategy.getCheckpoint() ? layer.getInt() : -1;
  };
  llvm::MapVector<int64_t, SmallVector<Operation *>> segments;
  for (Operation *op : ops)
    if (int64_t segment = segmentOf(op); segment >= 0)
      segments[segment].push_back(op);
  DenseMap<Operation *, Operation *> recomputed;
  // ZeRO-3 parameters are gathered again for the backward pass, so that the
  // forward's gathered copy dies after its forward use.
  DenseMap<Value, Value> regathered;
  auto regather = [&](Value v) -> Value {
    if (regatheredFrom.count(v))
      return Value();
    SmallVector<Operation *> chain;
    for (Operation *op = v.getDefiningOp(); op;) {
      chain.push_back(op);
      if (auto gather = dyn_cast<AllGatherOp>(op)) {
        if (!gather.getScatterGrad() ||
            !gather.getInput().getDefiningOp<GetParameterOp>())
          return Value();
        break;
      }
      if (!isa<ReshapeOp, SliceOp, CastOp>(op) ||
          !op->getOperand(0).hasOneUse())
        return Value();
      op = op->getOperand(0).getDefiningOp();
    }
    if (chain.empty() || !isa<AllGatherOp>(chain.back()))
      return Value();
    Value &copy = regathered[v];
    if (!copy) {
      IRMapping mapping;
      for (Operation *op : llvm::reverse(chain)) {
        Operation *clone = b.clone(*op, mapping);
        clone->setAttr(GalvDialect::getRecomputeAttrName(), b.getUnitAttr());
        clone->removeAttr(GalvDialect::getBackwardAttrName());
      }
      copy = mapping.lookup(v);
      regatheredFrom[copy] = v;
    }
    return copy;
  };
  adjoints[loss] = splat(1.0, typeOf(loss));
  for (Operation *op : llvm::reverse(ops)) {
    int64_t segment = segmentOf(op);
    if (segment >= 0 && !recomputed.count(op)) {
      IRMapping mapping;
      for (Operation *forward : segments[segment]) {
        for (Value operand : forward->getOperands())
          if (Value again = regather(operand))
            mapping.map(operand, again);
        Operation *copy = b.clone(*forward, mapping);
        // Distinct from the original, so that CSE keeps the recomputation.
        copy->setAttr(GalvDialect::getRecomputeAttrName(), b.getUnitAttr());
        recomputed[forward] = copy;
        for (auto [r, c] : llvm::zip(forward->getResults(), copy->getResults()))
          if (needs(r))
            requiresGrad.insert(c);
      }
    }
    Operation *target = segment >= 0 ? recomputed[op] : op;
    SmallVector<Value> grads;
    bool any = false;
    for (auto [result, twin] :
         llvm::zip(op->getResults(), target->getResults())) {
      Value g = adjoints.lookup(result);
      if (twin != result)
        if (Value h = adjoints.lookup(twin))
          g = g ? add(g, h) : h;
      grads.push_back(g);
      any |= static_cast<bool>(g);
    }
    if (!any)
      continue;
    // The backward rule reads regathered parameters (accumulate() sends
    // their gradients to the forward gathers, reduce-scattered once).
    SmallVector<std::pair<unsigned, Value>> swapped;
    for (auto [i, operand] : llvm::enumerate(target->getOperands()))
      if (Value again = regather(operand)) {
        swapped.push_back({static_cast<unsigned>(i), operand});
        target->setOperand(i, again);
      }
    LogicalResult result = backward(target, grads);
    for (auto [i, original] : swapped)
      target->setOperand(i, original);
    if (failed(result))
      return failure();
  }
  for (Operation *op : ops)
    if (auto get = dyn_cast<GetParameterOp>(op))
      if (Value g = adjoints.lookup(get.getResult())) {
        Value &slot = paramGrads[get.getName()];
        slot = slot ? add(slot, g) : g;
      }
  return success();
}

struct AutodiffPass : galv::impl::AutodiffBase<AutodiffPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss || loss.isExternal() || loss.getNumResults() != 1 ||
        typeOf(loss.getBody().front().getTerminator()->getOperand(0))
                .getRank() != 0) {
      module.emitError("galv-autodiff needs func.func @loss returning a "
                       "scalar (run galv-append-loss)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss_grad"))
      return;
    OpBuilder builder(module.getContext());
    builder.setInsertionPointAfter(loss);
    SmallVector<ParameterOp> trainable;
    for (auto param : module.getOps<ParameterOp>())
      if (param.getTrainable())
        trainable.push_back(param);
    // A partitioned @loss reads shards: the gradient has the read's type.
    llvm::StringMap<Type> readTypes;
    loss.walk([&](GetParameterOp get) {
      readTypes.try_emplace(get.getName(), get.getType());
    });
    auto gradType = [&](ParameterOp param) {
      auto it = readTypes.find(param.getSymName());
      return it != readTypes.end() ? it->second : param.getType();
    };
    SmallVector<Type> results = {loss.getFunctionType().getResult(0)};
    for (ParameterOp param : trainable)
      results.push_back(gradType(param));
    auto grad = func::FuncOp::create(
        builder, loss.getLoc(), "loss_grad",
        builder.getFunctionType(loss.getFunctionType().getInputs(), results));
    if (ArrayAttr argAttrs = loss.getAllArgAttrs())
      grad.setAllArgAttrs(argAttrs);
    IRMapping mapping;
    loss.getBody().cloneInto(&grad.getBody(), mapping);
    Block &body = grad.getBody().front();
    Operation *ret = body.getTerminator();
    Value lossValue = ret->getOperand(0);
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    builder.setInsertionPoint(ret);
    Differentiator differentiator(builder, loss.getLoc());
    differentiator.fusedBackward = fusedBackward;
    differentiator.fusedAttention = fusedAttention;
    llvm::StringMap<Value> paramGrads;
    if (failed(differentiator.run(ops, lossValue, paramGrads))) {
      grad.erase();
      return signalPassFailure();
    }
    // Everything after the forward ops is the backward pass (pipeline
    // schedules order the two per micro-batch).
    Block::iterator first =
        ops.empty() ? body.begin() : std::next(Block::iterator(ops.back()));
    for (Operation &op : llvm::make_range(first, Block::iterator(ret)))
      op.setAttr(GalvDialect::getBackwardAttrName(), builder.getUnitAttr());
    SmallVector<Value> returned = {lossValue};
    for (auto [i, param] : llvm::enumerate(trainable)) {
      Value g = paramGrads.lookup(param.getSymName());
      if (!g)
        g = ConstantOp::create(
            builder, param.getLoc(),
            DenseElementsAttr::get(
                cast<RankedTensorType>(gradType(param)),
                builder.getFloatAttr(param.getTensorType().getElementType(),
                                     0)));
      returned.push_back(g);
      grad.setResultAttr(i + 1, "galv.grad_of",
                         builder.getStringAttr(param.getSymName()));
    }
    ret->setOperands(returned);
  }
};
} // namespace
