//===- Partition.cpp - per-rank SPMD program from layer strategies --------===//
//
// Rewrites @loss (layers inlined, each op stamped with its layer's
// #galv.strategy) into the program one rank of a pipeline stage runs: values
// get this rank's piece, parameters are cut, and collectives go where
// Megatron-LM and ZeRO put them. The rewrite walks the ops in order and
// tracks, per value, which dimensions are split over which device group:
//
// * data parallelism splits the batch dimension over the op's dp group; a
//   value arriving with another split is regathered and resliced;
// * tensor parallelism: a linear whose input is whole is column-parallel
//   (weight cut along its outputs, input entering through galv.replicate,
//   Megatron's f), a linear whose input is split along its features is
//   row-parallel (weight cut along its inputs, galv.all_reduce after it,
//   Megatron's g, then the bias); attention runs on this rank's heads;
// * ZeRO-3 parameters are held flat and sharded, and gathered on use (the
//   gather's gradient is reduce-scattered); DDP and ZeRO-2 parameters are
//   marked so that galv-adamw reduces their gradients once.
//
// Gradients then come from galv-autodiff, through the collectives' adjoints.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::galv {
#define GEN_PASS_DEF_PARTITION
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// A device group within a stage: [size, stride] (see galv.all_reduce).
struct Group {
  int64_t size = 1, stride = 1;
  bool whole() const { return size == 1; }
  bool operator==(const Group &o) const {
    return size == o.size && (size == 1 || stride == o.stride);
  }
  bool operator!=(const Group &o) const { return !(*this == o); }
  SmallVector<int64_t> attr() const { return {size, stride}; }
};

/// How a value is split: per dimension, the group it is split over and how
/// many equal blocks the split applies to independently (3 for a fused
/// query/key/value projection); and which dimension is the batch.
struct Layout {
  SmallVector<Group> dims;
  SmallVector<int64_t> blocks;
  int64_t batchDim = -1;

  static Layout whole(int64_t rank) {
    Layout l;
    l.dims.assign(rank, Group());
    l.blocks.assign(rank, 1);
    return l;
  }
  bool splitOver(Group g) const {
    return !g.whole() && llvm::is_contained(dims, g);
  }
  bool anySplit() const {
    return llvm::any_of(dims, [](Group g) { return !g.whole(); });
  }
};

/// The device groups of one op's strategy.
struct Axes {
  Group tp, dp;
  DataParallelKind dpKind = DataParallelKind::ddp;
  SequenceParallelKind sp = SequenceParallelKind::none;
  bool megatronSp() const { return sp == SequenceParallelKind::megatron; }
  bool ulysses() const { return sp == SequenceParallelKind::ulysses; }
};

Axes axesOf(StrategyAttr s) {
  Axes a;
  if (s.getTpConsecutive()) {
    a.tp = {s.getTp(), 1};
    a.dp = {s.getDp(), s.getTp()};
  } else {
    a.tp = {s.getTp(), s.getDp()};
    a.dp = {s.getDp(), 1};
  }
  a.dpKind = s.getDp() > 1 ? s.getDpKind() : DataParallelKind::ddp;
  a.sp = s.getTp() > 1 ? s.getSp() : SequenceParallelKind::none;
  return a;
}

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// The pipeline stage an op runs on (-1: none yet, as for constants).
int64_t stageOf(Operation *op) {
  auto stage =
      op ? op->getAttrOfType<IntegerAttr>(GalvDialect::getStageAttrName())
         : IntegerAttr();
  return stage ? stage.getInt() : -1;
}

class Partitioner {
public:
  Partitioner(func::FuncOp func, PlanConfigAttr plan, StrategyAttr other)
      : func(func), plan(plan), otherAxes(axesOf(other)), b(func.getContext()) {
  }

  LogicalResult run();

private:
  // Global (one-rank) type of a value; values not rewritten yet are global.
  RankedTensorType global(Value v) {
    auto it = globalTypes.find(v);
    return it != globalTypes.end() ? it->second : typeOf(v);
  }
  Layout layoutOf(Value v) {
    auto it = layouts.find(v);
    return it != layouts.end() ? it->second
                               : Layout::whole(global(v).getRank());
  }
  RankedTensorType localType(RankedTensorType g, const Layout &l) {
    SmallVector<int64_t> shape(g.getShape());
    for (auto [d, group] : llvm::enumerate(l.dims))
      shape[d] /= group.size;
    return RankedTensorType::get(shape, g.getElementType());
  }
  /// Records `v`'s layout and gives it its local type.
  void setLayout(Value v, const Layout &l) {
    if (!globalTypes.count(v))
      globalTypes[v] = typeOf(v);
    layouts[v] = l;
    v.setType(localType(globalTypes[v], l));
  }

  LogicalResult fail(Operation *op, const Twine &message) {
    // At the op's location, without printing the op (it may be a function).
    mlir::emitError(op->getLoc(), "galv-partition: ") << message;
    return failure();
  }

  Axes axesFor(Operation *op) {
    if (auto s =
            op->getAttrOfType<StrategyAttr>(GalvDialect::getStrategyAttrName()))
      return axesOf(s);
    return otherAxes;
  }

  /// The parameter read behind `v`: itself, or what a pipeline transfer
  /// passes on (a tied embedding read by the head's stage).
  GetParameterOp paramBehind(Value v) {
    while (auto transfer = v.getDefiningOp<StageTransferOp>())
      v = transfer.getInput();
    return v.getDefiningOp<GetParameterOp>();
  }
  bool isParam(Value v) { return static_cast<bool>(paramBehind(v)); }
  /// Whether a conversion made earlier can serve a use at `at` (the
  /// parameter pass revisits uses out of order).
  static bool precedes(Value made, Operation *at) {
    Operation *def = made.getDefiningOp();
    return !def || def == at || def->isBeforeInBlock(at);
  }
  /// Whether `v` comes from outside the layer instance `op` belongs to.
  bool fromOutside(Value v, Operation *op) {
    Operation *def = v.getDefiningOp();
    Attribute here = op->getAttr(GalvDialect::getLayerAttrName());
    return !def || def->getAttr(GalvDialect::getLayerAttrName()) != here;
  }
  /// New ops belong to the layer of the op they were made for (so that a
  /// checkpointed layer recomputes its collectives too).
  void stamp(Operation *created, Operation *from) {
    for (StringRef name :
         {GalvDialect::getStrategyAttrName(), GalvDialect::getLayerAttrName(),
          GalvDialect::getStageAttrName()})
      if (Attribute a = from->getAttr(name))
        created->setAttr(name, a);
  }

  // Collectives, built before `at`.
  Value gatherDim(Value v, int64_t dim, Group g, Operation *at,
                  bool scatterGrad = false);
  Value allToAll(Value v, int64_t split, int64_t concat, Group g,
                 Operation *at);
  Value sliceDim(Value v, int64_t dim, Group g, Operation *at);
  /// `shared`: one replicate per value and group serves every use. A
  /// replicate sums the gradient of all its uses over its group, so uses
  /// that need different sums must not share one.
  Value replicate(Value v, Group g, Operation *at, bool shared = true);
  /// Bookkeeping for a conversion op `created` (for `at`) of `from`: same
  /// global type, layout `l`, and what `from` depends on.
  Value record(Operation *created, Value from, const Layout &l, Operation *at);

