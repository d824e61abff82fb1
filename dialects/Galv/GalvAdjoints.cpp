//===- GalvAdjoints.cpp - the reverse-mode rule of each galv op -----------===//
//
// AdjointOpInterface for every galv op: given its results' adjoints, build
// its operands' adjoints with galv ops only (so every backend that runs the
// forward ops runs the backward ones). Gradients of broadcast operands are
// summed back to their shapes. Collectives have collectives as adjoints
// (all-reduce <-> identity, replicate <-> all-reduce, all-gather <->
// reduce-scatter or slice, all-to-all <-> all-to-all reversed, stage
// transfer <-> the transfer back), which is why partitioning comes first.
//
//===----------------------------------------------------------------------===//

#include "Galv/Adjoint.h"
#include "Galv/Builders.h"

#include <cmath>

using namespace mlir;
using namespace mlir::galv;

/// The value of a splat float constant.
static std::optional<double> splatConstant(Value v) {
  auto constant = v.getDefiningOp<ConstantOp>();
  auto dense = constant ? dyn_cast<DenseElementsAttr>(constant.getValue())
                        : DenseElementsAttr();
  if (!dense || !dense.isSplat() || !isa<FloatType>(dense.getElementType()))
    return std::nullopt;
  return dense.getSplatValue<APFloat>().convertToDouble();
}

/// The gradient goes to the operand that was picked (lhs on ties).
static LogicalResult minMaxAdjoint(Operation *op, ComparePredicate predicate,
                                   AdjointBuilder &ab, Value g) {
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  Value pick = ab.asFloat(CompareOp::create(ab.b, ab.loc, predicate, lhs, rhs),
                          ab.typeOf(g));
  Value other = ab.sub(ab.splat(1, ab.typeOf(g)), pick);
  if (ab.needs(lhs))
    ab.accumulate(lhs, ab.unbroadcast(ab.mul(g, pick), ab.typeOf(lhs)));
  if (ab.needs(rhs))
    ab.accumulate(rhs, ab.unbroadcast(ab.mul(g, other), ab.typeOf(rhs)));
  return success();
}

/// A piece of a group's tensor (reduce-scatter, shard slice): the pieces'
/// adjoints are gathered back.
static LogicalResult pieceAdjoint(Value input, int64_t axis,
                                  DeviceGroupAttr group, AdjointBuilder &ab,
                                  Value g) {
  ab.accumulate(input, AllGatherOp::create(ab.b, ab.loc, g, axis, group,
                                           /*scatter_grad=*/false));
  return success();
}

LogicalResult MaxOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  return minMaxAdjoint(*this, ComparePredicate::ge, ab, grads[0]);
}

LogicalResult MinOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  return minMaxAdjoint(*this, ComparePredicate::le, ab, grads[0]);
}

LogicalResult ReduceScatterOp::buildAdjoint(AdjointBuilder &ab,
                                            ArrayRef<Value> grads) {
  return pieceAdjoint(getInput(), getAxis(), getGroup(), ab, grads[0]);
}

LogicalResult ShardSliceOp::buildAdjoint(AdjointBuilder &ab,
                                         ArrayRef<Value> grads) {
  return pieceAdjoint(getInput(), getAxis(), getGroup(), ab, grads[0]);
}

LogicalResult CrossEntropyOp::buildAdjoint(AdjointBuilder &ab,
                                           ArrayRef<Value> grads) {
  Value logits = getLogits(), labels = getLabels();
  RankedTensorType lt = ab.typeOf(logits);
  if (ab.fusedBackward) {
    ab.accumulate(logits, CrossEntropyGradOp::create(
                              ab.b, ab.loc, lt, logits, labels, grads[0],
                              getReductionAttr(), getIgnoreIndexAttr()));
    return success();
  }
  int64_t classes = lt.getShape().back();
  int64_t rows = lt.getNumElements() / classes;
  Value probs =
      SoftmaxOp::create(ab.b, ab.loc, ab.reshape(logits, {rows, classes}), -1);
  Value hot = ab.oneHot(labels, classes, lt.getElementType());
  Type idType = ab.typeOf(labels).getElementType();
  Value ignored = ConstantOp::create(
      ab.b, ab.loc,
      DenseElementsAttr::get(RankedTensorType::get({}, idType),
                             APInt(idType.getIntOrFloatBitWidth(),
                                   getIgnoreIndex(), /*isSigned=*/true)));
  Value valid =
      ab.asFloat(CompareOp::create(ab.b, ab.loc, ComparePredicate::ne,
                                   ab.reshape(labels, {rows, 1}), ignored),
                 lt);
  Value d = ab.mul(ab.sub(probs, hot), valid);
  if (getReduction() == ReduceKind::mean) {
    Value count = ReduceOp::create(ab.b, ab.loc, ReduceKind::sum, valid,
                                   ArrayRef<int64_t>{0, 1}, false);
    d = ab.div(d, count);
  }
  ab.accumulate(logits, ab.reshape(ab.mul(d, grads[0]), lt.getShape()));
  return success();
}

