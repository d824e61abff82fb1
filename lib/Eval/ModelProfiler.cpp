//===- ModelProfiler.cpp - time and memory of a model's layers ------------===//
//
// Galvatron profiles a layer type by running the model with one and with two
// layers and taking the difference; so does this, on our runtime and our
// lowering: the model keeping n instances of a layer type (n = 1, 2, no
// other layer) is rebatched and lowered as the training pipeline lowers it.
// Times: its forward and its loss and gradients run on rank 0. Memory: under
// a strategy, rank 0's peak live arena bytes in the forward and backward
// pass, read off the lowered plan. Layer = M2 - M1; embedding and head =
// 2 M1 - M2.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Eval/ModelProfiler.h"

#include "CostInputs.h"
#include "StrategyApplication.h"

#include "Galv/Galv.h"
#include "galvatron/Target/Plan.h"
#include "galvatron/Transforms/Passes.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/PlanFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"

#include <chrono>
#include <cmath>

using namespace mlir;
using namespace mlir::galv;
namespace rt = galvatron::rt;

namespace {

/// Collects the diagnostics emitted while it lives, for an error message.
struct DiagnosticText {
  std::string text;
  ScopedDiagnosticHandler handler;
  explicit DiagnosticText(MLIRContext *ctx)
      : handler(ctx, [this](Diagnostic &d) {
          if (d.getSeverity() == DiagnosticSeverity::Error)
            text += (text.empty() ? "" : "; ") + d.str();
          return success();
        }) {}
};

/// Replaces the dropped layer instances by their first input and erases
/// what only they used.
LogicalResult dropLayers(ModuleOp module, StringRef layerType, int64_t keep,
                         std::string &error) {
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  // One instance of every other type stays, so that what uses their
  // results (a decoder's cross-attention reading the encoder) still runs.
  llvm::StringMap<int64_t> kept;
  SmallVector<LayerOp> drop;
  forward.walk([&](LayerOp layer) {
    int64_t limit = layer.getLayerType() == layerType ? keep : 1;
    if (kept[layer.getLayerType()] < limit)
      ++kept[layer.getLayerType()];
    else
      drop.push_back(layer);
  });
  for (LayerOp layer : drop) {
    if (layer->getNumResults() != 1 || layer.getInputs().empty() ||
        layer.getInputs()[0].getType() != layer->getResult(0).getType())
      return error = "layer type @" + layer.getLayerType().str() +
                     " does not return its first input's type, so the "
                     "model cannot run without it",
             failure();
    layer->getResult(0).replaceAllUsesWith(layer.getInputs()[0]);
    layer.erase();
  }
  // Dead ops (the dropped layers' parameter reads), then the parameters and
  // layer types nothing uses.
  for (Operation &op :
       llvm::make_early_inc_range(llvm::reverse(forward.getBody().front())))
    if (isOpTriviallyDead(&op))
      op.erase();
  llvm::DenseSet<StringRef> used, types;
  module.walk([&](GetParameterOp get) { used.insert(get.getName()); });
  module.walk([&](LayerOp layer) { types.insert(layer.getLayerType()); });
  for (auto param : llvm::make_early_inc_range(module.getOps<ParameterOp>()))
    if (!used.contains(param.getSymName()))
      param.erase();
  for (auto type : llvm::make_early_inc_range(module.getOps<LayerTypeOp>()))
    if (!types.contains(type.getSymName()))
      type.erase();
  return success();
}

/// Rewrites the leading dimension of values computed from the data.
struct Rebatcher {
  int64_t from, to;
  std::string &error;
  llvm::DenseSet<Value> derived;
  llvm::DenseSet<Operation *> doneTypes;

  LogicalResult retype(Value v) {
    derived.insert(v);
    auto t = dyn_cast<RankedTensorType>(v.getType());
    if (!t || t.getRank() == 0)
      return success();
    int64_t lead = t.getDimSize(0);
    if (ShapedType::isDynamic(lead) || lead % from != 0)
      return error = "a value computed from the data has leading dimension " +
                     std::to_string(lead) + ", not a multiple of the batch " +
                     std::to_string(from) +
                     ", so the model cannot be rebatched",
             failure();
    SmallVector<int64_t> shape(t.getShape());
    shape[0] = lead / from * to;
    v.setType(t.clone(shape));
    return success();
  }

