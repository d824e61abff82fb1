//===- SearchStrategy.cpp - galv-search: the best strategy that fits -----===//
//
// Reads the module's costs into GalvatronCostModel, runs the exact search
// of lib/Search over the space the options allow, and applies the winner
// through the same code as galv-apply-strategy. The imported batch is the
// micro-batch, so each global batch fixes the chunk count.
//
//===----------------------------------------------------------------------===//

#include "CostInputs.h"
#include "PlanMeasure.h"
#include "SearchReport.h"
#include "StrategyApplication.h"
#include "galvatron/Search/Search.h"
#include "galvatron/Transforms/Passes.h"

#include <cstdio>
#include <thread>

namespace mlir::galv {
#define GEN_PASS_DEF_SEARCH
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;
namespace cm = galvatron::costmodel;
namespace gs = galvatron::search;

namespace {

/// The global batches `text` allows: "" (the imported batch), "B" or
/// "MIN:MAX" (every multiple of the imported batch in the range).
LogicalResult globalBatches(StringRef text, int64_t imported,
                            SmallVector<int, 4> &out, std::string &error) {
  if (imported < 1)
    return error = "the imported batch size is unknown (dynamic); import "
                   "with --batch-size",
           failure();
  if (text.empty()) {
    out.push_back(static_cast<int>(imported));
    return success();
  }
  auto [lo, hi] = text.split(':');
  int64_t min = 0, max = 0;
  bool bad = lo.getAsInteger(10, min) || min < 1;
  if (hi.empty())
    max = min;
  else
    bad = bad || hi.getAsInteger(10, max);
  if (bad || max < min)
    return error = "option 'global-batch' is '" + text.str() +
                   "'; expected B or MIN:MAX with 1 <= MIN <= MAX",
           failure();
  for (int64_t b = ((min + imported - 1) / imported) * imported; b <= max;
       b += imported)
    out.push_back(static_cast<int>(b));
  if (out.empty())
    return error = "option 'global-batch' " + text.str() +
                   " holds no multiple of the imported batch " +
                   std::to_string(imported) +
                   " (the imported batch is the micro-batch)",
           failure();
  return success();
}

/// GB with enough digits to tell a small model's budgets apart.
std::string formatGb(double gb) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", gb);
  return text;
}

std::string describeMemory(double gb) {
  char text[64];
  std::snprintf(text, sizeof(text), "%s GB (%.0f bytes)", formatGb(gb).c_str(),
                gb * double(1 << 30));
  return text;
}

/// The winner as galv-apply-strategy's input.
StrategySpec toSpec(const cm::Strategy &s, int64_t world, bool megatronSp) {
  StrategySpec spec;
  spec.worldSize = world;
  spec.pp = s.pp;
  spec.ppDivision.assign(s.ppDivision.begin(), s.ppDivision.end());
  for (const cm::LayerStrategy &l : s.layers) {
    spec.tp.push_back(l.tp);
    spec.tpConsec.push_back(l.consecutive);
    spec.sdp.push_back(l.zero3);
    spec.checkpoint.push_back(l.checkpoint);
    spec.sp.push_back(l.ulysses ? "ulysses" : megatronSp ? "megatron" : "none");
  }
  spec.chunks = s.chunks;
  spec.globalBatch = s.globalBatch;
  spec.pipeline =
      s.pipeline == cm::PipelineType::GPipe ? "gpipe" : "pipedream_flush";
  spec.dpType = s.defaultZero2 ? "zero2" : "ddp";
  spec.vocabTp = s.vtp;
  spec.vocabSp = s.vsp ? "megatron" : "none";
  spec.embedSdp = s.embedSdp;
  return spec;
}

struct SearchPass : galv::impl::SearchBase<SearchPass> {
  using Base::Base;

