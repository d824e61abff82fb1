//===- Autodiff.cpp - reverse-mode differentiation of @loss ---------------===//
//
// Copies @loss into @loss_grad, then walks the forward ops backwards, turning
// each op's output adjoint into adjoints of the operands that depend on
// trainable parameters, with galv ops only (so every backend that runs the
// forward ops runs the backward ones). Gradients of broadcast operands are
// summed back to their shapes; several uses of a value add their adjoints.
//
//===----------------------------------------------------------------------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

namespace mlir::galv {
#define GEN_PASS_DEF_AUTODIFF
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

class Differentiator {
public:
  Differentiator(OpBuilder &builder, Location loc) : b(builder), loc(loc) {}

  /// Emits the backward pass of `ops` (in forward order) seeded with
  /// d(loss)/d(loss) = 1; fills `paramGrads` by parameter name.
  LogicalResult run(ArrayRef<Operation *> ops, Value loss,
                    llvm::StringMap<Value> &paramGrads);

private:
  // Small builders.
  Value splat(double value, RankedTensorType like) {
    auto type = RankedTensorType::get({}, like.getElementType());
    return ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(type,
                               b.getFloatAttr(like.getElementType(), value)));
  }
  Value zerosLike(RankedTensorType type) {
    return ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(type, b.getFloatAttr(type.getElementType(), 0)));
  }
  Value add(Value x, Value y) { return AddOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return SubOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return MulOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return DivOp::create(b, loc, x, y); }
  Value scale(Value x, double c) { return mul(x, splat(c, typeOf(x))); }
  Value reshape(Value x, ArrayRef<int64_t> shape) {
    auto type = RankedTensorType::get(shape, typeOf(x).getElementType());
    return type == x.getType() ? x : Value(ReshapeOp::create(b, loc, type, x));
  }
  Value transposeLast2(Value x) {
    int64_t r = typeOf(x).getRank();
    SmallVector<int64_t> perm;
    for (int64_t d = 0; d < r; ++d)
      perm.push_back(d);
    std::swap(perm[r - 1], perm[r - 2]);
    return TransposeOp::create(b, loc, x, perm);
  }
  Value sumLast(Value x, bool keep) {
    int64_t r = typeOf(x).getRank();
    return ReduceOp::create(b, loc, ReduceKind::sum, x,
                            ArrayRef<int64_t>{r - 1}, keep);
  }
  Value meanLast(Value x) {
    int64_t r = typeOf(x).getRank();
    return ReduceOp::create(b, loc, ReduceKind::mean, x,
                            ArrayRef<int64_t>{r - 1}, true);
  }
  Value asFloat(Value mask, RankedTensorType like) {
    return CastOp::create(
        b, loc,
        RankedTensorType::get(typeOf(mask).getShape(), like.getElementType()),
        mask);
  }
  /// Sums `g` down to `target`'s shape (numpy broadcasting in reverse).
  Value unbroadcast(Value g, RankedTensorType target);
  /// one_hot(ids) as [M, V] floats, with M = ids' element count.
  Value oneHot(Value ids, int64_t classes, Type element);

  bool needs(Value v) {
    auto it = regatheredFrom.find(v);
    return requiresGrad.contains(it != regatheredFrom.end() ? it->second : v);
  }
  void accumulate(Value v, Value g) {
    // A parameter gathered again for the backward pass collects its
    // gradient on the forward gather.
    if (auto it = regatheredFrom.find(v); it != regatheredFrom.end())
      v = it->second;
    if (!needs(v))
      return;
    auto it = adjoints.find(v);
    if (it == adjoints.end())
      adjoints[v] = g;
    else
      it->second = add(it->second, g);
  }
  LogicalResult backward(Operation *op, ArrayRef<Value> grads);

  OpBuilder &b;
  Location loc;
  DenseMap<Value, Value> adjoints;
  DenseSet<Value> requiresGrad;
  /// ZeRO-3 parameters gathered again for the backward, to their forward
  /// gathers.
  DenseMap<Value, Value> regatheredFrom;
};

Value Differentiator::unbroadcast(Value g, RankedTensorType target) {
  RankedTensorType type = typeOf(g);
  if (type.getShape() == target.getShape())
    return g;
  int64_t lead = type.getRank() - target.getRank();
  SmallVector<int64_t> axes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (d < lead ||
        (target.getDimSize(d - lead) == 1 && type.getDimSize(d) != 1))
      axes.push_back(d);
  Value summed =
      axes.empty()
          ? g
          : Value(ReduceOp::create(b, loc, ReduceKind::sum, g, axes, true));
  return reshape(summed, target.getShape());
}

