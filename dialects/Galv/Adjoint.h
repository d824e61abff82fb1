//===- Adjoint.h - what an AdjointOpInterface rule builds with --*- C++ -*-===//
//
// galv-autodiff (lib/Transforms/Autodiff.cpp) walks the forward ops
// backwards and asks each op's AdjointOpInterface rule
// (GalvAdjoints.cpp) to turn its results' adjoints into its operands'. The
// rules build galv ops through this builder and hand each operand adjoint
// to accumulate(), which sums adjoints of values used several times.
//
//===----------------------------------------------------------------------===//

#ifndef GALV_ADJOINT_H
#define GALV_ADJOINT_H

#include "Galv/Builders.h"
#include "Galv/Galv.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::galv {

class AdjointBuilder {
public:
  AdjointBuilder(OpBuilder &builder, Location loc) : b(builder), loc(loc) {}

  /// Whether `v` depends on a trainable parameter (needs an adjoint).
  bool needs(Value v) {
    auto it = regatheredFrom.find(v);
    return requiresGrad.contains(it != regatheredFrom.end() ? it->second : v);
  }
  /// Adds `g` to the adjoint of `v` (when `v` needs one).
  void accumulate(Value v, Value g);
  /// The refusal of an op without a derivative.
  LogicalResult refuse(Operation *op, const Twine &why);
  /// An op of inferred result type; when its operands do not fit (a rule's
  /// bug) the error names the forward op instead of aborting.
  template <typename OpTy, typename... Args>
  FailureOr<OpTy> create(Args &&...args) {
    return createInferred<OpTy>(b, loc, forward ? forward->getLoc() : loc, 1,
                                std::forward<Args>(args)...);
  }

  // Small builders at the builder's insertion point.
  static RankedTensorType typeOf(Value v) {
    return cast<RankedTensorType>(v.getType());
  }
  Value splat(double value, RankedTensorType like);
  Value zerosLike(RankedTensorType type);
  Value add(Value x, Value y) { return AddOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return SubOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return MulOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return DivOp::create(b, loc, x, y); }
  Value neg(Value x) { return NegOp::create(b, loc, x); }
  Value scale(Value x, double c) { return mul(x, splat(c, typeOf(x))); }
  Value reshape(Value x, ArrayRef<int64_t> shape);
  Value transposeLast2(Value x);
  Value sumLast(Value x, bool keep);
  Value meanLast(Value x);
  /// An i1 mask as floats of `like`'s element type.
  Value asFloat(Value mask, RankedTensorType like);
  /// Sums `g` down to `target`'s shape (numpy broadcasting in reverse).
  Value unbroadcast(Value g, RankedTensorType target);
  /// one_hot(ids) as [M, V] floats, with M = ids' element count.
  Value oneHot(Value ids, int64_t classes, Type element);
  /// Sums `v` of shape [..., d] over every row: a [d] column sum.
  Value columnSum(Value v);

  OpBuilder &b;
  Location loc;
  /// The op whose adjoint is being built.
  Operation *forward = nullptr;
  /// Rules with a fused gradient op (cross-entropy, the norms) emit it;
  /// false: the same gradient as a chain of forward ops (galv-autodiff's
  /// fused-backward option, to measure what each fusion gains).
  bool fusedBackward = true;
  /// galv.attention's adjoint as one galv.attention_grad (else matmuls and
  /// a softmax over the [B, H, Sq, Sk] scores).
  bool fusedAttention = true;
  DenseMap<Value, Value> adjoints;
  DenseSet<Value> requiresGrad;
  /// ZeRO-3 parameters gathered again for the backward, to their forward
  /// gathers.
  DenseMap<Value, Value> regatheredFrom;
};

} // namespace mlir::galv

#endif // GALV_ADJOINT_H
