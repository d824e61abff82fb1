//===- galvatron-run.cpp - execute plan.bin -------------------------------===//
//
//   [mpirun -np N] galvatron-run plan.bin --input [NAME=]x.npy ...
//                [--output [NAME=]y.npy] [--expect [NAME=]ref.npy [--rtol X]]
//                [--weights W.safetensors] [--rank R] [--stats]
//                [--comm-timeout SECONDS] [--trace DIR]
//
// Inputs bind by name, or in order when no name is given; outputs likewise
// ("output0", ...). Weights come from the file the plan names, next to the
// plan, unless --weights says otherwise.
//
// Under mpirun every process runs the program of its MPI rank; the plan
// must have been built for the job's size. Every rank reads the whole
// weights and inputs and cuts its shard; rank 0 gathers sharded outputs and
// checkpoints into whole tensors and writes them.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Support/FileChecks.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Shard.h"
#include "galvatron/runtime/Weights.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace rt = galvatron::rt;
namespace plan = galvatron::plan;

namespace {

/// One write per message, so that the lines of several ranks sharing a
/// terminal do not interleave.
void printError(const std::string &message) {
  std::string line = "galvatron-run: error: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

/// An error on this rank alone: the other ranks may be waiting for it in a
/// collective, so the whole job ends.
[[noreturn]] void fatal(const std::string &message) {
  printError(message);
  if (rt::mpi::active() && rt::mpi::worldSize() > 1)
    rt::mpi::abortJob(1);
  std::exit(1);
}

/// An error every rank meets alike (arguments, the plan, the job's size)
/// before any communication: each says so and leaves cleanly.
[[noreturn]] void fatalEverywhere(const std::string &message, int code = 1) {
  printError(message);
  rt::mpi::finalize();
  std::exit(code);
}

void usage() {
  std::cerr << "usage: [mpirun -np N] galvatron-run plan.bin --input "
               "[NAME=]x.npy ... [--output [NAME=]y.npy] [--expect "
               "[NAME=]ref.npy [--rtol X]] [--weights W.safetensors] [--rank "
               "R] [--stats] [--comm-timeout S] [--trace DIR]\n"
               "       [mpirun -np N] galvatron-run train.bin --steps N "
               "[--data tokens.npy | --input ids=x.npy] [--lr X] [--warmup W] "
               "[--cosine] [--min-lr X] [--log metrics.jsonl] "
               "[--checkpoint-dir D [--save-every K]] [--resume D] "
               "[--expect-losses ref.npy] [--comm-timeout S] [--trace DIR "
               "[--trace-steps N (20)]]\n";
  rt::mpi::finalize();
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

/// What every rank of the job shares.
struct Job {
  const plan::Plan *plan = nullptr;
  /// The plan rank this process runs, and its program.
  int rank = 0;
  const plan::RankProgram *program = nullptr;
  /// Processes in the job: 1 without mpirun.
  int worldSize = 1;
  rt::Communicator *comm = nullptr;
  /// --trace DIR, and the job's clock origin (rank 0's start) in µs.
  std::string traceDir;
  int64_t traceOriginUs = 0;
  /// Steps traced (--trace-steps): a trace holds every instruction, so a
  /// long run keeps only its first steps.
  int traceSteps = 20;
  /// Rank 0 prints and writes what the job computed.
  bool lead() const { return worldSize == 1 || rank == 0; }
};

rt::DType toDType(plan::DType d) {
  switch (d) {
  case plan::DType::F32:
    return rt::DType::F32;
  case plan::DType::F64:
    return rt::DType::F64;
  case plan::DType::I64:
    return rt::DType::I64;
  case plan::DType::I32:
    return rt::DType::I32;
  case plan::DType::Bool:
    return rt::DType::Bool;
  }
  return rt::DType::F32;
}

rt::Shape shapeOf(const plan::Tensor &t) {
  return rt::Shape(t.shape()->begin(), t.shape()->end());
}

/// The shape of the whole tensor: the shard's full shape, else its own.
rt::Shape fullShapeOf(const plan::Tensor &t) {
  return t.shard() ? rt::shardFullShape(*t.shard()) : shapeOf(t);
}

/// How the executor names a tensor among a program's inputs and outputs.
std::string tensorName(const plan::RankProgram &program, int32_t index) {
  const plan::Tensor &t = *program.tensors()->Get(index);
  return t.name() ? t.name()->str() : std::to_string(index);
}

const plan::Tensor *findNamed(const plan::RankProgram &program,
                              const flatbuffers::Vector<int32_t> *indices,
                              const std::string &name) {
  if (indices)
    for (int32_t index : *indices)
      if (tensorName(program, index) == name)
        return program.tensors()->Get(index);
  return nullptr;
}

int64_t nowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// This rank's piece of a whole tensor (the whole itself when `t` has no
/// shard).
rt::Tensor pieceOf(const plan::Tensor &t, const rt::Tensor &whole,
                   const std::string &what) {
  if (!t.shard())
    return whole;
  rt::Tensor piece;
  std::string error;
  if (!rt::cutShard(whole, *t.shard(), piece, error))
    fatal(what + ": " + error);
  return piece;
}

/// Whole tensors of `names`, on rank 0, from the pieces the ranks hold:
/// `find` says which tensor of a rank's program holds a name (and so its
/// shard), `mine` holds this rank's pieces. A piece that several ranks hold
/// (data parallelism) travels once, from the lowest of them. Every rank
/// calls this with the same names; the others return nothing.
std::map<std::string, rt::Tensor> consolidate(
    const Job &job, const std::vector<std::string> &names,
    const std::function<const plan::Tensor *(const plan::RankProgram &,
                                             const std::string &)> &find,
    const std::map<std::string, rt::Tensor> &mine, const std::string &what) {
  if (job.worldSize == 1)
    return mine;
  std::map<std::string, rt::Tensor> whole;
  std::string error;
  for (const std::string &name : names) {
    std::vector<const plan::Tensor *> held(job.worldSize);
    std::vector<int> senders;
    for (int r = 0; r < job.worldSize; ++r) {
      held[r] = find(*rt::findRankProgram(*job.plan, r), name);
      if (!held[r])
        continue;
      bool repeated = false;
      for (int q : senders)
        repeated |= rt::sameShard(held[q]->shard(), held[r]->shard());
      if (!repeated)
        senders.push_back(r);
    }
    if (senders.empty())
      continue;
    auto own = [&]() -> const rt::Tensor & {
      auto it = mine.find(name);
      if (it == mine.end())
        fatal("rank " + std::to_string(job.rank) + " has no " + what +
              " tensor '" + name + "' to send");
      return it->second;
    };
    if (job.rank != 0) {
      if (std::find(senders.begin(), senders.end(), job.rank) !=
          senders.end()) {
        const rt::Tensor &t = own();
        if (!job.comm->worldSend(
                0, t.bytes.data(), t.bytes.size(),
                "sending " + what + " tensor '" + name + "' to rank 0", error))
          fatal(error);
      }
      continue;
    }
    const plan::Tensor &first = *held[senders[0]];
    rt::DType dtype = toDType(first.dtype());
    rt::Tensor out = rt::Tensor::zeros(dtype, fullShapeOf(first));
    // Which elements some rank supplied: a plan whose shards leave a hole
    // must not write a checkpoint with zeros in it.
    rt::Tensor covered = rt::Tensor::zeros(rt::DType::Bool, out.shape);
    for (int r : senders) {
      rt::Tensor piece;
      if (r == 0) {
        piece = own();
      } else {
        piece = rt::Tensor(dtype, shapeOf(*held[r]));
        if (!job.comm->worldRecv(r, piece.bytes.data(), piece.bytes.size(),
                                 "receiving " + what + " tensor '" + name +
                                     "' from rank " + std::to_string(r),
                                 error))
          fatal(error);
      }
      rt::Tensor ones(rt::DType::Bool, piece.shape);
      std::fill(ones.bytes.begin(), ones.bytes.end(), 1);
      if (!held[r]->shard()) {
        if (piece.shape != out.shape)
          fatal(what + " '" + name + "' of rank " + std::to_string(r) + " is " +
                rt::shapeString(piece.shape) + ", not " +
                rt::shapeString(out.shape));
        out = std::move(piece);
        covered = std::move(ones);
      } else if (!rt::placeShard(piece, *held[r]->shard(), out, error) ||
                 !rt::placeShard(ones, *held[r]->shard(), covered, error)) {
        fatal(what + " '" + name + "' of rank " + std::to_string(r) + ": " +
              error);
      }
    }
    if (std::find(covered.bytes.begin(), covered.bytes.end(), 0) !=
        covered.bytes.end())
      fatal(what + " '" + name + "': the ranks' shards do not cover all of " +
            rt::shapeString(out.shape));
    whole[name] = std::move(out);
  }
  return whole;
}

/// Chrome trace-event JSON (Perfetto, chrome://tracing): one complete
/// ("X") event per instruction and per step, pid = rank.
class TraceWriter {
public:
  explicit TraceWriter(const Job &job) : job(job) {
    for (const std::vector<int> &ranks : rt::planGroups(*job.plan))
      groupKeys.push_back(rt::groupKey(ranks));
    if (enabled())
      add("{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": " +
          std::to_string(job.rank) +
          ", \"tid\": 0, \"args\": {\"name\": \"rank " +
          std::to_string(job.rank) + "\"}}");
  }

  bool enabled() const { return !job.traceDir.empty(); }
  /// Whether the next step is traced.
  bool wants() const { return enabled() && traced < job.traceSteps; }

  void addStep(int step, int64_t startUs, int64_t endUs,
               const rt::RunStats &stats) {
    if (!wants())
      return;
    ++traced;
    add(event("step", "step", startUs, endUs, step, ""));
    for (const rt::TraceEvent &e : stats.trace) {
      std::string extra = ", \"instruction\": " + std::to_string(e.instruction);
      if (e.group >= 0)
        extra += ", \"group\": \"" + groupKeys[e.group] + "\"";
      add(event(e.name, e.group >= 0 ? "comm" : "compute", e.startUs, e.endUs,
                step, extra));
    }
  }

  /// DIR/trace-rank<r>.json, written whole or not at all.
  void write() {
    if (!enabled())
      return;
    std::error_code ec;
    std::filesystem::create_directories(job.traceDir, ec);
    if (ec)
      fatal("--trace: cannot create '" + job.traceDir + "': " + ec.message());
    std::string text = "{\"traceEvents\": [\n" + events +
                       "\n], \"displayTimeUnit\": \"ms\"}\n";
    std::string path =
        job.traceDir + "/trace-rank" + std::to_string(job.rank) + ".json";
    std::string error;
    if (!galvatron::writeFileAtomically(path, {{text.data(), text.size()}},
                                        error))
      fatal(error);
  }

private:
  std::string event(const std::string &name, const char *category,
                    int64_t startUs, int64_t endUs, int step,
                    const std::string &extra) {
    return "{\"name\": \"" + name + "\", \"cat\": \"" + category +
           "\", \"ph\": \"X\", \"ts\": " +
           std::to_string(startUs - job.traceOriginUs) +
           ", \"dur\": " + std::to_string(endUs - startUs) +
           ", \"pid\": " + std::to_string(job.rank) +
           ", \"tid\": 0, \"args\": {\"step\": " + std::to_string(step) +
           extra + "}}";
  }
  void add(const std::string &line) {
    events += (events.empty() ? "" : ",\n") + line;
  }

  const Job &job;
  std::vector<std::string> groupKeys;
  std::string events;
  int traced = 0;
};

/// `{"all_reduce:0,1": 1234, ...}`.
std::string commBytesJson(const std::map<std::string, uint64_t> &counts) {
  std::string json = "{";
  for (const auto &[key, bytes] : counts)
    json += (json.size() > 1 ? ", \"" : "\"") + key +
            "\": " + std::to_string(bytes);
  return json + "}";
}

/// metrics.jsonl for rank 0; metrics.rank<r>.jsonl for rank r.
std::string rankPath(const std::string &path, int rank) {
  if (rank == 0)
    return path;
  size_t slash = path.find_last_of('/');
  size_t base = slash == std::string::npos ? 0 : slash + 1;
  size_t dot = path.find_last_of('.');
  std::string tag = ".rank" + std::to_string(rank);
  if (dot == std::string::npos || dot <= base)
    return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
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

bool isState(const std::string &name) {
  return startsWith(name, "param:") || startsWith(name, "adam_m:") ||
         startsWith(name, "adam_v:");
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

/// `state` holds whole tensors (consolidated across ranks).
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

/// Test hooks, so tests can check that one bad rank ends the whole job:
/// GALVATRON_TEST_EXIT=<rank>:<step> makes that rank exit(3) as that step
/// starts (a rank that dies), GALVATRON_TEST_STALL=<rank>:<step> makes it
/// sleep there instead (a rank that hangs, which its peers must time out;
/// step 0 hangs before the job starts).
bool testHook(const char *variable, int rank, int step) {
  const char *spec = std::getenv(variable);
  int r = -1, s = -1;
  return spec && std::sscanf(spec, "%d:%d", &r, &s) == 2 && r == rank &&
         s == step;
}

/// A data input besides the token ids, by its Hugging Face name: an
/// all-ones attention mask, zero token types, or positions 0..S-1.
rt::Tensor companionInput(const std::string &name, const rt::Shape &shape) {
  rt::Tensor t = rt::Tensor::zeros(rt::DType::I64, shape);
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

int train(const Job &job, const std::map<std::string, rt::Tensor> &weights,
          const std::map<std::string, rt::Tensor> &fixedInputs,
          const TrainOptions &options) {
  const plan::Plan &p = *job.plan;
  const plan::RankProgram &program = *job.program;
  std::string error;
  // Made up front, so that an unusable directory fails before any training.
  if (!options.checkpointDir.empty() && job.lead()) {
    std::error_code ec;
    std::filesystem::create_directories(options.checkpointDir, ec);
    if (ec)
      fatal("--checkpoint-dir: cannot create '" + options.checkpointDir +
            "': " + ec.message());
  }
  // This rank's state inputs (cut from the whole weights) and data inputs.
  std::map<std::string, rt::Tensor> state;
  std::map<std::string, const plan::Tensor *> stateTensors;
  std::vector<std::pair<std::string, rt::Shape>> data;
  for (int32_t index : *program.inputs()) {
    const plan::Tensor &t = *program.tensors()->Get(index);
    std::string name = t.name()->str();
    if (startsWith(name, "param:")) {
      auto it = weights.find(name.substr(6));
      if (it == weights.end())
        fatal("no initial weight for '" + name.substr(6) + "'");
      state[name] = pieceOf(t, it->second, "weight '" + name.substr(6) + "'");
      stateTensors[name] = &t;
    } else if (startsWith(name, "adam_m:") || startsWith(name, "adam_v:")) {
      state[name] = rt::Tensor::zeros(rt::DType::F32, shapeOf(t));
      stateTensors[name] = &t;
    } else if (name != "lr" && name != "step") {
      data.push_back({name, fullShapeOf(t)});
    }
  }
  // What the whole job reads: its data inputs (whichever ranks take them),
  // the batch's whole shape, and the vocabulary the loss's logits span.
  std::set<std::string> stateNames, dataNames;
  rt::Shape batchShape;
  int64_t vocab = 0;
  for (const plan::RankProgram *other : *p.ranks()) {
    for (int32_t index : *other->inputs()) {
      std::string name = tensorName(*other, index);
      if (isState(name)) {
        stateNames.insert(name);
      } else if (name != "lr" && name != "step") {
        dataNames.insert(name);
        if (batchShape.empty())
          batchShape = fullShapeOf(*other->tensors()->Get(index));
      }
    }
    for (const plan::Instruction *inst : *other->instructions())
      if (inst->opcode() == plan::Opcode::CrossEntropy) {
        rt::Shape logits =
            fullShapeOf(*other->tensors()->Get(inst->inputs()->Get(0)));
        vocab = logits.empty() ? 0 : logits.back();
      }
  }
  int first = 1;
  if (!options.resumeDir.empty()) {
    // Whole tensors on every rank, each cutting its shards.
    std::map<std::string, rt::Tensor> model, optimizer;
    if (!rt::loadTensors(options.resumeDir + "/model.safetensors", model,
                         error) ||
        !rt::loadTensors(options.resumeDir + "/optimizer.safetensors",
                         optimizer, error))
      fatal("--resume: " + error);
    for (auto &[name, t] : stateTensors) {
      bool param = startsWith(name, "param:");
      std::map<std::string, rt::Tensor> &from = param ? model : optimizer;
      std::string key = param ? name.substr(6) : name;
      auto it = from.find(key);
      if (it == from.end())
        fatal("--resume: " + options.resumeDir + " has no '" + key + "'");
      state[name] = pieceOf(*t, it->second, "--resume: '" + name + "'");
    }
    FILE *f = std::fopen((options.resumeDir + "/trainer.json").c_str(), "r");
    int saved = 0;
    if (!f || std::fscanf(f, " {\"step\": %d}", &saved) != 1)
      fatal("--resume: no finished checkpoint in " + options.resumeDir);
    std::fclose(f);
    first = saved + 1;
  }
  // Every rank builds the same whole batch from the same tokens and keeps
  // its shard (the executor cuts inputs given whole).
  rt::Tensor tokens;
  bool streaming = false; // some data input comes from `tokens`
  for (const std::string &name : dataNames)
    streaming |= !fixedInputs.count(name);
  if (!options.dataPath.empty()) {
    if (!rt::readTokenIds(options.dataPath, tokens, error))
      fatal(error);
    if (tokens.dtype == rt::DType::I32)
      tokens = rt::cast(tokens, rt::DType::I64);
    if (batchShape.size() != 2 || tokens.size() < batchShape[1] + 1)
      fatal("--data needs more tokens than one sequence of " +
            (batchShape.size() == 2 ? std::to_string(batchShape[1]) : "?"));
    streaming = true;
  } else if (streaming) {
    // Synthetic data: uniform token ids below the vocabulary size, which the
    // loss's logits give; a fixed seed keeps runs (and ranks) alike.
    if (vocab < 1 || batchShape.size() != 2)
      fatal("training needs --data tokens.npy or --input " +
            (dataNames.empty() ? std::string("DATA") : *dataNames.begin()) +
            "=...");
    std::mt19937_64 generator(0);
    std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
    tokens = rt::Tensor(rt::DType::I64, {batchShape[1] * 1024 + 1});
    for (int64_t i = 0; i < tokens.size(); ++i)
      tokens.i64()[i] = pick(generator);
    if (job.lead())
      std::printf("no --data: training on synthetic tokens below %lld\n",
                  static_cast<long long>(vocab));
  }
  FILE *log = nullptr;
  std::string logPath = rankPath(options.logPath, job.rank);
  // A full disk must not leave a log cut mid-record behind a zero exit.
  auto logFailed = [&] {
    fatal("--log: cannot write '" + logPath + "': " + std::strerror(errno));
  };
  if (!options.logPath.empty()) {
    log = std::fopen(logPath.c_str(), first > 1 ? "a" : "w");
    if (!log)
      fatal("--log: cannot open '" + logPath + "': " + std::strerror(errno));
  }
  TraceWriter trace(job);
  std::vector<double> losses;
  for (int step = first; step <= options.steps; ++step) {
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
    std::map<std::string, rt::Tensor> inputs = state;
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
      rt::Tensor batch(rt::DType::I64, shape);
      int64_t b = shape[0], s = shape[1], n = tokens.size();
      for (int64_t i = 0; i < b; ++i) {
        int64_t start = ((int64_t(step - 1) * b + i) * s) % (n - s);
        for (int64_t j = 0; j < s; ++j)
          batch.i64()[i * s + j] = tokens.i64()[start + j];
      }
      inputs[name] = std::move(batch);
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
    int64_t startUs = nowUs();
    if (!rt::runRank(p, job.rank, inputs, weights, outputs, stats, error,
                     {job.comm, trace.wants()}))
      fatal(error);
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
    for (auto &[name, t] : outputs)
      if (name != "loss")
        state[name] = std::move(t);
    double tokensPerSecond = rt::numElements(batchShape) / (ms / 1000.0);
    if (job.lead()) {
      std::printf("step %d/%d | loss %.6f | lr %.3g | %.0f tokens/s | %.2f "
                  "ms/step | peak RSS %.1f MB | arena %.1f MB\n",
                  step, options.steps, loss, lr, tokensPerSecond, ms,
                  peakRssMb(), stats.arenaBytes / 1e6);
      std::fflush(stdout);
    }
    if (log) {
      std::fprintf(log,
                   "{\"step\": %d, \"loss\": %.9g, \"lr\": %.9g, "
                   "\"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, "
                   "\"peak_rss_mb\": %.1f, \"arena_bytes\": %llu, "
                   "\"comm_bytes\": %s}\n",
                   step, loss, lr, tokensPerSecond, ms, peakRssMb(),
                   static_cast<unsigned long long>(stats.arenaBytes),
                   commBytesJson(stats.commBytes).c_str());
      if (std::fflush(log) != 0 || std::ferror(log))
        logFailed();
    }
    bool save = !options.checkpointDir.empty() &&
                ((options.saveEvery > 0 && step % options.saveEvery == 0) ||
                 step == options.steps);
    if (save) {
      // One checkpoint, as one rank writes it: rank 0 gathers the shards.
      std::map<std::string, rt::Tensor> whole = consolidate(
          job, {stateNames.begin(), stateNames.end()},
          [](const plan::RankProgram &r, const std::string &name) {
            return findNamed(r, r.inputs(), name);
          },
          state, "checkpoint");
      if (job.lead())
        saveCheckpoint(options.checkpointDir, step, whole);
      // No rank runs ahead (or exits) before the checkpoint is on disk.
      if (!job.comm->worldBarrier("the barrier after checkpoint step " +
                                      std::to_string(step),
                                  error))
        fatal(error);
    }
  }
  if (log && std::fclose(log) != 0)
    logFailed();
  trace.write();
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
    if (job.lead())
      std::printf("%zu losses against %s: worst relative error %.3e (rtol "
                  "%.1e): %s\n",
                  count, options.expectLosses.c_str(), worst, options.rtol,
                  pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
  }
  return 0;
}

/// Ends the job when a file this rank would write is one it reads (by device
/// and inode, so links and other spellings count): writing it would destroy
/// the input. --resume may name the --checkpoint-dir: a checkpoint replaces
/// the one it resumed from only once it is whole.
void refuseOutputsOverInputs(const Job &job, const std::string &planPath,
                             const std::string &weightsPath,
                             const std::vector<std::string> &inputSpecs,
                             const std::vector<std::string> &expectSpecs,
                             const std::vector<std::string> &outputSpecs,
                             const TrainOptions &train) {
  auto fileOf = [](const std::string &spec) {
    return splitSpec(spec, 0, {}).second;
  };
  std::vector<galvatron::NamedFile> inputs = {
      {"the plan", planPath},
      {"--weights", weightsPath},
      {"--data", train.dataPath},
      {"--expect-losses", train.expectLosses}};
  for (const std::string &spec : inputSpecs)
    inputs.push_back({"--input", fileOf(spec)});
  for (const std::string &spec : expectSpecs)
    inputs.push_back({"--expect", fileOf(spec)});
  std::vector<galvatron::NamedFile> outputs;
  for (const std::string &spec : outputSpecs)
    outputs.push_back({"--output", fileOf(spec)});
  if (!train.logPath.empty())
    outputs.push_back({"--log", rankPath(train.logPath, job.rank)});
  if (!job.traceDir.empty())
    outputs.push_back({"--trace", job.traceDir + "/trace-rank" +
                                      std::to_string(job.rank) + ".json"});
  if (!train.checkpointDir.empty())
    for (const char *file :
         {"model.safetensors", "optimizer.safetensors", "trainer.json"})
      outputs.push_back({"--checkpoint-dir", train.checkpointDir + "/" + file});
  std::string error = galvatron::findOutputOverInput(outputs, inputs);
  if (!error.empty())
    fatal(error);
}

/// A forward plan: every rank runs its program; rank 0 gathers the outputs
/// and writes and checks them.
int forward(const Job &job, const std::map<std::string, rt::Tensor> &inputs,
            const std::map<std::string, rt::Tensor> &weights,
            const std::vector<std::string> &outputSpecs,
            const std::vector<std::string> &expectSpecs, double rtol,
            bool stats) {
  std::string error;
  std::map<std::string, rt::Tensor> outputs;
  rt::RunStats runStats;
  TraceWriter trace(job);
  int64_t startUs = nowUs();
  if (!rt::runRank(*job.plan, job.rank, inputs, weights, outputs, runStats,
                   error, {job.comm, trace.enabled()}))
    fatal(error);
  trace.addStep(1, startUs, nowUs(), runStats);
  trace.write();
  // The job's outputs in order: rank 0's, then those only later ranks have.
  std::vector<std::string> outputNames;
  const plan::RankProgram *lead = rt::findRankProgram(*job.plan, 0);
  std::vector<const plan::RankProgram *> programs = {
      job.worldSize == 1 ? job.program : lead};
  if (job.worldSize > 1)
    for (const plan::RankProgram *r : *job.plan->ranks())
      if (r != lead)
        programs.push_back(r);
  for (const plan::RankProgram *r : programs)
    if (r->outputs())
      for (int32_t index : *r->outputs()) {
        std::string name = tensorName(*r, index);
        if (std::find(outputNames.begin(), outputNames.end(), name) ==
            outputNames.end())
          outputNames.push_back(name);
      }
  std::map<std::string, rt::Tensor> whole = consolidate(
      job, outputNames,
      [](const plan::RankProgram &r, const std::string &name) {
        return findNamed(r, r.outputs(), name);
      },
      outputs, "output");
  if (!job.lead())
    return 0;

  for (size_t i = 0; i < outputSpecs.size(); ++i) {
    auto [name, file] = splitSpec(outputSpecs[i], i, outputNames);
    auto it = whole.find(name);
    if (it == whole.end())
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
    auto it = whole.find(name);
    if (it == whole.end())
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

} // namespace

int main(int argc, char **argv) {
  std::string error;
  if (!rt::mpi::init(&argc, &argv, error)) {
    printError(error);
    return 1;
  }
  // Ranks sharing a machine share its cores: unless told otherwise, each
  // takes its part, so that kernel threads do not spin against each other.
  if (rt::mpi::localSize() > 1 && !std::getenv("OMP_NUM_THREADS"))
    rt::setKernelThreads(std::max(1u, std::thread::hardware_concurrency()) /
                         static_cast<unsigned>(rt::mpi::localSize()));
  std::string planPath, weightsPath, traceDir;
  int traceSteps = 20;
  std::vector<std::string> inputSpecs, outputSpecs, expectSpecs;
  double rtol = 1e-4, commTimeout = 120;
  int chosenRank = -1;
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
      chosenRank = std::atoi(value().c_str());
    else if (arg == "--stats")
      stats = true;
    else if (arg == "--comm-timeout")
      commTimeout = std::atof(value().c_str());
    else if (arg == "--trace")
      traceDir = value();
    else if (arg == "--trace-steps")
      traceSteps = std::max(1, std::atoi(value().c_str()));
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
      fatalEverywhere("unknown option '" + arg + "'");
    else if (planPath.empty())
      planPath = arg;
    else
      usage();
  }
  if (planPath.empty())
    usage();
  if (!(commTimeout > 0))
    fatalEverywhere("--comm-timeout needs a positive number of seconds");

  std::vector<uint8_t> storage;
  const plan::Plan *p = rt::loadPlan(planPath, storage, error);
  if (!p)
    fatalEverywhere(error);
  Job job;
  job.plan = p;
  job.worldSize = rt::mpi::worldSize();
  job.traceDir = traceDir;
  job.traceSteps = traceSteps;
  if (chosenRank >= 0) {
    // One rank's program alone, for debugging: collectives over more than
    // one rank fail, naming the instruction.
    if (job.worldSize > 1)
      fatalEverywhere("--rank is for one process; under mpirun each process "
                      "runs the program of its MPI rank");
    if (chosenRank >= p->world_size())
      fatalEverywhere("rank " + std::to_string(chosenRank) +
                      " is outside the plan's world size " +
                      std::to_string(p->world_size()));
    job.rank = chosenRank;
  } else {
    if (p->world_size() != job.worldSize)
      fatalEverywhere(
          planPath + " was built for " + std::to_string(p->world_size()) +
          " ranks but this job has " + std::to_string(job.worldSize) +
          " (mpirun -np " + std::to_string(p->world_size()) + ")");
    job.rank = rt::mpi::worldRank();
  }
  job.program = rt::findRankProgram(*p, job.rank);

  std::unique_ptr<rt::Communicator> comm;
  if (job.worldSize > 1) {
    rt::mpi::Options options;
    options.timeoutSeconds = commTimeout;
    // Step 0 of the stall hook: a rank that hangs before the job starts.
    if (testHook("GALVATRON_TEST_STALL", job.rank, 0))
      std::this_thread::sleep_for(std::chrono::hours(1));
    comm = rt::mpi::createCommunicator(rt::planGroups(*p), options, error);
  } else {
    comm = rt::createLocalCommunicator(rt::planGroups(*p), job.rank);
  }
  if (!comm)
    fatal(error);
  job.comm = comm.get();
  if (!traceDir.empty()) {
    // Rank 0's clock reading is every rank's time zero.
    job.traceOriginUs = nowUs();
    if (!comm->worldBroadcast(&job.traceOriginUs, sizeof(job.traceOriginUs), 0,
                              "agreeing on the trace clock", error))
      fatal(error);
  }

  // Weights: every rank reads them whole; the executor cuts shards.
  std::map<std::string, rt::Tensor> weights;
  if (weightsPath.empty() && p->weights_file() && p->weights_file()->size())
    weightsPath = directoryOf(planPath) + p->weights_file()->str();
  refuseOutputsOverInputs(job, planPath, weightsPath, inputSpecs, expectSpecs,
                          outputSpecs, trainOptions);
  if (!weightsPath.empty()) {
    if (!rt::loadTensors(weightsPath, weights, error))
      fatalEverywhere(error);
  }

  // Inputs: NAME=file, or the next unnamed plan input in order.
  const plan::RankProgram &program = *job.program;
  std::vector<std::string> inputNames;
  if (program.inputs())
    for (int32_t index : *program.inputs())
      inputNames.push_back(tensorName(program, index));
  std::map<std::string, rt::Tensor> inputs;
  for (size_t i = 0; i < inputSpecs.size(); ++i) {
    auto [name, file] = splitSpec(inputSpecs[i], i, inputNames);
    if (name.empty())
      fatalEverywhere("the plan takes " + std::to_string(inputNames.size()) +
                      " inputs; '" + inputSpecs[i] + "' is one too many");
    rt::Tensor t;
    if (!rt::readNpy(file, t, error))
      fatalEverywhere(error);
    // Token files are often int32; the plan's ids are int64.
    if (t.dtype == rt::DType::I32)
      t = rt::cast(t, rt::DType::I64);
    inputs[name] = std::move(t);
  }

  trainOptions.rtol = rtol;
  int code = trainOptions.steps > 0 ? train(job, weights, inputs, trainOptions)
                                    : forward(job, inputs, weights, outputSpecs,
                                              expectSpecs, rtol, stats);
  // Progress lines and results go to standard output: losing them (a full
  // disk behind a redirect) fails the run too.
  bool flushed = std::fflush(stdout) == 0;
  if (!flushed || std::ferror(stdout)) {
    // An earlier write's errno is gone; a failed flush still has its own.
    printError(std::string("cannot write standard output") +
               (flushed ? "" : std::string(": ") + std::strerror(errno)));
    code = code ? code : 1;
  }
  comm.reset();
  rt::mpi::finalize();
  return code;
}
