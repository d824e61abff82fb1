//===- AttentionKernels.cpp - tiled attention forward and backward --------===//
//
// Both directions walk blocks of kBlock query rows. A block's scaled,
// masked scores against the keys it may see go to per-thread scratch
// [kBlock, Sk] and become its softmax probabilities there; the forward
// multiplies them by v, the backward recomputes them (nothing of Sq x Sk is
// kept between the two) and forms dv, dp, ds, dq and dk from them with four
// more GEMMs. Causal blocks stop at the last key their last row sees.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/AttentionKernels.h"

#include "VectorMath.h"
#include "galvatron/runtime/Kernels.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

namespace galvatron::rt {

namespace {

/// Query rows per block: the scratch of a thread is kBlock x Sk floats.
constexpr int64_t kBlock = 64;

/// One block of query rows of one (batch, head) pair.
struct QueryBlock {
  int64_t batch, head, first, rows;
  /// Keys [0, keys) that some row of the block may see.
  int64_t keys;
};

QueryBlock queryBlock(const AttentionDims &dims, bool causal, int64_t batch,
                      int64_t head, int64_t block) {
  QueryBlock qb{batch, head, block * kBlock, 0, dims.sk};
  qb.rows = std::min(kBlock, dims.sq - qb.first);
  if (causal)
    qb.keys =
        std::clamp(qb.first + qb.rows + dims.sk - dims.sq, int64_t{0}, dims.sk);
  return qb;
}

/// p [rows, keys] = softmax over each row of the block's scaled, masked
/// scores; rows that see no key are zeros.
GALVATRON_VECTOR_CLONES
void probabilities(const AttentionDims &dims, const QueryBlock &qb,
                   const float *q, const float *k, const AttentionMask &mask,
                   bool causal, float scale, float *p) {
  int64_t group = dims.heads / dims.kvHeads, keys = qb.keys;
  const float *qRows =
      q + ((qb.batch * dims.heads + qb.head) * dims.sq + qb.first) * dims.d;
  const float *kHead =
      k + (qb.batch * dims.kvHeads + qb.head / group) * dims.sk * dims.d;
  gemm(false, true, qb.rows, keys, dims.d, scale, qRows, dims.d, kHead, dims.d,
       0.0f, p, keys);
  const float neg = -std::numeric_limits<float>::infinity();
  const std::array<int64_t, 4> &s = mask.strides;
  for (int64_t r = 0; r < qb.rows; ++r) {
    int64_t i = qb.first + r;
    float *row = p + r * keys;
    int64_t seen =
        causal ? std::clamp(i + 1 + dims.sk - dims.sq, int64_t{0}, keys) : keys;
    int64_t base = qb.batch * s[0] + qb.head * s[1] + i * s[2];
    if (mask.add)
      for (int64_t j = 0; j < seen; ++j)
        row[j] += mask.add[base + j * s[3]];
    if (mask.keep)
      for (int64_t j = 0; j < seen; ++j)
        if (!mask.keep[base + j * s[3]])
          row[j] = neg;
    float max = seen ? rowMax(row, seen) : neg;
    if (max == neg) {
      std::fill(row, row + keys, 0.0f);
      continue;
    }
    std::fill(row + seen, row + keys, 0.0f);
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < seen; ++j) {
      row[j] = expNonPositive(row[j] - max);
      sum += row[j];
    }
    float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < seen; ++j)
      row[j] *= inv;
  }
}

int64_t blocksOf(int64_t rows) { return (rows + kBlock - 1) / kBlock; }

