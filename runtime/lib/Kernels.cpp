//===- Kernels.cpp - CPU reference kernels --------------------------------===//
//
// The executor and the compiler check what these kernels assume (shapes that
// agree, axes and indices in range) before calling them; the asserts below
// restate those assumptions in Debug builds (NDEBUG undefined) and cost
// nothing in Release.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Kernels.h"

#include "VectorMath.h"

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
#include <unistd.h>

namespace galvatron::rt {

void setKernelThreads(int threads) {
#ifdef _OPENMP
  omp_set_num_threads(std::max(1, threads));
#else
  (void)threads;
#endif
}

void restartWithSpinningKernelThreads(char **argv) {
  if (std::getenv("OMP_WAIT_POLICY"))
    return;
  setenv("OMP_WAIT_POLICY", "active", /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): go on with libgomp's default wait.
}

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
  if (!omp_in_parallel() && m * n * k > kThreadedGemmMultiplyAdds)
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

/// `out` read row by row along its last dimension against two broadcast
/// operands: where each operand's part of every row starts, and whether it
/// runs along the row (step 1) or repeats one value (step 0). A broadcast
/// loop then needs no index arithmetic per element, and its inner loop
/// vectorises.
struct RowBroadcast {
  int64_t rows = 0, cols = 1;
  std::vector<int64_t> start[2];
  int64_t step[2] = {0, 0};

  RowBroadcast(const Shape &out, const Shape &a, const Shape &b) {
    int64_t rank = static_cast<int64_t>(out.size());
    cols = rank ? out.back() : 1;
    rows = cols ? numElements(out) / cols : 0;
    std::vector<int64_t> strides[2] = {broadcastStrides(a, out),
                                       broadcastStrides(b, out)};
    std::vector<int64_t> index(std::max<int64_t>(rank - 1, 0), 0);
    int64_t offset[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      step[k] = rank ? strides[k].back() : 0;
      start[k].resize(rows);
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int k = 0; k < 2; ++k)
        start[k][r] = offset[k];
      for (int64_t d = rank - 2; d >= 0; --d) {
        if (++index[d] < out[d]) {
          for (int k = 0; k < 2; ++k)
            offset[k] += strides[k][d];
          break;
        }
        for (int k = 0; k < 2; ++k)
          offset[k] -= strides[k][d] * (out[d] - 1);
        index[d] = 0;
      }
    }
  }
};

bool isFloat(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::BF16;
}

// Predicates for the asserts (unused in Release builds).

/// Whether the tensor's bytes are exactly its shape's elements.
[[maybe_unused]] bool holds(const TensorView &t) {
  for (int64_t d : t.shape)
    if (d < 0)
      return false;
  return t.byteSize() == static_cast<size_t>(t.size()) * dtypeSize(t.dtype);
}

