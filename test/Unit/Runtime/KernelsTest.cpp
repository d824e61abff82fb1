//===- KernelsTest.cpp - CPU reference kernels against direct formulas ----===//

#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/AttentionKernels.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/OptimizerKernels.h"

#include "RandomTensors.h"

#include <cmath>
#include <cstdio>
#include <gtest/gtest.h>
#include <random>
#include <unistd.h>

using namespace galvatron::rt;
using galvatron::rt::test::maxDiff;
using galvatron::rt::test::random;

namespace {

// bf16 narrowing rounds to nearest, ties to even, as CUDA's
// __float2bfloat16_rn does; widening is exact.
TEST(Kernels, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: even (1) wins; 1 + 3 * 2^-8
  // halfway between 1 + 2^-7 and 1 + 2^-6: even (1 + 2^-6) wins.
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 0x1p-8f)), 1.0f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 0x1p-8f + 0x1p-20f)),
            1.0f + 0x1p-7f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
  EXPECT_EQ(bf16ToFloat(floatToBf16(INFINITY)), INFINITY);
  // The largest float rounds up past bf16's largest finite value.
  EXPECT_EQ(bf16ToFloat(floatToBf16(3.4028235e38f)), INFINITY);
  Tensor x(DType::F32, {3});
  x.f32()[0] = 0.1f, x.f32()[1] = -3.0f, x.f32()[2] = 1e-3f;
  Tensor narrow = cast(x, DType::BF16);
  ASSERT_EQ(narrow.byteSize(), 6u);
  Tensor wide = cast(narrow, DType::F32);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(wide.f32()[i], bf16ToFloat(floatToBf16(x.f32()[i])));
    EXPECT_NEAR(wide.f32()[i], x.f32()[i], std::abs(x.f32()[i]) * 0x1p-8);
  }
}

TEST(Kernels, BatchedMatmulBroadcastsAgainstNaiveLoops) {
  Tensor a = random({2, 3, 4, 5}, 1), b = random({3, 5, 6}, 2);
  Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape, (Shape{2, 3, 4, 6}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 6; ++j) {
          double s = 0;
          for (int64_t k = 0; k < 5; ++k)
            s += a.f32()[((n * 3 + h) * 4 + i) * 5 + k] *
                 b.f32()[(h * 5 + k) * 6 + j];
          EXPECT_NEAR(c.f32()[((n * 3 + h) * 4 + i) * 6 + j], s, 1e-5);
        }
}

// Transpose flags read an operand as its last two dimensions swapped: the
// same result as an explicit transpose, on GEMMs small enough for one thread
// and large enough to be split into row blocks (odd sizes, so the blocks are
// uneven), with broadcast batches.
TEST(Kernels, MatmulTransposeFlagsEqualExplicitTransposes) {
  struct Case {
    Shape a, b; // as stored
    bool transA, transB;
  };
  const Case cases[] = {
      {{3, 7, 5}, {3, 7, 4}, true, false},
      {{2, 5, 7}, {1, 6, 7}, false, true},
      {{7, 5}, {6, 7}, true, true},
      {{513, 129}, {513, 301}, true, false}, // split across threads
      {{129, 513}, {301, 513}, false, true},
  };
  unsigned seed = 40;
  for (const Case &c : cases) {
    Tensor a = random(c.a, seed++), b = random(c.b, seed++);
    auto swapLast = [](const Tensor &t) {
      std::vector<int64_t> perm;
      for (int64_t d = 0; d < t.rank(); ++d)
        perm.push_back(d);
      std::swap(perm[t.rank() - 2], perm[t.rank() - 1]);
      return transpose(t, perm);
    };
    Tensor expected =
        matmul(c.transA ? swapLast(a) : a, c.transB ? swapLast(b) : b);
    Tensor flagged = matmul(a, b, c.transA, c.transB);
    ASSERT_EQ(flagged.shape, expected.shape);
    EXPECT_LT(maxDiff(flagged, expected), 1e-4)
        << shapeString(c.a) << " x " << shapeString(c.b);
  }
}

