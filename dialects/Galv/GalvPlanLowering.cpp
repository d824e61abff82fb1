//===- GalvPlanLowering.cpp - the plan instruction of each galv op --------===//
//
// PlanOpInterface for every galv op: the plan.bin opcode and attributes
// that run it (attribute layouts per opcode are in runtime/schema/plan.fbs).
// The emitter adds operands, results, memory and the rank's groups.
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"

#include "galvatron/runtime/plan_generated.h"

using namespace mlir;
using namespace mlir::galv;
using O = galvatron::plan::Opcode;

static std::vector<int64_t> toVector(ArrayRef<int64_t> a) {
  return std::vector<int64_t>(a.begin(), a.end());
}

/// Ops the emitter turns into storage or messages, not instructions.
static LogicalResult notAnInstruction(Operation *op, StringRef becomes) {
  return op->emitError("'")
         << op->getName() << "' is not a plan instruction: the emitter "
         << becomes;
}

LogicalResult ConstantOp::lowerToPlan(PlanInstruction &) {
  return notAnInstruction(*this, "stores it in the plan's constants");
}
LogicalResult GetParameterOp::lowerToPlan(PlanInstruction &) {
  return notAnInstruction(*this, "binds it to a weight");
}
LogicalResult ReplicateOp::lowerToPlan(PlanInstruction &) {
  return notAnInstruction(*this, "aliases its input (it only matters to "
                                 "gradients)");
}
LogicalResult StageTransferOp::lowerToPlan(PlanInstruction &) {
  return notAnInstruction(*this, "lowers it to a send and a receive");
}
LogicalResult StageBroadcastOp::lowerToPlan(PlanInstruction &) {
  return notAnInstruction(*this, "lowers it to sends and receives");
}

LogicalResult AddOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Add;
  return success();
}

LogicalResult SubOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Sub;
  return success();
}

LogicalResult MulOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Mul;
  return success();
}

LogicalResult DivOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Div;
  return success();
}

LogicalResult PowOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Pow;
  return success();
}

LogicalResult MaxOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Max;
  return success();
}

LogicalResult MinOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Min;
  return success();
}

LogicalResult AndOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::And;
  return success();
}

LogicalResult OrOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Or;
  return success();
}

LogicalResult CompareOp::lowerToPlan(PlanInstruction &instruction) {
  CompareOp c = *this;
  instruction.ints = {static_cast<int64_t>(c.getPredicate())};
  instruction.opcode = O::Compare;
  return success();
}

LogicalResult NegOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Neg;
  return success();
}

LogicalResult NotOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Not;
  return success();
}

LogicalResult AbsOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Abs;
  return success();
}

LogicalResult ExpOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Exp;
  return success();
}

LogicalResult LogOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Log;
  return success();
}

LogicalResult SqrtOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Sqrt;
  return success();
}

LogicalResult RsqrtOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Rsqrt;
  return success();
}

LogicalResult ReciprocalOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Reciprocal;
  return success();
}

LogicalResult TanhOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Tanh;
  return success();
}

LogicalResult ErfOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Erf;
  return success();
}

LogicalResult SigmoidOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Sigmoid;
  return success();
}

LogicalResult ReluOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Relu;
  return success();
}

LogicalResult SiluOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Silu;
  return success();
}

LogicalResult GeluOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode =
      getApproximate() == GeluApproximation::tanh ? O::GeluTanh : O::Gelu;
  return success();
}

LogicalResult WhereOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Where;
  return success();
}

LogicalResult CastOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Cast;
  return success();
}

LogicalResult MatmulOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Matmul;
  return success();
}

LogicalResult LinearOp::lowerToPlan(PlanInstruction &instruction) {
  LinearOp l = *this;
  instruction.ints = {l.getLayout() == WeightLayout::out_in ? 1 : 0};
  instruction.opcode = O::Linear;
  return success();
}

LogicalResult ReshapeOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Copy;
  return success();
}

LogicalResult TransposeOp::lowerToPlan(PlanInstruction &instruction) {
  TransposeOp t = *this;
  instruction.ints = toVector(t.getPermutation());
  instruction.opcode = O::Transpose;
  return success();
}

LogicalResult SliceOp::lowerToPlan(PlanInstruction &instruction) {
  SliceOp s = *this;
  instruction.ints = toVector(s.getStarts());
  llvm::append_range(instruction.ints, s.getLimits());
  llvm::append_range(instruction.ints, s.getSteps());
  instruction.opcode = O::Slice;
  return success();
}

LogicalResult ConcatOp::lowerToPlan(PlanInstruction &instruction) {
  ConcatOp c = *this;
  instruction.ints = {static_cast<int64_t>(c.getAxis())};
  instruction.opcode = O::Concat;
  return success();
}

LogicalResult SplitOp::lowerToPlan(PlanInstruction &instruction) {
  SplitOp s = *this;
  instruction.ints = {static_cast<int64_t>(s.getAxis())};
  instruction.opcode = O::Split;
  return success();
}

LogicalResult ExpandOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Expand;
  return success();
}

