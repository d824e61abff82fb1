//===- Search.cpp - Best hybrid-parallel strategy under Galvatron's model -===//
//
// Outer loops (as Galvatron 2.4.0's search_engine.py parallelism_optimization:
// global batch, pp, chunks, the tp window [min_tp, max_tp], vsp, embed_sdp,
// and here the pipeline type) become independent tasks run on threads. Per
// task, for each stage and layer count, a dynamic program over layers keeps
// the Pareto set of (compute time, unhidden DP time, memory) - Galvatron's
// dp_core.cpp keeps one time per memory value and strategy instead - and a
// second dynamic program over stages picks the layer count of every stage
// (Galvatron fixes an even pp_division) and the plan of every stage against
// pipeline_costmodel's time formula (docs/COSTMODEL.md, "The pipeline").
// docs/SEARCH.md states the algorithm and why it is exact.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Search/Search.h"

#include "Pareto.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>
#include <tuple>

namespace galvatron {
namespace search {

using costmodel::Estimate;
using costmodel::GalvatronCostModel;
using costmodel::LayerStrategy;
using costmodel::PipelineType;
using costmodel::Strategy;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMiB = 1024.0 * 1024.0;

/// A layer strategy priced for one task: compute time c (no DP traffic),
/// d = time with DP traffic - c, memory (MB, rounded up as DpOnModel does)
/// per stage, and the tp-window ends it covers.
struct Item {
  LayerStrategy layer;
  double c = 0, d = 0;
  std::vector<double> mem; ///< MB, rounded up to the memory unit.
  unsigned tag = 0;
};

/// A plan for the layers of one stage: sums over its layers; `parent` and
/// `item` rebuild it from the plan with one layer less.
struct Point {
  double c, d, m;
  unsigned tag;
  int parent, item;
};

/// Stages 0..k planned: stage 0's time C0, the sum P of stage times, the
/// largest gradient-reduction excess R so far; how it was reached.
struct State {
  double c0, p, r;
  unsigned tag;
  int prevLayers, prevIndex, layers, point;
};

/// One outer-loop combination.
struct Task {
  int batch, pp, lo, hi, chunks;
  PipelineType pipeline;
};

/// Everything one task prices once and shares between its variants.
struct TaskData {
  std::vector<Item> items;
  int mbsz = 0, realChunks = 1;
  double minC = 0; ///< Smallest per-layer compute time.
};

/// The vsp / embed_sdp / vtp choice of a task and what it adds per stage.
struct Variant {
  bool vsp, embedSdp, ulyssesOnly;
  int vtp;
  std::vector<double> otherTime; ///< Seconds, without DP traffic.
  std::vector<double> otherMem;  ///< MB, rounded up to the memory unit.
  unsigned tag;
};

struct Found {
  double seconds; ///< Per sample: the ranking is by throughput.
  Strategy strategy;
};

bool isPowerOfTwo(int n) { return n > 0 && (n & (n - 1)) == 0; }

bool sameStrategy(const Strategy &a, const Strategy &b) {
  auto layer = [](const LayerStrategy &x) {
    return std::make_tuple(x.tp, x.consecutive, x.zero3, x.checkpoint,
                           x.ulysses);
  };
  if (std::make_tuple(a.pp, a.ppDivision, a.globalBatch, a.chunks, a.pipeline,
                      a.defaultZero2, a.vtp, a.vsp, a.embedSdp) !=
          std::make_tuple(b.pp, b.ppDivision, b.globalBatch, b.chunks,
                          b.pipeline, b.defaultZero2, b.vtp, b.vsp,
                          b.embedSdp) ||
      a.layers.size() != b.layers.size())
    return false;
  for (size_t i = 0; i < a.layers.size(); ++i)
    if (layer(a.layers[i]) != layer(b.layers[i]))
      return false;
  return true;
}

/// Galvatron's allocator reserve (20% of budgets over 20 GB); none when the
/// model's settings turn it off (the native model: no caching allocator).
int reserveMb(double budgetMb, bool allocatorReserve) {
  return allocatorReserve && std::floor(budgetMb / 1024) > 20
             ? static_cast<int>(budgetMb * 0.2)
             : 0;
}

class Searcher {
public:
  Searcher(const GalvatronCostModel &model, const SearchSpace &space,
           const SearchOptions &options)
      : model(model), space(space), options(options), world(model.worldSize()),
        layers(model.settings().numLayers),
        // A window set in the settings prices every plan with it; else
        // estimate() derives it from the plan, so plans must reach both ends.
        fixedWindow(model.settings().minTp > 0 && model.settings().maxTp > 0) {}