// The fused AdamW step equals galv-adamw's unfused arithmetic (the same
// elementwise kernels, instruction by instruction) at steps 1 and 7, over a
// size that is not a multiple of any vector width and one large enough to
// be split across threads.
TEST(Kernels, FusedAdamWEqualsItsElementwiseComposition) {
  const AdamWSettings s{0.9, 0.999, 1e-8, 0.01};
  auto scalar = [](double v) {
    Tensor t(DType::F32, {});
    t.f32()[0] = static_cast<float>(v);
    return t;
  };
  for (int64_t n : {int64_t(37), int64_t(70001)})
    for (float step : {1.0f, 7.0f}) {
      Tensor p = random({n}, 50), g = random({n}, 51), m = random({n}, 52);
      Tensor v = unary(Unary::Abs, random({n}, 53));
      float lr = 3e-3f;
      std::vector<Tensor> fused = adamwUpdate(s, p, g, m, v, lr, step);
      auto mul = [](const Tensor &a, const Tensor &b) {
        return binary(Binary::Mul, a, b);
      };
      auto add = [](const Tensor &a, const Tensor &b) {
        return binary(Binary::Add, a, b);
      };
      auto div = [](const Tensor &a, const Tensor &b) {
        return binary(Binary::Div, a, b);
      };
      Tensor t = scalar(step), lrT = scalar(lr);
      Tensor bc1 = binary(Binary::Sub, scalar(1),
                          unary(Unary::Exp, mul(t, scalar(std::log(0.9)))));
      Tensor bc2 = binary(Binary::Sub, scalar(1),
                          unary(Unary::Exp, mul(t, scalar(std::log(0.999)))));
      Tensor decay = binary(Binary::Sub, scalar(1), mul(lrT, scalar(0.01)));
      Tensor m2 = add(mul(m, scalar(0.9)), mul(g, scalar(1 - 0.9)));
      Tensor v2 = add(mul(v, scalar(0.999)), mul(mul(g, g), scalar(1 - 0.999)));
      Tensor denom = add(unary(Unary::Sqrt, div(v2, bc2)), scalar(1e-8));
      Tensor p2 = binary(Binary::Sub, mul(p, decay),
                         mul(div(div(m2, bc1), denom), lrT));
      EXPECT_LT(maxDiff(fused[1], m2), 1e-6) << n;
      EXPECT_LT(maxDiff(fused[2], v2), 1e-6) << n;
      EXPECT_LT(maxDiff(fused[0], p2), 1e-6) << n;
    }
}

#ifndef NDEBUG
// Debug builds: a kernel called against its assumptions stops at an assert
// naming it (Release builds compile the asserts out; the executor checks
// plans and inputs before any kernel runs).
TEST(KernelsDeathTest, AssertsStopCallsAgainstTheirAssumptions) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Tensor table = random({4, 2}, 6);
  Tensor ids = Tensor::zeros(DType::I64, {3});
  ids.i64()[1] = 4;
  EXPECT_DEATH(embedding(table, ids), "embedding id outside the table");
  EXPECT_DEATH(gather(table, ids, 0), "gather index out of range");
  EXPECT_DEATH(matmul(random({2, 3}, 7), random({2, 3}, 8)),
               "matmul contraction dimensions differ");
  EXPECT_DEATH(softmax(table, 2), "axis in range");
  EXPECT_DEATH(binary(Binary::Add, random({2, 3}, 9), random({2, 4}, 10)),
               "shapes do not broadcast");
  EXPECT_DEATH(transpose(table, {0, 0}), "permutation");
}
#endif

TEST(Kernels, LinearLayoutsAgree) {
  Tensor x = random({2, 3, 4}, 3), w = random({5, 4}, 4), bias = random({5}, 5);
  Tensor outIn = linear(x, w, &bias, /*outIn=*/true);
  Tensor inOut = linear(x, transpose(w, {1, 0}), &bias, /*outIn=*/false);
  EXPECT_LT(maxDiff(outIn, inOut), 1e-6);
  Tensor viaMatmul = binary(Binary::Add, matmul(x, transpose(w, {1, 0})), bias);
  EXPECT_LT(maxDiff(outIn, viaMatmul), 1e-5);
}

