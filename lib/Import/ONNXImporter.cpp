//===- ONNXImporter.cpp - ONNX ModelProto to galv IR ----------------------===//
//
// Walks the graph's nodes in order. A node whose inputs are all known
// constants (initializers, Constant nodes, shapes of statically shaped
// values) is evaluated on the host; everything else becomes galv ops.
// Initializers that hold weights stay parameters, trainable or frozen
// (TrainableSet.h): data-movement ops on them (Transpose, Gather, Reshape,
// ...) are deferred and only emitted as IR when a non-constant consumer
// needs them, while arithmetic on frozen ones (RoPE's inv_freq buffer) is
// evaluated like any other constant and arithmetic on trainable ones is IR.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"

#include "HostTensor.h"
#include "OpTable.h"
#include "TrainableSet.h"

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
#include "llvm/Support/SaveAndRestore.h"

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
  /// A shapes-only import found no data for it: `bytes` is empty.
  bool absent = false;
};

/// What an import keeps alive for the weights' views.
struct Storage {
  onnx::ModelProto model;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> files;
  llvm::StringMap<RawTensor> initializers;
};

class Importer : public ImporterServices {
public:
  Importer(MLIRContext *context, StringRef path,
           const ONNXImportOptions &options, Storage &storage,
           ImportedONNX &result)
      : context(context), builder(context), path(path.str()), options(options),
        weights(result.weights), timings(result.timings), files(storage.files),
        initializers(storage.initializers) {}

  OwningOpRef<ModuleOp> run(const onnx::ModelProto &model);

  // What op handlers reach through their OpContext.
  FailureOr<Value> materialize(Entry &entry, Location loc) override;
  FailureOr<const HostTensor *> constantOf(Entry &entry, Location loc) override;
  FailureOr<HostTensor> hostTensor(const onnx::TensorProto &proto,
                                   Location loc) override;
  Type elementType(int32_t onnxType) override;
  std::string nodeName(const onnx::NodeProto &node) override {
    return node.name().empty()
               ? node.op_type() + "#" + std::to_string(currentIndex)
               : node.name();
  }
  int64_t opsetVersion() override { return opset; }
  Entry &entry(StringRef name) override { return values[name]; }

private:
  // Diagnostics.
  InFlightDiagnostic error(Location loc) { return emitError(loc); }
  Location fileLoc() { return FileLineColLoc::get(context, path, 0, 0); }
  Location nodeLoc(const onnx::NodeProto &node, int index);
  std::string describe(const onnx::NodeProto &node) {
    return "'" + node.op_type() + "' (node '" + nodeName(node) + "')";
  }
  /// A use of the values of initializer `tensor`, which a shapes-only
  /// import does not have, by the node being folded or emitted.
  LogicalResult absentDataError(Location loc, StringRef tensor);

  // Types and tensors.
  const char *safetensorsDType(Type type);
  LogicalResult readTensor(const onnx::TensorProto &proto, Location loc,
                           RawTensor &raw, RankedTensorType &type);
  HostTensor toHost(const RawTensor &raw, RankedTensorType type);
  LogicalResult declareInput(const onnx::ValueInfoProto &info);
  int64_t staticDim(const onnx::ValueInfoProto &info, int index, int64_t size);
  /// Why --batch-size / --seq-len went unused, while no dynamic dimension
  /// took them (see staticDim).
  std::string unusedSize[2];
  bool usedSize[2] = {false, false};
  FailureOr<int64_t> resolveDim(const onnx::ValueInfoProto &info, int index,
                                const onnx::TensorShapeProto::Dimension &dim);

  // Nodes.
  LogicalResult importNode(const onnx::NodeProto &node, Location loc);
  LogicalResult deferNode(const onnx::NodeProto &node, ArrayRef<Entry *> inputs,
                          Location loc);
  LogicalResult foldNode(const onnx::NodeProto &node, ArrayRef<Entry *> inputs,
                         Location loc);
  /// Emits `node` as IR through its handler in the OpTable.
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
  /// Evaluates `node` on the host (inputs all constant).
  bool evaluate(const onnx::NodeProto &node,
                ArrayRef<const HostTensor *> inputs, Location loc,
                SmallVectorImpl<HostTensor> &outputs, std::string &message,
                bool &attrFailed);

