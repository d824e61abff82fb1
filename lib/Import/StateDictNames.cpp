//===- StateDictNames.cpp - give imported parameters their state-dict names
//---===//
//
// Exporters fold nn.Linear weights into transposed copies with opaque names
// (`onnx::MatMul_658`, `val_252`) and split tied weights into separate
// initializers. Given the model's state dict, each parameter whose bytes
// equal a state-dict tensor takes its name, and one whose bytes equal a
// state-dict tensor transposed is read through a transpose of that tensor;
// parameters with the same source collapse into one (re-tying GPT-2's head
// to its token embedding).
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"

#include "Galv/Galv.h"
#include "mlir/IR/Builders.h"
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
  }
}

std::string StateDictIndex::nameOf(const std::string &bytes) const {
  if (auto it = byBytes.find(bytes); it != byBytes.end())
    return it->second;
  if (auto it = byTransposed.find(bytes); it != byTransposed.end())
    return it->second;
  return "";
}

LogicalResult mlir::galv::applyStateDictNames(
    ModuleOp module, ImportedONNX &imported,
    const std::map<std::string, galvatron::SafetensorsTensor> &stateDict) {
  StateDictIndex index(stateDict);
  OpBuilder builder(module.getContext());
  auto declared = [&](StringRef name) {
    return module.lookupSymbol<ParameterOp>(name);
  };
  /// Among equal candidates prefer one already declared, then the first.
  auto pick = [&](auto range) -> std::string {
    std::string chosen;
    for (auto it = range.first; it != range.second; ++it) {
      if (declared(it->second))
        return it->second;
      if (chosen.empty())
        chosen = it->second;
    }
    return chosen;
  };

  SmallVector<ParameterOp> params(module.getOps<ParameterOp>());
  for (ParameterOp param : params) {
    std::string name = param.getSymName().str();
    auto viewIt = imported.weights.find(name);
    if (viewIt == imported.weights.end())
      continue;
    const galvatron::SafetensorsView &view = viewIt->second;
    std::string bytes(view.data, view.size);
    auto sameName = stateDict.find(name);
    if (sameName != stateDict.end() &&
        std::string(sameName->second.data.begin(),
                    sameName->second.data.end()) == bytes)
      continue;

    std::string direct = pick(index.direct(bytes));
    std::string flipped = direct.empty() ? pick(index.transposed(bytes)) : "";
    std::string target = direct.empty() ? flipped : direct;
    if (target.empty())
      continue;
    const galvatron::SafetensorsTensor &source = stateDict.at(target);
    auto targetType = RankedTensorType::get(
        source.shape, param.getTensorType().getElementType());

    // Declare the state-dict tensor (once) with its own bytes.
    if (!declared(target)) {
      builder.setInsertionPoint(param);
      auto declaredParam = ParameterOp::create(
          builder, param.getLoc(), target, targetType, param.getTrainable());
      if (Attribute why = param->getAttr(GalvDialect::getFrozenAttrName()))
        declaredParam->setAttr(GalvDialect::getFrozenAttrName(), why);
      imported.weights[target] = {source.dtype, source.shape,
                                  source.data.data(), source.data.size()};
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
          FlatSymbolRefAttr::get(builder.getStringAttr(target)));
      // A transposed copy is read through a transpose, square or not.
      if (direct.empty())
        value = TransposeOp::create(builder, get.getLoc(), value,
                                    ArrayRef<int64_t>{1, 0});
      get.replaceAllUsesWith(value);
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
