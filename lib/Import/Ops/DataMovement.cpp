//===- DataMovement.cpp - ONNX layout and indexing ops to galv ------------===//
//
// Ops that move elements without computing new ones: reshapes, transposes,
// slices, concatenation, splits, broadcasts and gathers (and Identity and
// inference-mode Dropout). On weights the importer defers these (see
// isDataMovement in ONNXImporter.cpp); their handlers then run twice, once
// in a scratch block to learn result types and once when a consumer needs
// the value. Their fold rules (with Tile, only ever folded) evaluate them on
// constants.
//
//===----------------------------------------------------------------------===//

#include "../FoldRules.h"
#include "../OpTable.h"

#include "Galv/Builders.h"
#include "Galv/Galv.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

static LogicalResult importIdentity(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  return ctx.result(*x);
}

static LogicalResult importDropout(OpContext &ctx) {
  if (ctx.numOutputs() > 1 && !ctx.node.output(1).empty())
    return ctx.error() << ctx.describe()
                       << ": the dropout mask output is not supported";
  // Inference-mode Dropout is the identity. Training mode (input 2) with a
  // non-zero ratio (input 1, default 0.5) draws random masks, which the
  // forward graph does not model.
  if (ctx.hasInput(2)) {
    const std::optional<HostTensor> &training = ctx.inputs[2]->constant;
    if (!training || training->size() != 1)
      return ctx.error() << ctx.describe()
                         << ": training_mode must be a constant";
    double ratio = 0.5;
    if (ctx.hasInput(1)) {
      const std::optional<HostTensor> &given = ctx.inputs[1]->constant;
      if (!given || given->size() != 1)
        return ctx.error() << ctx.describe() << ": ratio must be a constant";
      ratio = given->getDouble(0);
    }
    if (training->getInt(0) != 0 && ratio != 0.0)
      return ctx.error() << ctx.describe()
                         << ": training-mode dropout is not supported";
  }
  return importIdentity(ctx);
}

/// The shape a Reshape with target `target` gives `input` (0 copies the input
/// dimension unless `allowZero`, -1 is inferred).
static FailureOr<SmallVector<int64_t>> resolveReshape(ArrayRef<int64_t> input,
                                                      ArrayRef<int64_t> target,
                                                      bool allowZero,
                                                      std::string &message) {
  SmallVector<int64_t> shape(target);
  int64_t known = 1, inferAt = -1, total = 1;
  for (int64_t d : input)
    total *= d;
  // Target dimensions come from the model: a product that wraps could match
  // the input's element count.
  auto tooLarge = [&] {
    message = "the target shape has more elements than fit in 64 bits";
    return failure();
  };
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0 && !allowZero) {
      if (d >= input.size()) {
        message = "a 0 in the target shape has no input dimension to copy";
        return failure();
      }
      shape[d] = input[d];
    }
    if (shape[d] == -1) {
      if (inferAt >= 0) {
        message = "the target shape has more than one -1";
        return failure();
      }
      inferAt = d;
    } else if (shape[d] < 0) {
      message = "the target shape has a negative dimension";
      return failure();
    } else {
      std::optional<int64_t> product = llvm::checkedMul(known, shape[d]);
      if (!product)
        return tooLarge();
      known = *product;
    }
  }
  if (inferAt >= 0) {
    if (known == 0 || total % known != 0) {
      message = "cannot infer the -1 dimension";
      return failure();
    }
    shape[inferAt] = total / known;
  }
  std::optional<int64_t> count = 1;
  for (int64_t d : shape) {
    count = llvm::checkedMul(*count, d);
    if (!count)
      return tooLarge();
  }
  if (*count != total) {
    message = "cannot reshape " + std::to_string(total) + " elements into " +
              std::to_string(*count);
    return failure();
  }
  return shape;
}

static LogicalResult importReshape(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  auto spec = ctx.constIn(1);
  auto allowZero = ctx.intAttr("allowzero");
  if (failed(spec) || failed(allowZero))
    return failure();
  std::string message;
  auto resolved = resolveReshape(typeOf(*x).getShape(), *spec,
                                 allowZero->value_or(0) != 0, message);
  if (failed(resolved))
    return ctx.error() << ctx.describe() << ": " << message;
  return ctx.result(ctx.reshapeTo(*x, *resolved));
}

static LogicalResult importFlatten(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> shape = typeOf(*x).getShape();
  int64_t rank = shape.size();
  auto axisAttr = ctx.intAttr("axis");
  if (failed(axisAttr))
    return failure();
  int64_t axis = normAxis(axisAttr->value_or(1), rank);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d)
    (d < axis ? outer : inner) *= shape[d];
  return ctx.result(ctx.reshapeTo(*x, {outer, inner}));
}

