//===- InlineLayers.cpp - inline layer instances into their callers -------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::galv {
#define GEN_PASS_DEF_INLINELAYERS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace mlir::galv {
namespace {
struct InlineLayersPass : public impl::InlineLayersBase<InlineLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);

    SmallVector<LayerOp> layers;
    module.walk([&](LayerOp layer) { layers.push_back(layer); });
    for (auto [index, layer] : llvm::enumerate(layers)) {
      auto layerType = symbols.lookup<LayerTypeOp>(layer.getLayerType());
      if (!layerType) {
        layer.emitOpError()
            << "calls unknown layer type @" << layer.getLayerType();
        return signalPassFailure();
      }
      Block &body = layerType.getBody().front();
      IRMapping mapping;
      mapping.map(body.getArguments(), layer.getOperands());
      OpBuilder builder(layer);
      // Each inlined op remembers its instance's strategy, which
      // galv-partition reads.
      StrategyAttr strategy = layer.getStrategyAttr();
      for (Operation &op : body.without_terminator()) {
        Operation *copy = builder.clone(op, mapping);
        if (strategy) {
          copy->setAttr(GalvDialect::getStrategyAttrName(), strategy);
          copy->setAttr(GalvDialect::getLayerAttrName(),
                        builder.getI64IntegerAttr(index));
        }
      }
      auto ret = cast<ReturnOp>(body.getTerminator());
      SmallVector<Value> results;
      for (Value operand : ret.getOperands())
        results.push_back(mapping.lookupOrDefault(operand));
      layer.replaceAllUsesWith(results);
      layer.erase();
    }

    if (keepLayerTypes)
      return;
    for (auto layerType :
         llvm::make_early_inc_range(module.getOps<LayerTypeOp>()))
      if (SymbolTable::symbolKnownUseEmpty(layerType, module))
        layerType.erase();
  }
};
} // namespace
} // namespace mlir::galv
