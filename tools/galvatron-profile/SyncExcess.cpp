//===- SyncExcess.cpp - what shared cores cost ranks that meet often -----===//
//
// Ranks that outnumber their node's cores compute in turns. The kernel rates
// are measured with every rank busy at once and no meeting between calls;
// a training step's ranks meet at a collective after every few kernels, and
// there they lose more than their share: a rank that waits sleeps and wakes
// late, the ones left compute on caches the others emptied. Four ranks on
// two cores, GEMM bursts of 0.16-1.6 ms (on a whole core) between 4 KB
// all-reduces took 0.5-0.9 of a burst longer per iteration than the bursts
// and the all-reduces timed apart. The probe times exactly that, through
// the runtime's own communicator (its waits are what is measured).
//
// A collective whose members wait while other ranks of their node compute
// loses more again, and by how long those ranks' calls are: a computing
// rank gives its core up between calls. The second probe times the
// runtime's all-reduces of two ranks while the node's others run GEMMs of
// three lengths.
//
//===----------------------------------------------------------------------===//

#include "Measure.h"

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Kernels.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace galvatron {
namespace profile {

namespace {

/// Seconds per iteration of `body` over `iterations`, between barriers; the
/// slowest rank's, so that every rank agrees on it (and on the iteration
/// counts and medians that follow).
template <typename Body> double perIteration(int iterations, Body body) {
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  for (int i = 0; i < iterations; ++i)
    body();
  MPI_Barrier(MPI_COMM_WORLD);
  double mine = (MPI_Wtime() - start) / iterations, slowest = mine;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

/// One burst length of the probe: `gemms` n x n GEMMs, and its timings.
struct Burst {
  Burst(int n, int gemms)
      : n(n), gemms(gemms), a(size_t(n) * n, 0.5f), c(a.size(), 0.0f) {}
  void compute() {
    for (int g = 0; g < gemms; ++g)
      rt::gemm(false, false, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f,
               c.data(), n);
  }
  int n, gemms, iterations = 3;
  /// The one-GEMM burst of the same n, timed earlier in each round, whose
  /// time alone this one's is a multiple of; null for that burst itself.
  const Burst *single = nullptr;
  std::vector<float> a, c;
  std::vector<double> alone, reduceAlone, together, extra;
};

/// Pools adjacent points whose extra falls as the burst grows (pool
/// adjacent violators): a longer burst leaves the ranks further apart, never
/// closer, so a dip is the noise of one point, and averaging it with its
/// neighbour keeps it from steering the plans whose bursts land there.
void makeNonDecreasing(std::vector<std::pair<double, double>> &table) {
  std::vector<std::pair<double, int>> blocks; // (mean extra, points)
  for (auto &point : table) {
    blocks.emplace_back(point.second, 1);
    while (blocks.size() > 1 &&
           blocks[blocks.size() - 2].first > blocks.back().first) {
      auto last = blocks.back();
      blocks.pop_back();
      auto &prev = blocks.back();
      prev.first = (prev.first * prev.second + last.first * last.second) /
                   (prev.second + last.second);
      prev.second += last.second;
    }
  }
  size_t i = 0;
  for (auto &block : blocks)
    for (int k = 0; k < block.second; ++k)
      table[i++].second = block.first;
}

} // namespace

std::vector<std::pair<double, double>> measureSyncExcess(const Options &options,
                                                         const Layout &layout,
                                                         int cores, Json &out) {
  std::vector<std::pair<double, double>> table;
  int perNode = layout.ranksPerNode ? layout.ranksPerNode : layout.size;
  if (cores <= 0 || perNode <= cores) {
    out = "not measured: every rank has a core";
    return table;
  }
  progress(layout, "collectives after bursts on shared cores");
  std::string error;
  std::unique_ptr<rt::Communicator> comm;
  std::vector<int> world(layout.size);
  for (int r = 0; r < layout.size; ++r)
    world[r] = r;
  if (rt::mpi::init(nullptr, nullptr, error))
    comm = rt::mpi::createCommunicator(
        {world}, rt::mpi::Options{120, "galvatron-profile"}, error);
  if (!comm) {
    out = "not measured: " + error;
    return table;
  }
  // A rate measured with every rank busy holds this part of a whole core.
  double share = 1.0 / std::ceil(double(perNode) / cores);
  rt::Tensor small(rt::DType::F32, {1024}), reduced(rt::DType::F32, {1024});
  std::fill_n(small.f32(), 1024, 1.0f);
  auto reduce = [&] {
    if (!comm->allReduce(0, rt::Reduction::Sum, small, reduced, error))
      rt::mpi::abortJob(1);
  };
  // Bursts of about 0.15 to 30 ms on a whole core here: the lengths a
  // training step computes between collectives, from a tensor-parallel
  // layer's few kernels to a data-parallel rank's whole forward and
  // backward before its gradients' all-reduce (the extra still grew there:
  // four ranks on two cores lost 1.2-1.6 ms after 1.5-5.5 ms and 2.6-4
  // after 11-42).
  std::vector<Burst> bursts{{192, 1}, {256, 1},  {256, 2},  {256, 4},
                            {256, 8}, {256, 16}, {256, 32}, {256, 64}};
  double target = options.quick ? 0.15 : 0.4;
  for (Burst &burst : bursts) {
    double once = perIteration(1, [&] { burst.compute(); });
    burst.iterations = std::max(3, int(target / std::max(once, 1e-6)));
  }
  // The rounds take every burst in turn, so that a minute in which the
  // machine ran slower moves every point alike rather than one of them.
  // A burst of several GEMMs is timed alone as that many times its single
  // GEMM (many iterations of the short burst, the same round): a few
  // iterations of a long burst alone end with the ranks apart (nothing
  // meets between them), and that last wait, in the time alone, hid the
  // very extra the point measures (some read less together than alone).
  for (Burst &burst : bursts)
    for (Burst &other : bursts)
      if (&other != &burst && other.n == burst.n && other.gemms == 1)
        burst.single = &other;
  int rounds = options.quick ? 7 : 11;
  for (int round = 0; round < rounds; ++round)
    for (Burst &burst : bursts) {
      double b = burst.single
                     ? burst.gemms * burst.single->alone.back()
                     : perIteration(burst.iterations, [&] { burst.compute(); });
      double r = perIteration(burst.iterations, reduce);
      double t = perIteration(burst.iterations, [&] {
        burst.compute();
        reduce();
      });
      burst.alone.push_back(b);
      burst.reduceAlone.push_back(r);
      burst.together.push_back(t);
      burst.extra.push_back(std::max(0.0, t - b - r));
    }
  out = Json::object();
  out["method"] = "GEMM bursts between the runtime communicator's 4 KB "
                  "all-reduces over every rank, against both timed apart "
                  "(a burst of g GEMMs alone: g times its one GEMM); "
                  "medians of " +
                  std::to_string(rounds) +
                  " rounds over every burst; extra_ms made non-decreasing "
                  "in the table";
  out["points"] = Json::array();
  for (Burst &burst : bursts) {
    double aloneMs = slowestRankMedian(burst.alone) * 1e3;
    double burstMs = aloneMs * share;
    double extraMs = slowestRankMedian(burst.extra) * 1e3;
    out["points"].push_back(
        {{"gemm_n", burst.n},
         {"gemms", burst.gemms},
         {"iterations", burst.iterations},
         {"burst_ms", aloneMs},
         {"burst_whole_core_ms", burstMs},
         {"allreduce_ms", slowestRankMedian(burst.reduceAlone) * 1e3},
         {"together_ms", slowestRankMedian(burst.together) * 1e3},
         {"extra_ms", extraMs}});
    // Bursts must increase; a repeat of an equal one keeps the first.
    if (table.empty() || burstMs > table.back().first)
      table.emplace_back(burstMs, extraMs);
  }
  makeNonDecreasing(table);
  return table;
}

namespace {

/// One point of the contended probe: node 0's ranks 0 and 1 all-reduce
/// `bytes` for about 0.15 s while the node's other ranks wait, then again
/// while they run n x n GEMMs. Returns {all-reduce alone, all-reduce
/// contended, one GEMM call} in seconds, 0 for what this rank did not time.
std::array<double, 3> timeContended(rt::Communicator &comm, int rank,
                                    int perNode, uint64_t bytes, int n) {
  std::string error;
  auto barrier = [&] {
    if (!comm.worldBarrier("the contended-collective probe", error))
      rt::mpi::abortJob(1);
  };
  int64_t count = int64_t(bytes / sizeof(float));
  rt::Tensor in(rt::DType::F32, {count}), out(rt::DType::F32, {count});
  std::fill_n(in.f32(), count, 1.0f);
  // All-reduces for about `seconds` (at least 3): rank 0's first element
  // says whether another follows, so both ranks stop together.
  auto reduceFor = [&](double seconds) {
    double start = MPI_Wtime();
    for (int i = 0;; ++i) {
      in.f32()[0] = rank == 0 && (i < 3 || MPI_Wtime() - start < seconds);
      if (!comm.allReduce(0, rt::Reduction::Sum, in, out, error))
        rt::mpi::abortJob(1);
      if (out.f32()[0] == 0)
        return (MPI_Wtime() - start) / (i + 1);
    }
  };
  bool reduces = rank < 2, computes = rank >= 2 && rank < perNode;
  std::array<double, 3> times = {0, 0, 0};
  barrier();
  if (reduces)
    times[0] = reduceFor(0.15);
  barrier();
  if (reduces) {
    times[1] = reduceFor(0.15);
    int stop = 1;
    if (rank == 0)
      for (int r = 2; r < perNode; ++r)
        MPI_Send(&stop, 1, MPI_INT, r, 0, MPI_COMM_WORLD);
  } else if (computes) {
    // Computes until rank 0 says the all-reduces are done, testing for its
    // message only between calls, as a rank of a step does.
    std::vector<float> a(size_t(n) * n, 0.5f), c(a.size(), 0.0f);
    int done = 0, payload = 0, gemms = 0;
    MPI_Request request;
    MPI_Irecv(&payload, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, &request);
    double start = MPI_Wtime();
    while (!done) {
      rt::gemm(false, false, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f,
               c.data(), n);
      ++gemms;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    }
    times[2] = (MPI_Wtime() - start) / gemms;
  }
  barrier();
  return times;
}

} // namespace

ContendedExcess measureContendedExcess(const Options &options,
                                       const Layout &layout, int cores,
                                       Json &out) {
  ContendedExcess table;
  int perNode = layout.ranksPerNode ? layout.ranksPerNode : layout.size;
  if (cores <= 0 || perNode <= cores || perNode < 3) {
    out = "not measured: the node's ranks do not outnumber its cores, or "
          "fewer than 3 share it";
    return table;
  }
  progress(layout, "collectives while other ranks compute");
  // Node 0's first two ranks all-reduce; the node's others compute; ranks
  // of other nodes wait.
  std::string error;
  std::unique_ptr<rt::Communicator> comm;
  if (rt::mpi::init(nullptr, nullptr, error))
    comm = rt::mpi::createCommunicator(
        {{0, 1}}, rt::mpi::Options{120, "galvatron-profile"}, error);
  if (!comm) {
    out = "not measured: " + error;
    return table;
  }
  // Below the runtime's blocking size a collective sleeps between polls;
  // from it on it polls without pause: one row each.
  const std::vector<uint64_t> sizes{4096, rt::mpi::kBlockingCollectiveBytes};
  // Calls of about 0.4, 3 and 25 ms on a whole core here: an elementwise
  // layer's kernels up to a language-model head's GEMMs.
  const std::vector<int> calls{256, 512, 1024};
  int rounds = options.quick ? 3 : 5;
  std::map<std::pair<uint64_t, int>, std::array<std::vector<double>, 3>>
      points; // alone, contended, call (s)
  for (int round = 0; round < rounds; ++round)
    for (uint64_t bytes : sizes)
      for (int n : calls) {
        std::array<double, 3> times =
            timeContended(*comm, layout.rank, perNode, bytes, n);
        for (int k = 0; k < 3; ++k)
          points[{bytes, n}][k].push_back(times[k]);
      }
  out = Json::object();
  out["method"] =
      "the runtime communicator's all-reduces over node 0's "
      "first two ranks while the node's other ranks run GEMMs "
      "(and while they wait); the slowest timing rank's median of " +
      std::to_string(rounds) + " rounds";
  out["points"] = Json::array();
  // Each the slowest timing rank's median (the others hold zeros).
  for (auto &[key, runs] : points) {
    double alone = slowestRankMedian(runs[0]) * 1e3,
           contended = slowestRankMedian(runs[1]) * 1e3;
    double extra = std::max(0.0, contended - alone);
    // The call ran on a core shared with a rank that mostly waited: about
    // a whole core's time.
    double callMs = slowestRankMedian(runs[2]) * 1e3;
    out["points"].push_back({{"bytes", key.first},
                             {"gemm_n", key.second},
                             {"call_ms", callMs},
                             {"allreduce_ms", alone},
                             {"contended_ms", contended},
                             {"extra_ms", extra}});
    std::vector<std::pair<double, double>> &row = table[double(key.first)];
    if (row.empty() || callMs > row.back().first)
      row.emplace_back(callMs, extra);
  }
  for (auto &[bytes, row] : table)
    makeNonDecreasing(row);
  return table;
}

} // namespace profile
} // namespace galvatron
