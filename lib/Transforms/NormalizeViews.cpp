//===- NormalizeViews.cpp - views in the forms partitioning follows -------===//
//
// Exporters move data between the layouts of a Transformer in many ways;
// tensor parallelism can only follow the heads through some of them. This
// pass rewrites two kinds of view into forms galv-partition cuts:
//
// * A reshape that merges dimensions (BLOOM's [B, H, S, D] -> [B * H, S, D],
//   PyTorch MHA's [S, B, E] -> [S, B * H, D], OPT's [B, S, E] -> [B * S, E])
//   is moved below the ops that treat the merged dimensions alike
//   (elementwise ops, norms, softmax and linear along the last dimension,
//   transposes, batched matmuls), where it meets its inverse and both
//   fold away. A split heads dimension merged with the batch or sequence is
//   not a contiguous block of the merged one, so the merge itself cannot be
//   partitioned; the ops below it can.
// * A part taken out of a fused projection through views (Falcon's heads
//   sliced or gathered out of [B, S, heads, D], PyTorch MHA's packed
//   [S, B, 1, 3, E] in-projection) is sliced out of the projection's last
//   dimension first, then viewed: the projection is then cut per part.
//
//===----------------------------------------------------------------------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <numeric>

namespace mlir::galv {
#define GEN_PASS_DEF_NORMALIZEVIEWS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// How a reshape regroups the factors ("atoms") common to its input and
/// result shapes: input dimension i spans atoms [in[i], in[i + 1]), result
/// dimension j spans [out[j], out[j + 1]). Unit dimensions span none.
struct Regrouping {
  SmallVector<int64_t> atoms, in, out;
  int64_t outCount(int64_t j) const { return out[j + 1] - out[j]; }
  /// The input dimension atom `t` belongs to.
  int64_t inDimOf(int64_t t) const {
    return std::upper_bound(in.begin(), in.end(), t) - in.begin() - 1;
  }
};

/// The common refinement of two shapes of equal size, when each one's
/// dimensions are products of consecutive atoms (none for [4, 6] -> [6, 4]).
std::optional<Regrouping> regroup(ArrayRef<int64_t> from,
                                  ArrayRef<int64_t> to) {
  Regrouping g;
  g.in.assign(from.size() + 1, 0);
  g.out.assign(to.size() + 1, 0);
  size_t i = 0, j = 0;
  int64_t a = 1, b = 1; // what is left of the current dimensions
  while (true) {
    while (a == 1 && i < from.size()) {
      g.in[i] = g.atoms.size();
      a = from[i++];
    }
    while (b == 1 && j < to.size()) {
      g.out[j] = g.atoms.size();
      b = to[j++];
    }
    if (a == 1 || b == 1)
      break;
    int64_t atom = std::min(a, b);
    if (a % atom != 0 || b % atom != 0)
      return std::nullopt;
    g.atoms.push_back(atom);
    a /= atom;
    b /= atom;
  }
  if (a != 1 || b != 1)
    return std::nullopt;
  g.in.back() = g.out.back() = g.atoms.size();
  return g;
}

//===----------------------------------------------------------------------===//
// Merging reshapes
//===----------------------------------------------------------------------===//

/// A reshape that merges dimensions (some result dimension spans several
/// atoms) and keeps the last dimension as one atom, with its regrouping.
struct Merge {
  Value input, result;
  Regrouping g;
};

std::optional<Merge> mergeBehind(Value v) {
  auto reshape = v.getDefiningOp<ReshapeOp>();
  if (!reshape || shapeOf(v).empty())
    return std::nullopt;
  std::optional<Regrouping> g =
      regroup(shapeOf(reshape.getInput()), shapeOf(v));
  if (!g)
    return std::nullopt;
  int64_t rank = shapeOf(v).size();
  bool merges = false;
  for (int64_t j = 0; j < rank; ++j)
    merges |= g->outCount(j) > 1;
  if (!merges || g->outCount(rank - 1) != 1)
    return std::nullopt;
  return Merge{reshape.getInput(), v, *g};
}

RankedTensorType withShape(Value v, ArrayRef<int64_t> shape) {
  return RankedTensorType::get(
      shape, cast<RankedTensorType>(v.getType()).getElementType());
}

Value reshapeTo(PatternRewriter &rewriter, Location loc, Value v,
                ArrayRef<int64_t> shape) {
  if (shapeOf(v) == shape)
    return v;
  return ReshapeOp::create(rewriter, loc, withShape(v, shape), v);
}

/// The merge's input split into its atoms.
Value atomsOf(const Merge &m, PatternRewriter &rewriter) {
  return reshapeTo(rewriter, m.input.getLoc(), m.input, m.g.atoms);
}

/// `other`, an operand that broadcasts against the merge's result over its
/// trailing dimensions from `first` on, with those dimensions split into
/// atoms as the merge's are (kept as 1 where it broadcasts). Null when it
/// spans part of a merged dimension.
Value expandLike(const Merge &m, Value other, int64_t first, int64_t count,
                 PatternRewriter &rewriter) {
  ArrayRef<int64_t> shape = shapeOf(other);
  ArrayRef<int64_t> merged = shapeOf(m.result);
  SmallVector<int64_t> expanded;
  for (int64_t k = 0; k < count; ++k) {
    int64_t j = first + k;
    ArrayRef<int64_t> atoms =
        ArrayRef<int64_t>(m.g.atoms).slice(m.g.out[j], m.g.outCount(j));
    if (shape[k] == merged[j])
      llvm::append_range(expanded, atoms);
    else if (shape[k] == 1)
      expanded.append(atoms.size(), 1);
    else
      return Value();
  }
  llvm::append_range(expanded, shape.drop_front(count));
  return reshapeTo(rewriter, other.getLoc(), other, expanded);
}

/// The op rebuilt on the merge's atoms, `operand` standing for the merge.
Value sinkThroughElementwise(Operation *op, unsigned operand, const Merge &m,
                             PatternRewriter &rewriter) {
  int64_t rank = shapeOf(m.result).size();
  if (shapeOf(op->getResult(0)) != shapeOf(m.result))
    return Value();
  SmallVector<Value> operands;
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    if (i == operand) {
      operands.push_back(atomsOf(m, rewriter));
      continue;
    }
    int64_t r = shapeOf(v).size();
    Value e = expandLike(m, v, rank - r, r, rewriter);
    if (!e)
      return Value();
    operands.push_back(e);
  }
  // The other operands broadcast into the merge's shape: so does the result.
  OperationState state(op->getLoc(), op->getName(), operands,
                       withShape(op->getResult(0), m.g.atoms), op->getAttrs());
  return rewriter.create(state)->getResult(0);
}

