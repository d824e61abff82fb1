//===- CostInputs.cpp - a module's costs as the cost model's inputs -------===//

#include "CostInputs.h"

#include "galvatron/CostModel/Profiles.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::galv;
namespace cm = galvatron::costmodel;

ImportedShape mlir::galv::importedShape(ModuleOp module) {
  ImportedShape shape;
  for (auto type : module.getOps<LayerTypeOp>()) {
    auto t = dyn_cast<RankedTensorType>(type.getArgumentTypes().front());
    if (t && t.getRank() == 3) {
      shape = {t.getDimSize(0), t.getDimSize(1), t.getDimSize(2)};
      return shape;
    }
  }
  if (auto forward = module.lookupSymbol<func::FuncOp>("forward"))
    if (forward.getNumArguments() > 0)
      if (auto t = dyn_cast<RankedTensorType>(forward.getArgumentTypes()[0]))
        if (t.getRank() > 0) {
          shape.batch = t.getDimSize(0);
          shape.sequence = t.getRank() > 1 ? t.getDimSize(1) : 1;
        }
  return shape;
}

namespace {

/// The first computation-profile entry whose key starts with `prefix`.
LogicalResult firstTime(const cm::ComputationProfile &computation,
                        StringRef path, const std::string &prefix, double &ms,
                        std::string &error) {
  for (auto &[key, value] : computation.entries)
    if (StringRef(key).starts_with(prefix)) {
      ms = value;
      return success();
    }
  return error = (path + ": no key '" + prefix + "bsz<b>_seq<s>'").str(),
         failure();
}

/// The `_sp` section of a memory profile when it has one, else the plain.
std::string sectionName(const cm::MemoryProfile &memory,
                        const std::string &stem) {
  return memory.layers.count(stem + "_sp") || memory.other.count(stem + "_sp")
             ? stem + "_sp"
             : stem;
}

} // namespace

LogicalResult mlir::galv::readProfiledLayer(
    const cm::ComputationProfile &computation, const cm::MemoryProfile &memory,
    StringRef computationPath, StringRef memoryPath, int index,
    int64_t sequence, ProfiledLayer &out, std::string &error) {
  std::string stem = "layertype_" + std::to_string(index);
  if (failed(firstTime(computation, computationPath, stem + "_", out.forwardMs,
                       error)))
    return failure();
  std::string name = sectionName(memory, stem);
  auto section = memory.layers.find(name);
  if (section == memory.layers.end() || !section->second.count(sequence))
    return error = (memoryPath + ": key '" + name + "." + Twine(sequence) +
                    "': missing (the model's sequence length)")
                       .str(),
           failure();
  const cm::LayerMemoryProfile &layer = section->second.at(sequence);
  out.parameterMb = layer.parameterSize;
  for (auto &[key, mb] : layer.activationPerBsz) {
    int64_t tp;
    if (key == "checkpoint")
      out.checkpointMb = mb;
    else if (!StringRef(key).getAsInteger(10, tp))
      out.activationMb[tp] = mb;
  }
  return success();
}

