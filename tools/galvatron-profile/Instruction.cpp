//===- Instruction.cpp - the runtime's fixed cost per instruction ---------===//
//
// The executor runs an instruction by copying its operands out of the
// arena, calling the kernel (which allocates its result) and copying the
// result back. On a small tensor that path, not the arithmetic, is the
// time: measured here with the runtime's own elementwise kernel on 64
// floats, the same steps in the same order.
//
//===----------------------------------------------------------------------===//

#include "Measure.h"

#include "galvatron/runtime/Kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace galvatron {
namespace profile {

namespace {

/// As galvatron-run does: ranks sharing a node split its cores, so kernel
/// threads do not spin against each other.
void shareCores(const Layout &layout) {
  if (!std::getenv("OMP_NUM_THREADS"))
    rt::setKernelThreads(
        int(std::max(1u, std::thread::hardware_concurrency())) /
        std::max(1, layout.ranksPerNode ? layout.ranksPerNode : layout.size));
}

} // namespace

double slowestRankMedian(std::vector<double> runs) {
  std::sort(runs.begin(), runs.end());
  double mine = runs[runs.size() / 2], slowest = 0;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

double measureInstruction(const Layout &layout, Json &out) {
  progress(layout, "instruction overhead");
  shareCores(layout);
  const rt::Shape shape = {64};
  std::vector<uint8_t> arena(size_t{3} * 64 * sizeof(float), 0);
  auto once = [&] {
    rt::Tensor a(rt::DType::F32, shape), b(rt::DType::F32, shape);
    std::memcpy(a.bytes.data(), arena.data(), a.bytes.size());
    std::memcpy(b.bytes.data(), arena.data() + a.bytes.size(), b.bytes.size());
    rt::Tensor c = rt::binary(rt::Binary::Add, a, b);
    std::memcpy(arena.data() + 2 * c.bytes.size(), c.bytes.data(),
                c.bytes.size());
  };
  const int calls = 20000;
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    for (int i = 0; i < calls; ++i)
      once();
    runs.push_back((MPI_Wtime() - start) * 1e3 / calls);
  }
  double slowest = slowestRankMedian(std::move(runs));
  out["ms"] = slowest;
  out["what"] = "64-float add with the executor's copies, median of 5 x " +
                std::to_string(calls);
  return slowest;
}

} // namespace profile
} // namespace galvatron
