//===- galvatron-estimate.cpp - Galvatron 2.4.0's estimate of a strategy --===//
//
//   galvatron-estimate CONFIG.json --hardware DIR --nodes N --gpus-per-node G
//       --computation FILE --memory FILE [--seq S] [--hidden H]
//       [--precision bf16|fp16|fp32] [--sp-space tp|tp+sp]
//       [--time-mode static|batch] [--memory-gb M] [--min-tp T] [--max-tp T]
//       [--no-sequence-parallel] [--no-global-memory-buffer]
//
// Prints time per iteration and, per stage, layers, time and memory as
// hetu-galvatron 2.4.0's cost model computes them (docs/COSTMODEL.md).
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/GalvatronCostModel.h"
#include "galvatron/CostModel/StrategyConfig.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

using namespace galvatron::costmodel;

namespace {

int usage(const char *message) {
  std::fprintf(stderr,
               "galvatron-estimate: %s\nusage: galvatron-estimate CONFIG.json "
               "--hardware DIR --nodes N --gpus-per-node G --computation FILE "
               "--memory FILE [--seq S] [--hidden H] [--precision "
               "bf16|fp16|fp32] [--sp-space tp|tp+sp] [--time-mode "
               "static|batch] [--memory-gb M] [--min-tp T] [--max-tp T] "
               "[--no-sequence-parallel] [--no-global-memory-buffer]\n",
               message);
  return 2;
}

int fail(const std::string &error) {
  std::fprintf(stderr, "galvatron-estimate: %s\n", error.c_str());
  return 1;
}

bool toInt(const std::string &text, int &out) {
  char *end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  out = static_cast<int>(value);
  return !text.empty() && *end == '\0' && value > 0 && value < (1 << 30);
}

} // namespace

int main(int argc, char **argv) {
  std::map<std::string, std::string> opt = {
      {"--seq", "2048"},    {"--hidden", "4096"},      {"--precision", "bf16"},
      {"--sp-space", "tp"}, {"--time-mode", "static"}, {"--memory-gb", "36"},
      {"--min-tp", "0"},    {"--max-tp", "0"}};
  std::string configPath;
  CostModelSettings cfg;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--no-sequence-parallel")
      cfg.sequenceParallel = false;
    else if (arg == "--no-global-memory-buffer")
      cfg.globalMemoryBuffer = false;
    else if (arg.rfind("--", 0) == 0 && i + 1 < argc)
      opt[arg] = argv[++i];
    else if (arg.rfind("--", 0) == 0)
      return usage(("missing value for " + arg).c_str());
    else
      configPath = arg;
  }
  for (const char *key : {"--hardware", "--nodes", "--gpus-per-node",
                          "--computation", "--memory"})
    if (!opt.count(key))
      return usage((std::string("missing ") + key).c_str());
  if (configPath.empty())
    return usage("missing the strategy file");
  int nodes, gpus, memoryGb;
  if (!toInt(opt["--nodes"], nodes) || !toInt(opt["--gpus-per-node"], gpus) ||
      !toInt(opt["--seq"], cfg.seqLen) ||
      !toInt(opt["--hidden"], cfg.hiddenSize) ||
      !toInt(opt["--memory-gb"], memoryGb))
    return usage("--nodes, --gpus-per-node, --seq, --hidden and --memory-gb "
                 "take positive integers");
  // 0 (the default) leaves the bound to the cost model.
  cfg.minTp = cfg.maxTp = 0;
  if ((opt["--min-tp"] != "0" && !toInt(opt["--min-tp"], cfg.minTp)) ||
      (opt["--max-tp"] != "0" && !toInt(opt["--max-tp"], cfg.maxTp)))
    return usage("--min-tp and --max-tp take 0 or a positive integer");
  cfg.memoryConstraintGB = memoryGb;
  cfg.mixedPrecision = opt["--precision"] != "fp32";
  cfg.spSpace = opt["--sp-space"] == "tp+sp" ? SpSpace::TpSp : SpSpace::Tp;
  cfg.timeProfileMode = opt["--time-mode"] == "batch" ? TimeProfileMode::Batch
                                                      : TimeProfileMode::Static;

  std::string error;
  Strategy strategy;
  HardwareProfile hw;
  ComputationProfile computation;
  MemoryProfile memory;
  if (!readGalvatronConfig(configPath, strategy, error) ||
      !readHardwareProfile(opt["--hardware"], nodes, gpus, hw, error) ||
      !readComputationProfile(opt["--computation"], computation, error) ||
      !readMemoryProfile(opt["--memory"], memory, error))
    return fail(error);
  cfg.numLayers = static_cast<int>(strategy.layers.size());
  GalvatronCostModel model;
  Estimate est;
  if (!model.init(hw, computation, memory, cfg, error) ||
      !model.estimate(strategy, est, error))
    return fail(error);

  std::printf("time per iteration: %.3f ms (%.2f samples/s)\n", est.timeMs,
              strategy.globalBatch / est.timeMs * 1000);
  std::printf("micro-batch %d, tp window [%d, %d], Megatron-SP buffer %.0f "
              "MB, reserve %.0f MB\n",
              est.microBatch, est.minTp, est.maxTp, est.globalBufferMb,
              est.reserveMb);
  std::printf("%-6s %-7s %14s %12s %12s %12s\n", "stage", "layers",
              "time/mb (ms)", "layers MB", "other MB", "total MB");
  std::vector<int> division = strategy.ppDivision;
  for (size_t s = 0; s < est.stageMemoryMb.size(); ++s)
    std::printf("%-6zu %-7d %14.3f %12.0f %12.0f %12.0f\n", s,
                division.empty() ? 0 : division[s], est.stageTimeMs[s],
                est.stageLayerMemoryMb[s], est.stageOtherMemoryMb[s],
                est.stageMemoryMb[s]);
  return 0;
}
