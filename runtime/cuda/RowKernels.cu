//===- RowKernels.cu - reductions, norms, losses and AdamW on CUDA --------===//
//
// Row-wise operations run one block per row (or per line along an axis that
// is not the last: the tensor read as [outer, dim, inner], elements `inner`
// apart), each row's statistics combined through shared memory. Sums are
// accumulated in double where the CPU kernels accumulate in double, and the
// formulas follow theirs step by step. Products that feed an addition are
// rounded on their own (__fmul_rn): the CPU kernels are built with
// -ffp-contract=off, and a fused multiply-add would round differently.
//
//===----------------------------------------------------------------------===//

#include "DeviceMath.cuh"

#include <math_constants.h>

#include <cmath>

namespace galvatron::rt::cuda {
namespace {

//===--- Shared pieces ----------------------------------------------------===//

/// A product rounded before it is added to anything (see the file comment).
__device__ inline float mul(float a, float b) { return __fmul_rn(a, b); }

struct AddOp {
  template <typename T> __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

/// std::max(a, b): a NaN never replaces a number already held.
struct MaxOp {
  __device__ float operator()(float a, float b) const { return a < b ? b : a; }
};

/// Combines every thread's `value` with `op` and hands each thread the
/// result. Every thread of the block calls it; blocks have kThreads threads
/// (a power of two).
template <typename T, typename Op> __device__ T blockReduce(T value, Op op) {
  __shared__ T slots[kThreads];
  slots[threadIdx.x] = value;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s)
      slots[threadIdx.x] = op(slots[threadIdx.x], slots[threadIdx.x + s]);
    __syncthreads();
  }
  T result = slots[0];
  __syncthreads(); // the next call may overwrite the slots
  return result;
}

/// A tensor read as lines along one axis: [outer, dim, inner].
struct Lines {
  int64_t outer = 1, dim = 1, inner = 1;

