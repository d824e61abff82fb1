//===- Trainer.h - train a @train_step plan ---------------------*- C++ -*-===//
//
// The training loop galvatron-run --steps runs, by the roles the plan gives
// its inputs: the state (Parameter, AdamM, AdamV) is fed back from the
// outputs the plan's feedback pairs name after every step, LearningRate and
// Step come from the schedule, Data from a token file (or synthetic tokens
// below the plan's vocabulary), and rank 0 logs and checkpoints.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_TRAINER_H
#define GALVATRON_RUNTIME_TRAINER_H

#include "galvatron/runtime/Job.h"
#include "galvatron/runtime/Tensor.h"

#include <map>
#include <string>

namespace galvatron::rt {

struct TrainOptions {
  int steps = 0;
  /// The schedule: linear warm-up over `warmup` steps to `lr`, then constant
  /// or (with `cosine`) cosine decay to `minLr` at the last step.
  double lr = 1e-3, minLr = 0;
  int warmup = 0;
  bool cosine = false;
  std::string dataPath, logPath, checkpointDir, resumeDir, expectLosses;
  /// Save every K steps (and after the last); 0 saves after the last only.
  int saveEvery = 0;
  /// Keep the newest K checkpoints under checkpointDir; 0 keeps all.
  int keep = 0;
  /// --expect-losses tolerance (relative).
  double rtol = 1e-4;
};

/// The learning rate of `step` (1-based) under the options' schedule.
double learningRate(const TrainOptions &options, int step);

/// A data input besides the token ids, by its Hugging Face name: an all-ones
/// attention mask, zero token types, or positions 0..S-1. Ends the job for
/// any other name (it needs --input).
Tensor companionInput(const std::string &name, const Shape &shape);

/// Trains `options.steps` steps from `weights` (whole tensors, every rank
/// cuts its shards) or the checkpoint `options.resumeDir`. `fixedInputs` are
/// the --input tensors. Returns the exit status (1 when --expect-losses
/// fails); ends the job on errors.
int train(const Job &job, const std::map<std::string, Tensor> &weights,
          const std::map<std::string, Tensor> &fixedInputs,
          const TrainOptions &options);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_TRAINER_H
