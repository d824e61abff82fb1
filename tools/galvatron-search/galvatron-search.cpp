//===- galvatron-search.cpp - Best strategy under Galvatron's model -------===//
//
//   galvatron-search --hardware DIR --nodes N --gpus-per-node G
//       --computation FILE --memory FILE --batch B[,B...] [--layers L]
//       [--seq S] [--hidden H] [--memory-gb M] [--threads K] [--top K]
//       [--max-tp T] [--max-pp P] [--no-strided] [--no-consecutive]
//       [--no-zero3] [--no-ckpt] [--ddp] [--ulysses] [--vsp] [--no-embed-sdp]
//       [--sp-space tp|tp+sp] [--pipeline gpipe|1f1b|both] [--search-division]
//       [--chunks-divide-batch] [--uniform] [--output CONFIG.json]
//
// Prints the best strategy per layer with predicted time and memory per
// stage, the runners-up, and writes galvatron_config_*.json with --output.
// --uniform restricts the space to one tp/pp/dp for every layer (Megatron-
// style 3D: consecutive tp groups, no ZeRO-3, no checkpointing, even split).
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/StrategyConfig.h"
#include "galvatron/Search/Search.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

using namespace galvatron::costmodel;
using namespace galvatron::search;

namespace {

int fail(const std::string &error) {
  std::fprintf(stderr, "galvatron-search: %s\n", error.c_str());
  return 1;
}

bool toInt(const std::string &text, int &out) {
  char *end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  out = static_cast<int>(value);
  return !text.empty() && *end == '\0' && value > 0 && value < (1 << 30);
}

std::string describe(const LayerStrategy &l, int dp) {
  std::ostringstream os;
  os << "tp" << l.tp << (l.tp > 1 && dp > 1 ? (l.consecutive ? "c" : "s") : "")
     << " dp" << dp << (l.zero3 ? " zero3" : "")
     << (l.ulysses ? " ulysses" : "") << (l.checkpoint ? " ckpt" : "");
  return os.str();
}

void print(const GalvatronCostModel &model, const Candidate &c) {
  const Strategy &s = c.strategy;
  std::string error;
  Estimate est;
  model.estimate(s, est, error);
  std::printf("pp %d, division", s.pp);
  for (int n : s.ppDivision)
    std::printf(" %d", n);
  std::printf(", global batch %d, chunks %d, %s, vtp %d%s%s\n", s.globalBatch,
              s.chunks,
              s.pipeline == PipelineType::GPipe ? "gpipe" : "pipedream_flush",
              s.vtp, s.vsp ? ", vsp" : "", s.embedSdp ? ", embed_sdp" : "");
  std::printf("time per iteration %.3f ms, throughput %.4f samples/s\n",
              c.timeMs, c.throughput);
  int world = model.worldSize();
  for (int stage = 0, layer = 0; stage < s.pp; ++stage) {
    std::printf("  stage %d: %.3f ms per micro-batch, %.0f MB\n", stage,
                est.stageTimeMs[stage], c.stageMemoryMb[stage]);
    // Runs of equal layers as one line.
    for (int i = 0; i < s.ppDivision[stage];) {
      const LayerStrategy &l = s.layers[layer + i];
      int j = i;
      while (j < s.ppDivision[stage] &&
             describe(s.layers[layer + j], 1) == describe(l, 1))
        ++j;
      std::printf("    layers %d-%d: %s\n", layer + i, layer + j - 1,
                  describe(l, world / s.pp / l.tp).c_str());
      i = j;
    }
    layer += s.ppDivision[stage];
  }
}

} // namespace