LogicalResult mlir::galv::readProfiledOther(
    const cm::ComputationProfile &computation, const cm::MemoryProfile &memory,
    StringRef computationPath, StringRef memoryPath, int64_t sequence,
    double &forwardMs, SmallVectorImpl<int64_t> &degrees,
    SmallVectorImpl<int64_t> &firstParams, SmallVectorImpl<int64_t> &lastParams,
    SmallVectorImpl<int64_t> &firstActs, SmallVectorImpl<int64_t> &lastActs,
    std::string &error) {
  if (failed(firstTime(computation, computationPath, "layertype_other_",
                       forwardMs, error)))
    return failure();
  const cm::OtherMemoryProfile *ends[2] = {nullptr, nullptr};
  const char *stems[2] = {"other_memory_pp_on_first",
                          "other_memory_pp_on_last"};
  for (auto [i, stem] : llvm::enumerate(stems)) {
    std::string name = sectionName(memory, stem);
    auto section = memory.other.find(name);
    if (section == memory.other.end() || !section->second.count(sequence))
      return error = (memoryPath + ": key '" + name + "." + Twine(sequence) +
                      "': missing")
                         .str(),
             failure();
    ends[i] = &section->second.at(sequence);
    if (!ends[i]->modelStatesPerTp || !ends[i]->activationPerTp)
      return error = (memoryPath + ": key '" + name + "." + Twine(sequence) +
                      "': model_states and activation must be keyed by "
                      "vocabulary tp degree")
                         .str(),
             failure();
  }
  auto bytes = [](double mb) {
    return static_cast<int64_t>(std::llround(mb * (1 << 20)));
  };
  for (auto &[k, states] : ends[0]->modelStates) {
    if (!ends[1]->modelStates.count(k) || !ends[0]->activation.count(k) ||
        !ends[1]->activation.count(k))
      continue;
    degrees.push_back(k);
    // Galvatron's model states are 4x the fp32 parameters.
    firstParams.push_back(bytes(states / 4));
    lastParams.push_back(bytes(ends[1]->modelStates.at(k) / 4));
    firstActs.push_back(bytes(ends[0]->activation.at(k)));
    lastActs.push_back(bytes(ends[1]->activation.at(k)));
  }
  if (degrees.empty())
    return error = (memoryPath + ": no vocabulary tp degree has both ends' "
                                 "model states and activations")
                       .str(),
           failure();
  return success();
}