[[maybe_unused]] bool isF32(const TensorView &t) {
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
[[maybe_unused]] bool indicesIn(const TensorView &indices, int64_t lo,
                                int64_t hi, std::optional<int64_t> skip = {}) {
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

/// o = f(x, y) over rows of a broadcast (RowBroadcast): one loop per pair
/// of steps, so that each vectorises.
template <typename T, typename U, typename F>
GALVATRON_VECTOR_CLONES void broadcastRows(const RowBroadcast &rows, const T *x,
                                           const T *y, U *o, F f) {
  int64_t cols = rows.cols;
  bool alongX = rows.step[0] != 0, alongY = rows.step[1] != 0;
#pragma omp parallel for if (rows.rows * cols >= kParallelElements)            \
    schedule(static)
  for (int64_t r = 0; r < rows.rows; ++r) {
    const T *px = x + rows.start[0][r], *py = y + rows.start[1][r];
    U *po = o + r * cols;
    if (alongX && alongY) {
      for (int64_t j = 0; j < cols; ++j)
        po[j] = f(px[j], py[j]);
    } else if (alongX) {
      T q = *py;
      for (int64_t j = 0; j < cols; ++j)
        po[j] = f(px[j], q);
    } else if (alongY) {
      T p = *px;
      for (int64_t j = 0; j < cols; ++j)
        po[j] = f(p, py[j]);
    } else {
      std::fill(po, po + cols, static_cast<U>(f(*px, *py)));
    }
  }
}

/// The common case: A never transposed.
void gemm(bool transB, int64_t m, int64_t n, int64_t k, float alpha,
          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
          float *c, int64_t ldc) {
  rt::gemm(false, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// A new tensor of `dtype` and `shape` that `fill` writes through a view.
template <typename Fill> Tensor produce(DType dtype, Shape shape, Fill fill) {
  Tensor t(dtype, std::move(shape));
  TensorView view(t);
  fill(view);
  return t;
}

/// Whether `out` has the shape the kernel computes (for the asserts).
[[maybe_unused]] bool shapeIs(const TensorView &out, const Shape &shape) {
  return out.shape == shape;
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

/// Whether `kind` gives bool whatever its operands.
static bool isPredicate(Binary kind) {
  return kind >= Binary::Eq || kind == Binary::And || kind == Binary::Or;
}

/// f32 arithmetic: out = f(a, b) with broadcasting. One instantiation per
/// function, so that each loop vectorises: equal shapes and a scalar side
/// as flat loops, other broadcasts row by row (a bias, a row's maximum, a
/// column against a row).
template <typename F>
GALVATRON_VECTOR_CLONES static void
binaryF32(const TensorView &a, const TensorView &b, TensorView &out, F f) {
  const float *x = a.f32(), *y = b.f32();
  float *o = out.f32();
  const Shape &shape = out.shape;
  int64_t n = out.size(), na = a.size(), nb = b.size();
  if (a.shape == shape && nb == n) {
#pragma omp parallel for simd if (n >= kParallelElements) schedule(static)
    for (int64_t i = 0; i < n; ++i)
      o[i] = f(x[i], y[i]);
    return;
  }
  if (a.shape == shape && nb == 1) {
    float q = y[0];
#pragma omp parallel for simd if (n >= kParallelElements) schedule(static)
    for (int64_t i = 0; i < n; ++i)
      o[i] = f(x[i], q);
    return;
  }
  if (b.shape == shape && na == 1) {
    float p = x[0];
#pragma omp parallel for simd if (n >= kParallelElements) schedule(static)
    for (int64_t i = 0; i < n; ++i)
      o[i] = f(p, y[i]);
    return;
  }
  broadcastRows(RowBroadcast(shape, a.shape, b.shape), x, y, o, f);
}

/// Comparisons of two i64 or two f32 operands into bools, row by row (the
/// vocabulary-parallel loss compares [r, 1] labels with [1, c] ids): no
/// per-element index arithmetic or conversion to double (the generic loop
/// took 12 ns per element, strided rows 2).
template <typename T>
static bool compareTyped(Binary kind, const T *x, const T *y, uint8_t *o,
                         const RowBroadcast &rows) {
  switch (kind) {
  case Binary::Eq:
    broadcastRows(rows, x, y, o, [](T p, T q) -> uint8_t { return p == q; });
    return true;
  case Binary::Ne:
    broadcastRows(rows, x, y, o, [](T p, T q) -> uint8_t { return p != q; });
    return true;
  case Binary::Lt:
    broadcastRows(rows, x, y, o, [](T p, T q) -> uint8_t { return p < q; });
    return true;
  case Binary::Le:
    broadcastRows(rows, x, y, o, [](T p, T q) -> uint8_t { return p <= q; });
    return true;
  case Binary::Gt:
    broadcastRows(rows, x, y, o, [](T p, T q) -> uint8_t { return p > q; });
    return true;
  case Binary::Ge:
    broadcastRows(rows, x, y, o, [](T p, T q) -> uint8_t { return p >= q; });
    return true;
  default:
    return false;
  }
}

static bool compareByRows(Binary kind, const TensorView &a, const TensorView &b,
                          TensorView &out) {
  if (out.dtype != DType::Bool || a.dtype != b.dtype)
    return false;
  uint8_t *o = out.data();
  if (a.dtype == DType::I64)
    return compareTyped(kind, reinterpret_cast<const int64_t *>(a.data()),
                        reinterpret_cast<const int64_t *>(b.data()), o,
                        RowBroadcast(out.shape, a.shape, b.shape));
  if (a.dtype == DType::F32)
    return compareTyped(kind, a.f32(), b.f32(), o,
                        RowBroadcast(out.shape, a.shape, b.shape));
  return false;
}

void binary(Binary kind, const TensorView &a, const TensorView &b,
            TensorView &out) {
  assert(holds(a) && holds(b) && "binary operand bytes do not match its shape");
  Shape shape = broadcastShape(a.shape, b.shape);
  assert(shapeIs(out, shape) && "binary result shape differs");
  bool compare = kind >= Binary::Eq;
  bool logical = kind == Binary::And || kind == Binary::Or;
  const Shape *ins[2] = {&a.shape, &b.shape};
  if (a.dtype == DType::F32 && !compare && !logical) {
    assert(b.dtype == DType::F32 && "f32 arithmetic on a non-f32 operand");
    switch (kind) {
    case Binary::Add:
      return binaryF32(a, b, out, [](float p, float q) { return p + q; });
    case Binary::Sub:
      return binaryF32(a, b, out, [](float p, float q) { return p - q; });
    case Binary::Mul:
      return binaryF32(a, b, out, [](float p, float q) { return p * q; });
    case Binary::Div:
      return binaryF32(a, b, out, [](float p, float q) { return p / q; });
    case Binary::Pow:
      return binaryF32(a, b, out,
                       [](float p, float q) { return std::pow(p, q); });
    case Binary::Max:
      return binaryF32(a, b, out,
                       [](float p, float q) { return std::max(p, q); });
    case Binary::Min:
      return binaryF32(a, b, out,
                       [](float p, float q) { return std::min(p, q); });
    default:
      break;
    }
  }
  if (compare && compareByRows(kind, a, b, out))
    return;
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
}

/// out[i] = f(in[i]) over f32 elements, threaded when there are enough.
/// One loop per function (not a switch inside the loop) so that each
/// vectorises.
template <typename F>
GALVATRON_VECTOR_CLONES static void mapF32(const float *in, float *out,
                                           int64_t n, F f) {
#pragma omp parallel for simd if (n >= kParallelElements) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    out[i] = f(in[i]);
}

/// The unary kinds on non-float elements: what is defined for integers and
/// bools (the verifier refuses the rest), the value unchanged otherwise.
static void unaryNonFloat(Unary kind, const TensorView &x, TensorView &out) {
  for (int64_t i = 0, n = x.size(); i < n; ++i) {
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
}

void unary(Unary kind, const TensorView &x, TensorView &out) {
  assert(holds(x) && "unary operand bytes do not match its shape");
  assert(shapeIs(out, x.shape) && out.dtype == x.dtype &&
         "unary result differs from its operand");
  if (x.dtype != DType::F32)
    return unaryNonFloat(kind, x, out);
  const float *in = x.f32();
  float *o = out.f32();
  int64_t n = x.size();
  switch (kind) {
  case Unary::Neg:
    return mapF32(in, o, n, [](float v) { return -v; });
  case Unary::Abs:
    return mapF32(in, o, n, [](float v) { return std::fabs(v); });
  case Unary::Exp:
    return mapF32(in, o, n, [](float v) { return expVector(v); });
  case Unary::Log:
    return mapF32(in, o, n, [](float v) { return std::log(v); });
  case Unary::Sqrt:
    return mapF32(in, o, n, [](float v) { return std::sqrt(v); });
  case Unary::Rsqrt:
    return mapF32(in, o, n, [](float v) { return 1.0f / std::sqrt(v); });
  case Unary::Reciprocal:
    return mapF32(in, o, n, [](float v) { return 1.0f / v; });
  case Unary::Tanh:
    return mapF32(in, o, n, [](float v) { return tanhVector(v); });
  case Unary::Erf:
    return mapF32(in, o, n, [](float v) { return std::erf(v); });
  case Unary::Sigmoid:
    return mapF32(in, o, n, [](float v) { return sigmoidVector(v); });
  case Unary::Relu:
    return mapF32(in, o, n, [](float v) { return v > 0 ? v : 0.0f; });
  case Unary::Silu:
    return mapF32(in, o, n, [](float v) { return v * sigmoidVector(v); });
  case Unary::Gelu:
    return mapF32(in, o, n, [](float v) {
      return 0.5f * v * (1.0f + std::erf(v / std::sqrt(2.0f)));
    });
  case Unary::GeluTanh:
    return mapF32(in, o, n, [](float v) { return geluTanhVector(v); });
  case Unary::Not:
    return mapF32(in, o, n, [](float v) { return v == 0.0f ? 1.0f : 0.0f; });
  }
}

/// The shape `where` gives.
static Shape whereShape(const Shape &condition, const Shape &onTrue,
                        const Shape &onFalse) {
  return broadcastShape(condition, broadcastShape(onTrue, onFalse));
}

void where(const TensorView &condition, const TensorView &onTrue,
           const TensorView &onFalse, TensorView &out) {
  assert(holds(condition) && holds(onTrue) && holds(onFalse) &&
         onTrue.dtype == onFalse.dtype && "where: mismatched operands");
  Shape shape = whereShape(condition.shape, onTrue.shape, onFalse.shape);
  assert(shapeIs(out, shape) && "where result shape differs");
  const Shape *ins[3] = {&condition.shape, &onTrue.shape, &onFalse.shape};
  size_t width = dtypeSize(out.dtype);
  uint8_t *o = out.data();
  forEachBroadcast(shape, ins, [&](int64_t i, const int64_t *off) {
    const TensorView &pick = condition.intAt(off[0]) ? onTrue : onFalse;
    std::memcpy(o + i * width,
                pick.data() + off[condition.intAt(off[0]) ? 1 : 2] * width,
                width);
  });
}

void cast(const TensorView &x, TensorView &out) {
  assert(holds(x) && shapeIs(out, x.shape) &&
         "cast operand bytes do not match its shape");
  DType to = out.dtype;
  int64_t n = x.size();
  // The casts training runs each step (masks and ids to f32) in typed loops;
  // the rest element by element. Both convert through double.
  if (to == DType::F32 && x.dtype == DType::Bool) {
    for (int64_t i = 0; i < n; ++i)
      out.f32()[i] = x.b8()[i] != 0 ? 1.0f : 0.0f;
    return;
  }
  if (to == DType::F32 && x.dtype == DType::I64) {
    for (int64_t i = 0; i < n; ++i)
      out.f32()[i] = static_cast<float>(static_cast<double>(x.i64()[i]));
    return;
  }
  // Mixed precision's casts, at every GEMM's operands and results.
  if (to == DType::BF16 && x.dtype == DType::F32) {
    for (int64_t i = 0; i < n; ++i)
      out.bf16()[i] = floatToBf16(x.f32()[i]);
    return;
  }
  if (to == DType::F32 && x.dtype == DType::BF16) {
    for (int64_t i = 0; i < n; ++i)
      out.f32()[i] = bf16ToFloat(x.bf16()[i]);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
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
}

/// The shape matmul gives: the broadcast batch, then M and N.
static Shape matmulShape(const Shape &a, const Shape &b, bool transA,
                         bool transB) {
  Shape shape = broadcastShape(Shape(a.begin(), a.end() - 2),
                               Shape(b.begin(), b.end() - 2));
  shape.push_back(a[a.size() - (transA ? 1 : 2)]);
  shape.push_back(b[b.size() - (transB ? 2 : 1)]);
  return shape;
}

void matmul(const TensorView &a, const TensorView &b, TensorView &out,
            bool transA, bool transB) {
  assert(isF32(a) && isF32(b) && a.rank() >= 2 && b.rank() >= 2 &&
         "matmul takes f32 operands of rank 2 or more");
  int64_t ar = a.shape[a.rank() - 2], ac = a.shape.back();
  int64_t br = b.shape[b.rank() - 2], bc = b.shape.back();
  int64_t m = transA ? ac : ar, k = transA ? ar : ac, n = transB ? br : bc;
  assert(k == (transB ? bc : br) && "matmul contraction dimensions differ");
  Shape batchA(a.shape.begin(), a.shape.end() - 2);
  Shape batchB(b.shape.begin(), b.shape.end() - 2);
  Shape batch = broadcastShape(batchA, batchB);
  assert(shapeIs(out, matmulShape(a.shape, b.shape, transA, transB)) &&
         "matmul result shape differs");
  const Shape *ins[2] = {&batchA, &batchB};
  std::vector<std::array<int64_t, 2>> offsets;
  offsets.reserve(numElements(batch));
  forEachBroadcast(batch, ins, [&](int64_t, const int64_t *off) {
    offsets.push_back({off[0], off[1]});
  });
  int64_t count = offsets.size();
  auto product = [&](int64_t p) {
    gemm(transA, transB, m, n, k, 1.0f, a.f32() + offsets[p][0] * m * k, ac,
         b.f32() + offsets[p][1] * k * n, bc, 0.0f, out.f32() + p * m * n, n);
  };
  // Many small GEMMs (attention's backward) run one per thread; a large one
  // splits its rows across the threads inside gemm(), which it cannot do
  // from inside a parallel region, even an inactive one.
  if (count > 1 && m * n * k <= kThreadedGemmMultiplyAdds) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < count; ++p)
      product(p);
    return;
  }
  for (int64_t p = 0; p < count; ++p)
    product(p);
}

void linear(const TensorView &x, const TensorView &w, const TensorView *bias,
            bool outIn, TensorView &out) {
  assert(isF32(x) && isF32(w) && x.rank() >= 1 && w.rank() == 2 &&
         "linear takes f32 x [..., K] and w of rank 2");
  int64_t k = x.shape.back();
  int64_t n = outIn ? w.shape[0] : w.shape[1];
  assert(k == (outIn ? w.shape[1] : w.shape[0]) &&
         "linear contraction dimensions differ");
  assert((!bias || (isF32(*bias) && bias->size() == n)) &&
         "linear bias is not f32 [N]");
  int64_t m = x.size() / std::max<int64_t>(k, 1);
  assert(out.size() == m * n && "linear result size differs");
  float *o = out.f32();
  if (bias)
    for (int64_t r = 0; r < m; ++r)
      std::memcpy(o + r * n, bias->f32(), n * sizeof(float));
  gemm(outIn, m, n, k, 1.0f, x.f32(), k, w.f32(), outIn ? k : n,
       bias ? 1.0f : 0.0f, o, n);
}

void reshape(const TensorView &x, TensorView &out) {
  assert(out.size() == x.size() && out.dtype == x.dtype &&
         "reshape changes the element count");
  if (out.data() != x.data() && x.byteSize())
    std::memcpy(out.data(), x.data(), x.byteSize());
}

/// Copies rows of `count` elements `stride` apart to contiguous `dst`.
template <typename T>
static void copyRow(const uint8_t *src, uint8_t *dst, int64_t count,
                    int64_t stride) {
  const T *from = reinterpret_cast<const T *>(src);
  T *to = reinterpret_cast<T *>(dst);
  if (stride == 0) {
    std::fill(to, to + count, *from);
    return;
  }
  for (int64_t j = 0; j < count; ++j)
    to[j] = from[j * stride];
}

/// Copies elements of `x` into `out`: element (i0, ..., in) of the result
/// is element `base + sum(i_d * strides[d])` of `x` (transposes, slices and
/// broadcasts are all such affine maps). Rows along the last dimension go
/// whole (one memcpy when contiguous), in parallel when large.
static void gatherCopy(const TensorView &x, TensorView &out, int64_t base,
                       const std::vector<int64_t> &strides) {
  const Shape &shape = out.shape;
  size_t width = dtypeSize(x.dtype);
  int64_t total = out.size();
  if (total == 0)
    return;
  int64_t rank = out.rank();
  int64_t count = rank ? shape.back() : 1, stride = rank ? strides.back() : 0;
  int64_t rows = total / count;
  const uint8_t *in = x.data();
  uint8_t *o = out.data();
#pragma omp parallel if (total >= kParallelElements)
  {
    std::vector<int64_t> index(std::max<int64_t>(rank - 1, 0), 0);
    bool placed = false;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      // The row's multi-index, from scratch once per thread, then counted.
      if (!placed) {
        for (int64_t d = rank - 2, rest = r; d >= 0; --d) {
          index[d] = rest % shape[d];
          rest /= shape[d];
        }
        placed = true;
      }
      int64_t from = base;
      for (int64_t d = 0; d + 1 < rank; ++d)
        from += index[d] * strides[d];
      const uint8_t *src = in + from * width;
      uint8_t *dst = o + r * count * width;
      if (stride == 1)
        std::memcpy(dst, src, count * width);
      else if (width == 4)
        copyRow<uint32_t>(src, dst, count, stride);
      else if (width == 8)
        copyRow<uint64_t>(src, dst, count, stride);
      else
        copyRow<uint8_t>(src, dst, count, stride);
      for (int64_t d = rank - 2; d >= 0; --d) {
        if (++index[d] < shape[d])
          break;
        index[d] = 0;
      }
    }
  }
}

/// The shape of `x` transposed by `perm`.
static Shape transposeShape(const Shape &x, const std::vector<int64_t> &perm) {
  Shape shape;
  for (int64_t p : perm)
    shape.push_back(p >= 0 && p < static_cast<int64_t>(x.size()) ? x[p] : 0);
  return shape;
}

void transpose(const TensorView &x, const std::vector<int64_t> &perm,
               TensorView &out) {
  assert(holds(x) && static_cast<int64_t>(perm.size()) == x.rank() &&
         "transpose permutation length differs from the rank");
  assert(isPermutation(perm) && "transpose takes a permutation of the axes");
  assert(shapeIs(out, transposeShape(x.shape, perm)) &&
         "transpose result shape differs");
  std::vector<int64_t> strides = stridesOf(x.shape), permuted;
  for (int64_t p : perm)
    permuted.push_back(strides[p]);
  gatherCopy(x, out, 0, permuted);
}

void slice(const TensorView &x, const std::vector<int64_t> &starts,
           const std::vector<int64_t> &steps, TensorView &out) {
  assert(holds(x) && static_cast<int64_t>(starts.size()) == x.rank() &&
         out.rank() == x.rank() && steps.size() == starts.size() &&
         "slice bounds do not match the rank");
  for (size_t d = 0; d < starts.size(); ++d)
    assert(steps[d] > 0 && 0 <= starts[d] &&
           (out.shape[d] == 0 ||
            starts[d] + (out.shape[d] - 1) * steps[d] < x.shape[d]) &&
           "slice bounds out of range");
  std::vector<int64_t> strides = stridesOf(x.shape);
  int64_t base = 0;
  for (size_t d = 0; d < starts.size(); ++d) {
    base += starts[d] * strides[d];
    strides[d] *= steps[d];
  }
  gatherCopy(x, out, base, strides);
}

/// The shape concat gives (checking the inputs agree off the axis).
static Shape concatShape(const std::vector<const TensorView *> &inputs,
                         int64_t axis) {
  assert(!inputs.empty() && "concat of nothing");
  const TensorView &first = *inputs[0];
  assert(validAxis(axis, first.rank()) && "concat axis out of range");
  if (axis < 0)
    axis += first.rank();
  Shape shape = first.shape;
  shape[axis] = 0;
  for (const TensorView *t : inputs) {
    assert(holds(*t) && t->dtype == first.dtype && t->rank() == first.rank() &&
           "concat inputs differ in dtype or rank");
    assert(std::equal(t->shape.begin(), t->shape.begin() + axis,
                      first.shape.begin()) &&
           std::equal(t->shape.begin() + axis + 1, t->shape.end(),
                      first.shape.begin() + axis + 1) &&
           "concat inputs differ off the axis");
    shape[axis] += t->shape[axis];
  }
  return shape;
}

void concat(const std::vector<const TensorView *> &inputs, int64_t axis,
            TensorView &out) {
  assert(shapeIs(out, concatShape(inputs, axis)) &&
         "concat result shape differs");
  if (axis < 0)
    axis += out.rank();
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= out.shape[d];
  size_t pos = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (const TensorView *t : inputs) {
      size_t chunk = t->byteSize() / std::max<int64_t>(outer, 1);
      std::memcpy(out.data() + pos, t->data() + o * chunk, chunk);
      pos += chunk;
    }
}

void split(const TensorView &x, int64_t axis, std::vector<TensorView> &outs) {
  assert(validAxis(axis, x.rank()) && "split axis out of range");
  if (axis < 0)
    axis += x.rank();
  int64_t offset = 0;
  for (TensorView &out : outs) {
    std::vector<int64_t> starts(x.rank(), 0), steps(x.rank(), 1);
    starts[axis] = offset;
    slice(x, starts, steps, out);
    offset += out.shape[axis];
  }
  assert(offset == x.shape[axis] &&
         "split sizes do not add up to the dimension");
}

void expand(const TensorView &x, TensorView &out) {
  const Shape &shape = out.shape;
  assert(holds(x) && broadcastsTo(x.shape, shape) &&
         "expand to a shape the input does not broadcast to");
  gatherCopy(x, out, 0, broadcastStrides(x.shape, shape));
}

/// The shape gather gives.
static Shape gatherShape(const Shape &data, const Shape &indices,
                         int64_t axis) {
  if (axis < 0)
    axis += static_cast<int64_t>(data.size());
  Shape shape(data.begin(), data.begin() + axis);
  shape.insert(shape.end(), indices.begin(), indices.end());
  shape.insert(shape.end(), data.begin() + axis + 1, data.end());
  return shape;
}

void gather(const TensorView &data, const TensorView &indices, int64_t axis,
            TensorView &out) {
  assert(holds(data) && holds(indices) && validAxis(axis, data.rank()) &&
         "gather axis out of range");
  if (axis < 0)
    axis += data.rank();
  assert(indicesIn(indices, -data.shape[axis], data.shape[axis]) &&
         "gather index out of range");
  assert(shapeIs(out, gatherShape(data.shape, indices.shape, axis)) &&
         "gather result shape differs");
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < data.rank(); ++d)
    inner *= data.shape[d];
  int64_t dim = data.shape[axis], count = indices.size();
  size_t width = dtypeSize(data.dtype);
  int64_t outer = out.size() / std::max<int64_t>(count * inner, 1);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < count; ++j) {
      int64_t idx = indices.intAt(j);
      if (idx < 0)
        idx += dim;
      std::memcpy(out.data() + ((o * count + j) * inner) * width,
                  data.data() + ((o * dim + idx) * inner) * width,
                  inner * width);
    }
}

void embedding(const TensorView &table, const TensorView &ids,
               TensorView &out) {
  assert(table.rank() == 2 && indicesIn(ids, 0, table.shape[0]) &&
         "embedding id outside the table");
  gather(table, ids, 0, out);
}

void embeddingGrad(const TensorView &grad, const TensorView &ids,
                   TensorView &out, int64_t paddingIdx) {
  int64_t rows = out.rank() == 2 ? out.shape[0] : -1;
  assert(isF32(grad) && grad.rank() >= 1 && holds(ids) && rows >= 0 &&
         "embedding gradient is not f32 [..., D]");
  int64_t d = grad.shape.back();
  assert(grad.size() == ids.size() * d && out.shape[1] == d &&
         "embedding gradient rows differ from the ids");
  std::memset(out.data(), 0, out.byteSize());
  for (int64_t i = 0, n = ids.size(); i < n; ++i) {
    int64_t row = ids.intAt(i);
    if (row < 0 || row >= rows || row == paddingIdx)
      continue; // out-of-range ids contribute nothing, like a one-hot
    float *dst = out.f32() + row * d;
    const float *src = grad.f32() + i * d;
    for (int64_t j = 0; j < d; ++j)
      dst[j] += src[j];
  }
}

/// Reduces f32 `x` viewed as [outer, mid, inner] over `mid` (reduced axes
/// that lie next to each other), into `out` [outer, inner]: the elements
/// of each output in the order the general loop takes them, summed in
/// double alike, in parallel over blocks of outputs.
static void reduceBlock(Reduction kind, const TensorView &x, int64_t outer,
                        int64_t mid, int64_t inner, TensorView &out) {
  constexpr int64_t kBlock = 64;
  const float *in = x.f32();
  float *o = out.f32();
  if (inner == 1 && mid > 0 && kind != Reduction::Prod) {
    // Each row's own contiguous values (a softmax's statistics over the
    // vocabulary): one vectorised loop per row, not a switch per element.
#pragma omp parallel for if (x.size() >= kParallelElements) schedule(static)
    for (int64_t p = 0; p < outer; ++p) {
      const float *row = in + p * mid;
      if (kind == Reduction::Max || kind == Reduction::Min) {
        o[p] = kind == Reduction::Max ? rowExtreme<true>(row, mid)
                                      : rowExtreme<false>(row, mid);
        continue;
      }
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t m = 0; m < mid; ++m)
        sum += row[m];
      o[p] = static_cast<float>(kind == Reduction::Mean ? sum / mid : sum);
    }
    return;
  }
  int64_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) if (x.size() >= kParallelElements)        \
    schedule(static)
  for (int64_t p = 0; p < outer; ++p)
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t first = b * kBlock, width = std::min(kBlock, inner - first);
      double acc[kBlock];
      std::fill(acc, acc + width, kind == Reduction::Prod ? 1.0 : 0.0);
      for (int64_t m = 0; m < mid; ++m) {
        const float *row = in + (p * mid + m) * inner + first;
        for (int64_t j = 0; j < width; ++j) {
          double v = row[j];
          switch (kind) {
          case Reduction::Max:
            acc[j] = m ? std::max(acc[j], v) : v;
            break;
          case Reduction::Min:
            acc[j] = m ? std::min(acc[j], v) : v;
            break;
          case Reduction::Prod:
            acc[j] *= v;
            break;
          default:
            acc[j] += v;
            break;
          }
        }
      }
      for (int64_t j = 0; j < width; ++j)
        o[p * inner + first + j] = static_cast<float>(
            kind == Reduction::Mean ? acc[j] / std::max<int64_t>(mid, 1)
                                    : acc[j]);
    }
}