  __host__ __device__ int64_t count() const { return outer * inner; }
  /// Where line `l` starts; its element j lies j * inner further.
  __device__ int64_t base(int64_t l) const {
    return l / inner * dim * inner + l % inner;
  }
};

/// The lines of `shape` along `axis` (negative: from the end); false when
/// the axis is out of range.
bool linesAlong(const Shape &shape, int64_t axis, Lines &lines) {
  int64_t rank = static_cast<int64_t>(shape.size());
  if (axis < -rank || axis >= rank)
    return false;
  if (axis < 0)
    axis += rank;
  lines = Lines{};
  for (int64_t d = 0; d < axis; ++d)
    lines.outer *= shape[d];
  lines.dim = shape[axis];
  for (int64_t d = axis + 1; d < rank; ++d)
    lines.inner *= shape[d];
  return true;
}

/// Blocks for one block per row (grid-stride beyond the grid's limit).
unsigned rowBlocks(int64_t rows) { return blocksFor(rows, 1); }

/// Stream-ordered scratch of `count` elements (none when count is 0).
template <typename T>
cudaError_t allocScratch(T **p, int64_t count, cudaStream_t stream) {
  *p = nullptr;
  if (count <= 0)
    return cudaSuccess;
  return cudaMallocAsync(reinterpret_cast<void **>(p),
                         static_cast<size_t>(count) * sizeof(T), stream);
}

/// Frees scratch after the kernels that use it; returns the first error.
cudaError_t freeScratch(void *p, cudaError_t err, cudaStream_t stream) {
  if (!p)
    return err;
  cudaError_t freed = cudaFreeAsync(p, stream);
  return err != cudaSuccess ? err : freed;
}

bool isLabel(DType d) { return d == DType::I64 || d == DType::I32; }

//===--- Reduce -----------------------------------------------------------===//

/// A partial result with the index of the element it came from (Max, Min,
/// argMax; -1 before any element).
struct Partial {
  double value;
  int64_t index;
};

/// Where each output's elements lie: the kept dimensions (in the output's
/// order) and the reduced ones, with x's strides.
struct ReducePlan {
  Indexer kept, reduced;
  int64_t count; // elements per output
};

__device__ Partial startPartial(Reduction kind) {
  return {kind == Reduction::Prod ? 1.0 : 0.0, -1};
}

/// Folds `next` (an element, or another thread's partial) into `acc`. Max
/// and Min skip NaN here (the CPU's std::max fold keeps a NaN only as its
/// first element; finishReduce restores that case) and keep the earliest
/// of equal values, as the sequential fold does.
__device__ Partial fold(Reduction kind, Partial acc, Partial next) {
  switch (kind) {
  case Reduction::Prod:
    acc.value *= next.value;
    return acc;
  case Reduction::Max:
  case Reduction::Min: {
    if (next.index < 0 || isnan(next.value))
      return acc;
    if (acc.index < 0)
      return next;
    bool better = kind == Reduction::Max ? acc.value < next.value
                                         : next.value < acc.value;
    bool earlierTie = acc.value == next.value && next.index < acc.index;
    return better || earlierTie ? next : acc;
  }
  default:
    acc.value += next.value;
    return acc;
  }
}

/// The output value: empty Max/Min give 0, Mean divides by the count.
__device__ float finishReduce(Reduction kind, Partial acc, double first,
                              int64_t count) {
  switch (kind) {
  case Reduction::Max:
  case Reduction::Min:
    if (count == 0)
      return 0.0f;
    return static_cast<float>(isnan(first) ? first : acc.value);
  case Reduction::Mean:
    return static_cast<float>(acc.value / (count > 0 ? count : 1));
  default:
    return static_cast<float>(acc.value);
  }
}

/// One thread per output: many outputs, each over few elements.
__global__ void reduceThreadKernel(Reduction kind, ReducePlan plan,
                                   int64_t outCount, const void *x, bool xBf16,
                                   void *out, bool outBf16) {
  GALV_FOR_EACH(o, outCount) {
    int64_t base = plan.kept.offset(o);
    Partial acc = startPartial(kind);
    for (int64_t k = 0; k < plan.count; ++k)
      acc =
          fold(kind, acc, {loadF(x, base + plan.reduced.offset(k), xBf16), k});
    double first = plan.count > 0 ? loadF(x, base, xBf16) : 0.0;
    storeF(out, o, outBf16, finishReduce(kind, acc, first, plan.count));
  }
}

/// One block per output: few outputs, each over many elements.
__global__ void reduceBlockKernel(Reduction kind, ReducePlan plan,
                                  int64_t outCount, const void *x, bool xBf16,
                                  void *out, bool outBf16) {
  for (int64_t o = blockIdx.x; o < outCount; o += gridDim.x) {
    int64_t base = plan.kept.offset(o);
    Partial acc = startPartial(kind);
    for (int64_t k = threadIdx.x; k < plan.count; k += blockDim.x)
      acc =
          fold(kind, acc, {loadF(x, base + plan.reduced.offset(k), xBf16), k});
    acc = blockReduce(
        acc, [kind](Partial a, Partial b) { return fold(kind, a, b); });
    if (threadIdx.x == 0) {
      double first = plan.count > 0 ? loadF(x, base, xBf16) : 0.0;
      storeF(out, o, outBf16, finishReduce(kind, acc, first, plan.count));
    }
  }
}

//===--- Softmax, log-softmax, argMax -------------------------------------===//

/// softmax (or log-softmax) of each line: the CPU's order of rounding (each
/// exponential rounded to float, summed in double, divided in double).
__global__ void softmaxKernel(Lines lines, const void *x, bool xBf16, void *out,
                              bool outBf16, bool logForm) {
  for (int64_t l = blockIdx.x; l < lines.count(); l += gridDim.x) {
    int64_t base = lines.base(l), step = lines.inner;
    // Max from -inf: NaN never enters it (the CPU's lineMax).
    float max = -CUDART_INF_F;
    for (int64_t j = threadIdx.x; j < lines.dim; j += blockDim.x)
      max = MaxOp()(max, loadF(x, base + j * step, xBf16));
    max = blockReduce(max, MaxOp());
    double sum = 0;
    for (int64_t j = threadIdx.x; j < lines.dim; j += blockDim.x)
      sum += expf(loadF(x, base + j * step, xBf16) - max);
    sum = blockReduce(sum, AddOp());
    double shift = max + log(sum);
    for (int64_t j = threadIdx.x; j < lines.dim; j += blockDim.x) {
      float v = loadF(x, base + j * step, xBf16);
      float r = logForm ? static_cast<float>(v - shift)
                        : static_cast<float>(double(expf(v - max)) / sum);
      storeF(out, base + j * step, outBf16, r);
    }
  }
}

/// Element i of any tensor argMax takes, as a double (the CPU's valueAt).
__device__ double valueAt(const void *p, int64_t i, DType d) {
  switch (d) {
  case DType::F32:
    return static_cast<const float *>(p)[i];
  case DType::BF16:
    return loadF(p, i, true);
  case DType::F64:
    return static_cast<const double *>(p)[i];
  default:
    return static_cast<double>(loadI(p, i, d));
  }
}

/// The better of two candidates, whatever order they were seen in: any
/// NaN beats a number and the first NaN wins (the CPU scan keeps the first
/// NaN even with selectLast); among equal numbers the first, or the last
/// with selectLast.
__device__ Partial pickArg(Partial a, Partial b, bool selectLast) {
  if (a.index < 0)
    return b;
  if (b.index < 0)
    return a;
  bool aNan = isnan(a.value), bNan = isnan(b.value);
  if (aNan || bNan) {
    if (aNan && bNan)
      return a.index < b.index ? a : b;
    return aNan ? a : b;
  }
  if (a.value != b.value)
    return a.value > b.value ? a : b;
  return (selectLast ? a.index > b.index : a.index < b.index) ? a : b;
}

__global__ void argMaxKernel(Lines lines, const void *x, DType dtype,
                             bool selectLast, int64_t *out) {
  for (int64_t l = blockIdx.x; l < lines.count(); l += gridDim.x) {
    int64_t base = lines.base(l);
    Partial best = {0.0, -1};
    for (int64_t j = threadIdx.x; j < lines.dim; j += blockDim.x)
      best = pickArg(best, {valueAt(x, base + j * lines.inner, dtype), j},
                     selectLast);
    best = blockReduce(best, [selectLast](Partial a, Partial b) {
      return pickArg(a, b, selectLast);
    });
    // An empty line (dim 0) has no index; 0 as the CPU's scan starts.
    if (threadIdx.x == 0)
      out[l] = best.index < 0 ? 0 : best.index;
  }
}

//===--- Layer norm and RMS norm ------------------------------------------===//

/// A float tensor and whether it is bf16.
struct FloatIn {
  const void *data;
  bool bf16;
  __device__ float operator[](int64_t i) const { return loadF(data, i, bf16); }
};
struct FloatOut {
  void *data;
  bool bf16;
  __device__ void store(int64_t i, float v) const { storeF(data, i, bf16, v); }
};

FloatIn reader(const DeviceView &v) { return {v.data, v.dtype == DType::BF16}; }
FloatOut writer(DeviceView &v) { return {v.data, v.dtype == DType::BF16}; }

/// The mean of row `x[0, d)` and 1 / sqrt(variance + eps), as the CPU's
/// layerNorm and rowMoments compute them (double, two passes).
__device__ void rowMoments(FloatIn x, int64_t base, int64_t d, double eps,
                           double &mean, double &rstd) {
  double sum = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    sum += x[base + j];
  mean = blockReduce(sum, AddOp()) / d;
  double var = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double c = x[base + j] - mean;
    var += c * c;
  }
  var = blockReduce(var, AddOp()) / d;
  rstd = 1.0 / sqrt(var + eps);
}

