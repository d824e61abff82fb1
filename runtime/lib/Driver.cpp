//===- Driver.cpp - what galvatron-run does once its flags are read -------===//

#include "galvatron/runtime/Driver.h"
#include "galvatron/Support/FileChecks.h"
#include "galvatron/runtime/Backend.h"
#include "galvatron/runtime/CollectiveCheck.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Weights.h"

#include <chrono>
#include <memory>
#include <thread>
#include <unistd.h>

namespace galvatron::rt {

namespace {

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

/// Which plan rank this process runs: --rank alone, else its MPI rank in a
/// job of the plan's size.
int chooseRank(const plan::Plan &p, const DriverOptions &options,
               int worldSize) {
  if (options.chosenRank >= 0) {
    // One rank's program alone, for debugging: collectives over more than
    // one rank fail, naming the instruction.
    if (worldSize > 1)
      fatalEverywhere("--rank is for one process; under mpirun each process "
                      "runs the program of its MPI rank");
    if (options.chosenRank >= p.world_size())
      fatalEverywhere("rank " + std::to_string(options.chosenRank) +
                      " is outside the plan's world size " +
                      std::to_string(p.world_size()));
    return options.chosenRank;
  }
  if (p.world_size() != worldSize)
    fatalEverywhere(options.planPath + " was built for " +
                    std::to_string(p.world_size()) +
                    " ranks but this job has " + std::to_string(worldSize) +
                    " (mpirun -np " + std::to_string(p.world_size()) + ")");
  return mpi::worldRank();
}

std::unique_ptr<Communicator> makeCommunicator(Job &job,
                                               const DriverOptions &options) {
  std::string error;
  std::unique_ptr<Communicator> comm;
  if (job.worldSize > 1) {
    mpi::Options mpiOptions;
    mpiOptions.timeoutSeconds = options.commTimeout;
    // Step 0 of the stall hook: a rank that hangs before the job starts.
    if (testHook("GALVATRON_TEST_STALL", job.rank, 0))
      std::this_thread::sleep_for(std::chrono::hours(1));
    comm = mpi::createCommunicator(planGroups(*job.plan), mpiOptions, error);
  } else {
    comm = createLocalCommunicator(planGroups(*job.plan), job.rank);
  }
  if (!comm)
    fatal(error);
  job.comm = comm.get();
  // One process running one rank's program (--rank) has no peers to ask.
  if (job.worldSize > 1 &&
      !checkCollectiveSequences(*job.plan, *job.program, *comm, error))
    fatal("rank " + std::to_string(job.rank) + ": " + error);
  if (!job.traceDir.empty()) {
    // Rank 0's clock reading is every rank's time zero.
    job.traceOriginUs = nowUs();
    if (!comm->worldBroadcast(&job.traceOriginUs, sizeof(job.traceOriginUs), 0,
                              "agreeing on the trace clock", error))
      fatal(error);
  }
  return comm;
}

/// --input NAME=file, or the next unnamed plan input in order.
std::map<std::string, Tensor> readInputs(const Job &job,
                                         const DriverOptions &options) {
  const plan::RankProgram &program = *job.program;
  std::vector<std::string> inputNames;
  if (program.inputs())
    for (int32_t index : *program.inputs())
      inputNames.push_back(tensorName(program, index));
  std::map<std::string, Tensor> inputs;
  std::string error;
  const plan::Tensor *tokens = tokenInput(*job.plan);
  for (size_t i = 0; i < options.inputSpecs.size(); ++i) {
    auto [name, file] = splitSpec(options.inputSpecs[i], i, inputNames);
    if (name.empty())
      fatalEverywhere("the plan takes " + std::to_string(inputNames.size()) +
                      " inputs; '" + options.inputSpecs[i] +
                      "' is one too many");
    Tensor t;
    if (!readNpy(file, t, error))
      fatalEverywhere(error);
    // Token files are often int32; the plan's ids are int64.
    if (t.dtype == DType::I32)
      t = cast(t, DType::I64);
    if (tokens && name == tokens->name()->str())
      checkTokenIds(*job.plan, t, file);
    inputs[name] = std::move(t);
  }
  return inputs;
}

/// Ends the job when a file this rank would write is one it reads (by device
/// and inode, so links and other spellings count): writing it would destroy
/// the input. Checkpoints go to new step directories and cannot land on an
/// input.
void refuseOutputsOverInputs(const Job &job, const std::string &weightsPath,
                             const DriverOptions &options) {
  auto fileOf = [](const std::string &spec) {
    return splitSpec(spec, 0, {}).second;
  };
  const TrainOptions &train = options.train;
  std::vector<galvatron::NamedFile> inputs = {
      {"the plan", options.planPath},
      {"--weights", weightsPath},
      {"--data", train.dataPath},
      {"--expect-losses", train.expectLosses}};
  for (const std::string &spec : options.inputSpecs)
    inputs.push_back({"--input", fileOf(spec)});
  for (const std::string &spec : options.expectSpecs)
    inputs.push_back({"--expect", fileOf(spec)});
  std::vector<galvatron::NamedFile> outputs;
  for (const std::string &spec : options.outputSpecs)
    outputs.push_back({"--output", fileOf(spec)});
  if (!train.logPath.empty())
    outputs.push_back({"--log", rankPath(train.logPath, job.rank)});
  if (!job.traceDir.empty())
    outputs.push_back({"--trace", job.traceDir + "/trace-rank" +
                                      std::to_string(job.rank) + ".json"});
  std::string error = galvatron::findOutputOverInput(outputs, inputs);
  if (!error.empty())
    fatal(error);
}

/// --backend, or CUDA where a device is present. Every rank decides
/// alike for an explicit choice; a rank without a device falls back to the
/// CPU only when none was asked for.
std::unique_ptr<Backend> makeBackend(Job &job, const DriverOptions &options) {
  std::string why, error;
  if (options.backend != "" && options.backend != "cpu" &&
      options.backend != "cuda")
    fatalEverywhere("--backend takes cpu or cuda, not '" + options.backend +
                    "'");
  // Without NVIDIA's driver there is no device to find: the plugin (and
  // with it cuBLASLt and NCCL) is not even opened.
  bool driver = access("/dev/nvidiactl", F_OK) == 0;
  bool cuda = options.backend == "cuda" ||
              (options.backend.empty() && driver && cudaBackendAvailable(why));
  std::unique_ptr<Backend> backend =
      cuda ? createCudaBackend(job.comm, error) : createCpuBackend();
  if (!backend)
    fatal("rank " + std::to_string(job.rank) + ": --backend cuda: " + error);
  job.backend = backend.get();
  return backend;
}

} // namespace

int runDriver(const DriverOptions &options) {
  if (!(options.commTimeout > 0))
    fatalEverywhere("--comm-timeout needs a positive number of seconds");
  std::string error;
  std::vector<uint8_t> storage;
  const plan::Plan *p = loadPlan(options.planPath, storage, error);
  if (!p)
    fatalEverywhere(error);
  Job job;
  job.plan = p;
  job.worldSize = mpi::worldSize();
  job.traceDir = options.traceDir;
  job.traceSteps = options.traceSteps;
  job.rank = chooseRank(*p, options, job.worldSize);
  job.program = findRankProgram(*p, job.rank);
  std::unique_ptr<Communicator> comm = makeCommunicator(job, options);
  std::unique_ptr<Backend> backend = makeBackend(job, options);

  // Weights: every rank reads them whole; the executor cuts shards.
  std::map<std::string, Tensor> weights;
  std::string weightsPath = options.weightsPath;
  if (weightsPath.empty() && p->weights_file() && p->weights_file()->size())
    weightsPath = directoryOf(options.planPath) + p->weights_file()->str();
  if (weightsPath.empty() && p->shapes_only())
    fatalEverywhere(options.planPath +
                    " was compiled from a shapes-only import "
                    "(galvatron-translate --shapes-only), which has no "
                    "weights: running it needs them; import the model with "
                    "its weights, or give --weights W.safetensors");
  refuseOutputsOverInputs(job, weightsPath, options);
  if (!weightsPath.empty() && !loadTensors(weightsPath, weights, error))
    fatalEverywhere(error);
  std::map<std::string, Tensor> inputs = readInputs(job, options);

  TrainOptions train = options.train;
  train.rtol = options.rtol;
  int code = train.steps > 0 ? rt::train(job, weights, inputs, train)
                             : forward(job, inputs, weights, options);
  backend.reset();
  comm.reset();
  return code;
}

} // namespace galvatron::rt