  LogicalResult block(Block &body, ModuleOp module) {
    for (Operation &op : body) {
      if (llvm::none_of(op.getOperands(),
                        [&](Value v) { return derived.contains(v); }))
        continue;
      if (auto layer = dyn_cast<LayerOp>(&op))
        if (failed(layerType(layer, module)))
          return failure();
      for (Value result : op.getResults())
        if (failed(retype(result)))
          return failure();
    }
    return success();
  }

  /// Rebatches the body a layer instance calls (once per type).
  LogicalResult layerType(LayerOp layer, ModuleOp module) {
    auto type = module.lookupSymbol<LayerTypeOp>(layer.getLayerType());
    if (!type || !doneTypes.insert(type).second)
      return success();
    Block &body = type.getBody().front();
    for (auto [i, input] : llvm::enumerate(layer.getInputs()))
      if (derived.contains(input) && failed(retype(body.getArgument(i))))
        return failure();
    if (failed(block(body, module)))
      return failure();
    type.setFunctionTypeAttr(TypeAttr::get(
        FunctionType::get(type.getContext(), body.getArgumentTypes(),
                          body.getTerminator()->getOperandTypes())));
    return success();
  }
};

LogicalResult rebatch(ModuleOp module, int64_t batch, std::string &error) {
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  auto lead = cast<RankedTensorType>(forward.getArgumentTypes()[0]);
  Rebatcher r{lead.getDimSize(0), batch, error, {}, {}};
  if (r.from == batch)
    return success();
  Block &body = forward.getBody().front();
  for (BlockArgument arg : body.getArguments())
    if (failed(r.retype(arg)))
      return failure();
  if (failed(r.block(body, module)))
    return failure();
  forward.setType(FunctionType::get(module.getContext(),
                                    body.getArgumentTypes(),
                                    body.getTerminator()->getOperandTypes()));
  DiagnosticText diags(module.getContext());
  if (failed(verify(module)))
    return error = "the model rebatched to " + std::to_string(batch) +
                   " does not verify: " + diags.text,
           failure();
  return success();
}

/// Lowers a copy of the module as the training pipeline does, up to the
/// forward pass (@forward) or the loss and gradients (@loss_grad).
LogicalResult lowerPlan(ModuleOp module, bool backward,
                        std::vector<uint8_t> &storage, std::string &error) {
  OwningOpRef<ModuleOp> copy = module.clone();
  MLIRContext *ctx = module.getContext();
  DiagnosticText diags(ctx);
  PassManager pm(ctx);
  std::string function = backward ? "loss_grad" : "forward";
  if (!backward) {
    buildInferencePipeline(pm);
  } else {
    // The training pipeline up to @loss_grad.
    pm.addPass(createInlineLayers());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    pm.addPass(createAppendLoss());
    pm.addPass(createPartition());
    pm.addPass(createAutodiff());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    pm.addPass(createFoldTransposes());
    pm.addPass(createAssignStages(AssignStagesOptions{function}));
    pm.addPass(createSchedule(ScheduleOptions{function}));
    pm.addPass(createPlanMemory());
  }
  std::string bytes;
  llvm::raw_string_ostream os(bytes);
  if (failed(pm.run(*copy)) || failed(emitPlan(*copy, function, os)))
    return error = "lowering @" + function + " failed: " + diags.text,
           failure();
  storage.assign(bytes.begin(), bytes.end());
  return success();
}

/// Deterministic small values (the times do not depend on them; finite
/// values keep the kernels on their usual path). Integers are 0, a valid
/// token id.
rt::Tensor filled(const galvatron::plan::Tensor &t) {
  rt::Shape shape(t.shape()->begin(), t.shape()->end());
  auto dtype = static_cast<rt::DType>(t.dtype());
  rt::Tensor out = rt::Tensor::zeros(dtype, shape);
  if (dtype == rt::DType::F32 || dtype == rt::DType::F64)
    for (int64_t i = 0; i < out.size(); ++i)
      out.set(i, 0.02 * double((i * 7919) % 101 - 50) / 50);
  return out;
}

/// A lowered plan with synthetic inputs and weights bound.
struct BoundPlan {
  std::vector<uint8_t> storage;
  const galvatron::plan::Plan *plan = nullptr;
  std::map<std::string, rt::Tensor> inputs, weights, outputs;