/// 1 / sqrt(mean(x^2) + eps) of a row, as rmsNorm computes it.
__device__ double rowInverseRms(FloatIn x, int64_t base, int64_t d,
                                double eps) {
  double ms = 0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double v = x[base + j];
    ms += v * v;
  }
  ms = blockReduce(ms, AddOp());
  return 1.0 / sqrt(ms / d + eps);
}

__global__ void layerNormKernel(FloatIn x, FloatIn scale, FloatIn bias,
                                bool hasBias, int64_t rows, int64_t d,
                                double eps, FloatOut out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * d;
    double mean, inv;
    rowMoments(x, base, d, eps, mean, inv);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
      out.store(base + j,
                static_cast<float>((x[base + j] - mean) * inv * scale[j] +
                                   (hasBias ? double(bias[j]) : 0.0)));
  }
}

__global__ void rmsNormKernel(FloatIn x, FloatIn scale, int64_t rows, int64_t d,
                              double eps, FloatOut out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * d;
    double inv = rowInverseRms(x, base, d, eps);
    // Normalised in double, rounded to float, then scaled in float.
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
      out.store(base + j, static_cast<float>(x[base + j] * inv) * scale[j]);
  }
}

/// galv.add_norm: each block stores its row's sum, then normalises the sum
/// as it was stored (rounded to the sum's type), as the CPU does.
__global__ void addNormKernel(FloatIn x, FloatIn residual, FloatIn scale,
                              FloatIn bias, bool hasBias, bool rms,
                              int64_t rows, int64_t d, double eps, FloatOut sum,
                              FloatOut out) {
  FloatIn stored{sum.data, sum.bf16};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
      sum.store(base + j, __fadd_rn(x[base + j], residual[base + j]));
    __syncthreads(); // the row's sum, written by the whole block
    if (rms) {
      double inv = rowInverseRms(stored, base, d, eps);
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        out.store(base + j,
                  static_cast<float>(stored[base + j] * inv) * scale[j]);
    } else {
      double mean, inv;
      rowMoments(stored, base, d, eps, mean, inv);
      for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
        out.store(base + j, static_cast<float>(
                                (stored[base + j] - mean) * inv * scale[j] +
                                (hasBias ? double(bias[j]) : 0.0)));
    }
    __syncthreads(); // before the next row's reductions reuse shared memory
  }
}

/// dx of one layer-norm row per block; stores each row's (mean, rstd) in
/// `stats` for the column sums.
__global__ void layerNormGradKernel(FloatIn x, FloatIn scale, FloatIn dy,
                                    int64_t rows, int64_t d, double eps,
                                    FloatOut dx, double *stats) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * d;
    double mean, rstd;
    rowMoments(x, base, d, eps, mean, rstd);
    // dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy * scale.
    double sumG = 0, sumGX = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      double xhat = (x[base + j] - mean) * rstd;
      double g = double(dy[base + j]) * scale[j];
      sumG += g;
      sumGX += g * xhat;
    }
    double meanG = blockReduce(sumG, AddOp()) / d;
    double meanGX = blockReduce(sumGX, AddOp()) / d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      double xhat = (x[base + j] - mean) * rstd;
      double g = double(dy[base + j]) * scale[j];
      dx.store(base + j,
               static_cast<float>(rstd * (g - meanG - xhat * meanGX)));
    }
    if (threadIdx.x == 0) {
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
  }
}

