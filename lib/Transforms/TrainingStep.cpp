//===- TrainingStep.cpp - the @batch_grad contract of the optimizer passes ===//

#include "TrainingStep.h"

using namespace mlir;
using namespace mlir::galv;

unsigned mlir::galv::numDataArgs(func::FuncOp batchGrad) {
  unsigned n = 0;
  while (n < batchGrad.getNumArguments() &&
         !batchGrad.getArgAttr(n, kParamArgAttrName))
    ++n;
  return n;
}

FailureOr<func::FuncOp> mlir::galv::lookupBatchGrad(ModuleOp module,
                                                    StringRef pass) {
  auto batchGrad = module.lookupSymbol<func::FuncOp>(kBatchGradName);
  if (!batchGrad && module.lookupSymbol("train_step"))
    return func::FuncOp();
  if (!batchGrad || batchGrad.isExternal()) {
    module.emitError(pass) << " needs func.func @" << kBatchGradName
                           << " (run galv-accumulate-micro-batches)";
    return failure();
  }
  return batchGrad;
}

LogicalResult mlir::galv::checkSynchronised(func::FuncOp batchGrad,
                                            StringRef pass) {
  for (unsigned arg = numDataArgs(batchGrad); arg < batchGrad.getNumArguments();
       ++arg)
    if (batchGrad.getArgAttr(arg, GalvDialect::getGradSyncAttrName()))
      return batchGrad.emitError(pass)
             << ": the gradient of argument " << arg
             << " is not synchronised yet (run galv-sync-gradients)";
  return success();
}

GradSync mlir::galv::gradSyncOf(Attribute attr, RankedTensorType param) {
  GradSync sync;
  sync.count = sync.padded = param.getNumElements();
  auto grad = dyn_cast_or_null<GradSyncAttr>(attr);
  if (!grad)
    return sync;
  sync.zero2 = grad.getKind() == GradSyncKind::reduce_scatter;
  sync.group = grad.getGroup();
  int64_t size = sync.group.getSize();
  sync.padded = llvm::divideCeil(sync.count, size) * size;
  return sync;
}

Value mlir::galv::flatPadded(OpBuilder &b, Location loc, Value x,
                             const GradSync &sync) {
  auto element = cast<RankedTensorType>(x.getType()).getElementType();
  Value flat = ReshapeOp::create(
      b, loc, RankedTensorType::get({sync.count}, element), x);
  if (sync.padded == sync.count)
    return flat;
  Value zeros = ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(
          RankedTensorType::get({sync.padded - sync.count}, element),
          b.getFloatAttr(element, 0)));
  return ConcatOp::create(b, loc, ValueRange{flat, zeros}, 0);
}

Value mlir::galv::scalarConstant(OpBuilder &b, Location loc, double value) {
  auto scalar = RankedTensorType::get({}, b.getF32Type());
  return ConstantOp::create(
      b, loc, DenseElementsAttr::get(scalar, b.getF32FloatAttr(value)));
}