  /// The space the options name.
  LogicalResult makeSpace(gs::SearchSpace &out, bool &uniform,
                          std::string &error) {
    out.maxTp = static_cast<int>(maxTp);
    out.ulysses = sp == "ulysses" || sp == "both";
    out.checkpoint = recompute != 0;
    if (tpConsec == "0")
      out.tpConsecutive = false;
    else if (tpConsec == "1")
      out.tpStrided = false;
    else if (tpConsec != "both")
      return error = "option 'tp-consec' is '" + tpConsec +
                     "'; expected 0, 1 or both",
             failure();
    if (pipeline == "gpipe")
      out.pipelines = {cm::PipelineType::GPipe};
    else if (pipeline == "both")
      out.pipelines = {cm::PipelineType::GPipe,
                       cm::PipelineType::PipeDreamFlush};
    else if (pipeline != "pipedream_flush" && pipeline != "1f1b")
      return error = "option 'pipeline' is '" + pipeline +
                     "'; expected gpipe, pipedream_flush or both",
             failure();
    if (division == "search")
      out.searchDivision = true;
    else if (division != "even")
      return error = "option 'division' is '" + division +
                     "'; expected even or search",
             failure();
    uniform = space == "3d";
    int world = static_cast<int>(worldSize);
    if (space == "dp+tp" || space == "dp" || space == "sdp" || space == "tp")
      out.maxPp = 1;
    if (space == "dp+pp" || space == "dp" || space == "sdp" || space == "pp")
      out.maxTp = 1;
    if (space == "dp")
      out.zero3 = out.defaultZero2 = false;
    if (space == "tp")
      out.minTp = out.maxTp = std::min(world, out.maxTp);
    if (space == "pp")
      out.minPp = out.maxPp = world;
    if (space != "full" && space != "dp+tp" && space != "dp+pp" &&
        space != "3d" && space != "dp" && space != "sdp" && space != "tp" &&
        space != "pp")
      return error = "option 'space' is '" + space +
                     "'; expected full, dp+tp, dp+pp, 3d, dp, sdp, tp or pp",
             failure();
    return success();
  }

  LogicalResult search(ModuleOp module, std::string &error) {
    if (apply && !chunks.empty())
      return error = "option 'chunks' is for apply=0: a plan to apply takes "
                     "its chunk count from global-batch / the imported batch",
             failure();
    if (llvm::any_of(chunks, [](int64_t c) { return c < 1; }))
      return error = "option 'chunks' takes positive counts", failure();
    if (sp != "none" && sp != "megatron" && sp != "ulysses" && sp != "both")
      return error = "option 'sp' is '" + sp +
                     "'; expected none, megatron, ulysses or both",
             failure();
    if (!(memoryGb > 0))
      return error = "option 'memory-gb' must be positive (memory per "
                     "device in GB)",
             failure();
    bool megatronSp = sp == "megatron" || sp == "both";
    ModuleCosts costs;
    if (failed(loadModuleCosts(module, worldSize, nodes, memoryGb, megatronSp,
                               costs, error)))
      return failure();
    cm::GalvatronCostModel model;
    if (!model.init(costs.hardware.comm, costs.computation, costs.memory,
                    costs.settings, error))
      return failure();
    gs::SearchSpace searchSpace;
    bool uniform = false;
    SmallVector<int, 4> batches;
    if (failed(makeSpace(searchSpace, uniform, error)) ||
        failed(globalBatches(globalBatch, apply ? costs.shape.batch : 1,
                             batches, error)))
      return failure();
    gs::SearchOptions options;
    options.memoryGB = memoryGb;
    options.threads = threads > 0
                          ? static_cast<int>(threads)
                          : std::max(1u, std::thread::hardware_concurrency());
    options.topK = static_cast<int>(std::max<int64_t>(1, top));
    gs::SearchResult result;
    for (int batch : batches) {
      // The micro-batch is the imported batch: one chunk count per batch.
      // A plan only reported tries every power of two up to the batch.
      searchSpace.chunks.clear();
      if (apply)
        searchSpace.chunks = {batch / static_cast<int>(costs.shape.batch)};
      if (!apply && !chunks.empty())
        searchSpace.chunks.assign(chunks.begin(), chunks.end());
      for (int c = 1; !apply && chunks.empty() && c <= batch; c *= 2)
        searchSpace.chunks.push_back(c);
      options.globalBatches = {batch};
      gs::SearchResult one;
      if (uniform
              ? !gs::searchUniform(model, searchSpace, options, one, error)
              : !gs::searchStrategy(model, searchSpace, options, one, error))
        return failure();
      mergeResults(one, options.topK, result);
    }
    if (!result.found) {
      if (result.minMemoryMb > 0)
        return error = "nothing fits " + describeMemory(memoryGb) +
                       " per device; the smallest memory per device that "
                       "fits is " +
                       describeMemory(result.minMemoryMb / 1024) +
                       " (memory-gb=" + formatGb(result.minMemoryMb / 1024) +
                       ")",
               failure();
      return error = "no strategy of the space applies to " +
                     std::to_string(worldSize) +
                     " devices and these batch sizes",
             failure();
    }
    ExactMemory exact;
    if (!apply)
      return writeReports(model, costs, result, nullptr, error);
    if (costs.native && verifyMemory &&
        failed(firstThatFits(module, result, megatronSp, exact, error)))
      return failure();
    if (failed(applyStrategySpec(
            module, toSpec(result.best.front().strategy, worldSize, megatronSp),
            error)))
      return error = "the chosen strategy does not apply: " + error, failure();
    return writeReports(model, costs, result,
                        costs.native && verifyMemory ? &exact : nullptr, error);
  }