static LogicalResult importUnsqueeze(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> shape = typeOf(*x).getShape();
  auto axes = ctx.axesOperand();
  if (failed(axes))
    return failure();
  if (!*axes)
    return ctx.error() << ctx.describe() << " needs axes";
  int64_t outRank = shape.size() + (*axes)->size();
  SmallVector<int64_t> sorted;
  for (int64_t a : **axes)
    sorted.push_back(normAxis(a, outRank));
  llvm::sort(sorted);
  SmallVector<int64_t> target(shape);
  for (int64_t a : sorted) {
    if (a < 0 || a > static_cast<int64_t>(target.size()))
      return ctx.error() << ctx.describe() << " axis out of range";
    target.insert(target.begin() + a, 1);
  }
  return ctx.result(ctx.reshapeTo(*x, target));
}

static LogicalResult importSqueeze(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> shape = typeOf(*x).getShape();
  int64_t rank = shape.size();
  auto axesOrNone = ctx.axesOperand();
  if (failed(axesOrNone))
    return failure();
  std::optional<SmallVector<int64_t>> axes = *axesOrNone;
  SmallVector<int64_t> target;
  for (int64_t d = 0; d < rank; ++d) {
    bool drop = axes ? llvm::is_contained(*axes, d) ||
                           llvm::is_contained(*axes, d - rank)
                     : shape[d] == 1;
    if (drop && shape[d] != 1)
      return ctx.error() << ctx.describe() << " squeezes dimension " << d
                         << " of size " << shape[d];
    if (!drop)
      target.push_back(shape[d]);
  }
  return ctx.result(ctx.reshapeTo(*x, target));
}

static LogicalResult importTranspose(OpContext &ctx) {
  auto x = ctx.in(0);
  auto perm = ctx.intsAttr("perm");
  if (failed(x) || failed(perm))
    return failure();
  SmallVector<int64_t> p;
  if (*perm)
    p = **perm;
  else
    for (int64_t d = typeOf(*x).getRank() - 1; d >= 0; --d)
      p.push_back(d);
  auto created = ctx.createInferred<TransposeOp>(1, *x, p);
  if (failed(created))
    return ctx.importError();
  return ctx.result(*created);
}

/// Slice's optional input `i` (axes, steps) as integers, or `fallback`.
static FailureOr<SmallVector<int64_t>>
optionalConstIn(OpContext &ctx, size_t i, SmallVector<int64_t> fallback) {
  if (!ctx.hasInput(i))
    return fallback;
  return ctx.constIn(i);
}

static LogicalResult importSlice(OpContext &ctx) {
  auto x = ctx.in(0);
  auto starts = ctx.constIn(1), ends = ctx.constIn(2);
  if (failed(x) || failed(starts) || failed(ends))
    return failure();
  ArrayRef<int64_t> shape = typeOf(*x).getShape();
  int64_t rank = shape.size();
  SmallVector<int64_t> allAxes;
  for (size_t i = 0; i < starts->size(); ++i)
    allAxes.push_back(i);
  auto axes = optionalConstIn(ctx, 3, allAxes);
  if (failed(axes))
    return failure();
  auto steps = optionalConstIn(ctx, 4, SmallVector<int64_t>(starts->size(), 1));
  if (failed(steps))
    return failure();
  if (axes->size() != starts->size() || ends->size() != starts->size() ||
      steps->size() != starts->size())
    return ctx.error() << ctx.describe()
                       << ": starts, ends, axes and steps differ in length";
  SmallVector<int64_t> begin(rank, 0), limit(shape), stride(rank, 1);
  for (size_t k = 0; k < axes->size(); ++k) {
    int64_t a = normAxis((*axes)[k], rank);
    if (a < 0 || a >= rank)
      return ctx.error() << ctx.describe() << " axis " << (*axes)[k]
                         << " is out of range";
    if ((*steps)[k] <= 0)
      return ctx.error() << ctx.describe() << " step " << (*steps)[k]
                         << " is not supported (only positive steps)";
    int64_t dim = shape[a];
    auto clampIndex = [&](int64_t v) {
      if (v < 0)
        v = v <= INT64_MIN + dim ? 0 : v + dim;
      return std::clamp<int64_t>(v, 0, dim);
    };
    begin[a] = clampIndex((*starts)[k]);
    limit[a] = std::max(begin[a], clampIndex((*ends)[k]));
    stride[a] = (*steps)[k];
  }
  auto created = ctx.createInferred<SliceOp>(1, *x, begin, limit, stride);
  if (failed(created))
    return ctx.importError();
  return ctx.result(*created);
}

