//===- Driver.h - what galvatron-run does once its flags are read -*- C++
//-*-===//
//
// Sets up the job (the plan verified, this process's rank, its communicator,
// weights and inputs), then runs a forward plan or trains a @train_step one.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_DRIVER_H
#define GALVATRON_RUNTIME_DRIVER_H

#include "galvatron/runtime/Job.h"
#include "galvatron/runtime/Trainer.h"

#include <map>
#include <string>
#include <vector>

namespace galvatron::rt {

/// galvatron-run's flags.
struct DriverOptions {
  std::string planPath;
  /// --weights; empty takes the file the plan names, next to the plan.
  std::string weightsPath;
  /// --input, --output, --expect: "[NAME=]file.npy"; a bare file binds the
  /// next plan input or output in order.
  std::vector<std::string> inputSpecs, outputSpecs, expectSpecs;
  double rtol = 1e-4;
  double commTimeout = 120;
  /// --rank R: run one rank's program alone (debugging); -1 under mpirun.
  int chosenRank = -1;
  bool stats = false;
  /// --backend: "cpu", "cuda", or empty: CUDA where a device is present.
  std::string backend;
  std::string traceDir;
  int traceSteps = 20;
  /// Training runs when `train.steps` > 0.
  TrainOptions train;
};

/// Runs the job on this process (MPI already initialised, when launched
/// under mpirun) and returns the exit status; ends the job on errors.
int runDriver(const DriverOptions &options);

/// A forward plan: every rank runs its program; rank 0 gathers the outputs,
/// writes them (--output) and checks them (--expect: max-abs-error /
/// max-abs-reference <= rtol). Returns the exit status.
int forward(const Job &job, const std::map<std::string, Tensor> &inputs,
            const std::map<std::string, Tensor> &weights,
            const DriverOptions &options);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_DRIVER_H
