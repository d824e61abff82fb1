//===- Matchers.cpp - helpers for recognising decomposed ops --------------===//

#include "Matchers.h"

#include "mlir/IR/BuiltinAttributes.h"

#include <cmath>

using namespace mlir;
using namespace mlir::galv;

std::optional<double> mlir::galv::getSplatValue(Value value) {
  auto constant = value.getDefiningOp<ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!dense || !dense.isSplat())
    return std::nullopt;
  Type element = dense.getElementType();
  if (isa<FloatType>(element))
    return dense.getSplatValue<APFloat>().convertToDouble();
  if (element.isSignlessInteger() && !element.isInteger(1))
    return static_cast<double>(dense.getSplatValue<APInt>().getSExtValue());
  return std::nullopt;
}

bool mlir::galv::isSplatNear(Value value, double expected, double relTol) {
  std::optional<double> v = getSplatValue(value);
  if (!v)
    return false;
  return std::fabs(*v - expected) <=
         relTol * std::max(1.0, std::fabs(expected));
}

bool mlir::galv::isParameterLike(Value value) {
  while (Operation *op = value.getDefiningOp()) {
    if (isa<GetParameterOp>(op))
      return true;
    if (!isa<ReshapeOp, TransposeOp, CastOp>(op))
      return false;
    value = op->getOperand(0);
  }
  return false;
}

template <typename OpTy>
static void collect(Value value, SmallVectorImpl<Value> &out, bool isRoot) {
  auto op = value.getDefiningOp<OpTy>();
  // Only look through an intermediate op when nothing else uses it, and
  // only when it does not broadcast its operands to a bigger shape.
  if (!op || (!isRoot && !value.hasOneUse()) ||
      (shapeOf(op.getLhs()) != shapeOf(value) &&
       shapeOf(op.getRhs()) != shapeOf(value))) {
    out.push_back(value);
    return;
  }
  collect<OpTy>(op.getLhs(), out, false);
  collect<OpTy>(op.getRhs(), out, false);
}

void mlir::galv::collectFactors(Value value, SmallVectorImpl<Value> &factors,
                                bool isRoot) {
  collect<MulOp>(value, factors, isRoot);
}

void mlir::galv::collectTerms(Value value, SmallVectorImpl<Value> &terms,
                              bool isRoot) {
  collect<AddOp>(value, terms, isRoot);
}

bool mlir::galv::takeSplat(SmallVectorImpl<Value> &values, double expected) {
  for (auto *it = values.begin(); it != values.end(); ++it)
    if (isSplatNear(*it, expected)) {
      values.erase(it);
      return true;
    }
  return false;
}

bool mlir::galv::isMeanOverLastDim(Value value, Value &input) {
  auto reduce = value.getDefiningOp<ReduceOp>();
  if (!reduce || reduce.getKind() != ReduceKind::mean || !reduce.getKeepdims())
    return false;
  int64_t rank = shapeOf(reduce.getInput()).size();
  if (reduce.getAxes() != ArrayRef<int64_t>{rank - 1})
    return false;
  input = reduce.getInput();
  return true;
}
