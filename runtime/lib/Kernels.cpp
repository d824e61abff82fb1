//===- Kernels.cpp - CPU reference kernels --------------------------------===//
//
// The executor and the compiler check what these kernels assume (shapes that
// agree, axes and indices in range) before calling them; the asserts below
// restate those assumptions in Debug builds (NDEBUG undefined) and cost
// nothing in Release.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Kernels.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>

namespace galvatron::rt {

void setKernelThreads(int threads) {
#ifdef _OPENMP
  omp_set_num_threads(std::max(1, threads));
#else
  (void)threads;
#endif
}

/// Below this many multiply-adds a GEMM is not worth splitting across
/// threads.
constexpr int64_t kSmallGemm = int64_t(256) * 256 * 256;

// OpenBLAS runs on one thread: two spinning thread pools on the same cores
// slow each other down.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
          float beta, float *c, int64_t ldc) {
  static const bool singleThreadedBlas = (openblas_set_num_threads(1), true);
  (void)singleThreadedBlas;
  CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans;
  CBLAS_TRANSPOSE tb = transB ? CblasTrans : CblasNoTrans;
  int64_t blocks = 1;
#ifdef _OPENMP
  if (!omp_in_parallel() && m * n * k > kSmallGemm)
    blocks = std::min<int64_t>(omp_get_max_threads(), (m + 31) / 32);
#endif
  if (blocks <= 1) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
    return;
  }
  int64_t rowsPerBlock = (m + blocks - 1) / blocks;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    int64_t first = block * rowsPerBlock;
    int64_t rows = std::min(rowsPerBlock, m - first);
    // Rows of op(A) are columns of A when it is transposed.
    const float *aRows = transA ? a + first : a + first * lda;
    if (rows > 0)
      cblas_sgemm(CblasRowMajor, ta, tb, rows, n, k, alpha, aRows, lda, b, ldb,
                  beta, c + first * ldc, ldc);
  }
}

namespace {

std::vector<int64_t> stridesOf(const Shape &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

/// Strides for reading `in` as if broadcast to `out` (0 on stretched dims).
std::vector<int64_t> broadcastStrides(const Shape &in, const Shape &out) {
  std::vector<int64_t> strides(out.size(), 0), inStrides = stridesOf(in);
  size_t offset = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    strides[d + offset] = in[d] == 1 ? 0 : inStrides[d];
  return strides;
}

/// Calls `body(flatOut, offsets...)` for every element of `out`, with the
/// flat offsets of each broadcast input.
template <size_t N, typename Body>
void forEachBroadcast(const Shape &out, const Shape *const (&ins)[N],
                      Body body) {
  std::vector<int64_t> strides[N];
  for (size_t k = 0; k < N; ++k)
    strides[k] = broadcastStrides(*ins[k], out);
  int64_t total = numElements(out);
  std::vector<int64_t> index(out.size(), 0);
  int64_t offsets[N] = {};
  for (int64_t i = 0; i < total; ++i) {
    body(i, offsets);
    // Advance the multi-index like an odometer, updating the offsets.
    for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
      if (++index[d] < out[d]) {
        for (size_t k = 0; k < N; ++k)
          offsets[k] += strides[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k)
        offsets[k] -= strides[k][d] * (out[d] - 1);
      index[d] = 0;
    }
  }
}

bool isFloat(DType d) { return d == DType::F32 || d == DType::F64; }

// Predicates for the asserts (unused in Release builds).

/// Whether the tensor's bytes are exactly its shape's elements.
[[maybe_unused]] bool holds(const Tensor &t) {
  for (int64_t d : t.shape)
    if (d < 0)
      return false;
  return t.bytes.size() == static_cast<size_t>(t.size()) * dtypeSize(t.dtype);
}

[[maybe_unused]] bool isF32(const Tensor &t) {
  return t.dtype == DType::F32 && holds(t);
}

/// Whether `axis` names a dimension of a rank-`rank` tensor, counting from
/// the end when negative.
[[maybe_unused]] bool validAxis(int64_t axis, int64_t rank) {
  return axis >= -rank && axis < rank;
}

/// Whether `in` broadcasts to `out` (numpy rules: trailing dimensions equal
/// or 1).
[[maybe_unused]] bool broadcastsTo(const Shape &in, const Shape &out) {
  if (in.size() > out.size())
    return false;
  size_t offset = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    if (in[d] != 1 && in[d] != out[d + offset])
      return false;
  return true;
}

/// Whether every index of `indices` (but `skip`) lies in [lo, hi).
[[maybe_unused]] bool indicesIn(const Tensor &indices, int64_t lo, int64_t hi,
                                std::optional<int64_t> skip = {}) {
  for (int64_t i = 0, n = indices.size(); i < n; ++i) {
    int64_t index = indices.intAt(i);
    if ((index < lo || index >= hi) && index != skip)
      return false;
  }
  return true;
}

/// Whether `perm` holds each of 0 .. size - 1 once.
[[maybe_unused]] bool isPermutation(const std::vector<int64_t> &perm) {
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(perm.size()) || seen[p])
      return false;
    seen[p] = true;
  }
  return true;
}

