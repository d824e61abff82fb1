//===- ONNXImporter.cpp - ONNX ModelProto to galv IR ----------------------===//
//
// Walks the graph's nodes in order. A node whose inputs are all known
// constants (initializers, Constant nodes, shapes of statically shaped
// values) is evaluated on the host; everything else becomes galv ops.
// Initializers that hold weights stay parameters: data-movement ops on them
// (Transpose, Gather, Reshape, ...) are deferred and only emitted as IR when
// a non-constant consumer needs them, while arithmetic on them (RoPE's
// inv_freq buffer) is evaluated like any other constant.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"

#include "HostTensor.h"

#include "Galv/Galv.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx_pb.h>

#include <chrono>
#include <cstring>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

namespace {

/// Bytes of one initializer: a view of the parsed model or of a mapped
/// external-data file, or of `owned` when the model stored typed fields.
struct RawTensor {
  const onnx::TensorProto *proto = nullptr;
  StringRef bytes; // little-endian element data
  std::string owned;
};

/// What an import keeps alive for the weights' views.
struct Storage {
  onnx::ModelProto model;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> files;
  llvm::StringMap<RawTensor> initializers;
};

/// What is known about one ONNX value name.
struct Entry {
  Value value;                        // the IR value, once emitted
  std::optional<HostTensor> constant; // its value, when known
  RankedTensorType type;
  /// Initializer name when this is a weight (float, more than one element).
  std::string parameter;
  /// A data-movement op on a weight, not evaluated or emitted yet.
  const onnx::NodeProto *deferred = nullptr;
  /// Which of the deferred node's outputs this is (Identity copies keep it).
  int deferredResult = 0;
  bool isConstantAvailable() const {
    return constant || !parameter.empty() || deferred;
  }
  bool isWeightDerived() const { return !parameter.empty() || deferred; }
};

/// Data-movement ops keep a weight a weight: their result is still the
/// parameter's values, in another layout.
bool isDataMovement(StringRef op) {
  return llvm::is_contained({"Identity", "Cast", "Reshape", "Flatten",
                             "Unsqueeze", "Squeeze", "Transpose", "Gather",
                             "Slice", "Concat", "Split", "Expand", "Tile"},
                            op);
}

class Importer {
public:
  Importer(MLIRContext *context, StringRef path,
           const ONNXImportOptions &options, Storage &storage,
           ImportedONNX &result)
      : context(context), builder(context), path(path.str()), options(options),
        weights(result.weights), timings(result.timings), files(storage.files),
        initializers(storage.initializers) {}

  OwningOpRef<ModuleOp> run(const onnx::ModelProto &model);

private:
  // Diagnostics.
  InFlightDiagnostic error(Location loc) { return emitError(loc); }
  Location fileLoc() { return FileLineColLoc::get(context, path, 0, 0); }
  Location nodeLoc(const onnx::NodeProto &node, int index);
  std::string describe(const onnx::NodeProto &node) {
    return "'" + node.op_type() + "' (node '" + nodeName(node) + "')";
  }
  std::string nodeName(const onnx::NodeProto &node) {
    return node.name().empty()
               ? node.op_type() + "#" + std::to_string(currentIndex)
               : node.name();
  }

  // Types and tensors.
  Type elementType(int32_t onnxType);
  const char *safetensorsDType(Type type);
  LogicalResult readTensor(const onnx::TensorProto &proto, Location loc,
                           RawTensor &raw, RankedTensorType &type);
  HostTensor toHost(const RawTensor &raw, RankedTensorType type);
  LogicalResult declareInput(const onnx::ValueInfoProto &info);
  FailureOr<int64_t> resolveDim(const onnx::ValueInfoProto &info, int index,
                                const onnx::TensorShapeProto::Dimension &dim);

  // Values.
  FailureOr<Value> materialize(Entry &entry, Location loc);
  FailureOr<const HostTensor *> constantOf(Entry &entry, Location loc);
  LogicalResult importNode(const onnx::NodeProto &node, Location loc);
  LogicalResult foldNode(const onnx::NodeProto &node, ArrayRef<Entry *> inputs,
                         Location loc);
  LogicalResult emitNode(const onnx::NodeProto &node, ArrayRef<Entry *> inputs,
                         Location loc);
  /// After emitting `node`, every output it names must have a value.
  LogicalResult checkOutputsSet(const onnx::NodeProto &node, Location loc) {
    for (int i = 0; i < node.output_size(); ++i)
      if (!node.output(i).empty() && !values[node.output(i)].value)
        return error(loc) << describe(node) << " names " << node.output_size()
                          << " outputs but produces fewer";
    return success();
  }

  void setOutput(const onnx::NodeProto &node, int index, Value value) {
    // Outputs a node does not name (or names "") are unused.
    if (index >= node.output_size() || node.output(index).empty())
      return;
    Entry &entry = values[node.output(index)];
    entry = Entry();
    entry.value = value;
    entry.type = cast<RankedTensorType>(value.getType());
  }

  /// Creates an op whose result types the op infers, reporting (instead of
  /// aborting on) operands it rejects.
  template <typename OpTy, typename... Args>
  FailureOr<OpTy> createInferred(Location loc, unsigned numResults,
                                 Args &&...args) {
    SmallVector<Type> placeholder(numResults, builder.getNoneType());
    auto op = OpTy::create(builder, loc, TypeRange(placeholder),
                           std::forward<Args>(args)...);
    SmallVector<Type> types;
    if (failed(OpTy::inferReturnTypes(
            context, loc, op->getOperands(), op->getDiscardableAttrDictionary(),
            op->getPropertiesStorage(), op->getRegions(), types))) {
      op->erase();
      return failure();
    }
    for (auto [result, type] : llvm::zip(op->getResults(), types))
      result.setType(type);
    return op;
  }

  // Attributes.
  const onnx::AttributeProto *findAttr(const onnx::NodeProto &node,
                                       StringRef name);
  FailureOr<std::optional<int64_t>> intAttr(const onnx::NodeProto &node,
                                            StringRef name, Location loc);
  FailureOr<std::optional<double>> floatAttr(const onnx::NodeProto &node,
                                             StringRef name, Location loc);
  FailureOr<std::optional<SmallVector<int64_t>>>
  intsAttr(const onnx::NodeProto &node, StringRef name, Location loc);
  FoldAttributes foldAttributes(const onnx::NodeProto &node, Location loc,
                                bool &failed);

  MLIRContext *context;
  OpBuilder builder;
  std::string path;
  const ONNXImportOptions &options;
  std::map<std::string, galvatron::SafetensorsView> &weights;
  ONNXImportTimings &timings;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> &files;
  llvm::StringMap<RawTensor> &initializers;

  ModuleOp module;
  int64_t opset = 0;
  int currentIndex = 0;
  llvm::StringMap<Entry> values;

  /// Inputs of deferred nodes, kept so they can be emitted later.
  DenseMap<const onnx::NodeProto *, SmallVector<std::string>> deferredInputs;
  DenseMap<const onnx::NodeProto *, int> deferredIndex;
  Block *body = nullptr;
  /// Set while result types of a deferred node are worked out.
  Block *scratchBlock = nullptr;
};

} // namespace

//===----------------------------------------------------------------------===//
// Types and tensors
//===----------------------------------------------------------------------===//

Type Importer::elementType(int32_t onnxType) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return builder.getF32Type();
  case onnx::TensorProto::DOUBLE:
    return builder.getF64Type();
  case onnx::TensorProto::FLOAT16:
    return builder.getF16Type();
  case onnx::TensorProto::BFLOAT16:
    return builder.getBF16Type();
  case onnx::TensorProto::INT64:
    return builder.getI64Type();
  case onnx::TensorProto::INT32:
    return builder.getI32Type();
  case onnx::TensorProto::INT16:
    return builder.getIntegerType(16);
  case onnx::TensorProto::INT8:
    return builder.getIntegerType(8);
  case onnx::TensorProto::UINT8:
    return builder.getIntegerType(8, /*isSigned=*/false);
  case onnx::TensorProto::BOOL:
    return builder.getI1Type();
  default:
    return nullptr;
  }
}

const char *Importer::safetensorsDType(Type type) {
  if (type.isF32())
    return "F32";
  if (type.isF64())
    return "F64";
  if (type.isF16())
    return "F16";
  if (type.isBF16())
    return "BF16";
  if (type.isInteger(64))
    return "I64";
  if (type.isInteger(32))
    return "I32";
  if (type.isInteger(16))
    return "I16";
  if (type.isUnsignedInteger(8))
    return "U8";
  if (type.isInteger(8))
    return "I8";
  if (type.isInteger(1))
    return "BOOL";
  return nullptr;
}

/// Appends `count` values of a repeated proto field as little-endian bytes of
/// `elementSize` each.
template <typename Field, typename Convert>
static void appendField(const Field &field, std::string &bytes,
                        size_t elementSize, Convert convert) {
  for (const auto &v : field) {
    auto value = convert(v);
    char buffer[8];
    std::memcpy(buffer, &value, elementSize);
    bytes.append(buffer, elementSize);
  }
}