/// Ops along the last dimension (unary, norms, softmax, linear): rebuilt on
/// the atoms, with the result's shape following the input's.
Value sinkThroughRowwise(Operation *op, const Merge &m,
                         PatternRewriter &rewriter) {
  Value atoms = atomsOf(m, rewriter);
  SmallVector<int64_t> shape(shapeOf(atoms));
  shape.back() = shapeOf(op->getResult(0)).back();
  Operation *clone = rewriter.clone(*op);
  clone->setOperand(0, atoms);
  clone->getResult(0).setType(withShape(op->getResult(0), shape));
  auto setAxis = [&](auto softmax) {
    int64_t rank = shapeOf(op->getResult(0)).size();
    int64_t axis = normalizedAxis(softmax.getAxis(), rank);
    if (m.g.outCount(axis) != 1)
      return false;
    softmax.setAxisAttr(rewriter.getI64IntegerAttr(m.g.out[axis]));
    return true;
  };
  bool ok = true;
  if (auto softmax = dyn_cast<SoftmaxOp>(clone))
    ok = setAxis(softmax);
  else if (auto logSoftmax = dyn_cast<LogSoftmaxOp>(clone))
    ok = setAxis(logSoftmax);
  if (!ok) {
    rewriter.eraseOp(clone);
    return Value();
  }
  return clone->getResult(0);
}

Value sinkThroughTranspose(TransposeOp op, const Merge &m,
                           PatternRewriter &rewriter) {
  SmallVector<int64_t> perm;
  for (int64_t p : op.getPermutation())
    for (int64_t t = m.g.out[p]; t < m.g.out[p + 1]; ++t)
      perm.push_back(t);
  return TransposeOp::create(rewriter, op.getLoc(), atomsOf(m, rewriter), perm);
}

