//===- Hardware.cpp - Hardware specs: device rates and comm profile -------===//
//
// hw.json ("galvatron-hardware/1") reader and writer, conversion to
// Galvatron's hardware files, presets, and collective times. Units follow
// Galvatron: MB = 2^20 bytes, ms, MB/ms (all-reduce: bus bandwidth
// 2(n-1)/n x MB / ms, as hetu-galvatron 2.4.0's profiler reports it).
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/Hardware.h"
#include "JsonUtil.h"
#include "galvatron/CostModel/GalvatronCostModel.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <system_error>

using nlohmann::ordered_json;
namespace fs = std::filesystem;

#ifndef GALVATRON_PRESET_DIR
#define GALVATRON_PRESET_DIR "presets/hardware"
#endif

namespace galvatron {
namespace costmodel {

namespace {

constexpr const char *kFormat = "galvatron-hardware/1";
constexpr double kMiB = 1024.0 * 1024.0;

//===----------------------------------------------------------------------===//
// Keys of Galvatron's tables
//===----------------------------------------------------------------------===//

/// "allreduce_size_<n>_consec_<0|1>".
bool parseAllreduceKey(const std::string &key, int &group, int &consec) {
  std::vector<std::string> p = splitKey(key);
  return p.size() == 5 && p[0] == "allreduce" && p[1] == "size" &&
         p[3] == "consec" && parseCount(p[2], group) &&
         parseCount(p[4], consec) && consec <= 1;
}

/// "pp_size_<n>".
bool parseP2PKey(const std::string &key, int &group) {
  std::vector<std::string> p = splitKey(key);
  return p.size() == 3 && p[0] == "pp" && p[1] == "size" &&
         parseCount(p[2], group);
}

/// "<allreduce|all2all>_size_<n>_<m>MB_time".
bool parseSpTimeKey(const std::string &key, std::string &op, int &group,
                    int &megabytes) {
  std::vector<std::string> p = splitKey(key);
  if (p.size() != 5 || (p[0] != "allreduce" && p[0] != "all2all") ||
      p[1] != "size" || p[4] != "time" || p[3].size() < 3 ||
      p[3].compare(p[3].size() - 2, 2, "MB") != 0)
    return false;
  op = p[0];
  return parseCount(p[2], group) &&
         parseCount(p[3].substr(0, p[3].size() - 2), megabytes) &&
         megabytes >= 1;
}

std::string allreduceKey(int group, int consec) {
  return "allreduce_size_" + std::to_string(group) + "_consec_" +
         std::to_string(consec);
}

//===----------------------------------------------------------------------===//
// hw.json sections
//===----------------------------------------------------------------------===//

/// `json[key]` as a number: > 0, or >= 0 with `allowZero`.
bool readRate(const std::string &path, const ordered_json &json,
              const std::string &prefix, const char *key, bool allowZero,
              double &out, std::string &error) {
  std::string name = prefix + key;
  if (!json.contains(key))
    return keyError(error, path, name, "missing");
  bool ok = allowZero ? nonNegativeNumber(json[key], out)
                      : positiveNumber(json[key], out);
  if (!ok)
    return keyError(error, path, name,
                    allowZero ? "must be a non-negative number"
                              : "must be a positive number");
  return true;
}

bool readCount(const std::string &path, const ordered_json &json,
               const char *key, int &out, std::string &error) {
  if (!json.contains(key))
    return keyError(error, path, key, "missing");
  const ordered_json &value = json[key];
  if (!value.is_number_integer() || value.get<long long>() < 1 ||
      value.get<long long>() > (1 << 20))
    return keyError(error, path, key, "must be an integer >= 1");
  out = value.get<int>();
  return true;
}

bool readString(const std::string &path, const ordered_json &json,
                const char *key, std::string &out, std::string &error) {
  if (!json.contains(key))
    return keyError(error, path, key, "missing");
  if (!json[key].is_string())
    return keyError(error, path, key, "must be a string");
  out = json[key].get<std::string>();
  return true;
}

/// device.cores_per_node: optional, an integer >= 1.
bool readCores(const std::string &path, const ordered_json &device, int &out,
               std::string &error) {
  if (!device.contains("cores_per_node"))
    return true;
  const ordered_json &value = device["cores_per_node"];
  if (!value.is_number_integer() || value.get<long long>() < 1 ||
      value.get<long long>() > (1 << 20))
    return keyError(error, path, "device.cores_per_node",
                    "must be an integer >= 1");
  out = value.get<int>();
  return true;
}

bool readDevice(const std::string &path, const ordered_json &json,
                DeviceRates &out, std::string &error) {
  if (!json.contains("device"))
    return keyError(error, path, "device", "missing");
  const ordered_json &device = json["device"];
  if (!device.is_object())
    return keyError(error, path, "device", "must be an object");
  static const char *known[] = {"gemm_tflops_fp32", "gemm_tflops_bf16",
                                "memory_bandwidth_gbs", "memory_gb",
                                "cores_per_node"};
  for (auto &[key, value] : device.items())
    if (std::find(std::begin(known), std::end(known), key) == std::end(known))
      return keyError(error, path, "device." + key, "unknown key");
  return readRate(path, device, "device.", "gemm_tflops_fp32", false,
                  out.gemmTflopsFp32, error) &&
         readRate(path, device, "device.", "gemm_tflops_bf16", true,
                  out.gemmTflopsBf16, error) &&
         readRate(path, device, "device.", "memory_bandwidth_gbs", false,
                  out.memoryBandwidthGBs, error) &&
         readRate(path, device, "device.", "memory_gb", false, out.memoryGB,
                  error) &&
         readCores(path, device, out.coresPerNode, error);
}

/// An object section; `optional` ones may be absent (left empty).
bool sectionOf(const std::string &path, const ordered_json &json,
               const char *key, bool optional, const ordered_json *&out,
               std::string &error) {
  out = nullptr;
  if (!json.contains(key))
    return optional || keyError(error, path, key, "missing");
  if (!json[key].is_object())
    return keyError(error, path, key, "must be an object");
  out = &json[key];
  return true;
}

bool checkGroup(const std::string &path, const std::string &key, int group,
                int world, std::string &error) {
  if (group < 2 || group > world)
    return keyError(error, path, key,
                    "group size must be 2 .. nodes x devices_per_node (" +
                        std::to_string(world) + ")");
  return true;
}

bool readComm(const std::string &path, const ordered_json &json,
              HardwareProfile &comm, std::string &error) {
  int world = comm.numNodes * comm.gpusPerNode;
  const ordered_json *section;
  if (!sectionOf(path, json, "allreduce_bandwidth", false, section, error))
    return false;
  for (auto &[key, value] : section->items()) {
    std::string name = "allreduce_bandwidth." + key;
    int group = 0, consec = 0;
    double bandwidth;
    if (!parseAllreduceKey(key, group, consec))
      return keyError(error, path, name,
                      "expected allreduce_size_<n>_consec_<0|1>");
    if (!checkGroup(path, name, group, world, error))
      return false;
    if (!positiveNumber(value, bandwidth))
      return keyError(error, path, name,
                      "bandwidth must be a positive number (MB/ms)");
    comm.allreduce[{group, consec}] = bandwidth;
  }
  if (!sectionOf(path, json, "p2p_bandwidth", false, section, error))
    return false;
  for (auto &[key, value] : section->items()) {
    std::string name = "p2p_bandwidth." + key;
    int group = 0;
    double bandwidth;
    if (!parseP2PKey(key, group))
      return keyError(error, path, name, "expected pp_size_<n>");
    if (!checkGroup(path, name, group, world, error))
      return false;
    if (!positiveNumber(value, bandwidth))
      return keyError(error, path, name,
                      "bandwidth must be a positive number (MB/ms)");
    comm.p2p[group] = bandwidth;
  }
  if (!readRate(path, json, "", "overlap_coefficient", false,
                comm.overlapCoefficient, error))
    return false;
  if (!sectionOf(path, json, "sp_time", true, section, error))
    return false;
  if (!section)
    return true;
  for (auto &[key, value] : section->items()) {
    std::string name = "sp_time." + key, op;
    int group = 0, megabytes = 0;
    double ms;
    if (!parseSpTimeKey(key, op, group, megabytes))
      return keyError(error, path, name,
                      "expected <allreduce|all2all>_size_<n>_<m>MB_time");
    if (!checkGroup(path, name, group, world, error))
      return false;
    if (!positiveNumber(value, ms))
      return keyError(error, path, name, "time must be a positive number (ms)");
    comm.spTime[op][group][megabytes] = ms;
  }
  return true;
}

ordered_json commJson(const HardwareProfile &comm, const char *section) {
  ordered_json json = ordered_json::object();
  std::string name = section;
  if (name == "allreduce_bandwidth") {
    for (auto it = comm.allreduce.rbegin(); it != comm.allreduce.rend(); ++it)
      json[allreduceKey(it->first.first, it->first.second)] = it->second;
  } else if (name == "p2p_bandwidth") {
    for (auto &[group, bandwidth] : comm.p2p)
      json["pp_size_" + std::to_string(group)] = bandwidth;
  } else {
    for (const char *op : {"allreduce", "all2all"}) {
      auto found = comm.spTime.find(op);
      if (found == comm.spTime.end())
        continue;
      for (auto it = found->second.rbegin(); it != found->second.rend(); ++it)
        for (auto &[megabytes, ms] : it->second)
          json[std::string(op) + "_size_" + std::to_string(it->first) + "_" +
               std::to_string(megabytes) + "MB_time"] = ms;
    }
  }
  return json;
}

//===----------------------------------------------------------------------===//
// Collective times
//===----------------------------------------------------------------------===//

/// Galvatron's remap_config: the profiled time at exactly a profiled size,
/// else the least-squares line t = m MB + c over the group's sizes.
bool spTimeMs(const SpTime &spTime, const std::string &op, int group,
              double megabytes, double &ms) {
  auto byOp = spTime.find(op);
  if (byOp == spTime.end())
    return false;
  auto byGroup = byOp->second.find(group);
  if (byGroup == byOp->second.end() || byGroup->second.size() < 2)
    return false;
  std::vector<double> x, y;
  for (auto &[mb, time] : byGroup->second) {
    if (mb == megabytes) {
      ms = time;
      return true;
    }
    x.push_back(mb);
    y.push_back(time);
  }
  double m, c;
  fitLine(x, y, m, c);
  ms = std::max(0.0, m * megabytes + c);
  return true;
}

/// Bus bandwidth (MB/ms) of an all-reduce on `group` devices: for the whole
/// world the consecutive entry (Galvatron's c(N)), else the requested layout,
/// else the other one.
bool allreduceBandwidth(const HardwareProfile &comm, int group,
                        bool consecutive, double &bandwidth) {
  int world = comm.numNodes * comm.gpusPerNode;
  int first = group == world || consecutive ? 1 : 0;
  for (int consec : {first, 1 - first}) {
    auto it = comm.allreduce.find({group, consec});
    if (it != comm.allreduce.end()) {
      bandwidth = it->second;
      return true;
    }
  }
  return false;
}

} // namespace

double HardwareSpec::collectiveMs(const std::string &op, int group,
                                  bool consecutive, double bytes) const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  bool collective = op == "allreduce" || op == "allgather" ||
                    op == "reducescatter" || op == "all2all";
  if (!collective && op != "p2p")
    return nan;
  if (group <= 1 || bytes <= 0)
    return 0;
  double mb = bytes / kMiB;
  if (op == "p2p") {
    auto it = comm.p2p.find(group);
    return it == comm.p2p.end() ? nan : mb / it->second;
  }
  // sp_time was profiled on consecutive groups (Galvatron's SP groups); a
  // strided group takes the bandwidth table, which tells the layouts apart.
  int world = comm.numNodes * comm.gpusPerNode;
  double ms;
  if (consecutive || group == world) {
    const char *table = op == "all2all" ? "all2all" : "allreduce";
    if (spTimeMs(comm.spTime, table, group, mb, ms))
      return op == "allgather" || op == "reducescatter" ? ms / 2 : ms;
  }
  double bandwidth;
  if (!allreduceBandwidth(comm, group, consecutive, bandwidth))
    return nan;
  // Bus bandwidth moves 2(n-1)/n of the buffer per rank for an all-reduce and
  // (n-1)/n for the others (nccl-tests' busbw conventions).
  double share = (group - 1.0) / group;
  return (op == "allreduce" ? 2 * share : share) * mb / bandwidth;
}

//===----------------------------------------------------------------------===//
// hw.json
//===----------------------------------------------------------------------===//

const std::vector<std::string> &kernelClasses() {
  static const std::vector<std::string> classes = {
      "elementwise",   "transcendental",     "activation_grad", "movement",
      "transpose",     "reduction",          "normalisation",   "norm_grad",
      "cross_entropy", "cross_entropy_grad", "optimizer",       "gemm",
      "attention",     "attention_grad"};
  return classes;
}

std::string kernelFallback(const std::string &kind) {
  static const std::map<std::string, std::string> coarser = {
      {"activation_grad", "transcendental"},
      {"norm_grad", "normalisation"},
      {"cross_entropy", "normalisation"},
      {"cross_entropy_grad", "cross_entropy"},
      {"transpose", "movement"},
      {"optimizer", "elementwise"},
      {"attention", "gemm"},
      {"attention_grad", "gemm"}};
  auto it = coarser.find(kind);
  return it == coarser.end() ? "" : it->second;
}

double gemmProbeBytes(double flops) {
  double scale = std::cbrt(std::max(flops, 0.0) / 8);
  return 36 * scale * scale;
}

bool kernelCountsFlops(const std::string &kind) {
  return kind == "gemm" || kind == "attention" || kind == "attention_grad";
}

static bool isKernelClass(const std::string &kind) {
  const auto &all = kernelClasses();
  return std::find(all.begin(), all.end(), kind) != all.end();
}

static std::string kernelClassList(bool withFlops) {
  std::string list;
  for (const std::string &kind : kernelClasses())
    if (withFlops || !kernelCountsFlops(kind))
      list += (list.empty() ? "" : ", ") + kind;
  return list;
}

double HardwareSpec::startupMs(int group) const {
  if (collectiveLatencyMs.empty())
    return 0;
  auto it = collectiveLatencyMs.lower_bound(group);
  return it != collectiveLatencyMs.end() ? it->second
                                         : collectiveLatencyMs.rbegin()->second;
}

/// Linear from (0, 0) to the first of the (x, y) pairs of `table` (x
/// increasing) and between them, the last y beyond them.
static double interpolate(const std::vector<std::pair<double, double>> &table,
                          double x) {
  auto after = std::lower_bound(table.begin(), table.end(), x,
                                [](const std::pair<double, double> &point,
                                   double x) { return point.first < x; });
  if (after == table.end())
    return table.back().second;
  std::pair<double, double> before =
      after == table.begin() ? std::make_pair(0.0, 0.0) : *(after - 1);
  double span = after->first - before.first;
  return span > 0 ? before.second + (after->second - before.second) *
                                        (x - before.first) / span
                  : after->second;
}

double HardwareSpec::syncExcessAt(double burstMs) const {
  if (syncExcessMs.empty() || burstMs <= 0)
    return 0;
  return interpolate(syncExcessMs, burstMs);
}

double HardwareSpec::contendedExcessAt(double bytes, double callMs) const {
  if (contendedExcessMs.empty() || callMs <= 0)
    return 0;
  auto row = contendedExcessMs.upper_bound(bytes);
  if (row != contendedExcessMs.begin())
    --row;
  return interpolate(row->second, callMs);
}

double HardwareSpec::kernelNsPerUnit(const std::string &kind,
                                     double work) const {
  auto it = kernelRates.find(kind);
  if (it == kernelRates.end() || it->second.empty()) {
    std::string coarser = kernelFallback(kind);
    return coarser.empty() ? -1 : kernelNsPerUnit(coarser, work);
  }
  const auto &curve = it->second;
  if (work <= curve.front().first)
    return curve.front().second;
  if (work >= curve.back().first)
    return curve.back().second;
  auto hi = std::lower_bound(
      curve.begin(), curve.end(), work,
      [](const std::pair<double, double> &p, double w) { return p.first < w; });
  auto lo = hi - 1;
  double t = std::log(work / lo->first) / std::log(hi->first / lo->first);
  return std::exp(std::log(lo->second) * (1 - t) + std::log(hi->second) * t);
}

/// "kernel_rates": {"<class>": [[work, ns per unit], ...]}, work increasing.
static bool readKernelRates(const std::string &path, const ordered_json &value,
                            HardwareSpec &spec, std::string &error) {
  if (!value.is_object())
    return keyError(error, path, "latency.kernel_rates",
                    "must be an object keyed by kernel class");
  for (auto &[kind, curve] : value.items()) {
    std::string where = "latency.kernel_rates." + kind;
    if (!isKernelClass(kind))
      return keyError(error, path, where,
                      "unknown class (" + kernelClassList(true) + ")");
    if (!curve.is_array() || curve.empty())
      return keyError(error, path, where,
                      "must be a non-empty array of [work, ns per unit]");
    std::vector<std::pair<double, double>> points;
    for (const ordered_json &point : curve) {
      if (!point.is_array() || point.size() != 2 || !point[0].is_number() ||
          !point[1].is_number() || !(point[0].get<double>() > 0) ||
          !(point[1].get<double>() > 0))
        return keyError(error, path, where,
                        "each entry must be [work > 0, ns per unit > 0]");
      if (!points.empty() && !(point[0].get<double>() > points.back().first))
        return keyError(error, path, where,
                        "work must increase from entry to entry");
      points.push_back({point[0].get<double>(), point[1].get<double>()});
    }
    spec.kernelRates[kind] = std::move(points);
  }
  return true;
}

/// "sync_excess_ms": [[burst ms, extra ms], ...], bursts increasing; each
/// row of "contended_excess_ms" ({"<bytes>": [[call ms, extra ms], ...]}),
/// calls increasing.
static bool readExcessTable(const std::string &path, const std::string &key,
                            const ordered_json &value, const char *first,
                            std::vector<std::pair<double, double>> &table,
                            std::string &error) {
  std::string where = "latency." + key;
  std::string pairName = std::string("[") + first + ", extra ms]";
  if (!value.is_array())
    return keyError(error, path, where,
                    "must be an array of " + pairName + " pairs");
  double previous = 0;
  for (const ordered_json &pair : value) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() ||
        !pair[1].is_number())
      return keyError(error, path, where,
                      "each entry must be a " + pairName + " pair");
    double x = pair[0].get<double>(), extra = pair[1].get<double>();
    if (!(x > previous) || !(extra >= 0))
      return keyError(error, path, where,
                      std::string(first) +
                          " must be > 0 and increasing, extra ms >= 0");
    table.emplace_back(x, extra);
    previous = x;
  }
  return true;
}