/// dx of one RMS-norm row per block; stores (0, 1 / rms) per row in `stats`
/// (so that the column sums read x * r as (x - 0) * r).
__global__ void rmsNormGradKernel(FloatIn x, FloatIn scale, FloatIn dy,
                                  int64_t rows, int64_t d, double eps,
                                  FloatOut dx, double *stats) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * d;
    double inv = rowInverseRms(x, base, d, eps);
    // dx = r (g - n mean(g n)) with n = x r and g = dy * scale.
    double sumGN = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
      sumGN += double(dy[base + j]) * scale[j] * (x[base + j] * inv);
    double meanGN = blockReduce(sumGN, AddOp()) / d;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      double g = double(dy[base + j]) * scale[j];
      dx.store(base + j,
               static_cast<float>(inv * (g - x[base + j] * inv * meanGN)));
    }
    if (threadIdx.x == 0) {
      stats[2 * r] = 0.0;
      stats[2 * r + 1] = inv;
    }
  }
}

/// dscale[j] = sum over rows of dy * (x - shift) * factor (the row's xhat),
/// and dbias[j] = sum of dy when wanted: one thread per column, rows in
/// order, in double.
__global__ void normColumnsKernel(FloatIn x, FloatIn dy, const double *stats,
                                  int64_t rows, int64_t d, FloatOut dscale,
                                  FloatOut dbias, bool hasBias) {
  GALV_FOR_EACH(j, d) {
    double ds = 0, db = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double xhat = (x[r * d + j] - stats[2 * r]) * stats[2 * r + 1];
      float g = dy[r * d + j];
      ds += g * xhat;
      db += g;
    }
    dscale.store(j, static_cast<float>(ds));
    if (hasBias)
      dbias.store(j, static_cast<float>(db));
  }
}

//===--- Rotary, GELU's gradient, AdamW -----------------------------------===//

/// One thread per element of x [rows, dim]: the first `rotated` of each row
/// rotated by cos, sin (read through `table`, their broadcast to
/// [rows, rotated]), the rest copied.
__global__ void rotaryKernel(FloatIn x, FloatIn cos, FloatIn sin, Indexer table,
                             int64_t n, int64_t dim, int64_t rotated,
                             bool interleaved, FloatOut out) {
  int64_t half = rotated / 2;
  GALV_FOR_EACH(i, n) {
    int64_t r = i / dim, j = i % dim;
    if (j >= rotated) {
      out.store(i, x[i]);
      continue;
    }
    // rotate_half: [-x2, x1]; interleaved pairs (2i, 2i+1) likewise.
    float partner;
    if (interleaved)
      partner = j % 2 == 0 ? -x[i + 1] : x[i - 1];
    else
      partner = j < half ? -x[i + half] : x[i - half];
    int64_t t = table.offset(r * rotated + j);
    out.store(i, mul(x[i], cos[t]) + mul(partner, sin[t]));
  }
}

/// The decomposed rule's constants (computed as the CPU does, on the host).
struct GeluConstants {
  float c, k, k3, invSqrt2, invSqrt2Pi;
};

__global__ void geluGradKernel(FloatIn x, FloatIn dy, int64_t n, bool tanhForm,
                               GeluConstants g, FloatOut dx) {
  GALV_FOR_EACH(i, n) {
    float v = x[i], r;
    if (tanhForm) {
      float v2 = v * v;
      float t = tanhf((v * (1.0f + mul(v2, g.k))) * g.c);
      float du = (1.0f + mul(v2, g.k3)) * g.c;
      r = mul(1.0f + t, 0.5f) + mul(v * 0.5f, (1.0f - mul(t, t)) * du);
    } else {
      float cdf = mul(1.0f + erff(v * g.invSqrt2), 0.5f);
      float pdf = expf((v * v) * -0.5f) * g.invSqrt2Pi;
      r = cdf + mul(v, pdf);
    }
    dx.store(i, dy[i] * r);
  }
}

/// AdamW's settings as the CPU rounds them to float.
struct AdamWConstants {
  float b1, b2, logB1, logB2, weightDecay, eps, oneMinusB1, oneMinusB2;
};

/// Each element read before it is written: the outputs may be the inputs
/// (the executor updates optimizer state in place).
__global__ void adamwKernel(AdamWConstants s, int64_t n, const float *param,
                            const float *grad, const float *m, const float *v,
                            const float *lrAt, const float *stepAt,
                            float *newParam, float *newM, float *newV) {
  float lr = *lrAt, step = *stepAt;
  // 1 - exp(t ln beta) as the CPU's expf computes it: exp in double,
  // rounded once to float.
  float bc1 = 1.0f - static_cast<float>(exp(double(step * s.logB1)));
  float bc2 = 1.0f - static_cast<float>(exp(double(step * s.logB2)));
  float decay = 1.0f - mul(lr, s.weightDecay);
  GALV_FOR_EACH(i, n) {
    float g = grad[i];
    float mi = mul(m[i], s.b1) + mul(g, s.oneMinusB1);
    float vi = mul(v[i], s.b2) + mul(g * g, s.oneMinusB2);
    float denom = sqrtf(vi / bc2) + s.eps;
    float p = mul(param[i], decay) - mul(mi / bc1 / denom, lr);
    newM[i] = mi;
    newV[i] = vi;
    newParam[i] = p;
  }
}

