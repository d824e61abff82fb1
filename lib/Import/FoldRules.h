//===- FoldRules.h - host folding rules, one per ONNX op ---------*- C++
//-*-===//
//
// foldONNXOp evaluates an ONNX op on constant HostTensors through the rule
// registered for its op type in the FoldTable. A rule sees the op through a
// Folder: the inputs (the leading ones it requires are checked before it
// runs), the attributes, and helpers for elementwise maps with broadcasting
// and for gathers of input elements. Rules live beside the op's importer
// handler in Ops/.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_IMPORT_FOLDRULES_H
#define GALVATRON_IMPORT_FOLDRULES_H

#include "HostTensor.h"

#include "llvm/ADT/StringMap.h"

namespace mlir::galv::onnx_import {

using FoldInputs = ArrayRef<const HostTensor *>;

/// One op being evaluated on the host: what its rule reads and writes.
struct Folder {
  StringRef op;
  FoldInputs in;
  const FoldAttributes &attrs;
  MLIRContext *context;
  SmallVectorImpl<HostTensor> &out;
  std::string &error;

  /// Folding is for shape computations and small tables: results above this
  /// many elements are refused (the op stays IR, or the import fails).
  static constexpr int64_t kMaxFoldElements = int64_t{1} << 26;

  /// Records `message` as the reason folding failed; returns false.
  bool fail(const Twine &message);
  /// Whether a result of `shape` is well formed and small enough to fold.
  bool shapeOk(ArrayRef<int64_t> shape);
  /// Normalises `axis` for a tensor of `rank`; fails when out of range.
  bool axisOk(int64_t &axis, int64_t rank);

  /// Applies an elementwise function to the first `arity` inputs (all of
  /// them for variadic ops), broadcasting.
  bool elementwise(Type resultType,
                   const std::function<double(ArrayRef<double>)> &floatFn,
                   const std::function<int64_t(ArrayRef<int64_t>)> &intFn,
                   size_t arity = 0);
  /// A binary elementwise op on inputs of one element type; comparisons and
  /// logic ops give i1 (`boolResult`).
  bool binary(const std::function<double(double, double)> &f,
              const std::function<int64_t(int64_t, int64_t)> &g,
              bool boolResult = false);
  /// A unary op on a floating-point input.
  bool unary(const std::function<double(double)> &f);
  /// Copies elements of in[0] into a new tensor of `shape`, element `i`
  /// coming from flat source index `source(i)`.
  bool gatherElements(ArrayRef<int64_t> shape,
                      const std::function<int64_t(int64_t)> &source);
  /// in[0] with a new shape of the same element count.
  bool reshapeTo(ArrayRef<int64_t> shape);
  /// Axes from input `inputIndex` (newer opsets) or the `axes` attribute.
  std::optional<SmallVector<int64_t>> axesFromInputOrAttr(size_t inputIndex);
};

/// Evaluates one op type; false with `Folder::error` set when it cannot.
using FoldRule = bool (*)(Folder &);

struct FoldInfo {
  FoldRule rule = nullptr;
  /// Leading inputs that must be present; checked before the rule runs.
  unsigned requiredInputs = 1;
  /// Max, Min and Concat need every input they list.
  bool variadic = false;
};

/// The fold rules, keyed by ONNX op type.
class FoldTable {
public:
  /// Registers `rule` for `opType`; an op type registers once.
  void add(StringRef opType, FoldRule rule, unsigned requiredInputs = 1);
  void addVariadic(StringRef opType, FoldRule rule);
  const FoldInfo *lookup(StringRef opType) const;

  /// The table with every file's rules, built on first use.
  static const FoldTable &get();

private:
  void insert(StringRef opType, FoldInfo info);
  llvm::StringMap<FoldInfo> rules;
};

// One per file under Ops/ (each beside that file's importer handlers).
void registerConstantFolds(FoldTable &table);
void registerElementwiseFolds(FoldTable &table);
void registerDataMovementFolds(FoldTable &table);
void registerContractionFolds(FoldTable &table);
void registerReductionFolds(FoldTable &table);

// Index helpers shared by the rules.
int64_t product(ArrayRef<int64_t> shape);
SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape);
/// Flat index into a tensor of `inShape` broadcast to the multi-index
/// `outIndex` of the result.
int64_t broadcastSource(ArrayRef<int64_t> outIndex, ArrayRef<int64_t> inShape);
/// The multi-index of flat index `flat` in a tensor of `shape`.
void unflatten(int64_t flat, ArrayRef<int64_t> shape,
               SmallVectorImpl<int64_t> &index);
/// Walks a broadcast result's elements in order, keeping the flat index each
/// input is read at: O(1) per element on average, where unflatten and
/// broadcastSource cost O(rank) (folds of [S, S] attention masks).
class BroadcastCursor {
public:
  BroadcastCursor(ArrayRef<int64_t> outShape,
                  ArrayRef<ArrayRef<int64_t>> inShapes);
  /// Flat index into input `k` at the current element.
  int64_t source(size_t k) const { return offsets[k]; }
  /// Moves to the next element.
  void next();

private:
  SmallVector<int64_t> shape, index, offsets;
  /// Per input, the step of its flat index per output dimension (0 where
  /// the input is broadcast).
  SmallVector<SmallVector<int64_t>> steps;
};
/// numpy broadcasting of `shapes`, or nothing when they do not broadcast.
std::optional<SmallVector<int64_t>>
broadcast(ArrayRef<ArrayRef<int64_t>> shapes);
/// A tensor's elements as integers.
SmallVector<int64_t> intsOf(const HostTensor &t);

} // namespace mlir::galv::onnx_import

#endif // GALVATRON_IMPORT_FOLDRULES_H