// Ops whose results carry no gradient, or whose operands need none.
LogicalResult GetParameterOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}
LogicalResult ConstantOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}
// i1 results: never differentiated (the driver only follows float values).
LogicalResult AndOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}
LogicalResult OrOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}
LogicalResult NotOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}
LogicalResult CompareOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}

LogicalResult AdamWUpdateOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value>) {
  return ab.refuse(*this, "it is an optimizer step, built after autodiff");
}

// Gradients themselves: no second derivatives.
#define GALV_GRADIENT_RULE(Op)                                                 \
  LogicalResult Op::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value>) {        \
    return ab.refuse(*this, "it is itself a gradient (second derivatives "     \
                            "are not supported)");                             \
  }
GALV_GRADIENT_RULE(EmbeddingGradOp)
GALV_GRADIENT_RULE(CrossEntropyGradOp)
GALV_GRADIENT_RULE(LayerNormGradOp)
GALV_GRADIENT_RULE(RmsNormGradOp)
GALV_GRADIENT_RULE(GeluGradOp)
#undef GALV_GRADIENT_RULE

/// The sum's adjoint is what its readers give plus the norm's input
/// gradient; both addends take it whole.
LogicalResult AddNormOp::buildAdjoint(AdjointBuilder &ab,
                                      ArrayRef<Value> grads) {
  Value gSum = grads.size() > 0 ? grads[0] : Value();
  Value gResult = grads.size() > 1 ? grads[1] : Value();
  AddNormOp op = *this;
  Value scale = op.getScale(), bias = op.getBias();
  Value dsum = gSum;
  if (gResult) {
    if (!ab.fusedBackward)
      return ab.refuse(*this, "its norm differentiates with the fused "
                              "gradient ops only (fused-backward=true), or "
                              "leave it apart (fuse-norms=false)");
    RankedTensorType x = ab.typeOf(op.getSum()), st = ab.typeOf(scale);
    Value dx;
    if (op.getRms()) {
      auto grad = RmsNormGradOp::create(ab.b, ab.loc, x, st, op.getSum(), scale,
                                        gResult, op.getEpsilonAttr());
      dx = grad.getDinput();
      ab.accumulate(scale, grad.getDscale());
    } else {
      auto grad = LayerNormGradOp::create(ab.b, ab.loc, x, st, st, op.getSum(),
                                          scale, gResult, op.getEpsilonAttr());
      dx = grad.getDinput();
      ab.accumulate(scale, grad.getDscale());
      if (bias && ab.needs(bias))
        ab.accumulate(bias, grad.getDbias());
    }
    dsum = dsum ? ab.add(dsum, dx) : dx;
  }
  if (!dsum)
    return success();
  ab.accumulate(op.getInput(), dsum);
  ab.accumulate(op.getResidual(), dsum);
  return success();
}

LogicalResult AddOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0),
                ab.unbroadcast(g, ab.typeOf((*this)->getOperand(0))));
  ab.accumulate((*this)->getOperand(1),
                ab.unbroadcast(g, ab.typeOf((*this)->getOperand(1))));
  return success();
}

LogicalResult SubOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0),
                ab.unbroadcast(g, ab.typeOf((*this)->getOperand(0))));
  if (ab.needs((*this)->getOperand(1)))
    ab.accumulate((*this)->getOperand(1),
                  ab.unbroadcast(NegOp::create(ab.b, ab.loc, g),
                                 ab.typeOf((*this)->getOperand(1))));
  return success();
}

LogicalResult MulOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  if (ab.needs((*this)->getOperand(0)))
    ab.accumulate((*this)->getOperand(0),
                  ab.unbroadcast(ab.mul(g, (*this)->getOperand(1)),
                                 ab.typeOf((*this)->getOperand(0))));
  if (ab.needs((*this)->getOperand(1)))
    ab.accumulate((*this)->getOperand(1),
                  ab.unbroadcast(ab.mul(g, (*this)->getOperand(0)),
                                 ab.typeOf((*this)->getOperand(1))));
  return success();
}

LogicalResult DivOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  if (ab.needs((*this)->getOperand(0)))
    ab.accumulate((*this)->getOperand(0),
                  ab.unbroadcast(ab.div(g, (*this)->getOperand(1)),
                                 ab.typeOf((*this)->getOperand(0))));
  if (ab.needs((*this)->getOperand(1))) {
    Value q = ab.div((*this)->getResult(0), (*this)->getOperand(1));
    ab.accumulate((*this)->getOperand(1),
                  ab.unbroadcast(NegOp::create(ab.b, ab.loc, ab.mul(g, q)),
                                 ab.typeOf((*this)->getOperand(1))));
  }
  return success();
}

