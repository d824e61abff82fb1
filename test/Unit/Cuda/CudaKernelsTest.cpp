//===- CudaKernelsTest.cpp - every CUDA launcher against the CPU kernels --===//
//
// Each launcher runs on fresh random inputs, with sizes that are no
// multiple of a warp, a block or a tile, into outputs poisoned with NaN
// (an element left unwritten fails), and is compared with the CPU backend's
// kernel: fp32 within 1e-5 of the largest reference value (1e-4 where
// exponentials and different summation orders meet), bf16 against the CPU's
// widened computation rounded once, within 1e-2. Without a device the
// binary says so and exits 77, which ctest reports as skipped.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernels.h"

#include "galvatron/runtime/AttentionKernels.h"
#include "galvatron/runtime/FusedKernels.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/OptimizerKernels.h"

#include <cmath>
#include <cstdio>
#include <gtest/gtest.h>
#include <random>

using namespace galvatron::rt;
namespace dev = galvatron::rt::cuda;

namespace {

unsigned nextSeed() {
  static unsigned seed = 20261201;
  return seed++;
}

Tensor randomF32(Shape shape, float low = -2, float high = 2) {
  Tensor t(DType::F32, std::move(shape));
  std::mt19937 gen(nextSeed());
  std::uniform_real_distribution<float> dist(low, high);
  for (int64_t i = 0; i < t.size(); ++i)
    t.f32()[i] = dist(gen);
  return t;
}

Tensor randomIds(Shape shape, int64_t low, int64_t high) {
  Tensor t(DType::I64, std::move(shape));
  std::mt19937 gen(nextSeed());
  std::uniform_int_distribution<int64_t> dist(low, high - 1);
  for (int64_t i = 0; i < t.size(); ++i)
    t.i64()[i] = dist(gen);
  return t;
}

/// Device copies made by a test, freed with it.
class Device {
public:
  ~Device() {
    for (void *p : owned)
      cudaFree(p);
  }
  dev::DeviceView upload(const Tensor &t) {
    dev::DeviceView v{t.dtype, t.shape, allocate(t.byteSize())};
    EXPECT_EQ(
        cudaMemcpy(v.data, t.data(), t.byteSize(), cudaMemcpyHostToDevice),
        cudaSuccess);
    return v;
  }
  /// An output full of 0xff bytes (NaN in f32 and bf16).
  dev::DeviceView output(DType dtype, Shape shape) {
    dev::DeviceView v{dtype, std::move(shape), nullptr};
    v.data = allocate(v.byteSize());
    EXPECT_EQ(cudaMemset(v.data, 0xff, v.byteSize()), cudaSuccess);
    return v;
  }
  Tensor download(const dev::DeviceView &v) {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    Tensor t(v.dtype, v.shape);
    EXPECT_EQ(
        cudaMemcpy(t.data(), v.data, t.byteSize(), cudaMemcpyDeviceToHost),
        cudaSuccess);
    return t;
  }

private:
  void *allocate(size_t bytes) {
    void *p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(bytes, 16)), cudaSuccess);
    owned.push_back(p);
    return p;
  }
  std::vector<void *> owned;
};

/// max |got - want| / max |want|; a NaN anywhere fails.
void expectClose(const Tensor &got, const Tensor &want, double rtol,
                 const char *what) {
  ASSERT_EQ(got.shape, want.shape) << what;
  double maxError = 0, maxRef = 1e-30;
  for (int64_t i = 0; i < want.size(); ++i) {
    double g = got.at(i), w = want.at(i);
    ASSERT_FALSE(std::isnan(g) && !std::isnan(w))
        << what << ": element " << i << " is NaN (unwritten?)";
    maxError = std::max(maxError, std::fabs(g - w));
    maxRef = std::max(maxRef, std::fabs(w));
  }
  EXPECT_LE(maxError / maxRef, rtol)
      << what << ": max error " << maxError << " of " << maxRef;
}

/// `t` rounded to bf16 (stored as bf16).
Tensor toBf16(const Tensor &t) { return cast(t, DType::BF16); }
/// What the CPU backend gives for a bf16 result: the f32 value rounded once.
Tensor roundedBf16(const Tensor &t) { return cast(toBf16(t), DType::F32); }