void reduce(Reduction kind, const TensorView &x,
            const std::vector<int64_t> &axes, TensorView &out) {
  assert(holds(x) && "reduce operand bytes do not match its shape");
  Shape kept = x.shape;
  for (int64_t a : axes) {
    assert(a >= 0 && a < x.rank() && "reduce axis out of range");
    kept[a] = 1;
  }
  int64_t outCount = numElements(kept);
  // f32 over axes next to each other (bias gradients, norm statistics):
  // the blocked loop.
  int64_t firstAxis = x.rank(), lastAxis = -1;
  for (int64_t a : axes) {
    firstAxis = std::min(firstAxis, a);
    lastAxis = std::max(lastAxis, a);
  }
  if (x.dtype == DType::F32 && out.dtype == DType::F32 && lastAxis >= 0 &&
      std::all_of(kept.begin() + firstAxis, kept.begin() + lastAxis + 1,
                  [](int64_t d) { return d == 1; })) {
    int64_t outer =
        numElements(Shape(x.shape.begin(), x.shape.begin() + firstAxis));
    int64_t mid = numElements(
        Shape(x.shape.begin() + firstAxis, x.shape.begin() + lastAxis + 1));
    reduceBlock(kind, x, outer, mid, outCount / std::max<int64_t>(outer, 1),
                out);
    return;
  }
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
  assert(out.size() == outCount && out.dtype == x.dtype &&
         "reduce result size differs");
  for (int64_t o = 0; o < outCount; ++o)
    out.set(o, kind == Reduction::Mean ? acc[o] / std::max<int64_t>(count[o], 1)
                                       : acc[o]);
}