/// "latency": {"instruction_ms": x, "collective_ms": {"<group>": ms, ...}}.
static bool readLatency(const std::string &path, const ordered_json &latency,
                        HardwareSpec &spec, std::string &error) {
  if (!latency.is_object())
    return keyError(error, path, "latency", "must be an object");
  for (auto &[key, value] : latency.items()) {
    if (key == "instruction_ms") {
      if (!value.is_number() || !(value.get<double>() >= 0))
        return keyError(error, path, "latency.instruction_ms",
                        "must be a number >= 0");
      spec.instructionMs = value.get<double>();
    } else if (key == "collective_ms") {
      if (!value.is_object())
        return keyError(error, path, "latency.collective_ms",
                        "must be an object keyed by group size");
      for (auto &[group, ms] : value.items()) {
        std::string where = "latency.collective_ms." + group;
        if (group.empty() ||
            group.find_first_not_of("0123456789") != std::string::npos ||
            group.size() > 7 || std::stoi(group) < 2)
          return keyError(error, path, where, "group size must be >= 2");
        if (!ms.is_number() || !(ms.get<double>() >= 0))
          return keyError(error, path, where, "must be a number >= 0");
        spec.collectiveLatencyMs[std::stoi(group)] = ms.get<double>();
      }
    } else if (key == "kernel_ns_per_byte") {
      // Earlier profiles: one rate per class, measured at one size.
      if (!value.is_object())
        return keyError(error, path, "latency.kernel_ns_per_byte",
                        "must be an object keyed by kernel class");
      for (auto &[kind, rate] : value.items()) {
        std::string where = "latency.kernel_ns_per_byte." + kind;
        if (!isKernelClass(kind) || kernelCountsFlops(kind))
          return keyError(error, path, where,
                          "unknown class (" + kernelClassList(false) + ")");
        if (!rate.is_number() || !(rate.get<double>() >= 0))
          return keyError(error, path, where, "must be a number >= 0");
        spec.kernelRates.try_emplace(kind).first->second = {
            {1.0, rate.get<double>()}};
      }
    } else if (key == "kernel_rates") {
      if (!readKernelRates(path, value, spec, error))
        return false;
    } else if (key == "gemm_ns_per_byte") {
      if (!value.is_number() || !(value.get<double>() >= 0))
        return keyError(error, path, "latency.gemm_ns_per_byte",
                        "must be a number >= 0");
      spec.gemmNsPerByte = value.get<double>();
    } else if (key == "sync_excess_ms") {
      if (!readExcessTable(path, key, value, "burst ms", spec.syncExcessMs,
                           error))
        return false;
    } else if (key == "contended_excess_ms") {
      if (!value.is_object())
        return keyError(error, path, "latency.contended_excess_ms",
                        "must be an object keyed by collective bytes");
      for (auto &[bytes, table] : value.items()) {
        std::string where = "contended_excess_ms." + bytes;
        bool digits =
            !bytes.empty() && bytes.size() <= 12 &&
            bytes.find_first_not_of("0123456789") == std::string::npos;
        double size = digits ? std::stod(bytes) : 0;
        if (size < 1)
          return keyError(error, path, "latency." + where,
                          "bytes must be an integer >= 1");
        if (!readExcessTable(path, where, table, "call ms",
                             spec.contendedExcessMs[size], error))
          return false;
      }
    } else {
      return keyError(error, path, "latency." + key, "unknown key");
    }
  }
  return true;
}

