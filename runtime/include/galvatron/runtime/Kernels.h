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

/// Restarts the program (execv of /proc/self/exe) with OMP_WAIT_POLICY=active
/// unless it is set (by the user, or by this restart): libgomp reads it only
/// as it loads. Returns when it did not restart. For a program whose kernel
/// threads each have a core and that calls kernels back to back (the
/// profiler): a team whose threads sleep between calls waits on this VM for
/// a sleeping thread's core to be scheduled again, which made some profiles
/// read 64 KB-1 MB kernels 100-2000x slower than they run.
void restartWithSpinningKernelThreads(char **argv);

/// gemm() splits its rows across the kernel threads only from this many
/// multiply-adds (m n k) on: below it, splitting costs more than it saves.
constexpr int64_t kThreadedGemmMultiplyAdds = int64_t(256) * 256 * 256;

/// numpy broadcasting of two shapes (assumed compatible).
Shape broadcastShape(const Shape &a, const Shape &b);

// Each kernel writes its result into `out`, a view of the result's dtype and
// shape (the executor's arena slot) that overlaps none of its inputs; it
// allocates nothing for the result. The Tensor-returning forms below
// allocate the result and call these (tests, the evaluator, the profiler).

void binary(Binary kind, const TensorView &a, const TensorView &b,
            TensorView &out);
void unary(Unary kind, const TensorView &x, TensorView &out);
void where(const TensorView &condition, const TensorView &onTrue,
           const TensorView &onFalse, TensorView &out);
/// Converts to `out`'s dtype.
void cast(const TensorView &x, TensorView &out);

/// [..., M, K] x [..., K, N] with broadcast batch dimensions.
void matmul(const TensorView &a, const TensorView &b, TensorView &out,
            bool transA = false, bool transB = false);
/// x [..., K]; w [N, K] when `outIn`, else [K, N]; optional bias [N].
void linear(const TensorView &x, const TensorView &w, const TensorView *bias,
            bool outIn, TensorView &out);

/// Copies `x`'s elements into `out` (same count, any shape).
void reshape(const TensorView &x, TensorView &out);
void transpose(const TensorView &x, const std::vector<int64_t> &perm,
               TensorView &out);
void slice(const TensorView &x, const std::vector<int64_t> &starts,
           const std::vector<int64_t> &steps, TensorView &out);
void concat(const std::vector<const TensorView *> &inputs, int64_t axis,
            TensorView &out);
/// Cuts `x` along `axis` into `outs` (their sizes along it add up to x's).
void split(const TensorView &x, int64_t axis, std::vector<TensorView> &outs);
/// Broadcasts `x` to `out`'s shape.
void expand(const TensorView &x, TensorView &out);
void gather(const TensorView &data, const TensorView &indices, int64_t axis,
            TensorView &out);
void embedding(const TensorView &table, const TensorView &ids, TensorView &out);
/// Rows of grad [..., D] added into a zero [rows, D] table at `ids`; the
/// row `paddingIdx` (torch.nn.Embedding's padding_idx; -1: none) stays
/// zero.
void embeddingGrad(const TensorView &grad, const TensorView &ids,
                   TensorView &out, int64_t paddingIdx = -1);

void reduce(Reduction kind, const TensorView &x,
            const std::vector<int64_t> &axes, TensorView &out);
void softmax(const TensorView &x, int64_t axis, TensorView &out);
/// log(softmax(x)) along `axis`, as x - max - log(sum(exp(x - max))).
void logSoftmax(const TensorView &x, int64_t axis, TensorView &out);
/// i64 index of the largest element along `axis` (the first on ties, or
/// the last with `selectLast`); NaN counts as largest, as in numpy.
void argMax(const TensorView &x, int64_t axis, bool selectLast,
            TensorView &out);
void layerNorm(const TensorView &x, const TensorView &scale,
               const TensorView *bias, double eps, TensorView &out);
void rmsNorm(const TensorView &x, const TensorView &scale, double eps,
             TensorView &out);
/// sum = x + residual (same shapes), and its layer norm (with `rms`, its
/// RMS norm, no bias) into `out`: galv.add_norm, equal bit for bit to the
/// add and the norm run apart.
void addNorm(const TensorView &x, const TensorView &residual,
             const TensorView &scale, const TensorView *bias, bool rms,
             double eps, TensorView &sum, TensorView &out);
void rotary(const TensorView &x, const TensorView &cos, const TensorView &sin,
            bool interleaved, TensorView &out);
/// Mean (or sum) softmax cross-entropy of logits [..., V] against labels.
void crossEntropy(const TensorView &logits, const TensorView &labels, bool mean,
                  int64_t ignoreIndex, TensorView &out);

// Allocating forms.
Tensor binary(Binary kind, const Tensor &a, const Tensor &b);
Tensor unary(Unary kind, const Tensor &x);
Tensor where(const Tensor &condition, const Tensor &onTrue,
             const Tensor &onFalse);
Tensor cast(const Tensor &x, DType to);
/// [..., M, K] x [..., K, N] with broadcast batch dimensions; `transA` /
/// `transB` read that operand's last two dimensions swapped.
Tensor matmul(const Tensor &a, const Tensor &b, bool transA = false,
              bool transB = false);
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
Tensor embeddingGrad(const Tensor &grad, const Tensor &ids, int64_t rows,
                     int64_t paddingIdx = -1);
Tensor reduce(Reduction kind, const Tensor &x, const std::vector<int64_t> &axes,
              bool keepDims);
Tensor softmax(const Tensor &x, int64_t axis);
Tensor logSoftmax(const Tensor &x, int64_t axis);
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
