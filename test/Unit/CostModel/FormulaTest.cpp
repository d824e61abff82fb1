//===- FormulaTest.cpp - GalvatronCostModel formulas by hand --------------===//
//
// Small synthetic profiles whose numbers can be followed on paper; each case
// states the arithmetic of docs/COSTMODEL.md it checks.
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/GalvatronCostModel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace galvatron::costmodel;

namespace {

/// 1 node x 8 devices; every all-reduce 50 MB/ms (coe 0.02), p2p 10 MB/ms,
/// overlap coefficient 1.5. Layer: 10 ms per sample forward, 100 MB of
/// parameters, 30 MB activation per sample (tp 1). seq = hidden = 1024, so
/// one sample's hidden states are 4 MiB in fp32.
struct Fixture {
  HardwareProfile hw;
  ComputationProfile comp;
  MemoryProfile mem;
  CostModelSettings cfg;
  GalvatronCostModel model;

  Fixture() {
    hw.numNodes = 1;
    hw.gpusPerNode = 8;
    hw.allreduce[{8, 1}] = 50;
    for (int d : {2, 4})
      for (int c : {0, 1})
        hw.allreduce[{d, c}] = 50;
    hw.p2p = {{2, 10}, {4, 10}, {8, 10}};
    hw.overlapCoefficient = 1.5;
    comp.entries = {{"layertype_0_bsz1_seq1024", 10},
                    {"layertype_other_bsz1_seq1024", 4}};
    LayerMemoryProfile layer;
    layer.parameterSize = 100;
    layer.activationPerBsz = {
        {"1", 30}, {"2", 16}, {"4", 8}, {"8", 4}, {"checkpoint", 2}};
    mem.layers["layertype_0_sp"][1024] = layer;
    for (const char *name :
         {"other_memory_pp_off_sp", "other_memory_pp_on_first_sp",
          "other_memory_pp_on_last_sp"}) {
      OtherMemoryProfile other;
      for (int tp : {1, 2, 4, 8}) {
        other.modelStates[tp] = 400.0 / tp;
        other.activation[tp] = 20.0 / tp;
      }
      mem.other[name][1024] = other;
    }
    cfg.numLayers = 2;
    cfg.seqLen = 1024;
    cfg.hiddenSize = 1024;
    cfg.memoryConstraintGB = 16; // no allocator reserve
  }
  GalvatronCostModel &init() {
    std::string error;
    EXPECT_TRUE(model.init(hw, comp, mem, cfg, error)) << error;
    return model;
  }
};

TEST(CostModelFormula, ZeroRatios) {
  // chunks == 1: ZeRO-2 keeps the fp32 master states (7/8 of them sharded in
  // mixed precision), ZeRO-3 shards everything.
  EXPECT_DOUBLE_EQ(zero2Ratio(4, 1, true, true), 7.0 / 8 * 0.253 + 1.0 / 8);
  EXPECT_DOUBLE_EQ(zero2Ratio(4, 1, false, true), 3.0 / 4 * 0.253 + 1.0 / 4);
  EXPECT_DOUBLE_EQ(zero3Ratio(4, 1, true, true), 0.253);
  // Gradient accumulation keeps unsharded gradients.
  EXPECT_DOUBLE_EQ(zero2Ratio(4, 2, true, true), 6.0 / 8 * 0.253 + 2.0 / 8);
  EXPECT_DOUBLE_EQ(zero3Ratio(4, 2, true, true), 7.0 / 8 * 0.253 + 1.0 / 8);
  EXPECT_DOUBLE_EQ(zero3Ratio(4, 2, true, false), 0.253 * 5 / 4);
}

TEST(CostModelFormula, ChunksLikeTorch) {
  EXPECT_EQ(chunkLikeTorch(10, 4), (std::vector<int>{3, 3, 3, 1}));
  EXPECT_EQ(chunkLikeTorch(6, 4), (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(chunkLikeTorch(8, 1), (std::vector<int>{8}));
}

TEST(CostModelFormula, LineFit) {
  double m, c;
  fitLine({1, 2, 3, 4}, {5, 7, 9, 11}, m, c);
  EXPECT_DOUBLE_EQ(m, 2);
  EXPECT_DOUBLE_EQ(c, 3);
}

TEST(CostModelFormula, DataParallelOverlapsBackward) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  LayerStrategy layer; // tp 1, dp 8
  LayerTime t;
  std::string error;
  ASSERT_TRUE(m.layerTime(1, layer, 8, false, t, error)) << error;
  // fct = 10 ms x 1 sample x 2 layers; bct = 2 fct.
  EXPECT_DOUBLE_EQ(t.forwardMs, 20);
  EXPECT_DOUBLE_EQ(t.backwardMs, 40);
  // 2 (d-1)/d x 100 MB x 2 layers, halved in bf16.
  EXPECT_DOUBLE_EQ(t.dpMessageMb, 175);
  // dp 175 x 0.02 x 1.5 = 5.25 < bct 40 x 1.5: overlap 5.25 + 40 - 5.25/1.5.
  EXPECT_NEAR(t.seconds, (20 + 5.25 + 40 - 3.5) * 0.001 / 2, 1e-15);
  // Without the gradient traffic only compute is left.
  ASSERT_TRUE(m.layerTime(1, layer, 8, true, t, error)) << error;
  EXPECT_NEAR(t.seconds, 60 * 0.001 / 2, 1e-15);
}

TEST(CostModelFormula, TensorParallelAllReduces) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  LayerStrategy layer;
  layer.tp = 8; // dp 1
  LayerTime t;
  std::string error;
  ASSERT_TRUE(m.layerTime(1, layer, 8, false, t, error)) << error;
  // dp 1: 8 samples per rank, fct = 10 ms x 8 / tp 8 x 2 layers = 20 ms.
  // 4 all-reduces of b s h per layer: 2 x 7/8 x (8 x 16 MB) x 2 layers,
  // halved in bf16 = 224 MB at 0.02 ms/MB.
  EXPECT_NEAR(t.tpMs, 4.48, 1e-12);
  EXPECT_NEAR(t.seconds, (20 + 40 + 4.48) * 0.001 / 2, 1e-15);
  layer.checkpoint = true; // recompute: +1 forward, 1.5x the all-reduces
  ASSERT_TRUE(m.layerTime(1, layer, 8, false, t, error)) << error;
  EXPECT_NEAR(t.tpMs, 6.72, 1e-12);
  EXPECT_NEAR(t.seconds, (20 + 60 + 6.72) * 0.001 / 2, 1e-15);
}

TEST(CostModelFormula, PipelineP2P) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  LayerStrategy layer; // pp 2, tp 1, dp 4
  LayerTime t;
  std::string error;
  ASSERT_TRUE(m.layerTime(2, layer, 4, true, t, error)) << error;
  // pp x 2 x b x 4 MiB / 2 (bf16) = 8 MB at 10 MB/ms.
  EXPECT_NEAR(t.p2pMs, 0.8, 1e-12);
}