/// Applies `line(row, dst, dim, inner)` to every line of `x` along `axis`
/// (element j of a line at offset j * inner), in parallel, writing `out`
/// (f32, `x`'s shape).
template <typename LineFn>
GALVATRON_VECTOR_CLONES static void mapLines(const TensorView &x, int64_t axis,
                                             TensorView &out, LineFn line) {
  assert(isF32(x) && validAxis(axis, x.rank()) &&
         "softmax takes f32 and an axis in range");
  assert(isF32(out) && shapeIs(out, x.shape) && "softmax result differs");
  if (axis < 0)
    axis += x.rank();
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
}

static float lineMax(const float *row, int64_t dim, int64_t inner) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < dim; ++j)
    max = std::max(max, row[j * inner]);
  return max;
}

void softmax(const TensorView &x, int64_t axis, TensorView &out) {
  mapLines(x, axis, out,
           [](const float *row, float *dst, int64_t dim, int64_t inner) {
             float max = lineMax(row, dim, inner);
             double sum = 0;
#pragma omp simd reduction(+ : sum)
             for (int64_t j = 0; j < dim; ++j) {
               dst[j * inner] = expNonPositive(row[j * inner] - max);
               sum += dst[j * inner];
             }
             for (int64_t j = 0; j < dim; ++j)
               dst[j * inner] = static_cast<float>(dst[j * inner] / sum);
           });
}