bool readHardwareJson(const std::string &path, HardwareSpec &out,
                      std::string &error) {
  ordered_json json;
  if (!loadJsonObject(path, json, error))
    return false;
  static const char *known[] = {"format",        "name",
                                "source",        "backend",
                                "nodes",         "devices_per_node",
                                "device",        "allreduce_bandwidth",
                                "p2p_bandwidth", "overlap_coefficient",
                                "sp_time",       "measurements",
                                "latency"};
  for (auto &[key, value] : json.items())
    if (std::find(std::begin(known), std::end(known), key) == std::end(known))
      return keyError(error, path, key, "unknown key");
  HardwareSpec spec;
  std::string format;
  if (!readString(path, json, "format", format, error))
    return false;
  if (format != kFormat)
    return keyError(error, path, "format",
                    "expected \"" + std::string(kFormat) + "\", found \"" +
                        format + "\"");
  if (!readString(path, json, "name", spec.name, error) ||
      !readString(path, json, "source", spec.source, error) ||
      !readString(path, json, "backend", spec.backend, error))
    return false;
  if (spec.backend != "cpu" && spec.backend != "cuda")
    return keyError(error, path, "backend", "must be \"cpu\" or \"cuda\"");
  if (spec.name.empty())
    return keyError(error, path, "name", "must not be empty");
  if (!readCount(path, json, "nodes", spec.comm.numNodes, error) ||
      !readCount(path, json, "devices_per_node", spec.comm.gpusPerNode,
                 error) ||
      !readDevice(path, json, spec.device, error) ||
      !readComm(path, json, spec.comm, error))
    return false;
  if (json.contains("latency") &&
      !readLatency(path, json["latency"], spec, error))
    return false;
  if (json.contains("measurements")) {
    if (!json["measurements"].is_object())
      return keyError(error, path, "measurements", "must be an object");
    spec.measurements = json["measurements"].dump();
  }
  out = spec;
  return true;
}

