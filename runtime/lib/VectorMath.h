//===- VectorMath.h - transcendental functions that vectorise ---*- C++ -*-===//
//
// A loop that calls std::exp or std::tanh runs one element at a time: libm
// has no vector entry points the compiler may use. These are plain
// arithmetic (polynomials, and 2^n built from its bits), so a loop over them
// vectorises; the files that include this header are compiled with
// -fno-trapping-math so that the clamps and selects vectorise too. Private
// to the runtime's kernels.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_LIB_VECTORMATH_H
#define GALVATRON_RUNTIME_LIB_VECTORMATH_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

/// Compiles a kernel three times (baseline x86-64, AVX2, AVX-512) and picks
/// the widest the CPU has when the program loads, so one binary runs
/// anywhere and still uses 16-float vectors where they exist. The files
/// that use it are compiled with -ffp-contract=off: no clone fuses a
/// multiply and an add, so each lane rounds as the baseline does (only the
/// order of vectorised sums differs between clones).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GALVATRON_VECTOR_CLONES                                                \
  __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define GALVATRON_VECTOR_CLONES
#endif

namespace galvatron::rt {

/// e^x for x <= 0 (a logit minus its row's maximum) within 2 ulp: 2^n
/// times Cephes' degree-6 polynomial on [-ln 2 / 2, ln 2 / 2], and 0 below
/// -87 (where float leaves its normal range); n is rounded by adding
/// 1.5 * 2^23. NaN stays NaN.
inline float expNonPositive(float x) {
  constexpr float log2e = 1.44269504088896341f, ln2Hi = 0.693359375f,
                  ln2Lo = -2.12194440e-4f, lowest = -87.0f,
                  shifter = 12582912.0f;
  constexpr uint32_t shifterBits = 0x4B400000;
  float t = std::max(x, lowest);
  float z = t * log2e + shifter;
  float n = z - shifter;
  float r = t - n * ln2Hi - n * ln2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  // Unsigned: for a NaN the bits are garbage, and the shift must not be
  // undefined behaviour (the NaN reaches the result through y).
  uint32_t bits;
  std::memcpy(&bits, &z, sizeof bits);
  bits = (bits - shifterBits + 127u) << 23;
  float twoToN;
  std::memcpy(&twoToN, &bits, sizeof twoToN);
  return x < lowest ? 0.0f : y * twoToN;
}

/// e^x for any x, vectorising (libm's expf does not): expNonPositive below
/// 0 (2 ulp); above, 1 / e^(-x/2)^2 (within 6 ulp), which reaches float's
/// largest finite result and gives +inf beyond it.
inline float expVector(float x) {
  float below = expNonPositive(std::min(x, 0.0f));
  float half = expNonPositive(-0.5f * std::max(x, 0.0f));
  float above = 1.0f / (half * half);
  return x <= 0.0f || x != x ? below : above;
}

/// tanh(x) within a few ulp: Cephes' odd polynomial below |x| = 0.625, and
/// (1 - e) / (1 + e) with e = e^(-2|x|) <= e^(-1.25) above, where neither
/// cancels.
inline float tanhVector(float x) {
  float a = std::fabs(x);
  float s = x * x;
  float p = -5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  float small = p * s * x + x;
  float e = expNonPositive(-2.0f * a);
  float large = std::copysign((1.0f - e) / (1.0f + e), x);
  return a < 0.625f ? small : large;
}

/// 1 / (1 + e^-x), from e^-|x| so that nothing overflows.
inline float sigmoidVector(float x) {
  float e = expNonPositive(-std::fabs(x));
  float inverse = 1.0f / (1.0f + e);
  return x >= 0.0f ? inverse : e * inverse;
}

/// The tanh form of GELU: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline float geluTanhVector(float x) {
  const float c = 0.797884560802865355f; // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhVector(c * (x + 0.044715f * x * x * x)));
}

/// The largest (Max) or smallest of `row[0, n)`, n > 0, in eight
/// independent lanes (a vector max; a scalar max waits on the previous one
/// at each element). std::max's order: a NaN counts only at row[0].
template <bool Max> inline float rowExtreme(const float *row, int64_t n) {
  constexpr int kLanes = 8;
  auto pick = [](float best, float v) {
    return Max ? std::max(best, v) : std::min(best, v);
  };
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, row[0]);
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int k = 0; k < kLanes; ++k)
      lanes[k] = pick(lanes[k], row[c + k]);
  for (; c < n; ++c)
    lanes[0] = pick(lanes[0], row[c]);
  float best = lanes[0];
  for (int k = 1; k < kLanes; ++k)
    best = pick(best, lanes[k]);
  return best;
}

/// The largest of `row[0, n)`; -inf when n is 0.
inline float rowMax(const float *row, int64_t n) {
  return n > 0 ? rowExtreme<true>(row, n)
               : -std::numeric_limits<float>::infinity();
}

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_LIB_VECTORMATH_H