TEST(CudaKernels, BinaryBroadcastsAndCompares) {
  Device d;
  Tensor a = randomF32({3, 1, 37}), b = randomF32({5, 1}, 0.5, 2);
  for (Binary kind : {Binary::Add, Binary::Sub, Binary::Mul, Binary::Div,
                      Binary::Max, Binary::Min, Binary::Lt, Binary::Ge}) {
    Tensor want = binary(kind, a, b);
    dev::DeviceView out = d.output(want.dtype, want.shape);
    ASSERT_EQ(dev::binary(kind, d.upload(a), d.upload(b), out, nullptr),
              cudaSuccess);
    expectClose(d.download(out), want, 1e-6, "binary");
  }
  Tensor p = randomF32({7, 33}, 0.1, 3), q = randomF32({33}, -2, 2);
  Tensor want = binary(Binary::Pow, p, q);
  dev::DeviceView out = d.output(DType::F32, want.shape);
  ASSERT_EQ(dev::binary(Binary::Pow, d.upload(p), d.upload(q), out, nullptr),
            cudaSuccess);
  expectClose(d.download(out), want, 1e-5, "pow");
  Tensor i = randomIds({4, 9}, -50, 50), j = randomIds({9}, -5, 5);
  for (Binary kind : {Binary::Add, Binary::Mul, Binary::Eq, Binary::Gt}) {
    Tensor wantI = binary(kind, i, j);
    dev::DeviceView outI = d.output(wantI.dtype, wantI.shape);
    ASSERT_EQ(dev::binary(kind, d.upload(i), d.upload(j), outI, nullptr),
              cudaSuccess);
    expectClose(d.download(outI), wantI, 0, "integer binary");
  }
}

TEST(CudaKernels, UnaryAndBf16Rounding) {
  Device d;
  Tensor x = randomF32({1000003 % 4099, 3}, -4, 4);
  Tensor positive = randomF32({517}, 0.01, 5);
  for (Unary kind : {Unary::Neg, Unary::Abs, Unary::Exp, Unary::Tanh,
                     Unary::Erf, Unary::Sigmoid, Unary::Relu, Unary::Silu,
                     Unary::Gelu, Unary::GeluTanh}) {
    Tensor want = unary(kind, x);
    dev::DeviceView out = d.output(DType::F32, x.shape);
    ASSERT_EQ(dev::unary(kind, d.upload(x), out, nullptr), cudaSuccess);
    expectClose(d.download(out), want, 2e-6, "unary");
    // bf16 in and out: the widened value's result, rounded once.
    Tensor xb = toBf16(x);
    Tensor wantB = roundedBf16(unary(kind, cast(xb, DType::F32)));
    dev::DeviceView outB = d.output(DType::BF16, x.shape);
    ASSERT_EQ(dev::unary(kind, d.upload(xb), outB, nullptr), cudaSuccess);
    expectClose(cast(d.download(outB), DType::F32), wantB, 1e-2, "bf16 unary");
  }
  for (Unary kind :
       {Unary::Log, Unary::Sqrt, Unary::Rsqrt, Unary::Reciprocal}) {
    Tensor want = unary(kind, positive);
    dev::DeviceView out = d.output(DType::F32, positive.shape);
    ASSERT_EQ(dev::unary(kind, d.upload(positive), out, nullptr), cudaSuccess);
    expectClose(d.download(out), want, 2e-6, "unary of positives");
  }
}

TEST(CudaKernels, WhereAndCasts) {
  Device d;
  Tensor cond = cast(randomIds({6, 1, 11}, 0, 2), DType::Bool);
  Tensor a = randomF32({6, 5, 11}), b = randomF32({11});
  Tensor want = where(cond, a, b);
  dev::DeviceView out = d.output(DType::F32, want.shape);
  ASSERT_EQ(dev::where(d.upload(cond), d.upload(a), d.upload(b), out, nullptr),
            cudaSuccess);
  expectClose(d.download(out), want, 0, "where");
  Tensor x = randomF32({1031}, -300, 300);
  // Zeros too: an unwritten bool output (poisoned, so true) shows there.
  for (int64_t i = 0; i < x.size(); i += 3)
    x.f32()[i] = 0;
  for (DType to : {DType::BF16, DType::I64, DType::Bool}) {
    Tensor wantC = cast(x, to);
    dev::DeviceView outC = d.output(to, x.shape);
    ASSERT_EQ(dev::cast(d.upload(x), outC, nullptr), cudaSuccess);
    expectClose(cast(d.download(outC), DType::F32), cast(wantC, DType::F32), 0,
                "cast");
  }
}

