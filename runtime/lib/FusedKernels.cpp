//===- FusedKernels.cpp - fused backward kernels --------------------------===//
//
// Each kernel finishes a row before the next (its statistics, then its
// outputs), so a row is read from memory once and the rest stays in cache.
// Within a row every element is read before it is written, so an output may
// share its buffer with an input of the same shape. Column sums (a norm's
// scale gradient) go through per-block partial sums added in block order:
// the blocks do not depend on the thread count, so neither does the result.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/FusedKernels.h"

#include "VectorMath.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

namespace galvatron::rt {

namespace {

// Below this many elements a kernel runs on one thread (as in Kernels.cpp).
constexpr int64_t kParallelElements = 1 << 14;
// Column sums: at most this many blocks of at least kMinBlockRows rows.
constexpr int64_t kMaxBlocks = 64;
constexpr int64_t kMinBlockRows = 16;

/// Rows per block of a column sum over `rows` rows.
int64_t blockRows(int64_t rows) {
  return std::max(kMinBlockRows, (rows + kMaxBlocks - 1) / kMaxBlocks);
}

/// Adds the blocks' partial sums ([blocks][d], in block order) into `out`.
void addPartials(const std::vector<double> &partials, int64_t d, float *out) {
  int64_t blocks = d ? static_cast<int64_t>(partials.size()) / d : 0;
  for (int64_t j = 0; j < d; ++j) {
    double sum = 0;
    for (int64_t k = 0; k < blocks; ++k)
      sum += partials[k * d + j];
    out[j] = static_cast<float>(sum);
  }
}

/// The mean and 1 / sqrt(variance + eps) of a row, as layerNorm computes
/// them.
void rowMoments(const float *row, int64_t d, double eps, double &mean,
                double &rstd) {
  mean = 0;
  for (int64_t j = 0; j < d; ++j)
    mean += row[j];
  mean /= d;
  double var = 0;
  for (int64_t j = 0; j < d; ++j)
    var += (row[j] - mean) * (row[j] - mean);
  rstd = 1.0 / std::sqrt(var / d + eps);
}

/// One layer-norm row: dx, and the row's terms of the column sums.
void layerNormGradRow(const float *x, const float *scale, const float *dy,
                      int64_t d, double eps, float *dx, double *dscale,
                      double *dbias) {
  double mean, rstd;
  rowMoments(x, d, eps, mean, rstd);
  // dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy * scale.
  double sumG = 0, sumGX = 0;
  for (int64_t j = 0; j < d; ++j) {
    double xhat = (x[j] - mean) * rstd;
    double g = double(dy[j]) * scale[j];
    sumG += g;
    sumGX += g * xhat;
    dscale[j] += dy[j] * xhat;
    if (dbias)
      dbias[j] += dy[j];
  }
  double meanG = sumG / d, meanGX = sumGX / d;
  for (int64_t j = 0; j < d; ++j) {
    double xhat = (x[j] - mean) * rstd;
    dx[j] = static_cast<float>(
        rstd * (double(dy[j]) * scale[j] - meanG - xhat * meanGX));
  }
}

/// One RMS-norm row: dx, and the row's terms of the scale's column sum.
void rmsNormGradRow(const float *x, const float *scale, const float *dy,
                    int64_t d, double eps, float *dx, double *dscale) {
  double ms = 0;
  for (int64_t j = 0; j < d; ++j)
    ms += double(x[j]) * x[j];
  double r = 1.0 / std::sqrt(ms / d + eps);
  // dx = r (g - n mean(g n)) with n = x r and g = dy * scale.
  double sumGN = 0;
  for (int64_t j = 0; j < d; ++j) {
    double n = x[j] * r;
    sumGN += double(dy[j]) * scale[j] * n;
    dscale[j] += dy[j] * n;
  }
  double meanGN = sumGN / d;
  for (int64_t j = 0; j < d; ++j)
    dx[j] =
        static_cast<float>(r * (double(dy[j]) * scale[j] - x[j] * r * meanGN));
}

/// Runs `row(r, partial)` for every row, in parallel over blocks of rows,
/// with `partial` the block's [width] column sums; returns the partials.
template <typename RowFn>
std::vector<double> blockedRows(int64_t rows, int64_t d, int64_t width,
                                RowFn row) {
  int64_t per = blockRows(rows), blocks = (rows + per - 1) / per;
  std::vector<double> partials(blocks * width, 0.0);
#pragma omp parallel for if (rows * d >= kParallelElements) schedule(static)
  for (int64_t k = 0; k < blocks; ++k)
    for (int64_t r = k * per; r < std::min(rows, (k + 1) * per); ++r)
      row(r, partials.data() + k * width);
  return partials;
}

} // namespace

GALVATRON_VECTOR_CLONES
void crossEntropyGrad(const float *logits, const int64_t *labels, int64_t rows,
                      int64_t classes, int64_t ignoreIndex, bool mean,
                      float dloss, float *dlogits) {
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r)
    counted += labels[r] != ignoreIndex;
  // Sum: dloss per row; mean: dloss over the rows that count (none: 0).
  float divisor = mean ? static_cast<float>(counted) : 1.0f;
  if (mean && !counted) {
    dloss = 0.0f;
    divisor = 1.0f;
  }
#pragma omp parallel for if (rows * classes >= kParallelElements)              \
    schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = logits + r * classes;
    float *out = dlogits + r * classes;
    int64_t label = labels[r];
    if (label == ignoreIndex) {
      std::fill(out, out + classes, 0.0f);
      continue;
    }
    assert(label >= 0 && label < classes && "cross-entropy label out of range");
    float max = rowMax(row, classes);
#pragma omp simd
    for (int64_t c = 0; c < classes; ++c)
      out[c] = expNonPositive(row[c] - max);
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < classes; ++c)
      sum += out[c];
    // Rounded in the decomposed rule's order (the softmax, less the
    // one-hot, divided by the count, times dloss): no rounding error is
    // shared by a whole row, as one scale factor per row would share it.
    double inverse = 1.0 / sum;
