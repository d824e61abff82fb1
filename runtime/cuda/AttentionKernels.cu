//===- AttentionKernels.cu - attention forward and backward on CUDA ------===//
//
// Scaled dot-product attention with the CPU kernels' semantics
// (runtime/lib/AttentionKernels.cpp), written for correctness first: one
// warp per query row (forward, dq) or per key row (dk, dv). Each lane keeps
// elements lane, lane + 32, ... of the rows it works on in registers, so the
// head dims are bounded by kMaxHeadDim; dot products end in a butterfly
// reduction, which leaves the same bits on every lane and keeps all control
// flow warp-uniform. Nothing of size Sq x Sk is stored: the forward runs an
// online softmax; the backward keeps three floats per query row (max,
// 1 / sum, rowsum(P * dP)) in stream-ordered scratch and recomputes P.
//
//===----------------------------------------------------------------------===//

#include "DeviceMath.cuh"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

namespace galvatron::rt::cuda {

namespace {

constexpr int kWarp = 32;
/// The largest d and dv: a lane holds kMaxHeadDim / 32 elements of a row.
constexpr int64_t kMaxHeadDim = 256;
constexpr unsigned kFullWarp = 0xffffffffu;
/// Per query row in the backward's scratch: max, 1 / sum, rowsum(P * dP).
constexpr int kStats = 3;

enum class MaskKind : uint8_t { None, Keep, Add };

/// The mask read as if broadcast to [B, H, Sq, Sk] (stride 0 along
/// broadcast dimensions).
struct Mask {
  const void *data = nullptr;
  MaskKind kind = MaskKind::None;
  bool bf16 = false;
  int64_t strides[4] = {0, 0, 0, 0};
};

/// What every kernel reads, by value. Each tensor carries its own bf16 flag.
struct Problem {
  const void *q = nullptr, *k = nullptr, *v = nullptr, *dout = nullptr;
  bool qBf16 = false, kBf16 = false, vBf16 = false, doutBf16 = false;
  int64_t batch = 0, heads = 0, kvHeads = 1, sq = 0, sk = 0, d = 0, dv = 0;
  float scale = 1.0f;
  bool causal = false;
  Mask mask;
};

__device__ inline float warpSum(float x) {
  // xor butterfly: partners add the same two values, so all lanes agree.
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    x += __shfl_xor_sync(kFullWarp, x, offset);
  return x;
}

/// This lane's share of row `row` of a [rows, n] tensor: x[c] is element
/// lane + 32 c (0 past n).
template <int C>
__device__ inline void loadRow(const void *t, bool bf16, int64_t row, int64_t n,
                               float (&x)[C]) {
  int lane = threadIdx.x % kWarp;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    int64_t e = lane + int64_t(c) * kWarp;
    x[c] = e < n ? loadF(t, row * n + e, bf16) : 0.0f;
  }
}

template <int C>
__device__ inline void storeRow(void *t, bool bf16, int64_t row, int64_t n,
                                const float (&x)[C], float factor) {
  int lane = threadIdx.x % kWarp;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    int64_t e = lane + int64_t(c) * kWarp;
    if (e < n)
      storeF(t, row * n + e, bf16, x[c] * factor);
  }
}

template <int C>
__device__ inline float dot(const float (&a)[C], const float (&b)[C]) {
  float s = 0.0f;
#pragma unroll
  for (int c = 0; c < C; ++c)
    s += a[c] * b[c];
  return warpSum(s);
}

/// Keys [0, seen) that query row i sees: causal hides j > i + (Sk - Sq).
__device__ inline int64_t keysSeen(const Problem &p, int64_t i) {
  if (!p.causal)
    return p.sk;
  int64_t seen = i + 1 + p.sk - p.sq;
  return seen < 0 ? 0 : seen > p.sk ? p.sk : seen;
}

/// The CPU's score: scale * q.k, plus an additive mask, then -inf where a
/// bool mask is false.
__device__ inline float maskedScore(const Problem &p, float qk, int64_t b,
                                    int64_t h, int64_t i, int64_t j) {
  float s = p.scale * qk;
  const Mask &m = p.mask;
  if (m.kind == MaskKind::None)
    return s;
  int64_t at =
      b * m.strides[0] + h * m.strides[1] + i * m.strides[2] + j * m.strides[3];
  if (m.kind == MaskKind::Add)
    return s + loadF(m.data, at, m.bf16);
  return loadI(m.data, at, DType::Bool) ? s : -INFINITY;
}

/// Query row `row` = (b, h, i) of [B, H, Sq], and its key/value head's first
/// row in [B, Hkv, Sk].
struct QueryRow {
  int64_t b, h, i, kvRow0;
};