TEST(CudaKernels, LayoutsSlicesAndLookups) {
  Device d;
  Tensor x = randomF32({3, 5, 7, 9});
  Tensor t = transpose(x, {2, 0, 3, 1});
  dev::DeviceView out = d.output(DType::F32, t.shape);
  ASSERT_EQ(dev::transpose(d.upload(x), {2, 0, 3, 1}, out, nullptr),
            cudaSuccess);
  expectClose(d.download(out), t, 0, "transpose");
  Tensor s = slice(x, {1, 0, 2, 1}, {3, 5, 7, 9}, {1, 2, 3, 2});
  dev::DeviceView outS = d.output(DType::F32, s.shape);
  ASSERT_EQ(dev::slice(d.upload(x), {1, 0, 2, 1}, {1, 2, 3, 2}, outS, nullptr),
            cudaSuccess);
  expectClose(d.download(outS), s, 0, "slice");
  Tensor y = randomF32({3, 2, 7, 9});
  std::vector<const Tensor *> parts = {&x, &y};
  Tensor c = concat(parts, 1);
  dev::DeviceView outC = d.output(DType::F32, c.shape);
  ASSERT_EQ(dev::concat({d.upload(x), d.upload(y)}, 1, outC, nullptr),
            cudaSuccess);
  expectClose(d.download(outC), c, 0, "concat");
  std::vector<dev::DeviceView> pieces = {d.output(DType::F32, {3, 5, 7, 9}),
                                         d.output(DType::F32, {3, 2, 7, 9})};
  ASSERT_EQ(dev::split(d.upload(c), 1, pieces, nullptr), cudaSuccess);
  expectClose(d.download(pieces[0]), x, 0, "split");
  expectClose(d.download(pieces[1]), y, 0, "split");
  Tensor small = randomF32({5, 1, 9});
  Tensor e = expand(small, {2, 5, 4, 9});
  dev::DeviceView outE = d.output(DType::F32, e.shape);
  ASSERT_EQ(dev::expand(d.upload(small), outE, nullptr), cudaSuccess);
  expectClose(d.download(outE), e, 0, "expand");
  Tensor ids = randomIds({4, 3}, -5, 5);
  Tensor g = gather(x, ids, 1);
  dev::DeviceView outG = d.output(DType::F32, g.shape);
  ASSERT_EQ(dev::gather(d.upload(x), d.upload(ids), 1, outG, nullptr),
            cudaSuccess);
  expectClose(d.download(outG), g, 0, "gather");
  Tensor table = randomF32({97, 33}), tokens = randomIds({3, 29}, 0, 97);
  Tensor rows = embedding(table, tokens);
  dev::DeviceView outRows = d.output(DType::F32, rows.shape);
  ASSERT_EQ(dev::embedding(d.upload(table), d.upload(tokens), outRows, nullptr),
            cudaSuccess);
  expectClose(d.download(outRows), rows, 0, "embedding");
  Tensor grad = randomF32({3, 29, 33});
  Tensor eg = embeddingGrad(grad, tokens, 97, tokens.i64()[0]);
  dev::DeviceView outEG = d.output(DType::F32, {97, 33});
  ASSERT_EQ(dev::embeddingGrad(d.upload(grad), d.upload(tokens),
                               tokens.i64()[0], outEG, nullptr),
            cudaSuccess);
  expectClose(d.download(outEG), eg, 1e-6, "embedding gradient");
}