/// A batched matmul with a merge for one operand: merged batch dimensions
/// (or merged rows of a left operand times a shared right matrix) stay
/// merged through the product.
Value sinkThroughMatmul(MatmulOp op, unsigned operand, const Merge &m,
                        PatternRewriter &rewriter) {
  if (op.getTransposeLhs() || op.getTransposeRhs())
    return Value();
  int64_t rank = shapeOf(m.result).size();
  Value other = op->getOperand(1 - operand);
  int64_t otherRank = shapeOf(other).size();
  bool sharedRhs = operand == 0 && otherRank == 2;
  bool sharedLhs = operand == 1 && otherRank == 2;
  if (!sharedRhs && (rank < 3 || m.g.outCount(rank - 2) != 1))
    return Value();
  Value atoms = atomsOf(m, rewriter);
  if (!sharedRhs && !sharedLhs) {
    if (otherRank != rank)
      return Value();
    other = expandLike(m, other, 0, rank - 2, rewriter);
    if (!other)
      return Value();
  }
  Value lhs = operand == 0 ? atoms : other, rhs = operand == 0 ? other : atoms;
  return MatmulOp::create(rewriter, op.getLoc(), lhs, rhs);
}

struct SinkMergePattern : RewritePattern {
  SinkMergePattern(MLIRContext *context)
      : RewritePattern(MatchAnyOpTypeTag(), /*benefit=*/1, context) {}

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    if (op->getNumResults() != 1 || op->getNumOperands() == 0)
      return failure();
    for (OpOperand &use : op->getOpOperands()) {
      std::optional<Merge> m = mergeBehind(use.get());
      if (!m)
        continue;
      unsigned i = use.getOperandNumber();
      Value sunk = sink(op, i, *m, rewriter);
      if (!sunk)
        continue;
      rewriter.replaceOpWithNewOp<ReshapeOp>(op, op->getResult(0).getType(),
                                             sunk);
      return success();
    }
    return failure();
  }

  static Value sink(Operation *op, unsigned i, const Merge &m,
                    PatternRewriter &rewriter) {
    if (isa<AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp>(op))
      return sinkThroughElementwise(op, i, m, rewriter);
    if (i == 0 &&
        (isa<NegOp, AbsOp, ExpOp, LogOp, SqrtOp, RsqrtOp, ReciprocalOp, TanhOp,
             ErfOp, SigmoidOp, ReluOp, SiluOp, GeluOp, LayerNormOp, RmsNormOp,
             SoftmaxOp, LogSoftmaxOp, LinearOp>(op)))
      return sinkThroughRowwise(op, m, rewriter);
    if (auto transpose = dyn_cast<TransposeOp>(op))
      return sinkThroughTranspose(transpose, m, rewriter);
    if (auto matmul = dyn_cast<MatmulOp>(op))
      return sinkThroughMatmul(matmul, i, m, rewriter);
    return Value();
  }
};

//===----------------------------------------------------------------------===//
// Parts of fused projections
//===----------------------------------------------------------------------===//

/// A range [start, limit) of one dimension.
struct Range {
  int64_t dim, start, limit;
};

/// The views between a projection's result and a range of one dimension
/// of a view of it, and the range each view's result is cut to; empty when
/// the range is not a piece of the projection's last dimension.
struct PartChain {
  Value projection;             // a linear's result
  int64_t start = 0, limit = 0; // of the projection's last dimension
  SmallVector<std::pair<Operation *, Range>> views; // bottom-up
};

std::optional<PartChain> traceToProjection(Value v, Range r) {
  PartChain chain;
  while (true) {
    if (v.getDefiningOp<LinearOp>()) {
      if (r.dim != static_cast<int64_t>(shapeOf(v).size()) - 1)
        return std::nullopt;
      chain.projection = v;
      chain.start = r.start;
      chain.limit = r.limit;
      return chain;
    }
    if (auto transpose = v.getDefiningOp<TransposeOp>()) {
      chain.views.push_back({transpose, r});
      r.dim = transpose.getPermutation()[r.dim];
      v = transpose.getInput();
      continue;
    }
    auto reshape = v.getDefiningOp<ReshapeOp>();
    if (!reshape)
      return std::nullopt;
    std::optional<Regrouping> g =
        regroup(shapeOf(reshape.getInput()), shapeOf(v));
    // The range must take whole atoms of the outermost factors of one
    // input dimension: a contiguous piece of it.
    if (!g || g->outCount(r.dim) == 0)
      return std::nullopt;
    int64_t first = g->out[r.dim], end = g->out[r.dim + 1];
    int64_t i = g->inDimOf(first);
    if (g->in[i] != first || g->inDimOf(end - 1) != i)
      return std::nullopt;
    int64_t inner = 1;
    for (int64_t t = end; t < g->in[i + 1]; ++t)
      inner *= g->atoms[t];
    chain.views.push_back({reshape, r});
    r = {i, r.start * inner, r.limit * inner};
    v = reshape.getInput();
  }
}