__device__ inline QueryRow queryRow(const Problem &p, int64_t row) {
  QueryRow r;
  r.i = row % p.sq;
  int64_t bh = row / p.sq;
  r.b = bh / p.heads;
  r.h = bh % p.heads;
  int64_t group = p.heads / p.kvHeads;
  r.kvRow0 = (r.b * p.kvHeads + r.h / group) * p.sk;
  return r;
}

/// Warp-strided loop over [0, n): the whole warp takes the same `w`.
#define GALV_FOR_EACH_WARP(w, n)                                               \
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp;   \
       w < (n); w += int64_t(gridDim.x) * blockDim.x / kWarp)

/// out[row] = softmax(scores) v by an online softmax over the keys the row
/// sees. A row whose scores are all -inf (or that sees no key) gives zeros,
/// as on the CPU.
template <int C>
__global__ void forwardKernel(Problem p, void *out, bool outBf16) {
  int64_t rows = p.batch * p.heads * p.sq;
  GALV_FOR_EACH_WARP(row, rows) {
    QueryRow r = queryRow(p, row);
    float q[C], kj[C], vj[C], acc[C] = {};
    loadRow(p.q, p.qBf16, row, p.d, q);
    float max = -INFINITY, sum = 0.0f;
    int64_t seen = keysSeen(p, r.i);
    for (int64_t j = 0; j < seen; ++j) {
      loadRow(p.k, p.kBf16, r.kvRow0 + j, p.d, kj);
      float s = maskedScore(p, dot(q, kj), r.b, r.h, r.i, j);
      // A hidden key adds nothing (and -inf - -inf would be NaN).
      if (s == -INFINITY)
        continue;
      float newMax = fmaxf(max, s);
      float rescale = expf(max - newMax), e = expf(s - newMax);
      max = newMax;
      sum = sum * rescale + e;
      loadRow(p.v, p.vBf16, r.kvRow0 + j, p.dv, vj);
#pragma unroll
      for (int c = 0; c < C; ++c)
        acc[c] = acc[c] * rescale + e * vj[c];
    }
    storeRow(out, outBf16, row, p.dv, acc,
             max == -INFINITY ? 0.0f : 1.0f / sum);
  }
}

/// The backward's per-row pass: the softmax statistics of query row `row`
/// into stats[row] and dq[row] = scale * sum_j P_ij (dP_ij - delta_i) k_j,
/// with dP_ij = dout_i . v_j and delta_i = sum_j P_ij dP_ij (the CPU's
/// rowsum(P * dP)). Three sweeps over the keys: statistics, delta, dq.
template <int C>
__global__ void queryGradKernel(Problem p, float *stats, void *dq,
                                bool dqBf16) {
  int64_t rows = p.batch * p.heads * p.sq;
  int lane = threadIdx.x % kWarp;
  GALV_FOR_EACH_WARP(row, rows) {
    QueryRow r = queryRow(p, row);
    float q[C], g[C], kj[C], vj[C], acc[C] = {};
    loadRow(p.q, p.qBf16, row, p.d, q);
    loadRow(p.dout, p.doutBf16, row, p.dv, g);
    int64_t seen = keysSeen(p, r.i);
    float max = -INFINITY, sum = 0.0f;
    for (int64_t j = 0; j < seen; ++j) {
      loadRow(p.k, p.kBf16, r.kvRow0 + j, p.d, kj);
      float s = maskedScore(p, dot(q, kj), r.b, r.h, r.i, j);
      if (s == -INFINITY)
        continue;
      float newMax = fmaxf(max, s);
      sum = sum * expf(max - newMax) + expf(s - newMax);
      max = newMax;
    }
    float inv = max == -INFINITY ? 0.0f : 1.0f / sum;
    float delta = 0.0f;
    // A row that sees nothing has P = 0: dq is zero, delta unused.
    for (int pass = 0; pass < 2 && max != -INFINITY; ++pass) {
      for (int64_t j = 0; j < seen; ++j) {
        loadRow(p.k, p.kBf16, r.kvRow0 + j, p.d, kj);
        float s = maskedScore(p, dot(q, kj), r.b, r.h, r.i, j);
        if (s == -INFINITY)
          continue;
        float pij = expf(s - max) * inv;
        loadRow(p.v, p.vBf16, r.kvRow0 + j, p.dv, vj);
        float dp = dot(g, vj);
        if (pass == 0) {
          delta += pij * dp;
          continue;
        }
        float ds = pij * (dp - delta);
#pragma unroll
        for (int c = 0; c < C; ++c)
          acc[c] += ds * kj[c];
      }
    }
    storeRow(dq, dqBf16, row, p.d, acc, p.scale);
    if (lane == 0) {
      stats[row * kStats + 0] = max;
      stats[row * kStats + 1] = inv;
      stats[row * kStats + 2] = delta;
    }
  }
}

