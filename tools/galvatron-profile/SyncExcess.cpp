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
//===----------------------------------------------------------------------===//

#include "Measure.h"

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Kernels.h"

#include <algorithm>
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
  int repetitions = options.quick ? 5 : 9;
  double target = options.quick ? 0.05 : 0.2;
  out = Json::object();
  out["method"] = "GEMM bursts between the runtime communicator's 4 KB "
                  "all-reduces over every rank, against both timed apart; "
                  "medians of " +
                  std::to_string(repetitions) + " repetitions";
  out["points"] = Json::array();
  // Bursts of about 0.15 to 3.5 ms on a whole core here: the lengths a
  // training step computes between collectives.
  for (auto [n, gemms] : std::vector<std::pair<int, int>>{
           {192, 1}, {256, 1}, {256, 2}, {256, 4}, {256, 8}}) {
    std::vector<float> a(size_t(n) * n, 0.5f), c(a.size(), 0.0f);
    auto compute = [&] {
      for (int g = 0; g < gemms; ++g)
        rt::gemm(false, false, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f,
                 c.data(), n);
    };
    auto reduce = [&] {
      if (!comm->allReduce(0, rt::Reduction::Sum, small, reduced, error))
        rt::mpi::abortJob(1);
    };
    double once = perIteration(1, compute);
    int iterations = std::max(3, int(target / std::max(once, 1e-6)));
    std::vector<double> bursts, alone, together, extra;
    for (int k = 0; k < repetitions; ++k) {
      double b = perIteration(iterations, compute);
      double r = perIteration(iterations, reduce);
      double t = perIteration(iterations, [&] {
        compute();
        reduce();
      });
      bursts.push_back(b);
      alone.push_back(r);
      together.push_back(t);
      extra.push_back(std::max(0.0, t - b - r));
    }
    double burstMs = slowestRankMedian(bursts) * share * 1e3;
    double extraMs = slowestRankMedian(extra) * 1e3;
    out["points"].push_back({{"gemm_n", n},
                             {"gemms", gemms},
                             {"iterations", iterations},
                             {"burst_ms", slowestRankMedian(bursts) * 1e3},
                             {"burst_whole_core_ms", burstMs},
                             {"allreduce_ms", slowestRankMedian(alone) * 1e3},
                             {"together_ms", slowestRankMedian(together) * 1e3},
                             {"extra_ms", extraMs}});
    // Bursts must increase; a repeat of an equal one keeps the first.
    if (table.empty() || burstMs > table.back().first)
      table.emplace_back(burstMs, extraMs);
  }
  return table;
}

} // namespace profile
} // namespace galvatron
