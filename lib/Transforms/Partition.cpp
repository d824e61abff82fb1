//===- Partition.cpp - per-rank SPMD program from layer strategies --------===//
//
// Rewrites @loss (layers inlined, each op stamped with its layer's
// #galv.strategy) into the program one rank of a pipeline stage runs: values
// get this rank's piece, parameters are cut, and collectives go where
// Megatron-LM and ZeRO put them. This pass is the driver: it assigns
// pipeline stages, lays out the data inputs, and walks the ops in order,
// asking each op's PartitionOpInterface rule (dialects/Galv/
// GalvPartitionRules.cpp) to rewrite it; PartitionState
// (dialects/Galv/Partitioning.h) tracks, per value, which dimensions are
// split over which device group:
//
// * data parallelism splits the batch dimension over the op's dp group; a
//   value arriving with another split is regathered and resliced;
// * tensor parallelism: a linear whose input is whole is column-parallel
//   (weight cut along its outputs, input entering through galv.replicate,
//   Megatron's f), a linear whose input is split along its features is
//   row-parallel (weight cut along its inputs, galv.all_reduce after it,
//   Megatron's g, then the bias); attention runs on this rank's heads;
// * ZeRO-3 parameters are held flat and sharded, and gathered on use (the
//   gather's gradient is reduce-scattered); DDP and ZeRO-2 parameters are
//   marked so that galv-sync-gradients reduces their gradients once.
//
// Gradients then come from galv-autodiff, through the collectives' adjoints.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

#include "Galv/Partitioning.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::galv {
#define GEN_PASS_DEF_PARTITION
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

/// With pipeline stages: tags every op with the stage that runs it.
static void assignStages(Block &body, PlanConfigAttr plan) {
  if (plan.getPp() == 1)
    return;
  // Layer ops run on their layer's stage; the embedding before the first
  // layer on stage 0, the head and loss after the last on the last stage.
  MLIRContext *context = body.getParentOp()->getContext();
  auto tag = [&](Operation *op, int64_t stage) {
    op->setAttr(GalvDialect::getStageAttrName(),
                IntegerAttr::get(IntegerType::get(context, 64), stage));
  };
  bool seenLayer = false;
  for (Operation &op : body.without_terminator()) {
    if (auto s = op.getAttrOfType<StrategyAttr>(
            GalvDialect::getStrategyAttrName())) {
      seenLayer = true;
      tag(&op, s.getStage());
    } else if (!isa<ConstantOp, GetParameterOp>(op)) {
      tag(&op, seenLayer ? plan.getPp() - 1 : 0);
    }
  }
  // A parameter is read on the stage of its first user; other stages get
  // it by transfer (a tied embedding and head).
  for (Operation &op : body.without_terminator())
    for (Value v : op.getOperands())
      if (auto get = v.getDefiningOp<GetParameterOp>())
        if (stageOf(get) < 0 && stageOf(&op) >= 0)
          tag(get, stageOf(&op));
}

/// Rewrites `func` into the program of one rank of a stage.
static LogicalResult partitionFunction(PartitionState &s) {
  func::FuncOp func = s.func;
  const Axes &otherAxes = s.otherAxes;
  Block &body = func.getBody().front();
  // Data inputs: the batch (dimension 0) is split over the dp group of the
  // embedding / head layers and cut by the runtime.
  SmallVector<Type> inputTypes;
  for (BlockArgument arg : body.getArguments()) {
    RankedTensorType g = PartitionState::typeOf(arg);
    Layout l = Layout::whole(g.getRank());
    if (g.getRank() > 0) {
      l.batchDim = 0;
      if (!otherAxes.dp.whole()) {
        if (g.getDimSize(0) % otherAxes.dp.size != 0)
          return s.fail(func, "batch of " + Twine(g.getDimSize(0)) +
                                  " does not split over dp = " +
                                  Twine(otherAxes.dp.size));
        l.dims[0] = otherAxes.dp;
        func.setArgAttr(arg.getArgNumber(), GalvDialect::getShardAttrName(),
                        ShardAttr::get(func.getContext(),
                                       CutAttr::get(func.getContext(), 0, 1,
                                                    s.groupAttr(otherAxes.dp)),
                                       DeviceGroupAttr()));
      }
    }
    s.setLayout(arg, l);
    s.dataDerived.insert(arg);
    inputTypes.push_back(arg.getType());
  }
  assignStages(body, s.plan);
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator()) {
    ops.push_back(&op);
    if (auto e = dyn_cast<EmbeddingOp>(op))
      s.vocabularyRows = std::max(
          s.vocabularyRows, PartitionState::typeOf(e.getTable()).getDimSize(0));
  }
  for (Operation *op : ops)
    if (failed(s.partition(op)))
      return failure();
  if (failed(s.finishParams()))
    return failure();
  // The loss is whole on every rank.
  Operation *ret = body.getTerminator();
  for (unsigned i = 0; i < ret->getNumOperands(); ++i)
    if (s.layoutOf(ret->getOperand(i)).anySplit())
      return s.fail(ret, "result " + Twine(i) + " is split over ranks");
  func.setFunctionType(
      FunctionType::get(func.getContext(), inputTypes, ret->getOperandTypes()));
  return success();
}

namespace {
struct PartitionPass : galv::impl::PartitionBase<PartitionPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan =
        module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
    if (!plan || plan.getWorldSize() == 1)
      return;
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    if (!loss || loss.isExternal()) {
      mlir::emitError(module.getLoc(),
                      "galv-partition needs func.func @loss (run "
                      "galv-append-loss)");
      return signalPassFailure();
    }
    if (module.lookupSymbol("loss_grad")) {
      mlir::emitError(module.getLoc(),
                      "galv-partition runs before galv-autodiff");
      return signalPassFailure();
    }
    if (plan.getVocabSp() == SequenceParallelKind::ulysses) {
      mlir::emitError(module.getLoc(),
                      "galv-partition: the embedding and head take Megatron "
                      "sequence parallelism (vocab_sp = megatron), not "
                      "Ulysses: they have no attention");
      return signalPassFailure();
    }
    // The embedding and head ("other" layers) use all devices of a stage:
    // vocab_tp-way tensor parallel, the rest data parallel.
    int64_t devices = plan.getDevicesPerStage();
    DataParallelKind otherKind = plan.getEmbedZero3() ? DataParallelKind::zero3
                                                      : plan.getDefaultDpKind();
    int64_t otherDp = devices / plan.getVocabTp();
    auto other = StrategyAttr::get(
        module.getContext(), plan.getVocabTp(), otherDp, true,
        otherDp > 1 ? otherKind : DataParallelKind::ddp,
        plan.getVocabTp() > 1 ? plan.getVocabSp() : SequenceParallelKind::none,
        false, 0);
    PartitionState state(loss, plan, other);
    if (failed(partitionFunction(state)))
      return signalPassFailure();
  }
};

} // namespace
