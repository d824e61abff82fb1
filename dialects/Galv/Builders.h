//===- Builders.h - galv ops built safely, shared helpers -------*- C++ -*-===//
//
// What the importer, the adjoint rules and the partition rules share when
// they build galv ops: creation that reports instead of aborting, and index
// tensors.
//
//===----------------------------------------------------------------------===//

#ifndef GALV_BUILDERS_H
#define GALV_BUILDERS_H

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"

namespace mlir::galv {

/// Creates an OpTy whose result types it infers, as OpTy::create does; where
/// OpTy::create aborts the process on operands the op rejects, this reports
/// why at `at` and returns failure.
template <typename OpTy, typename... Args>
FailureOr<OpTy> createInferred(OpBuilder &b, Location loc, Location at,
                               unsigned numResults, Args &&...args) {
  SmallVector<Type> placeholder(numResults, b.getNoneType());
  auto op =
      OpTy::create(b, loc, TypeRange(placeholder), std::forward<Args>(args)...);
  SmallVector<Type> types;
  if (failed(OpTy::inferReturnTypes(b.getContext(), at, op->getOperands(),
                                    op->getDiscardableAttrDictionary(),
                                    op->getPropertiesStorage(),
                                    op->getRegions(), types))) {
    op->erase();
    return failure();
  }
  for (auto [result, type] : llvm::zip(op->getResults(), types))
    result.setType(type);
  return op;
}

/// `indices` into an axis of `size` with negative entries (counted from the
/// end, as galv.gather reads them) made non-negative; `indices` itself when
/// it is a constant without negative entries.
Value nonNegativeIndices(OpBuilder &b, Location loc, Value indices,
                         int64_t size);

} // namespace mlir::galv

#endif // GALV_BUILDERS_H
