//===- GalvatronCostModel.cpp - Galvatron 2.4.0's time/memory model -------===//
//
// Each function names the hetu-galvatron 2.4.0 function whose arithmetic it
// reproduces (file galvatron/core/search_engine/cost_model.py unless said
// otherwise). docs/COSTMODEL.md states the formulas.
//
//===----------------------------------------------------------------------===//

#include "galvatron/CostModel/GalvatronCostModel.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace galvatron {
namespace costmodel {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kBackwardFactor = 2; // ProfileHardwareArgs.bct_fct_coe

bool fail(std::string &error, const std::string &message) {
  error = message;
  return false;
}

bool isPowerOfTwo(int n) { return n > 0 && (n & (n - 1)) == 0; }

/// optimal_chunk_func_default (search_engine.py).
int optimalChunks(int localBatch, int tp, int mbsz, int minTp) {
  int local = localBatch / (tp / minTp);
  int chunks = static_cast<int>(std::ceil(static_cast<double>(local) / mbsz));
  return chunks == 0 ? 1 : chunks;
}

/// OtherTimeCostModel.get_overlap_time: computation stretched by the
/// overlap coefficient hides communication of the same phase.
double overlapTime(double fwdComm, double fwdComp, double bwdComm,
                   double bwdComp, double tp, double coe) {
  fwdComp *= coe;
  bwdComp *= coe;
  double fwd =
      fwdComp > fwdComm ? fwdComm + (fwdComp - fwdComm) / coe : fwdComm;
  double bwd =
      bwdComp > bwdComm ? bwdComm + (bwdComp - bwdComm) / coe : bwdComm;
  return fwd + bwd + tp;
}

} // namespace

//===----------------------------------------------------------------------===//
// Helpers shared with the tests
//===----------------------------------------------------------------------===//

// MemoryCostModel.initialize: the share of model states a rank keeps; 0.003
// is Galvatron's bias so ZeRO is never under-estimated.
double zero2Ratio(int degree, int chunks, bool mixed, bool async) {
  double shard = 1.0 / degree + 0.003;
  if (chunks == 1)
    return mixed ? 7.0 / 8 * shard + 1.0 / 8 : 3.0 / 4 * shard + 1.0 / 4;
  if (async)
    return mixed ? 6.0 / 8 * shard + 2.0 / 8 : 2.0 / 4 * shard + 2.0 / 4;
  return mixed ? (7.0 / 8 * shard + 1.0 / 8) * 5.0 / 4
               : 3.0 / 4 * shard + 1.0 / 4;
}

double zero3Ratio(int degree, int chunks, bool mixed, bool async) {
  double shard = 1.0 / degree + 0.003;
  if (chunks == 1)
    return shard;
  if (async)
    return mixed ? 7.0 / 8 * shard + 1.0 / 8 : 3.0 / 4 * shard + 1.0 / 4;
  return shard * 5.0 / 4;
}

// chunk_like_torch: ceil-sized pieces, the last one short, empty ones dropped.
std::vector<int> chunkLikeTorch(int size, int chunks) {
  std::vector<int> sizes;
  if (chunks <= 0 || size <= 0)
    return sizes;
  int piece = (size + chunks - 1) / chunks;
  for (int i = 0; i < chunks && i * piece < size; ++i)
    sizes.push_back(std::min(piece, size - i * piece));
  return sizes;
}

void fitLine(const std::vector<double> &x, const std::vector<double> &y,
             double &m, double &c) {
  double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  double den = n * sxx - sx * sx;
  m = den == 0 ? 0 : (n * sxy - sx * sy) / den;
  c = n == 0 ? 0 : (sy - m * sx) / n;
}

//===----------------------------------------------------------------------===//
// Profiles -> Galvatron's cost-model inputs
//===----------------------------------------------------------------------===//

