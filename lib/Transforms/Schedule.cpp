//===- Schedule.cpp - one function per pipeline stage, in schedule order --===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <map>

namespace mlir::galv {
#define GEN_PASS_DEF_SCHEDULE
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
constexpr int64_t kEveryStage = -1;

/// `@<function>_stage<stage>`, where --emit-plan looks for it.
std::string stageFunctionName(StringRef function, int64_t stage) {
  return (function + "_stage" + Twine(stage)).str();
}

/// The stage galv-assign-stages gave `op` (transfers and broadcasts name
/// theirs themselves).
int64_t stageOf(Operation *op) {
  auto tag = op->getAttrOfType<IntegerAttr>(GalvDialect::getStageAttrName());
  return tag ? tag.getInt() : kEveryStage;
}

/// The stage a value lives on: a transfer's on its `to` end.
int64_t stageOf(Value value) {
  Operation *def = value.getDefiningOp();
  if (!def || isa<StageBroadcastOp>(def))
    return kEveryStage;
  if (auto transfer = dyn_cast<StageTransferOp>(def))
    return transfer.getTo();
  return stageOf(def);
}

bool runsOn(Operation &op, int64_t stage) {
  if (auto transfer = dyn_cast<StageTransferOp>(op))
    return static_cast<int64_t>(transfer.getFrom()) == stage ||
           static_cast<int64_t>(transfer.getTo()) == stage;
  int64_t s = stageOf(&op);
  return s < 0 || s == stage;
}

/// The contract galv-assign-stages establishes: every op reads only values
/// that live on its stage or on every stage.
LogicalResult checkStages(Block &body) {
  for (Operation &op : body.without_terminator()) {
    if (isa<StageBroadcastOp>(op))
      continue;
    int64_t stage = stageOf(&op);
    if (auto transfer = dyn_cast<StageTransferOp>(op))
      stage = transfer.getFrom();
    if (isa<LayerOp>(op))
      return op.emitError("layers must be inlined before galv-schedule (run "
                          "galv-inline-layers)");
    for (Value operand : op.getOperands()) {
      int64_t valueStage = stageOf(operand);
      if (valueStage < 0 || valueStage == stage)
        continue;
      InFlightDiagnostic diag = op.emitError();
      if (stage < 0)
        diag << "runs on every stage";
      else
        diag << "runs on stage " << stage;
      return diag << " but reads a value of stage " << valueStage
                  << ": run galv-assign-stages first";
    }
  }
  return success();
}

/// Stage `stage`'s ops of `body` in execution order: what comes before the
/// micro-batches with every constant and parameter read, each micro-batch's
/// forward and backward passes in the schedule's order, what comes after
/// (gradient sync, the optimizer).
SmallVector<Operation *> order(Block &body, int64_t stage, int64_t stages,
                               PipelineSchedule schedule) {
  SmallVector<Operation *> before, after;
  std::map<std::pair<int64_t, bool>, SmallVector<Operation *>> passes;
  int64_t micro = 0;
  for (Operation &op : body.without_terminator()) {
    if (!runsOn(op, stage))
      continue;
    auto tag =
        op.getAttrOfType<IntegerAttr>(GalvDialect::getMicroBatchAttrName());
    // Constants (folding may have merged them across micro-batches) are
    // not instructions: they come first.
    if (isa<ConstantOp, GetParameterOp>(op)) {
      before.push_back(&op);
    } else if (tag) {
      micro = std::max(micro, tag.getInt() + 1);
      passes[{tag.getInt(), op.hasAttr(GalvDialect::getBackwardAttrName())}]
          .push_back(&op);
    } else {
      (passes.empty() ? before : after).push_back(&op);
    }
  }
  SmallVector<Operation *> ordered = before;
  auto pass = [&](int64_t m, bool backward) {
    llvm::append_range(ordered, passes[{m, backward}]);
  };
  if (stages == 1) {
    for (int64_t m = 0; m < micro; ++m) {
      pass(m, false);
      pass(m, true);
    }
  } else if (schedule == PipelineSchedule::gpipe) {
    for (int64_t m = 0; m < micro; ++m)
      pass(m, false);
    for (int64_t m = 0; m < micro; ++m)
      pass(m, true);
  } else {
    // 1F1B: warm up with as many forwards as stages after this one, then
    // alternate, then drain the backwards.
    int64_t warmup = std::min<int64_t>(stages - stage - 1, micro);
    for (int64_t m = 0; m < warmup; ++m)
      pass(m, false);
    for (int64_t m = 0; m + warmup < micro; ++m) {
      pass(m + warmup, false);
      pass(m, true);
    }
    for (int64_t m = micro - warmup; m < micro; ++m)
      pass(m, true);
  }
  llvm::append_range(ordered, after);
  return ordered;
}

/// Builds `@<source>_stage<stage>` from `ops`, the stage's ops in order.
class StageBuilder {
public:
  StageBuilder(func::FuncOp source, int64_t stage, int64_t stages)
      : source(source), stage(stage), stages(stages),
        builder(source.getContext()) {}

