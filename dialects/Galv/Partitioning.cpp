//===- Partitioning.cpp - the state of galv-partition ---------------------===//
//
// Layouts, rank-local types and the conversions (gathers, slices,
// all-to-alls, replicates) that conform values to what an op's partition
// rule accepts; parameter cuts and their ZeRO / gradient-sync treatment.
//
//===----------------------------------------------------------------------===//

#include "Galv/Partitioning.h"

using namespace mlir;
using namespace mlir::galv;

Axes mlir::galv::axesOf(StrategyAttr s) {
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

int64_t mlir::galv::stageOf(Operation *op) {
  auto stage =
      op ? op->getAttrOfType<IntegerAttr>(GalvDialect::getStageAttrName())
         : IntegerAttr();
  return stage ? stage.getInt() : -1;
}

/// Whether a conversion made earlier can serve a use at `at` (the
/// parameter pass revisits uses out of order).
static bool precedes(Value made, Operation *at) {
  Operation *def = made.getDefiningOp();
  return !def || def == at || def->isBeforeInBlock(at);
}

bool PartitionState::fromOutside(Value v, Operation *op) {
  Operation *def = v.getDefiningOp();
  Attribute here = op->getAttr(GalvDialect::getLayerAttrName());
  return !def || def->getAttr(GalvDialect::getLayerAttrName()) != here;
}

void PartitionState::stamp(Operation *created, Operation *from) {
  for (StringRef name :
       {GalvDialect::getStrategyAttrName(), GalvDialect::getLayerAttrName(),
        GalvDialect::getStageAttrName()})
    if (Attribute a = from->getAttr(name))
      created->setAttr(name, a);
}

Value PartitionState::record(Operation *created, Value from, const Layout &l,
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

Value PartitionState::gatherDim(Value v, int64_t dim, Group g, Operation *at,
                                bool scatterGrad) {
  // One gather per value and dimension serves every later user.
  Value &cached = conversions[{v, dim, scatterGrad ? -2 : 0, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  b.setInsertionPoint(at);
  Layout l = layoutOf(v);
  l.dims[dim] = Group();
  l.blocks[dim] = 1;
  return cached = record(AllGatherOp::create(b, at->getLoc(), v, dim,
                                             groupAttr(g), scatterGrad),
                         v, l, at);
}

/// Moves the split of `v` from `concat` to `split` (Ulysses).
Value PartitionState::allToAll(Value v, int64_t split, int64_t concat, Group g,
                               Operation *at) {
  Value &cached = conversions[{v, split * 64 + concat, -3, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  b.setInsertionPoint(at);
  Layout l = layoutOf(v);
  l.dims[concat] = Group();
  l.dims[split] = g;
  return cached = record(AllToAllOp::create(b, at->getLoc(), v, split, concat,
                                            groupAttr(g)),
                         v, l, at);
}

Value PartitionState::sliceDim(Value v, int64_t dim, Group g, Operation *at) {
  Value &cached = conversions[{v, dim, g.size * 65536 + g.stride, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  b.setInsertionPoint(at);
  Layout l = layoutOf(v);
  l.dims[dim] = g;
  return cached =
             record(ShardSliceOp::create(b, at->getLoc(), v, dim, groupAttr(g)),
                    v, l, at);
}

Value PartitionState::replicate(Value v, Group g, Operation *at, bool shared) {
  b.setInsertionPoint(at);
  if (!shared)
    return record(ReplicateOp::create(b, at->getLoc(), v, groupAttr(g)), v,
                  layoutOf(v), at);
  Value &cached = conversions[{v, -1, g.size * 65536 + g.stride, stageOf(at)}];
  if (cached && precedes(cached, at))
    return cached;
  return cached = record(ReplicateOp::create(b, at->getLoc(), v, groupAttr(g)),
                         v, layoutOf(v), at);
}

Value PartitionState::wholeAlong(Value v, int64_t dim, Operation *at) {
  Layout l = layoutOf(v);
  if (l.dims[dim].whole())
    return v;
  return gatherDim(v, dim, l.dims[dim], at);
}

Value PartitionState::conform(Operation *op, unsigned i, const Axes &axes) {
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

LogicalResult PartitionState::cutParam(Value v, const Layout &layout,
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

/// Every use of a weight shared by layers of different data-parallel
/// groups sums its gradient over its own group, through pipeline transfers
/// to the stages that read it.
void PartitionState::replicatePerUse(GetParameterOp get) {
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
}

/// Gathers ZeRO-3 flat shards right before the first use (galv-autodiff
/// gathers again for the backward pass); the gradient is reduce-scattered.
void PartitionState::gatherZero3(GetParameterOp get, Group dp,
                                 RankedTensorType cutType) {
  Value result = get.getResult();
  Operation *first = nullptr;
  for (Operation *user : result.getUsers())
    if (!first || user->isBeforeInBlock(first))
      first = user;
  b.setInsertionPoint(first ? first : get->getNextNode());
  Location loc = get.getLoc();
  auto gathered = AllGatherOp::create(b, loc, result, 0, groupAttr(dp),
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
}

/// Gives every parameter read its cut type, the ZeRO-3 gather, or the
/// gradient-sync mark for galv-adamw.
LogicalResult PartitionState::finishParams() {
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
    SmallVector<CutAttr> cuts;
    for (auto [d, g] : llvm::enumerate(use.layout.dims))
      if (!g.whole())
        cuts.push_back(CutAttr::get(b.getContext(), static_cast<int64_t>(d),
                                    use.layout.blocks[d], groupAttr(g)));
    if (use.mixed) {
      // A frozen parameter has no gradient to sum over any group.
      if (trainable.contains(get.getResult()))
        replicatePerUse(get);
      continue;
    }
    Group dp = use.axes.dp;
    bool zero3 = use.axes.dpKind == DataParallelKind::zero3 && !dp.whole();
    DeviceGroupAttr flat = zero3 ? groupAttr(dp) : DeviceGroupAttr();
    RankedTensorType cutType = localType(full, use.layout);
    Value result = get.getResult();
    if (!cuts.empty() || zero3) {
      auto shard = ShardAttr::get(op->getContext(), cuts, flat);
      get.setShardAttr(shard);
      result.setType(shard.getLocalType(full));
    }
    if (zero3)
      gatherZero3(get, dp, cutType);
    else if (!dp.whole()) {
      GradSyncKind kind = use.axes.dpKind == DataParallelKind::zero2
                              ? GradSyncKind::reduce_scatter
                              : GradSyncKind::all_reduce;
      get->setAttr(GalvDialect::getGradSyncAttrName(),
                   GradSyncAttr::get(b.getContext(), kind, groupAttr(dp)));
    }
  }
  return success();
}

Value PartitionState::vocabStart(int64_t rows, Group g, Type type,
                                 Operation *at) {
  // The starts of every rank's rows; each rank slices out its own.
  SmallVector<APInt> starts;
  for (int64_t k = 0; k < g.size; ++k)
    starts.push_back(APInt(type.getIntOrFloatBitWidth(), k * (rows / g.size),
                           /*isSigned=*/true));
  b.setInsertionPoint(at);
  auto all = ConstantOp::create(
      b, at->getLoc(),
      DenseElementsAttr::get(RankedTensorType::get({g.size}, type), starts));
  auto mine = ShardSliceOp::create(b, at->getLoc(), all, 0, groupAttr(g));
  stamp(mine, at);
  return mine;
}

/// Vocabulary-parallel embedding (Megatron): each rank holds rows
/// [start, start + V/tp) of the table, looks up the ids that fall there,

LogicalResult PartitionState::partition(Operation *op) {
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
  if (llvm::any_of(op->getOperands(),
                   [&](Value v) { return trainable.contains(v); }))
    for (Value r : op->getResults())
      if (isa<FloatType>(typeOf(r).getElementType()))
        trainable.insert(r);
  if (llvm::any_of(op->getOperands(),
                   [&](Value v) { return dataDerived.contains(v); }))
    for (Value r : op->getResults())
      dataDerived.insert(r);
  auto rule = dyn_cast<PartitionOpInterface>(op);
  if (!rule)
    return fail(op, "no partitioning rule for '" +
                        op->getName().getStringRef() + "'");
  if (failed(rule.partition(*this, axes)))
    return failure();
  for (Value v : paramOperands)
    if (!params[paramBehind(v)].assigned &&
        failed(cutParam(v, Layout::whole(global(v).getRank()), axes,
                        paramBehind(v))))
      return failure();
  return success();
}