LogicalResult PowOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  PowOp p = *this;
  std::optional<double> exponent = splatConstant(p.getRhs());
  if (!exponent)
    return ab.refuse(*this, "only constant exponents");
  ab.accumulate(
      (*this)->getOperand(0),
      ab.mul(g, ab.scale(
                    PowOp::create(ab.b, ab.loc, (*this)->getOperand(0),
                                  ab.splat(*exponent - 1,
                                           ab.typeOf((*this)->getOperand(0)))),
                    *exponent)));
  return success();
}

LogicalResult NegOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0), NegOp::create(ab.b, ab.loc, g));
  return success();
}

LogicalResult ExpOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0), ab.mul(g, (*this)->getResult(0)));
  return success();
}

LogicalResult LogOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0), ab.div(g, (*this)->getOperand(0)));
  return success();
}

LogicalResult SqrtOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0),
                ab.scale(ab.div(g, (*this)->getResult(0)), 0.5));
  return success();
}

LogicalResult RsqrtOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value y = (*this)->getResult(0);
  ab.accumulate((*this)->getOperand(0),
                ab.scale(ab.mul(g, ab.mul(y, ab.mul(y, y))), -0.5));
  return success();
}

LogicalResult ReciprocalOp::buildAdjoint(AdjointBuilder &ab,
                                         ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value y = (*this)->getResult(0);
  ab.accumulate((*this)->getOperand(0),
                NegOp::create(ab.b, ab.loc, ab.mul(g, ab.mul(y, y))));
  return success();
}

LogicalResult TanhOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value y = (*this)->getResult(0);
  ab.accumulate((*this)->getOperand(0),
                ab.mul(g, ab.sub(ab.splat(1, ab.typeOf(y)), ab.mul(y, y))));
  return success();
}

LogicalResult SigmoidOp::buildAdjoint(AdjointBuilder &ab,
                                      ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value y = (*this)->getResult(0);
  ab.accumulate((*this)->getOperand(0),
                ab.mul(g, ab.mul(y, ab.sub(ab.splat(1, ab.typeOf(y)), y))));
  return success();
}

LogicalResult ReluOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value positive =
      ab.asFloat(CompareOp::create(
                     ab.b, ab.loc, ComparePredicate::gt, (*this)->getOperand(0),
                     ab.splat(0, ab.typeOf((*this)->getOperand(0)))),
                 ab.typeOf(g));
  ab.accumulate((*this)->getOperand(0), ab.mul(g, positive));
  return success();
}

LogicalResult AbsOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value x = (*this)->getOperand(0), zero = ab.splat(0, ab.typeOf(x));
  Value sign = ab.sub(
      ab.asFloat(CompareOp::create(ab.b, ab.loc, ComparePredicate::gt, x, zero),
                 ab.typeOf(g)),
      ab.asFloat(CompareOp::create(ab.b, ab.loc, ComparePredicate::lt, x, zero),
                 ab.typeOf(g)));
  ab.accumulate(x, ab.mul(g, sign));
  return success();
}

LogicalResult ErfOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value x = (*this)->getOperand(0);
  Value gauss =
      ExpOp::create(ab.b, ab.loc, NegOp::create(ab.b, ab.loc, ab.mul(x, x)));
  ab.accumulate(x, ab.mul(g, ab.scale(gauss, 2.0 / std::sqrt(M_PI))));
  return success();
}

LogicalResult SiluOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value x = (*this)->getOperand(0), s = SigmoidOp::create(ab.b, ab.loc, x);
  Value one = ab.splat(1, ab.typeOf(x));
  ab.accumulate(x,
                ab.mul(g, ab.mul(s, ab.add(one, ab.mul(x, ab.sub(one, s))))));
  return success();
}

LogicalResult GeluOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  GeluOp gelu = *this;
  Value x = (*this)->getOperand(0), one = ab.splat(1, ab.typeOf(x));
  if (ab.fusedBackward) {
    ab.accumulate(x, GeluGradOp::create(ab.b, ab.loc, ab.typeOf(x), x, g,
                                        gelu.getApproximate()));
    return success();
  }
  Value derivative;
  if (gelu.getApproximate() == GeluApproximation::tanh) {
    double c = std::sqrt(2.0 / M_PI);
    Value x2 = ab.mul(x, x);
    Value u = ab.scale(ab.mul(x, ab.add(one, ab.scale(x2, 0.044715))), c);
    Value t = TanhOp::create(ab.b, ab.loc, u);
    Value du = ab.scale(ab.add(one, ab.scale(x2, 3 * 0.044715)), c);
    derivative =
        ab.add(ab.scale(ab.add(one, t), 0.5),
               ab.mul(ab.scale(x, 0.5), ab.mul(ab.sub(one, ab.mul(t, t)), du)));
  } else {
    Value cdf =
        ab.scale(ab.add(one, ErfOp::create(ab.b, ab.loc,
                                           ab.scale(x, 1 / std::sqrt(2.0)))),
                 0.5);
    Value pdf =
        ab.scale(ExpOp::create(ab.b, ab.loc, ab.scale(ab.mul(x, x), -0.5)),
                 1 / std::sqrt(2 * M_PI));
    derivative = ab.add(cdf, ab.mul(x, pdf));
  }
  ab.accumulate(x, ab.mul(g, derivative));
  return success();
}

