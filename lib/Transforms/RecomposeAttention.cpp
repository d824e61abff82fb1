//===- RecomposeAttention.cpp - softmax(q k^T s + m) v -> attention -------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::galv {
#define GEN_PASS_DEF_RECOMPOSEATTENTION
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// Undoes Hugging Face's repeat_kv: reshape([B, Hkv, 1, S, D]) -> expand
/// ([B, Hkv, n, S, D]) -> reshape([B, Hkv * n, S, D]) gives back the
/// [B, Hkv, S, D] tensor.
Value unrepeat(Value value) {
  auto merge = value.getDefiningOp<ReshapeOp>();
  if (!merge)
    return value;
  auto expand = merge.getInput().getDefiningOp<ExpandOp>();
  if (!expand)
    return value;
  auto split = expand.getInput().getDefiningOp<ReshapeOp>();
  if (!split)
    return value;
  Value kv = split.getInput();
  ArrayRef<int64_t> kvShape = shapeOf(kv), splitShape = shapeOf(split),
                    expandShape = shapeOf(expand), outShape = shapeOf(merge);
  if (kvShape.size() != 4 || splitShape.size() != 5 || outShape.size() != 4)
    return value;
  int64_t b = kvShape[0], h = kvShape[1], s = kvShape[2], d = kvShape[3];
  if (splitShape != ArrayRef<int64_t>{b, h, 1, s, d} || expandShape[0] != b ||
      expandShape[1] != h || expandShape[3] != s || expandShape[4] != d ||
      outShape != ArrayRef<int64_t>{b, h * expandShape[2], s, d})
    return value;
  return kv;
}

/// Given k^T ([B, H, D, S]), returns k ([B, H, S, D]), building a transpose
/// when k^T is a transpose of something else.
Value keyFromTransposed(Value keyT, PatternRewriter &rewriter) {
  auto transpose = keyT.getDefiningOp<TransposeOp>();
  if (!transpose || shapeOf(keyT).size() != 4)
    return Value();
  ArrayRef<int64_t> perm = transpose.getPermutation();
  if (perm == ArrayRef<int64_t>{0, 1, 3, 2})
    return transpose.getInput();
  SmallVector<int64_t> swapped = {perm[0], perm[1], perm[3], perm[2]};
  return TransposeOp::create(rewriter, transpose.getLoc(), transpose.getInput(),
                             swapped);
}

/// `v` without a constant factor, which multiplies `scale` (PyTorch's
/// multi-head attention scales q and k^T by the root of the scale each).
Value withoutScale(Value v, double &scale) {
  Value rest = v;
  matchBinary<MulOp>(v, [&](Value a, Value b) {
    std::optional<double> s = getSplatValue(b);
    if (!s || shapeOf(a) != shapeOf(v))
      return false;
    scale *= *s;
    rest = a;
    return true;
  });
  return rest;
}

/// Whether the elements `values` of a [.., Sq, Sk] mask are 0 where
/// key <= query + (Sk - Sq) and hugely negative elsewhere.
template <typename Range>
static bool isCausalPattern(Range values, int64_t sq, int64_t sk) {
  int64_t i = 0;
  for (auto v : values) {
    int64_t col = i % sk, row = (i / sk) % sq;
    ++i;
    double x;
    if constexpr (std::is_same_v<decltype(v), APFloat>)
      x = v.convertToDouble();
    else
      x = v;
    bool visible = col <= row + (sk - sq);
    if (visible ? x != 0.0 : x > -1e30)
      return false;
  }
  return true;
}

/// True when `mask` is a constant additive mask that, broadcast to
/// [.., Sq, Sk], is 0 where key <= query + (Sk - Sq) and hugely negative
/// elsewhere, identically for every leading index. Every layer reads the
/// same [S, S] mask: `cache` keeps the answer per (uniqued) attribute.
bool isCausalMask(Value mask, DenseMap<Attribute, bool> &cache) {
  auto constant = mask.getDefiningOp<ConstantOp>();
  if (!constant)
    return false;
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!dense || !isa<FloatType>(dense.getElementType()))
    return false;
  ArrayRef<int64_t> shape = shapeOf(mask);
  if (shape.size() < 2)
    return false;
  auto [it, inserted] = cache.try_emplace(dense, false);
  if (!inserted)
    return it->second;
  int64_t sq = shape[shape.size() - 2], sk = shape.back();
  // f32 masks are read as floats, not as an APFloat per element.
  if (dense.getElementType().isF32())
    it->second = isCausalPattern(dense.getValues<float>(), sq, sk);
  else
    it->second = isCausalPattern(dense.getValues<APFloat>(), sq, sk);
  return it->second;
}

