//===- galvatron-run.cpp - execute plan.bin -------------------------------===//
//
//   [mpirun -np N] galvatron-run plan.bin --input [NAME=]x.npy ...
//                [--output [NAME=]y.npy] [--expect [NAME=]ref.npy [--rtol X]]
//                [--weights W.safetensors] [--rank R] [--stats]
//                [--comm-timeout SECONDS] [--trace DIR]
//   [mpirun -np N] galvatron-run train.bin --steps N ...
//
// Reads the flags; the job itself (forward or training) is the runtime's
// (galvatron/runtime/Driver.h).
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/BlasTarget.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Driver.h"
#include "galvatron/runtime/Kernels.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <thread>

namespace rt = galvatron::rt;

namespace {

void usage() {
  std::cerr << "usage: [mpirun -np N] galvatron-run plan.bin --input "
               "[NAME=]x.npy ... [--output [NAME=]y.npy] [--expect "
               "[NAME=]ref.npy [--rtol X]] [--weights W.safetensors] [--rank "
               "R] [--stats] [--backend cpu|cuda] [--comm-timeout S] [--trace "
               "DIR]\n"
               "       [mpirun -np N] galvatron-run train.bin --steps N "
               "[--data tokens.npy | --input ids=x.npy] [--lr X] [--warmup W] "
               "[--cosine] [--min-lr X] [--log metrics.jsonl] "
               "[--checkpoint-dir D [--save-every K] [--keep N]] [--resume D] "
               "[--expect-losses ref.npy] [--comm-timeout S] [--trace DIR "
               "[--trace-steps N (20)]]\n"
               "  --checkpoint-dir D: each save is D/step-NNNNNN/ (model and "
               "optimizer safetensors, trainer.json, manifest.json with sizes "
               "and CRC-32s), D/latest names the newest; --keep N keeps the "
               "newest N (default 0: all)\n"
               "  --resume D: D/latest's checkpoint, or a step directory; its "
               "manifest is verified first\n"
               "  --backend: where the program runs (both modes): cpu, or cuda "
               "(NCCL between ranks, one device per rank); the default is cuda "
               "where a device is present\n";
  rt::mpi::finalize();
  std::exit(2);
}

/// A whole number from 0 to INT_MAX, or the job ends naming `flag`.
int parseCount(const std::string &flag, const std::string &text) {
  char *end = nullptr;
  errno = 0;
  long long n = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || n < 0 || n > INT_MAX)
    rt::fatalEverywhere(flag + " needs a whole number from 0 to " +
                        std::to_string(INT_MAX) + ", not '" + text + "'");
  return static_cast<int>(n);
}

/// A flag's non-negative real value, refused (on every rank) when it is not
/// a finite number.
double parseReal(const std::string &flag, const std::string &text) {
  char *end = nullptr;
  errno = 0;
  double x = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(x) || x < 0)
    rt::fatalEverywhere(flag + " needs a non-negative number, not '" + text +
                        "'");
  return x;
}

/// Training flags; false when `arg` is none of them.
bool parseTrainFlag(const std::string &arg,
                    const std::function<std::string()> &value,
                    rt::TrainOptions &train) {
  if (arg == "--steps")
    train.steps = parseCount(arg, value());
  else if (arg == "--lr")
    train.lr = parseReal(arg, value());
  else if (arg == "--min-lr")
    train.minLr = parseReal(arg, value());
  else if (arg == "--warmup")
    train.warmup = parseCount(arg, value());
  else if (arg == "--cosine")
    train.cosine = true;
  else if (arg == "--data")
    train.dataPath = value();
  else if (arg == "--log")
    train.logPath = value();
  else if (arg == "--checkpoint-dir")
    train.checkpointDir = value();
  else if (arg == "--save-every")
    train.saveEvery = parseCount(arg, value());
  else if (arg == "--keep")
    train.keep = parseCount(arg, value());
  else if (arg == "--resume")
    train.resumeDir = value();
  else if (arg == "--expect-losses")
    train.expectLosses = value();
  else
    return false;
  return true;
}

rt::DriverOptions parseFlags(int argc, char **argv) {
  rt::DriverOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::function<std::string()> value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage();
      return argv[++i];
    };
    if (arg == "--input")
      options.inputSpecs.push_back(value());
    else if (arg == "--output")
      options.outputSpecs.push_back(value());
    else if (arg == "--expect")
      options.expectSpecs.push_back(value());
    else if (arg == "--rtol")
      options.rtol = parseReal(arg, value());
    else if (arg == "--weights")
      options.weightsPath = value();
    else if (arg == "--rank")
      options.chosenRank = parseCount(arg, value());
    else if (arg == "--stats")
      options.stats = true;
    else if (arg == "--backend")
      options.backend = value();
    else if (arg == "--comm-timeout")
      options.commTimeout = parseReal(arg, value());
    else if (arg == "--trace")
      options.traceDir = value();
    else if (arg == "--trace-steps")
      options.traceSteps = std::max(1, parseCount(arg, value()));
    else if (parseTrainFlag(arg, value, options.train))
      continue;
    else if (arg == "-h" || arg == "--help")
      usage();
    else if (!arg.empty() && arg[0] == '-')
      rt::fatalEverywhere("unknown option '" + arg + "'");
    else if (options.planPath.empty())
      options.planPath = arg;
    else
      usage();
  }
  if (options.planPath.empty())
    usage();
  return options;
}

} // namespace

int main(int argc, char **argv) {
  rt::restartWithFastBlasIfNeeded(argv);
  rt::reuseFreedMemory();
  std::string error;
  if (!rt::mpi::init(&argc, &argv, error)) {
    rt::printError(error);
    return 1;
  }
  // Ranks sharing a machine share its cores: unless told otherwise, each
  // takes its part, so that kernel threads do not spin against each other.
  if (rt::mpi::localSize() > 1 && !std::getenv("OMP_NUM_THREADS"))
    rt::setKernelThreads(std::max(1u, std::thread::hardware_concurrency()) /
                         static_cast<unsigned>(rt::mpi::localSize()));
  int code = rt::runDriver(parseFlags(argc, argv));
  // Progress lines and results go to standard output: losing them (a full
  // disk behind a redirect) fails the run too.
  bool flushed = std::fflush(stdout) == 0;
  if (!flushed || std::ferror(stdout)) {
    // An earlier write's errno is gone; a failed flush still has its own.
    rt::printError(std::string("cannot write standard output") +
                   (flushed ? "" : std::string(": ") + std::strerror(errno)));
    code = code ? code : 1;
  }
  rt::mpi::finalize();
  return code;
}