bool writeHardwareJson(const std::string &path, const HardwareSpec &in,
                       std::string &error) {
  ordered_json json = ordered_json::object();
  json["format"] = kFormat;
  json["name"] = in.name;
  json["source"] = in.source;
  json["backend"] = in.backend;
  json["nodes"] = in.comm.numNodes;
  json["devices_per_node"] = in.comm.gpusPerNode;
  ordered_json &device = json["device"];
  device["gemm_tflops_fp32"] = in.device.gemmTflopsFp32;
  device["gemm_tflops_bf16"] = in.device.gemmTflopsBf16;
  device["memory_bandwidth_gbs"] = in.device.memoryBandwidthGBs;
  device["memory_gb"] = in.device.memoryGB;
  if (in.device.coresPerNode > 0)
    device["cores_per_node"] = in.device.coresPerNode;
  json["allreduce_bandwidth"] = commJson(in.comm, "allreduce_bandwidth");
  json["p2p_bandwidth"] = commJson(in.comm, "p2p_bandwidth");
  json["overlap_coefficient"] = in.comm.overlapCoefficient;
  if (!in.comm.spTime.empty())
    json["sp_time"] = commJson(in.comm, "sp_time");
  if (in.instructionMs > 0 || !in.collectiveLatencyMs.empty() ||
      !in.kernelRates.empty() || !in.syncExcessMs.empty() ||
      !in.contendedExcessMs.empty()) {
    ordered_json &latency = json["latency"];
    latency["instruction_ms"] = in.instructionMs;
    latency["collective_ms"] = ordered_json::object();
    for (auto &[group, ms] : in.collectiveLatencyMs)
      latency["collective_ms"][std::to_string(group)] = ms;
    for (auto &[kind, curve] : in.kernelRates)
      for (auto &[work, ns] : curve)
        latency["kernel_rates"][kind].push_back({work, ns});
    if (in.gemmNsPerByte > 0)
      latency["gemm_ns_per_byte"] = in.gemmNsPerByte;
    for (auto &[burst, extra] : in.syncExcessMs)
      latency["sync_excess_ms"].push_back({burst, extra});
    for (auto &[bytes, table] : in.contendedExcessMs)
      for (auto &[callMs, extra] : table)
        latency["contended_excess_ms"][std::to_string(int64_t(bytes))]
            .push_back({callMs, extra});
  }
  if (!in.measurements.empty()) {
    ordered_json raw = ordered_json::parse(in.measurements, nullptr, false);
    if (raw.is_discarded() || !raw.is_object())
      return keyError(error, path, "measurements",
                      "not a JSON object (nothing written)");
    json["measurements"] = raw;
  }
  return saveJson(path, json, error);
}

