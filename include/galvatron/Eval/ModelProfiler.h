//===- ModelProfiler.h - time and memory of a model's layers -----*- C++
//-*-===//
//
// What `galvatron-profile model` measures: each layer type's and the
// embedding-and-head's forward and forward+backward time on the runtime over
// several batch sizes, and per tensor-parallel degree and sequence-parallel
// kind the memory the planner gives them. Like Galvatron's own profiler it
// differences models: the model keeping one instance of a layer type (and
// one of every other) against the one keeping two; the layer is the
// difference, the embedding and head what one instance leaves.
// docs/COSTMODEL.md, "Profiling a model".
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_EVAL_MODELPROFILER_H
#define GALVATRON_EVAL_MODELPROFILER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mlir::galv {

struct ModelProfileOptions {
  std::vector<int64_t> batchSizes{1, 2, 4, 8};
  /// The largest tensor-parallel (and vocabulary) degree tried.
  int64_t maxTp = 8;
  /// Each time is the fastest of at least `minRuns` runs taking together at
  /// least `minSeconds` (up to 8x that while a layer's time, a difference
  /// of two models' times, does not come out positive).
  int minRuns = 5;
  double minSeconds = 0.05;
  /// Kernel threads (0: the runtime's default, as galvatron-run).
  int threads = 0;
  std::function<void(const std::string &)> progress;
};

/// Times per batch size (ms per batch, not per sample).
struct TimeSeries {
  std::vector<double> forwardMs, forwardBackwardMs;
};

/// One layer type's memory at one tp degree and sequence-parallel kind:
/// bytes per sample a rank keeps, plain and checkpointed, and what they come
/// from: per batch, rank 0's peak live arena bytes in the forward and
/// backward pass (@loss_grad, as the executor counts them) of the model
/// keeping one (`live[0]`) and two (`live[1]`) instances.
struct LayerMemory {
  int64_t tp = 1;
  std::string sp = "none";
  double activationPerSample = 0, checkpointPerSample = 0;
  /// Rank 0's parameter bytes of one instance (its shards).
  int64_t parameterBytes = 0;
  std::vector<int64_t> batches, checkpointBatches;
  std::array<std::vector<uint64_t>, 2> live, checkpointLive;
};

/// The embedding and head at one vocabulary tp degree (the layers at the
/// same tp degree, no sequence parallelism).
struct OtherMemory {
  int64_t vocabTp = 1;
  double activationPerSample = 0;
  /// Rank 0's parameter bytes (its shards).
  int64_t parameterBytes = 0;
  std::vector<int64_t> batches;
  std::array<std::vector<uint64_t>, 2> live;
};

struct LayerProfile {
  std::string name;
  int64_t instances = 0;
  /// fp32 bytes of one instance's parameters, from the layer type, and as
  /// rank 0's plan at tp 1 reads them (the same when the plan is whole).
  int64_t parameterBytes = 0, planParameterBytes = 0;
  TimeSeries time;
  std::vector<LayerMemory> memory;
};

struct ModelProfile {
  int64_t importedBatch = 0, sequence = 1, hidden = 1;
  std::vector<int64_t> batchSizes;
  std::vector<LayerProfile> layers;
  TimeSeries otherTime;
  std::vector<OtherMemory> other;
};

/// Profiles `module` (imported galv IR with its layers outlined). Fails with
/// `error` when the module has no layer instances, a layer type has a
/// single instance, a batch size does not rebatch the model, or a piece
/// does not lower or run.
LogicalResult profileModel(ModuleOp module, const ModelProfileOptions &options,
                           ModelProfile &out, std::string &error);

/// A copy of `module` whose @forward keeps the first `keep` instances of
/// layer type `layerType` and the first instance of every other layer type
/// (a dropped instance passes its first input on), rebatched to `batch`
/// samples: every value
/// computed from @forward's inputs gets `batch` in place of the imported
/// batch in its leading dimension.
FailureOr<OwningOpRef<ModuleOp>> extractLayers(ModuleOp module,
                                               StringRef layerType,
                                               int64_t keep, int64_t batch,
                                               std::string &error);

} // namespace mlir::galv

#endif // GALVATRON_EVAL_MODELPROFILER_H
