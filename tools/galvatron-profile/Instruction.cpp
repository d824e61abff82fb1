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
#include <functional>
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
  std::sort(runs.begin(), runs.end());
  double mine = runs[runs.size() / 2], slowest = 0;
  MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  out["ms"] = slowest;
  out["what"] = "64-float add with the executor's copies, median of 5 x " +
                std::to_string(calls);
  return slowest;
}

std::map<std::string, double> measureKernels(const Layout &layout, Json &out) {
  progress(layout, "kernel rates");
  shareCores(layout);
  const rt::Shape shape = {256, 256};
  rt::Tensor x(rt::DType::F32, shape), y(rt::DType::F32, shape);
  for (size_t i = 0; i < x.bytes.size() / 4; ++i) {
    reinterpret_cast<float *>(x.bytes.data())[i] = 0.001f * (i % 997);
    reinterpret_cast<float *>(y.bytes.data())[i] = 0.002f * (i % 991);
  }
  const double tensor = x.bytes.size();
  // Each class: one representative kernel and the bytes it reads and writes.
  struct Kernel {
    const char *name;
    std::function<void()> run;
    double bytes;
  };
  const Kernel kernels[] = {
      {"elementwise", [&] { rt::binary(rt::Binary::Add, x, y); }, 3 * tensor},
      {"transcendental", [&] { rt::unary(rt::Unary::GeluTanh, x); },
       2 * tensor},
      {"movement",
       [&] {
         rt::transpose(x, {1, 0});
       },
       2 * tensor},
      {"reduction", [&] { rt::reduce(rt::Reduction::Sum, x, {1}, true); },
       tensor},
      {"normalisation", [&] { rt::softmax(x, 1); }, 2 * tensor}};
  std::map<std::string, double> rates;
  for (const Kernel &k : kernels) {
    std::vector<double> runs;
    for (int r = 0; r < 5; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      double start = MPI_Wtime();
      for (int i = 0; i < 20; ++i)
        k.run();
      runs.push_back((MPI_Wtime() - start) * 1e9 / 20);
    }
    std::sort(runs.begin(), runs.end());
    double mine = runs[runs.size() / 2] / k.bytes, slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    rates[k.name] = slowest;
    out[k.name] = slowest;
  }
  out["what"] = "ns per byte read and written, 256 x 256 floats, the "
                "runtime's own kernels, slowest rank's median of 5 x 20";
  return rates;
}

} // namespace profile
} // namespace galvatron