TEST(CostModelFormula, Zero3AddsForwardAllGather) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  LayerStrategy layer;
  layer.zero3 = true;
  LayerTime t;
  std::string error;
  ASSERT_TRUE(m.layerTime(1, layer, 8, false, t, error)) << error;
  // Half the DP message (87.5 MB) at 0.02 ms/MB.
  EXPECT_NEAR(t.fsdpMs, 1.75, 1e-12);
}

TEST(CostModelFormula, LayerMemoryByZeroStage) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  Strategy s;
  s.globalBatch = 8;
  LayerStrategy layer;
  LayerMemory mem;
  std::string error;
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 0, mem, error)) << error;
  // DDP: 4 x 100 MB; one sample of activation per rank.
  EXPECT_DOUBLE_EQ(mem.modelStatesMb, 400);
  EXPECT_DOUBLE_EQ(mem.activationMb, 30);
  layer.zero3 = true;
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 0, mem, error)) << error;
  EXPECT_DOUBLE_EQ(mem.modelStatesMb, 400 * (1.0 / 8 + 0.003));
  layer.zero3 = false;
  s.defaultZero2 = true;
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 0, mem, error)) << error;
  EXPECT_DOUBLE_EQ(mem.modelStatesMb, 400 * zero2Ratio(8, 1, true, true));
  layer.checkpoint = true; // only the input kept, split by Megatron-SP tp
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 0, mem, error)) << error;
  EXPECT_DOUBLE_EQ(mem.activationMb, 2);
  // Other layers: model states 400 MB (ZeRO-2 over 8) + 20 MB x 1 sample +
  // the 1024 MB context.
  EXPECT_DOUBLE_EQ(mem.otherMb.at(1)[0],
                   400 * zero2Ratio(8, 1, true, true) + 20 + 1024);
}

TEST(CostModelFormula, OneFOneBKeepsStageDepthInFlight) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  Strategy s;
  s.pp = 2;
  s.globalBatch = 16;
  s.pipeline = PipelineType::PipeDreamFlush;
  LayerStrategy layer; // dp 4: 4 samples per rank, mbsz 1 -> 4 chunks
  LayerMemory mem;
  std::string error;
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 0, mem, error)) << error;
  EXPECT_EQ(mem.chunks, 4);
  // Stage 0 of 2 holds 2 of 4 micro-batches: half of 4 samples.
  EXPECT_DOUBLE_EQ(mem.activationMb, 30 * 2);
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 1, mem, error)) << error;
  EXPECT_DOUBLE_EQ(mem.activationMb, 30 * 1);
  s.pipeline = PipelineType::GPipe; // Galvatron: one micro-batch
  ASSERT_TRUE(m.layerMemory(s, layer, 1, 1, 1, 0, mem, error)) << error;
  EXPECT_DOUBLE_EQ(mem.activationMb, 30);
}

