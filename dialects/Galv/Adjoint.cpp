//===- Adjoint.cpp - builders for the adjoint rules -----------------------===//

#include "Galv/Adjoint.h"

using namespace mlir;
using namespace mlir::galv;

void AdjointBuilder::accumulate(Value v, Value g) {
  // A parameter gathered again for the backward pass collects its gradient
  // on the forward gather.
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

LogicalResult AdjointBuilder::refuse(Operation *op, const Twine &why) {
  return op->emitError("no gradient for '")
         << op->getName() << "'" << (why.isTriviallyEmpty() ? "" : ": ") << why;
}

Value AdjointBuilder::splat(double value, RankedTensorType like) {
  auto type = RankedTensorType::get({}, like.getElementType());
  return ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(type,
                             b.getFloatAttr(like.getElementType(), value)));
}

Value AdjointBuilder::zerosLike(RankedTensorType type) {
  return ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(type, b.getFloatAttr(type.getElementType(), 0)));
}

Value AdjointBuilder::reshape(Value x, ArrayRef<int64_t> shape) {
  auto type = RankedTensorType::get(shape, typeOf(x).getElementType());
  return type == x.getType() ? x : Value(ReshapeOp::create(b, loc, type, x));
}

Value AdjointBuilder::transposeLast2(Value x) {
  int64_t r = typeOf(x).getRank();
  SmallVector<int64_t> perm;
  for (int64_t d = 0; d < r; ++d)
    perm.push_back(d);
  std::swap(perm[r - 1], perm[r - 2]);
  return TransposeOp::create(b, loc, x, perm);
}

Value AdjointBuilder::sumLast(Value x, bool keep) {
  int64_t r = typeOf(x).getRank();
  return ReduceOp::create(b, loc, ReduceKind::sum, x, ArrayRef<int64_t>{r - 1},
                          keep);
}

Value AdjointBuilder::meanLast(Value x) {
  int64_t r = typeOf(x).getRank();
  return ReduceOp::create(b, loc, ReduceKind::mean, x, ArrayRef<int64_t>{r - 1},
                          true);
}

Value AdjointBuilder::asFloat(Value mask, RankedTensorType like) {
  return CastOp::create(
      b, loc,
      RankedTensorType::get(typeOf(mask).getShape(), like.getElementType()),
      mask);
}

Value AdjointBuilder::unbroadcast(Value g, RankedTensorType target) {
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

Value AdjointBuilder::oneHot(Value ids, int64_t classes, Type element) {
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

Value AdjointBuilder::columnSum(Value v) {
  int64_t d = typeOf(v).getShape().back();
  int64_t rows = typeOf(v).getNumElements() / d;
  return ReduceOp::create(b, loc, ReduceKind::sum, reshape(v, {rows, d}),
                          ArrayRef<int64_t>{0}, false);
}
