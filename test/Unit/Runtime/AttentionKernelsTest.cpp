//===- AttentionKernelsTest.cpp - tiled attention against naive loops -----===//
//
// The blocked forward and backward kernels against a direct double-precision
// composition (scores, mask, softmax, products) on random inputs whose sizes
// are not multiples of the query block: several blocks, Sq != Sk, causal or
// not, bool and additive masks that broadcast, grouped query heads and rows
// that see no key.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/AttentionKernels.h"

#include "RandomTensors.h"

#include <cmath>
#include <gtest/gtest.h>
#include <limits>
#include <random>

using namespace galvatron::rt;
using galvatron::rt::test::maxDiff;
using galvatron::rt::test::random;

namespace {

struct Case {
  int64_t b, h, hkv, sq, sk, d, dv;
  bool causal;
};

/// The mask element (b, h, i, j) of a mask broadcast to [B, H, Sq, Sk].
double maskAt(const Tensor &mask, const int64_t (&idx)[4], bool &visible) {
  int64_t offset = 0, stride = 1;
  for (int64_t d = mask.rank() - 1, f = 3; d >= 0; --d, --f) {
    if (mask.shape[d] != 1)
      offset += idx[f] * stride;
    stride *= mask.shape[d];
  }
  if (mask.dtype == DType::Bool) {
    visible = visible && mask.b8()[offset] != 0;
    return 0;
  }
  return mask.f32()[offset];
}

/// Naive attention and its gradients in double precision.
struct Reference {
  Tensor out, dq, dk, dv;
};

Reference naive(const Case &c, const Tensor &q, const Tensor &k,
                const Tensor &v, const Tensor &g, const Tensor *mask,
                double scale) {
  Reference r{Tensor::zeros(DType::F32, {c.b, c.h, c.sq, c.dv}),
              Tensor::zeros(DType::F32, q.shape),
              Tensor::zeros(DType::F32, k.shape),
              Tensor::zeros(DType::F32, v.shape)};
  int64_t group = c.h / c.hkv;
  std::vector<double> p(c.sk), dp(c.sk);
  for (int64_t bi = 0; bi < c.b; ++bi)
    for (int64_t hi = 0; hi < c.h; ++hi) {
      int64_t qh = bi * c.h + hi, kh = bi * c.hkv + hi / group;
      const float *Q = q.f32() + qh * c.sq * c.d,
                  *K = k.f32() + kh * c.sk * c.d;
      const float *V = v.f32() + kh * c.sk * c.dv;
      const float *G = g.f32() + qh * c.sq * c.dv;
      for (int64_t i = 0; i < c.sq; ++i) {
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < c.sk; ++j) {
          bool visible = !c.causal || j <= i + (c.sk - c.sq);
          double s = 0;
          for (int64_t e = 0; e < c.d; ++e)
            s += double(Q[i * c.d + e]) * K[j * c.d + e];
          s *= scale;
          const int64_t idx[4] = {bi, hi, i, j};
          if (mask)
            s += maskAt(*mask, idx, visible);
          p[j] = visible ? s : -std::numeric_limits<double>::infinity();
          max = std::max(max, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < c.sk; ++j) {
          p[j] = std::isinf(max) ? 0 : std::exp(p[j] - max);
          sum += p[j];
        }
        for (int64_t j = 0; j < c.sk; ++j)
          p[j] = sum > 0 ? p[j] / sum : 0;
        double rowDot = 0;
        for (int64_t j = 0; j < c.sk; ++j) {
          dp[j] = 0;
          for (int64_t e = 0; e < c.dv; ++e) {
            r.out.f32()[(qh * c.sq + i) * c.dv + e] += p[j] * V[j * c.dv + e];
            r.dv.f32()[(kh * c.sk + j) * c.dv + e] += p[j] * G[i * c.dv + e];
            dp[j] += double(G[i * c.dv + e]) * V[j * c.dv + e];
          }
          rowDot += p[j] * dp[j];
        }
        for (int64_t j = 0; j < c.sk; ++j) {
          double ds = p[j] * (dp[j] - rowDot) * scale;
          for (int64_t e = 0; e < c.d; ++e) {
            r.dq.f32()[(qh * c.sq + i) * c.d + e] += ds * K[j * c.d + e];
            r.dk.f32()[(kh * c.sk + j) * c.d + e] += ds * Q[i * c.d + e];
          }
        }
      }
    }
  return r;
}

void expectMatches(const Case &c, const Tensor *mask, unsigned seed) {
  Tensor q = random({c.b, c.h, c.sq, c.d}, seed),
         k = random({c.b, c.hkv, c.sk, c.d}, seed + 1),
         v = random({c.b, c.hkv, c.sk, c.dv}, seed + 2),
         g = random({c.b, c.h, c.sq, c.dv}, seed + 3);
  double scale = 1.0 / std::sqrt(double(c.d));
  Reference want = naive(c, q, k, v, g, mask, scale);
  Tensor out = attention(q, k, v, mask, c.causal, scale);
  std::array<Tensor, 3> grads =
      attentionGrad(q, k, v, g, mask, c.causal, scale);
  EXPECT_LT(maxDiff(out, want.out), 1e-4);
  EXPECT_LT(maxDiff(grads[0], want.dq), 1e-4);
  EXPECT_LT(maxDiff(grads[1], want.dk), 1e-4);
  EXPECT_LT(maxDiff(grads[2], want.dv), 1e-4);
}

TEST(AttentionKernels, UnmaskedGroupedHeadsOddSizes) {
  expectMatches({2, 6, 2, 37, 53, 24, 24, false}, nullptr, 1);
  // Several query blocks, one not full; v narrower than q and k.
  expectMatches({1, 4, 4, 150, 97, 16, 12, false}, nullptr, 5);
}

TEST(AttentionKernels, CausalAlignsQueriesToTheLastKeys) {
  expectMatches({2, 6, 2, 37, 53, 24, 24, true}, nullptr, 9);
  // Causal blocks stop at different keys; Sq = Sk.
  expectMatches({1, 2, 1, 150, 150, 8, 8, true}, nullptr, 13);
}

TEST(AttentionKernels, BoolPaddingMaskBroadcastsOverHeadsAndQueries) {
  Case c{2, 6, 2, 37, 53, 24, 24, true};
  Tensor mask = Tensor::zeros(DType::Bool, {2, 1, 1, 53});
  for (int64_t j = 0; j < 53; ++j) {
    mask.b8()[j] = j % 3 != 1;
    mask.b8()[53 + j] = j >= 20; // batch 1: early queries see no key
  }
  expectMatches(c, &mask, 17);
}

TEST(AttentionKernels, AdditiveMaskWithFullyMaskedRows) {
  Case c{2, 6, 2, 70, 53, 24, 24, false};
  Tensor mask = random({1, 6, 70, 53}, 21);
  const float neg = -std::numeric_limits<float>::infinity();
  for (int64_t h = 0; h < 6; ++h)
    for (int64_t j = 0; j < 53; ++j) {
      mask.f32()[(h * 70 + 3) * 53 + j] = neg;  // row 3 sees nothing
      mask.f32()[(h * 70 + 66) * 53 + j] = neg; // nor row 66 (2nd block)
      if (j % 5 == 0)
        mask.f32()[(h * 70 + 10) * 53 + j] = neg;
    }
  expectMatches(c, &mask, 25);
  // A [Sq, Sk] bool mask with an empty row, grouped and causal.
  Tensor keep = Tensor::zeros(DType::Bool, {70, 80});
  for (int64_t i = 0; i < 70; ++i)
    for (int64_t j = 0; j < 80; ++j)
      keep.b8()[i * 80 + j] = i != 41 && (i + j) % 7 != 0;
  expectMatches({1, 6, 3, 70, 80, 16, 16, true}, &keep, 29);
}

// One (batch, key/value head): the backward's GEMMs run outside a parallel
// region, and dk's (1100 x 256 x 64) is split across threads with A
// transposed.
TEST(AttentionKernels, SingleTaskSplitsLargeProducts) {
  expectMatches({1, 1, 1, 64, 1100, 256, 8, false}, nullptr, 33);
}

} // namespace
