//===- Elementwise.cpp - ONNX elementwise ops to galv ---------------------===//
//
// Arithmetic, logic, comparisons and activations, with numpy broadcasting
// (the galv ops infer the broadcast shape), plus Cast, Clip and Where; and
// their rules for evaluating them on constants (with Mod, Cos, Sin, Floor,
// Ceil and Trilu, which are only ever folded).
//
//===----------------------------------------------------------------------===//

#include "../FoldRules.h"
#include "../OpTable.h"

#include "Galv/Galv.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <functional>

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

/// IsNaN(x) is x != x (Hugging Face's attention masks guard with it).
static LogicalResult importIsNaN(OpContext &ctx) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  if (!isa<FloatType>(typeOf(*x).getElementType()))
    return ctx.error() << ctx.describe() << " needs a floating-point input";
  return ctx.result(
      CompareOp::create(ctx.builder, ctx.loc, ComparePredicate::ne, *x, *x));
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

/// Input 0 cast to `element` (itself when it has that type already).
static LogicalResult castTo(OpContext &ctx, Type element) {
  auto x = ctx.in(0);
  if (failed(x))
    return failure();
  auto type = RankedTensorType::get(typeOf(*x).getShape(), element);
  if (type == x->getType())
    return ctx.result(*x);
  return ctx.result(CastOp::create(ctx.builder, ctx.loc, type, *x));
}

static LogicalResult importCast(OpContext &ctx) {
  auto to = ctx.intAttr("to");
  if (failed(to))
    return failure();
  Type element = to->has_value() ? ctx.elementType(**to) : Type();
  if (!element)
    return ctx.error() << ctx.describe() << " casts to an unsupported type";
  return castTo(ctx, element);
}

/// CastLike(x, like) casts to like's element type; like's values are never
/// read (nor materialized).
static LogicalResult importCastLike(OpContext &ctx) {
  return castTo(ctx, ctx.inputs[1]->type.getElementType());
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
  table.add("IsNaN", importIsNaN, 1);
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
  table.add("CastLike", importCastLike, 2);
  table.add("Clip", importClip, 1);
  table.add("Where", importWhere, 3);
}

//===----------------------------------------------------------------------===//
// Folding on constants
//===----------------------------------------------------------------------===//

using F = double;
using I = int64_t;

static bool foldDiv(Folder &f) {
  for (int64_t i = 0; !f.in[1]->isFloat() && i < f.in[1]->size(); ++i)
    if (f.in[1]->ints[i] == 0)
      return f.fail("integer division by zero");
  // b = -1 negates (with wrap-around: INT64_MIN / -1 would trap).
  return f.binary([](F a, F b) { return a / b; },
                  [](I a, I b) {
                    return b == -1
                               ? static_cast<I>(0 - static_cast<uint64_t>(a))
                               : a / b;
                  });
}

static bool foldMod(Folder &f) {
  for (int64_t i = 0; !f.in[1]->isFloat() && i < f.in[1]->size(); ++i)
    if (f.in[1]->ints[i] == 0)
      return f.fail("integer modulo by zero");
  // Integer Mod takes the sign of the divisor, like Python, unless
  // fmod = 1 asks for C's (the dividend's) sign; floats need fmod = 1.
  bool cStyle = f.attrs.getInt("fmod").value_or(0) != 0;
  return f.binary([](F a, F b) { return std::fmod(a, b); },
                  [cStyle](I a, I b) {
                    I r = b == -1 ? 0 : a % b;
                    if (cStyle)
                      return r;
                    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
                  });
}

static bool foldPow(Folder &f) {
  return f.elementwise(
      f.in[0]->elementType, [](ArrayRef<F> a) { return std::pow(a[0], a[1]); },
      [](ArrayRef<I> a) {
        return static_cast<I>(
            std::pow(static_cast<F>(a[0]), static_cast<F>(a[1])));
      },
      2);
}

template <bool isMax> static bool foldMaxMin(Folder &f) {
  return f.elementwise(
      f.in[0]->elementType,
      [](ArrayRef<F> a) {
        F r = a[0];
        for (F v : a.drop_front())
          r = isMax ? std::max(r, v) : std::min(r, v);
        return r;
      },
      [](ArrayRef<I> a) {
        I r = a[0];
        for (I v : a.drop_front())
          r = isMax ? std::max(r, v) : std::min(r, v);
        return r;
      });
}

static bool foldWhere(Folder &f) {
  FoldInputs in = f.in;
  SmallVector<ArrayRef<int64_t>> shapes = {in[0]->shape, in[1]->shape,
                                           in[2]->shape};
  auto shape = broadcast(shapes);
  if (!shape)
    return f.fail("operand shapes do not broadcast");
  // The result takes one branch's storage: both must have its type.
  if (in[1]->elementType != in[2]->elementType)
    return f.fail("the two branches have different element types");
  HostTensor r = HostTensor::filled(in[1]->elementType, *shape);
  BroadcastCursor cursor(*shape, shapes);
  for (int64_t i = 0; i < r.size(); ++i, cursor.next()) {
    size_t branch = in[0]->getInt(cursor.source(0)) ? 1 : 2;
    const HostTensor *pick = in[branch];
    int64_t src = cursor.source(branch);
    if (r.isFloat())
      r.floats[i] = pick->floats[src];
    else
      r.ints[i] = pick->ints[src];
  }
  f.out.push_back(std::move(r));
  return true;
}

/// Input 0 converted to element type `to`.
static bool castHost(Folder &f, Type to) {
  const HostTensor &x = *f.in[0];
  HostTensor r = HostTensor::filled(to, x.shape);
  for (int64_t i = 0; i < r.size(); ++i) {
    if (x.isFloat())
      r.set(i, x.floats[i]);
    else
      r.setInt(i, x.ints[i]);
  }
  f.out.push_back(std::move(r));
  return true;
}