  LogicalResult bind(std::string &error) {
    plan = rt::verifyPlan(storage, error);
    if (!plan)
      return error = "the lowered plan does not verify: " + error, failure();
    for (const auto *t : *rt::findRankProgram(*plan, 0)->tensors()) {
      using S = galvatron::plan::Storage;
      if (t->storage() == S::Input)
        inputs[t->name()->str()] = filled(*t);
      else if (t->storage() == S::Weight)
        weights[t->name()->str()] = filled(*t);
    }
    return success();
  }
  /// One run on rank 0, in seconds.
  FailureOr<double> run(std::string &error) {
    using Clock = std::chrono::steady_clock;
    rt::RunStats stats;
    auto start = Clock::now();
    if (!rt::runRank(*plan, 0, inputs, weights, outputs, stats, error))
      return failure();
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
};

/// The fastest run of each plan (ms), the plans run in turns so that the
/// machine's load falls on both alike (their difference is what counts).
/// While the fastest runs do not yet resolve the layer (the two-instance
/// model no slower than the one) or, with `withRest`, the rest of the model
/// (the one-instance model at most half the two), the runs go on, up to 8x
/// the time asked for: on a busy machine a small piece hides in the noise.
LogicalResult timePlans(std::array<BoundPlan, 2> &plans,
                        const ModelProfileOptions &options, bool withRest,
                        std::array<double, 2> &ms, std::string &error) {
  std::array<double, 2> best{1e300, 1e300};
  double total = 0, budget = options.minSeconds;
  auto resolved = [&] {
    return best[1] > best[0] && (!withRest || 2 * best[0] > best[1]);
  };
  // One run of each first, untimed: it faults the arenas in.
  for (int run = -1;; ++run) {
    for (int n = 0; n < 2; ++n) {
      FailureOr<double> s = plans[n].run(error);
      if (failed(s))
        return failure();
      if (run >= 0)
        best[n] = std::min(best[n], *s), total += *s;
    }
    if (run + 1 < options.minRuns || total < budget)
      continue;
    if (resolved() || budget >= 8 * options.minSeconds)
      break;
    budget *= 2;
  }
  ms = {best[0] * 1e3, best[1] * 1e3};
  return success();
}

/// One sub-model per batch size.
using Models = std::vector<OwningOpRef<ModuleOp>>;

/// Forward and forward+backward times of the one- and two-instance models
/// per batch size.
LogicalResult timeModels(const std::array<Models, 2> &models,
                         const ModelProfileOptions &options, bool withRest,
                         std::array<TimeSeries, 2> &out, std::string &error) {
  for (size_t i = 0; i < models[0].size(); ++i)
    for (bool backward : {false, true}) {
      std::array<BoundPlan, 2> plans;
      std::array<double, 2> ms;
      for (int n = 0; n < 2; ++n)
        if (failed(
                lowerPlan(*models[n][i], backward, plans[n].storage, error)) ||
            failed(plans[n].bind(error)))
          return failure();
      if (failed(timePlans(plans, options, withRest, ms, error)))
        return failure();
      for (int n = 0; n < 2; ++n)
        (backward ? out[n].forwardBackwardMs : out[n].forwardMs)
            .push_back(ms[n]);
    }
  return success();
}

/// What rank 0 holds in the forward and backward pass (@loss_grad) of
/// `module` under `spec`.
struct RankMemory {
  uint64_t live = 0;    ///< Peak live arena bytes.
  uint64_t weights = 0; ///< Bytes of the parameters it reads (its shards).
};

/// Fails when the strategy does not fit the model (`error` says why).
LogicalResult measureStrategy(ModuleOp module, const StrategySpec &spec,
                              RankMemory &out, std::string &error) {
  OwningOpRef<ModuleOp> copy = module.clone();
  std::vector<uint8_t> storage;
  if (failed(applyStrategySpec(*copy, spec, error)) ||
      failed(lowerPlan(*copy, /*backward=*/true, storage, error)))
    return failure();
  const galvatron::plan::Plan *plan = rt::verifyPlan(storage, error);
  if (!plan)
    return error = "the lowered plan does not verify: " + error, failure();
  const galvatron::plan::RankProgram &rank = *rt::findRankProgram(*plan, 0);
  out.live = galvatron::rt::peakLiveBytes(rank);
  out.weights = 0;
  for (const auto *t : *rank.tensors())
    if (t->storage() == galvatron::plan::Storage::Weight)
      out.weights += t->bytes();
  return success();
}

StrategySpec strategy(int64_t tp, StringRef sp, bool checkpoint) {
  StrategySpec spec;
  spec.worldSize = tp;
  spec.vocabTp = tp;
  spec.tp = {tp};
  spec.sp = {sp.str()};
  spec.checkpoint = {checkpoint ? 1 : 0};
  return spec;
}

/// The one- and two-instance models' peak live bytes under one strategy at
/// batches b, 2b, 4b, ...: at small batches what does not grow with the
/// batch (the gradients being produced) can set the peak, and the peak can
/// move from one point of the program to another as the batch grows. Once
/// the peak grows by the same bytes per sample from batch to batch and what
/// does not grow with the batch is under 1/64 of it, no other point can
/// overtake it with a slope more than 1/64 steeper: that slope is what a
/// sample keeps.
struct LiveSeries {
  std::vector<int64_t> batches;
  std::array<std::vector<uint64_t>, 2> live;
  std::array<uint64_t, 2> weights{0, 0};

