//===- GalvPlanLowering.cpp - the plan instruction of each galv op --------===//
//
// PlanOpInterface for every galv op: the plan.bin opcode and the attribute
// table that run it (the tables per opcode are in runtime/schema/plan.fbs).
// The emitter adds operands, results, memory and the rank's groups.
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"

#include "galvatron/runtime/plan_generated.h"

using namespace mlir;
using namespace mlir::galv;
namespace plan = galvatron::plan;
using O = plan::Opcode;

/// Sets the opcode and its attribute table.
template <typename Table>
static LogicalResult lowered(PlanInstruction &instruction, O opcode,
                             Table attrs) {
  instruction.opcode = opcode;
  instruction.attrs.Set(std::move(attrs));
  return success();
}

static plan::Reduction toPlan(ReduceKind kind) {
  switch (kind) {
  case ReduceKind::sum:
    return plan::Reduction::Sum;
  case ReduceKind::mean:
    return plan::Reduction::Mean;
  case ReduceKind::max:
    return plan::Reduction::Max;
  case ReduceKind::min:
    return plan::Reduction::Min;
  case ReduceKind::prod:
    return plan::Reduction::Prod;
  }
  llvm_unreachable("unknown reduce kind");
}

static plan::ComparePredicate toPlan(ComparePredicate predicate) {
  switch (predicate) {
  case ComparePredicate::eq:
    return plan::ComparePredicate::Eq;
  case ComparePredicate::ne:
    return plan::ComparePredicate::Ne;
  case ComparePredicate::lt:
    return plan::ComparePredicate::Lt;
  case ComparePredicate::le:
    return plan::ComparePredicate::Le;
  case ComparePredicate::gt:
    return plan::ComparePredicate::Gt;
  case ComparePredicate::ge:
    return plan::ComparePredicate::Ge;
  }
  llvm_unreachable("unknown compare predicate");
}

static plan::AxisAttrsT axisAttrs(int64_t axis) {
  plan::AxisAttrsT attrs;
  attrs.axis = static_cast<int32_t>(axis);
  return attrs;
}

static plan::SliceAttrsT sliceAttrs(ArrayRef<int64_t> starts,
                                    ArrayRef<int64_t> limits,
                                    ArrayRef<int64_t> steps) {
  plan::SliceAttrsT attrs;
  attrs.starts.assign(starts.begin(), starts.end());
  attrs.limits.assign(limits.begin(), limits.end());
  attrs.steps.assign(steps.begin(), steps.end());
  return attrs;
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
  plan::CompareAttrsT attrs;
  attrs.predicate = toPlan(getPredicate());
  return lowered(instruction, O::Compare, attrs);
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

LogicalResult GeluGradOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = getApproximate() == GeluApproximation::tanh
                           ? O::GeluTanhGrad
                           : O::GeluGrad;
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
  plan::MatmulAttrsT attrs;
  attrs.transpose_lhs = getTransposeLhs();
  attrs.transpose_rhs = getTransposeRhs();
  return lowered(instruction, O::Matmul, attrs);
}

LogicalResult LinearOp::lowerToPlan(PlanInstruction &instruction) {
  plan::LinearAttrsT attrs;
  attrs.layout = getLayout() == WeightLayout::out_in
                     ? plan::WeightLayout::OutIn
                     : plan::WeightLayout::InOut;
  return lowered(instruction, O::Linear, attrs);
}

LogicalResult ReshapeOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Copy;
  return success();
}

LogicalResult TransposeOp::lowerToPlan(PlanInstruction &instruction) {
  plan::TransposeAttrsT attrs;
  for (int64_t p : getPermutation())
    attrs.perm.push_back(static_cast<int32_t>(p));
  return lowered(instruction, O::Transpose, std::move(attrs));
}

LogicalResult SliceOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::Slice,
                 sliceAttrs(getStarts(), getLimits(), getSteps()));
}

LogicalResult ConcatOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::Concat, axisAttrs(getAxis()));
}

LogicalResult SplitOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::Split, axisAttrs(getAxis()));
}

LogicalResult ExpandOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Expand;
  return success();
}

LogicalResult GatherOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::Gather, axisAttrs(getAxis()));
}

LogicalResult EmbeddingOp::lowerToPlan(PlanInstruction &instruction) {
  instruction.opcode = O::Embedding;
  return success();
}

LogicalResult AdamWUpdateOp::lowerToPlan(PlanInstruction &instruction) {
  plan::AdamWAttrsT attrs;
  attrs.beta1 = getBeta1().convertToDouble();
  attrs.beta2 = getBeta2().convertToDouble();
  attrs.epsilon = getEpsilon().convertToDouble();
  attrs.weight_decay = getWeightDecay().convertToDouble();
  return lowered(instruction, O::AdamWUpdate, attrs);
}

LogicalResult EmbeddingGradOp::lowerToPlan(PlanInstruction &instruction) {
  plan::EmbeddingGradAttrsT attrs;
  attrs.rows = static_cast<int64_t>(getRows());
  // A vocabulary id; in a rank's block of the table, its row there (the
  // rank's position is known now), or none when another rank holds it.
  if (std::optional<uint64_t> padding = getPaddingIdx()) {
    int64_t row = static_cast<int64_t>(*padding);
    if (DeviceGroupAttr group = getVocabGroupAttr())
      row -= instruction.positionIn(group) * attrs.rows;
    attrs.padding_idx = row >= 0 && row < attrs.rows ? row : -1;
  }
  return lowered(instruction, O::EmbeddingGrad, attrs);
}