int main(int argc, char **argv) {
  std::map<std::string, std::string> opt = {
      {"--seq", "2048"},     {"--hidden", "4096"}, {"--layers", "32"},
      {"--memory-gb", "36"}, {"--threads", "1"},   {"--top", "3"},
      {"--max-tp", "8"},     {"--max-pp", "0"},    {"--sp-space", "tp"},
      {"--pipeline", "1f1b"}};
  std::set<std::string> flags;
  const std::set<std::string> known = {"--no-strided",
                                       "--no-consecutive",
                                       "--no-zero3",
                                       "--no-ckpt",
                                       "--ddp",
                                       "--ulysses",
                                       "--vsp",
                                       "--no-embed-sdp",
                                       "--search-division",
                                       "--chunks-divide-batch",
                                       "--uniform"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (known.count(arg)) {
      flags.insert(arg);
    } else if (arg.rfind("--", 0) == 0 && i + 1 < argc) {
      opt[arg] = argv[++i];
    } else {
      return fail("unknown or incomplete argument '" + arg + "'");
    }
  }
  for (const char *need : {"--hardware", "--nodes", "--gpus-per-node",
                           "--computation", "--memory", "--batch"})
    if (!opt.count(need))
      return fail(std::string("missing ") + need);
  int nodes, gpus, layers, seq, hidden, threads, top, maxTp, maxPp = 0;
  if (!toInt(opt["--nodes"], nodes) || !toInt(opt["--gpus-per-node"], gpus) ||
      !toInt(opt["--layers"], layers) || !toInt(opt["--seq"], seq) ||
      !toInt(opt["--hidden"], hidden) || !toInt(opt["--threads"], threads) ||
      !toInt(opt["--top"], top) || !toInt(opt["--max-tp"], maxTp) ||
      (opt["--max-pp"] != "0" && !toInt(opt["--max-pp"], maxPp)))
    return fail("--nodes, --gpus-per-node, --layers, --seq, --hidden, "
                "--threads, --top, --max-tp and --max-pp take positive "
                "integers");
  SearchOptions options;
  char *end = nullptr;
  options.memoryGB = std::strtod(opt["--memory-gb"].c_str(), &end);
  if (opt["--memory-gb"].empty() || *end != '\0' ||
      !(options.memoryGB > 0 && options.memoryGB < 1e9))
    return fail("--memory-gb takes a positive number of GB, got '" +
                opt["--memory-gb"] + "'");
  options.threads = threads;
  options.topK = top;
  std::stringstream batches(opt["--batch"]);
  for (std::string item; std::getline(batches, item, ',');) {
    int b;
    if (!toInt(item, b))
      return fail("--batch: '" + item + "' is not a positive integer");
    options.globalBatches.push_back(b);
  }
  HardwareProfile hw;
  ComputationProfile comp;
  MemoryProfile mem;
  std::string error;
  if (!readHardwareProfile(opt["--hardware"], nodes, gpus, hw, error) ||
      !readComputationProfile(opt["--computation"], comp, error) ||
      !readMemoryProfile(opt["--memory"], mem, error))
    return fail(error);
  CostModelSettings cfg;
  cfg.numLayers = layers;
  cfg.seqLen = seq;
  cfg.hiddenSize = hidden;
  cfg.memoryConstraintGB = options.memoryGB;
  if (opt["--sp-space"] != "tp" && opt["--sp-space"] != "tp+sp")
    return fail("--sp-space: expected tp or tp+sp");
  cfg.spSpace = opt["--sp-space"] == "tp" ? SpSpace::Tp : SpSpace::TpSp;
  GalvatronCostModel model;
  if (!model.init(hw, comp, mem, cfg, error))
    return fail(error);

  SearchSpace space;
  space.maxTp = maxTp;
  space.maxPp = maxPp;
  space.tpStrided = !flags.count("--no-strided");
  space.tpConsecutive = !flags.count("--no-consecutive");
  space.zero3 = !flags.count("--no-zero3");
  space.checkpoint = !flags.count("--no-ckpt");
  space.defaultZero2 = !flags.count("--ddp");
  space.ulysses = flags.count("--ulysses");
  space.vsp = flags.count("--vsp");
  space.embedSdp = !flags.count("--no-embed-sdp");
  space.searchDivision = flags.count("--search-division");
  space.chunksDivideBatch = flags.count("--chunks-divide-batch");
  if (opt["--pipeline"] == "gpipe")
    space.pipelines = {PipelineType::GPipe};
  else if (opt["--pipeline"] == "both")
    space.pipelines = {PipelineType::GPipe, PipelineType::PipeDreamFlush};
  else if (opt["--pipeline"] != "1f1b")
    return fail("--pipeline: expected gpipe, 1f1b or both");

  SearchResult result;
  if (flags.count("--uniform")) {
    if (!searchUniform(model, space, options, result, error))
      return fail(error);
  } else if (!searchStrategy(model, space, options, result, error)) {
    return fail(error);
  }
  std::printf("searched %llu candidates in %.3f s\n",
              static_cast<unsigned long long>(result.candidatesWeighed),
              result.seconds);
  if (!result.found) {
    if (result.minMemoryMb > 0)
      std::printf("nothing fits %.3f GB per device; the smallest memory that "
                  "fits is %.0f MB (%.3f GB)\n",
                  options.memoryGB, result.minMemoryMb,
                  result.minMemoryMb / 1024);
    else
      std::printf("no strategy of the space applies to these batch sizes\n");
    return 3;
  }
  for (size_t i = 0; i < result.best.size(); ++i) {
    std::printf(i == 0 ? "best:\n" : "runner-up %zu:\n", i);
    print(model, result.best[i]);
  }
  if (opt.count("--output")) {
    std::ofstream out(opt["--output"]);
    out << formatGalvatronConfig(result.best[0].strategy);
    if (!out)
      return fail(opt["--output"] + ": cannot write");
  }
  return 0;
}