LogicalResult CastOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  if (!isa<FloatType>(ab.typeOf((*this)->getOperand(0)).getElementType()))
    return success();
  ab.accumulate(
      (*this)->getOperand(0),
      CastOp::create(ab.b, ab.loc, ab.typeOf((*this)->getOperand(0)), g));
  return success();
}

LogicalResult WhereOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value zero = ab.zerosLike(ab.typeOf(g));
  Value cond = (*this)->getOperand(0);
  if (ab.needs((*this)->getOperand(1)))
    ab.accumulate((*this)->getOperand(1),
                  ab.unbroadcast(WhereOp::create(ab.b, ab.loc, cond, g, zero),
                                 ab.typeOf((*this)->getOperand(1))));
  if (ab.needs((*this)->getOperand(2)))
    ab.accumulate((*this)->getOperand(2),
                  ab.unbroadcast(WhereOp::create(ab.b, ab.loc, cond, zero, g),
                                 ab.typeOf((*this)->getOperand(2))));
  return success();
}

LogicalResult ReshapeOp::buildAdjoint(AdjointBuilder &ab,
                                      ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0),
                ab.reshape(g, ab.typeOf((*this)->getOperand(0)).getShape()));
  return success();
}

LogicalResult ExpandOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0),
                ab.unbroadcast(g, ab.typeOf((*this)->getOperand(0))));
  return success();
}

LogicalResult TransposeOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  TransposeOp t = *this;
  ArrayRef<int64_t> perm = t.getPermutation();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inverse[p] = i;
  ab.accumulate((*this)->getOperand(0),
                TransposeOp::create(ab.b, ab.loc, g, inverse));
  return success();
}

LogicalResult SliceOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  SliceOp s = *this;
  if (llvm::any_of(s.getSteps(), [](int64_t x) { return x != 1; }))
    return ab.refuse(*this, "only unit steps");
  // Pad the gradient back with zeros, one dimension at a time.
  Value padded = g;
  ArrayRef<int64_t> full = ab.typeOf((*this)->getOperand(0)).getShape();
  for (int64_t d = 0; d < ab.typeOf(g).getRank(); ++d) {
    int64_t before = s.getStarts()[d], after = full[d] - s.getLimits()[d];
    if (!before && !after)
      continue;
    SmallVector<Value> pieces;
    SmallVector<int64_t> shape(ab.typeOf(padded).getShape());
    if (before) {
      shape[d] = before;
      pieces.push_back(ab.zerosLike(
          RankedTensorType::get(shape, ab.typeOf(g).getElementType())));
    }
    pieces.push_back(padded);
    if (after) {
      shape[d] = after;
      pieces.push_back(ab.zerosLike(
          RankedTensorType::get(shape, ab.typeOf(g).getElementType())));
    }
    auto concat = ab.create<ConcatOp>(pieces, d);
    if (failed(concat))
      return failure();
    padded = *concat;
  }
  ab.accumulate((*this)->getOperand(0), padded);
  return success();
}

LogicalResult ConcatOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ConcatOp c = *this;
  int64_t axis = normalizedAxis(c.getAxis(), ab.typeOf(g).getRank());
  int64_t offset = 0;
  for (Value input : c.getInputs()) {
    SmallVector<int64_t> starts(ab.typeOf(g).getRank(), 0),
        limits(ab.typeOf(g).getShape()), steps(ab.typeOf(g).getRank(), 1);
    starts[axis] = offset;
    limits[axis] = offset + ab.typeOf(input).getDimSize(axis);
    offset = limits[axis];
    if (!ab.needs(input))
      continue;
    auto slice = ab.create<SliceOp>(g, starts, limits, steps);
    if (failed(slice))
      return failure();
    ab.accumulate(input, *slice);
  }
  return success();
}

LogicalResult SplitOp::buildAdjoint(AdjointBuilder &ab, ArrayRef<Value> grads) {
  SplitOp s = *this;
  SmallVector<Value> pieces;
  for (auto [i, result] : llvm::enumerate(s.getResults()))
    pieces.push_back(grads[i] ? grads[i] : ab.zerosLike(ab.typeOf(result)));
  auto concat = ab.create<ConcatOp>(pieces, s.getAxis());
  if (failed(concat))
    return failure();
  ab.accumulate((*this)->getOperand(0), *concat);
  return success();
}

