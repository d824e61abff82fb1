//===- Profiles.cpp - Galvatron's hardware and model profiles -------------===//
//
// File layouts follow hetu-galvatron 2.4.0: galvatron/utils/config_utils.py
// (read_allreduce_bandwidth_config, read_p2p_bandwidth_config, remap_config)
// and galvatron/core/search_engine/search_engine.py
// (get_profiled_model_configs, get_profiled_hardware_configs).
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/Profiles.h"
#include "JsonUtil.h"

#include <cmath>

using nlohmann::ordered_json;

namespace galvatron {
namespace costmodel {

std::string hardwareFileName(const std::string &kind, int numNodes,
                             int gpusPerNode) {
  return kind + "_" + std::to_string(numNodes) + "nodes_" +
         std::to_string(gpusPerNode) + "gpus_per_node.json";
}

//===----------------------------------------------------------------------===//
// Hardware profiles
//===----------------------------------------------------------------------===//

bool readAllreduceBandwidth(const std::string &path, AllreduceBandwidth &out,
                            std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  out.clear();
  for (auto &[key, value] : json.items()) {
    std::vector<std::string> parts = splitKey(key);
    int size = 0, consec = 0;
    if (parts.size() != 5 || parts[0] != "allreduce" || parts[1] != "size" ||
        parts[3] != "consec" || !parseCount(parts[2], size) ||
        !parseCount(parts[4], consec) || consec > 1)
      return keyError(error, path, key,
                      "expected allreduce_size_<n>_consec_<0|1>");
    double bandwidth;
    if (!positiveNumber(value, bandwidth))
      return keyError(error, path, key,
                      "bandwidth must be a positive number (MB/ms)");
    out[{size, consec}] = bandwidth;
  }
  return true;
}

bool writeAllreduceBandwidth(const std::string &path,
                             const AllreduceBandwidth &in, std::string &error) {
  ordered_json json = ordered_json::object();
  // Largest groups first, consecutive before strided, as Galvatron writes.
  for (auto it = in.rbegin(); it != in.rend(); ++it)
    json["allreduce_size_" + std::to_string(it->first.first) + "_consec_" +
         std::to_string(it->first.second)] = it->second;
  return saveJson(path, json, error);
}

bool readP2PBandwidth(const std::string &path, P2PBandwidth &out,
                      std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  out.clear();
  for (auto &[key, value] : json.items()) {
    std::vector<std::string> parts = splitKey(key);
    int size = 0;
    if (parts.size() != 3 || parts[0] != "pp" || parts[1] != "size" ||
        !parseCount(parts[2], size) || size < 2)
      return keyError(error, path, key, "expected pp_size_<n> with n >= 2");
    double bandwidth;
    if (!positiveNumber(value, bandwidth))
      return keyError(error, path, key,
                      "bandwidth must be a positive number (MB/ms)");
    out[size] = bandwidth;
  }
  return true;
}

bool writeP2PBandwidth(const std::string &path, const P2PBandwidth &in,
                       std::string &error) {
  ordered_json json = ordered_json::object();
  for (auto &[size, bandwidth] : in)
    json["pp_size_" + std::to_string(size)] = bandwidth;
  return saveJson(path, json, error);
}

bool readOverlapCoefficient(const std::string &path, double &out,
                            std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  if (!json.contains("overlap_coe"))
    return keyError(error, path, "overlap_coe", "missing");
  if (!positiveNumber(json["overlap_coe"], out))
    return keyError(error, path, "overlap_coe", "must be a positive number");
  return true;
}

bool writeOverlapCoefficient(const std::string &path, double in,
                             std::string &error) {
  ordered_json json = ordered_json::object();
  json["overlap_coe"] = in;
  return saveJson(path, json, error);
}

bool readSpTime(const std::string &path, SpTime &out, std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  out.clear();
  for (auto &[key, value] : json.items()) {
    std::vector<std::string> parts = splitKey(key);
    int size = 0, megabytes = 0;
    bool shaped =
        parts.size() == 5 &&
        (parts[0] == "allreduce" || parts[0] == "all2all") &&
        parts[1] == "size" && parseCount(parts[2], size) &&
        parts[3].size() > 2 &&
        parts[3].compare(parts[3].size() - 2, 2, "MB") == 0 &&
        parseCount(parts[3].substr(0, parts[3].size() - 2), megabytes) &&
        parts[4] == "time";
    if (!shaped)
      return keyError(error, path, key,
                      "expected <allreduce|all2all>_size_<n>_<m>MB_time");
    double ms;
    if (!positiveNumber(value, ms))
      return keyError(error, path, key, "time must be a positive number (ms)");
    out[parts[0]][size][megabytes] = ms;
  }
  return true;
}

bool writeSpTime(const std::string &path, const SpTime &in,
                 std::string &error) {
  ordered_json json = ordered_json::object();
  for (const char *op : {"allreduce", "all2all"}) {
    auto found = in.find(op);
    if (found == in.end())
      continue;
    for (auto it = found->second.rbegin(); it != found->second.rend(); ++it)
      for (auto &[megabytes, ms] : it->second)
        json[std::string(op) + "_size_" + std::to_string(it->first) + "_" +
             std::to_string(megabytes) + "MB_time"] = ms;
  }
  return saveJson(path, json, error);
}

bool readHardwareProfile(const std::string &dir, int numNodes, int gpusPerNode,
                         HardwareProfile &out, std::string &error) {
  out = HardwareProfile();
  out.numNodes = numNodes;
  out.gpusPerNode = gpusPerNode;
  std::string base = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  if (!readAllreduceBandwidth(
          base + hardwareFileName("allreduce_bandwidth", numNodes, gpusPerNode),
          out.allreduce, error) ||
      !readP2PBandwidth(
          base + hardwareFileName("p2p_bandwidth", numNodes, gpusPerNode),
          out.p2p, error) ||
      !readOverlapCoefficient(base + "overlap_coefficient.json",
                              out.overlapCoefficient, error))
    return false;
  std::string sp = base + hardwareFileName("sp_time", numNodes, gpusPerNode);
  if (!fileExists(sp))
    return true;
  return readSpTime(sp, out.spTime, error);
}

//===----------------------------------------------------------------------===//
// Model profiles
//===----------------------------------------------------------------------===//

bool readComputationProfile(const std::string &path, ComputationProfile &out,
                            std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  out.entries.clear();
  for (auto &[key, value] : json.items()) {
    if (!value.is_number() || !std::isfinite(value.get<double>()) ||
        value.get<double>() < 0)
      return keyError(error, path, key,
                      "forward time must be a non-negative number (ms)");
    out.entries.emplace_back(key, value.get<double>());
  }
  return true;
}

bool writeComputationProfile(const std::string &path,
                             const ComputationProfile &in, std::string &error) {
  ordered_json json = ordered_json::object();
  for (auto &[key, ms] : in.entries)
    json[key] = ms;
  return saveJson(path, json, error);
}

namespace {

/// A number or, with `perTp`, an object keyed by tp degree.
bool readPerTp(const std::string &path, const std::string &key,
               const ordered_json &value, std::map<int, double> &out,
               bool &perTp, std::string &error) {
  out.clear();
  double number;
  if (value.is_number()) {
    if (!nonNegativeNumber(value, number))
      return keyError(error, path, key, "must be a non-negative number (MB)");
    perTp = false;
    out[0] = number;
    return true;
  }
  if (!value.is_object() || value.empty())
    return keyError(error, path, key,
                    "must be a number or an object keyed by tp degree");
  perTp = true;
  for (auto &[tp, entry] : value.items()) {
    int degree = 0;
    if (!parseCount(tp, degree) || degree < 1)
      return keyError(error, path, key + "." + tp, "tp degree must be >= 1");
    if (!nonNegativeNumber(entry, number))
      return keyError(error, path, key + "." + tp,
                      "must be a non-negative number (MB)");
    out[degree] = number;
  }
  return true;
}

bool readLayerSection(const std::string &path, const std::string &name,
                      const ordered_json &section,
                      std::map<int, LayerMemoryProfile> &out,
                      std::string &error) {
  for (auto &[seq, entry] : section.items()) {
    std::string key = name + "." + seq;
    int seqLen = 0;
    if (!parseCount(seq, seqLen) || seqLen < 1)
      return keyError(error, path, key, "expected a sequence length");
    if (!entry.is_object())
      return keyError(error, path, key, "must be an object");
    LayerMemoryProfile layer;
    if (!entry.contains("parameter_size") ||
        !nonNegativeNumber(entry["parameter_size"], layer.parameterSize))
      return keyError(error, path, key + ".parameter_size",
                      "missing or not a non-negative number (MB)");
    const char *actKey = "tp_activation_per_bsz_dict";
    if (!entry.contains(actKey) || !entry[actKey].is_object())
      return keyError(error, path, key + "." + actKey,
                      "missing or not an object");
    for (auto &[tp, value] : entry[actKey].items()) {
      int degree = 0;
      if (tp != "checkpoint" && (!parseCount(tp, degree) || degree < 1))
        return keyError(error, path, key + "." + actKey + "." + tp,
                        "expected a tp degree or \"checkpoint\"");
      double mb;
      if (!nonNegativeNumber(value, mb))
        return keyError(error, path, key + "." + actKey + "." + tp,
                        "must be a non-negative number (MB)");
      layer.activationPerBsz[tp] = mb;
    }
    out[seqLen] = layer;
  }
  return true;
}

bool readOtherSection(const std::string &path, const std::string &name,
                      const ordered_json &section,
                      std::map<int, OtherMemoryProfile> &out,
                      std::string &error) {
  for (auto &[seq, entry] : section.items()) {
    std::string key = name + "." + seq;
    int seqLen = 0;
    if (!parseCount(seq, seqLen) || seqLen < 1)
      return keyError(error, path, key, "expected a sequence length");
    if (!entry.is_object() || !entry.contains("model_states") ||
        !entry.contains("activation"))
      return keyError(error, path, key,
                      "must be an object with model_states and activation");
    OtherMemoryProfile other;
    if (!readPerTp(path, key + ".model_states", entry["model_states"],
                   other.modelStates, other.modelStatesPerTp, error) ||
        !readPerTp(path, key + ".activation", entry["activation"],
                   other.activation, other.activationPerTp, error))
      return false;
    out[seqLen] = other;
  }
  return true;
}

ordered_json perTpJson(const std::map<int, double> &values, bool perTp) {
  if (!perTp)
    return values.empty() ? 0.0 : values.begin()->second;
  ordered_json json = ordered_json::object();
  for (auto &[tp, mb] : values)
    json[std::to_string(tp)] = mb;
  return json;
}

bool startsWith(const std::string &text, const std::string &prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

} // namespace

bool readMemoryProfile(const std::string &path, MemoryProfile &out,
                       std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  out = MemoryProfile();
  for (auto &[name, section] : json.items()) {
    bool layer = startsWith(name, "layertype_");
    bool other = startsWith(name, "other_memory_");
    if (!layer && !other) {
      out.rawSections.emplace_back(name, section.dump());
      continue;
    }
    if (!section.is_object())
      return keyError(error, path, name,
                      "must be an object keyed by sequence length");
    if (layer &&
        !readLayerSection(path, name, section, out.layers[name], error))
      return false;
    if (other && !readOtherSection(path, name, section, out.other[name], error))
      return false;
  }
  return true;
}

bool writeMemoryProfile(const std::string &path, const MemoryProfile &in,
                        std::string &error) {
  ordered_json json = ordered_json::object();
  for (auto &[name, text] : in.rawSections)
    json[name] = ordered_json::parse(text, nullptr, false);
  for (auto &[name, bySeq] : in.layers)
    for (auto &[seq, layer] : bySeq) {
      ordered_json &entry = json[name][std::to_string(seq)];
      entry["parameter_size"] = layer.parameterSize;
      for (auto &[tp, mb] : layer.activationPerBsz)
        entry["tp_activation_per_bsz_dict"][tp] = mb;
    }
  for (auto &[name, bySeq] : in.other)
    for (auto &[seq, other] : bySeq) {
      ordered_json &entry = json[name][std::to_string(seq)];
      entry["model_states"] =
          perTpJson(other.modelStates, other.modelStatesPerTp);
      entry["activation"] = perTpJson(other.activation, other.activationPerTp);
    }
  return saveJson(path, json, error);
}

} // namespace costmodel
} // namespace galvatron