//===--- Cross-entropy ----------------------------------------------------===//

/// The line's max from -inf over its numbers (see softmaxKernel) and the
/// double sum of expf(x - max), each exponential rounded to float.
__device__ void rowLogSumExp(FloatIn x, int64_t base, int64_t n, float &max,
                             double &sum) {
  max = -CUDART_INF_F;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    max = MaxOp()(max, x[base + j]);
  max = blockReduce(max, MaxOp());
  sum = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    sum += expf(x[base + j] - max);
  sum = blockReduce(sum, AddOp());
}

/// Each row's loss, log(sum) + max - x[label] (0 for an ignored row, NaN
/// for a label out of range, which the CPU asserts away).
__global__ void crossEntropyRowsKernel(FloatIn logits, const void *labels,
                                       DType labelType, int64_t rows,
                                       int64_t classes, int64_t ignoreIndex,
                                       double *rowLoss) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t label = loadI(labels, r, labelType);
    if (label == ignoreIndex) {
      if (threadIdx.x == 0)
        rowLoss[r] = 0.0;
      continue;
    }
    float max;
    double sum;
    rowLogSumExp(logits, r * classes, classes, max, sum);
    if (threadIdx.x == 0)
      rowLoss[r] = label >= 0 && label < classes
                       ? log(sum) + max - logits[r * classes + label]
                       : CUDART_NAN;
  }
}

/// The rows that count: labels other than ignoreIndex (one block).
__device__ int64_t countedRows(const void *labels, DType labelType,
                               int64_t rows, int64_t ignoreIndex) {
  int64_t counted = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    counted += loadI(labels, r, labelType) != ignoreIndex;
  return blockReduce(counted, AddOp());
}

/// The loss: the counted rows' sum, or its mean (0 when none count). One
/// block.
__global__ void crossEntropyTotalKernel(const double *rowLoss,
                                        const void *labels, DType labelType,
                                        int64_t rows, int64_t ignoreIndex,
                                        bool mean, FloatOut out) {
  double total = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    if (loadI(labels, r, labelType) != ignoreIndex)
      total += rowLoss[r];
  total = blockReduce(total, AddOp());
  int64_t counted = countedRows(labels, labelType, rows, ignoreIndex);
  if (threadIdx.x == 0)
    out.store(0, static_cast<float>(mean ? (counted ? total / counted : 0.0)
                                         : total));
}

__global__ void countRowsKernel(const void *labels, DType labelType,
                                int64_t rows, int64_t ignoreIndex,
                                int64_t *counted) {
  int64_t c = countedRows(labels, labelType, rows, ignoreIndex);
  if (threadIdx.x == 0)
    *counted = c;
}

/// (softmax(row) - one_hot(label)) / divisor * dloss per row, rounded in
/// the CPU's order; ignored rows are zero.
__global__ void crossEntropyGradKernel(FloatIn logits, const void *labels,
                                       DType labelType, int64_t rows,
                                       int64_t classes, int64_t ignoreIndex,
                                       bool mean, FloatIn dlossAt,
                                       const int64_t *countedAt, FloatOut out) {
  float dloss = dlossAt[0];
  int64_t counted = *countedAt;
  // Sum: dloss per row; mean: dloss over the rows that count (none: 0).
  float divisor = mean ? static_cast<float>(counted) : 1.0f;
  if (mean && !counted) {
    dloss = 0.0f;
    divisor = 1.0f;
  }
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    int64_t base = r * classes, label = loadI(labels, r, labelType);
    if (label == ignoreIndex) {
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x)
        out.store(base + c, 0.0f);
      continue;
    }
    float max;
    double sum;
    rowLogSumExp(logits, base, classes, max, sum);
    double inverse = 1.0 / sum;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      float p =
          static_cast<float>(double(expf(logits[base + c] - max)) * inverse);
      if (c == label)
        p -= 1.0f;
      out.store(base + c, p / divisor * dloss);
    }
  }
}

} // namespace

//===--- Launchers --------------------------------------------------------===//

cudaError_t reduce(Reduction kind, const DeviceView &x,
                   const std::vector<int64_t> &axes, DeviceView &out,
                   cudaStream_t stream) {
  if (!isDeviceFloat(x.dtype) || !isDeviceFloat(out.dtype) ||
      x.rank() > kMaxRank)
    return cudaErrorNotSupported;
  int rank = static_cast<int>(x.rank());
  bool reduced[kMaxRank] = {};
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return cudaErrorInvalidValue;
    reduced[a < 0 ? a + rank : a] = true;
  }
  ReducePlan plan{};
  plan.count = 1;
  int64_t stride = 1, outCount = 1;
  int64_t strides[kMaxRank] = {};
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= x.shape[d];
  }
  for (int d = 0; d < rank; ++d) {
    Indexer &ix = reduced[d] ? plan.reduced : plan.kept;
    ix.dims[ix.rank] = x.shape[d];
    ix.strides[ix.rank++] = strides[d];
    if (reduced[d])
      plan.count *= x.shape[d];
    else
      outCount *= x.shape[d];
  }
  if (out.size() != outCount)
    return cudaErrorInvalidValue;
  if (outCount == 0)
    return cudaSuccess;
  bool xBf16 = x.dtype == DType::BF16, outBf16 = out.dtype == DType::BF16;
  // Few outputs over many elements each: a block per output keeps the GPU
  // busy; otherwise a thread per output.
  if (outCount < 65536 && plan.count >= kThreads)
    reduceBlockKernel<<<rowBlocks(outCount), kThreads, 0, stream>>>(
        kind, plan, outCount, x.data, xBf16, out.data, outBf16);
  else
    reduceThreadKernel<<<blocksFor(outCount), kThreads, 0, stream>>>(
        kind, plan, outCount, x.data, xBf16, out.data, outBf16);
  return launched();
}

