//===- ComputeRates.cpp - GEMM and memory rates of CPU ranks --------------===//
//
// Every rank measures at the same time (ranks that share a machine share its
// cores and memory bus, as the devices a plan runs on would); the slowest
// rank's rate is the device rate.
//
//===----------------------------------------------------------------------===//

#include "Measure.h"

#include "galvatron/runtime/Kernels.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace galvatron {
namespace profile {

void progress(const Layout &layout, const std::string &line, bool done) {
  if (layout.rank != 0)
    return;
  std::fprintf(stderr, "\r\033[Kgalvatron-profile: %s%s", line.c_str(),
               done ? "\n" : "");
  std::fflush(stderr);
}

namespace {

double minOverRanks(double value) {
  double out = value;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  return out;
}

double meanOverRanks(double value, int size) {
  double out = value;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return out / size;
}

/// GFLOP/s of C = A B (m x k times k x n) through the runtime's own GEMM
/// (its split of the rows over the kernel threads, OpenBLAS on one thread
/// each), at the median of repeated runs lasting at least `seconds`
/// together (after one warm-up run).
double gemmRate(int m, int n, int k, double seconds) {
  std::vector<float> a(size_t(m) * k, 0.5f), b(size_t(k) * n, 0.25f),
      c(size_t(m) * n, 0.0f);
  auto run = [&] {
    rt::gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
             c.data(), n);
  };
  run();
  std::vector<double> times;
  double start = MPI_Wtime(), now = start;
  while (times.size() < 3 || now - start < seconds) {
    double before = MPI_Wtime();
    run();
    now = MPI_Wtime();
    times.push_back(now - before);
  }
  std::sort(times.begin(), times.end());
  return 2.0 * m * n * double(k) / times[times.size() / 2] / 1e9;
}

/// Runs body(begin, end) over [0, count) on `threads` threads.
template <typename Body>
void parallelFor(size_t count, int threads, Body body) {
  std::vector<std::thread> workers;
  size_t piece = (count + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    size_t begin = std::min(count, piece * t);
    size_t end = std::min(count, begin + piece);
    workers.emplace_back([=] { body(begin, end); });
  }
  for (std::thread &worker : workers)
    worker.join();
}

/// Bytes of available memory on this node, from /proc/meminfo (0 unknown).
double availableBytes(const char *key) {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line))
    if (line.compare(0, std::string(key).size(), key) == 0) {
      std::istringstream fields(line.substr(std::string(key).size()));
      double kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  return 0;
}

int blasThreads(const Options &options, const Layout &layout) {
  if (options.threads > 0)
    return options.threads;
  int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, layout.ranksPerNode));
}

} // namespace

double measureGemm(const Options &options, const Layout &layout, Json &out) {
  struct Shape {
    int m, n, k;
  };
  std::vector<Shape> shapes =
      options.quick ? std::vector<Shape>{{256, 256, 256},
                                         {512, 1024, 256},
                                         {512, 512, 1024}}
                    : std::vector<Shape>{{512, 512, 512},    {1024, 1024, 1024},
                                         {2048, 2048, 2048}, {4096, 1024, 1024},
                                         {1024, 4096, 1024}, {256, 4096, 4096}};
  double seconds = options.quick ? 0.05 : 0.5;
  int threads = blasThreads(options, layout);
  rt::setKernelThreads(threads);
  out["kernel_threads_per_rank"] = threads;
  out["shapes"] = Json::array();
  double sustained = 0;
  for (const Shape &s : shapes) {
    progress(layout, "GEMM " + std::to_string(s.m) + "x" + std::to_string(s.n) +
                         "x" + std::to_string(s.k));
    MPI_Barrier(MPI_COMM_WORLD);
    double rate = gemmRate(s.m, s.n, s.k, seconds);
    double slowest = minOverRanks(rate),
           mean = meanOverRanks(rate, layout.size);
    out["shapes"].push_back({{"m", s.m},
                             {"n", s.n},
                             {"k", s.k},
                             {"gflops_slowest_rank", slowest},
                             {"gflops_mean_rank", mean}});
    sustained = std::max(sustained, slowest);
  }
  out["sustained_gflops"] = sustained;
  return sustained;
}

double measureStream(const Options &options, const Layout &layout, Json &out) {
  // Three arrays per rank, at most 1/8 of the rank's share of free memory.
  double share = availableBytes("MemAvailable:") /
                 std::max(1, layout.ranksPerNode) / 8 / 3;
  size_t bytes = options.quick ? (8u << 20) : (256u << 20);
  if (share > 0)
    bytes = std::min(bytes, size_t(share));
  size_t count = std::max<size_t>(bytes / sizeof(double), 1 << 16);
  int threads = blasThreads(options, layout), repeats = options.quick ? 3 : 10;
  std::vector<double> a(count, 1.0), b(count, 2.0), c(count, 0.0);
  double bestCopy = 1e30, bestTriad = 1e30;
  progress(layout, "memory bandwidth (copy, triad)");
  MPI_Barrier(MPI_COMM_WORLD);
  for (int r = 0; r < repeats; ++r) {
    double start = MPI_Wtime();
    parallelFor(count, threads, [&](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i)
        c[i] = a[i];
    });
    double mid = MPI_Wtime();
    parallelFor(count, threads, [&](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i)
        a[i] = b[i] + 3.0 * c[i];
    });
    double end = MPI_Wtime();
    bestCopy = std::min(bestCopy, mid - start);
    bestTriad = std::min(bestTriad, end - mid);
  }
  // STREAM's byte counts: copy reads and writes one array, triad reads two
  // and writes one (write-allocate traffic not counted).
  double copy = minOverRanks(2.0 * count * sizeof(double) / bestCopy / 1e9);
  double triad = minOverRanks(3.0 * count * sizeof(double) / bestTriad / 1e9);
  out["array_mb"] = double(count * sizeof(double)) / (1 << 20);
  out["threads_per_rank"] = threads;
  out["copy_gbs_slowest_rank"] = copy;
  out["triad_gbs_slowest_rank"] = triad;
  return triad;
}

int messageCapMb(const Options &options, const Layout &layout,
                 std::string &why) {
  double available = availableBytes("MemAvailable:");
  // Three buffers of the largest message per rank (send, receive and MPI's
  // own staging) within a quarter of what the node has free.
  double perRank = available / 4 / std::max(1, layout.size / layout.nodes) / 3;
  double agreed = perRank;
  MPI_Allreduce(&perRank, &agreed, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  double limit = agreed > 0 ? agreed : 1e30; // /proc/meminfo unreadable
  int cap = 1;
  while (cap * 2 <= options.maxMb && (cap * 2.0) * (1 << 20) <= limit)
    cap *= 2;
  if (cap * 2 <= options.maxMb)
    why = "capped at " + std::to_string(cap) + " MB (of " +
          std::to_string(options.maxMb) +
          ") so that three buffers per rank fit a quarter of the node's "
          "available memory";
  else if (options.maxMbGiven)
    why = "--max-mb " + std::to_string(options.maxMb);
  else
    why = "not capped";
  return cap;
}

} // namespace profile
} // namespace galvatron
