//===- OptimizerKernels.cpp - fused optimizer updates ---------------------===//

#include "galvatron/runtime/OptimizerKernels.h"

#include <cmath>

namespace galvatron::rt {

void adamwUpdate(const AdamWSettings &s, int64_t n, const float *param,
                 const float *grad, const float *m, const float *v, float lr,
                 float step, float *newParam, float *newM, float *newV) {
  // The per-step scalars in float, as the decomposed form computes them
  // (1 - exp(t ln beta)), so both forms round alike.
  const float b1 = static_cast<float>(s.beta1);
  const float b2 = static_cast<float>(s.beta2);
  const float bc1 =
      1.0f - std::exp(step * static_cast<float>(std::log(s.beta1)));
  const float bc2 =
      1.0f - std::exp(step * static_cast<float>(std::log(s.beta2)));
  const float decay = 1.0f - lr * static_cast<float>(s.weightDecay);
  const float eps = static_cast<float>(s.epsilon);
  const float oneMinusB1 = static_cast<float>(1 - s.beta1);
  const float oneMinusB2 = static_cast<float>(1 - s.beta2);
#pragma omp parallel for simd if (n >= 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    float mi = m[i] * b1 + g * oneMinusB1;
    float vi = v[i] * b2 + g * g * oneMinusB2;
    float denom = std::sqrt(vi / bc2) + eps;
    newM[i] = mi;
    newV[i] = vi;
    newParam[i] = param[i] * decay - mi / bc1 / denom * lr;
  }
}

std::vector<Tensor> adamwUpdate(const AdamWSettings &s, const Tensor &param,
                                const Tensor &grad, const Tensor &m,
                                const Tensor &v, float lr, float step) {
  std::vector<Tensor> out;
  for (int i = 0; i < 3; ++i)
    out.emplace_back(DType::F32, param.shape);
  adamwUpdate(s, param.size(), param.f32(), grad.f32(), m.f32(), v.f32(), lr,
              step, out[0].f32(), out[1].f32(), out[2].f32());
  return out;
}

} // namespace galvatron::rt
