//===- RecomposeEmbedding.cpp - gather from a table -> embedding ----------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::galv {
#define GEN_PASS_DEF_RECOMPOSEEMBEDDING
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
struct GatherToEmbedding : OpRewritePattern<GatherOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GatherOp op,
                                PatternRewriter &rewriter) const override {
    Value table = op.getData();
    if (shapeOf(table).size() != 2 || op.getAxis() != 0 ||
        !table.getDefiningOp<GetParameterOp>() ||
        !isa<FloatType>(
            cast<RankedTensorType>(table.getType()).getElementType()))
      return failure();
    rewriter.replaceOpWithNewOp<EmbeddingOp>(op, table, op.getIndices());
    return success();
  }
};

struct RecomposeEmbeddingPass
    : galv::impl::RecomposeEmbeddingBase<RecomposeEmbeddingPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<GatherToEmbedding>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
