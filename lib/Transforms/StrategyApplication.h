//===- StrategyApplication.h - a whole strategy onto a module ---*- C++ -*-===//
//
// What galv-apply-strategy and galv-search share: the strategy as one value
// (from Galvatron's config file, the pass's flags or a search result), its
// checks against the model, and the attributes it becomes (#galv.plan on
// the module, a #galv.strategy on every layer instance).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_LIB_TRANSFORMS_STRATEGYAPPLICATION_H
#define GALVATRON_LIB_TRANSFORMS_STRATEGYAPPLICATION_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"

#include <string>

namespace mlir::galv {

/// The whole strategy before it becomes attributes. Per-layer lists hold one
/// value for every layer, one per layer, or nothing (the default).
struct StrategySpec {
  int64_t worldSize = 1, pp = 1, chunks = 1, globalBatch = 0, vocabTp = 1;
  SmallVector<int64_t> tp, tpConsec, sdp, checkpoint, ppDivision;
  SmallVector<std::string> sp;
  std::string pipeline = "gpipe", dpType = "ddp", vocabSp = "none";
  bool embedSdp = false;
  /// Where it came from, for errors: "key 'pp_division'" or "option
  /// 'pp-division'" style names follow from it.
  bool fromConfig = false;
};

/// Parses Galvatron's galvatron_config_*.json text; `source` names it in
/// errors. `megatronSp` gives tp layers without use_sp Megatron's sequence
/// parallelism (Galvatron's global --sequence_parallel).
LogicalResult parseGalvatronConfig(StringRef text, StringRef source,
                                   bool megatronSp, StrategySpec &spec,
                                   std::string &error);

/// Galvatron's per-layer switches are 0 or 1; `name` says where the values
/// came from ("key 'use_sp'", "option 'sdp'").
LogicalResult checkSwitches(ArrayRef<int64_t> values, const std::string &name,
                            std::string &error);

/// Checks `spec` against the model (degrees that divide the world, heads,
/// batch and sequence) and attaches it; on failure the module is unchanged
/// and `error` says why.
LogicalResult applyStrategySpec(ModuleOp module, StrategySpec spec,
                                std::string &error);

} // namespace mlir::galv

#endif // GALVATRON_LIB_TRANSFORMS_STRATEGYAPPLICATION_H
