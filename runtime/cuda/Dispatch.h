//===- Dispatch.h - a plan instruction as CUDA launches ---------*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_CUDA_DISPATCH_H
#define GALVATRON_RUNTIME_CUDA_DISPATCH_H

#include "DeviceKernels.h"

#include "galvatron/runtime/plan_generated.h"

#include <string>

namespace galvatron::rt::cuda {

/// Enqueues the computation instruction `inst` (not a communication) on
/// `stream`; false with the reason when it cannot run on CUDA.
bool dispatch(const plan::Instruction &inst, std::vector<DeviceView> &in,
              std::vector<DeviceView> &out, cudaStream_t stream,
              std::string &error);

} // namespace galvatron::rt::cuda

#endif // GALVATRON_RUNTIME_CUDA_DISPATCH_H
