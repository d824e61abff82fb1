//===- Checkpoint.cpp - training checkpoints, atomic as a set -------------===//

#include "galvatron/runtime/Checkpoint.h"
#include "galvatron/Support/Crc32.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Weights.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace galvatron::rt {

namespace {

const char *const kModel = "model.safetensors";
const char *const kOptimizer = "optimizer.safetensors";
const char *const kTrainer = "trainer.json";
const char *const kManifest = "manifest.json";
const char *const kFormat = "galvatron-checkpoint";
constexpr int kVersion = 1;
// The file's own key scheme for the moments in optimizer.safetensors (the
// trainer knows them by role and parameter, from the plan).
const std::string kFirstMoment = "adam_m:", kSecondMoment = "adam_v:";

/// What the manifest records of one file.
struct FileDigest {
  uint64_t size = 0;
  uint32_t crc = 0;
};

std::string hex8(uint32_t value) {
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", value);
  return text;
}

bool startsWith(const std::string &s, const std::string &prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The step of a directory named "step-NNNNNN", or -1.
int stepOfName(const std::string &name) {
  if (!startsWith(name, "step-") || name.size() == 5 || name.size() > 15)
    return -1;
  long long step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9')
      return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step >= 1 && step <= INT_MAX ? static_cast<int>(step) : -1;
}

/// The step directory ROOT/latest names ("step-000010"), or "" when there
/// is none. A link's target, or the first line of a plain file (for file
/// systems without links).
std::string latestName(const std::string &root) {
  std::string path = root + "/latest";
  struct stat info;
  if (::lstat(path.c_str(), &info) != 0)
    return "";
  if (S_ISLNK(info.st_mode)) {
    std::vector<char> target(4096);
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size() - 1);
    return n > 0 ? std::string(target.data(), n) : "";
  }
  if (!S_ISREG(info.st_mode))
    return "";
  std::ifstream in(path);
  std::string name;
  std::getline(in, name);
  return name;
}

const char *safetensorsDType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "F32";
  case DType::F64:
    return "F64";
  case DType::I64:
    return "I64";
  case DType::I32:
    return "I32";
  case DType::Bool:
    return "BOOL";
  case DType::BF16:
    return "BF16";
  }
  return "F32";
}

