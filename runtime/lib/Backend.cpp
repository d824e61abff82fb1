//===- Backend.cpp - the CPU backend, and the CUDA one where not built ----===//

#include "galvatron/runtime/Backend.h"

#ifdef GALVATRON_HAVE_CUDA
#include <cstdlib>
#include <dlfcn.h>
#include <unistd.h>
#endif

namespace galvatron::rt {

namespace {
class CpuBackend final : public Backend {
public:
  const char *name() const override { return "cpu"; }
  bool run(const plan::Plan &plan, int rank,
           const std::map<std::string, Tensor> &inputs,
           const std::map<std::string, Tensor> &weights,
           std::map<std::string, Tensor> &outputs, RunStats &stats,
           std::string &error, const RunOptions &options) override {
    return runRank(plan, rank, inputs, weights, outputs, stats, error, options);
  }
};
} // namespace

std::unique_ptr<Backend> createCpuBackend() {
  return std::make_unique<CpuBackend>();
}

#ifdef GALVATRON_HAVE_CUDA
namespace {
/// The CUDA plugin beside galvatron-run (bin/../lib), or where
/// GALVATRON_CUDA_PLUGIN says; opened once and kept.
void *cudaPlugin(std::string &why) {
  static void *handle = nullptr;
  static std::string failure;
  static bool tried = false;
  if (!tried) {
    tried = true;
    std::string path;
    if (const char *given = std::getenv("GALVATRON_CUDA_PLUGIN")) {
      path = given;
    } else {
      char exe[4096];
      ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
      std::string dir = n > 0 ? std::string(exe, n) : std::string();
      dir = dir.substr(0, dir.find_last_of('/') + 1);
      path = dir + "../lib/libgalvatron-cuda.so";
    }
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      failure = std::string("cannot load the CUDA backend: ") + dlerror();
  }
  why = failure;
  return handle;
}
} // namespace

bool cudaBackendAvailable(std::string &why) {
  void *plugin = cudaPlugin(why);
  if (!plugin)
    return false;
  auto available = reinterpret_cast<bool (*)(std::string *)>(
      dlsym(plugin, "galvatronCudaAvailable"));
  if (!available)
    return why = "the CUDA plugin has no galvatronCudaAvailable", false;
  return available(&why);
}

std::unique_ptr<Backend> createCudaBackend(Communicator *comm,
                                           std::string &error) {
  void *plugin = cudaPlugin(error);
  if (!plugin)
    return nullptr;
  auto create = reinterpret_cast<Backend *(*)(Communicator *, std::string *)>(
      dlsym(plugin, "galvatronCreateCudaBackend"));
  if (!create)
    return error = "the CUDA plugin has no galvatronCreateCudaBackend", nullptr;
  return std::unique_ptr<Backend>(create(comm, &error));
}
#else
bool cudaBackendAvailable(std::string &why) {
  why = "this galvatron-run was built without CUDA (no nvcc, cuBLASLt or "
        "NCCL at configure time)";
  return false;
}

std::unique_ptr<Backend> createCudaBackend(Communicator *, std::string &error) {
  cudaBackendAvailable(error);
  return nullptr;
}
#endif

} // namespace galvatron::rt
