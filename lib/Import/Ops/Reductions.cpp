//===- Reductions.cpp - ONNX reductions and normalisation to galv ---------===//
//
// ReduceSum/Mean/Max/Min/Prod, Softmax, LogSoftmax, ArgMax and
// LayerNormalization and CumSum: ops that work along axes. The reductions
// and CumSum are also evaluated on constants.
//
//===----------------------------------------------------------------------===//

#include "../FoldRules.h"
#include "../OpTable.h"

#include "Galv/Galv.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

/// Axes come from input 1 (opset 18) or the `axes` attribute (opset 13);
/// none reduces every axis, or is a no-op with noop_with_empty_axes.
template <ReduceKind kind> static LogicalResult importReduce(OpContext &ctx) {
  auto x = ctx.in(0);
  auto keep = ctx.intAttr("keepdims");
  auto noop = ctx.intAttr("noop_with_empty_axes");
  if (failed(x) || failed(keep) || failed(noop))
    return failure();
  auto axesOrNone = ctx.axesOperand();
  if (failed(axesOrNone))
    return failure();
  std::optional<SmallVector<int64_t>> axes = *axesOrNone;
  int64_t rank = typeOf(*x).getRank();
  SmallVector<int64_t> normalised;
  if (!axes || axes->empty()) {
    if (noop->value_or(0))
      return ctx.result(*x);
    for (int64_t d = 0; d < rank; ++d)
      normalised.push_back(d);
  } else {
    for (int64_t a : *axes)
      normalised.push_back(normAxis(a, rank));
    llvm::sort(normalised);
  }
  auto created = ctx.createInferred<ReduceOp>(1, kind, *x, normalised,
                                              keep->value_or(1) != 0);
  if (failed(created))
    return ctx.importError();
  return ctx.result(*created);
}

/// Softmax and LogSoftmax: one axis, default -1 (opset 13 onwards).
template <typename OpTy> static LogicalResult importSoftmax(OpContext &ctx) {
  auto x = ctx.in(0);
  auto axis = ctx.intAttr("axis");
  if (failed(x) || failed(axis))
    return failure();
  auto created = OpTy::create(ctx.builder, ctx.loc, *x, axis->value_or(-1));
  if (failed(ctx.checkResult(created)))
    return failure();
  return ctx.result(created);
}

/// CumSum on values known only at run time (RoBERTa's position ids come
/// from the input ids): line element j sums the elements i <= j (i < j
/// exclusive, mirrored in reverse) of an [n, n] spread of its line, so
/// O(n^2) work per line, meant for position computations.
static LogicalResult importCumSum(OpContext &ctx) {
  auto x = ctx.in(0);
  auto axisIn = ctx.constIn(1);
  auto exclusive = ctx.intAttr("exclusive"), reverse = ctx.intAttr("reverse");
  if (failed(x) || failed(axisIn) || failed(exclusive) || failed(reverse))
    return failure();
  RankedTensorType type = typeOf(*x);
  int64_t rank = type.getRank();
  if (axisIn->size() != 1 || rank < 1 || (*axisIn)[0] < -rank ||
      (*axisIn)[0] >= rank)
    return ctx.error() << ctx.describe() << " needs one axis in [" << -rank
                       << ", " << rank << ")";
  if (type.getElementType().isInteger(1))
    return ctx.error() << ctx.describe() << " does not sum booleans";
  int64_t axis = normAxis((*axisIn)[0], rank), n = type.getDimSize(axis);
  Value line = ctx.moveAxis(*x, axis, rank - 1);
  SmallVector<int64_t> shape(typeOf(line).getShape());
  shape.insert(shape.end() - 1, 1);
  SmallVector<int64_t> square(typeOf(line).getShape());
  square.push_back(n);
  Value spread =
      ExpandOp::create(ctx.builder, ctx.loc,
                       RankedTensorType::get(square, type.getElementType()),
                       ctx.reshapeTo(line, shape));
  bool excl = exclusive->value_or(0) != 0, rev = reverse->value_or(0) != 0;
  SmallVector<bool> mask;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < n; ++i)
      mask.push_back(rev ? (excl ? i > j : i >= j) : (excl ? i < j : i <= j));
  Value maskValue = ConstantOp::create(
      ctx.builder, ctx.loc,
      DenseElementsAttr::get(
          RankedTensorType::get({n, n}, ctx.builder.getI1Type()),
          ArrayRef<bool>(mask)));
  Value sums = ctx.sumWhere(maskValue, spread);
  return ctx.result(ctx.moveAxis(sums, rank - 1, axis));
}

static LogicalResult importArgMax(OpContext &ctx) {
  auto x = ctx.in(0);
  auto axis = ctx.intAttr("axis");
  auto keepdims = ctx.intAttr("keepdims");
  auto last = ctx.intAttr("select_last_index");
  if (failed(x) || failed(axis) || failed(keepdims) || failed(last))
    return failure();
  auto created =
      ArgMaxOp::create(ctx.builder, ctx.loc, *x, axis->value_or(0),
                       keepdims->value_or(1) != 0, last->value_or(0) != 0);
  if (failed(ctx.checkResult(created)))
    return failure();
  return ctx.result(created);
}

