//===- GalvCosts.cpp - the work each galv op does -------------------------===//
//
// CostOpInterface for every galv op: FLOPs and bytes from the op's types.
// On a partitioned program the types are one rank's pieces, so the cost of
// a layer at tensor-parallel degree t is the cost of its program
// partitioned at t. Elementwise ops count one operation per result element
// (transcendental functions included: the cost model calibrates the rate);
// data movement counts bytes only.
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"

using namespace mlir;
using namespace mlir::galv;

static RankedTensorType typeOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

static int64_t bytesOf(Value v) {
  RankedTensorType t = typeOf(v);
  int64_t width = std::max<int64_t>(1, t.getElementTypeBitWidth() / 8);
  return t.getNumElements() * width;
}

int64_t mlir::galv::operandBytes(Operation *op) {
  int64_t total = 0;
  for (Value v : op->getOperands())
    total += bytesOf(v);
  return total;
}

int64_t mlir::galv::resultBytes(Operation *op) {
  int64_t total = 0;
  for (Value v : op->getResults())
    total += bytesOf(v);
  return total;
}

OpCost mlir::galv::elementwiseCost(Operation *op) {
  OpCost cost;
  for (Value v : op->getResults())
    cost.flops += typeOf(v).getNumElements();
  cost.bytesRead = operandBytes(op);
  cost.bytesWritten = resultBytes(op);
  return cost;
}

/// Reads its operands and writes its results, computing nothing.
static OpCost movementCost(Operation *op) {
  OpCost cost;
  cost.bytesRead = operandBytes(op);
  cost.bytesWritten = resultBytes(op);
  return cost;
}

/// `perElement` operations per element of the first operand.
static OpCost perInputElement(Operation *op, double perElement) {
  OpCost cost = movementCost(op);
  cost.flops = perElement * typeOf(op->getOperand(0)).getNumElements();
  return cost;
}

#define GALV_ELEMENTWISE_COST(Op)                                              \
  OpCost Op::getCost() { return elementwiseCost(*this); }
GALV_ELEMENTWISE_COST(AddOp)
GALV_ELEMENTWISE_COST(SubOp)
GALV_ELEMENTWISE_COST(MulOp)
GALV_ELEMENTWISE_COST(DivOp)
GALV_ELEMENTWISE_COST(PowOp)
GALV_ELEMENTWISE_COST(MaxOp)
GALV_ELEMENTWISE_COST(MinOp)
GALV_ELEMENTWISE_COST(AndOp)
GALV_ELEMENTWISE_COST(OrOp)
GALV_ELEMENTWISE_COST(CompareOp)
GALV_ELEMENTWISE_COST(NegOp)
GALV_ELEMENTWISE_COST(NotOp)
GALV_ELEMENTWISE_COST(AbsOp)
GALV_ELEMENTWISE_COST(ExpOp)
GALV_ELEMENTWISE_COST(LogOp)
GALV_ELEMENTWISE_COST(SqrtOp)
GALV_ELEMENTWISE_COST(RsqrtOp)
GALV_ELEMENTWISE_COST(ReciprocalOp)
GALV_ELEMENTWISE_COST(TanhOp)
GALV_ELEMENTWISE_COST(ErfOp)
GALV_ELEMENTWISE_COST(SigmoidOp)
GALV_ELEMENTWISE_COST(ReluOp)
GALV_ELEMENTWISE_COST(SiluOp)
GALV_ELEMENTWISE_COST(GeluOp)
GALV_ELEMENTWISE_COST(WhereOp)
GALV_ELEMENTWISE_COST(EmbeddingGradOp)
GALV_ELEMENTWISE_COST(AdamWUpdateOp)
GALV_ELEMENTWISE_COST(GeluGradOp)
#undef GALV_ELEMENTWISE_COST

#define GALV_MOVEMENT_COST(Op)                                                 \
  OpCost Op::getCost() { return movementCost(*this); }
