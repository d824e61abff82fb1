//===- FusedKernels.h - fused backward kernels ------------------*- C++ -*-===//
//
// The loss's and the norms' gradients in one pass over each row, where
// autodiff's decomposed rules run a chain of elementwise and reduce
// kernels. The kernels read and write raw fp32 buffers the caller owns
// (arena slots); the Tensor overloads allocate their results.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_FUSEDKERNELS_H
#define GALVATRON_RUNTIME_FUSEDKERNELS_H

#include "galvatron/runtime/Tensor.h"

#include <cstdint>
#include <vector>

namespace galvatron::rt {

/// d logits of the softmax cross-entropy of `logits [rows, classes]`
/// against `labels [rows]`: (softmax(row) - one_hot(label)) * dloss, divided
/// by the number of labels other than `ignoreIndex` when `mean`; rows whose
/// label is `ignoreIndex` are zero. Labels lie in [0, classes) otherwise.
void crossEntropyGrad(const float *logits, const int64_t *labels, int64_t rows,
                      int64_t classes, int64_t ignoreIndex, bool mean,
                      float dloss, float *dlogits);

/// Layer norm's gradients from its input `x [rows, d]`, `scale [d]` and the
/// result's adjoint `dy`: `dx [rows, d]`, `dscale [d]` (the sum over rows of
/// dy * xhat) and, when not null, `dbias [d]` (the sum over rows of dy).
void layerNormGrad(const float *x, const float *scale, const float *dy,
                   int64_t rows, int64_t d, double eps, float *dx,
                   float *dscale, float *dbias);

/// RMS norm's gradients: `dx [rows, d]` and `dscale [d]` (the sum over rows
/// of dy * x / rms).
void rmsNormGrad(const float *x, const float *scale, const float *dy,
                 int64_t rows, int64_t d, double eps, float *dx, float *dscale);

/// GELU's gradient: dx = dy * gelu'(x) over `n` elements, the tanh form
/// (GPT-2's gelu_new) when `tanhForm`, else the erf form.
void geluGrad(const float *x, const float *dy, int64_t n, bool tanhForm,
              float *dx);

/// The same on tensors: logits [..., V], labels [...] (i64 or i32), dloss
/// rank 0.
Tensor crossEntropyGrad(const Tensor &logits, const Tensor &labels,
                        const Tensor &dloss, bool mean, int64_t ignoreIndex);
/// {dx, dscale, dbias}.
std::vector<Tensor> layerNormGrad(const Tensor &x, const Tensor &scale,
                                  const Tensor &dy, double eps);
Tensor geluGrad(const Tensor &x, const Tensor &dy, bool tanhForm);

// The same on views, writing their results in place (the executor's form).
void geluGrad(const TensorView &x, const TensorView &dy, bool tanhForm,
              TensorView &dx);
void crossEntropyGrad(const TensorView &logits, const TensorView &labels,
                      const TensorView &dloss, bool mean, int64_t ignoreIndex,
                      TensorView &out);
void layerNormGrad(const TensorView &x, const TensorView &scale,
                   const TensorView &dy, double eps, TensorView &dx,
                   TensorView &dscale, TensorView &dbias);
void rmsNormGrad(const TensorView &x, const TensorView &scale,
                 const TensorView &dy, double eps, TensorView &dx,
                 TensorView &dscale);
/// {dx, dscale}.
std::vector<Tensor> rmsNormGrad(const Tensor &x, const Tensor &scale,
                                const Tensor &dy, double eps);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_FUSEDKERNELS_H