/// Below this many elements a loop stays on one thread: starting a parallel
/// region costs more than it saves.
constexpr int64_t kParallelElements = 1 << 14;

/// The common case: A never transposed.
void gemm(bool transB, int64_t m, int64_t n, int64_t k, float alpha,
          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
          float *c, int64_t ldc) {
  rt::gemm(false, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

} // namespace

Shape broadcastShape(const Shape &a, const Shape &b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t x = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t y = i < b.size() ? b[b.size() - 1 - i] : 1;
    assert((x == y || x == 1 || y == 1) && "shapes do not broadcast");
    out[rank - 1 - i] = x == 1 ? y : x;
  }
  return out;
}

Tensor binary(Binary kind, const Tensor &a, const Tensor &b) {
  assert(holds(a) && holds(b) && "binary operand bytes do not match its shape");
  Shape shape = broadcastShape(a.shape, b.shape);
  bool compare = kind >= Binary::Eq;
  bool logical = kind == Binary::And || kind == Binary::Or;
  Tensor out(compare || logical ? DType::Bool : a.dtype, shape);
  const Shape *ins[2] = {&a.shape, &b.shape};
  if (a.dtype == DType::F32 && !compare && !logical) {
    assert(b.dtype == DType::F32 && "f32 arithmetic on a non-f32 operand");
    const float *x = a.f32(), *y = b.f32();
    float *o = out.f32();
    auto apply = [kind](float p, float q) {
      switch (kind) {
      case Binary::Add:
        return p + q;
      case Binary::Sub:
        return p - q;
      case Binary::Mul:
        return p * q;
      case Binary::Div:
        return p / q;
      case Binary::Pow:
        return std::pow(p, q);
      case Binary::Max:
        return std::max(p, q);
      case Binary::Min:
        return std::min(p, q);
      default:
        return 0.0f;
      }
    };
    // Fast paths: equal shapes, a scalar side, or b repeating over a's
    // leading dimensions (a bias): no index arithmetic per element.
    int64_t n = out.size(), na = a.size(), nb = b.size();
    if (a.shape == shape &&
        (nb == n || nb == 1 ||
         (nb > 0 && n % nb == 0 &&
          Shape(shape.end() - b.rank(), shape.end()) == b.shape))) {
      if (nb == n) {
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
        for (int64_t i = 0; i < n; ++i)
          o[i] = apply(x[i], y[i]);
      } else if (nb == 1) {
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
        for (int64_t i = 0; i < n; ++i)
          o[i] = apply(x[i], y[0]);
      } else {
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
        for (int64_t i = 0; i < n; ++i)
          o[i] = apply(x[i], y[i % nb]);
      }
      return out;
    }
    if (b.shape == shape && na == 1) {
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
      for (int64_t i = 0; i < n; ++i)
        o[i] = apply(x[0], y[i]);
      return out;
    }
    forEachBroadcast(shape, ins, [&](int64_t i, const int64_t *off) {
      float p = x[off[0]], q = y[off[1]];
      switch (kind) {
      case Binary::Add:
        o[i] = p + q;
        break;
      case Binary::Sub:
        o[i] = p - q;
        break;
      case Binary::Mul:
        o[i] = p * q;
        break;
      case Binary::Div:
        o[i] = p / q;
        break;
      case Binary::Pow:
        o[i] = std::pow(p, q);
        break;
      case Binary::Max:
        o[i] = std::max(p, q);
        break;
      case Binary::Min:
        o[i] = std::min(p, q);
        break;
      default:
        break;
      }
    });
    return out;
  }
  bool real = isFloat(a.dtype);
  forEachBroadcast(shape, ins, [&](int64_t i, const int64_t *off) {
    double p = a.at(off[0]), q = b.at(off[1]);
    int64_t m = a.intAt(off[0]), n = b.intAt(off[1]);
    double r = 0;
    switch (kind) {
    case Binary::Add:
      r = real ? p + q : double(m + n);
      break;
    case Binary::Sub:
      r = real ? p - q : double(m - n);
      break;
    case Binary::Mul:
      r = real ? p * q : double(m * n);
      break;
    case Binary::Div:
      r = real ? p / q : double(n ? m / n : 0);
      break;
    case Binary::Pow:
      r = std::pow(p, q);
      break;
    case Binary::Max:
      r = std::max(p, q);
      break;
    case Binary::Min:
      r = std::min(p, q);
      break;
    case Binary::And:
      r = (p != 0) && (q != 0);
      break;
    case Binary::Or:
      r = (p != 0) || (q != 0);
      break;
    case Binary::Eq:
      r = real ? p == q : m == n;
      break;
    case Binary::Ne:
      r = real ? p != q : m != n;
      break;
    case Binary::Lt:
      r = real ? p < q : m < n;
      break;
    case Binary::Le:
      r = real ? p <= q : m <= n;
      break;
    case Binary::Gt:
      r = real ? p > q : m > n;
      break;
    case Binary::Ge:
      r = real ? p >= q : m >= n;
      break;
    }
    out.set(i, r);
  });
  return out;
}

