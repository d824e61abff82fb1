//===- LayerSummary.cpp - a table of a model's layers ---------------------===//

#include "galvatron/Target/LayerSummary.h"

#include "Galv/Galv.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Format.h"

using namespace mlir;
using namespace mlir::galv;

static int64_t bytesOf(RankedTensorType type) {
  return type.getNumElements() *
         llvm::divideCeil(type.getElementTypeBitWidth(), 8);
}

static std::string describe(StrategyAttr strategy) {
  if (!strategy)
    return "-";
  std::string text;
  llvm::raw_string_ostream os(text);
  // "s" marks a strided TP group; it means nothing without TP.
  os << "tp" << strategy.getTp()
     << (strategy.getTp() > 1 && !strategy.getTpConsecutive() ? "s" : "")
     << " dp" << strategy.getDp();
  if (strategy.getDpKind() != DataParallelKind::ddp)
    os << " " << stringifyEnum(strategy.getDpKind());
  if (strategy.getSp() != SequenceParallelKind::none)
    os << " sp-" << stringifyEnum(strategy.getSp());
  if (strategy.getCheckpoint())
    os << " ckpt";
  return text;
}

LogicalResult mlir::galv::printLayerSummary(ModuleOp module,
                                            llvm::raw_ostream &os) {
  SymbolTable symbols(module);
  os << llvm::format("%-6s %-24s %-6s %-28s %12s %14s\n", "layer", "type",
                     "stage", "strategy", "params", "bytes");
  int64_t index = 0;
  // Parameters that feed some layer instance; the rest are "other" layers'.
  llvm::StringSet<> inLayers;
  WalkResult walk = module.walk([&](LayerOp layer) -> WalkResult {
    auto layerType = symbols.lookup<LayerTypeOp>(layer.getLayerType());
    if (!layerType)
      return layer.emitOpError()
             << "calls unknown layer type @" << layer.getLayerType();
    int64_t count = 0, bytes = 0;
    for (Value param : layer.getParams()) {
      auto type = cast<RankedTensorType>(param.getType());
      count += type.getNumElements();
      bytes += bytesOf(type);
      if (auto get = param.getDefiningOp<GetParameterOp>())
        inLayers.insert(get.getName());
    }
    StrategyAttr strategy = layer.getStrategyAttr();
    os << llvm::format(
        "%-6lld %-24s %-6s %-28s %12lld %14lld\n",
        static_cast<long long>(index++), layerType.getSymName().str().c_str(),
        strategy ? std::to_string(strategy.getStage()).c_str() : "-",
        describe(strategy).c_str(), static_cast<long long>(count),
        static_cast<long long>(bytes));
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  int64_t layerParams = 0, otherParams = 0, totalBytes = 0, frozenCount = 0;
  SmallVector<ParameterOp> frozen;
  for (auto param : module.getOps<ParameterOp>()) {
    int64_t count = param.getTensorType().getNumElements();
    (inLayers.contains(param.getSymName()) ? layerParams : otherParams) +=
        count;
    totalBytes += bytesOf(param.getTensorType());
    if (!param.getTrainable()) {
      frozen.push_back(param);
      frozenCount += count;
    }
  }
  os << "layers: " << index << ", parameters in layers: " << layerParams
     << ", other parameters: " << otherParams
     << ", all parameters: " << layerParams + otherParams << " (" << totalBytes
     << " bytes)\n";
  if (frozen.empty())
    return success();
  // Frozen parameters are read but never trained: say which and why.
  os << "frozen: " << frozen.size() << " parameters (" << frozenCount
     << " elements), trained: " << layerParams + otherParams - frozenCount
     << " elements\n";
  for (ParameterOp param : frozen) {
    auto why =
        param->getAttrOfType<StringAttr>(GalvDialect::getFrozenAttrName());
    os << "  frozen " << param.getSymName() << " " << param.getType() << ": "
       << (why ? why.getValue() : StringRef("not trainable")) << "\n";
  }
  return success();
}
