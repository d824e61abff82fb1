//===- AppendLoss.cpp - next-token cross-entropy over @forward ------------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::galv {
#define GEN_PASS_DEF_APPENDLOSS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
struct AppendLossPass : galv::impl::AppendLossBase<AppendLossPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward || forward.isExternal()) {
      module.emitError("galv-append-loss needs a func.func @forward");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss"))
      return; // already there
    FunctionType type = forward.getFunctionType();
    auto ids = type.getNumInputs()
                   ? dyn_cast<RankedTensorType>(type.getInput(0))
                   : RankedTensorType();
    auto logits = type.getNumResults() == 1
                      ? dyn_cast<RankedTensorType>(type.getResult(0))
                      : RankedTensorType();
    if (!ids || !logits || ids.getRank() != 2 ||
        !ids.getElementType().isSignlessInteger() || logits.getRank() != 3 ||
        logits.getShape().take_front(2) != ids.getShape() ||
        ids.getDimSize(1) < 2) {
      forward.emitError("galv-append-loss wants @forward(ids [B, S] of "
                        "integers, ...) -> logits [B, S, V] with S >= 2");
      return signalPassFailure();
    }
    bool hasLayers = false;
    forward.walk([&](LayerOp) { hasLayers = true; });
    if (hasLayers) {
      forward.emitError("inline the layers (galv-inline-layers) before "
                        "galv-append-loss");
      return signalPassFailure();
    }

    OpBuilder builder(module.getContext());
    builder.setInsertionPointAfter(forward);
    auto loss = func::FuncOp::create(
        builder, forward.getLoc(), "loss",
        builder.getFunctionType(
            type.getInputs(),
            {RankedTensorType::get({}, logits.getElementType())}));
    if (ArrayAttr argAttrs = forward.getAllArgAttrs())
      loss.setAllArgAttrs(argAttrs);
    IRMapping mapping;
    forward.getBody().cloneInto(&loss.getBody(), mapping);
    Block &body = loss.getBody().front();
    Operation *ret = body.getTerminator();
    builder.setInsertionPoint(ret);
    Location loc = forward.getLoc();
    int64_t b = ids.getDimSize(0), s = ids.getDimSize(1);
    // Position t predicts token t+1. The labels are the ids shifted left
    // with the last position ignored, rather than the logits sliced to
    // 0 .. S-2: same loss and mean (the ignored position is not counted),
    // but no copy of the [B, S-1, V] logits and none of their gradient.
    constexpr int64_t kIgnoreIndex = -100;
    Value shifted = SliceOp::create(
        builder, loc, body.getArgument(0), ArrayRef<int64_t>{0, 1},
        ArrayRef<int64_t>{b, s}, ArrayRef<int64_t>{1, 1});
    auto lastType = RankedTensorType::get({b, 1}, ids.getElementType());
    Value last = ConstantOp::create(
        builder, loc,
        DenseElementsAttr::get(lastType,
                               APInt(ids.getElementTypeBitWidth(), kIgnoreIndex,
                                     /*isSigned=*/true)));
    Value targets =
        ConcatOp::create(builder, loc, ValueRange{shifted, last}, 1);
    Value value =
        CrossEntropyOp::create(builder, loc, ret->getOperand(0), targets,
                               ReduceKind::mean, kIgnoreIndex);
    ret->setOperands(value);
  }
};
} // namespace
