//===- RecomposeActivations.cpp - GELU and SiLU from their formulas -------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace mlir::galv {
#define GEN_PASS_DEF_RECOMPOSEACTIVATIONS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// True when `value` is x^3: pow(x, 3) or a product of three x.
bool isCube(Value value, Value x) {
  if (matchBinary<PowOp>(value, [&](Value base, Value exponent) {
        return base == x && isSplatNear(exponent, 3.0);
      }))
    return true;
  SmallVector<Value> factors;
  collectFactors(value, factors);
  return factors.size() == 3 &&
         llvm::all_of(factors, [&](Value f) { return f == x; });
}

/// True when `value` is x / sqrt(2) (or x * (1 / sqrt(2))).
bool isScaledForErf(Value value, Value x) {
  if (matchBinary<DivOp>(value, [&](Value num, Value den) {
        return num == x && isSplatNear(den, std::sqrt(2.0));
      }))
    return true;
  return matchBinary<MulOp>(value, [&](Value a, Value b) {
    return a == x && isSplatNear(b, 1.0 / std::sqrt(2.0));
  });
}

/// True when `value` is sqrt(2/pi) * (x + 0.044715 x^3).
bool isScaledForTanh(Value value, Value x) {
  SmallVector<Value> outer;
  collectFactors(value, outer);
  if (!takeSplat(outer, std::sqrt(2.0 / M_PI)) || outer.size() != 1)
    return false;
  SmallVector<Value> terms;
  collectTerms(outer[0], terms);
  if (terms.size() != 2)
    return false;
  for (int i = 0; i < 2; ++i) {
    if (terms[i] != x)
      continue;
    SmallVector<Value> inner;
    collectFactors(terms[1 - i], inner);
    if (takeSplat(inner, 0.044715) &&
        ((inner.size() == 1 && isCube(inner[0], x)) ||
         (inner.size() == 3 &&
          llvm::all_of(inner, [&](Value f) { return f == x; }))))
      return true;
  }
  return false;
}

/// 0.5 * x * (1 + erf(x / sqrt 2)) or 0.5 * x * (1 + tanh(...)), in any
/// order of factors -> gelu.
struct RecomposeGelu : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    SmallVector<Value> factors;
    collectFactors(op, factors);
    if (!takeSplat(factors, 0.5) || factors.size() != 2)
      return failure();
    for (int i = 0; i < 2; ++i) {
      Value x = factors[i];
      if (x.getType() != op.getType())
        continue;
      SmallVector<Value> terms;
      collectTerms(factors[1 - i], terms);
      if (!takeSplat(terms, 1.0) || terms.size() != 1)
        continue;
      if (auto erf = terms[0].getDefiningOp<ErfOp>();
          erf && isScaledForErf(erf.getInput(), x)) {
        rewriter.replaceOpWithNewOp<GeluOp>(op, x, GeluApproximation::none);
        return success();
      }
      if (auto tanh = terms[0].getDefiningOp<TanhOp>();
          tanh && isScaledForTanh(tanh.getInput(), x)) {
        rewriter.replaceOpWithNewOp<GeluOp>(op, x, GeluApproximation::tanh);
        return success();
      }
    }
    return failure();
  }
};

/// x * sigmoid(x) -> silu(x).
struct RecomposeSilu : OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    Value x;
    if (!matchBinary<MulOp>(op, [&](Value a, Value b) {
          auto sigmoid = b.getDefiningOp<SigmoidOp>();
          x = a;
          return sigmoid && sigmoid.getInput() == a &&
                 a.getType() == op.getType();
        }))
      return failure();
    rewriter.replaceOpWithNewOp<SiluOp>(op, x);
    return success();
  }
};

struct RecomposeActivationsPass
    : galv::impl::RecomposeActivationsBase<RecomposeActivationsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RecomposeGelu, RecomposeSilu>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
