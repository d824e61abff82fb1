//===- Elementwise.cpp - ONNX elementwise ops to galv ---------------------===//
//
// Arithmetic, logic, comparisons and activations, with numpy broadcasting
// (the galv ops infer the broadcast shape), plus Cast, Clip and Where.
//
//===----------------------------------------------------------------------===//

#include "../OpTable.h"

#include "Galv/Galv.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

/// A binary op on two inputs of one element type. Pow alone takes an
/// exponent of another type (`castExponent`), cast to the base's type.
template <typename OpTy, bool castExponent = false>
static LogicalResult importBinary(OpContext &ctx) {
  auto lhs = ctx.in(0), rhs = ctx.in(1);
  if (failed(lhs) || failed(rhs))
    return failure();
  Value r = *rhs;
  Type lhsElement = typeOf(*lhs).getElementType();
  if (lhsElement != typeOf(r).getElementType()) {
    if (!castExponent)
      return ctx.error() << ctx.describe() << " mixes element types "
                         << lhsElement << " and " << typeOf(r).getElementType();
    r = CastOp::create(ctx.builder, ctx.loc,
                       RankedTensorType::get(typeOf(r).getShape(), lhsElement),
                       r);
  }
  if (failed(ctx.checkInferable<OpTy>({*lhs, r})))
    return failure();
  return ctx.result(OpTy::create(ctx.builder, ctx.loc, *lhs, r));
}

/// Max and Min take any number of inputs: a chain of binary ops.
template <typename OpTy> static LogicalResult importVariadic(OpContext &ctx) {
  if (ctx.inputs.empty())
    return ctx.error() << ctx.describe() << " needs inputs";
  auto acc = ctx.in(0);
  if (failed(acc))
    return failure();
  Value v = *acc;
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    auto next = ctx.in(i);
    if (failed(next))
      return failure();
    // Max and Min share their shape rule; MaxOp's checks both.
    if (failed(ctx.checkInferable<MaxOp>({v, *next})))
      return failure();
    v = OpTy::create(ctx.builder, ctx.loc, v, *next);
  }
  return ctx.result(v);
}

template <ComparePredicate predicate>
static LogicalResult importCompare(OpContext &ctx) {
  auto lhs = ctx.in(0), rhs = ctx.in(1);
  if (failed(lhs) || failed(rhs))
    return failure();
  if (failed(ctx.checkInferable<CompareOp>({*lhs, *rhs})))
    return failure();
  return ctx.result(
      CompareOp::create(ctx.builder, ctx.loc, predicate, *lhs, *rhs));
}

template <typename OpTy> static LogicalResult importUnary(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  auto created = OpTy::create(ctx.builder, ctx.loc, *x);
  if (failed(ctx.checkResult(created)))
    return failure();
  return ctx.result(created);
}

static LogicalResult importGelu(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  const onnx::AttributeProto *approx = ctx.findAttr("approximate");
  GeluApproximation kind = GeluApproximation::none;
  if (approx && approx->s() == "tanh")
    kind = GeluApproximation::tanh;
  else if (approx && approx->s() != "none")
    return ctx.error() << ctx.describe() << " has unknown approximate '"
                       << approx->s() << "'";
  return ctx.result(GeluOp::create(ctx.builder, ctx.loc, *x, kind));
}

static LogicalResult importCast(OpContext &ctx) {
  auto x = ctx.in(0);
  auto to = ctx.intAttr("to");
  if (failed(x) || failed(to))
    return failure();
  Type element = to->has_value() ? ctx.elementType(**to) : Type();
  if (!element)
    return ctx.error() << ctx.describe() << " casts to an unsupported type";
  auto type = RankedTensorType::get(typeOf(*x).getShape(), element);
  if (type == x->getType())
    return ctx.result(*x);
  return ctx.result(CastOp::create(ctx.builder, ctx.loc, type, *x));
}

/// Clip(x, min, max) with optional bounds: Max with min, then Min with max.
static LogicalResult importClip(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  Value v = *x;
  for (size_t i = 1; i < ctx.inputs.size() && i < 3; ++i) {
    if (!ctx.inputs[i])
      continue;
    auto bound = ctx.in(i);
    if (failed(bound))
      return failure();
    Value clipped;
    if (i == 1) {
      if (auto op = ctx.createInferred<MaxOp>(1, v, *bound); succeeded(op))
        clipped = *op;
    } else if (auto op = ctx.createInferred<MinOp>(1, v, *bound);
               succeeded(op)) {
      clipped = *op;
    }
    if (!clipped)
      return ctx.importError();
    v = clipped;
  }
  return ctx.result(v);
}

static LogicalResult importWhere(OpContext &ctx) {
  auto c = ctx.in(0), a = ctx.in(1), b = ctx.in(2);
  if (failed(c) || failed(a) || failed(b))
    return failure();
  if (!typeOf(*c).getElementType().isInteger(1))
    return ctx.error() << ctx.describe() << " condition must be bool, got "
                       << typeOf(*c).getElementType();
  if (failed(ctx.checkInferable<WhereOp>({*c, *a, *b})))
    return failure();
  return ctx.result(WhereOp::create(ctx.builder, ctx.loc, *c, *a, *b));
}

void mlir::galv::onnx_import::registerElementwiseOps(OpTable &table) {
  table.add("Add", importBinary<AddOp>, 2);
  table.add("Sub", importBinary<SubOp>, 2);
  table.add("Mul", importBinary<MulOp>, 2);
  table.add("Div", importBinary<DivOp>, 2);
  table.add("Pow", importBinary<PowOp, /*castExponent=*/true>, 2);
  table.add("And", importBinary<AndOp>, 2);
  table.add("Or", importBinary<OrOp>, 2);
  table.add("Max", importVariadic<MaxOp>);
  table.add("Min", importVariadic<MinOp>);
  table.add("Equal", importCompare<ComparePredicate::eq>, 2);
  table.add("Less", importCompare<ComparePredicate::lt>, 2);
  table.add("LessOrEqual", importCompare<ComparePredicate::le>, 2);
  table.add("Greater", importCompare<ComparePredicate::gt>, 2);
  table.add("GreaterOrEqual", importCompare<ComparePredicate::ge>, 2);
  table.add("Neg", importUnary<NegOp>, 1);
  table.add("Not", importUnary<NotOp>, 1);
  table.add("Abs", importUnary<AbsOp>, 1);
  table.add("Exp", importUnary<ExpOp>, 1);
  table.add("Log", importUnary<LogOp>, 1);
  table.add("Sqrt", importUnary<SqrtOp>, 1);
  table.add("Reciprocal", importUnary<ReciprocalOp>, 1);
  table.add("Tanh", importUnary<TanhOp>, 1);
  table.add("Erf", importUnary<ErfOp>, 1);
  table.add("Sigmoid", importUnary<SigmoidOp>, 1);
  table.add("Relu", importUnary<ReluOp>, 1);
  table.add("Gelu", importGelu, 1);
  table.add("Cast", importCast, 1);
  table.add("Clip", importClip, 1);
  table.add("Where", importWhere, 3);
}
