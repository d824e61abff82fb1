//===- Kernels.h - CPU reference kernels ------------------------*- C++ -*-===//
//
// fp32 kernels for every galv op's forward computation. Shapes are checked
// by the compiler; these assume valid inputs. Matrix products go to BLAS.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_KERNELS_H
#define GALVATRON_RUNTIME_KERNELS_H

#include "galvatron/runtime/Tensor.h"

#include <vector>

namespace galvatron::rt {

/// C = alpha * op(A) * op(B) + beta * C, row-major fp32 on BLAS.
/// OpenMP owns the threads: outside a parallel region a large product is
/// split into row blocks of C across them; inside one it runs on the
/// calling thread.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
          float beta, float *c, int64_t ldc);

enum class Binary {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Max,
  Min,
  And,
  Or,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge
};
enum class Unary {
  Neg,
  Abs,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Reciprocal,
  Tanh,
  Erf,
  Sigmoid,
  Relu,
  Silu,
  Gelu,
  GeluTanh,
  Not
};
enum class Reduction { Sum, Mean, Max, Min, Prod };

/// Threads the kernels may use (OpenMP; no effect without it).
void setKernelThreads(int threads);

/// numpy broadcasting of two shapes (assumed compatible).
Shape broadcastShape(const Shape &a, const Shape &b);

Tensor binary(Binary kind, const Tensor &a, const Tensor &b);
Tensor unary(Unary kind, const Tensor &x);
Tensor where(const Tensor &condition, const Tensor &onTrue,
             const Tensor &onFalse);
Tensor cast(const Tensor &x, DType to);

/// [..., M, K] x [..., K, N] with broadcast batch dimensions; `transA` /
/// `transB` read that operand's last two dimensions swapped.
Tensor matmul(const Tensor &a, const Tensor &b, bool transA = false,
              bool transB = false);
/// x [..., K]; w [N, K] when `outIn`, else [K, N]; optional bias [N].
Tensor linear(const Tensor &x, const Tensor &w, const Tensor *bias, bool outIn);

Tensor reshape(const Tensor &x, const Shape &shape);
Tensor transpose(const Tensor &x, const std::vector<int64_t> &perm);
Tensor slice(const Tensor &x, const std::vector<int64_t> &starts,
             const std::vector<int64_t> &limits,
             const std::vector<int64_t> &steps);
Tensor concat(const std::vector<const Tensor *> &inputs, int64_t axis);
std::vector<Tensor> split(const Tensor &x, int64_t axis,
                          const std::vector<int64_t> &sizes);
Tensor expand(const Tensor &x, const Shape &shape);
Tensor gather(const Tensor &data, const Tensor &indices, int64_t axis);
Tensor embedding(const Tensor &table, const Tensor &ids);
/// Rows of grad [..., D] added into a zero [rows, D] table at `ids`.
Tensor embeddingGrad(const Tensor &grad, const Tensor &ids, int64_t rows);

Tensor reduce(Reduction kind, const Tensor &x, const std::vector<int64_t> &axes,
              bool keepDims);
Tensor softmax(const Tensor &x, int64_t axis);
/// log(softmax(x)) along `axis`, as x - max - log(sum(exp(x - max))).
Tensor logSoftmax(const Tensor &x, int64_t axis);
/// i64 index of the largest element along `axis` (the first on ties, or
/// the last with `selectLast`); NaN counts as largest, as in numpy.
Tensor argMax(const Tensor &x, int64_t axis, bool keepdims, bool selectLast);
Tensor layerNorm(const Tensor &x, const Tensor &scale, const Tensor *bias,
                 double eps);
Tensor rmsNorm(const Tensor &x, const Tensor &scale, double eps);
Tensor rotary(const Tensor &x, const Tensor &cos, const Tensor &sin,
              bool interleaved);
/// Mean (or sum) softmax cross-entropy of logits [..., V] against labels.
Tensor crossEntropy(const Tensor &logits, const Tensor &labels, bool mean,
                    int64_t ignoreIndex);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_KERNELS_H
