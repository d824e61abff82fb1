//===- Weights.h - safetensors tensors as runtime tensors -------*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_WEIGHTS_H
#define GALVATRON_RUNTIME_WEIGHTS_H

#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Tensor.h"

#include <map>
#include <optional>
#include <string>

namespace galvatron::rt {

/// A safetensors tensor as a runtime tensor; nullopt for dtypes the CPU
/// backend lacks (F16, BF16, ...).
std::optional<Tensor> fromSafetensors(const SafetensorsTensor &tensor);

/// Reads every tensor of a safetensors file; fails naming the first tensor
/// whose dtype the CPU backend lacks.
bool loadTensors(const std::string &path, std::map<std::string, Tensor> &out,
                 std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_WEIGHTS_H
