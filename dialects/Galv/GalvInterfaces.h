//===- GalvInterfaces.h - per-op rule interfaces ----------------*- C++ -*-===//
//
// The C++ side of GalvInterfaces.td: the values the interfaces exchange.
// PartitionState (Partitioning.h) and AdjointBuilder (Adjoint.h) are the
// contexts the partition and adjoint rules build in.
//
//===----------------------------------------------------------------------===//

#ifndef GALV_GALVINTERFACES_H
#define GALV_GALVINTERFACES_H

#include "mlir/IR/OpDefinition.h"

#include "galvatron/runtime/plan_generated.h"

#include <cstdint>
#include <functional>

namespace mlir::galv {
class PartitionState;
struct Axes;
class AdjointBuilder;

/// Where an op computes in a mixed-precision program (AutocastOpInterface).
enum class AutocastPolicy {
  /// In the lower precision (bf16): GEMMs and attention.
  Lower,
  /// In fp32: norms, softmax, losses, reductions, exp and log.
  Full,
};

/// What one execution of an op costs, from its types.
struct OpCost {
  /// Floating-point operations (a multiply-add counts two).
  double flops = 0;
  int64_t bytesRead = 0, bytesWritten = 0;

  OpCost &operator+=(const OpCost &o) {
    flops += o.flops;
    bytesRead += o.bytesRead;
    bytesWritten += o.bytesWritten;
    return *this;
  }
};

/// One operation per result element, every operand read and every result
/// written once.
OpCost elementwiseCost(Operation *op);
/// Bytes of all operands / all results of `op`.
int64_t operandBytes(Operation *op);
int64_t resultBytes(Operation *op);

/// A plan.bin instruction as an op lowers to it: opcode and its attribute
/// table (plan.fbs; none for opcodes without); the emitter adds operands,
/// results and memory.
struct PlanInstruction {
  galvatron::plan::Opcode opcode;
  galvatron::plan::InstructionAttrsUnion attrs;
  /// For collectives: the index in Plan.groups of the rank group a
  /// stage-local #galv.group resolves to on the emitted rank, and the
  /// rank's position in it.
  std::function<int64_t(DeviceGroupAttr)> groupIndex;
  std::function<int64_t(DeviceGroupAttr)> positionIn;
};
} // namespace mlir::galv

#include "Galv/GalvInterfaces.h.inc"

#endif // GALV_GALVINTERFACES_H