// Large enough that gemm() splits the rows across threads, with a row count
// that does not divide evenly, and large enough that elementwise loops run in
// parallel.
TEST(Kernels, ThreadedKernelsMatchNaiveLoops) {
  const int64_t m = 301, n = 256, k = 256;
  Tensor x = random({m, k}, 11), w = random({n, k}, 12), bias = random({n}, 13);
  Tensor y = linear(x, w, &bias, /*outIn=*/true);
  Tensor yInOut = linear(x, transpose(w, {1, 0}), &bias, /*outIn=*/false);
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias.f32()[j];
      for (int64_t p = 0; p < k; ++p)
        s += double(x.f32()[i * k + p]) * w.f32()[j * k + p];
      worst = std::max(worst, std::fabs(y.f32()[i * n + j] - s));
    }
  EXPECT_LT(worst, 1e-3);
  EXPECT_LT(maxDiff(y, yInOut), 1e-3);

  Tensor sum = binary(Binary::Add, y, bias);
  Tensor act = unary(Unary::Silu, sum);
  for (int64_t i = 0; i < sum.size(); ++i) {
    float v = y.f32()[i] + bias.f32()[i % n];
    ASSERT_EQ(sum.f32()[i], v);
    ASSERT_FLOAT_EQ(act.f32()[i], v / (1.0f + std::exp(-v)));
  }
}

// Adjacent axes take the blocked loop, others the general one; both must
// agree with a direct sum, max and mean over every axis set of a rank-3
// tensor large enough to run in parallel.
TEST(Kernels, ReduceMatchesNaiveLoops) {
  const Shape shape = {5, 70, 67};
  Tensor x = random(shape, 14);
  for (std::vector<int64_t> axes :
       {std::vector<int64_t>{0}, {1}, {2}, {0, 1}, {1, 2}, {0, 2}, {0, 1, 2}})
    for (Reduction kind :
         {Reduction::Sum, Reduction::Max, Reduction::Min, Reduction::Mean}) {
      Tensor r = reduce(kind, x, axes, /*keepDims=*/true);
      Shape kept = shape;
      for (int64_t a : axes)
        kept[a] = 1;
      ASSERT_EQ(r.shape, kept);
      std::vector<double> acc(r.size(), kind == Reduction::Max   ? -1e300
                                        : kind == Reduction::Min ? 1e300
                                                                 : 0.0);
      int64_t per = x.size() / r.size();
      for (int64_t i = 0; i < shape[0]; ++i)
        for (int64_t j = 0; j < shape[1]; ++j)
          for (int64_t k = 0; k < shape[2]; ++k) {
            int64_t at[3] = {i, j, k};
            int64_t o = 0;
            for (int d = 0; d < 3; ++d)
              o = o * kept[d] + (kept[d] == 1 ? 0 : at[d]);
            double v = x.f32()[(i * shape[1] + j) * shape[2] + k];
            acc[o] = kind == Reduction::Max   ? std::max(acc[o], v)
                     : kind == Reduction::Min ? std::min(acc[o], v)
                                              : acc[o] + v;
          }
      for (int64_t o = 0; o < r.size(); ++o)
        EXPECT_NEAR(r.f32()[o], kind == Reduction::Mean ? acc[o] / per : acc[o],
                    1e-4)
            << "axes " << axes.size() << " kind " << static_cast<int>(kind);
    }
}