static LogicalResult importConcat(OpContext &ctx) {
  SmallVector<Value> operands;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    if (!ctx.inputs[i])
      continue;
    auto v = ctx.in(i);
    if (failed(v))
      return failure();
    operands.push_back(*v);
  }
  // Empty pieces (a 0-sized dimension) add nothing, unless all are empty.
  SmallVector<Value> nonEmpty;
  for (Value v : operands)
    if (typeOf(v).getNumElements() != 0)
      nonEmpty.push_back(v);
  if (!nonEmpty.empty())
    operands = nonEmpty;
  auto axis = ctx.intAttr("axis");
  if (failed(axis))
    return failure();
  if (!*axis)
    return ctx.error() << ctx.describe() << " needs an axis";
  if (operands.size() == 1)
    return ctx.result(operands[0]);
  auto created = ctx.createInferred<ConcatOp>(1, operands, **axis);
  if (failed(created))
    return ctx.importError();
  return ctx.result(*created);
}

/// Split's piece sizes along a dimension of `dim`: input 1, the `split`
/// attribute, or `num_outputs` (default: the node's outputs) even pieces.
static FailureOr<SmallVector<int64_t>> splitSizes(OpContext &ctx, int64_t dim) {
  if (ctx.hasInput(1))
    return ctx.constIn(1);
  auto s = ctx.intsAttr("split");
  if (failed(s))
    return failure();
  if (*s)
    return **s;
  int64_t n = ctx.numOutputs();
  auto numOutputs = ctx.intAttr("num_outputs");
  if (failed(numOutputs))
    return failure();
  n = numOutputs->value_or(n);
  if (n != ctx.numOutputs() || n < 1)
    return ctx.error() << ctx.describe() << " num_outputs " << n
                       << " does not match its " << ctx.numOutputs()
                       << " outputs";
  SmallVector<int64_t> sizes;
  int64_t piece = (dim + n - 1) / n;
  for (int64_t i = 0; i < n; ++i)
    sizes.push_back(std::max<int64_t>(0, std::min(piece, dim - i * piece)));
  return sizes;
}

static LogicalResult importSplit(OpContext &ctx) {
  auto x = ctx.in(0);
  auto axisAttr = ctx.intAttr("axis");
  if (failed(x) || failed(axisAttr))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  int64_t axis = normAxis(axisAttr->value_or(0), rank);
  if (axis < 0 || axis >= rank)
    return ctx.error() << ctx.describe() << " axis is out of range";
  auto sizes = splitSizes(ctx, typeOf(*x).getDimSize(axis));
  if (failed(sizes))
    return failure();
  if (static_cast<int64_t>(sizes->size()) != ctx.numOutputs())
    return ctx.error() << ctx.describe() << " splits into " << sizes->size()
                       << " pieces but has " << ctx.numOutputs() << " outputs";
  auto created = ctx.createInferred<SplitOp>(sizes->size(), *x, axis, *sizes);
  if (failed(created))
    return ctx.importError();
  for (int i = 0; i < ctx.numOutputs(); ++i)
    ctx.setOutput(i, created->getResult(i));
  return success();
}

static LogicalResult importExpand(OpContext &ctx) {
  auto x = ctx.in(0);
  auto target = ctx.constIn(1);
  if (failed(x) || failed(target))
    return failure();
  auto shape = broadcastShapes(typeOf(*x).getShape(), *target);
  if (failed(shape))
    return ctx.error() << ctx.describe() << " cannot expand " << x->getType()
                       << " to the requested shape";
  auto type = RankedTensorType::get(*shape, typeOf(*x).getElementType());
  if (type == x->getType())
    return ctx.result(*x);
  return ctx.result(ExpandOp::create(ctx.builder, ctx.loc, type, *x));
}

static LogicalResult importGather(OpContext &ctx) {
  auto data = ctx.in(0), indices = ctx.in(1);
  auto axis = ctx.intAttr("axis");
  if (failed(data) || failed(indices) || failed(axis))
    return failure();
  Type indexType = typeOf(*indices).getElementType();
  if (!indexType.isSignlessInteger() || indexType.isInteger(1))
    return ctx.error() << ctx.describe() << " needs integer indices";
  auto created =
      ctx.createInferred<GatherOp>(1, *data, *indices, axis->value_or(0));
  if (failed(created))
    return ctx.importError();
  return ctx.result(*created);
}

