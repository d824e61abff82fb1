//===- FuseResidualNorm.cpp - residual add + norm as one op ---------------===//
//
// Pre-norm Transformers add each block's output to the residual stream and
// normalise the sum at once for the next block: one galv.add_norm computes
// both from one read of the operands.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

namespace mlir::galv {
#define GEN_PASS_DEF_FUSERESIDUALNORM
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
/// The marks that place an op in the schedule (layer and strategy only
/// say where it came from).
SmallVector<NamedAttribute> placement(Operation *op) {
  SmallVector<NamedAttribute> marks;
  for (NamedAttribute attr : op->getDiscardableAttrs())
    if (attr.getName() != GalvDialect::getLayerAttrName() &&
        attr.getName() != GalvDialect::getStrategyAttrName())
      marks.push_back(attr);
  return marks;
}

/// The add `norm` reads, when fusing them keeps every reader of the sum
/// after its definition and the two ops run at one place.
AddOp fusableAdd(Operation *norm, Value input) {
  auto add = input.getDefiningOp<AddOp>();
  // f32 only: a bf16 sum would be normalised as stored by one backend and
  // as computed by another (autocast makes norms read f32 anyway).
  if (!add || !add.getType().getElementType().isF32() ||
      add->getBlock() != norm->getBlock() ||
      add.getLhs().getType() != add.getType() ||
      add.getRhs().getType() != add.getType() ||
      placement(add) != placement(norm))
    return {};
  for (Operation *user : add->getUsers())
    if (user != norm && !norm->isBeforeInBlock(user))
      return {};
  return add;
}

void fuse(OpBuilder &b, Operation *norm, Value input, Value scale, Value bias,
          bool rms, APFloat epsilon) {
  AddOp add = fusableAdd(norm, input);
  if (!add)
    return;
  b.setInsertionPoint(norm);
  auto fused = AddNormOp::create(b, norm->getLoc(), add.getLhs(), add.getRhs(),
                                 scale, bias, rms, epsilon);
  for (NamedAttribute attr : norm->getDiscardableAttrs())
    fused->setAttr(attr.getName(), attr.getValue());
  add.getResult().replaceAllUsesWith(fused.getSum());
  norm->getResult(0).replaceAllUsesWith(fused.getResult());
  norm->erase();
  add->erase();
}

struct FuseResidualNormPass
    : galv::impl::FuseResidualNormBase<FuseResidualNormPass> {
  void runOnOperation() override {
    OpBuilder b(&getContext());
    SmallVector<Operation *> norms;
    getOperation().walk([&](Operation *op) {
      if (isa<LayerNormOp, RmsNormOp>(op))
        norms.push_back(op);
    });
    for (Operation *op : norms) {
      if (auto ln = dyn_cast<LayerNormOp>(op))
        fuse(b, ln, ln.getInput(), ln.getScale(), ln.getBias(), false,
             ln.getEpsilon());
      else if (auto rms = dyn_cast<RmsNormOp>(op))
        fuse(b, rms, rms.getInput(), rms.getScale(), Value(), true,
             rms.getEpsilon());
    }
  }
};
} // namespace
