//===- FusedKernelsTest.cpp - fused backward kernels against their chains -===//
//
// Each fused gradient kernel against the chain of forward kernels that
// galv-autodiff emits with fused-backward=false (GalvAdjoints.cpp), on
// random inputs whose sizes are not multiples of the kernels' row blocks.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/FusedKernels.h"
#include "galvatron/runtime/Kernels.h"

#include <cmath>
#include <gtest/gtest.h>
#include <random>

using namespace galvatron::rt;

namespace {

Tensor random(Shape shape, unsigned seed, float scale = 1.0f) {
  Tensor t(DType::F32, std::move(shape));
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  for (int64_t i = 0; i < t.size(); ++i)
    t.f32()[i] = dist(gen);
  return t;
}

Tensor scalar(float v) {
  Tensor t(DType::F32, {});
  t.f32()[0] = v;
  return t;
}

/// The largest |a - b| / max(1, |b|).
double relDiff(const Tensor &a, const Tensor &b) {
  EXPECT_EQ(a.shape, b.shape);
  double m = 0;
  for (int64_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(a.at(i) - b.at(i)) /
                        std::max(1.0, std::fabs(b.at(i))));
  return m;
}

Tensor mul(const Tensor &a, const Tensor &b) {
  return binary(Binary::Mul, a, b);
}
Tensor sub(const Tensor &a, const Tensor &b) {
  return binary(Binary::Sub, a, b);
}
Tensor add(const Tensor &a, const Tensor &b) {
  return binary(Binary::Add, a, b);
}
Tensor meanLast(const Tensor &x) {
  return reduce(Reduction::Mean, x, {x.rank() - 1}, true);
}
/// Sum over every row of x [..., d]: a [d] column sum.
Tensor columnSum(const Tensor &x) {
  int64_t d = x.shape.back();
  return reduce(Reduction::Sum, reshape(x, {x.size() / d, d}), {0}, false);
}

/// The decomposed cross-entropy gradient: softmax, one-hot compare, cast,
/// subtract, mask, count, divide, scale.
Tensor crossEntropyGradChain(const Tensor &logits, const Tensor &labels,
                             float dloss, bool mean, int64_t ignore) {
  int64_t classes = logits.shape.back(), rows = labels.size();
  Tensor probs = softmax(reshape(logits, {rows, classes}), -1);
  Tensor iota(DType::I64, {classes});
  for (int64_t c = 0; c < classes; ++c)
    iota.i64()[c] = c;
  Tensor column = reshape(labels, {rows, 1});
  Tensor hot = cast(binary(Binary::Eq, column, iota), DType::F32);
  Tensor ignored(DType::I64, {});
  ignored.i64()[0] = ignore;
  Tensor valid = cast(binary(Binary::Ne, column, ignored), DType::F32);
  Tensor d = mul(sub(probs, hot), valid);
  if (mean)
    d = binary(Binary::Div, d, reduce(Reduction::Sum, valid, {0, 1}, false));
  return reshape(mul(d, scalar(dloss)), logits.shape);
}

Tensor labelsFor(int64_t rows, int64_t classes, unsigned seed, int64_t ignore) {
  Tensor labels(DType::I64, {rows});
  std::mt19937 gen(seed);
  for (int64_t r = 0; r < rows; ++r)
    labels.i64()[r] = gen() % 5 == 0 ? ignore : int64_t(gen() % classes);
  return labels;
}

TEST(FusedKernels, CrossEntropyGradMatchesTheChain) {
  struct Size {
    int64_t rows, classes;
  };
  // Small, odd, and large enough to run in parallel; logits spread wide
  // enough that some exponentials underflow.
  for (Size s : {Size{1, 1}, Size{3, 5}, Size{37, 1003}, Size{130, 517}})
    for (float spread : {3.0f, 40.0f})
      for (bool mean : {true, false}) {
        Tensor logits = random({s.rows, s.classes}, 1, spread);
        Tensor labels = labelsFor(s.rows, s.classes, 2, -100);
        labels.i64()[0] = 0; // at least one counted row for the mean
        Tensor fused =
            crossEntropyGrad(logits, labels, scalar(0.7f), mean, -100);
        Tensor chain = crossEntropyGradChain(logits, labels, 0.7f, mean, -100);
        EXPECT_LT(relDiff(fused, chain), 1e-6)
            << s.rows << "x" << s.classes << " spread " << spread
            << (mean ? " mean" : " sum");
      }
}

TEST(FusedKernels, CrossEntropyGradShapesAndLabels) {
  // [2, 3, 7] logits with i32 labels and another ignore_index.
  Tensor logits = random({2, 3, 7}, 3);
  Tensor wide(DType::I64, {2, 3});
  int64_t values[] = {1, 5, 6, 0, 5, 2};
  std::copy(values, values + 6, wide.i64());
  Tensor narrow = cast(wide, DType::I32);
  Tensor fused = crossEntropyGrad(logits, narrow, scalar(1.0f), true, 5);
  Tensor chain = crossEntropyGradChain(logits, wide, 1.0f, true, 5);
  EXPECT_LT(relDiff(fused, chain), 1e-6);
  for (int64_t c = 0; c < 7; ++c)
    EXPECT_EQ(fused.f32()[1 * 7 + c], 0.0f);
  // Every label ignored: zeros (the chain would divide 0 by 0).
  Tensor none = Tensor::zeros(DType::I64, {2, 3});
  for (int64_t i = 0; i < 6; ++i)
    none.i64()[i] = -100;
  Tensor zero = crossEntropyGrad(logits, none, scalar(1.0f), true, -100);
  for (int64_t i = 0; i < zero.size(); ++i)
    ASSERT_EQ(zero.f32()[i], 0.0f);
}

/// Layer norm's decomposed adjoint: {dx, dscale, dbias}.
std::vector<Tensor> layerNormGradChain(const Tensor &x, const Tensor &scale,
                                       const Tensor &dy, float eps) {
  Tensor centred = sub(x, meanLast(x));
  Tensor rstd =
      unary(Unary::Rsqrt, add(meanLast(mul(centred, centred)), scalar(eps)));
  Tensor xhat = mul(centred, rstd);
  Tensor dxhat = mul(dy, scale);
  Tensor dx = mul(rstd, sub(sub(dxhat, meanLast(dxhat)),
                            mul(xhat, meanLast(mul(dxhat, xhat)))));
  return {dx, columnSum(mul(dy, xhat)), columnSum(dy)};
}

/// RMS norm's decomposed adjoint: {dx, dscale}.
std::vector<Tensor> rmsNormGradChain(const Tensor &x, const Tensor &scale,
                                     const Tensor &dy, float eps) {
  Tensor r = unary(Unary::Rsqrt, add(meanLast(mul(x, x)), scalar(eps)));
  Tensor dn = mul(dy, scale);
  Tensor dx = mul(r, sub(dn, mul(mul(x, mul(r, r)), meanLast(mul(dn, x)))));
  return {dx, columnSum(mul(dy, mul(x, r)))};
}

// Row counts below, at and well above one row block (16 rows; at most 64
// blocks), none a multiple of it.
const Shape kNormShapes[] = {
    {1, 1}, {3, 5}, {2, 9, 33}, {111, 129}, {2003, 40}};

// GELU's gradient against the decomposed rule's chain of elementwise
// kernels, both forms, over a size no vector width divides and one split
// across threads.
TEST(FusedKernels, GeluGradMatchesTheChain) {
  for (int64_t n : {int64_t(37), int64_t(50001)}) {
    Tensor x = random({n}, 7, 3.0f), dy = random({n}, 8);
    auto mul = [](const Tensor &a, const Tensor &b) {
      return binary(Binary::Mul, a, b);
    };
    auto add = [](const Tensor &a, const Tensor &b) {
      return binary(Binary::Add, a, b);
    };
    Tensor one = scalar(1.0f), x2 = mul(x, x);
    float c = static_cast<float>(std::sqrt(2.0 / M_PI));
    Tensor u = mul(mul(x, add(one, mul(x2, scalar(0.044715f)))), scalar(c));
    Tensor t = unary(Unary::Tanh, u);
    Tensor du = mul(add(one, mul(x2, scalar(3 * 0.044715f))), scalar(c));
    Tensor tanhChain =
        mul(dy, add(mul(add(one, t), scalar(0.5f)),
                    mul(mul(x, scalar(0.5f)),
                        mul(binary(Binary::Sub, one, mul(t, t)), du))));
    Tensor cdf =
        mul(add(one, unary(Unary::Erf, mul(x, scalar(1 / std::sqrt(2.0f))))),
            scalar(0.5f));
    Tensor pdf = mul(unary(Unary::Exp, mul(x2, scalar(-0.5f))),
                     scalar(static_cast<float>(1 / std::sqrt(2 * M_PI))));
    Tensor erfChain = mul(dy, add(cdf, mul(x, pdf)));
    EXPECT_LT(relDiff(geluGrad(x, dy, true), tanhChain), 1e-5) << n;
    EXPECT_LT(relDiff(geluGrad(x, dy, false), erfChain), 1e-5) << n;
  }
}

TEST(FusedKernels, LayerNormGradMatchesTheChain) {
  for (const Shape &shape : kNormShapes) {
    int64_t d = shape.back();
    Tensor x = random(shape, 4, 2.0f), dy = random(shape, 5);
    Tensor scale = random({d}, 6), shifted = x;
    for (int64_t i = 0; i < x.size(); ++i)
      shifted.f32()[i] += 3.0f; // a mean far from zero
    for (const Tensor *input : {&x, &shifted}) {
      std::vector<Tensor> fused = layerNormGrad(*input, scale, dy, 1e-5);
      std::vector<Tensor> chain = layerNormGradChain(*input, scale, dy, 1e-5f);
      ASSERT_EQ(fused.size(), 3u);
      for (int k = 0; k < 3; ++k)
        EXPECT_LT(relDiff(fused[k], chain[k]), 2e-4)
            << shapeString(shape) << " result " << k;
    }
  }
}

TEST(FusedKernels, RmsNormGradMatchesTheChain) {
  for (const Shape &shape : kNormShapes) {
    int64_t d = shape.back();
    Tensor x = random(shape, 7, 2.0f), dy = random(shape, 8);
    Tensor scale = random({d}, 9);
    std::vector<Tensor> fused = rmsNormGrad(x, scale, dy, 1e-6);
    std::vector<Tensor> chain = rmsNormGradChain(x, scale, dy, 1e-6f);
    ASSERT_EQ(fused.size(), 2u);
    for (int k = 0; k < 2; ++k)
      EXPECT_LT(relDiff(fused[k], chain[k]), 2e-4)
          << shapeString(shape) << " result " << k;
  }
}

TEST(FusedKernels, NormGradsDoNotDependOnTheThreadCount) {
  Tensor x = random({2003, 40}, 10), dy = random({2003, 40}, 11),
         scale = random({40}, 12);
  setKernelThreads(1);
  std::vector<Tensor> one = layerNormGrad(x, scale, dy, 1e-5);
  std::vector<Tensor> oneRms = rmsNormGrad(x, scale, dy, 1e-5);
  setKernelThreads(3);
  std::vector<Tensor> three = layerNormGrad(x, scale, dy, 1e-5);
  std::vector<Tensor> threeRms = rmsNormGrad(x, scale, dy, 1e-5);
  setKernelThreads(2);
  for (int k = 0; k < 3; ++k)
    EXPECT_EQ(one[k].bytes, three[k].bytes) << "result " << k;
  for (int k = 0; k < 2; ++k)
    EXPECT_EQ(oneRms[k].bytes, threeRms[k].bytes) << "result " << k;
}

TEST(FusedKernels, OutputsMayShareTheirInputsBuffers) {
  // dx written over dy, and d logits over the logits.
  Tensor x = random({37, 19}, 13), dy = random({37, 19}, 14),
         scale = random({19}, 15);
  std::vector<Tensor> apart = layerNormGrad(x, scale, dy, 1e-5);
  Tensor shared = dy, dscale(DType::F32, {19}), dbias(DType::F32, {19});
  layerNormGrad(x.f32(), scale.f32(), shared.f32(), 37, 19, 1e-5, shared.f32(),
                dscale.f32(), dbias.f32());
  EXPECT_EQ(shared.bytes, apart[0].bytes);
  EXPECT_EQ(dscale.bytes, apart[1].bytes);

  Tensor logits = random({37, 19}, 16);
  Tensor labels = labelsFor(37, 19, 17, -100);
  Tensor expected = crossEntropyGrad(logits, labels, scalar(2.0f), true, -100);
  crossEntropyGrad(logits.f32(), labels.i64(), 37, 19, -100, true, 2.0f,
                   logits.f32());
  EXPECT_EQ(logits.bytes, expected.bytes);
}

} // namespace