bool GalvatronCostModel::init(const HardwareProfile &hardware,
                              const ComputationProfile &computation,
                              const MemoryProfile &memory,
                              const CostModelSettings &settings,
                              std::string &error) {
  cfg = settings;
  hw = hardware;
  world = hw.numNodes * hw.gpusPerNode;
  if (world < 1 || cfg.numLayers < 1 || cfg.seqLen < 1 || cfg.hiddenSize < 1)
    return fail(error, "cost model: world size, layer count, sequence length "
                       "and hidden size must be positive");
  // config_utils.py read_allreduce_bandwidth_config: the whole world's group,
  // then both layouts of every smaller power of two.
  std::string file =
      hardwareFileName("allreduce_bandwidth", hw.numNodes, hw.gpusPerNode);
  coeDict.clear();
  coeDict["1"] = 0;
  auto need = [&](int size, int consec, const std::string &name) {
    auto it = hw.allreduce.find({size, consec});
    if (it == hw.allreduce.end())
      return fail(error, file + ": key 'allreduce_size_" +
                             std::to_string(size) + "_consec_" +
                             std::to_string(consec) +
                             "': missing (Galvatron reads every power-of-two "
                             "group up to the world size)");
    coeDict[name] = 1.0 / it->second;
    return true;
  };
  if (world >= 2 && !need(world, 1, std::to_string(world)))
    return false;
  for (int d = world / 2; d >= 2; d /= 2)
    if (!need(d, 0, std::to_string(d) + "_0") ||
        !need(d, 1, std::to_string(d) + "_1"))
      return false;
  return deriveTimes(computation, error) && deriveMemory(memory, error) &&
         deriveSpFits(error);
}

// search_engine.py get_profiled_model_configs, time part.
bool GalvatronCostModel::deriveTimes(const ComputationProfile &computation,
                                     std::string &error) {
  auto derive = [&](const std::string &prefix, Fit &fit) {
    if (cfg.timeProfileMode == TimeProfileMode::Static) {
      // The first key in file order with the prefix, whatever its batch.
      for (auto &[key, ms] : computation.entries)
        if (key.compare(0, prefix.size(), prefix) == 0) {
          fit.linear = false;
          fit.scalar = ms;
          return true;
        }
      return fail(error, "computation profile: no key '" + prefix +
                             "bsz<b>_seq<s>' (static time mode)");
    }
    // Batch mode: a line through (bsz, bsz * per-sample ms).
    std::string seq = "_seq" + std::to_string(cfg.seqLen);
    std::vector<double> x, y;
    for (auto &[key, ms] : computation.entries) {
      if (key.compare(0, prefix.size(), prefix) != 0 ||
          key.find(seq) == std::string::npos)
        continue;
      size_t at = key.find("_bsz", prefix.size() - 1);
      int bsz = 0;
      if (at == std::string::npos)
        return fail(error,
                    "computation profile: key '" + key + "': no _bsz<b> part");
      size_t end = key.find('_', at + 4);
      std::string digits = key.substr(at + 4, end - at - 4);
      if (digits.empty() ||
          digits.find_first_not_of("0123456789") != std::string::npos)
        return fail(error, "computation profile: key '" + key +
                               "': bsz is not a number");
      bsz = std::stoi(digits);
      x.push_back(bsz);
      y.push_back(ms * bsz);
    }
    if (x.size() < 8)
      return fail(error, "computation profile: keys '" + prefix + "bsz<b>" +
                             seq +
                             "': batch time mode needs at least 8 "
                             "batch sizes, found " +
                             std::to_string(x.size()));
    fit.linear = true;
    fitLine(x, y, fit.m, fit.c);
    return true;
  };
  return derive("layertype_0_", forward) && derive("layertype_other_", other);
}

// search_engine.py get_profiled_model_configs, memory part ("static" mode).
bool GalvatronCostModel::deriveMemory(const MemoryProfile &memory,
                                      std::string &error) {
  std::string sp = cfg.sequenceParallel ? "_sp" : "";
  std::string seq = std::to_string(cfg.seqLen);
  std::string layerName = "layertype_0" + sp;
  auto layers = memory.layers.find(layerName);
  if (layers == memory.layers.end() || !layers->second.count(cfg.seqLen))
    return fail(error,
                "memory profile: key '" + layerName + "." + seq + "': missing");
  const LayerMemoryProfile &layer = layers->second.at(cfg.seqLen);
  parameterMb = layer.parameterSize;
  activationPerBsz = layer.activationPerBsz;
  auto other = [&](const std::string &stem, OtherMem &out) {
    std::string name = stem + sp;
    auto it = memory.other.find(name);
    if (it == memory.other.end() || !it->second.count(cfg.seqLen))
      return fail(error,
                  "memory profile: key '" + name + "." + seq + "': missing");
    const OtherMemoryProfile &entry = it->second.at(cfg.seqLen);
    if (!entry.modelStatesPerTp || !entry.activationPerTp)
      return fail(error, "memory profile: key '" + name + "." + seq +
                             "': model_states and activation must be objects "
                             "keyed by vocabulary tp degree (Galvatron 2.4.0 "
                             "indexes them by degree)");
    out.modelStates = entry.modelStates;
    out.activation = entry.activation;
    return true;
  };
  return other("other_memory_pp_off", otherOff) &&
         other("other_memory_pp_on_first", otherFirst) &&
         other("other_memory_pp_on_last", otherLast);
}