/// dk[key] = scale * sum_{h, i} dS_hij q_hi and dv[key] = sum_{h, i} P_hij
/// dout_hi over the query heads h of the key's group and the rows i that see
/// it, recomputing P and dS from queryGradKernel's statistics. One warp owns
/// a key row, so the group's sum needs no atomics.
template <int C>
__global__ void keyGradKernel(Problem p, const float *stats, void *dk,
                              bool dkBf16, void *dv, bool dvBf16) {
  int64_t keyRows = p.batch * p.kvHeads * p.sk;
  int64_t group = p.heads / p.kvHeads;
  GALV_FOR_EACH_WARP(key, keyRows) {
    int64_t j = key % p.sk, bkv = key / p.sk;
    int64_t b = bkv / p.kvHeads, kvHead = bkv % p.kvHeads;
    float kj[C], vj[C], qi[C], gi[C], dkAcc[C] = {}, dvAcc[C] = {};
    loadRow(p.k, p.kBf16, key, p.d, kj);
    loadRow(p.v, p.vBf16, key, p.dv, vj);
    for (int64_t h = kvHead * group; h < (kvHead + 1) * group; ++h) {
      for (int64_t i = 0; i < p.sq; ++i) {
        if (j >= keysSeen(p, i))
          continue;
        int64_t row = (b * p.heads + h) * p.sq + i;
        float max = stats[row * kStats + 0];
        if (max == -INFINITY)
          continue;
        loadRow(p.q, p.qBf16, row, p.d, qi);
        // Same operand order as queryGradKernel: the same bits of s.
        float s = maskedScore(p, dot(qi, kj), b, h, i, j);
        if (s == -INFINITY)
          continue;
        float pij = expf(s - max) * stats[row * kStats + 1];
        loadRow(p.dout, p.doutBf16, row, p.dv, gi);
        float ds = pij * (dot(gi, vj) - stats[row * kStats + 2]);
#pragma unroll
        for (int c = 0; c < C; ++c) {
          dvAcc[c] += pij * gi[c];
          dkAcc[c] += ds * qi[c];
        }
      }
    }
    storeRow(dk, dkBf16, key, p.d, dkAcc, p.scale);
    storeRow(dv, dvBf16, key, p.dv, dvAcc, 1.0f);
  }
}

#undef GALV_FOR_EACH_WARP

/// Calls launch(std::integral_constant<int, C>) with the fewest elements per
/// lane C (1, 2, 4 or 8) that cover `width` <= kMaxHeadDim.
template <typename Launch>
cudaError_t withChunks(int64_t width, Launch &&launch) {
  if (width <= kWarp)
    return launch(std::integral_constant<int, 1>{});
  if (width <= 2 * kWarp)
    return launch(std::integral_constant<int, 2>{});
  if (width <= 4 * kWarp)
    return launch(std::integral_constant<int, 4>{});
  return launch(std::integral_constant<int, 8>{});
}

/// The mask's kind and strides as broadcast to [B, H, Sq, Sk].
cudaError_t maskOf(const DeviceView *mask, const Problem &p, Mask &m) {
  if (!mask)
    return cudaSuccess;
  if (mask->dtype == DType::Bool)
    m.kind = MaskKind::Keep;
  else if (isDeviceFloat(mask->dtype))
    m.kind = MaskKind::Add;
  else
    return cudaErrorNotSupported;
  if (mask->rank() > 4)
    return cudaErrorInvalidValue;
  m.data = mask->data;
  m.bf16 = mask->dtype == DType::BF16;
  const int64_t target[4] = {p.batch, p.heads, p.sq, p.sk};
  int64_t stride = 1;
  for (int64_t d = mask->rank() - 1, slot = 3; d >= 0; --d, --slot) {
    int64_t dim = mask->shape[d];
    if (dim != 1 && dim != target[slot])
      return cudaErrorInvalidValue;
    m.strides[slot] = dim == 1 ? 0 : stride;
    stride *= dim;
  }
  return cudaSuccess;
}

