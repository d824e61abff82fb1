//===- Backend.h - where a rank's program runs ------------------*- C++ -*-===//
//
// galvatron-run --backend: the CPU backend (runRank, the reference) or the
// CUDA backend (runtime/cuda), which keeps its arena, the weights and the
// training state on the device from one run to the next. The trainer and
// the forward driver see only this interface.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_BACKEND_H
#define GALVATRON_RUNTIME_BACKEND_H

#include "galvatron/runtime/Executor.h"

#include <memory>
#include <string>

namespace galvatron::rt {

class Backend {
public:
  virtual ~Backend() = default;
  /// "cpu", "cuda".
  virtual const char *name() const = 0;
  /// As runRank. A backend that keeps the state (RunOptions::state) where
  /// it computes returns every fed-back output in stats.updatedInPlace and
  /// leaves the caller's state tensors stale until fetchState.
  virtual bool run(const plan::Plan &plan, int rank,
                   const std::map<std::string, Tensor> &inputs,
                   const std::map<std::string, Tensor> &weights,
                   std::map<std::string, Tensor> &outputs, RunStats &stats,
                   std::string &error, const RunOptions &options) = 0;
  /// Brings the state the backend keeps into `state` (before a checkpoint
  /// is written, and at the end). The CPU backend updates it in place.
  virtual bool fetchState(std::map<std::string, Tensor> & /*state*/,
                          std::string & /*error*/) {
    return true;
  }
};

/// The CPU kernels (runRank).
std::unique_ptr<Backend> createCpuBackend();

/// Whether this build has the CUDA backend, and whether a device is there:
/// false with the reason when not.
bool cudaBackendAvailable(std::string &why);
/// The CUDA backend on this process's device (local rank modulo the
/// devices), or null with `error`; `comm` carries the NCCL ids.
std::unique_ptr<Backend> createCudaBackend(Communicator *comm,
                                           std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_BACKEND_H