  FailureOr<func::FuncOp> build(ArrayRef<Operation *> ops,
                                Operation *insertAfter);

private:
  /// The arguments the stage's ops read (both ends of a transfer name its
  /// input) or return, and the results that live on this stage.
  void collectSignature(ArrayRef<Operation *> ops);
  func::FuncOp createFunction(Operation *insertAfter);
  LogicalResult cloneOp(Operation &op);
  LogicalResult createReturn();

  func::FuncOp source;
  int64_t stage, stages;
  OpBuilder builder;
  IRMapping mapping;
  SmallVector<unsigned> args, results;
};

void StageBuilder::collectSignature(ArrayRef<Operation *> ops) {
  Block &body = source.getBody().front();
  llvm::SmallDenseSet<Value> used;
  for (Operation *op : ops)
    used.insert(op->operand_begin(), op->operand_end());
  for (auto [i, value] : llvm::enumerate(body.getTerminator()->getOperands())) {
    int64_t valueStage = stageOf(value);
    if (valueStage < 0 || valueStage == stage) {
      results.push_back(i);
      used.insert(value);
    }
  }
  for (BlockArgument arg : body.getArguments())
    if (used.contains(arg))
      args.push_back(arg.getArgNumber());
}

func::FuncOp StageBuilder::createFunction(Operation *insertAfter) {
  Block &body = source.getBody().front();
  SmallVector<Type> argTypes, resultTypes;
  for (unsigned i : args)
    argTypes.push_back(body.getArgument(i).getType());
  for (unsigned i : results)
    resultTypes.push_back(body.getTerminator()->getOperand(i).getType());
  builder.setInsertionPointAfter(insertAfter);
  auto func = func::FuncOp::create(
      builder, source.getLoc(), stageFunctionName(source.getName(), stage),
      builder.getFunctionType(argTypes, resultTypes));
  func->setAttr(GalvDialect::getStageAttrName(),
                builder.getI64IntegerAttr(stage));
  // Name every argument and result, as the plan does.
  for (auto [k, i] : llvm::enumerate(args)) {
    if (DictionaryAttr attrs = source.getArgAttrDict(i))
      func.setArgAttrs(k, attrs);
    StringAttr name = source.getArgAttrOfType<StringAttr>(i, "galv.name");
    if (!name)
      name = source.getArgAttrOfType<StringAttr>(i, "onnx.name");
    func.setArgAttr(k, "galv.name",
                    name ? name : builder.getStringAttr("input" + Twine(i)));
  }
  for (auto [k, i] : llvm::enumerate(results)) {
    if (DictionaryAttr attrs = source.getResultAttrDict(i))
      func.setResultAttrs(k, attrs);
    StringAttr name = source.getResultAttrOfType<StringAttr>(i, "galv.name");
    if (!name)
      name = source.getResultAttrOfType<StringAttr>(i, "onnx.name");
    func.setResultAttr(k, "galv.name",
                       name ? name
                            : builder.getStringAttr("output" + Twine(i)));
  }
  Block *entry = func.addEntryBlock();
  for (auto [k, i] : llvm::enumerate(args))
    mapping.map(body.getArgument(i), entry->getArgument(k));
  builder.setInsertionPointToEnd(entry);
  return func;
}

LogicalResult StageBuilder::cloneOp(Operation &op) {
  auto operand = [&](Value value) -> FailureOr<Value> {
    if (Value mapped = mapping.lookupOrNull(value))
      return mapped;
    return op.emitError("reads a value that stage ")
           << stage << "'s schedule has not computed yet";
  };
  Location loc = op.getLoc();
  auto tagged = [&](Operation *created) {
    created->setDiscardableAttrs(op.getDiscardableAttrDictionary());
    return created;
  };
  if (auto transfer = dyn_cast<StageTransferOp>(op)) {
    if (static_cast<int64_t>(transfer.getTo()) == stage) {
      mapping.map(transfer.getResult(),
                  tagged(RecvOp::create(builder, loc, transfer.getType(),
                                        transfer.getFrom()))
                      ->getResult(0));
      return success();
    }
    FailureOr<Value> input = operand(transfer.getInput());
    if (failed(input))
      return failure();
    tagged(SendOp::create(builder, loc, *input, transfer.getTo()));
    return success();
  }
  if (auto broadcast = dyn_cast<StageBroadcastOp>(op)) {
    if (static_cast<int64_t>(broadcast.getFrom()) != stage) {
      mapping.map(broadcast.getResult(),
                  tagged(RecvOp::create(builder, loc, broadcast.getType(),
                                        broadcast.getFrom()))
                      ->getResult(0));
      return success();
    }
    FailureOr<Value> input = operand(broadcast.getInput());
    if (failed(input))
      return failure();
    for (int64_t other = 0; other < stages; ++other)
      if (other != stage)
        tagged(SendOp::create(builder, loc, *input, other));
    mapping.map(broadcast.getResult(), *input);
    return success();
  }
  // Replication only matters to gradients: the value is the same tensor.
  if (auto replicate = dyn_cast<ReplicateOp>(op)) {
    FailureOr<Value> input = operand(replicate.getInput());
    if (failed(input))
      return failure();
    mapping.map(replicate.getResult(), *input);
    return success();
  }
  for (Value value : op.getOperands())
    if (failed(operand(value)))
      return failure();
  builder.clone(op, mapping);
  return success();
}

LogicalResult StageBuilder::createReturn() {
  Operation *terminator = source.getBody().front().getTerminator();
  SmallVector<Value> values;
  llvm::SmallDenseSet<Value> returned;
  for (unsigned i : results) {
    Value value = mapping.lookupOrNull(terminator->getOperand(i));
    if (!value)
      return terminator->emitError("result ")
             << i << " is not computed on stage " << stage;
    // Results live in the arena until the end, in buffers of their own.
    Operation *def = value.getDefiningOp();
    if (!def || isa<ConstantOp, GetParameterOp>(def) ||
        !returned.insert(value).second)
      value =
          CopyOp::create(builder, terminator->getLoc(), value.getType(), value);
    values.push_back(value);
  }
  func::ReturnOp::create(builder, terminator->getLoc(), values);
  return success();
}

FailureOr<func::FuncOp> StageBuilder::build(ArrayRef<Operation *> ops,
                                            Operation *insertAfter) {
  collectSignature(ops);
  func::FuncOp func = createFunction(insertAfter);
  for (Operation *op : ops)
    if (failed(cloneOp(*op))) {
      func.erase();
      return failure();
    }
  if (failed(createReturn())) {
    func.erase();
    return failure();
  }
  return func;
}

struct SchedulePass : galv::impl::ScheduleBase<SchedulePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto source = module.lookupSymbol<func::FuncOp>(function.getValue());
    if (!source || source.isExternal()) {
      module.emitError("galv-schedule needs a func.func @")
          << function.getValue();
      return signalPassFailure();
    }
    Block &body = source.getBody().front();
    if (failed(checkStages(body)))
      return signalPassFailure();
    auto config =
        module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
    int64_t stages = config ? config.getPp() : 1;
    PipelineSchedule schedule =
        config ? config.getSchedule() : PipelineSchedule::gpipe;
    // A second run replaces the stage functions of the first.
    for (int64_t stage = 0;; ++stage) {
      Operation *old =
          module.lookupSymbol(stageFunctionName(function.getValue(), stage));
      if (!old)
        break;
      old->erase();
    }
    Operation *last = source;
    for (int64_t stage = 0; stage < stages; ++stage) {
      StageBuilder stageBuilder(source, stage, stages);
      FailureOr<func::FuncOp> func =
          stageBuilder.build(order(body, stage, stages, schedule), last);
      if (failed(func))
        return signalPassFailure();
      last = *func;
    }
  }
};
} // namespace