  /// Makes operand `i` of `op` split only over the op's groups, with its
  /// batch dimension over the op's dp group.
  Value conform(Operation *op, unsigned i, const Axes &axes);
  /// Makes `v` whole along `dim` (gathering).
  Value wholeAlong(Value v, int64_t dim, Operation *at);
  /// Cuts the parameter read by `v` (a get_parameter result) as `layout`.
  LogicalResult cutParam(Value v, const Layout &layout, const Axes &axes,
                         Operation *user);
  LogicalResult finishParams();

  LogicalResult partition(Operation *op);
  /// With pipeline stages: tags every op with the stage that runs it.
  void assignStages(Block &body);
  LogicalResult partitionOp(Operation *op, const Axes &axes);
  LogicalResult partitionLinear(LinearOp op, const Axes &axes);
  LogicalResult partitionVocabEmbedding(EmbeddingOp op, const Axes &axes);
  Value vocabParallelCrossEntropy(CrossEntropyOp op, const Axes &axes);
  /// This rank's first vocabulary row of a table of `rows` split over `g`,
  /// as a [1] tensor of `type`.
  Value vocabStart(int64_t rows, Group g, Type type, Operation *at);
  LogicalResult partitionElementwise(Operation *op, const Axes &axes);

  func::FuncOp func;
  PlanConfigAttr plan;
  Axes otherAxes;
  OpBuilder b;
  DenseMap<Value, Layout> layouts;
  /// Rows of the largest embedding table: the vocabulary.
  int64_t vocabularyRows = 0;
  DenseMap<Value, RankedTensorType> globalTypes;
  /// Values that depend on a parameter (and so carry gradients), and
  /// values that depend on the data.
  DenseSet<Value> trainable, dataDerived;
  /// The layout and dp group each parameter read was given, by the first
  /// op that used it.
  struct ParamUse {
    Layout layout;
    Axes axes;
    bool assigned = false;
    /// Read whole by ops of different data-parallel groups (a weight the
    /// exporter shared between layers): each use sums its own gradient.
    bool mixed = false;
  };
  DenseMap<Operation *, ParamUse> params;
  /// Gathers, slices and replicates made so far: (value, dimension, kind).
  DenseMap<std::tuple<Value, int64_t, int64_t, int64_t>, Value> conversions;
};

Value Partitioner::record(Operation *created, Value from, const Layout &l,
                          Operation *at) {
  stamp(created, at);
  Value v = created->getResult(0);
  globalTypes[v] = global(from);
  layouts[v] = l;
  if (trainable.contains(from))
    trainable.insert(v);
  if (dataDerived.contains(from))
    dataDerived.insert(v);
  return v;
}