LogicalResult MatmulOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  if (getTransposeLhs() || getTransposeRhs())
    return ab.refuse(*this, "it has transpose flags (run galv-fold-transposes "
                            "after galv-autodiff)");
  Value g = grads.empty() ? Value() : grads[0];
  if (ab.needs((*this)->getOperand(0)))
    ab.accumulate((*this)->getOperand(0),
                  ab.unbroadcast(MatmulOp::create(
                                     ab.b, ab.loc, g,
                                     ab.transposeLast2((*this)->getOperand(1))),
                                 ab.typeOf((*this)->getOperand(0))));
  if (ab.needs((*this)->getOperand(1)))
    ab.accumulate(
        (*this)->getOperand(1),
        ab.unbroadcast(
            MatmulOp::create(ab.b, ab.loc,
                             ab.transposeLast2((*this)->getOperand(0)), g),
            ab.typeOf((*this)->getOperand(1))));
  return success();
}

LogicalResult LinearOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  LinearOp l = *this;
  bool outIn = l.getLayout() == WeightLayout::out_in;
  Value x = l.getInput(), w = l.getWeight();
  if (ab.needs(x))
    ab.accumulate(x, LinearOp::create(ab.b, ab.loc, g, w, Value(),
                                      outIn ? WeightLayout::in_out
                                            : WeightLayout::out_in));
  int64_t k = l.getInFeatures(), n = l.getOutFeatures();
  int64_t m = ab.typeOf(x).getNumElements() / k;
  Value g2 = ab.reshape(g, {m, n}), x2 = ab.reshape(x, {m, k});
  if (ab.needs(w))
    ab.accumulate(w, outIn ? Value(MatmulOp::create(
                                 ab.b, ab.loc,
                                 TransposeOp::create(ab.b, ab.loc, g2,
                                                     ArrayRef<int64_t>{1, 0}),
                                 x2))
                           : Value(MatmulOp::create(
                                 ab.b, ab.loc,
                                 TransposeOp::create(ab.b, ab.loc, x2,
                                                     ArrayRef<int64_t>{1, 0}),
                                 g2)));
  if (l.getBias() && ab.needs(l.getBias()))
    ab.accumulate(l.getBias(),
                  ReduceOp::create(ab.b, ab.loc, ReduceKind::sum, g2,
                                   ArrayRef<int64_t>{0}, false));
  return success();
}

LogicalResult EmbeddingOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  EmbeddingOp e = *this;
  RankedTensorType table = ab.typeOf(e.getTable());
  // The padding row (torch.nn.Embedding's padding_idx) gets no gradient.
  ab.accumulate(e.getTable(),
                EmbeddingGradOp::create(
                    ab.b, ab.loc, table, g, e.getIds(), table.getDimSize(0),
                    e.getPaddingIdxAttr(), e.getVocabGroupAttr()));
  return success();
}

/// Scatter-adds the gathered slices back: the gathered axis moves to the
/// front, every other data axis flattens into a row, and the row gradient
/// (galv.embedding_grad) moves back.
LogicalResult GatherOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  GatherOp gather = *this;
  RankedTensorType data = ab.typeOf(gather.getData());
  if (!g || !ab.needs(gather.getData()))
    return success();
  int64_t rank = data.getRank();
  int64_t axis = normalizedAxis(gather.getAxis(), rank);
  int64_t n = data.getDimSize(axis);
  int64_t q = ab.typeOf(gather.getIndices()).getRank();
  // g is data[:axis] + indices + data[axis+1:]: index dimensions first.
  SmallVector<int64_t> toFront, rest;
  for (int64_t d = 0; d < q; ++d)
    toFront.push_back(axis + d);
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis) {
      toFront.push_back(d < axis ? d : d + q - 1);
      rest.push_back(data.getDimSize(d));
    }
  Value front = g;
  if (!llvm::equal(toFront, llvm::seq<int64_t>(0, toFront.size()))) {
    auto moved = ab.create<TransposeOp>(g, toFront);
    if (failed(moved))
      return failure();
    front = *moved;
  }
  int64_t rowSize = data.getNumElements() / std::max<int64_t>(n, 1);
  int64_t count = ab.typeOf(gather.getIndices()).getNumElements();
  Value ids = ab.reshape(
      nonNegativeIndices(ab.b, ab.loc, gather.getIndices(), n), {count});
  auto tableType = RankedTensorType::get({n, rowSize}, data.getElementType());
  Value table = EmbeddingGradOp::create(
      ab.b, ab.loc, tableType, ab.reshape(front, {count, rowSize}), ids, n);
  SmallVector<int64_t> unflat = {n};
  llvm::append_range(unflat, rest);
  Value grad = ab.reshape(table, unflat);
  if (axis != 0) {
    SmallVector<int64_t> back;
    for (int64_t d = 1; d <= axis; ++d)
      back.push_back(d);
    back.push_back(0);
    for (int64_t d = axis + 1; d < rank; ++d)
      back.push_back(d);
    auto moved = ab.create<TransposeOp>(grad, back);
    if (failed(moved))
      return failure();
    grad = *moved;
  }
  ab.accumulate(gather.getData(), grad);
  return success();
}

