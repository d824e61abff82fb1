//===- RecomposeLinear.cpp - matmul + bias on parameters -> linear --------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::galv {
#define GEN_PASS_DEF_RECOMPOSELINEAR
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// matmul(x, W) with W a 2-D parameter -> linear.
struct MatmulToLinear : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    Value weight = op.getRhs();
    if (shapeOf(weight).size() != 2 || !isParameterLike(weight))
      return failure();
    WeightLayout layout = WeightLayout::in_out;
    // A parameter read through a [1, 0] transpose is an [out, in] weight.
    if (auto transpose = weight.getDefiningOp<TransposeOp>())
      if (transpose.getPermutation() == ArrayRef<int64_t>{1, 0}) {
        weight = transpose.getInput();
        layout = WeightLayout::out_in;
      }
    rewriter.replaceOpWithNewOp<LinearOp>(op, op.getLhs(), weight, Value(),
                                          layout);
    return success();
  }
};

/// add(linear(x, W), b) with b a 1-D parameter -> linear(x, W, b).
struct FoldBias : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    LinearOp linear;
    Value bias;
    bool matched = matchBinary<AddOp>(op, [&](Value a, Value b) {
      linear = a.getDefiningOp<LinearOp>();
      bias = b;
      return linear && !linear.getBias() && linear->hasOneUse() &&
             shapeOf(b) == ArrayRef<int64_t>{linear.getOutFeatures()} &&
             isParameterLike(b);
    });
    if (!matched)
      return failure();
    rewriter.replaceOpWithNewOp<LinearOp>(
        op, linear.getInput(), linear.getWeight(), bias, linear.getLayout());
    return success();
  }
};

/// reshape(linear(reshape(x))) where the outer reshape only restores leading
/// dimensions that the inner one flattened -> linear on x reshaped to those
/// leading dimensions (often x itself). Row-major order makes the two equal
/// whenever the row counts agree.
struct DropFlatteningReshapes : OpRewritePattern<ReshapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ReshapeOp op,
                                PatternRewriter &rewriter) const override {
    auto linear = op.getInput().getDefiningOp<LinearOp>();
    if (!linear || !linear->hasOneUse())
      return failure();
    auto flatten = linear.getInput().getDefiningOp<ReshapeOp>();
    if (!flatten)
      return failure();
    ArrayRef<int64_t> flatShape = shapeOf(flatten), outShape = shapeOf(op);
    if (flatShape.size() != 2 || outShape.empty() ||
        outShape.back() != linear.getOutFeatures())
      return failure();
    SmallVector<int64_t> inShape(outShape.drop_back());
    inShape.push_back(linear.getInFeatures());
    Value x = flatten.getInput();
    if (shapeOf(x) != ArrayRef<int64_t>(inShape))
      x = ReshapeOp::create(
          rewriter, flatten.getLoc(),
          RankedTensorType::get(
              inShape, cast<RankedTensorType>(x.getType()).getElementType()),
          x);
    rewriter.replaceOpWithNewOp<LinearOp>(op, x, linear.getWeight(),
                                          linear.getBias(), linear.getLayout());
    return success();
  }
};

/// linear(x, transpose(W, [1, 0])) -> linear(x, W) with the other layout.
struct FoldWeightTranspose : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    auto transpose = op.getWeight().getDefiningOp<TransposeOp>();
    if (!transpose || transpose.getPermutation() != ArrayRef<int64_t>{1, 0})
      return failure();
    WeightLayout flipped = op.getLayout() == WeightLayout::out_in
                               ? WeightLayout::in_out
                               : WeightLayout::out_in;
    rewriter.replaceOpWithNewOp<LinearOp>(
        op, op.getInput(), transpose.getInput(), op.getBias(), flipped);
    return success();
  }
};

struct RecomposeLinearPass
    : galv::impl::RecomposeLinearBase<RecomposeLinearPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<MatmulToLinear, FoldBias, DropFlatteningReshapes,
                 FoldWeightTranspose>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
