//===- Model.cpp - galvatron-profile model --------------------------------===//
//
//   galvatron-profile model MODEL.mlir --hardware SPEC -o profile.json
//       [--batch-sizes 1,2,4,8] [--max-tp N] [--min-time-ms T] [--threads T]
//       [--galvatron-dir DIR] [--name NAME] [--dump-dir DIR]
//
// Profiles each layer type and the embedding and head of an imported model
// on this machine's runtime (lib/Eval/ModelProfiler.cpp) and writes the
// profile (docs/COSTMODEL.md, "Profiling a model") and, with
// --galvatron-dir, Galvatron's computation_profiling_fp32_NAME.json and
// memory_profiling_fp32_NAME.json. Nothing is written unless everything was
// measured.
//
//===----------------------------------------------------------------------===//

#include "Model.h"

#include "Galv/Galv.h"
#include "galvatron/CostModel/GalvatronCostModel.h"
#include "galvatron/CostModel/Hardware.h"
#include "galvatron/CostModel/Profiles.h"
#include "galvatron/Eval/ModelProfiler.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

using namespace mlir;
using namespace mlir::galv;
namespace cm = galvatron::costmodel;
using Json = nlohmann::ordered_json;

namespace {

const char *kModelUsage =
    "usage: galvatron-profile model MODEL.mlir --hardware SPEC -o "
    "profile.json\n"
    "           [--batch-sizes 1,2,4,8] [--max-tp N] [--min-time-ms T]\n"
    "           [--threads T] [--galvatron-dir DIR] [--name NAME] [--dump-dir "
    "DIR]\n"
    "  --hardware      the machine's spec (hw.json, Galvatron's dir, "
    "preset:NAME)\n"
    "  --batch-sizes   the batches each piece runs at (at least two sizes)\n"
    "  --max-tp        the largest tensor-parallel degree tried (default 8)\n"
    "  --min-time-ms   time each run series for at least this long "
    "(default 50)\n"
    "  --threads       kernel threads (default: the runtime's, as "
    "galvatron-run)\n"
    "  --galvatron-dir also write Galvatron's model profiles into DIR\n"
    "  --name          the model name in Galvatron's file names (default: "
    "MODEL's stem)\n"
    "  --dump-dir      write the extracted models (NAME.TYPE.N.bB.mlir)\n";

struct ModelOptions {
  std::string model, hardware, output, galvatronDir, name, dumpDir;
  ModelProfileOptions profile;
};

bool positive(const std::string &text, int64_t &out) {
  char *end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || v < 1 || v > (1 << 20))
    return false;
  out = v;
  return true;
}

bool parseBatchSizes(const std::string &text, std::vector<int64_t> &out,
                     std::string &error) {
  out.clear();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int64_t b;
    if (!positive(item, b))
      return error = "--batch-sizes: '" + item +
                     "' is not a positive integer (expected e.g. 1,2,4,8)",
             false;
    out.push_back(b);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() < 2)
    return error = "--batch-sizes: '" + text +
                   "' gives fewer than two distinct sizes; a line through "
                   "time against batch needs two",
           false;
  return true;
}

bool parseModelArgs(int argc, char **argv, ModelOptions &o,
                    std::string &error) {
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return error = arg + " needs a value", false;
      out = argv[++i];
      return true;
    };
    std::string v;
    int64_t n;
    if (arg == "-h" || arg == "--help")
      return error.clear(), false;
    if (arg == "--hardware") {
      if (!value(o.hardware))
        return false;
    } else if (arg == "-o") {
      if (!value(o.output))
        return false;
    } else if (arg == "--galvatron-dir" || arg == "--name" ||
               arg == "--dump-dir") {
      if (!value(arg == "--name"       ? o.name
                 : arg == "--dump-dir" ? o.dumpDir
                                       : o.galvatronDir))
        return false;
    } else if (arg == "--batch-sizes") {
      if (!value(v) || !parseBatchSizes(v, o.profile.batchSizes, error))
        return false;
    } else if (arg == "--max-tp" || arg == "--min-time-ms" ||
               arg == "--threads") {
      if (!value(v))
        return false;
      if (!positive(v, n))
        return error = arg + ": expected a positive integer, got '" + v + "'",
               false;
      if (arg == "--max-tp")
        o.profile.maxTp = n;
      else if (arg == "--threads")
        o.profile.threads = static_cast<int>(n);
      else
        o.profile.minSeconds = double(n) / 1e3;
    } else if (!arg.empty() && arg[0] != '-' && o.model.empty()) {
      o.model = arg;
    } else {
      return error = "unexpected argument '" + arg + "'", false;
    }
  }
  if (o.model.empty())
    return error = "the model (MODEL.mlir) is required", false;
  if (o.hardware.empty())
    return error = "--hardware SPEC is required (the machine profiled: "
                   "a hw.json from galvatron-profile hardware)",
           false;
  if (o.output.empty())
    return error = "-o profile.json is required", false;
  if (o.name.empty())
    o.name = llvm::sys::path::stem(o.model).str();
  return true;
}

