//===- TrainingStep.h - the @batch_grad contract of the optimizer passes --===//
//
// The optimizer is four passes that meet in one function:
//
//   galv-accumulate-micro-batches  @loss_grad -> @batch_grad(data...,
//   params...)
//                                  -> (loss, grads...), averaged over the
//                                  micro-batches the stacked data holds
//   galv-sync-gradients            data-parallel all-reduce / ZeRO-2
//                                  reduce-scatter of each gradient result
//   galv-clip-gradients            global-norm clipping across shards/stages
//   galv-adamw                     @train_step: @batch_grad plus the update
//
// A parameter argument names its parameter (`galv.param`) and carries how
// @loss_grad read it: `galv.shard`, `galv.stage`, and `galv.grad_sync` until
// galv-sync-gradients moves that onto the gradient result it synchronised.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_TRANSFORMS_TRAININGSTEP_H
#define GALVATRON_TRANSFORMS_TRAININGSTEP_H

#include "Galv/Galv.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::galv {

/// The function the optimizer passes build and rewrite.
constexpr StringLiteral kBatchGradName = "batch_grad";
/// Argument attribute of @batch_grad: the parameter the argument holds (the
/// same `galv.param` that marks @train_step's state).
constexpr StringLiteral kParamArgAttrName = GalvDialect::getParamAttrName();

/// The number of data arguments of @batch_grad (parameters follow them).
unsigned numDataArgs(func::FuncOp batchGrad);

/// @batch_grad; a null function when @train_step was built from it already
/// (nothing left to do); an error naming `pass` when there is neither.
FailureOr<func::FuncOp> lookupBatchGrad(ModuleOp module, StringRef pass);

/// An error naming `pass` when a parameter argument of @batch_grad still
/// carries `galv.grad_sync` (galv-sync-gradients has not run).
LogicalResult checkSynchronised(func::FuncOp batchGrad, StringRef pass);

/// How one gradient is synchronised over its data-parallel group.
struct GradSync {
  /// ZeRO-2: reduce-scattered, each rank keeps a flat padded piece.
  bool zero2 = false;
  /// The data-parallel group; null: not synchronised.
  DeviceGroupAttr group;
  /// Elements of the parameter, and rounded up to a multiple of the group.
  int64_t count = 0, padded = 0;

  bool synchronised() const { return static_cast<bool>(group); }
};

/// The synchronisation a `galv.grad_sync` attribute describes for a
/// parameter of type `param` (no synchronisation when `attr` is null).
GradSync gradSyncOf(Attribute attr, RankedTensorType param);

/// `x` flattened and zero-padded to `sync.padded` elements.
Value flatPadded(OpBuilder &b, Location loc, Value x, const GradSync &sync);

/// A scalar f32 constant.
Value scalarConstant(OpBuilder &b, Location loc, double value);

} // namespace mlir::galv

#endif // GALVATRON_TRANSFORMS_TRAININGSTEP_H
