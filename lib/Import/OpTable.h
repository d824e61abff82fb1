//===- OpTable.h - ONNX op handlers, one per op type -------------*- C++
//-*-===//
//
// Every ONNX op the importer maps to galv IR has one handler, registered
// under its op type in the OpTable. A handler sees its node through an
// OpContext: the inputs (as IR values, or as host constants where the op
// needs them known), attribute readers, the builder and the node's location.
// The importer does what is common to every node (input-count checks,
// insertion point, checking that every named output was set) around the
// call, so a handler only maps the op.
//
// Handlers live in Ops/, one file per category of op (see
// docs/ARCHITECTURE.md, "ONNX import", for how to add one).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_IMPORT_OPTABLE_H
#define GALVATRON_IMPORT_OPTABLE_H

#include "HostTensor.h"

#include "Galv/Builders.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringMap.h"

#include <optional>
#include <string>

namespace onnx {
class AttributeProto;
class NodeProto;
class TensorProto;
} // namespace onnx

namespace mlir::galv::onnx_import {

/// What is known about one ONNX value name.
struct Entry {
  Value value;                        // the IR value, once emitted
  std::optional<HostTensor> constant; // its value, when known
  RankedTensorType type;
  /// Initializer name when this is a weight (float, more than one element).
  std::string parameter;
  /// Initializer name of a non-weight initializer whose data a shapes-only
  /// import does not have: any use of its values is an error.
  std::string absent;
  /// A data-movement op on a weight, not evaluated or emitted yet.
  const onnx::NodeProto *deferred = nullptr;
  /// Which of the deferred node's outputs this is (Identity copies keep it).
  int deferredResult = 0;
  bool isConstantAvailable() const {
    return constant || !parameter.empty() || deferred || !absent.empty();
  }
  bool isWeightDerived() const { return !parameter.empty() || deferred; }
  /// Reads a trainable parameter: never folded (its gradient would be lost).
  bool trainable = false;
};

/// The importer's state that a handler reaches through its OpContext:
/// values are materialized (parameters read, deferred nodes emitted) and
/// constants evaluated on demand, by the importer.
class ImporterServices {
public:
  virtual ~ImporterServices();
  virtual FailureOr<Value> materialize(Entry &entry, Location loc) = 0;
  virtual FailureOr<const HostTensor *> constantOf(Entry &entry,
                                                   Location loc) = 0;
  /// A tensor attribute's value (Constant's `value`).
  virtual FailureOr<HostTensor> hostTensor(const onnx::TensorProto &proto,
                                           Location loc) = 0;
  /// An ONNX TensorProto data type as an MLIR element type, or null.
  virtual Type elementType(int32_t onnxType) = 0;
  /// The node's name, or "OpType#index" for an unnamed node.
  virtual std::string nodeName(const onnx::NodeProto &node) = 0;
  virtual int64_t opsetVersion() = 0;
  /// The entry of an ONNX value name, created when new.
  virtual Entry &entry(StringRef name) = 0;
};

/// An ONNX attribute's type as the protobuf spells it (for messages).
const char *attrTypeName(int type);
/// The attribute `name` of `node`, or null.
const onnx::AttributeProto *findAttr(const onnx::NodeProto &node,
                                     StringRef name);

/// One node on its way to IR: what its handler reads and writes.
class OpContext {
public:
  OpContext(ImporterServices &importer, OpBuilder &builder,
            const onnx::NodeProto &node, ArrayRef<Entry *> inputs, Location loc)
      : node(node), builder(builder), loc(loc), inputs(inputs),
        importer(importer) {}

  const onnx::NodeProto &node;
  OpBuilder &builder;
  Location loc;
  /// One per listed input; null where the node leaves an optional input out.
  ArrayRef<Entry *> inputs;

  MLIRContext *getContext() { return builder.getContext(); }
  StringRef opType() const;
  int64_t numOutputs() const;

  // Diagnostics, at the node's location.
  /// "'OpType' (node 'name')".
  std::string describe();
  InFlightDiagnostic error() { return emitError(loc); }
  /// "unsupported ONNX op 'OpType' (node 'name', opset N)".
  InFlightDiagnostic unsupported();
  /// "while importing 'OpType' (node 'name')": an op rejected its operands.
  InFlightDiagnostic importError() {
    return error() << "while importing " << describe();
  }

