//===- PlanEmitter.cpp - galv IR to plan.bin ------------------------------===//

#include "galvatron/Target/Plan.h"

#include "Galv/Galv.h"
#include "galvatron/runtime/PlanFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"

#include <map>

using namespace mlir;
using namespace mlir::galv;
namespace plan = galvatron::plan;

namespace {

llvm::cl::opt<std::string> planFunction(
    "plan-function", llvm::cl::init("forward"),
    llvm::cl::desc("the function --emit-plan lowers (forward, train_step)"));

/// Arena offsets are multiples of this.
constexpr uint64_t kAlignment = 64;

/// A rank's piece of a tensor, resolved from a #galv.shard.
struct ShardInfo {
  std::vector<int64_t> fullShape;
  std::vector<plan::DimCut> cuts;
  int32_t flatParts = 1, flatIndex = 0;
};

struct TensorInfo {
  std::string name;
  plan::DType dtype;
  std::vector<int64_t> shape;
  plan::Storage storage;
  uint64_t offset = 0, bytes = 0;
  int64_t lastUse = -1; // instruction index; INT64_MAX for outputs
  std::optional<ShardInfo> shard;
};

/// What every rank's program shares: the device groups and constants.
struct SharedPlan {
  std::vector<std::vector<int32_t>> groups;
  std::map<std::vector<int32_t>, int32_t> groupIndex;
  std::vector<uint8_t> constants;

  int32_t group(const std::vector<int32_t> &ranks) {
    auto [it, inserted] =
        groupIndex.try_emplace(ranks, static_cast<int32_t>(groups.size()));
    if (inserted)
      groups.push_back(ranks);
    return it->second;
  }
};

struct InstrInfo {
  plan::Opcode opcode;
  std::vector<int32_t> inputs, outputs;
  std::vector<int64_t> ints;
  std::vector<double> floats;
};

FailureOr<plan::DType> dtypeOf(Type type, Location loc) {
  if (type.isF32())
    return plan::DType::F32;
  if (type.isF64())
    return plan::DType::F64;
  if (type.isInteger(64))
    return plan::DType::I64;
  if (type.isInteger(32))
    return plan::DType::I32;
  if (type.isInteger(1))
    return plan::DType::Bool;
  return emitError(loc) << "plan tensors cannot hold " << type;
}

size_t widthOf(plan::DType d) {
  return d == plan::DType::Bool                           ? 1
         : d == plan::DType::F32 || d == plan::DType::I32 ? 4
                                                          : 8;
}

class Emitter {
public:
  /// `rank` runs stage `stage` of `stages`, each of `perStage` ranks;
  /// `schedule` orders the micro-batches' forward and backward passes.
  Emitter(SharedPlan &shared, int32_t rank, int32_t perStage, int32_t stages,
          PipelineSchedule schedule)
      : shared(shared), constants(shared.constants), rank(rank),
        stage(rank / perStage), stageFirst(stage * perStage),
        perStage(perStage), stages(stages), pipelineSchedule(schedule) {}

  /// Lowers `func` into this rank's program in `fbb`.
  FailureOr<flatbuffers::Offset<plan::RankProgram>>
  run(func::FuncOp func, flatbuffers::FlatBufferBuilder &fbb);

private:
  /// This rank's index in the stage-local group [size, stride], and the
  /// group's plan index.
  int64_t indexIn(ArrayRef<int64_t> group) {
    return ((rank - stageFirst) / group[1]) % group[0];
  }
  int32_t groupOf(ArrayRef<int64_t> group) {
    int64_t index = indexIn(group);
    std::vector<int32_t> ranks;
    for (int64_t k = 0; k < group[0]; ++k)
      ranks.push_back(
          static_cast<int32_t>(rank - index * group[1] + k * group[1]));
    return shared.group(ranks);
  }
  ShardInfo resolve(ShardAttr shard, RankedTensorType full) {
    ShardInfo info;
    info.fullShape.assign(full.getShape().begin(), full.getShape().end());
    ArrayRef<int64_t> cuts = shard.getCuts();
    for (size_t i = 0; i + 3 < cuts.size(); i += 4)
      info.cuts.emplace_back(
          static_cast<int32_t>(cuts[i]), static_cast<int32_t>(cuts[i + 1]),
          static_cast<int32_t>(cuts[i + 2]),
          static_cast<int32_t>(indexIn(cuts.slice(i + 2, 2))));
    if (shard.getFlat().size() == 2) {
      info.flatParts = static_cast<int32_t>(shard.getFlat()[0]);
      info.flatIndex = static_cast<int32_t>(indexIn(shard.getFlat()));
    }
    return info;
  }

