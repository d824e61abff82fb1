//===- Plugin.cpp - the CUDA backend's entry points -----------------------===//
//
// galvatron-run opens libgalvatron-cuda.so only to run on CUDA
// (runtime/lib/Backend.cpp) and finds these two by name.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernels.h"

#include "galvatron/runtime/Backend.h"

#include <string>

extern "C" __attribute__((visibility("default"))) bool
galvatronCudaAvailable(std::string *why) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaSuccess && count > 0)
    return true;
  *why = e != cudaSuccess
             ? std::string("no CUDA device: ") + cudaGetErrorString(e)
             : std::string("no CUDA device is visible");
  return false;
}

extern "C" __attribute__((visibility("default"))) galvatron::rt::Backend *
galvatronCreateCudaBackend(galvatron::rt::Communicator *comm,
                           std::string *error) {
  int count = 0;
  if (!galvatronCudaAvailable(error) ||
      cudaGetDeviceCount(&count) != cudaSuccess)
    return nullptr;
  return galvatron::rt::makeCudaBackend(comm,
                                        galvatron::rt::localDeviceOf(count))
      .release();
}