/// GatherElements: output element p is data at p with p[axis] replaced by
/// indices[p]. At run time each output element selects its index out of
/// the data's axis (indices == iota) and sums the one selected term.
static LogicalResult importGatherElements(OpContext &ctx) {
  auto data = ctx.in(0), indices = ctx.in(1);
  auto axisAttr = ctx.intAttr("axis");
  if (failed(data) || failed(indices) || failed(axisAttr))
    return failure();
  RankedTensorType dataType = typeOf(*data), indexType = typeOf(*indices);
  Type element = indexType.getElementType();
  if (!element.isSignlessInteger() || element.isInteger(1))
    return ctx.error() << ctx.describe() << " needs integer indices";
  if (dataType.getElementType().isInteger(1))
    return ctx.error() << ctx.describe() << " does not gather booleans";
  int64_t rank = dataType.getRank(), axis = axisAttr->value_or(0);
  if (rank < 1 || indexType.getRank() != rank || axis < -rank || axis >= rank)
    return ctx.error() << ctx.describe() << " needs indices of the data's rank "
                       << rank << " and an axis in range";
  axis = normAxis(axis, rank);
  int64_t n = dataType.getDimSize(axis);
  // The data's other dimensions are cut to the indices' extent.
  SmallVector<int64_t> starts(rank, 0), limits(indexType.getShape()),
      steps(rank, 1);
  limits[axis] = n;
  for (int64_t d = 0; d < rank; ++d)
    if (limits[d] > dataType.getDimSize(d))
      return ctx.error() << ctx.describe() << ": indices dimension " << d
                         << " exceeds the data's";
  Value cut = *data;
  if (ArrayRef<int64_t>(limits) != dataType.getShape())
    cut = SliceOp::create(ctx.builder, ctx.loc, *data, starts, limits, steps);
  // [indices..., n]: the data's axis last, a unit dimension in its place.
  SmallVector<int64_t> lined(indexType.getShape());
  lined[axis] = 1;
  lined.push_back(n);
  Value values = ctx.reshapeTo(ctx.moveAxis(cut, axis, rank - 1), lined);
  SmallVector<int64_t> column(indexType.getShape());
  column.push_back(1);
  SmallVector<APInt> iota;
  for (int64_t k = 0; k < n; ++k)
    iota.push_back(APInt(element.getIntOrFloatBitWidth(), k));
  Value range = ConstantOp::create(
      ctx.builder, ctx.loc,
      DenseElementsAttr::get(RankedTensorType::get({n}, element), iota));
  Value index = nonNegativeIndices(ctx.builder, ctx.loc, *indices, n);
  Value hit = CompareOp::create(ctx.builder, ctx.loc, ComparePredicate::eq,
                                ctx.reshapeTo(index, column), range);
  return ctx.result(ctx.sumWhere(hit, values));
}

/// With constant indices (masks built from position ranges), GatherND is a
/// Gather along the flattened leading dimensions.
static LogicalResult importGatherND(OpContext &ctx) {
  auto batchDims = ctx.intAttr("batch_dims");
  if (failed(batchDims))
    return failure();
  if (batchDims->value_or(0) != 0 || !ctx.inputs[1]->constant)
    return ctx.unsupported() << ": only batch_dims = 0 with constant indices";
  auto data = ctx.in(0);
  if (failed(data))
    return failure();
  const HostTensor &indices = *ctx.inputs[1]->constant;
  ArrayRef<int64_t> shape = typeOf(*data).getShape();
  int64_t k = indices.shape.empty() ? 0 : indices.shape.back();
  if (k < 1 || k > static_cast<int64_t>(shape.size()))
    return ctx.error() << ctx.describe() << ": index tuples of length " << k
                       << " do not fit data of rank " << shape.size();
  SmallVector<int64_t> flatShape(ArrayRef<int64_t>(indices.shape).drop_back());
  HostTensor flat = HostTensor::filled(ctx.builder.getI64Type(), flatShape);
  for (int64_t t = 0; t < flat.size(); ++t) {
    int64_t index = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t v = indices.getInt(t * k + j);
      if (v < -shape[j] || v >= shape[j])
        return ctx.error() << ctx.describe() << " index " << v
                           << " is out of range for dimension " << j;
      index = index * shape[j] + (v < 0 ? v + shape[j] : v);
    }
    flat.setInt(t, index);
  }
  int64_t leading = 1;
  for (int64_t j = 0; j < k; ++j)
    leading *= shape[j];
  SmallVector<int64_t> collapsed = {leading};
  llvm::append_range(collapsed, shape.drop_front(k));
  Value source = ctx.reshapeTo(*data, collapsed);
  Value indexValue = ConstantOp::create(ctx.builder, ctx.loc, flat.toAttr());
  auto gathered = ctx.createInferred<GatherOp>(1, source, indexValue, 0);
  if (failed(gathered))
    return ctx.importError();
  return ctx.result(*gathered);
}