TEST(CudaKernels, ReductionsSoftmaxAndArgMax) {
  Device d;
  Tensor x = randomF32({6, 37, 29});
  for (auto [kind, axes] :
       std::vector<std::pair<Reduction, std::vector<int64_t>>>{
           {Reduction::Sum, {1}},
           {Reduction::Mean, {0, 2}},
           {Reduction::Max, {2}},
           {Reduction::Min, {0}}}) {
    Tensor want = reduce(kind, x, axes, true);
    dev::DeviceView out = d.output(DType::F32, want.shape);
    ASSERT_EQ(dev::reduce(kind, d.upload(x), axes, out, nullptr), cudaSuccess);
    expectClose(d.download(out), want, 1e-6, "reduce");
  }
  // Long reductions (the block-per-output kernel: bias gradients) and a NaN,
  // which max keeps only where it comes first (std::max's order).
  Tensor tall = randomF32({600, 3});
  tall.f32()[7 * 3 + 1] = NAN;
  tall.f32()[2] = NAN;
  for (Reduction kind : {Reduction::Sum, Reduction::Max}) {
    Tensor want = reduce(kind, tall, {0}, false);
    dev::DeviceView out = d.output(DType::F32, want.shape);
    ASSERT_EQ(dev::reduce(kind, d.upload(tall), {0}, out, nullptr),
              cudaSuccess);
    Tensor got = d.download(out);
    for (int64_t i = 0; i < 3; ++i)
      EXPECT_TRUE(std::isnan(got.f32()[i]) == std::isnan(want.f32()[i]) &&
                  (std::isnan(want.f32()[i]) ||
                   std::fabs(got.f32()[i] - want.f32()[i]) <=
                       1e-5 * std::fabs(want.f32()[i]) + 1e-6))
          << "long reduce column " << i << ": " << got.f32()[i] << " vs "
          << want.f32()[i];
  }
  for (int64_t axis : {-1, 1}) {
    Tensor want = softmax(x, axis), wantLog = logSoftmax(x, axis);
    dev::DeviceView out = d.output(DType::F32, x.shape),
                    outLog = d.output(DType::F32, x.shape);
    ASSERT_EQ(dev::softmax(d.upload(x), axis, out, nullptr), cudaSuccess);
    ASSERT_EQ(dev::logSoftmax(d.upload(x), axis, outLog, nullptr), cudaSuccess);
    expectClose(d.download(out), want, 1e-5, "softmax");
    expectClose(d.download(outLog), wantLog, 1e-5, "log-softmax");
  }
  Tensor want = argMax(x, 1, false, false);
  dev::DeviceView out = d.output(DType::I64, want.shape);
  ASSERT_EQ(dev::argMax(d.upload(x), 1, false, out, nullptr), cudaSuccess);
  expectClose(d.download(out), want, 0, "argmax");
}

TEST(CudaKernels, NormsAndTheirGradients) {
  Device d;
  Tensor x = randomF32({13, 131}), scale = randomF32({131}, 0.5, 1.5),
         bias = randomF32({131}), dy = randomF32({13, 131});
  Tensor ln = layerNorm(x, scale, &bias, 1e-5), rms = rmsNorm(x, scale, 1e-6);
  dev::DeviceView outL = d.output(DType::F32, x.shape),
                  outR = d.output(DType::F32, x.shape);
  dev::DeviceView b = d.upload(bias);
  ASSERT_EQ(
      dev::layerNorm(d.upload(x), d.upload(scale), &b, 1e-5, outL, nullptr),
      cudaSuccess);
  ASSERT_EQ(dev::rmsNorm(d.upload(x), d.upload(scale), 1e-6, outR, nullptr),
            cudaSuccess);
  expectClose(d.download(outL), ln, 1e-5, "layer norm");
  expectClose(d.download(outR), rms, 1e-5, "rms norm");
  // The fused residual add and norm: both results as the CPU's.
  Tensor residual = randomF32({13, 131});
  for (bool rms : {false, true}) {
    Tensor sum(DType::F32, x.shape), normed(DType::F32, x.shape);
    TensorView sv(sum), nv(normed), biasView(bias);
    addNorm(x, residual, scale, rms ? nullptr : &biasView, rms, 1e-5, sv, nv);
    dev::DeviceView outSum = d.output(DType::F32, x.shape),
                    outNorm = d.output(DType::F32, x.shape);
    dev::DeviceView bv = d.upload(bias);
    ASSERT_EQ(dev::addNorm(d.upload(x), d.upload(residual), d.upload(scale),
                           rms ? nullptr : &bv, rms, 1e-5, outSum, outNorm,
                           nullptr),
              cudaSuccess);
    expectClose(d.download(outSum), sum, 0, "add-norm sum");
    expectClose(d.download(outNorm), normed, 1e-5, "add-norm result");
  }
  std::vector<Tensor> lg = layerNormGrad(x, scale, dy, 1e-5);
  dev::DeviceView dx = d.output(DType::F32, x.shape),
                  ds = d.output(DType::F32, {131}),
                  db = d.output(DType::F32, {131});
  ASSERT_EQ(dev::layerNormGrad(d.upload(x), d.upload(scale), d.upload(dy), 1e-5,
                               dx, ds, db, nullptr),
            cudaSuccess);
  expectClose(d.download(dx), lg[0], 1e-5, "layer norm dx");
  expectClose(d.download(ds), lg[1], 1e-5, "layer norm dscale");
  expectClose(d.download(db), lg[2], 1e-5, "layer norm dbias");
  std::vector<Tensor> rg = rmsNormGrad(x, scale, dy, 1e-6);
  dev::DeviceView rdx = d.output(DType::F32, x.shape),
                  rds = d.output(DType::F32, {131});
  ASSERT_EQ(dev::rmsNormGrad(d.upload(x), d.upload(scale), d.upload(dy), 1e-6,
                             rdx, rds, nullptr),
            cudaSuccess);
  expectClose(d.download(rdx), rg[0], 1e-5, "rms norm dx");
  expectClose(d.download(rds), rg[1], 1e-5, "rms norm dscale");
}

