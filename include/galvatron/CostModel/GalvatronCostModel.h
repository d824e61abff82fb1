//===- GalvatronCostModel.h - Galvatron 2.4.0's time/memory model -*- C++ -*-//
//
// Reproduces the time per iteration and the memory per pipeline stage that
// hetu-galvatron 2.4.0's search engine assigns to a hybrid-parallel strategy
// (galvatron/core/search_engine/cost_model.py: TimeCostModel,
// MemoryCostModel, OtherTimeCostModel, pipeline_costmodel; the per-stage
// memory sum of dynamic_programming.py DpOnModel). Formulas and citations:
// docs/COSTMODEL.md. Plain C++ (no MLIR).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_COSTMODEL_GALVATRONCOSTMODEL_H
#define GALVATRON_COSTMODEL_GALVATRONCOSTMODEL_H

#include "galvatron/CostModel/Profiles.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace galvatron {
namespace costmodel {

/// One transformer layer's strategy (one entry of Galvatron's per-layer
/// lists). The data-parallel degree is world / pp / tp.
struct LayerStrategy {
  int tp = 1;
  bool consecutive = true; ///< tp_consecutive_flags: tp ranks adjacent.
  bool zero3 = false;      ///< dp_types_enc = 1 (Galvatron's "fsdp").
  bool checkpoint = false;
  bool ulysses = false; ///< use_sp: the tp degree is Ulysses SP instead.
};

enum class PipelineType { GPipe, PipeDreamFlush };
enum class SpSpace { Tp, TpSp };              ///< Galvatron's --sp_space.
enum class TimeProfileMode { Static, Batch }; ///< --time_profile_mode.

/// A whole strategy: the keys of galvatron_config_*.json.
struct Strategy {
  int pp = 1;
  std::vector<int> ppDivision; ///< Layers per stage; empty = even split.
  std::vector<LayerStrategy> layers;
  int globalBatch = 8;
  int chunks = 1;
  PipelineType pipeline = PipelineType::GPipe;
  bool defaultZero2 = false; ///< default_dp_type zero2 (else ddp).
  int vtp = 1;
  bool vsp = false;
  bool embedSdp = false;
};

/// Model shape and the search-engine settings that change the estimate.
struct CostModelSettings {
  int numLayers = 32;
  int seqLen = 2048;
  int hiddenSize = 4096;
  bool mixedPrecision = true; ///< bf16/fp16 (false = fp32).
  SpSpace spSpace = SpSpace::Tp;
  TimeProfileMode timeProfileMode = TimeProfileMode::Static;
  bool sequenceParallel = true;   ///< Megatron-SP; reads the *_sp memory.
  bool globalMemoryBuffer = true; ///< Megatron-SP all-gather buffer.
  bool asyncGradReduce = true;
  bool disableVtp = false;
  double memoryConstraintGB = 36; ///< Sets the allocator reserve.
  double pytorchContextMb = 1024;
  /// Galvatron's allocator reserve: 20% of a memory constraint over 20 GB.
  bool allocatorReserve = true;
  /// Memory is rounded up to whole units per layer and per stage's other
  /// layers (Galvatron: 1 MB; small models need finer).
  double memoryUnitMb = 1.0;
  double costModelCoe = 1.0;
  /// The search window of tp degrees; 0 = smallest/largest of the layers'
  /// tp and vtp.
  int minTp = 0;
  int maxTp = 0;
};

/// What Galvatron computes for one strategy.
struct Estimate {
  double timeMs = 0;                 ///< Time per iteration.
  std::vector<double> stageTimeMs;   ///< Per stage, one micro-batch.
  std::vector<double> stageMemoryMb; ///< Per stage, everything.
  std::vector<double> stageLayerMemoryMb;
  std::vector<double> stageOtherMemoryMb;
  double globalBufferMb = 0;
  double reserveMb = 0;
  int microBatch = 0; ///< mbsz of the min-tp strategy.
  int minTp = 1, maxTp = 1;
};

/// Internal per-layer numbers, exposed for unit tests.
struct LayerTime {
  double forwardMs = 0, backwardMs = 0;
  double dpMessageMb = 0, dpCoe = 0, tpMs = 0, p2pMs = 0, fsdpMs = 0;
  double seconds = 0; ///< gen_result(): per layer, seconds.
};
struct LayerMemory {
  double parameterMb = 0, modelStatesMb = 0, activationMb = 0, totalMb = 0;
  int chunks = 1;
  std::map<int, std::vector<double>> otherMb; ///< By vtp degree, per stage.
};

class GalvatronCostModel {
public:
  /// Checks that the profiles hold what the settings need (the sections and
  /// keys Galvatron reads) and derives its inputs; false with a message
  /// naming the profile and key when not.
  bool init(const HardwareProfile &hardware,
            const ComputationProfile &computation, const MemoryProfile &memory,
            const CostModelSettings &settings, std::string &error);