// Every broadcast of two rank-3 shapes whose dimensions are each full or 1
// (rows against columns, a bias, a middle axis, a scalar side), for f32
// arithmetic and for f32 and i64 comparisons, against the element's own
// numpy index arithmetic. Large enough to run the row loops in parallel.
TEST(Kernels, BroadcastBinaryMatchesNaiveLoops) {
  const Shape full = {3, 40, 150};
  auto shapeOf = [&](int mask) {
    Shape s = full;
    for (int d = 0; d < 3; ++d)
      if (mask & (1 << d))
        s[d] = 1;
    return s;
  };
  auto offset = [&](const Shape &s, int64_t i, int64_t j, int64_t k) {
    return ((s[0] == 1 ? 0 : i) * s[1] + (s[1] == 1 ? 0 : j)) * s[2] +
           (s[2] == 1 ? 0 : k);
  };
  for (int maskA = 0; maskA < 8; ++maskA)
    for (int maskB = 0; maskB < 8; ++maskB) {
      if ((maskA & maskB) == 7)
        continue; // Both [1, 1, 1]: nothing broadcast.
      Shape sa = shapeOf(maskA), sb = shapeOf(maskB);
      Tensor a = random(sa, 20 + maskA), b = random(sb, 40 + maskB);
      Tensor ia(DType::I64, sa), ib(DType::I64, sb);
      for (int64_t i = 0; i < ia.size(); ++i)
        ia.i64()[i] = int64_t(i % 7);
      for (int64_t i = 0; i < ib.size(); ++i)
        ib.i64()[i] = int64_t(i % 5);
      Tensor sub = binary(Binary::Sub, a, b), div = binary(Binary::Div, a, b);
      Tensor lt = binary(Binary::Lt, a, b), eq = binary(Binary::Eq, ia, ib);
      Shape out = broadcastShape(sa, sb);
      ASSERT_EQ(sub.shape, out);
      for (int64_t i = 0; i < out[0]; ++i)
        for (int64_t j = 0; j < out[1]; ++j)
          for (int64_t k = 0; k < out[2]; ++k) {
            int64_t o = offset(out, i, j, k), p = offset(sa, i, j, k),
                    q = offset(sb, i, j, k);
            float x = a.f32()[p], y = b.f32()[q];
            ASSERT_EQ(sub.f32()[o], x - y) << maskA << " " << maskB;
            ASSERT_EQ(div.f32()[o], x / y) << maskA << " " << maskB;
            ASSERT_EQ(lt.b8()[o], x < y) << maskA << " " << maskB;
            ASSERT_EQ(eq.b8()[o], ia.i64()[p] == ib.i64()[q])
                << maskA << " " << maskB;
          }
    }
  // Lower ranks broadcast from the right: [150] and [40, 1] against [3, 40,
  // 150].
  Tensor a = random(full, 60), bias = random({150}, 61),
         column = random({40, 1}, 62);
  Tensor withBias = binary(Binary::Mul, bias, a);
  Tensor withColumn = binary(Binary::Add, a, column);
  for (int64_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(withBias.f32()[i], bias.f32()[i % 150] * a.f32()[i]);
    ASSERT_EQ(withColumn.f32()[i], a.f32()[i] + column.f32()[i / 150 % 40]);
  }
}

TEST(Kernels, GroupedAttentionEqualsRepeatedKeys) {
  Tensor q = random({1, 4, 5, 8}, 6), k = random({1, 2, 5, 8}, 7),
         v = random({1, 2, 5, 8}, 8);
  Tensor grouped = attention(q, k, v, nullptr, /*causal=*/true, 0.3);
  // repeat_kv: each key/value head serves two query heads.
  Tensor k4 = reshape(expand(reshape(k, {1, 2, 1, 5, 8}), {1, 2, 2, 5, 8}),
                      {1, 4, 5, 8});
  Tensor v4 = reshape(expand(reshape(v, {1, 2, 1, 5, 8}), {1, 2, 2, 5, 8}),
                      {1, 4, 5, 8});
  // The same through the decomposed formula with an additive causal mask.
  Tensor scale(DType::F32, {});
  scale.f32()[0] = 0.3f;
  Tensor scores =
      binary(Binary::Mul, matmul(q, transpose(k4, {0, 1, 3, 2})), scale);
  Tensor mask(DType::F32, {5, 5});
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j)
      mask.f32()[i * 5 + j] = j <= i ? 0.0f : -1e30f;
  Tensor reference = matmul(softmax(binary(Binary::Add, scores, mask), -1), v4);
  EXPECT_LT(maxDiff(grouped, reference), 1e-5);
}