Json fitJson(const std::vector<int64_t> &batches,
             const std::vector<double> &ms) {
  std::vector<double> x(batches.begin(), batches.end());
  double m = 0, c = 0;
  cm::fitLine(x, ms, m, c);
  return Json{{"slope_ms", m}, {"intercept_ms", c}};
}

void timeJson(const ModelProfile &p, const TimeSeries &t, Json &out) {
  out["forward_ms"] = t.forwardMs;
  out["forward_backward_ms"] = t.forwardBackwardMs;
  out["forward_fit"] = fitJson(p.batchSizes, t.forwardMs);
  out["forward_backward_fit"] = fitJson(p.batchSizes, t.forwardBackwardMs);
}

Json liveJson(const std::vector<int64_t> &batches,
              const std::array<std::vector<uint64_t>, 2> &live) {
  return Json{{"batches", batches}, {"one", live[0]}, {"two", live[1]}};
}

Json profileJson(const ModelProfile &p, const ModelOptions &o,
                 const cm::HardwareSpec &hw) {
  Json out;
  out["format"] = "galvatron-model-profile/1";
  out["model"] = o.name;
  out["hardware"] = hw.name;
  out["precision"] = "fp32";
  out["imported_batch"] = p.importedBatch;
  out["sequence"] = p.sequence;
  out["hidden"] = p.hidden;
  out["batch_sizes"] = p.batchSizes;
  Json layers = Json::array();
  for (const LayerProfile &l : p.layers) {
    Json j{{"name", l.name},
           {"instances", l.instances},
           {"parameter_bytes", l.parameterBytes},
           {"plan_parameter_bytes", l.planParameterBytes}};
    timeJson(p, l.time, j);
    Json memory = Json::array();
    for (const LayerMemory &m : l.memory)
      memory.push_back({{"tp", m.tp},
                        {"sp", m.sp},
                        {"parameter_bytes", m.parameterBytes},
                        {"activation_bytes_per_sample", m.activationPerSample},
                        {"checkpoint_bytes_per_sample", m.checkpointPerSample},
                        {"live_bytes", liveJson(m.batches, m.live)},
                        {"checkpoint_live_bytes",
                         liveJson(m.checkpointBatches, m.checkpointLive)}});
    j["memory"] = memory;
    layers.push_back(j);
  }
  out["layer_types"] = layers;
  Json other;
  timeJson(p, p.otherTime, other);
  Json memory = Json::array();
  for (const OtherMemory &m : p.other)
    memory.push_back({{"vocab_tp", m.vocabTp},
                      {"parameter_bytes", m.parameterBytes},
                      {"activation_bytes_per_sample", m.activationPerSample},
                      {"live_bytes", liveJson(m.batches, m.live)}});
  other["memory"] = memory;
  out["other"] = other;
  return out;
}

constexpr double kMb = 1 << 20;

/// Galvatron's model profiles: forward ms per sample by batch; parameter MB
/// and activation MB per sample by tp ("_sp": Megatron-SP), "checkpoint" at
/// tp 1; the embedding and head's model states (4 x the fp32 parameters)
/// and activation per vocabulary degree.
void galvatronProfiles(const ModelProfile &p, cm::ComputationProfile &comp,
                       cm::MemoryProfile &mem) {
  std::string seq = "_seq" + std::to_string(p.sequence);
  auto times = [&](const std::string &stem, const TimeSeries &t) {
    for (size_t i = 0; i < p.batchSizes.size(); ++i)
      comp.entries.push_back(
          {stem + "_bsz" + std::to_string(p.batchSizes[i]) + seq,
           t.forwardMs[i] / double(p.batchSizes[i])});
  };
  for (auto [i, l] : llvm::enumerate(p.layers)) {
    std::string stem = "layertype_" + std::to_string(i);
    times(stem, l.time);
    for (const char *kind : {"none", "megatron"}) {
      cm::LayerMemoryProfile &lm =
          mem.layers[stem + (std::string(kind) == "none" ? "" : "_sp")]
                    [p.sequence];
      lm.parameterSize = double(l.parameterBytes) / kMb;
      for (const LayerMemory &m : l.memory) {
        if (m.sp != kind)
          continue;
        lm.activationPerBsz[std::to_string(m.tp)] = m.activationPerSample / kMb;
        if (m.tp == 1)
          lm.activationPerBsz["checkpoint"] = m.checkpointPerSample / kMb;
      }
    }
  }
  times("layertype_other", p.otherTime);
  cm::OtherMemoryProfile other;
  for (const OtherMemory &m : p.other) {
    int k = static_cast<int>(m.vocabTp);
    other.modelStates[k] = 4 * double(m.parameterBytes) / kMb;
    other.activation[k] = std::max(0.0, m.activationPerSample) / kMb;
  }
  // One measurement for every section: each end of a pipeline is priced as
  // if it held the whole embedding and head (an upper bound).
  for (const char *sp : {"", "_sp"})
    for (const char *where : {"off", "on_first", "on_last"})
      mem.other[std::string("other_memory_pp_") + where + sp][p.sequence] =
          other;
}

