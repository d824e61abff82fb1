//===- Trainer.cpp - train a @train_step plan -----------------------------===//

#include "galvatron/runtime/Trainer.h"

#include "galvatron/runtime/Backend.h"
#include "galvatron/runtime/Checkpoint.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/Trace.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

namespace galvatron::rt {

namespace {

/// A piece of training state, as the plan names it: its role (parameter or
/// moment) and the parameter's state-dict name.
struct StateKey {
  plan::Role role;
  std::string param;
  bool operator<(const StateKey &other) const {
    return std::tie(role, param) < std::tie(other.role, other.param);
  }
  /// "w (AdamM)", for messages.
  std::string label() const {
    return param + " (" + plan::EnumNameRole(role) + ")";
  }
};

StateKey stateKeyOf(const plan::Tensor &t) {
  return {t.role(), t.param_name() ? t.param_name()->str() : ""};
}

/// Whether input position `input` of `program` is fed back from an output.
bool fedBack(const plan::RankProgram &program, size_t input) {
  if (program.feedback())
    for (const plan::Feedback *f : *program.feedback())
      if (static_cast<size_t>(f->input()) == input)
        return true;
  return false;
}

/// The checkpoint's tensors of one role.
std::map<std::string, Tensor> &section(CheckpointState &state,
                                       plan::Role role) {
  return role == plan::Role::Parameter ? state.params
         : role == plan::Role::AdamM   ? state.adamM
                                       : state.adamV;
}

double peakRssMb() {
  FILE *f = std::fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  double mb = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::strncmp(line, "VmHWM:", 6) == 0)
      mb = std::strtod(line + 6, nullptr) / 1024.0;
  std::fclose(f);
  return mb;
}

/// `{"all_reduce:0,1": 1234, ...}`.
std::string commBytesJson(const std::map<std::string, uint64_t> &counts) {
  std::string json = "{";
  for (const auto &[key, bytes] : counts)
    json += (json.size() > 1 ? ", \"" : "\"") + key +
            "\": " + std::to_string(bytes);
  return json + "}";
}

/// GALVATRON_TEST_CHECKPOINT, for tests of the save protocol: "trace"
/// prints each point a save passes; "ACTION:STEP:POINT" acts at POINT of
/// step STEP's save: "kill" ends the process there with SIGKILL (a job
/// killed mid-save), "enospc" and "eio" make that step fail with ENOSPC or
/// EIO.
CheckpointFaultHook checkpointTestHook() {
  const char *spec = std::getenv("GALVATRON_TEST_CHECKPOINT");
  if (!spec || !*spec)
    return nullptr;
  std::string text = spec;
  if (text == "trace")
    return [](int step, const std::string &point) {
      std::fprintf(stderr, "galvatron-run: checkpoint step %d: %s\n", step,
                   point.c_str());
      return 0;
    };
  size_t colon = text.find(':');
  size_t second =
      colon == std::string::npos ? colon : text.find(':', colon + 1);
  std::string action = text.substr(0, colon);
  int errnum = action == "enospc" ? ENOSPC : action == "eio" ? EIO : 0;
  if (second == std::string::npos || (action != "kill" && errnum == 0))
    fatalEverywhere("GALVATRON_TEST_CHECKPOINT: expected 'trace' or "
                    "kill|enospc|eio:STEP:POINT, not '" +
                    text + "'");
  std::string stepText = text.substr(colon + 1, second - colon - 1);
  char *end = nullptr;
  long step = std::strtol(stepText.c_str(), &end, 10);
  if (stepText.empty() || *end != '\0')
    fatalEverywhere("GALVATRON_TEST_CHECKPOINT: step '" + stepText +
                    "' is not a whole number");
  std::string point = text.substr(second + 1);
  return [=](int saving, const std::string &at) {
    if (saving != step || at != point)
      return 0;
    if (errnum == 0) {
      std::fflush(stdout);
      std::fprintf(stderr,
                   "galvatron-run: GALVATRON_TEST_CHECKPOINT: killed at %s "
                   "of step %d's checkpoint\n",
                   at.c_str(), saving);
      std::raise(SIGKILL);
    }
    return errnum;
  };
}

/// One training run on this rank.
class Trainer {
public:
  Trainer(const Job &job, const std::map<std::string, Tensor> &weights,
          const std::map<std::string, Tensor> &fixedInputs,
          const TrainOptions &options)
      : job(job), weights(weights), fixedInputs(fixedInputs), options(options),
        trace(job) {}

