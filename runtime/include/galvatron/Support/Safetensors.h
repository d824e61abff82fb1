//===- Safetensors.h - read and write safetensors files ---------*- C++ -*-===//
//
// The safetensors format: an 8-byte little-endian header length, a JSON
// header mapping tensor names to dtype, shape and byte range, then the raw
// little-endian tensor bytes. Plain C++ (no MLIR) so the runtime can use it.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_SUPPORT_SAFETENSORS_H
#define GALVATRON_SUPPORT_SAFETENSORS_H

#include "galvatron/Support/AtomicFile.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace galvatron {

/// One tensor: safetensors dtype name ("F32", "BF16", "I64", ...), shape and
/// bytes.
struct SafetensorsTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<char> data;
};

/// A tensor whose bytes live elsewhere (a mapped file, a parsed model).
struct SafetensorsView {
  std::string dtype;
  std::vector<int64_t> shape;
  const char *data = nullptr;
  size_t size = 0;
};

/// Bytes per element of a safetensors dtype name, or 0 when unknown.
size_t safetensorsDTypeSize(const std::string &dtype);

/// The bytes of a safetensors file holding `tensors` (in name order):
/// `header` gets the length prefix and the JSON header, `chunks` the pieces
/// in file order (`header` first, then each tensor's bytes, which it points
/// at). False with `error` when a tensor's bytes do not fit its dtype and
/// shape.
bool encodeSafetensors(const std::map<std::string, SafetensorsView> &tensors,
                       const std::map<std::string, std::string> &metadata,
                       std::string &header, std::vector<FileChunk> &chunks,
                       std::string &error);

/// Writes `tensors` (in name order) to `path` atomically: a temporary file in
/// the same directory is written, flushed to disk and renamed over `path`.
/// On failure returns false, sets `error`, and leaves no file behind.
bool writeSafetensors(const std::string &path,
                      const std::map<std::string, SafetensorsView> &tensors,
                      std::string &error,
                      const std::map<std::string, std::string> &metadata = {});
bool writeSafetensors(const std::string &path,
                      const std::map<std::string, SafetensorsTensor> &tensors,
                      std::string &error,
                      const std::map<std::string, std::string> &metadata = {});

/// Reads every tensor of `path`; checks the header and that each byte range
/// lies inside the file and matches dtype and shape.
bool readSafetensors(const std::string &path,
                     std::map<std::string, SafetensorsTensor> &tensors,
                     std::string &error);

} // namespace galvatron

#endif // GALVATRON_SUPPORT_SAFETENSORS_H
