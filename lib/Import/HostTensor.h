//===- HostTensor.h - constant tensors evaluated while importing -*- C++
//-*-===//
//
// Shape sub-graphs (Shape -> Gather -> Concat -> Reshape ...) and other
// computations on constants are evaluated at import time on these small host
// tensors, so that they never reach the IR. Floating values are kept in
// double and rounded to the element type after every operation; integers and
// booleans in int64.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_IMPORT_HOSTTENSOR_H
#define GALVATRON_IMPORT_HOSTTENSOR_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/SmallVector.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mlir::galv::onnx_import {

struct HostTensor {
  Type elementType; // f16, bf16, f32, f64, i1, i8, i32, i64
  SmallVector<int64_t> shape;
  std::vector<double> floats; // floating element types
  std::vector<int64_t> ints;  // integer and i1 element types

  bool isFloat() const { return isa<FloatType>(elementType); }
  int64_t size() const;
  /// Value at flat index `i` as a double / as an int64.
  double getDouble(int64_t i) const;
  int64_t getInt(int64_t i) const;
  RankedTensorType getType() const {
    return RankedTensorType::get(shape, elementType);
  }
  DenseElementsAttr toAttr() const;
  static HostTensor fromAttr(DenseElementsAttr attr);
  /// A tensor of `type` whose every element is produced by `value(i)`.
  static HostTensor filled(Type elementType, ArrayRef<int64_t> shape);
  /// Sets element `i` from a double, rounding to the element type.
  void set(int64_t i, double value);
  void setInt(int64_t i, int64_t value);
};

/// Evaluates the ONNX op `opType` on constant inputs. `attrs` maps attribute
/// names to their integer, float, integer-list or tensor values. Returns
/// false with `error` set when the op (or this use of it) is not foldable;
/// the caller then emits it as IR instead, or reports the error.
struct FoldAttributes {
  std::function<std::optional<int64_t>(StringRef)> getInt;
  std::function<std::optional<double>(StringRef)> getFloat;
  std::function<std::optional<SmallVector<int64_t>>(StringRef)> getInts;
  /// An ONNX data-type attribute (Cast's `to`) as an MLIR element type.
  std::function<Type(StringRef)> getElementType;
  /// A tensor attribute (ConstantOfShape's `value`).
  std::function<std::optional<HostTensor>(StringRef)> getTensor;
  /// How many outputs the node has (Split without sizes divides evenly).
  int64_t numOutputs = 1;
};
bool foldONNXOp(StringRef opType, ArrayRef<const HostTensor *> inputs,
                const FoldAttributes &attrs, MLIRContext *context,
                SmallVectorImpl<HostTensor> &outputs, std::string &error);

/// The ops foldONNXOp knows.
bool isFoldableONNXOp(StringRef opType);

} // namespace mlir::galv::onnx_import

#endif // GALVATRON_IMPORT_HOSTTENSOR_H
