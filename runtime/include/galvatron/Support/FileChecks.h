//===- FileChecks.h - checks on the files a tool reads and writes -*- C++ -*-=//
//
// Plain C++ and POSIX (no MLIR), header-only so that the compiler tools and
// the runtime share it without a library of its own.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_SUPPORT_FILECHECKS_H
#define GALVATRON_SUPPORT_FILECHECKS_H

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace galvatron {

/// A file a tool reads or writes, with how the user named it ("-o",
/// "the input model", "--weights-out").
struct NamedFile {
  std::string what;
  std::string path;
};

/// Empty when `path` is a regular file (after symlinks), else why not: the
/// tools read whole files, which a directory, a device or a pipe is not.
inline std::string notRegularFileReason(const std::string &path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0)
    return "cannot open '" + path + "': " + std::strerror(errno);
  if (S_ISREG(info.st_mode))
    return "";
  const char *kind = S_ISDIR(info.st_mode)    ? "a directory"
                     : S_ISCHR(info.st_mode)  ? "a character device"
                     : S_ISBLK(info.st_mode)  ? "a block device"
                     : S_ISFIFO(info.st_mode) ? "a pipe"
                     : S_ISSOCK(info.st_mode) ? "a socket"
                                              : "not a plain file";
  return "'" + path + "' is " + kind + ", not a regular file";
}

/// Whether `a` and `b` are one existing file: same device and inode, so a
/// symlink, a hard link or another spelling of the path is caught.
inline bool isSameFile(const std::string &a, const std::string &b) {
  struct stat infoA, infoB;
  return ::stat(a.c_str(), &infoA) == 0 && ::stat(b.c_str(), &infoB) == 0 &&
         infoA.st_dev == infoB.st_dev && infoA.st_ino == infoB.st_ino;
}

/// Empty when no output is one of the inputs, else an error naming both.
/// Only outputs that are regular files count: writing to /dev/null or a
/// pipe destroys nothing. An input "-" is standard input, which a shell may
/// have redirected from the output file; an output "-" is standard output.
inline std::string findOutputOverInput(const std::vector<NamedFile> &outputs,
                                       const std::vector<NamedFile> &inputs) {
  for (const NamedFile &out : outputs) {
    struct stat info;
    if (out.path.empty() || out.path == "-" ||
        ::stat(out.path.c_str(), &info) != 0 || !S_ISREG(info.st_mode))
      continue;
    for (const NamedFile &in : inputs)
      if (!in.path.empty() &&
          isSameFile(out.path, in.path == "-" ? "/dev/stdin" : in.path))
        return "refusing to write " + out.what + " '" + out.path +
               "': it is the same file as " + in.what + " '" + in.path + "'";
  }
  return "";
}

} // namespace galvatron

#endif // GALVATRON_SUPPORT_FILECHECKS_H