Value Partitioner::gatherDim(Value v, int64_t dim, Group g, Operation *at,
                             bool scatterGrad) {
  // One gather per value and dimension serves every later user.
  Value &cached = conversions[{v, dim, scatterGrad ? -2 : 0, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  b.setInsertionPoint(at);
  Layout l = layoutOf(v);
  l.dims[dim] = Group();
  l.blocks[dim] = 1;
  return cached = record(AllGatherOp::create(b, at->getLoc(), v, dim, g.attr(),
                                             scatterGrad),
                         v, l, at);
}

/// Moves the split of `v` from `concat` to `split` (Ulysses).
Value Partitioner::allToAll(Value v, int64_t split, int64_t concat, Group g,
                            Operation *at) {
  Value &cached = conversions[{v, split * 64 + concat, -3, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  b.setInsertionPoint(at);
  Layout l = layoutOf(v);
  l.dims[concat] = Group();
  l.dims[split] = g;
  return cached = record(
             AllToAllOp::create(b, at->getLoc(), v, split, concat, g.attr()), v,
             l, at);
}

Value Partitioner::sliceDim(Value v, int64_t dim, Group g, Operation *at) {
  Value &cached = conversions[{v, dim, g.size * 65536 + g.stride, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  b.setInsertionPoint(at);
  Layout l = layoutOf(v);
  l.dims[dim] = g;
  return cached = record(
             ShardSliceOp::create(b, at->getLoc(), v, dim, g.attr()), v, l, at);
}

Value Partitioner::replicate(Value v, Group g, Operation *at, bool shared) {
  b.setInsertionPoint(at);
  if (!shared)
    return record(ReplicateOp::create(b, at->getLoc(), v, g.attr()), v,
                  layoutOf(v), at);
  Value &cached = conversions[{v, -1, g.size * 65536 + g.stride, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  return cached = record(ReplicateOp::create(b, at->getLoc(), v, g.attr()), v,
                         layoutOf(v), at);
}

Value Partitioner::wholeAlong(Value v, int64_t dim, Operation *at) {
  Layout l = layoutOf(v);
  if (l.dims[dim].whole())
    return v;
  return gatherDim(v, dim, l.dims[dim], at);
}

Value Partitioner::conform(Operation *op, unsigned i, const Axes &axes) {
  Value v = op->getOperand(i);
  Layout l = layoutOf(v);
  Value out = v;
  for (int64_t d = 0; d < static_cast<int64_t>(l.dims.size()); ++d) {
    Group g = l.dims[d];
    bool ok = g.whole() || g == (d == l.batchDim ? axes.dp : axes.tp);
    if (!ok)
      out = gatherDim(out, d, g, op);
  }
  // The batch dimension follows the op's data-parallel group.
  l = layoutOf(out);
  if (l.batchDim >= 0 && !axes.dp.whole() && l.dims[l.batchDim].whole() &&
      global(out).getDimSize(l.batchDim) % axes.dp.size == 0)
    out = sliceDim(out, l.batchDim, axes.dp, op);
  // Activations [B, S, H] between layers: with sequence parallelism they
  // enter a layer split along the sequence; without, the sequence is whole.
  l = layoutOf(out);
  bool activation = l.dims.size() == 3 && l.batchDim == 0;
  if (activation && axes.sp == SequenceParallelKind::none && !l.dims[1].whole())
    out = gatherDim(out, 1, l.dims[1], op);
  else if (activation && axes.sp != SequenceParallelKind::none &&
           l.dims[1].whole() && l.dims[2].whole() && fromOutside(v, op) &&
           global(out).getDimSize(1) % axes.tp.size == 0)
    out = sliceDim(out, 1, axes.tp, op);
  if (out != v)
    op->setOperand(i, out);
  return out;
}

LogicalResult Partitioner::cutParam(Value v, const Layout &layout,
                                    const Axes &axes, Operation *user) {
  GetParameterOp get = paramBehind(v);
  ParamUse &use = params[get];
  // Ops after this one see the cut type (through any transfers); ZeRO-3
  // flattening comes last.
  auto cutAlong = [&] {
    for (Value x = v;;) {
      setLayout(x, layout);
      auto transfer = x.getDefiningOp<StageTransferOp>();
      if (!transfer)
        break;
      x = transfer.getInput();
    }
  };
  if (use.assigned) {
    bool sameCut =
        use.layout.dims == layout.dims && use.layout.blocks == layout.blocks;
    if (!sameCut)
      return fail(user, "parameter '" + get.getName().str() +
                            "' is used with two different splits");
    if (use.axes.dp != axes.dp || use.axes.dpKind != axes.dpKind) {
      if (layout.anySplit())
        return fail(user, "parameter '" + get.getName().str() +
                              "' is split by tensor parallelism and used "
                              "by layers of different data-parallel groups");
      use.mixed = true;
    }
    cutAlong();
    return success();
  }
  use.layout = layout;
  use.axes = axes;
  use.assigned = true;
  cutAlong();
  return success();
}

/// Gives every parameter read its cut type, the ZeRO-3 gather, or the
/// gradient-sync mark for galv-adamw.
LogicalResult Partitioner::finishParams() {
  for (auto &[op, use] : params) {
    auto get = cast<GetParameterOp>(op);
    RankedTensorType full = typeOf(get.getResult());
    if (globalTypes.count(get.getResult()))
      full = globalTypes[get.getResult()];
    if (!use.assigned) {
      // Only read by ops that keep it whole (norm scales, position tables).
      use.layout = Layout::whole(full.getRank());
      use.axes = otherAxes;
      use.assigned = true;
    }
    SmallVector<int64_t> cuts;
    for (auto [d, g] : llvm::enumerate(use.layout.dims))
      if (!g.whole())
        llvm::append_range(cuts, SmallVector<int64_t>{static_cast<int64_t>(d),
                                                      use.layout.blocks[d],
                                                      g.size, g.stride});
    if (use.mixed) {
      // Every use sums its gradient over its own data-parallel group.
      // Through pipeline transfers to the stages that read it.
      SmallVector<OpOperand *> uses;
      SmallVector<Value> worklist = {get.getResult()};
      while (!worklist.empty()) {
        Value v = worklist.pop_back_val();
        for (OpOperand &u : v.getUses()) {
          if (auto transfer = dyn_cast<StageTransferOp>(u.getOwner()))
            worklist.push_back(transfer.getResult());
          else
            uses.push_back(&u);
        }
      }
      // In program order, so that a shared replicate precedes its users.
      llvm::sort(uses, [](OpOperand *a, OpOperand *b) {
        return a->getOwner()->isBeforeInBlock(b->getOwner());
      });
      for (OpOperand *u : uses) {
        Group group = axesFor(u->getOwner()).dp;
        if (!group.whole())
          u->set(replicate(u->get(), group, u->getOwner(), /*shared=*/false));
      }
      continue;
    }
    Group dp = use.axes.dp;
    bool zero3 = use.axes.dpKind == DataParallelKind::zero3 && !dp.whole();
    SmallVector<int64_t> flat;
    if (zero3)
      flat = dp.attr();
    RankedTensorType cutType = localType(full, use.layout);
    Value result = get.getResult();
    if (!cuts.empty() || zero3) {
      auto shard = ShardAttr::get(op->getContext(), cuts, flat);
      get.setShardAttr(shard);
      result.setType(shard.getLocalType(full));
    }
    if (zero3) {
      // Gather the flat shards right before the first use (galv-autodiff
      // gathers again for the backward pass); the gradient is
      // reduce-scattered.
      Operation *first = nullptr;
      for (Operation *user : result.getUsers())
        if (!first || user->isBeforeInBlock(first))
          first = user;
      b.setInsertionPoint(first ? first : get->getNextNode());
      Location loc = get.getLoc();
      auto gathered = AllGatherOp::create(b, loc, result, 0, dp.attr(),
                                          /*scatter_grad=*/true);
      int64_t n = cutType.getNumElements();
      Value flatValue = gathered;
      if (typeOf(gathered).getDimSize(0) != n)
        flatValue = SliceOp::create(b, loc, gathered, ArrayRef<int64_t>{0},
                                    ArrayRef<int64_t>{n}, ArrayRef<int64_t>{1});
      auto shaped = ReshapeOp::create(b, loc, cutType, flatValue);
      for (Operation *made : {gathered.getOperation(), shaped.getOperation(),
                              flatValue.getDefiningOp()})
        stamp(made, get);
      result.replaceAllUsesExcept(shaped, gathered);
    } else if (!dp.whole()) {
      int64_t kind = use.axes.dpKind == DataParallelKind::zero2 ? 1 : 0;
      get->setAttr(GalvDialect::getGradSyncAttrName(),
                   b.getDenseI64ArrayAttr({kind, dp.size, dp.stride}));
    }
  }
  return success();
}

LogicalResult Partitioner::partitionLinear(LinearOp op, const Axes &axes) {
  Value x = conform(op, 0, axes);
  Layout lx = layoutOf(x);
  int64_t last = lx.dims.size() - 1;
  Value w = op.getWeight(), bias = op.getBias();
  bool outIn = op.getLayout() == WeightLayout::out_in;
  int64_t outAxis = outIn ? 0 : 1, inAxis = outIn ? 1 : 0;
  RankedTensorType wType = global(w);
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
  if (axes.ulysses()) {
    // Ulysses: whole weights on a split sequence; features split by the
    // attention's all-to-all come back to a split sequence first.
    if (lx.dims[last] == axes.tp) {
      x = allToAll(x, 1, last, axes.tp, op);
      op->setOperand(0, x);
      lx = layoutOf(x);
      result = lx;
    }
    if (!lx.dims[last].whole())
      return fail(op, "input features split over a group the linear does "
                      "not use");
    for (Value p : {w, bias})
      if (p && isParam(p) &&
          failed(cutParam(p, Layout::whole(global(p).getRank()), axes, op)))
        return failure();
    // The weights meet a split sequence: their gradients are partial sums.
    if (lx.splitOver(axes.tp)) {
      op->setOperand(1, replicate(w, axes.tp, op));
      if (bias)
        op->setOperand(2, replicate(bias, axes.tp, op));
    }
    setLayout(op.getResult(), result);
    return success();
  }
  bool gatheredSequence = false;
  if (axes.megatronSp() && lx.dims.size() == 3 && lx.dims[1] == axes.tp &&
      lx.dims[last].whole()) {
    gatheredSequence = true;
    // Megatron-SP: gather the sequence before a column-parallel linear;
    // the gradient is reduce-scattered back.
    x = gatherDim(x, 1, axes.tp, op, /*scatterGrad=*/true);
    op->setOperand(0, x);
    lx = layoutOf(x);
    result = lx;
  }
  if (!axes.tp.whole() && lx.dims[last].whole()) {
    // Column-parallel. A fused projection split into equal parts right
    // after is cut per part, so that each rank holds its heads of each.
    int64_t blocks = 1;
    Value y = op.getResult();
    if (y.hasOneUse())
      if (auto split = dyn_cast<SplitOp>(*y.getUsers().begin()))
        if (split.getAxis() == last || split.getAxis() == -1) {
          ArrayRef<int64_t> sizes = split.getSizes();
          if (llvm::all_equal(sizes))
            blocks = sizes.size();
        }
    int64_t outFeatures = wType.getDimSize(outAxis);
    if (outFeatures % (blocks * axes.tp.size) != 0)
      return fail(op, "cannot split " + Twine(outFeatures) +
                          " output features over tp = " + Twine(axes.tp.size));
    if (!isParam(w) || (bias && !isParam(bias)))
      return fail(op, "tensor parallelism needs the linear's weight and bias "
                      "to be parameters");
    if (failed(cutParam(w, paramLayout(outAxis, axes.tp, blocks), axes, op)))
      return failure();
    if (bias) {
      Layout lb = Layout::whole(1);
      lb.dims[0] = axes.tp;
      lb.blocks[0] = blocks;
      if (failed(cutParam(bias, lb, axes, op)))
        return failure();
    }
    if (trainable.contains(x) && !gatheredSequence)
      op->setOperand(0, replicate(x, axes.tp, op));
    result.dims[last] = axes.tp;
    result.blocks[last] = blocks;
    setLayout(op.getResult(), result);
    return success();
  }
  if (!axes.tp.whole() && lx.dims[last] == axes.tp) {
    if (lx.blocks[last] != 1)
      return fail(op, "row-parallel linear on a blocked split");
    if (!isParam(w) || (bias && !isParam(bias)))
      return fail(op, "tensor parallelism needs the linear's weight and bias "
                      "to be parameters");
    // Row-parallel: partial sums, all-reduced, then the bias once.
    if (failed(cutParam(w, paramLayout(inAxis, axes.tp, 1), axes, op)))
      return failure();
    if (bias && failed(cutParam(bias, Layout::whole(1), axes, op)))
      return failure();
    result.dims[last] = Group();
    RankedTensorType globalType = typeOf(op.getResult());
    b.setInsertionPoint(op);
    auto partial =
        LinearOp::create(b, op.getLoc(), x, w, Value(), op.getLayout());
    // Megatron-SP reduce-scatters along the sequence instead.
    bool scatter = axes.megatronSp() && result.dims.size() == 3 &&
                   globalType.getDimSize(1) % axes.tp.size == 0;
    Value sum = scatter
                    ? Value(ReduceScatterOp::create(b, op.getLoc(), partial, 1,
                                                    axes.tp.attr()))
                    : Value(AllReduceOp::create(b, op.getLoc(), ReduceKind::sum,
                                                partial, axes.tp.attr()));
    if (scatter)
      result.dims[1] = axes.tp;
    stamp(partial, op);
    stamp(sum.getDefiningOp(), op);
    if (bias) {
      Value b2 = scatter ? replicate(bias, axes.tp, op) : bias;
      b.setInsertionPoint(op);
      sum = AddOp::create(b, op.getLoc(), sum, b2);
      stamp(sum.getDefiningOp(), op);
    }
    Layout partialLayout = lx;
    partialLayout.dims[last] = Group();
    partialLayout.blocks[last] = 1;
    globalTypes[partial] = globalType;
    layouts[partial] = partialLayout;
    trainable.insert(partial);
    for (Operation *o = sum.getDefiningOp(); o && o != partial;) {
      Value r = o->getResult(0);
      globalTypes[r] = globalType;
      layouts[r] = result;
      trainable.insert(r);
      o = o->getOperand(0).getDefiningOp();
    }
    op.getResult().replaceAllUsesWith(sum);
    op.erase();
    return success();
  }
  // No tensor parallelism here: the weight stays whole.
  if (isParam(w) &&
      failed(cutParam(w, Layout::whole(wType.getRank()), axes, op)))
    return failure();
  if (bias && isParam(bias) &&
      failed(cutParam(bias, Layout::whole(1), axes, op)))
    return failure();
  if (!lx.dims[last].whole())
    return fail(op, "input features split over a group the linear does not "
                    "use");
  setLayout(op.getResult(), result);
  return success();
}

Value Partitioner::vocabStart(int64_t rows, Group g, Type type, Operation *at) {
  // The starts of every rank's rows; each rank slices out its own.
  SmallVector<APInt> starts;
  for (int64_t k = 0; k < g.size; ++k)
    starts.push_back(APInt(type.getIntOrFloatBitWidth(), k * (rows / g.size),
                           /*isSigned=*/true));
  b.setInsertionPoint(at);
  auto all = ConstantOp::create(
      b, at->getLoc(),
      DenseElementsAttr::get(RankedTensorType::get({g.size}, type), starts));
  auto mine = ShardSliceOp::create(b, at->getLoc(), all, 0, g.attr());
  stamp(mine, at);
  return mine;
}

/// Vocabulary-parallel embedding (Megatron): each rank holds rows
/// [start, start + V/tp) of the table, looks up the ids that fall there,
/// zeroes the rest, and the group sums the pieces.
LogicalResult Partitioner::partitionVocabEmbedding(EmbeddingOp op,
                                                   const Axes &axes) {
  Value table = op.getTable(), ids = op.getIds();
  if (!isParam(table))
    return fail(op, "vocabulary parallelism needs the table to be a "
                    "parameter");
  RankedTensorType tableType = global(table);
  int64_t vocab = tableType.getDimSize(0);
  if (vocab % axes.tp.size != 0)
    return fail(op,
                "vocabulary of " + Twine(vocab) +
                    " does not split over vocab tp = " + Twine(axes.tp.size));
  Layout cut = Layout::whole(2);
  cut.dims[0] = axes.tp;
  if (failed(cutParam(table, cut, axes, op)))
    return failure();
  Location loc = op.getLoc();
  auto idsType = typeOf(ids);
  Type intType = idsType.getElementType();
  Value start = vocabStart(vocab, axes.tp, intType, op);
  auto scalar = [&](int64_t v) -> Value {
    return ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(RankedTensorType::get({}, intType),
                               APInt(intType.getIntOrFloatBitWidth(), v,
                                     /*isSigned=*/true)));
  };
  b.setInsertionPoint(op);
  Value end = AddOp::create(b, loc, start, scalar(vocab / axes.tp.size));
  Value inside = AndOp::create(
      b, loc, CompareOp::create(b, loc, ComparePredicate::ge, ids, start),
      CompareOp::create(b, loc, ComparePredicate::lt, ids, end));
  Value local = WhereOp::create(b, loc, inside,
                                SubOp::create(b, loc, ids, start), scalar(0));
  Value rows = EmbeddingOp::create(b, loc, table, local);
  SmallVector<int64_t> maskShape(idsType.getShape());
  maskShape.push_back(1);
  Type f = tableType.getElementType();
  Value mask = ReshapeOp::create(
      b, loc, RankedTensorType::get(maskShape, f),
      CastOp::create(b, loc, RankedTensorType::get(idsType.getShape(), f),
                     inside));
  Value pieces = MulOp::create(b, loc, rows, mask);
  Layout out = layoutOf(ids);
  out.dims.push_back(Group());
  out.blocks.push_back(1);
  // With sequence parallelism (Galvatron's vsp) the sum is scattered along
  // the sequence, as after a row-parallel linear.
  bool scatter = axes.megatronSp() && out.dims.size() == 3 &&
                 out.dims[1].whole() &&
                 idsType.getDimSize(1) % axes.tp.size == 0;
  Value sum =
      scatter
          ? Value(ReduceScatterOp::create(b, loc, pieces, 1, axes.tp.attr()))
          : Value(AllReduceOp::create(b, loc, ReduceKind::sum, pieces,
                                      axes.tp.attr()));
  if (scatter)
    out.dims[1] = axes.tp;
  globalTypes[sum] = global(op.getResult());
  layouts[sum] = out;
  trainable.insert(sum);
  dataDerived.insert(sum);
  op.getResult().replaceAllUsesWith(sum);
  op.erase();
  return success();
}

/// Cross-entropy of logits split along the vocabulary (Megatron): the
/// log-sum-exp and the target logit are reduced over the group, so no rank
/// holds whole rows of logits. The max is only a stabilizer (its gradient
/// cancels), which is why all_reduce max passes none back.
Value Partitioner::vocabParallelCrossEntropy(CrossEntropyOp op,
                                             const Axes &axes) {
  Location loc = op.getLoc();
  b.setInsertionPoint(op);
  Value logits = op.getLogits(), labels = op.getLabels();
  RankedTensorType lt = typeOf(logits), yt = typeOf(labels);
  int64_t cols = lt.getShape().back(), n = yt.getNumElements();
  Type f = lt.getElementType(), intType = yt.getElementType();
  auto fType = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, f);
  };
  Value z = ReshapeOp::create(b, loc, fType({n, cols}), logits);
  Value y =
      ReshapeOp::create(b, loc, RankedTensorType::get({n, 1}, intType), labels);
  auto allReduce = [&](ReduceKind kind, Value v) -> Value {
    return AllReduceOp::create(b, loc, kind, v, axes.tp.attr());
  };
  auto rowReduce = [&](ReduceKind kind, Value v) -> Value {
    return ReduceOp::create(b, loc, kind, v, ArrayRef<int64_t>{1}, true);
  };
  Value m = allReduce(ReduceKind::max, rowReduce(ReduceKind::max, z));
  Value shifted = SubOp::create(b, loc, z, m);
  Value sumExp =
      allReduce(ReduceKind::sum,
                rowReduce(ReduceKind::sum, ExpOp::create(b, loc, shifted)));
  Value lse = LogOp::create(b, loc, sumExp);
  // Columns this rank holds, as vocabulary ids.
  Value start = vocabStart(cols * axes.tp.size, axes.tp, intType, op);
  b.setInsertionPoint(op);
  SmallVector<APInt> iota;
  for (int64_t c = 0; c < cols; ++c)
    iota.push_back(APInt(intType.getIntOrFloatBitWidth(), c, true));
  Value columns = AddOp::create(
      b, loc,
      ConstantOp::create(b, loc,
                         DenseElementsAttr::get(
                             RankedTensorType::get({1, cols}, intType), iota)),
      start);
  Value hit = CastOp::create(
      b, loc, fType({n, cols}),
      CompareOp::create(b, loc, ComparePredicate::eq, columns, y));
  Value target = allReduce(
      ReduceKind::sum,
      rowReduce(ReduceKind::sum, MulOp::create(b, loc, shifted, hit)));
  Value perRow = SubOp::create(b, loc, lse, target);
  Value valid = CastOp::create(
      b, loc, fType({n, 1}),
      CompareOp::create(
          b, loc, ComparePredicate::ne, y,
          ConstantOp::create(
              b, loc,
              DenseElementsAttr::get(RankedTensorType::get({}, intType),
                                     APInt(intType.getIntOrFloatBitWidth(),
                                           op.getIgnoreIndex(), true)))));
  auto all = [&](Value v) -> Value {
    return ReduceOp::create(b, loc, ReduceKind::sum, v, ArrayRef<int64_t>{0, 1},
                            false);
  };
  Value loss = all(MulOp::create(b, loc, perRow, valid));
  if (op.getReduction() == ReduceKind::mean)
    loss = DivOp::create(b, loc, loss, all(valid));
  globalTypes[loss] = typeOf(op.getResult());
  layouts[loss] = Layout::whole(0);
  trainable.insert(loss);
  return loss;
}

/// Elementwise ops with numpy broadcasting (and rotary, attention masks):
/// the result takes the split of the operands that span each dimension; an
/// operand that spans it whole is sliced (or, for a parameter, cut).
LogicalResult Partitioner::partitionElementwise(Operation *op,
                                                const Axes &axes) {
  RankedTensorType resultType = global(op->getResult(0));
  int64_t rank = resultType.getRank();
  for (unsigned i = 0; i < op->getNumOperands(); ++i)
    conform(op, i, axes);
  Layout result = Layout::whole(rank);
  // Pick, per dimension, the split of a spanning operand.
  for (Value v : op->getOperands()) {
    Layout l = layoutOf(v);
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
    Layout l = layoutOf(v);
    RankedTensorType g = global(v);
    int64_t offset = rank - g.getRank();
    if (offset < 0)
      continue;
    Value out = v;
    for (int64_t d = 0; d < g.getRank(); ++d) {
      Group want = result.dims[d + offset];
      if (l.dims[d] == want || g.getDimSize(d) == 1)
        continue;
      if (!l.dims[d].whole())
        return fail(op, "operands split differently along dimension " +
                            Twine(d + offset));
      if (isParam(out) && !params[paramBehind(out)].assigned) {
        Layout pl = Layout::whole(g.getRank());
        pl.dims[d] = want;
        pl.blocks[d] = result.blocks[d + offset];
        if (failed(cutParam(out, pl, axes, op)))
          return failure();
        l = pl;
        continue;
      }
      if (result.blocks[d + offset] != 1)
        return fail(op, "cannot slice a whole operand to a blocked split");
      if (trainable.contains(out) && !dataDerived.contains(out) &&
          want == axes.dp)
        return fail(op, "a parameter-derived value spans the batch; "
                        "data parallelism cannot slice it");
      out = sliceDim(out, d, want, op);
      l = layoutOf(out);
    }
    if (out != v)
      op->setOperand(i, out);
  }
  // A value replicated over the tensor-parallel group that meets one split
  // over it is used differently per rank: its gradient is summed (f).
  if (!axes.tp.whole() && result.splitOver(axes.tp))
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      Value v = op->getOperand(i);
      if (trainable.contains(v) && !layoutOf(v).splitOver(axes.tp) &&
          !isa<IntegerType>(global(v).getElementType()))
        op->setOperand(i, replicate(v, axes.tp, op));
    }
  for (Value r : op->getResults())
    setLayout(r, result);
  return success();
}

LogicalResult Partitioner::partition(Operation *op) {
  // Values made on another pipeline stage arrive by a transfer.
  int64_t stage = stageOf(op);
  for (unsigned i = 0; stage >= 0 && i < op->getNumOperands(); ++i) {
    Value v = op->getOperand(i);
    int64_t from = stageOf(v.getDefiningOp());
    if (from < 0 || from == stage)
      continue;
    if (from > stage)
      return fail(op,
                  "uses a value of the later pipeline stage " + Twine(from));
    Value &moved = conversions[{v, -4, stage, stage}];
    if (!moved) {
      b.setInsertionPoint(op);
      moved = record(StageTransferOp::create(b, op->getLoc(), v, from, stage),
                     v, layoutOf(v), op);
    }
    op->setOperand(i, moved);
  }
  Axes axes = axesFor(op);
  // Parameters a rule leaves alone stay whole, synchronised over this op's
  // data-parallel group.
  SmallVector<Value> paramOperands;
  for (Value v : op->getOperands())
    if (isParam(v))
      paramOperands.push_back(v);
  if (failed(partitionOp(op, axes)))
    return failure();
  for (Value v : paramOperands)
    if (!params[paramBehind(v)].assigned &&
        failed(cutParam(v, Layout::whole(global(v).getRank()), axes,
                        paramBehind(v))))
      return failure();
  return success();
}

LogicalResult Partitioner::partitionOp(Operation *op, const Axes &axes) {
  if (llvm::any_of(op->getOperands(),
                   [&](Value v) { return trainable.contains(v); }))
    for (Value r : op->getResults())
      if (isa<FloatType>(typeOf(r).getElementType()))
        trainable.insert(r);
  if (llvm::any_of(op->getOperands(),
                   [&](Value v) { return dataDerived.contains(v); }))
    for (Value r : op->getResults())
      dataDerived.insert(r);
  auto same = [&](Value from, Value to) {
    setLayout(to, layoutOf(from));
    return success();
  };
  auto requireWhole = [&](unsigned i, int64_t dim) -> LogicalResult {
    Value v = conform(op, i, axes);
    if (dim < 0)
      dim += global(v).getRank();
    if (!layoutOf(v).dims[dim].whole())
      op->setOperand(i, wholeAlong(v, dim, op));
    return success();
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](ConstantOp) { return success(); })
      .Case([&](GetParameterOp get) {
        params[get];
        trainable.insert(get.getResult());
        return success();
      })
      .Case([&](LinearOp l) { return partitionLinear(l, axes); })
      .Case<AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp, AndOp, OrOp,
            CompareOp, WhereOp>(
          [&](Operation *e) { return partitionElementwise(e, axes); })
      .Case<NegOp, NotOp, AbsOp, ExpOp, LogOp, SqrtOp, RsqrtOp, ReciprocalOp,
            TanhOp, ErfOp, SigmoidOp, ReluOp, SiluOp, GeluOp, CastOp>(
          [&](Operation *u) {
            conform(u, 0, axes);
            return same(u->getOperand(0), u->getResult(0));
          })
      .Case([&](ReshapeOp r) -> LogicalResult {
        Value x = conform(r, 0, axes);
        Layout in = layoutOf(x);
        ArrayRef<int64_t> from = global(x).getShape();
        RankedTensorType outType = global(r.getResult());
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
              return fail(r, "reshape " + Twine(global(x).getRank()) +
                                 "-d -> " + Twine(to.size()) +
                                 "-d moves a split dimension");
            if (to[tj] % in.dims[k].size != 0)
              return fail(r, "dimension of " + Twine(to[tj]) +
                                 " (heads?) does not split over " +
                                 Twine(in.dims[k].size) + " ranks");
            out.dims[tj] = in.dims[k];
            if (isBatch)
              out.batchDim = tj;
          }
        }
        setLayout(r.getResult(), out);
        return success();
      })
      .Case([&](TransposeOp t) {
        Value x = conform(t, 0, axes);
        Layout in = layoutOf(x), out = in;
        for (auto [d, p] : llvm::enumerate(t.getPermutation())) {
          out.dims[d] = in.dims[p];
          out.blocks[d] = in.blocks[p];
          if (p == in.batchDim)
            out.batchDim = d;
        }
        setLayout(t.getResult(), out);
        return success();
      })
      .Case([&](ExpandOp e) {
        Value x = conform(e, 0, axes);
        Layout in = layoutOf(x);
        RankedTensorType outType = global(e.getResult());
        Layout out = Layout::whole(outType.getRank());
        int64_t offset = outType.getRank() - in.dims.size();
        for (auto [d, g] : llvm::enumerate(in.dims)) {
          if (global(x).getDimSize(d) == outType.getDimSize(d + offset)) {
            out.dims[d + offset] = g;
            out.blocks[d + offset] = in.blocks[d];
          }
          if (static_cast<int64_t>(d) == in.batchDim)
            out.batchDim = d + offset;
        }
        setLayout(e.getResult(), out);
        return success();
      })
      .Case([&](SplitOp s) -> LogicalResult {
        Value x = conform(s, 0, axes);
        Layout in = layoutOf(x);
        int64_t axis =
            s.getAxis() < 0 ? s.getAxis() + in.dims.size() : s.getAxis();
        Layout out = in;
        if (!in.dims[axis].whole()) {
          if (in.blocks[axis] != static_cast<int64_t>(s.getNumResults()))
            return fail(s, "split of a dimension split over ranks");
          out.blocks[axis] = 1;
          SmallVector<int64_t> sizes;
          for (int64_t size : s.getSizes())
            sizes.push_back(size / in.dims[axis].size);
          s.setSizes(sizes);
        }
        for (Value r : s.getResults())
          setLayout(r, out);
        return success();
      })
      .Case([&](SliceOp s) -> LogicalResult {
        Value x = conform(s, 0, axes);
        Layout in = layoutOf(x);
        RankedTensorType xType = global(x);
        SmallVector<int64_t> limits(s.getLimits());
        for (auto [d, g] : llvm::enumerate(in.dims)) {
          if (g.whole())
            continue;
          if (s.getStarts()[d] != 0 || s.getSteps()[d] != 1 ||
              limits[d] != xType.getDimSize(d))
            return fail(s, "slice along dimension " + Twine(d) +
                               ", which is split over ranks");
          limits[d] /= g.size;
        }
        s.setLimits(limits);
        setLayout(s.getResult(), in);
        return success();
      })
      .Case([&](ConcatOp c) -> LogicalResult {
        int64_t axis = c.getAxis();
        for (unsigned i = 0; i < c->getNumOperands(); ++i)
          if (failed(requireWhole(i, axis)))
            return failure();
        Layout first = layoutOf(c->getOperand(0));
        for (Value v : c->getOperands())
          if (layoutOf(v).dims != first.dims)
            return fail(c, "concatenated values are split differently");
        setLayout(c.getResult(), first);
        return success();
      })
      .Case([&](GatherOp g) -> LogicalResult {
        // Gathering from a split table (a mask flattened with its batch)
        // needs the whole table.
        Value data = conform(g, 0, axes);
        for (auto [d, gr] : llvm::enumerate(layoutOf(data).dims))
          if (!gr.whole())
            data = wholeAlong(data, d, g);
        g->setOperand(0, data);
        Value ids = conform(g, 1, axes);
        Layout li = layoutOf(ids);
        int64_t axis = g.getAxis() < 0 ? g.getAxis() + global(data).getRank()
                                       : g.getAxis();
        Layout out = Layout::whole(global(g.getResult()).getRank());
        for (auto [d, gr] : llvm::enumerate(li.dims))
          out.dims[axis + d] = gr;
        if (li.batchDim >= 0)
          out.batchDim = axis + li.batchDim;
        setLayout(g.getResult(), out);
        return success();
      })
      .Case([&](EmbeddingOp e) -> LogicalResult {
        Value ids = conform(e, 1, axes);
        // Only the vocabulary is split; position and token-type tables
        // stay whole.
        if (!axes.tp.whole() &&
            global(e.getTable()).getDimSize(0) == vocabularyRows)
          return partitionVocabEmbedding(e, axes);
        if (isParam(e.getTable()) &&
            failed(cutParam(e.getTable(), Layout::whole(2), axes, e)))
          return failure();
        Layout li = layoutOf(ids), out = li;
        out.dims.push_back(Group());
        out.blocks.push_back(1);
        setLayout(e.getResult(), out);
        return success();
      })
      .Case<LayerNormOp, RmsNormOp, SoftmaxOp>(
          [&](Operation *n) -> LogicalResult {
            int64_t axis = -1;
            if (auto s = dyn_cast<SoftmaxOp>(n))
              axis = s.getAxis();
            (void)requireWhole(0, axis);
            bool varying = layoutOf(n->getOperand(0)).splitOver(axes.tp);
            for (unsigned i = 1; i < n->getNumOperands(); ++i) {
              Value p = n->getOperand(i);
              if (isParam(p) && failed(cutParam(p, Layout::whole(1), axes, n)))
                return failure();
              // Scales applied to a split sequence get partial gradients.
              if (varying && trainable.contains(p))
                n->setOperand(i, replicate(p, axes.tp, n));
            }
            return same(n->getOperand(0), n->getResult(0));
          })
      .Case([&](RotaryOp r) -> LogicalResult {
        Value x = conform(r, 0, axes);
        Layout lx = layoutOf(x);
        int64_t rank = lx.dims.size();
        if (!lx.dims[rank - 1].whole())
          return fail(r, "rotary features split over ranks");
        for (unsigned i = 1; i < 3; ++i) {
          Value t = r->getOperand(i);
          RankedTensorType tt = global(t);
          int64_t offset = rank - tt.getRank();
          Value out = t;
          for (int64_t d = 0; d + 1 < tt.getRank(); ++d)
            if (!lx.dims[d + offset].whole() && tt.getDimSize(d) != 1 &&
                layoutOf(out).dims[d] != lx.dims[d + offset])
              out = sliceDim(out, d, lx.dims[d + offset], r);
          if (out != t)
            r->setOperand(i, out);
        }
        return same(x, r.getResult());
      })
      .Case([&](AttentionOp a) -> LogicalResult {
        for (unsigned i = 0; i < 3; ++i) {
          Value v = conform(a, i, axes);
          // Ulysses: trade the split sequence for split heads.
          Layout l = layoutOf(v);
          if (axes.ulysses() && l.dims[2] == axes.tp && l.dims[1].whole()) {
            int64_t heads = global(v).getDimSize(1);
            if (heads % axes.tp.size != 0)
              return fail(a, "Ulysses needs the " + Twine(heads) +
                                 " heads of this attention input to split "
                                 "over tp = " +
                                 Twine(axes.tp.size));
            a->setOperand(i, allToAll(v, 1, 2, axes.tp, a));
          }
        }
        Layout lq = layoutOf(a.getQuery());
        for (unsigned i = 1; i < 3; ++i) {
          Layout l = layoutOf(a->getOperand(i));
          if (l.dims[0] != lq.dims[0] || l.dims[1] != lq.dims[1])
            return fail(a, "query, key and value are split differently");
        }
        if (!lq.dims[2].whole() || !lq.dims[3].whole())
          return fail(a, "attention over a split sequence or head dimension");
        if (a.getMask()) {
          Value m = conform(a, 3, axes);
          RankedTensorType mt = global(m);
          int64_t offset = 4 - mt.getRank();
          Value out = m;
          for (int64_t d = 0; d < mt.getRank(); ++d) {
            Group want = d + offset < 2 ? lq.dims[d + offset] : Group();
            if (layoutOf(out).dims[d] != want && mt.getDimSize(d) != 1) {
              if (!layoutOf(out).dims[d].whole())
                return fail(a, "mask split differently from the scores");
              out = sliceDim(out, d, want, a);
            }
          }
          if (out != m)
            a->setOperand(3, out);
        }
        return same(a.getQuery(), a.getResult());
      })
      .Case([&](CrossEntropyOp ce) -> LogicalResult {
        Value logits = conform(ce, 0, axes);
        Layout ll = layoutOf(logits);
        bool vocabSplit = !axes.tp.whole() && ll.dims.back() == axes.tp &&
                          ll.blocks.back() == 1;
        if (!vocabSplit)
          (void)requireWhole(0, -1);
        Value labels = conform(ce, 1, axes);
        ll = layoutOf(ce.getLogits());
        Layout lb = layoutOf(labels);
        SmallVector<Group> rows(ll.dims.begin(), ll.dims.end() - 1);
        if (rows != lb.dims)
          return fail(ce, "logits and labels are split differently");
        // The mean (or sum) of this rank's rows, combined over the groups
        // the rows are split over (means of equal-sized pieces).
        Value result = ce.getResult();
        if (vocabSplit) {
          result = vocabParallelCrossEntropy(ce, axes);
          ce.getResult().replaceAllUsesWith(result);
          ce.erase();
        }
        SmallVector<OpOperand *> uses;
        for (OpOperand &use : result.getUses())
          uses.push_back(&use);
        b.setInsertionPointAfter(result.getDefiningOp());
        Value combined = result;
        SmallVector<Group> seen;
        for (Group g : rows)
          if (!g.whole() && !llvm::is_contained(seen, g)) {
            seen.push_back(g);
            combined = AllReduceOp::create(b, ce.getLoc(), ce.getReduction(),
                                           combined, g.attr());
            globalTypes[combined] = typeOf(result);
            layouts[combined] = Layout::whole(0);
            trainable.insert(combined);
          }
        for (OpOperand *use : uses)
          use->set(combined);
        return success();
      })
      .Case([&](ReduceOp r) -> LogicalResult {
        Value x = conform(r, 0, axes);
        Layout in = layoutOf(x);
        Layout out;
        for (int64_t d = 0; d < static_cast<int64_t>(in.dims.size()); ++d) {
          bool reduced = llvm::is_contained(r.getAxes(), d);
          if (reduced && !in.dims[d].whole()) {
            x = wholeAlong(x, d, r);
            r->setOperand(0, x);
            in = layoutOf(x);
          }
          if (!reduced || r.getKeepdims()) {
            if (d == in.batchDim && !reduced)
              out.batchDim = out.dims.size();
            out.dims.push_back(reduced ? Group() : in.dims[d]);
            out.blocks.push_back(reduced ? 1 : in.blocks[d]);
          }
        }
        setLayout(r.getResult(), out);
        return success();
      })
      .Case([&](MatmulOp m) -> LogicalResult {
        conform(m, 0, axes);
        conform(m, 1, axes);
        Value lhs = m->getOperand(0), rhs = m->getOperand(1);
        int64_t lr = global(lhs).getRank(), rr = global(rhs).getRank();
        if (!layoutOf(lhs).dims[lr - 1].whole())
          m->setOperand(0, lhs = wholeAlong(lhs, lr - 1, m));
        if (!layoutOf(rhs).dims[rr - 2].whole())
          m->setOperand(1, rhs = wholeAlong(rhs, rr - 2, m));
        Layout ll = layoutOf(lhs), lr2 = layoutOf(rhs);
        int64_t rank = global(m.getResult()).getRank();
        Layout out = Layout::whole(rank);
        for (int64_t d = 0; d + 2 < rank; ++d) {
          int64_t dl = d - (rank - lr), dr = d - (rank - rr);
          Group gl = dl >= 0 ? ll.dims[dl] : Group();
          Group gr = dr >= 0 ? lr2.dims[dr] : Group();
          if (!gl.whole() && !gr.whole() && gl != gr)
            return fail(m, "matmul batch dimensions split differently");
          if ((!gl.whole() && dr >= 0 && gr.whole() &&
               global(rhs).getDimSize(dr) != 1) ||
              (!gr.whole() && dl >= 0 && gl.whole() &&
               global(lhs).getDimSize(dl) != 1))
            return fail(m, "matmul of a split and a whole batch dimension");
          out.dims[d] = gl.whole() ? gr : gl;
          if (dl >= 0 && dl == ll.batchDim)
            out.batchDim = d;
        }
        out.dims[rank - 2] = ll.dims[lr - 2];
        out.dims[rank - 1] = lr2.dims[rr - 1];
        if (ll.batchDim == lr - 2)
          out.batchDim = rank - 2;
        setLayout(m.getResult(), out);
        return success();
      })
      .Default([&](Operation *o) {
        return fail(o, "no partitioning rule for '" +
                           o->getName().getStringRef() + "'");
      });
}

void Partitioner::assignStages(Block &body) {
  if (plan.getPp() == 1)
    return;
  // Layer ops run on their layer's stage; the embedding before the first
  // layer on stage 0, the head and loss after the last on the last stage.
  MLIRContext *context = func.getContext();
  auto tag = [&](Operation *op, int64_t stage) {
    op->setAttr(GalvDialect::getStageAttrName(),
                IntegerAttr::get(IntegerType::get(context, 64), stage));
  };
  bool seenLayer = false;
  for (Operation &op : body.without_terminator()) {
    if (auto s = op.getAttrOfType<StrategyAttr>(
            GalvDialect::getStrategyAttrName())) {
      seenLayer = true;
      tag(&op, s.getStage());
    } else if (!isa<ConstantOp, GetParameterOp>(op)) {
      tag(&op, seenLayer ? plan.getPp() - 1 : 0);
    }
  }
  // A parameter is read on the stage of its first user; other stages get
  // it by transfer (a tied embedding and head).
  for (Operation &op : body.without_terminator())
    for (Value v : op.getOperands())
      if (auto get = v.getDefiningOp<GetParameterOp>())
        if (stageOf(get) < 0 && stageOf(&op) >= 0)
          tag(get, stageOf(&op));
}

LogicalResult Partitioner::run() {
  Block &body = func.getBody().front();
  // Data inputs: the batch (dimension 0) is split over the dp group of the
  // embedding / head layers and cut by the runtime.
  SmallVector<Type> inputTypes;
  for (BlockArgument arg : body.getArguments()) {
    RankedTensorType g = typeOf(arg);
    Layout l = Layout::whole(g.getRank());
    if (g.getRank() > 0) {
      l.batchDim = 0;
      if (!otherAxes.dp.whole()) {
        if (g.getDimSize(0) % otherAxes.dp.size != 0)
          return fail(func, "batch of " + Twine(g.getDimSize(0)) +
                                " does not split over dp = " +
                                Twine(otherAxes.dp.size));
        l.dims[0] = otherAxes.dp;
        func.setArgAttr(
            arg.getArgNumber(), GalvDialect::getShardAttrName(),
            ShardAttr::get(func.getContext(),
                           {0, 1, otherAxes.dp.size, otherAxes.dp.stride}, {}));
      }
    }
    setLayout(arg, l);
    dataDerived.insert(arg);
    inputTypes.push_back(arg.getType());
  }
  assignStages(body);
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator()) {
    ops.push_back(&op);
    if (auto e = dyn_cast<EmbeddingOp>(op))
      vocabularyRows =
          std::max(vocabularyRows, typeOf(e.getTable()).getDimSize(0));
  }
  for (Operation *op : ops)
    if (failed(partition(op)))
      return failure();
  if (failed(finishParams()))
    return failure();
  // The loss is whole on every rank.
  Operation *ret = body.getTerminator();
  for (unsigned i = 0; i < ret->getNumOperands(); ++i)
    if (layoutOf(ret->getOperand(i)).anySplit())
      return fail(ret, "result " + Twine(i) + " is split over ranks");
  func.setFunctionType(
      FunctionType::get(func.getContext(), inputTypes, ret->getOperandTypes()));
  return success();
}