#pragma omp simd
    for (int64_t c = 0; c < classes; ++c)
      out[c] = static_cast<float>(out[c] * inverse);
    out[label] -= 1.0f;
#pragma omp simd
    for (int64_t c = 0; c < classes; ++c)
      out[c] = out[c] / divisor * dloss;
  }
}

void layerNormGrad(const float *x, const float *scale, const float *dy,
                   int64_t rows, int64_t d, double eps, float *dx,
                   float *dscale, float *dbias) {
  int64_t width = dbias ? 2 * d : d;
  std::vector<double> partials =
      blockedRows(rows, d, width, [&](int64_t r, double *partial) {
        layerNormGradRow(x + r * d, scale, dy + r * d, d, eps, dx + r * d,
                         partial, dbias ? partial + d : nullptr);
      });
  std::vector<float> sums(width);
  addPartials(partials, width, sums.data());
  std::copy(sums.begin(), sums.begin() + d, dscale);
  if (dbias)
    std::copy(sums.begin() + d, sums.end(), dbias);
}

void rmsNormGrad(const float *x, const float *scale, const float *dy,
                 int64_t rows, int64_t d, double eps, float *dx,
                 float *dscale) {
  std::vector<double> partials =
      blockedRows(rows, d, d, [&](int64_t r, double *partial) {
        rmsNormGradRow(x + r * d, scale, dy + r * d, d, eps, dx + r * d,
                       partial);
      });
  addPartials(partials, d, dscale);
}

GALVATRON_VECTOR_CLONES
void geluGrad(const float *x, const float *dy, int64_t n, bool tanhForm,
              float *dx) {
  // The constants and the order of operations of the decomposed rule
  // (GalvAdjoints.cpp), so both forms round alike.
  const float c = static_cast<float>(std::sqrt(2.0 / M_PI));
  const float k = 0.044715f, k3 = static_cast<float>(3 * 0.044715);
  const float invSqrt2 = static_cast<float>(1 / std::sqrt(2.0));
  const float invSqrt2Pi = static_cast<float>(1 / std::sqrt(2 * M_PI));
  if (tanhForm) {
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float v = x[i], v2 = v * v;
      float t = tanhVector((v * (1.0f + v2 * k)) * c);
      float du = (1.0f + v2 * k3) * c;
      dx[i] = dy[i] * ((1.0f + t) * 0.5f + (v * 0.5f) * ((1.0f - t * t) * du));
    }
    return;
  }
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    float cdf = (1.0f + std::erf(v * invSqrt2)) * 0.5f;
    float pdf = expNonPositive((v * v) * -0.5f) * invSqrt2Pi;
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