LogicalResult ReduceOp::lowerToPlan(PlanInstruction &instruction) {
  plan::ReduceAttrsT attrs;
  attrs.kind = toPlan(getKind());
  attrs.keepdims = getKeepdims();
  for (int64_t axis : getAxes())
    attrs.axes.push_back(static_cast<int32_t>(axis));
  return lowered(instruction, O::Reduce, std::move(attrs));
}

LogicalResult SoftmaxOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::Softmax, axisAttrs(getAxis()));
}

static plan::NormAttrsT normAttrs(APFloat epsilon) {
  plan::NormAttrsT attrs;
  attrs.eps = epsilon.convertToDouble();
  return attrs;
}

LogicalResult LayerNormOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::LayerNorm, normAttrs(getEpsilon()));
}

LogicalResult RmsNormOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::RmsNorm, normAttrs(getEpsilon()));
}

LogicalResult AddNormOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, getRms() ? O::AddRmsNorm : O::AddLayerNorm,
                 normAttrs(getEpsilon()));
}

LogicalResult LayerNormGradOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::LayerNormGrad, normAttrs(getEpsilon()));
}

LogicalResult RmsNormGradOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::RmsNormGrad, normAttrs(getEpsilon()));
}

LogicalResult RotaryOp::lowerToPlan(PlanInstruction &instruction) {
  plan::RotaryAttrsT attrs;
  attrs.interleaved = getInterleaved();
  return lowered(instruction, O::Rotary, attrs);
}

/// Attention and its gradient share their attributes.
template <typename AttentionLike>
static LogicalResult lowerAttention(AttentionLike op, plan::Opcode opcode,
                                    PlanInstruction &instruction) {
  plan::AttentionAttrsT attrs;
  attrs.causal = op.getCausal();
  attrs.scale = op.getScale().convertToDouble();
  return lowered(instruction, opcode, attrs);
}

LogicalResult AttentionOp::lowerToPlan(PlanInstruction &instruction) {
  return lowerAttention(*this, O::Attention, instruction);
}

LogicalResult AttentionGradOp::lowerToPlan(PlanInstruction &instruction) {
  return lowerAttention(*this, O::AttentionGrad, instruction);
}

static plan::CrossEntropyAttrsT crossEntropyAttrs(ReduceKind reduction,
                                                  int64_t ignoreIndex) {
  plan::CrossEntropyAttrsT attrs;
  attrs.reduction = toPlan(reduction);
  attrs.ignore_index = ignoreIndex;
  return attrs;
}

LogicalResult CrossEntropyOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::CrossEntropy,
                 crossEntropyAttrs(getReduction(), getIgnoreIndex()));
}

LogicalResult CrossEntropyGradOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::CrossEntropyGrad,
                 crossEntropyAttrs(getReduction(), getIgnoreIndex()));
}

LogicalResult AllReduceOp::lowerToPlan(PlanInstruction &instruction) {
  AllReduceOp r = *this;
  plan::AllReduceAttrsT attrs;
  attrs.group = static_cast<int32_t>(instruction.groupIndex(r.getGroup()));
  attrs.reduction = toPlan(r.getKind());
  return lowered(instruction, O::AllReduce, attrs);
}

LogicalResult AllGatherOp::lowerToPlan(PlanInstruction &instruction) {
  AllGatherOp a = *this;
  plan::CollectiveAxisAttrsT attrs;
  attrs.group = static_cast<int32_t>(instruction.groupIndex(a.getGroup()));
  attrs.axis = static_cast<int32_t>(a.getAxis());
  return lowered(instruction, O::AllGather, attrs);
}

LogicalResult AllToAllOp::lowerToPlan(PlanInstruction &instruction) {
  AllToAllOp a = *this;
  plan::AllToAllAttrsT attrs;
  attrs.group = static_cast<int32_t>(instruction.groupIndex(a.getGroup()));
  attrs.split_axis = static_cast<int32_t>(a.getSplitAxis());
  attrs.concat_axis = static_cast<int32_t>(a.getConcatAxis());
  return lowered(instruction, O::AllToAll, attrs);
}

LogicalResult ReduceScatterOp::lowerToPlan(PlanInstruction &instruction) {
  ReduceScatterOp r = *this;
  plan::CollectiveAxisAttrsT attrs;
  attrs.group = static_cast<int32_t>(instruction.groupIndex(r.getGroup()));
  attrs.axis = static_cast<int32_t>(r.getAxis());
  return lowered(instruction, O::ReduceScatter, attrs);
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
  return lowered(instruction, O::Slice, sliceAttrs(starts, limits, steps));
}

LogicalResult LogSoftmaxOp::lowerToPlan(PlanInstruction &instruction) {
  return lowered(instruction, O::LogSoftmax, axisAttrs(getAxis()));
}

LogicalResult ArgMaxOp::lowerToPlan(PlanInstruction &instruction) {
  plan::ArgMaxAttrsT attrs;
  attrs.axis = static_cast<int32_t>(getAxis());
  attrs.keepdims = getKeepdims();
  attrs.select_last_index = getSelectLastIndex();
  return lowered(instruction, O::ArgMax, attrs);
}