  int run();

private:
  void collectInputs();
  void surveyJob();
  void resume();
  void prepareTokens();
  void openLog();
  [[noreturn]] void logFailed() const;
  std::map<std::string, Tensor> stepInputs(int step) const;
  void runStep(int step);
  void report(int step, double loss, double lr, double ms,
              const RunStats &stats);
  void save(int step);
  void fetchState();
  int checkLosses() const;

  const Job &job;
  const std::map<std::string, Tensor> &weights;
  const std::map<std::string, Tensor> &fixedInputs;
  const TrainOptions &options;
  /// This rank's state inputs (by the plan's roles) and their values.
  struct StateInput {
    StateKey key;
    const plan::Tensor *tensor;
    std::string name;
    Tensor value;
  };
  std::vector<StateInput> state;
  /// The last step's outputs, kept so that each step reuses their buffers.
  std::map<std::string, Tensor> outputs;
  /// The output that becomes each state input next step (plan feedback).
  std::vector<std::pair<std::string, size_t>> feedback;
  /// This rank's learning-rate and step inputs.
  std::vector<std::string> lrInputs, stepCountInputs;
  /// This rank's data inputs at their whole shapes, in plan order.
  std::vector<std::pair<std::string, Shape>> data;
  /// What the whole job reads: state and data inputs of every rank, the
  /// batch's whole shape, and the plan's vocabulary.
  std::set<StateKey> stateKeys;
  /// The state some rank updates (others may hold a copy they only hand
  /// on, which a checkpoint must not take).
  std::set<StateKey> updatedKeys;
  std::set<std::string> dataNames;
  Shape batchShape;
  int64_t vocab = 0;
  /// The first step this run takes (after a resumed checkpoint's).
  int first = 1;
  Tensor tokens;
  FILE *log = nullptr;
  TraceWriter trace;
  std::vector<double> losses;
};

int Trainer::run() {
  // Made up front, so that an unusable directory fails before any training.
  if (!options.checkpointDir.empty() && job.lead()) {
    std::error_code ec;
    std::filesystem::create_directories(options.checkpointDir, ec);
    if (ec)
      fatal("--checkpoint-dir: cannot create '" + options.checkpointDir +
            "': " + ec.message());
  }
  collectInputs();
  surveyJob();
  if (!options.resumeDir.empty())
    resume();
  prepareTokens();
  openLog();
  for (int step = first; step <= options.steps; ++step)
    runStep(step);
  if (log && std::fclose(log) != 0)
    logFailed();
  trace.write();
  return options.expectLosses.empty() ? 0 : checkLosses();
}

/// This rank's inputs by role: state (cut from the whole weights, moments
/// from zero), the schedule's learning rate and step, and data.
void Trainer::collectInputs() {
  const plan::RankProgram &program = *job.program;
  std::map<int32_t, size_t> stateAt; // input position -> state entry
  for (size_t pos = 0; pos < program.inputs()->size(); ++pos) {
    const plan::Tensor &t = *program.tensors()->Get(program.inputs()->Get(pos));
    std::string name = t.name()->str();
    switch (t.role()) {
    case plan::Role::Data:
      data.push_back({name, fullShapeOf(t)});
      break;
    case plan::Role::LearningRate:
      lrInputs.push_back(name);
      break;
    case plan::Role::Step:
      stepCountInputs.push_back(name);
      break;
    default: {
      StateKey key = stateKeyOf(t);
      Tensor value;
      if (key.role == plan::Role::Parameter) {
        auto it = weights.find(key.param);
        if (it == weights.end())
          fatal("no initial weight for '" + key.param + "'");
        value = pieceOf(t, it->second, "weight '" + key.param + "'");
      } else {
        value = Tensor::zeros(toDType(t.dtype()), shapeOf(t));
      }
      stateAt[static_cast<int32_t>(pos)] = state.size();
      state.push_back({key, &t, name, std::move(value)});
    }
    }
  }
  // The verifier saw each state input fed back exactly once.
  if (program.feedback())
    for (const plan::Feedback *f : *program.feedback())
      feedback.push_back(
          {tensorName(program, program.outputs()->Get(f->output())),
           stateAt.at(f->input())});
}

void Trainer::surveyJob() {
  for (const plan::RankProgram *other : *job.plan->ranks())
    for (size_t pos = 0; pos < other->inputs()->size(); ++pos) {
      const plan::Tensor &t = *other->tensors()->Get(other->inputs()->Get(pos));
      if (isState(t.role())) {
        stateKeys.insert(stateKeyOf(t));
        if (fedBack(*other, pos))
          updatedKeys.insert(stateKeyOf(t));
      } else if (t.role() == plan::Role::Data) {
        dataNames.insert(t.name()->str());
      }
    }
  // The batch: the token ids' whole shape.
  if (const plan::Tensor *tokens = tokenInput(*job.plan))
    batchShape = fullShapeOf(*tokens);
  vocab = job.plan->vocab_size();
}

/// Whole tensors on every rank, each cutting its shards, from a checkpoint
/// whose manifest checks out.
void Trainer::resume() {
  CheckpointState saved;
  std::string error, stepDir;
  if (!loadCheckpoint(options.resumeDir, saved, stepDir, error))
    fatal("--resume: " + error);
  if (saved.step > options.steps)
    fatal("--resume: " + stepDir + " is at step " + std::to_string(saved.step) +
          ", past --steps " + std::to_string(options.steps));
  for (StateInput &s : state) {
    std::map<std::string, Tensor> &tensors = section(saved, s.key.role);
    auto it = tensors.find(s.key.param);
    if (it == tensors.end())
      fatal("--resume: " + stepDir + " has no " +
            (s.key.role == plan::Role::Parameter ? "'" + s.key.param + "'"
                                                 : s.key.label()));
    s.value = pieceOf(*s.tensor, it->second, "--resume: " + s.key.label());
  }
  first = saved.step + 1;
  if (job.lead())
    std::printf(
        "resuming from %s (step %d, manifest verified)%s\n", stepDir.c_str(),
        saved.step,
        saved.step == options.steps ? ": --steps leaves nothing to train" : "");
}

/// Every rank builds the same whole batch from the same tokens and keeps its
/// shard (the executor cuts inputs given whole).
void Trainer::prepareTokens() {
  std::string error;
  bool streaming = false; // some data input comes from `tokens`
  for (const std::string &name : dataNames)
    streaming |= !fixedInputs.count(name);
  if (!options.dataPath.empty()) {
    if (!readTokenIds(options.dataPath, tokens, error))
      fatal(error);
    if (tokens.dtype == DType::I32)
      tokens = cast(tokens, DType::I64);
    // Every window the steps take comes from here: checked once, whole.
    checkTokenIds(*job.plan, tokens, options.dataPath);
    if (batchShape.size() != 2 || tokens.size() < batchShape[1] + 1)
      fatal("--data needs more tokens than one sequence of " +
            (batchShape.size() == 2 ? std::to_string(batchShape[1]) : "?"));
    return;
  }
  if (!streaming)
    return;
  // Synthetic data: uniform token ids below the plan's vocabulary size; a
  // fixed seed keeps runs (and ranks) alike.
  if (vocab < 1 || batchShape.size() != 2)
    fatal("training needs --data tokens.npy or --input " +
          (dataNames.empty() ? std::string("DATA") : *dataNames.begin()) +
          "=...");
  std::mt19937_64 generator(0);
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  tokens = Tensor(DType::I64, {batchShape[1] * 1024 + 1});
  for (int64_t i = 0; i < tokens.size(); ++i)
    tokens.i64()[i] = pick(generator);
  if (job.lead())
    std::printf("no --data: training on synthetic tokens below %lld\n",
                static_cast<long long>(vocab));
}

void Trainer::openLog() {
  if (options.logPath.empty())
    return;
  std::string path = rankPath(options.logPath, job.rank);
  log = std::fopen(path.c_str(), first > 1 ? "a" : "w");
  if (!log)
    fatal("--log: cannot open '" + path + "': " + std::strerror(errno));
}

void Trainer::logFailed() const {
  // A full disk must not leave a log cut mid-record behind a zero exit.
  fatal("--log: cannot write '" + rankPath(options.logPath, job.rank) +
        "': " + std::strerror(errno));
}

std::map<std::string, Tensor> Trainer::stepInputs(int step) const {
  std::map<std::string, Tensor> inputs;
  for (size_t k = 0; k < data.size(); ++k) {
    const auto &[name, shape] = data[k];
    // Token ids stream into the first data input; the others come from
    // --input, or take the values a plain causal batch has.
    if (fixedInputs.count(name) && (options.dataPath.empty() || k > 0)) {
      inputs[name] = fixedInputs.at(name);
      continue;
    }
    if (k > 0) {
      inputs[name] = companionInput(name, shape);
      continue;
    }
    Tensor batch(DType::I64, shape);
    int64_t b = shape[0], s = shape[1], n = tokens.size();
    for (int64_t i = 0; i < b; ++i) {
      int64_t start = ((int64_t(step - 1) * b + i) * s) % (n - s);
      for (int64_t j = 0; j < s; ++j)
        batch.i64()[i * s + j] = tokens.i64()[start + j];
    }
    inputs[name] = std::move(batch);
  }
  double lr = learningRate(options, step);
  Tensor lrT(DType::F32, {}), stepT(DType::F32, {});
  lrT.f32()[0] = static_cast<float>(lr);
  stepT.f32()[0] = static_cast<float>(step);
  for (const std::string &name : lrInputs)
    inputs[name] = lrT;
  for (const std::string &name : stepCountInputs)
    inputs[name] = stepT;
  return inputs;
}

void Trainer::runStep(int step) {
  if (testHook("GALVATRON_TEST_EXIT", job.rank, step)) {
    std::fprintf(stderr,
                 "galvatron-run: rank %d: GALVATRON_TEST_EXIT: exiting at "
                 "the start of step %d\n",
                 job.rank, step);
    std::fflush(stdout);
    std::exit(3);
  }
  if (testHook("GALVATRON_TEST_STALL", job.rank, step))
    std::this_thread::sleep_for(std::chrono::hours(1));
  std::map<std::string, Tensor> inputs = stepInputs(step);
  // The state is lent to the run, not copied (the run only reads it).
  for (StateInput &s : state)
    inputs[s.name] = std::move(s.value);
  RunStats stats;
  std::string error;
  auto start = std::chrono::steady_clock::now();
  int64_t startUs = nowUs();
  if (!job.backend->run(*job.plan, job.rank, inputs, weights, outputs, stats,
                        error, {job.comm, trace.wants(), &inputs}))
    fatal(error);
  for (StateInput &s : state)
    s.value = std::move(inputs.at(s.name));
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  trace.addStep(step, startUs, nowUs(), stats);
  auto lossIt = outputs.find("loss");
  if (lossIt == outputs.end())
    fatal("rank " + std::to_string(job.rank) +
          "'s program has no 'loss' output");
  double loss = lossIt->second.at(0);
  losses.push_back(loss);
  // The replaced state's buffers stay in `outputs` for the next step's
  // results to be copied into; state updated in place is already new.
  for (const auto &[output, index] : feedback)
    if (std::find(stats.updatedInPlace.begin(), stats.updatedInPlace.end(),
                  output) == stats.updatedInPlace.end())
      std::swap(state[index].value, outputs.at(output));
  report(step, loss, learningRate(options, step), ms, stats);
  bool due = !options.checkpointDir.empty() &&
             ((options.saveEvery > 0 && step % options.saveEvery == 0) ||
              step == options.steps);
  if (due)
    save(step);
}

/// The progress line (rank 0) and this rank's log line.
void Trainer::report(int step, double loss, double lr, double ms,
                     const RunStats &stats) {
  double tokensPerSecond = numElements(batchShape) / (ms / 1000.0);
  if (job.lead()) {
    std::printf("step %d/%d | loss %.6f | lr %.3g | %.0f tokens/s | %.2f "
                "ms/step | peak RSS %.1f MB | arena %.1f MB\n",
                step, options.steps, loss, lr, tokensPerSecond, ms, peakRssMb(),
                stats.arenaBytes / 1e6);
    std::fflush(stdout);
  }
  if (!log)
    return;
  std::fprintf(log,
               "{\"step\": %d, \"loss\": %.9g, \"lr\": %.9g, "
               "\"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, "
               "\"peak_rss_mb\": %.1f, \"arena_bytes\": %llu, "
               "\"bound_bytes\": %llu, \"tensor_bytes\": %llu, "
               "\"scratch_bytes\": %llu, \"comm_bytes\": %s}\n",
               step, loss, lr, tokensPerSecond, ms, peakRssMb(),
               static_cast<unsigned long long>(stats.arenaBytes),
               static_cast<unsigned long long>(stats.boundBytes),
               static_cast<unsigned long long>(stats.boundBytes) +
                   stats.peakLiveBytes,
               static_cast<unsigned long long>(stats.scratchBytes),
               commBytesJson(stats.commBytes).c_str());
  if (std::fflush(log) != 0 || std::ferror(log))
    logFailed();
}

/// The state as the backend last left it (a device backend keeps it where
/// it computes).
void Trainer::fetchState() {
  std::map<std::string, Tensor> lent;
  for (StateInput &s : state)
    lent[s.name] = std::move(s.value);
  std::string error;
  bool ok = job.backend->fetchState(lent, error);
  for (StateInput &s : state)
    s.value = std::move(lent.at(s.name));
  if (!ok)
    fatal("rank " + std::to_string(job.rank) + ": " + error);
}

/// One checkpoint, as one rank writes it: rank 0 gathers the shards.
void Trainer::save(int step) {
  // Gathered by label, each rank finding the input of that role and
  // parameter in its program, if it updates it (or nobody does).
  std::map<std::string, StateKey> keys;
  std::vector<std::string> labels;
  for (const StateKey &key : stateKeys) {
    keys[key.label()] = key;
    labels.push_back(key.label());
  }
  fetchState();
  std::map<std::string, Tensor> mine;
  for (const StateInput &s : state)
    mine[s.key.label()] = s.value;
  std::map<std::string, Tensor> gathered = consolidate(
      job, labels,
      [&](const plan::RankProgram &r, const std::string &label) {
        const StateKey &key = keys.at(label);
        bool updated = updatedKeys.count(key);
        for (size_t pos = 0; pos < r.inputs()->size(); ++pos) {
          const plan::Tensor *t = r.tensors()->Get(r.inputs()->Get(pos));
          if (t->role() == key.role && t->param_name() &&
              t->param_name()->str() == key.param &&
              (!updated || fedBack(r, pos)))
            return t;
        }
        return static_cast<const plan::Tensor *>(nullptr);
      },
      mine, "checkpoint");
  CheckpointState whole;
  whole.step = step;
  for (auto &[label, t] : gathered) {
    const StateKey &key = keys.at(label);
    section(whole, key.role)[key.param] = std::move(t);
  }
  // Frozen parameters (rotary tables, masks) are weights no step updates:
  // the model file carries them as they were, so it holds the whole model.
  if (job.lead())
    for (const auto &[name, t] : weights)
      whole.params.try_emplace(name, t);
  std::string error, warning;
  if (job.lead()) {
    CheckpointSaveOptions saveOptions;
    saveOptions.keep = options.keep;
    saveOptions.fault = checkpointTestHook();
    if (!saveCheckpoint(options.checkpointDir, whole, saveOptions, error,
                        warning))
      fatal(error);
    if (!warning.empty())
      std::fprintf(stderr, "galvatron-run: warning: %s\n", warning.c_str());
  }
  // No rank runs ahead (or exits) before the checkpoint is on disk.
  if (!job.comm->worldBarrier(
          "the barrier after checkpoint step " + std::to_string(step), error))
    fatal(error);
}

int Trainer::checkLosses() const {
  Tensor expected;
  std::string error;
  if (!readNpy(options.expectLosses, expected, error))
    fatal(error);
  double worst = 0;
  size_t count = std::min<size_t>(losses.size(), expected.size() - (first - 1));
  for (size_t i = 0; i < count; ++i) {
    double want = expected.at(first - 1 + i);
    worst = std::max(worst, std::fabs(losses[i] - want) / std::fabs(want));
  }
  bool pass = worst <= options.rtol && count == losses.size();
  if (job.lead())
    std::printf("%zu losses against %s: worst relative error %.3e (rtol "
                "%.1e): %s\n",
                count, options.expectLosses.c_str(), worst, options.rtol,
                pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

} // namespace

double learningRate(const TrainOptions &options, int step) {
  if (options.warmup > 0 && step <= options.warmup)
    return options.lr * step / options.warmup;
  if (options.cosine && options.steps > options.warmup)
    return options.minLr +
           0.5 * (options.lr - options.minLr) *
               (1 + std::cos(M_PI * (step - options.warmup) /
                             double(options.steps - options.warmup)));
  return options.lr;
}

Tensor companionInput(const std::string &name, const Shape &shape) {
  Tensor t = Tensor::zeros(DType::I64, shape);
  int64_t s = shape.empty() ? 1 : shape.back();
  if (name.find("attention_mask") != std::string::npos)
    std::fill(t.i64(), t.i64() + t.size(), int64_t(1));
  else if (name.find("position_ids") != std::string::npos)
    for (int64_t i = 0; i < t.size(); ++i)
      t.i64()[i] = i % s;
  else if (name.find("token_type_ids") == std::string::npos)
    fatal("training streams tokens into the first data input only; give "
          "--input " +
          name + "=file.npy for '" + name + "'");
  return t;
}

int train(const Job &job, const std::map<std::string, Tensor> &weights,
          const std::map<std::string, Tensor> &fixedInputs,
          const TrainOptions &options) {
  Trainer trainer(job, weights, fixedInputs, options);
  return trainer.run();
}

} // namespace galvatron::rt
