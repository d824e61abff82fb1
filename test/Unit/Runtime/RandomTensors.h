//===- RandomTensors.h - kernel test inputs and comparisons -----*- C++ -*-===//

#ifndef GALVATRON_TEST_UNIT_RUNTIME_RANDOMTENSORS_H
#define GALVATRON_TEST_UNIT_RUNTIME_RANDOMTENSORS_H

#include "galvatron/runtime/Tensor.h"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <random>

namespace galvatron::rt::test {

/// Standard normal f32 entries from a fixed seed.
inline Tensor random(Shape shape, unsigned seed) {
  Tensor t(DType::F32, std::move(shape));
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  for (int64_t i = 0; i < t.size(); ++i)
    t.f32()[i] = dist(gen);
  return t;
}

/// The largest elementwise difference of two tensors of one shape.
inline double maxDiff(const Tensor &a, const Tensor &b) {
  EXPECT_EQ(a.shape, b.shape);
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(a.at(i) - b.at(i)));
  return m;
}

} // namespace galvatron::rt::test

#endif // GALVATRON_TEST_UNIT_RUNTIME_RANDOMTENSORS_H
