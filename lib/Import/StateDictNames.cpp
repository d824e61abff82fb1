//===- StateDictNames.cpp - give imported parameters their state-dict names
//---===//
//
// Exporters fold nn.Linear weights into transposed copies with opaque names
// (`onnx::MatMul_658`, `val_252`) and split tied weights into separate
// initializers. Given the model's state dict, each parameter whose bytes
// equal a state-dict tensor takes its name, one whose bytes equal a
// state-dict tensor transposed is read through a transpose of that tensor,
// and one whose bytes equal `1 + w` for a state-dict vector w (Gemma's norm
// scales, which the exporters fold) is read as `1 + w`, so that w is what
// AdamW updates and decays, and a trainable one made of rows of a
// state-dict matrix (position rows a static-shape export looked up at
// constant positions) is read as those rows gathered from it; parameters
// with the same source collapse into one (re-tying GPT-2's head to its token
// embedding) under the name PyTorch's named_parameters() would give it.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"

#include "Galv/Galv.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"

#include <cstring>

using namespace mlir;
using namespace mlir::galv;

namespace {

/// The bytes of a 2-D tensor of `width`-byte elements, transposed.
std::string transposedBytes(const char *data, int64_t rows, int64_t cols,
                            size_t width) {
  std::string out(rows * cols * width, '\0');
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(&out[(c * rows + r) * width], data + (r * cols + c) * width,
                  width);
  return out;
}

/// The bytes of `1 + w` for an f32 tensor w, rounded as PyTorch's f32 add.
std::string plusOneBytes(const std::vector<char> &data) {
  std::string out(data.size(), '\0');
  for (size_t i = 0; i + sizeof(float) <= data.size(); i += sizeof(float)) {
    float v;
    std::memcpy(&v, data.data() + i, sizeof v);
    v = 1.0f + v;
    std::memcpy(&out[i], &v, sizeof v);
  }
  return out;
}

/// How an imported parameter's bytes derive from its state-dict tensor.
enum class Form { Direct, Transposed, PlusOne, Rows };

/// A parameter's state-dict source.
struct Source {
  std::string name;
  Form form = Form::Direct;
  /// Form::Rows: the source's rows the parameter's rows are, in order.
  SmallVector<int64_t> rows;
};

/// The rows of the state dict's matrices by their bytes, indexed per
/// matrix on first use: where an exporter folded a lookup at constant
/// positions (a static-shape export's position rows) into a constant.
class RowIndex {
public:
  explicit RowIndex(
      const std::map<std::string, galvatron::SafetensorsTensor> &stateDict)
      : stateDict(stateDict) {}
  /// A matrix of `dtype` with `width` columns whose rows `bytes` is made
  /// of, with the row indices; false when none.
  bool find(StringRef bytes, int64_t width, StringRef dtype, Source &source);

private:
  const std::map<std::string, galvatron::SafetensorsTensor> &stateDict;
  std::map<std::string, llvm::StringMap<int64_t>> byMatrix;
};

bool RowIndex::find(StringRef bytes, int64_t width, StringRef dtype,
                    Source &source) {
  for (const auto &[name, t] : stateDict) {
    if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] != width ||
        t.dtype != dtype)
      continue;
    size_t rowBytes = t.data.size() / t.shape[0];
    if (rowBytes == 0 || bytes.empty() || bytes.size() % rowBytes)
      continue;
    auto [it, fresh] = byMatrix.try_emplace(name);
    llvm::StringMap<int64_t> &rows = it->second;
    // Backwards, so that equal rows map to the first.
    for (int64_t r = fresh ? t.shape[0] - 1 : -1; r >= 0; --r)
      rows[StringRef(t.data.data() + r * rowBytes, rowBytes)] = r;
    source.rows.clear();
    for (size_t at = 0; at < bytes.size(); at += rowBytes) {
      auto row = rows.find(bytes.substr(at, rowBytes));
      if (row == rows.end())
        break;
      source.rows.push_back(row->second);
    }
    if (source.rows.size() * rowBytes == bytes.size()) {
      source.name = name;
      source.form = Form::Rows;
      return true;
    }
  }
  return false;
}

using StateDict = std::map<std::string, galvatron::SafetensorsTensor>;