TEST(Kernels, NormsMatchTheirDefinitions) {
  Tensor x = random({3, 6}, 9), g = random({6}, 10), b = random({6}, 11);
  Tensor ln = layerNorm(x, g, &b, 1e-5), rms = rmsNorm(x, g, 1e-6);
  for (int r = 0; r < 3; ++r) {
    double mean = 0, var = 0, ms = 0;
    for (int j = 0; j < 6; ++j)
      mean += x.f32()[r * 6 + j] / 6.0;
    for (int j = 0; j < 6; ++j) {
      double d = x.f32()[r * 6 + j] - mean;
      var += d * d / 6.0;
      ms += x.f32()[r * 6 + j] * x.f32()[r * 6 + j] / 6.0;
    }
    for (int j = 0; j < 6; ++j) {
      double xv = x.f32()[r * 6 + j];
      EXPECT_NEAR(ln.f32()[r * 6 + j],
                  (xv - mean) / std::sqrt(var + 1e-5) * g.f32()[j] + b.f32()[j],
                  1e-5);
      EXPECT_NEAR(rms.f32()[r * 6 + j], xv / std::sqrt(ms + 1e-6) * g.f32()[j],
                  1e-5);
    }
  }
}

TEST(Kernels, CrossEntropyIgnoresLabels) {
  Tensor logits = random({2, 3, 7}, 12);
  Tensor labels(DType::I64, {2, 3});
  int64_t values[] = {1, -100, 6, 0, 3, -100};
  std::copy(values, values + 6, labels.i64());
  Tensor loss = crossEntropy(logits, labels, /*mean=*/true, -100);
  double total = 0;
  for (int r = 0; r < 6; ++r) {
    if (values[r] == -100)
      continue;
    double sum = 0;
    for (int c = 0; c < 7; ++c)
      sum += std::exp(logits.f32()[r * 7 + c]);
    total += std::log(sum) - logits.f32()[r * 7 + values[r]];
  }
  EXPECT_NEAR(loss.f32()[0], total / 4, 1e-5);
}

TEST(Kernels, EmbeddingGradSkipsThePaddingRow) {
  // torch.nn.Embedding(padding_idx=2): ids 2 give their row no gradient;
  // rows that share another id add up; out-of-range ids add nothing.
  Tensor grad = random({2, 3, 4}, 14);
  Tensor ids(DType::I64, {2, 3});
  int64_t values[] = {2, 0, 2, 1, 0, 5};
  std::copy(values, values + 6, ids.i64());
  for (int64_t padding : {-1, 2, 0}) {
    Tensor table = embeddingGrad(grad, ids, 5, padding);
    for (int64_t row = 0; row < 5; ++row)
      for (int64_t j = 0; j < 4; ++j) {
        float want = 0;
        for (int i = 0; i < 6; ++i)
          if (values[i] == row && row != padding)
            want += grad.f32()[i * 4 + j];
        EXPECT_EQ(table.f32()[row * 4 + j], want)
            << "padding " << padding << " row " << row;
      }
  }
}

TEST(Npy, RoundTripAndErrors) {
  Tensor t = random({2, 3}, 13);
  std::string path =
                  testing::TempDir() + "t" + std::to_string(getpid()) + ".npy",
              error;
  ASSERT_TRUE(writeNpy(path, t, error)) << error;
  Tensor back;
  ASSERT_TRUE(readNpy(path, back, error)) << error;
  EXPECT_EQ(back.shape, t.shape);
  EXPECT_EQ(back.bytes, t.bytes);
  FILE *f = std::fopen(path.c_str(), "wb");
  std::fputs("not numpy", f);
  std::fclose(f);
  EXPECT_FALSE(readNpy(path, back, error));
  EXPECT_NE(error.find("not a .npy file"), std::string::npos) << error;
  std::remove(path.c_str());
}

} // namespace
