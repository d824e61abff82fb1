//===- Tensor.h - host tensors of the CPU runtime ---------------*- C++ -*-===//
//
// Dense row-major tensors: Tensor owns its bytes, TensorView points at
// bytes another owns (the executor's arena, the plan's constants). The CPU
// backend computes in fp32; integers (token ids, labels, indices) are int64 and
// masks are bool. bf16 tensors (mixed-precision plans) are stored as bf16 and
// computed on in fp32: kernels widen their operands and round their results
// once, where a GPU kernel rounds its fp32 accumulators.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_TENSOR_H
#define GALVATRON_RUNTIME_TENSOR_H

#include <cassert>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace galvatron::rt {

enum class DType { F32, F64, I64, I32, Bool, BF16 };

/// bfloat16: the top half of an fp32. Narrowing rounds to nearest, ties to
/// even (as CUDA's __float2bfloat16 and PyTorch do); NaN stays NaN.
inline float bf16ToFloat(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}
inline uint16_t floatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40u); // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

/// Keeps memory that tensors free for the next ones instead of returning it
/// to the system (glibc's malloc otherwise maps each large block anew, and
/// every step pays the page faults of zeroed pages again: a 4 MB all-reduce
/// took 2.5x as long). Called once at the start of a process.
void reuseFreedMemory();

/// Bytes per element, and the name used in messages ("f32", "i64", ...).
size_t dtypeSize(DType dtype);
const char *dtypeName(DType dtype);

using Shape = std::vector<int64_t>;

/// An allocator that leaves new elements uninitialised: kernels write every
/// element of their outputs, so zero-filling each new tensor is wasted work.
template <typename T> struct UninitializedAllocator : std::allocator<T> {
  // The allocator protocol names it `rebind`.
  template <typename U> struct rebind { // NOLINT(readability-identifier-naming)
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U> &) {}
  template <typename U> void construct(U *p) {
    ::new (static_cast<void *>(p)) U;
  }
  template <typename U, typename... Args> void construct(U *p, Args &&...args) {
    ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
  }
};
using Bytes = std::vector<uint8_t, UninitializedAllocator<uint8_t>>;
int64_t numElements(const Shape &shape);
std::string shapeString(const Shape &shape);

/// Element `i` of `dtype` at `data`, converted to double / int64 or written
/// from a double.
double elementAt(DType dtype, const uint8_t *data, int64_t i);
int64_t intElementAt(DType dtype, const uint8_t *data, int64_t i);
void setElement(DType dtype, uint8_t *data, int64_t i, double value);

/// What owning tensors and views share: typed access to the bytes that
/// `Derived::data()` points at, so kernels read `t.f32()` whatever owns them.
template <typename Derived> struct TensorAccess {
  int64_t size() const { return numElements(self().shape); }
  int64_t rank() const { return static_cast<int64_t>(self().shape.size()); }
  float *f32() { return reinterpret_cast<float *>(self().data()); }
  const float *f32() const {
    return reinterpret_cast<const float *>(self().data());
  }
  uint16_t *bf16() { return reinterpret_cast<uint16_t *>(self().data()); }
  const uint16_t *bf16() const {
    return reinterpret_cast<const uint16_t *>(self().data());
  }
  int64_t *i64() { return reinterpret_cast<int64_t *>(self().data()); }
  const int64_t *i64() const {
    return reinterpret_cast<const int64_t *>(self().data());
  }
  uint8_t *b8() { return self().data(); }
  const uint8_t *b8() const { return self().data(); }
  /// Element `i` converted to double / int64, whatever the dtype.
  double at(int64_t i) const {
    assert(inBounds(i) && "element index out of range");
    return elementAt(self().dtype, self().data(), i);
  }
  int64_t intAt(int64_t i) const {
    assert(inBounds(i) && "element index out of range");
    return intElementAt(self().dtype, self().data(), i);
  }
  void set(int64_t i, double value) {
    assert(inBounds(i) && "element index out of range");
    setElement(self().dtype, self().data(), i, value);
  }

private:
  const Derived &self() const { return static_cast<const Derived &>(*this); }
  Derived &self() { return static_cast<Derived &>(*this); }
  /// Whether element `i` lies inside the bytes (for the asserts).
  bool inBounds(int64_t i) const {
    return i >= 0 &&
           static_cast<size_t>(i) < self().byteSize() / dtypeSize(self().dtype);
  }
};

struct TensorView;

/// A tensor owning its bytes: what crosses the API (inputs, weights and
/// outputs of a run, trainer state, tests).
struct Tensor : TensorAccess<Tensor> {
  DType dtype = DType::F32;
  Shape shape;
  Bytes bytes;

  Tensor() = default;
  /// A tensor of `shape` whose contents are unspecified until written.
  Tensor(DType dtype, Shape shape);
  /// A copy of a view's elements.
  explicit Tensor(const TensorView &view);
  static Tensor zeros(DType dtype, Shape shape);

  uint8_t *data() { return bytes.data(); }
  const uint8_t *data() const { return bytes.data(); }
  size_t byteSize() const { return bytes.size(); }
};

/// A tensor over bytes it does not own: an arena slot, a constant in the
/// plan, a bound input. The owner outlives the view. Constness is deep
/// (a const view reads only), as for Tensor; a view of read-only memory
/// (constants where the plan is mapped) must only be read.
struct TensorView : TensorAccess<TensorView> {
  DType dtype = DType::F32;
  Shape shape;

  TensorView() = default;
  TensorView(DType dtype, Shape shape, uint8_t *data)
      : dtype(dtype), shape(std::move(shape)), ptr(data) {}
  /// Views a tensor; implicit so that kernels taking views take tensors.
  TensorView(const Tensor &t)
      : dtype(t.dtype), shape(t.shape), ptr(const_cast<uint8_t *>(t.data())) {}

  uint8_t *data() { return ptr; }
  const uint8_t *data() const { return ptr; }
  size_t byteSize() const { return size() * dtypeSize(dtype); }

private:
  uint8_t *ptr = nullptr;
};

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_TENSOR_H