namespace {

/// Narrows the hardware to `world` devices on `nodes` nodes.
LogicalResult fitWorld(cm::HardwareSpec &spec, int64_t world, int64_t nodes,
                       std::string &error) {
  cm::HardwareProfile &hw = spec.comm;
  if (world < 1 || !llvm::isPowerOf2_64(world))
    return error =
               "world-size " + std::to_string(world) + " is not a power of two",
           failure();
  if (nodes == 0)
    nodes = world <= hw.gpusPerNode ? 1 : world / hw.gpusPerNode;
  if (nodes < 1 || world % nodes != 0 || nodes > hw.numNodes ||
      world / nodes > hw.gpusPerNode)
    return error = "hardware '" + spec.name + "' has " +
                   std::to_string(hw.numNodes) + " node(s) of " +
                   std::to_string(hw.gpusPerNode) + " devices; " +
                   std::to_string(world) + " devices on " +
                   std::to_string(nodes) + " node(s) do not fit it",
           failure();
  hw.numNodes = static_cast<int>(nodes);
  hw.gpusPerNode = static_cast<int>(world / nodes);
  for (auto it = hw.allreduce.begin(); it != hw.allreduce.end();)
    it = it->first.first > world ? hw.allreduce.erase(it) : std::next(it);
  for (auto it = hw.p2p.begin(); it != hw.p2p.end();)
    it = it->first > world ? hw.p2p.erase(it) : std::next(it);
  for (auto &[op, groups] : hw.spTime)
    for (auto it = groups.begin(); it != groups.end();)
      it = it->first > world ? groups.erase(it) : std::next(it);
  return success();
}

/// The native model's memory rounding (MB): fine enough that the budget
/// spans at least 2^15 units (Galvatron's whole MB gives 36864 for 36 GB).
double memoryUnitMb(double budgetBytes) {
  double unit = 1;
  while (unit > 1.0 / (1 << 16) &&
         budgetBytes / (unit * kBytesPerMb) < (1 << 15))
    unit /= 2;
  return unit;
}

LogicalResult nativeProfiles(ModuleOp module, LayerCostAttr cost,
                             ModelCostAttr model, ModuleCosts &out) {
  const double u = kBytesPerMb;
  std::string seq = std::to_string(out.shape.sequence);
  out.computation.entries = {
      {"layertype_0_bsz1_seq" + seq, cost.getForwardMs().convertToDouble()},
      {"layertype_other_bsz1_seq" + seq,
       model.getOtherForwardMs().convertToDouble()}};
  cm::LayerMemoryProfile layer;
  layer.parameterSize = cost.getParameterBytes() / u;
  for (auto [tp, bytes] :
       llvm::zip_equal(cost.getTpDegrees(), cost.getActivationBytes()))
    layer.activationPerBsz[std::to_string(tp)] = bytes / u;
  layer.activationPerBsz["checkpoint"] = cost.getCheckpointBytes() / u;
  cm::OtherMemoryProfile first, last, off;
  for (auto [i, k] : llvm::enumerate(model.getVocabTpDegrees())) {
    int key = static_cast<int>(k);
    first.modelStates[key] = 4.0 * model.getFirstParameterBytes()[i] / u;
    last.modelStates[key] = 4.0 * model.getLastParameterBytes()[i] / u;
    first.activation[key] = model.getFirstActivationBytes()[i] / u;
    last.activation[key] = model.getLastActivationBytes()[i] / u;
    off.modelStates[key] = first.modelStates[key] + last.modelStates[key];
    off.activation[key] = first.activation[key] + last.activation[key];
  }
  int64_t s = out.shape.sequence;
  for (const char *suffix : {"", "_sp"}) {
    out.memory.layers[std::string("layertype_0") + suffix][s] = layer;
    out.memory.other[std::string("other_memory_pp_off") + suffix][s] = off;
    out.memory.other[std::string("other_memory_pp_on_first") + suffix][s] =
        first;
    out.memory.other[std::string("other_memory_pp_on_last") + suffix][s] = last;
  }
  return success();
}

/// The one layer type the layer instances use (the cost model prices one).
LogicalResult usedLayerType(ModuleOp module, LayerTypeOp &type, int64_t &count,
                            std::string &error) {
  SmallVector<StringRef> names;
  count = 0;
  module.walk([&](LayerOp layer) {
    ++count;
    if (!llvm::is_contained(names, layer.getLayerType()))
      names.push_back(layer.getLayerType());
  });
  if (names.empty())
    return error = "the module has no layer instances (galv.layer)", failure();
  if (names.size() > 1)
    return error = "the cost model prices one layer type; the layers use " +
                   std::to_string(names.size()) + " (@" + names[0].str() +
                   ", @" + names[1].str() + ", ...)",
           failure();
  type = module.lookupSymbol<LayerTypeOp>(names[0]);
  if (!type)
    return error = "layer type @" + names[0].str() + " is not defined",
           failure();
  return success();
}

} // namespace

LogicalResult mlir::galv::loadModuleCosts(ModuleOp module, int64_t worldSize,
                                          int64_t nodes, double memoryGB,
                                          bool megatronSp, ModuleCosts &out,
                                          std::string &error) {
  auto model =
      module->getAttrOfType<ModelCostAttr>(ModelCostAttr::getAttrName());
  if (!model)
    return error = "the module has no cost attributes (galv.costs): run "
                   "--galv-annotate-costs first",
           failure();
  LayerTypeOp type;
  if (failed(usedLayerType(module, type, out.numLayers, error)))
    return failure();
  if (!cm::loadHardware(model.getHardware().str(), out.hardware, error) ||
      failed(fitWorld(out.hardware, worldSize, nodes, error)))
    return failure();
  out.shape = importedShape(module);
  out.native = model.getModel() == "native";
  cm::CostModelSettings &s = out.settings;
  s.numLayers = static_cast<int>(out.numLayers);
  s.seqLen = static_cast<int>(out.shape.sequence);
  s.hiddenSize = static_cast<int>(out.shape.hidden);
  s.mixedPrecision = model.getPrecision() == "bf16";
  s.sequenceParallel = megatronSp;
  if (!out.native) {
    auto [computationPath, memoryPath] = model.getProfile().split(',');
    s.memoryConstraintGB = memoryGB;
    if (!cm::readComputationProfile(computationPath.str(), out.computation,
                                    error) ||
        !cm::readMemoryProfile(memoryPath.str(), out.memory, error))
      return failure();
    return success();
  }
  auto cost = type.getCostAttr();
  if (!cost)
    return error = "layer type @" + type.getSymName().str() +
                   " has no #galv.cost: run --galv-annotate-costs first",
           failure();
  // Without a budget the unit follows the model's own size.
  double scale = memoryGB > 0 ? memoryGB * double(1 << 30)
                              : 16.0 * cost.getParameterBytes() * out.numLayers;
  s.memoryUnitMb = memoryUnitMb(scale);
  // The native model prices tp traffic from the bandwidth tables (sp_space
  // tp), so sp_time is not read; a quick profile's short one would not fit.
  out.hardware.comm.spTime.clear();
  // Our runtime has no framework context, caching-allocator reserve or
  // Megatron's global all-gather buffer.
  s.pytorchContextMb = 0;
  s.allocatorReserve = false;
  s.globalMemoryBuffer = false;
  s.memoryConstraintGB = memoryGB;
  return nativeProfiles(module, cost, model, out);
}