/// Bytes of a tensor of `dims` with elements of `elementSize`, or nothing
/// when the product overflows int64: the dims come from the file, and a
/// wrapped product (say to 0) would pass every size check after it.
static std::optional<int64_t> checkedBytes(ArrayRef<int64_t> dims,
                                           int64_t elementSize) {
  std::optional<int64_t> bytes = elementSize;
  for (int64_t d : dims)
    if (!(bytes = llvm::checkedMul(*bytes, d)))
      return std::nullopt;
  return bytes;
}

/// An external_data offset or length: decimal digits and nothing else
/// (strtoull reads "-100" as a huge number and "12abc" as 12).
static std::optional<uint64_t> byteCount(StringRef text) {
  uint64_t value;
  if (text.empty() || !llvm::all_of(text, llvm::isDigit) ||
      text.getAsInteger(10, value))
    return std::nullopt;
  return value;
}

LogicalResult Importer::readTensor(const onnx::TensorProto &proto, Location loc,
                                   RawTensor &raw, RankedTensorType &type) {
  Type element = elementType(proto.data_type());
  if (!element)
    return error(loc) << "tensor '" << proto.name()
                      << "' has unsupported ONNX data type "
                      << proto.data_type();
  SmallVector<int64_t> shape;
  for (int64_t d : proto.dims()) {
    if (d < 0)
      return error(loc) << "tensor '" << proto.name()
                        << "' has a negative dimension";
    shape.push_back(d);
  }
  size_t elementSize = std::max<size_t>(1, element.getIntOrFloatBitWidth() / 8);
  std::optional<int64_t> size = checkedBytes(shape, elementSize);
  if (!size) {
    auto diag = error(loc) << "tensor '" << proto.name() << "' of dimensions [";
    llvm::interleaveComma(shape, diag);
    return diag << "] needs more bytes than fit in 64 bits";
  }
  uint64_t expected = *size;
  type = RankedTensorType::get(shape, element);
  raw.proto = &proto;
  raw.bytes = StringRef();
  raw.owned.clear();

  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    uint64_t offset = 0, length = 0;
    bool hasLength = false;
    for (const auto &kv : proto.external_data()) {
      if (kv.key() == "location") {
        location = kv.value();
        continue;
      }
      if (kv.key() != "offset" && kv.key() != "length")
        continue;
      std::optional<uint64_t> value = byteCount(kv.value());
      if (!value)
        return error(loc) << "tensor '" << proto.name() << "' external data "
                          << kv.key() << " '" << kv.value()
                          << "' is not a byte count";
      (kv.key() == "offset" ? offset : length) = *value;
      hasLength |= kv.key() == "length";
    }
    if (location.empty())
      return error(loc) << "tensor '" << proto.name()
                        << "' is external but names no location";
    bool escapes =
        llvm::any_of(llvm::make_range(llvm::sys::path::begin(location),
                                      llvm::sys::path::end(location)),
                     [](StringRef component) { return component == ".."; });
    if (llvm::sys::path::is_absolute(location) || escapes)
      return error(loc) << "tensor '" << proto.name()
                        << "' external data location '" << location
                        << "' must be a relative path inside the model's "
                           "directory";
    SmallString<256> file(llvm::sys::path::parent_path(path));
    llvm::sys::path::append(file, location);
    // Map each external file once; tensors are views into it.
    std::unique_ptr<llvm::MemoryBuffer> &mapped = files[file];
    if (!mapped) {
      auto opened = llvm::MemoryBuffer::getFile(
          file, /*IsText=*/false, /*RequiresNullTerminator=*/false);
      if (!opened) {
        files.erase(file);
        return error(loc) << "tensor '" << proto.name()
                          << "' needs external data file '" << file
                          << "': " << opened.getError().message();
      }
      mapped = std::move(*opened);
    }
    llvm::MemoryBuffer *buffer = mapped.get();
    if (!hasLength)
      length = expected;
    uint64_t fileSize = buffer->getBufferSize();
    if (length != expected || offset > fileSize || length > fileSize - offset)
      return error(loc) << "tensor '" << proto.name() << "' external data ["
                        << offset << ", " << llvm::SaturatingAdd(offset, length)
                        << ") of '" << file << "' does not hold the "
                        << expected << " bytes its shape needs (file size "
                        << buffer->getBufferSize() << ")";
    raw.bytes = StringRef(buffer->getBufferStart() + offset, length);
    return success();
  }

  if (proto.has_raw_data()) {
    raw.bytes = proto.raw_data();
    if (raw.bytes.size() != expected)
      return error(loc) << "tensor '" << proto.name() << "' holds "
                        << raw.bytes.size() << " bytes but its shape " << type
                        << " needs " << expected;
    return success();
  }
  if (element.isF32()) {
    appendField(proto.float_data(), raw.owned, 4, [](float v) { return v; });
  } else if (element.isF64()) {
    appendField(proto.double_data(), raw.owned, 8, [](double v) { return v; });
  } else if (element.isInteger(64)) {
    appendField(proto.int64_data(), raw.owned, 8, [](int64_t v) { return v; });
  } else if (element.isInteger(32)) {
    appendField(proto.int32_data(), raw.owned, 4, [](int32_t v) { return v; });
  } else if (element.isInteger(16) || element.isF16() || element.isBF16()) {
    appendField(proto.int32_data(), raw.owned, 2,
                [](int32_t v) { return static_cast<uint16_t>(v); });
  } else if (element.isInteger(8) || element.isInteger(1)) {
    appendField(proto.int32_data(), raw.owned, 1,
                [](int32_t v) { return static_cast<uint8_t>(v); });
  }
  raw.bytes = raw.owned;
  if (raw.bytes.size() != expected)
    return error(loc) << "tensor '" << proto.name() << "' holds "
                      << raw.bytes.size() << " bytes but its shape " << type
                      << " needs " << expected;
  return success();
}

HostTensor Importer::toHost(const RawTensor &raw, RankedTensorType type) {
  HostTensor t = HostTensor::filled(type.getElementType(), type.getShape());
  Type element = type.getElementType();
  const char *data = raw.bytes.data();
  for (int64_t i = 0; i < t.size(); ++i) {
    if (element.isF32()) {
      float v;
      std::memcpy(&v, data + 4 * i, 4);
      t.floats[i] = v;
    } else if (element.isF64()) {
      std::memcpy(&t.floats[i], data + 8 * i, 8);
    } else if (element.isF16() || element.isBF16()) {
      uint16_t bits;
      std::memcpy(&bits, data + 2 * i, 2);
      APFloat f(cast<FloatType>(element).getFloatSemantics(), APInt(16, bits));
      t.floats[i] = f.convertToDouble();
    } else if (element.isInteger(64)) {
      std::memcpy(&t.ints[i], data + 8 * i, 8);
    } else if (element.isInteger(32)) {
      int32_t v;
      std::memcpy(&v, data + 4 * i, 4);
      t.ints[i] = v;
    } else if (element.isInteger(16)) {
      int16_t v;
      std::memcpy(&v, data + 2 * i, 2);
      t.ints[i] = v;
    } else if (element.isUnsignedInteger(8)) {
      t.ints[i] = static_cast<uint8_t>(data[i]);
    } else if (element.isInteger(8)) {
      t.ints[i] = static_cast<int8_t>(data[i]);
    } else {
      t.ints[i] = data[i] != 0;
    }
  }
  return t;
}

//===----------------------------------------------------------------------===//
// Graph inputs
//===----------------------------------------------------------------------===//

FailureOr<int64_t>
Importer::resolveDim(const onnx::ValueInfoProto &info, int index,
                     const onnx::TensorShapeProto::Dimension &dim) {
  if (dim.has_dim_value() && dim.dim_value() > 0)
    return dim.dim_value();
  std::string name = dim.has_dim_param() ? dim.dim_param() : "";
  auto it = options.namedDims.find(name);
  if (!name.empty() && it != options.namedDims.end())
    return it->second;
  std::string lower = StringRef(name).lower();
  bool isBatch = StringRef(lower).contains("batch") ||
                 (name.empty() || !StringRef(lower).contains("seq")) &&
                     index == 0 && !StringRef(lower).contains("len");
  bool isSeq = !isBatch && (StringRef(lower).contains("seq") ||
                            StringRef(lower).contains("len") || index == 1);
  if (isBatch && options.batchSize > 0)
    return options.batchSize;
  if (isSeq && options.seqLen > 0)
    return options.seqLen;
  auto diag = emitError(fileLoc())
              << "input '" << info.name() << "' dimension " << index;
  if (!name.empty())
    diag << " ('" << name << "')";
  diag << " is not fixed: ";
  if (isBatch || isSeq) {
    diag << "give " << (isBatch ? "--batch-size" : "--seq-len");
    if (!name.empty())
      diag << " or --dim " << name << "=N";
  } else if (!name.empty()) {
    diag << "give --dim " << name << "=N";
  } else {
    diag << "it has no name to give a value to; export the model with a "
            "static size for it";
  }
  return failure();
}