static LogicalResult importLayerNorm(OpContext &ctx) {
  for (int i = 1; i < ctx.numOutputs(); ++i)
    if (!ctx.node.output(i).empty())
      return ctx.error() << ctx.describe()
                         << ": the Mean and InvStdDev outputs are not "
                            "supported";
  auto x = ctx.in(0), scale = ctx.in(1);
  auto axis = ctx.intAttr("axis");
  auto eps = ctx.floatAttr("epsilon");
  if (failed(x) || failed(scale) || failed(axis) || failed(eps))
    return failure();
  int64_t rank = typeOf(*x).getRank();
  if (rank < 1)
    return ctx.error() << ctx.describe() << " needs an input of rank >= 1";
  if (normAxis(axis->value_or(-1), rank) != rank - 1)
    return ctx.error() << ctx.describe()
                       << ": only normalisation over the last dimension is "
                          "supported";
  Value bias;
  if (ctx.hasInput(2)) {
    auto b = ctx.in(2);
    if (failed(b))
      return failure();
    bias = *b;
  }
  // Scale and bias may arrive with leading 1s; the op wants [D].
  int64_t features = typeOf(*x).getShape().back();
  Value s = ctx.reshapeTo(*scale, {features});
  if (bias)
    bias = ctx.reshapeTo(bias, {features});
  auto created =
      LayerNormOp::create(ctx.builder, ctx.loc, *x, s, bias,
                          ctx.builder.getF64FloatAttr(eps->value_or(1e-5)));
  if (failed(ctx.checkResult(created)))
    return failure();
  return ctx.result(created);
}

void mlir::galv::onnx_import::registerReductionOps(OpTable &table) {
  table.add("ReduceSum", importReduce<ReduceKind::sum>, 1);
  table.add("ReduceMean", importReduce<ReduceKind::mean>, 1);
  table.add("ReduceMax", importReduce<ReduceKind::max>, 1);
  table.add("ReduceMin", importReduce<ReduceKind::min>, 1);
  table.add("ReduceProd", importReduce<ReduceKind::prod>, 1);
  table.add("Softmax", importSoftmax<SoftmaxOp>, 1);
  table.add("LogSoftmax", importSoftmax<LogSoftmaxOp>, 1);
  table.add("ArgMax", importArgMax, 1);
  table.add("CumSum", importCumSum, 2);
  table.add("LayerNormalization", importLayerNorm, 2);
}

//===----------------------------------------------------------------------===//
// Folding on constants
//===----------------------------------------------------------------------===//

template <ReduceKind kind> static bool foldReduce(Folder &f) {
  const HostTensor &x = *f.in[0];
  int64_t rank = x.shape.size();
  auto axes = f.axesFromInputOrAttr(1);
  bool keep = f.attrs.getInt("keepdims").value_or(1) != 0;
  bool noAxes = !axes || axes->empty();
  bool noop = f.attrs.getInt("noop_with_empty_axes").value_or(0) != 0;
  // No axes reduces everything, or nothing with noop_with_empty_axes.
  SmallVector<bool> reduced(rank, noAxes && !noop);
  for (int64_t a : axes.value_or(SmallVector<int64_t>{})) {
    if (!f.axisOk(a, rank))
      return false;
    reduced[a] = true;
  }
  SmallVector<int64_t> keptShape, outShape, index;
  for (int64_t d = 0; d < rank; ++d) {
    keptShape.push_back(reduced[d] ? 1 : x.shape[d]);
    if (!reduced[d] || keep)
      outShape.push_back(keptShape.back());
  }
  int64_t outCount = product(keptShape);
  std::vector<double> acc(outCount, kind == ReduceKind::prod ? 1.0 : 0.0);
  std::vector<int64_t> count(outCount, 0);
  for (int64_t i = 0; i < x.size(); ++i) {
    unflatten(i, x.shape, index);
    int64_t o = broadcastSource(index, keptShape);
    double v = x.getDouble(i);
    if (kind == ReduceKind::max)
      acc[o] = count[o] ? std::max(acc[o], v) : v;
    else if (kind == ReduceKind::min)
      acc[o] = count[o] ? std::min(acc[o], v) : v;
    else if (kind == ReduceKind::prod)
      acc[o] *= v;
    else
      acc[o] += v;
    ++count[o];
  }
  HostTensor r = HostTensor::filled(x.elementType, outShape);
  for (int64_t o = 0; o < outCount; ++o)
    r.set(o, kind == ReduceKind::mean ? acc[o] / std::max<int64_t>(count[o], 1)
                                      : acc[o]);
  f.out.push_back(std::move(r));
  return true;
}

static bool foldCumSum(Folder &f) {
  const HostTensor &x = *f.in[0];
  int64_t rank = x.shape.size();
  if (f.in[1]->size() != 1)
    return f.fail("CumSum axis must be one value");
  int64_t axis = f.in[1]->getInt(0);
  if (!f.axisOk(axis, rank))
    return false;
  bool exclusive = f.attrs.getInt("exclusive").value_or(0) != 0;
  bool reverse = f.attrs.getInt("reverse").value_or(0) != 0;
  HostTensor r = x;
  int64_t dim = r.shape[axis];
  int64_t inner = product(ArrayRef<int64_t>(r.shape).drop_front(axis + 1));
  int64_t outer = r.size() / std::max<int64_t>(dim * inner, 1);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < dim; ++j) {
        int64_t jj = reverse ? dim - 1 - j : j;
        int64_t idx = (o * dim + jj) * inner + i;
        double v = x.getDouble(idx);
        if (exclusive) {
          r.set(idx, sum);
          sum += v;
        } else {
          sum += v;
          r.set(idx, sum);
        }
      }
    }
  f.out.push_back(std::move(r));
  return true;
}

void mlir::galv::onnx_import::registerReductionFolds(FoldTable &table) {
  table.add("ReduceSum", foldReduce<ReduceKind::sum>);
  table.add("ReduceMean", foldReduce<ReduceKind::mean>);
  table.add("ReduceMax", foldReduce<ReduceKind::max>);
  table.add("ReduceMin", foldReduce<ReduceKind::min>);
  table.add("ReduceProd", foldReduce<ReduceKind::prod>);
  table.add("CumSum", foldCumSum, 2);
}
