//===- Autocast.cpp - bf16 mixed precision, as PyTorch's autocast ---------===//
//
// One walk over each function in program order: an op's operands are
// converted to the precision it computes in (its AutocastOpInterface rule,
// or the widest of its floating operands), and its floating results take
// that precision, so later ops see the types they will be run on. Only f32
// and bf16 values take part; integers, masks and f64 keep their types.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::galv {
#define GEN_PASS_DEF_AUTOCAST
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
/// Whether `v` is an f32 or bf16 tensor: the values autocast converts.
bool isAutocastFloat(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type &&
         (type.getElementType().isF32() || type.getElementType().isBF16());
}

RankedTensorType withElement(Value v, Type element) {
  return cast<RankedTensorType>(v.getType()).clone(element);
}

/// The galv attributes (stage, layer, strategy, micro-batch) of `from`, so
/// that a conversion belongs where the op it serves does.
void copyGalvAttrs(Operation *from, Operation *to) {
  for (NamedAttribute attr : from->getDiscardableAttrs())
    if (attr.getName().strref().starts_with("galv."))
      to->setAttr(attr.getName(), attr.getValue());
}

/// Replicates already made to carry bf16 (one per original).
using NarrowedReplicates = DenseMap<Operation *, Value>;

/// `v` converted to `element` before `user`. A narrowing of Megatron's `f`
/// (galv.replicate, an identity whose gradient is all-reduced) narrows its
/// input instead, once, so that the all-reduce moves bf16 as Megatron's
/// does.
Value convert(OpBuilder &b, Value v, Type element, Operation *user,
              NarrowedReplicates &narrowed) {
  auto replicate = v.getDefiningOp<ReplicateOp>();
  if (replicate && element.isBF16()) {
    Value &done = narrowed[replicate];
    if (!done) {
      Value input =
          convert(b, replicate.getInput(), element, replicate, narrowed);
      b.setInsertionPoint(replicate);
      auto copy = ReplicateOp::create(b, replicate.getLoc(), input,
                                      replicate.getGroup());
      copyGalvAttrs(replicate, copy);
      done = copy;
    }
    return done;
  }
  b.setInsertionPoint(user);
  auto cast = CastOp::create(b, user->getLoc(), withElement(v, element), v);
  copyGalvAttrs(user, cast);
  return cast;
}

/// The element type `op` computes in, and which operands it converts;
/// null when none of its operands is an f32 or bf16 tensor.
Type computeType(Operation *op, SmallVectorImpl<unsigned> &converted) {
  Builder b(op->getContext());
  auto rule = dyn_cast<AutocastOpInterface>(op);
  bool anyF32 = false, anyFloat = false;
  for (OpOperand &operand : op->getOpOperands()) {
    if (!isAutocastFloat(operand.get()) ||
        (rule && !rule.autocastsOperand(operand.getOperandNumber())))
      continue;
    converted.push_back(operand.getOperandNumber());
    anyFloat = true;
    anyF32 |= getElementTypeOrSelf(operand.get().getType()).isF32();
  }
  if (!anyFloat)
    return Type();
  if (rule)
    return rule.getAutocastPolicy() == AutocastPolicy::Lower
               ? Type(b.getBF16Type())
               : Type(b.getF32Type());
  return anyF32 ? Type(b.getF32Type()) : Type(b.getBF16Type());
}

void autocastOp(OpBuilder &b, Operation *op, NarrowedReplicates &narrowed) {
  SmallVector<unsigned> converted;
  Type element = computeType(op, converted);
  if (!element)
    return;
  for (unsigned index : converted) {
    Value v = op->getOperand(index);
    if (getElementTypeOrSelf(v.getType()) != element)
      op->setOperand(index, convert(b, v, element, op, narrowed));
  }
  for (OpResult result : op->getResults())
    if (isAutocastFloat(result))
      result.setType(withElement(result, element));
}

/// Results leave with the types the signature promises.
void restoreReturnTypes(OpBuilder &b, func::FuncOp function) {
  function.walk([&](func::ReturnOp ret) {
    for (auto [operand, type] :
         llvm::zip(ret->getOpOperands(), function.getResultTypes()))
      if (operand.get().getType() != type && isAutocastFloat(operand.get())) {
        b.setInsertionPoint(ret);
        Value v = operand.get();
        auto cast = CastOp::create(b, ret.getLoc(), type, v);
        if (Operation *def = v.getDefiningOp())
          copyGalvAttrs(def, cast);
        operand.set(cast);
      }
  });
}

struct AutocastPass : galv::impl::AutocastBase<AutocastPass> {
  void runOnOperation() override {
    OpBuilder b(&getContext());
    for (auto function : getOperation().getOps<func::FuncOp>()) {
      if (function.isExternal())
        continue;
      SmallVector<Operation *> ops;
      function.walk([&](Operation *op) {
        // Casts say their own types; constants have no operands.
        if (isa<GalvDialect>(op->getDialect()) && !isa<CastOp>(op))
          ops.push_back(op);
      });
      NarrowedReplicates narrowed;
      for (Operation *op : ops)
        autocastOp(b, op, narrowed);
      // An f32 replicate whose every reader took the bf16 one is gone.
      for (auto [replicate, copy] : narrowed)
        if (replicate->use_empty())
          replicate->erase();
      restoreReturnTypes(b, function);
    }
  }
};
} // namespace