/// Rebuilds `chain` on the slice of its projection's part.
Value slicePart(const PartChain &chain, PatternRewriter &rewriter) {
  Value y = chain.projection;
  SmallVector<int64_t> starts(shapeOf(y).size(), 0), limits(shapeOf(y)),
      steps(shapeOf(y).size(), 1);
  starts.back() = chain.start;
  limits.back() = chain.limit;
  Value v = SliceOp::create(rewriter, y.getLoc(), y, starts, limits, steps);
  for (auto [op, r] : llvm::reverse(chain.views)) {
    if (auto transpose = dyn_cast<TransposeOp>(op)) {
      v = TransposeOp::create(rewriter, op->getLoc(), v,
                              transpose.getPermutation());
      continue;
    }
    SmallVector<int64_t> shape(shapeOf(op->getResult(0)));
    shape[r.dim] = r.limit - r.start;
    v = ReshapeOp::create(rewriter, op->getLoc(), withShape(v, shape), v);
  }
  return v;
}

/// The one dimension a slice cuts (step 1, every other dimension whole).
std::optional<Range> cutRange(SliceOp slice) {
  ArrayRef<int64_t> shape = shapeOf(slice.getInput());
  std::optional<Range> range;
  for (auto [d, size] : llvm::enumerate(shape)) {
    int64_t start = slice.getStarts()[d], limit = slice.getLimits()[d];
    if (start == 0 && limit == size && (slice.getSteps()[d] == 1 || size == 1))
      continue;
    if (range || slice.getSteps()[d] != 1)
      return std::nullopt;
    range = Range{static_cast<int64_t>(d), start, limit};
  }
  return range;
}

struct SlicePartPattern : OpRewritePattern<SliceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SliceOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<Range> range = cutRange(op);
    if (!range || op.getInput().getDefiningOp<LinearOp>())
      return failure();
    std::optional<PartChain> chain = traceToProjection(op.getInput(), *range);
    if (!chain)
      return failure();
    rewriter.replaceOp(op, slicePart(*chain, rewriter));
    return success();
  }
};

/// A gather by constant consecutive indices (a single one, or a run) is a
/// slice; out of a fused projection, it is a part of it.
struct GatherPartPattern : OpRewritePattern<GatherOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GatherOp op,
                                PatternRewriter &rewriter) const override {
    auto ids = op.getIndices().getDefiningOp<ConstantOp>();
    auto dense = ids ? dyn_cast<DenseIntElementsAttr>(ids.getValue()) : nullptr;
    if (!dense || shapeOf(ids).size() > 1 || dense.getNumElements() == 0)
      return failure();
    ArrayRef<int64_t> shape = shapeOf(op.getData());
    int64_t axis = normalizedAxis(op.getAxis(), shape.size());
    int64_t first = 0, n = 0;
    for (const APInt &id : dense.getValues<APInt>()) {
      int64_t v = id.getSExtValue();
      if (v < 0)
        v += shape[axis];
      if (n == 0)
        first = v;
      if (v != first + n++)
        return failure();
    }
    std::optional<PartChain> chain =
        traceToProjection(op.getData(), {axis, first, first + n});
    if (!chain)
      return failure();
    Value part = slicePart(*chain, rewriter);
    rewriter.replaceOp(
        op, reshapeTo(rewriter, op.getLoc(), part, shapeOf(op.getResult())));
    return success();
  }
};

struct NormalizeViewsPass : galv::impl::NormalizeViewsBase<NormalizeViewsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<SinkMergePattern, SlicePartPattern, GatherPartPattern>(
        &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
