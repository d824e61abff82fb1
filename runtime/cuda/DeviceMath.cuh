//===- DeviceMath.cuh - what the CUDA kernels share -------------*- CUDA
//-*-===//
//
// Loads and stores of float tensors whatever their storage (f32 or bf16,
// computed on as fp32), launch geometry, and index arithmetic over shapes of
// up to kMaxRank dimensions passed to kernels by value.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_CUDA_DEVICEMATH_CUH
#define GALVATRON_RUNTIME_CUDA_DEVICEMATH_CUH

#include "DeviceKernels.h"

#include <cuda_bf16.h>

namespace galvatron::rt::cuda {

constexpr int kThreads = 256;
constexpr int kMaxRank = 8;

/// Blocks of `threads` covering n elements (at least one, at most 2^31-1:
/// kernels stride over what one grid does not reach).
inline unsigned blocksFor(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1            ? 1
                               : blocks > 65535 * 32 ? 65535 * 32
                                                     : blocks);
}

/// The error of the last launch (kernels are asynchronous: a fault inside
/// one shows at the next synchronisation).
inline cudaError_t launched() { return cudaGetLastError(); }

inline bool isDeviceFloat(DType d) {
  return d == DType::F32 || d == DType::BF16;
}

/// Element i of a float tensor, f32 or bf16, as fp32.
__device__ inline float loadF(const void *p, int64_t i, bool bf16) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i])
              : static_cast<const float *>(p)[i];
}
/// Stores v rounded once (to nearest, ties to even) where the tensor is
/// bf16.
__device__ inline void storeF(void *p, int64_t i, bool bf16, float v) {
  if (bf16)
    static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
  else
    static_cast<float *>(p)[i] = v;
}
/// Element i of an integer tensor (i64, i32 or bool).
__device__ inline int64_t loadI(const void *p, int64_t i, DType d) {
  switch (d) {
  case DType::I64:
    return static_cast<const int64_t *>(p)[i];
  case DType::I32:
    return static_cast<const int32_t *>(p)[i];
  case DType::Bool:
    return static_cast<const uint8_t *>(p)[i];
  default:
    return 0;
  }
}

/// A shape and one operand's element strides into it (0 along a broadcast
/// dimension), by value.
struct Indexer {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};

  /// The operand offset of the out-shaped flat index `i`.
  __host__ __device__ int64_t offset(int64_t i) const {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t c = i % dims[d];
      i /= dims[d];
      off += c * strides[d];
    }
    return off;
  }
};

/// The indexer reading `shape` (right-aligned, numpy broadcasting) as
/// `out`; false when the rank exceeds kMaxRank.
inline bool broadcastIndexer(const Shape &shape, const Shape &out,
                             Indexer &ix) {
  if (out.size() > static_cast<size_t>(kMaxRank) || shape.size() > out.size())
    return false;
  ix.rank = static_cast<int>(out.size());
  int64_t stride = 1;
  for (int d = ix.rank - 1; d >= 0; --d) {
    int s = d - (ix.rank - static_cast<int>(shape.size()));
    int64_t dim = s >= 0 ? shape[s] : 1;
    ix.dims[d] = out[d];
    ix.strides[d] = dim == 1 ? 0 : stride;
    stride *= dim;
  }
  return true;
}

/// Grid-stride loop over [0, n).
#define GALV_FOR_EACH(i, n)                                                    \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);    \
       i += int64_t(gridDim.x) * blockDim.x)

} // namespace galvatron::rt::cuda

#endif // GALVATRON_RUNTIME_CUDA_DEVICEMATH_CUH
