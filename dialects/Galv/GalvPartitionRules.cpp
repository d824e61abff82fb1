//===- GalvPartitionRules.cpp - how each galv op partitions ---------------===//
//
// PartitionOpInterface for every galv op: how the op runs on one rank
// under its layer's strategy. Each rule conforms its operands (through
// PartitionState's gathers, slices and all-to-alls), rewrites itself to
// the local form, and records its results' layouts:
//
// * data parallelism splits the batch dimension over the op's dp group;
// * tensor parallelism: a linear whose input is whole is column-parallel
//   (weight cut along its outputs, input entering through galv.replicate,
//   Megatron's f), a linear whose input is split along its features is
//   row-parallel (weight cut along its inputs, galv.all_reduce after it,
//   Megatron's g, then the bias); attention runs on this rank's heads;
//   vocabulary-parallel embedding and cross-entropy (Megatron);
// * sequence parallelism: Megatron-SP gathers the sequence before a
//   column-parallel linear and reduce-scatters after a row-parallel one;
//   Ulysses trades a split sequence for split heads around attention.
//
//===----------------------------------------------------------------------===//

#include "Galv/Partitioning.h"

using namespace mlir;
using namespace mlir::galv;

static RankedTensorType typeOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// `to` is laid out as `from`.
static LogicalResult same(PartitionState &s, Value from, Value to) {
  s.setLayout(to, s.layoutOf(from));
  return success();
}

/// Conforms operand `i` of `op` and makes it whole along `dim`.
static LogicalResult requireWhole(Operation *op, unsigned i, int64_t dim,
                                  PartitionState &s, const Axes &axes) {
  Value v = s.conform(op, i, axes);
  if (dim < 0)
    dim += s.global(v).getRank();
  if (!s.layoutOf(v).dims[dim].whole())
    op->setOperand(i, s.wholeAlong(v, dim, op));
  return success();
}

LogicalResult mlir::galv::partitionLikeOperand(Operation *op, PartitionState &s,
                                               const Axes &axes) {
  s.conform(op, 0, axes);
  return same(s, op->getOperand(0), op->getResult(0));
}

/// Norms and softmax work along one whole axis; their scales are cut with
/// the rows they scale.
static LogicalResult partitionRowwise(Operation *n, int64_t axis,
                                      PartitionState &s, const Axes &axes) {
  (void)requireWhole(n, 0, axis, s, axes);
  bool varying = s.layoutOf(n->getOperand(0)).splitOver(axes.tp);
  for (unsigned i = 1; i < n->getNumOperands(); ++i) {
    Value p = n->getOperand(i);
    if (s.isParam(p) && failed(s.cutParam(p, Layout::whole(1), axes, n)))
      return failure();
    // Scales applied to a split sequence get partial gradients.
    if (varying && s.trainable.contains(p))
      n->setOperand(i, s.replicate(p, axes.tp, n));
  }
  return same(s, n->getOperand(0), n->getResult(0));
}

/// Ops that partitioning itself creates: their input is already one rank's.
static LogicalResult refuseMadeByPartitioning(Operation *op,
                                              PartitionState &s) {
  return s.fail(op, "'" + op->getName().getStringRef() +
                        "' is made by partitioning; partition the one-rank "
                        "program instead");
}

//===----------------------------------------------------------------------===//
// Elementwise, unary and constants
//===----------------------------------------------------------------------===//

#define GALV_ELEMENTWISE_RULE(Op)                                              \
  LogicalResult Op::partition(PartitionState &s, const Axes &axes) {           \
    return partitionElementwise(*this, s, axes);                               \
  }
GALV_ELEMENTWISE_RULE(AddOp)
GALV_ELEMENTWISE_RULE(SubOp)
GALV_ELEMENTWISE_RULE(MulOp)
GALV_ELEMENTWISE_RULE(DivOp)
GALV_ELEMENTWISE_RULE(PowOp)
GALV_ELEMENTWISE_RULE(MaxOp)
GALV_ELEMENTWISE_RULE(MinOp)
GALV_ELEMENTWISE_RULE(AndOp)
GALV_ELEMENTWISE_RULE(OrOp)
GALV_ELEMENTWISE_RULE(CompareOp)
GALV_ELEMENTWISE_RULE(WhereOp)
#undef GALV_ELEMENTWISE_RULE

#define GALV_LIKE_OPERAND_RULE(Op)                                             \
  LogicalResult Op::partition(PartitionState &s, const Axes &axes) {           \
    return partitionLikeOperand(*this, s, axes);                               \
  }
GALV_LIKE_OPERAND_RULE(NegOp)
GALV_LIKE_OPERAND_RULE(NotOp)
GALV_LIKE_OPERAND_RULE(AbsOp)
GALV_LIKE_OPERAND_RULE(ExpOp)
GALV_LIKE_OPERAND_RULE(LogOp)
GALV_LIKE_OPERAND_RULE(SqrtOp)
GALV_LIKE_OPERAND_RULE(RsqrtOp)
GALV_LIKE_OPERAND_RULE(ReciprocalOp)
GALV_LIKE_OPERAND_RULE(TanhOp)
GALV_LIKE_OPERAND_RULE(ErfOp)
GALV_LIKE_OPERAND_RULE(SigmoidOp)
GALV_LIKE_OPERAND_RULE(ReluOp)
GALV_LIKE_OPERAND_RULE(SiluOp)
GALV_LIKE_OPERAND_RULE(GeluOp)
GALV_LIKE_OPERAND_RULE(CastOp)
#undef GALV_LIKE_OPERAND_RULE

LogicalResult ConstantOp::partition(PartitionState &, const Axes &) {
  return success();
}

LogicalResult LayerNormOp::partition(PartitionState &s, const Axes &axes) {
  return partitionRowwise(*this, -1, s, axes);
}
LogicalResult RmsNormOp::partition(PartitionState &s, const Axes &axes) {
  return partitionRowwise(*this, -1, s, axes);
}
LogicalResult SoftmaxOp::partition(PartitionState &s, const Axes &axes) {
  return partitionRowwise(*this, getAxis(), s, axes);
}

//===----------------------------------------------------------------------===//
// Ops made by partitioning or differentiation
//===----------------------------------------------------------------------===//

LogicalResult AdamWUpdateOp::partition(PartitionState &s, const Axes &) {
  return s.fail(*this, "'galv.adamw_update' appears only in a training step "
                       "built after partitioning");
}

/// Ops only galv-autodiff makes, after partitioning.
static LogicalResult refuseBackwardOnly(Operation *op, PartitionState &s) {
  return s.fail(op, "'" + op->getName().getStringRef() +
                        "' appears only in the backward pass, which "
                        "galv-autodiff builds after partitioning");
}