void logSoftmax(const TensorView &x, int64_t axis, TensorView &out) {
  mapLines(x, axis, out,
           [](const float *row, float *dst, int64_t dim, int64_t inner) {
             float max = lineMax(row, dim, inner);
             double sum = 0;
#pragma omp simd reduction(+ : sum)
             for (int64_t j = 0; j < dim; ++j)
               sum += expNonPositive(row[j * inner] - max);
             double shift = max + std::log(sum);
             for (int64_t j = 0; j < dim; ++j)
               dst[j * inner] = static_cast<float>(row[j * inner] - shift);
           });
}

/// The value of element `i` of `x` as a double (any dtype).
static double valueAt(const TensorView &x, int64_t i) {
  switch (x.dtype) {
  case DType::F32:
    return x.f32()[i];
  case DType::F64:
    return reinterpret_cast<const double *>(x.data())[i];
  case DType::I64:
    return static_cast<double>(x.i64()[i]);
  case DType::I32:
    return reinterpret_cast<const int32_t *>(x.data())[i];
  case DType::Bool:
    return x.data()[i];
  case DType::BF16:
    return bf16ToFloat(x.bf16()[i]);
  }
  return 0;
}

void argMax(const TensorView &x, int64_t axis, bool selectLast,
            TensorView &out) {
  assert(holds(x) && validAxis(axis, x.rank()) && "argmax axis out of range");
  if (axis < 0)
    axis += x.rank();
  assert(out.dtype == DType::I64 &&
         out.size() * std::max<int64_t>(x.shape[axis], 1) ==
             std::max<int64_t>(x.size(), out.size()) &&
         "argmax result size differs");
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
}