static float geluTanh(float x) {
  const float c = std::sqrt(2.0f / static_cast<float>(M_PI));
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

Tensor unary(Unary kind, const Tensor &x) {
  assert(holds(x) && "unary operand bytes do not match its shape");
  Tensor out(x.dtype, x.shape);
  int64_t n = x.size();
  if (x.dtype != DType::F32) {
    for (int64_t i = 0; i < n; ++i) {
      double v = x.at(i);
      switch (kind) {
      case Unary::Neg:
        out.set(i, -v);
        break;
      case Unary::Abs:
        out.set(i, std::fabs(v));
        break;
      case Unary::Not:
        out.set(i, v == 0);
        break;
      default:
        out.set(i, v);
        break;
      }
    }
    return out;
  }
  const float *in = x.f32();
  float *o = out.f32();
#pragma omp parallel for if (n >= kParallelElements) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float v = in[i];
    switch (kind) {
    case Unary::Neg:
      o[i] = -v;
      break;
    case Unary::Abs:
      o[i] = std::fabs(v);
      break;
    case Unary::Exp:
      o[i] = std::exp(v);
      break;
    case Unary::Log:
      o[i] = std::log(v);
      break;
    case Unary::Sqrt:
      o[i] = std::sqrt(v);
      break;
    case Unary::Rsqrt:
      o[i] = 1.0f / std::sqrt(v);
      break;
    case Unary::Reciprocal:
      o[i] = 1.0f / v;
      break;
    case Unary::Tanh:
      o[i] = std::tanh(v);
      break;
    case Unary::Erf:
      o[i] = std::erf(v);
      break;
    case Unary::Sigmoid:
      o[i] = 1.0f / (1.0f + std::exp(-v));
      break;
    case Unary::Relu:
      o[i] = v > 0 ? v : 0.0f;
      break;
    case Unary::Silu:
      o[i] = v / (1.0f + std::exp(-v));
      break;
    case Unary::Gelu:
      o[i] = 0.5f * v * (1.0f + std::erf(v / std::sqrt(2.0f)));
      break;
    case Unary::GeluTanh:
      o[i] = geluTanh(v);
      break;
    case Unary::Not:
      o[i] = v == 0.0f;
      break;
    }
  }
  return out;
}

