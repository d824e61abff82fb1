//===- galvatron-run.cpp - execute plan.bin -------------------------------===//
//
//   galvatron-run plan.bin --input [NAME=]x.npy ... [--output [NAME=]y.npy]
//                [--expect [NAME=]ref.npy [--rtol X]]
//                [--weights W.safetensors] [--rank R] [--stats]
//
// Inputs bind by name, or in order when no name is given; outputs likewise
// ("output0", ...). Weights come from the file the plan names, next to the
// plan, unless --weights says otherwise.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Weights.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace rt = galvatron::rt;
namespace plan = galvatron::plan;

namespace {

[[noreturn]] void fatal(const std::string &message) {
  std::cerr << "galvatron-run: error: " << message << "\n";
  std::exit(1);
}

void usage() {
  std::cerr << "usage: galvatron-run plan.bin --input [NAME=]x.npy ... "
               "[--output [NAME=]y.npy] [--expect [NAME=]ref.npy [--rtol X]] "
               "[--weights W.safetensors] [--rank R] [--stats]\n"
               "       galvatron-run train.bin --steps N [--data tokens.npy | "
               "--input ids=x.npy] [--lr X] [--warmup W] [--cosine] "
               "[--min-lr X] [--log metrics.jsonl] [--checkpoint-dir D "
               "[--save-every K]] [--resume D] [--expect-losses ref.npy]\n";
  std::exit(2);
}

/// "NAME=file" names its binding; a bare "file" takes the `index`-th of
/// `names` (the plan's inputs or outputs in order).
std::pair<std::string, std::string>
splitSpec(const std::string &spec, size_t index,
          const std::vector<std::string> &names) {
  size_t eq = spec.find('=');
  if (eq != std::string::npos)
    return {spec.substr(0, eq), spec.substr(eq + 1)};
  return {index < names.size() ? names[index] : "", spec};
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

/// Runs `steps` training steps of a @train_step plan: the plan's state
/// inputs (param:, adam_m:, adam_v:) are fed back from its outputs after
/// every step; `lr` and `step` come from the schedule.
struct TrainOptions {
  int steps = 0;
  double lr = 1e-3, minLr = 0;
  int warmup = 0;
  bool cosine = false;
  std::string dataPath, logPath, checkpointDir, resumeDir, expectLosses;
  int saveEvery = 0;
  double rtol = 1e-4;
};

bool startsWith(const std::string &s, const std::string &prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

double peakRssMb() {
  FILE *f = std::fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  double mb = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::strncmp(line, "VmHWM:", 6) == 0)
      mb = std::atof(line + 6) / 1024.0;
  std::fclose(f);
  return mb;
}

void saveCheckpoint(const std::string &dir, int step,
                    const std::map<std::string, rt::Tensor> &state) {
  std::map<std::string, galvatron::SafetensorsTensor> model, optimizer;
  for (const auto &[name, t] : state) {
    galvatron::SafetensorsTensor out;
    out.dtype = "F32";
    out.shape.assign(t.shape.begin(), t.shape.end());
    out.data.assign(t.bytes.begin(), t.bytes.end());
    if (startsWith(name, "param:"))
      model[name.substr(6)] = std::move(out);
    else
      optimizer[name] = std::move(out);
  }
  std::string error;
  if (!galvatron::writeSafetensors(dir + "/model.safetensors", model, error,
                                   {{"format", "pt"}}) ||
      !galvatron::writeSafetensors(dir + "/optimizer.safetensors", optimizer,
                                   error))
    fatal(error);
  // The step file goes last and atomically: a checkpoint without it (or with
  // an older one) is never mistaken for a finished one.
  std::string text = "{\"step\": " + std::to_string(step) + "}\n";
  if (!galvatron::writeFileAtomically(dir + "/trainer.json",
                                      {{text.data(), text.size()}}, error))
    fatal(error);
}

int train(const plan::Plan &p, const plan::RankProgram &program,
          const std::map<std::string, rt::Tensor> &weights,
          std::map<std::string, rt::Tensor> fixedInputs,
          const TrainOptions &options) {
  std::string error;
  // Made up front, so that an unusable directory fails before any training.
  if (!options.checkpointDir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.checkpointDir, ec);
    if (ec)
      fatal("--checkpoint-dir: cannot create '" + options.checkpointDir +
            "': " + ec.message());
  }
  // Classify the plan's inputs.
  std::map<std::string, rt::Tensor> state;
  std::string dataName;
  rt::Shape dataShape;
  for (int32_t index : *program.inputs()) {
    const plan::Tensor &t = *program.tensors()->Get(index);
    std::string name = t.name()->str();
    rt::Shape shape(t.shape()->begin(), t.shape()->end());
    if (startsWith(name, "param:")) {
      auto it = weights.find(name.substr(6));
      if (it == weights.end())
        fatal("no initial weight for '" + name.substr(6) + "'");
      state[name] = it->second;
    } else if (startsWith(name, "adam_m:") || startsWith(name, "adam_v:")) {
      state[name] = rt::Tensor::zeros(rt::DType::F32, shape);
    } else if (name != "lr" && name != "step") {
      dataName = name;
      dataShape = shape;
    }
  }
  int first = 1;
  if (!options.resumeDir.empty()) {
    std::map<std::string, rt::Tensor> model;
    if (!rt::loadTensors(options.resumeDir + "/model.safetensors", model,
                         error) ||
        !rt::loadTensors(options.resumeDir + "/optimizer.safetensors", state,
                         error))
      fatal("--resume: " + error);
    for (auto &[name, t] : model)
      state["param:" + name] = std::move(t);
    FILE *f = std::fopen((options.resumeDir + "/trainer.json").c_str(), "r");
    int saved = 0;
    if (!f || std::fscanf(f, " {\"step\": %d}", &saved) != 1)
      fatal("--resume: no finished checkpoint in " + options.resumeDir);
    std::fclose(f);
    first = saved + 1;
  }
  rt::Tensor tokens;
  bool streaming = true; // batches come from `tokens`, not a fixed input
  if (!options.dataPath.empty()) {
    if (!rt::readNpy(options.dataPath, tokens, error))
      fatal(error);
    if (tokens.dtype == rt::DType::I32)
      tokens = rt::cast(tokens, rt::DType::I64);
    if (dataShape.size() != 2 || tokens.size() < dataShape[1] + 1)
      fatal("--data needs more tokens than one sequence of " +
            (dataShape.size() == 2 ? std::to_string(dataShape[1]) : "?"));
  } else if (fixedInputs.count(dataName)) {
    streaming = false;
  } else {
    // Synthetic data: uniform token ids below the vocabulary size, which the
    // loss's logits give; a fixed seed keeps runs repeatable.
    int64_t vocab = 0;
    for (const plan::Instruction *inst : *program.instructions())
      if (inst->opcode() == plan::Opcode::CrossEntropy)
        vocab = program.tensors()
                    ->Get(inst->inputs()->Get(0))
                    ->shape()
                    ->Get(program.tensors()
                              ->Get(inst->inputs()->Get(0))
                              ->shape()
                              ->size() -
                          1);
    if (vocab < 1 || dataShape.size() != 2)
      fatal("training needs --data tokens.npy or --input " + dataName + "=...");
    std::mt19937_64 generator(0);
    std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
    tokens = rt::Tensor(rt::DType::I64, {dataShape[1] * 1024 + 1});
    for (int64_t i = 0; i < tokens.size(); ++i)
      tokens.i64()[i] = pick(generator);
    std::printf("no --data: training on synthetic tokens below %lld\n",
                static_cast<long long>(vocab));
  }
  FILE *log = options.logPath.empty()
                  ? nullptr
                  : std::fopen(options.logPath.c_str(), first > 1 ? "a" : "w");
  std::vector<double> losses;
  for (int step = first; step <= options.steps; ++step) {
    std::map<std::string, rt::Tensor> inputs = state;
    if (streaming) {
      rt::Tensor batch(rt::DType::I64, dataShape);
      int64_t b = dataShape[0], s = dataShape[1], n = tokens.size();
      for (int64_t i = 0; i < b; ++i) {
        int64_t start = ((int64_t(step - 1) * b + i) * s) % (n - s);
        for (int64_t j = 0; j < s; ++j)
          batch.i64()[i * s + j] = tokens.i64()[start + j];
      }
      inputs[dataName] = std::move(batch);
    } else {
      inputs[dataName] = fixedInputs.at(dataName);
    }
    double lr = options.lr;
    if (options.warmup > 0 && step <= options.warmup)
      lr = options.lr * step / options.warmup;
    else if (options.cosine && options.steps > options.warmup)
      lr = options.minLr +
           0.5 * (options.lr - options.minLr) *
               (1 + std::cos(M_PI * (step - options.warmup) /
                             double(options.steps - options.warmup)));
    rt::Tensor lrT(rt::DType::F32, {}), stepT(rt::DType::F32, {});
    lrT.f32()[0] = static_cast<float>(lr);
    stepT.f32()[0] = static_cast<float>(step);
    inputs["lr"] = lrT;
    inputs["step"] = stepT;
    std::map<std::string, rt::Tensor> outputs;
    rt::RunStats stats;
    auto start = std::chrono::steady_clock::now();
    if (!rt::runRank(p, 0, inputs, weights, outputs, stats, error))
      fatal(error);
    double ms = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
    double loss = outputs.at("loss").at(0);
    losses.push_back(loss);
    for (auto &[name, t] : outputs)
      if (name != "loss")
        state[name] = std::move(t);
    double tokensPerSecond = rt::numElements(dataShape) / (ms / 1000.0);
    std::printf("step %d/%d | loss %.6f | lr %.3g | %.0f tokens/s | %.2f "
                "ms/step | peak RSS %.1f MB | arena %.1f MB\n",
                step, options.steps, loss, lr, tokensPerSecond, ms, peakRssMb(),
                stats.arenaBytes / 1e6);
    if (log)
      std::fprintf(log,
                   "{\"step\": %d, \"loss\": %.9g, \"lr\": %.9g, "
                   "\"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, "
                   "\"peak_rss_mb\": %.1f, \"arena_bytes\": %llu}\n",
                   step, loss, lr, tokensPerSecond, ms, peakRssMb(),
                   static_cast<unsigned long long>(stats.arenaBytes));
    bool save = !options.checkpointDir.empty() &&
                ((options.saveEvery > 0 && step % options.saveEvery == 0) ||
                 step == options.steps);
    if (save)
      saveCheckpoint(options.checkpointDir, step, state);
  }
  if (log)
    std::fclose(log);
  if (!options.expectLosses.empty()) {
    rt::Tensor expected;
    if (!rt::readNpy(options.expectLosses, expected, error))
      fatal(error);
    double worst = 0;
    size_t count =
        std::min<size_t>(losses.size(), expected.size() - (first - 1));
    for (size_t i = 0; i < count; ++i) {
      double want = expected.at(first - 1 + i);
      worst = std::max(worst, std::fabs(losses[i] - want) / std::fabs(want));
    }
    bool pass = worst <= options.rtol && count == losses.size();
    std::printf("%zu losses against %s: worst relative error %.3e (rtol "
                "%.1e): %s\n",
                count, options.expectLosses.c_str(), worst, options.rtol,
                pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string planPath, weightsPath;
  std::vector<std::string> inputSpecs, outputSpecs, expectSpecs;
  double rtol = 1e-4;
  int rank = 0;
  bool stats = false;
  TrainOptions trainOptions;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage();
      return argv[++i];
    };
    if (arg == "--input")
      inputSpecs.push_back(value());
    else if (arg == "--output")
      outputSpecs.push_back(value());
    else if (arg == "--expect")
      expectSpecs.push_back(value());
    else if (arg == "--rtol")
      rtol = std::atof(value().c_str());
    else if (arg == "--weights")
      weightsPath = value();
    else if (arg == "--rank")
      rank = std::atoi(value().c_str());
    else if (arg == "--stats")
      stats = true;
    else if (arg == "--steps")
      trainOptions.steps = std::atoi(value().c_str());
    else if (arg == "--lr")
      trainOptions.lr = std::atof(value().c_str());
    else if (arg == "--min-lr")
      trainOptions.minLr = std::atof(value().c_str());
    else if (arg == "--warmup")
      trainOptions.warmup = std::atoi(value().c_str());
    else if (arg == "--cosine")
      trainOptions.cosine = true;
    else if (arg == "--data")
      trainOptions.dataPath = value();
    else if (arg == "--log")
      trainOptions.logPath = value();
    else if (arg == "--checkpoint-dir")
      trainOptions.checkpointDir = value();
    else if (arg == "--save-every")
      trainOptions.saveEvery = std::atoi(value().c_str());
    else if (arg == "--resume")
      trainOptions.resumeDir = value();
    else if (arg == "--expect-losses")
      trainOptions.expectLosses = value();
    else if (arg == "-h" || arg == "--help")
      usage();
    else if (!arg.empty() && arg[0] == '-')
      fatal("unknown option '" + arg + "'");
    else if (planPath.empty())
      planPath = arg;
    else
      usage();
  }
  if (planPath.empty())
    usage();

  std::vector<uint8_t> storage;
  std::string error;
  const plan::Plan *p = rt::loadPlan(planPath, storage, error);
  if (!p)
    fatal(error);
  if (rank < 0 || rank >= p->world_size())
    fatal("rank " + std::to_string(rank) +
          " is outside the plan's world size " +
          std::to_string(p->world_size()));
  const plan::RankProgram &program = *p->ranks()->Get(rank);

  // Weights.
  std::map<std::string, rt::Tensor> weights;
  if (weightsPath.empty() && p->weights_file() && p->weights_file()->size())
    weightsPath = directoryOf(planPath) + p->weights_file()->str();
  if (!weightsPath.empty()) {
    if (!rt::loadTensors(weightsPath, weights, error))
      fatal(error);
  }

  // Inputs: NAME=file, or the next unnamed plan input in order.
  std::vector<std::string> inputNames;
  if (program.inputs())
    for (int32_t index : *program.inputs())
      inputNames.push_back(program.tensors()->Get(index)->name()->str());
  std::map<std::string, rt::Tensor> inputs;
  for (size_t i = 0; i < inputSpecs.size(); ++i) {
    auto [name, file] = splitSpec(inputSpecs[i], i, inputNames);
    if (name.empty())
      fatal("the plan takes " + std::to_string(inputNames.size()) +
            " inputs; '" + inputSpecs[i] + "' is one too many");
    rt::Tensor t;
    if (!rt::readNpy(file, t, error))
      fatal(error);
    // Token files are often int32; the plan's ids are int64.
    if (t.dtype == rt::DType::I32)
      t = rt::cast(t, rt::DType::I64);
    inputs[name] = std::move(t);
  }

  trainOptions.rtol = rtol;
  if (trainOptions.steps > 0) {
    if (p->world_size() != 1)
      fatal("training runs one rank for now");
    return train(*p, program, weights, inputs, trainOptions);
  }

  std::map<std::string, rt::Tensor> outputs;
  rt::RunStats runStats;
  if (!rt::runRank(*p, rank, inputs, weights, outputs, runStats, error))
    fatal(error);

  std::vector<std::string> outputNames;
  if (program.outputs())
    for (int32_t index : *program.outputs())
      outputNames.push_back(program.tensors()->Get(index)->name()->str());
  for (size_t i = 0; i < outputSpecs.size(); ++i) {
    auto [name, file] = splitSpec(outputSpecs[i], i, outputNames);
    auto it = outputs.find(name);
    if (it == outputs.end())
      fatal("the plan has no output named '" + name + "'");
    if (!rt::writeNpy(file, it->second, error))
      fatal(error);
  }
  if (stats)
    std::cout << "arena " << runStats.arenaBytes << " bytes (plan), high water "
              << runStats.highWaterBytes << " bytes (measured), peak live "
              << runStats.peakLiveBytes << " bytes\n";
  // --expect [NAME=]ref.npy: max-abs-error / max-abs-reference <= --rtol.
  bool allPass = true;
  for (size_t i = 0; i < expectSpecs.size(); ++i) {
    auto [name, file] = splitSpec(expectSpecs[i], i, outputNames);
    auto it = outputs.find(name);
    if (it == outputs.end())
      fatal("the plan has no output named '" + name + "'");
    rt::Tensor expected;
    if (!rt::readNpy(file, expected, error))
      fatal(error);
    if (expected.shape != it->second.shape)
      fatal("output '" + name + "' is " + rt::shapeString(it->second.shape) +
            ", the reference " + rt::shapeString(expected.shape));
    double maxError = 0, maxReference = 0;
    for (int64_t k = 0; k < expected.size(); ++k) {
      maxError =
          std::max(maxError, std::fabs(it->second.at(k) - expected.at(k)));
      maxReference = std::max(maxReference, std::fabs(expected.at(k)));
    }
    double relative = maxError / std::max(maxReference, 1e-30);
    bool pass = relative <= rtol;
    allPass = allPass && pass;
    std::printf("%s: max abs error %.3e, max abs reference %.3e, relative "
                "%.3e (rtol %.1e): %s\n",
                name.c_str(), maxError, maxReference, relative, rtol,
                pass ? "PASS" : "FAIL");
  }
  return allPass ? 0 : 1;
}
