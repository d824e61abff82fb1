//===- Reductions.cpp - ONNX reductions and normalisation to galv ---------===//
//
// ReduceSum/Mean/Max/Min/Prod, Softmax, LogSoftmax, ArgMax and
// LayerNormalization: ops that work along axes.
//
//===----------------------------------------------------------------------===//

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
  table.add("LayerNormalization", importLayerNorm, 2);
}
