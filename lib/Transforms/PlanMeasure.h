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

namespace mlir::galv {

struct RankMeasure {
  int stage = 0;
  uint64_t arenaBytes = 0, boundBytes = 0;
  std::map<std::string, uint64_t> bytesSent; ///< "op:rank,rank,..." -> bytes
  /// Instructions in the step, and the group size of each collective (a
  /// send or receive counts as a group of 2).
  uint64_t instructions = 0;
  std::vector<int> collectiveGroups;
  /// What the step's compute instructions move, by kernel class
  /// (elementwise, transcendental, movement, reduction, normalisation), and
  /// the contractions' FLOPs.
  std::map<std::string, double> classBytes;
  double contractionFlops = 0;
  /// Each collective: the hardware spec's op name, group size, whether its
  /// ranks are consecutive, and the bytes it hands over.
  struct Collective {
    std::string op;
    int group = 2;
    bool consecutive = true;
    double bytes = 0;
  };
  std::vector<Collective> collectives;
  uint64_t memoryBytes() const { return arenaBytes + boundBytes; }
};

/// `training`: --galv-training-pipeline's options ("" for the defaults).
LogicalResult measurePlan(ModuleOp module, StringRef training,
                          std::vector<RankMeasure> &out, std::string &error);

} // namespace mlir::galv

#endif // GALVATRON_LIB_TRANSFORMS_PLANMEASURE_H
