//===- Matchers.h - helpers for recognising decomposed ops ------*- C++ -*-===//

#ifndef GALVATRON_TRANSFORMS_MATCHERS_H
#define GALVATRON_TRANSFORMS_MATCHERS_H

#include "Galv/Galv.h"

#include <optional>

namespace mlir::galv {

/// The value of a constant whose elements are all equal (a splat), as a
/// double.
std::optional<double> getSplatValue(Value value);

/// True when `value` is the splat constant `expected` within `relTol`.
bool isSplatNear(Value value, double expected, double relTol = 1e-4);

/// True when `value` is a parameter read, possibly through reshapes and
/// transposes (the forms exporters leave weights in).
bool isParameterLike(Value value);

/// Operands of a binary op of type OpTy when `value` is its result; for a
/// commutative op `lhs` and `rhs` may come in either order, so both orders
/// are tried through `match`.
template <typename OpTy>
bool matchBinary(Value value, function_ref<bool(Value, Value)> match) {
  auto op = value.getDefiningOp<OpTy>();
  if (!op)
    return false;
  if (match(op.getLhs(), op.getRhs()))
    return true;
  return OpTy::template hasTrait<OpTrait::IsCommutative>() &&
         match(op.getRhs(), op.getLhs());
}

/// Flattens a tree of galv.mul ops rooted at `value` into its factors.
/// Intermediate products must have a single use (so no other computation
/// depends on them) unless `allowShared`.
void collectFactors(Value value, SmallVectorImpl<Value> &factors,
                    bool isRoot = true);

/// Flattens a tree of galv.add ops into its terms.
void collectTerms(Value value, SmallVectorImpl<Value> &terms,
                  bool isRoot = true);

/// Removes the one factor or term that is a splat near `expected`; returns
/// false when there is none.
bool takeSplat(SmallVectorImpl<Value> &values, double expected);

/// Shape of a ranked tensor value.
inline ArrayRef<int64_t> shapeOf(Value value) {
  return cast<RankedTensorType>(value.getType()).getShape();
}

/// True when `value` is a mean over the last dimension of `input` that keeps
/// that dimension (as size 1).
bool isMeanOverLastDim(Value value, Value &input);

} // namespace mlir::galv

#endif // GALVATRON_TRANSFORMS_MATCHERS_H