/// Gradients of one (batch, query head): dq for its rows, dk and dv added to
/// its key/value head's. `p` and `dp` are [kBlock, Sk] scratch.
GALVATRON_VECTOR_CLONES
void headBackward(const AttentionDims &dims, const float *q, const float *k,
                  const float *v, const float *dout, const AttentionMask &mask,
                  bool causal, float scale, int64_t batch, int64_t head,
                  float *dq, float *dk, float *dv, float *p, float *dp) {
  int64_t group = dims.heads / dims.kvHeads;
  int64_t kvOffset = (batch * dims.kvHeads + head / group) * dims.sk;
  const float *kHead = k + kvOffset * dims.d, *vHead = v + kvOffset * dims.dv;
  float *dkHead = dk + kvOffset * dims.d, *dvHead = dv + kvOffset * dims.dv;
  for (int64_t block = 0; block < blocksOf(dims.sq); ++block) {
    QueryBlock qb = queryBlock(dims, causal, batch, head, block);
    int64_t row0 = (batch * dims.heads + head) * dims.sq + qb.first;
    const float *qRows = q + row0 * dims.d, *gRows = dout + row0 * dims.dv;
    float *dqRows = dq + row0 * dims.d;
    int64_t keys = qb.keys;
    if (keys == 0) {
      std::fill(dqRows, dqRows + qb.rows * dims.d, 0.0f);
      continue;
    }
    probabilities(dims, qb, q, k, mask, causal, scale, p);
    // dv += p^T g; dp = g v^T.
    gemm(true, false, keys, dims.dv, qb.rows, 1.0f, p, keys, gRows, dims.dv,
         1.0f, dvHead, dims.dv);
    gemm(false, true, qb.rows, keys, dims.dv, 1.0f, gRows, dims.dv, vHead,
         dims.dv, 0.0f, dp, keys);
    // ds = p * (dp - rowsum(dp * p)), in place of dp.
    for (int64_t r = 0; r < qb.rows; ++r) {
      const float *pr = p + r * keys;
      float *dr = dp + r * keys;
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < keys; ++j)
        dot += static_cast<double>(pr[j]) * dr[j];
      float rowDot = static_cast<float>(dot);
      for (int64_t j = 0; j < keys; ++j)
        dr[j] = pr[j] * (dr[j] - rowDot);
    }
    // dq = scale ds k; dk += scale ds^T q.
    gemm(false, false, qb.rows, dims.d, keys, scale, dp, keys, kHead, dims.d,
         0.0f, dqRows, dims.d);
    gemm(true, false, keys, dims.d, qb.rows, scale, dp, keys, qRows, dims.d,
         1.0f, dkHead, dims.d);
  }
}

/// The mask's strides as broadcast to [B, H, Sq, Sk] (0 where it has size 1
/// or no dimension).
AttentionMask maskOf(const TensorView *mask) {
  AttentionMask m;
  if (!mask)
    return m;
  assert(mask->rank() <= 4 &&
         (mask->dtype == DType::Bool || mask->dtype == DType::F32) &&
         "attention mask is neither bool nor f32 of rank 4 or less");
  if (mask->dtype == DType::F32)
    m.add = mask->f32();
  else
    m.keep = mask->b8();
  int64_t stride = 1;
  for (int64_t d = mask->rank() - 1, slot = 3; d >= 0; --d, --slot) {
    m.strides[slot] = mask->shape[d] == 1 ? 0 : stride;
    stride *= mask->shape[d];
  }
  return m;
}

AttentionDims dimsOf(const TensorView &q, const TensorView &k,
                     const TensorView &v) {
  assert(q.dtype == DType::F32 && k.dtype == DType::F32 &&
         v.dtype == DType::F32 && q.rank() == 4 && k.rank() == 4 &&
         v.rank() == 4 && "attention takes f32 q, k, v of rank 4");
  AttentionDims dims{q.shape[0], q.shape[1], k.shape[1], q.shape[2],
                     k.shape[2], q.shape[3], v.shape[3]};
  assert(k.shape[0] == dims.batch && v.shape[0] == dims.batch &&
         "attention batches differ");
  assert(dims.kvHeads > 0 && dims.heads % dims.kvHeads == 0 &&
         v.shape[1] == dims.kvHeads &&
         "attention heads do not group into key/value heads");
  assert(k.shape[3] == dims.d && v.shape[2] == dims.sk &&
         "attention key or value shapes differ from the query's");
  return dims;
}

} // namespace

void attentionForward(const AttentionDims &dims, const float *q, const float *k,
                      const float *v, const AttentionMask &mask, bool causal,
                      float scale, float *out) {
  int64_t group = dims.heads / dims.kvHeads, blocks = blocksOf(dims.sq);
  int64_t tasks = dims.batch * dims.heads * blocks;
  // One query block of one (batch, head) per task; causal blocks differ in
  // cost, hence dynamic scheduling.
#pragma omp parallel if (tasks > 1)
  {
    std::vector<float> p(kBlock * dims.sk);
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tasks; ++t) {
      int64_t block = t % blocks, bh = t / blocks;
      QueryBlock qb =
          queryBlock(dims, causal, bh / dims.heads, bh % dims.heads, block);
      float *o = out + (bh * dims.sq + qb.first) * dims.dv;
      if (qb.keys == 0) {
        std::fill(o, o + qb.rows * dims.dv, 0.0f);
        continue;
      }
      probabilities(dims, qb, q, k, mask, causal, scale, p.data());
      int64_t kvHead = qb.batch * dims.kvHeads + qb.head / group;
      gemm(false, false, qb.rows, dims.dv, qb.keys, 1.0f, p.data(), qb.keys,
           v + kvHead * dims.sk * dims.dv, dims.dv, 0.0f, o, dims.dv);
    }
  }
}