/// Writes `size` bytes, resuming after short writes and signals.
bool writeAll(int fd, const char *data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

/// One save of the protocol in Checkpoint.h.
class Saver {
public:
  Saver(const std::string &root, const CheckpointState &state,
        const CheckpointSaveOptions &options)
      : root(root), state(state), options(options),
        name(checkpointDirName(state.step)), temp(root + "/." + name + ".tmp"),
        target(root + "/" + name) {}

  bool run(std::string &error, std::string &warning);

private:
  /// The fault hook's answer for `point`: 0 goes on.
  int fault(const std::string &point) const {
    return options.fault ? options.fault(state.step, point) : 0;
  }
  bool fail(const std::string &what, int errnum, std::string &error) const {
    error = what + ": " + std::strerror(errnum);
    return false;
  }
  void removeLeftovers() const;
  bool writeFiles(std::string &error);
  bool writeFile(const std::string &file, const std::vector<FileChunk> &chunks,
                 std::string &error);
  bool syncDirectory(const std::string &dir, const std::string &point,
                     std::string &error) const;
  bool install(std::string &error);
  bool switchLatest(std::string &error);
  void prune(std::string &warning) const;
  void undo() const;

  const std::string &root;
  const CheckpointState &state;
  const CheckpointSaveOptions &options;
  const std::string name, temp, target;
  /// What `latest` named before this save ("" for none).
  std::string previous;
  std::map<std::string, FileDigest> digests;
  /// How far the save got: the new directory is `target`; `latest` names it.
  bool installed = false, exchanged = false, switched = false;
};

/// Directories of saves that were killed, links never renamed, and old
/// checkpoints half removed: none is named by `latest`.
void Saver::removeLeftovers() const {
  std::error_code ec;
  for (const fs::directory_entry &entry : fs::directory_iterator(root, ec)) {
    std::string file = entry.path().filename().string();
    if ((startsWith(file, ".step-") &&
         (endsWith(file, ".tmp") || endsWith(file, ".deleting"))) ||
        file == ".latest.tmp")
      fs::remove_all(entry.path(), ec);
  }
}

bool Saver::writeFile(const std::string &file,
                      const std::vector<FileChunk> &chunks,
                      std::string &error) {
  std::string path = temp + "/" + file;
  int injected = fault("write:" + file);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail("cannot create '" + path + "'", errno, error);
  uint64_t total = 0;
  for (const FileChunk &chunk : chunks)
    total += chunk.size;
  // An injected failure writes half the bytes first, as a full disk does.
  uint64_t budget = injected ? total / 2 : total;
  FileDigest digest;
  for (const FileChunk &chunk : chunks) {
    size_t size = static_cast<size_t>(std::min<uint64_t>(chunk.size, budget));
    if (!writeAll(fd, static_cast<const char *>(chunk.data), size)) {
      int errnum = errno;
      ::close(fd);
      return fail("cannot write '" + path + "'", errnum, error);
    }
    digest.crc = crc32Update(digest.crc, chunk.data, size);
    digest.size += size;
    budget -= size;
  }
  if (injected) {
    ::close(fd);
    return fail("cannot write '" + path + "'", injected, error);
  }
  injected = fault("fsync:" + file);
  if (injected || ::fsync(fd) != 0) {
    int errnum = injected ? injected : errno;
    ::close(fd);
    return fail("cannot flush '" + path + "' to disk", errnum, error);
  }
  if (::close(fd) != 0)
    return fail("cannot close '" + path + "'", errno, error);
  digests[file] = digest;
  return true;
}

/// The four files, the manifest last: it records the others' digests.
bool Saver::writeFiles(std::string &error) {
  std::map<std::string, SafetensorsView> model, optimizer;
  auto view = [](const Tensor &t) {
    return SafetensorsView{safetensorsDType(t.dtype),
                           {t.shape.begin(), t.shape.end()},
                           reinterpret_cast<const char *>(t.bytes.data()),
                           t.bytes.size()};
  };
  for (const auto &[name, t] : state.params)
    model[name] = view(t);
  for (const auto &[name, t] : state.adamM)
    optimizer[kFirstMoment + name] = view(t);
  for (const auto &[name, t] : state.adamV)
    optimizer[kSecondMoment + name] = view(t);
  std::string header;
  std::vector<FileChunk> chunks;
  if (!encodeSafetensors(model, {{"format", "pt"}}, header, chunks, error) ||
      !writeFile(kModel, chunks, error) ||
      !encodeSafetensors(optimizer, {}, header, chunks, error) ||
      !writeFile(kOptimizer, chunks, error))
    return false;
  std::string trainer = "{\"step\": " + std::to_string(state.step) + "}\n";
  if (!writeFile(kTrainer, {{trainer.data(), trainer.size()}}, error))
    return false;
  nlohmann::ordered_json manifest = {
      {"format", kFormat},
      {"version", kVersion},
      {"step", state.step},
      {"files", nlohmann::ordered_json::object()}};
  for (const auto &[file, digest] : digests)
    manifest["files"][file] = {{"size", digest.size},
                               {"crc32", hex8(digest.crc)}};
  std::string text = manifest.dump(2) + "\n";
  return writeFile(kManifest, {{text.data(), text.size()}}, error);
}

bool Saver::syncDirectory(const std::string &dir, const std::string &point,
                          std::string &error) const {
  int injected = fault(point);
  if (injected)
    return fail("cannot flush directory '" + dir + "' to disk", injected,
                error);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fail("cannot open directory '" + dir + "'", errno, error);
  int result = ::fsync(fd), errnum = errno;
  ::close(fd);
  if (result != 0)
    return fail("cannot flush directory '" + dir + "' to disk", errnum, error);
  return true;
}

/// Puts the finished directory in place as ROOT/step-NNNNNN. One left by an
/// abandoned run is moved aside first; the one `latest` names (a run that
/// resumed from an older step) is swapped with the new one in one step.
bool Saver::install(std::string &error) {
  std::error_code ec;
  if (fs::exists(target, ec) && previous == name) {
#ifdef RENAME_EXCHANGE
    int injected = fault("exchange:step-dir");
    if (injected || ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD,
                                target.c_str(), RENAME_EXCHANGE) != 0)
      return fail("cannot swap '" + temp + "' with '" + target + "'",
                  injected ? injected : errno, error);
    installed = exchanged = switched = true;
    return true;
#else
    error = "cannot replace '" + target + "', which 'latest' names";
    return false;
#endif
  }
  if (fs::exists(target, ec)) {
    std::string aside = root + "/." + name + ".deleting";
    int injected = fault("remove:stale-step-dir");
    if (injected || ::rename(target.c_str(), aside.c_str()) != 0)
      return fail("cannot move the stale '" + target + "' aside",
                  injected ? injected : errno, error);
    fs::remove_all(aside, ec);
  }
  int injected = fault("rename:step-dir");
  if (injected || ::rename(temp.c_str(), target.c_str()) != 0)
    return fail("cannot rename '" + temp + "' to '" + target + "'",
                injected ? injected : errno, error);
  installed = true;
  return true;
}