  /// Runs every task with raw capacity `rawCap` MB per stage (budget minus
  /// the allocator reserve); fills `top` best first.
  bool run(double rawCap, std::vector<Found> &top, uint64_t &weighed,
           std::string &error);

  /// Keeps `strategy` if it is among the best K so far (and new).
  void offer(double seconds, Strategy &&strategy);

private:
  bool prepare(const Task &task, TaskData &data, std::string &error) const;
  bool variants(const Task &task, const TaskData &data,
                std::vector<Variant> &out, std::string &error) const;
  void stageFronts(const TaskData &data, int stage, double cap, int maxLayers,
                   int need, double weight, bool ulyssesOnly, double limit,
                   std::vector<std::vector<Point>> &levels) const;
  void combine(const Task &task, const TaskData &data, const Variant &v,
               const std::vector<std::vector<std::vector<Point>>> &fronts,
               double cap, uint64_t &weighed);
  Strategy rebuild(const Task &task, const TaskData &data, const Variant &v,
                   const std::vector<std::vector<std::vector<Point>>> &fronts,
                   const std::vector<std::vector<std::vector<State>>> &states,
                   int lastLayers, int lastPoint, int prevLayers,
                   int prevIndex) const;
  bool runTask(const Task &task, double rawCap, uint64_t &weighed,
               std::string &error);

  /// The k-th best time per sample so far, scaled to `task`'s batch.
  double bound(const Task &task) const {
    return kth.load(std::memory_order_relaxed) * task.batch;
  }