// config_utils.py remap_config: all-reduce times halved (all-gather /
// reduce-scatter), a line fitted per group size over the message size in MB.
bool GalvatronCostModel::deriveSpFits(std::string &error) {
  spTable.clear();
  spFit.clear();
  std::string file = hardwareFileName("sp_time", hw.numNodes, hw.gpusPerNode);
  if (cfg.spSpace == SpSpace::TpSp && hw.spTime.empty())
    return fail(error, file + ": missing; sp_space tp+sp needs it");
  for (auto &[op, groups] : hw.spTime)
    for (auto &[group, times] : groups) {
      std::vector<double> x, y;
      for (auto &[mb, ms] : times) {
        double value = op == "allreduce" ? ms / 2 : ms;
        spTable[op][group][mb * kMiB] = value;
        x.push_back(mb);
        y.push_back(value);
      }
      if (x.size() < 8)
        return fail(error, file + ": key '" + op + "_size_" +
                               std::to_string(group) +
                               "_<m>MB_time': at least 8 message sizes "
                               "needed for the fit, found " +
                               std::to_string(x.size()));
      double m, c;
      fitLine(x, y, m, c);
      spFit[op][group] = {m, c};
    }
  return true;
}

bool GalvatronCostModel::commCoe(int size, int consec, double &coe,
                                 std::string &error) const {
  std::string key = std::to_string(size);
  if (consec >= 0)
    key += "_" + std::to_string(consec);
  else if (!coeDict.count(key))
    key += "_1"; // "'%d' if in keys else '%d_1'"
  auto it = coeDict.find(key);
  if (it == coeDict.end())
    return fail(
        error,
        hardwareFileName("allreduce_bandwidth", hw.numNodes, hw.gpusPerNode) +
            ": no bandwidth for a group of " + std::to_string(size) +
            (consec == 0 ? " (strided)" : "") + " (comm_coe '" + key + "')");
  coe = it->second;
  return true;
}

bool GalvatronCostModel::spMessageMs(const std::string &op, int group,
                                     double bytes, bool allowTable, double &ms,
                                     std::string &error) const {
  auto fit = spFit.find(op);
  if (fit == spFit.end() || !fit->second.count(group))
    return fail(error,
                hardwareFileName("sp_time", hw.numNodes, hw.gpusPerNode) +
                    ": key '" + op + "_size_" + std::to_string(group) +
                    "_<m>MB_time': missing");
  if (allowTable) {
    const auto &table = spTable.at(op).at(group);
    auto hit = table.find(bytes);
    if (hit != table.end()) {
      ms = hit->second;
      return true;
    }
  }
  auto [m, c] = fit->second.at(group);
  ms = m * (bytes / kMiB) + c;
  return true;
}

//===----------------------------------------------------------------------===//
// TimeCostModel
//===----------------------------------------------------------------------===//