static LogicalResult refuseFusedLate(Operation *op, PartitionState &s) {
  return s.fail(op, "'" + op->getName().getStringRef() +
                        "' is made by a fusion pass after partitioning; "
                        "partition the add and the norm it fuses");
}

#define GALV_REFUSED_RULE(Op, refusal)                                         \
  LogicalResult Op::partition(PartitionState &s, const Axes &) {               \
    return refusal(*this, s);                                                  \
  }
GALV_REFUSED_RULE(AllReduceOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(AllGatherOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(ReduceScatterOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(AllToAllOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(ShardSliceOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(StageTransferOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(StageBroadcastOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(ReplicateOp, refuseMadeByPartitioning)
GALV_REFUSED_RULE(EmbeddingGradOp, refuseBackwardOnly)
GALV_REFUSED_RULE(CrossEntropyGradOp, refuseBackwardOnly)
GALV_REFUSED_RULE(LayerNormGradOp, refuseBackwardOnly)
GALV_REFUSED_RULE(RmsNormGradOp, refuseBackwardOnly)
GALV_REFUSED_RULE(GeluGradOp, refuseBackwardOnly)
GALV_REFUSED_RULE(AttentionGradOp, refuseBackwardOnly)
GALV_REFUSED_RULE(AddNormOp, refuseFusedLate)
#undef GALV_REFUSED_RULE

//===----------------------------------------------------------------------===//
// Contractions, parameters, data movement, Transformer ops
//===----------------------------------------------------------------------===//

/// The range [start, limit) of the last dimension `last` of `y` that `user`
/// takes: a slice with step 1 of that range and of everything else.
static std::optional<std::pair<int64_t, int64_t>>
lastDimRange(Value y, Operation *user, int64_t last) {
  auto slice = dyn_cast<SliceOp>(user);
  if (!slice)
    return std::nullopt;
  auto type = cast<RankedTensorType>(y.getType());
  for (int64_t d = 0; d <= last; ++d) {
    int64_t start = slice.getStarts()[d], limit = slice.getLimits()[d];
    if (slice.getSteps()[d] != 1)
      return std::nullopt;
    if (d != last && (start != 0 || limit != type.getDimSize(d)))
      return std::nullopt;
  }
  return std::make_pair(slice.getStarts()[last], slice.getLimits()[last]);
}

/// The number of equal parts a fused projection's result `y` is taken
/// apart into along its last dimension `last` (of `features`) right after:
/// one split into equal sizes (GPT-2's c_attn), or slices that each take
/// one whole part (Phi-3's qkv_proj and gate_up_proj). 1 otherwise.
static int64_t fusedParts(Value y, int64_t last, int64_t features) {
  if (y.use_empty())
    return 1;
  if (y.hasOneUse())
    if (auto split = dyn_cast<SplitOp>(*y.getUsers().begin())) {
      ArrayRef<int64_t> sizes = split.getSizes();
      bool lastAxis = normalizedAxis(split.getAxis(), last + 1) == last;
      return lastAxis && llvm::all_equal(sizes) ? sizes.size() : 1;
    }
  // Slices: every user takes [start, start + size) of the last dimension
  // with step 1 and everything else whole, all with the same size, which
  // divides the features and aligns the starts.
  int64_t size = 0;
  for (Operation *user : y.getUsers()) {
    auto range = lastDimRange(y, user, last);
    if (!range)
      return 1;
    int64_t part = range->second - range->first;
    if (part <= 0 || (size && part != size))
      return 1;
    size = part;
    if (range->first % size != 0)
      return 1;
  }
  return size && features % size == 0 ? features / size : 1;
}

/// The slices that take a fused projection's result `y` apart along its
/// last dimension `last` into parts not all of one size (Falcon's
/// query_key_value: every query head, then one key and one value head);
/// empty otherwise.
static SmallVector<SliceOp> unequalParts(Value y, int64_t last) {
  SmallVector<SliceOp> parts;
  SmallVector<int64_t> sizes;
  for (Operation *user : y.getUsers()) {
    auto range = lastDimRange(y, user, last);
    if (!range)
      return {};
    parts.push_back(cast<SliceOp>(user));
    sizes.push_back(range->second - range->first);
  }
  if (parts.size() < 2 || llvm::all_equal(sizes))
    return {};
  // In the projection's order, whatever the use list's.
  llvm::sort(parts, [&](SliceOp a, SliceOp b) {
    return a.getStarts()[last] < b.getStarts()[last];
  });
  return parts;
}

/// Whether `y`, a projection's result [..., F], is one attention head: its
/// only use reshapes it to [..., 1, F] (a multi-query key or value).
static bool isSingleHeadProjection(Value y) {
  if (!y.hasOneUse())
    return false;
  auto reshape = dyn_cast<ReshapeOp>(*y.getUsers().begin());
  if (!reshape)
    return false;
  ArrayRef<int64_t> in = cast<RankedTensorType>(y.getType()).getShape();
  ArrayRef<int64_t> out = reshape.getResult().getType().getShape();
  return out.size() == in.size() + 1 && out[out.size() - 2] == 1 &&
         out.back() == in.back() && out.drop_back(2) == in.drop_back();
}

/// A multi-query key or value projection under tensor parallelism: one
/// head cannot be cut, so every rank computes it whole (as Megatron
/// replicates such heads). Each rank's query heads send back their part of
/// its gradient: the weights' and the input's gradients are summed over
/// the group (the input's by the Megatron-SP gather's reduce-scatter when
/// the sequence was gathered).
static LogicalResult partitionSingleHead(LinearOp op, PartitionState &s,
                                         const Axes &axes, Value x,
                                         Layout result, bool gatheredSequence) {
  for (unsigned i : {1u, 2u}) {
    if (i >= op->getNumOperands())
      continue;
    Value p = op->getOperand(i);
    if (s.isParam(p) &&
        failed(s.cutParam(p, Layout::whole(s.global(p).getRank()), axes, op)))
      return failure();
    op->setOperand(i, s.replicate(p, axes.tp, op));
  }
  if (s.trainable.contains(x) && !gatheredSequence)
    op->setOperand(0, s.replicate(x, axes.tp, op));
  s.setLayout(op.getResult(), result);
  return success();
}

/// A projection taken apart into parts of unequal sizes (unequalParts):
/// each part is computed apart from this rank's rows of the whole weight,
/// a single head whole (as partitionSingleHead), the others
/// column-parallel. Every rank holds the whole weight; its gradient, each
/// rank's rows and share of the single heads', is summed over the group,
/// and so is the input's (unless the Megatron-SP gather's reduce-scatter
/// sums it).
static LogicalResult partitionUnequalParts(LinearOp op, PartitionState &s,
                                           const Axes &axes, Value x,
                                           const Layout &result,
                                           bool gatheredSequence,
                                           ArrayRef<SliceOp> parts) {
  int64_t last = result.dims.size() - 1;
  int64_t outAxis = op.getLayout() == WeightLayout::out_in ? 0 : 1;
  for (SliceOp part : parts) {
    int64_t size = part.getLimits()[last] - part.getStarts()[last];
    if (!isSingleHeadProjection(part.getResult()) && size % axes.tp.size != 0)
      return s.fail(op, "a part of " + Twine(size) +
                            " output features of this fused projection "
                            "does not split over tp = " +
                            Twine(axes.tp.size));
  }
  Value w = op.getWeight(), bias = op.getBias();
  if (!s.isParam(w) || (bias && !s.isParam(bias)))
    return s.fail(op, "tensor parallelism needs the linear's weight and bias "
                      "to be parameters");
  for (Value p : {w, bias})
    if (p &&
        failed(s.cutParam(p, Layout::whole(s.global(p).getRank()), axes, op)))
      return failure();
  w = s.replicate(w, axes.tp, op);
  if (bias)
    bias = s.replicate(bias, axes.tp, op);
  if (s.trainable.contains(x) && !gatheredSequence)
    x = s.replicate(x, axes.tp, op);
  // Rows [start, limit) of `p` along `axis`, this rank's share if `split`.
  auto rows = [&](Value p, int64_t axis, int64_t start, int64_t limit,
                  bool split) {
    RankedTensorType type = s.global(p);
    SmallVector<int64_t> starts(type.getRank(), 0), limits(type.getShape()),
        steps(type.getRank(), 1);
    starts[axis] = start;
    limits[axis] = limit;
    s.b.setInsertionPoint(op);
    Value r = SliceOp::create(s.b, op.getLoc(), p, starts, limits, steps);
    s.stamp(r.getDefiningOp(), op);
    s.define(r, PartitionState::typeOf(r), Layout::whole(type.getRank()));
    return split ? s.sliceDim(r, axis, axes.tp, op) : r;
  };
  for (SliceOp part : parts) {
    int64_t start = part.getStarts()[last], limit = part.getLimits()[last];
    bool split = !isSingleHeadProjection(part.getResult());
    Value wp = rows(w, outAxis, start, limit, split);
    Value bp = bias ? rows(bias, 0, start, limit, split) : Value();
    s.b.setInsertionPoint(op);
    auto linear = LinearOp::create(s.b, op.getLoc(), x, wp, bp, op.getLayout());
    s.stamp(linear, op);
    Layout l = result;
    l.dims[last] = split ? axes.tp : Group();
    s.define(linear, PartitionState::typeOf(part.getResult()), l);
    // The slice now takes all of its part.
    SmallVector<int64_t> starts(part.getStarts()), limits(part.getLimits());
    starts[last] = 0;
    limits[last] = limit - start;
    part->setOperand(0, linear.getResult());
    part.setStarts(starts);
    part.setLimits(limits);
  }
  op.erase();
  return success();
}

/// The sequence dimension of a [B, S, E] activation, or of [S, B, E] (as
/// PyTorch's nn.TransformerEncoder layers run): whichever of the first two
/// is not the batch.
static int64_t sequenceDim(const Layout &l) { return l.batchDim == 1 ? 0 : 1; }

/// Ulysses: whole weights on a split sequence; features split by the
/// attention's all-to-all come back to a split sequence first.
static LogicalResult partitionLinearUlysses(LinearOp op, PartitionState &s,
                                            const Axes &axes, Value x) {
  Layout lx = s.layoutOf(x);
  int64_t last = lx.dims.size() - 1;
  Value w = op.getWeight(), bias = op.getBias();
  Layout result = lx;
  result.blocks[last] = 1;
  if (lx.dims[last] == axes.tp) {
    x = s.allToAll(x, 1, last, axes.tp, op);
    op->setOperand(0, x);
    lx = s.layoutOf(x);
    result = lx;
  }
  if (!lx.dims[last].whole())
    return s.fail(op, "input features split over a group the linear does "
                      "not use");
  for (Value p : {w, bias})
    if (p && s.isParam(p) &&
        failed(s.cutParam(p, Layout::whole(s.global(p).getRank()), axes, op)))
      return failure();
  // The weights meet a split sequence: their gradients are partial sums.
  if (lx.splitOver(axes.tp)) {
    op->setOperand(1, s.replicate(w, axes.tp, op));
    if (bias)
      op->setOperand(2, s.replicate(bias, axes.tp, op));
  }
  s.setLayout(op.getResult(), result);
  return success();
}

LogicalResult LinearOp::partition(PartitionState &s, const Axes &axes) {
  LinearOp op = *this;
  Value x = s.conform(op, 0, axes);
  Layout lx = s.layoutOf(x);
  int64_t last = lx.dims.size() - 1;
  Value w = op.getWeight(), bias = op.getBias();
  bool outIn = op.getLayout() == WeightLayout::out_in;
  int64_t outAxis = outIn ? 0 : 1, inAxis = outIn ? 1 : 0;
  RankedTensorType wType = s.global(w);
  auto paramLayout = [&](int64_t axis, Group g, int64_t blocks) {
    Layout l = Layout::whole(wType.getRank());
    if (axis >= 0) {
      l.dims[axis] = g;
      l.blocks[axis] = blocks;
    }
    return l;
  };
  Layout result = lx;
  result.blocks[last] = 1;
  if (axes.ulysses())
    return partitionLinearUlysses(op, s, axes, x);
  bool gatheredSequence = false;
  int64_t seq = sequenceDim(lx);
  if (axes.megatronSp() && lx.dims.size() == 3 && lx.dims[seq] == axes.tp &&
      lx.dims[last].whole()) {
    gatheredSequence = true;
    // Megatron-SP: gather the sequence before a column-parallel linear;
    // the gradient is reduce-scattered back.
    x = s.gatherDim(x, seq, axes.tp, op, /*scatterGrad=*/true);
    op->setOperand(0, x);
    lx = s.layoutOf(x);
    result = lx;
  }
  if (!axes.tp.whole() && lx.dims[last].whole()) {
    if (isSingleHeadProjection(op.getResult()))
      return partitionSingleHead(op, s, axes, x, result, gatheredSequence);
    SmallVector<SliceOp> parts = unequalParts(op.getResult(), last);
    if (!parts.empty())
      return partitionUnequalParts(op, s, axes, x, result, gatheredSequence,
                                   parts);
    // Column-parallel. A fused projection split into equal parts right
    // after is cut per part, so that each rank holds its heads of each.
    int64_t outFeatures = wType.getDimSize(outAxis);
    int64_t blocks = fusedParts(op.getResult(), last, outFeatures);
    if (outFeatures % (blocks * axes.tp.size) != 0)
      return s.fail(op,
                    "cannot split " + Twine(outFeatures) +
                        " output features over tp = " + Twine(axes.tp.size));
    if (!s.isParam(w) || (bias && !s.isParam(bias)))
      return s.fail(op, "tensor parallelism needs the linear's weight and bias "
                        "to be parameters");
    if (failed(s.cutParam(w, paramLayout(outAxis, axes.tp, blocks), axes, op)))
      return failure();
    if (bias) {
      Layout lb = Layout::whole(1);
      lb.dims[0] = axes.tp;
      lb.blocks[0] = blocks;
      if (failed(s.cutParam(bias, lb, axes, op)))
        return failure();
    }
    if (s.trainable.contains(x) && !gatheredSequence)
      op->setOperand(0, s.replicate(x, axes.tp, op));
    result.dims[last] = axes.tp;
    result.blocks[last] = blocks;
    s.setLayout(op.getResult(), result);
    return success();
  }
  if (!axes.tp.whole() && lx.dims[last] == axes.tp) {
    if (lx.blocks[last] != 1)
      return s.fail(op, "row-parallel linear on a blocked split");
    if (!s.isParam(w) || (bias && !s.isParam(bias)))
      return s.fail(op, "tensor parallelism needs the linear's weight and bias "
                        "to be parameters");
    // Row-parallel: partial sums, all-reduced, then the bias once.
    if (failed(s.cutParam(w, paramLayout(inAxis, axes.tp, 1), axes, op)))
      return failure();
    if (bias && failed(s.cutParam(bias, Layout::whole(1), axes, op)))
      return failure();
    result.dims[last] = Group();
    RankedTensorType globalType = typeOf(op.getResult());
    s.b.setInsertionPoint(op);
    auto partial =
        LinearOp::create(s.b, op.getLoc(), x, w, Value(), op.getLayout());
    // Megatron-SP reduce-scatters along the sequence instead.
    bool scatter = axes.megatronSp() && result.dims.size() == 3 &&
                   globalType.getDimSize(seq) % axes.tp.size == 0;
    Value sum =
        scatter ? Value(ReduceScatterOp::create(s.b, op.getLoc(), partial, seq,
                                                s.groupAttr(axes.tp)))
                : Value(AllReduceOp::create(s.b, op.getLoc(), ReduceKind::sum,
                                            partial, s.groupAttr(axes.tp)));
    if (scatter)
      result.dims[seq] = axes.tp;
    s.stamp(partial, op);
    s.stamp(sum.getDefiningOp(), op);
    if (bias) {
      Value b2 = scatter ? s.replicate(bias, axes.tp, op) : bias;
      s.b.setInsertionPoint(op);
      sum = AddOp::create(s.b, op.getLoc(), sum, b2);
      s.stamp(sum.getDefiningOp(), op);
    }
    Layout partialLayout = lx;
    partialLayout.dims[last] = Group();
    partialLayout.blocks[last] = 1;
    s.define(partial, globalType, partialLayout);
    for (Operation *o = sum.getDefiningOp(); o && o != partial;) {
      Value r = o->getResult(0);
      s.define(r, globalType, result);
      o = o->getOperand(0).getDefiningOp();
    }
    op.getResult().replaceAllUsesWith(sum);
    op.erase();
    return success();
  }
  // No tensor parallelism here: the weight stays whole.
  if (s.isParam(w) &&
      failed(s.cutParam(w, Layout::whole(wType.getRank()), axes, op)))
    return failure();
  if (bias && s.isParam(bias) &&
      failed(s.cutParam(bias, Layout::whole(1), axes, op)))
    return failure();
  if (!lx.dims[last].whole())
    return s.fail(op, "input features split over a group the linear does not "
                      "use");
  s.setLayout(op.getResult(), result);
  return success();
}

static LogicalResult partitionVocabEmbedding(EmbeddingOp op, PartitionState &s,
                                             const Axes &axes) {
  Value table = op.getTable(), ids = op.getIds();
  if (!s.isParam(table))
    return s.fail(op, "vocabulary parallelism needs the table to be a "
                      "parameter");
  RankedTensorType tableType = s.global(table);
  int64_t vocab = tableType.getDimSize(0);
  if (vocab % axes.tp.size != 0)
    return s.fail(op,
                  "vocabulary of " + Twine(vocab) +
                      " does not split over vocab tp = " + Twine(axes.tp.size));
  Layout cut = Layout::whole(2);
  cut.dims[0] = axes.tp;
  if (failed(s.cutParam(table, cut, axes, op)))
    return failure();
  Location loc = op.getLoc();
  auto idsType = typeOf(ids);
  Type intType = idsType.getElementType();
  Value start = s.vocabStart(vocab, axes.tp, intType, op);
  auto scalar = [&](int64_t v) -> Value {
    return ConstantOp::create(
        s.b, loc,
        DenseElementsAttr::get(RankedTensorType::get({}, intType),
                               APInt(intType.getIntOrFloatBitWidth(), v,
                                     /*isSigned=*/true)));
  };
  s.b.setInsertionPoint(op);
  Value end = AddOp::create(s.b, loc, start, scalar(vocab / axes.tp.size));
  Value inside = AndOp::create(
      s.b, loc, CompareOp::create(s.b, loc, ComparePredicate::ge, ids, start),
      CompareOp::create(s.b, loc, ComparePredicate::lt, ids, end));
  Value local = WhereOp::create(s.b, loc, inside,
                                SubOp::create(s.b, loc, ids, start), scalar(0));
  // The padding id stays a vocabulary id: each rank's plan finds its row.
  IntegerAttr padding = op.getPaddingIdxAttr();
  Value rows =
      EmbeddingOp::create(s.b, loc, table, local, padding,
                          padding ? s.groupAttr(axes.tp) : DeviceGroupAttr());
  SmallVector<int64_t> maskShape(idsType.getShape());
  maskShape.push_back(1);
  Type f = tableType.getElementType();
  Value mask = ReshapeOp::create(
      s.b, loc, RankedTensorType::get(maskShape, f),
      CastOp::create(s.b, loc, RankedTensorType::get(idsType.getShape(), f),
                     inside));
  Value pieces = MulOp::create(s.b, loc, rows, mask);
  Layout out = s.layoutOf(ids);
  out.dims.push_back(Group());
  out.blocks.push_back(1);
  // With sequence parallelism (Galvatron's vsp) the sum is scattered along
  // the sequence, as after a row-parallel linear.
  bool scatter = axes.megatronSp() && out.dims.size() == 3 &&
                 out.dims[1].whole() &&
                 idsType.getDimSize(1) % axes.tp.size == 0;
  Value sum = scatter
                  ? Value(ReduceScatterOp::create(s.b, loc, pieces, 1,
                                                  s.groupAttr(axes.tp)))
                  : Value(AllReduceOp::create(s.b, loc, ReduceKind::sum, pieces,
                                              s.groupAttr(axes.tp)));
  if (scatter)
    out.dims[1] = axes.tp;
  s.define(sum, s.global(op.getResult()), out);
  s.dataDerived.insert(sum);
  op.getResult().replaceAllUsesWith(sum);
  op.erase();
  return success();
}

/// Cross-entropy of logits split along the vocabulary (Megatron): the
/// log-sum-exp and the target logit are reduced over the group, so no rank
/// holds whole rows of logits. The max is only a stabilizer (its gradient
/// cancels), which is why all_reduce max passes none back.
static Value vocabParallelCrossEntropy(CrossEntropyOp op, PartitionState &s,
                                       const Axes &axes) {
  Location loc = op.getLoc();
  s.b.setInsertionPoint(op);
  Value logits = op.getLogits(), labels = op.getLabels();
  RankedTensorType lt = typeOf(logits), yt = typeOf(labels);
  int64_t cols = lt.getShape().back(), n = yt.getNumElements();
  Type f = lt.getElementType(), intType = yt.getElementType();
  auto fType = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, f);
  };
  Value z = ReshapeOp::create(s.b, loc, fType({n, cols}), logits);
  Value y = ReshapeOp::create(s.b, loc, RankedTensorType::get({n, 1}, intType),
                              labels);
  auto allReduce = [&](ReduceKind kind, Value v) -> Value {
    return AllReduceOp::create(s.b, loc, kind, v, s.groupAttr(axes.tp));
  };
  auto rowReduce = [&](ReduceKind kind, Value v) -> Value {
    return ReduceOp::create(s.b, loc, kind, v, ArrayRef<int64_t>{1}, true);
  };
  Value m = allReduce(ReduceKind::max, rowReduce(ReduceKind::max, z));
  Value shifted = SubOp::create(s.b, loc, z, m);
  Value sumExp =
      allReduce(ReduceKind::sum,
                rowReduce(ReduceKind::sum, ExpOp::create(s.b, loc, shifted)));
  Value lse = LogOp::create(s.b, loc, sumExp);
  // Columns this rank holds, as vocabulary ids.
  Value start = s.vocabStart(cols * axes.tp.size, axes.tp, intType, op);
  s.b.setInsertionPoint(op);
  SmallVector<APInt> iota;
  for (int64_t c = 0; c < cols; ++c)
    iota.push_back(APInt(intType.getIntOrFloatBitWidth(), c, true));
  Value columns = AddOp::create(
      s.b, loc,
      ConstantOp::create(s.b, loc,
                         DenseElementsAttr::get(
                             RankedTensorType::get({1, cols}, intType), iota)),
      start);
  Value hit = CastOp::create(
      s.b, loc, fType({n, cols}),
      CompareOp::create(s.b, loc, ComparePredicate::eq, columns, y));
  Value target = allReduce(
      ReduceKind::sum,
      rowReduce(ReduceKind::sum, MulOp::create(s.b, loc, shifted, hit)));
  Value perRow = SubOp::create(s.b, loc, lse, target);
  Value valid = CastOp::create(
      s.b, loc, fType({n, 1}),
      CompareOp::create(
          s.b, loc, ComparePredicate::ne, y,
          ConstantOp::create(
              s.b, loc,
              DenseElementsAttr::get(RankedTensorType::get({}, intType),
                                     APInt(intType.getIntOrFloatBitWidth(),
                                           op.getIgnoreIndex(), true)))));
  auto all = [&](Value v) -> Value {
    return ReduceOp::create(s.b, loc, ReduceKind::sum, v,
                            ArrayRef<int64_t>{0, 1}, false);
  };
  Value loss = all(MulOp::create(s.b, loc, perRow, valid));
  if (op.getReduction() == ReduceKind::mean)
    loss = DivOp::create(s.b, loc, loss, all(valid));
  s.define(loss, typeOf(op.getResult()), Layout::whole(0));
  return loss;
}

/// Elementwise ops with numpy broadcasting (and rotary, attention masks):
/// the result takes the split of the operands that span each dimension; an
/// operand that spans it whole is sliced (or, for a parameter, cut).
LogicalResult mlir::galv::partitionElementwise(Operation *op, PartitionState &s,
                                               const Axes &axes) {
  RankedTensorType resultType = s.global(op->getResult(0));
  int64_t rank = resultType.getRank();
  for (unsigned i = 0; i < op->getNumOperands(); ++i)
    s.conform(op, i, axes);
  Layout result = Layout::whole(rank);
  // Pick, per dimension, the split of a spanning operand.
  for (Value v : op->getOperands()) {
    Layout l = s.layoutOf(v);
    int64_t offset = rank - static_cast<int64_t>(l.dims.size());
    if (offset < 0)
      continue;
    for (auto [d, g] : llvm::enumerate(l.dims)) {
      int64_t rd = d + offset;
      if (!g.whole() && result.dims[rd].whole()) {
        result.dims[rd] = g;
        result.blocks[rd] = l.blocks[d];
      }
      if (static_cast<int64_t>(d) == l.batchDim)
        result.batchDim = rd;
    }
  }
  for (unsigned i = 0; i < op->getNumOperands(); ++i) {
    Value v = op->getOperand(i);
    Layout l = s.layoutOf(v);
    RankedTensorType g = s.global(v);
    int64_t offset = rank - g.getRank();
    if (offset < 0)
      continue;
    Value out = v;
    for (int64_t d = 0; d < g.getRank(); ++d) {
      Group want = result.dims[d + offset];
      if (l.dims[d] == want || g.getDimSize(d) == 1)
        continue;
      if (!l.dims[d].whole())
        return s.fail(op, "operands split differently along dimension " +
                              Twine(d + offset));
      // A parameter is cut with the tensor-parallel split it meets (a bias
      // after a column-parallel linear). One that spans the batch (an
      // exporter's folded position embeddings) is sliced below instead:
      // cut over the data-parallel group, its shards' gradients would be
      // synchronised as if they were copies.
      if (s.isParam(out) && !s.isCut(out) && want == axes.tp) {
        Layout pl = Layout::whole(g.getRank());
        pl.dims[d] = want;
        pl.blocks[d] = result.blocks[d + offset];
        if (failed(s.cutParam(out, pl, axes, op)))
          return failure();
        l = pl;
        continue;
      }
      if (result.blocks[d + offset] != 1)
        return s.fail(op, "cannot slice a whole operand to a blocked split");
      // A whole operand meeting a split one is sliced to match, whatever
      // it derives from: a parameter gathered by constant positions (OPT's
      // and BERT's position embeddings) spans the batch like the data, and
      // each rank's slice sends its rows' gradient to the parameter, whose
      // gradient is then synchronised like every other's.
      out = s.sliceDim(out, d, want, op);
      l = s.layoutOf(out);
    }
    if (out != v)
      op->setOperand(i, out);
  }
  // A value replicated over the tensor-parallel group that meets one split
  // over it is used differently per rank: its gradient is summed (f).
  if (!axes.tp.whole() && result.splitOver(axes.tp))
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      Value v = op->getOperand(i);
      if (s.trainable.contains(v) && !s.layoutOf(v).splitOver(axes.tp) &&
          !isa<IntegerType>(s.global(v).getElementType()))
        op->setOperand(i, s.replicate(v, axes.tp, op));
    }
  for (Value r : op->getResults())
    s.setLayout(r, result);
  return success();
}

LogicalResult GetParameterOp::partition(PartitionState &s, const Axes &axes) {
  s.addParam(*this);
  // A frozen parameter (a rotary table, a mask) has no gradient to sum, and
  // what is derived from it alone may be sliced over the batch.
  auto param =
      SymbolTable::lookupNearestSymbolFrom<ParameterOp>(*this, getNameAttr());
  if (param && !param.getTrainable())
    s.trainable.erase(getResult());
  return success();
}

LogicalResult ReshapeOp::partition(PartitionState &s, const Axes &axes) {
  ReshapeOp r = *this;
  Value x = s.conform(r, 0, axes);
  Layout in = s.layoutOf(x);
  ArrayRef<int64_t> from = s.global(x).getShape();
  RankedTensorType outType = s.global(r.getResult());
  ArrayRef<int64_t> to = outType.getShape();
  Layout out = Layout::whole(to.size());
  // Walk groups of dimensions whose products match; a split on the
  // first (outermost) non-unit dimension of a group moves to the
  // first non-unit dimension of the other side's group.
  size_t i = 0, j = 0;
  while (i < from.size() || j < to.size()) {
    size_t i0 = i, j0 = j;
    int64_t p = i < from.size() ? from[i++] : 1,
            q = j < to.size() ? to[j++] : 1;
    while (p != q) {
      if (p < q && i < from.size())
        p *= from[i++];
      else if (q < p && j < to.size())
        q *= to[j++];
      else
        break;
    }
    // Unit dimensions at group ends belong to no split.
    size_t fi = i0, tj = j0;
    while (fi < i && from[fi] == 1)
      ++fi;
    while (tj < j && to[tj] == 1)
      ++tj;
    for (size_t k = i0; k < i; ++k) {
      bool isBatch = static_cast<int64_t>(k) == in.batchDim;
      if (in.dims[k].whole()) {
        if (isBatch && k == fi && tj < j)
          out.batchDim = tj;
        continue;
      }
      if (k != fi || tj >= j || in.blocks[k] != 1)
        return s.fail(r, "reshape " + Twine(s.global(x).getRank()) + "-d -> " +
                             Twine(to.size()) + "-d moves a split dimension");
      if (to[tj] % in.dims[k].size != 0)
        return s.fail(r, "dimension of " + Twine(to[tj]) +
                             " (heads?) does not split over " +
                             Twine(in.dims[k].size) + " ranks");
      out.dims[tj] = in.dims[k];
      if (isBatch)
        out.batchDim = tj;
    }
  }
  s.setLayout(r.getResult(), out);
  return success();
}

LogicalResult TransposeOp::partition(PartitionState &s, const Axes &axes) {
  TransposeOp t = *this;
  Value x = s.conform(t, 0, axes);
  Layout in = s.layoutOf(x), out = in;
  for (auto [d, p] : llvm::enumerate(t.getPermutation())) {
    out.dims[d] = in.dims[p];
    out.blocks[d] = in.blocks[p];
    if (p == in.batchDim)
      out.batchDim = d;
  }
  s.setLayout(t.getResult(), out);
  return success();
}

LogicalResult ExpandOp::partition(PartitionState &s, const Axes &axes) {
  ExpandOp e = *this;
  Value x = s.conform(e, 0, axes);
  Layout in = s.layoutOf(x);
  RankedTensorType outType = s.global(e.getResult());
  Layout out = Layout::whole(outType.getRank());
  int64_t offset = outType.getRank() - in.dims.size();
  for (auto [d, g] : llvm::enumerate(in.dims)) {
    if (s.global(x).getDimSize(d) == outType.getDimSize(d + offset)) {
      out.dims[d + offset] = g;
      out.blocks[d + offset] = in.blocks[d];
    }
    if (static_cast<int64_t>(d) == in.batchDim)
      out.batchDim = d + offset;
  }
  s.setLayout(e.getResult(), out);
  return success();
}

LogicalResult SplitOp::partition(PartitionState &s, const Axes &axes) {
  SplitOp op = *this;
  Value x = s.conform(op, 0, axes);
  Layout in = s.layoutOf(x);
  int64_t axis = normalizedAxis(op.getAxis(), in.dims.size());
  Layout out = in;
  if (!in.dims[axis].whole()) {
    if (in.blocks[axis] != static_cast<int64_t>(op.getNumResults()))
      return s.fail(op, "split of a dimension split over ranks");
    out.blocks[axis] = 1;
    SmallVector<int64_t> sizes;
    for (int64_t size : op.getSizes())
      sizes.push_back(size / in.dims[axis].size);
    op.setSizes(sizes);
  }
  for (Value r : op.getResults())
    s.setLayout(r, out);
  return success();
}

LogicalResult SliceOp::partition(PartitionState &s, const Axes &axes) {
  SliceOp op = *this;
  Value x = s.conform(op, 0, axes);
  Layout in = s.layoutOf(x);
  RankedTensorType xType = s.global(x);
  SmallVector<int64_t> starts(op.getStarts()), limits(op.getLimits());
  Layout out = in;
  for (auto [d, g] : llvm::enumerate(in.dims)) {
    if (g.whole())
      continue;
    int64_t whole = xType.getDimSize(d), part = whole / in.blocks[d];
    // One part of a dimension cut per part (a fused projection's): each
    // rank takes its piece of that part.
    if (in.blocks[d] > 1 && op.getSteps()[d] == 1 &&
        limits[d] - starts[d] == part && starts[d] % part == 0) {
      int64_t local = part / g.size;
      starts[d] = starts[d] / part * local;
      limits[d] = starts[d] + local;
      out.blocks[d] = 1;
      continue;
    }
    if (starts[d] != 0 || op.getSteps()[d] != 1 || limits[d] != whole)
      return s.fail(op, "slice along dimension " + Twine(d) +
                            ", which is split over ranks");
    limits[d] /= g.size;
  }
  op.setStarts(starts);
  op.setLimits(limits);
  s.setLayout(op.getResult(), out);
  return success();
}

LogicalResult ConcatOp::partition(PartitionState &s, const Axes &axes) {
  ConcatOp c = *this;
  int64_t axis = normalizedAxis(c.getAxis(), s.global(c.getResult()).getRank());
  for (unsigned i = 0; i < c->getNumOperands(); ++i)
    if (failed(requireWhole(c, i, axis, s, axes)))
      return failure();
  // The split operands set the layout; a whole operand (a constant, such
  // as the ignored label the loss appends) is cut to match, which costs no
  // communication.
  Layout first = s.layoutOf(c->getOperand(0));
  for (Value v : c->getOperands())
    if (s.layoutOf(v).anySplit()) {
      first = s.layoutOf(v);
      break;
    }
  for (unsigned i = 0; i < c->getNumOperands(); ++i) {
    Value v = c->getOperand(i);
    if (s.layoutOf(v).dims == first.dims)
      continue;
    if (s.layoutOf(v).anySplit())
      return s.fail(c, "concatenated values are split differently");
    for (auto [d, g] : llvm::enumerate(first.dims))
      if (!g.whole())
        v = s.sliceDim(v, d, g, c);
    c->setOperand(i, v);
  }
  s.setLayout(c.getResult(), first);
  return success();
}

LogicalResult GatherOp::partition(PartitionState &s, const Axes &axes) {
  GatherOp g = *this;
  Value data = s.conform(g, 0, axes);
  Value ids = s.conform(g, 1, axes);
  int64_t rank = s.global(data).getRank();
  int64_t axis = normalizedAxis(g.getAxis(), rank);
  Layout li = s.layoutOf(ids);
  // Split ids (a mask flattened with its batch) gather from the whole
  // table; whole ids (a constant selection, as of a head out of a fused
  // projection) keep the data's other dimensions as they are split.
  Layout before = s.layoutOf(data);
  for (auto [d, gr] : llvm::enumerate(before.dims))
    if (!gr.whole() && (li.anySplit() || static_cast<int64_t>(d) == axis))
      data = s.wholeAlong(data, d, g);
  g->setOperand(0, data);
  Layout ld = s.layoutOf(data);
  int64_t q = li.dims.size();
  Layout out = Layout::whole(s.global(g.getResult()).getRank());
  for (int64_t d = 0; d < rank; ++d) {
    if (d == axis)
      continue;
    int64_t at = d < axis ? d : d + q - 1;
    out.dims[at] = ld.dims[d];
    out.blocks[at] = ld.blocks[d];
    if (ld.batchDim == d)
      out.batchDim = at;
  }
  for (auto [d, gr] : llvm::enumerate(li.dims))
    out.dims[axis + d] = gr;
  if (li.batchDim >= 0)
    out.batchDim = axis + li.batchDim;
  s.setLayout(g.getResult(), out);
  return success();
}

LogicalResult EmbeddingOp::partition(PartitionState &s, const Axes &axes) {
  EmbeddingOp e = *this;
  Value ids = s.conform(e, 1, axes);
  // Only the vocabulary is split; position and token-type tables
  // stay whole.
  if (!axes.tp.whole() &&
      s.global(e.getTable()).getDimSize(0) == s.vocabularyRows)
    return partitionVocabEmbedding(e, s, axes);
  if (s.isParam(e.getTable()) &&
      failed(s.cutParam(e.getTable(), Layout::whole(2), axes, e)))
    return failure();
  Layout li = s.layoutOf(ids), out = li;
  out.dims.push_back(Group());
  out.blocks.push_back(1);
  s.setLayout(e.getResult(), out);
  return success();
}

LogicalResult RotaryOp::partition(PartitionState &s, const Axes &axes) {
  RotaryOp r = *this;
  Value x = s.conform(r, 0, axes);
  Layout lx = s.layoutOf(x);
  int64_t rank = lx.dims.size();
  if (!lx.dims[rank - 1].whole())
    return s.fail(r, "rotary features split over ranks");
  for (unsigned i = 1; i < 3; ++i) {
    Value t = r->getOperand(i);
    RankedTensorType tt = s.global(t);
    int64_t offset = rank - tt.getRank();
    Value out = t;
    for (int64_t d = 0; d + 1 < tt.getRank(); ++d)
      if (!lx.dims[d + offset].whole() && tt.getDimSize(d) != 1 &&
          s.layoutOf(out).dims[d] != lx.dims[d + offset])
        out = s.sliceDim(out, d, lx.dims[d + offset], r);
    if (out != t)
      r->setOperand(i, out);
  }
  return same(s, x, r.getResult());
}

LogicalResult AttentionOp::partition(PartitionState &s, const Axes &axes) {
  AttentionOp a = *this;
  for (unsigned i = 0; i < 3; ++i) {
    Value v = s.conform(a, i, axes);
    // Ulysses: trade the split sequence for split heads.
    Layout l = s.layoutOf(v);
    if (axes.ulysses() && l.dims[2] == axes.tp && l.dims[1].whole()) {
      int64_t heads = s.global(v).getDimSize(1);
      if (heads % axes.tp.size != 0)
        return s.fail(a, "Ulysses needs the " + Twine(heads) +
                             " heads of this attention input to split "
                             "over tp = " +
                             Twine(axes.tp.size));
      a->setOperand(i, s.allToAll(v, 1, 2, axes.tp, a));
    }
  }
  Layout lq = s.layoutOf(a.getQuery());
  for (unsigned i = 1; i < 3; ++i) {
    Layout l = s.layoutOf(a->getOperand(i));
    // One key/value head (multi-query) stays whole: every query head on
    // every rank reads it.
    bool sharedHead =
        l.dims[1].whole() && s.global(a->getOperand(i)).getDimSize(1) == 1;
    if (l.dims[0] != lq.dims[0] || (l.dims[1] != lq.dims[1] && !sharedHead))
      return s.fail(a, "query, key and value are split differently");
  }
  if (!lq.dims[2].whole() || !lq.dims[3].whole())
    return s.fail(a, "attention over a split sequence or head dimension");
  if (a.getMask()) {
    Value m = s.conform(a, 3, axes);
    RankedTensorType mt = s.global(m);
    int64_t offset = 4 - mt.getRank();
    Value out = m;
    for (int64_t d = 0; d < mt.getRank(); ++d) {
      Group want = d + offset < 2 ? lq.dims[d + offset] : Group();
      if (s.layoutOf(out).dims[d] != want && mt.getDimSize(d) != 1) {
        if (!s.layoutOf(out).dims[d].whole())
          return s.fail(a, "mask split differently from the scores");
        out = s.sliceDim(out, d, want, a);
      }
    }
    if (out != m)
      a->setOperand(3, out);
  }
  return same(s, a.getQuery(), a.getResult());
}

LogicalResult CrossEntropyOp::partition(PartitionState &s, const Axes &axes) {
  CrossEntropyOp ce = *this;
  Value logits = s.conform(ce, 0, axes);
  Layout ll = s.layoutOf(logits);
  bool vocabSplit =
      !axes.tp.whole() && ll.dims.back() == axes.tp && ll.blocks.back() == 1;
  if (!vocabSplit)
    (void)requireWhole(ce, 0, -1, s, axes);
  Value labels = s.conform(ce, 1, axes);
  ll = s.layoutOf(ce.getLogits());
  Layout lb = s.layoutOf(labels);
  SmallVector<Group> rows(ll.dims.begin(), ll.dims.end() - 1);
  if (rows != lb.dims)
    return s.fail(ce, "logits and labels are split differently");
  // The mean (or sum) of this rank's rows, combined over the groups
  // the rows are split over (means of equal-sized pieces). The vocabulary-
  // parallel form replaces (and erases) `ce`: what the all-reduces need of
  // it is read first.
  Location loc = ce.getLoc();
  auto reduction = ce.getReduction();
  Value result = ce.getResult();
  if (vocabSplit) {
    result = vocabParallelCrossEntropy(ce, s, axes);
    ce.getResult().replaceAllUsesWith(result);
    ce.erase();
  }
  SmallVector<OpOperand *> uses;
  for (OpOperand &use : result.getUses())
    uses.push_back(&use);
  s.b.setInsertionPointAfter(result.getDefiningOp());
  Value combined = result;
  SmallVector<Group> seen;
  for (Group g : rows)
    if (!g.whole() && !llvm::is_contained(seen, g)) {
      seen.push_back(g);
      combined =
          AllReduceOp::create(s.b, loc, reduction, combined, s.groupAttr(g));
      s.define(combined, typeOf(result), Layout::whole(0));
    }
  for (OpOperand *use : uses)
    use->set(combined);
  return success();
}

LogicalResult ReduceOp::partition(PartitionState &s, const Axes &axes) {
  ReduceOp r = *this;
  Value x = s.conform(r, 0, axes);
  Layout in = s.layoutOf(x);
  Layout out;
  for (int64_t d = 0; d < static_cast<int64_t>(in.dims.size()); ++d) {
    bool reduced = llvm::is_contained(r.getAxes(), d);
    if (reduced && !in.dims[d].whole()) {
      x = s.wholeAlong(x, d, r);
      r->setOperand(0, x);
      in = s.layoutOf(x);
    }
    if (!reduced || r.getKeepdims()) {
      if (d == in.batchDim && !reduced)
        out.batchDim = out.dims.size();
      out.dims.push_back(reduced ? Group() : in.dims[d]);
      out.blocks.push_back(reduced ? 1 : in.blocks[d]);
    }
  }
  s.setLayout(r.getResult(), out);
  return success();
}

LogicalResult MatmulOp::partition(PartitionState &s, const Axes &axes) {
  MatmulOp m = *this;
  if (m.getTransposeLhs() || m.getTransposeRhs())
    return s.fail(m, "a matmul with transpose flags is not partitioned: run "
                     "galv-fold-transposes after galv-partition");
  s.conform(m, 0, axes);
  s.conform(m, 1, axes);
  Value lhs = m->getOperand(0), rhs = m->getOperand(1);
  int64_t lr = s.global(lhs).getRank(), rr = s.global(rhs).getRank();
  if (!s.layoutOf(lhs).dims[lr - 1].whole())
    m->setOperand(0, lhs = s.wholeAlong(lhs, lr - 1, m));
  if (!s.layoutOf(rhs).dims[rr - 2].whole())
    m->setOperand(1, rhs = s.wholeAlong(rhs, rr - 2, m));
  Layout ll = s.layoutOf(lhs), lr2 = s.layoutOf(rhs);
  int64_t rank = s.global(m.getResult()).getRank();
  Layout out = Layout::whole(rank);
  for (int64_t d = 0; d + 2 < rank; ++d) {
    int64_t dl = d - (rank - lr), dr = d - (rank - rr);
    Group gl = dl >= 0 ? ll.dims[dl] : Group();
    Group gr = dr >= 0 ? lr2.dims[dr] : Group();
    if (!gl.whole() && !gr.whole() && gl != gr)
      return s.fail(m, "matmul batch dimensions split differently");
    if ((!gl.whole() && dr >= 0 && gr.whole() &&
         s.global(rhs).getDimSize(dr) != 1) ||
        (!gr.whole() && dl >= 0 && gl.whole() &&
         s.global(lhs).getDimSize(dl) != 1))
      return s.fail(m, "matmul of a split and a whole batch dimension");
    out.dims[d] = gl.whole() ? gr : gl;
    if (dl >= 0 && dl == ll.batchDim)
      out.batchDim = d;
  }
  out.dims[rank - 2] = ll.dims[lr - 2];
  out.dims[rank - 1] = lr2.dims[rr - 1];
  if (ll.batchDim == lr - 2)
    out.batchDim = rank - 2;
  s.setLayout(m.getResult(), out);
  return success();
}

LogicalResult LogSoftmaxOp::partition(PartitionState &s, const Axes &axes) {
  return partitionRowwise(*this, getAxis(), s, axes);
}

/// Like a reduction: the searched axis is made whole; the other dimensions
/// keep their splits.
LogicalResult ArgMaxOp::partition(PartitionState &s, const Axes &axes) {
  int64_t axis = normalizedAxis(getAxis(), s.global(getInput()).getRank());
  (void)requireWhole(*this, 0, axis, s, axes);
  Layout in = s.layoutOf(getInput()), out;
  for (int64_t d = 0; d < static_cast<int64_t>(in.dims.size()); ++d) {
    if (d == axis && !getKeepdims())
      continue;
    if (d == in.batchDim && d != axis)
      out.batchDim = out.dims.size();
    out.dims.push_back(d == axis ? Group() : in.dims[d]);
    out.blocks.push_back(d == axis ? 1 : in.blocks[d]);
  }
  s.setLayout(getResult(), out);
  return success();
}