/// Galvatron's files first, profile.json last: a failure leaves no
/// profile.json behind.
bool writeOutputs(const ModelProfile &p, const ModelOptions &o,
                  const cm::HardwareSpec &hw, std::string &error) {
  if (!o.galvatronDir.empty()) {
    if (std::error_code ec = llvm::sys::fs::create_directories(o.galvatronDir))
      return error = o.galvatronDir + ": " + ec.message(), false;
    cm::ComputationProfile comp;
    cm::MemoryProfile mem;
    galvatronProfiles(p, comp, mem);
    std::string stem = o.galvatronDir + "/";
    if (!cm::writeComputationProfile(stem + "computation_profiling_fp32_" +
                                         o.name + ".json",
                                     comp, error) ||
        !cm::writeMemoryProfile(
            stem + "memory_profiling_fp32_" + o.name + ".json", mem, error))
      return false;
  }
  std::string text = profileJson(p, o, hw).dump(4) + "\n";
  std::ofstream out(o.output);
  if (!(out << text) || (out.close(), !out))
    return error = o.output + ": cannot write", false;
  return true;
}

/// --dump-dir: the extracted models, for checking the arenas against
/// galv-estimate.
bool dumpModels(ModuleOp module, const ModelProfile &p, const ModelOptions &o,
                std::string &error) {
  if (std::error_code ec = llvm::sys::fs::create_directories(o.dumpDir))
    return error = o.dumpDir + ": " + ec.message(), false;
  for (const LayerProfile &l : p.layers)
    for (int64_t n : {1, 2})
      for (int64_t b : p.batchSizes) {
        auto m = extractLayers(module, l.name, n, b, error);
        if (failed(m))
          return false;
        std::string path = o.dumpDir + "/" + o.name + "." + l.name + "." +
                           std::to_string(n) + ".b" + std::to_string(b) +
                           ".mlir";
        std::error_code ec;
        llvm::raw_fd_ostream os(path, ec);
        if (ec)
          return error = path + ": " + ec.message(), false;
        (*m)->print(os);
      }
  return true;
}

int fail(const std::string &error, int code = 1) {
  std::fprintf(stderr, "galvatron-profile: error: %s\n", error.c_str());
  return code;
}

} // namespace

int galvatron::profile::runModelCommand(int argc, char **argv) {
  ModelOptions o;
  std::string error;
  if (!parseModelArgs(argc, argv, o, error)) {
    if (error.empty())
      return std::fputs(kModelUsage, stdout), 0;
    return fail(error + "\n" + kModelUsage, 2);
  }
  if (!llvm::sys::fs::exists(o.model))
    return fail(o.model + ": no such file or directory");
  cm::HardwareSpec hw;
  if (!cm::loadHardware(o.hardware, hw, error))
    return fail(error);
  MLIRContext context;
  context.loadDialect<GalvDialect, func::FuncDialect>();
  llvm::SourceMgr sourceMgr;
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(o.model, sourceMgr, &context);
  if (!module)
    return fail(o.model + ": not a galv module (see the diagnostics above)");
  o.profile.progress = [](const std::string &line) {
    std::fprintf(stderr, "galvatron-profile: %s\n", line.c_str());
  };
  ModelProfile profile;
  if (failed(profileModel(*module, o.profile, profile, error)))
    return fail(o.model + ": " + error);
  if (!o.dumpDir.empty() && !dumpModels(*module, profile, o, error))
    return fail(error);
  if (!writeOutputs(profile, o, hw, error))
    return fail(error);
  for (const LayerProfile &l : profile.layers) {
    Json f = fitJson(profile.batchSizes, l.time.forwardMs);
    Json fb = fitJson(profile.batchSizes, l.time.forwardBackwardMs);
    std::printf("@%s: forward %.4f ms + %.4f ms/sample, forward+backward "
                "%.4f ms + %.4f ms/sample, %lld parameter bytes\n",
                l.name.c_str(), f["intercept_ms"].get<double>(),
                f["slope_ms"].get<double>(), fb["intercept_ms"].get<double>(),
                fb["slope_ms"].get<double>(),
                static_cast<long long>(l.parameterBytes));
  }
  std::printf("wrote %s\n", o.output.c_str());
  return 0;
}