void mlir::galv::onnx_import::registerDataMovementOps(OpTable &table) {
  table.add("Identity", importIdentity, 1);
  table.add("Dropout", importDropout, 1);
  table.add("Reshape", importReshape, 1);
  table.add("Flatten", importFlatten, 1);
  table.add("Unsqueeze", importUnsqueeze, 1);
  table.add("Squeeze", importSqueeze, 1);
  table.add("Transpose", importTranspose, 1);
  table.add("Slice", importSlice, 3);
  table.add("Concat", importConcat);
  table.add("Split", importSplit, 1);
  table.add("Expand", importExpand, 2);
  table.add("Gather", importGather, 2);
  table.add("GatherND", importGatherND, 2);
  table.add("GatherElements", importGatherElements, 2);
}

//===----------------------------------------------------------------------===//
// Folding on constants
//===----------------------------------------------------------------------===//

static bool foldIdentity(Folder &f) {
  f.out.push_back(*f.in[0]);
  return true;
}

static bool foldReshape(Folder &f) {
  const HostTensor &x = *f.in[0];
  SmallVector<int64_t> target = intsOf(*f.in[1]);
  bool allowZero = f.attrs.getInt("allowzero").value_or(0) != 0;
  int64_t known = 1, inferAt = -1;
  for (size_t d = 0; d < target.size(); ++d) {
    if (target[d] == 0 && !allowZero) {
      if (d >= x.shape.size())
        return f.fail("a 0 in the shape has no input dimension to copy");
      target[d] = x.shape[d];
    }
    if (target[d] < -1)
      return f.fail("negative dimension in the shape");
    if (target[d] == -1) {
      if (inferAt >= 0)
        return f.fail("more than one -1 in the shape");
      inferAt = d;
    } else {
      known *= target[d];
    }
  }
  if (inferAt >= 0) {
    if (known == 0 || x.size() % known != 0)
      return f.fail("cannot infer the -1 dimension");
    target[inferAt] = x.size() / known;
  }
  return f.reshapeTo(target);
}

static bool foldFlatten(Folder &f) {
  const HostTensor &x = *f.in[0];
  int64_t rank = x.shape.size();
  int64_t axis = f.attrs.getInt("axis").value_or(1);
  if (axis < -rank || axis > rank)
    return f.fail("Flatten axis out of range");
  axis = normAxis(axis, rank);
  int64_t outer = product(ArrayRef<int64_t>(x.shape).take_front(axis));
  return f.reshapeTo({outer, x.size() / std::max<int64_t>(outer, 1)});
}

static bool foldUnsqueeze(Folder &f) {
  auto axes = f.axesFromInputOrAttr(1);
  SmallVector<int64_t> shape(f.in[0]->shape);
  if (!axes)
    return f.fail("missing axes");
  int64_t rank = shape.size() + axes->size();
  SmallVector<int64_t> sorted;
  for (int64_t a : *axes) {
    if (!f.axisOk(a, rank))
      return false;
    sorted.push_back(a);
  }
  llvm::sort(sorted);
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    return f.fail("repeated axis");
  for (int64_t a : sorted)
    shape.insert(shape.begin() + a, 1);
  return f.reshapeTo(shape);
}

static bool foldSqueeze(Folder &f) {
  auto axes = f.axesFromInputOrAttr(1);
  ArrayRef<int64_t> shape = f.in[0]->shape;
  SmallVector<int64_t> kept;
  int64_t rank = shape.size();
  for (int64_t d = 0; d < rank; ++d) {
    bool drop = axes ? llvm::is_contained(*axes, d) ||
                           llvm::is_contained(*axes, d - rank)
                     : shape[d] == 1;
    if (drop && shape[d] != 1)
      return f.fail("squeezed dimension is not 1");
    if (!drop)
      kept.push_back(shape[d]);
  }
  return f.reshapeTo(kept);
}

