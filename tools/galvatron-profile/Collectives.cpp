//===- Collectives.cpp - collective times and the overlap coefficient -----===//
//
// Groups follow Galvatron's layouts on the first `commWorld` ranks (a power
// of two): consecutive groups of n are rank blocks [0, n), [n, 2n), ...;
// strided ones take every (commWorld / n)-th rank. All groups of a layout run
// at the same time, as Galvatron's profiler runs them. A time is the slowest
// rank's average over repeated calls.
//
//===----------------------------------------------------------------------===//

#include "Measure.h"

#include "galvatron/runtime/Kernels.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

namespace galvatron {
namespace profile {

namespace {

constexpr size_t kMiB = 1 << 20;

double maxOverRanks(double value) {
  double out = value;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

/// One call of `op` on `comm` (a group of `group` ranks) over a buffer of
/// `count` floats; p2p sends to `next` and receives from `prev`.
void callOnce(const std::string &op, MPI_Comm comm, int group, size_t count,
              float *send, float *recv, int next, int prev) {
  int piece = int(count / group);
  if (op == "allreduce")
    MPI_Allreduce(send, recv, int(count), MPI_FLOAT, MPI_SUM, comm);
  else if (op == "allgather")
    MPI_Allgather(send, piece, MPI_FLOAT, recv, piece, MPI_FLOAT, comm);
  else if (op == "reducescatter")
    MPI_Reduce_scatter_block(send, recv, piece, MPI_FLOAT, MPI_SUM, comm);
  else if (op == "all2all")
    MPI_Alltoall(send, piece, MPI_FLOAT, recv, piece, MPI_FLOAT, comm);
  else
    MPI_Sendrecv(send, int(count), MPI_FLOAT, next, 0, recv, int(count),
                 MPI_FLOAT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

/// Median ms of `op` over enough calls to last about `target` seconds
/// (between 3 and `maxCalls`, agreed by every rank); each call starts at a
/// barrier and counts as long as its slowest rank took.
double timeOp(const std::string &op, MPI_Comm comm, int group, size_t count,
              std::vector<float> &send, std::vector<float> &recv, int next,
              int prev, double target, int maxCalls) {
  // p2p runs on MPI_COMM_WORLD (a rank without a peer sends to
  // MPI_PROC_NULL).
  bool member = comm != MPI_COMM_NULL || op == "p2p";
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  if (member)
    callOnce(op, comm, group, count, send.data(), recv.data(), next, prev);
  double warm = maxOverRanks(MPI_Wtime() - start);
  int calls = std::clamp(int(target / std::max(warm, 1e-9)), 3, maxCalls);
  std::vector<double> mine(calls, 0.0), slowest(calls, 0.0);
  for (int i = 0; i < calls; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    start = MPI_Wtime();
    if (member)
      callOnce(op, comm, group, count, send.data(), recv.data(), next, prev);
    mine[i] = (MPI_Wtime() - start) * 1e3;
  }
  MPI_Allreduce(mine.data(), slowest.data(), calls, MPI_DOUBLE, MPI_MAX,
                MPI_COMM_WORLD);
  std::sort(slowest.begin(), slowest.end());
  return slowest[calls / 2];
}

/// This rank's group communicator for a layout (MPI_COMM_NULL outside).
MPI_Comm groupComm(const Layout &layout, int group, bool consecutive) {
  int color = MPI_UNDEFINED;
  if (layout.rank < layout.commWorld)
    color = consecutive ? layout.rank / group
                        : layout.rank % (layout.commWorld / group);
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, color, layout.rank, &comm);
  return comm;
}

void measureLayout(const Options &options, const Layout &layout, int group,
                   bool consecutive, const std::vector<int> &sizesMb,
                   std::vector<float> &send, std::vector<float> &recv,
                   std::vector<CommSample> &out) {
  MPI_Comm comm = groupComm(layout, group, consecutive);
  // p2p: pipeline stages are blocks of commWorld / pp ranks; each rank sends
  // to its peer in the next stage (Galvatron's pp_size_<pp>).
  int stage = layout.commWorld / group, next = MPI_PROC_NULL,
      prev = MPI_PROC_NULL;
  if (layout.rank < layout.commWorld) {
    if (layout.rank + stage < layout.commWorld)
      next = layout.rank + stage;
    if (layout.rank - stage >= 0)
      prev = layout.rank - stage;
  }
  double target = options.quick ? 0.01 : 0.2;
  int maxCalls = options.quick ? 3 : 20;
  for (const char *op :
       {"allreduce", "allgather", "reducescatter", "all2all", "p2p"}) {
    if (std::string(op) == "p2p" && !consecutive)
      continue;
    for (int mb : sizesMb) {
      progress(layout, std::string(op) + " on groups of " +
                           std::to_string(group) +
                           (consecutive ? " (consecutive), " : " (strided), ") +
                           std::to_string(mb) + " MB");
      size_t count = size_t(mb) * kMiB / sizeof(float);
      double ms = timeOp(op, comm, group, count, send, recv, next, prev, target,
                         maxCalls);
      out.push_back({op, group, consecutive, mb, ms});
    }
  }
  if (comm != MPI_COMM_NULL)
    MPI_Comm_free(&comm);
}

} // namespace

std::vector<CommSample> measureCollectives(const Options &options,
                                           const Layout &layout,
                                           const std::vector<int> &sizesMb) {
  std::vector<CommSample> samples;
  int largest = sizesMb.empty() ? 0 : sizesMb.back();
  std::vector<float> send(size_t(largest) * kMiB / sizeof(float), 1.0f),
      recv(send.size(), 0.0f);
  for (int group = 2; group <= layout.commWorld; group *= 2)
    for (bool consecutive : {true, false})
      if (consecutive || group < layout.commWorld)
        measureLayout(options, layout, group, consecutive, sizesMb, send, recv,
                      samples);
  return samples;
}

std::map<int, double> measureLatency(const Options &options,
                                     const Layout &layout, Json &out) {
  std::map<int, double> latency;
  // 4 KB: a message whose time is all start-up, like most of what a small
  // model's plan exchanges.
  std::vector<float> send(1024, 1.0f), recv(send.size(), 0.0f);
  for (int group = 2; group <= layout.commWorld; group *= 2) {
    progress(layout, "latency on groups of " + std::to_string(group));
    MPI_Comm comm = groupComm(layout, group, true);
    double ms = timeOp("allreduce", comm, group, send.size(), send, recv,
                       MPI_PROC_NULL, MPI_PROC_NULL, options.quick ? 0.02 : 0.2,
                       options.quick ? 20 : 200);
    if (comm != MPI_COMM_NULL)
      MPI_Comm_free(&comm);
    latency[group] = ms;
    out[std::to_string(group)] = ms;
  }
  return latency;
}

namespace {

void gemmLoop(int n, int calls, std::vector<float> &a, std::vector<float> &c) {
  for (int i = 0; i < calls; ++i)
    rt::gemm(false, false, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f,
             c.data(), n);
}

void allreduceLoop(MPI_Comm comm, int calls, std::vector<float> &send,
                   std::vector<float> &recv) {
  for (int i = 0; i < calls; ++i)
    MPI_Allreduce(send.data(), recv.data(), int(send.size()), MPI_FLOAT,
                  MPI_SUM, comm);
}

/// GEMMs on this thread with nonblocking all-reduces progressed between
/// them (MPI without MPI_THREAD_MULTIPLE).
void interleaved(MPI_Comm comm, int n, int gemms, int allreduces,
                 std::vector<float> &a, std::vector<float> &c,
                 std::vector<float> &send, std::vector<float> &recv) {
  MPI_Request request = MPI_REQUEST_NULL;
  int started = 0;
  bool active = false;
  while (gemms > 0 || active || started < allreduces) {
    if (!active && started < allreduces) {
      MPI_Iallreduce(send.data(), recv.data(), int(send.size()), MPI_FLOAT,
                     MPI_SUM, comm, &request);
      ++started;
      active = true;
    }
    if (gemms > 0) {
      gemmLoop(n, 1, a, c);
      --gemms;
    }
    int finished = 1;
    if (active && gemms > 0)
      MPI_Test(&request, &finished, MPI_STATUS_IGNORE);
    else if (active)
      MPI_Wait(&request, MPI_STATUS_IGNORE);
    if (finished)
      active = false;
  }
}

} // namespace

double measureOverlap(const Options &options, const Layout &layout, int mb,
                      Json &out) {
  progress(layout, "overlap coefficient (" + std::to_string(mb) + " MB)");
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  MPI_Comm comm = groupComm(layout, layout.commWorld, true);
  bool member = comm != MPI_COMM_NULL;
  int n = options.quick ? 192 : 768;
  std::vector<float> a(size_t(n) * n, 0.5f), c(a.size(), 0.0f);
  std::vector<float> send(size_t(mb) * kMiB / sizeof(float), 1.0f),
      recv(send.size(), 0.0f);
  auto timed = [&](auto body) {
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    body();
    return maxOverRanks(MPI_Wtime() - start);
  };
  // One call each, then loops of about equal length.
  double gemmOne = timed([&] { gemmLoop(n, 2, a, c); }) / 2;
  double commOne = timed([&] {
                     if (member)
                       allreduceLoop(comm, 2, send, recv);
                   }) /
                   2;
  double target = options.quick ? 0.1 : 1.0;
  int gemms = std::max(1, int(target / std::max(gemmOne, 1e-9)));
  int allreduces = std::max(1, int(target / std::max(commOne, 1e-9)));
  double compute = timed([&] { gemmLoop(n, gemms, a, c); });
  double comm1 = timed([&] {
    if (member)
      allreduceLoop(comm, allreduces, send, recv);
  });
  bool threaded = provided == MPI_THREAD_MULTIPLE;
  double both = timed([&] {
    if (!member)
      gemmLoop(n, gemms, a, c);
    else if (threaded) {
      std::thread comms([&] { allreduceLoop(comm, allreduces, send, recv); });
      gemmLoop(n, gemms, a, c);
      comms.join();
    } else
      interleaved(comm, n, gemms, allreduces, a, c, send, recv);
  });
  if (member)
    MPI_Comm_free(&comm);
  double coefficient = both / std::max(compute, comm1);
  out = {{"method", threaded ? "all-reduce loop on a second thread "
                               "(MPI_THREAD_MULTIPLE)"
                             : "MPI_Iallreduce progressed between GEMMs"},
         {"gemm_n", n},
         {"gemm_calls", gemms},
         {"allreduce_mb", mb},
         {"allreduce_calls", allreduces},
         {"compute_ms", compute * 1e3},
         {"allreduce_ms", comm1 * 1e3},
         {"together_ms", both * 1e3},
         {"together_over_sum", both / (compute + comm1)},
         {"coefficient", coefficient}};
  return coefficient;
}

} // namespace profile
} // namespace galvatron
