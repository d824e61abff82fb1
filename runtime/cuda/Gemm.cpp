//===- Gemm.cpp - matmul and linear through cuBLASLt ----------------------===//
//
// cuBLASLt is column-major: a row-major C [M, N] = A [M, K] B [K, N] is the
// column-major C^T = B^T A^T, so each product is issued with the operands
// swapped and every row-major matrix read as its column-major transpose.
// f32 runs with an fp32 compute type (no TF32: fp32 plans must match the CPU
// within 1e-4); bf16 with an fp32 accumulator and the bias added in the
// epilogue before the one rounding of the result.
//
//===----------------------------------------------------------------------===//

#include "DeviceKernels.h"

#include <cublasLt.h>

#include <string>

namespace galvatron::rt::cuda {
namespace {

thread_local std::string lastDetail;

/// One handle and workspace per thread (each rank's thread drives one
/// device), made on first use.
struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void *workspace = nullptr;
  size_t workspaceBytes = size_t(32) << 20;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;

  LtContext() {
    status = cublasLtCreate(&handle);
    if (status == CUBLAS_STATUS_SUCCESS &&
        cudaMalloc(&workspace, workspaceBytes) != cudaSuccess) {
      workspace = nullptr;
      workspaceBytes = 0;
    }
  }
  ~LtContext() {
    if (workspace)
      cudaFree(workspace);
    if (handle)
      cublasLtDestroy(handle);
  }
};

LtContext &context() {
  thread_local LtContext ctx;
  return ctx;
}

cudaError_t fail(const std::string &what, cublasStatus_t status) {
  lastDetail = what + ": " + cublasLtGetStatusString(status);
  return cudaErrorUnknown;
}

/// One row-major product C = op(A) op(B) (+ bias[N] per column), `batch`
/// times with element strides between the matrices (0: the same matrix).
struct Product {
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0;
  const void *a = nullptr, *b = nullptr, *bias = nullptr;
  void *c = nullptr;
  /// With GELU: C holds gelu(AB + bias) and `preActivation` AB + bias.
  void *preActivation = nullptr;
  int64_t batch = 1, strideA = 0, strideB = 0, strideC = 0;
  cudaDataType_t type = CUDA_R_32F;
};

/// Frees the descriptors however run() leaves.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~Descriptors() {
    if (preference)
      cublasLtMatmulPreferenceDestroy(preference);
    for (cublasLtMatrixLayout_t l : {a, b, c})
      if (l)
        cublasLtMatrixLayoutDestroy(l);
    if (op)
      cublasLtMatmulDescDestroy(op);
  }
};

cublasStatus_t layout(cublasLtMatrixLayout_t &l, cudaDataType_t type,
                      int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                      int64_t stride) {
  cublasStatus_t s = cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld);
  if (s != CUBLAS_STATUS_SUCCESS || batch == 1)
    return s;
  int32_t count = static_cast<int32_t>(batch);
  s = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                       &count, sizeof count);
  if (s != CUBLAS_STATUS_SUCCESS)
    return s;
  return cublasLtMatrixLayoutSetAttribute(
      l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
}