static bool foldConcat(Folder &f) {
  FoldInputs in = f.in;
  int64_t rank = in[0]->shape.size();
  int64_t axis = f.attrs.getInt("axis").value_or(0);
  if (!f.axisOk(axis, rank))
    return false;
  SmallVector<int64_t> shape(in[0]->shape);
  shape[axis] = 0;
  for (const HostTensor *t : in) {
    if (static_cast<int64_t>(t->shape.size()) != rank)
      return f.fail("Concat inputs differ in rank");
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && t->shape[d] != in[0]->shape[d])
        return f.fail("Concat inputs differ outside the axis");
    shape[axis] += t->shape[axis];
  }
  if (!f.shapeOk(shape))
    return false;
  HostTensor r = HostTensor::filled(in[0]->elementType, shape);
  int64_t outer = product(ArrayRef<int64_t>(shape).take_front(axis));
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (const HostTensor *t : in) {
      int64_t chunk = t->size() / std::max<int64_t>(outer, 1);
      for (int64_t k = 0; k < chunk; ++k, ++pos) {
        if (r.isFloat())
          r.floats[pos] = t->getDouble(o * chunk + k);
        else
          r.ints[pos] = t->getInt(o * chunk + k);
      }
    }
  f.out.push_back(std::move(r));
  return true;
}

static bool foldGather(Folder &f) {
  const HostTensor &indices = *f.in[1];
  int64_t rank = f.in[0]->shape.size();
  int64_t axis = f.attrs.getInt("axis").value_or(0);
  if (!f.axisOk(axis, rank))
    return false;
  ArrayRef<int64_t> data = f.in[0]->shape;
  SmallVector<int64_t> shape(data.take_front(axis));
  llvm::append_range(shape, indices.shape);
  llvm::append_range(shape, data.drop_front(axis + 1));
  int64_t inner = product(data.drop_front(axis + 1));
  int64_t numIndices = indices.size();
  for (int64_t k = 0; k < numIndices; ++k) {
    int64_t idx = indices.getInt(k);
    if (idx < -data[axis] || idx >= data[axis])
      return f.fail("index " + Twine(idx) + " out of range");
  }
  return f.gatherElements(shape, [&](int64_t i) {
    int64_t innerPos = i % inner;
    int64_t rest = i / inner;
    int64_t k = rest % numIndices;
    int64_t outerPos = rest / numIndices;
    int64_t idx = indices.getInt(k);
    if (idx < 0)
      idx += data[axis];
    return (outerPos * data[axis] + idx) * inner + innerPos;
  });
}

static bool foldGatherElements(Folder &f) {
  const HostTensor &data = *f.in[0], &indices = *f.in[1];
  int64_t rank = data.shape.size();
  int64_t axis = f.attrs.getInt("axis").value_or(0);
  if (!f.axisOk(axis, rank))
    return false;
  if (static_cast<int64_t>(indices.shape.size()) != rank)
    return f.fail("GatherElements indices differ in rank from the data");
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && indices.shape[d] > data.shape[d])
      return f.fail("GatherElements indices exceed the data");
  int64_t n = data.shape[axis];
  for (int64_t k = 0; k < indices.size(); ++k)
    if (indices.getInt(k) < -n || indices.getInt(k) >= n)
      return f.fail("index " + Twine(indices.getInt(k)) + " out of range");
  return f.gatherElements(indices.shape, [&](int64_t i) {
    int64_t source = 0, stride = 1, rest = i;
    for (int64_t d = rank - 1; d >= 0; --d) {
      int64_t coord = rest % indices.shape[d];
      rest /= indices.shape[d];
      if (d == axis)
        coord =
            indices.getInt(i) < 0 ? indices.getInt(i) + n : indices.getInt(i);
      source += coord * stride;
      stride *= data.shape[d];
    }
    return source;
  });
}