  bool estimate(const Strategy &strategy, Estimate &out,
                std::string &error) const;

  int worldSize() const { return world; }
  const CostModelSettings &settings() const { return cfg; }

  /// TimeCostModel.gen_result for one layer at `batch` samples per
  /// micro-batch (global), with or without DP gradient traffic.
  bool layerTime(int pp, const LayerStrategy &layer, double batch, bool noComm,
                 LayerTime &out, std::string &error) const;
  /// MemoryCostModel for one layer.
  bool layerMemory(const Strategy &strategy, const LayerStrategy &layer,
                   int mbsz, int minTp, int maxTp, int stage, LayerMemory &out,
                   std::string &error) const;
  /// OtherTimeCostModel.gen_result: per vtp, per stage (with, without comm).
  bool otherTime(const Strategy &strategy, int mbsz, int minTp, int maxTp,
                 std::map<int, std::vector<double>> &withComm,
                 std::map<int, std::vector<double>> &noComm,
                 std::string &error) const;

  /// Galvatron's time of one collective from its linear fit of sp_time
  /// (ms, the all-reduce halved to an all-gather), or the table entry when
  /// the message is exactly a profiled size.
  bool spMessageMs(const std::string &op, int group, double bytes,
                   bool allowTable, double &ms, std::string &error) const;

private:
  struct Fit {
    bool linear = false;
    double scalar = 0, m = 0, c = 0;
    double at(double x) const { return linear ? m * x + c : scalar * x; }
  };
  struct OtherMem {
    std::map<int, double> modelStates, activation;
  };

  bool commCoe(int size, int consec, double &coe, std::string &error) const;
  bool deriveTimes(const ComputationProfile &computation, std::string &error);
  bool deriveMemory(const MemoryProfile &memory, std::string &error);
  bool deriveSpFits(std::string &error);

  CostModelSettings cfg;
  HardwareProfile hw;
  int world = 1;
  std::map<std::string, double> coeDict; ///< Galvatron's comm_coe_dict.
  Fit forward, other;
  double parameterMb = 0;
  std::map<std::string, double> activationPerBsz;
  OtherMem otherOff, otherFirst, otherLast;
  /// Per op and group size: profiled times by bytes, and the fit (m, c).
  std::map<std::string, std::map<int, std::map<double, double>>> spTable;
  std::map<std::string, std::map<int, std::pair<double, double>>> spFit;
};

/// `mb` rounded up to a whole number of `unitMb` units.
double roundUpMb(double mb, double unitMb);
/// Zero-2/zero-3 model-state ratios of MemoryCostModel.initialize.
double zero2Ratio(int degree, int chunks, bool mixedPrecision, bool async);
double zero3Ratio(int degree, int chunks, bool mixedPrecision, bool async);
/// Sizes of torch.arange(size).chunk(chunks).
std::vector<int> chunkLikeTorch(int size, int chunks);
/// Least-squares line through (x, y): the fit scipy's curve_fit returns.
void fitLine(const std::vector<double> &x, const std::vector<double> &y,
             double &m, double &c);

} // namespace costmodel
} // namespace galvatron

#endif // GALVATRON_COSTMODEL_GALVATRONCOSTMODEL_H
