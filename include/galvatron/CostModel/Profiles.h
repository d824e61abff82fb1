//===- Profiles.h - Galvatron's hardware and model profiles -----*- C++ -*-===//
//
// Readers and writers for the profile files hetu-galvatron 2.4.0 produces and
// its search engine reads (units: MB, ms, MB/ms):
//   allreduce_bandwidth_<N>nodes_<G>gpus_per_node.json
//   p2p_bandwidth_<N>nodes_<G>gpus_per_node.json
//   overlap_coefficient.json
//   sp_time_<N>nodes_<G>gpus_per_node.json
//   computation_profiling_<prec>_<model>.json
//   memory_profiling_<prec>_<model>.json
// Readers refuse malformed input with a message naming the file, the JSON key
// and the reason. Plain C++ (no MLIR).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_COSTMODEL_PROFILES_H
#define GALVATRON_COSTMODEL_PROFILES_H

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace galvatron {
namespace costmodel {

/// All-reduce bus bandwidth (MB/ms) by (group size, consecutive flag), from
/// keys "allreduce_size_<n>_consec_<0|1>".
using AllreduceBandwidth = std::map<std::pair<int, int>, double>;
/// Point-to-point bandwidth (MB/ms) by pipeline degree, keys "pp_size_<n>".
using P2PBandwidth = std::map<int, double>;
/// Collective time (ms) by op ("allreduce" | "all2all"), group size and
/// message size in MB, keys "<op>_size_<n>_<mb>MB_time".
using SpTime = std::map<std::string, std::map<int, std::map<int, double>>>;

/// The hardware profile of one cluster shape.
struct HardwareProfile {
  int numNodes = 1;
  int gpusPerNode = 8;
  AllreduceBandwidth allreduce;
  P2PBandwidth p2p;
  double overlapCoefficient = 1.0;
  SpTime spTime; ///< Empty when the cluster has no sp_time file.
};

bool readAllreduceBandwidth(const std::string &path, AllreduceBandwidth &out,
                            std::string &error);
bool writeAllreduceBandwidth(const std::string &path,
                             const AllreduceBandwidth &in, std::string &error);
bool readP2PBandwidth(const std::string &path, P2PBandwidth &out,
                      std::string &error);
bool writeP2PBandwidth(const std::string &path, const P2PBandwidth &in,
                       std::string &error);
bool readOverlapCoefficient(const std::string &path, double &out,
                            std::string &error);
bool writeOverlapCoefficient(const std::string &path, double in,
                             std::string &error);
bool readSpTime(const std::string &path, SpTime &out, std::string &error);
bool writeSpTime(const std::string &path, const SpTime &in, std::string &error);

/// Reads the four files of a cluster from `dir` under Galvatron's names; the
/// sp_time file may be absent (`spTime` stays empty).
bool readHardwareProfile(const std::string &dir, int numNodes, int gpusPerNode,
                         HardwareProfile &out, std::string &error);
/// Galvatron's file name for a per-cluster profile, e.g.
/// "allreduce_bandwidth" -> "allreduce_bandwidth_1nodes_8gpus_per_node.json".
std::string hardwareFileName(const std::string &kind, int numNodes,
                             int gpusPerNode);

/// computation_profiling_*.json: every key with its forward time (ms), in
/// file order (Galvatron's "static" mode takes the first matching key).
struct ComputationProfile {
  std::vector<std::pair<std::string, double>> entries;
};

bool readComputationProfile(const std::string &path, ComputationProfile &out,
                            std::string &error);
bool writeComputationProfile(const std::string &path,
                             const ComputationProfile &in, std::string &error);

/// One "layertype_<i>[_sp]" entry for a sequence length.
struct LayerMemoryProfile {
  double parameterSize = 0; ///< MB, fp32 parameters of one layer.
  /// Activation MB per sample by tp degree ("1", "2", ...) and "checkpoint".
  std::map<std::string, double> activationPerBsz;
};

/// One "other_memory_pp_{off,on_first,on_last}[_sp]" entry: model states and
/// activation of the embedding/head layers, per vocabulary tp degree (or one
/// number for every degree, as Galvatron's non-sp profiles store it).
struct OtherMemoryProfile {
  std::map<int, double> modelStates; ///< Key 0 when stored as one number.
  std::map<int, double> activation;
  bool modelStatesPerTp = true;
  bool activationPerTp = true;
};

/// memory_profiling_*.json. Sections the cost model does not read (the
/// profiler's raw "1_2_4" measurements) are kept as JSON text so a write
/// reproduces them.
struct MemoryProfile {
  std::map<std::string, std::map<int, LayerMemoryProfile>> layers;
  std::map<std::string, std::map<int, OtherMemoryProfile>> other;
  std::vector<std::pair<std::string, std::string>> rawSections;
};

bool readMemoryProfile(const std::string &path, MemoryProfile &out,
                       std::string &error);
bool writeMemoryProfile(const std::string &path, const MemoryProfile &in,
                        std::string &error);

} // namespace costmodel
} // namespace galvatron

#endif // GALVATRON_COSTMODEL_PROFILES_H
