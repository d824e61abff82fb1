//===- ExportConfig.cpp - the strategy as a Galvatron config file ---------===//

#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Transforms/Passes.h"

#include <nlohmann/json.hpp>

namespace mlir::galv {
#define GEN_PASS_DEF_EXPORTCONFIG
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// Galvatron writes per-layer lists as "1,2,2".
std::string joined(ArrayRef<int64_t> values) {
  std::string out;
  for (auto [i, v] : llvm::enumerate(values))
    out += (i ? "," : "") + std::to_string(v);
  return out;
}

struct ExportConfigPass : galv::impl::ExportConfigBase<ExportConfigPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan =
        module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
    if (!plan) {
      mlir::emitError(module.getLoc(),
                      "galv-export-config: the module has no galv.plan (run "
                      "galv-apply-strategy or the search first)");
      return signalPassFailure();
    }
    if (path.empty()) {
      mlir::emitError(module.getLoc(), "galv-export-config: give path=FILE");
      return signalPassFailure();
    }
    SmallVector<int64_t> tp, consec, dpTypes, useSp, checkpoint;
    bool missing = false;
    module.walk([&](LayerOp layer) {
      StrategyAttr s = layer.getStrategyAttr();
      if (!s) {
        layer.emitError("galv-export-config: layer has no strategy");
        missing = true;
        return;
      }
      // Galvatron's use_sp means Ulysses over the layer's tp degree; its
      // dp_types_enc marks ZeRO-3 layers against the default dp type.
      tp.push_back(s.getTp());
      consec.push_back(s.getTpConsecutive());
      dpTypes.push_back(s.getDpKind() == DataParallelKind::zero3 &&
                        plan.getDefaultDpKind() != DataParallelKind::zero3);
      useSp.push_back(s.getSp() == SequenceParallelKind::ulysses);
      checkpoint.push_back(s.getCheckpoint());
    });
    if (missing)
      return signalPassFailure();
    nlohmann::ordered_json json;
    json["pp_deg"] = plan.getPp();
    json["tp_sizes_enc"] = joined(tp);
    json["tp_consecutive_flags"] = joined(consec);
    json["dp_types_enc"] = joined(dpTypes);
    json["use_sp"] = joined(useSp);
    json["checkpoint"] = joined(checkpoint);
    json["global_bsz"] = plan.getGlobalBatch();
    json["chunks"] = plan.getChunks();
    json["pp_division"] = joined(plan.getPpDivision());
    json["pipeline_type"] = stringifyEnum(plan.getSchedule()).str();
    json["default_dp_type"] = stringifyEnum(plan.getDefaultDpKind()).str();
    json["vtp"] = plan.getVocabTp();
    json["vsp"] = plan.getVocabSp() != SequenceParallelKind::none ? 1 : 0;
    json["embed_sdp"] = plan.getEmbedZero3() ? 1 : 0;
    std::string text = json.dump(4) + "\n";
    std::string error;
    if (!galvatron::writeFileAtomically(path, {{text.data(), text.size()}},
                                        error)) {
      mlir::emitError(module.getLoc(), "galv-export-config: ") << error;
      return signalPassFailure();
    }
    markAllAnalysesPreserved();
  }
};

} // namespace
