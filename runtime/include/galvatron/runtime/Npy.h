//===- Npy.h - numpy .npy files ---------------------------------*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_NPY_H
#define GALVATRON_RUNTIME_NPY_H

#include "galvatron/runtime/Tensor.h"

#include <string>

namespace galvatron::rt {

/// Reads a C-order little-endian .npy file of f4, f8, i8, i4 or bool.
bool readNpy(const std::string &path, Tensor &tensor, std::string &error);

/// Reads a .npy of token ids for training: as readNpy, and refused unless
/// its dtype is an integer one (i4 or i8).
bool readTokenIds(const std::string &path, Tensor &tokens, std::string &error);

/// Writes `tensor` as .npy (format 1.0), through a temporary file and rename;
/// bf16 is written as f32 (numpy has no bfloat16).
bool writeNpy(const std::string &path, const Tensor &tensor,
              std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_NPY_H
