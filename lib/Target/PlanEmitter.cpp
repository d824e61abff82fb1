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
namespace rt = galvatron::rt;

namespace {

llvm::cl::opt<std::string> planFunction(
    "plan-function", llvm::cl::init("forward"),
    llvm::cl::desc("the function --emit-plan lowers (forward, train_step)"));

/// Constants in the blob are aligned like the arena's buffers.
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
  std::optional<ShardInfo> shard;
  /// Inputs: what the input is to the runtime, and for state the
  /// parameter's state-dict name.
  plan::Role role = plan::Role::Data;
  std::string paramName;
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
  plan::InstructionAttrsUnion attrs;
};

plan::Role toPlan(InputRole role) {
  switch (role) {
  case InputRole::data:
    return plan::Role::Data;
  case InputRole::learning_rate:
    return plan::Role::LearningRate;
  case InputRole::step:
    return plan::Role::Step;
  case InputRole::parameter:
    return plan::Role::Parameter;
  case InputRole::adam_m:
    return plan::Role::AdamM;
  case InputRole::adam_v:
    return plan::Role::AdamV;
  }
  llvm_unreachable("unknown input role");
}

/// The role and parameter galv-adamw marked an argument or result with
/// (Data and none when unmarked).
std::pair<plan::Role, FlatSymbolRefAttr> roleOf(DictionaryAttr attrs) {
  if (!attrs)
    return {plan::Role::Data, {}};
  auto role = attrs.getAs<InputRoleAttr>(GalvDialect::getRoleAttrName());
  return {role ? toPlan(role.getValue()) : plan::Role::Data,
          attrs.getAs<FlatSymbolRefAttr>(GalvDialect::getParamAttrName())};
}

FailureOr<plan::DType> dtypeOf(Type type, Location loc) {
  if (type.isF32())
    return plan::DType::F32;
  if (type.isF64())
    return plan::DType::F64;
  if (type.isBF16())
    return plan::DType::BF16;
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
         : d == plan::DType::BF16                         ? 2
         : d == plan::DType::F32 || d == plan::DType::I32 ? 4
                                                          : 8;
}

/// Serialises one rank's program from its stage function, as galv-schedule
/// ordered it and galv-plan-memory placed it; only groups, peers and shard
/// pieces depend on the rank.
class Emitter {
public:
  /// `rank` runs stage `rank / perStage`, as each of its `perStage` ranks.
  Emitter(SharedPlan &shared, int32_t rank, int32_t perStage)
      : shared(shared), constants(shared.constants), rank(rank),
        stage(rank / perStage), stageFirst(stage * perStage),
        perStage(perStage) {}

  /// Lowers the stage function `func` into this rank's program in `fbb`.
  FailureOr<flatbuffers::Offset<plan::RankProgram>>
  run(func::FuncOp func, flatbuffers::FlatBufferBuilder &fbb);

private:
  /// This rank's position in a stage-local group, and the group's plan
  /// index.
  int64_t indexIn(DeviceGroupAttr group) {
    return group.getPosition(rank - stageFirst);
  }
  int32_t groupOf(DeviceGroupAttr group) {
    std::vector<int32_t> ranks;
    for (int64_t member : group.getMembers(rank - stageFirst))
      ranks.push_back(static_cast<int32_t>(stageFirst + member));
    return shared.group(ranks);
  }
  ShardInfo resolve(ShardAttr shard, RankedTensorType full) {
    ShardInfo info;
    info.fullShape.assign(full.getShape().begin(), full.getShape().end());
    for (CutAttr cut : shard.getCuts())
      info.cuts.emplace_back(static_cast<int32_t>(cut.getAxis()),
                             static_cast<int32_t>(cut.getBlocks()),
                             static_cast<int32_t>(cut.getGroup().getSize()),
                             static_cast<int32_t>(indexIn(cut.getGroup())));
    if (DeviceGroupAttr flat = shard.getFlat()) {
      info.flatParts = static_cast<int32_t>(flat.getSize());
      info.flatIndex = static_cast<int32_t>(indexIn(flat));
    }
    return info;
  }
  /// The pair group with the rank at this rank's position in stage `other`,
  /// and that rank's position in it: a send's or recv's attributes.
  plan::PeerAttrsT peer(int64_t other) {
    int32_t peer = static_cast<int32_t>(other * perStage + rank - stageFirst);
    plan::PeerAttrsT attrs;
    attrs.group = shared.group({std::min(rank, peer), std::max(rank, peer)});
    attrs.peer = peer > rank ? 1 : 0;
    return attrs;
  }

