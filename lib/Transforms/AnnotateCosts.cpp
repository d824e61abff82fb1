//===- AnnotateCosts.cpp - cost attributes from op rules or profiles ------===//
//
// The native costs are a roofline over the op interfaces: each op takes the
// longer of its FLOPs at the GEMM rate and its bytes at the memory
// bandwidth. What a layer keeps for its backward pass is every value it
// computes (the runtime's arena keeps them until the adjoint reads them);
// with tensor parallelism t each rank keeps 1/t of it, as with Megatron's
// sequence parallelism. docs/COSTMODEL.md, "The native model".
//
//===----------------------------------------------------------------------===//

#include "CostInputs.h"
#include "galvatron/CostModel/Hardware.h"
#include "galvatron/CostModel/Profiles.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::galv {
#define GEN_PASS_DEF_ANNOTATECOSTS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;
namespace cm = galvatron::costmodel;

namespace {

/// The tensor-parallel degrees a cost attribute lists.
constexpr int64_t kMaxDegree = 1024;

SmallVector<int64_t> degrees() {
  SmallVector<int64_t> out;
  for (int64_t t = 1; t <= kMaxDegree; t *= 2)
    out.push_back(t);
  return out;
}

/// The hardware's rates in the units the roofline needs.
struct Rates {
  double flopsPerMs = 0, bytesPerMs = 0;
  /// Bytes of a float element at the precision, over its IR width (bf16
  /// halves what f32 IR says).
  double floatScale = 1;
};

LogicalResult ratesFor(const cm::HardwareSpec &hw, StringRef precision,
                       Rates &out, std::string &error) {
  double tflops = hw.device.gemmTflopsFp32;
  if (precision == "bf16") {
    out.floatScale = 0.5;
    if (hw.device.gemmTflopsBf16 > 0)
      tflops = hw.device.gemmTflopsBf16;
  }
  if (!(tflops > 0) || !(hw.device.memoryBandwidthGBs > 0))
    return error = "hardware '" + hw.name +
                   "' gives no GEMM rate or memory bandwidth (Galvatron's "
                   "hardware files carry none): use a hw.json from "
                   "galvatron-profile or a preset, or model=galvatron with "
                   "a profile",
           failure();
  out.flopsPerMs = tflops * 1e9;
  out.bytesPerMs = hw.device.memoryBandwidthGBs * 1e6;
  return success();
}

/// Bytes of a value at the precision (integer tensors keep their width).
double valueBytes(Value v, const Rates &rates) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || !type.hasStaticShape())
    return 0;
  double bytes = type.getNumElements() *
                 std::max<int64_t>(1, type.getElementTypeBitWidth() / 8);
  return isa<FloatType>(type.getElementType()) ? bytes * rates.floatScale
                                               : bytes;
}

/// What a run of ops costs: time, and the bytes of what they compute.
struct RegionCost {
  double ms = 0, keptBytes = 0;
};

void addOp(Operation *op, const Rates &rates, RegionCost &cost) {
  auto costOp = dyn_cast<CostOpInterface>(op);
  if (!costOp || isa<GetParameterOp, ConstantOp>(op))
    return;
  OpCost c = costOp.getCost();
  double bytes = (c.bytesRead + c.bytesWritten) * rates.floatScale;
  cost.ms += std::max(c.flops / rates.flopsPerMs, bytes / rates.bytesPerMs);
  for (Value result : op->getResults())
    cost.keptBytes += valueBytes(result, rates);
}

/// The micro-batch a layer type was traced at: its first input's first
/// dimension.
int64_t tracedBatch(LayerTypeOp type) {
  auto t = dyn_cast<RankedTensorType>(type.getArgumentTypes().front());
  return t && t.getRank() > 0 && t.getDimSize(0) > 0 ? t.getDimSize(0) : 1;
}

LayerCostAttr nativeLayerCost(LayerTypeOp type, const Rates &rates) {
  RegionCost cost;
  type.getBody().walk([&](Operation *op) { addOp(op, rates, cost); });
  double batch = tracedBatch(type);
  int64_t parameterBytes = 0, inputBytes = 0;
  unsigned activations = type.getNumActivationInputs();
  for (auto [i, arg] : llvm::enumerate(type.getBody().getArguments())) {
    auto t = cast<RankedTensorType>(arg.getType());
    int64_t bytes = t.getNumElements() *
                    std::max<int64_t>(1, t.getElementTypeBitWidth() / 8);
    if (i < activations)
      inputBytes += valueBytes(arg, rates);
    else
      parameterBytes += bytes; // fp32, as Galvatron's parameter_size
  }
  SmallVector<int64_t> tps = degrees(), kept;
  for (int64_t t : tps)
    kept.push_back(static_cast<int64_t>(std::ceil(cost.keptBytes / batch / t)));
  return LayerCostAttr::get(
      type.getContext(), APFloat(cost.ms / batch), APFloat(2.0), parameterBytes,
      tps, kept, static_cast<int64_t>(std::ceil(inputBytes / batch)));
}

/// The embedding (before the first layer) and the head (after the last):
/// their time, and per vocabulary tp degree what a rank holds. Tensors with
/// a vocabulary-sized dimension are split over the degree.
struct OtherCosts {
  double ms = 0;
  SmallVector<int64_t> degrees, firstParams, lastParams, firstActs, lastActs;
};