void attentionBackward(const AttentionDims &dims, const float *q,
                       const float *k, const float *v, const float *dout,
                       const AttentionMask &mask, bool causal, float scale,
                       float *dq, float *dk, float *dv) {
  int64_t group = dims.heads / dims.kvHeads;
  int64_t tasks = dims.batch * dims.kvHeads;
  // One (batch, key/value head) per task: the query heads of its group add
  // into its dk and dv without racing other tasks.
#pragma omp parallel if (tasks > 1)
  {
    std::vector<float> p(kBlock * dims.sk), dp(kBlock * dims.sk);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      std::fill(dk + t * dims.sk * dims.d, dk + (t + 1) * dims.sk * dims.d,
                0.0f);
      std::fill(dv + t * dims.sk * dims.dv, dv + (t + 1) * dims.sk * dims.dv,
                0.0f);
      int64_t batch = t / dims.kvHeads, kvHead = t % dims.kvHeads;
      for (int64_t h = kvHead * group; h < (kvHead + 1) * group; ++h)
        headBackward(dims, q, k, v, dout, mask, causal, scale, batch, h, dq, dk,
                     dv, p.data(), dp.data());
    }
  }
}

void attention(const TensorView &q, const TensorView &k, const TensorView &v,
               const TensorView *mask, bool causal, double scale,
               TensorView &out) {
  AttentionDims dims = dimsOf(q, k, v);
  assert(out.dtype == DType::F32 &&
         out.shape == Shape({dims.batch, dims.heads, dims.sq, dims.dv}) &&
         "attention result shape differs");
  attentionForward(dims, q.f32(), k.f32(), v.f32(), maskOf(mask), causal,
                   static_cast<float>(scale), out.f32());
}

void attentionGrad(const TensorView &q, const TensorView &k,
                   const TensorView &v, const TensorView &dout,
                   const TensorView *mask, bool causal, double scale,
                   TensorView &dq, TensorView &dk, TensorView &dv) {
  AttentionDims dims = dimsOf(q, k, v);
  assert(dout.dtype == DType::F32 &&
         dout.shape == Shape({dims.batch, dims.heads, dims.sq, dims.dv}) &&
         "attention gradient is not shaped like the attention's result");
  assert(dq.shape == q.shape && dk.shape == k.shape && dv.shape == v.shape &&
         "attention gradients are not shaped like q, k, v");
  attentionBackward(dims, q.f32(), k.f32(), v.f32(), dout.f32(), maskOf(mask),
                    causal, static_cast<float>(scale), dq.f32(), dk.f32(),
                    dv.f32());
}

Tensor attention(const Tensor &q, const Tensor &k, const Tensor &v,
                 const Tensor *mask, bool causal, double scale) {
  AttentionDims dims = dimsOf(q, k, v);
  Tensor out(DType::F32, {dims.batch, dims.heads, dims.sq, dims.dv});
  std::optional<TensorView> m;
  if (mask)
    m.emplace(*mask);
  TensorView o(out);
  attention(q, k, v, m ? &*m : nullptr, causal, scale, o);
  return out;
}

std::array<Tensor, 3> attentionGrad(const Tensor &q, const Tensor &k,
                                    const Tensor &v, const Tensor &dout,
                                    const Tensor *mask, bool causal,
                                    double scale) {
  std::array<Tensor, 3> grads = {Tensor(DType::F32, q.shape),
                                 Tensor(DType::F32, k.shape),
                                 Tensor(DType::F32, v.shape)};
  std::optional<TensorView> m;
  if (mask)
    m.emplace(*mask);
  TensorView dq(grads[0]), dk(grads[1]), dv(grads[2]);
  attentionGrad(q, k, v, dout, m ? &*m : nullptr, causal, scale, dq, dk, dv);
  return grads;
}

} // namespace galvatron::rt
