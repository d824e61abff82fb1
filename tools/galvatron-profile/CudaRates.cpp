//===- CudaRates.cpp - GEMM and memory rates of a CUDA device -------------===//
//
// Built with CUDA (the toolkit's runtime and cuBLAS) when CMake finds it;
// otherwise --backend cuda reports that it is not built in. Communication is
// still measured with MPI over host memory (no NCCL here), which the
// measurements say.
//
//===----------------------------------------------------------------------===//

#include "Measure.h"

#ifdef GALVATRON_PROFILE_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

namespace galvatron {
namespace profile {

#ifndef GALVATRON_PROFILE_HAVE_CUDA

bool measureCudaDevice(const Options &, const Layout &, double &, double &,
                       double &, double &, Json &, std::string &error) {
  error = "--backend cuda: this galvatron-profile was not built with CUDA "
          "(CMake did not find the CUDA toolkit with cuBLAS)";
  return false;
}

#else

namespace {

/// Seconds per call of `body` on the device, timed with events over `calls`
/// calls after one warm-up call.
template <typename Body> double deviceSeconds(int calls, Body body) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  body();
  cudaEventRecord(start);
  for (int i = 0; i < calls; ++i)
    body();
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1e3 / calls;
}

/// TFLOP/s of an n x n x n GEMM in `type` (fp32 or bf16, fp32 accumulate).
bool gemmTflops(cublasHandle_t handle, int n, cudaDataType type, int calls,
                double &tflops, std::string &error) {
  size_t bytes = size_t(n) * n * (type == CUDA_R_32F ? 4 : 2);
  void *a = nullptr, *c = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess ||
      cudaMalloc(&c, bytes) != cudaSuccess) {
    cudaFree(a);
    error = "cudaMalloc of " + std::to_string(bytes >> 20) + " MB failed";
    return false;
  }
  cudaMemset(a, 0, bytes);
  float alpha = 1, beta = 0;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  double seconds = deviceSeconds(calls, [&] {
    status = cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a,
                          type, n, a, type, n, &beta, c, type, n,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  });
  cudaFree(a);
  cudaFree(c);
  if (status != CUBLAS_STATUS_SUCCESS) {
    error = "cublasGemmEx failed (status " + std::to_string(int(status)) + ")";
    return false;
  }
  tflops = 2.0 * n * n * double(n) / seconds / 1e12;
  return true;
}

} // namespace

bool measureCudaDevice(const Options &options, const Layout &layout,
                       double &gemmFp32Tflops, double &gemmBf16Tflops,
                       double &memoryGBs, double &memoryGB, Json &out,
                       std::string &error) {
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    error = std::string("--backend cuda: no CUDA device present (") +
            (status != cudaSuccess ? cudaGetErrorString(status)
                                   : "cudaGetDeviceCount found 0 devices") +
            ")";
    return false;
  }
  int device = layout.localRank % devices;
  cudaSetDevice(device);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, device);
  progress(layout, std::string("CUDA GEMM on ") + prop.name);
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS)
    return error = "cublasCreate failed", false;
  int n = options.quick ? 2048 : 8192, calls = options.quick ? 5 : 20;
  bool ok = gemmTflops(handle, n, CUDA_R_32F, calls, gemmFp32Tflops, error) &&
            gemmTflops(handle, n, CUDA_R_16BF, calls, gemmBf16Tflops, error);
  cublasDestroy(handle);
  if (!ok)
    return false;
  progress(layout, "CUDA memory bandwidth");
  size_t bytes = size_t(options.quick ? 256 : 2048) << 20;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess ||
      cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaFree(a);
    return error = "cudaMalloc for the copy test failed", false;
  }
  double seconds = deviceSeconds(
      calls, [&] { cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice); });
  cudaFree(a);
  cudaFree(b);
  memoryGBs = 2.0 * bytes / seconds / 1e9; // read + write
  memoryGB = prop.totalGlobalMem / double(1 << 30);
  out = {{"device", prop.name},
         {"gemm_n", n},
         {"gemm_tflops_fp32", gemmFp32Tflops},
         {"gemm_tflops_bf16", gemmBf16Tflops},
         {"copy_mb", bytes >> 20},
         {"copy_gbs", memoryGBs},
         {"communication", "MPI over host memory (not NCCL)"}};
  return true;
}

#endif

} // namespace profile
} // namespace galvatron