TEST(CudaKernels, RotaryLossGeluAndAdamW) {
  Device d;
  Tensor x = randomF32({2, 3, 11, 20}), cos = randomF32({11, 16}),
         sin = randomF32({11, 16});
  for (bool interleaved : {false, true}) {
    Tensor want = rotary(x, cos, sin, interleaved);
    dev::DeviceView out = d.output(DType::F32, x.shape);
    ASSERT_EQ(dev::rotary(d.upload(x), d.upload(cos), d.upload(sin),
                          interleaved, out, nullptr),
              cudaSuccess);
    expectClose(d.download(out), want, 1e-6, "rotary");
  }
  Tensor logits = randomF32({3, 7, 1001}, -6, 6);
  Tensor labels = randomIds({3, 7}, 0, 1001);
  labels.i64()[4] = -100;
  Tensor loss = crossEntropy(logits, labels, true, -100);
  dev::DeviceView outLoss = d.output(DType::F32, {});
  ASSERT_EQ(dev::crossEntropy(d.upload(logits), d.upload(labels), true, -100,
                              outLoss, nullptr),
            cudaSuccess);
  expectClose(d.download(outLoss), loss, 1e-5, "cross-entropy");
  Tensor dloss(DType::F32, {});
  dloss.f32()[0] = 0.7f;
  Tensor grad = crossEntropyGrad(logits, labels, dloss, true, -100);
  dev::DeviceView outGrad = d.output(DType::F32, logits.shape);
  ASSERT_EQ(dev::crossEntropyGrad(d.upload(logits), d.upload(labels),
                                  d.upload(dloss), true, -100, outGrad,
                                  nullptr),
            cudaSuccess);
  expectClose(d.download(outGrad), grad, 1e-5, "cross-entropy gradient");
  Tensor gx = randomF32({1237}, -4, 4), gdy = randomF32({1237});
  for (bool tanhForm : {false, true}) {
    Tensor want = geluGrad(gx, gdy, tanhForm);
    dev::DeviceView out = d.output(DType::F32, gx.shape);
    ASSERT_EQ(
        dev::geluGrad(d.upload(gx), d.upload(gdy), tanhForm, out, nullptr),
        cudaSuccess);
    expectClose(d.download(out), want, 1e-5, "gelu gradient");
  }
  Tensor p = randomF32({4097}), g = randomF32({4097}),
         m = randomF32({4097}, -0.1, 0.1), v = randomF32({4097}, 0, 0.1);
  AdamWSettings s{0.9, 0.999, 1e-8, 0.01};
  std::vector<Tensor> want = adamwUpdate(s, p, g, m, v, 1e-3f, 3.0f);
  Tensor lr(DType::F32, {}), step(DType::F32, {});
  lr.f32()[0] = 1e-3f;
  step.f32()[0] = 3.0f;
  dev::DeviceView np = d.output(DType::F32, p.shape),
                  nm = d.output(DType::F32, p.shape),
                  nv = d.output(DType::F32, p.shape);
  ASSERT_EQ(dev::adamwUpdate(0.9, 0.999, 1e-8, 0.01, d.upload(p), d.upload(g),
                             d.upload(m), d.upload(v), d.upload(lr),
                             d.upload(step), np, nm, nv, nullptr),
            cudaSuccess);
  expectClose(d.download(np), want[0], 1e-6, "adamw parameter");
  expectClose(d.download(nm), want[1], 1e-6, "adamw m");
  expectClose(d.download(nv), want[2], 1e-6, "adamw v");
}

