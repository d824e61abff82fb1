//===- DeviceKernels.h - the CUDA backend's kernels -------------*- C++ -*-===//
//
// One launcher per plan operation, with the CPU kernels' semantics
// (runtime/include/galvatron/runtime/Kernels.h and its siblings): the CPU
// backend is the reference each launcher is tested against. Tensors are
// dense, row-major and in device memory. Floating tensors are f32 or bf16;
// a bf16 kernel reads its operands into fp32 registers, computes in fp32 and
// rounds each result once, as the CPU backend does for a bf16 instruction.
// Launchers only enqueue work on `stream`; they return the launch's error
// (cudaSuccess, or an error naming an unsupported dtype as
// cudaErrorNotSupported), never abort.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_CUDA_DEVICEKERNELS_H
#define GALVATRON_RUNTIME_CUDA_DEVICEKERNELS_H

#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Tensor.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace galvatron::rt::cuda {

/// A tensor in device memory, owned elsewhere (the arena, a bound input).
struct DeviceView {
  DType dtype = DType::F32;
  Shape shape;
  void *data = nullptr;

  int64_t size() const { return numElements(shape); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  size_t byteSize() const { return size() * dtypeSize(dtype); }
};

//===--- Elementwise (ElementwiseKernels.cu)
//-------------------------------===//

/// numpy broadcasting of a and b to out's shape; comparisons write Bool.
cudaError_t binary(Binary kind, const DeviceView &a, const DeviceView &b,
                   DeviceView &out, cudaStream_t stream);
cudaError_t unary(Unary kind, const DeviceView &x, DeviceView &out,
                  cudaStream_t stream);
cudaError_t where(const DeviceView &condition, const DeviceView &onTrue,
                  const DeviceView &onFalse, DeviceView &out,
                  cudaStream_t stream);
/// Between any two of f32, bf16, f64, i64, i32 and bool.
cudaError_t cast(const DeviceView &x, DeviceView &out, cudaStream_t stream);

//===--- Data movement (MovementKernels.cu)
//--------------------------------===//

cudaError_t copy(const DeviceView &x, DeviceView &out, cudaStream_t stream);
cudaError_t transpose(const DeviceView &x, const std::vector<int64_t> &perm,
                      DeviceView &out, cudaStream_t stream);
cudaError_t slice(const DeviceView &x, const std::vector<int64_t> &starts,
                  const std::vector<int64_t> &steps, DeviceView &out,
                  cudaStream_t stream);
cudaError_t concat(const std::vector<DeviceView> &inputs, int64_t axis,
                   DeviceView &out, cudaStream_t stream);
cudaError_t split(const DeviceView &x, int64_t axis,
                  std::vector<DeviceView> &outs, cudaStream_t stream);
cudaError_t expand(const DeviceView &x, DeviceView &out, cudaStream_t stream);
cudaError_t gather(const DeviceView &data, const DeviceView &indices,
                   int64_t axis, DeviceView &out, cudaStream_t stream);
cudaError_t embedding(const DeviceView &table, const DeviceView &ids,
                      DeviceView &out, cudaStream_t stream);
cudaError_t embeddingGrad(const DeviceView &grad, const DeviceView &ids,
                          int64_t paddingIdx, DeviceView &out,
                          cudaStream_t stream);

//===--- Rows: reductions, norms, losses, optimizer (RowKernels.cu) -------===//

cudaError_t reduce(Reduction kind, const DeviceView &x,
                   const std::vector<int64_t> &axes, DeviceView &out,
                   cudaStream_t stream);
cudaError_t softmax(const DeviceView &x, int64_t axis, DeviceView &out,
                    cudaStream_t stream);
cudaError_t logSoftmax(const DeviceView &x, int64_t axis, DeviceView &out,
                       cudaStream_t stream);
cudaError_t argMax(const DeviceView &x, int64_t axis, bool selectLast,
                   DeviceView &out, cudaStream_t stream);
cudaError_t layerNorm(const DeviceView &x, const DeviceView &scale,
                      const DeviceView *bias, double eps, DeviceView &out,
                      cudaStream_t stream);
cudaError_t rmsNorm(const DeviceView &x, const DeviceView &scale, double eps,
                    DeviceView &out, cudaStream_t stream);
/// galv.add_norm: sum = x + residual, and its layer norm (RMS norm with
/// `rms`).
cudaError_t addNorm(const DeviceView &x, const DeviceView &residual,
                    const DeviceView &scale, const DeviceView *bias, bool rms,
                    double eps, DeviceView &sum, DeviceView &out,
                    cudaStream_t stream);
cudaError_t layerNormGrad(const DeviceView &x, const DeviceView &scale,
                          const DeviceView &dy, double eps, DeviceView &dx,
                          DeviceView &dscale, DeviceView &dbias,
                          cudaStream_t stream);
cudaError_t rmsNormGrad(const DeviceView &x, const DeviceView &scale,
                        const DeviceView &dy, double eps, DeviceView &dx,
                        DeviceView &dscale, cudaStream_t stream);
cudaError_t rotary(const DeviceView &x, const DeviceView &cos,
                   const DeviceView &sin, bool interleaved, DeviceView &out,
                   cudaStream_t stream);
cudaError_t crossEntropy(const DeviceView &logits, const DeviceView &labels,
                         bool mean, int64_t ignoreIndex, DeviceView &out,
                         cudaStream_t stream);
cudaError_t crossEntropyGrad(const DeviceView &logits, const DeviceView &labels,
                             const DeviceView &dloss, bool mean,
                             int64_t ignoreIndex, DeviceView &out,
                             cudaStream_t stream);
cudaError_t geluGrad(const DeviceView &x, const DeviceView &dy, bool tanhForm,
                     DeviceView &dx, cudaStream_t stream);
/// torch.optim.AdamW's update of f32 param, grad, m and v; lr and step are
/// f32 scalars in device memory.
cudaError_t adamwUpdate(double beta1, double beta2, double epsilon,
                        double weightDecay, const DeviceView &param,
                        const DeviceView &grad, const DeviceView &m,
                        const DeviceView &v, const DeviceView &lr,
                        const DeviceView &step, DeviceView &newParam,
                        DeviceView &newM, DeviceView &newV,
                        cudaStream_t stream);

//===--- Matrix products (Gemm.cpp, cuBLASLt) -----------------------------===//

/// a [..., M, K] x b [..., K, N] (either read transposed) with numpy batch
/// broadcasting; f32 in fp32, bf16 with an fp32 accumulator.
cudaError_t matmul(const DeviceView &a, const DeviceView &b, bool transA,
                   bool transB, DeviceView &out, cudaStream_t stream);
/// x [..., K] times w [N, K] (outIn) or [K, N], plus bias [N] in the GEMM's
/// epilogue.
cudaError_t linear(const DeviceView &x, const DeviceView &w,
                   const DeviceView *bias, bool outIn, DeviceView &out,
                   cudaStream_t stream);
/// linear with bias, then GELU (tanh form) in the GEMM's epilogue: `out`
/// gets the activation and `preActivation` the linear's result (which the
/// backward pass reads). linearGeluFits says when cuBLASLt takes it.
bool linearGeluFits(const DeviceView &bias, const DeviceView &out);
cudaError_t linearGelu(const DeviceView &x, const DeviceView &w,
                       const DeviceView &bias, bool outIn,
                       DeviceView &preActivation, DeviceView &out,
                       cudaStream_t stream);
/// What the last failed matmul or linear on this thread said (cuBLAS's
/// status), for the error message.
const char *gemmErrorDetail();

//===--- Attention (AttentionKernels.cu)
//-----------------------------------===//

/// softmax(q k^T * scale + mask) v per head, without materialising the
/// scores: q [B, H, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv]; the mask
/// (Bool: keep where true; f32/bf16: added) broadcasts to [B, H, Sq, Sk];
/// causal keeps key j <= i + Sk - Sq.
cudaError_t attention(const DeviceView &q, const DeviceView &k,
                      const DeviceView &v, const DeviceView *mask, bool causal,
                      double scale, DeviceView &out, cudaStream_t stream);
/// dq, dk, dv of attention given dout; grouped query heads summed into
/// their key/value head.
cudaError_t attentionGrad(const DeviceView &q, const DeviceView &k,
                          const DeviceView &v, const DeviceView &dout,
                          const DeviceView *mask, bool causal, double scale,
                          DeviceView &dq, DeviceView &dk, DeviceView &dv,
                          cudaStream_t stream);

} // namespace galvatron::rt::cuda

namespace galvatron::rt {
class Backend;
class Communicator;
/// The CUDA backend on `device`, its NCCL ids carried by `comm` (null: one
/// process); CudaBackend.cpp.
std::unique_ptr<Backend> makeCudaBackend(Communicator *comm, int device);
/// This process's device among `count`: its rank on the node (Open MPI,
/// Slurm, torchrun) modulo the devices.
int localDeviceOf(int count);
} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_CUDA_DEVICEKERNELS_H