  /// Every path of `report`, comma separated.
  LogicalResult writeReports(const cm::GalvatronCostModel &model,
                             const ModuleCosts &costs,
                             const gs::SearchResult &result,
                             const ExactMemory *exact, std::string &error) {
    SmallVector<StringRef> paths;
    StringRef(report).split(paths, ',', -1, /*KeepEmpty=*/false);
    for (StringRef path : paths)
      if (failed(writeSearchReport(path, model, costs, result, memoryGb, exact,
                                   error)))
        return failure();
    return success();
  }

  /// Lowers the candidates best first and keeps the first whose plan fits
  /// the budget exactly; the ones before it leave `result`.
  LogicalResult firstThatFits(ModuleOp module, gs::SearchResult &result,
                              bool megatronSp, ExactMemory &exact,
                              std::string &error) {
    double budget = memoryGb * double(1 << 30);
    uint64_t smallest = 0;
    for (size_t i = 0; i < result.best.size(); ++i) {
      OwningOpRef<ModuleOp> copy = module.clone();
      std::vector<RankMeasure> ranks;
      if (failed(applyStrategySpec(
              *copy, toSpec(result.best[i].strategy, worldSize, megatronSp),
              error)) ||
          failed(measurePlan(*copy, training, ranks, error)))
        return error = "candidate " + std::to_string(i) + ": " + error,
               failure();
      exact.stageBytes.assign(result.best[i].strategy.pp, 0);
      uint64_t peak = 0;
      for (const RankMeasure &r : ranks) {
        exact.stageBytes[r.stage] =
            std::max(exact.stageBytes[r.stage], r.memoryBytes());
        peak = std::max(peak, r.memoryBytes());
      }
      if (peak <= budget) {
        exact.rejected = i;
        result.best.erase(result.best.begin(), result.best.begin() + i);
        return success();
      }
      smallest = smallest ? std::min(smallest, peak) : peak;
    }
    return error = "the best " + std::to_string(result.best.size()) +
                   " plans fit the cost model's estimate but none fits its "
                   "exact plan memory (the smallest needs " +
                   std::to_string(smallest) +
                   " bytes on its largest rank); "
                   "raise memory-gb or top",
           failure();
  }

  /// Keeps the best `topK` of both, and the smallest memory that would fit.
  static void mergeResults(const gs::SearchResult &one, int topK,
                           gs::SearchResult &all) {
    all.candidatesWeighed += one.candidatesWeighed;
    all.seconds += one.seconds;
    all.best.insert(all.best.end(), one.best.begin(), one.best.end());
    std::stable_sort(all.best.begin(), all.best.end(),
                     [](const gs::Candidate &a, const gs::Candidate &b) {
                       return a.throughput > b.throughput;
                     });
    if (static_cast<int>(all.best.size()) > topK)
      all.best.resize(topK);
    all.found = !all.best.empty();
    if (one.minMemoryMb > 0 &&
        (all.minMemoryMb == 0 || one.minMemoryMb < all.minMemoryMb))
      all.minMemoryMb = one.minMemoryMb;
  }

  void runOnOperation() override {
    std::string error;
    if (failed(search(getOperation(), error))) {
      emitError(getOperation().getLoc(), "galv-search: ") << error;
      signalPassFailure();
    }
  }
};

} // namespace