Value Differentiator::oneHot(Value ids, int64_t classes, Type element) {
  int64_t count = typeOf(ids).getNumElements();
  Value column = reshape(ids, {count, 1});
  SmallVector<APInt> iota;
  unsigned width = typeOf(ids).getElementTypeBitWidth();
  for (int64_t c = 0; c < classes; ++c)
    iota.push_back(APInt(width, c));
  Value range = ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(
          RankedTensorType::get({1, classes}, typeOf(ids).getElementType()),
          iota));
  Value hit = CompareOp::create(b, loc, ComparePredicate::eq, column, range);
  return CastOp::create(b, loc,
                        RankedTensorType::get({count, classes}, element), hit);
}

LogicalResult Differentiator::backward(Operation *op, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  auto in = [&](unsigned i) { return op->getOperand(i); };
  auto unsupported = [&](StringRef why) {
    return op->emitError("no gradient for '")
           << op->getName() << "'" << (why.empty() ? "" : ": ") << why;
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](AddOp) {
        accumulate(in(0), unbroadcast(g, typeOf(in(0))));
        accumulate(in(1), unbroadcast(g, typeOf(in(1))));
        return success();
      })
      .Case([&](SubOp) {
        accumulate(in(0), unbroadcast(g, typeOf(in(0))));
        if (needs(in(1)))
          accumulate(in(1),
                     unbroadcast(NegOp::create(b, loc, g), typeOf(in(1))));
        return success();
      })
      .Case([&](MulOp) {
        if (needs(in(0)))
          accumulate(in(0), unbroadcast(mul(g, in(1)), typeOf(in(0))));
        if (needs(in(1)))
          accumulate(in(1), unbroadcast(mul(g, in(0)), typeOf(in(1))));
        return success();
      })
      .Case([&](DivOp) {
        if (needs(in(0)))
          accumulate(in(0), unbroadcast(div(g, in(1)), typeOf(in(0))));
        if (needs(in(1))) {
          Value q = div(op->getResult(0), in(1));
          accumulate(in(1), unbroadcast(NegOp::create(b, loc, mul(g, q)),
                                        typeOf(in(1))));
        }
        return success();
      })
      .Case([&](PowOp p) -> LogicalResult {
        std::optional<double> exponent = getSplatValue(p.getRhs());
        if (!exponent)
          return unsupported("only constant exponents");
        accumulate(
            in(0),
            mul(g, scale(PowOp::create(b, loc, in(0),
                                       splat(*exponent - 1, typeOf(in(0)))),
                         *exponent)));
        return success();
      })
      .Case<MaxOp, MinOp>([&](Operation *minMax) {
        // The gradient goes to the operand that was picked (lhs on ties).
        auto predicate =
            isa<MaxOp>(minMax) ? ComparePredicate::ge : ComparePredicate::le;
        Value pick = asFloat(CompareOp::create(b, loc, predicate, in(0), in(1)),
                             typeOf(g));
        Value other = sub(splat(1, typeOf(g)), pick);
        if (needs(in(0)))
          accumulate(in(0), unbroadcast(mul(g, pick), typeOf(in(0))));
        if (needs(in(1)))
          accumulate(in(1), unbroadcast(mul(g, other), typeOf(in(1))));
        return success();
      })
      .Case([&](NegOp) {
        accumulate(in(0), NegOp::create(b, loc, g));
        return success();
      })
      .Case([&](ExpOp) {
        accumulate(in(0), mul(g, op->getResult(0)));
        return success();
      })
      .Case([&](LogOp) {
        accumulate(in(0), div(g, in(0)));
        return success();
      })
      .Case([&](SqrtOp) {
        accumulate(in(0), scale(div(g, op->getResult(0)), 0.5));
        return success();
      })
      .Case([&](RsqrtOp) {
        Value y = op->getResult(0);
        accumulate(in(0), scale(mul(g, mul(y, mul(y, y))), -0.5));
        return success();
      })
      .Case([&](ReciprocalOp) {
        Value y = op->getResult(0);
        accumulate(in(0), NegOp::create(b, loc, mul(g, mul(y, y))));
        return success();
      })
      .Case([&](TanhOp) {
        Value y = op->getResult(0);
        accumulate(in(0), mul(g, sub(splat(1, typeOf(y)), mul(y, y))));
        return success();
      })
      .Case([&](SigmoidOp) {
        Value y = op->getResult(0);
        accumulate(in(0), mul(g, mul(y, sub(splat(1, typeOf(y)), y))));
        return success();
      })
      .Case([&](ReluOp) {
        Value positive =
            asFloat(CompareOp::create(b, loc, ComparePredicate::gt, in(0),
                                      splat(0, typeOf(in(0)))),
                    typeOf(g));
        accumulate(in(0), mul(g, positive));
        return success();
      })
      .Case([&](AbsOp) {
        Value x = in(0), zero = splat(0, typeOf(x));
        Value sign = sub(
            asFloat(CompareOp::create(b, loc, ComparePredicate::gt, x, zero),
                    typeOf(g)),
            asFloat(CompareOp::create(b, loc, ComparePredicate::lt, x, zero),
                    typeOf(g)));
        accumulate(x, mul(g, sign));
        return success();
      })
      .Case([&](ErfOp) {
        Value x = in(0);
        Value gauss = ExpOp::create(b, loc, NegOp::create(b, loc, mul(x, x)));
        accumulate(x, mul(g, scale(gauss, 2.0 / std::sqrt(M_PI))));
        return success();
      })
      .Case([&](SiluOp) {
        Value x = in(0), s = SigmoidOp::create(b, loc, x);
        Value one = splat(1, typeOf(x));
        accumulate(x, mul(g, mul(s, add(one, mul(x, sub(one, s))))));
        return success();
      })
      .Case([&](GeluOp gelu) {
        Value x = in(0), one = splat(1, typeOf(x));
        Value derivative;
        if (gelu.getApproximate() == GeluApproximation::tanh) {
          double c = std::sqrt(2.0 / M_PI);
          Value x2 = mul(x, x);
          Value u = scale(mul(x, add(one, scale(x2, 0.044715))), c);
          Value t = TanhOp::create(b, loc, u);
          Value du = scale(add(one, scale(x2, 3 * 0.044715)), c);
          derivative = add(scale(add(one, t), 0.5),
                           mul(scale(x, 0.5), mul(sub(one, mul(t, t)), du)));
        } else {
          Value cdf = scale(
              add(one, ErfOp::create(b, loc, scale(x, 1 / std::sqrt(2.0)))),
              0.5);
          Value pdf = scale(ExpOp::create(b, loc, scale(mul(x, x), -0.5)),
                            1 / std::sqrt(2 * M_PI));
          derivative = add(cdf, mul(x, pdf));
        }
        accumulate(x, mul(g, derivative));
        return success();
      })
      .Case([&](CastOp c) -> LogicalResult {
        if (!isa<FloatType>(typeOf(in(0)).getElementType()))
          return success();
        accumulate(in(0), CastOp::create(b, loc, typeOf(in(0)), g));
        return success();
      })
      .Case([&](WhereOp) {
        Value zero = zerosLike(typeOf(g));
        Value cond = in(0);
        if (needs(in(1)))
          accumulate(in(1), unbroadcast(WhereOp::create(b, loc, cond, g, zero),
                                        typeOf(in(1))));
        if (needs(in(2)))
          accumulate(in(2), unbroadcast(WhereOp::create(b, loc, cond, zero, g),
                                        typeOf(in(2))));
        return success();
      })
      .Case([&](ReshapeOp) {
        accumulate(in(0), reshape(g, typeOf(in(0)).getShape()));
        return success();
      })
      .Case([&](ExpandOp) {
        accumulate(in(0), unbroadcast(g, typeOf(in(0))));
        return success();
      })
      .Case([&](TransposeOp t) {
        ArrayRef<int64_t> perm = t.getPermutation();
        SmallVector<int64_t> inverse(perm.size());
        for (auto [i, p] : llvm::enumerate(perm))
          inverse[p] = i;
        accumulate(in(0), TransposeOp::create(b, loc, g, inverse));
        return success();
      })
      .Case([&](SliceOp s) -> LogicalResult {
        if (llvm::any_of(s.getSteps(), [](int64_t x) { return x != 1; }))
          return unsupported("only unit steps");
        // Pad the gradient back with zeros, one dimension at a time.
        Value padded = g;
        ArrayRef<int64_t> full = typeOf(in(0)).getShape();
        for (int64_t d = 0; d < typeOf(g).getRank(); ++d) {
          int64_t before = s.getStarts()[d], after = full[d] - s.getLimits()[d];
          if (!before && !after)
            continue;
          SmallVector<Value> pieces;
          SmallVector<int64_t> shape(typeOf(padded).getShape());
          if (before) {
            shape[d] = before;
            pieces.push_back(zerosLike(
                RankedTensorType::get(shape, typeOf(g).getElementType())));
          }
          pieces.push_back(padded);
          if (after) {
            shape[d] = after;
            pieces.push_back(zerosLike(
                RankedTensorType::get(shape, typeOf(g).getElementType())));
          }
          padded = ConcatOp::create(b, loc, pieces, d);
        }
        accumulate(in(0), padded);
        return success();
      })
      .Case([&](ConcatOp c) {
        int64_t axis =
            c.getAxis() < 0 ? c.getAxis() + typeOf(g).getRank() : c.getAxis();
        int64_t offset = 0;
        for (Value input : c.getInputs()) {
          SmallVector<int64_t> starts(typeOf(g).getRank(), 0),
              limits(typeOf(g).getShape()), steps(typeOf(g).getRank(), 1);
          starts[axis] = offset;
          limits[axis] = offset + typeOf(input).getDimSize(axis);
          offset = limits[axis];
          if (needs(input))
            accumulate(input,
                       SliceOp::create(b, loc, g, starts, limits, steps));
        }
        return success();
      })
      .Case([&](SplitOp s) {
        SmallVector<Value> pieces;
        for (auto [i, result] : llvm::enumerate(s.getResults()))
          pieces.push_back(grads[i] ? grads[i] : zerosLike(typeOf(result)));
        accumulate(in(0), ConcatOp::create(b, loc, pieces, s.getAxis()));
        return success();
      })
      .Case([&](MatmulOp) {
        if (needs(in(0)))
          accumulate(in(0), unbroadcast(MatmulOp::create(b, loc, g,
                                                         transposeLast2(in(1))),
                                        typeOf(in(0))));
        if (needs(in(1)))
          accumulate(in(1), unbroadcast(MatmulOp::create(
                                            b, loc, transposeLast2(in(0)), g),
                                        typeOf(in(1))));
        return success();
      })
      .Case([&](LinearOp l) {
        bool outIn = l.getLayout() == WeightLayout::out_in;
        Value x = l.getInput(), w = l.getWeight();
        if (needs(x))
          accumulate(x, LinearOp::create(b, loc, g, w, Value(),
                                         outIn ? WeightLayout::in_out
                                               : WeightLayout::out_in));
        int64_t k = l.getInFeatures(), n = l.getOutFeatures();
        int64_t m = typeOf(x).getNumElements() / k;
        Value g2 = reshape(g, {m, n}), x2 = reshape(x, {m, k});
        if (needs(w))
          accumulate(w, outIn ? Value(MatmulOp::create(
                                    b, loc,
                                    TransposeOp::create(
                                        b, loc, g2, ArrayRef<int64_t>{1, 0}),
                                    x2))
                              : Value(MatmulOp::create(
                                    b, loc,
                                    TransposeOp::create(
                                        b, loc, x2, ArrayRef<int64_t>{1, 0}),
                                    g2)));
        if (l.getBias() && needs(l.getBias()))
          accumulate(l.getBias(),
                     ReduceOp::create(b, loc, ReduceKind::sum, g2,
                                      ArrayRef<int64_t>{0}, false));
        return success();
      })
      .Case([&](EmbeddingOp e) {
        RankedTensorType table = typeOf(e.getTable());
        accumulate(e.getTable(),
                   EmbeddingGradOp::create(b, loc, table, g, e.getIds(),
                                           table.getDimSize(0)));
        return success();
      })
      .Case([&](GatherOp gather) -> LogicalResult {
        RankedTensorType data = typeOf(gather.getData());
        if (gather.getAxis() != 0 || data.getRank() != 2)
          return unsupported("only row gathers from a matrix");
        accumulate(gather.getData(),
                   EmbeddingGradOp::create(b, loc, data, g, gather.getIndices(),
                                           data.getDimSize(0)));
        return success();
      })
      .Case([&](ReduceOp r) -> LogicalResult {
        if (r.getKind() != ReduceKind::sum && r.getKind() != ReduceKind::mean)
          return unsupported("only sum and mean");
        RankedTensorType input = typeOf(in(0));
        SmallVector<int64_t> kept(input.getShape());
        int64_t count = 1;
        for (int64_t a : r.getAxes()) {
          kept[a] = 1;
          count *= input.getDimSize(a);
        }
        Value spread = ExpandOp::create(b, loc, input, reshape(g, kept));
        if (r.getKind() == ReduceKind::mean)
          spread = scale(spread, 1.0 / count);
        accumulate(in(0), spread);
        return success();
      })
      .Case([&](SoftmaxOp s) {
        Value y = s.getResult();
        int64_t axis =
            s.getAxis() < 0 ? s.getAxis() + typeOf(y).getRank() : s.getAxis();
        Value dot = ReduceOp::create(b, loc, ReduceKind::sum, mul(g, y),
                                     ArrayRef<int64_t>{axis}, true);
        accumulate(in(0), mul(y, sub(g, dot)));
        return success();
      })
      .Case([&](LayerNormOp ln) {
        Value x = ln.getInput();
        double eps = ln.getEpsilon().convertToDouble();
        Value centred = sub(x, meanLast(x));
        Value rstd = RsqrtOp::create(
            b, loc,
            add(meanLast(mul(centred, centred)), splat(eps, typeOf(x))));
        Value xhat = mul(centred, rstd);
        if (needs(x)) {
          Value dxhat = mul(g, ln.getScale());
          Value dx = mul(rstd, sub(sub(dxhat, meanLast(dxhat)),
                                   mul(xhat, meanLast(mul(dxhat, xhat)))));
          accumulate(x, dx);
        }
        int64_t d = typeOf(x).getShape().back();
        int64_t rows = typeOf(x).getNumElements() / d;
        auto columnSum = [&](Value v) {
          return ReduceOp::create(b, loc, ReduceKind::sum,
                                  reshape(v, {rows, d}), ArrayRef<int64_t>{0},
                                  false);
        };
        if (needs(ln.getScale()))
          accumulate(ln.getScale(), columnSum(mul(g, xhat)));
        if (ln.getBias() && needs(ln.getBias()))
          accumulate(ln.getBias(), columnSum(g));
        return success();
      })
      .Case([&](RmsNormOp rms) {
        Value x = rms.getInput();
        double eps = rms.getEpsilon().convertToDouble();
        Value r = RsqrtOp::create(
            b, loc, add(meanLast(mul(x, x)), splat(eps, typeOf(x))));
        if (needs(x)) {
          Value dn = mul(g, rms.getScale());
          Value dx =
              mul(r, sub(dn, mul(mul(x, mul(r, r)), meanLast(mul(dn, x)))));
          accumulate(x, dx);
        }
        if (needs(rms.getScale())) {
          int64_t d = typeOf(x).getShape().back();
          int64_t rows = typeOf(x).getNumElements() / d;
          accumulate(rms.getScale(),
                     ReduceOp::create(b, loc, ReduceKind::sum,
                                      reshape(mul(g, mul(x, r)), {rows, d}),
                                      ArrayRef<int64_t>{0}, false));
        }
        return success();
      })
      .Case([&](RotaryOp rot) -> LogicalResult {
        if (rot.getInterleaved())
          return unsupported("interleaved rotary");
        Value x = rot.getInput();
        int64_t rank = typeOf(x).getRank(), dim = typeOf(x).getShape().back();
        int64_t rotated = typeOf(rot.getCos()).getShape().back(),
                half = rotated / 2;
        if (rotated != dim)
          return unsupported("partial rotary");
        // y = x cos + R(x) sin with R(x) = [-x2, x1]; R^T(z) = [z2, -z1].
        Value gs = mul(g, rot.getSin());
        SmallVector<int64_t> zero(rank, 0), steps(rank, 1),
            limits(typeOf(gs).getShape());
        SmallVector<int64_t> mid = zero;
        mid[rank - 1] = half;
        SmallVector<int64_t> firstLimit = limits;
        firstLimit[rank - 1] = half;
        Value z1 = SliceOp::create(b, loc, gs, zero, firstLimit, steps);
        Value z2 = SliceOp::create(b, loc, gs, mid, limits, steps);
        Value rotT = ConcatOp::create(
            b, loc, ValueRange{z2, NegOp::create(b, loc, z1)}, rank - 1);
        accumulate(x, add(mul(g, rot.getCos()), rotT));
        return success();
      })
      .Case([&](AttentionOp a) -> LogicalResult {
        Value q = a.getQuery(), k = a.getKey(), v = a.getValue();
        RankedTensorType qt = typeOf(q), kt = typeOf(k);
        int64_t batch = qt.getDimSize(0), heads = qt.getDimSize(1),
                sq = qt.getDimSize(2), kvHeads = kt.getDimSize(1),
                sk = kt.getDimSize(2);
        int64_t group = heads / kvHeads;
        auto repeat = [&](Value t) -> Value {
          if (group == 1)
            return t;
          ArrayRef<int64_t> s = typeOf(t).getShape();
          Value split = reshape(t, {s[0], s[1], 1, s[2], s[3]});
          Value wide = ExpandOp::create(
              b, loc,
              RankedTensorType::get({s[0], s[1], group, s[2], s[3]},
                                    typeOf(t).getElementType()),
              split);
          return reshape(wide, {s[0], s[1] * group, s[2], s[3]});
        };
        auto unrepeat = [&](Value t, RankedTensorType target) -> Value {
          if (group == 1)
            return t;
          ArrayRef<int64_t> s = target.getShape();
          Value split = reshape(t, {s[0], s[1], group, s[2], s[3]});
          return ReduceOp::create(b, loc, ReduceKind::sum, split,
                                  ArrayRef<int64_t>{2}, false);
        };
        double scaleValue = a.getScale().convertToDouble();
        Value kr = repeat(k), vr = repeat(v);
        Value scores =
            scale(MatmulOp::create(b, loc, q, transposeLast2(kr)), scaleValue);
        Value mask = a.getMask();
        if (mask && isa<FloatType>(typeOf(mask).getElementType()))
          scores = add(scores, mask);
        else if (mask)
          scores = WhereOp::create(b, loc, mask, scores,
                                   splat(-1e30, typeOf(scores)));
        if (a.getCausal()) {
          SmallVector<APFloat> values;
          for (int64_t i = 0; i < sq; ++i)
            for (int64_t j = 0; j < sk; ++j)
              values.push_back(APFloat(j <= i + (sk - sq) ? 0.0f : -1e30f));
          scores =
              add(scores,
                  ConstantOp::create(
                      b, loc,
                      DenseElementsAttr::get(
                          RankedTensorType::get({sq, sk}, qt.getElementType()),
                          values)));
        }
        Value p = SoftmaxOp::create(b, loc, scores, -1);
        if (needs(v))
          accumulate(v, unrepeat(MatmulOp::create(b, loc, transposeLast2(p), g),
                                 typeOf(v)));
        Value dp = MatmulOp::create(b, loc, g, transposeLast2(vr));
        Value ds = mul(p, sub(dp, sumLast(mul(dp, p), true)));
        if (needs(q))
          accumulate(q, scale(MatmulOp::create(b, loc, ds, kr), scaleValue));
        if (needs(k))
          accumulate(
              k, unrepeat(scale(MatmulOp::create(b, loc, transposeLast2(ds), q),
                                scaleValue),
                          typeOf(k)));
        if (mask && needs(mask))
          accumulate(mask, unbroadcast(ds, typeOf(mask)));
        (void)batch;
        return success();
      })
      .Case([&](CrossEntropyOp ce) {
        Value logits = ce.getLogits(), labels = ce.getLabels();
        RankedTensorType lt = typeOf(logits);
        int64_t classes = lt.getShape().back();
        int64_t rows = lt.getNumElements() / classes;
        Value probs =
            SoftmaxOp::create(b, loc, reshape(logits, {rows, classes}), -1);
        Value hot = oneHot(labels, classes, lt.getElementType());
        Value valid = asFloat(
            CompareOp::create(
                b, loc, ComparePredicate::ne, reshape(labels, {rows, 1}),
                ConstantOp::create(
                    b, loc,
                    DenseElementsAttr::get(
                        RankedTensorType::get({},
                                              typeOf(labels).getElementType()),
                        APInt(typeOf(labels).getElementTypeBitWidth(),
                              ce.getIgnoreIndex(), /*isSigned=*/true)))),
            lt);
        Value d = mul(sub(probs, hot), valid);
        if (ce.getReduction() == ReduceKind::mean) {
          Value count = ReduceOp::create(b, loc, ReduceKind::sum, valid,
                                         ArrayRef<int64_t>{0, 1}, false);
          d = div(d, count);
        }
        accumulate(logits, reshape(mul(d, g), lt.getShape()));
        return success();
      })
      // Collectives: each rank's adjoint is another collective (or none).
      .Case([&](AllReduceOp r) -> LogicalResult {
        if (r.getKind() == ReduceKind::sum) {
          accumulate(in(0), g);
          return success();
        }
        if (r.getKind() == ReduceKind::mean) {
          accumulate(in(0), scale(g, 1.0 / r.getGroup()[0]));
          return success();
        }
        // Max and min serve only as log-sum-exp stabilizers, whose
        // gradient cancels (see galv.all_reduce).
        return success();
      })
      .Case([&](ReplicateOp r) {
        accumulate(in(0), AllReduceOp::create(b, loc, ReduceKind::sum, g,
                                              r.getGroup()));
        return success();
      })
      .Case([&](AllGatherOp a) {
        if (a.getScatterGrad())
          accumulate(in(0), ReduceScatterOp::create(b, loc, g, a.getAxis(),
                                                    a.getGroup()));
        else
          accumulate(in(0), ShardSliceOp::create(b, loc, g, a.getAxis(),
                                                 a.getGroup()));
        return success();
      })
      .Case([&](StageTransferOp t) {
        accumulate(in(0),
                   StageTransferOp::create(b, loc, g, t.getTo(), t.getFrom()));
        return success();
      })
      .Case([&](StageBroadcastOp) {
        accumulate(in(0), g);
        return success();
      })
      .Case([&](AllToAllOp a) {
        accumulate(in(0), AllToAllOp::create(b, loc, g, a.getConcatAxis(),
                                             a.getSplitAxis(), a.getGroup()));
        return success();
      })
      .Case<ReduceScatterOp, ShardSliceOp>([&](Operation *piece) {
        accumulate(
            in(0),
            AllGatherOp::create(
                b, loc, g, piece->getAttrOfType<IntegerAttr>("axis").getInt(),
                piece->getAttrOfType<DenseI64ArrayAttr>("group").asArrayRef(),
                /*scatter_grad=*/false));
        return success();
      })
      .Case([&](GetParameterOp) { return success(); })
      .Case([&](ConstantOp) { return success(); })
      .Default([&](Operation *) { return unsupported(""); });
}