TEST(CudaKernels, MatmulAndLinearInF32AndBf16) {
  Device d;
  // Batch broadcast one-against-many and many-against-many, transposes.
  Tensor a = randomF32({3, 1, 37, 53}), b = randomF32({4, 53, 29});
  Tensor want = matmul(a, b);
  dev::DeviceView out = d.output(DType::F32, want.shape);
  ASSERT_EQ(dev::matmul(d.upload(a), d.upload(b), false, false, out, nullptr),
            cudaSuccess);
  expectClose(d.download(out), want, 1e-5, "matmul broadcast");
  Tensor at = randomF32({2, 53, 37}), bt = randomF32({2, 29, 53});
  Tensor wantT = matmul(at, bt, true, true);
  dev::DeviceView outT = d.output(DType::F32, wantT.shape);
  ASSERT_EQ(dev::matmul(d.upload(at), d.upload(bt), true, true, outT, nullptr),
            cudaSuccess);
  expectClose(d.download(outT), wantT, 1e-5, "matmul transposed");
  Tensor x = randomF32({5, 7, 65}), w = randomF32({97, 65}),
         bias = randomF32({97});
  for (bool outIn : {true, false}) {
    Tensor weight = outIn ? w : transpose(w, {1, 0});
    Tensor wantL = linear(x, weight, &bias, outIn);
    dev::DeviceView outL = d.output(DType::F32, wantL.shape);
    dev::DeviceView bv = d.upload(bias);
    ASSERT_EQ(
        dev::linear(d.upload(x), d.upload(weight), &bv, outIn, outL, nullptr),
        cudaSuccess);
    expectClose(d.download(outL), wantL, 1e-5, "linear");
    // bf16: the CPU's fp32 product of the rounded operands, rounded once.
    Tensor xb = toBf16(x), wb = toBf16(weight), bb = toBf16(bias);
    Tensor bw = cast(bb, DType::F32);
    Tensor wantB = roundedBf16(
        linear(cast(xb, DType::F32), cast(wb, DType::F32), &bw, outIn));
    dev::DeviceView outB = d.output(DType::BF16, wantL.shape);
    dev::DeviceView bbv = d.upload(bb);
    ASSERT_EQ(
        dev::linear(d.upload(xb), d.upload(wb), &bbv, outIn, outB, nullptr),
        cudaSuccess);
    expectClose(cast(d.download(outB), DType::F32), wantB, 1e-2, "bf16 linear");
  }
}

// cuBLASLt's GELU epilogue (the executor runs a linear and the tanh GELU
// that reads it as one GEMM): the activation as the CPU's GeluTanh of the
// CPU's linear, and the pre-activation as the linear.
TEST(CudaKernels, LinearWithGeluEpilogue) {
  Device d;
  Tensor x = randomF32({3, 11, 65}), w = randomF32({65, 136}, -0.3, 0.3),
         bias = randomF32({136});
  Tensor pre = linear(x, w, &bias, false);
  Tensor act = unary(Unary::GeluTanh, pre);
  dev::DeviceView outPre = d.output(DType::F32, pre.shape),
                  outAct = d.output(DType::F32, pre.shape), bv = d.upload(bias);
  ASSERT_TRUE(dev::linearGeluFits(bv, outAct));
  ASSERT_EQ(dev::linearGelu(d.upload(x), d.upload(w), bv, false, outPre, outAct,
                            nullptr),
            cudaSuccess)
      << dev::gemmErrorDetail();
  expectClose(d.download(outPre), pre, 1e-5, "GELU epilogue pre-activation");
  expectClose(d.download(outAct), act, 1e-4, "GELU epilogue activation");
  // 136 features pass, 130 (not a multiple of 8) are run apart.
  dev::DeviceView narrow = d.output(DType::F32, {3, 11, 130});
  EXPECT_FALSE(dev::linearGeluFits(bv, narrow));
}

