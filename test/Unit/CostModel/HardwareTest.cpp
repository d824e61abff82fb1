//===- HardwareTest.cpp - hw.json, hardware specs and presets -------------===//
//
// hw.json round-trips; malformed ones are refused naming the file, the key
// and the reason; every kind of hardware spec loads; every shipped preset
// converts to Galvatron's files and reads back equal; collective times match
// hand-computed values.
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/Hardware.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace galvatron::costmodel;
namespace fs = std::filesystem;

namespace {

const std::string kGalvatronHardware =
    GALVATRON_COSTMODEL_TEST_DIR "/galvatron-parity/inputs/hardware";

std::string tempPath(const std::string &name) {
  return (testing::TempDir().empty() ? std::string("/tmp/")
                                     : testing::TempDir()) +
         "galv-hardware-" + std::to_string(getpid()) + "-" + name;
}

std::string writeText(const std::string &name, const std::string &text) {
  std::string path = tempPath(name);
  std::ofstream(path) << text;
  return path;
}

/// A two-node, four-device spec with every section filled.
HardwareSpec sampleSpec() {
  HardwareSpec spec;
  spec.name = "sample-2x4";
  spec.source = "hand-written for the test";
  spec.backend = "cuda";
  spec.device = {19.5, 312, 2039, 80};
  spec.comm.numNodes = 2;
  spec.comm.gpusPerNode = 4;
  spec.comm.allreduce = {{{8, 1}, 40.5},
                         {{4, 1}, 150.25},
                         {{4, 0}, 20.0},
                         {{2, 1}, 140.0},
                         {{2, 0}, 10.0}};
  spec.comm.p2p = {{2, 100.0}, {4, 90.0}, {8, 12.5}};
  spec.comm.overlapCoefficient = 1.125;
  spec.comm.spTime["allreduce"][4] = {{1, 0.05}, {2, 0.07}, {4, 0.11}};
  spec.comm.spTime["all2all"][4] = {{1, 0.04}, {2, 0.06}, {4, 0.1}};
  spec.measurements = R"({"gemm":[{"m":512,"gflops":95.5}]})";
  return spec;
}

void expectSameSpec(const HardwareSpec &a, const HardwareSpec &b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.backend, b.backend);
  EXPECT_EQ(a.device.gemmTflopsFp32, b.device.gemmTflopsFp32);
  EXPECT_EQ(a.device.gemmTflopsBf16, b.device.gemmTflopsBf16);
  EXPECT_EQ(a.device.memoryBandwidthGBs, b.device.memoryBandwidthGBs);
  EXPECT_EQ(a.device.memoryGB, b.device.memoryGB);
  EXPECT_EQ(a.comm.numNodes, b.comm.numNodes);
  EXPECT_EQ(a.comm.gpusPerNode, b.comm.gpusPerNode);
  EXPECT_EQ(a.comm.allreduce, b.comm.allreduce);
  EXPECT_EQ(a.comm.p2p, b.comm.p2p);
  EXPECT_EQ(a.comm.overlapCoefficient, b.comm.overlapCoefficient);
  EXPECT_EQ(a.comm.spTime, b.comm.spTime);
}