  const GalvatronCostModel &model;
  const SearchSpace &space;
  const SearchOptions &options;
  const int world, layers;
  const bool fixedWindow;
  std::mutex lock;
  std::vector<Found> best; ///< Sorted, at most topK.
  std::atomic<double> kth{kInf};
};

} // namespace

//===----------------------------------------------------------------------===//
// The space
//===----------------------------------------------------------------------===//

std::vector<LayerStrategy> layerStrategies(int world, int pp, int minTp,
                                           int maxTp,
                                           const SearchSpace &space) {
  std::vector<LayerStrategy> out;
  const int perStage = world / pp;
  for (int tp = minTp; tp <= maxTp && tp <= perStage; tp *= 2) {
    const int dp = perStage / tp;
    std::vector<bool> layouts = {true};
    if (tp > 1 && dp > 1) {
      layouts.clear();
      if (space.tpConsecutive)
        layouts.push_back(true);
      if (space.tpStrided)
        layouts.push_back(false);
    }
    for (bool ulysses : {false, true}) {
      if (ulysses && (tp == 1 || !space.ulysses))
        continue;
      for (bool consec : layouts) {
        // Ulysses layers price the same whatever the tp layout.
        if (ulysses && consec != layouts.front())
          continue;
        for (bool zero3 : {false, true}) {
          if (zero3 && (dp == 1 || !space.zero3))
            continue;
          for (bool ckpt : {false, true}) {
            if (ckpt && !space.checkpoint)
              continue;
            LayerStrategy l;
            l.tp = tp;
            l.consecutive = consec;
            l.zero3 = zero3;
            l.checkpoint = ckpt;
            l.ulysses = ulysses;
            out.push_back(l);
          }
        }
      }
    }
  }
  return out;
}

std::vector<int> chunkCounts(int batch, int local, const SearchSpace &space) {
  std::vector<int> out;
  for (int c = 1; c <= local; ++c) {
    // Galvatron's strict mode: the chunk count must be the real one.
    int mbsz = (local + c - 1) / c;
    if ((local + mbsz - 1) / mbsz != c)
      continue;
    if (space.chunksDivideBatch && batch % c != 0)
      continue;
    if (!space.chunks.empty() &&
        std::find(space.chunks.begin(), space.chunks.end(), c) ==
            space.chunks.end())
      continue;
    out.push_back(c);
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Per task: prices, variants, fronts
//===----------------------------------------------------------------------===//

namespace {

Strategy baseStrategy(const Task &task, const SearchSpace &space, int layers) {
  Strategy s;
  s.pp = task.pp;
  s.globalBatch = task.batch;
  s.chunks = task.chunks;
  s.pipeline = task.pipeline;
  s.defaultZero2 = space.defaultZero2;
  s.vtp = task.lo;
  s.layers.assign(layers, LayerStrategy());
  return s;
}

bool Searcher::prepare(const Task &task, TaskData &data,
                       std::string &error) const {
  const int perStage = world / task.pp;
  const int local = task.batch / (perStage / task.lo);
  data.mbsz = (local + task.chunks - 1) / task.chunks;
  // pipeline_costmodel's chunk count and micro-batch (estimate() repeats it).
  int chunks = (local + data.mbsz - 1) / data.mbsz;
  if (chunks != 1)
    chunks = static_cast<int>(costmodel::chunkLikeTorch(local, chunks).size());
  data.realChunks = chunks;
  const double chunked = static_cast<double>(task.batch) / chunks;
  Strategy s = baseStrategy(task, space, layers);
  const bool oneFOneB = task.pipeline == PipelineType::PipeDreamFlush;
  data.items.clear();
  data.minC = kInf;
  for (const LayerStrategy &l :
       layerStrategies(world, task.pp, task.lo, task.hi, space)) {
    Item item;
    item.layer = l;
    costmodel::LayerTime with, without;
    if (!model.layerTime(task.pp, l, chunked, false, with, error) ||
        !model.layerTime(task.pp, l, chunked, true, without, error))
      return false;
    item.c = without.seconds;
    item.d = with.seconds - without.seconds;
    for (int stage = 0; stage < task.pp; ++stage) {
      costmodel::LayerMemory mem;
      if (!model.layerMemory(s, l, data.mbsz, task.lo, task.hi,
                             oneFOneB ? stage : 0, mem, error))
        return false;
      item.mem.push_back(
          costmodel::roundUpMb(mem.totalMb, model.settings().memoryUnitMb));
    }
    item.tag = fixedWindow
                   ? 3u
                   : (l.tp == task.lo ? 1u : 0u) | (l.tp == task.hi ? 2u : 0u);
    data.minC = std::min(data.minC, item.c);
    data.items.push_back(item);
  }
  return true;
}

bool Searcher::variants(const Task &task, const TaskData &data,
                        std::vector<Variant> &out, std::string &error) const {
  out.clear();
  const auto &cfg = model.settings();
  Strategy s = baseStrategy(task, space, layers);
  for (bool vsp : {false, true}) {
    if (vsp && !space.vsp)
      continue;
    for (bool embedSdp : {false, true}) {
      if (embedSdp && !space.embedSdp)
        continue;
      s.vsp = vsp;
      s.embedSdp = embedSdp;
      std::map<int, std::vector<double>> with, without;
      if (!model.otherTime(s, data.mbsz, task.lo, task.hi, with, without,
                           error))
        return false;
      costmodel::LayerMemory mem;
      if (!model.layerMemory(s, data.items.front().layer, data.mbsz, task.lo,
                             task.hi, 0, mem, error))
        return false;
      for (auto &[vtp, times] : without) {
        if (!mem.otherMb.count(vtp) || (!space.vtp && vtp != task.lo))
          continue;
        Variant v;
        v.vsp = vsp;
        v.embedSdp = embedSdp;
        v.vtp = vtp;
        v.otherTime = times;
        for (double mb : mem.otherMb.at(vtp))
          v.otherMem.push_back(
              costmodel::roundUpMb(mb, model.settings().memoryUnitMb));
        v.tag = fixedWindow
                    ? 3u
                    : (vtp == task.lo ? 1u : 0u) | (vtp == task.hi ? 2u : 0u);
        // With vsp, plans of only Ulysses or tp-1 layers need no Megatron-SP
        // buffer (estimate() drops it): price them in a variant of their own.
        for (bool ulyssesOnly : {false, true}) {
          if (ulyssesOnly &&
              !(vsp && cfg.sequenceParallel && cfg.globalMemoryBuffer))
            continue;
          v.ulyssesOnly = ulyssesOnly;
          out.push_back(v);
        }
      }
    }
  }
  return true;
}

/// The least compute time of a layer given at most x MB for it, relaxed to
/// the lower convex envelope of the items' (memory, time): then r layers
/// sharing M MB take at least r * at(M / r) (Jensen), a bound no plan of
/// those layers beats.
class TimeForMemory {
public:
  TimeForMemory(const std::vector<Item> &items, int stage) {
    std::vector<std::pair<double, double>> points;
    for (const Item &it : items)
      points.push_back({it.mem[stage], it.c});
    std::sort(points.begin(), points.end());
    double fastest = kInf;
    for (auto &p : points) {
      if (p.second >= fastest)
        continue; // more memory and no faster: never on the envelope
      fastest = p.second;
      while (hull.size() >= 2) {
        auto &a = hull[hull.size() - 2], &b = hull.back();
        double cross = (b.first - a.first) * (p.second - a.second) -
                       (b.second - a.second) * (p.first - a.first);
        if (cross > 0)
          break;
        hull.pop_back();
      }
      hull.push_back(p);
    }
  }
  double at(double x) const {
    if (hull.empty() || x < hull.front().first)
      return kInf;
    if (x >= hull.back().first)
      return hull.back().second;
    size_t i =
        std::upper_bound(hull.begin(), hull.end(), std::make_pair(x, kInf)) -
        hull.begin();
    auto &a = hull[i - 1], &b = hull[i];
    return a.second +
           (b.second - a.second) * (x - a.first) / (b.first - a.first);
  }

private:
  std::vector<std::pair<double, double>> hull; ///< (MB, seconds)
};

/// levels[n]: the Pareto set of plans for n layers of `stage` within `cap`.
/// With the even split the stage holds exactly `need` layers (0: free), so
/// a plan of n < need layers must leave room for the rest, and one whose
/// time with the rest at their fastest for the memory left, counted
/// `weight` times (how often pipeline_costmodel charges this stage at
/// least), with every other stage's layers at their fastest, already
/// reaches `limit` (the bound less the least time of the embedding and
/// head) cannot make the top K.
void Searcher::stageFronts(const TaskData &data, int stage, double cap,
                           int maxLayers, int need, double weight,
                           bool ulyssesOnly, double limit,
                           std::vector<std::vector<Point>> &levels) const {
  levels.assign(1, {Point{0, 0, 0, 0, -1, -1}});
  auto key = [](const Point &p) {
    return std::array<double, 3>{p.c, p.d, p.m};
  };
  auto tag = [](const Point &p) { return p.tag; };
  const TimeForMemory fastest(data.items, stage);
  for (int n = 1; n <= maxLayers; ++n) {
    std::vector<Point> next;
    const auto &prev = levels.back();
    const int rest = need > 0 ? std::max(0, need - n) : 0;
    const int others = need > 0 ? layers - need : layers - n;
    for (int i = 0; i < static_cast<int>(prev.size()); ++i)
      for (int k = 0; k < static_cast<int>(data.items.size()); ++k) {
        const Item &it = data.items[k];
        if (ulyssesOnly && it.layer.tp > 1 && !it.layer.ulysses)
          continue;
        double m = prev[i].m + it.mem[stage];
        if (m > cap)
          continue;
        double c = prev[i].c + it.c;
        double restLb = rest > 0 ? rest * fastest.at((cap - m) / rest) : 0;
        if (weight * (c + restLb) + others * data.minC >= limit)
          continue;
        next.push_back(
            Point{c, prev[i].d + it.d, m, prev[i].tag | it.tag, i, k});
      }
    paretoPrune(next, key, tag);
    levels.push_back(std::move(next));
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Stages combined under pipeline_costmodel
//===----------------------------------------------------------------------===//

namespace {

/// pipeline_costmodel's time (seconds) from stage 0's time C0, the sum of
/// stage times P, the last stage's time and the reduction excess R.
double pipelineTime(int pp, int chunks, double c0, double p, double last,
                    double r) {
  double t = p + last * (chunks - 1);
  double rest = p - c0;
  double warm = std::min(pp - 1, chunks - 1) * c0;
  t = std::max(t, std::max(warm / 3, rest / 3) +
                      std::max(warm * 2 / 3, rest * 2 / 3) +
                      c0 * std::max(0, chunks + 1 - pp));
  return t + std::max(r, 0.0);
}

void Searcher::combine(
    const Task &task, const TaskData &data, const Variant &v,
    const std::vector<std::vector<std::vector<Point>>> &fronts, double cap,
    uint64_t &weighed) {
  const int pp = task.pp, numLayers = layers;
  auto fits = [&](const Point &p, int stage) {
    return p.m + v.otherMem[stage] <= cap;
  };
  // Layer counts a stage may take.
  auto counts = [&](int stage, int used) {
    std::pair<int, int> r;
    if (!space.searchDivision) {
      int even = numLayers / pp;
      int n = stage == pp - 1 ? numLayers - even * (pp - 1) : even;
      r = {n, n};
    } else {
      r = {1, numLayers - used - (pp - 1 - stage)};
    }
    return r;
  };
  // states[k][u]: plans of stages 0..k using u layers.
  std::vector<std::vector<std::vector<State>>> states(
      std::max(pp - 1, 0), std::vector<std::vector<State>>(numLayers + 1));
  auto key = [](const State &s) {
    return std::array<double, 3>{s.c0, s.p, s.r};
  };
  auto tagOf = [](const State &s) { return s.tag; };
  for (int k = 0; k + 1 < pp; ++k) {
    double restLb = 0;
    for (int i = k + 1; i < pp; ++i)
      restLb += v.otherTime[i];
    double limit = bound(task);
    for (int u = 0; u <= numLayers; ++u) {
      std::vector<State> prevStates;
      if (k == 0) {
        if (u != 0)
          continue;
        prevStates.push_back(State{0, 0, 0, v.tag, -1, -1, 0, -1});
      } else if (states[k - 1][u].empty()) {
        continue;
      }
      const auto &from = k == 0 ? prevStates : states[k - 1][u];
      auto [lo, hi] = counts(k, u);
      for (int n = lo; n <= hi && u + n <= numLayers; ++n) {
        const auto &front = fronts[k][n];
        int restLayers = numLayers - u - n;
        double lb = restLb + restLayers * data.minC;
        for (int si = 0; si < static_cast<int>(from.size()); ++si) {
          const State &s = from[si];
          for (int pi = 0; pi < static_cast<int>(front.size()); ++pi) {
            const Point &pt = front[pi];
            if (!fits(pt, k))
              continue;
            double ck = pt.c + v.otherTime[k];
            State ns;
            ns.c0 = k == 0 ? ck : s.c0;
            ns.p = s.p + ck;
            ns.r = std::max(s.r, pt.d - v.otherTime[k] - s.p);
            if (ns.p + std::max(ns.r, 0.0) + lb >= limit)
              continue;
            ns.tag = s.tag | pt.tag;
            ns.prevLayers = u;
            ns.prevIndex = si;
            ns.layers = n;
            ns.point = pi;
            states[k][u + n].push_back(ns);
          }
        }
      }
    }
    for (auto &set : states[k])
      paretoPrune(set, key, tagOf);
  }
  // The last stage closes the pipeline: evaluate every pairing.
  double bestTime = kInf;
  int bestU = -1, bestState = -1, bestPoint = -1;
  const int last = pp - 1;
  for (int u = pp == 1 ? 0 : 1; u < numLayers; ++u) {
    std::vector<State> single;
    if (pp == 1) {
      if (u != 0)
        continue;
      single.push_back(State{0, 0, 0, v.tag, -1, -1, 0, -1});
    }
    const auto &from = pp == 1 ? single : states[pp - 2][u];
    if (from.empty())
      continue;
    auto [lo, hi] = counts(last, u);
    int n = numLayers - u;
    if (n < lo || n > hi)
      continue;
    const auto &front = fronts[last][n];
    for (int si = 0; si < static_cast<int>(from.size()); ++si) {
      const State &s = from[si];
      for (int pi = 0; pi < static_cast<int>(front.size()); ++pi) {
        const Point &pt = front[pi];
        if (!fits(pt, last) || (s.tag | pt.tag) != 3u)
          continue;
        ++weighed;
        double ck = pt.c + v.otherTime[last];
        double c0 = pp == 1 ? ck : s.c0;
        double r = std::max(s.r, pt.d - v.otherTime[last] - s.p);
        double t = pipelineTime(pp, data.realChunks, c0, s.p + ck, ck, r);
        if (t < bestTime) {
          bestTime = t;
          bestU = u;
          bestState = si;
          bestPoint = pi;
        }
      }
    }
  }
  if (bestPoint < 0 || bestTime >= bound(task))
    return;
  offer(bestTime / task.batch,
        rebuild(task, data, v, fronts, states, numLayers - bestU, bestPoint,
                bestU, bestState));
}

Strategy
Searcher::rebuild(const Task &task, const TaskData &data, const Variant &v,
                  const std::vector<std::vector<std::vector<Point>>> &fronts,
                  const std::vector<std::vector<std::vector<State>>> &states,
                  int lastLayers, int lastPoint, int prevLayers,
                  int prevIndex) const {
  Strategy s = baseStrategy(task, space, layers);
  s.vtp = v.vtp;
  s.vsp = v.vsp;
  s.embedSdp = v.embedSdp;
  std::vector<std::pair<int, int>> plan(task.pp); // (layers, point) per stage
  plan[task.pp - 1] = {lastLayers, lastPoint};
  for (int k = task.pp - 2; k >= 0; --k) {
    const State &st = states[k][prevLayers][prevIndex];
    plan[k] = {st.layers, st.point};
    prevLayers = st.prevLayers;
    prevIndex = st.prevIndex;
  }
  s.layers.clear();
  s.ppDivision.clear();
  for (int k = 0; k < task.pp; ++k) {
    auto [n, p] = plan[k];
    std::vector<int> chosen;
    for (int level = n; level > 0; --level) {
      const Point &pt = fronts[k][level][p];
      chosen.push_back(pt.item);
      p = pt.parent;
    }
    // Layers of a stage are interchangeable in the cost model; a stable
    // order keeps equal strategies adjacent.
    std::sort(chosen.begin(), chosen.end());
    for (int item : chosen)
      s.layers.push_back(data.items[item].layer);
    s.ppDivision.push_back(n);
  }
  return s;
}

void Searcher::offer(double seconds, Strategy &&strategy) {
  std::lock_guard<std::mutex> guard(lock);
  size_t k = std::max(1, options.topK);
  if (best.size() >= k && seconds >= best.back().seconds)
    return;
  for (const Found &f : best)
    if (sameStrategy(f.strategy, strategy))
      return;
  auto at =
      std::upper_bound(best.begin(), best.end(), seconds,
                       [](double t, const Found &f) { return t < f.seconds; });
  best.insert(at, Found{seconds, std::move(strategy)});
  if (best.size() > k)
    best.pop_back();
  if (best.size() == k)
    kth.store(best.back().seconds, std::memory_order_relaxed);
}

bool Searcher::runTask(const Task &task, double rawCap, uint64_t &weighed,
                       std::string &error) {
  TaskData data;
  if (!prepare(task, data, error))
    return false;
  if (data.items.empty())
    return true;
  // Nothing can beat the bound: every layer at its fastest, and the last
  // stage's at least one layer repeated for every further micro-batch.
  if ((layers + data.realChunks - 1) * data.minC >= bound(task))
    return true;
  std::vector<Variant> vars;
  if (!variants(task, data, vars, error))
    return false;
  const auto &cfg = model.settings();
  double buffer = 0;
  if (cfg.sequenceParallel && cfg.globalMemoryBuffer) {
    buffer = static_cast<double>(data.mbsz) / task.lo * task.hi *
             cfg.hiddenSize * cfg.seqLen * 4 / kMiB;
    buffer = std::floor(cfg.mixedPrecision ? buffer / 2 : buffer);
  }
  int maxLayers = space.searchDivision
                      ? layers - (task.pp - 1)
                      : layers - layers / task.pp * (task.pp - 1);
  for (bool ulyssesOnly : {false, true}) {
    double cap = rawCap - (ulyssesOnly ? 0 : buffer);
    // Fronts are shared by the variants: cut at the loosest cap per stage.
    std::vector<std::vector<std::vector<Point>>> fronts(task.pp);
    bool any = false;
    for (const Variant &v : vars)
      any = any || v.ulyssesOnly == ulyssesOnly;
    if (!any)
      continue;
    bool sameItems = task.pipeline == PipelineType::GPipe;
    // The least time the embedding and head add to any variant's stages.
    double otherFloor = std::numeric_limits<double>::max();
    for (const Variant &v : vars)
      if (v.ulyssesOnly == ulyssesOnly) {
        double sum = 0;
        for (double t : v.otherTime)
          sum += t;
        otherFloor = std::min(otherFloor, sum);
      }
    for (int stage = 0; stage < task.pp; ++stage) {
      double minOther = std::numeric_limits<double>::max();
      for (const Variant &v : vars)
        minOther = std::min(minOther, v.otherMem[stage]);
      if (sameItems && stage > 0 && stage < task.pp - 1 && stage > 1) {
        fronts[stage] = fronts[1];
        continue;
      }
      // The even split: every stage but the last holds layers / pp.
      int need = 0;
      if (!space.searchDivision)
        need = stage == task.pp - 1 ? maxLayers : layers / task.pp;
      // pipeline_costmodel charges the last stage once per micro-batch and
      // the first at least chunks + 1 - pp times: T >= that x its time.
      double weight = 1;
      if (stage == task.pp - 1)
        weight = data.realChunks;
      else if (stage == 0)
        weight = std::max(1, data.realChunks + 1 - task.pp);
      stageFronts(data, stage, cap - minOther, maxLayers, need, weight,
                  ulyssesOnly, bound(task) - otherFloor, fronts[stage]);
    }
    for (const Variant &v : vars)
      if (v.ulyssesOnly == ulyssesOnly)
        combine(task, data, v, fronts, cap, weighed);
  }
  return true;
}

bool Searcher::run(double rawCap, std::vector<Found> &top, uint64_t &weighed,
                   std::string &error) {
  std::vector<Task> tasks;
  int maxPp = space.maxPp > 0 ? space.maxPp : world;
  for (int batch : options.globalBatches)
    for (PipelineType pipeline : space.pipelines)
      for (int pp = std::max(1, space.minPp);
           pp <= maxPp && pp <= world && pp <= layers; pp *= 2) {
        if (world % pp)
          continue;
        const int perStage = world / pp;
        for (int lo = space.minTp; lo <= perStage && lo <= space.maxTp; lo *= 2)
          for (int hi = lo; hi <= perStage && hi <= space.maxTp; hi *= 2) {
            if (batch % (perStage / lo))
              continue;
            if (fixedWindow &&
                (lo != model.settings().minTp || hi != model.settings().maxTp))
              continue;
            int local = batch / (perStage / lo);
            for (int c : chunkCounts(batch, local, space))
              tasks.push_back(Task{batch, pp, lo, hi, c, pipeline});
          }
      }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> total{0};
  std::mutex errorLock;
  std::string firstError;
  auto worker = [&]() {
    uint64_t mine = 0;
    std::string err;
    for (size_t i; (i = next.fetch_add(1)) < tasks.size();)
      if (!runTask(tasks[i], rawCap, mine, err)) {
        std::lock_guard<std::mutex> guard(errorLock);
        if (firstError.empty())
          firstError = err;
        break;
      }
    total += mine;
  };
  int threads = std::max(1, options.threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (auto &t : pool)
    t.join();
  if (!firstError.empty()) {
    error = firstError;
    return false;
  }
  weighed += total;
  top = best;
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry point
//===----------------------------------------------------------------------===//

namespace {

/// The best plans of a small subspace (one consecutive tp degree for every
/// layer and the vocabulary): real plans of `space`, found quickly, that
/// bound the full search from the start. Only when `space` allows consecutive
/// tp groups, which the uniform subspace uses.
bool uniformSeeds(const GalvatronCostModel &model, const SearchSpace &space,
                  const SearchOptions &options, double rawCap,
                  std::vector<Found> &seeds, uint64_t &weighed,
                  std::string &error) {
  if (!space.tpConsecutive)
    return true;
  SearchSpace uniform = space;
  // One tp degree per run; checkpointing and ZeRO-3 stay free per layer
  // (large micro-batches fit only with them), the rest is fixed.
  uniform.tpStrided = false;
  uniform.searchDivision = uniform.vtp = uniform.embedSdp = false;
  uniform.ulysses = false;
  for (int t = space.minTp; t <= space.maxTp; t *= 2) {
    uniform.minTp = uniform.maxTp = t;
    Searcher searcher(model, uniform, options);
    std::vector<Found> found;
    if (!searcher.run(rawCap, found, weighed, error))
      return false;
    for (Found &f : found)
      seeds.push_back(std::move(f));
  }
  return true;
}

} // namespace

bool searchStrategy(const GalvatronCostModel &model, const SearchSpace &space,
                    const SearchOptions &options, SearchResult &result,
                    std::string &error) {
  auto start = std::chrono::steady_clock::now();
  result = SearchResult();
  if (options.globalBatches.empty())
    return (error = "search: no global batch size given", false);
  for (int b : options.globalBatches)
    if (b < 1)
      return (error = "search: global batch " + std::to_string(b) +
                      " is not positive",
              false);
  if (!isPowerOfTwo(space.maxTp) || !isPowerOfTwo(space.minTp) ||
      space.minTp > space.maxTp || space.pipelines.empty())
    return (error = "search: min/max tp must be powers of two, min <= max, "
                    "and at least one pipeline type given",
            false);
  if (!space.tpConsecutive && !space.tpStrided)
    return (error = "search: tp groups must be consecutive, strided or both",
            false);
  const double budget = options.memoryGB * 1024;
  const bool withReserve = model.settings().allocatorReserve;
  std::vector<Found> top, seeds;
  if (!uniformSeeds(model, space, options,
                    budget - reserveMb(budget, withReserve), seeds,
                    result.candidatesWeighed, error))
    return false;
  {
    Searcher searcher(model, space, options);
    for (Found &seed : seeds)
      searcher.offer(seed.seconds, std::move(seed.strategy));
    if (!searcher.run(budget - reserveMb(budget, withReserve), top,
                      result.candidatesWeighed, error))
      return false;
  }
  for (Found &f : top) {
    Estimate est;
    if (!model.estimate(f.strategy, est, error))
      return (error = "search: internal: the chosen strategy does not price: " +
                      error,
              false);
    Candidate c;
    c.strategy = f.strategy;
    c.timeMs = est.timeMs;
    c.throughput = f.strategy.globalBatch / (est.timeMs / 1000);
    // estimate() adds the reserve of the model's own budget; ours counts.
    for (double mb : est.stageMemoryMb)
      c.stageMemoryMb.push_back(mb - est.reserveMb +
                                reserveMb(budget, withReserve));
    result.best.push_back(c);
  }
  result.found = !result.best.empty();
  if (!result.found) {
    // The smallest raw capacity (budget less reserve) that fits something,
    // by bisection; the search is monotone in it.
    SearchOptions one = options;
    one.topK = 1;
    auto fitsRaw = [&](double raw, bool &ok) {
      Searcher searcher(model, space, one);
      std::vector<Found> any;
      uint64_t w = 0;
      ok = searcher.run(raw, any, w, error);
      return !any.empty();
    };
    bool ok = true;
    // Double from the budget until something fits, then bisect: small
    // capacities prune the fronts hard, so this is cheaper than starting
    // from a huge bound.
    double lo = 0,
           hi = std::max(1024.0, budget - reserveMb(budget, withReserve));
    bool any = false;
    while (hi <= (1 << 30) && ok && !(any = fitsRaw(hi, ok))) {
      lo = hi;
      hi *= 2;
    }
    if (any && ok) {
      const double unit = model.settings().memoryUnitMb;
      while (hi - lo > unit && ok) {
        double mid = std::floor((lo + hi) / 2 / unit) * unit;
        if (fitsRaw(mid, ok))
          hi = mid;
        else
          lo = mid;
      }
      if (!ok)
        return false;
      // The budget whose capacity after the reserve reaches `hi`.
      double b = hi;
      if (withReserve && (reserveMb(b, withReserve) > 0 || b >= 21504)) {
        b = std::max(21504.0, std::floor(hi / 0.8) - 2);
        while (b - reserveMb(b, withReserve) < hi)
          b += 1;
      }
      result.minMemoryMb = b;
    }
    if (!ok)
      return false;
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return true;
}

bool searchUniform(const costmodel::GalvatronCostModel &model,
                   SearchSpace space, const SearchOptions &options,
                   SearchResult &result, std::string &error) {
  // One tp for every layer and the vocabulary; the search still picks pp,
  // chunks and the rest.
  space.zero3 = space.checkpoint = space.tpStrided = false;
  space.tpConsecutive = true;
  space.searchDivision = space.vtp = space.embedSdp = false;
  space.ulysses = false;
  result = SearchResult();
  int lo = space.minTp, hi = space.maxTp;
  for (int t = lo; t <= hi; t *= 2) {
    space.minTp = space.maxTp = t;
    SearchResult one;
    if (!searchStrategy(model, space, options, one, error))
      return false;
    result.candidatesWeighed += one.candidatesWeighed;
    result.seconds += one.seconds;
    for (auto &c : one.best)
      result.best.push_back(c);
    if (one.minMemoryMb > 0)
      result.minMemoryMb = result.minMemoryMb == 0
                               ? one.minMemoryMb
                               : std::min(result.minMemoryMb, one.minMemoryMb);
  }
  std::sort(result.best.begin(), result.best.end(),
            [](const Candidate &a, const Candidate &b) {
              return a.throughput > b.throughput;
            });
  if (static_cast<int>(result.best.size()) > options.topK)
    result.best.resize(options.topK);
  result.found = !result.best.empty();
  if (result.found)
    result.minMemoryMb = 0;
  return true;
}

} // namespace search
} // namespace galvatron
