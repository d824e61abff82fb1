//===- Executor.h - run one rank's instruction stream -----------*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_EXECUTOR_H
#define GALVATRON_RUNTIME_EXECUTOR_H

#include "galvatron/runtime/Tensor.h"
#include "galvatron/runtime/plan_generated.h"

#include <map>
#include <string>
#include <vector>

namespace galvatron::rt {

class Communicator;

/// One instruction's run, for --trace.
struct TraceEvent {
  /// The opcode's name ("AllReduce").
  const char *name;
  int32_t instruction;
  /// The device group of a communication instruction, else -1.
  int32_t group;
  /// Microseconds since the Unix epoch (system clock), so that the events
  /// of ranks on different processes line up.
  int64_t startUs, endUs;
};

struct RunStats {
  /// Bytes of the arena the plan asked for, and the most bytes live in it at
  /// any point (tracked by the executor as tensors are written and die).
  uint64_t arenaBytes = 0;
  uint64_t peakLiveBytes = 0;
  /// One past the highest arena byte any instruction wrote.
  uint64_t highWaterBytes = 0;
  /// Bytes of the tensors bound from outside (inputs and weights, as given
  /// or as cut to this rank's shard): with peakLiveBytes, what this rank's
  /// tensors took at their peak.
  uint64_t boundBytes = 0;
  /// Device memory a backend took beside the arena at its most during the
  /// run (CUDA: the stream-ordered scratch of collectives, sends and the
  /// attention and loss kernels); 0 on the CPU.
  uint64_t scratchBytes = 0;
  /// Bytes this rank handed to each collective in the run, keyed
  /// "all_reduce:0,1" (Communicator::takeByteCounts).
  std::map<std::string, uint64_t> commBytes;
  /// One event per instruction when RunOptions::trace is set.
  std::vector<TraceEvent> trace;
  /// The outputs written into their fed-back input (RunOptions::state), by
  /// name; they are not in the run's outputs.
  std::vector<std::string> updatedInPlace;
};

struct RunOptions {
  /// Carries the communication instructions; null runs them on a
  /// single-process communicator (groups of one rank only).
  Communicator *comm = nullptr;
  /// Record a TraceEvent per instruction.
  bool trace = false;
  /// The inputs the run may overwrite (the trainer's state, which `inputs`
  /// holds too): a fed-back output that an optimizer update computes element
  /// by element from its own input, which nothing reads later, is written
  /// into that input's tensor instead of the arena and not copied out.
  std::map<std::string, Tensor> *state = nullptr;
};

/// Runs the program of `rank` (the RankProgram whose `rank` field it is) on
/// the CPU kernels. Inputs and weights are bound by name; one that has a
/// shard may be given at its full shape and is cut. Outputs are returned by
/// name. Returns false with `error`.
bool runRank(const plan::Plan &plan, int rank,
             const std::map<std::string, Tensor> &inputs,
             const std::map<std::string, Tensor> &weights,
             std::map<std::string, Tensor> &outputs, RunStats &stats,
             std::string &error, const RunOptions &options = {});

/// The program of `rank`, or null.
const plan::RankProgram *findRankProgram(const plan::Plan &plan, int rank);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_EXECUTOR_H
