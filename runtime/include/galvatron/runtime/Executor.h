//===- Executor.h - run one rank's instruction stream ------------*- C++
//-*-===//

#ifndef GALVATRON_RUNTIME_EXECUTOR_H
#define GALVATRON_RUNTIME_EXECUTOR_H

#include "galvatron/runtime/Tensor.h"
#include "galvatron/runtime/plan_generated.h"

#include <map>
#include <string>

namespace galvatron::rt {

struct RunStats {
  /// Bytes of the arena the plan asked for, and the most bytes live in it at
  /// any point (tracked by the executor as tensors are written and die).
  uint64_t arenaBytes = 0;
  uint64_t peakLiveBytes = 0;
  /// One past the highest arena byte any instruction wrote.
  uint64_t highWaterBytes = 0;
};

/// Runs `rank`'s program of `plan` on the CPU kernels. Inputs and weights are
/// bound by name; outputs are returned by name. Returns false with `error`.
bool runRank(const plan::Plan &plan, int rank,
             const std::map<std::string, Tensor> &inputs,
             const std::map<std::string, Tensor> &weights,
             std::map<std::string, Tensor> &outputs, RunStats &stats,
             std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_EXECUTOR_H