Tensor where(const Tensor &condition, const Tensor &onTrue,
             const Tensor &onFalse) {
  assert(holds(condition) && holds(onTrue) && holds(onFalse) &&
         onTrue.dtype == onFalse.dtype && "where: mismatched operands");
  Shape shape = broadcastShape(condition.shape,
                               broadcastShape(onTrue.shape, onFalse.shape));
  Tensor out(onTrue.dtype, shape);
  const Shape *ins[3] = {&condition.shape, &onTrue.shape, &onFalse.shape};
  size_t width = dtypeSize(out.dtype);
  forEachBroadcast(shape, ins, [&](int64_t i, const int64_t *off) {
    const Tensor &pick = condition.intAt(off[0]) ? onTrue : onFalse;
    std::memcpy(&out.bytes[i * width],
                &pick.bytes[off[condition.intAt(off[0]) ? 1 : 2] * width],
                width);
  });
  return out;
}

Tensor cast(const Tensor &x, DType to) {
  assert(holds(x) && "cast operand bytes do not match its shape");
  Tensor out(to, x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    if (isFloat(x.dtype))
      out.set(i, x.at(i));
    else if (to == DType::Bool)
      out.set(i, x.intAt(i) != 0);
    else if (isFloat(to))
      out.set(i, static_cast<double>(x.intAt(i)));
    else if (to == DType::I64)
      out.i64()[i] = x.intAt(i);
    else
      out.set(i, static_cast<double>(x.intAt(i)));
  }
  return out;
}

Tensor matmul(const Tensor &a, const Tensor &b, bool transA, bool transB) {
  assert(isF32(a) && isF32(b) && a.rank() >= 2 && b.rank() >= 2 &&
         "matmul takes f32 operands of rank 2 or more");
  int64_t ar = a.shape[a.rank() - 2], ac = a.shape.back();
  int64_t br = b.shape[b.rank() - 2], bc = b.shape.back();
  int64_t m = transA ? ac : ar, k = transA ? ar : ac, n = transB ? br : bc;
  assert(k == (transB ? bc : br) && "matmul contraction dimensions differ");
  Shape batchA(a.shape.begin(), a.shape.end() - 2);
  Shape batchB(b.shape.begin(), b.shape.end() - 2);
  Shape batch = broadcastShape(batchA, batchB);
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  Tensor out(DType::F32, shape);
  const Shape *ins[2] = {&batchA, &batchB};
  std::vector<std::array<int64_t, 2>> offsets;
  offsets.reserve(numElements(batch));
  forEachBroadcast(batch, ins, [&](int64_t, const int64_t *off) {
    offsets.push_back({off[0], off[1]});
  });
  int64_t count = offsets.size();
  // Many small GEMMs (attention's backward) run one per thread; a large one
  // splits its rows across the threads inside gemm().
#pragma omp parallel for if (count > 1 && m * n * k <= kSmallGemm)             \
    schedule(static)
  for (int64_t p = 0; p < count; ++p)
    gemm(transA, transB, m, n, k, 1.0f, a.f32() + offsets[p][0] * m * k, ac,
         b.f32() + offsets[p][1] * k * n, bc, 0.0f, out.f32() + p * m * n, n);
  return out;
}

Tensor linear(const Tensor &x, const Tensor &w, const Tensor *bias,
              bool outIn) {
  assert(isF32(x) && isF32(w) && x.rank() >= 1 && w.rank() == 2 &&
         "linear takes f32 x [..., K] and w of rank 2");
  int64_t k = x.shape.back();
  int64_t n = outIn ? w.shape[0] : w.shape[1];
  assert(k == (outIn ? w.shape[1] : w.shape[0]) &&
         "linear contraction dimensions differ");
  assert((!bias || (isF32(*bias) && bias->size() == n)) &&
         "linear bias is not f32 [N]");
  int64_t m = x.size() / std::max<int64_t>(k, 1);
  Shape shape = x.shape;
  shape.back() = n;
  Tensor out(DType::F32, shape);
  float *o = out.f32();
  if (bias)
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(o + r * n, bias->f32(), n * sizeof(float));
  gemm(outIn, m, n, k, 1.0f, x.f32(), k, w.f32(), outIn ? k : n,
       bias ? 1.0f : 0.0f, o, n);
  return out;
}

Tensor reshape(const Tensor &x, const Shape &shape) {
  assert(numElements(shape) == x.size() && "reshape changes the element count");
  Tensor out = x;
  out.shape = shape;
  return out;
}

