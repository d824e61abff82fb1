//===- ElementwiseKernels.cu - binary, unary, where and cast on CUDA ------===//
//
// One thread per output element, operands read through broadcast indexers.
// Floats (f32, bf16) compute in fp32 as the CPU kernels do; integers and
// bools compute in int64 (the CPU's generic path); comparisons write bools.
//
//===----------------------------------------------------------------------===//

#include "DeviceMath.cuh"

#include <cmath>
#include <type_traits>

namespace galvatron::rt::cuda {
namespace {

/// One binary operation, in float (f32, bf16) or int64 (integers, bools):
/// the two differ only in division by zero and pow, as on the CPU.
template <typename T> __device__ T apply(Binary kind, T p, T q) {
  switch (kind) {
  case Binary::Add:
    return p + q;
  case Binary::Sub:
    return p - q;
  case Binary::Mul:
    return p * q;
  case Binary::Div:
    if constexpr (std::is_integral_v<T>)
      return q ? p / q : 0;
    else
      return p / q;
  case Binary::Pow: // integers as the CPU: through double, truncated
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(
          pow(static_cast<double>(p), static_cast<double>(q)));
    else
      return powf(p, q);
  case Binary::Max: // std::max's order: a NaN counts only as the left operand
    return p < q ? q : p;
  case Binary::Min:
    return q < p ? q : p;
  case Binary::And:
    return (p != T(0)) && (q != T(0));
  case Binary::Or:
    return (p != T(0)) || (q != T(0));
  case Binary::Eq:
    return p == q;
  case Binary::Ne:
    return p != q;
  case Binary::Lt:
    return p < q;
  case Binary::Le:
    return p <= q;
  case Binary::Gt:
    return p > q;
  case Binary::Ge:
    return p >= q;
  }
  return T(0);
}

/// Stores an integer result in an integer or bool tensor.
__device__ void storeI(void *p, int64_t i, DType d, int64_t v) {
  switch (d) {
  case DType::I64:
    static_cast<int64_t *>(p)[i] = v;
    break;
  case DType::I32:
    static_cast<int32_t *>(p)[i] = static_cast<int32_t>(v);
    break;
  case DType::Bool:
    static_cast<uint8_t *>(p)[i] = v != 0;
    break;
  default:
    break;
  }
}

__global__ void binaryFloatKernel(Binary kind, const void *a, bool aBf16,
                                  Indexer ia, const void *b, bool bBf16,
                                  Indexer ib, void *out, DType outType,
                                  int64_t n) {
  GALV_FOR_EACH(i, n) {
    float r = apply<float>(kind, loadF(a, ia.offset(i), aBf16),
                           loadF(b, ib.offset(i), bBf16));
    if (outType == DType::Bool)
      static_cast<uint8_t *>(out)[i] = r != 0.0f;
    else
      storeF(out, i, outType == DType::BF16, r);
  }
}

__global__ void binaryIntKernel(Binary kind, const void *a, DType aType,
                                Indexer ia, const void *b, DType bType,
                                Indexer ib, void *out, DType outType,
                                int64_t n) {
  GALV_FOR_EACH(i, n) {
    storeI(out, i, outType,
           apply<int64_t>(kind, loadI(a, ia.offset(i), aType),
                          loadI(b, ib.offset(i), bType)));
  }
}

__device__ float geluTanh(float x) {
  const float c = 0.797884560802865355f; // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

/// 1 / (1 + e^-x), from e^-|x| so that nothing overflows.
__device__ float sigmoid(float v) {
  float e = expf(-fabsf(v));
  float inverse = 1.0f / (1.0f + e);
  return v >= 0.0f ? inverse : e * inverse;
}

__device__ float applyUnary(Unary kind, float v) {
  switch (kind) {
  case Unary::Neg:
    return -v;
  case Unary::Abs:
    return fabsf(v);
  case Unary::Exp:
    return expf(v);
  case Unary::Log:
    return logf(v);
  case Unary::Sqrt:
    return sqrtf(v);
  case Unary::Rsqrt:
    return 1.0f / sqrtf(v);
  case Unary::Reciprocal:
    return 1.0f / v;
  case Unary::Tanh:
    return tanhf(v);
  case Unary::Erf:
    return erff(v);
  case Unary::Sigmoid:
    return sigmoid(v);
  case Unary::Relu:
    return v > 0.0f ? v : 0.0f;
  case Unary::Silu:
    return v * sigmoid(v);
  case Unary::Gelu:
    return 0.5f * v * (1.0f + erff(v / sqrtf(2.0f)));
  case Unary::GeluTanh:
    return geluTanh(v);
  case Unary::Not:
    return v == 0.0f ? 1.0f : 0.0f;
  }
  return v;
}

__global__ void unaryFloatKernel(Unary kind, const void *x, void *out,
                                 bool bf16, int64_t n) {
  GALV_FOR_EACH(i, n) {
    storeF(out, i, bf16, applyUnary(kind, loadF(x, i, bf16)));
  }
}

/// Integers and bools: what is defined for them, the value otherwise.
__global__ void unaryIntKernel(Unary kind, const void *x, void *out, DType d,
                               int64_t n) {
  GALV_FOR_EACH(i, n) {
    int64_t v = loadI(x, i, d);
    int64_t r = kind == Unary::Neg   ? -v
                : kind == Unary::Abs ? (v < 0 ? -v : v)
                : kind == Unary::Not ? (v == 0)
                                     : v;
    storeI(out, i, d, r);
  }
}

/// Copies `width`-byte elements of the picked operand.
__global__ void whereKernel(const void *condition, DType cType, Indexer ic,
                            const uint8_t *onTrue, Indexer it,
                            const uint8_t *onFalse, Indexer iff, uint8_t *out,
                            int width, int64_t n) {
  GALV_FOR_EACH(i, n) {
    bool keep = loadI(condition, ic.offset(i), cType) != 0;
    const uint8_t *from =
        keep ? onTrue + it.offset(i) * width : onFalse + iff.offset(i) * width;
    for (int k = 0; k < width; ++k)
      out[i * width + k] = from[k];
  }
}

/// Element i of any tensor as double (the CPU converts through double).
__device__ double loadAny(const void *p, int64_t i, DType d) {
  switch (d) {
  case DType::F32:
    return static_cast<const float *>(p)[i];
  case DType::BF16:
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
  case DType::F64:
    return static_cast<const double *>(p)[i];
  default:
    return static_cast<double>(loadI(p, i, d));
  }
}

__global__ void castKernel(const void *x, DType from, void *out, DType to,
                           int64_t n) {
  GALV_FOR_EACH(i, n) {
    double v = loadAny(x, i, from);
    switch (to) {
    case DType::F32:
      static_cast<float *>(out)[i] = static_cast<float>(v);
      break;
    case DType::BF16:
      // Through fp32 with one rounding, as the CPU's floatToBf16.
      static_cast<__nv_bfloat16 *>(out)[i] =
          __float2bfloat16_rn(static_cast<float>(v));
      break;
    case DType::F64:
      static_cast<double *>(out)[i] = v;
      break;
    case DType::Bool:
      static_cast<uint8_t *>(out)[i] = v != 0.0;
      break;
    default:
      // Integers from integers exactly; from floats truncated.
      storeI(out, i, to,
             from == DType::I64 || from == DType::I32 || from == DType::Bool
                 ? loadI(x, i, from)
                 : static_cast<int64_t>(v));
      break;
    }
  }
}

} // namespace

cudaError_t binary(Binary kind, const DeviceView &a, const DeviceView &b,
                   DeviceView &out, cudaStream_t stream) {
  Indexer ia, ib;
  if (!broadcastIndexer(a.shape, out.shape, ia) ||
      !broadcastIndexer(b.shape, out.shape, ib))
    return cudaErrorNotSupported;
  int64_t n = out.size();
  if (n == 0)
    return cudaSuccess;
  bool compares =
      kind >= Binary::Eq || kind == Binary::And || kind == Binary::Or;
  if (isDeviceFloat(a.dtype) && isDeviceFloat(b.dtype)) {
    // Arithmetic writes a float, comparisons and logic a bool.
    if (!(isDeviceFloat(out.dtype) || (compares && out.dtype == DType::Bool)))
      return cudaErrorNotSupported;
    binaryFloatKernel<<<blocksFor(n), kThreads, 0, stream>>>(
        kind, a.data, a.dtype == DType::BF16, ia, b.data,
        b.dtype == DType::BF16, ib, out.data, out.dtype, n);
    return launched();
  }
  if (isDeviceFloat(a.dtype) || isDeviceFloat(b.dtype) ||
      a.dtype == DType::F64 || b.dtype == DType::F64 ||
      isDeviceFloat(out.dtype) || out.dtype == DType::F64)
    return cudaErrorNotSupported;
  binaryIntKernel<<<blocksFor(n), kThreads, 0, stream>>>(
      kind, a.data, a.dtype, ia, b.data, b.dtype, ib, out.data, out.dtype, n);
  return launched();
}

cudaError_t unary(Unary kind, const DeviceView &x, DeviceView &out,
                  cudaStream_t stream) {
  int64_t n = x.size();
  if (out.dtype != x.dtype || out.size() != n)
    return cudaErrorNotSupported;
  if (n == 0)
    return cudaSuccess;
  if (isDeviceFloat(x.dtype)) {
    unaryFloatKernel<<<blocksFor(n), kThreads, 0, stream>>>(
        kind, x.data, out.data, x.dtype == DType::BF16, n);
    return launched();
  }
  if (x.dtype == DType::F64)
    return cudaErrorNotSupported;
  unaryIntKernel<<<blocksFor(n), kThreads, 0, stream>>>(kind, x.data, out.data,
                                                        x.dtype, n);
  return launched();
}

cudaError_t where(const DeviceView &condition, const DeviceView &onTrue,
                  const DeviceView &onFalse, DeviceView &out,
                  cudaStream_t stream) {
  Indexer ic, it, iff;
  if (!broadcastIndexer(condition.shape, out.shape, ic) ||
      !broadcastIndexer(onTrue.shape, out.shape, it) ||
      !broadcastIndexer(onFalse.shape, out.shape, iff) ||
      onTrue.dtype != out.dtype || onFalse.dtype != out.dtype ||
      isDeviceFloat(condition.dtype) || condition.dtype == DType::F64)
    return cudaErrorNotSupported;
  int64_t n = out.size();
  if (n == 0)
    return cudaSuccess;
  whereKernel<<<blocksFor(n), kThreads, 0, stream>>>(
      condition.data, condition.dtype, ic,
      static_cast<const uint8_t *>(onTrue.data), it,
      static_cast<const uint8_t *>(onFalse.data), iff,
      static_cast<uint8_t *>(out.data), static_cast<int>(dtypeSize(out.dtype)),
      n);
  return launched();
}

cudaError_t cast(const DeviceView &x, DeviceView &out, cudaStream_t stream) {
  int64_t n = x.size();
  if (n == 0)
    return cudaSuccess;
  castKernel<<<blocksFor(n), kThreads, 0, stream>>>(x.data, x.dtype, out.data,
                                                    out.dtype, n);
  return launched();
}

} // namespace galvatron::rt::cuda
