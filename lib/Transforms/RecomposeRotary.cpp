//===- RecomposeRotary.cpp - x*cos + rotate_half(x)*sin -> rotary ---------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::galv {
#define GEN_PASS_DEF_RECOMPOSEROTARY
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// True when `slice` takes [begin, end) of the last dimension of `x` and all
/// of every other dimension.
bool isLastDimSlice(Value value, Value x, int64_t begin, int64_t end) {
  auto slice = value.getDefiningOp<SliceOp>();
  if (!slice || slice.getInput() != x)
    return false;
  ArrayRef<int64_t> shape = shapeOf(x);
  int64_t last = shape.size() - 1;
  for (int64_t d = 0; d <= last; ++d) {
    int64_t b = d == last ? begin : 0, e = d == last ? end : shape[d];
    if (slice.getStarts()[d] != b || slice.getLimits()[d] != e ||
        slice.getSteps()[d] != 1)
      return false;
  }
  return true;
}

/// True when `value` is concat(-x[..., D/2:], x[..., :D/2]).
bool isRotateHalf(Value value, Value x) {
  auto concat = value.getDefiningOp<ConcatOp>();
  if (!concat || concat.getInputs().size() != 2)
    return false;
  int64_t rank = shapeOf(x).size(), dim = shapeOf(x).back();
  int64_t axis = static_cast<int64_t>(concat.getAxis());
  if (dim % 2 != 0 || (axis != rank - 1 && axis != -1))
    return false;
  auto neg = concat.getInputs()[0].getDefiningOp<NegOp>();
  return neg && isLastDimSlice(neg.getInput(), x, dim / 2, dim) &&
         isLastDimSlice(concat.getInputs()[1], x, 0, dim / 2);
}

struct RecomposeRotaryPattern : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    if (shapeOf(op).size() != 4)
      return failure();
    Value x, cos, sin;
    bool matched = matchBinary<AddOp>(op, [&](Value a, Value b) {
      // a = x * cos; b = rotate_half(x) * sin.
      return matchBinary<MulOp>(a, [&](Value p, Value q) {
        x = p;
        cos = q;
        return p.getType() == op.getType() &&
               matchBinary<MulOp>(b, [&](Value r, Value s) {
                 sin = s;
                 return isRotateHalf(r, x);
               });
      });
    });
    if (!matched || cos.getType() != sin.getType())
      return failure();
    // galv.rotary wants cos/sin that broadcast to [B, H, S, D].
    auto cosType = cast<RankedTensorType>(cos.getType());
    if (cosType.getShape().back() != shapeOf(x).back() ||
        failed(broadcastShapes(cosType.getShape(), shapeOf(x))) ||
        ArrayRef<int64_t>(*broadcastShapes(cosType.getShape(), shapeOf(x))) !=
            shapeOf(x))
      return failure();
    rewriter.replaceOpWithNewOp<RotaryOp>(op, x, cos, sin,
                                          /*interleaved=*/false);
    return success();
  }
};

struct RecomposeRotaryPass
    : galv::impl::RecomposeRotaryBase<RecomposeRotaryPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RecomposeRotaryPattern>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