  MLIRContext *context;
  OpBuilder builder;
  std::string path;
  const ONNXImportOptions &options;
  std::map<std::string, galvatron::SafetensorsView> &weights;
  ONNXImportTimings &timings;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> &files;
  llvm::StringMap<RawTensor> &initializers;
  /// Which float initializers are trainable or frozen parameters.
  llvm::StringMap<InitializerRole> roles;

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
  /// The node being folded or emitted, named when it needs absent data.
  const onnx::NodeProto *activeNode = nullptr;
  /// Node inputs and graph outputs still to read each value: a host
  /// constant nobody reads any more is dropped, or an [S, S] attention-mask
  /// chain would keep every intermediate alive.
  llvm::StringMap<int> pendingReads;
  /// Inputs of deferred nodes, read again whenever those are needed.
  llvm::StringSet<> pinned;
  void releaseReads(const onnx::NodeProto &node);
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
  for (int64_t d : dims) {
    bytes = llvm::checkedMul(*bytes, d);
    if (!bytes)
      return std::nullopt;
  }
  return bytes;
}

/// Appended where a tensor's data is missing altogether.
static constexpr const char *kShapesOnlyHint =
    " (an export without its weights imports with --shapes-only)";

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
  raw.absent = false;

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
        bool missing =
            opened.getError() == std::errc::no_such_file_or_directory;
        // A weightless export names a data file that was never written.
        if (missing && options.shapesOnly) {
          raw.absent = true;
          return success();
        }
        return error(loc) << "tensor '" << proto.name()
                          << "' needs external data file '" << file
                          << "': " << opened.getError().message()
                          << (missing ? kShapesOnlyHint : "");
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
  } else if (element.isF32()) {
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
  if (!proto.has_raw_data())
    raw.bytes = raw.owned;
  if (raw.bytes.empty() && expected > 0 && options.shapesOnly) {
    raw.absent = true;
    return success();
  }
  if (raw.bytes.size() != expected)
    return error(loc) << "tensor '" << proto.name() << "' holds "
                      << raw.bytes.size() << " bytes but its shape " << type
                      << " needs " << expected
                      << (raw.bytes.empty() ? kShapesOnlyHint : "");
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
      // Sign-extends: int8 data are two's complement bytes.
      t.ints[i] =
          static_cast<int8_t>(data[i]); // NOLINT(bugprone-signed-char-misuse)
    } else {
      t.ints[i] = data[i] != 0;
    }
  }
  return t;
}

//===----------------------------------------------------------------------===//
// Graph inputs
//===----------------------------------------------------------------------===//

/// Remembers the first static dimension 0 (1) that differs from
/// --batch-size (--seq-len): if no dynamic dimension takes the size, the
/// export cannot be resized and the request is refused, not ignored.
int64_t Importer::staticDim(const onnx::ValueInfoProto &info, int index,
                            int64_t size) {
  int64_t asked = index == 0   ? options.batchSize
                  : index == 1 ? options.seqLen
                               : 0;
  if (asked <= 0 || asked == size || !unusedSize[index].empty())
    return size;
  llvm::raw_string_ostream os(unusedSize[index]);
  os << (index == 0 ? "--batch-size " : "--seq-len ") << asked
     << " cannot apply: input '" << info.name() << "' has the static shape ";
  llvm::interleave(
      info.type().tensor_type().shape().dim(), os,
      [&](const onnx::TensorShapeProto::Dimension &d) {
        if (d.has_dim_value())
          os << d.dim_value();
        else
          os << (d.dim_param().empty() ? "?" : d.dim_param());
      },
      "x");
  os << " (dimension " << index << " is " << size
     << "); re-export the model with dynamic batch and sequence axes "
        "(torch.onnx.export(..., dynamic_axes={'"
     << info.name()
     << "': {0: 'batch', 1: 'seq'}}), or dynamic_shapes with dynamo=True)";
  return size;
}