/// Copies elements of `x` into a tensor of `shape`; element `i` of the
/// result comes from flat index `source(multiIndex)`.
template <typename Source>
static Tensor gatherCopy(const Tensor &x, const Shape &shape, Source source) {
  Tensor out(x.dtype, shape);
  size_t width = dtypeSize(x.dtype);
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t i = 0, n = out.size(); i < n; ++i) {
    std::memcpy(&out.bytes[i * width], &x.bytes[source(index) * width], width);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  return out;
}

Tensor transpose(const Tensor &x, const std::vector<int64_t> &perm) {
  assert(holds(x) && static_cast<int64_t>(perm.size()) == x.rank() &&
         "transpose permutation length differs from the rank");
  assert(isPermutation(perm) && "transpose takes a permutation of the axes");
  Shape shape;
  for (int64_t p : perm)
    shape.push_back(x.shape[p]);
  std::vector<int64_t> strides = stridesOf(x.shape);
  return gatherCopy(x, shape, [&](const std::vector<int64_t> &index) {
    int64_t s = 0;
    for (size_t d = 0; d < perm.size(); ++d)
      s += index[d] * strides[perm[d]];
    return s;
  });
}

Tensor slice(const Tensor &x, const std::vector<int64_t> &starts,
             const std::vector<int64_t> &limits,
             const std::vector<int64_t> &steps) {
  assert(holds(x) && static_cast<int64_t>(starts.size()) == x.rank() &&
         limits.size() == starts.size() && steps.size() == starts.size() &&
         "slice bounds do not match the rank");
  Shape shape;
  for (size_t d = 0; d < starts.size(); ++d) {
    assert(steps[d] > 0 && 0 <= starts[d] && starts[d] <= limits[d] &&
           limits[d] <= x.shape[d] && "slice bounds out of range");
    shape.push_back((limits[d] - starts[d] + steps[d] - 1) / steps[d]);
  }
  std::vector<int64_t> strides = stridesOf(x.shape);
  return gatherCopy(x, shape, [&](const std::vector<int64_t> &index) {
    int64_t s = 0;
    for (size_t d = 0; d < starts.size(); ++d)
      s += (starts[d] + index[d] * steps[d]) * strides[d];
    return s;
  });
}

Tensor concat(const std::vector<const Tensor *> &inputs, int64_t axis) {
  assert(!inputs.empty() && "concat of nothing");
  const Tensor &first = *inputs[0];
  assert(validAxis(axis, first.rank()) && "concat axis out of range");
  if (axis < 0)
    axis += first.rank();
  Shape shape = first.shape;
  shape[axis] = 0;
  for (const Tensor *t : inputs) {
    assert(holds(*t) && t->dtype == first.dtype && t->rank() == first.rank() &&
           "concat inputs differ in dtype or rank");
    assert(std::equal(t->shape.begin(), t->shape.begin() + axis,
                      first.shape.begin()) &&
           std::equal(t->shape.begin() + axis + 1, t->shape.end(),
                      first.shape.begin() + axis + 1) &&
           "concat inputs differ off the axis");
    shape[axis] += t->shape[axis];
  }
  Tensor out(first.dtype, shape);
  size_t width = dtypeSize(first.dtype);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  size_t pos = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (const Tensor *t : inputs) {
      size_t chunk = t->bytes.size() / std::max<int64_t>(outer, 1);
      std::memcpy(&out.bytes[pos], &t->bytes[o * chunk], chunk);
      pos += chunk;
    }
  (void)width;
  return out;
}

std::vector<Tensor> split(const Tensor &x, int64_t axis,
                          const std::vector<int64_t> &sizes) {
  assert(validAxis(axis, x.rank()) && "split axis out of range");
  if (axis < 0)
    axis += x.rank();
  assert(std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) ==
             x.shape[axis] &&
         "split sizes do not add up to the dimension");
  std::vector<Tensor> out;
  int64_t offset = 0;
  for (int64_t size : sizes) {
    std::vector<int64_t> starts(x.rank(), 0), limits = x.shape,
                                              steps(x.rank(), 1);
    starts[axis] = offset;
    limits[axis] = offset + size;
    out.push_back(slice(x, starts, limits, steps));
    offset += size;
  }
  return out;
}

Tensor expand(const Tensor &x, const Shape &shape) {
  assert(holds(x) && broadcastsTo(x.shape, shape) &&
         "expand to a shape the input does not broadcast to");
  std::vector<int64_t> strides = broadcastStrides(x.shape, shape);
  return gatherCopy(x, shape, [&](const std::vector<int64_t> &index) {
    int64_t s = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      s += index[d] * strides[d];
    return s;
  });
}