std::string readAll(const std::string &path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

TEST(CostModelHardware, JsonRoundTrip) {
  HardwareSpec spec = sampleSpec(), back;
  std::string path = tempPath("round.json"), again = tempPath("again.json");
  std::string error;
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  expectSameSpec(spec, back);
  EXPECT_EQ(nlohmann::json::parse(back.measurements),
            nlohmann::json::parse(spec.measurements));
  ASSERT_TRUE(writeHardwareJson(again, back, error)) << error;
  EXPECT_EQ(readAll(path), readAll(again));
  // The fixed costs (latency) round-trip too.
  spec.instructionMs = 0.0017;
  spec.collectiveLatencyMs = {{2, 0.015}, {4, 0.029}};
  spec.kernelRates = {{"elementwise", {{4096, 0.5}, {65536, 0.11}}},
                      {"gemm", {{1e6, 0.02}, {1e9, 0.005}}}};
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  EXPECT_EQ(back.instructionMs, spec.instructionMs);
  EXPECT_EQ(back.collectiveLatencyMs, spec.collectiveLatencyMs);
  EXPECT_EQ(back.kernelRates, spec.kernelRates);
  EXPECT_EQ(back.gemmNsPerByte, 0);
  spec.gemmNsPerByte = 0.125;
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  EXPECT_EQ(back.gemmNsPerByte, 0.125);
  spec.gemmNsPerByte = 0;
  spec.syncExcessMs = {{0.25, 0.05}, {1.5, 0.5}};
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  EXPECT_EQ(back.syncExcessMs, spec.syncExcessMs);
  spec.syncExcessMs.clear();
  spec.contendedExcessMs = {{4096, {{0.5, 0.8}, {30, 6.5}}},
                            {65536, {{0.5, 1.5}, {4, 7}}}};
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  EXPECT_EQ(back.contendedExcessMs, spec.contendedExcessMs);
  spec.contendedExcessMs.clear();
  spec.device.coresPerNode = 2;
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  EXPECT_EQ(back.device.coresPerNode, 2);
  spec.device.coresPerNode = 0;
  spec.instructionMs = 0;
  spec.collectiveLatencyMs.clear();
  spec.kernelRates.clear();
  // Without the optional sections.
  spec.comm.spTime.clear();
  spec.measurements.clear();
  ASSERT_TRUE(writeHardwareJson(path, spec, error)) << error;
  ASSERT_TRUE(readHardwareJson(path, back, error)) << error;
  expectSameSpec(spec, back);
  EXPECT_TRUE(back.measurements.empty());
  EXPECT_EQ(readAll(path).find("sp_time"), std::string::npos);
}

TEST(CostModelHardware, MalformedRefusedNamingFileAndKey) {
  std::string good = tempPath("good.json"), error;
  ASSERT_TRUE(writeHardwareJson(good, sampleSpec(), error)) << error;
  nlohmann::ordered_json base = nlohmann::ordered_json::parse(readAll(good));
  struct Case {
    const char *name;
    void (*edit)(nlohmann::ordered_json &);
    const char *expected; ///< After "<file>: ".
  };
  using J = nlohmann::ordered_json;
  const Case cases[] = {
      {"unknown-top", [](J &j) { j["colour"] = "red"; },
       "key 'colour': unknown key"},
      {"format", [](J &j) { j["format"] = "galvatron-hardware/2"; },
       "key 'format': expected \"galvatron-hardware/1\""},
      {"missing-name", [](J &j) { j.erase("name"); }, "key 'name': missing"},
      {"backend", [](J &j) { j["backend"] = "tpu"; },
       "key 'backend': must be \"cpu\" or \"cuda\""},
      {"nodes-type", [](J &j) { j["nodes"] = "2"; },
       "key 'nodes': must be an integer >= 1"},
      {"nodes-zero", [](J &j) { j["nodes"] = 0; },
       "key 'nodes': must be an integer >= 1"},
      {"gemm-zero", [](J &j) { j["device"]["gemm_tflops_fp32"] = 0; },
       "key 'device.gemm_tflops_fp32': must be a positive number"},
      {"bf16-negative", [](J &j) { j["device"]["gemm_tflops_bf16"] = -1; },
       "key 'device.gemm_tflops_bf16': must be a non-negative number"},
      {"cores-zero", [](J &j) { j["device"]["cores_per_node"] = 0; },
       "key 'device.cores_per_node': must be an integer >= 1"},
      {"device-missing", [](J &j) { j["device"].erase("memory_gb"); },
       "key 'device.memory_gb': missing"},
      {"device-unknown", [](J &j) { j["device"]["fp8"] = 1; },
       "key 'device.fp8': unknown key"},
      {"allreduce-type", [](J &j) { j["allreduce_bandwidth"] = 3; },
       "key 'allreduce_bandwidth': must be an object"},
      {"allreduce-key",
       [](J &j) { j["allreduce_bandwidth"]["allreduce_size_4"] = 3.0; },
       "key 'allreduce_bandwidth.allreduce_size_4': expected "
       "allreduce_size_<n>_consec_<0|1>"},
      {"allreduce-rate",
       [](J &j) { j["allreduce_bandwidth"]["allreduce_size_4_consec_1"] = 0; },
       "key 'allreduce_bandwidth.allreduce_size_4_consec_1': bandwidth must "
       "be a positive number (MB/ms)"},
      {"allreduce-group",
       [](J &j) {
         j["allreduce_bandwidth"]["allreduce_size_16_consec_1"] = 5.0;
       },
       "key 'allreduce_bandwidth.allreduce_size_16_consec_1': group size "
       "must be 2 .. nodes x devices_per_node (8)"},
      {"p2p-missing", [](J &j) { j.erase("p2p_bandwidth"); },
       "key 'p2p_bandwidth': missing"},
      {"p2p-rate", [](J &j) { j["p2p_bandwidth"]["pp_size_2"] = "fast"; },
       "key 'p2p_bandwidth.pp_size_2': bandwidth must be a positive number"},
      {"overlap", [](J &j) { j["overlap_coefficient"] = -1.1; },
       "key 'overlap_coefficient': must be a positive number"},
      {"sp-key", [](J &j) { j["sp_time"]["allgather_size_4_1MB_time"] = 1; },
       "key 'sp_time.allgather_size_4_1MB_time': expected "
       "<allreduce|all2all>_size_<n>_<m>MB_time"},
      {"sp-time", [](J &j) { j["sp_time"]["all2all_size_4_8MB_time"] = 0; },
       "key 'sp_time.all2all_size_4_8MB_time': time must be a positive"},
      {"measurements", [](J &j) { j["measurements"] = J::array(); },
       "key 'measurements': must be an object"},
      {"latency-type", [](J &j) { j["latency"] = 3; },
       "key 'latency': must be an object"},
      {"latency-unknown", [](J &j) { j["latency"]["kernel_ms"] = 1; },
       "key 'latency.kernel_ms': unknown key"},
      {"latency-instruction",
       [](J &j) { j["latency"]["instruction_ms"] = -0.5; },
       "key 'latency.instruction_ms': must be a number >= 0"},
      {"latency-gemm-bytes",
       [](J &j) { j["latency"]["gemm_ns_per_byte"] = "slow"; },
       "key 'latency.gemm_ns_per_byte': must be a number >= 0"},
      {"sync-excess-shape",
       [](J &j) {
         j["latency"]["sync_excess_ms"] = J::array({1, 2});
       },
       "key 'latency.sync_excess_ms': each entry must be a [burst ms, extra "
       "ms] pair"},
      {"sync-excess-order",
       [](J &j) {
         j["latency"]["sync_excess_ms"] = J::array({{1.0, 0.1}, {0.5, 0.2}});
       },
       "key 'latency.sync_excess_ms': burst ms must be > 0 and increasing"},
      {"contended-type",
       [](J &j) { j["latency"]["contended_excess_ms"] = J::array(); },
       "key 'latency.contended_excess_ms': must be an object keyed by "
       "collective bytes"},
      {"contended-bytes",
       [](J &j) {
         j["latency"]["contended_excess_ms"]["4KB"] = J::array({{1.0, 0.1}});
       },
       "key 'latency.contended_excess_ms.4KB': bytes must be an integer >= "
       "1"},
      {"contended-order",
       [](J &j) {
         j["latency"]["contended_excess_ms"]["4096"] =
             J::array({{4.0, 0.1}, {0.5, 0.2}});
       },
       "key 'latency.contended_excess_ms.4096': call ms must be > 0 and "
       "increasing"},
      {"latency-group", [](J &j) { j["latency"]["collective_ms"]["1"] = 0.01; },
       "key 'latency.collective_ms.1': group size must be >= 2"},
      {"latency-value",
       [](J &j) { j["latency"]["collective_ms"]["4"] = "slow"; },
       "key 'latency.collective_ms.4': must be a number >= 0"},
      {"kernel-class",
       [](J &j) { j["latency"]["kernel_ns_per_byte"]["gemm"] = 1.0; },
       "key 'latency.kernel_ns_per_byte.gemm': unknown class"},
      {"kernel-rate",
       [](J &j) { j["latency"]["kernel_ns_per_byte"]["movement"] = -1; },
       "key 'latency.kernel_ns_per_byte.movement': must be a number >= 0"},
      {"kernel-curve-class",
       [](J &j) {
         j["latency"]["kernel_rates"]["fft"] = J::array({{1, 1}});
       },
       "key 'latency.kernel_rates.fft': unknown class"},
      {"kernel-curve-entry",
       [](J &j) {
         j["latency"]["kernel_rates"]["gemm"] = J::array({{1e6, 0}});
       },
       "key 'latency.kernel_rates.gemm': each entry must be [work > 0, ns "
       "per unit > 0]"},
      {"kernel-curve-order",
       [](J &j) {
         j["latency"]["kernel_rates"]["movement"] =
             J::array({{4096, 0.5}, {1024, 0.4}});
       },
       "key 'latency.kernel_rates.movement': work must increase"},
  };
  for (const Case &c : cases) {
    J json = base;
    c.edit(json);
    std::string path = writeText(std::string(c.name) + ".json", json.dump(2));
    HardwareSpec spec;
    std::string message;
    EXPECT_FALSE(readHardwareJson(path, spec, message)) << c.name;
    EXPECT_EQ(message.rfind(path + ": " + c.expected, 0), 0u)
        << c.name << ": " << message;
  }
  HardwareSpec spec;
  std::string path = writeText("broken.json", "{\"format\": ");
  EXPECT_FALSE(readHardwareJson(path, spec, error));
  EXPECT_EQ(error, path + ": not valid JSON");
}

TEST(CostModelHardware, LoadEachSpecKind) {
  std::string error;
  HardwareSpec spec;
  // A hw.json path.
  std::string json = tempPath("load.json");
  ASSERT_TRUE(writeHardwareJson(json, sampleSpec(), error)) << error;
  ASSERT_TRUE(loadHardware(json, spec, error)) << error;
  expectSameSpec(sampleSpec(), spec);

  // A directory of Galvatron's files for one shape.
  std::string dir = tempPath("galvatron-dir");
  fs::remove_all(dir);
  ASSERT_TRUE(writeGalvatronHardwareDir(dir, sampleSpec(), error)) << error;
  ASSERT_TRUE(loadHardware(dir, spec, error)) << error;
  EXPECT_EQ(spec.comm.numNodes, 2);
  EXPECT_EQ(spec.comm.gpusPerNode, 4);
  EXPECT_EQ(spec.comm.allreduce, sampleSpec().comm.allreduce);
  EXPECT_EQ(spec.comm.spTime, sampleSpec().comm.spTime);
  EXPECT_EQ(spec.device.gemmTflopsFp32, 0);
  EXPECT_EQ(spec.backend, "cuda");

  // Galvatron's shipped directory holds three shapes: refused, naming them;
  // one shape's all-reduce file selects it.
  EXPECT_FALSE(loadHardware(kGalvatronHardware, spec, error));
  EXPECT_NE(error.find("several cluster shapes (1x4, 1x8, 2x8)"),
            std::string::npos)
      << error;
  ASSERT_TRUE(loadHardware(
      kGalvatronHardware + "/allreduce_bandwidth_1nodes_8gpus_per_node.json",
      spec, error))
      << error;
  EXPECT_EQ(spec.comm.gpusPerNode, 8);
  EXPECT_DOUBLE_EQ(spec.comm.allreduce.at({8, 1}), 154.203);
  EXPECT_FALSE(spec.comm.spTime.empty());

  // preset:NAME from $GALVATRON_PRESET_DIR.
  std::string presets = tempPath("presets");
  fs::remove_all(presets);
  fs::create_directories(presets);
  ASSERT_TRUE(writeHardwareJson(presets + "/tiny.json", sampleSpec(), error));
  std::string saved = getenv("GALVATRON_PRESET_DIR")
                          ? getenv("GALVATRON_PRESET_DIR")
                          : std::string();
  setenv("GALVATRON_PRESET_DIR", presets.c_str(), 1);
  EXPECT_EQ(listPresets(), std::vector<std::string>{"tiny"});
  ASSERT_TRUE(loadHardware("preset:tiny", spec, error)) << error;
  EXPECT_EQ(spec.name, "sample-2x4");
  EXPECT_FALSE(loadHardware("preset:huge", spec, error));
  EXPECT_EQ(error, "preset 'huge': unknown (presets in " + presets + ": tiny)");
  EXPECT_FALSE(loadHardware("preset:../tiny", spec, error));
  if (saved.empty())
    unsetenv("GALVATRON_PRESET_DIR");
  else
    setenv("GALVATRON_PRESET_DIR", saved.c_str(), 1);

  EXPECT_FALSE(loadHardware(tempPath("nowhere"), spec, error));
  EXPECT_NE(error.find("no such file or directory"), std::string::npos);
}

TEST(CostModelHardware, EveryPresetConvertsToGalvatronFiles) {
  std::vector<std::string> names = listPresets();
  for (const char *expected : {"a100-1x4", "a100-1x8", "a100-2x8",
                               "dgx-a100-1n", "dgx-h100-8n", "h200-128n"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end())
        << expected;
  ASSERT_EQ(names.size(), 18u);
  for (const std::string &name : names) {
    HardwareSpec spec;
    std::string error;
    ASSERT_TRUE(loadHardware("preset:" + name, spec, error)) << error;
    EXPECT_EQ(spec.name, name);
    EXPECT_FALSE(spec.source.empty());
    EXPECT_GT(spec.device.gemmTflopsFp32, 0) << name;
    EXPECT_GT(spec.device.gemmTflopsBf16, spec.device.gemmTflopsFp32) << name;
    int world = spec.comm.numNodes * spec.comm.gpusPerNode;
    // Every power-of-two group and pp degree up to the world.
    for (int group = 2; group <= world; group *= 2) {
      EXPECT_TRUE(spec.comm.allreduce.count({group, 1})) << name << group;
      EXPECT_TRUE(spec.comm.p2p.count(group)) << name << group;
    }
    std::string dir = tempPath("preset-" + name);
    fs::remove_all(dir);
    ASSERT_TRUE(writeGalvatronHardwareDir(dir, spec, error)) << error;
    HardwareProfile back;
    ASSERT_TRUE(readHardwareProfile(dir, spec.comm.numNodes,
                                    spec.comm.gpusPerNode, back, error))
        << error;
    EXPECT_EQ(back.allreduce, spec.comm.allreduce) << name;
    EXPECT_EQ(back.p2p, spec.comm.p2p) << name;
    EXPECT_EQ(back.overlapCoefficient, spec.comm.overlapCoefficient) << name;
    EXPECT_EQ(back.spTime, spec.comm.spTime) << name;
    fs::remove_all(dir);
  }
  // The converted presets carry Galvatron's numbers unchanged.
  HardwareSpec a100;
  std::string error;
  ASSERT_TRUE(loadHardware("preset:a100-2x8", a100, error)) << error;
  EXPECT_DOUBLE_EQ(a100.comm.allreduce.at({16, 1}), 44.682);
  EXPECT_DOUBLE_EQ(a100.comm.p2p.at(2), 7.65998);
}

TEST(CostModelHardware, SyncExcessInterpolatesByBurst) {
  HardwareSpec spec;
  EXPECT_EQ(spec.syncExcessAt(1.0), 0);
  spec.syncExcessMs = {{0.5, 0.1}, {2.0, 0.4}};
  EXPECT_EQ(spec.syncExcessAt(0), 0);
  EXPECT_NEAR(spec.syncExcessAt(0.25), 0.05, 1e-12); // from (0, 0)
  EXPECT_NEAR(spec.syncExcessAt(0.5), 0.1, 1e-12);
  EXPECT_NEAR(spec.syncExcessAt(1.25), 0.25, 1e-12);
  EXPECT_NEAR(spec.syncExcessAt(8.0), 0.4, 1e-12); // the last beyond it
}

TEST(CostModelHardware, ContendedExcessByBytesThenCall) {
  HardwareSpec spec;
  EXPECT_EQ(spec.contendedExcessAt(4096, 1.0), 0);
  spec.contendedExcessMs = {{4096, {{0.5, 0.8}, {30, 6.7}}},
                            {65536, {{0.5, 1.5}, {4, 7}}}};
  EXPECT_EQ(spec.contendedExcessAt(65536, 0), 0); // nobody computes
  // The row of the largest size not above the bytes; below all, the first.
  EXPECT_NEAR(spec.contendedExcessAt(100, 0.5), 0.8, 1e-12);
  EXPECT_NEAR(spec.contendedExcessAt(65535, 0.5), 0.8, 1e-12);
  EXPECT_NEAR(spec.contendedExcessAt(65536, 0.5), 1.5, 1e-12);
  EXPECT_NEAR(spec.contendedExcessAt(1e9, 0.5), 1.5, 1e-12);
  // Along the row: from (0, 0), between pairs, the last beyond it.
  EXPECT_NEAR(spec.contendedExcessAt(1e5, 0.25), 0.75, 1e-12);
  EXPECT_NEAR(spec.contendedExcessAt(1e5, 2.25), 4.25, 1e-12);
  EXPECT_NEAR(spec.contendedExcessAt(1e5, 40), 7, 1e-12);
}

TEST(CostModelHardware, CollectiveTimes) {
  const double mib = 1024.0 * 1024.0;
  HardwareSpec two, one, fit;
  std::string error;
  ASSERT_TRUE(loadHardware(
      kGalvatronHardware + "/allreduce_bandwidth_2nodes_8gpus_per_node.json",
      two, error))
      << error;
  ASSERT_TRUE(loadHardware(
      kGalvatronHardware + "/allreduce_bandwidth_1nodes_8gpus_per_node.json",
      one, error))
      << error;
  // Bandwidth tables (2x8 has no sp_time): all-reduce 2(n-1)/n MB / B,
  // all-gather and reduce-scatter (n-1)/n MB / B, p2p MB / B_p2p.
  EXPECT_NEAR(two.collectiveMs("allreduce", 4, false, 16 * mib),
              2 * 0.75 * 16 / 16.22, 1e-12);
  EXPECT_NEAR(two.collectiveMs("allreduce", 16, false, 16 * mib),
              2 * 15.0 / 16 * 16 / 44.682, 1e-12);
  EXPECT_NEAR(two.collectiveMs("allgather", 2, true, 8 * mib),
              0.5 * 8 / 149.666, 1e-12);
  EXPECT_NEAR(two.collectiveMs("reducescatter", 8, false, 8 * mib),
              7.0 / 8 * 8 / 20.7724, 1e-12);
  EXPECT_NEAR(two.collectiveMs("p2p", 2, true, 10 * mib), 10 / 7.65998, 1e-12);
  // sp_time: a profiled size takes its entry (all-gather half of it); a
  // strided group takes the bandwidth table.
  EXPECT_DOUBLE_EQ(one.collectiveMs("allreduce", 8, true, mib), 0.07895);
  EXPECT_DOUBLE_EQ(one.collectiveMs("allgather", 8, true, mib), 0.07895 / 2);
  EXPECT_NEAR(one.collectiveMs("allreduce", 4, false, mib), 2 * 0.75 / 155.815,
              1e-12);
  // Between profiled sizes: the least-squares line.
  fit.comm.numNodes = 1;
  fit.comm.gpusPerNode = 4;
  fit.comm.spTime["all2all"][4] = {{1, 1.5}, {2, 2.5}, {4, 4.5}};
  EXPECT_NEAR(fit.collectiveMs("all2all", 4, true, 3 * mib), 3.5, 1e-12);
  EXPECT_NEAR(fit.collectiveMs("all2all", 4, true, 0.5 * mib), 1.0, 1e-12);
  // Nothing to price with, a group of one, unknown ops.
  EXPECT_TRUE(std::isnan(fit.collectiveMs("allreduce", 4, true, mib)));
  EXPECT_TRUE(std::isnan(two.collectiveMs("p2p", 3, true, mib)));
  EXPECT_TRUE(std::isnan(two.collectiveMs("broadcast", 4, true, mib)));
  EXPECT_EQ(two.collectiveMs("allreduce", 1, true, mib), 0);
  EXPECT_EQ(two.collectiveMs("allreduce", 4, true, 0), 0);
}

} // namespace