  FailureOr<int32_t> newTensor(Value value, plan::Storage storage,
                               std::string name = "");
  LogicalResult lowerOp(Operation &op);
  /// The pipeline stage of every op of `body` (-1: every stage), from the
  /// stages of its operands; transfers run on both ends.
  LogicalResult inferStages(Block &body);
  bool runsHere(Operation &op);
  /// This rank's ops of `body` in execution order: micro-batch passes in
  /// the pipeline schedule's order, between what comes before and after.
  SmallVector<Operation *> order(Block &body);
  /// Send / Recv with the rank at this rank's position in stage `other`.
  void sendTo(int64_t other, int32_t tensor);
  LogicalResult recvFrom(int64_t other, Value result);
  LogicalResult appendConstant(DenseElementsAttr attr, TensorInfo &info);
  void planMemory();

  SharedPlan &shared;
  std::vector<uint8_t> &constants;
  int32_t rank, stage, stageFirst, perStage, stages;
  PipelineSchedule pipelineSchedule;
  DenseMap<Value, int64_t> valueStage;
  DenseMap<Operation *, int64_t> opStage;
  std::vector<TensorInfo> tensors;
  std::vector<InstrInfo> instructions;
  DenseMap<Value, int32_t> indexOf;
  std::map<std::string, int32_t> weightIndex;
  std::vector<int32_t> inputs, outputs;
  uint64_t arenaBytes = 0;
};

FailureOr<int32_t> Emitter::newTensor(Value value, plan::Storage storage,
                                      std::string name) {
  auto type = cast<RankedTensorType>(value.getType());
  auto dtype = dtypeOf(type.getElementType(), value.getLoc());
  if (failed(dtype))
    return failure();
  TensorInfo info;
  info.name = std::move(name);
  info.dtype = *dtype;
  info.shape.assign(type.getShape().begin(), type.getShape().end());
  info.storage = storage;
  info.bytes = type.getNumElements() * widthOf(*dtype);
  tensors.push_back(std::move(info));
  int32_t index = static_cast<int32_t>(tensors.size() - 1);
  indexOf[value] = index;
  return index;
}

LogicalResult Emitter::appendConstant(DenseElementsAttr attr,
                                      TensorInfo &info) {
  // Align each constant like the arena so kernels may read it in place.
  constants.resize((constants.size() + kAlignment - 1) / kAlignment *
                   kAlignment);
  info.offset = constants.size();
  auto put = [&](const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    constants.insert(constants.end(), b, b + n);
  };
  switch (info.dtype) {
  case plan::DType::F32:
    for (APFloat v : attr.getValues<APFloat>()) {
      float f = v.convertToFloat();
      put(&f, 4);
    }
    break;
  case plan::DType::F64:
    for (APFloat v : attr.getValues<APFloat>()) {
      double d = v.convertToDouble();
      put(&d, 8);
    }
    break;
  case plan::DType::I64:
  case plan::DType::I32:
    for (const APInt &v : attr.getValues<APInt>()) {
      int64_t i = v.getSExtValue();
      if (info.dtype == plan::DType::I32) {
        int32_t j = static_cast<int32_t>(i);
        put(&j, 4);
      } else {
        put(&i, 8);
      }
    }
    break;
  case plan::DType::Bool:
    for (bool v : attr.getValues<bool>()) {
      uint8_t b = v;
      put(&b, 1);
    }
    break;
  }
  return success();
}

LogicalResult Emitter::lowerOp(Operation &op) {
  if (auto get = dyn_cast<GetParameterOp>(op)) {
    std::string name = get.getName().str();
    auto it = weightIndex.find(name);
    if (it != weightIndex.end()) {
      indexOf[get.getResult()] = it->second;
      return success();
    }
    auto index = newTensor(get.getResult(), plan::Storage::Weight, name);
    if (failed(index))
      return failure();
    if (ShardAttr shard = get.getShardAttr()) {
      auto param = SymbolTable::lookupNearestSymbolFrom<ParameterOp>(
          get, get.getNameAttr());
      if (!param)
        return get.emitError("unknown parameter");
      tensors[*index].shard = resolve(shard, param.getTensorType());
    }
    weightIndex[name] = *index;
    return success();
  }
  if (auto transfer = dyn_cast<StageTransferOp>(op)) {
    if (static_cast<int64_t>(transfer.getFrom()) == stage) {
      auto it = indexOf.find(transfer.getInput());
      if (it == indexOf.end())
        return op.emitError("transfer of a value this stage does not have");
      sendTo(transfer.getTo(), it->second);
      return success();
    }
    return recvFrom(transfer.getFrom(), transfer.getResult());
  }
  if (auto broadcast = dyn_cast<StageBroadcastOp>(op)) {
    if (static_cast<int64_t>(broadcast.getFrom()) != stage)
      return recvFrom(broadcast.getFrom(), broadcast.getResult());
    int32_t index = indexOf.at(broadcast.getInput());
    for (int64_t other = 0; other < stages; ++other)
      if (other != stage)
        sendTo(other, index);
    indexOf[broadcast.getResult()] = index;
    return success();
  }
  // Replication only matters to gradients: the value is the same tensor.
  if (auto replicate = dyn_cast<ReplicateOp>(op)) {
    indexOf[replicate.getResult()] = indexOf.at(replicate.getInput());
    return success();
  }
  if (auto constant = dyn_cast<ConstantOp>(op)) {
    auto index = newTensor(constant.getResult(), plan::Storage::Constant);
    if (failed(index))
      return failure();
    return appendConstant(cast<DenseElementsAttr>(constant.getValue()),
                          tensors[*index]);
  }
  if (isa<LayerOp>(op))
    return op.emitError("layers must be inlined before --emit-plan (run "
                        "galvatron-opt --galv-inference-pipeline)");

  InstrInfo inst;
  for (Value operand : op.getOperands()) {
    auto it = indexOf.find(operand);
    if (it == indexOf.end())
      return op.emitError("operand not defined in @forward");
    inst.inputs.push_back(it->second);
    tensors[it->second].lastUse = static_cast<int64_t>(instructions.size());
  }
  auto rule = dyn_cast<PlanOpInterface>(op);
  if (!rule)
    return op.emitError("no plan instruction for '") << op.getName() << "'";
  PlanInstruction lowered;
  lowered.groupIndex = [&](ArrayRef<int64_t> g) { return groupOf(g); };
  lowered.positionIn = [&](ArrayRef<int64_t> g) { return indexIn(g); };
  if (failed(rule.lowerToPlan(lowered)))
    return failure();
  inst.opcode = lowered.opcode;
  inst.ints = std::move(lowered.ints);
  inst.floats = std::move(lowered.floats);
  for (Value result : op.getResults()) {
    auto index = newTensor(result, plan::Storage::Arena);
    if (failed(index))
      return failure();
    inst.outputs.push_back(*index);
  }
  instructions.push_back(std::move(inst));
  return success();
}

/// First-fit placement of arena tensors over their lifetimes: outputs are
/// placed before the instruction's dying inputs are freed, since a kernel
/// reads its inputs while it writes its outputs.
void Emitter::planMemory() {
  std::map<uint64_t, uint64_t> used; // offset -> end
  auto place = [&](TensorInfo &t) {
    uint64_t size = std::max<uint64_t>(
        (t.bytes + kAlignment - 1) / kAlignment * kAlignment, kAlignment);
    uint64_t candidate = 0;
    for (auto [begin, end] : used) {
      if (begin >= candidate + size)
        break;
      candidate = std::max(candidate, end);
    }
    t.offset = candidate;
    used[candidate] = candidate + size;
    // The stated peak is the last byte any tensor touches.
    arenaBytes = std::max(arenaBytes, candidate + t.bytes);
  };
  for (size_t i = 0; i < instructions.size(); ++i) {
    for (int32_t t : instructions[i].outputs)
      place(tensors[t]);
    auto freeIfDead = [&](int32_t t) {
      TensorInfo &info = tensors[t];
      if (info.storage == plan::Storage::Arena &&
          info.lastUse <= static_cast<int64_t>(i))
        used.erase(info.offset);
    };
    for (int32_t t : instructions[i].inputs)
      freeIfDead(t);
    for (int32_t t : instructions[i].outputs)
      freeIfDead(t);
  }
}

void Emitter::sendTo(int64_t other, int32_t tensor) {
  int32_t peer = static_cast<int32_t>(other * perStage + rank - stageFirst);
  InstrInfo send;
  send.opcode = plan::Opcode::Send;
  send.inputs = {tensor};
  send.ints = {shared.group({std::min(rank, peer), std::max(rank, peer)}),
               peer > rank ? 1 : 0};
  tensors[tensor].lastUse = static_cast<int64_t>(instructions.size());
  // A one-element token as the output: nothing reads it.
  TensorInfo token;
  token.dtype = plan::DType::F32;
  token.shape = {1};
  token.storage = plan::Storage::Arena;
  token.bytes = 4;
  tensors.push_back(token);
  send.outputs = {static_cast<int32_t>(tensors.size() - 1)};
  instructions.push_back(std::move(send));
}

LogicalResult Emitter::recvFrom(int64_t other, Value result) {
  int32_t peer = static_cast<int32_t>(other * perStage + rank - stageFirst);
  auto index = newTensor(result, plan::Storage::Arena);
  if (failed(index))
    return failure();
  InstrInfo recv;
  recv.opcode = plan::Opcode::Recv;
  recv.ints = {shared.group({std::min(rank, peer), std::max(rank, peer)}),
               peer > rank ? 1 : 0};
  recv.outputs = {*index};
  instructions.push_back(std::move(recv));
  return success();
}

LogicalResult Emitter::inferStages(Block &body) {
  for (Operation &op : body.without_terminator()) {
    int64_t s = -1;
    if (auto transfer = dyn_cast<StageTransferOp>(op)) {
      opStage[&op] = transfer.getFrom();
      valueStage[transfer.getResult()] = transfer.getTo();
      continue;
    }
    if (isa<StageBroadcastOp>(op)) {
      opStage[&op] = -1;
      continue;
    }
    for (Value v : op.getOperands()) {
      auto it = valueStage.find(v);
      int64_t vs = it == valueStage.end() ? -1 : it->second;
      if (vs < 0)
        continue;
      if (s >= 0 && s != vs)
        return op.emitError("uses values of pipeline stages ")
               << s << " and " << vs << " without a transfer";
      s = vs;
    }
    if (s < 0)
      if (auto tag =
              op.getAttrOfType<IntegerAttr>(GalvDialect::getStageAttrName()))
        s = tag.getInt();
    opStage[&op] = s;
    for (Value r : op.getResults())
      valueStage[r] = s;
  }
  // Ops on no stage yet (arithmetic on arguments and constants, such as
  // the weight decay of a parameter) run where all their users run.
  for (Operation &op : llvm::reverse(body.without_terminator())) {
    if (opStage[&op] >= 0 || isa<StageTransferOp, StageBroadcastOp>(op))
      continue;
    int64_t s = -2;
    for (Operation *user : op.getUsers()) {
      int64_t us = user == body.getTerminator() ? -1 : opStage.lookup(user);
      if (auto transfer = dyn_cast<StageTransferOp>(user))
        us = transfer.getFrom();
      s = s == -2 || s == us ? us : -1;
    }
    if (s >= 0)
      opStage[&op] = s;
  }
  return success();
}

bool Emitter::runsHere(Operation &op) {
  if (auto transfer = dyn_cast<StageTransferOp>(op))
    return static_cast<int64_t>(transfer.getFrom()) == stage ||
           static_cast<int64_t>(transfer.getTo()) == stage;
  int64_t s = opStage.lookup(&op);
  return s < 0 || s == stage;
}

SmallVector<Operation *> Emitter::order(Block &body) {
  // Ops before the first micro-batch's, each micro-batch's forward and
  // backward passes, and the ops after (gradient sync, the optimizer).
  SmallVector<Operation *> before, after;
  std::map<std::pair<int64_t, bool>, SmallVector<Operation *>> passes;
  int64_t micro = 0;
  for (Operation &op : body.without_terminator()) {
    if (!runsHere(op))
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
  } else if (pipelineSchedule == PipelineSchedule::gpipe) {
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

FailureOr<flatbuffers::Offset<plan::RankProgram>>
Emitter::run(func::FuncOp forward, flatbuffers::FlatBufferBuilder &fbb) {
  Block &body = forward.getBody().front();
  if (failed(inferStages(body)))
    return failure();
  SmallVector<Operation *> ops = order(body);
  // This stage's inputs: the arguments its ops or its results use.
  Operation *terminator = body.getTerminator();
  DenseSet<Value> used;
  for (Operation *op : ops)
    used.insert(op->operand_begin(), op->operand_end());
  SmallVector<unsigned> results;
  for (auto [i, value] : llvm::enumerate(terminator->getOperands())) {
    auto it = valueStage.find(value);
    if (it == valueStage.end() || it->second < 0 || it->second == stage) {
      results.push_back(i);
      used.insert(value);
    }
  }
  for (BlockArgument arg : body.getArguments()) {
    if (!used.contains(arg))
      continue;
    auto name =
        forward.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "galv.name");
    if (!name)
      name =
          forward.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "onnx.name");
    auto index = newTensor(arg, plan::Storage::Input,
                           name ? name.str()
                                : "input" + std::to_string(arg.getArgNumber()));
    if (failed(index))
      return failure();
    if (auto shard = forward.getArgAttrOfType<ShardAttr>(
            arg.getArgNumber(), GalvDialect::getShardAttrName())) {
      // The full shape: the piece's, uncut (ZeRO pieces name their
      // parameter, whose declared type is the full one).
      RankedTensorType full = cast<RankedTensorType>(arg.getType());
      StringRef label = name ? name.getValue() : "";
      size_t colon = label.find(':');
      auto param = colon == StringRef::npos
                       ? ParameterOp()
                       : SymbolTable::lookupNearestSymbolFrom<ParameterOp>(
                             forward, StringAttr::get(forward.getContext(),
                                                      label.substr(colon + 1)));
      if (param) {
        full = param.getTensorType();
      } else {
        SmallVector<int64_t> shape(full.getShape());
        ArrayRef<int64_t> cuts = shard.getCuts();
        for (size_t i = 0; i + 3 < cuts.size(); i += 4)
          shape[cuts[i]] *= cuts[i + 2];
        full = RankedTensorType::get(shape, full.getElementType());
      }
      tensors[*index].shard = resolve(shard, full);
    }
    inputs.push_back(*index);
  }
  for (Operation *op : ops)
    if (failed(lowerOp(*op)))
      return failure();
  // Outputs live in the arena until the end; copy those that are inputs,
  // weights or constants.
  for (unsigned i : results) {
    Value value = terminator->getOperand(i);
    int32_t index = indexOf.at(value);
    if (tensors[index].storage != plan::Storage::Arena ||
        llvm::is_contained(outputs, index)) {
      InstrInfo copy;
      copy.opcode = plan::Opcode::Copy;
      copy.inputs = {index};
      tensors[index].lastUse = static_cast<int64_t>(instructions.size());
      TensorInfo out = tensors[index];
      out.storage = plan::Storage::Arena;
      out.name.clear();
      tensors.push_back(out);
      index = static_cast<int32_t>(tensors.size() - 1);
      copy.outputs = {index};
      instructions.push_back(copy);
    }
    auto resultName = forward.getResultAttrOfType<StringAttr>(i, "galv.name");
    tensors[index].name =
        resultName ? resultName.str() : "output" + std::to_string(i);
    tensors[index].lastUse = INT64_MAX;
    outputs.push_back(index);
  }
  planMemory();

  std::vector<flatbuffers::Offset<plan::Tensor>> tensorOffsets;
  for (const TensorInfo &t : tensors) {
    flatbuffers::Offset<plan::Shard> shard;
    if (t.shard)
      shard = plan::CreateShardDirect(fbb, &t.shard->fullShape, &t.shard->cuts,
                                      t.shard->flatParts, t.shard->flatIndex);
    tensorOffsets.push_back(plan::CreateTensorDirect(
        fbb, t.name.empty() ? nullptr : t.name.c_str(), t.dtype, &t.shape,
        t.storage, t.offset, t.bytes, shard));
  }
  std::vector<flatbuffers::Offset<plan::Instruction>> instOffsets;
  for (const InstrInfo &inst : instructions)
    instOffsets.push_back(
        plan::CreateInstructionDirect(fbb, inst.opcode, &inst.inputs,
                                      &inst.outputs, &inst.ints, &inst.floats));
  return plan::CreateRankProgramDirect(fbb, rank, &tensorOffsets, &instOffsets,
                                       &inputs, &outputs, arenaBytes, stage);
}

} // namespace