/// ROOT/latest -> step-NNNNNN: a new link, renamed over the old one.
bool Saver::switchLatest(std::string &error) {
  std::string link = root + "/.latest.tmp", latest = root + "/latest";
  ::unlink(link.c_str());
  int injected = fault("symlink:latest");
  if (injected || ::symlink(name.c_str(), link.c_str()) != 0)
    return fail("cannot create the link '" + link + "'",
                injected ? injected : errno, error);
  injected = fault("rename:latest");
  if (injected || ::rename(link.c_str(), latest.c_str()) != 0) {
    int errnum = injected ? injected : errno;
    ::unlink(link.c_str());
    return fail("cannot rename '" + link + "' to '" + latest + "'", errnum,
                error);
  }
  switched = true;
  return syncDirectory(root, "fsync:root-latest", error);
}

/// --keep: removes step directories older than the newest `keep` up to this
/// one (each renamed aside first, so that no half-removed checkpoint keeps
/// its name). Newer ones, left by an abandoned run, are not counted.
void Saver::prune(std::string &warning) const {
  if (options.keep <= 0)
    return;
  if (int injected = fault("prune")) {
    warning = "cannot remove old checkpoints in '" + root +
              "': " + std::strerror(injected);
    return;
  }
  std::vector<int> older;
  std::error_code ec;
  for (const fs::directory_entry &entry : fs::directory_iterator(root, ec)) {
    int step = stepOfName(entry.path().filename().string());
    if (step > 0 && step < state.step && entry.is_directory(ec))
      older.push_back(step);
  }
  std::sort(older.rbegin(), older.rend());
  for (size_t i = options.keep - 1; i < older.size(); ++i) {
    std::string dir = root + "/" + checkpointDirName(older[i]);
    std::string aside = root + "/." + checkpointDirName(older[i]) + ".deleting";
    bool moved = ::rename(dir.c_str(), aside.c_str()) == 0;
    if (moved)
      fs::remove_all(aside, ec);
    if (!moved || ec) {
      warning = "cannot remove the old checkpoint '" + dir + "'";
      return;
    }
  }
}

/// After a failure before `latest` switched: the new directory goes, so
/// that the next save starts clean.
void Saver::undo() const {
  std::error_code ec;
  fs::remove_all(temp, ec);
  if (installed && !exchanged) {
    std::string aside = root + "/." + name + ".deleting";
    if (::rename(target.c_str(), aside.c_str()) == 0)
      fs::remove_all(aside, ec);
  }
}

