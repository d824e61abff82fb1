//===- AssignStages.cpp - every op's pipeline stage, made explicit --------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::galv {
#define GEN_PASS_DEF_ASSIGNSTAGES
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
/// The stage of an op that runs on every stage.
constexpr int64_t kEveryStage = -1;

/// Each op's stage from its operands' stages, else its own tag. Transfers
/// run on both ends (their stage here is the sending one, as their users
/// see it) and broadcasts on every stage.
LogicalResult stagesFromOperands(Block &body,
                                 DenseMap<Operation *, int64_t> &opStage) {
  DenseMap<Value, int64_t> valueStage;
  for (Operation &op : body.without_terminator()) {
    if (auto transfer = dyn_cast<StageTransferOp>(op)) {
      opStage[&op] = transfer.getFrom();
      valueStage[transfer.getResult()] = transfer.getTo();
      continue;
    }
    if (isa<StageBroadcastOp>(op)) {
      opStage[&op] = kEveryStage;
      continue;
    }
    int64_t stage = kEveryStage;
    for (Value operand : op.getOperands()) {
      auto it = valueStage.find(operand);
      if (it == valueStage.end() || it->second < 0)
        continue;
      if (stage >= 0 && stage != it->second)
        return op.emitError("uses values of pipeline stages ")
               << stage << " and " << it->second << " without a transfer";
      stage = it->second;
    }
    if (stage < 0)
      if (auto tag =
              op.getAttrOfType<IntegerAttr>(GalvDialect::getStageAttrName()))
        stage = tag.getInt();
    opStage[&op] = stage;
    for (Value result : op.getResults())
      valueStage[result] = stage;
  }
  return success();
}

/// Ops on no stage yet (arithmetic on arguments and constants, such as the
/// weight decay of a parameter) run where all their users run.
void stagesFromUsers(Block &body, DenseMap<Operation *, int64_t> &opStage) {
  for (Operation &op : llvm::reverse(body.without_terminator())) {
    if (opStage[&op] >= 0 || isa<StageTransferOp, StageBroadcastOp>(op))
      continue;
    constexpr int64_t kNoUser = -2;
    int64_t stage = kNoUser;
    for (Operation *user : op.getUsers()) {
      int64_t userStage =
          user == body.getTerminator() ? kEveryStage : opStage.lookup(user);
      stage = stage == kNoUser || stage == userStage ? userStage : kEveryStage;
    }
    if (stage >= 0)
      opStage[&op] = stage;
  }
}

struct AssignStagesPass : galv::impl::AssignStagesBase<AssignStagesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(function.getValue());
    if (!func || func.isExternal()) {
      module.emitError("galv-assign-stages needs a func.func @")
          << function.getValue();
      return signalPassFailure();
    }
    Block &body = func.getBody().front();
    DenseMap<Operation *, int64_t> opStage;
    if (failed(stagesFromOperands(body, opStage)))
      return signalPassFailure();
    stagesFromUsers(body, opStage);
    auto i64 = IntegerType::get(&getContext(), 64);
    for (Operation &op : body.without_terminator()) {
      if (isa<StageTransferOp, StageBroadcastOp>(op))
        continue;
      int64_t stage = opStage.lookup(&op);
      if (stage >= 0)
        op.setAttr(GalvDialect::getStageAttrName(),
                   IntegerAttr::get(i64, stage));
      else
        op.removeAttr(GalvDialect::getStageAttrName());
    }
  }
};
} // namespace