bool writeGalvatronHardwareDir(const std::string &dir, const HardwareSpec &in,
                               std::string &error) {
  if (dir.empty()) {
    error = "writeGalvatronHardwareDir: no directory given";
    return false;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    error = dir + ": cannot create the directory: " + ec.message();
    return false;
  }
  const HardwareProfile &comm = in.comm;
  std::string base = dir.back() == '/' ? dir : dir + "/";
  auto file = [&](const char *kind) {
    return base + hardwareFileName(kind, comm.numNodes, comm.gpusPerNode);
  };
  if (!writeAllreduceBandwidth(file("allreduce_bandwidth"), comm.allreduce,
                               error) ||
      !writeP2PBandwidth(file("p2p_bandwidth"), comm.p2p, error) ||
      !writeOverlapCoefficient(base + "overlap_coefficient.json",
                               comm.overlapCoefficient, error))
    return false;
  return comm.spTime.empty() ||
         writeSpTime(file("sp_time"), comm.spTime, error);
}

//===----------------------------------------------------------------------===//
// Specs: files, directories, presets
//===----------------------------------------------------------------------===//

namespace {

/// "allreduce_bandwidth_<N>nodes_<G>gpus_per_node.json" -> N, G.
bool parseShapeFileName(const std::string &name, int &nodes, int &perNode) {
  const std::string prefix = "allreduce_bandwidth_";
  const std::string suffix = "gpus_per_node.json";
  if (name.size() <= prefix.size() + suffix.size() ||
      name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  std::string middle =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  size_t split = middle.find("nodes_");
  return split != std::string::npos &&
         parseCount(middle.substr(0, split), nodes) &&
         parseCount(middle.substr(split + 6), perNode) && nodes >= 1 &&
         perNode >= 1;
}

bool loadGalvatronDir(const std::string &dir, int nodes, int perNode,
                      HardwareSpec &out, std::string &error) {
  HardwareSpec spec;
  if (!readHardwareProfile(dir, nodes, perNode, spec.comm, error))
    return false;
  std::string shape = std::to_string(nodes) + "x" + std::to_string(perNode);
  std::error_code ec;
  fs::path normal = fs::absolute(dir, ec).lexically_normal();
  std::string base = normal.has_filename()
                         ? normal.filename().string()
                         : normal.parent_path().filename().string();
  spec.name = (base.empty() ? std::string("galvatron") : base) + "-" + shape;
  spec.source = "Galvatron hardware profiles in " + dir + " (" + shape +
                "); device rates unknown (0)";
  spec.backend = "cuda";
  out = spec;
  return true;
}

bool loadFromDirectory(const std::string &dir, HardwareSpec &out,
                       std::string &error) {
  std::vector<std::pair<int, int>> shapes;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    int nodes = 0, perNode = 0;
    if (parseShapeFileName(it->path().filename().string(), nodes, perNode))
      shapes.emplace_back(nodes, perNode);
  }
  if (ec) {
    error = dir + ": cannot list the directory: " + ec.message();
    return false;
  }
  if (shapes.empty()) {
    error = dir + ": no allreduce_bandwidth_<N>nodes_<G>gpus_per_node.json "
                  "(not a directory of Galvatron hardware profiles)";
    return false;
  }
  if (shapes.size() > 1) {
    std::sort(shapes.begin(), shapes.end());
    error = dir + ": profiles of several cluster shapes (";
    for (size_t i = 0; i < shapes.size(); ++i)
      error += (i ? ", " : "") + std::to_string(shapes[i].first) + "x" +
               std::to_string(shapes[i].second);
    error += "): name one by its allreduce_bandwidth_*.json file";
    return false;
  }
  return loadGalvatronDir(dir, shapes[0].first, shapes[0].second, out, error);
}

bool loadPreset(const std::string &name, HardwareSpec &out,
                std::string &error) {
  bool plain = !name.empty() && name[0] != '.' &&
               name.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789._-") == std::string::npos;
  std::string dir = presetDirectory();
  if (plain && fileExists(dir + "/" + name + ".json"))
    return readHardwareJson(dir + "/" + name + ".json", out, error);
  std::vector<std::string> names = listPresets();
  error = "preset '" + name + "': unknown (" +
          (names.empty() ? "no presets in " + dir : "presets in " + dir + ":");
  for (size_t i = 0; i < names.size(); ++i)
    error += (i ? ", " : " ") + names[i];
  error += ")";
  return false;
}

} // namespace