cudaError_t run(const Product &p, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0 || p.batch == 0)
    return cudaSuccess; // nothing to write
  if (p.k == 0) {
    // An empty sum: zeros (the bias alone is not needed by any plan).
    if (p.bias) {
      lastDetail = "a product over an empty dimension with a bias";
      return cudaErrorNotSupported;
    }
    size_t width = p.type == CUDA_R_32F ? 4 : 2;
    return cudaMemsetAsync(p.c, 0, width * p.m * p.n * p.batch, stream);
  }
  LtContext &ctx = context();
  if (ctx.status != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtCreate", ctx.status);
  Descriptors d;
  cublasStatus_t s =
      cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulDescCreate", s);
  // Column-major: D^T [N, M] = op(B)^T [N, K] op(A)^T [K, M].
  cublasOperation_t opFirst = p.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opSecond = p.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opFirst,
                                 sizeof opFirst);
  cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opSecond,
                                 sizeof opSecond);
  // The bias (and the tanh GELU, cuBLASLt's form, GPT-2's gelu_new) in
  // the epilogue; with GELU the pre-activation goes to the auxiliary output
  // for the backward pass.
  if (p.bias) {
    cublasLtEpilogue_t epilogue = p.preActivation
                                      ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                      : CUBLASLT_EPILOGUE_BIAS;
    cudaDataType_t biasType = p.type;
    cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                   &epilogue, sizeof epilogue);
    cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                   &p.bias, sizeof p.bias);
    cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                   &biasType, sizeof biasType);
  }
  if (p.preActivation) {
    int64_t ld = p.n;
    cublasLtMatmulDescSetAttribute(d.op,
                                   CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                   &p.preActivation, sizeof p.preActivation);
    cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                   &ld, sizeof ld);
  }
  // B row-major [K, N] is column-major [N, K] (ld N); transposed, [N, K]
  // row-major is column-major [K, N] (ld K). Likewise A.
  if ((s = layout(d.a, p.type, p.transB ? p.k : p.n, p.transB ? p.n : p.k,
                  p.transB ? p.k : p.n, p.batch, p.strideB)) ||
      (s = layout(d.b, p.type, p.transA ? p.m : p.k, p.transA ? p.k : p.m,
                  p.transA ? p.m : p.k, p.batch, p.strideA)) ||
      (s = layout(d.c, p.type, p.n, p.m, p.n, p.batch, p.strideC)))
    return fail("cublasLtMatrixLayoutCreate", s);
  if ((s = cublasLtMatmulPreferenceCreate(&d.preference)))
    return fail("cublasLtMatmulPreferenceCreate", s);
  cublasLtMatmulPreferenceSetAttribute(
      d.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
      &ctx.workspaceBytes, sizeof ctx.workspaceBytes);
  // The heuristic assumes 256-byte aligned operands unless told: a matrix
  // inside a batch or arena slot may be less.
  auto alignment = [](const void *p) {
    uint32_t a = 256;
    while (a > 1 && reinterpret_cast<uintptr_t>(p) % a)
      a /= 2;
    return a;
  };
  const std::pair<cublasLtMatmulPreferenceAttributes_t, const void *>
      aligned[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.b},
                   {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.a},
                   {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.c},
                   {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.c}};
  for (auto [attribute, pointer] : aligned) {
    uint32_t a = alignment(pointer);
    cublasLtMatmulPreferenceSetAttribute(d.preference, attribute, &a, sizeof a);
  }
  cublasLtMatmulHeuristicResult_t heuristic = {};
  int found = 0;
  s = cublasLtMatmulAlgoGetHeuristic(ctx.handle, d.op, d.a, d.b, d.c, d.c,
                                     d.preference, 1, &heuristic, &found);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0)
    return fail("no cuBLASLt algorithm for this product",
                found ? s : CUBLAS_STATUS_NOT_SUPPORTED);
  const float alpha = 1.0f, beta = 0.0f;
  s = cublasLtMatmul(ctx.handle, d.op, &alpha, p.b, d.a, p.a, d.b, &beta, p.c,
                     d.c, p.c, d.c, &heuristic.algo, ctx.workspace,
                     ctx.workspaceBytes, stream);
  if (s != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmul", s);
  return cudaSuccess;
}

bool typeOf(DType dtype, cudaDataType_t &type) {
  if (dtype == DType::F32)
    type = CUDA_R_32F;
  else if (dtype == DType::BF16)
    type = CUDA_R_16BF;
  else
    return false;
  return true;
}

/// The batch count of `shape` (all but its last two dimensions).
int64_t batchOf(const Shape &shape) {
  int64_t n = 1;
  for (size_t d = 0; d + 2 < shape.size(); ++d)
    n *= shape[d];
  return n;
}

} // namespace

const char *gemmErrorDetail() { return lastDetail.c_str(); }

/// linear, and with `preActivation` the GELU epilogue writing it.
static cudaError_t linearWith(const DeviceView &x, const DeviceView &w,
                              const DeviceView *bias, bool outIn,
                              DeviceView &out, void *preActivation,
                              cudaStream_t stream);

