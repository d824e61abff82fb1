//===- OptimizerKernels.h - fused optimizer updates -------------*- C++ -*-===//
//
// The AdamW update of one parameter in one pass over its four arrays, in
// place of the dozen elementwise instructions it decomposes into.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_OPTIMIZERKERNELS_H
#define GALVATRON_RUNTIME_OPTIMIZERKERNELS_H

#include "galvatron/runtime/Tensor.h"

#include <cstdint>
#include <vector>

namespace galvatron::rt {

struct AdamWSettings {
  double beta1, beta2, epsilon, weightDecay;
};

/// torch.optim.AdamW's step `step` (from 1) with learning rate `lr` over
/// `n` elements: m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
/// p' = p (1 - lr wd) - lr (m' / (1 - b1^step)) / (sqrt(v' / (1 - b2^step))
/// + eps). Outputs may not overlap inputs.
void adamwUpdate(const AdamWSettings &s, int64_t n, const float *param,
                 const float *grad, const float *m, const float *v, float lr,
                 float step, float *newParam, float *newM, float *newV);

/// The same on tensors: {param', m', v'}.
std::vector<Tensor> adamwUpdate(const AdamWSettings &s, const Tensor &param,
                                const Tensor &grad, const Tensor &m,
                                const Tensor &v, float lr, float step);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_OPTIMIZERKERNELS_H