static cudaError_t softmaxLike(const DeviceView &x, int64_t axis,
                               DeviceView &out, bool logForm,
                               cudaStream_t stream) {
  if (!isDeviceFloat(x.dtype) || !isDeviceFloat(out.dtype))
    return cudaErrorNotSupported;
  Lines lines;
  if (!linesAlong(x.shape, axis, lines) || out.size() != x.size())
    return cudaErrorInvalidValue;
  if (lines.count() == 0 || lines.dim == 0)
    return cudaSuccess;
  softmaxKernel<<<rowBlocks(lines.count()), kThreads, 0, stream>>>(
      lines, x.data, x.dtype == DType::BF16, out.data, out.dtype == DType::BF16,
      logForm);
  return launched();
}

cudaError_t softmax(const DeviceView &x, int64_t axis, DeviceView &out,
                    cudaStream_t stream) {
  return softmaxLike(x, axis, out, false, stream);
}

cudaError_t logSoftmax(const DeviceView &x, int64_t axis, DeviceView &out,
                       cudaStream_t stream) {
  return softmaxLike(x, axis, out, true, stream);
}

cudaError_t argMax(const DeviceView &x, int64_t axis, bool selectLast,
                   DeviceView &out, cudaStream_t stream) {
  if (x.dtype != DType::F32 && x.dtype != DType::BF16 &&
      x.dtype != DType::F64 && x.dtype != DType::I64 && x.dtype != DType::I32 &&
      x.dtype != DType::Bool)
    return cudaErrorNotSupported;
  if (out.dtype != DType::I64)
    return cudaErrorNotSupported;
  Lines lines;
  if (!linesAlong(x.shape, axis, lines) || out.size() != lines.count())
    return cudaErrorInvalidValue;
  if (lines.count() == 0)
    return cudaSuccess;
  argMaxKernel<<<rowBlocks(lines.count()), kThreads, 0, stream>>>(
      lines, x.data, x.dtype, selectLast, static_cast<int64_t *>(out.data));
  return launched();
}

/// Rows and row size of a norm's input, its scale (and others) checked
/// against it; cudaSuccess when they agree.
static cudaError_t normDims(const DeviceView &x, const DeviceView &scale,
                            const DeviceView &out, int64_t &rows, int64_t &d) {
  if (!isDeviceFloat(x.dtype) || !isDeviceFloat(scale.dtype) ||
      !isDeviceFloat(out.dtype))
    return cudaErrorNotSupported;
  if (x.rank() < 1 || scale.size() != x.shape.back() || out.size() != x.size())
    return cudaErrorInvalidValue;
  d = x.shape.back();
  rows = d > 0 ? x.size() / d : 0;
  return cudaSuccess;
}

cudaError_t layerNorm(const DeviceView &x, const DeviceView &scale,
                      const DeviceView *bias, double eps, DeviceView &out,
                      cudaStream_t stream) {
  int64_t rows, d;
  if (cudaError_t err = normDims(x, scale, out, rows, d))
    return err;
  if (bias && !isDeviceFloat(bias->dtype))
    return cudaErrorNotSupported;
  if (bias && bias->size() != d)
    return cudaErrorInvalidValue;
  if (rows == 0)
    return cudaSuccess;
  FloatIn b = bias ? reader(*bias) : FloatIn{nullptr, false};
  layerNormKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
      reader(x), reader(scale), b, bias != nullptr, rows, d, eps, writer(out));
  return launched();
}

cudaError_t rmsNorm(const DeviceView &x, const DeviceView &scale, double eps,
                    DeviceView &out, cudaStream_t stream) {
  int64_t rows, d;
  if (cudaError_t err = normDims(x, scale, out, rows, d))
    return err;
  if (rows == 0)
    return cudaSuccess;
  rmsNormKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
      reader(x), reader(scale), rows, d, eps, writer(out));
  return launched();
}