LogicalResult Differentiator::run(ArrayRef<Operation *> ops, Value loss,
                                  llvm::StringMap<Value> &paramGrads) {
  // Values that depend on a trainable parameter need adjoints.
  ModuleOp module = (*ops.begin())->getParentOfType<ModuleOp>();
  for (Operation *op : ops) {
    if (auto get = dyn_cast<GetParameterOp>(op)) {
      auto param = module.lookupSymbol<ParameterOp>(get.getNameAttr());
      if (param && param.getTrainable())
        requiresGrad.insert(get.getResult());
      continue;
    }
    if (llvm::any_of(op->getOperands(), [&](Value v) { return needs(v); }))
      for (Value result : op->getResults())
        if (isa<FloatType>(typeOf(result).getElementType()))
          requiresGrad.insert(result);
  }
  if (!needs(loss))
    return success();
  // Checkpointed layers keep only their input: their forward ops run again
  // right before their backward, which then reads the recomputed values.
  auto segmentOf = [](Operation *op) -> int64_t {
    // A pipeline transfer is not redone: its other end would not know.
    if (isa<StageTransferOp>(op))
      return -1;
    auto strategy =
        op->getAttrOfType<StrategyAttr>(GalvDialect::getStrategyAttrName());
    auto layer =
        op->getAttrOfType<IntegerAttr>(GalvDialect::getLayerAttrName());
    return strategy && layer && strategy.getCheckpoint() ? layer.getInt() : -1;
  };
  llvm::MapVector<int64_t, SmallVector<Operation *>> segments;
  for (Operation *op : ops)
    if (int64_t segment = segmentOf(op); segment >= 0)
      segments[segment].push_back(op);
  DenseMap<Operation *, Operation *> recomputed;
  // ZeRO-3 parameters are gathered again for the backward pass, so that the
  // forward's gathered copy dies after its forward use.
  DenseMap<Value, Value> regathered;
  auto regather = [&](Value v) -> Value {
    if (regatheredFrom.count(v))
      return Value();
    SmallVector<Operation *> chain;
    for (Operation *op = v.getDefiningOp(); op;) {
      chain.push_back(op);
      if (auto gather = dyn_cast<AllGatherOp>(op)) {
        if (!gather.getScatterGrad() ||
            !gather.getInput().getDefiningOp<GetParameterOp>())
          return Value();
        break;
      }
      if (!isa<ReshapeOp, SliceOp>(op) || !op->getOperand(0).hasOneUse())
        return Value();
      op = op->getOperand(0).getDefiningOp();
    }
    if (chain.empty() || !isa<AllGatherOp>(chain.back()))
      return Value();
    Value &copy = regathered[v];
    if (!copy) {
      IRMapping mapping;
      for (Operation *op : llvm::reverse(chain)) {
        Operation *clone = b.clone(*op, mapping);
        clone->setAttr(GalvDialect::getRecomputeAttrName(), b.getUnitAttr());
        clone->removeAttr(GalvDialect::getBackwardAttrName());
      }
      copy = mapping.lookup(v);
      regatheredFrom[copy] = v;
    }
    return copy;
  };
  adjoints[loss] = splat(1.0, typeOf(loss));
  for (Operation *op : llvm::reverse(ops)) {
    int64_t segment = segmentOf(op);
    if (segment >= 0 && !recomputed.count(op)) {
      IRMapping mapping;
      for (Operation *forward : segments[segment]) {
        for (Value operand : forward->getOperands())
          if (Value again = regather(operand))
            mapping.map(operand, again);
        Operation *copy = b.clone(*forward, mapping);
        // Distinct from the original, so that CSE keeps the recomputation.
        copy->setAttr(GalvDialect::getRecomputeAttrName(), b.getUnitAttr());
        recomputed[forward] = copy;
        for (auto [r, c] : llvm::zip(forward->getResults(), copy->getResults()))
          if (needs(r))
            requiresGrad.insert(c);
      }
    }
    Operation *target = segment >= 0 ? recomputed[op] : op;
    SmallVector<Value> grads;
    bool any = false;
    for (auto [result, twin] :
         llvm::zip(op->getResults(), target->getResults())) {
      Value g = adjoints.lookup(result);
      if (twin != result)
        if (Value h = adjoints.lookup(twin))
          g = g ? add(g, h) : h;
      grads.push_back(g);
      any |= static_cast<bool>(g);
    }
    if (!any)
      continue;
    // The backward rule reads regathered parameters (accumulate() sends
    // their gradients to the forward gathers, reduce-scattered once).
    SmallVector<std::pair<unsigned, Value>> swapped;
    for (auto [i, operand] : llvm::enumerate(target->getOperands()))
      if (Value again = regather(operand)) {
        swapped.push_back({static_cast<unsigned>(i), operand});
        target->setOperand(i, again);
      }
    LogicalResult result = backward(target, grads);
    for (auto [i, original] : swapped)
      target->setOperand(i, original);
    if (failed(result))
      return failure();
  }
  for (Operation *op : ops)
    if (auto get = dyn_cast<GetParameterOp>(op))
      if (Value g = adjoints.lookup(get.getResult())) {
        Value &slot = paramGrads[get.getName()];
        slot = slot ? add(slot, g) : g;
      }
  return success();
}

