//===- ProfilesTest.cpp - Galvatron profile readers and writers -----------===//
//
// Galvatron's shipped profiles read, write and read back unchanged; broken
// ones are refused naming the file, the key and the reason.
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/Profiles.h"
#include "galvatron/CostModel/StrategyConfig.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace galvatron::costmodel;

namespace {

const std::string kInputs =
    GALVATRON_COSTMODEL_TEST_DIR "/galvatron-parity/inputs";

std::string tempPath(const std::string &name) {
  return (testing::TempDir().empty() ? std::string("/tmp/")
                                     : testing::TempDir()) +
         "galv-costmodel-" + std::to_string(getpid()) + "-" + name;
}

std::string writeText(const std::string &name, const std::string &text) {
  std::string path = tempPath(name);
  std::ofstream(path) << text;
  return path;
}

bool sameLayers(const MemoryProfile &a, const MemoryProfile &b) {
  if (a.layers.size() != b.layers.size() || a.other.size() != b.other.size() ||
      a.rawSections.size() != b.rawSections.size())
    return false;
  for (auto &[name, bySeq] : a.layers)
    for (auto &[seq, layer] : bySeq) {
      const LayerMemoryProfile &other = b.layers.at(name).at(seq);
      if (layer.parameterSize != other.parameterSize ||
          layer.activationPerBsz != other.activationPerBsz)
        return false;
    }
  for (auto &[name, bySeq] : a.other)
    for (auto &[seq, entry] : bySeq) {
      const OtherMemoryProfile &other = b.other.at(name).at(seq);
      if (entry.modelStates != other.modelStates ||
          entry.activation != other.activation ||
          entry.modelStatesPerTp != other.modelStatesPerTp)
        return false;
    }
  return true;
}

TEST(CostModelProfiles, HardwareRoundTrip) {
  std::string error;
  for (int nodes : {1, 2}) {
    HardwareProfile hw;
    ASSERT_TRUE(readHardwareProfile(kInputs + "/hardware", nodes, 8, hw, error))
        << error;
    EXPECT_EQ(hw.allreduce.size(), nodes == 1 ? 5u : 7u);
    EXPECT_DOUBLE_EQ(hw.allreduce.at({8, 1}), nodes == 1 ? 154.203 : 155.658);
    EXPECT_DOUBLE_EQ(hw.overlapCoefficient, 1.125552573612729);
    EXPECT_EQ(hw.spTime.empty(), nodes == 2);
    std::string a = tempPath("ar.json"), p = tempPath("p2p.json"),
                o = tempPath("ov.json");
    ASSERT_TRUE(writeAllreduceBandwidth(a, hw.allreduce, error)) << error;
    ASSERT_TRUE(writeP2PBandwidth(p, hw.p2p, error)) << error;
    ASSERT_TRUE(writeOverlapCoefficient(o, hw.overlapCoefficient, error));
    AllreduceBandwidth ar;
    P2PBandwidth p2p;
    double overlap;
    ASSERT_TRUE(readAllreduceBandwidth(a, ar, error)) << error;
    ASSERT_TRUE(readP2PBandwidth(p, p2p, error)) << error;
    ASSERT_TRUE(readOverlapCoefficient(o, overlap, error)) << error;
    EXPECT_EQ(ar, hw.allreduce);
    EXPECT_EQ(p2p, hw.p2p);
    EXPECT_EQ(overlap, hw.overlapCoefficient);
    if (!hw.spTime.empty()) {
      std::string s = tempPath("sp.json");
      ASSERT_TRUE(writeSpTime(s, hw.spTime, error)) << error;
      SpTime sp;
      ASSERT_TRUE(readSpTime(s, sp, error)) << error;
      EXPECT_EQ(sp, hw.spTime);
      EXPECT_EQ(sp.at("all2all").at(8).size(), 11u);
      std::remove(s.c_str());
    }
    for (auto &f : {a, p, o})
      std::remove(f.c_str());
  }
}

TEST(CostModelProfiles, ModelRoundTrip) {
  std::string error;
  ComputationProfile comp, comp2;
  ASSERT_TRUE(readComputationProfile(
      kInputs + "/llama-7b/computation_profiling_bf16_llama-7b.json", comp,
      error))
      << error;
  EXPECT_EQ(comp.entries[0].first, "layernum[6]_bsz2"); // file order kept
  std::string c = tempPath("comp.json");
  ASSERT_TRUE(writeComputationProfile(c, comp, error)) << error;
  ASSERT_TRUE(readComputationProfile(c, comp2, error)) << error;
  EXPECT_EQ(comp.entries, comp2.entries);

  MemoryProfile mem, mem2;
  ASSERT_TRUE(readMemoryProfile(
      kInputs + "/llama-7b/memory_profiling_bf16_llama-7b.json", mem, error))
      << error;
  EXPECT_DOUBLE_EQ(mem.layers.at("layertype_0_sp").at(2048).parameterSize,
                   773.0166015625);
  // The non-sp sections store one number for every vocabulary tp degree.
  EXPECT_FALSE(mem.other.at("other_memory_pp_off").at(2048).modelStatesPerTp);
  EXPECT_DOUBLE_EQ(
      mem.other.at("other_memory_pp_off_sp").at(2048).modelStates.at(8),
      648.57861328125);
  EXPECT_EQ(mem.rawSections.size(), 29u); // "1_1_8" ... measurements
  std::string m = tempPath("mem.json");
  ASSERT_TRUE(writeMemoryProfile(m, mem, error)) << error;
  ASSERT_TRUE(readMemoryProfile(m, mem2, error)) << error;
  EXPECT_TRUE(sameLayers(mem, mem2));
  std::remove(c.c_str());
  std::remove(m.c_str());
}

struct Broken {
  const char *name;
  const char *text;
  const char *expect; ///< Must appear in the error with the file name.
};

TEST(CostModelProfiles, MalformedRefusedNamingFileAndKey) {
  const Broken hardware[] = {
      {"ar1.json", "{\"allreduce_size_8_consec_1\": -3}",
       "key 'allreduce_size_8_consec_1': bandwidth must be a positive"},
      {"ar2.json", "{\"allreduce_size_8\": 100}", "key 'allreduce_size_8'"},
      {"ar3.json", "{\"allreduce_size_8_consec_1\": \"fast\"}",
       "positive number"},
      {"ar4.json", "[1, 2]", "top level must be a JSON object"},
      {"ar5.json", "{\"allreduce_size_8_consec_1\": ", "not valid JSON"},
  };
  std::string error;
  for (const Broken &b : hardware) {
    std::string path = writeText(b.name, b.text);
    AllreduceBandwidth out;
    EXPECT_FALSE(readAllreduceBandwidth(path, out, error)) << b.name;
    EXPECT_NE(error.find(path), std::string::npos) << error;
    EXPECT_NE(error.find(b.expect), std::string::npos) << error;
    std::remove(path.c_str());
  }
  std::string path = writeText("p2p.json", "{\"pp_size_1\": 5}");
  P2PBandwidth p2p;
  EXPECT_FALSE(readP2PBandwidth(path, p2p, error));
  EXPECT_NE(error.find("key 'pp_size_1'"), std::string::npos) << error;
  path = writeText("ov.json", "{\"overlap\": 1.1}");
  double overlap;
  EXPECT_FALSE(readOverlapCoefficient(path, overlap, error));
  EXPECT_NE(error.find("key 'overlap_coe': missing"), std::string::npos);
  path = writeText("sp.json", "{\"all2all_size_8_1GB_time\": 1}");
  SpTime sp;
  EXPECT_FALSE(readSpTime(path, sp, error));
  EXPECT_NE(error.find("key 'all2all_size_8_1GB_time'"), std::string::npos);
  path = writeText("comp.json", "{\"layertype_0_bsz1_seq2048\": null}");
  ComputationProfile comp;
  EXPECT_FALSE(readComputationProfile(path, comp, error));
  EXPECT_NE(error.find("key 'layertype_0_bsz1_seq2048'"), std::string::npos);

  const Broken memory[] = {
      {"m1.json", "{\"layertype_0\": {\"2048\": {\"parameter_size\": 1}}}",
       "key 'layertype_0.2048.tp_activation_per_bsz_dict'"},
      {"m2.json",
       "{\"layertype_0\": {\"2048\": {\"parameter_size\": 1, "
       "\"tp_activation_per_bsz_dict\": {\"two\": 1}}}}",
       "key 'layertype_0.2048.tp_activation_per_bsz_dict.two'"},
      {"m3.json", "{\"other_memory_pp_off\": {\"2048\": {\"activation\": 1}}}",
       "key 'other_memory_pp_off.2048'"},
      {"m4.json",
       "{\"other_memory_pp_off_sp\": {\"2048\": {\"model_states\": {\"1\": "
       "-1}, \"activation\": 1}}}",
       "key 'other_memory_pp_off_sp.2048.model_states.1'"},
      {"m5.json", "{\"layertype_0\": {\"long\": {}}}",
       "key 'layertype_0.long': expected a sequence length"},
  };
  for (const Broken &b : memory) {
    path = writeText(b.name, b.text);
    MemoryProfile out;
    EXPECT_FALSE(readMemoryProfile(path, out, error)) << b.name;
    EXPECT_NE(error.find(path), std::string::npos) << error;
    EXPECT_NE(error.find(b.expect), std::string::npos) << error;
    std::remove(path.c_str());
  }
}

TEST(CostModelProfiles, StrategyConfig) {
  const char *text = R"({"pp_deg": 2, "tp_sizes_enc": "1,2,2,4",
    "tp_consecutive_flags": "1,0,1,1", "dp_types_enc": "0,1,0,0",
    "use_sp": "0,0,1,0", "checkpoint": "1,0,0,0", "global_bsz": 32,
    "chunks": 4, "pp_division": "3,1", "pipeline_type": "pipedream_flush",
    "default_dp_type": "zero2", "vtp": 2, "vsp": 0, "embed_sdp": 1})";
  Strategy s, back;
  std::string error;
  ASSERT_TRUE(parseGalvatronConfig(text, "cfg.json", s, error)) << error;
  ASSERT_EQ(s.layers.size(), 4u);
  EXPECT_EQ(s.layers[1].tp, 2);
  EXPECT_FALSE(s.layers[1].consecutive);
  EXPECT_TRUE(s.layers[1].zero3);
  EXPECT_TRUE(s.layers[2].ulysses);
  EXPECT_TRUE(s.layers[0].checkpoint);
  EXPECT_EQ(s.ppDivision, (std::vector<int>{3, 1}));
  EXPECT_EQ(s.pipeline, PipelineType::PipeDreamFlush);
  EXPECT_TRUE(s.defaultZero2 && s.embedSdp);
  ASSERT_TRUE(
      parseGalvatronConfig(formatGalvatronConfig(s), "again", back, error))
      << error;
  EXPECT_EQ(formatGalvatronConfig(back), formatGalvatronConfig(s));

  EXPECT_FALSE(parseGalvatronConfig(R"({"pp_deg": 1, "tp_sizes_enc": "1,x",
      "tp_consecutive_flags": "1,1", "dp_types_enc": "0,0",
      "global_bsz": 8, "chunks": 1})",
                                    "cfg.json", s, error));
  EXPECT_NE(error.find("cfg.json: key 'tp_sizes_enc'"), std::string::npos)
      << error;
  EXPECT_FALSE(parseGalvatronConfig(R"({"pp_deg": 1, "tp_sizes_enc": "1,1",
      "tp_consecutive_flags": "1", "dp_types_enc": "0,0",
      "global_bsz": 8, "chunks": 1})",
                                    "cfg.json", s, error));
  EXPECT_NE(error.find("key 'tp_consecutive_flags': has 1 entries"),
            std::string::npos)
      << error;
  EXPECT_FALSE(parseGalvatronConfig(R"({"pp_deg": 1, "tp_sizes_enc": "1",
      "tp_consecutive_flags": "1", "dp_types_enc": "0", "global_bsz": 8,
      "chunks": 1, "pipeline_type": "1f1b"})",
                                    "cfg.json", s, error));
  EXPECT_NE(error.find("key 'pipeline_type'"), std::string::npos) << error;
}

} // namespace