cudaError_t addNorm(const DeviceView &x, const DeviceView &residual,
                    const DeviceView &scale, const DeviceView *bias, bool rms,
                    double eps, DeviceView &sum, DeviceView &out,
                    cudaStream_t stream) {
  int64_t rows, d;
  if (cudaError_t err = normDims(x, scale, out, rows, d))
    return err;
  if (!isDeviceFloat(residual.dtype) || !isDeviceFloat(sum.dtype) ||
      (bias && !isDeviceFloat(bias->dtype)))
    return cudaErrorNotSupported;
  if (residual.shape != x.shape || sum.shape != x.shape ||
      (bias && bias->size() != d))
    return cudaErrorInvalidValue;
  if (rows == 0)
    return cudaSuccess;
  FloatIn b = bias ? reader(*bias) : FloatIn{nullptr, false};
  addNormKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
      reader(x), reader(residual), reader(scale), b, bias != nullptr, rms, rows,
      d, eps, writer(sum), writer(out));
  return launched();
}

/// A norm's gradient: dx row by row (layer norm or RMS norm), then the
/// column sums from the rows' statistics. `dbias` with no data: none.
static cudaError_t normGrad(bool layer, const DeviceView &x,
                            const DeviceView &scale, const DeviceView &dy,
                            double eps, DeviceView &dx, DeviceView &dscale,
                            DeviceView *dbias, cudaStream_t stream) {
  int64_t rows, d;
  if (cudaError_t err = normDims(x, scale, dx, rows, d))
    return err;
  bool hasBias = dbias && dbias->data;
  if (!isDeviceFloat(dy.dtype) || !isDeviceFloat(dscale.dtype) ||
      (hasBias && !isDeviceFloat(dbias->dtype)))
    return cudaErrorNotSupported;
  if (dy.size() != x.size() || dscale.size() != d ||
      (hasBias && dbias->size() != d))
    return cudaErrorInvalidValue;
  if (d == 0)
    return cudaSuccess;
  double *stats;
  if (cudaError_t err = allocScratch(&stats, 2 * rows, stream))
    return err;
  cudaError_t err = cudaSuccess;
  if (rows > 0) {
    if (layer)
      layerNormGradKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
          reader(x), reader(scale), reader(dy), rows, d, eps, writer(dx),
          stats);
    else
      rmsNormGradKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
          reader(x), reader(scale), reader(dy), rows, d, eps, writer(dx),
          stats);
    err = launched();
  }
  // Also with no rows: the sums are then zeros.
  if (err == cudaSuccess) {
    FloatOut db = hasBias ? writer(*dbias) : FloatOut{nullptr, false};
    normColumnsKernel<<<blocksFor(d), kThreads, 0, stream>>>(
        reader(x), reader(dy), stats, rows, d, writer(dscale), db, hasBias);
    err = launched();
  }
  return freeScratch(stats, err, stream);
}

cudaError_t layerNormGrad(const DeviceView &x, const DeviceView &scale,
                          const DeviceView &dy, double eps, DeviceView &dx,
                          DeviceView &dscale, DeviceView &dbias,
                          cudaStream_t stream) {
  return normGrad(true, x, scale, dy, eps, dx, dscale, &dbias, stream);
}

cudaError_t rmsNormGrad(const DeviceView &x, const DeviceView &scale,
                        const DeviceView &dy, double eps, DeviceView &dx,
                        DeviceView &dscale, cudaStream_t stream) {
  return normGrad(false, x, scale, dy, eps, dx, dscale, nullptr, stream);
}

cudaError_t rotary(const DeviceView &x, const DeviceView &cos,
                   const DeviceView &sin, bool interleaved, DeviceView &out,
                   cudaStream_t stream) {
  if (!isDeviceFloat(x.dtype) || !isDeviceFloat(cos.dtype) ||
      !isDeviceFloat(sin.dtype) || !isDeviceFloat(out.dtype))
    return cudaErrorNotSupported;
  if (x.rank() < 1 || cos.rank() < 1 || cos.shape != sin.shape ||
      out.size() != x.size())
    return cudaErrorInvalidValue;
  int64_t dim = x.shape.back(), rotated = cos.shape.back();
  if (rotated % 2 != 0 || rotated > dim)
    return cudaErrorInvalidValue;
  if (x.size() == 0)
    return cudaSuccess;
  // cos and sin broadcast to x's shape with the last dimension `rotated`.
  Shape table = x.shape;
  table.back() = rotated;
  Indexer ix;
  if (!broadcastIndexer(cos.shape, table, ix))
    return cudaErrorNotSupported;
  // Dimensions that neither match nor are 1 would read past cos and sin.
  size_t lead = table.size() - cos.shape.size();
  for (size_t d = 0; d < cos.shape.size(); ++d)
    if (cos.shape[d] != 1 && cos.shape[d] != table[lead + d])
      return cudaErrorInvalidValue;
  rotaryKernel<<<blocksFor(x.size()), kThreads, 0, stream>>>(
      reader(x), reader(cos), reader(sin), ix, x.size(), dim, rotated,
      interleaved, writer(out));
  return launched();
}