LogicalResult ReduceOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ReduceOp r = *this;
  if (r.getKind() != ReduceKind::sum && r.getKind() != ReduceKind::mean)
    return ab.refuse(*this, "only sum and mean");
  RankedTensorType input = ab.typeOf((*this)->getOperand(0));
  SmallVector<int64_t> kept(input.getShape());
  int64_t count = 1;
  for (int64_t a : r.getAxes()) {
    kept[a] = 1;
    count *= input.getDimSize(a);
  }
  Value spread = ExpandOp::create(ab.b, ab.loc, input, ab.reshape(g, kept));
  if (r.getKind() == ReduceKind::mean)
    spread = ab.scale(spread, 1.0 / count);
  ab.accumulate((*this)->getOperand(0), spread);
  return success();
}

LogicalResult SoftmaxOp::buildAdjoint(AdjointBuilder &ab,
                                      ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  SoftmaxOp s = *this;
  Value y = s.getResult();
  int64_t axis = normalizedAxis(s.getAxis(), ab.typeOf(y).getRank());
  auto dot = ab.create<ReduceOp>(ReduceKind::sum, ab.mul(g, y),
                                 ArrayRef<int64_t>{axis}, true);
  if (failed(dot))
    return failure();
  ab.accumulate((*this)->getOperand(0), ab.mul(y, ab.sub(g, *dot)));
  return success();
}

LogicalResult LayerNormOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  LayerNormOp ln = *this;
  Value x = ln.getInput(), scale = ln.getScale(), bias = ln.getBias();
  bool needsBias = bias && ab.needs(bias);
  if (ab.fusedBackward) {
    if (!ab.needs(x) && !ab.needs(scale) && !needsBias)
      return success();
    RankedTensorType st = ab.typeOf(scale);
    auto fused = LayerNormGradOp::create(ab.b, ab.loc, ab.typeOf(x), st, st, x,
                                         scale, g, ln.getEpsilonAttr());
    ab.accumulate(x, fused.getDinput());
    ab.accumulate(scale, fused.getDscale());
    if (needsBias)
      ab.accumulate(bias, fused.getDbias());
    return success();
  }
  double eps = ln.getEpsilon().convertToDouble();
  Value centred = ab.sub(x, ab.meanLast(x));
  Value rstd = RsqrtOp::create(ab.b, ab.loc,
                               ab.add(ab.meanLast(ab.mul(centred, centred)),
                                      ab.splat(eps, ab.typeOf(x))));
  Value xhat = ab.mul(centred, rstd);
  if (ab.needs(x)) {
    Value dxhat = ab.mul(g, ln.getScale());
    Value dx =
        ab.mul(rstd, ab.sub(ab.sub(dxhat, ab.meanLast(dxhat)),
                            ab.mul(xhat, ab.meanLast(ab.mul(dxhat, xhat)))));
    ab.accumulate(x, dx);
  }
  int64_t d = ab.typeOf(x).getShape().back();
  int64_t rows = ab.typeOf(x).getNumElements() / d;
  auto columnSum = [&](Value v) {
    return ReduceOp::create(ab.b, ab.loc, ReduceKind::sum,
                            ab.reshape(v, {rows, d}), ArrayRef<int64_t>{0},
                            false);
  };
  if (ab.needs(ln.getScale()))
    ab.accumulate(ln.getScale(), columnSum(ab.mul(g, xhat)));
  if (needsBias)
    ab.accumulate(bias, columnSum(g));
  return success();
}

LogicalResult RmsNormOp::buildAdjoint(AdjointBuilder &ab,
                                      ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  RmsNormOp rms = *this;
  Value x = rms.getInput();
  if (ab.fusedBackward) {
    Value scale = rms.getScale();
    if (!ab.needs(x) && !ab.needs(scale))
      return success();
    auto fused =
        RmsNormGradOp::create(ab.b, ab.loc, ab.typeOf(x), ab.typeOf(scale), x,
                              scale, g, rms.getEpsilonAttr());
    ab.accumulate(x, fused.getDinput());
    ab.accumulate(scale, fused.getDscale());
    return success();
  }
  double eps = rms.getEpsilon().convertToDouble();
  Value r = RsqrtOp::create(
      ab.b, ab.loc,
      ab.add(ab.meanLast(ab.mul(x, x)), ab.splat(eps, ab.typeOf(x))));
  if (ab.needs(x)) {
    Value dn = ab.mul(g, rms.getScale());
    Value dx = ab.mul(r, ab.sub(dn, ab.mul(ab.mul(x, ab.mul(r, r)),
                                           ab.meanLast(ab.mul(dn, x)))));
    ab.accumulate(x, dx);
  }
  if (ab.needs(rms.getScale())) {
    int64_t d = ab.typeOf(x).getShape().back();
    int64_t rows = ab.typeOf(x).getNumElements() / d;
    ab.accumulate(
        rms.getScale(),
        ReduceOp::create(ab.b, ab.loc, ReduceKind::sum,
                         ab.reshape(ab.mul(g, ab.mul(x, r)), {rows, d}),
                         ArrayRef<int64_t>{0}, false));
  }
  return success();
}

