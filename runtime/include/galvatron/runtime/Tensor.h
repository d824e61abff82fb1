//===- Tensor.h - host tensors of the CPU runtime ---------------*- C++ -*-===//
//
// A dense row-major tensor owning its bytes. The CPU backend computes in fp32;
// integers (token ids, labels, indices) are int64 and masks are bool.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_TENSOR_H
#define GALVATRON_RUNTIME_TENSOR_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace galvatron::rt {

enum class DType { F32, F64, I64, I32, Bool };

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

struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  Bytes bytes;

  Tensor() = default;
  /// A tensor of `shape` whose contents are unspecified until written.
  Tensor(DType dtype, Shape shape);
  static Tensor zeros(DType dtype, Shape shape);

  int64_t size() const { return numElements(shape); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  float *f32() { return reinterpret_cast<float *>(bytes.data()); }
  const float *f32() const {
    return reinterpret_cast<const float *>(bytes.data());
  }
  int64_t *i64() { return reinterpret_cast<int64_t *>(bytes.data()); }
  const int64_t *i64() const {
    return reinterpret_cast<const int64_t *>(bytes.data());
  }
  uint8_t *b8() { return bytes.data(); }
  const uint8_t *b8() const { return bytes.data(); }
  /// Element `i` converted to double / int64, whatever the dtype.
  double at(int64_t i) const;
  int64_t intAt(int64_t i) const;
  void set(int64_t i, double value);
};

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_TENSOR_H