LogicalResult mlir::galv::exportGalvatronProfiles(ModuleOp module,
                                                  StringRef dir,
                                                  std::string &error) {
  auto model =
      module->getAttrOfType<ModelCostAttr>(ModelCostAttr::getAttrName());
  LayerTypeOp type;
  ModuleCosts costs;
  if (!model || model.getModel() != "native")
    return error = "only native costs are exported as Galvatron profiles",
           failure();
  if (failed(usedLayerType(module, type, costs.numLayers, error)))
    return failure();
  costs.shape = importedShape(module);
  if (failed(nativeProfiles(module, type.getCostAttr(), model, costs)))
    return failure();
  std::string stem = (dir + "/").str();
  std::string suffix = model.getPrecision().str() + "_model.json";
  if (!cm::writeComputationProfile(stem + "computation_profiling_" + suffix,
                                   costs.computation, error) ||
      !cm::writeMemoryProfile(stem + "memory_profiling_" + suffix, costs.memory,
                              error))
    return failure();
  return success();
}

LogicalResult mlir::galv::strategyOfModule(ModuleOp module, cm::Strategy &out,
                                           std::string &error) {
  auto plan =
      module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
  if (!plan)
    return error = "the module has no strategy (galv.plan): run "
                   "--galv-apply-strategy or --galv-search first",
           failure();
  out.pp = static_cast<int>(plan.getPp());
  out.ppDivision.assign(plan.getPpDivision().begin(),
                        plan.getPpDivision().end());
  out.globalBatch = static_cast<int>(plan.getGlobalBatch());
  out.chunks = static_cast<int>(plan.getChunks());
  out.pipeline = plan.getSchedule() == PipelineSchedule::gpipe
                     ? cm::PipelineType::GPipe
                     : cm::PipelineType::PipeDreamFlush;
  out.defaultZero2 = plan.getDefaultDpKind() == DataParallelKind::zero2;
  out.vtp = static_cast<int>(plan.getVocabTp());
  out.vsp = plan.getVocabSp() != SequenceParallelKind::none;
  out.embedSdp = plan.getEmbedZero3();
  out.layers.clear();
  WalkResult walk = module.walk([&](LayerOp layer) {
    StrategyAttr s = layer.getStrategyAttr();
    if (!s) {
      error = "a layer instance of @" + layer.getLayerType().str() +
              " has no #galv.strategy";
      return WalkResult::interrupt();
    }
    cm::LayerStrategy l;
    l.tp = static_cast<int>(s.getTp());
    l.consecutive = s.getTpConsecutive();
    l.zero3 = s.getDpKind() == DataParallelKind::zero3;
    l.checkpoint = s.getCheckpoint();
    l.ulysses = s.getSp() == SequenceParallelKind::ulysses;
    out.layers.push_back(l);
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}