  FailureOr<int32_t> newTensor(Value value, plan::Storage storage,
                               std::string name = "");
  LogicalResult addInput(func::FuncOp func, BlockArgument arg);
  LogicalResult lowerOp(Operation &op);
  LogicalResult lowerInstruction(Operation &op, InstrInfo &inst);
  LogicalResult appendConstant(DenseElementsAttr attr, TensorInfo &info);
  LogicalResult addFeedback(func::FuncOp func);
  flatbuffers::Offset<plan::RankProgram>
  serialise(flatbuffers::FlatBufferBuilder &fbb, uint64_t arenaBytes);

  SharedPlan &shared;
  std::vector<uint8_t> &constants;
  int32_t rank, stage, stageFirst, perStage;
  std::vector<TensorInfo> tensors;
  std::vector<InstrInfo> instructions;
  DenseMap<Value, int32_t> indexOf;
  std::map<std::string, int32_t> weightIndex;
  std::vector<int32_t> inputs, outputs;
  std::vector<plan::Feedback> feedback;
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

LogicalResult Emitter::addInput(func::FuncOp func, BlockArgument arg) {
  unsigned i = arg.getArgNumber();
  auto name = func.getArgAttrOfType<StringAttr>(i, "galv.name");
  auto index = newTensor(arg, plan::Storage::Input,
                         name ? name.str() : "input" + std::to_string(i));
  if (failed(index))
    return failure();
  inputs.push_back(*index);
  auto [role, symbol] = roleOf(func.getArgAttrDict(i));
  TensorInfo &info = tensors[*index];
  info.role = role;
  if (symbol)
    info.paramName = symbol.getValue().str();
  if (rt::isState(role) && !symbol)
    return func.emitError("argument ")
           << i << " is training state (" << plan::EnumNameRole(role)
           << ") but names no parameter ('" << GalvDialect::getParamAttrName()
           << "')";
  auto shard =
      func.getArgAttrOfType<ShardAttr>(i, GalvDialect::getShardAttrName());
  if (!shard)
    return success();
  // The full shape: the piece's, uncut (state pieces belong to their
  // parameter, whose declared type is the full one).
  RankedTensorType full = cast<RankedTensorType>(arg.getType());
  auto param =
      symbol ? SymbolTable::lookupNearestSymbolFrom<ParameterOp>(func, symbol)
             : ParameterOp();
  if (param) {
    full = param.getTensorType();
  } else {
    SmallVector<int64_t> shape(full.getShape());
    for (CutAttr cut : shard.getCuts())
      shape[cut.getAxis()] *= cut.getGroup().getSize();
    full = RankedTensorType::get(shape, full.getElementType());
  }
  tensors[*index].shard = resolve(shard, full);
  return success();
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
  case plan::DType::BF16:
    for (APFloat v : attr.getValues<APFloat>()) {
      uint16_t bits = v.bitcastToAPInt().getZExtValue();
      put(&bits, 2);
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
  if (auto constant = dyn_cast<ConstantOp>(op)) {
    auto index = newTensor(constant.getResult(), plan::Storage::Constant);
    if (failed(index))
      return failure();
    return appendConstant(cast<DenseElementsAttr>(constant.getValue()),
                          tensors[*index]);
  }
  if (isa<LayerOp, StageTransferOp, StageBroadcastOp, ReplicateOp>(op))
    return op.emitError("not an instruction of a stage program (run "
                        "galv-schedule)");

  InstrInfo inst;
  for (Value operand : op.getOperands()) {
    auto it = indexOf.find(operand);
    if (it == indexOf.end())
      return op.emitError("operand not defined before its use");
    inst.inputs.push_back(it->second);
  }
  if (failed(lowerInstruction(op, inst)))
    return failure();
  auto offsets =
      op.getAttrOfType<DenseI64ArrayAttr>(GalvDialect::getOffsetsAttrName());
  if (!offsets || offsets.size() != static_cast<int64_t>(op.getNumResults()))
    return op.emitError("no arena offsets (run galv-plan-memory)");
  for (auto [result, offset] :
       llvm::zip(op.getResults(), offsets.asArrayRef())) {
    auto index = newTensor(result, plan::Storage::Arena);
    if (failed(index))
      return failure();
    tensors[*index].offset = static_cast<uint64_t>(offset);
    inst.outputs.push_back(*index);
  }
  // A copy holds the same piece of the full tensor as its input.
  if (isa<CopyOp>(op))
    tensors[inst.outputs[0]].shard = tensors[inst.inputs[0]].shard;
  instructions.push_back(std::move(inst));
  return success();
}

/// The opcode and attributes of one instruction: transfers and copies here,
/// the rest from the op's PlanOpInterface.
LogicalResult Emitter::lowerInstruction(Operation &op, InstrInfo &inst) {
  if (auto send = dyn_cast<SendOp>(op)) {
    inst.opcode = plan::Opcode::Send;
    inst.attrs.Set(peer(send.getTo()));
    return success();
  }
  if (auto recv = dyn_cast<RecvOp>(op)) {
    inst.opcode = plan::Opcode::Recv;
    inst.attrs.Set(peer(recv.getFrom()));
    return success();
  }
  if (isa<CopyOp>(op)) {
    inst.opcode = plan::Opcode::Copy;
    return success();
  }
  auto rule = dyn_cast<PlanOpInterface>(op);
  if (!rule)
    return op.emitError("no plan instruction for '") << op.getName() << "'";
  PlanInstruction lowered;
  lowered.groupIndex = [&](DeviceGroupAttr g) { return groupOf(g); };
  lowered.positionIn = [&](DeviceGroupAttr g) { return indexIn(g); };
  if (failed(rule.lowerToPlan(lowered)))
    return failure();
  inst.opcode = lowered.opcode;
  inst.attrs = std::move(lowered.attrs);
  return success();
}

FailureOr<flatbuffers::Offset<plan::RankProgram>>
Emitter::run(func::FuncOp func, flatbuffers::FlatBufferBuilder &fbb) {
  auto arena =
      func->getAttrOfType<IntegerAttr>(GalvDialect::getArenaBytesAttrName());
  if (!arena)
    return func.emitError("no arena size (run galv-plan-memory)");
  Block &body = func.getBody().front();
  for (BlockArgument arg : body.getArguments())
    if (failed(addInput(func, arg)))
      return failure();
  for (Operation &op : body.without_terminator())
    if (failed(lowerOp(op)))
      return failure();
  // galv-schedule copied the results that are not fresh arena buffers.
  for (auto [i, value] : llvm::enumerate(body.getTerminator()->getOperands())) {
    int32_t index = indexOf.at(value);
    if (tensors[index].storage != plan::Storage::Arena ||
        llvm::is_contained(outputs, index))
      return func.emitError("result ")
             << i << " is not a buffer of its own (run galv-schedule)";
    auto name = func.getResultAttrOfType<StringAttr>(i, "galv.name");
    if (!name)
      name = func.getResultAttrOfType<StringAttr>(i, "onnx.name");
    tensors[index].name = name ? name.str() : "output" + std::to_string(i);
    outputs.push_back(index);
  }
  if (failed(addFeedback(func)))
    return failure();
  return serialise(fbb, static_cast<uint64_t>(arena.getInt()));
}

/// A result marked with a state role and parameter becomes, next step, the
/// input marked alike (galv-adamw marks both).
LogicalResult Emitter::addFeedback(func::FuncOp func) {
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    // Named copies: lambdas below capture them (bindings only from C++20).
    auto roleAndSymbol = roleOf(func.getResultAttrDict(i));
    auto role = roleAndSymbol.first;
    auto symbol = roleAndSymbol.second;
    if (!rt::isState(role))
      continue;
    std::string param = symbol ? symbol.getValue().str() : "";
    auto input = llvm::find_if(inputs, [&](int32_t t) {
      return tensors[t].role == role && tensors[t].paramName == param;
    });
    if (input == inputs.end())
      return func.emitError("result ")
             << i << " is the new " << plan::EnumNameRole(role) << " of '"
             << param << "', but no argument of rank " << rank
             << "'s program holds it";
    feedback.emplace_back(static_cast<int32_t>(i),
                          static_cast<int32_t>(input - inputs.begin()));
  }
  return success();
}

flatbuffers::Offset<plan::RankProgram>
Emitter::serialise(flatbuffers::FlatBufferBuilder &fbb, uint64_t arenaBytes) {
  std::vector<flatbuffers::Offset<plan::Tensor>> tensorOffsets;
  for (const TensorInfo &t : tensors) {
    flatbuffers::Offset<plan::Shard> shard;
    if (t.shard)
      shard = plan::CreateShardDirect(fbb, &t.shard->fullShape, &t.shard->cuts,
                                      t.shard->flatParts, t.shard->flatIndex);
    tensorOffsets.push_back(plan::CreateTensorDirect(
        fbb, t.name.empty() ? nullptr : t.name.c_str(), t.dtype, &t.shape,
        t.storage, t.offset, t.bytes, shard, t.role,
        t.paramName.empty() ? nullptr : t.paramName.c_str()));
  }
  std::vector<flatbuffers::Offset<plan::Instruction>> instOffsets;
  for (const InstrInfo &inst : instructions)
    instOffsets.push_back(plan::CreateInstructionDirect(
        fbb, inst.opcode, &inst.inputs, &inst.outputs, inst.attrs.type,
        inst.attrs.Pack(fbb)));
  return plan::CreateRankProgramDirect(fbb, rank, &tensorOffsets, &instOffsets,
                                       &inputs, &outputs, arenaBytes, stage,
                                       &feedback);
}

/// The rows of an embedding table: its parameter's (the full table), else
/// its own.
int64_t tableRows(Value table) {
  int64_t rows = cast<RankedTensorType>(table.getType()).getDimSize(0);
  FlatSymbolRefAttr symbol;
  if (auto get = table.getDefiningOp<GetParameterOp>()) {
    symbol = get.getNameAttr();
  } else if (auto arg = dyn_cast<BlockArgument>(table)) {
    if (auto func = dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp()))
      symbol = func.getArgAttrOfType<FlatSymbolRefAttr>(
          arg.getArgNumber(), GalvDialect::getParamAttrName());
  }
  if (symbol)
    if (auto param = SymbolTable::lookupNearestSymbolFrom<ParameterOp>(
            table.getParentRegion()->getParentOp(), symbol))
      return param.getTensorType().getDimSize(0);
  return rows;
}