LogicalResult RotaryOp::buildAdjoint(AdjointBuilder &ab,
                                     ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  RotaryOp rot = *this;
  if (rot.getInterleaved())
    return ab.refuse(*this, "interleaved rotary");
  Value x = rot.getInput();
  int64_t rank = ab.typeOf(x).getRank(), dim = ab.typeOf(x).getShape().back();
  int64_t rotated = ab.typeOf(rot.getCos()).getShape().back(),
          half = rotated / 2;
  if (rotated != dim)
    return ab.refuse(*this, "partial rotary");
  // y = x cos + R(x) sin with R(x) = [-x2, x1]; R^T(z) = [z2, -z1].
  Value gs = ab.mul(g, rot.getSin());
  SmallVector<int64_t> zero(rank, 0), steps(rank, 1),
      limits(ab.typeOf(gs).getShape());
  SmallVector<int64_t> mid = zero;
  mid[rank - 1] = half;
  SmallVector<int64_t> firstLimit = limits;
  firstLimit[rank - 1] = half;
  Value z1 = SliceOp::create(ab.b, ab.loc, gs, zero, firstLimit, steps);
  Value z2 = SliceOp::create(ab.b, ab.loc, gs, mid, limits, steps);
  Value rotT = ConcatOp::create(
      ab.b, ab.loc, ValueRange{z2, NegOp::create(ab.b, ab.loc, z1)}, rank - 1);
  ab.accumulate(x, ab.add(ab.mul(g, rot.getCos()), rotT));
  return success();
}

/// The attention adjoint as matmuls, a softmax and elementwise ops: keeps
/// the [B, H, Sq, Sk] probabilities and their gradient alive, but also
/// differentiates a float mask (a learned bias).
static LogicalResult decomposedAttentionAdjoint(AttentionOp a,
                                                AdjointBuilder &ab, Value g) {
  Value q = a.getQuery(), k = a.getKey(), v = a.getValue();
  RankedTensorType qt = ab.typeOf(q), kt = ab.typeOf(k);
  int64_t batch = qt.getDimSize(0), heads = qt.getDimSize(1),
          sq = qt.getDimSize(2), kvHeads = kt.getDimSize(1),
          sk = kt.getDimSize(2);
  int64_t group = heads / kvHeads;
  auto repeat = [&](Value t) -> Value {
    if (group == 1)
      return t;
    ArrayRef<int64_t> s = ab.typeOf(t).getShape();
    Value split = ab.reshape(t, {s[0], s[1], 1, s[2], s[3]});
    Value wide =
        ExpandOp::create(ab.b, ab.loc,
                         RankedTensorType::get({s[0], s[1], group, s[2], s[3]},
                                               ab.typeOf(t).getElementType()),
                         split);
    return ab.reshape(wide, {s[0], s[1] * group, s[2], s[3]});
  };
  auto unrepeat = [&](Value t, RankedTensorType target) -> Value {
    if (group == 1)
      return t;
    ArrayRef<int64_t> s = target.getShape();
    Value split = ab.reshape(t, {s[0], s[1], group, s[2], s[3]});
    return ReduceOp::create(ab.b, ab.loc, ReduceKind::sum, split,
                            ArrayRef<int64_t>{2}, false);
  };
  double scaleValue = a.getScale().convertToDouble();
  Value kr = repeat(k), vr = repeat(v);
  Value scores = ab.scale(
      MatmulOp::create(ab.b, ab.loc, q, ab.transposeLast2(kr)), scaleValue);
  Value mask = a.getMask();
  if (mask && isa<FloatType>(ab.typeOf(mask).getElementType()))
    scores = ab.add(scores, mask);
  else if (mask)
    scores = WhereOp::create(ab.b, ab.loc, mask, scores,
                             ab.splat(-1e30, ab.typeOf(scores)));
  if (a.getCausal()) {
    SmallVector<APFloat> values;
    for (int64_t i = 0; i < sq; ++i)
      for (int64_t j = 0; j < sk; ++j)
        values.push_back(APFloat(j <= i + (sk - sq) ? 0.0f : -1e30f));
    scores = ab.add(
        scores,
        ConstantOp::create(
            ab.b, ab.loc,
            DenseElementsAttr::get(
                RankedTensorType::get({sq, sk}, qt.getElementType()), values)));
  }
  Value p = SoftmaxOp::create(ab.b, ab.loc, scores, -1);
  if (ab.needs(v))
    ab.accumulate(
        v, unrepeat(MatmulOp::create(ab.b, ab.loc, ab.transposeLast2(p), g),
                    ab.typeOf(v)));
  Value dp = MatmulOp::create(ab.b, ab.loc, g, ab.transposeLast2(vr));
  Value ds = ab.mul(p, ab.sub(dp, ab.sumLast(ab.mul(dp, p), true)));
  if (ab.needs(q))
    ab.accumulate(q,
                  ab.scale(MatmulOp::create(ab.b, ab.loc, ds, kr), scaleValue));
  if (ab.needs(k))
    ab.accumulate(k,
                  unrepeat(ab.scale(MatmulOp::create(ab.b, ab.loc,
                                                     ab.transposeLast2(ds), q),
                                    scaleValue),
                           ab.typeOf(k)));
  if (mask && ab.needs(mask))
    ab.accumulate(mask, ab.unbroadcast(ds, ab.typeOf(mask)));
  (void)batch;
  return success();
}