std::string presetDirectory() {
  const char *env = std::getenv("GALVATRON_PRESET_DIR");
  return env && *env ? std::string(env) : std::string(GALVATRON_PRESET_DIR);
}

std::vector<std::string> listPresets() {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(presetDirectory(), ec), end; !ec && it != end;
       it.increment(ec))
    if (it->path().extension() == ".json" && it->is_regular_file(ec))
      names.push_back(it->path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool loadHardware(const std::string &spec, HardwareSpec &out,
                  std::string &error) {
  const std::string presetPrefix = "preset:";
  if (spec.compare(0, presetPrefix.size(), presetPrefix) == 0)
    return loadPreset(spec.substr(presetPrefix.size()), out, error);
  std::error_code ec;
  fs::file_status status = fs::status(spec, ec);
  if (fs::is_directory(status))
    return loadFromDirectory(spec, out, error);
  if (!fs::exists(status)) {
    error = spec + ": no such file or directory (expected a hw.json, a "
                   "directory of Galvatron hardware profiles or preset:NAME)";
    return false;
  }
  fs::path path(spec);
  int nodes = 0, perNode = 0;
  if (parseShapeFileName(path.filename().string(), nodes, perNode)) {
    std::string dir = path.parent_path().string();
    return loadGalvatronDir(dir.empty() ? "." : dir, nodes, perNode, out,
                            error);
  }
  return readHardwareJson(spec, out, error);
}

} // namespace costmodel
} // namespace galvatron