/// Tied weights: named_parameters() lists a tensor once, under the first
/// name module order gives it, which the state dict does not keep. Where two
/// names part, a module's own parameter comes first (RoBERTa's lm_head.bias
/// before lm_head.decoder.bias), then the submodule holding more of the
/// state dict (the base model before its head), then one that is not an
/// output head (nanoGPT's wte before lm_head).
bool listedBefore(StringRef a, StringRef b, const StateDict &stateDict) {
  SmallVector<StringRef> pa, pb;
  a.split(pa, '.');
  b.split(pb, '.');
  size_t i = 0;
  while (i < pa.size() && i < pb.size() && pa[i] == pb[i])
    ++i;
  if (i == pa.size() || i == pb.size())
    return a < b;
  bool leafA = i + 1 == pa.size(), leafB = i + 1 == pb.size();
  if (leafA != leafB)
    return leafA;
  auto held = [&](ArrayRef<StringRef> parts) {
    std::string prefix = llvm::join(parts.take_front(i + 1), ".") + ".";
    int64_t n = 0;
    for (auto it = stateDict.lower_bound(prefix);
         it != stateDict.end() && StringRef(it->first).starts_with(prefix);
         ++it)
      ++n;
    return n;
  };
  int64_t heldA = held(pa), heldB = held(pb);
  if (heldA != heldB)
    return heldA > heldB;
  auto isHead = [](StringRef part) {
    return llvm::is_contained(
        {"lm_head", "head", "cls", "embed_out", "output", "decoder"}, part);
  };
  if (isHead(pa[i]) != isHead(pb[i]))
    return isHead(pb[i]);
  return a < b;
}

/// All elements equal (a fresh norm's ones, a zero bias): equal bytes then
/// say nothing about tying.
bool isUniform(StringRef bytes, size_t width) {
  for (size_t at = width; width && at + width <= bytes.size(); at += width)
    if (bytes.substr(at, width) != bytes.take_front(width))
      return false;
  return true;
}

/// `param` (holding `bytes`) as its source reads it: the state-dict tensor
/// `value`, transposed, plus one or its rows looked up, in `type`'s shape.
Value rebuild(OpBuilder &builder, Location loc, Value value,
              const Source &source, Type type) {
  if (source.form == Form::Transposed)
    value = TransposeOp::create(builder, loc, value, ArrayRef<int64_t>{1, 0});
  if (source.form == Form::PlusOne)
    value = AddOp::create(
        builder, loc, value,
        ConstantOp::create(
            builder, loc,
            DenseElementsAttr::get(
                RankedTensorType::get({}, builder.getF32Type()), 1.0f)));
  if (source.form == Form::Rows) {
    auto idsType = RankedTensorType::get(
        {static_cast<int64_t>(source.rows.size())}, builder.getI64Type());
    Value ids = ConstantOp::create(
        builder, loc,
        DenseElementsAttr::get(idsType, ArrayRef<int64_t>(source.rows)));
    value = GatherOp::create(builder, loc, value, ids,
                             builder.getI64IntegerAttr(0));
  }
  // The same elements in the exporter's shape ([1, 1, D] for [D]).
  if (value.getType() != type)
    value = ReshapeOp::create(builder, loc, type, value);
  return value;
}

} // namespace

StateDictIndex::StateDictIndex(
    const std::map<std::string, galvatron::SafetensorsTensor> &stateDict) {
  for (const auto &[name, t] : stateDict) {
    std::string bytes(t.data.begin(), t.data.end());
    byBytes.emplace(bytes, name);
    if (t.shape.size() == 2)
      byTransposed.emplace(
          transposedBytes(t.data.data(), t.shape[0], t.shape[1],
                          galvatron::safetensorsDTypeSize(t.dtype)),
          name);
    // Norm scales only: vectors, so the index stays small.
    if (t.shape.size() == 1 && t.dtype == "F32")
      byPlusOne.emplace(plusOneBytes(t.data), name);
  }
}

std::string StateDictIndex::nameOf(const std::string &bytes) const {
  if (auto it = byBytes.find(bytes); it != byBytes.end())
    return it->second;
  if (auto it = byTransposed.find(bytes); it != byTransposed.end())
    return it->second;
  if (auto it = byPlusOne.find(bytes); it != byPlusOne.end())
    return it->second;
  return "";
}