TEST(CostModelFormula, PipelineTimeAndReserve) {
  Fixture f;
  f.cfg.memoryConstraintGB = 32; // > 20 GB: a 20% reserve
  f.cfg.globalMemoryBuffer = false;
  GalvatronCostModel &m = f.init();
  Strategy s;
  s.pp = 2;
  s.layers.assign(2, LayerStrategy());
  s.globalBatch = 8;
  s.chunks = 2;
  Estimate est;
  std::string error;
  ASSERT_TRUE(m.estimate(s, est, error)) << error;
  // Micro-batch: 8 / 2 chunks = 4 samples over dp 4 = 1 per rank. Per stage
  // compute (no DP traffic): one layer's fct 20 + bct 40 ms (the profile
  // scales by the layer count, the result divides by it) + p2p 0.8 ms, plus
  // the other layers (4 ms per sample, half on each end: 2 + 4 ms).
  double layer = (60 + 0.8) * 0.001 / 2;
  double other = (2 + 4) * 0.001;
  double c = layer + other;
  // sum + last x (chunks - 1) = 3c beats the bubble bound.
  double full;
  LayerTime t;
  ASSERT_TRUE(m.layerTime(2, s.layers[0], 4, false, t, error)) << error;
  full = t.seconds;
  double expect = 3 * c + std::max(0.0, std::max(full - c, full - 2 * c));
  EXPECT_NEAR(est.timeMs, expect * 1000, 1e-9);
  EXPECT_DOUBLE_EQ(est.reserveMb, std::floor(32 * 1024 * 0.2));
  EXPECT_EQ(est.stageMemoryMb.size(), 2u);
  // GPipe and 1F1B share Galvatron's time formula.
  s.pipeline = PipelineType::PipeDreamFlush;
  Estimate est1;
  ASSERT_TRUE(m.estimate(s, est1, error)) << error;
  EXPECT_DOUBLE_EQ(est1.timeMs, est.timeMs);
}

TEST(CostModelFormula, RefusesStrategiesGalvatronCannotPrice) {
  Fixture f;
  GalvatronCostModel &m = f.init();
  Strategy s;
  s.layers.assign(2, LayerStrategy());
  Estimate est;
  std::string error;
  s.layers[0].tp = 3;
  EXPECT_FALSE(m.estimate(s, est, error));
  EXPECT_NE(error.find("tp_sizes_enc"), std::string::npos) << error;
  s.layers[0].tp = 1;
  s.pp = 2;
  s.ppDivision = {2, 1};
  EXPECT_FALSE(m.estimate(s, est, error));
  EXPECT_NE(error.find("pp_division"), std::string::npos) << error;
  s.ppDivision.clear();
  s.globalBatch = 6; // not a multiple of world / pp = 4
  EXPECT_FALSE(m.estimate(s, est, error));
  EXPECT_NE(error.find("global_bsz"), std::string::npos) << error;
  s.globalBatch = 8;
  s.chunks = 3; // 2 samples per rank cannot make 3 micro-batches
  EXPECT_FALSE(m.estimate(s, est, error));
  EXPECT_NE(error.find("chunks"), std::string::npos) << error;
}

TEST(CostModelFormula, InitNamesMissingProfileKeys) {
  Fixture f;
  f.hw.allreduce.erase({4, 0});
  std::string error;
  EXPECT_FALSE(f.model.init(f.hw, f.comp, f.mem, f.cfg, error));
  EXPECT_NE(error.find("allreduce_size_4_consec_0"), std::string::npos)
      << error;
  Fixture g;
  g.mem.other.erase("other_memory_pp_on_last_sp");
  EXPECT_FALSE(g.model.init(g.hw, g.comp, g.mem, g.cfg, error));
  EXPECT_NE(error.find("other_memory_pp_on_last_sp.1024"), std::string::npos)
      << error;
  Fixture h;
  h.cfg.spSpace = SpSpace::TpSp; // no sp_time file
  EXPECT_FALSE(h.model.init(h.hw, h.comp, h.mem, h.cfg, error));
  EXPECT_NE(error.find("sp_time_1nodes_8gpus_per_node.json"), std::string::npos)
      << error;
  Fixture k;
  k.cfg.timeProfileMode = TimeProfileMode::Batch; // needs 8 batch sizes
  EXPECT_FALSE(k.model.init(k.hw, k.comp, k.mem, k.cfg, error));
  EXPECT_NE(error.find("at least 8"), std::string::npos) << error;
}

} // namespace