struct RecomposeAttentionPattern : OpRewritePattern<MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  /// Masks already checked, for this pass run (the pattern lives as long).
  mutable DenseMap<Attribute, bool> causalMasks;
  LogicalResult matchAndRewrite(MatmulOp op,
                                PatternRewriter &rewriter) const override {
    auto softmax = op.getLhs().getDefiningOp<SoftmaxOp>();
    if (!softmax || shapeOf(op).size() != 4 || !softmax->hasOneUse())
      return failure();
    int64_t rank = shapeOf(softmax).size();
    int64_t axis = static_cast<int64_t>(softmax.getAxis());
    if (axis != -1 && axis != rank - 1)
      return failure();

    // scores = (q k^T) * scale [+ masks...]: T5 adds a position bias and,
    // in the decoder, a causal mask.
    SmallVector<Value> terms;
    collectTerms(softmax.getInput(), terms);
    auto isScores = [&](Value v) {
      return (v.getDefiningOp<MulOp>() || v.getDefiningOp<DivOp>() ||
              v.getDefiningOp<MatmulOp>()) &&
             shapeOf(v) == shapeOf(softmax);
    };
    auto *scoresIt = llvm::find_if(terms, isScores);
    if (scoresIt == terms.end())
      return failure();
    Value scores = *scoresIt;
    terms.erase(scoresIt);
    bool causal = false;
    SmallVector<Value> masks;
    for (Value term : terms) {
      if (!causal && isCausalMask(term, causalMasks))
        causal = true;
      else
        masks.push_back(term);
    }
    double scale = 1.0;
    MatmulOp qk;
    if (auto mul = scores.getDefiningOp<MulOp>()) {
      bool ok = matchBinary<MulOp>(mul, [&](Value a, Value b) {
        std::optional<double> s = getSplatValue(b);
        qk = a.getDefiningOp<MatmulOp>();
        if (!s || !qk)
          return false;
        scale = *s;
        return true;
      });
      if (!ok)
        return failure();
    } else if (auto div = scores.getDefiningOp<DivOp>()) {
      std::optional<double> s = getSplatValue(div.getRhs());
      qk = div.getLhs().getDefiningOp<MatmulOp>();
      if (!s || !qk || *s == 0.0)
        return failure();
      scale = 1.0 / *s;
    } else {
      qk = scores.getDefiningOp<MatmulOp>();
    }
    if (!qk || shapeOf(qk).size() != 4)
      return failure();

    Value query = withoutScale(qk.getLhs(), scale);
    Value key = keyFromTransposed(withoutScale(qk.getRhs(), scale), rewriter);
    if (!key)
      return failure();
    key = unrepeat(key);
    Value value = unrepeat(op.getRhs());
    if (shapeOf(query).size() != 4 || shapeOf(value).size() != 4)
      return failure();

    Value mask;
    for (Value term : masks) {
      if (!mask) {
        mask = term;
        continue;
      }
      SmallVector<Type> sumType;
      SmallVector<Value> pair = {mask, term};
      if (failed(AddOp::inferReturnTypes(getContext(), std::nullopt,
                                         AddOp::Adaptor(pair), sumType)))
        return failure();
      mask = AddOp::create(rewriter, op.getLoc(), mask, term);
    }
    SmallVector<Value> operands = {query, key, value};
    if (mask)
      operands.push_back(mask);
    SmallVector<Type> inferred;
    AttentionOp::Adaptor adaptor(
        operands, rewriter.getDictionaryAttr({rewriter.getNamedAttr(
                      "scale", rewriter.getF64FloatAttr(scale))}));
    // Let the op's own shape rules decide whether this really is attention.
    if (failed(AttentionOp::inferReturnTypes(getContext(), std::nullopt,
                                             adaptor, inferred)) ||
        inferred.front() != op.getType())
      return failure();
    rewriter.replaceOpWithNewOp<AttentionOp>(op, query, key, value, mask,
                                             causal, APFloat(scale));
    return success();
  }
};

struct RecomposeAttentionPass
    : galv::impl::RecomposeAttentionBase<RecomposeAttentionPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RecomposeAttentionPattern>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
