//===- PlanMeasure.h - what a strategy's plan holds and sends ---*- C++ -*-===//
//
// Lowers a copy of a module with the training pipeline to plan.bin and reads
// back, per rank, what the runtime will hold (the arena the memory planner
// sized, plus every tensor bound from outside: parameters, optimizer state,
// data) and what it will hand to each collective per step, keyed as the
// runtime's communicator counts it ("all_reduce:0,1"). Exact numbers, not a
// model; galv-estimate reports them and galv-search checks its choice
// against them.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_LIB_TRANSFORMS_PLANMEASURE_H
#define GALVATRON_LIB_TRANSFORMS_PLANMEASURE_H

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace galvatron::costmodel {
struct HardwareSpec;
} // namespace galvatron::costmodel

namespace mlir::galv {

struct RankMeasure {
  int stage = 0;
  uint64_t arenaBytes = 0, boundBytes = 0;
  std::map<std::string, uint64_t> bytesSent; ///< "op:rank,rank,..." -> bytes
  uint64_t instructions = 0;                 ///< Instructions in the step.
  /// Each collective: the hardware spec's op name, group size, whether its
  /// ranks are consecutive, and the bytes it hands over.
  struct Collective {
    std::string op;
    int group = 2;
    bool consecutive = true;
    double bytes = 0;
  };
  std::vector<Collective> collectives;
  /// The step's instructions in program order, for pricing: a compute
  /// instruction's kernel class (HardwareSpec::kernelClasses) and work
  /// (bytes read and written, FLOPs for contractions); a collective's plan
  /// group and entry in `collectives`; a send's or receive's peer (a rank)
  /// and bytes. An aliasing reshape moves nothing.
  struct Instruction {
    enum Kind { Compute, Alias, Collective, Send, Recv } kind = Compute;
    const char *opcode = ""; ///< The plan's opcode name, as traces name it.
    std::string kernelClass;
    double work = 0;
    /// The work at which the class's rate is read (0: `work`): attention's
    /// FLOPs per batch and head, as the profiler keys them.
    double rateWork = 0;
    int64_t group = -1;
    int collective = -1, peer = -1;
    /// A send's or a receive's message; a GEMM's operands and result.
    double bytes = 0;
  };
  std::vector<Instruction> program;
  /// The ranks of each plan group (the same table on every rank).
  std::vector<std::vector<int>> groups;
  uint64_t memoryBytes() const { return arenaBytes + boundBytes; }
};

/// Where each rank's step goes, in the steady state (the last of the steps
/// played back to back, from the first rank's start of it): its finish (s)
/// and its time (s) by kernel class, "communication" (collectives and
/// messages once they can start) and "wait" (for the last rank of a
/// collective, or for a message).
struct PlanTime {
  std::vector<double> finish;
  std::vector<std::map<std::string, double>> byClass;
  /// Per rank, per instruction: when it is reached and when it ends (ms
  /// from that step's start), waits included, as galvatron-run --trace
  /// times an instruction.
  std::vector<std::vector<std::pair<double, double>>> spans;
};

/// A step's time (s) on `hw`, priced instruction by instruction and played
/// out rank against rank (PlanTiming.cpp): each instruction costs the
/// runtime's fixed time plus its work at its kernel class's measured rate
/// (contractions without one at `gemmTflops`); a collective starts when the
/// last rank of its group reaches it and costs its latency plus its bytes
/// over the bandwidth tables; a send does not wait, its receive completes
/// once the message has crossed; ranks beyond a node's cores share them.
/// Ranks run their next step as soon as they end one, so steps are played
/// back to back and the step is their steady-state period. 0 when the spec
/// has no kernel rates or no rank has a program; -1 when the programs cannot
/// complete (a receive or a collective never matched).
double planStepSeconds(const galvatron::costmodel::HardwareSpec &hw,
                       double gemmTflops, const std::vector<RankMeasure> &ranks,
                       PlanTime *detail = nullptr);

/// `training`: --galv-training-pipeline's options ("" for the defaults).
LogicalResult measurePlan(ModuleOp module, StringRef training,
                          std::vector<RankMeasure> &out, std::string &error);

} // namespace mlir::galv

#endif // GALVATRON_LIB_TRANSFORMS_PLANMEASURE_H