LogicalResult Importer::declareInput(const onnx::ValueInfoProto &info) {
  if (!info.type().has_tensor_type())
    return emitError(fileLoc())
           << "input '" << info.name() << "' is not a tensor";
  const auto &tensorType = info.type().tensor_type();
  Type element = elementType(tensorType.elem_type());
  if (!element)
    return emitError(fileLoc())
           << "input '" << info.name() << "' has unsupported ONNX data type "
           << tensorType.elem_type();
  if (!tensorType.has_shape())
    return emitError(fileLoc())
           << "input '" << info.name() << "' has no shape (unknown rank)";
  SmallVector<int64_t> shape;
  for (int i = 0; i < tensorType.shape().dim_size(); ++i) {
    auto dim = resolveDim(info, i, tensorType.shape().dim(i));
    if (failed(dim))
      return failure();
    shape.push_back(*dim);
  }
  if (!checkedBytes(shape, 1))
    return emitError(fileLoc()) << "input '" << info.name()
                                << "' has more elements than fit in 64 bits";
  auto type = RankedTensorType::get(shape, element);
  Value arg =
      body->addArgument(type, NameLoc::get(builder.getStringAttr(info.name())));
  Entry &entry = values[info.name()];
  entry.value = arg;
  entry.type = type;
  return success();
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

Location Importer::nodeLoc(const onnx::NodeProto &node, int index) {
  std::string name = node.name().empty()
                         ? node.op_type() + "#" + std::to_string(index)
                         : node.name();
  // The dynamo exporter's names are opaque; its module scope says where in
  // the model the node comes from.
  // ONNX 1.12's schema predates NodeProto.metadata_props (field 9), so the
  // entries arrive as unknown fields.
  const auto &unknown = node.GetReflection()->GetUnknownFields(node);
  for (int f = 0; f < unknown.field_count(); ++f) {
    const google::protobuf::UnknownField &field = unknown.field(f);
    if (field.number() != 9 ||
        field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
      continue;
    onnx::StringStringEntryProto prop;
    if (!prop.ParseFromString(field.length_delimited()))
      continue;
    if (prop.key() == "pkg.torch.onnx.name_scopes") {
      StringRef scopes(prop.value());
      scopes = scopes.trim("[] ");
      StringRef last = scopes.rsplit(',').second.empty()
                           ? scopes
                           : scopes.rsplit(',').second;
      last = last.trim(" '\"");
      if (!last.empty())
        name = last.str() + "/" + name;
    }
  }
  return NameLoc::get(builder.getStringAttr(name), fileLoc());
}

FailureOr<const HostTensor *> Importer::constantOf(Entry &entry, Location loc) {
  if (entry.constant)
    return &*entry.constant;
  if (!entry.parameter.empty()) {
    entry.constant = toHost(initializers[entry.parameter], entry.type);
    return &*entry.constant;
  }
  if (entry.deferred) {
    const onnx::NodeProto &node = *entry.deferred;
    SmallVector<const HostTensor *> inputs;
    for (const std::string &name : deferredInputs[&node]) {
      if (name.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      auto input = constantOf(values[name], loc);
      if (failed(input))
        return failure();
      inputs.push_back(*input);
    }
    bool attrFailed = false;
    FoldAttributes attrs = foldAttributes(node, loc, attrFailed);
    SmallVector<HostTensor> outputs;
    std::string message;
    if (attrFailed ||
        !foldONNXOp(node.op_type(), inputs, attrs, context, outputs, message))
      return error(loc) << "cannot evaluate " << describe(node) << ": "
                        << message;
    if (entry.deferredResult >= static_cast<int>(outputs.size()))
      return error(loc) << "cannot evaluate " << describe(node);
    // Identity copies of this output hold the value too.
    entry.constant = outputs[entry.deferredResult];
    for (int i = 0; i < node.output_size() && i < (int)outputs.size(); ++i)
      if (!node.output(i).empty())
        values[node.output(i)].constant = std::move(outputs[i]);
    return &*entry.constant;
  }
  return error(loc) << "value is not a constant";
}

FailureOr<Value> Importer::materialize(Entry &entry, Location loc) {
  if (entry.value)
    return entry.value;
  if (scratchBlock)
    return scratchBlock->addArgument(entry.type, loc);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(body);
  if (!entry.parameter.empty()) {
    const std::string &name = entry.parameter;
    if (!module.lookupSymbol(name)) {
      OpBuilder moduleBuilder = OpBuilder::atBlockEnd(module.getBody());
      // Parameters go before the function that uses them.
      moduleBuilder.setInsertionPoint(body->getParentOp());
      ParameterOp::create(moduleBuilder, loc, name, entry.type,
                          /*trainable=*/true);
      galvatron::SafetensorsView &tensor = weights[name];
      tensor.dtype = safetensorsDType(entry.type.getElementType());
      tensor.shape.assign(entry.type.getShape().begin(),
                          entry.type.getShape().end());
      StringRef bytes = initializers[name].bytes;
      tensor.data = bytes.data();
      tensor.size = bytes.size();
    }
    entry.value = GetParameterOp::create(
        builder, loc, entry.type,
        FlatSymbolRefAttr::get(builder.getStringAttr(name)));
    return entry.value;
  }
  if (entry.deferred) {
    const onnx::NodeProto &node = *entry.deferred;
    SmallVector<Entry *> inputs;
    for (const std::string &name : deferredInputs[&node])
      inputs.push_back(name.empty() ? nullptr : &values[name]);
    // Emitting sets the values of all the node's outputs; an Identity copy
    // of one of them reads the value from there.
    Entry &origin = values[node.output(entry.deferredResult)];
    if (!origin.value &&
        failed(emitNode(node, inputs, nodeLoc(node, deferredIndex[&node]))))
      return failure();
    entry.value = values[node.output(entry.deferredResult)].value;
    return entry.value;
  }
  if (entry.constant) {
    entry.value = ConstantOp::create(builder, loc, entry.constant->toAttr());
    return entry.value;
  }
  return error(loc) << "internal error: value has neither IR nor a constant";
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

const onnx::AttributeProto *Importer::findAttr(const onnx::NodeProto &node,
                                               StringRef name) {
  for (const auto &attr : node.attribute())
    if (attr.name() == name)
      return &attr;
  return nullptr;
}

static const char *attrTypeName(int type) {
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

FailureOr<std::optional<int64_t>>
Importer::intAttr(const onnx::NodeProto &node, StringRef name, Location loc) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  if (!attr)
    return std::optional<int64_t>();
  if (attr->type() != onnx::AttributeProto::INT)
    return error(loc) << "attribute '" << name << "' of " << describe(node)
                      << " must be INT, got " << attrTypeName(attr->type());
  return std::optional<int64_t>(attr->i());
}

FailureOr<std::optional<double>>
Importer::floatAttr(const onnx::NodeProto &node, StringRef name, Location loc) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  if (!attr)
    return std::optional<double>();
  if (attr->type() != onnx::AttributeProto::FLOAT)
    return error(loc) << "attribute '" << name << "' of " << describe(node)
                      << " must be FLOAT, got " << attrTypeName(attr->type());
  return std::optional<double>(attr->f());
}

FailureOr<std::optional<SmallVector<int64_t>>>
Importer::intsAttr(const onnx::NodeProto &node, StringRef name, Location loc) {
  const onnx::AttributeProto *attr = findAttr(node, name);
  if (!attr)
    return std::optional<SmallVector<int64_t>>();
  if (attr->type() != onnx::AttributeProto::INTS)
    return error(loc) << "attribute '" << name << "' of " << describe(node)
                      << " must be INTS, got " << attrTypeName(attr->type());
  return std::optional<SmallVector<int64_t>>(
      SmallVector<int64_t>(attr->ints().begin(), attr->ints().end()));
}

FoldAttributes Importer::foldAttributes(const onnx::NodeProto &node,
                                        Location loc, bool &failedFlag) {
  FoldAttributes attrs;
  attrs.numOutputs = node.output_size();
  attrs.getInt = [&, loc](StringRef name) -> std::optional<int64_t> {
    auto v = intAttr(node, name, loc);
    if (failed(v)) {
      failedFlag = true;
      return std::nullopt;
    }
    return *v;
  };
  attrs.getFloat = [&, loc](StringRef name) -> std::optional<double> {
    auto v = floatAttr(node, name, loc);
    if (failed(v)) {
      failedFlag = true;
      return std::nullopt;
    }
    return *v;
  };
  attrs.getInts = [&,
                   loc](StringRef name) -> std::optional<SmallVector<int64_t>> {
    auto v = intsAttr(node, name, loc);
    if (failed(v)) {
      failedFlag = true;
      return std::nullopt;
    }
    return *v;
  };
  attrs.getElementType = [&, loc](StringRef name) -> Type {
    auto v = intAttr(node, name, loc);
    if (failed(v) || !*v) {
      failedFlag = true;
      return nullptr;
    }
    return elementType(static_cast<int32_t>(**v));
  };
  attrs.getTensor = [&, loc](StringRef name) -> std::optional<HostTensor> {
    const onnx::AttributeProto *attr = findAttr(node, name);
    if (!attr)
      return std::nullopt;
    RawTensor raw;
    RankedTensorType type;
    if (attr->type() != onnx::AttributeProto::TENSOR ||
        failed(readTensor(attr->t(), loc, raw, type))) {
      failedFlag = true;
      return std::nullopt;
    }
    return toHost(raw, type);
  };
  return attrs;
}

//===----------------------------------------------------------------------===//
// Nodes
//===----------------------------------------------------------------------===//

LogicalResult Importer::importNode(const onnx::NodeProto &node, Location loc) {
  StringRef op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    return error(loc) << "unsupported ONNX op '" << node.domain() << "." << op
                      << "' (node '" << nodeName(node) << "', opset " << opset
                      << ")";

  if (node.output_size() == 0 ||
      llvm::all_of(node.output(),
                   [](const std::string &o) { return o.empty(); }))
    return error(loc) << describe(node) << " has no outputs";

  SmallVector<Entry *> inputs;
  for (const std::string &name : node.input()) {
    if (name.empty()) {
      inputs.push_back(nullptr);
      continue;
    }
    auto it = values.find(name);
    if (it == values.end())
      return error(loc) << describe(node) << " reads '" << name
                        << "', which no earlier node or input defines";
    inputs.push_back(&it->second);
  }

  // Constant, Shape and Size never need their input's value.
  if (op == "Constant") {
    if (node.attribute_size() != 1)
      return error(loc) << describe(node) << " needs exactly one attribute";
    const onnx::AttributeProto &attr = node.attribute(0);
    HostTensor t;
    if (attr.name() == "value" && attr.type() == onnx::AttributeProto::TENSOR) {
      RawTensor raw;
      RankedTensorType type;
      if (failed(readTensor(attr.t(), loc, raw, type)))
        return failure();
      t = toHost(raw, type);
    } else if (attr.name() == "value_float") {
      t = HostTensor::filled(builder.getF32Type(), {});
      t.set(0, attr.f());
    } else if (attr.name() == "value_int") {
      t = HostTensor::filled(builder.getI64Type(), {});
      t.setInt(0, attr.i());
    } else if (attr.name() == "value_floats") {
      t = HostTensor::filled(builder.getF32Type(), {attr.floats_size()});
      for (int i = 0; i < attr.floats_size(); ++i)
        t.set(i, attr.floats(i));
    } else if (attr.name() == "value_ints") {
      t = HostTensor::filled(builder.getI64Type(), {attr.ints_size()});
      for (int i = 0; i < attr.ints_size(); ++i)
        t.setInt(i, attr.ints(i));
    } else {
      return error(loc) << describe(node) << " attribute '" << attr.name()
                        << "' of type " << attrTypeName(attr.type())
                        << " is not supported";
    }
    Entry &entry = values[node.output(0)];
    entry = Entry();
    entry.type = t.getType();
    entry.constant = std::move(t);
    return success();
  }
  if (op == "Shape" || op == "Size") {
    if (inputs.empty() || !inputs[0])
      return error(loc) << describe(node) << " needs an input";
    ArrayRef<int64_t> shape = inputs[0]->type.getShape();
    HostTensor t;
    if (op == "Size") {
      t = HostTensor::filled(builder.getI64Type(), {});
      t.setInt(0, inputs[0]->type.getNumElements());
    } else {
      int64_t rank = shape.size();
      auto start = intAttr(node, "start", loc);
      auto end = intAttr(node, "end", loc);
      if (failed(start) || failed(end))
        return failure();
      int64_t s = start->value_or(0), e = end->value_or(rank);
      s = std::clamp<int64_t>(s < 0 ? s + rank : s, 0, rank);
      e = std::clamp<int64_t>(e < 0 ? e + rank : e, 0, rank);
      t = HostTensor::filled(builder.getI64Type(),
                             {std::max<int64_t>(e - s, 0)});
      for (int64_t i = s; i < e; ++i)
        t.setInt(i - s, shape[i]);
    }
    Entry &entry = values[node.output(0)];
    entry = Entry();
    entry.type = t.getType();
    entry.constant = std::move(t);
    return success();
  }

  bool allConstant = llvm::all_of(
      inputs, [](Entry *e) { return !e || e->isConstantAvailable(); });
  if (allConstant && isFoldableONNXOp(op))
    return foldNode(node, inputs, loc);
  if (failed(emitNode(node, inputs, loc)))
    return failure();
  return checkOutputsSet(node, loc);
}

LogicalResult Importer::foldNode(const onnx::NodeProto &node,
                                 ArrayRef<Entry *> inputs, Location loc) {
  bool fromWeight =
      llvm::any_of(inputs, [](Entry *e) { return e && e->isWeightDerived(); });
  if (fromWeight && isDataMovement(node.op_type())) {
    // Keep it a parameter: record the node, evaluate or emit it on demand.
    // Its result types come from evaluating it when that is cheap; a
    // weight-sized evaluation only happens if a consumer needs the value.
    if (node.op_type() == "Identity") {
      Entry copy = *inputs[0];
      values[node.output(0)] = copy;
      return success();
    }
    SmallVector<std::string> names(node.input().begin(), node.input().end());
    deferredInputs[&node] = names;
    deferredIndex.try_emplace(&node, currentIndex);
    // Learn the result types by building the op into a scratch block whose
    // arguments stand in for the inputs; nothing reaches the module.
    Block scratch;
    Block *realBody = body;
    body = &scratch;
    scratchBlock = &scratch;
    LogicalResult emitted = emitNode(node, inputs, loc);
    if (succeeded(emitted))
      emitted = checkOutputsSet(node, loc);
    body = realBody;
    scratchBlock = nullptr;
    SmallVector<RankedTensorType> types;
    for (int i = 0; i < node.output_size(); ++i)
      types.push_back(values[node.output(i)].type);
    while (!scratch.empty())
      scratch.back().erase();
    if (failed(emitted))
      return failure();
    for (int i = 0; i < node.output_size(); ++i) {
      Entry &out = values[node.output(i)];
      out = Entry();
      out.deferred = &node;
      out.deferredResult = i;
      out.type = types[i];
    }
    return success();
  }

  SmallVector<const HostTensor *> constants;
  for (Entry *in : inputs) {
    if (!in) {
      constants.push_back(nullptr);
      continue;
    }
    auto c = constantOf(*in, loc);
    if (failed(c))
      return failure();
    constants.push_back(*c);
  }
  bool attrFailed = false;
  FoldAttributes attrs = foldAttributes(node, loc, attrFailed);
  SmallVector<HostTensor> outputs;
  std::string message;
  if (!foldONNXOp(node.op_type(), constants, attrs, context, outputs,
                  message)) {
    if (attrFailed)
      return failure();
    return error(loc) << "cannot evaluate " << describe(node)
                      << " on constant inputs: " << message;
  }
  if (attrFailed)
    return failure();
  for (int i = 0; i < node.output_size(); ++i) {
    if (i >= static_cast<int>(outputs.size()))
      return error(loc) << describe(node) << " has " << node.output_size()
                        << " outputs but produced " << outputs.size();
    Entry &entry = values[node.output(i)];
    entry = Entry();
    entry.type = outputs[i].getType();
    entry.constant = std::move(outputs[i]);
  }
  return success();
}

/// The shape a Reshape with target `target` gives `input` (0 copies the input
/// dimension unless `allowZero`, -1 is inferred).
static FailureOr<SmallVector<int64_t>> resolveReshape(ArrayRef<int64_t> input,
                                                      ArrayRef<int64_t> target,
                                                      bool allowZero,
                                                      std::string &message) {
  SmallVector<int64_t> shape(target);
  int64_t known = 1, inferAt = -1, total = 1;
  for (int64_t d : input)
    total *= d;
  // Target dimensions come from the model: a product that wraps could match
  // the input's element count.
  auto tooLarge = [&] {
    message = "the target shape has more elements than fit in 64 bits";
    return failure();
  };
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0 && !allowZero) {
      if (d >= input.size()) {
        message = "a 0 in the target shape has no input dimension to copy";
        return failure();
      }
      shape[d] = input[d];
    }
    if (shape[d] == -1) {
      if (inferAt >= 0) {
        message = "the target shape has more than one -1";
        return failure();
      }
      inferAt = d;
    } else if (shape[d] < 0) {
      message = "the target shape has a negative dimension";
      return failure();
    } else {
      std::optional<int64_t> product = llvm::checkedMul(known, shape[d]);
      if (!product)
        return tooLarge();
      known = *product;
    }
  }
  if (inferAt >= 0) {
    if (known == 0 || total % known != 0) {
      message = "cannot infer the -1 dimension";
      return failure();
    }
    shape[inferAt] = total / known;
  }
  std::optional<int64_t> count = checkedBytes(shape, 1);
  if (!count)
    return tooLarge();
  if (*count != total) {
    message = "cannot reshape " + std::to_string(total) + " elements into " +
              std::to_string(*count);
    return failure();
  }
  return shape;
}

LogicalResult Importer::emitNode(const onnx::NodeProto &node,
                                 ArrayRef<Entry *> inputs, Location loc) {
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(body);
  StringRef op = node.op_type();

  auto unsupported = [&]() {
    return error(loc) << "unsupported ONNX op '" << op << "' (node '"
                      << nodeName(node) << "', opset " << opset << ")";
  };
  auto needInputs = [&](size_t n) -> LogicalResult {
    if (inputs.size() < n ||
        llvm::any_of(inputs.take_front(n), [](Entry *e) { return !e; }))
      return error(loc) << describe(node) << " needs " << n << " inputs";
    return success();
  };
  auto in = [&](size_t i) -> FailureOr<Value> {
    if (i >= inputs.size() || !inputs[i])
      return error(loc) << describe(node) << " is missing input " << i;
    return materialize(*inputs[i], loc);
  };
  /// An input that must be known at compile time (shapes, axes, sizes).
  auto constIn = [&](size_t i) -> FailureOr<SmallVector<int64_t>> {
    if (i >= inputs.size() || !inputs[i])
      return error(loc) << describe(node) << " needs input " << i;
    if (!inputs[i]->constant && !inputs[i]->deferred &&
        inputs[i]->parameter.empty())
      return error(loc) << describe(node) << " input " << i << " ('"
                        << node.input(i)
                        << "') must be a constant once shapes are fixed";
    auto c = constantOf(*inputs[i], loc);
    if (failed(c))
      return failure();
    SmallVector<int64_t> v;
    for (int64_t k = 0; k < (*c)->size(); ++k)
      v.push_back((*c)->getInt(k));
    return v;
  };
  /// Axes given as input 1 (opset >= 13/18) or as the `axes` attribute.
  auto axesOperand = [&]() -> FailureOr<std::optional<SmallVector<int64_t>>> {
    if (inputs.size() > 1 && inputs[1]) {
      auto c = constIn(1);
      if (failed(c))
        return failure();
      return std::optional<SmallVector<int64_t>>(*c);
    }
    return intsAttr(node, "axes", loc);
  };
  auto typeOf = [](Value v) { return cast<RankedTensorType>(v.getType()); };
  auto result = [&](Value v) {
    setOutput(node, 0, v);
    return success();
  };
  auto checkResult = [&](Operation *created) -> LogicalResult {
    // Ops with inferred result types report shape errors through the
    // verifier; run it now so the message names this node.
    if (failed(mlir::verify(created, /*verifyRecursively=*/false)))
      return error(loc) << "while importing " << describe(node);
    return success();
  };
  auto reshapeTo = [&](Value v, ArrayRef<int64_t> shape) -> Value {
    auto type = RankedTensorType::get(shape, typeOf(v).getElementType());
    if (type == v.getType())
      return v;
    return ReshapeOp::create(builder, loc, type, v);
  };
  auto normAxis = [](int64_t axis, int64_t rank) {
    return axis < 0 ? axis + rank : axis;
  };

  // Elementwise binary ops.
  auto binary = [&](auto opTag) -> LogicalResult {
    using OpTy = decltype(opTag);
    if (failed(needInputs(2)))
      return failure();
    auto lhs = in(0), rhs = in(1);
    if (failed(lhs) || failed(rhs))
      return failure();
    Value r = *rhs;
    if (typeOf(*lhs).getElementType() != typeOf(r).getElementType()) {
      if (op != "Pow")
        return error(loc) << describe(node) << " mixes element types "
                          << typeOf(*lhs).getElementType() << " and "
                          << typeOf(r).getElementType();
      r = CastOp::create(builder, loc,
                         RankedTensorType::get(typeOf(r).getShape(),
                                               typeOf(*lhs).getElementType()),
                         r);
    }
    SmallVector<Type> inferred;
    SmallVector<Value> adaptorOperands = {*lhs, r};
    typename OpTy::Adaptor adaptor(adaptorOperands);
    if (failed(OpTy::inferReturnTypes(context, loc, adaptor, inferred)))
      return error(loc) << "while importing " << describe(node);
    return result(OpTy::create(builder, loc, *lhs, r));
  };
  if (op == "Add")
    return binary(AddOp());
  if (op == "Sub")
    return binary(SubOp());
  if (op == "Mul")
    return binary(MulOp());
  if (op == "Div")
    return binary(DivOp());
  if (op == "Pow")
    return binary(PowOp());
  if (op == "And")
    return binary(AndOp());
  if (op == "Or")
    return binary(OrOp());
  if (op == "Max" || op == "Min") {
    if (inputs.empty())
      return error(loc) << describe(node) << " needs inputs";
    auto acc = in(0);
    if (failed(acc))
      return failure();
    Value v = *acc;
    for (size_t i = 1; i < inputs.size(); ++i) {
      auto next = in(i);
      if (failed(next))
        return failure();
      SmallVector<Type> inferred;
      SmallVector<Value> adaptorOperands = {v, *next};
      MaxOp::Adaptor adaptor(adaptorOperands);
      if (failed(MaxOp::inferReturnTypes(context, loc, adaptor, inferred)))
        return error(loc) << "while importing " << describe(node);
      v = op == "Max" ? Value(MaxOp::create(builder, loc, v, *next))
                      : Value(MinOp::create(builder, loc, v, *next));
    }
    return result(v);
  }
  static const std::pair<StringRef, ComparePredicate> comparisons[] = {
      {"Equal", ComparePredicate::eq},
      {"Less", ComparePredicate::lt},
      {"LessOrEqual", ComparePredicate::le},
      {"Greater", ComparePredicate::gt},
      {"GreaterOrEqual", ComparePredicate::ge}};
  for (auto [name, predicate] : comparisons)
    if (op == name) {
      if (failed(needInputs(2)))
        return failure();
      auto lhs = in(0), rhs = in(1);
      if (failed(lhs) || failed(rhs))
        return failure();
      SmallVector<Type> inferred;
      SmallVector<Value> adaptorOperands = {*lhs, *rhs};
      CompareOp::Adaptor adaptor(adaptorOperands);
      if (failed(CompareOp::inferReturnTypes(context, loc, adaptor, inferred)))
        return error(loc) << "while importing " << describe(node);
      return result(CompareOp::create(builder, loc, predicate, *lhs, *rhs));
    }

  // Elementwise unary ops.
  auto unary = [&](auto opTag) -> LogicalResult {
    using OpTy = decltype(opTag);
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    if (failed(x))
      return failure();
    auto created = OpTy::create(builder, loc, *x);
    if (failed(checkResult(created)))
      return failure();
    return result(created);
  };
  if (op == "Neg")
    return unary(NegOp());
  if (op == "Not")
    return unary(NotOp());
  if (op == "Abs")
    return unary(AbsOp());
  if (op == "Exp")
    return unary(ExpOp());
  if (op == "Log")
    return unary(LogOp());
  if (op == "Sqrt")
    return unary(SqrtOp());
  if (op == "Reciprocal")
    return unary(ReciprocalOp());
  if (op == "Tanh")
    return unary(TanhOp());
  if (op == "Erf")
    return unary(ErfOp());
  if (op == "Sigmoid")
    return unary(SigmoidOp());
  if (op == "Relu")
    return unary(ReluOp());
  if (op == "Gelu") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    if (failed(x))
      return failure();
    const onnx::AttributeProto *approx = findAttr(node, "approximate");
    GeluApproximation kind = GeluApproximation::none;
    if (approx && approx->s() == "tanh")
      kind = GeluApproximation::tanh;
    else if (approx && approx->s() != "none")
      return error(loc) << describe(node) << " has unknown approximate '"
                        << approx->s() << "'";
    return result(GeluOp::create(builder, loc, *x, kind));
  }
  if (op == "Softmax") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    auto axis = intAttr(node, "axis", loc);
    if (failed(x) || failed(axis))
      return failure();
    auto created = SoftmaxOp::create(builder, loc, *x, axis->value_or(-1));
    if (failed(checkResult(created)))
      return failure();
    return result(created);
  }
  if (op == "LogSoftmax") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    auto axis = intAttr(node, "axis", loc);
    if (failed(x) || failed(axis))
      return failure();
    auto created = LogSoftmaxOp::create(builder, loc, *x, axis->value_or(-1));
    if (failed(checkResult(created)))
      return failure();
    return result(created);
  }
  if (op == "ArgMax") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    auto axis = intAttr(node, "axis", loc);
    auto keepdims = intAttr(node, "keepdims", loc);
    auto last = intAttr(node, "select_last_index", loc);
    if (failed(x) || failed(axis) || failed(keepdims) || failed(last))
      return failure();
    auto created =
        ArgMaxOp::create(builder, loc, *x, axis->value_or(0),
                         keepdims->value_or(1) != 0, last->value_or(0) != 0);
    if (failed(checkResult(created)))
      return failure();
    return result(created);
  }
  if (op == "Identity" || op == "Dropout") {
    if (failed(needInputs(1)))
      return failure();
    if (op == "Dropout" && node.output_size() > 1 && !node.output(1).empty())
      return error(loc) << describe(node)
                        << ": the dropout mask output is not supported";
    // Inference-mode Dropout is the identity. Training mode (input 2) with a
    // non-zero ratio (input 1, default 0.5) draws random masks, which the
    // forward graph does not model.
    if (op == "Dropout" && inputs.size() > 2 && inputs[2]) {
      if (!inputs[2]->constant || inputs[2]->constant->size() != 1)
        return error(loc) << describe(node)
                          << ": training_mode must be a constant";
      double ratio = 0.5;
      if (inputs.size() > 1 && inputs[1]) {
        if (!inputs[1]->constant || inputs[1]->constant->size() != 1)
          return error(loc) << describe(node) << ": ratio must be a constant";
        ratio = inputs[1]->constant->getDouble(0);
      }
      if (inputs[2]->constant->getInt(0) != 0 && ratio != 0.0)
        return error(loc) << describe(node)
                          << ": training-mode dropout is not supported";
    }
    auto x = in(0);
    if (failed(x))
      return failure();
    return result(*x);
  }
  if (op == "Cast") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    auto to = intAttr(node, "to", loc);
    if (failed(x) || failed(to))
      return failure();
    Type element = to->has_value() ? elementType(**to) : Type();
    if (!element)
      return error(loc) << describe(node) << " casts to an unsupported type";
    auto type = RankedTensorType::get(typeOf(*x).getShape(), element);
    if (type == x->getType())
      return result(*x);
    return result(CastOp::create(builder, loc, type, *x));
  }
  if (op == "Clip") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    if (failed(x))
      return failure();
    Value v = *x;
    for (size_t i = 1; i < inputs.size() && i < 3; ++i) {
      if (!inputs[i])
        continue;
      auto bound = in(i);
      if (failed(bound))
        return failure();
      Value clipped;
      if (i == 1) {
        if (auto op = createInferred<MaxOp>(loc, 1, v, *bound); succeeded(op))
          clipped = *op;
      } else if (auto op = createInferred<MinOp>(loc, 1, v, *bound);
                 succeeded(op)) {
        clipped = *op;
      }
      if (!clipped)
        return error(loc) << "while importing " << describe(node);
      v = clipped;
    }
    return result(v);
  }
  if (op == "Where") {
    if (failed(needInputs(3)))
      return failure();
    auto c = in(0), a = in(1), b = in(2);
    if (failed(c) || failed(a) || failed(b))
      return failure();
    if (!typeOf(*c).getElementType().isInteger(1))
      return error(loc) << describe(node) << " condition must be bool, got "
                        << typeOf(*c).getElementType();
    SmallVector<Type> inferred;
    SmallVector<Value> adaptorOperands = {*c, *a, *b};
    WhereOp::Adaptor adaptor(adaptorOperands);
    if (!typeOf(*c).getElementType().isInteger(1) ||
        failed(WhereOp::inferReturnTypes(context, loc, adaptor, inferred)))
      return error(loc) << "while importing " << describe(node);
    return result(WhereOp::create(builder, loc, *c, *a, *b));
  }

  // Contractions.
  if (op == "MatMul") {
    if (failed(needInputs(2)))
      return failure();
    auto a = in(0), b = in(1);
    if (failed(a) || failed(b))
      return failure();
    Value lhs = *a, rhs = *b;
    bool vecL = typeOf(lhs).getRank() == 1, vecR = typeOf(rhs).getRank() == 1;
    if (vecL)
      lhs = reshapeTo(lhs, {1, typeOf(lhs).getDimSize(0)});
    if (vecR)
      rhs = reshapeTo(rhs, {typeOf(rhs).getDimSize(0), 1});
    SmallVector<Type> inferred;
    SmallVector<Value> adaptorOperands = {lhs, rhs};
    MatmulOp::Adaptor adaptor(adaptorOperands);
    if (failed(MatmulOp::inferReturnTypes(context, loc, adaptor, inferred)))
      return error(loc) << "while importing " << describe(node);
    Value r = MatmulOp::create(builder, loc, lhs, rhs);
    SmallVector<int64_t> shape(typeOf(r).getShape());
    if (vecR)
      shape.pop_back();
    if (vecL)
      shape.erase(shape.end() - (vecR ? 1 : 2));
    return result(reshapeTo(r, shape));
  }
  if (op == "Gemm") {
    if (failed(needInputs(2)))
      return failure();
    auto a = in(0), b = in(1);
    auto alpha = floatAttr(node, "alpha", loc);
    auto beta = floatAttr(node, "beta", loc);
    auto transA = intAttr(node, "transA", loc);
    auto transB = intAttr(node, "transB", loc);
    if (failed(a) || failed(b) || failed(alpha) || failed(beta) ||
        failed(transA) || failed(transB))
      return failure();
    Value x = *a;
    if (transA->value_or(0)) {
      auto transposed =
          createInferred<TransposeOp>(loc, 1, x, ArrayRef<int64_t>{1, 0});
      if (failed(transposed))
        return error(loc) << "while importing " << describe(node);
      x = *transposed;
    }
    Value bias;
    if (inputs.size() > 2 && inputs[2]) {
      auto c = in(2);
      if (failed(c))
        return failure();
      bias = *c;
    }
    auto layout =
        transB->value_or(0) ? WeightLayout::out_in : WeightLayout::in_out;
    double alphaValue = alpha->value_or(1.0), betaValue = beta->value_or(1.0);
    Type element = typeOf(x).getElementType();
    auto scalar = [&](double v) -> Value {
      HostTensor t = HostTensor::filled(element, {});
      t.set(0, v);
      return ConstantOp::create(builder, loc, t.toAttr());
    };
    // The linear form needs a [N] bias with beta = 1; scale otherwise.
    int64_t outFeatures =
        typeOf(*b).getRank() == 2
            ? typeOf(*b).getDimSize(layout == WeightLayout::out_in ? 0 : 1)
            : -1;
    bool biasFits = bias &&
                    typeOf(bias).getShape() == ArrayRef<int64_t>{outFeatures} &&
                    betaValue == 1.0 && alphaValue == 1.0;
    auto linear = createInferred<LinearOp>(loc, 1, x, *b,
                                           biasFits ? bias : Value(), layout);
    if (failed(linear))
      return error(loc) << "while importing " << describe(node);
    Value r = *linear;
    if (alphaValue != 1.0) {
      auto scaled = createInferred<MulOp>(loc, 1, r, scalar(alphaValue));
      if (failed(scaled))
        return error(loc) << "while importing " << describe(node);
      r = *scaled;
    }
    if (bias && !biasFits) {
      Value scaledBias = bias;
      if (betaValue != 1.0) {
        auto scaled = createInferred<MulOp>(loc, 1, bias, scalar(betaValue));
        if (failed(scaled))
          return error(loc) << "while importing " << describe(node);
        scaledBias = *scaled;
      }
      auto sum = createInferred<AddOp>(loc, 1, r, scaledBias);
      if (failed(sum))
        return error(loc) << "while importing " << describe(node);
      r = *sum;
    }
    return result(r);
  }

  // Shape manipulation.
  if (op == "Reshape" || op == "Flatten" || op == "Squeeze" ||
      op == "Unsqueeze") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    if (failed(x))
      return failure();
    ArrayRef<int64_t> shape = typeOf(*x).getShape();
    int64_t rank = shape.size();
    SmallVector<int64_t> target;
    std::string message;
    if (op == "Reshape") {
      auto spec = constIn(1);
      auto allowZero = intAttr(node, "allowzero", loc);
      if (failed(spec) || failed(allowZero))
        return failure();
      auto resolved =
          resolveReshape(shape, *spec, allowZero->value_or(0) != 0, message);
      if (failed(resolved))
        return error(loc) << describe(node) << ": " << message;
      target = *resolved;
    } else if (op == "Flatten") {
      auto axisAttr = intAttr(node, "axis", loc);
      if (failed(axisAttr))
        return failure();
      int64_t axis = normAxis(axisAttr->value_or(1), rank);
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < rank; ++d)
        (d < axis ? outer : inner) *= shape[d];
      target = {outer, inner};
    } else {
      auto axesOrNone = axesOperand();
      if (failed(axesOrNone))
        return failure();
      std::optional<SmallVector<int64_t>> axes = *axesOrNone;
      if (op == "Unsqueeze") {
        if (!axes)
          return error(loc) << describe(node) << " needs axes";
        int64_t outRank = rank + axes->size();
        SmallVector<int64_t> sorted;
        for (int64_t a : *axes)
          sorted.push_back(normAxis(a, outRank));
        llvm::sort(sorted);
        target.assign(shape.begin(), shape.end());
        for (int64_t a : sorted) {
          if (a < 0 || a > static_cast<int64_t>(target.size()))
            return error(loc) << describe(node) << " axis out of range";
          target.insert(target.begin() + a, 1);
        }
      } else {
        for (int64_t d = 0; d < rank; ++d) {
          bool drop = axes ? llvm::is_contained(*axes, d) ||
                                 llvm::is_contained(*axes, d - rank)
                           : shape[d] == 1;
          if (drop && shape[d] != 1)
            return error(loc) << describe(node) << " squeezes dimension " << d
                              << " of size " << shape[d];
          if (!drop)
            target.push_back(shape[d]);
        }
      }
    }
    return result(reshapeTo(*x, target));
  }
  if (op == "Transpose") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    auto perm = intsAttr(node, "perm", loc);
    if (failed(x) || failed(perm))
      return failure();
    SmallVector<int64_t> p;
    if (*perm)
      p = **perm;
    else
      for (int64_t d = typeOf(*x).getRank() - 1; d >= 0; --d)
        p.push_back(d);
    auto created = createInferred<TransposeOp>(loc, 1, *x, p);
    if (failed(created))
      return error(loc) << "while importing " << describe(node);
    return result(*created);
  }
  if (op == "Slice") {
    if (failed(needInputs(3)))
      return failure();
    auto x = in(0);
    auto starts = constIn(1), ends = constIn(2);
    if (failed(x) || failed(starts) || failed(ends))
      return failure();
    ArrayRef<int64_t> shape = typeOf(*x).getShape();
    int64_t rank = shape.size();
    SmallVector<int64_t> axes, steps;
    if (inputs.size() > 3 && inputs[3]) {
      auto a = constIn(3);
      if (failed(a))
        return failure();
      axes = *a;
    } else {
      for (size_t i = 0; i < starts->size(); ++i)
        axes.push_back(i);
    }
    if (inputs.size() > 4 && inputs[4]) {
      auto s = constIn(4);
      if (failed(s))
        return failure();
      steps = *s;
    } else {
      steps.assign(starts->size(), 1);
    }
    if (axes.size() != starts->size() || ends->size() != starts->size() ||
        steps.size() != starts->size())
      return error(loc) << describe(node)
                        << ": starts, ends, axes and steps differ in length";
    SmallVector<int64_t> begin(rank, 0), limit(shape), stride(rank, 1);
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = normAxis(axes[k], rank);
      if (a < 0 || a >= rank)
        return error(loc) << describe(node) << " axis " << axes[k]
                          << " is out of range";
      if (steps[k] <= 0)
        return error(loc) << describe(node) << " step " << steps[k]
                          << " is not supported (only positive steps)";
      int64_t dim = shape[a];
      auto clampIndex = [&](int64_t v) {
        if (v < 0)
          v = v <= INT64_MIN + dim ? 0 : v + dim;
        return std::clamp<int64_t>(v, 0, dim);
      };
      begin[a] = clampIndex((*starts)[k]);
      limit[a] = std::max(begin[a], clampIndex((*ends)[k]));
      stride[a] = steps[k];
    }
    auto created = createInferred<SliceOp>(loc, 1, *x, begin, limit, stride);
    if (failed(created))
      return error(loc) << "while importing " << describe(node);
    return result(*created);
  }
  if (op == "Concat") {
    SmallVector<Value> operands;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i])
        continue;
      auto v = in(i);
      if (failed(v))
        return failure();
      operands.push_back(*v);
    }
    // Empty pieces (a 0-sized dimension) add nothing, unless all are empty.
    SmallVector<Value> nonEmpty;
    for (Value v : operands)
      if (typeOf(v).getNumElements() != 0)
        nonEmpty.push_back(v);
    if (!nonEmpty.empty())
      operands = nonEmpty;
    auto axis = intAttr(node, "axis", loc);
    if (failed(axis))
      return failure();
    if (!*axis)
      return error(loc) << describe(node) << " needs an axis";
    if (operands.size() == 1)
      return result(operands[0]);
    auto created = createInferred<ConcatOp>(loc, 1, operands, **axis);
    if (failed(created))
      return error(loc) << "while importing " << describe(node);
    return result(*created);
  }
  if (op == "Split") {
    if (failed(needInputs(1)))
      return failure();
    auto x = in(0);
    auto axisAttr = intAttr(node, "axis", loc);
    if (failed(x) || failed(axisAttr))
      return failure();
    int64_t rank = typeOf(*x).getRank();
    int64_t axis = normAxis(axisAttr->value_or(0), rank);
    if (axis < 0 || axis >= rank)
      return error(loc) << describe(node) << " axis is out of range";
    int64_t dim = typeOf(*x).getDimSize(axis);
    SmallVector<int64_t> sizes;
    if (inputs.size() > 1 && inputs[1]) {
      auto s = constIn(1);
      if (failed(s))
        return failure();
      sizes = *s;
    } else {
      auto s = intsAttr(node, "split", loc);
      if (failed(s))
        return failure();
      if (*s) {
        sizes = **s;
      } else {
        int64_t n = node.output_size();
        auto numOutputs = intAttr(node, "num_outputs", loc);
        if (failed(numOutputs))
          return failure();
        n = numOutputs->value_or(n);
        if (n != node.output_size() || n < 1)
          return error(loc)
                 << describe(node) << " num_outputs " << n
                 << " does not match its " << node.output_size() << " outputs";
        int64_t piece = (dim + n - 1) / n;
        for (int64_t i = 0; i < n; ++i)
          sizes.push_back(
              std::max<int64_t>(0, std::min(piece, dim - i * piece)));
      }
    }
    if (static_cast<int>(sizes.size()) != node.output_size())
      return error(loc) << describe(node) << " splits into " << sizes.size()
                        << " pieces but has " << node.output_size()
                        << " outputs";
    auto created = createInferred<SplitOp>(loc, sizes.size(), *x, axis, sizes);
    if (failed(created))
      return error(loc) << "while importing " << describe(node);
    for (int i = 0; i < node.output_size(); ++i)
      setOutput(node, i, created->getResult(i));
    return success();
  }
  if (op == "Expand") {
    if (failed(needInputs(2)))
      return failure();
    auto x = in(0);
    auto target = constIn(1);
    if (failed(x) || failed(target))
      return failure();
    auto shape = broadcastShapes(typeOf(*x).getShape(), *target);
    if (failed(shape))
      return error(loc) << describe(node) << " cannot expand " << x->getType()
                        << " to the requested shape";
    auto type = RankedTensorType::get(*shape, typeOf(*x).getElementType());
    if (type == x->getType())
      return result(*x);
    return result(ExpandOp::create(builder, loc, type, *x));
  }
  if (op == "Gather") {
    if (failed(needInputs(2)))
      return failure();
    auto data = in(0), indices = in(1);
    auto axis = intAttr(node, "axis", loc);
    if (failed(data) || failed(indices) || failed(axis))
      return failure();
    if (!typeOf(*indices).getElementType().isSignlessInteger() ||
        typeOf(*indices).getElementType().isInteger(1))
      return error(loc) << describe(node) << " needs integer indices";
    auto created =
        createInferred<GatherOp>(loc, 1, *data, *indices, axis->value_or(0));
    if (failed(created))
      return error(loc) << "while importing " << describe(node);
    return result(*created);
  }

  if (op == "GatherND") {
    // With constant indices (masks built from position ranges), GatherND is a
    // Gather along the flattened leading dimensions.
    if (failed(needInputs(2)))
      return failure();
    auto batchDims = intAttr(node, "batch_dims", loc);
    if (failed(batchDims))
      return failure();
    if (batchDims->value_or(0) != 0 || !inputs[1]->constant)
      return unsupported() << ": only batch_dims = 0 with constant indices";
    auto data = in(0);
    if (failed(data))
      return failure();
    const HostTensor &indices = *inputs[1]->constant;
    ArrayRef<int64_t> shape = typeOf(*data).getShape();
    int64_t k = indices.shape.empty() ? 0 : indices.shape.back();
    if (k < 1 || k > static_cast<int64_t>(shape.size()))
      return error(loc) << describe(node) << ": index tuples of length " << k
                        << " do not fit data of rank " << shape.size();
    SmallVector<int64_t> flatShape(
        ArrayRef<int64_t>(indices.shape).drop_back());
    HostTensor flat = HostTensor::filled(builder.getI64Type(), flatShape);
    for (int64_t t = 0; t < flat.size(); ++t) {
      int64_t index = 0;
      for (int64_t j = 0; j < k; ++j) {
        int64_t v = indices.getInt(t * k + j);
        if (v < -shape[j] || v >= shape[j])
          return error(loc) << describe(node) << " index " << v
                            << " is out of range for dimension " << j;
        index = index * shape[j] + (v < 0 ? v + shape[j] : v);
      }
      flat.setInt(t, index);
    }
    int64_t leading = 1;
    for (int64_t j = 0; j < k; ++j)
      leading *= shape[j];
    SmallVector<int64_t> collapsed = {leading};
    llvm::append_range(collapsed, shape.drop_front(k));
    Value source = reshapeTo(*data, collapsed);
    Value indexValue = ConstantOp::create(builder, loc, flat.toAttr());
    auto gathered = createInferred<GatherOp>(loc, 1, source, indexValue, 0);
    if (failed(gathered))
      return error(loc) << "while importing " << describe(node);
    return result(*gathered);
  }

  // Reductions and normalisation.
  static const std::pair<StringRef, ReduceKind> reductions[] = {
      {"ReduceSum", ReduceKind::sum},
      {"ReduceMean", ReduceKind::mean},
      {"ReduceMax", ReduceKind::max},
      {"ReduceMin", ReduceKind::min},
      {"ReduceProd", ReduceKind::prod}};
  for (auto [name, kind] : reductions)
    if (op == name) {
      if (failed(needInputs(1)))
        return failure();
      auto x = in(0);
      auto keep = intAttr(node, "keepdims", loc);
      auto noop = intAttr(node, "noop_with_empty_axes", loc);
      if (failed(x) || failed(keep) || failed(noop))
        return failure();
      auto axesOrNone = axesOperand();
      if (failed(axesOrNone))
        return failure();
      std::optional<SmallVector<int64_t>> axes = *axesOrNone;
      int64_t rank = typeOf(*x).getRank();
      SmallVector<int64_t> normalised;
      if (!axes || axes->empty()) {
        if (noop->value_or(0))
          return result(*x);
        for (int64_t d = 0; d < rank; ++d)
          normalised.push_back(d);
      } else {
        for (int64_t a : *axes)
          normalised.push_back(normAxis(a, rank));
        llvm::sort(normalised);
      }
      auto created = createInferred<ReduceOp>(loc, 1, kind, *x, normalised,
                                              keep->value_or(1) != 0);
      if (failed(created))
        return error(loc) << "while importing " << describe(node);
      return result(*created);
    }
  if (op == "LayerNormalization") {
    if (failed(needInputs(2)))
      return failure();
    for (int i = 1; i < node.output_size(); ++i)
      if (!node.output(i).empty())
        return error(loc) << describe(node)
                          << ": the Mean and InvStdDev outputs are not "
                             "supported";
    auto x = in(0), scale = in(1);
    auto axis = intAttr(node, "axis", loc);
    auto eps = floatAttr(node, "epsilon", loc);
    if (failed(x) || failed(scale) || failed(axis) || failed(eps))
      return failure();
    int64_t rank = typeOf(*x).getRank();
    if (rank < 1)
      return error(loc) << describe(node) << " needs an input of rank >= 1";
    if (normAxis(axis->value_or(-1), rank) != rank - 1)
      return error(loc) << describe(node)
                        << ": only normalisation over the last dimension is "
                           "supported";
    Value bias;
    if (inputs.size() > 2 && inputs[2]) {
      auto b = in(2);
      if (failed(b))
        return failure();
      bias = *b;
    }
    // Scale and bias may arrive with leading 1s; the op wants [D].
    int64_t features = typeOf(*x).getShape().back();
    Value s = reshapeTo(*scale, {features});
    if (bias)
      bias = reshapeTo(bias, {features});
    auto created =
        LayerNormOp::create(builder, loc, *x, s, bias,
                            builder.getF64FloatAttr(eps->value_or(1e-5)));
    if (failed(checkResult(created)))
      return failure();
    return result(created);
  }

  return unsupported();
}