/// One row of a layer norm (the sums in double).
static void layerNormRow(const float *in, int64_t d, const float *scale,
                         const float *bias, double eps, float *o) {
  double mean = 0, var = 0;
  for (int64_t j = 0; j < d; ++j)
    mean += in[j];
  mean /= d;
  for (int64_t j = 0; j < d; ++j)
    var += (in[j] - mean) * (in[j] - mean);
  var /= d;
  double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t j = 0; j < d; ++j)
    o[j] = static_cast<float>((in[j] - mean) * inv * scale[j] +
                              (bias ? bias[j] : 0.0));
}

/// One row of an RMS norm.
static void rmsNormRow(const float *in, int64_t d, const float *scale,
                       double eps, float *o) {
  double ms = 0;
  for (int64_t j = 0; j < d; ++j)
    ms += double(in[j]) * in[j];
  double inv = 1.0 / std::sqrt(ms / d + eps);
  for (int64_t j = 0; j < d; ++j)
    o[j] = static_cast<float>(in[j] * inv) * scale[j];
}

void layerNorm(const TensorView &x, const TensorView &scale,
               const TensorView *bias, double eps, TensorView &out) {
  assert(isF32(x) && x.rank() >= 1 && isF32(scale) &&
         scale.size() == x.shape.back() &&
         (!bias || (isF32(*bias) && bias->size() == x.shape.back())) &&
         "layer norm scale or bias differs from the last dimension");
  assert(isF32(out) && shapeIs(out, x.shape) && "layer norm result differs");
  int64_t d = x.shape.back(), rows = x.size() / std::max<int64_t>(d, 1);
#pragma omp parallel for if (x.size() >= kParallelElements) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    layerNormRow(x.f32() + r * d, d, scale.f32(), bias ? bias->f32() : nullptr,
                 eps, out.f32() + r * d);
}