bool Saver::run(std::string &error, std::string &warning) {
  std::error_code ec;
  fs::create_directories(root, ec);
  previous = latestName(root);
  std::string reason;
  bool ok = !ec || fail("cannot create '" + root + "'", ec.value(), reason);
  if (ok) {
    removeLeftovers();
    int injected = fault("mkdir");
    ok = (!injected && ::mkdir(temp.c_str(), 0755) == 0) ||
         fail("cannot create '" + temp + "'", injected ? injected : errno,
              reason);
  }
  ok = ok && writeFiles(reason) &&
       syncDirectory(temp, "fsync:step-dir", reason) && install(reason) &&
       syncDirectory(root, "fsync:root", reason) &&
       (exchanged || switchLatest(reason));
  std::string what = "checkpoint of step " + std::to_string(state.step);
  if (!ok && switched) {
    error = what + ": " + reason + ", after '" + root +
            "/latest' named the new checkpoint: it is complete but may not "
            "be on disk yet";
    return false;
  }
  if (!ok) {
    undo();
    std::string kept = "the previous checkpoint '" + root + "/" + previous +
                       "' is untouched and '" + root +
                       "/latest' still names it";
    if (previous.empty())
      kept = "there is no earlier checkpoint in '" + root + "'";
    error = what + " not saved: " + reason + "; " + kept;
    return false;
  }
  if (exchanged)
    fs::remove_all(temp, ec); // the checkpoint it replaced
  prune(warning);
  fault("done");
  return true;
}

/// Reads a whole small file.
bool readText(const std::string &path, std::string &text, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  text.assign(std::istreambuf_iterator<char>(in),
              std::istreambuf_iterator<char>());
  return true;
}

/// A step in a JSON document: an integer from 1 to INT_MAX.
bool stepFromJson(const nlohmann::json &value, const std::string &where,
                  int &step, std::string &error) {
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (u >= 1 && u <= static_cast<uint64_t>(INT_MAX)) {
      step = static_cast<int>(u);
      return true;
    }
    error = where + ": step " + std::to_string(u) +
            (u == 0 ? " is not a step (steps count from 1)"
                    : " is past the largest step, 2147483647");
    return false;
  }
  if (value.is_number_integer()) {
    error = where + ": step " + std::to_string(value.get<int64_t>()) +
            " is negative (steps count from 1)";
    return false;
  }
  error = where + ": step " + value.dump() +
          (value.is_number() ? " is not written as an integer"
                             : " is not a number");
  return false;
}

/// The manifest's entry for `file`, checked against the file itself.
bool checkFile(const std::string &dir, const std::string &file,
               const nlohmann::json &entry, std::string &error) {
  std::string path = dir + "/" + file;
  if (!entry.is_object() || !entry.contains("size") ||
      !entry["size"].is_number_unsigned() || !entry.contains("crc32") ||
      !entry["crc32"].is_string()) {
    error = dir + "/" + kManifest + ": the entry for '" + file +
            "' needs a size and a crc32";
    return false;
  }
  uint64_t size = entry["size"].get<uint64_t>();
  std::string crc = entry["crc32"].get<std::string>();
  std::error_code ec;
  uint64_t actual = fs::file_size(path, ec);
  if (ec) {
    error = path + " is missing (" + kManifest + " names it, " +
            std::to_string(size) + " bytes)";
    return false;
  }
  if (actual != size) {
    error = path + " is " + std::to_string(actual) + " bytes; " + kManifest +
            " says " + std::to_string(size) + " (truncated or rewritten)";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(1 << 20);
  uint32_t value = 0;
  while (in) {
    in.read(buffer.data(), buffer.size());
    value = crc32Update(value, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (hex8(value) != crc) {
    error = path + " has CRC-32 " + hex8(value) + "; " + kManifest + " says " +
            crc + " (its bytes changed)";
    return false;
  }
  return true;
}

} // namespace

std::string checkpointDirName(int step) {
  char text[32];
  std::snprintf(text, sizeof(text), "step-%06d", step);
  return text;
}

bool saveCheckpoint(const std::string &root, const CheckpointState &state,
                    const CheckpointSaveOptions &options, std::string &error,
                    std::string &warning) {
  Saver saver(root, state, options);
  return saver.run(error, warning);
}

bool parseTrainerStep(const std::string &text, int &step, std::string &error) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("step")) {
    error = std::string(kTrainer) + " is not a JSON object with a \"step\"";
    return false;
  }
  return stepFromJson(json["step"], kTrainer, step, error);
}