static bool foldCast(Folder &f) {
  Type to = f.attrs.getElementType("to");
  if (!to)
    return f.fail("unsupported target type");
  return castHost(f, to);
}

static bool foldCastLike(Folder &f) {
  return castHost(f, f.in[1]->elementType);
}

/// The upper (or lower) triangle of the last two dimensions, from diagonal
/// k; the rest zeroed.
static bool foldTrilu(Folder &f) {
  FoldInputs in = f.in;
  if (in.size() > 1 && in[1] && in[1]->size() != 1)
    return f.fail("Trilu k must be one value");
  int64_t k = in.size() > 1 && in[1] ? in[1]->getInt(0) : 0;
  bool upper = f.attrs.getInt("upper").value_or(1) != 0;
  int64_t rank = in[0]->shape.size();
  if (rank < 2)
    return f.fail("Trilu needs rank >= 2");
  HostTensor r = *in[0];
  int64_t rows = r.shape[rank - 2], cols = r.shape[rank - 1];
  for (int64_t i = 0; i < r.size(); ++i) {
    int64_t col = i % cols, row = (i / cols) % rows;
    bool keep = upper ? col - row >= k : col - row <= k;
    if (!keep)
      r.setInt(i, 0);
  }
  f.out.push_back(std::move(r));
  return true;
}

/// A binary op through a std:: function object (std::plus<>, ...) that
/// works on doubles and int64s alike; comparisons and logic give i1.
template <typename Fn, bool boolResult = false>
static bool foldBinary(Folder &f) {
  return f.binary(Fn(), Fn(), boolResult);
}

void mlir::galv::onnx_import::registerElementwiseFolds(FoldTable &table) {
  table.add("Add", foldBinary<std::plus<>>, 2);
  table.add("Sub", foldBinary<std::minus<>>, 2);
  table.add("Mul", foldBinary<std::multiplies<>>, 2);
  table.add("Div", foldDiv, 2);
  table.add("Mod", foldMod, 2);
  table.add("Pow", foldPow, 2);
  table.addVariadic("Max", foldMaxMin</*isMax=*/true>);
  table.addVariadic("Min", foldMaxMin</*isMax=*/false>);
  table.add("Equal", foldBinary<std::equal_to<>, true>, 2);
  table.add("Less", foldBinary<std::less<>, true>, 2);
  table.add("LessOrEqual", foldBinary<std::less_equal<>, true>, 2);
  table.add("Greater", foldBinary<std::greater<>, true>, 2);
  table.add("GreaterOrEqual", foldBinary<std::greater_equal<>, true>, 2);
  table.add("And", foldBinary<std::logical_and<>, true>, 2);
  table.add("Or", foldBinary<std::logical_or<>, true>, 2);
  table.add("IsNaN", [](Folder &f) {
    return f.elementwise(
        IntegerType::get(f.context, 1),
        [](ArrayRef<F> a) -> F { return std::isnan(a[0]); },
        [](ArrayRef<I>) -> I { return 0; }, 1);
  });
  // Unary ops on any element type.
  table.add("Not", [](Folder &f) {
    return f.elementwise(
        f.in[0]->elementType, [](ArrayRef<F> a) -> F { return !a[0]; },
        [](ArrayRef<I> a) -> I { return !a[0]; }, 1);
  });
  table.add("Neg", [](Folder &f) {
    return f.elementwise(
        f.in[0]->elementType, [](ArrayRef<F> a) { return -a[0]; },
        [](ArrayRef<I> a) { return -a[0]; }, 1);
  });
  table.add("Abs", [](Folder &f) {
    return f.elementwise(
        f.in[0]->elementType, [](ArrayRef<F> a) { return std::fabs(a[0]); },
        [](ArrayRef<I> a) { return a[0] < 0 ? -a[0] : a[0]; }, 1);
  });
  // Unary ops on floating-point inputs.
  table.add("Sqrt", [](Folder &f) {
    return f.unary([](F a) { return std::sqrt(a); });
  });
  table.add("Reciprocal",
            [](Folder &f) { return f.unary([](F a) { return 1.0 / a; }); });
  table.add("Exp",
            [](Folder &f) { return f.unary([](F a) { return std::exp(a); }); });
  table.add("Log",
            [](Folder &f) { return f.unary([](F a) { return std::log(a); }); });
  table.add("Cos",
            [](Folder &f) { return f.unary([](F a) { return std::cos(a); }); });
  table.add("Sin",
            [](Folder &f) { return f.unary([](F a) { return std::sin(a); }); });
  table.add("Tanh", [](Folder &f) {
    return f.unary([](F a) { return std::tanh(a); });
  });
  table.add("Erf",
            [](Folder &f) { return f.unary([](F a) { return std::erf(a); }); });
  table.add("Sigmoid", [](Folder &f) {
    return f.unary([](F a) { return 1.0 / (1.0 + std::exp(-a)); });
  });
  table.add("Relu", [](Folder &f) {
    return f.unary([](F a) { return a > 0 ? a : 0.0; });
  });
  table.add("Floor", [](Folder &f) {
    return f.unary([](F a) { return std::floor(a); });
  });
  table.add("Ceil", [](Folder &f) {
    return f.unary([](F a) { return std::ceil(a); });
  });
  table.add("Where", foldWhere, 3);
  table.add("Cast", foldCast);
  table.add("CastLike", foldCastLike, 2);
  table.add("Trilu", foldTrilu);
}