LogicalResult mlir::galv::emitPlan(ModuleOp module, llvm::raw_ostream &os) {
  auto function = module.lookupSymbol<func::FuncOp>(planFunction.getValue());
  if (!function || function.isExternal())
    return module.emitError("--emit-plan needs a func.func @")
           << planFunction.getValue();
  // One program per rank; a partitioned function differs per rank only in
  // its groups and pieces, which each rank's lowering resolves.
  auto config =
      module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
  int32_t world = config ? static_cast<int32_t>(config.getWorldSize()) : 1;
  int32_t stages = config ? static_cast<int32_t>(config.getPp()) : 1;
  SharedPlan shared;
  shared.group({0}); // group 0: rank 0 alone, as one-rank plans have
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::RankProgram>> ranks;
  for (int32_t rank = 0; rank < world; ++rank) {
    Emitter emitter(shared, rank, world / stages, stages,
                    config ? config.getSchedule() : PipelineSchedule::gpipe);
    auto program = emitter.run(function, fbb);
    if (failed(program))
      return failure();
    ranks.push_back(*program);
  }
  std::vector<flatbuffers::Offset<plan::DeviceGroup>> groups;
  for (const std::vector<int32_t> &g : shared.groups)
    groups.push_back(plan::CreateDeviceGroupDirect(fbb, &g));
  auto weights =
      module->getAttrOfType<StringAttr>(GalvDialect::getWeightsAttrName());
  std::string weightsFile = weights ? weights.str() : "";
  fbb.Finish(plan::CreatePlanDirect(fbb, world, weightsFile.c_str(), &groups,
                                    &ranks, &shared.constants),
             plan::PlanIdentifier());
  std::vector<uint8_t> bytes =
      galvatron::rt::wrapPlan(fbb.GetBufferPointer(), fbb.GetSize());
  os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  return success();
}

