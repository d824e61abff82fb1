//===- Contractions.cpp - ONNX MatMul and Gemm to galv --------------------===//

#include "../FoldRules.h"
#include "../OpTable.h"

#include "Galv/Galv.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

/// numpy matmul: 1-D operands become matrices for galv.matmul, and the unit
/// dimensions they gained are dropped from the result.
static LogicalResult importMatMul(OpContext &ctx) {
  auto a = ctx.in(0), b = ctx.in(1);
  if (failed(a) || failed(b))
    return failure();
  Value lhs = *a, rhs = *b;
  bool vecL = typeOf(lhs).getRank() == 1, vecR = typeOf(rhs).getRank() == 1;
  if (vecL)
    lhs = ctx.reshapeTo(lhs, {1, typeOf(lhs).getDimSize(0)});
  if (vecR)
    rhs = ctx.reshapeTo(rhs, {typeOf(rhs).getDimSize(0), 1});
  if (failed(ctx.checkInferable<MatmulOp>({lhs, rhs})))
    return failure();
  Value r = MatmulOp::create(ctx.builder, ctx.loc, lhs, rhs);
  SmallVector<int64_t> shape(typeOf(r).getShape());
  if (vecR)
    shape.pop_back();
  if (vecL)
    shape.erase(shape.end() - (vecR ? 1 : 2));
  return ctx.result(ctx.reshapeTo(r, shape));
}

/// alpha * (A' B') + beta * C. A linear op when the bias fits its form, with
/// the scaling and a broadcast bias applied after it otherwise.
static LogicalResult importGemm(OpContext &ctx) {
  auto a = ctx.in(0), b = ctx.in(1);
  auto alpha = ctx.floatAttr("alpha");
  auto beta = ctx.floatAttr("beta");
  auto transA = ctx.intAttr("transA");
  auto transB = ctx.intAttr("transB");
  if (failed(a) || failed(b) || failed(alpha) || failed(beta) ||
      failed(transA) || failed(transB))
    return failure();
  Value x = *a;
  if (transA->value_or(0)) {
    auto transposed =
        ctx.createInferred<TransposeOp>(1, x, ArrayRef<int64_t>{1, 0});
    if (failed(transposed))
      return ctx.importError();
    x = *transposed;
  }
  Value bias;
  if (ctx.hasInput(2)) {
    auto c = ctx.in(2);
    if (failed(c))
      return failure();
    bias = *c;
  }
  auto layout =
      transB->value_or(0) ? WeightLayout::out_in : WeightLayout::in_out;
  double alphaValue = alpha->value_or(1.0), betaValue = beta->value_or(1.0);
  Type element = typeOf(x).getElementType();
  auto scalar = [&](double v) -> Value {
    HostTensor t = HostTensor::filled(element, {});
    t.set(0, v);
    return ConstantOp::create(ctx.builder, ctx.loc, t.toAttr());
  };
  // The linear form needs a [N] bias with beta = 1; scale otherwise.
  int64_t outFeatures =
      typeOf(*b).getRank() == 2
          ? typeOf(*b).getDimSize(layout == WeightLayout::out_in ? 0 : 1)
          : -1;
  bool biasFits = bias &&
                  typeOf(bias).getShape() == ArrayRef<int64_t>{outFeatures} &&
                  betaValue == 1.0 && alphaValue == 1.0;
  auto linear =
      ctx.createInferred<LinearOp>(1, x, *b, biasFits ? bias : Value(), layout);
  if (failed(linear))
    return ctx.importError();
  Value r = *linear;
  if (alphaValue != 1.0) {
    auto scaled = ctx.createInferred<MulOp>(1, r, scalar(alphaValue));
    if (failed(scaled))
      return ctx.importError();
    r = *scaled;
  }
  if (bias && !biasFits) {
    Value scaledBias = bias;
    if (betaValue != 1.0) {
      auto scaled = ctx.createInferred<MulOp>(1, bias, scalar(betaValue));
      if (failed(scaled))
        return ctx.importError();
      scaledBias = *scaled;
    }
    auto sum = ctx.createInferred<AddOp>(1, r, scaledBias);
    if (failed(sum))
      return ctx.importError();
    r = *sum;
  }
  return ctx.result(r);
}

void mlir::galv::onnx_import::registerContractionOps(OpTable &table) {
  table.add("MatMul", importMatMul, 2);
  table.add("Gemm", importGemm, 2);
}

//===----------------------------------------------------------------------===//
// Folding on constants
//===----------------------------------------------------------------------===//

/// numpy matmul: 1-D operands gain (and then lose) a unit dimension, and
/// batch dimensions broadcast.
static bool foldMatMul(Folder &f) {
  HostTensor a = *f.in[0], b = *f.in[1];
  bool vecA = a.shape.size() == 1, vecB = b.shape.size() == 1;
  if (a.shape.empty() || b.shape.empty())
    return f.fail("MatMul of a scalar");
  if (vecA)
    a.shape.insert(a.shape.begin(), 1);
  if (vecB)
    b.shape.push_back(1);
  int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back();
  int64_t n = b.shape.back();
  if (b.shape[b.shape.size() - 2] != k)
    return f.fail("MatMul contracting dimensions differ");
  SmallVector<ArrayRef<int64_t>> batches = {
      ArrayRef<int64_t>(a.shape).drop_back(2),
      ArrayRef<int64_t>(b.shape).drop_back(2)};
  auto batch = broadcast(batches);
  if (!batch)
    return f.fail("MatMul batch dimensions do not broadcast");
  SmallVector<int64_t> shape(*batch);
  shape.push_back(m);
  shape.push_back(n);
  if (!f.shapeOk(shape))
    return false;
  HostTensor r = HostTensor::filled(a.elementType, shape);
  int64_t batchCount = product(*batch);
  SmallVector<int64_t> index;
  for (int64_t p = 0; p < batchCount; ++p) {
    unflatten(p, *batch, index);
    int64_t offA = broadcastSource(index, batches[0]) * m * k;
    int64_t offB = broadcastSource(index, batches[1]) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t q = 0; q < k; ++q)
          sum += a.getDouble(offA + i * k + q) * b.getDouble(offB + q * n + j);
        r.set((p * m + i) * n + j, sum);
      }
  }
  if (vecB)
    r.shape.pop_back();
  if (vecA)
    r.shape.erase(r.shape.end() - (vecB ? 1 : 2));
  f.out.push_back(std::move(r));
  return true;
}

void mlir::galv::onnx_import::registerContractionFolds(FoldTable &table) {
  table.add("MatMul", foldMatMul, 2);
}
