//===- PlanMemory.cpp - arena offsets for every stage program -------------===//

#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <map>

namespace mlir::galv {
#define GEN_PASS_DEF_PLANMEMORY
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
/// Arena offsets are multiples of this (the runtime's kernels assume it).
constexpr uint64_t kAlignment = 64;

/// Constants and parameter reads live in the plan's constants blob and the
/// weights; every other op is an instruction whose results are arena buffers.
bool isInstruction(Operation &op) {
  return !isa<ConstantOp, GetParameterOp, func::ReturnOp>(op);
}

FailureOr<uint64_t> bytesOf(Value value, Operation *at) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape() || !type.getElementType().isIntOrFloat())
    return at->emitError("cannot place a buffer of type ") << value.getType();
  uint64_t width = (type.getElementTypeBitWidth() + 7) / 8;
  return type.getNumElements() * width;
}

/// The reshapes that may share their operand's buffer: the operand is an
/// arena buffer, and neither it nor the reshape is a stage result (results
/// are buffers of their own). Maps each such reshape's result to the value
/// whose buffer it is.
DenseMap<Value, Value> aliasingReshapes(Block &body) {
  llvm::DenseSet<Value> returned(body.getTerminator()->operand_begin(),
                                 body.getTerminator()->operand_end());
  DenseMap<Value, Value> bufferOf;
  for (auto reshape : body.getOps<ReshapeOp>()) {
    Value operand = reshape.getOperand();
    Operation *def = operand.getDefiningOp();
    if (!def || !isInstruction(*def) || returned.contains(operand) ||
        returned.contains(reshape.getResult()))
      continue;
    bufferOf[reshape.getResult()] =
        bufferOf.lookup(operand) ? bufferOf.lookup(operand) : operand;
  }
  return bufferOf;
}

/// First-fit placement in one stage function: outputs are placed before the
/// instruction's dying inputs are freed, since a kernel reads its inputs
/// while it writes its outputs. A reshape whose bytes are its operand's
/// (row-major either way) takes the operand's buffer instead, which then
/// lives until the last reader of either.
LogicalResult planFunction(func::FuncOp func) {
  Block &body = func.getBody().front();
  DenseMap<Value, Value> bufferOf = aliasingReshapes(body);
  auto buffer = [&](Value value) {
    Value owner = bufferOf.lookup(value);
    return owner ? owner : value;
  };
  // The last instruction that reads each buffer; results live to the end.
  DenseMap<Value, int64_t> lastUse;
  SmallVector<Operation *> instructions;
  for (Operation &op : body) {
    if (isa<StageTransferOp, StageBroadcastOp, ReplicateOp, LayerOp>(op))
      return op.emitError("is not an instruction of a stage program: run "
                          "galv-schedule first");
    if (isa<func::ReturnOp>(op)) {
      for (Value value : op.getOperands())
        lastUse[buffer(value)] = INT64_MAX;
      continue;
    }
    if (!isInstruction(op))
      continue;
    for (Value value : op.getOperands())
      lastUse[buffer(value)] = static_cast<int64_t>(instructions.size());
    instructions.push_back(&op);
  }

  std::map<uint64_t, uint64_t> used; // offset -> end
  DenseMap<Value, uint64_t> offsets;
  uint64_t arenaBytes = 0;
  auto freeIfDead = [&](Value value, int64_t index) {
    Operation *def = value.getDefiningOp();
    if (!def || !isInstruction(*def))
      return;
    Value owner = buffer(value);
    auto it = lastUse.find(owner);
    if (it == lastUse.end() || it->second <= index)
      used.erase(offsets.lookup(owner));
  };
  Builder builder(func.getContext());
  for (auto [index, op] : llvm::enumerate(instructions)) {
    SmallVector<int64_t> placed;
    for (Value result : op->getResults()) {
      if (Value owner = bufferOf.lookup(result)) {
        offsets[result] = offsets.lookup(owner);
        placed.push_back(static_cast<int64_t>(offsets[result]));
        continue;
      }
      FailureOr<uint64_t> bytes = bytesOf(result, op);
      if (failed(bytes))
        return failure();
      uint64_t size = std::max<uint64_t>(
          (*bytes + kAlignment - 1) / kAlignment * kAlignment, kAlignment);
      uint64_t candidate = 0;
      for (auto [begin, end] : used) {
        if (begin >= candidate + size)
          break;
        candidate = std::max(candidate, end);
      }
      used[candidate] = candidate + size;
      offsets[result] = candidate;
      placed.push_back(static_cast<int64_t>(candidate));
      // The stated peak is the last byte any buffer touches.
      arenaBytes = std::max(arenaBytes, candidate + *bytes);
    }
    op->setAttr(GalvDialect::getOffsetsAttrName(),
                builder.getDenseI64ArrayAttr(placed));
    for (Value value : op->getOperands())
      freeIfDead(value, static_cast<int64_t>(index));
    for (Value value : op->getResults())
      freeIfDead(value, static_cast<int64_t>(index));
  }
  func->setAttr(GalvDialect::getArenaBytesAttrName(),
                builder.getI64IntegerAttr(static_cast<int64_t>(arenaBytes)));
  return success();
}

struct PlanMemoryPass : galv::impl::PlanMemoryBase<PlanMemoryPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      // Only galv-schedule's stage functions carry a stage.
      if (func.isExternal() || !func->hasAttr(GalvDialect::getStageAttrName()))
        continue;
      if (failed(planFunction(func)))
        return signalPassFailure();
    }
  }
};
} // namespace