  // Inputs.
  bool hasInput(size_t i) const { return i < inputs.size() && inputs[i]; }
  /// Fails unless the first `n` inputs are all present.
  LogicalResult needInputs(size_t n);
  /// Input `i` as an IR value.
  FailureOr<Value> in(size_t i);
  /// Input `i`, which must be known at compile time (shapes, axes, sizes),
  /// as integers.
  FailureOr<SmallVector<int64_t>> constIn(size_t i);
  /// Axes given as input 1 (opset >= 13/18) or as the `axes` attribute.
  FailureOr<std::optional<SmallVector<int64_t>>> axesOperand();

  // Attributes: absent is an empty optional, a wrong type an error.
  const onnx::AttributeProto *findAttr(StringRef name);
  FailureOr<std::optional<int64_t>> intAttr(StringRef name);
  FailureOr<std::optional<double>> floatAttr(StringRef name);
  FailureOr<std::optional<SmallVector<int64_t>>> intsAttr(StringRef name);
  Type elementType(int32_t onnxType) { return importer.elementType(onnxType); }
  FailureOr<HostTensor> hostTensor(const onnx::TensorProto &proto) {
    return importer.hostTensor(proto, loc);
  }

  // Results.
  /// Binds output `index` to `value`; outputs the node does not name (or
  /// names "") are unused.
  void setOutput(int index, Value value);
  /// Binds output `index` to a constant known on the host.
  void setConstant(int index, HostTensor value);
  LogicalResult result(Value value) {
    setOutput(0, value);
    return success();
  }
  /// Verifies an op whose result types it inferred itself, so that a shape
  /// error names this node.
  LogicalResult checkResult(Operation *created);
  /// Whether OpTy infers result types for `operands`; reports at the node
  /// when it does not (before anything is built).
  template <typename OpTy>
  LogicalResult checkInferable(ArrayRef<Value> operands) {
    SmallVector<Type> inferred;
    SmallVector<Value> adaptorOperands(operands);
    typename OpTy::Adaptor adaptor(adaptorOperands);
    if (failed(OpTy::inferReturnTypes(getContext(), loc, adaptor, inferred)))
      return importError();
    return success();
  }
  /// Creates an op whose result types the op infers, reporting (instead of
  /// aborting on) operands it rejects.
  template <typename OpTy, typename... Args>
  FailureOr<OpTy> createInferred(unsigned numResults, Args &&...args) {
    return galv::createInferred<OpTy>(builder, loc, loc, numResults,
                                      std::forward<Args>(args)...);
  }
  /// `value` reshaped to `shape` (itself when the shape is unchanged).
  Value reshapeTo(Value value, ArrayRef<int64_t> shape);
  /// `value` with dimension `from` moved to position `to`, the others in
  /// order (itself when from == to).
  Value moveAxis(Value value, int64_t from, int64_t to);
  /// The sum over the last axis of `values` where `mask` (broadcast to it)
  /// holds: how CumSum and GatherElements run, one selected term per sum
  /// for a gather.
  Value sumWhere(Value mask, Value values);

private:
  ImporterServices &importer;
};

inline RankedTensorType typeOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}
inline int64_t normAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

using OpHandler = LogicalResult (*)(OpContext &);

/// How the importer treats one op type.
struct OpInfo {
  OpHandler handler = nullptr;
  /// Leading inputs that must be present; checked before the handler runs.
  unsigned minInputs = 0;
  /// The op's result is computed on the host from attributes and input
  /// types alone (Constant, Shape, Size): it never needs input values and
  /// runs before constant folding is considered.
  bool fromTypes = false;
};

/// The handlers, keyed by ONNX op type.
class OpTable {
public:
  /// Registers `handler` for `opType`; an op type registers once.
  void add(StringRef opType, OpHandler handler, unsigned minInputs = 0);
  void addFromTypes(StringRef opType, OpHandler handler);
  const OpInfo *lookup(StringRef opType) const;

  /// The table with every file's handlers, built on first use.
  static const OpTable &get();

private:
  void insert(StringRef opType, OpInfo info);
  llvm::StringMap<OpInfo> ops;
};

// One per file under Ops/.
void registerConstantOps(OpTable &table);
void registerElementwiseOps(OpTable &table);
void registerDataMovementOps(OpTable &table);
void registerContractionOps(OpTable &table);
void registerReductionOps(OpTable &table);

} // namespace mlir::galv::onnx_import

#endif // GALVATRON_IMPORT_OPTABLE_H