struct AutodiffPass : galv::impl::AutodiffBase<AutodiffPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss || loss.isExternal() || loss.getNumResults() != 1 ||
        typeOf(loss.getBody().front().getTerminator()->getOperand(0))
                .getRank() != 0) {
      module.emitError("galv-autodiff needs func.func @loss returning a "
                       "scalar (run galv-append-loss)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss_grad"))
      return;
    OpBuilder builder(module.getContext());
    builder.setInsertionPointAfter(loss);
    SmallVector<ParameterOp> trainable;
    for (auto param : module.getOps<ParameterOp>())
      if (param.getTrainable())
        trainable.push_back(param);
    // A partitioned @loss reads shards: the gradient has the read's type.
    llvm::StringMap<Type> readTypes;
    loss.walk([&](GetParameterOp get) {
      readTypes.try_emplace(get.getName(), get.getType());
    });
    auto gradType = [&](ParameterOp param) {
      auto it = readTypes.find(param.getSymName());
      return it != readTypes.end() ? it->second : param.getType();
    };
    SmallVector<Type> results = {loss.getFunctionType().getResult(0)};
    for (ParameterOp param : trainable)
      results.push_back(gradType(param));
    auto grad = func::FuncOp::create(
        builder, loss.getLoc(), "loss_grad",
        builder.getFunctionType(loss.getFunctionType().getInputs(), results));
    if (ArrayAttr argAttrs = loss.getAllArgAttrs())
      grad.setAllArgAttrs(argAttrs);
    IRMapping mapping;
    loss.getBody().cloneInto(&grad.getBody(), mapping);
    Block &body = grad.getBody().front();
    Operation *ret = body.getTerminator();
    Value lossValue = ret->getOperand(0);
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    builder.setInsertionPoint(ret);
    Differentiator differentiator(builder, loss.getLoc());
    llvm::StringMap<Value> paramGrads;
    if (failed(differentiator.run(ops, lossValue, paramGrads))) {
      grad.erase();
      return signalPassFailure();
    }
    // Everything after the forward ops is the backward pass (pipeline
    // schedules order the two per micro-batch).
    Block::iterator first =
        ops.empty() ? body.begin() : std::next(Block::iterator(ops.back()));
    for (Operation &op : llvm::make_range(first, Block::iterator(ret)))
      op.setAttr(GalvDialect::getBackwardAttrName(), builder.getUnitAttr());
    SmallVector<Value> returned = {lossValue};
    for (auto [i, param] : llvm::enumerate(trainable)) {
      Value g = paramGrads.lookup(param.getSymName());
      if (!g)
        g = ConstantOp::create(
            builder, param.getLoc(),
            DenseElementsAttr::get(
                cast<RankedTensorType>(gradType(param)),
                builder.getFloatAttr(param.getTensorType().getElementType(),
                                     0)));
      returned.push_back(g);
      grad.setResultAttr(i + 1, "galv.grad_of",
                         builder.getStringAttr(param.getSymName()));
    }
    ret->setOperands(returned);
  }
};
} // namespace
