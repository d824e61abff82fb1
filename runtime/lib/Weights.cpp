//===- Weights.cpp - safetensors tensors as runtime tensors ---------------===//

#include "galvatron/runtime/Weights.h"

#include "galvatron/Support/FileChecks.h"

#include <cstring>

namespace galvatron::rt {

std::optional<Tensor> fromSafetensors(const SafetensorsTensor &tensor) {
  static const std::map<std::string, DType> dtypes = {
      {"F32", DType::F32}, {"F64", DType::F64},   {"I64", DType::I64},
      {"I32", DType::I32}, {"BOOL", DType::Bool}, {"BF16", DType::BF16}};
  auto it = dtypes.find(tensor.dtype);
  if (it == dtypes.end())
    return std::nullopt;
  Tensor out(it->second, Shape(tensor.shape.begin(), tensor.shape.end()));
  std::memcpy(out.bytes.data(), tensor.data.data(), out.bytes.size());
  return out;
}

bool loadTensors(const std::string &path, std::map<std::string, Tensor> &out,
                 std::string &error) {
  // As for plans and .npy inputs: a directory or a device is no weights file.
  if (std::string reason = notRegularFileReason(path); !reason.empty())
    return error = reason, false;
  std::map<std::string, SafetensorsTensor> raw;
  if (!readSafetensors(path, raw, error))
    return false;
  for (auto &[name, tensor] : raw) {
    std::optional<Tensor> converted = fromSafetensors(tensor);
    if (!converted) {
      error = path + ": tensor '" + name + "' is " + tensor.dtype +
              "; the CPU backend runs F32, F64, I64, I32 and BOOL";
      return false;
    }
    out[name] = std::move(*converted);
  }
  return true;
}

} // namespace galvatron::rt