Tensor gather(const Tensor &data, const Tensor &indices, int64_t axis) {
  assert(holds(data) && holds(indices) && validAxis(axis, data.rank()) &&
         "gather axis out of range");
  if (axis < 0)
    axis += data.rank();
  assert(indicesIn(indices, -data.shape[axis], data.shape[axis]) &&
         "gather index out of range");
  Shape shape(data.shape.begin(), data.shape.begin() + axis);
  shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
  shape.insert(shape.end(), data.shape.begin() + axis + 1, data.shape.end());
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < data.rank(); ++d)
    inner *= data.shape[d];
  int64_t dim = data.shape[axis], count = indices.size();
  Tensor out(data.dtype, shape);
  size_t width = dtypeSize(data.dtype);
  int64_t outer = out.size() / std::max<int64_t>(count * inner, 1);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < count; ++j) {
      int64_t idx = indices.intAt(j);
      if (idx < 0)
        idx += dim;
      std::memcpy(&out.bytes[((o * count + j) * inner) * width],
                  &data.bytes[((o * dim + idx) * inner) * width],
                  inner * width);
    }
  return out;
}

Tensor embedding(const Tensor &table, const Tensor &ids) {
  assert(table.rank() == 2 && indicesIn(ids, 0, table.shape[0]) &&
         "embedding id outside the table");
  return gather(table, ids, 0);
}

Tensor embeddingGrad(const Tensor &grad, const Tensor &ids, int64_t rows) {
  assert(isF32(grad) && grad.rank() >= 1 && holds(ids) && rows >= 0 &&
         "embedding gradient is not f32 [..., D]");
  int64_t d = grad.shape.back();
  assert(grad.size() == ids.size() * d &&
         "embedding gradient rows differ from the ids");
  Tensor out = Tensor::zeros(DType::F32, {rows, d});
  for (int64_t i = 0, n = ids.size(); i < n; ++i) {
    int64_t row = ids.intAt(i);
    if (row < 0 || row >= rows)
      continue; // out-of-range ids contribute nothing, like a one-hot
    float *dst = out.f32() + row * d;
    const float *src = grad.f32() + i * d;
    for (int64_t j = 0; j < d; ++j)
      dst[j] += src[j];
  }
  return out;
}

Tensor reduce(Reduction kind, const Tensor &x, const std::vector<int64_t> &axes,
              bool keepDims) {
  assert(holds(x) && "reduce operand bytes do not match its shape");
  Shape kept = x.shape, shape;
  for (int64_t a : axes) {
    assert(a >= 0 && a < x.rank() && "reduce axis out of range");
    kept[a] = 1;
  }
  for (int64_t d = 0; d < x.rank(); ++d) {
    bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!reduced || keepDims)
      shape.push_back(kept[d]);
  }
  int64_t outCount = numElements(kept);
  std::vector<double> acc(outCount, kind == Reduction::Prod ? 1.0 : 0.0);
  std::vector<int64_t> count(outCount, 0);
  const Shape *ins[1] = {&kept};
  forEachBroadcast(x.shape, ins, [&](int64_t i, const int64_t *off) {
    double v = x.at(i);
    int64_t o = off[0];
    switch (kind) {
    case Reduction::Max:
      acc[o] = count[o] ? std::max(acc[o], v) : v;
      break;
    case Reduction::Min:
      acc[o] = count[o] ? std::min(acc[o], v) : v;
      break;
    case Reduction::Prod:
      acc[o] *= v;
      break;
    default:
      acc[o] += v;
      break;
    }
    ++count[o];
  });
  Tensor out(x.dtype, shape);
  for (int64_t o = 0; o < outCount; ++o)
    out.set(o, kind == Reduction::Mean ? acc[o] / std::max<int64_t>(count[o], 1)
                                       : acc[o]);
  return out;
}

