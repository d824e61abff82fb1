//===- Tensor.cpp - host tensors of the CPU runtime -----------------------===//

#include "galvatron/runtime/Tensor.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace galvatron::rt {

void reuseFreedMemory() {
#ifdef __GLIBC__
  // Blocks up to 256 MB come from the heap, and the heap is not trimmed
  // below 1 GB of free memory at its top.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::Bool:
    return 1;
  case DType::BF16:
    return 2;
  }
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::I64:
    return "i64";
  case DType::I32:
    return "i32";
  case DType::Bool:
    return "bool";
  case DType::BF16:
    return "bf16";
  }
  return "?";
}

int64_t numElements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shapeString(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor::Tensor(DType dtype, Shape shape)
    : dtype(dtype), shape(std::move(shape)),
      bytes(numElements(this->shape) * dtypeSize(dtype)) {
  assert(std::all_of(this->shape.begin(), this->shape.end(),
                     [](int64_t d) { return d >= 0; }) &&
         "negative dimension");
}

Tensor::Tensor(const TensorView &view)
    : dtype(view.dtype), shape(view.shape),
      bytes(view.data(), view.data() + view.byteSize()) {}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t(dtype, std::move(shape));
  std::fill(t.bytes.begin(), t.bytes.end(), 0);
  return t;
}

double elementAt(DType dtype, const uint8_t *data, int64_t i) {
  switch (dtype) {
  case DType::F32:
    return reinterpret_cast<const float *>(data)[i];
  case DType::F64:
    return reinterpret_cast<const double *>(data)[i];
  case DType::I64:
    return static_cast<double>(reinterpret_cast<const int64_t *>(data)[i]);
  case DType::I32:
    return reinterpret_cast<const int32_t *>(data)[i];
  case DType::Bool:
    return data[i] ? 1.0 : 0.0;
  case DType::BF16:
    return bf16ToFloat(reinterpret_cast<const uint16_t *>(data)[i]);
  }
  return 0;
}

int64_t intElementAt(DType dtype, const uint8_t *data, int64_t i) {
  switch (dtype) {
  case DType::I64:
    return reinterpret_cast<const int64_t *>(data)[i];
  case DType::I32:
    return reinterpret_cast<const int32_t *>(data)[i];
  case DType::Bool:
    return data[i] != 0;
  default:
    return static_cast<int64_t>(elementAt(dtype, data, i));
  }
}

void setElement(DType dtype, uint8_t *data, int64_t i, double value) {
  switch (dtype) {
  case DType::F32:
    reinterpret_cast<float *>(data)[i] = static_cast<float>(value);
    break;
  case DType::F64:
    reinterpret_cast<double *>(data)[i] = value;
    break;
  case DType::I64:
    reinterpret_cast<int64_t *>(data)[i] = static_cast<int64_t>(value);
    break;
  case DType::I32:
    reinterpret_cast<int32_t *>(data)[i] = static_cast<int32_t>(value);
    break;
  case DType::Bool:
    data[i] = value != 0.0;
    break;
  case DType::BF16:
    reinterpret_cast<uint16_t *>(data)[i] =
        floatToBf16(static_cast<float>(value));
    break;
  }
}

} // namespace galvatron::rt