static bool foldGatherND(Folder &f) {
  const HostTensor &data = *f.in[0], &indices = *f.in[1];
  int64_t batch = f.attrs.getInt("batch_dims").value_or(0);
  int64_t q = indices.shape.size(), r = data.shape.size();
  if (q < 1 || batch < 0 || batch >= std::min(q, r))
    return f.fail("bad GatherND ranks or batch_dims");
  int64_t k = indices.shape.back();
  if (k > r - batch)
    return f.fail("GatherND index tuples are longer than the data rank");
  // Output: indices.shape[:-1] + data.shape[batch + k:].
  SmallVector<int64_t> shape(ArrayRef<int64_t>(indices.shape).drop_back());
  ArrayRef<int64_t> sliceShape =
      ArrayRef<int64_t>(data.shape).drop_front(batch + k);
  llvm::append_range(shape, sliceShape);
  int64_t sliceSize = product(sliceShape);
  int64_t tuples = indices.size() / std::max<int64_t>(k, 1);
  int64_t tuplesPerBatch =
      tuples /
      std::max<int64_t>(
          product(ArrayRef<int64_t>(indices.shape).take_front(batch)), 1);
  SmallVector<int64_t> dataStrides = stridesOf(data.shape);
  for (int64_t t = 0; t < tuples; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t idx = indices.getInt(t * k + j), dim = data.shape[batch + j];
      if (idx < -dim || idx >= dim)
        return f.fail("GatherND index " + Twine(idx) + " out of range");
    }
  return f.gatherElements(shape, [&](int64_t i) {
    int64_t t = i / std::max<int64_t>(sliceSize, 1);
    int64_t within = i % std::max<int64_t>(sliceSize, 1);
    int64_t b = t / std::max<int64_t>(tuplesPerBatch, 1);
    SmallVector<int64_t> batchIndex;
    unflatten(b, ArrayRef<int64_t>(data.shape).take_front(batch), batchIndex);
    int64_t src = 0;
    for (int64_t d = 0; d < batch; ++d)
      src += batchIndex[d] * dataStrides[d];
    for (int64_t j = 0; j < k; ++j) {
      int64_t idx = indices.getInt(t * k + j), dim = data.shape[batch + j];
      src += (idx < 0 ? idx + dim : idx) * dataStrides[batch + j];
    }
    return src + within;
  });
}

static bool foldSlice(Folder &f) {
  FoldInputs in = f.in;
  SmallVector<int64_t> starts = intsOf(*in[1]), ends = intsOf(*in[2]);
  int64_t rank = in[0]->shape.size();
  SmallVector<int64_t> axes, steps;
  if (in.size() > 3 && in[3])
    axes = intsOf(*in[3]);
  else
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(i);
  if (in.size() > 4 && in[4])
    steps = intsOf(*in[4]);
  else
    steps.assign(starts.size(), 1);
  SmallVector<int64_t> begin(rank, 0), step(rank, 1), shape(in[0]->shape);
  if (axes.size() != starts.size() || ends.size() != starts.size() ||
      steps.size() != starts.size())
    return f.fail("starts, ends, axes and steps differ in length");
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t a = axes[k];
    if (!f.axisOk(a, rank))
      return false;
    int64_t dim = in[0]->shape[a];
    if (steps[k] == 0)
      return f.fail("slice step 0");
    auto clampIndex = [&](int64_t v, int64_t lo, int64_t hi) {
      if (v < 0)
        v = v <= INT64_MIN + dim ? lo : v + dim;
      return std::clamp(v, lo, hi);
    };
    int64_t s, e;
    if (steps[k] > 0) {
      s = clampIndex(starts[k], 0, dim);
      e = clampIndex(ends[k], 0, dim);
      shape[a] = e > s ? (e - s + steps[k] - 1) / steps[k] : 0;
    } else {
      s = clampIndex(starts[k], -1, dim - 1);
      e = clampIndex(ends[k], -1, dim - 1);
      shape[a] = s > e ? (s - e - steps[k] - 1) / -steps[k] : 0;
    }
    begin[a] = s;
    step[a] = steps[k];
  }
  SmallVector<int64_t> inStrides = stridesOf(in[0]->shape), index;
  return f.gatherElements(shape, [&](int64_t i) {
    unflatten(i, shape, index);
    int64_t src = 0;
    for (int64_t d = 0; d < rank; ++d)
      src += (begin[d] + index[d] * step[d]) * inStrides[d];
    return src;
  });
}

static bool foldTranspose(Folder &f) {
  ArrayRef<int64_t> inShape = f.in[0]->shape;
  int64_t rank = inShape.size();
  SmallVector<int64_t> perm;
  if (auto p = f.attrs.getInts("perm"))
    perm = *p;
  else
    for (int64_t d = rank - 1; d >= 0; --d)
      perm.push_back(d);
  SmallVector<int64_t> shape, inStrides = stridesOf(inShape), index;
  SmallVector<bool> seen(rank, false);
  if (static_cast<int64_t>(perm.size()) != rank)
    return f.fail("perm does not match the rank");
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p])
      return f.fail("perm is not a permutation");
    seen[p] = true;
    shape.push_back(inShape[p]);
  }
  return f.gatherElements(shape, [&](int64_t i) {
    unflatten(i, shape, index);
    int64_t src = 0;
    for (int64_t d = 0; d < rank; ++d)
      src += index[d] * inStrides[perm[d]];
    return src;
  });
}