/// Applies `line(row, dst, dim, inner)` to every line of `x` along `axis`
/// (element j of a line at offset j * inner), in parallel, writing an F32
/// tensor of `x`'s shape.
template <typename LineFn>
static Tensor mapLines(const Tensor &x, int64_t axis, LineFn line) {
  assert(isF32(x) && validAxis(axis, x.rank()) &&
         "softmax takes f32 and an axis in range");
  if (axis < 0)
    axis += x.rank();
  Tensor out(DType::F32, x.shape);
  int64_t dim = x.shape[axis], inner = 1;
  for (int64_t d = axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  int64_t outer = x.size() / std::max<int64_t>(dim * inner, 1);
  const float *in = x.f32();
  float *o = out.f32();
#pragma omp parallel for collapse(2) if (x.size() >= kParallelElements)        \
    schedule(static)
  for (int64_t p = 0; p < outer; ++p)
    for (int64_t q = 0; q < inner; ++q)
      line(in + p * dim * inner + q, o + p * dim * inner + q, dim, inner);
  return out;
}

static float lineMax(const float *row, int64_t dim, int64_t inner) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < dim; ++j)
    max = std::max(max, row[j * inner]);
  return max;
}

Tensor softmax(const Tensor &x, int64_t axis) {
  return mapLines(x, axis,
                  [](const float *row, float *dst, int64_t dim, int64_t inner) {
                    float max = lineMax(row, dim, inner);
                    double sum = 0;
                    for (int64_t j = 0; j < dim; ++j) {
                      dst[j * inner] = std::exp(row[j * inner] - max);
                      sum += dst[j * inner];
                    }
                    for (int64_t j = 0; j < dim; ++j)
                      dst[j * inner] = static_cast<float>(dst[j * inner] / sum);
                  });
}

Tensor logSoftmax(const Tensor &x, int64_t axis) {
  return mapLines(
      x, axis, [](const float *row, float *dst, int64_t dim, int64_t inner) {
        float max = lineMax(row, dim, inner);
        double sum = 0;
        for (int64_t j = 0; j < dim; ++j)
          sum += std::exp(static_cast<double>(row[j * inner] - max));
        double shift = max + std::log(sum);
        for (int64_t j = 0; j < dim; ++j)
          dst[j * inner] = static_cast<float>(row[j * inner] - shift);
      });
}

/// The value of element `i` of `x` as a double (any dtype).
static double valueAt(const Tensor &x, int64_t i) {
  switch (x.dtype) {
  case DType::F32:
    return x.f32()[i];
  case DType::F64:
    return reinterpret_cast<const double *>(x.bytes.data())[i];
  case DType::I64:
    return static_cast<double>(x.i64()[i]);
  case DType::I32:
    return reinterpret_cast<const int32_t *>(x.bytes.data())[i];
  case DType::Bool:
    return x.bytes[i];
  }
  return 0;
}

Tensor argMax(const Tensor &x, int64_t axis, bool keepdims, bool selectLast) {
  assert(holds(x) && validAxis(axis, x.rank()) && "argmax axis out of range");
  if (axis < 0)
    axis += x.rank();
  Shape shape;
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d != axis)
      shape.push_back(x.shape[d]);
    else if (keepdims)
      shape.push_back(1);
  Tensor out(DType::I64, shape);
  int64_t dim = x.shape[axis], inner = 1;
  for (int64_t d = axis + 1; d < x.rank(); ++d)
    inner *= x.shape[d];
  int64_t outer = x.size() / std::max<int64_t>(dim * inner, 1);
  for (int64_t p = 0; p < outer; ++p)
    for (int64_t q = 0; q < inner; ++q) {
      int64_t base = p * dim * inner + q, best = 0;
      double bestValue = valueAt(x, base);
      for (int64_t j = 1; j < dim; ++j) {
        double v = valueAt(x, base + j * inner);
        bool better = std::isnan(v)           ? !std::isnan(bestValue)
                      : std::isnan(bestValue) ? false
                      : selectLast            ? v >= bestValue
                                              : v > bestValue;
        if (better) {
          best = j;
          bestValue = v;
        }
      }
      out.i64()[p * inner + q] = best;
    }
  return out;
}