/// The shapes and dtypes shared by both directions.
cudaError_t problemOf(const DeviceView &q, const DeviceView &k,
                      const DeviceView &v, const DeviceView *mask, bool causal,
                      double scale, Problem &p) {
  if (!isDeviceFloat(q.dtype) || !isDeviceFloat(k.dtype) ||
      !isDeviceFloat(v.dtype))
    return cudaErrorNotSupported;
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    return cudaErrorInvalidValue;
  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  p.qBf16 = q.dtype == DType::BF16;
  p.kBf16 = k.dtype == DType::BF16;
  p.vBf16 = v.dtype == DType::BF16;
  p.batch = q.shape[0];
  p.heads = q.shape[1];
  p.kvHeads = k.shape[1];
  p.sq = q.shape[2];
  p.sk = k.shape[2];
  p.d = q.shape[3];
  p.dv = v.shape[3];
  p.scale = static_cast<float>(scale);
  p.causal = causal;
  if (k.shape[0] != p.batch || v.shape[0] != p.batch ||
      v.shape[1] != p.kvHeads || p.kvHeads <= 0 || p.heads % p.kvHeads != 0 ||
      k.shape[3] != p.d || v.shape[2] != p.sk)
    return cudaErrorInvalidValue;
  if (p.d > kMaxHeadDim || p.dv > kMaxHeadDim)
    return cudaErrorNotSupported;
  return maskOf(mask, p, p.mask);
}

} // namespace

cudaError_t attention(const DeviceView &q, const DeviceView &k,
                      const DeviceView &v, const DeviceView *mask, bool causal,
                      double scale, DeviceView &out, cudaStream_t stream) {
  Problem p;
  if (cudaError_t err = problemOf(q, k, v, mask, causal, scale, p))
    return err;
  if (!isDeviceFloat(out.dtype))
    return cudaErrorNotSupported;
  if (out.shape != Shape({p.batch, p.heads, p.sq, p.dv}))
    return cudaErrorInvalidValue;
  int64_t rows = p.batch * p.heads * p.sq;
  if (rows == 0)
    return cudaSuccess;
  bool outBf16 = out.dtype == DType::BF16;
  return withChunks(std::max(p.d, p.dv), [&](auto chunks) {
    forwardKernel<decltype(chunks)::value>
        <<<blocksFor(rows * kWarp), kThreads, 0, stream>>>(p, out.data,
                                                           outBf16);
    return launched();
  });
}

cudaError_t attentionGrad(const DeviceView &q, const DeviceView &k,
                          const DeviceView &v, const DeviceView &dout,
                          const DeviceView *mask, bool causal, double scale,
                          DeviceView &dq, DeviceView &dk, DeviceView &dv,
                          cudaStream_t stream) {
  Problem p;
  if (cudaError_t err = problemOf(q, k, v, mask, causal, scale, p))
    return err;
  if (!isDeviceFloat(dout.dtype) || !isDeviceFloat(dq.dtype) ||
      !isDeviceFloat(dk.dtype) || !isDeviceFloat(dv.dtype))
    return cudaErrorNotSupported;
  if (dout.shape != Shape({p.batch, p.heads, p.sq, p.dv}) ||
      dq.shape != q.shape || dk.shape != k.shape || dv.shape != v.shape)
    return cudaErrorInvalidValue;
  p.dout = dout.data;
  p.doutBf16 = dout.dtype == DType::BF16;
  int64_t rows = p.batch * p.heads * p.sq;
  int64_t keyRows = p.batch * p.kvHeads * p.sk;
  float *stats = nullptr;
  if (rows > 0)
    if (cudaError_t err = cudaMallocAsync(
            reinterpret_cast<void **>(&stats),
            static_cast<size_t>(rows) * kStats * sizeof(float), stream))
      return err;
  cudaError_t err = withChunks(std::max(p.d, p.dv), [&](auto chunks) {
    constexpr int C = decltype(chunks)::value;
    if (rows > 0) {
      queryGradKernel<C><<<blocksFor(rows * kWarp), kThreads, 0, stream>>>(
          p, stats, dq.data, dq.dtype == DType::BF16);
      if (cudaError_t e = launched())
        return e;
    }
    // Also when Sq is 0: dk and dv are then zeros.
    if (keyRows > 0) {
      keyGradKernel<C><<<blocksFor(keyRows * kWarp), kThreads, 0, stream>>>(
          p, stats, dk.data, dk.dtype == DType::BF16, dv.data,
          dv.dtype == DType::BF16);
      if (cudaError_t e = launched())
        return e;
    }
    return cudaSuccess;
  });
  if (stats) {
    cudaError_t freed = cudaFreeAsync(stats, stream);
    if (err == cudaSuccess)
      err = freed;
  }
  return err;
}

} // namespace galvatron::rt::cuda
