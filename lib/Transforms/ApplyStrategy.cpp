//===- ApplyStrategy.cpp - strategies from Galvatron configs or flags -----===//
//
// The pass reads its options or the config file into a StrategySpec; the
// checks and the attributes live in StrategyApplication.cpp, shared with
// galv-search.
//
//===----------------------------------------------------------------------===//

#include "StrategyApplication.h"
#include "galvatron/Transforms/Passes.h"

#include "llvm/Support/MemoryBuffer.h"

namespace mlir::galv {
#define GEN_PASS_DEF_APPLYSTRATEGY
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

struct ApplyStrategyPass : galv::impl::ApplyStrategyBase<ApplyStrategyPass> {
  using Base::Base;

  /// Options are given once (a
  /// repeated `tp=` would append and silently become a per-layer list; a
  /// repeated scalar would silently take the last value), and the GLOBAL
  /// switches are 0 or 1.
  LogicalResult checkOptions(std::string &error) {
    for (auto [name, occurrences] :
         {std::pair<const char *, int>{"config",
                                       configPath.getNumOccurrences()},
          {"world-size", worldSize.getNumOccurrences()},
          {"pp", pp.getNumOccurrences()},
          {"pp-division", ppDivision.getNumOccurrences()},
          {"tp", tp.getNumOccurrences()},
          {"tp-consec", tpConsec.getNumOccurrences()},
          {"sdp", sdp.getNumOccurrences()},
          {"sp", sp.getNumOccurrences()},
          {"checkpoint", checkpoint.getNumOccurrences()},
          {"chunks", chunks.getNumOccurrences()},
          {"global-batch", globalBatch.getNumOccurrences()},
          {"pipeline", pipeline.getNumOccurrences()},
          {"dp-type", dpType.getNumOccurrences()},
          {"vocab-tp", vocabTp.getNumOccurrences()},
          {"vocab-sp", vocabSp.getNumOccurrences()},
          {"embed-sdp", embedSdp.getNumOccurrences()}})
      if (occurrences > 1)
        return error = "option '" + std::string(name) + "' is given " +
                       std::to_string(occurrences) + " times; give it once",
               failure();
    for (auto [name, values] :
         {std::pair<const char *, ArrayRef<int64_t>>{"tp-consec", tpConsec},
          {"sdp", sdp},
          {"checkpoint", checkpoint}})
      if (failed(checkSwitches(values, "option '" + std::string(name) + "'",
                               error)))
        return failure();
    if (globalBatch < 0)
      return error = "option 'global-batch' has " +
                     std::to_string(globalBatch) +
                     "; it must be positive, or 0 for the imported batch x "
                     "chunks",
             failure();
    return success();
  }

  LogicalResult apply(ModuleOp module, std::string &error) {
    StrategySpec s;
    if (failed(checkOptions(error)))
      return failure();
    if (!configPath.empty()) {
      auto buffer = llvm::MemoryBuffer::getFile(configPath);
      if (!buffer)
        return error = "cannot read '" + configPath +
                       "': " + buffer.getError().message(),
               failure();
      if (failed(parseGalvatronConfig((*buffer)->getBuffer(), configPath,
                                      megatronSp, s, error)))
        return failure();
    } else {
      s.pp = pp;
      s.ppDivision.assign(ppDivision.begin(), ppDivision.end());
      s.tp.assign(tp.begin(), tp.end());
      s.tpConsec.assign(tpConsec.begin(), tpConsec.end());
      s.sdp.assign(sdp.begin(), sdp.end());
      s.checkpoint.assign(checkpoint.begin(), checkpoint.end());
      for (const std::string &kind : sp)
        s.sp.push_back(kind);
      s.chunks = chunks;
      s.globalBatch = globalBatch;
      s.pipeline = pipeline;
      s.dpType = dpType;
      s.vocabTp = vocabTp;
      s.vocabSp = vocabSp ? "megatron" : "none";
      s.embedSdp = embedSdp;
    }
    s.worldSize = worldSize;
    return applyStrategySpec(module, s, error);
  }

  void runOnOperation() override {
    std::string error;
    if (failed(apply(getOperation(), error))) {
      mlir::emitError(getOperation().getLoc(), "galv-apply-strategy: ")
          << error;
      signalPassFailure();
    }
  }
};

} // namespace