cudaError_t crossEntropy(const DeviceView &logits, const DeviceView &labels,
                         bool mean, int64_t ignoreIndex, DeviceView &out,
                         cudaStream_t stream) {
  if (!isDeviceFloat(logits.dtype) || !isLabel(labels.dtype) ||
      !isDeviceFloat(out.dtype))
    return cudaErrorNotSupported;
  int64_t rows = labels.size();
  if (logits.rank() < 1 || out.size() != 1 ||
      logits.size() != rows * logits.shape.back())
    return cudaErrorInvalidValue;
  int64_t classes = logits.shape.back();
  double *rowLoss;
  if (cudaError_t err = allocScratch(&rowLoss, rows, stream))
    return err;
  cudaError_t err = cudaSuccess;
  if (rows > 0) {
    crossEntropyRowsKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
        reader(logits), labels.data, labels.dtype, rows, classes, ignoreIndex,
        rowLoss);
    err = launched();
  }
  if (err == cudaSuccess) {
    crossEntropyTotalKernel<<<1, kThreads, 0, stream>>>(
        rowLoss, labels.data, labels.dtype, rows, ignoreIndex, mean,
        writer(out));
    err = launched();
  }
  return freeScratch(rowLoss, err, stream);
}

cudaError_t crossEntropyGrad(const DeviceView &logits, const DeviceView &labels,
                             const DeviceView &dloss, bool mean,
                             int64_t ignoreIndex, DeviceView &out,
                             cudaStream_t stream) {
  if (!isDeviceFloat(logits.dtype) || !isLabel(labels.dtype) ||
      !isDeviceFloat(dloss.dtype) || !isDeviceFloat(out.dtype))
    return cudaErrorNotSupported;
  int64_t rows = labels.size();
  if (logits.rank() < 1 || dloss.size() != 1 || out.size() != logits.size() ||
      logits.size() != rows * logits.shape.back())
    return cudaErrorInvalidValue;
  int64_t classes = logits.shape.back();
  if (rows == 0 || classes == 0)
    return cudaSuccess;
  int64_t *counted;
  if (cudaError_t err = allocScratch(&counted, 1, stream))
    return err;
  countRowsKernel<<<1, kThreads, 0, stream>>>(labels.data, labels.dtype, rows,
                                              ignoreIndex, counted);
  cudaError_t err = launched();
  if (err == cudaSuccess) {
    crossEntropyGradKernel<<<rowBlocks(rows), kThreads, 0, stream>>>(
        reader(logits), labels.data, labels.dtype, rows, classes, ignoreIndex,
        mean, reader(dloss), counted, writer(out));
    err = launched();
  }
  return freeScratch(counted, err, stream);
}

cudaError_t geluGrad(const DeviceView &x, const DeviceView &dy, bool tanhForm,
                     DeviceView &dx, cudaStream_t stream) {
  if (!isDeviceFloat(x.dtype) || !isDeviceFloat(dy.dtype) ||
      !isDeviceFloat(dx.dtype))
    return cudaErrorNotSupported;
  if (dy.size() != x.size() || dx.size() != x.size())
    return cudaErrorInvalidValue;
  if (x.size() == 0)
    return cudaSuccess;
  GeluConstants g;
  g.c = static_cast<float>(std::sqrt(2.0 / M_PI));
  g.k = 0.044715f;
  g.k3 = static_cast<float>(3 * 0.044715);
  g.invSqrt2 = static_cast<float>(1 / std::sqrt(2.0));
  g.invSqrt2Pi = static_cast<float>(1 / std::sqrt(2 * M_PI));
  geluGradKernel<<<blocksFor(x.size()), kThreads, 0, stream>>>(
      reader(x), reader(dy), x.size(), tanhForm, g, writer(dx));
  return launched();
}

cudaError_t adamwUpdate(double beta1, double beta2, double epsilon,
                        double weightDecay, const DeviceView &param,
                        const DeviceView &grad, const DeviceView &m,
                        const DeviceView &v, const DeviceView &lr,
                        const DeviceView &step, DeviceView &newParam,
                        DeviceView &newM, DeviceView &newV,
                        cudaStream_t stream) {
  auto f32 = [](const DeviceView &t) { return t.dtype == DType::F32; };
  if (!f32(param) || !f32(grad) || !f32(m) || !f32(v) || !f32(lr) ||
      !f32(step) || !f32(newParam) || !f32(newM) || !f32(newV))
    return cudaErrorNotSupported;
  int64_t n = param.size();
  if (grad.size() != n || m.size() != n || v.size() != n ||
      newParam.size() != n || newM.size() != n || newV.size() != n ||
      lr.size() != 1 || step.size() != 1)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  AdamWConstants s;
  s.b1 = static_cast<float>(beta1);
  s.b2 = static_cast<float>(beta2);
  s.logB1 = static_cast<float>(std::log(beta1));
  s.logB2 = static_cast<float>(std::log(beta2));
  s.weightDecay = static_cast<float>(weightDecay);
  s.eps = static_cast<float>(epsilon);
  s.oneMinusB1 = static_cast<float>(1 - beta1);
  s.oneMinusB2 = static_cast<float>(1 - beta2);
  auto f = [](const DeviceView &t) {
    return static_cast<const float *>(t.data);
  };
  adamwKernel<<<blocksFor(n), kThreads, 0, stream>>>(
      s, n, f(param), f(grad), f(m), f(v), f(lr), f(step),
      static_cast<float *>(newParam.data), static_cast<float *>(newM.data),
      static_cast<float *>(newV.data));
  return launched();
}

} // namespace galvatron::rt::cuda
