//===- SearchTest.cpp - The strategy search against brute force -----------===//
//
// On small spaces (LLaMA-7B's shipped profiles cut to 3-6 layers, 4 or 8
// devices) the search's best time equals the best of every plan the space
// holds, priced by GalvatronCostModel::estimate; every plan it returns fits
// memory by the same model; when nothing fits, the memory it reports fits
// and one MB less does not.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Search/Search.h"
#include "galvatron/CostModel/GalvatronCostModel.h"
#include "galvatron/CostModel/Profiles.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

using namespace galvatron::costmodel;
using namespace galvatron::search;

namespace {

const std::string kInputs =
    GALVATRON_COSTMODEL_TEST_DIR "/galvatron-parity/inputs";

GalvatronCostModel makeModel(int nodes, int gpus, int numLayers,
                             double memoryGB) {
  HardwareProfile hw;
  ComputationProfile comp;
  MemoryProfile mem;
  std::string error;
  EXPECT_TRUE(
      readHardwareProfile(kInputs + "/hardware", nodes, gpus, hw, error))
      << error;
  EXPECT_TRUE(readComputationProfile(
      kInputs + "/llama-7b/computation_profiling_bf16_llama-7b.json", comp,
      error))
      << error;
  EXPECT_TRUE(readMemoryProfile(
      kInputs + "/llama-7b/memory_profiling_bf16_llama-7b.json", mem, error))
      << error;
  CostModelSettings cfg;
  cfg.numLayers = numLayers;
  cfg.memoryConstraintGB = memoryGB;
  GalvatronCostModel model;
  EXPECT_TRUE(model.init(hw, comp, mem, cfg, error)) << error;
  return model;
}

bool fits(const Estimate &est, double memoryGB) {
  for (double mb : est.stageMemoryMb)
    if (mb > memoryGB * 1024)
      return false;
  return true;
}

/// Every plan of the space (per stage, every multiset of layer strategies:
/// the cost model sums over a stage's layers, so their order within a stage
/// changes nothing; ExhaustiveOrderTest checks that), every division,
/// chunk count, vtp, vsp, embed_sdp and pipeline type; the best time (ms)
/// of those that fit, +inf when none.
double bruteForce(const GalvatronCostModel &model, const SearchSpace &space,
                  int batch, double memoryGB, uint64_t *count = nullptr) {
  const int world = model.worldSize(), L = model.settings().numLayers;
  double best = std::numeric_limits<double>::infinity();
  for (PipelineType pipeline : space.pipelines)
    for (int pp = 1; pp <= world && pp <= L; pp *= 2) {
      if (space.maxPp && pp > space.maxPp)
        continue;
      const int perStage = world / pp;
      auto layers = layerStrategies(world, pp, 1, space.maxTp, space);
      const int S = layers.size();
      // Divisions: every composition of L into pp parts, or the even one.
      std::vector<std::vector<int>> divisions;
      std::vector<int> cur;
      std::function<void(int, int)> split = [&](int left, int parts) {
        if (parts == 1) {
          cur.push_back(left);
          divisions.push_back(cur);
          cur.pop_back();
          return;
        }
        for (int n = 1; n <= left - parts + 1; ++n) {
          cur.push_back(n);
          split(left - n, parts - 1);
          cur.pop_back();
        }
      };
      if (space.searchDivision) {
        split(L, pp);
      } else {
        std::vector<int> even(pp, L / pp);
        even.back() = L - L / pp * (pp - 1);
        divisions.push_back(even);
      }
      for (const auto &division : divisions) {
        // Non-decreasing strategy indices within each stage.
        std::vector<int> pick(L, 0);
        std::vector<int> stageOf(L);
        for (int s = 0, l = 0; s < pp; ++s)
          for (int i = 0; i < division[s]; ++i)
            stageOf[l++] = s;
        std::function<void(int)> assign = [&](int l) {
          if (l < L) {
            int from = l > 0 && stageOf[l - 1] == stageOf[l] ? pick[l - 1] : 0;
            for (int k = from; k < S; ++k) {
              pick[l] = k;
              assign(l + 1);
            }
            return;
          }
          Strategy s;
          s.pp = pp;
          s.ppDivision = division;
          s.globalBatch = batch;
          s.pipeline = pipeline;
          s.defaultZero2 = space.defaultZero2;
          for (int k : pick)
            s.layers.push_back(layers[k]);
          for (int chunks = 1; chunks <= batch; ++chunks)
            for (int vtp = 1; vtp <= perStage && vtp <= space.maxTp; vtp *= 2)
              for (int vsp = 0; vsp <= (space.vsp ? 1 : 0); ++vsp)
                for (int esdp = 0; esdp <= (space.embedSdp ? 1 : 0); ++esdp) {
                  s.chunks = chunks;
                  s.vtp = vtp;
                  s.vsp = vsp;
                  s.embedSdp = esdp;
                  Estimate est;
                  std::string error;
                  if (!model.estimate(s, est, error))
                    continue; // not a plan Galvatron prices
                  if (count)
                    ++*count;
                  if (fits(est, memoryGB))
                    best = std::min(best, est.timeMs);
                }
        };
        assign(0);
      }
    }
  return best;
}

void expectSame(const GalvatronCostModel &model, const SearchSpace &space,
                int batch, double memoryGB, int threads = 1) {
  SearchOptions opt;
  opt.memoryGB = memoryGB;
  opt.globalBatches = {batch};
  opt.threads = threads;
  SearchResult result;
  std::string error;
  ASSERT_TRUE(searchStrategy(model, space, opt, result, error)) << error;
  double brute = bruteForce(model, space, batch, memoryGB);
  if (std::isinf(brute)) {
    EXPECT_FALSE(result.found);
    return;
  }
  ASSERT_TRUE(result.found) << "brute force found " << brute << " ms";
  EXPECT_NEAR(result.best[0].timeMs, brute, 1e-9 * brute);
  for (const Candidate &c : result.best) {
    Estimate est;
    ASSERT_TRUE(model.estimate(c.strategy, est, error)) << error;
    EXPECT_TRUE(fits(est, memoryGB));
    EXPECT_DOUBLE_EQ(est.timeMs, c.timeMs);
    EXPECT_GE(c.timeMs, result.best[0].timeMs);
  }
}

SearchSpace smallSpace() {
  SearchSpace space;
  space.pipelines = {PipelineType::GPipe, PipelineType::PipeDreamFlush};
  return space;
}

} // namespace