  /// Slope of the last two batches.
  double slope(int n) const {
    size_t k = batches.size() - 1;
    return (double(live[n][k]) - double(live[n][k - 1])) /
           double(batches[k] - batches[k - 1]);
  }
  bool settled() const {
    size_t k = batches.size();
    if (k < 3)
      return false;
    for (int n = 0; n < 2; ++n) {
      auto y = [&](size_t i) { return int64_t(live[n][i]); };
      if ((y(k - 1) - y(k - 2)) * (batches[k - 2] - batches[k - 3]) !=
          (y(k - 2) - y(k - 3)) * (batches[k - 1] - batches[k - 2]))
        return false;
      double perSample = slope(n) * double(batches[k - 1]);
      double fixed = double(y(k - 1)) - perSample;
      if (!(perSample > 0) || std::abs(fixed) * 64 > perSample)
        return false;
    }
    return true;
  }
};

/// Doubling the batch from `start` up to 2^20 times it.
constexpr int kMaxDoublings = 20;

LogicalResult measureLive(ModuleOp module, StringRef layerType, int64_t start,
                          const StrategySpec &spec, LiveSeries &out,
                          std::string &error) {
  for (int64_t b = start; !out.settled(); b *= 2) {
    if (b > (start << kMaxDoublings))
      return error = "the peak memory under tp " + std::to_string(spec.tp[0]) +
                     " does not settle to a line through the batch up to " +
                     std::to_string(b / 2),
             failure();
    out.batches.push_back(b);
    for (int n = 0; n < 2; ++n) {
      auto m = extractLayers(module, layerType, n + 1, b, error);
      RankMemory mem;
      if (failed(m) || failed(measureStrategy(**m, spec, mem, error)))
        return failure();
      out.live[n].push_back(mem.live);
      out.weights[n] = mem.weights;
    }
  }
  return success();
}

/// fp32 bytes of the parameters one instance of the layer type takes.
int64_t parameterBytes(LayerTypeOp type) {
  int64_t bytes = 0;
  ArrayRef<Type> args = type.getArgumentTypes();
  for (Type t : args.drop_front(args.size() - type.getNumParams()))
    bytes += cast<RankedTensorType>(t).getNumElements() * 4;
  return bytes;
}

/// Memory per tp degree (doubling while the strategy fits) and
/// sequence-parallel kind; with `other` also the embedding and head's per
/// vocabulary degree (at the layers' tp, no sequence parallelism).
LogicalResult measureMemory(ModuleOp module, const ModelProfileOptions &options,
                            bool other, LayerProfile &layer, ModelProfile &out,
                            std::string &error) {
  int64_t start = out.batchSizes.back();
  for (int64_t tp = 1; tp <= options.maxTp; tp *= 2) {
    for (StringRef sp : {"none", "megatron", "ulysses"}) {
      LiveSeries plain, ckpt;
      std::string why;
      if (failed(measureLive(module, layer.name, start, strategy(tp, sp, false),
                             plain, why))) {
        if (tp == 1 && sp == "none")
          return error = why, failure();
        continue; // The strategy does not fit the model at this degree.
      }
      if (failed(measureLive(module, layer.name, start, strategy(tp, sp, true),
                             ckpt, error)))
        return failure();
      LayerMemory mem;
      mem.tp = tp;
      mem.sp = sp.str();
      mem.activationPerSample = plain.slope(1) - plain.slope(0);
      mem.checkpointPerSample = ckpt.slope(1) - ckpt.slope(0);
      mem.batches = plain.batches;
      mem.live = plain.live;
      mem.checkpointBatches = ckpt.batches;
      mem.checkpointLive = ckpt.live;
      mem.parameterBytes =
          int64_t(plain.weights[1]) - int64_t(plain.weights[0]);
      layer.memory.push_back(mem);
      if (tp == 1 && sp == "none")
        layer.planParameterBytes = mem.parameterBytes;
      if (!other || sp != "none")
        continue;
      // Still with one instance of each other layer type in it: profileModel
      // takes those out.
      OtherMemory o;
      o.vocabTp = tp;
      o.activationPerSample = 2 * plain.slope(0) - plain.slope(1);
      o.parameterBytes =
          2 * int64_t(plain.weights[0]) - int64_t(plain.weights[1]);
      o.batches = plain.batches;
      o.live = plain.live;
      out.other.push_back(o);
    }
  }
  return success();
}

/// A difference of two times that is not positive means the noise is
/// larger than the piece: no line can be fitted through it.
LogicalResult checkPositive(const TimeSeries &t,
                            const std::vector<int64_t> &batches,
                            const std::string &what, std::string &error) {
  for (size_t i = 0; i < batches.size(); ++i)
    for (double ms : {t.forwardMs[i], t.forwardBackwardMs[i]})
      if (!(ms > 0))
        return error = what + "the time at batch " +
                       std::to_string(batches[i]) + " came out at " +
                       std::to_string(ms) +
                       " ms (a difference of two models' times): the "
                       "machine is too noisy to resolve it; raise "
                       "--min-time-ms or the batch sizes",
               failure();
  return success();
}

/// Times and memory of one layer type (and, for the first, the embedding
/// and head).
LogicalResult profileLayerType(ModuleOp module, LayerTypeOp type,
                               int64_t instances,
                               const ModelProfileOptions &options, bool other,
                               ModelProfile &out, std::string &error) {
  LayerProfile layer;
  layer.name = type.getSymName().str();
  layer.instances = instances;
  layer.parameterBytes = parameterBytes(type);
  if (failed(measureMemory(module, options, other, layer, out, error)))
    return failure();
  std::array<Models, 2> models;
  for (int n = 0; n < 2; ++n)
    for (int64_t b : out.batchSizes) {
      auto m = extractLayers(module, layer.name, n + 1, b, error);
      if (failed(m))
        return failure();
      models[n].push_back(std::move(*m));
    }
  std::array<TimeSeries, 2> times;
  if (failed(timeModels(models, options, other, times, error)))
    return failure();
  for (size_t i = 0; i < out.batchSizes.size(); ++i) {
    const TimeSeries &one = times[0], &two = times[1];
    layer.time.forwardMs.push_back(two.forwardMs[i] - one.forwardMs[i]);
    layer.time.forwardBackwardMs.push_back(two.forwardBackwardMs[i] -
                                           one.forwardBackwardMs[i]);
    if (other) {
      out.otherTime.forwardMs.push_back(2 * one.forwardMs[i] -
                                        two.forwardMs[i]);
      out.otherTime.forwardBackwardMs.push_back(2 * one.forwardBackwardMs[i] -
                                                two.forwardBackwardMs[i]);
    }
  }
  if (failed(checkPositive(layer.time, out.batchSizes, "", error)))
    return failure();
  out.layers.push_back(std::move(layer));
  return success();
}

/// The embedding and head were measured with one instance of every other
/// layer type beside the first: take those out.
LogicalResult subtractOtherLayers(ModelProfile &out, std::string &error) {
  for (const LayerProfile &l : llvm::drop_begin(out.layers)) {
    for (size_t i = 0; i < out.batchSizes.size(); ++i) {
      out.otherTime.forwardMs[i] -= l.time.forwardMs[i];
      out.otherTime.forwardBackwardMs[i] -= l.time.forwardBackwardMs[i];
    }
    for (OtherMemory &o : out.other) {
      auto m = llvm::find_if(l.memory, [&](const LayerMemory &m) {
        return m.tp == o.vocabTp && m.sp == "none";
      });
      if (m == l.memory.end())
        return error = "layer type @" + l.name + " has no memory at tp " +
                       std::to_string(o.vocabTp) + " while @" +
                       out.layers.front().name + " has",
               failure();
      o.activationPerSample -= m->activationPerSample;
      o.parameterBytes -= m->parameterBytes;
    }
  }
  return checkPositive(out.otherTime, out.batchSizes,
                       "the embedding and head: ", error);
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>>
mlir::galv::extractLayers(ModuleOp module, StringRef layerType, int64_t keep,
                          int64_t batch, std::string &error) {
  OwningOpRef<ModuleOp> copy = module.clone();
  if (failed(dropLayers(*copy, layerType, keep, error)) ||
      failed(rebatch(*copy, batch, error)))
    return failure();
  return copy;
}

LogicalResult mlir::galv::profileModel(ModuleOp module,
                                       const ModelProfileOptions &options,
                                       ModelProfile &out, std::string &error) {
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (!forward || forward.getNumArguments() == 0 ||
      !isa<RankedTensorType>(forward.getArgumentTypes()[0]) ||
      cast<RankedTensorType>(forward.getArgumentTypes()[0]).getRank() == 0)
    return error = "the module has no @forward taking a batch of data",
           failure();
  // Layer types in the order their instances first appear.
  SmallVector<std::pair<StringRef, int64_t>> used;
  forward.walk([&](LayerOp layer) {
    auto *it = llvm::find_if(
        used, [&](auto &u) { return u.first == layer.getLayerType(); });
    if (it == used.end())
      used.push_back({layer.getLayerType(), 1});
    else
      ++it->second;
  });
  if (used.empty())
    return error = "the module has no layer instances (galv.layer): import "
                   "it with its layers outlined",
           failure();
  for (auto [name, count] : used)
    if (count < 2)
      return error = "layer type @" + name.str() +
                     " has one instance; profiling differences the model "
                     "with one and with two",
             failure();
  ImportedShape shape = importedShape(module);
  out.importedBatch =
      cast<RankedTensorType>(forward.getArgumentTypes()[0]).getDimSize(0);
  out.sequence = shape.sequence;
  out.hidden = shape.hidden;
  out.batchSizes = options.batchSizes;
  if (options.threads > 0)
    rt::setKernelThreads(options.threads);
  for (auto [i, u] : llvm::enumerate(used)) {
    if (options.progress)
      options.progress("layer type @" + u.first.str() + " (" +
                       std::to_string(u.second) + " instances)" +
                       (i == 0 ? ", with the embedding and head" : ""));
    auto type = module.lookupSymbol<LayerTypeOp>(u.first);
    if (!type)
      return error = "layer type @" + u.first.str() + " is not defined",
             failure();
    if (failed(profileLayerType(module, type, u.second, options, i == 0, out,
                                error)))
      return error = "layer type @" + u.first.str() + ": " + error, failure();
  }
  return subtractOtherLayers(out, error);
}