LogicalResult AttentionOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  Value mask = getMask();
  if (!ab.fusedAttention || (mask && ab.needs(mask)))
    return decomposedAttentionAdjoint(*this, ab, g);
  // One op that recomputes the probabilities instead of keeping them.
  auto fused =
      AttentionGradOp::create(ab.b, ab.loc, getQuery(), getKey(), getValue(), g,
                              mask, getCausal(), getScale());
  ab.accumulate(getQuery(), fused.getQueryGrad());
  ab.accumulate(getKey(), fused.getKeyGrad());
  ab.accumulate(getValue(), fused.getValueGrad());
  return success();
}

LogicalResult AttentionGradOp::buildAdjoint(AdjointBuilder &ab,
                                            ArrayRef<Value>) {
  return ab.refuse(*this, "it is itself a gradient (second derivatives are "
                          "not supported)");
}

LogicalResult AllReduceOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  AllReduceOp r = *this;
  if (r.getKind() == ReduceKind::sum) {
    ab.accumulate((*this)->getOperand(0), g);
    return success();
  }
  if (r.getKind() == ReduceKind::mean) {
    ab.accumulate((*this)->getOperand(0),
                  ab.scale(g, 1.0 / r.getGroup().getSize()));
    return success();
  }
  // Max and min serve only as log-sum-exp stabilizers, whose
  // gradient cancels (see galv.all_reduce).
  return success();
}

LogicalResult ReplicateOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ReplicateOp r = *this;
  ab.accumulate(
      (*this)->getOperand(0),
      AllReduceOp::create(ab.b, ab.loc, ReduceKind::sum, g, r.getGroup()));
  return success();
}

LogicalResult AllGatherOp::buildAdjoint(AdjointBuilder &ab,
                                        ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  AllGatherOp a = *this;
  if (a.getScatterGrad())
    ab.accumulate(
        (*this)->getOperand(0),
        ReduceScatterOp::create(ab.b, ab.loc, g, a.getAxis(), a.getGroup()));
  else
    ab.accumulate(
        (*this)->getOperand(0),
        ShardSliceOp::create(ab.b, ab.loc, g, a.getAxis(), a.getGroup()));
  return success();
}

LogicalResult StageTransferOp::buildAdjoint(AdjointBuilder &ab,
                                            ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  StageTransferOp t = *this;
  ab.accumulate(
      (*this)->getOperand(0),
      StageTransferOp::create(ab.b, ab.loc, g, t.getTo(), t.getFrom()));
  return success();
}

LogicalResult StageBroadcastOp::buildAdjoint(AdjointBuilder &ab,
                                             ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  ab.accumulate((*this)->getOperand(0), g);
  return success();
}

LogicalResult AllToAllOp::buildAdjoint(AdjointBuilder &ab,
                                       ArrayRef<Value> grads) {
  Value g = grads.empty() ? Value() : grads[0];
  AllToAllOp a = *this;
  ab.accumulate((*this)->getOperand(0),
                AllToAllOp::create(ab.b, ab.loc, g, a.getConcatAxis(),
                                   a.getSplitAxis(), a.getGroup()));
  return success();
}

/// y = x - logsumexp(x): dx = g - softmax(x) sum(g) = g - exp(y) sum(g).
LogicalResult LogSoftmaxOp::buildAdjoint(AdjointBuilder &ab,
                                         ArrayRef<Value> grads) {
  Value g = grads[0], y = getResult();
  int64_t axis = normalizedAxis(getAxis(), ab.typeOf(y).getRank());
  auto total =
      ab.create<ReduceOp>(ReduceKind::sum, g, ArrayRef<int64_t>{axis}, true);
  if (failed(total))
    return failure();
  ab.accumulate(getInput(),
                ab.sub(g, ab.mul(ExpOp::create(ab.b, ab.loc, y), *total)));
  return success();
}

// An index: integer results carry no gradient (the driver only follows
// float values, so this is never asked for one).
LogicalResult ArgMaxOp::buildAdjoint(AdjointBuilder &, ArrayRef<Value>) {
  return success();
}
