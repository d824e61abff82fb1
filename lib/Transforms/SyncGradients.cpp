//===- SyncGradients.cpp - data-parallel gradient synchronisation ---------===//
//
// Each gradient result of @batch_grad whose parameter argument carries
// `galv.grad_sync` is a partial sum over a data-parallel group: DDP
// all-reduces it, ZeRO-2 reduce-scatters it in flat, zero-padded form (the
// rank then holds and updates its piece). The attribute moves from the
// argument to the synchronised result, which is how galv-clip-gradients and
// galv-adamw know a gradient is ready and which ones are pieces.
//
//===----------------------------------------------------------------------===//

#include "TrainingStep.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::galv {
#define GEN_PASS_DEF_SYNCGRADIENTS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

struct SyncGradientsPass : galv::impl::SyncGradientsBase<SyncGradientsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<func::FuncOp> batchGrad =
        lookupBatchGrad(module, "galv-sync-gradients");
    if (failed(batchGrad))
      return signalPassFailure();
    if (!*batchGrad)
      return;
    func::FuncOp f = *batchGrad;
    StringRef syncName = GalvDialect::getGradSyncAttrName();
    unsigned numData = numDataArgs(f);
    auto ret = cast<func::ReturnOp>(f.getBody().front().getTerminator());
    OpBuilder b(ret);
    Location loc = f.getLoc();
    SmallVector<Type> results(f.getResultTypes());
    for (unsigned arg = numData; arg < f.getNumArguments(); ++arg) {
      Attribute attr = f.getArgAttr(arg, syncName);
      if (!attr)
        continue;
      unsigned result = 1 + arg - numData;
      GradSync sync = gradSyncOf(
          attr, cast<RankedTensorType>(f.getArgument(arg).getType()));
      Value g = ret.getOperand(result);
      if (sync.zero2)
        g = ReduceScatterOp::create(b, loc, flatPadded(b, loc, g, sync), 0,
                                    sync.group);
      else
        g = AllReduceOp::create(b, loc, ReduceKind::sum, g, sync.group);
      ret.setOperand(result, g);
      results[result] = g.getType();
      f.removeArgAttr(arg, syncName);
      f.setResultAttr(result, syncName, attr);
    }
    f.setType(FunctionType::get(f.getContext(), f.getArgumentTypes(), results));
  }
};

} // namespace