void rmsNorm(const TensorView &x, const TensorView &scale, double eps,
             TensorView &out) {
  assert(isF32(x) && x.rank() >= 1 && isF32(scale) &&
         scale.size() == x.shape.back() &&
         "RMS norm scale differs from the last dimension");
  assert(isF32(out) && shapeIs(out, x.shape) && "RMS norm result differs");
  int64_t d = x.shape.back(), rows = x.size() / std::max<int64_t>(d, 1);
#pragma omp parallel for if (x.size() >= kParallelElements) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    rmsNormRow(x.f32() + r * d, d, scale.f32(), eps, out.f32() + r * d);
}

void addNorm(const TensorView &x, const TensorView &residual,
             const TensorView &scale, const TensorView *bias, bool rms,
             double eps, TensorView &sum, TensorView &out) {
  assert(isF32(x) && isF32(residual) && residual.shape == x.shape &&
         x.rank() >= 1 && isF32(scale) && scale.size() == x.shape.back() &&
         (!bias || (isF32(*bias) && bias->size() == x.shape.back())) &&
         isF32(sum) && shapeIs(sum, x.shape) && isF32(out) &&
         shapeIs(out, x.shape) && "add-norm operands differ");
  int64_t d = x.shape.back(), rows = x.size() / std::max<int64_t>(d, 1);
#pragma omp parallel for if (x.size() >= kParallelElements) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *a = x.f32() + r * d, *b = residual.f32() + r * d;
    float *s = sum.f32() + r * d;
    // The sum the separate add would store, normalised as the separate
    // norm would read it: both results are the unfused ones, bit for bit.
    for (int64_t j = 0; j < d; ++j)
      s[j] = a[j] + b[j];
    if (rms)
      rmsNormRow(s, d, scale.f32(), eps, out.f32() + r * d);
    else
      layerNormRow(s, d, scale.f32(), bias ? bias->f32() : nullptr, eps,
                   out.f32() + r * d);
  }
}

void rotary(const TensorView &x, const TensorView &cos, const TensorView &sin,
            bool interleaved, TensorView &out) {
  assert(isF32(x) && isF32(cos) && isF32(sin) && x.rank() >= 1 &&
         cos.rank() >= 1 && cos.shape == sin.shape &&
         "rotary takes f32 x and cos, sin of one shape");
  int64_t dim = x.shape.back(), rotated = cos.shape.back();
  assert(rotated % 2 == 0 && rotated <= dim &&
         "rotary rotates an even part of the last dimension");
  assert(isF32(out) && shapeIs(out, x.shape) && "rotary result differs");
  Shape table = x.shape;
  table.back() = rotated;
  Tensor c(DType::F32, table), s(DType::F32, table);
  TensorView cv(c), sv(s);
  expand(cos, cv);
  expand(sin, sv);
  reshape(x, out); // the part past `rotated` passes through
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
}

GALVATRON_VECTOR_CLONES
void crossEntropy(const TensorView &logits, const TensorView &labels, bool mean,
                  int64_t ignoreIndex, TensorView &out) {
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
    float max = rowMax(row, classes);
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < classes; ++c)
      sum += expNonPositive(row[c] - max);
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
  assert(isF32(out) && out.size() == 1 && "cross-entropy gives one f32");
  out.f32()[0] =
      static_cast<float>(mean ? (counted ? total / counted : 0.0) : total);
}

//===----------------------------------------------------------------------===//
// Allocating forms
//===----------------------------------------------------------------------===//

Tensor binary(Binary kind, const Tensor &a, const Tensor &b) {
  return produce(isPredicate(kind) ? DType::Bool : a.dtype,
                 broadcastShape(a.shape, b.shape),
                 [&](TensorView &o) { binary(kind, a, b, o); });
}

Tensor unary(Unary kind, const Tensor &x) {
  return produce(x.dtype, x.shape, [&](TensorView &o) { unary(kind, x, o); });
}

Tensor where(const Tensor &condition, const Tensor &onTrue,
             const Tensor &onFalse) {
  return produce(onTrue.dtype,
                 whereShape(condition.shape, onTrue.shape, onFalse.shape),
                 [&](TensorView &o) { where(condition, onTrue, onFalse, o); });
}

Tensor cast(const Tensor &x, DType to) {
  return produce(to, x.shape, [&](TensorView &o) { cast(x, o); });
}

Tensor matmul(const Tensor &a, const Tensor &b, bool transA, bool transB) {
  assert(isF32(a) && isF32(b) && a.rank() >= 2 && b.rank() >= 2 &&
         "matmul takes f32 operands of rank 2 or more");
  return produce(DType::F32, matmulShape(a.shape, b.shape, transA, transB),
                 [&](TensorView &o) { matmul(a, b, o, transA, transB); });
}

Tensor linear(const Tensor &x, const Tensor &w, const Tensor *bias,
              bool outIn) {
  assert(x.rank() >= 1 && w.rank() == 2 &&
         "linear takes f32 x [..., K] and w of rank 2");
  Shape shape = x.shape;
  shape.back() = outIn ? w.shape[0] : w.shape[1];
  return produce(DType::F32, shape, [&](TensorView &o) {
    std::optional<TensorView> b;
    if (bias)
      b.emplace(*bias);
    linear(x, w, b ? &*b : nullptr, outIn, o);
  });
}