TEST(SearchTest, MatchesBruteForceFourDevices) {
  for (int L : {3, 4}) {
    for (double gb : {8.0, 12.0, 24.0}) {
      GalvatronCostModel model = makeModel(1, 4, L, gb);
      SearchSpace space = smallSpace();
      SCOPED_TRACE("layers " + std::to_string(L) + " memory " +
                   std::to_string(gb));
      expectSame(model, space, 8, gb);
      space.searchDivision = true;
      expectSame(model, space, 8, gb);
    }
  }
}

TEST(SearchTest, MatchesBruteForceEightDevices) {
  for (int L : {4, 6}) {
    for (double gb : {10.0, 16.0, 36.0}) {
      GalvatronCostModel model = makeModel(1, 8, L, gb);
      SearchSpace space = smallSpace();
      space.tpStrided = false;
      space.checkpoint = L == 4;
      space.maxPp = 4;
      space.searchDivision = L == 4;
      SCOPED_TRACE("layers " + std::to_string(L) + " memory " +
                   std::to_string(gb));
      expectSame(model, space, 16, gb, /*threads=*/2);
    }
  }
}

TEST(SearchTest, MatchesBruteForceTwoNodes) {
  GalvatronCostModel model = makeModel(2, 8, 4, 16);
  SearchSpace space;
  space.tpStrided = false;
  space.checkpoint = false;
  space.maxTp = 4;
  space.maxPp = 4;
  expectSame(model, space, 16, 16);
}

TEST(SearchTest, NothingFitsReportsMinimumMemory) {
  for (double gb : {1.5, 2.0}) {
    GalvatronCostModel model = makeModel(1, 8, 6, gb);
    SearchSpace space = smallSpace();
    space.tpStrided = false;
    SearchOptions opt;
    opt.memoryGB = gb;
    opt.globalBatches = {64};
    SearchResult result;
    std::string error;
    ASSERT_TRUE(searchStrategy(model, space, opt, result, error)) << error;
    ASSERT_FALSE(result.found);
    ASSERT_GT(result.minMemoryMb, gb * 1024);
    // The reported budget fits; one MB less does not.
    opt.memoryGB = result.minMemoryMb / 1024;
    GalvatronCostModel at =
        makeModel(1, 8, 6, opt.memoryGB); // its reserve follows the budget
    ASSERT_TRUE(searchStrategy(at, space, opt, result, error)) << error;
    ASSERT_TRUE(result.found);
    Estimate est;
    ASSERT_TRUE(at.estimate(result.best[0].strategy, est, error)) << error;
    EXPECT_TRUE(fits(est, opt.memoryGB));
    opt.memoryGB = (result.minMemoryMb - 1) / 1024;
    ASSERT_TRUE(searchStrategy(at, space, opt, result, error)) << error;
    EXPECT_FALSE(result.found);
  }
}

TEST(SearchTest, ThreadsGiveTheSameAnswer) {
  GalvatronCostModel model = makeModel(1, 8, 8, 24);
  SearchSpace space;
  SearchOptions opt;
  opt.memoryGB = 24;
  opt.globalBatches = {32, 64};
  SearchResult one, four;
  std::string error;
  ASSERT_TRUE(searchStrategy(model, space, opt, one, error)) << error;
  opt.threads = 4;
  ASSERT_TRUE(searchStrategy(model, space, opt, four, error)) << error;
  ASSERT_TRUE(one.found && four.found);
  EXPECT_DOUBLE_EQ(one.best[0].timeMs / one.best[0].strategy.globalBatch,
                   four.best[0].timeMs / four.best[0].strategy.globalBatch);
}

TEST(SearchTest, RefusesBadInput) {
  GalvatronCostModel model = makeModel(1, 8, 4, 36);
  SearchSpace space;
  SearchOptions opt;
  SearchResult result;
  std::string error;
  EXPECT_FALSE(searchStrategy(model, space, opt, result, error));
  EXPECT_NE(error.find("global batch"), std::string::npos) << error;
  opt.globalBatches = {8};
  space.tpConsecutive = space.tpStrided = false;
  EXPECT_FALSE(searchStrategy(model, space, opt, result, error));
  EXPECT_NE(error.find("tp groups"), std::string::npos) << error;
}
