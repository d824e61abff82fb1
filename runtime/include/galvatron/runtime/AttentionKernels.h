//===- AttentionKernels.h - tiled attention forward and backward -*- C++
//-*-===//
//
// Scaled dot-product attention and its gradient, one query block at a time:
// the scores and probabilities of a block of query rows are computed (and
// recomputed for the backward) in per-thread scratch of block x Sk floats, so
// memory grows linearly in the sequence length; nothing of size Sq x Sk is
// kept. The raw-pointer kernels write into caller-owned buffers.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_ATTENTIONKERNELS_H
#define GALVATRON_RUNTIME_ATTENTIONKERNELS_H

#include "galvatron/runtime/Tensor.h"

#include <array>
#include <cstdint>

namespace galvatron::rt {

/// q [batch, heads, sq, d], k [batch, kvHeads, sk, d],
/// v [batch, kvHeads, sk, dv], all contiguous; heads % kvHeads == 0.
struct AttentionDims {
  int64_t batch, heads, kvHeads, sq, sk, d, dv;
};

/// An optional mask read as if broadcast to [batch, heads, sq, sk]: element
/// (b, h, i, j) lies at b*strides[0] + h*strides[1] + i*strides[2] +
/// j*strides[3] (stride 0 along broadcast dimensions). Added to the scaled
/// scores when `add` is set; keeps the scores where nonzero when `keep` is.
struct AttentionMask {
  const float *add = nullptr;
  const uint8_t *keep = nullptr;
  std::array<int64_t, 4> strides = {0, 0, 0, 0};
};

/// out [batch, heads, sq, dv] = softmax(q k^T * scale + mask) v. `causal`
/// hides key j from query i when j > i + (sk - sq). Rows that see no key
/// give zeros.
void attentionForward(const AttentionDims &dims, const float *q, const float *k,
                      const float *v, const AttentionMask &mask, bool causal,
                      float scale, float *out);

/// The gradients of attentionForward's result with respect to q, k and v,
/// given its adjoint `dout` [batch, heads, sq, dv]: dq like q, dk like k and
/// dv like v (the query heads of a group summed into their key/value head).
void attentionBackward(const AttentionDims &dims, const float *q,
                       const float *k, const float *v, const float *dout,
                       const AttentionMask &mask, bool causal, float scale,
                       float *dq, float *dk, float *dv);

/// The executor's entry points: shapes from the tensors, the mask (bool or
/// f32, broadcastable to [B, H, Sq, Sk]) read in place.
void attention(const TensorView &q, const TensorView &k, const TensorView &v,
               const TensorView *mask, bool causal, double scale,
               TensorView &out);
void attentionGrad(const TensorView &q, const TensorView &k,
                   const TensorView &v, const TensorView &dout,
                   const TensorView *mask, bool causal, double scale,
                   TensorView &dq, TensorView &dk, TensorView &dv);
Tensor attention(const Tensor &q, const Tensor &k, const Tensor &v,
                 const Tensor *mask, bool causal, double scale);
/// {dq, dk, dv}.
std::array<Tensor, 3> attentionGrad(const Tensor &q, const Tensor &k,
                                    const Tensor &v, const Tensor &dout,
                                    const Tensor *mask, bool causal,
                                    double scale);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_ATTENTIONKERNELS_H
