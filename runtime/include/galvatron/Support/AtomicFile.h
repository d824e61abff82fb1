//===- AtomicFile.h - write a file all at once or not at all ----*- C++ -*-===//
//
// Plain C++ (no MLIR) so the runtime can use it.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_SUPPORT_ATOMICFILE_H
#define GALVATRON_SUPPORT_ATOMICFILE_H

#include <cstddef>
#include <string>
#include <vector>

namespace galvatron {

/// Bytes to write, owned by the caller.
struct FileChunk {
  const void *data;
  size_t size;
};

/// Writes `chunks` in order so that readers of `path` see either its old
/// contents or all of the new ones: a temporary file beside it, flushed to
/// disk (fsync), then renamed over it. On failure `error` names the file and
/// the temporary file is removed.
bool writeFileAtomically(const std::string &path,
                         const std::vector<FileChunk> &chunks,
                         std::string &error);

} // namespace galvatron

#endif // GALVATRON_SUPPORT_ATOMICFILE_H