LogicalResult mlir::galv::applyStateDictNames(
    ModuleOp module, ImportedONNX &imported,
    const std::map<std::string, galvatron::SafetensorsTensor> &stateDict) {
  StateDictIndex index(stateDict);
  RowIndex rowIndex(stateDict);
  OpBuilder builder(module.getContext());
  auto declared = [&](StringRef name) {
    return module.lookupSymbol<ParameterOp>(name);
  };
  /// Among equal candidates, the name named_parameters() gives tied
  /// weights. A uniform tensor keeps its own name, or stays unnamed when
  /// several could be it: merging untied copies would train them as one.
  auto pick = [&](StateDictIndex::Range range, StringRef own,
                  bool uniform) -> std::string {
    std::string chosen;
    bool several = false;
    for (auto it = range.first; it != range.second; ++it) {
      if (uniform && it->second == own)
        return it->second;
      several = !chosen.empty();
      if (chosen.empty() || listedBefore(it->second, chosen, stateDict))
        chosen = it->second;
    }
    return uniform && several ? "" : chosen;
  };

  SmallVector<ParameterOp> params(module.getOps<ParameterOp>());
  for (ParameterOp param : params) {
    std::string name = param.getSymName().str();
    auto viewIt = imported.weights.find(name);
    if (viewIt == imported.weights.end())
      continue;
    const galvatron::SafetensorsView &view = viewIt->second;
    std::string bytes(view.data, view.size);
    bool uniform =
        isUniform(bytes, galvatron::safetensorsDTypeSize(view.dtype));

    std::pair<StateDictIndex::Range, Form> forms[] = {
        {index.direct(bytes), Form::Direct},
        {index.transposed(bytes), Form::Transposed},
        {index.plusOne(bytes), Form::PlusOne}};
    Source source;
    for (auto &[range, form] : forms)
      if (source.name.empty()) {
        source.name = pick(range, name, uniform);
        source.form = form;
      }
    RankedTensorType paramType = param.getTensorType();
    if (source.form == Form::PlusOne && !paramType.getElementType().isF32())
      source.name.clear();
    // A trainable constant made of a matrix's rows is those rows looked
    // up (position rows folded at static positions).
    if (source.name.empty() && param.getTrainable() &&
        paramType.getRank() >= 2 &&
        !rowIndex.find(bytes, paramType.getShape().back(), view.dtype, source))
      continue;
    if (source.name.empty() ||
        (source.form == Form::Direct && source.name == name))
      continue;
    const galvatron::SafetensorsTensor &tensor = stateDict.at(source.name);
    auto targetType =
        RankedTensorType::get(tensor.shape, paramType.getElementType());

    // Declare the state-dict tensor (once) with its own bytes.
    if (!declared(source.name)) {
      builder.setInsertionPoint(param);
      auto declaredParam =
          ParameterOp::create(builder, param.getLoc(), source.name, targetType,
                              param.getTrainable());
      if (Attribute why = param->getAttr(GalvDialect::getFrozenAttrName()))
        declaredParam->setAttr(GalvDialect::getFrozenAttrName(), why);
      imported.weights[source.name] = {tensor.dtype, tensor.shape,
                                       tensor.data.data(), tensor.data.size()};
    }
    // Re-point every read of the old parameter.
    SmallVector<GetParameterOp> reads;
    module.walk([&](GetParameterOp get) {
      if (get.getName() == name)
        reads.push_back(get);
    });
    for (GetParameterOp get : reads) {
      builder.setInsertionPoint(get);
      Value value = GetParameterOp::create(
          builder, get.getLoc(), targetType,
          FlatSymbolRefAttr::get(builder.getStringAttr(source.name)));
      get.replaceAllUsesWith(
          rebuild(builder, get.getLoc(), value, source, get.getType()));
      get.erase();
    }
    param.erase();
    imported.weights.erase(name);
  }
  return success();
}

LogicalResult mlir::galv::tieEmbeddings(ModuleOp module,
                                        ImportedONNX &imported) {
  // The tables, as a state dict of their own bytes: matching against it
  // re-points every copy, as matching against the model's state dict does.
  std::map<std::string, galvatron::SafetensorsTensor> tables;
  module.walk([&](GatherOp gather) {
    auto get = gather.getData().getDefiningOp<GetParameterOp>();
    if (!get || gather.getAxis() != 0)
      return;
    auto it = imported.weights.find(get.getName().str());
    if (it == imported.weights.end() || tables.count(it->first))
      return;
    const galvatron::SafetensorsView &view = it->second;
    galvatron::SafetensorsTensor &table = tables[it->first];
    table.dtype = view.dtype;
    table.shape = view.shape;
    table.data.assign(view.data, view.data + view.size);
  });
  // Every match is a parameter the module already declares, so nothing
  // will point into `tables` once it is gone.
  return applyStateDictNames(module, imported, tables);
}