FailureOr<int64_t>
Importer::resolveDim(const onnx::ValueInfoProto &info, int index,
                     const onnx::TensorShapeProto::Dimension &dim) {
  if (dim.has_dim_value() && dim.dim_value() > 0)
    return staticDim(info, index, dim.dim_value());
  std::string name = dim.has_dim_param() ? dim.dim_param() : "";
  auto it = options.namedDims.find(name);
  if (!name.empty() && it != options.namedDims.end())
    return it->second;
  std::string lower = StringRef(name).lower();
  bool isBatch = StringRef(lower).contains("batch") ||
                 ((name.empty() || !StringRef(lower).contains("seq")) &&
                  index == 0 && !StringRef(lower).contains("len"));
  bool isSeq = !isBatch && (StringRef(lower).contains("seq") ||
                            StringRef(lower).contains("len") || index == 1);
  if (isBatch && options.batchSize > 0) {
    usedSize[0] = true;
    return options.batchSize;
  }
  if (isSeq && options.seqLen > 0) {
    usedSize[1] = true;
    return options.seqLen;
  }
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

LogicalResult Importer::absentDataError(Location loc, StringRef tensor) {
  auto diag = error(loc);
  if (activeNode)
    diag << describe(*activeNode) << " needs";
  else
    diag << "the import needs";
  return diag << " the values of initializer '" << tensor
              << "', which this shapes-only import has no data for; keep the "
                 "data of the small tensors that shapes and constants are "
                 "computed from in the export";
}

FailureOr<const HostTensor *> Importer::constantOf(Entry &entry, Location loc) {
  if (entry.constant)
    return &*entry.constant;
  if (!entry.absent.empty())
    return absentDataError(loc, entry.absent);
  if (!entry.parameter.empty()) {
    if (initializers[entry.parameter].absent)
      return absentDataError(loc, entry.parameter);
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
    SmallVector<HostTensor> outputs;
    std::string message;
    if (!evaluate(node, inputs, loc, outputs, message, attrFailed))
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
      const InitializerRole &role = roles[name];
      auto param = ParameterOp::create(moduleBuilder, loc, name, entry.type,
                                       role.role == WeightRole::Trainable);
      if (!role.reason.empty())
        param->setAttr(GalvDialect::getFrozenAttrName(),
                       moduleBuilder.getStringAttr(role.reason));
      // A shapes-only import has no bytes to list.
      const RawTensor &raw = initializers[name];
      if (!raw.absent) {
        galvatron::SafetensorsView &tensor = weights[name];
        tensor.dtype = safetensorsDType(entry.type.getElementType());
        tensor.shape.assign(entry.type.getShape().begin(),
                            entry.type.getShape().end());
        tensor.data = raw.bytes.data();
        tensor.size = raw.bytes.size();
      }
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
  if (!entry.absent.empty())
    return absentDataError(loc, entry.absent);
  return error(loc) << "internal error: value has neither IR nor a constant";
}

//===----------------------------------------------------------------------===//
// Attributes and host evaluation
//===----------------------------------------------------------------------===//

/// The node's attributes as the host folder reads them. A wrong attribute
/// type is reported at the node and sets `failedFlag`.
static FoldAttributes foldAttributes(OpContext &ctx, bool &failedFlag) {
  FoldAttributes attrs;
  attrs.numOutputs = ctx.numOutputs();
  attrs.getInt = [&](StringRef name) -> std::optional<int64_t> {
    auto v = ctx.intAttr(name);
    if (failed(v)) {
      failedFlag = true;
      return std::nullopt;
    }
    return *v;
  };
  attrs.getFloat = [&](StringRef name) -> std::optional<double> {
    auto v = ctx.floatAttr(name);
    if (failed(v)) {
      failedFlag = true;
      return std::nullopt;
    }
    return *v;
  };
  attrs.getInts = [&](StringRef name) -> std::optional<SmallVector<int64_t>> {
    auto v = ctx.intsAttr(name);
    if (failed(v)) {
      failedFlag = true;
      return std::nullopt;
    }
    return *v;
  };
  attrs.getElementType = [&](StringRef name) -> Type {
    auto v = ctx.intAttr(name);
    if (failed(v) || !*v) {
      failedFlag = true;
      return nullptr;
    }
    return ctx.elementType(static_cast<int32_t>(**v));
  };
  attrs.getTensor = [&](StringRef name) -> std::optional<HostTensor> {
    const onnx::AttributeProto *attr = ctx.findAttr(name);
    if (!attr)
      return std::nullopt;
    if (attr->type() != onnx::AttributeProto::TENSOR) {
      failedFlag = true;
      return std::nullopt;
    }
    FailureOr<HostTensor> t = ctx.hostTensor(attr->t());
    if (failed(t)) {
      failedFlag = true;
      return std::nullopt;
    }
    HostTensor tensor = std::move(*t);
    return tensor;
  };
  return attrs;
}

bool Importer::evaluate(const onnx::NodeProto &node,
                        ArrayRef<const HostTensor *> inputs, Location loc,
                        SmallVectorImpl<HostTensor> &outputs,
                        std::string &message, bool &attrFailed) {
  OpContext ctx(*this, builder, node, {}, loc);
  FoldAttributes attrs = foldAttributes(ctx, attrFailed);
  return foldONNXOp(node.op_type(), inputs, attrs, context, outputs, message);
}

FailureOr<HostTensor> Importer::hostTensor(const onnx::TensorProto &proto,
                                           Location loc) {
  RawTensor raw;
  RankedTensorType type;
  if (failed(readTensor(proto, loc, raw, type)))
    return failure();
  if (raw.absent)
    return absentDataError(loc, proto.name());
  return toHost(raw, type);
}

//===----------------------------------------------------------------------===//
// Nodes
//===----------------------------------------------------------------------===//

LogicalResult Importer::importNode(const onnx::NodeProto &node, Location loc) {
  llvm::SaveAndRestore<const onnx::NodeProto *> active(activeNode, &node);
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
  const OpInfo *info = OpTable::get().lookup(op);
  if (info && info->fromTypes) {
    OpContext ctx(*this, builder, node, inputs, loc);
    return info->handler(ctx);
  }

  bool allConstant = llvm::all_of(
      inputs, [](Entry *e) { return !e || e->isConstantAvailable(); });
  if (allConstant && isFoldableONNXOp(op)) {
    bool fromWeight = llvm::any_of(
        inputs, [](Entry *e) { return e && e->isWeightDerived(); });
    if (fromWeight && isDataMovement(op))
      return deferNode(node, inputs, loc);
    // Arithmetic on a trainable parameter stays IR (Gemma's `1 + weight`):
    // folding it would train a derived constant, or nothing.
    if (llvm::none_of(inputs, [](Entry *e) { return e && e->trainable; }))
      return foldNode(node, inputs, loc);
  }
  if (failed(emitNode(node, inputs, loc)))
    return failure();
  return checkOutputsSet(node, loc);
}

void Importer::releaseReads(const onnx::NodeProto &node) {
  for (const std::string &name : node.input()) {
    if (name.empty() || --pendingReads[name] > 0 || pinned.contains(name))
      continue;
    // Parameters and deferred values can recompute theirs; no one asks.
    auto it = values.find(name);
    if (it != values.end())
      it->second.constant.reset();
  }
}

LogicalResult Importer::deferNode(const onnx::NodeProto &node,
                                  ArrayRef<Entry *> inputs, Location loc) {
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
  for (const std::string &name : names)
    pinned.insert(name);
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
  bool trainable =
      llvm::any_of(inputs, [](Entry *e) { return e && e->trainable; });
  for (int i = 0; i < node.output_size(); ++i) {
    Entry &out = values[node.output(i)];
    out = Entry();
    out.trainable = trainable;
    out.deferred = &node;
    out.deferredResult = i;
    out.type = types[i];
  }
  return success();
}

LogicalResult Importer::foldNode(const onnx::NodeProto &node,
                                 ArrayRef<Entry *> inputs, Location loc) {
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
  SmallVector<HostTensor> outputs;
  std::string message;
  if (!evaluate(node, constants, loc, outputs, message, attrFailed)) {
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

LogicalResult Importer::emitNode(const onnx::NodeProto &node,
                                 ArrayRef<Entry *> inputs, Location loc) {
  llvm::SaveAndRestore<const onnx::NodeProto *> active(activeNode, &node);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(body);
  OpContext ctx(*this, builder, node, inputs, loc);
  const OpInfo *info = OpTable::get().lookup(node.op_type());
  // Constant, Shape and Size are never emitted: importNode computes them.
  if (!info || info->fromTypes)
    return ctx.unsupported();
  if (failed(ctx.needInputs(info->minInputs)))
    return failure();
  return info->handler(ctx);
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
  SmallVector<RankedTensorType> types;
  for (const auto &init : graph.initializer()) {
    if (failed(readTensor(init, fileLoc(), initializers[init.name()],
                          types.emplace_back())))
      return nullptr;
  }
  SmallVector<std::string> unmatched;
  roles = classifyInitializers(
      graph, options, [&](StringRef name) { return initializers[name].bytes; },
      unmatched);
  for (const std::string &pattern : unmatched)
    emitWarning(fileLoc()) << pattern << " matches no parameter";
  for (auto [init, type] : llvm::zip(graph.initializer(), types)) {
    const RawTensor &raw = initializers[init.name()];
    Entry &entry = values[init.name()];
    entry = Entry();
    entry.type = type;
    auto role = roles.find(init.name());
    if (role != roles.end() && role->second.role != WeightRole::Constant) {
      entry.parameter = init.name();
      entry.trainable = role->second.role == WeightRole::Trainable;
    } else if (raw.absent)
      entry.absent = init.name();
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
  for (int i = 0; i < 2; ++i)
    if (!usedSize[i] && !unusedSize[i].empty()) {
      emitError(fileLoc()) << unusedSize[i];
      return nullptr;
    }

  for (const auto &node : graph.node())
    for (const std::string &name : node.input())
      ++pendingReads[name];
  for (const auto &output : graph.output())
    ++pendingReads[output.name()];
  for (int i = 0; i < graph.node_size(); ++i) {
    currentIndex = i;
    const onnx::NodeProto &node = graph.node(i);
    Location loc = nodeLoc(node, i);
    if (failed(importNode(node, loc)))
      return nullptr;
    releaseReads(node);
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
  // And of the outputs: runners write them out by name (--output logits=).
  for (auto [i, output] : llvm::enumerate(graph.output()))
    func.setResultAttr(i, "onnx.name", builder.getStringAttr(output.name()));
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