LogicalResult nativeOtherCosts(func::FuncOp forward, const Rates &rates,
                               int64_t batch, OtherCosts &out,
                               std::string &error) {
  auto logits = dyn_cast<RankedTensorType>(
      forward.getFunctionType().getResults().front());
  int64_t vocab = logits && logits.getRank() > 0
                      ? logits.getDimSize(logits.getRank() - 1)
                      : 0;
  auto hasVocab = [&](Type type) {
    auto t = dyn_cast<RankedTensorType>(type);
    return t && vocab > 1 && llvm::is_contained(t.getShape(), vocab);
  };
  // Per region: split and whole bytes of parameters and activations.
  double params[2][2] = {{0, 0}, {0, 0}}, acts[2][2] = {{0, 0}, {0, 0}};
  bool afterLayers = false;
  for (Operation &op : forward.getBody().front()) {
    if (isa<LayerOp>(op)) {
      afterLayers = true;
      continue;
    }
    int region = afterLayers ? 1 : 0;
    if (auto get = dyn_cast<GetParameterOp>(op)) {
      // A parameter a layer reads belongs to that layer's cost.
      if (llvm::all_of(get->getUsers(),
                       [](Operation *u) { return isa<LayerOp>(u); }))
        continue;
      auto t = cast<RankedTensorType>(get.getType());
      params[region][hasVocab(t)] += t.getNumElements() * 4.0;
      continue;
    }
    RegionCost cost;
    addOp(&op, rates, cost);
    out.ms += cost.ms / batch;
    for (Value result : op.getResults())
      acts[region][hasVocab(result.getType())] +=
          valueBytes(result, rates) / batch;
  }
  if (!afterLayers)
    return error = "@forward calls no layer instance (galv.layer): outline "
                   "the layers before annotating costs",
           failure();
  out.degrees = degrees();
  for (int64_t k : out.degrees) {
    auto share = [&](double(&v)[2]) {
      return static_cast<int64_t>(std::ceil(v[0] + v[1] / k));
    };
    out.firstParams.push_back(share(params[0]));
    out.lastParams.push_back(share(params[1]));
    out.firstActs.push_back(share(acts[0]));
    out.lastActs.push_back(share(acts[1]));
  }
  return success();
}

/// Costs from Galvatron's profiles: the i-th layer type takes layertype_i.
LogicalResult profiledCosts(ModuleOp module, StringRef profile,
                            int64_t sequence, OtherCosts &other,
                            std::string &error) {
  auto [computationPath, memoryPath] = profile.split(',');
  cm::ComputationProfile computation;
  cm::MemoryProfile memory;
  if (memoryPath.empty())
    return error = "profile= needs computation.json,memory.json", failure();
  if (!cm::readComputationProfile(computationPath.str(), computation, error) ||
      !cm::readMemoryProfile(memoryPath.str(), memory, error))
    return failure();
  int index = 0;
  for (auto type : module.getOps<LayerTypeOp>()) {
    ProfiledLayer layer;
    if (failed(readProfiledLayer(computation, memory, computationPath,
                                 memoryPath, index++, sequence, layer, error)))
      return failure();
    SmallVector<int64_t> tps, bytes;
    for (auto [tp, mb] : layer.activationMb) {
      tps.push_back(tp);
      bytes.push_back(static_cast<int64_t>(std::llround(mb * (1 << 20))));
    }
    type.setCostAttr(LayerCostAttr::get(
        module.getContext(), APFloat(layer.forwardMs), APFloat(2.0),
        static_cast<int64_t>(std::llround(layer.parameterMb * (1 << 20))), tps,
        bytes,
        static_cast<int64_t>(std::llround(layer.checkpointMb * (1 << 20)))));
  }
  return readProfiledOther(computation, memory, computationPath, memoryPath,
                           sequence, other.ms, other.degrees, other.firstParams,
                           other.lastParams, other.firstActs, other.lastActs,
                           error);
}

struct AnnotateCostsPass : galv::impl::AnnotateCostsBase<AnnotateCostsPass> {
  using Base::Base;

  LogicalResult annotate(ModuleOp module, std::string &error) {
    if (model != "native" && model != "galvatron")
      return error = "model '" + model + "' is not native or galvatron",
             failure();
    if (precision != "fp32" && precision != "bf16")
      return error = "precision '" + precision + "' is not fp32 or bf16",
             failure();
    if (model == "galvatron" && profile.empty())
      return error = "model=galvatron needs profile=computation.json,"
                     "memory.json (Galvatron's model profiles)",
             failure();
    cm::HardwareSpec hw;
    if (hardware.empty())
      return error = "hardware= is required (hw.json, a directory of "
                     "Galvatron's files, or preset:NAME)",
             failure();
    if (!cm::loadHardware(hardware, hw, error))
      return failure();
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward || forward.getNumResults() == 0)
      return error = "the module has no @forward with a result", failure();
    auto shape = importedShape(module);
    OtherCosts other;
    if (model == "galvatron") {
      if (failed(profiledCosts(module, profile, shape.sequence, other, error)))
        return failure();
    } else {
      Rates rates;
      if (failed(ratesFor(hw, precision, rates, error)))
        return failure();
      for (auto type : module.getOps<LayerTypeOp>())
        type.setCostAttr(nativeLayerCost(type, rates));
      if (failed(nativeOtherCosts(
              forward, rates, std::max<int64_t>(1, shape.batch), other, error)))
        return failure();
    }
    module->setAttr(ModelCostAttr::getAttrName(),
                    ModelCostAttr::get(module.getContext(), hardware, model,
                                       precision, profile, APFloat(other.ms),
                                       other.degrees, other.firstParams,
                                       other.lastParams, other.firstActs,
                                       other.lastActs));
    if (!exportProfile.empty())
      return exportGalvatronProfiles(module, exportProfile, error);
    return success();
  }

  void runOnOperation() override {
    std::string error;
    if (failed(annotate(getOperation(), error))) {
      emitError(getOperation().getLoc(), "galv-annotate-costs: ") << error;
      signalPassFailure();
    }
  }
};

} // namespace
