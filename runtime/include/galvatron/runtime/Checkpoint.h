//===- Checkpoint.h - training checkpoints, atomic as a set -----*- C++ -*-===//
//
// A checkpoint is one directory, ROOT/step-NNNNNN, in the one-rank format
// whatever the job's size:
//
//   model.safetensors      the parameters under their state-dict names
//   optimizer.safetensors  the Adam moments, "adam_m:NAME" and "adam_v:NAME"
//   trainer.json           {"step": N}
//   manifest.json          the step, and each file above with its size and
//                          CRC-32
//
// and ROOT/latest is a symbolic link naming the newest one. A save writes
// every file into ROOT/.step-NNNNNN.tmp and flushes it to disk (fsync), then
// flushes that directory, renames it to step-NNNNNN, flushes ROOT, and only
// then switches `latest` (a new link renamed over the old one, then ROOT
// flushed again). A save that fails or is killed at any point leaves the
// checkpoint `latest` named before untouched and still named; its leftovers
// are removed by the next save. Resuming verifies the manifest first.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_CHECKPOINT_H
#define GALVATRON_RUNTIME_CHECKPOINT_H

#include "galvatron/runtime/Tensor.h"

#include <functional>
#include <map>
#include <string>

namespace galvatron::rt {

/// The training state of a checkpoint, whole tensors by the parameter's
/// state-dict name: the parameters and both Adam moments, and the step it
/// was saved after.
struct CheckpointState {
  int step = 0;
  std::map<std::string, Tensor> params, adamM, adamV;
};

/// For tests of the save protocol: called with the save's step before each
/// of its steps, which are named "mkdir", "write:FILE", "fsync:FILE",
/// "fsync:step-dir", "remove:stale-step-dir", "exchange:step-dir",
/// "rename:step-dir", "fsync:root", "symlink:latest", "rename:latest",
/// "fsync:root-latest", "prune" and "done". Returns 0 to go on, or an errno
/// value that the step then fails with as its system call would have (a
/// write writes half its bytes first, as a full disk does).
using CheckpointFaultHook =
    std::function<int(int step, const std::string &point)>;

struct CheckpointSaveOptions {
  /// Keep the newest `keep` checkpoints up to the new one (older step
  /// directories are removed after `latest` names the new one); 0 keeps
  /// them all.
  int keep = 0;
  CheckpointFaultHook fault;
};

/// "step-000010": the directory of step `step`'s checkpoint.
std::string checkpointDirName(int step);

/// Saves `state` as ROOT/step-NNNNNN and points ROOT/latest at it. False
/// with `error` saying what failed and which checkpoint `latest` still
/// names. `warning` is set when the save succeeded but pruning older
/// checkpoints (--keep) did not.
bool saveCheckpoint(const std::string &root, const CheckpointState &state,
                    const CheckpointSaveOptions &options, std::string &error,
                    std::string &warning);

/// The step directory `path` names: `path` itself when it holds
/// manifest.json, else the one `path/latest` names. False with `error`.
bool resolveCheckpoint(const std::string &path, std::string &stepDir,
                       std::string &error);

/// Checks the checkpoint in `stepDir` against its manifest: every file it
/// needs is named, present, of the size and CRC-32 recorded; the steps in
/// manifest.json, trainer.json and the directory's name agree. Sets `step`.
/// False with `error` naming the file and what differs.
bool verifyCheckpoint(const std::string &stepDir, int &step,
                      std::string &error);

/// The step in trainer.json's text: a JSON integer from 1 to INT_MAX
/// (refuses -5, 2147483648, 1e3, 5.0, "5").
bool parseTrainerStep(const std::string &text, int &step, std::string &error);

/// resolveCheckpoint, verifyCheckpoint, then the tensors. `stepDir` gets
/// the directory read.
bool loadCheckpoint(const std::string &path, CheckpointState &state,
                    std::string &stepDir, std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_CHECKPOINT_H
