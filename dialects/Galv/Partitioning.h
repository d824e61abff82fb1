//===- Partitioning.h - layouts and the state of galv-partition -*- C++ -*-===//
//
// What a PartitionOpInterface rule works with: the layout of every value
// (which dimension is split over which device group), the rank-local types,
// and the collectives that conform a value to the layout an op accepts.
// galv-partition (lib/Transforms/Partition.cpp) walks a function and asks
// each op's rule to rewrite it; the state and the conversions live here,
// beside the rules (GalvPartitionRules.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef GALV_PARTITIONING_H
#define GALV_PARTITIONING_H

#include "Galv/Galv.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"

#include <tuple>

namespace mlir::galv {

/// A device group within a stage as a layout records it (see #galv.group);
/// size 1, a whole dimension, whatever the stride.
struct Group {
  int64_t size = 1, stride = 1;
  bool whole() const { return size == 1; }
  bool operator==(const Group &o) const {
    return size == o.size && (size == 1 || stride == o.stride);
  }
  bool operator!=(const Group &o) const { return !(*this == o); }
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

/// The groups of a layer strategy (consecutive or strided tensor groups).
Axes axesOf(StrategyAttr s);

/// The pipeline stage an op runs on (-1: none yet, as for constants).
int64_t stageOf(Operation *op);

/// The partitioning of one function, shared by every op's rule.
class PartitionState {
public:
  /// `other` is the strategy of ops outside any layer (embedding, head).
  PartitionState(func::FuncOp func, PlanConfigAttr plan, StrategyAttr other)
      : func(func), plan(plan), otherAxes(axesOf(other)), b(func.getContext()) {
  }

  /// Partitions `op` through its PartitionOpInterface: values from earlier
  /// stages arrive by transfer, parameters its rule leaves alone stay whole.
  LogicalResult partition(Operation *op);
  /// Gives every parameter read its cut type, the ZeRO-3 gather, or the
  /// gradient-sync mark for galv-adamw.
  LogicalResult finishParams();

  // Values and their layouts.
  /// Global (one-rank) type of a value; values not rewritten yet are global.
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
  /// Records a value a rule built already in its local type.
  void define(Value v, RankedTensorType globalType, const Layout &l) {
    globalTypes[v] = globalType;
    layouts[v] = l;
    trainable.insert(v);
  }
  static RankedTensorType typeOf(Value v) {
    return cast<RankedTensorType>(v.getType());
  }
  /// The #galv.group a collective over `g` carries.
  DeviceGroupAttr groupAttr(Group g) {
    return DeviceGroupAttr::get(b.getContext(), g.size, g.stride);
  }

  /// A diagnostic at the op's location (without printing the op).
  LogicalResult fail(Operation *op, const Twine &message) {
    mlir::emitError(op->getLoc(), "galv-partition: ") << message;
    return failure();
  }
  Axes axesFor(Operation *op) {
    if (auto s =
            op->getAttrOfType<StrategyAttr>(GalvDialect::getStrategyAttrName()))
      return axesOf(s);
    return otherAxes;
  }

  // Parameters.
  /// The parameter read behind `v`: itself, or what a pipeline transfer
  /// passes on (a tied embedding read by the head's stage).
  GetParameterOp paramBehind(Value v) {
    while (auto transfer = v.getDefiningOp<StageTransferOp>())
      v = transfer.getInput();
    return v.getDefiningOp<GetParameterOp>();
  }
  bool isParam(Value v) { return static_cast<bool>(paramBehind(v)); }
  /// Whether the parameter behind `v` has been given its cut.
  bool isCut(Value v) { return params[paramBehind(v)].assigned; }
  /// Registers a parameter read.
  void addParam(GetParameterOp get) {
    params[get];
    trainable.insert(get.getResult());
  }
  /// Cuts the parameter read by `v` (a get_parameter result) as `layout`.
  LogicalResult cutParam(Value v, const Layout &layout, const Axes &axes,
                         Operation *user);

  /// New ops belong to the layer of the op they were made for (so that a
  /// checkpointed layer recomputes its collectives too).
  void stamp(Operation *created, Operation *from);

  // Conversions, built before `at`, cached per value and stage.
  Value gatherDim(Value v, int64_t dim, Group g, Operation *at,
                  bool scatterGrad = false);
  /// Moves the split of `v` from `concat` to `split` (Ulysses).
  Value allToAll(Value v, int64_t split, int64_t concat, Group g,
                 Operation *at);
  Value sliceDim(Value v, int64_t dim, Group g, Operation *at);
  /// `shared`: one replicate per value and group serves every use. A
  /// replicate sums the gradient of all its uses over its group, so uses
  /// that need different sums must not share one.
  Value replicate(Value v, Group g, Operation *at, bool shared = true);
  /// Makes operand `i` of `op` split only over the op's groups, with its
  /// batch dimension over the op's dp group.
  Value conform(Operation *op, unsigned i, const Axes &axes);
  /// Makes `v` whole along `dim` (gathering).
  Value wholeAlong(Value v, int64_t dim, Operation *at);
  /// This rank's first vocabulary row of a table of `rows` split over `g`,
  /// as a [1] tensor of `type`.
  Value vocabStart(int64_t rows, Group g, Type type, Operation *at);

  func::FuncOp func;
  PlanConfigAttr plan;
  Axes otherAxes;
  OpBuilder b;
  /// Rows of the largest embedding table: the vocabulary.
  int64_t vocabularyRows = 0;
  /// Values that depend on a parameter (and so carry gradients), and
  /// values that depend on the data.
  DenseSet<Value> trainable, dataDerived;

private:
  /// Whether `v` comes from outside the layer instance `op` belongs to.
  bool fromOutside(Value v, Operation *op);
  /// Bookkeeping for a conversion op `created` (for `at`) of `from`: same
  /// global type, layout `l`, and what `from` depends on.
  Value record(Operation *created, Value from, const Layout &l, Operation *at);
  void gatherZero3(GetParameterOp get, Group dp, RankedTensorType cutType);
  void replicatePerUse(GetParameterOp get);

  DenseMap<Value, Layout> layouts;
  DenseMap<Value, RankedTensorType> globalTypes;
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
  /// In first-use order (a MapVector), so that ZeRO-3 gathers and replicas
  /// are made in program order and plans do not depend on pointer values.
  llvm::MapVector<Operation *, ParamUse> params;
  /// Gathers, slices and replicates made so far: (value, dimension, kind).
  DenseMap<std::tuple<Value, int64_t, int64_t, int64_t>, Value> conversions;
};

/// Shared rules: elementwise ops with numpy broadcasting, and ops whose
/// result is laid out as their first operand.
LogicalResult partitionElementwise(Operation *op, PartitionState &state,
                                   const Axes &axes);
LogicalResult partitionLikeOperand(Operation *op, PartitionState &state,
                                   const Axes &axes);

} // namespace mlir::galv

#endif // GALV_PARTITIONING_H