static bool foldExpand(Folder &f) {
  ArrayRef<int64_t> inShape = f.in[0]->shape;
  SmallVector<int64_t> target = intsOf(*f.in[1]);
  SmallVector<ArrayRef<int64_t>> shapes = {inShape, target};
  auto shape = broadcast(shapes);
  if (!shape)
    return f.fail("cannot expand to the requested shape");
  // gatherElements asks for the elements in order.
  BroadcastCursor cursor(*shape, {inShape});
  return f.gatherElements(*shape, [&](int64_t) {
    int64_t src = cursor.source(0);
    cursor.next();
    return src;
  });
}

static bool foldTile(Folder &f) {
  ArrayRef<int64_t> inShape = f.in[0]->shape;
  SmallVector<int64_t> repeats = intsOf(*f.in[1]), shape, index;
  if (repeats.size() != inShape.size())
    return f.fail("Tile repeats do not match the rank");
  for (size_t d = 0; d < repeats.size(); ++d) {
    if (repeats[d] < 0 ||
        (repeats[d] > 0 && inShape[d] > Folder::kMaxFoldElements / repeats[d]))
      return f.fail("bad Tile repeats");
    shape.push_back(inShape[d] * repeats[d]);
  }
  SmallVector<int64_t> inStrides = stridesOf(inShape);
  return f.gatherElements(shape, [&](int64_t i) {
    unflatten(i, shape, index);
    int64_t src = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      src += (index[d] % inShape[d]) * inStrides[d];
    return src;
  });
}

/// Split's piece sizes on constants: input 1, `split`, or even pieces.
static bool foldSplitSizes(Folder &f, int64_t axis,
                           SmallVectorImpl<int64_t> &sizes) {
  if (f.in.size() > 1 && f.in[1]) {
    sizes = intsOf(*f.in[1]);
  } else if (auto s = f.attrs.getInts("split")) {
    sizes.assign(s->begin(), s->end());
  } else {
    int64_t n = f.attrs.getInt("num_outputs").value_or(f.attrs.numOutputs);
    int64_t dim = f.in[0]->shape[axis];
    if (n < 1)
      return f.fail("Split into no pieces");
    int64_t piece = (dim + n - 1) / n;
    for (int64_t k = 0; k < n; ++k)
      sizes.push_back(std::max<int64_t>(0, std::min(piece, dim - k * piece)));
  }
  int64_t total = 0;
  for (int64_t size : sizes) {
    if (size < 0)
      return f.fail("negative split size");
    total += size;
  }
  if (total != f.in[0]->shape[axis])
    return f.fail("split sizes do not add up to the dimension");
  return true;
}

static bool foldSplit(Folder &f) {
  const HostTensor &x = *f.in[0];
  int64_t rank = x.shape.size();
  int64_t axis = f.attrs.getInt("axis").value_or(0);
  if (!f.axisOk(axis, rank))
    return false;
  SmallVector<int64_t> sizes;
  if (!foldSplitSizes(f, axis, sizes))
    return false;
  int64_t offset = 0;
  SmallVector<int64_t> inStrides = stridesOf(x.shape), index;
  for (int64_t size : sizes) {
    SmallVector<int64_t> shape(x.shape);
    shape[axis] = size;
    HostTensor piece = HostTensor::filled(x.elementType, shape);
    for (int64_t i = 0; i < piece.size(); ++i) {
      unflatten(i, shape, index);
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += (index[d] + (d == axis ? offset : 0)) * inStrides[d];
      if (piece.isFloat())
        piece.floats[i] = x.floats[src];
      else
        piece.ints[i] = x.ints[src];
    }
    f.out.push_back(std::move(piece));
    offset += size;
  }
  return true;
}

void mlir::galv::onnx_import::registerDataMovementFolds(FoldTable &table) {
  table.add("Identity", foldIdentity);
  table.add("Reshape", foldReshape, 2);
  table.add("Flatten", foldFlatten);
  table.add("Unsqueeze", foldUnsqueeze);
  table.add("Squeeze", foldSqueeze);
  table.addVariadic("Concat", foldConcat);
  table.add("Gather", foldGather, 2);
  table.add("GatherND", foldGatherND, 2);
  table.add("GatherElements", foldGatherElements, 2);
  table.add("Slice", foldSlice, 3);
  table.add("Transpose", foldTranspose);
  table.add("Expand", foldExpand, 2);
  table.add("Tile", foldTile, 2);
  table.add("Split", foldSplit);
}
