//===- OpTable.cpp - the ONNX op registry and OpContext -------------------===//

#include "OpTable.h"

#include "Galv/Galv.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/ErrorHandling.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

ImporterServices::~ImporterServices() = default;

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

const char *mlir::galv::onnx_import::attrTypeName(int type) {
  switch (type) {
  case onnx::AttributeProto::FLOAT:
    return "FLOAT";
  case onnx::AttributeProto::INT:
    return "INT";
  case onnx::AttributeProto::STRING:
    return "STRING";
  case onnx::AttributeProto::TENSOR:
    return "TENSOR";
  case onnx::AttributeProto::FLOATS:
    return "FLOATS";
  case onnx::AttributeProto::INTS:
    return "INTS";
  default:
    return "another type";
  }
}

const onnx::AttributeProto *
mlir::galv::onnx_import::findAttr(const onnx::NodeProto &node, StringRef name) {
  for (const auto &attr : node.attribute())
    if (attr.name() == name)
      return &attr;
  return nullptr;
}

const onnx::AttributeProto *OpContext::findAttr(StringRef name) {
  return onnx_import::findAttr(node, name);
}

FailureOr<std::optional<int64_t>> OpContext::intAttr(StringRef name) {
  const onnx::AttributeProto *attr = findAttr(name);
  if (!attr)
    return std::optional<int64_t>();
  if (attr->type() != onnx::AttributeProto::INT)
    return error() << "attribute '" << name << "' of " << describe()
                   << " must be INT, got " << attrTypeName(attr->type());
  return std::optional<int64_t>(attr->i());
}

FailureOr<std::optional<double>> OpContext::floatAttr(StringRef name) {
  const onnx::AttributeProto *attr = findAttr(name);
  if (!attr)
    return std::optional<double>();
  if (attr->type() != onnx::AttributeProto::FLOAT)
    return error() << "attribute '" << name << "' of " << describe()
                   << " must be FLOAT, got " << attrTypeName(attr->type());
  return std::optional<double>(attr->f());
}

FailureOr<std::optional<SmallVector<int64_t>>>
OpContext::intsAttr(StringRef name) {
  const onnx::AttributeProto *attr = findAttr(name);
  if (!attr)
    return std::optional<SmallVector<int64_t>>();
  if (attr->type() != onnx::AttributeProto::INTS)
    return error() << "attribute '" << name << "' of " << describe()
                   << " must be INTS, got " << attrTypeName(attr->type());
  return std::optional<SmallVector<int64_t>>(
      SmallVector<int64_t>(attr->ints().begin(), attr->ints().end()));
}

//===----------------------------------------------------------------------===//
// OpContext
//===----------------------------------------------------------------------===//

StringRef OpContext::opType() const { return node.op_type(); }

int64_t OpContext::numOutputs() const { return node.output_size(); }

std::string OpContext::describe() {
  return "'" + node.op_type() + "' (node '" + importer.nodeName(node) + "')";
}

InFlightDiagnostic OpContext::unsupported() {
  return error() << "unsupported ONNX op '" << opType() << "' (node '"
                 << importer.nodeName(node) << "', opset "
                 << importer.opsetVersion() << ")";
}

LogicalResult OpContext::needInputs(size_t n) {
  if (inputs.size() < n ||
      llvm::any_of(inputs.take_front(n), [](Entry *e) { return !e; }))
    return error() << describe() << " needs " << n << " inputs";
  return success();
}

FailureOr<Value> OpContext::in(size_t i) {
  if (!hasInput(i))
    return error() << describe() << " is missing input " << i;
  return importer.materialize(*inputs[i], loc);
}

FailureOr<SmallVector<int64_t>> OpContext::constIn(size_t i) {
  if (!hasInput(i))
    return error() << describe() << " needs input " << i;
  if (!inputs[i]->isConstantAvailable())
    return error() << describe() << " input " << i << " ('" << node.input(i)
                   << "') must be a constant once shapes are fixed";
  auto c = importer.constantOf(*inputs[i], loc);
  if (failed(c))
    return failure();
  SmallVector<int64_t> v;
  for (int64_t k = 0; k < (*c)->size(); ++k)
    v.push_back((*c)->getInt(k));
  return v;
}

FailureOr<std::optional<SmallVector<int64_t>>> OpContext::axesOperand() {
  if (hasInput(1)) {
    auto c = constIn(1);
    if (failed(c))
      return failure();
    SmallVector<int64_t> axes = std::move(*c);
    return std::optional<SmallVector<int64_t>>(std::move(axes));
  }
  return intsAttr("axes");
}

void OpContext::setOutput(int index, Value value) {
  if (index >= node.output_size() || node.output(index).empty())
    return;
  Entry &out = importer.entry(node.output(index));
  out = Entry();
  out.value = value;
  out.type = cast<RankedTensorType>(value.getType());
}

void OpContext::setConstant(int index, HostTensor value) {
  Entry &out = importer.entry(node.output(index));
  out = Entry();
  out.type = value.getType();
  out.constant = std::move(value);
}

LogicalResult OpContext::checkResult(Operation *created) {
  if (failed(mlir::verify(created, /*verifyRecursively=*/false)))
    return importError();
  return success();
}

Value OpContext::reshapeTo(Value value, ArrayRef<int64_t> shape) {
  auto type = RankedTensorType::get(shape, typeOf(value).getElementType());
  if (type == value.getType())
    return value;
  return ReshapeOp::create(builder, loc, type, value);
}

Value OpContext::moveAxis(Value value, int64_t from, int64_t to) {
  if (from == to)
    return value;
  SmallVector<int64_t> perm;
  for (int64_t d = 0, rank = typeOf(value).getRank(); d < rank; ++d)
    if (d != from)
      perm.push_back(d);
  perm.insert(perm.begin() + to, from);
  return TransposeOp::create(builder, loc, value, perm);
}

Value OpContext::sumWhere(Value mask, Value values) {
  Type element = typeOf(values).getElementType();
  Value zero = ConstantOp::create(
      builder, loc,
      DenseElementsAttr::get(RankedTensorType::get({}, element),
                             builder.getZeroAttr(element)));
  Value kept = WhereOp::create(builder, loc, mask, values, zero);
  int64_t last = typeOf(kept).getRank() - 1;
  return ReduceOp::create(builder, loc, ReduceKind::sum, kept,
                          ArrayRef<int64_t>{last}, false);
}

//===----------------------------------------------------------------------===//
// OpTable
//===----------------------------------------------------------------------===//

void OpTable::insert(StringRef opType, OpInfo info) {
  if (!ops.try_emplace(opType, info).second)
    llvm::report_fatal_error("ONNX op '" + opType +
                             "' has two importer handlers");
}

void OpTable::add(StringRef opType, OpHandler handler, unsigned minInputs) {
  OpInfo info;
  info.handler = handler;
  info.minInputs = minInputs;
  insert(opType, info);
}

void OpTable::addFromTypes(StringRef opType, OpHandler handler) {
  OpInfo info;
  info.handler = handler;
  info.fromTypes = true;
  insert(opType, info);
}

const OpInfo *OpTable::lookup(StringRef opType) const {
  auto it = ops.find(opType);
  return it == ops.end() ? nullptr : &it->second;
}

const OpTable &OpTable::get() {
  // Built explicitly rather than by static registrar objects: the importer
  // is a static library, and the linker drops object files that nothing
  // references, registrars and all.
  static const OpTable table = [] {
    OpTable t;
    registerConstantOps(t);
    registerElementwiseOps(t);
    registerDataMovementOps(t);
    registerContractionOps(t);
    registerReductionOps(t);
    return t;
  }();
  return table;
}
