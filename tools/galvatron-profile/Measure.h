//===- Measure.h - galvatron-profile's measurements -------------*- C++ -*-===//
//
// What `galvatron-profile hardware` measures on the ranks it runs on: GEMM
// and memory rates per rank (CPU: OpenBLAS sgemm and a stream-like copy and
// triad; CUDA: cuBLAS and device copies), collective times by op, group
// size, layout and message size (MPI), and Galvatron's overlap coefficient.
// Every rank calls every function (they hold collectives).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_TOOLS_PROFILE_MEASURE_H
#define GALVATRON_TOOLS_PROFILE_MEASURE_H

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace galvatron {
namespace profile {

using Json = nlohmann::ordered_json;

struct Options {
  std::string backend = "cpu";
  std::string output;
  std::string galvatronDir;
  int maxMb = 1024; ///< Largest message, MB (before the memory cap).
  bool maxMbGiven = false;
  bool quick = false;
  int threads = 0;  ///< BLAS threads per rank; 0 = cores / ranks on the node.
  int kernelMs = 0; ///< Per timed kernel repetition; 0: 40 (--quick 10).
  int cores = 0;    ///< The cores a node's ranks share; 0: its processors.
};

/// The ranks and how they sit on nodes.
struct Layout {
  int rank = 0, size = 1;
  int nodes = 1, ranksPerNode = 1; ///< ranksPerNode 0 when uneven.
  int localRank = 0;
  /// The largest power of two <= size: collectives run on ranks < commWorld.
  int commWorld = 1;
};

/// Rank 0's progress line on stderr ("\r" updated, ended by `done`).
void progress(const Layout &layout, const std::string &line, bool done = false);

/// Per-rank GEMM rates by shape (fp32 sgemm); returns the sustained rate,
/// GFLOP/s: the best shape's rate over repeated runs, the slowest rank's.
double measureGemm(const Options &options, const Layout &layout, Json &out);
/// Stream-like copy and triad per rank, GB/s; returns the triad rate of the
/// slowest rank.
double measureStream(const Options &options, const Layout &layout, Json &out);

/// The largest message (MB) to time: --max-mb, capped so that three buffers
/// of it per rank fit a quarter of the node's available memory. `why` says
/// what capped it.
int messageCapMb(const Options &options, const Layout &layout,
                 std::string &why);

/// One timed collective: op, group size, layout, MB, ms (slowest rank).
struct CommSample {
  std::string op;
  int group = 0;
  bool consecutive = true;
  int mb = 0;
  double ms = 0;
};

/// Times allreduce, allgather, reducescatter, all2all and p2p on every
/// power-of-two group (consecutive and strided) over the message sizes.
std::vector<CommSample> measureCollectives(const Options &options,
                                           const Layout &layout,
                                           const std::vector<int> &sizesMb);

/// The time (ms) of a 4 KB all-reduce on every power-of-two group of
/// consecutive ranks: the start-up cost the bandwidth tables miss.
std::map<int, double> measureLatency(const Options &options,
                                     const Layout &layout, Json &out);

/// The median of this rank's `runs`, the largest over the ranks (every
/// rank calls it).
double slowestRankMedian(std::vector<double> runs);

/// What the runtime spends on one instruction whatever its size: a small
/// elementwise kernel with the executor's copies in and out of its arena
/// (ms, the slowest rank's median).
double measureInstruction(const Layout &layout, Json &out);

/// The runtime's kernels by class (costmodel::kernelClasses()): ns per
/// unit of work (bytes, or FLOPs for the contractions) at increasing work
/// per call, every rank calling at once; the slowest rank's; and
/// `gemmNsPerByte`, a GEMM's time per byte of operands beyond the "gemm"
/// probe's (skinny GEMMs against the probe's shape at equal FLOPs).
using KernelRates =
    std::map<std::string, std::vector<std::pair<double, double>>>;
KernelRates measureKernelRates(const Options &options, const Layout &layout,
                               Json &out, double &gemmNsPerByte);

/// Galvatron's overlap coefficient: a GEMM loop and an all-reduce loop of
/// about equal length, run alone and then at the same time (the all-reduce
/// on a second thread when MPI allows it, else nonblocking and progressed
/// between GEMMs); coefficient = together / max(alone).
double measureOverlap(const Options &options, const Layout &layout, int mb,
                      Json &out);

/// Where the node's ranks outnumber its `cores`: what an all-reduce costs
/// beyond its own time after each rank computed a burst, by burst length
/// (GEMM bursts between the runtime communicator's 4 KB all-reduces, against
/// the bursts and the all-reduces timed apart), as (burst ms on a whole
/// core, extra ms) pairs; empty when every rank has a core.
std::vector<std::pair<double, double>> measureSyncExcess(const Options &options,
                                                         const Layout &layout,
                                                         int cores, Json &out);

/// Where the node's ranks outnumber its `cores` (at least 3 of them): what
/// an all-reduce of node 0's first two ranks costs beyond its own time while
/// the node's other ranks compute, by bytes (either side of the runtime's
/// blocking size) and then as (their GEMM call's ms, extra ms) pairs; empty
/// otherwise.
using ContendedExcess =
    std::map<double, std::vector<std::pair<double, double>>>;
ContendedExcess measureContendedExcess(const Options &options,
                                       const Layout &layout, int cores,
                                       Json &out);

/// CUDA device rates (cuBLAS sgemm and bf16 GEMM, device-to-device copy,
/// memory size) of this rank's device; false with `error` when CUDA is not
/// built in or no device is present.
bool measureCudaDevice(const Options &options, const Layout &layout,
                       double &gemmFp32Tflops, double &gemmBf16Tflops,
                       double &memoryGBs, double &memoryGB, Json &out,
                       std::string &error);

} // namespace profile
} // namespace galvatron

#endif // GALVATRON_TOOLS_PROFILE_MEASURE_H