bool resolveCheckpoint(const std::string &path, std::string &stepDir,
                       std::string &error) {
  std::error_code ec;
  if (fs::exists(path + "/" + kManifest, ec)) {
    stepDir = path;
    return true;
  }
  std::string latest = latestName(path);
  if (!latest.empty()) {
    if (latest.find('/') != std::string::npos || stepOfName(latest) < 0) {
      error = path + "/latest names '" + latest +
              "', not a step directory (step-NNNNNN)";
      return false;
    }
    stepDir = path + "/" + latest;
    if (fs::exists(stepDir + "/" + kManifest, ec))
      return true;
    error = path + "/latest names " + latest + ", which " +
            (fs::exists(stepDir, ec) ? "has no " + std::string(kManifest)
                                     : std::string("does not exist"));
    return false;
  }
  // A copy that followed links holds `latest` as a directory.
  if (fs::exists(path + "/latest/" + kManifest, ec)) {
    stepDir = path + "/latest";
    return true;
  }
  if (fs::exists(path + "/" + kTrainer, ec))
    error = path + " has no " + kManifest +
            " (a checkpoint from before manifests, or torn): it cannot be "
            "verified";
  else
    error = path + " is neither a checkpoint (no " + kManifest +
            ") nor a checkpoint directory (no 'latest')";
  return false;
}

bool verifyCheckpoint(const std::string &stepDir, int &step,
                      std::string &error) {
  std::string manifestPath = stepDir + "/" + kManifest, text;
  if (!readText(manifestPath, text, error))
    return false;
  nlohmann::json manifest = nlohmann::json::parse(text, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    error = manifestPath + " is not a JSON object";
    return false;
  }
  if (manifest.value("format", "") != kFormat ||
      !manifest["version"].is_number_integer() ||
      manifest["version"].get<int64_t>() != kVersion) {
    error = manifestPath + " is not a " + kFormat + " manifest of version " +
            std::to_string(kVersion);
    return false;
  }
  if (!manifest.contains("step")) {
    error = manifestPath + " has no step";
    return false;
  }
  if (!stepFromJson(manifest["step"], manifestPath, step, error))
    return false;
  const nlohmann::json &files = manifest["files"];
  for (const char *needed : {kModel, kOptimizer, kTrainer})
    if (!files.is_object() || !files.contains(needed)) {
      error = manifestPath + " does not name " + needed;
      return false;
    }
  for (const auto &[file, entry] : files.items()) {
    if (file.empty() || file.find('/') != std::string::npos || file == "." ||
        file == "..") {
      error = manifestPath + " names '" + file + "', not a file beside it";
      return false;
    }
    if (!checkFile(stepDir, file, entry, error))
      return false;
  }
  int trainerStep = 0;
  if (!readText(stepDir + "/" + kTrainer, text, error) ||
      !parseTrainerStep(text, trainerStep, error)) {
    error = stepDir + "/" + error;
    return false;
  }
  if (trainerStep != step) {
    error = stepDir + "/" + kTrainer + " says step " +
            std::to_string(trainerStep) + "; " + kManifest + " says " +
            std::to_string(step);
    return false;
  }
  int named = stepOfName(fs::path(stepDir).filename().string());
  if (named > 0 && named != step) {
    error = stepDir + " holds step " + std::to_string(step) +
            ", not the one its name says";
    return false;
  }
  return true;
}

bool loadCheckpoint(const std::string &path, CheckpointState &state,
                    std::string &stepDir, std::string &error) {
  if (!resolveCheckpoint(path, stepDir, error) ||
      !verifyCheckpoint(stepDir, state.step, error))
    return false;
  std::map<std::string, Tensor> optimizer;
  if (!loadTensors(stepDir + "/" + kModel, state.params, error) ||
      !loadTensors(stepDir + "/" + kOptimizer, optimizer, error))
    return false;
  for (auto &[key, t] : optimizer) {
    if (startsWith(key, kFirstMoment)) {
      state.adamM[key.substr(kFirstMoment.size())] = std::move(t);
    } else if (startsWith(key, kSecondMoment)) {
      state.adamV[key.substr(kSecondMoment.size())] = std::move(t);
    } else {
      error = stepDir + "/" + kOptimizer + " holds '" + key + "', which is " +
              "neither " + kFirstMoment + "NAME nor " + kSecondMoment + "NAME";
      return false;
    }
  }
  return true;
}

} // namespace galvatron::rt