void geluGrad(const TensorView &x, const TensorView &dy, bool tanhForm,
              TensorView &dx) {
  assert(x.dtype == DType::F32 && dy.shape == x.shape && dx.shape == x.shape &&
         "gelu gradient shapes differ");
  geluGrad(x.f32(), dy.f32(), x.size(), tanhForm, dx.f32());
}

void crossEntropyGrad(const TensorView &logits, const TensorView &labels,
                      const TensorView &dloss, bool mean, int64_t ignoreIndex,
                      TensorView &out) {
  assert(logits.dtype == DType::F32 && logits.rank() >= 1 &&
         dloss.dtype == DType::F32 && dloss.size() == 1 &&
         out.shape == logits.shape &&
         "cross-entropy gradient takes f32 logits [..., V] and a scalar");
  int64_t classes = logits.shape.back(), rows = labels.size();
  assert(logits.size() == rows * classes &&
         "cross-entropy logits rows differ from the labels");
  std::vector<int64_t> widened;
  const int64_t *ids = labels.i64();
  if (labels.dtype != DType::I64) {
    widened.resize(rows);
    for (int64_t r = 0; r < rows; ++r)
      widened[r] = labels.intAt(r);
    ids = widened.data();
  }
  crossEntropyGrad(logits.f32(), ids, rows, classes, ignoreIndex, mean,
                   dloss.f32()[0], out.f32());
}

/// A norm gradient's row count and row size (its scale and gradient
/// checked against its input).
static void normGradDims(const TensorView &x, const TensorView &scale,
                         const TensorView &dy, int64_t &rows, int64_t &d) {
  assert(x.dtype == DType::F32 && x.rank() >= 1 && scale.dtype == DType::F32 &&
         scale.size() == x.shape.back() && dy.dtype == DType::F32 &&
         dy.shape == x.shape &&
         "norm gradient: scale or gradient differs from the input");
  (void)dy;
  d = x.shape.back();
  rows = x.size() / std::max<int64_t>(d, 1);
}

void layerNormGrad(const TensorView &x, const TensorView &scale,
                   const TensorView &dy, double eps, TensorView &dx,
                   TensorView &dscale, TensorView &dbias) {
  int64_t rows, d;
  normGradDims(x, scale, dy, rows, d);
  layerNormGrad(x.f32(), scale.f32(), dy.f32(), rows, d, eps, dx.f32(),
                dscale.f32(), dbias.f32());
}

void rmsNormGrad(const TensorView &x, const TensorView &scale,
                 const TensorView &dy, double eps, TensorView &dx,
                 TensorView &dscale) {
  int64_t rows, d;
  normGradDims(x, scale, dy, rows, d);
  rmsNormGrad(x.f32(), scale.f32(), dy.f32(), rows, d, eps, dx.f32(),
              dscale.f32());
}

Tensor geluGrad(const Tensor &x, const Tensor &dy, bool tanhForm) {
  Tensor dx(DType::F32, x.shape);
  TensorView out(dx);
  geluGrad(x, dy, tanhForm, out);
  return dx;
}

Tensor crossEntropyGrad(const Tensor &logits, const Tensor &labels,
                        const Tensor &dloss, bool mean, int64_t ignoreIndex) {
  Tensor out(DType::F32, logits.shape);
  TensorView view(out);
  crossEntropyGrad(logits, labels, dloss, mean, ignoreIndex, view);
  return out;
}

std::vector<Tensor> layerNormGrad(const Tensor &x, const Tensor &scale,
                                  const Tensor &dy, double eps) {
  std::vector<Tensor> out;
  out.emplace_back(DType::F32, x.shape);
  out.emplace_back(DType::F32, scale.shape);
  out.emplace_back(DType::F32, scale.shape);
  TensorView dx(out[0]), dscale(out[1]), dbias(out[2]);
  layerNormGrad(x, scale, dy, eps, dx, dscale, dbias);
  return out;
}

std::vector<Tensor> rmsNormGrad(const Tensor &x, const Tensor &scale,
                                const Tensor &dy, double eps) {
  std::vector<Tensor> out;
  out.emplace_back(DType::F32, x.shape);
  out.emplace_back(DType::F32, scale.shape);
  TensorView dx(out[0]), dscale(out[1]);
  rmsNormGrad(x, scale, dy, eps, dx, dscale);
  return out;
}

} // namespace galvatron::rt
