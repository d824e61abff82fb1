//===- RecomposeNorms.cpp - decomposed layer/RMS norms -> ops -------------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::galv {
#define GEN_PASS_DEF_RECOMPOSENORMS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// True when `value` is v^2 (pow(v, 2) or v * v).
bool isSquareOf(Value value, Value &v) {
  if (matchBinary<PowOp>(value, [&](Value base, Value exponent) {
        v = base;
        return isSplatNear(exponent, 2.0);
      }))
    return true;
  auto mul = value.getDefiningOp<MulOp>();
  if (mul && mul.getLhs() == mul.getRhs()) {
    v = mul.getLhs();
    return true;
  }
  return false;
}

/// Matches 1 / sqrt(A) written as reciprocal(sqrt(A)), div(1, sqrt(A)) or
/// rsqrt(A), and A = add(mean, eps); gives mean's operand and eps.
bool matchInverseRoot(Value value, Value &meanInput, double &eps) {
  Value radicand;
  if (auto rsqrt = value.getDefiningOp<RsqrtOp>()) {
    radicand = rsqrt.getInput();
  } else {
    Value root;
    if (auto reciprocal = value.getDefiningOp<ReciprocalOp>())
      root = reciprocal.getInput();
    else if (auto div = value.getDefiningOp<DivOp>();
             div && isSplatNear(div.getLhs(), 1.0))
      root = div.getRhs();
    auto sqrt = root ? root.getDefiningOp<SqrtOp>() : SqrtOp();
    if (!sqrt)
      return false;
    radicand = sqrt.getInput();
  }
  Value mean;
  if (!matchBinary<AddOp>(radicand, [&](Value a, Value b) {
        std::optional<double> e = getSplatValue(b);
        if (!e || *e < 0)
          return false;
        eps = *e;
        mean = a;
        return true;
      }))
    return false;
  return isMeanOverLastDim(mean, meanInput);
}

/// If the only user of `value` multiplies (or, for `add`, adds) it by a 1-D
/// parameter of `features` elements, returns that user and the parameter.
template <typename OpTy>
std::pair<Operation *, Value> affineUser(Value value, int64_t features) {
  if (!value.hasOneUse())
    return {nullptr, Value()};
  Operation *user = *value.getUsers().begin();
  auto op = dyn_cast<OpTy>(user);
  if (!op)
    return {nullptr, Value()};
  Value other = op.getLhs() == value ? op.getRhs() : op.getLhs();
  if (shapeOf(other) != ArrayRef<int64_t>{features} ||
      op.getType() != value.getType())
    return {nullptr, Value()};
  return {user, other};
}

Value onesLike(PatternRewriter &rewriter, Location loc, Type elementType,
               int64_t features) {
  auto type = RankedTensorType::get({features}, elementType);
  return ConstantOp::create(
      rewriter, loc,
      DenseElementsAttr::get(type, rewriter.getFloatAttr(elementType, 1.0)));
}

/// x * (1 / sqrt(mean(x^2) + eps)) [* w] -> rms_norm.
struct RecomposeRmsNorm : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    Value x;
    double eps = 0;
    if (!matchBinary<MulOp>(op, [&](Value a, Value b) {
          Value meanInput, squared;
          x = a;
          return a.getType() == op.getType() &&
                 matchInverseRoot(b, meanInput, eps) &&
                 isSquareOf(meanInput, squared) && squared == a;
        }))
      return failure();
    auto type = cast<RankedTensorType>(op.getType());
    int64_t features = type.getShape().back();
    auto [user, weight] = affineUser<MulOp>(op, features);
    Operation *root = user ? user : op.getOperation();
    rewriter.setInsertionPoint(root);
    if (!weight)
      weight = onesLike(rewriter, op.getLoc(), type.getElementType(), features);
    rewriter.replaceOpWithNewOp<RmsNormOp>(root, x, weight,
                                           rewriter.getF64FloatAttr(eps));
    return success();
  }
};

/// (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* w] [+ b]
/// -> layer_norm.
struct RecomposeLayerNorm : OpRewritePattern<DivOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(DivOp op,
                                PatternRewriter &rewriter) const override {
    auto centred = op.getLhs().getDefiningOp<SubOp>();
    Value x, meanInput;
    if (!centred || !isMeanOverLastDim(centred.getRhs(), meanInput) ||
        meanInput != centred.getLhs())
      return failure();
    x = centred.getLhs();
    auto sqrt = op.getRhs().getDefiningOp<SqrtOp>();
    if (!sqrt)
      return failure();
    double eps = 0;
    Value variance;
    if (!matchBinary<AddOp>(sqrt.getInput(), [&](Value a, Value b) {
          std::optional<double> e = getSplatValue(b);
          variance = a;
          if (!e || *e < 0)
            return false;
          eps = *e;
          return true;
        }))
      return failure();
    Value varianceInput, deviation;
    if (!isMeanOverLastDim(variance, varianceInput) ||
        !isSquareOf(varianceInput, deviation))
      return failure();
    // The deviation may be the same value or a second copy of x - mean(x).
    auto other = deviation.getDefiningOp<SubOp>();
    if (deviation != centred.getResult() &&
        !(other && other.getLhs() == x && other.getRhs() == centred.getRhs()))
      return failure();
    if (op.getType() != x.getType())
      return failure();

    auto type = cast<RankedTensorType>(op.getType());
    int64_t features = type.getShape().back();
    Operation *root = op;
    auto [scaleUser, scale] = affineUser<MulOp>(op, features);
    Value bias;
    if (scaleUser) {
      root = scaleUser;
      auto [biasUser, b] = affineUser<AddOp>(scaleUser->getResult(0), features);
      if (biasUser) {
        root = biasUser;
        bias = b;
      }
    }
    rewriter.setInsertionPoint(root);
    if (!scale)
      scale = onesLike(rewriter, op.getLoc(), type.getElementType(), features);
    rewriter.replaceOpWithNewOp<LayerNormOp>(root, x, scale, bias,
                                             rewriter.getF64FloatAttr(eps));
    return success();
  }
};

struct RecomposeNormsPass : galv::impl::RecomposeNormsBase<RecomposeNormsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RecomposeRmsNorm, RecomposeLayerNorm>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