//===----------------------------------------------------------------------===//
// The model
//===----------------------------------------------------------------------===//

OwningOpRef<ModuleOp> Importer::run(const onnx::ModelProto &model) {
  for (const auto &import : model.opset_import())
    if (import.domain().empty() || import.domain() == "ai.onnx")
      opset = import.version();
  if (opset == 0) {
    emitError(fileLoc()) << "the model imports no version of the default "
                            "ONNX operator set";
    return nullptr;
  }
  if (opset < 13 || opset > 21) {
    emitError(fileLoc()) << "ONNX opset " << opset
                         << " is not supported (13 to 21 are)";
    return nullptr;
  }
  const onnx::GraphProto &graph = model.graph();
  if (graph.node_size() == 0) {
    emitError(fileLoc()) << "the model's graph has no nodes";
    return nullptr;
  }

  OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc());
  module = *owned;
  builder.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(builder, fileLoc(), "forward",
                                   builder.getFunctionType({}, {}));
  body = func.addEntryBlock();

  auto now = [] { return std::chrono::steady_clock::now(); };
  auto seconds = [](auto since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         since)
        .count();
  };
  auto weightStart = now();
  for (const auto &init : graph.initializer()) {
    RawTensor &raw = initializers[init.name()];
    RankedTensorType type;
    if (failed(readTensor(init, fileLoc(), raw, type)))
      return nullptr;
    Entry &entry = values[init.name()];
    entry = Entry();
    entry.type = type;
    if (isa<FloatType>(type.getElementType()) && type.getNumElements() > 1)
      entry.parameter = init.name();
    else
      entry.constant = toHost(raw, type);
  }
  timings.weightReadSeconds = seconds(weightStart);
  auto graphStart = now();
  for (const auto &input : graph.input()) {
    if (initializers.count(input.name()))
      continue; // an initializer listed as an input (IR version < 4)
    if (failed(declareInput(input)))
      return nullptr;
  }

  for (int i = 0; i < graph.node_size(); ++i) {
    currentIndex = i;
    const onnx::NodeProto &node = graph.node(i);
    Location loc = nodeLoc(node, i);
    if (failed(importNode(node, loc)))
      return nullptr;
  }

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  builder.setInsertionPointToEnd(body);
  for (const auto &output : graph.output()) {
    auto it = values.find(output.name());
    if (it == values.end()) {
      emitError(fileLoc()) << "graph output '" << output.name()
                           << "' is never computed";
      return nullptr;
    }
    auto value = materialize(it->second, fileLoc());
    if (failed(value))
      return nullptr;
    results.push_back(*value);
    resultTypes.push_back(value->getType());
  }
  func::ReturnOp::create(builder, fileLoc(), results);
  func.setFunctionType(
      builder.getFunctionType(body->getArgumentTypes(), resultTypes));
  // Keep the ONNX names of the inputs: runners bind data to them by name.
  for (BlockArgument arg : body->getArguments())
    if (auto name = dyn_cast<NameLoc>(arg.getLoc()))
      func.setArgAttr(arg.getArgNumber(), "onnx.name", name.getName());
  if (failed(mlir::verify(module)))
    return nullptr;
  timings.graphSeconds = seconds(graphStart);
  for (const auto &entry : weights)
    timings.weightBytes += entry.second.size;
  return owned;
}

