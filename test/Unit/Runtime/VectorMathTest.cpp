//===- VectorMathTest.cpp - the vectorising transcendentals against libm --===//
//
// runtime/lib/VectorMath.h against double-precision libm over a dense sweep
// and the edges (0, the branch points, the clamps, infinities, NaN), in
// units in the last place of the float result.
//
//===----------------------------------------------------------------------===//

#include "VectorMath.h"

#include <cmath>
#include <gtest/gtest.h>
#include <limits>

using namespace galvatron::rt;

namespace {

/// |got - want| in units of the float spacing at `want` (at least the
/// smallest normal's, so that values near 0 are not held to denormal
/// spacing).
double ulps(float got, double want) {
  float w = static_cast<float>(want);
  float spacing = std::nextafter(std::fabs(w), INFINITY) - std::fabs(w);
  spacing = std::max(spacing, std::numeric_limits<float>::min());
  return std::fabs(double(got) - want) / spacing;
}

/// The worst ulp error of f against ref over [lo, hi] in `steps` steps.
template <typename F, typename R>
double worstUlps(F f, R ref, double lo, double hi, int steps) {
  double worst = 0;
  for (int i = 0; i <= steps; ++i) {
    float x = static_cast<float>(lo + (hi - lo) * i / steps);
    worst = std::max(worst, ulps(f(x), ref(double(x))));
  }
  return worst;
}

TEST(VectorMathTest, ExpNonPositiveWithinTwoUlps) {
  auto ref = [](double x) { return std::exp(x); };
  EXPECT_LE(worstUlps(expNonPositive, ref, -87.0, 0.0, 200003), 2.0);
  EXPECT_EQ(expNonPositive(0.0f), 1.0f);
  EXPECT_EQ(expNonPositive(-88.0f), 0.0f);
  EXPECT_EQ(expNonPositive(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(expNonPositive(NAN)));
}

TEST(VectorMathTest, ExpWithinSixUlps) {
  auto ref = [](double x) { return std::exp(x); };
  EXPECT_LE(worstUlps(expVector, ref, -87.0, 0.0, 200003), 2.0);
  EXPECT_LE(worstUlps(expVector, ref, 0.0, 88.7, 200003), 6.0);
  EXPECT_EQ(expVector(0.0f), 1.0f);
  EXPECT_EQ(expVector(-INFINITY), 0.0f);
  EXPECT_EQ(expVector(89.0f), INFINITY);
  EXPECT_EQ(expVector(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(expVector(NAN)));
}

TEST(VectorMathTest, TanhWithinFourUlps) {
  auto ref = [](double x) { return std::tanh(x); };
  EXPECT_LE(worstUlps(tanhVector, ref, -20.0, 20.0, 400001), 4.0);
  // Both sides of the branch at |x| = 0.625, and the tiny end.
  EXPECT_LE(worstUlps(tanhVector, ref, 0.6, 0.65, 10001), 4.0);
  EXPECT_LE(worstUlps(tanhVector, ref, -1e-3, 1e-3, 10001), 4.0);
  EXPECT_EQ(tanhVector(0.0f), 0.0f);
  EXPECT_EQ(tanhVector(INFINITY), 1.0f);
  EXPECT_EQ(tanhVector(-INFINITY), -1.0f);
  EXPECT_EQ(tanhVector(100.0f), 1.0f);
  EXPECT_TRUE(std::isnan(tanhVector(NAN)));
}

TEST(VectorMathTest, SigmoidWithinFourUlps) {
  auto ref = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  EXPECT_LE(worstUlps(sigmoidVector, ref, -80.0, 80.0, 400001), 4.0);
  EXPECT_EQ(sigmoidVector(INFINITY), 1.0f);
  EXPECT_EQ(sigmoidVector(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(sigmoidVector(NAN)));
}

TEST(VectorMathTest, GeluTanhMatchesItsFormula) {
  auto ref = [](double x) {
    return 0.5 * x *
           (1.0 +
            std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  };
  // The argument is rounded to float before the tanh, so allow the error
  // that rounding carries through the slope; 0 where the result cancels.
  for (int i = 0; i <= 100000; ++i) {
    float x = static_cast<float>(-10.0 + 20.0 * i / 100000);
    double want = ref(x);
    EXPECT_NEAR(geluTanhVector(x), want, 4e-7 * std::max(1.0, std::fabs(want)))
        << "x = " << x;
  }
  EXPECT_EQ(geluTanhVector(0.0f), 0.0f);
  EXPECT_EQ(geluTanhVector(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(geluTanhVector(NAN)));
}

TEST(VectorMathTest, RowMaxOfEveryLength) {
  for (int n = 1; n <= 33; ++n) {
    std::vector<float> row(n);
    for (int i = 0; i < n; ++i)
      row[i] = static_cast<float>((i * 7919) % 31) - 15.0f;
    EXPECT_EQ(rowMax(row.data(), n), *std::max_element(row.begin(), row.end()))
        << "n = " << n;
  }
}

} // namespace