TEST(CudaKernels, AttentionForwardAndBackward) {
  Device d;
  // Grouped heads (4 query heads on 2 key/value heads), Sq 37 < Sk 45,
  // head dims 24 and 40.
  Tensor q = randomF32({2, 4, 37, 24}), k = randomF32({2, 2, 45, 24}),
         v = randomF32({2, 2, 45, 40}), dout = randomF32({2, 4, 37, 40});
  Tensor keep = cast(randomIds({2, 1, 1, 45}, 0, 2), DType::Bool);
  Tensor additive = randomF32({4, 37, 45}, -3, 0);
  // Causal alone, a kept-keys mask alone, causal with an additive mask.
  for (int variant = 0; variant < 3; ++variant) {
    bool causal = variant != 1;
    const Tensor *mask = variant == 1   ? &keep
                         : variant == 2 ? &additive
                                        : nullptr;
    double scale = 1 / std::sqrt(24.0);
    Tensor want = attention(q, k, v, mask, causal, scale);
    auto grads = attentionGrad(q, k, v, dout, mask, causal, scale);
    dev::DeviceView mv;
    if (mask)
      mv = d.upload(*mask);
    dev::DeviceView out = d.output(DType::F32, want.shape);
    ASSERT_EQ(dev::attention(d.upload(q), d.upload(k), d.upload(v),
                             mask ? &mv : nullptr, causal, scale, out, nullptr),
              cudaSuccess);
    expectClose(d.download(out), want, 1e-5, "attention");
    dev::DeviceView dq = d.output(DType::F32, q.shape),
                    dk = d.output(DType::F32, k.shape),
                    dv = d.output(DType::F32, v.shape);
    ASSERT_EQ(dev::attentionGrad(d.upload(q), d.upload(k), d.upload(v),
                                 d.upload(dout), mask ? &mv : nullptr, causal,
                                 scale, dq, dk, dv, nullptr),
              cudaSuccess);
    expectClose(d.download(dq), grads[0], 1e-4, "attention dq");
    expectClose(d.download(dk), grads[1], 1e-4, "attention dk");
    expectClose(d.download(dv), grads[2], 1e-4, "attention dv");
  }
  // bf16 operands: the CPU's fp32 attention of the rounded operands.
  Tensor qb = toBf16(q), kb = toBf16(k), vb = toBf16(v);
  Tensor wantB =
      roundedBf16(attention(cast(qb, DType::F32), cast(kb, DType::F32),
                            cast(vb, DType::F32), nullptr, true, 0.2));
  dev::DeviceView outB = d.output(DType::BF16, wantB.shape);
  ASSERT_EQ(dev::attention(d.upload(qb), d.upload(kb), d.upload(vb), nullptr,
                           true, 0.2, outB, nullptr),
            cudaSuccess);
  expectClose(cast(d.download(outB), DType::F32), wantB, 1e-2,
              "bf16 attention");
  Tensor doutB = toBf16(dout);
  auto gradsB = attentionGrad(cast(qb, DType::F32), cast(kb, DType::F32),
                              cast(vb, DType::F32), cast(doutB, DType::F32),
                              nullptr, true, 0.2);
  dev::DeviceView dqB = d.output(DType::BF16, q.shape),
                  dkB = d.output(DType::BF16, k.shape),
                  dvB = d.output(DType::BF16, v.shape);
  ASSERT_EQ(dev::attentionGrad(d.upload(qb), d.upload(kb), d.upload(vb),
                               d.upload(doutB), nullptr, true, 0.2, dqB, dkB,
                               dvB, nullptr),
            cudaSuccess);
  expectClose(cast(d.download(dqB), DType::F32), roundedBf16(gradsB[0]), 1e-2,
              "bf16 attention dq");
  expectClose(cast(d.download(dkB), DType::F32), roundedBf16(gradsB[1]), 1e-2,
              "bf16 attention dk");
  expectClose(cast(d.download(dvB), DType::F32), roundedBf16(gradsB[2]), 1e-2,
              "bf16 attention dv");
}

} // namespace

int main(int argc, char **argv) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("skipped: no CUDA device (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