LogicalResult GatherOp::lowerToPlan(PlanInstruction &instruction) {
  GatherOp g = *this;
  instruction.ints = {static_cast<int64_t>(g.getAxis())};
  instruction.opcode = O::Gather;
  return success();
}

LogicalResult EmbeddingOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Embedding;
  return success();
}

LogicalResult EmbeddingGradOp::lowerToPlan(PlanInstruction &instruction) {
  EmbeddingGradOp e = *this;
  instruction.ints = {static_cast<int64_t>(e.getRows())};
  instruction.opcode = O::EmbeddingGrad;
  return success();
}

LogicalResult ReduceOp::lowerToPlan(PlanInstruction &instruction) {
  ReduceOp r = *this;
  instruction.ints = {static_cast<int64_t>(r.getKind()), r.getKeepdims()};
  llvm::append_range(instruction.ints, r.getAxes());
  instruction.opcode = O::Reduce;
  return success();
}

LogicalResult SoftmaxOp::lowerToPlan(PlanInstruction &instruction) {
  SoftmaxOp s = *this;
  instruction.ints = {static_cast<int64_t>(s.getAxis())};
  instruction.opcode = O::Softmax;
  return success();
}

LogicalResult LayerNormOp::lowerToPlan(PlanInstruction &instruction) {
  LayerNormOp l = *this;
  instruction.floats = {l.getEpsilon().convertToDouble()};
  instruction.opcode = O::LayerNorm;
  return success();
}

LogicalResult RmsNormOp::lowerToPlan(PlanInstruction &instruction) {
  RmsNormOp r = *this;
  instruction.floats = {r.getEpsilon().convertToDouble()};
  instruction.opcode = O::RmsNorm;
  return success();
}

LogicalResult RotaryOp::lowerToPlan(PlanInstruction &instruction) {
  RotaryOp r = *this;
  instruction.ints = {r.getInterleaved()};
  instruction.opcode = O::Rotary;
  return success();
}

LogicalResult AttentionOp::lowerToPlan(PlanInstruction &instruction) {
  AttentionOp a = *this;
  instruction.ints = {a.getCausal()};
  instruction.floats = {a.getScale().convertToDouble()};
  instruction.opcode = O::Attention;
  return success();
}

LogicalResult CrossEntropyOp::lowerToPlan(PlanInstruction &instruction) {
  CrossEntropyOp c = *this;
  instruction.ints = {c.getReduction() == ReduceKind::mean,
                      static_cast<int64_t>(c.getIgnoreIndex())};
  instruction.opcode = O::CrossEntropy;
  return success();
}

LogicalResult AllReduceOp::lowerToPlan(PlanInstruction &instruction) {
  AllReduceOp r = *this;
  instruction.ints = {instruction.groupIndex(r.getGroup()),
                      static_cast<int64_t>(r.getKind())};
  instruction.opcode = O::AllReduce;
  return success();
}

LogicalResult AllGatherOp::lowerToPlan(PlanInstruction &instruction) {
  AllGatherOp a = *this;
  instruction.ints = {instruction.groupIndex(a.getGroup()),
                      static_cast<int64_t>(a.getAxis())};
  instruction.opcode = O::AllGather;
  return success();
}

LogicalResult AllToAllOp::lowerToPlan(PlanInstruction &instruction) {
  AllToAllOp a = *this;
  instruction.ints = {instruction.groupIndex(a.getGroup()),
                      static_cast<int64_t>(a.getSplitAxis()),
                      static_cast<int64_t>(a.getConcatAxis())};
  instruction.opcode = O::AllToAll;
  return success();
}

LogicalResult ReduceScatterOp::lowerToPlan(PlanInstruction &instruction) {
  ReduceScatterOp r = *this;
  instruction.ints = {instruction.groupIndex(r.getGroup()),
                      static_cast<int64_t>(r.getAxis())};
  instruction.opcode = O::ReduceScatter;
  return success();
}

LogicalResult ShardSliceOp::lowerToPlan(PlanInstruction &instruction) {
  ShardSliceOp s = *this;
  // This rank's piece, known now that the rank is.
  auto type = cast<RankedTensorType>(s.getInput().getType());
  int64_t dims = type.getRank(), axis = s.getAxis();
  int64_t piece = type.getDimSize(axis) / s.getGroup().getSize();
  std::vector<int64_t> starts(dims, 0), limits(type.getShape()), steps(dims, 1);
  starts[axis] = instruction.positionIn(s.getGroup()) * piece;
  limits[axis] = starts[axis] + piece;
  instruction.ints = starts;
  llvm::append_range(instruction.ints, limits);
  llvm::append_range(instruction.ints, steps);
  instruction.opcode = O::Slice;
  return success();
}

LogicalResult LogSoftmaxOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::LogSoftmax;
  instruction.ints = {static_cast<int64_t>(getAxis())};
  return success();
}

LogicalResult ArgMaxOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::ArgMax;
  instruction.ints = {static_cast<int64_t>(getAxis()), getKeepdims(),
                      getSelectLastIndex()};
  return success();
}
