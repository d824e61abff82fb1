//===- Search.h - Best hybrid-parallel strategy under Galvatron's model -*-===//
//
// Finds the strategy with the best throughput (global batch / time per
// iteration) whose every pipeline stage fits the memory per device, under
// GalvatronCostModel (hetu-galvatron 2.4.0's time and memory model). The
// objective is GalvatronCostModel::estimate of the returned Strategy, so a
// result written with formatGalvatronConfig and priced again gives the same
// time. Algorithm and measurements: docs/SEARCH.md. Plain C++ (no MLIR).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_SEARCH_SEARCH_H
#define GALVATRON_SEARCH_SEARCH_H

#include "galvatron/CostModel/GalvatronCostModel.h"

#include <cstdint>
#include <string>
#include <vector>

namespace galvatron {
namespace search {

/// What may vary. Degrees are powers of two; pp * tp * dp = world.
struct SearchSpace {
  int minPp = 1;
  int maxPp = 0; ///< 0 = the world size (and at most the layer count).
  int minTp = 1; ///< Smallest tp degree (layers and vocabulary).
  int maxTp = 8;
  bool tpConsecutive = true; ///< Consecutive tp groups allowed.
  bool tpStrided = true;     ///< Strided tp groups allowed.
  bool zero3 = true;         ///< Per-layer ZeRO-3 allowed.
  bool defaultZero2 = true;  ///< default_dp_type zero2 (else ddp).
  bool ulysses = false;      ///< Per-layer Ulysses SP allowed.
  bool checkpoint = true;    ///< Per-layer checkpointing allowed.
  std::vector<costmodel::PipelineType> pipelines = {
      costmodel::PipelineType::PipeDreamFlush};
  /// Chunk counts to try; empty = every count that leaves no empty
  /// micro-batch. `chunksDivideBatch` keeps only divisors of the global
  /// batch, as Galvatron's loop does.
  std::vector<int> chunks;
  bool chunksDivideBatch = false;
  bool vtp = true;      ///< Vocabulary tp searched (else the window's min).
  bool vsp = false;     ///< Vocabulary sequence parallelism tried.
  bool embedSdp = true; ///< ZeRO-3 for the embedding/head tried.
  /// Layers per stage searched jointly with the strategies; false = the
  /// even split of Galvatron 2.4.0 (pp_division_even). Off by default:
  /// pipeline_costmodel charges only the last stage for every further
  /// micro-batch, so free divisions win by emptying the last stage
  /// (docs/BENCHMARKS.md, "Search: against Galvatron 2.4.0").
  bool searchDivision = false;
};

struct SearchOptions {
  double memoryGB = 36;           ///< Memory per device.
  std::vector<int> globalBatches; ///< Global batch sizes to try.
  int threads = 1;
  int topK = 5;
};

struct Candidate {
  costmodel::Strategy strategy;
  double timeMs = 0;
  double throughput = 0; ///< Samples per second.
  std::vector<double> stageMemoryMb;
};

struct SearchResult {
  bool found = false;
  std::vector<Candidate> best; ///< Best first, at most topK.
  uint64_t candidatesWeighed = 0;
  /// When nothing fits: the smallest memory per device (MB) that would fit
  /// the batch with some strategy of the space; 0 when none ever could.
  double minMemoryMb = 0;
  double seconds = 0;
};

/// The per-layer strategies of a stage with `pp` stages and tp within
/// [minTp, maxTp], in a fixed order.
std::vector<costmodel::LayerStrategy> layerStrategies(int world, int pp,
                                                      int minTp, int maxTp,
                                                      const SearchSpace &space);

/// The chunk counts the space tries for `batch` samples split over
/// `local` = batch / (world / pp / minTp) micro-batch slots.
std::vector<int> chunkCounts(int batch, int local, const SearchSpace &space);

/// Runs the search; false with a message naming the input when the inputs
/// are unusable (no batch, a batch no pp divides, ...). Nothing fitting is
/// not an error: `found` is false and `minMemoryMb` says what would fit.
bool searchStrategy(const costmodel::GalvatronCostModel &model,
                    const SearchSpace &space, const SearchOptions &options,
                    SearchResult &result, std::string &error);

/// The best Megatron-style 3D strategy: one tp degree (consecutive groups)
/// for every layer and the vocabulary, no ZeRO-3, no checkpointing, the
/// even split; tries each degree of `space`'s window and keeps the best.
bool searchUniform(const costmodel::GalvatronCostModel &model,
                   SearchSpace space, const SearchOptions &options,
                   SearchResult &result, std::string &error);

} // namespace search
} // namespace galvatron

#endif // GALVATRON_SEARCH_SEARCH_H