bool GalvatronCostModel::layerTime(int pp, const LayerStrategy &layer,
                                   double batch, bool noComm, LayerTime &out,
                                   std::string &error) const {
  out = LayerTime();
  const int tp = layer.tp, dp = world / pp / tp,
            sdp = layer.ulysses ? tp * dp : dp;
  const double layers = cfg.numLayers;
  const double bytesPerValue = cfg.mixedPrecision ? 2 : 4;
  const double bsz = batch / dp;
  const double param = layer.ulysses ? parameterMb : parameterMb / tp;
  const double coe = hw.overlapCoefficient;

  // estimate_computation_time: the whole model's layers, per micro-batch.
  out.forwardMs = forward.at(bsz / tp) * layers;
  out.backwardMs = out.forwardMs * kBackwardFactor;
  if (layer.checkpoint)
    out.backwardMs += out.forwardMs;

  // estimate_dp_communication_cost: ring all-reduce of the gradients.
  double dpMessage = 2.0 * (dp - 1) / dp * param * layers;
  if (cfg.mixedPrecision)
    dpMessage /= 2;
  double fsdpMessage = dpMessage * 0.5;
  if (noComm)
    dpMessage = 0;
  double dc;
  bool ok = layer.ulysses || tp == 1 || dp == 1
                ? commCoe(sdp, -1, dc, error)
                : commCoe(dp, layer.consecutive ? 0 : 1, dc, error);
  if (!ok)
    return false;
  out.dpMessageMb = dpMessage;
  out.dpCoe = dc;

  // estimate_tp_communication_cost.
  if (cfg.spSpace == SpSpace::TpSp) {
    double count = 4 * layers * (layer.checkpoint ? 1.5 : 1);
    double per = 0;
    if (tp > 1 &&
        !spMessageMs(layer.ulysses ? "all2all" : "allreduce", tp,
                     bsz * cfg.seqLen * cfg.hiddenSize * bytesPerValue,
                     /*allowTable=*/true, per, error))
      return false;
    out.tpMs = count * per;
  } else {
    double message = 2.0 * (tp - 1) / tp *
                     (bsz * cfg.seqLen * cfg.hiddenSize * 4 * 4 / kMiB) *
                     layers;
    if (layer.checkpoint)
      message *= 1.5;
    if (cfg.mixedPrecision)
      message /= 2;
    double tc;
    ok = tp == 1 || dp == 1 ? commCoe(tp, -1, tc, error)
                            : commCoe(tp, layer.consecutive ? 1 : 0, tc, error);
    if (!ok)
      return false;
    out.tpMs = message * tc;
  }

  // estimate_pp_communication_cost.
  if (pp > 1) {
    auto bw = hw.p2p.find(pp);
    if (bw == hw.p2p.end())
      return fail(error, hardwareFileName("p2p_bandwidth", hw.numNodes,
                                          hw.gpusPerNode) +
                             ": key 'pp_size_" + std::to_string(pp) +
                             "': missing");
    double message = pp * 2 * bsz * cfg.seqLen * cfg.hiddenSize * 4 / kMiB;
    if (cfg.mixedPrecision)
      message /= 2;
    out.p2pMs = message / bw->second;
  }

  // bct_dp_overlap: backward stretched by the overlap coefficient hides the
  // gradient traffic; whichever is longer leaves a rest.
  auto overlap = [&](double message, double bct) {
    double dcOverlap = dc * coe;
    double dpTime = message * dcOverlap, bctTime = bct * coe;
    if (dpTime > bctTime)
      return bctTime + (message - bctTime / dcOverlap) * dc;
    if (dpTime < bctTime)
      return dpTime + (bct - dpTime / coe);
    return bctTime;
  };
  // gen_result.
  double fct = out.forwardMs, bct = out.backwardMs, result;
  if (tp == 1 && dp > 1)
    result = fct + overlap(dpMessage, bct);
  else if (dp == 1 && tp > 1)
    result = fct + bct + out.tpMs;
  else if (dp == 1 && tp == 1)
    result = fct + bct;
  else if (tp < tp * dp / 2)
    result = fct + overlap(dpMessage, bct) + out.tpMs;
  else
    result = fct + bct / 2 + overlap(dpMessage, bct / 2) + out.tpMs;
  if (layer.zero3 && dp > 1) {
    out.fsdpMs = fsdpMessage * dc; // forward all-gather, no overlap
    result += out.fsdpMs;
  }
  result += out.p2pMs;
  out.seconds = result * 0.001 * cfg.costModelCoe / layers;
  return true;
}

//===----------------------------------------------------------------------===//
// MemoryCostModel
//===----------------------------------------------------------------------===//

