//===- AtomicFile.cpp - write a file all at once or not at all ------------===//

#include "galvatron/Support/AtomicFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace galvatron {

bool writeFileAtomically(const std::string &path,
                         const std::vector<FileChunk> &chunks,
                         std::string &error) {
  std::string temp = path + ".tmp." + std::to_string(getpid());
  FILE *file = std::fopen(temp.c_str(), "wb");
  if (!file) {
    error = "cannot create '" + temp + "': " + std::strerror(errno);
    return false;
  }
  bool ok = true;
  for (const FileChunk &chunk : chunks)
    ok = ok && std::fwrite(chunk.data, 1, chunk.size, file) == chunk.size;
  ok = ok && std::fflush(file) == 0 && fsync(fileno(file)) == 0;
  ok = (std::fclose(file) == 0) && ok;
  if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot write '" + path + "': " + std::strerror(errno);
    std::remove(temp.c_str());
    return false;
  }
  return true;
}

} // namespace galvatron
