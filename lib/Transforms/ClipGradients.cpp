//===- ClipGradients.cpp - global-norm gradient clipping ------------------===//
//
// Scales every gradient result of @batch_grad by min(1, clip / (||g|| +
// 1e-6)), the global L2 norm over all parameters as torch's
// clip_grad_norm_. Ranks hold pieces of the gradients: a piece held alike
// by c ranks of a stage counts 1/c, the stage's ranks sum their parts, and
// the stages theirs on the last stage, which hands the factor to all.
// Runs after galv-sync-gradients (a partial sum has no norm yet).
//
//===----------------------------------------------------------------------===//

#include "TrainingStep.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

#include <map>

namespace mlir::galv {
#define GEN_PASS_DEF_CLIPGRADIENTS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

struct ClipGradientsPass : galv::impl::ClipGradientsBase<ClipGradientsPass> {
  using Base::Base;

  void runOnOperation() override;

  /// How many ranks of a stage split the gradient of argument `arg`.
  static int64_t piecesOf(func::FuncOp f, unsigned arg, unsigned result) {
    GradSync sync =
        gradSyncOf(f.getResultAttr(result, GalvDialect::getGradSyncAttrName()),
                   cast<RankedTensorType>(f.getArgument(arg).getType()));
    int64_t pieces = sync.zero2 ? sync.group.getSize() : 1;
    if (auto shard =
            f.getArgAttrOfType<ShardAttr>(arg, GalvDialect::getShardAttrName()))
      pieces *= shard.getNumPieces();
    return pieces;
  }
};

void ClipGradientsPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (clipNorm <= 0) {
    module.emitError("galv-clip-gradients: clip-norm must be positive");
    return signalPassFailure();
  }
  FailureOr<func::FuncOp> batchGrad =
      lookupBatchGrad(module, "galv-clip-gradients");
  if (failed(batchGrad))
    return signalPassFailure();
  func::FuncOp f = *batchGrad;
  if (!f)
    return;
  if (failed(checkSynchronised(f, "galv-clip-gradients")))
    return signalPassFailure();
  unsigned numData = numDataArgs(f);

  auto plan =
      module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
  int64_t perStage = plan ? plan.getDevicesPerStage() : 1;
  int64_t stages = plan ? plan.getPp() : 1;
  auto ret = cast<func::ReturnOp>(f.getBody().front().getTerminator());
  OpBuilder b(ret);
  Location loc = f.getLoc();
  auto constant = [&](double v) { return scalarConstant(b, loc, v); };
  auto mul = [&](Value x, Value y) { return MulOp::create(b, loc, x, y); };
  auto add = [&](Value x, Value y) { return AddOp::create(b, loc, x, y); };
  std::map<int64_t, Value> partial;
  for (unsigned arg = numData; arg < f.getNumArguments(); ++arg) {
    unsigned result = 1 + arg - numData;
    Value g = ret.getOperand(result);
    int64_t rank = cast<RankedTensorType>(g.getType()).getRank();
    auto axes = llvm::to_vector(llvm::seq<int64_t>(0, rank));
    Value sq =
        ReduceOp::create(b, loc, ReduceKind::sum, mul(g, g), axes, false);
    int64_t pieces = piecesOf(f, arg, result);
    if (perStage / pieces > 1)
      sq = mul(sq, constant(double(pieces) / double(perStage)));
    int64_t stage = 0;
    if (auto tag = f.getArgAttrOfType<IntegerAttr>(
            arg, GalvDialect::getStageAttrName()))
      stage = tag.getInt();
    Value &sum = partial[stage];
    sum = sum ? add(sum, sq) : sq;
  }
  Value total;
  for (auto &[stage, sum] : partial) {
    if (perStage > 1)
      sum = AllReduceOp::create(
          b, loc, ReduceKind::sum, sum,
          DeviceGroupAttr::get(b.getContext(), perStage, /*stride=*/1));
    if (stage != stages - 1)
      sum = StageTransferOp::create(b, loc, sum, stage, stages - 1);
    total = total ? add(total, sum) : sum;
  }
  if (!total)
    return;
  Value norm = SqrtOp::create(b, loc, total);
  Value factor = MinOp::create(
      b, loc, constant(1.0),
      DivOp::create(b, loc, constant(clipNorm), add(norm, constant(1e-6))));
  if (stages > 1)
    factor = StageBroadcastOp::create(b, loc, factor, stages - 1);
  for (unsigned result = 1; result < ret.getNumOperands(); ++result)
    ret.setOperand(result, mul(ret.getOperand(result), factor));
}

} // namespace