bool GalvatronCostModel::layerMemory(const Strategy &s,
                                     const LayerStrategy &layer, int mbsz,
                                     int minTp, int maxTp, int stage,
                                     LayerMemory &out,
                                     std::string &error) const {
  out = LayerMemory();
  const int pp = s.pp, tp = layer.tp, dp = world / pp / tp;
  const int sdp = layer.ulysses ? tp * dp : dp;
  const int bsz = s.globalBatch;
  const bool mixed = cfg.mixedPrecision, async = cfg.asyncGradReduce;
  const bool oneFOneB = s.pipeline == PipelineType::PipeDreamFlush;

  // initialize: chunks from the micro-batch size, capped by the batch.
  int chunks = optimalChunks(bsz / dp, tp, mbsz, minTp);
  int maxChunks = bsz / (tp * dp / minTp);
  maxChunks = maxChunks == 0 ? 1 : maxChunks;
  chunks = std::min(chunks, maxChunks);
  out.chunks = chunks;
  // Galvatron divides the degrees as integers (both powers of two).
  const int tpRatio = tp / minTp;
  std::vector<int> micro = chunkLikeTorch(
      static_cast<int>(static_cast<double>(bsz) / dp / tpRatio), chunks);
  double actBatch;
  if ((oneFOneB && pp > 1) || pp == 1) {
    // 1F1B keeps the activations of the micro-batches in flight at `stage`.
    if (static_cast<int>(micro.size()) != chunks)
      return fail(error, "strategy: global_bsz " + std::to_string(bsz) +
                             " does not split into " + std::to_string(chunks) +
                             " micro-batches (Galvatron asserts here)");
    int end = pp - stage <= chunks ? pp - stage : chunks;
    double total = std::accumulate(micro.begin(), micro.end(), 0.0);
    double inFlight = std::accumulate(micro.begin(), micro.begin() + end, 0.0);
    actBatch = inFlight / total * (static_cast<double>(bsz) / dp);
  } else {
    if (micro.empty())
      return fail(error, "strategy: global_bsz " + std::to_string(bsz) +
                             " leaves no micro-batch");
    actBatch = micro[0]; // GPipe: one micro-batch (Galvatron's choice)
  }

  // estimate_parameter_size / estimate_model_states_size: param, grad and
  // two Adam moments, sharded by ZeRO over the sharded-DP group.
  out.parameterMb = layer.ulysses ? parameterMb : parameterMb / tp;
  out.modelStatesMb = 4 * out.parameterMb;
  if (dp > 1 && layer.zero3)
    out.modelStatesMb *= zero3Ratio(sdp, chunks, mixed, async);
  else if (dp > 1 && s.defaultZero2)
    out.modelStatesMb *= zero2Ratio(sdp, chunks, mixed, async);

  // estimate_activation_size.
  auto act = [&](const std::string &key, double &mb) {
    auto it = activationPerBsz.find(key);
    if (it == activationPerBsz.end())
      return fail(error, "memory profile: key 'layertype_0" +
                             std::string(cfg.sequenceParallel ? "_sp" : "") +
                             "." + std::to_string(cfg.seqLen) +
                             ".tp_activation_per_bsz_dict." + key +
                             "': missing");
    mb = it->second;
    return true;
  };
  double perSample;
  if (layer.checkpoint) {
    if (!act("checkpoint", perSample))
      return false;
    out.activationMb = perSample * actBatch;
    if (cfg.sequenceParallel)
      out.activationMb /= tp;
  } else {
    if (!act(std::to_string(tp), perSample))
      return false;
    out.activationMb = perSample * actBatch;
  }
  out.totalMb = out.modelStatesMb + out.activationMb;

  // estimate_other_memory_cost: embedding and head, per vocabulary tp.
  std::vector<int> degrees;
  if (cfg.disableVtp)
    degrees.push_back(1);
  else
    for (int k = minTp; k * pp <= world && k <= maxTp; k *= 2)
      degrees.push_back(k);
  for (int k : degrees) {
    int modelTp = s.vsp ? 1 : k;
    if (!otherOff.modelStates.count(k) || !otherFirst.modelStates.count(k) ||
        !otherLast.modelStates.count(k))
      continue; // Galvatron drops degrees its profile lacks
    std::vector<double> cost(pp, 0.0);
    double otherBatch = static_cast<double>(bsz) * k / tp / dp / chunks;
    int group = s.vsp ? tp * dp : tp * dp / k;
    double ratio = s.embedSdp       ? zero3Ratio(group, chunks, mixed, async)
                   : s.defaultZero2 ? zero2Ratio(group, chunks, mixed, async)
                                    : 1.0;
    auto at = [&](const std::map<int, double> &m, int key, const char *name,
                  double &v) {
      auto it = m.find(key);
      if (it == m.end())
        return fail(error, std::string("memory profile: other memory '") +
                               name + "' has no entry for tp " +
                               std::to_string(key));
      v = it->second;
      return true;
    };
    double ms, a;
    if (pp == 1) {
      if (!at(otherOff.modelStates, modelTp, "model_states", ms) ||
          !at(otherOff.activation, k, "activation", a))
        return false;
      cost[0] += ms * ratio + a * otherBatch;
    } else {
      double firstBatch = oneFOneB ? otherBatch * pp : otherBatch;
      if (!at(otherFirst.modelStates, modelTp, "model_states", ms) ||
          !at(otherFirst.activation, k, "activation", a))
        return false;
      cost[0] += ms * ratio + a * firstBatch;
      if (!at(otherLast.modelStates, modelTp, "model_states", ms) ||
          !at(otherLast.activation, k, "activation", a))
        return false;
      cost[pp - 1] += ms * ratio + a * otherBatch;
    }
    for (double &c : cost)
      c += cfg.pytorchContextMb;
    out.otherMb[k] = cost;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// OtherTimeCostModel
//===----------------------------------------------------------------------===//

bool GalvatronCostModel::otherTime(const Strategy &s, int mbsz, int minTp,
                                   int maxTp,
                                   std::map<int, std::vector<double>> &withComm,
                                   std::map<int, std::vector<double>> &noComm,
                                   std::string &error) const {
  withComm.clear();
  noComm.clear();
  const int pp = s.pp;
  const double bytesPerValue = cfg.mixedPrecision ? 2 : 4;
  const double coe = hw.overlapCoefficient;
  // estimate_dp_time: ZeRO-3 embeddings gather in forward and backward.
  const double fwdFactor = s.embedSdp ? 0.5 : 0.0;
  const double bwdFactor = s.embedSdp ? 1.0 : 0.5;
  for (int k = minTp; k <= maxTp && world / pp >= k; k *= 2) {
    // estimate_tp_time (the size is looked up among group sizes, never
    // found, so the fit always applies).
    double tpMs = 0;
    if (!s.vsp && k > 1) {
      if (cfg.spSpace == SpSpace::TpSp) {
        double bytes = mbsz * cfg.seqLen * cfg.hiddenSize * bytesPerValue;
        if (!spMessageMs("allreduce", k, bytes, /*allowTable=*/false, tpMs,
                         error))
          return false;
      } else {
        int dp = world / pp / k;
        double tpCoe;
        if (!commCoe(k, dp == 1 ? -1 : 0, tpCoe, error))
          return false;
        double message = (k - 1.0) / k *
                         (mbsz * cfg.seqLen * cfg.hiddenSize / kMiB) *
                         bytesPerValue;
        tpMs = message * tpCoe;
      }
    }
    // estimate_fct_time: the profile is per sample at the min-tp batch.
    double fct = other.at(static_cast<double>(mbsz) / minTp);
    // estimate_dp_time.
    int dp = s.vsp ? world / pp : world / pp / k;
    double dpCoe;
    if (!commCoe(dp, (s.vsp || k == 1 || dp == 1) ? -1 : 0, dpCoe, error))
      return false;
    dpCoe *= (dp - 1.0) / dp; // bus -> algorithm bandwidth
    int msKey = s.vsp ? 1 : k;
    const OtherMem &src = pp == 1 ? otherOff : s.vsp ? otherLast : otherFirst;
    auto ms = src.modelStates.find(msKey);
    if (ms == src.modelStates.end())
      return fail(error, "memory profile: other memory model_states has no "
                         "entry for tp " +
                             std::to_string(msKey));
    double paramMb = ms->second / 4;
    std::vector<double> with(pp, 0.0), without(pp, 0.0);
    double comm = paramMb * dpCoe;
    if (pp == 1) {
      with[0] = 0.001 * overlapTime(comm * fwdFactor, fct, comm * bwdFactor,
                                    fct * kBackwardFactor, 2 * tpMs, coe);
      without[0] =
          0.001 * overlapTime(comm * fwdFactor, fct, comm * (bwdFactor - 0.5),
                              fct * kBackwardFactor, 2 * tpMs, coe);
    } else {
      // Embedding on the first stage, head on the last: half each.
      double half = fct / 2;
      double w = 0.001 * overlapTime(comm * fwdFactor, half, comm * bwdFactor,
                                     half * kBackwardFactor, tpMs, coe);
      double wo =
          0.001 * overlapTime(comm * fwdFactor, half, comm * (bwdFactor - 0.5),
                              half * kBackwardFactor, tpMs, coe);
      with[0] = with[pp - 1] = w;
      without[0] = without[pp - 1] = wo;
    }
    withComm[k] = with;
    noComm[k] = without;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// The whole strategy
//===----------------------------------------------------------------------===//

namespace {

/// The checks Galvatron's search applies before it prices a strategy.
bool checkStrategy(const Strategy &s, const CostModelSettings &cfg, int world,
                   int minTp, int maxTp, std::string &error) {
  auto bad = [&](const std::string &key, const std::string &why) {
    return fail(error, "strategy: key '" + key + "': " + why);
  };
  if (s.pp < 1 || world % s.pp != 0)
    return bad("pp_deg", "must divide the world size " + std::to_string(world));
  if (static_cast<int>(s.layers.size()) != cfg.numLayers)
    return bad("tp_sizes_enc", "has " + std::to_string(s.layers.size()) +
                                   " layers, the model " +
                                   std::to_string(cfg.numLayers));
  int perStage = world / s.pp;
  for (const LayerStrategy &l : s.layers)
    if (!isPowerOfTwo(l.tp) || perStage % l.tp != 0)
      return bad("tp_sizes_enc", "tp " + std::to_string(l.tp) +
                                     " is not a power of two dividing " +
                                     std::to_string(perStage));
  if (static_cast<int>(s.ppDivision.size()) != s.pp ||
      std::accumulate(s.ppDivision.begin(), s.ppDivision.end(), 0) !=
          cfg.numLayers ||
      *std::min_element(s.ppDivision.begin(), s.ppDivision.end()) < 1)
    return bad("pp_division", "needs pp_deg positive counts summing to " +
                                  std::to_string(cfg.numLayers));
  if (s.globalBatch < 1 || s.chunks < 1)
    return bad("global_bsz", "global_bsz and chunks must be positive");
  if (!isPowerOfTwo(minTp) || !isPowerOfTwo(maxTp) || minTp > maxTp)
    return bad("min_tp", "the tp window must be powers of two, min <= max");
  for (const LayerStrategy &l : s.layers)
    if (l.tp < minTp || l.tp > maxTp)
      return bad("tp_sizes_enc", "tp " + std::to_string(l.tp) +
                                     " lies outside the window [" +
                                     std::to_string(minTp) + ", " +
                                     std::to_string(maxTp) + "]");
  if (minTp > perStage)
    return bad("min_tp", "exceeds the devices of a stage");
  int unit = perStage / minTp;
  if (s.globalBatch % unit != 0)
    return bad("global_bsz", "must be a multiple of world / pp / min_tp = " +
                                 std::to_string(unit));
  int local = s.globalBatch / unit;
  int mbsz = (local + s.chunks - 1) / s.chunks;
  // search_for_chunk's strict mode: the chunk count is the real one.
  if (s.chunks > local || (local + mbsz - 1) / mbsz != s.chunks)
    return bad("chunks", std::to_string(s.chunks) + " micro-batches of " +
                             std::to_string(local) +
                             " samples leave an empty one");
  return true;
}

} // namespace

bool GalvatronCostModel::estimate(const Strategy &input, Estimate &out,
                                  std::string &error) const {
  out = Estimate();
  Strategy s = input;
  if (s.ppDivision.empty() && s.pp >= 1) {
    // pp_division_even (search_engine.py): the last stage takes the rest.
    s.ppDivision.assign(s.pp, cfg.numLayers / s.pp);
    s.ppDivision.back() = cfg.numLayers - cfg.numLayers / s.pp * (s.pp - 1);
  }
  // The smallest search window holding every layer's tp and the vtp.
  int lo = s.vtp, hi = s.vtp;
  for (const LayerStrategy &l : s.layers) {
    lo = std::min(lo, l.tp);
    hi = std::max(hi, l.tp);
  }
  int minTp = cfg.minTp ? cfg.minTp : lo, maxTp = cfg.maxTp ? cfg.maxTp : hi;
  if (!checkStrategy(s, cfg, world, minTp, maxTp, error))
    return false;
  const int pp = s.pp, perStage = world / pp, bsz = s.globalBatch;
  const int local = bsz / (perStage / minTp);
  const int mbsz = (local + s.chunks - 1) / s.chunks;
  out.microBatch = mbsz;
  out.minTp = minTp;
  out.maxTp = maxTp;

  // pipeline_costmodel: per-layer costs at the chunked batch.
  int chunks = optimalChunks(bsz * minTp / perStage, minTp, mbsz, minTp);
  if (chunks != 1)
    chunks = static_cast<int>(chunkLikeTorch(local, chunks).size());
  const double chunked = static_cast<double>(bsz) / chunks;
  std::map<int, std::vector<double>> otherWith, otherNo;
  if (!otherTime(s, mbsz, minTp, maxTp, otherWith, otherNo, error))
    return false;
  if (!otherNo.count(s.vtp))
    return fail(error, "strategy: key 'vtp': " + std::to_string(s.vtp) +
                           " is not a tp degree in [" + std::to_string(minTp) +
                           ", " + std::to_string(maxTp) + "] for pp " +
                           std::to_string(pp));
  std::vector<double> stageFull(pp, 0.0), stageCompute(pp, 0.0);
  for (int stage = 0, layer = 0; stage < pp; ++stage)
    for (int i = 0; i < s.ppDivision[stage]; ++i, ++layer) {
      LayerTime full, compute;
      if (!layerTime(pp, s.layers[layer], chunked, false, full, error) ||
          !layerTime(pp, s.layers[layer], chunked, true, compute, error))
        return false;
      stageFull[stage] += full.seconds;
      stageCompute[stage] += compute.seconds;
    }
  for (int i = 0; i < pp; ++i)
    stageCompute[i] += otherNo.at(s.vtp)[i];
  double rest =
      std::accumulate(stageCompute.begin() + 1, stageCompute.end(), 0.0);
  double result =
      std::accumulate(stageCompute.begin(), stageCompute.end(), 0.0) +
      stageCompute[pp - 1] * (chunks - 1);
  // Warm-up and cool-down bubbles may overlap across stages.
  double warm = std::min(pp - 1, chunks - 1) * stageCompute[0];
  result = std::max(result, std::max(warm / 3, rest / 3) +
                                std::max(warm * 2 / 3, rest * 2 / 3) +
                                stageCompute[0] * std::max(0, chunks + 1 - pp));
  // Gradient reduction left after a stage's last backward.
  double reduce = -INFINITY, prefix = 0;
  for (int i = 0; i < pp; ++i) {
    prefix += stageCompute[i];
    reduce = std::max(reduce, stageFull[i] - prefix);
  }
  result += std::max(reduce, 0.0);
  out.timeMs = result * 1000;
  for (double t : stageFull)
    out.stageTimeMs.push_back(t * 1000);

  // Memory per stage as DpOnModel adds it: ceil of each layer, ceil of the
  // other layers, the Megatron-SP buffer and the allocator reserve.
  const bool oneFOneB = s.pipeline == PipelineType::PipeDreamFlush;
  LayerMemory first;
  if (!layerMemory(s, s.layers[0], mbsz, minTp, maxTp, 0, first, error))
    return false;
  if (!first.otherMb.count(s.vtp))
    return fail(error, "strategy: key 'vtp': the memory profile has no other "
                       "memory for tp " +
                           std::to_string(s.vtp));
  bool allUlysses = s.vsp;
  for (const LayerStrategy &l : s.layers)
    allUlysses = allUlysses && (l.tp == 1 || l.ulysses);
  if (cfg.sequenceParallel && cfg.globalMemoryBuffer && !allUlysses) {
    double buffer = static_cast<double>(mbsz) / minTp * maxTp * cfg.hiddenSize *
                    cfg.seqLen * 4 / kMiB;
    out.globalBufferMb = std::floor(cfg.mixedPrecision ? buffer / 2 : buffer);
  }
  double maxMem = cfg.memoryConstraintGB * 1024;
  if (cfg.allocatorReserve && std::floor(maxMem / 1024) > 20)
    out.reserveMb = std::floor(maxMem * 0.2);
  for (int stage = 0, layer = 0; stage < pp; ++stage) {
    double layers = 0;
    for (int i = 0; i < s.ppDivision[stage]; ++i, ++layer) {
      LayerMemory mem;
      if (!layerMemory(s, s.layers[layer], mbsz, minTp, maxTp,
                       oneFOneB ? stage : 0, mem, error))
        return false;
      layers += roundUpMb(mem.totalMb, cfg.memoryUnitMb);
    }
    double other = roundUpMb(first.otherMb.at(s.vtp)[stage], cfg.memoryUnitMb);
    out.stageLayerMemoryMb.push_back(layers);
    out.stageOtherMemoryMb.push_back(other);
    out.stageMemoryMb.push_back(layers + other + out.globalBufferMb +
                                out.reserveMb);
  }
  return true;
}

double roundUpMb(double mb, double unitMb) {
  return std::ceil(mb / unitMb) * unitMb;
}

} // namespace costmodel
} // namespace galvatron
