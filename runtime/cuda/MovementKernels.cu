//===- MovementKernels.cu - copies, layouts, slices and lookups on CUDA ---===//
//
// Every layout change is one strided copy: output element i reads input
// element base + sum(coord_d * stride_d), in elements of the tensor's width.
// Concat and split place each piece along the axis; gather and embedding
// copy rows; the embedding gradient adds rows with atomics.
//
//===----------------------------------------------------------------------===//

#include "DeviceMath.cuh"

#include <type_traits>

namespace galvatron::rt::cuda {
namespace {

/// Copies `width` bytes per element; the common widths move as one word.
template <typename Word>
__global__ void stridedCopyKernel(const Word *in, int64_t base, Indexer ix,
                                  Word *out, int64_t n) {
  GALV_FOR_EACH(i, n) { out[i] = in[base + ix.offset(i)]; }
}

/// Calls `launch` with a null pointer to the unsigned word of `width`
/// bytes (the element of a 1, 2, 4 or 8-byte dtype, whatever it holds),
/// then returns the launch's error.
template <typename Launch> cudaError_t byWidth(size_t width, Launch launch) {
  switch (width) {
  case 1:
    launch(static_cast<uint8_t *>(nullptr));
    break;
  case 2:
    launch(static_cast<uint16_t *>(nullptr));
    break;
  case 4:
    launch(static_cast<uint32_t *>(nullptr));
    break;
  case 8:
    launch(static_cast<uint64_t *>(nullptr));
    break;
  default:
    return cudaErrorNotSupported;
  }
  return launched();
}

cudaError_t stridedCopy(const DeviceView &x, int64_t base, const Indexer &ix,
                        DeviceView &out, cudaStream_t stream) {
  int64_t n = out.size();
  if (n == 0)
    return cudaSuccess;
  return byWidth(dtypeSize(x.dtype), [&](auto *word) {
    using Word = std::remove_pointer_t<decltype(word)>;
    stridedCopyKernel<<<blocksFor(n), kThreads, 0, stream>>>(
        static_cast<const Word *>(x.data), base, ix,
        static_cast<Word *>(out.data), n);
  });
}

/// Row-major element strides of `shape`.
std::vector<int64_t> stridesOf(const Shape &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

/// An indexer over `out` reading with `strides`.
bool indexerOver(const Shape &out, const std::vector<int64_t> &strides,
                 Indexer &ix) {
  if (out.size() > static_cast<size_t>(kMaxRank) ||
      strides.size() != out.size())
    return false;
  ix.rank = static_cast<int>(out.size());
  for (int d = 0; d < ix.rank; ++d) {
    ix.dims[d] = out[d];
    ix.strides[d] = strides[d];
  }
  return true;
}

/// The product of `shape`'s dimensions in [from, to).
int64_t span(const Shape &shape, int64_t from, int64_t to) {
  int64_t n = 1;
  for (int64_t d = from; d < to; ++d)
    n *= shape[d];
  return n;
}

/// Moves a piece [outer, len, inner] to or from [outer, total, inner] at
/// `offset` along the middle axis (concat writes pieces, split reads them).
template <typename Word>
__global__ void placeKernel(const Word *in, Word *out, int64_t len,
                            int64_t total, int64_t offset, int64_t inner,
                            bool intoWhole, int64_t n) {
  GALV_FOR_EACH(i, n) {
    int64_t r = i % inner, a = (i / inner) % len, o = i / (inner * len);
    int64_t whole = (o * total + offset + a) * inner + r;
    if (intoWhole)
      out[whole] = in[i];
    else
      out[i] = in[whole];
  }
}

cudaError_t place(const DeviceView &piece, const DeviceView &whole,
                  int64_t axis, int64_t offset, bool intoWhole,
                  cudaStream_t stream) {
  int64_t n = piece.size(), len = piece.shape[axis];
  if (n == 0)
    return cudaSuccess;
  int64_t inner = span(piece.shape, axis + 1, piece.rank());
  int64_t total = whole.shape[axis];
  const void *from = intoWhole ? piece.data : whole.data;
  void *to = intoWhole ? whole.data : piece.data;
  return byWidth(dtypeSize(piece.dtype), [&](auto *word) {
    using Word = std::remove_pointer_t<decltype(word)>;
    placeKernel<<<blocksFor(n), kThreads, 0, stream>>>(
        static_cast<const Word *>(from), static_cast<Word *>(to), len, total,
        offset, inner, intoWhole, n);
  });
}

/// out [outer, count, inner] = data [outer, dim, inner] at rows indices[j]
/// (negative indices count from the end).
template <typename Word>
__global__ void gatherKernel(const Word *data, const void *indices,
                             DType indexType, int64_t dim, int64_t count,
                             int64_t inner, Word *out, int64_t n) {
  GALV_FOR_EACH(i, n) {
    int64_t r = i % inner, j = (i / inner) % count, o = i / (inner * count);
    int64_t idx = loadI(indices, j, indexType);
    if (idx < 0)
      idx += dim;
    // galvatron-run checks the ids where they enter; an index that is still
    // out of range reads zeros, never another tensor's memory.
    out[i] =
        idx >= 0 && idx < dim ? data[(o * dim + idx) * inner + r] : Word(0);
  }
}

__global__ void embeddingGradKernel(const float *grad, const void *ids,
                                    DType idType, int64_t rows, int64_t d,
                                    int64_t paddingIdx, float *out, int64_t n) {
  GALV_FOR_EACH(i, n) {
    int64_t row = loadI(ids, i / d, idType);
    // Out-of-range ids contribute nothing, like a one-hot.
    if (row < 0 || row >= rows || row == paddingIdx)
      continue;
    atomicAdd(out + row * d + i % d, grad[i]);
  }
}

} // namespace

cudaError_t copy(const DeviceView &x, DeviceView &out, cudaStream_t stream) {
  if (x.data == out.data)
    return cudaSuccess; // a reshape the planner placed on its operand
  return cudaMemcpyAsync(out.data, x.data, out.byteSize(),
                         cudaMemcpyDeviceToDevice, stream);
}

cudaError_t transpose(const DeviceView &x, const std::vector<int64_t> &perm,
                      DeviceView &out, cudaStream_t stream) {
  std::vector<int64_t> strides = stridesOf(x.shape), permuted;
  for (int64_t p : perm)
    permuted.push_back(strides[p]);
  Indexer ix;
  if (!indexerOver(out.shape, permuted, ix))
    return cudaErrorNotSupported;
  return stridedCopy(x, 0, ix, out, stream);
}

cudaError_t slice(const DeviceView &x, const std::vector<int64_t> &starts,
                  const std::vector<int64_t> &steps, DeviceView &out,
                  cudaStream_t stream) {
  std::vector<int64_t> strides = stridesOf(x.shape);
  int64_t base = 0;
  for (size_t d = 0; d < starts.size(); ++d) {
    base += starts[d] * strides[d];
    strides[d] *= steps[d];
  }
  Indexer ix;
  if (!indexerOver(out.shape, strides, ix))
    return cudaErrorNotSupported;
  return stridedCopy(x, base, ix, out, stream);
}

cudaError_t concat(const std::vector<DeviceView> &inputs, int64_t axis,
                   DeviceView &out, cudaStream_t stream) {
  if (axis < 0)
    axis += out.rank();
  int64_t offset = 0;
  for (const DeviceView &piece : inputs) {
    if (cudaError_t e = place(piece, out, axis, offset, true, stream))
      return e;
    offset += piece.shape[axis];
  }
  return cudaSuccess;
}

cudaError_t split(const DeviceView &x, int64_t axis,
                  std::vector<DeviceView> &outs, cudaStream_t stream) {
  if (axis < 0)
    axis += x.rank();
  int64_t offset = 0;
  for (DeviceView &piece : outs) {
    if (cudaError_t e = place(piece, x, axis, offset, false, stream))
      return e;
    offset += piece.shape[axis];
  }
  return cudaSuccess;
}

cudaError_t expand(const DeviceView &x, DeviceView &out, cudaStream_t stream) {
  Indexer ix;
  if (!broadcastIndexer(x.shape, out.shape, ix))
    return cudaErrorNotSupported;
  return stridedCopy(x, 0, ix, out, stream);
}

cudaError_t gather(const DeviceView &data, const DeviceView &indices,
                   int64_t axis, DeviceView &out, cudaStream_t stream) {
  if (axis < 0)
    axis += data.rank();
  int64_t n = out.size();
  if (n == 0)
    return cudaSuccess;
  int64_t inner = span(data.shape, axis + 1, data.rank());
  int64_t dim = data.shape[axis], count = indices.size();
  return byWidth(dtypeSize(data.dtype), [&](auto *word) {
    using Word = std::remove_pointer_t<decltype(word)>;
    gatherKernel<<<blocksFor(n), kThreads, 0, stream>>>(
        static_cast<const Word *>(data.data), indices.data, indices.dtype, dim,
        count, inner, static_cast<Word *>(out.data), n);
  });
}

cudaError_t embedding(const DeviceView &table, const DeviceView &ids,
                      DeviceView &out, cudaStream_t stream) {
  return gather(table, ids, 0, out, stream);
}

cudaError_t embeddingGrad(const DeviceView &grad, const DeviceView &ids,
                          int64_t paddingIdx, DeviceView &out,
                          cudaStream_t stream) {
  if (grad.dtype != DType::F32 || out.dtype != DType::F32 || out.rank() != 2)
    return cudaErrorNotSupported;
  if (cudaError_t e = cudaMemsetAsync(out.data, 0, out.byteSize(), stream))
    return e;
  int64_t n = grad.size();
  if (n == 0)
    return cudaSuccess;
  embeddingGradKernel<<<blocksFor(n), kThreads, 0, stream>>>(
      static_cast<const float *>(grad.data), ids.data, ids.dtype, out.shape[0],
      out.shape[1], paddingIdx, static_cast<float *>(out.data), n);
  return launched();
}

} // namespace galvatron::rt::cuda