struct PartitionPass : galv::impl::PartitionBase<PartitionPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan =
        module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
    if (!plan || plan.getWorldSize() == 1)
      return;
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss || loss.isExternal()) {
      mlir::emitError(module.getLoc(),
                      "galv-partition needs func.func @loss (run "
                      "galv-append-loss)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss_grad")) {
      mlir::emitError(module.getLoc(),
                      "galv-partition runs before galv-autodiff");
      return signalPassFailure();
    }
    if (plan.getVocabSp() == SequenceParallelKind::ulysses) {
      mlir::emitError(module.getLoc(),
                      "galv-partition: the embedding and head take Megatron "
                      "sequence parallelism (vocab_sp = megatron), not "
                      "Ulysses: they have no attention");
      return signalPassFailure();
    }
    // The embedding and head ("other" layers) use all devices of a stage:
    // vocab_tp-way tensor parallel, the rest data parallel.
    int64_t devices = plan.getDevicesPerStage();
    DataParallelKind otherKind = plan.getEmbedZero3() ? DataParallelKind::zero3
                                                      : plan.getDefaultDpKind();
    int64_t otherDp = devices / plan.getVocabTp();
    auto other = StrategyAttr::get(
        module.getContext(), plan.getVocabTp(), otherDp, true,
        otherDp > 1 ? otherKind : DataParallelKind::ddp,
        plan.getVocabTp() > 1 ? plan.getVocabSp() : SequenceParallelKind::none,
        false, 0);
    Partitioner partitioner(loss, plan, other);
    if (failed(partitioner.run()))
      return signalPassFailure();
  }
};

} // namespace