LogicalResult mlir::galv::decodePlan(StringRef bytes, llvm::raw_ostream &os,
                                     std::string &error) {
  std::vector<uint8_t> storage(bytes.begin(), bytes.end());
  const plan::Plan *p = galvatron::rt::verifyPlan(storage, error);
  if (!p)
    return failure();
  os << "plan format " << galvatron::rt::kPlanFormatVersion << ", world size "
     << p->world_size() << ", weights '"
     << (p->weights_file() ? p->weights_file()->str() : "") << "', "
     << (p->constants() ? p->constants()->size() : 0) << " constant bytes\n";
  for (const plan::DeviceGroup *g : *p->groups()) {
    os << "group [";
    llvm::interleaveComma(*g->ranks(), os);
    os << "]\n";
  }
  for (const plan::RankProgram *rank : *p->ranks()) {
    os << "rank " << rank->rank() << ": arena " << rank->arena_bytes()
       << " bytes, " << rank->tensors()->size() << " tensors, "
       << rank->instructions()->size() << " instructions";
    if (p->ranks()->size() > 1)
      os << ", stage " << rank->stage();
    os << "\n";
    for (size_t i = 0; i < rank->tensors()->size(); ++i) {
      const plan::Tensor *t = rank->tensors()->Get(i);
      os << "  %" << i << " " << plan::EnumNameStorage(t->storage()) << " "
         << plan::EnumNameDType(t->dtype()) << "[";
      llvm::interleave(*t->shape(), os, "x");
      os << "]";
      if (t->name())
        os << " '" << t->name()->str() << "'";
      if (t->storage() == plan::Storage::Arena ||
          t->storage() == plan::Storage::Constant)
        os << " @" << t->offset();
      os << " (" << t->bytes() << " bytes)";
      // The piece of the full tensor this rank holds.
      if (const plan::Shard *shard = t->shard()) {
        os << " of [";
        llvm::interleave(*shard->full_shape(), os, "x");
        os << "]";
        if (shard->cuts())
          for (const plan::DimCut *cut : *shard->cuts())
            os << " axis " << cut->axis() << " piece " << cut->index() << "/"
               << cut->parts() << (cut->blocks() > 1 ? " per block" : "");
        if (shard->flat_parts() > 1)
          os << " flat piece " << shard->flat_index() << "/"
             << shard->flat_parts();
      }
      os << "\n";
    }
    for (const plan::Instruction *inst : *rank->instructions()) {
      os << "  ";
      for (size_t k = 0; k < inst->outputs()->size(); ++k)
        os << (k ? ", %" : "%") << inst->outputs()->Get(k);
      os << " = " << plan::EnumNameOpcode(inst->opcode());
      for (size_t k = 0; k < inst->inputs()->size(); ++k)
        os << (k ? ", %" : " %") << inst->inputs()->Get(k);
      if (inst->ints() && inst->ints()->size()) {
        os << " ints[";
        llvm::interleaveComma(*inst->ints(), os);
        os << "]";
      }
      if (inst->floats() && inst->floats()->size()) {
        os << " floats[";
        llvm::interleaveComma(*inst->floats(), os);
        os << "]";
      }
      os << "\n";
    }
  }
  return success();
}

void mlir::galv::registerPlanTranslations() {
  static TranslateFromMLIRRegistration emit(
      "emit-plan", "lower galv IR (layers inlined) to plan.bin",
      [](Operation *op, llvm::raw_ostream &os) -> LogicalResult {
        auto module = dyn_cast<ModuleOp>(op);
        if (!module)
          return op->emitError("expected a builtin.module");
        return emitPlan(module, os);
      },
      [](DialectRegistry &registry) {
        registry.insert<GalvDialect, func::FuncDialect>();
      });
  static TranslateRegistration decode(
      "decode-plan", "print plan.bin as text after verifying it",
      [](const std::shared_ptr<llvm::SourceMgr> &sourceMgr,
         llvm::raw_ostream &os, MLIRContext *context) -> LogicalResult {
        const llvm::MemoryBuffer *buffer =
            sourceMgr->getMemoryBuffer(sourceMgr->getMainFileID());
        std::string error;
        if (failed(decodePlan(buffer->getBuffer(), os, error)))
          return emitError(UnknownLoc::get(context))
                 << buffer->getBufferIdentifier() << ": " << error;
        return success();
      });
}