Tensor reshape(const Tensor &x, const Shape &shape) {
  Tensor out = x;
  out.shape = shape;
  assert(out.size() == x.size() && "reshape changes the element count");
  return out;
}

Tensor transpose(const Tensor &x, const std::vector<int64_t> &perm) {
  assert(static_cast<int64_t>(perm.size()) == x.rank() &&
         "transpose permutation length differs from the rank");
  assert(isPermutation(perm) && "transpose takes a permutation of the axes");
  return produce(x.dtype, transposeShape(x.shape, perm),
                 [&](TensorView &o) { transpose(x, perm, o); });
}

Tensor slice(const Tensor &x, const std::vector<int64_t> &starts,
             const std::vector<int64_t> &limits,
             const std::vector<int64_t> &steps) {
  assert(static_cast<int64_t>(starts.size()) == x.rank() &&
         limits.size() == starts.size() && steps.size() == starts.size() &&
         "slice bounds do not match the rank");
  Shape shape;
  for (size_t d = 0; d < starts.size(); ++d) {
    assert(steps[d] > 0 && 0 <= starts[d] && starts[d] <= limits[d] &&
           limits[d] <= x.shape[d] && "slice bounds out of range");
    shape.push_back((limits[d] - starts[d] + steps[d] - 1) / steps[d]);
  }
  return produce(x.dtype, shape,
                 [&](TensorView &o) { slice(x, starts, steps, o); });
}

Tensor concat(const std::vector<const Tensor *> &inputs, int64_t axis) {
  std::vector<TensorView> views;
  for (const Tensor *t : inputs)
    views.emplace_back(*t);
  std::vector<const TensorView *> parts;
  for (const TensorView &v : views)
    parts.push_back(&v);
  return produce(inputs[0]->dtype, concatShape(parts, axis),
                 [&](TensorView &o) { concat(parts, axis, o); });
}

std::vector<Tensor> split(const Tensor &x, int64_t axis,
                          const std::vector<int64_t> &sizes) {
  assert(validAxis(axis, x.rank()) && "split axis out of range");
  int64_t a = axis < 0 ? axis + x.rank() : axis;
  assert(std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) ==
             x.shape[a] &&
         "split sizes do not add up to the dimension");
  std::vector<Tensor> out;
  std::vector<TensorView> views;
  for (int64_t size : sizes) {
    Shape shape = x.shape;
    shape[a] = size;
    out.emplace_back(x.dtype, shape);
  }
  for (const Tensor &t : out)
    views.emplace_back(t);
  split(x, a, views);
  return out;
}

Tensor expand(const Tensor &x, const Shape &shape) {
  return produce(x.dtype, shape, [&](TensorView &o) { expand(x, o); });
}

Tensor gather(const Tensor &data, const Tensor &indices, int64_t axis) {
  assert(validAxis(axis, data.rank()) && "gather axis out of range");
  return produce(data.dtype, gatherShape(data.shape, indices.shape, axis),
                 [&](TensorView &o) { gather(data, indices, axis, o); });
}

Tensor embedding(const Tensor &table, const Tensor &ids) {
  return produce(table.dtype, gatherShape(table.shape, ids.shape, 0),
                 [&](TensorView &o) { embedding(table, ids, o); });
}

Tensor embeddingGrad(const Tensor &grad, const Tensor &ids, int64_t rows,
                     int64_t paddingIdx) {
  assert(grad.rank() >= 1 && "embedding gradient is not f32 [..., D]");
  return produce(DType::F32, {rows, grad.shape.back()}, [&](TensorView &o) {
    embeddingGrad(grad, ids, o, paddingIdx);
  });
}

Tensor reduce(Reduction kind, const Tensor &x, const std::vector<int64_t> &axes,
              bool keepDims) {
  Shape shape;
  for (int64_t d = 0; d < x.rank(); ++d) {
    bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!reduced)
      shape.push_back(x.shape[d]);
    else if (keepDims)
      shape.push_back(1);
  }
  return produce(x.dtype, shape,
                 [&](TensorView &o) { reduce(kind, x, axes, o); });
}

Tensor softmax(const Tensor &x, int64_t axis) {
  return produce(DType::F32, x.shape,
                 [&](TensorView &o) { softmax(x, axis, o); });
}

Tensor logSoftmax(const Tensor &x, int64_t axis) {
  return produce(DType::F32, x.shape,
                 [&](TensorView &o) { logSoftmax(x, axis, o); });
}

Tensor argMax(const Tensor &x, int64_t axis, bool keepdims, bool selectLast) {
  assert(validAxis(axis, x.rank()) && "argmax axis out of range");
  int64_t a = axis < 0 ? axis + x.rank() : axis;
  Shape shape;
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d != a)
      shape.push_back(x.shape[d]);
    else if (keepdims)
      shape.push_back(1);
  return produce(DType::I64, shape,
                 [&](TensorView &o) { argMax(x, axis, selectLast, o); });
}

Tensor layerNorm(const Tensor &x, const Tensor &scale, const Tensor *bias,
                 double eps) {
  return produce(DType::F32, x.shape, [&](TensorView &o) {
    std::optional<TensorView> b;
    if (bias)
      b.emplace(*bias);
    layerNorm(x, scale, b ? &*b : nullptr, eps, o);
  });
}

Tensor rmsNorm(const Tensor &x, const Tensor &scale, double eps) {
  return produce(DType::F32, x.shape,
                 [&](TensorView &o) { rmsNorm(x, scale, eps, o); });
}

Tensor rotary(const Tensor &x, const Tensor &cos, const Tensor &sin,
              bool interleaved) {
  return produce(DType::F32, x.shape,
                 [&](TensorView &o) { rotary(x, cos, sin, interleaved, o); });
}

Tensor crossEntropy(const Tensor &logits, const Tensor &labels, bool mean,
                    int64_t ignoreIndex) {
  return produce(DType::F32, {}, [&](TensorView &o) {
    crossEntropy(logits, labels, mean, ignoreIndex, o);
  });
}

} // namespace galvatron::rt
