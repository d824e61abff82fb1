//===- Checkpoint.h - training checkpoints ----------------------*- C++ -*-===//
//
// A checkpoint is one-rank format whatever the job's size: model.safetensors
// (the parameters under their state-dict names), optimizer.safetensors (the
// Adam moments, "adam_m:NAME" and "adam_v:NAME") and trainer.json (the step).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_CHECKPOINT_H
#define GALVATRON_RUNTIME_CHECKPOINT_H

#include "galvatron/runtime/Tensor.h"

#include <map>
#include <string>

namespace galvatron::rt {

/// The training state of a checkpoint: "param:NAME", "adam_m:NAME" and
/// "adam_v:NAME" whole tensors, and the step it was saved after.
struct CheckpointState {
  int step = 0;
  std::map<std::string, Tensor> tensors;
};

/// Writes `state` into `dir`. False with `error` naming the file.
bool saveCheckpoint(const std::string &dir, const CheckpointState &state,
                    std::string &error);

/// Reads the checkpoint in `dir`. False with `error` naming the file.
bool loadCheckpoint(const std::string &dir, CheckpointState &state,
                    std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_CHECKPOINT_H