cudaError_t matmul(const DeviceView &a, const DeviceView &b, bool transA,
                   bool transB, DeviceView &out, cudaStream_t stream) {
  Product p;
  if (a.dtype != b.dtype || a.dtype != out.dtype || !typeOf(a.dtype, p.type) ||
      a.rank() < 2 || b.rank() < 2 || out.rank() < 2) {
    lastDetail = "matmul operands must be two f32 or two bf16 matrices";
    return cudaErrorNotSupported;
  }
  p.transA = transA;
  p.transB = transB;
  p.m = out.shape[out.rank() - 2];
  p.n = out.shape.back();
  p.k = a.shape[a.rank() - (transA ? 2 : 1)];
  int64_t batches = batchOf(out.shape), ba = batchOf(a.shape),
          bb = batchOf(b.shape);
  // An operand holding every batch has the output's batch layout; one
  // holding a single matrix is read at stride 0.
  if ((ba == batches || ba == 1) && (bb == batches || bb == 1)) {
    p.a = a.data;
    p.b = b.data;
    p.c = out.data;
    p.batch = batches;
    p.strideA = ba == 1 ? 0 : p.m * p.k;
    p.strideB = bb == 1 ? 0 : p.k * p.n;
    p.strideC = p.m * p.n;
    return run(p, stream);
  }
  // Other broadcasts (a [2, 1] batch against b [1, 3]): a product per
  // output matrix, its operands found through broadcast batch strides.
  Shape outBatch(out.shape.begin(), out.shape.end() - 2);
  auto stridesFor = [&](const Shape &shape) {
    Shape batch(shape.begin(), shape.end() - 2);
    std::vector<int64_t> strides(outBatch.size(), 0);
    int64_t stride = 1;
    for (int64_t d = static_cast<int64_t>(outBatch.size()) - 1,
                 s = static_cast<int64_t>(batch.size()) - 1;
         d >= 0 && s >= 0; --d, --s) {
      strides[d] = batch[s] == 1 ? 0 : stride;
      stride *= batch[s];
    }
    return strides;
  };
  std::vector<int64_t> sa = stridesFor(a.shape), sb = stridesFor(b.shape);
  size_t width = dtypeSize(out.dtype);
  for (int64_t i = 0; i < batches; ++i) {
    int64_t rest = i, offA = 0, offB = 0;
    for (int64_t d = static_cast<int64_t>(outBatch.size()) - 1; d >= 0; --d) {
      int64_t c = rest % outBatch[d];
      rest /= outBatch[d];
      offA += c * sa[d];
      offB += c * sb[d];
    }
    p.a = static_cast<const char *>(a.data) + offA * p.m * p.k * width;
    p.b = static_cast<const char *>(b.data) + offB * p.k * p.n * width;
    p.c = static_cast<char *>(out.data) + i * p.m * p.n * width;
    if (cudaError_t e = run(p, stream))
      return e;
  }
  return cudaSuccess;
}

bool linearGeluFits(const DeviceView &bias, const DeviceView &out) {
  // The auxiliary output's leading dimension (the features) must be a
  // multiple of 8.
  return (bias.dtype == DType::F32 || bias.dtype == DType::BF16) &&
         out.rank() >= 1 && out.shape.back() % 8 == 0;
}

cudaError_t linearGelu(const DeviceView &x, const DeviceView &w,
                       const DeviceView &bias, bool outIn,
                       DeviceView &preActivation, DeviceView &out,
                       cudaStream_t stream) {
  if (!linearGeluFits(bias, out) || preActivation.shape != out.shape ||
      preActivation.dtype != out.dtype) {
    lastDetail = "the GELU epilogue needs a bias and a multiple of 8 features";
    return cudaErrorNotSupported;
  }
  return linearWith(x, w, &bias, outIn, out, preActivation.data, stream);
}

cudaError_t linear(const DeviceView &x, const DeviceView &w,
                   const DeviceView *bias, bool outIn, DeviceView &out,
                   cudaStream_t stream) {
  return linearWith(x, w, bias, outIn, out, nullptr, stream);
}

static cudaError_t linearWith(const DeviceView &x, const DeviceView &w,
                              const DeviceView *bias, bool outIn,
                              DeviceView &out, void *preActivation,
                              cudaStream_t stream) {
  Product p;
  if (x.dtype != w.dtype || x.dtype != out.dtype || !typeOf(x.dtype, p.type) ||
      (bias && bias->dtype != x.dtype) || w.rank() != 2 || x.rank() < 1) {
    lastDetail = "linear operands must be all f32 or all bf16";
    return cudaErrorNotSupported;
  }
  p.k = x.shape.back();
  p.m = x.size() / (p.k ? p.k : 1);
  p.n = out.shape.back();
  // [N, K] weights are read transposed.
  p.transB = outIn;
  p.a = x.data;
  p.b = w.data;
  p.c = out.data;
  p.bias = bias ? bias->data : nullptr;
  p.preActivation = preActivation;
  return run(p, stream);
}

} // namespace galvatron::rt::cuda