/// Plan.vocab_size: the largest embedding table's rows (the vocabulary, as
/// galv-partition takes it), else the classes of a loss's logits, else 0.
int64_t vocabularySize(ModuleOp module) {
  int64_t vocab = 0, classes = 0;
  module.walk([&](Operation *op) {
    if (auto e = dyn_cast<EmbeddingOp>(op))
      vocab = std::max(vocab, tableRows(e.getTable()));
    if (auto ce = dyn_cast<CrossEntropyOp>(op))
      classes =
          std::max(classes, cast<RankedTensorType>(ce->getOperand(0).getType())
                                .getShape()
                                .back());
  });
  return vocab ? vocab : classes;
}

} // namespace

LogicalResult mlir::galv::emitPlan(ModuleOp module, llvm::raw_ostream &os) {
  return emitPlan(module, planFunction.getValue(), os);
}

LogicalResult mlir::galv::emitPlan(ModuleOp module, StringRef function,
                                   llvm::raw_ostream &os) {
  auto config =
      module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
  int32_t world = config ? static_cast<int32_t>(config.getWorldSize()) : 1;
  int32_t stages = config ? static_cast<int32_t>(config.getPp()) : 1;
  // galv-schedule's function per stage, named as it names them.
  SmallVector<func::FuncOp> stageFunctions;
  for (int32_t stage = 0; stage < stages; ++stage) {
    std::string name = (function + "_stage" + Twine(stage)).str();
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (func && !func.isExternal()) {
      stageFunctions.push_back(func);
      continue;
    }
    if (!module.lookupSymbol<func::FuncOp>(function))
      return module.emitError("--emit-plan needs a func.func @") << function;
    return module.emitError("--emit-plan serialises a scheduled plan, and @")
           << name << " is missing: run galvatron-opt "
           << "--galv-assign-stages=function=" << function
           << " --galv-schedule=function=" << function
           << " --galv-plan-memory first (--galv-inference-pipeline and "
              "--galv-training-pipeline do)";
  }
  // One program per rank; the ranks of a stage share its function and
  // differ only in their groups and pieces, which each rank resolves.
  SharedPlan shared;
  shared.group({0}); // group 0: rank 0 alone, as one-rank plans have
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::RankProgram>> ranks;
  for (int32_t rank = 0; rank < world; ++rank) {
    Emitter emitter(shared, rank, world / stages);
    auto program = emitter.run(stageFunctions[rank / (world / stages)], fbb);
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
  bool shapesOnly = module->hasAttr(GalvDialect::getShapesOnlyAttrName());
  fbb.Finish(plan::CreatePlanDirect(fbb, world, weightsFile.c_str(), &groups,
                                    &ranks, &shared.constants, shapesOnly,
                                    vocabularySize(module)),
             plan::PlanIdentifier());
  std::vector<uint8_t> bytes =
      galvatron::rt::wrapPlan(fbb.GetBufferPointer(), fbb.GetSize());
  os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  return success();
}

void mlir::galv::registerPlanTranslations() {
  static TranslateFromMLIRRegistration emit(
      "emit-plan",
      "serialise the scheduled, memory-planned stage functions to plan.bin",
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