Tensor layerNorm(const Tensor &x, const Tensor &scale, const Tensor *bias,
                 double eps) {
  assert(isF32(x) && x.rank() >= 1 && isF32(scale) &&
         scale.size() == x.shape.back() &&
         (!bias || (isF32(*bias) && bias->size() == x.shape.back())) &&
         "layer norm scale or bias differs from the last dimension");
  int64_t d = x.shape.back(), rows = x.size() / std::max<int64_t>(d, 1);
  Tensor out(DType::F32, x.shape);
#pragma omp parallel for if (x.size() >= kParallelElements) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.f32() + r * d;
    float *o = out.f32() + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j)
      mean += in[j];
    mean /= d;
    for (int64_t j = 0; j < d; ++j)
      var += (in[j] - mean) * (in[j] - mean);
    var /= d;
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < d; ++j)
      o[j] = static_cast<float>((in[j] - mean) * inv * scale.f32()[j] +
                                (bias ? bias->f32()[j] : 0.0));
  }
  return out;
}

Tensor rmsNorm(const Tensor &x, const Tensor &scale, double eps) {
  assert(isF32(x) && x.rank() >= 1 && isF32(scale) &&
         scale.size() == x.shape.back() &&
         "RMS norm scale differs from the last dimension");
  int64_t d = x.shape.back(), rows = x.size() / std::max<int64_t>(d, 1);
  Tensor out(DType::F32, x.shape);
#pragma omp parallel for if (x.size() >= kParallelElements) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.f32() + r * d;
    float *o = out.f32() + r * d;
    double ms = 0;
    for (int64_t j = 0; j < d; ++j)
      ms += double(in[j]) * in[j];
    double inv = 1.0 / std::sqrt(ms / d + eps);
    for (int64_t j = 0; j < d; ++j)
      o[j] = static_cast<float>(in[j] * inv) * scale.f32()[j];
  }
  return out;
}

Tensor rotary(const Tensor &x, const Tensor &cos, const Tensor &sin,
              bool interleaved) {
  assert(isF32(x) && isF32(cos) && isF32(sin) && x.rank() >= 1 &&
         cos.rank() >= 1 && cos.shape == sin.shape &&
         "rotary takes f32 x and cos, sin of one shape");
  int64_t dim = x.shape.back(), rotated = cos.shape.back();
  assert(rotated % 2 == 0 && rotated <= dim &&
         "rotary rotates an even part of the last dimension");
  Shape table = x.shape;
  table.back() = rotated;
  Tensor c = expand(cos, table), s = expand(sin, table);
  Tensor out = x;
  int64_t rows = x.size() / dim, half = rotated / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x.f32() + r * dim;
    const float *cr = c.f32() + r * rotated, *sr = s.f32() + r * rotated;
    float *o = out.f32() + r * dim;
    for (int64_t j = 0; j < rotated; ++j) {
      // rotate_half: [-x2, x1]; interleaved pairs (2i, 2i+1) likewise.
      float partner;
      if (interleaved)
        partner = j % 2 == 0 ? -in[j + 1] : in[j - 1];
      else
        partner = j < half ? -in[j + half] : in[j - half];
      o[j] = in[j] * cr[j] + partner * sr[j];
    }
  }
  return out;
}

Tensor crossEntropy(const Tensor &logits, const Tensor &labels, bool mean,
                    int64_t ignoreIndex) {
  assert(isF32(logits) && logits.rank() >= 1 && holds(labels) &&
         "cross-entropy takes f32 logits [..., V]");
  int64_t classes = logits.shape.back(), rows = labels.size();
  assert(logits.size() == rows * classes &&
         "cross-entropy logits rows differ from the labels");
  assert(indicesIn(labels, 0, classes, ignoreIndex) &&
         "cross-entropy label out of range");
  // Per-row losses first, summed in row order, so the result does not depend
  // on the thread count.
  std::vector<double> rowLoss(rows, 0.0);
#pragma omp parallel for if (logits.size() >= kParallelElements)               \
    schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t label = labels.intAt(r);
    if (label == ignoreIndex)
      continue;
    const float *row = logits.f32() + r * classes;
    float max = *std::max_element(row, row + classes);
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c)
      sum += std::exp(double(row[c]) - max);
    rowLoss[r] = std::log(sum) + max - row[label];
  }
  double total = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (labels.intAt(r) == ignoreIndex)
      continue;
    total += rowLoss[r];
    ++counted;
  }
  Tensor out(DType::F32, {});
  out.f32()[0] =
      static_cast<float>(mean ? (counted ? total / counted : 0.0) : total);
  return out;
}

} // namespace galvatron::rt