GALV_MOVEMENT_COST(CastOp)
GALV_MOVEMENT_COST(ReshapeOp)
GALV_MOVEMENT_COST(TransposeOp)
GALV_MOVEMENT_COST(SliceOp)
GALV_MOVEMENT_COST(ConcatOp)
GALV_MOVEMENT_COST(SplitOp)
GALV_MOVEMENT_COST(ExpandOp)
GALV_MOVEMENT_COST(GatherOp)
GALV_MOVEMENT_COST(EmbeddingOp)
GALV_MOVEMENT_COST(AllGatherOp)
GALV_MOVEMENT_COST(AllToAllOp)
GALV_MOVEMENT_COST(ShardSliceOp)
GALV_MOVEMENT_COST(StageTransferOp)
GALV_MOVEMENT_COST(StageBroadcastOp)
#undef GALV_MOVEMENT_COST

// Reductions over a group add one operand per element received.
OpCost AllReduceOp::getCost() { return perInputElement(*this, 1); }
OpCost ReduceScatterOp::getCost() { return perInputElement(*this, 1); }
OpCost ReduceOp::getCost() { return perInputElement(*this, 1); }

// Storage and aliases: nothing runs.
OpCost ConstantOp::getCost() { return {}; }
OpCost GetParameterOp::getCost() { return {}; }
OpCost ReplicateOp::getCost() { return {}; }

OpCost MatmulOp::getCost() {
  RankedTensorType lhs = typeOf(getLhs()), out = typeOf(getResult());
  OpCost cost = movementCost(*this);
  int64_t k = getTransposeLhs() ? lhs.getDimSize(lhs.getRank() - 2)
                                : lhs.getShape().back();
  cost.flops = 2.0 * out.getNumElements() * k;
  return cost;
}

OpCost LinearOp::getCost() {
  OpCost cost = movementCost(*this);
  double outputs = typeOf(getResult()).getNumElements();
  cost.flops = 2.0 * outputs * getInFeatures() + (getBias() ? outputs : 0);
  return cost;
}

// Max, subtract, exponential, sum, divide per element.
OpCost SoftmaxOp::getCost() { return perInputElement(*this, 5); }
// Mean, centre, square, mean, scale and shift per element.
OpCost LayerNormOp::getCost() { return perInputElement(*this, 8); }
OpCost RmsNormOp::getCost() { return perInputElement(*this, 5); }
// The add, then the norm of the sum.
OpCost AddNormOp::getCost() { return perInputElement(*this, getRms() ? 6 : 9); }
// Two products and a sum per element.
OpCost RotaryOp::getCost() { return perInputElement(*this, 3); }
// Softmax of the logits, then the picked log-probability.
OpCost CrossEntropyOp::getCost() { return perInputElement(*this, 5); }
// Max, exponential, sum, scale and the label's subtraction per logit.
OpCost CrossEntropyGradOp::getCost() { return perInputElement(*this, 5); }
// The row statistics again, xhat, two row sums of the scaled gradient, dx,
// and the column sums for the scale (and bias).
OpCost LayerNormGradOp::getCost() { return perInputElement(*this, 14); }
OpCost RmsNormGradOp::getCost() { return perInputElement(*this, 10); }

/// Attention-shaped work: `perScoreDim` flops per score and head dimension
/// (products), `perScore` per score (softmax and the like).
template <typename AttentionLike>
static OpCost attentionCost(AttentionLike op, double perScoreDim,
                            double perScore) {
  RankedTensorType q = typeOf(op.getQuery()), k = typeOf(op.getKey());
  double scores = static_cast<double>(q.getDimSize(0)) * q.getDimSize(1) *
                  q.getDimSize(2) * k.getDimSize(2);
  OpCost cost = movementCost(op);
  cost.flops = perScoreDim * scores * q.getDimSize(3) + perScore * scores;
  return cost;
}

// Scores q k^T and the weighted sum p v (two multiply-adds per score and
// head dimension each), plus the softmax of the scores.
OpCost AttentionOp::getCost() { return attentionCost(*this, 4, 5); }
// Scores q k^T recomputed, then dv += p^T g, dp = g v^T, dq = ds k and
// dk += ds^T q, plus the softmax and ds per score.
OpCost AttentionGradOp::getCost() { return attentionCost(*this, 10, 8); }

// Max, subtract, exponential, sum, logarithm, subtract per element.
OpCost LogSoftmaxOp::getCost() { return perInputElement(*this, 6); }
// One comparison per element.
OpCost ArgMaxOp::getCost() { return perInputElement(*this, 1); }