std::unique_ptr<ImportedONNX>
mlir::galv::importONNX(MLIRContext *context, StringRef bytes, StringRef path,
                       const ONNXImportOptions &options) {
  context->loadDialect<GalvDialect, func::FuncDialect>();
  auto storage = std::make_shared<Storage>();
  auto result = std::make_unique<ImportedONNX>();
  onnx::ModelProto &model = storage->model;
  auto parseStart = std::chrono::steady_clock::now();
  StringRef extension = llvm::sys::path::extension(path);
  bool parsed;
  if (extension == ".pbtxt" || extension == ".textproto" ||
      extension == ".txt") {
    parsed = google::protobuf::TextFormat::ParseFromString(bytes.str(), &model);
  } else {
    google::protobuf::io::CodedInputStream stream(
        reinterpret_cast<const uint8_t *>(bytes.data()),
        static_cast<int>(bytes.size()));
    stream.SetTotalBytesLimit(INT_MAX);
    parsed =
        model.ParseFromCodedStream(&stream) && stream.ConsumedEntireMessage();
  }
  result->timings.parseSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                    parseStart)
          .count();
  if (!parsed) {
    emitError(FileLineColLoc::get(context, path, 0, 0))
        << "cannot parse '" << path
        << "' as an ONNX model (is it truncated or not an ONNX file?)";
    return nullptr;
  }
  if (!model.has_graph()) {
    emitError(FileLineColLoc::get(context, path, 0, 0))
        << "'" << path << "' holds no graph";
    return nullptr;
  }
  Importer importer(context, path, options, *storage, *result);
  result->module = importer.run(model);
  if (!result->module)
    return nullptr;
  for (const auto &file : storage->files)
    result->dataFiles.push_back(file.getKey().str());
  result->storage = std::move(storage);
  return result;
}
