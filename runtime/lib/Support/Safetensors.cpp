//===- Safetensors.cpp - read and write safetensors files -----------------===//

#include "galvatron/Support/Safetensors.h"
#include "galvatron/Support/AtomicFile.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace galvatron {

size_t safetensorsDTypeSize(const std::string &dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F16", 2}, {"BF16", 2},
      {"I16", 2},  {"U16", 2}, {"F32", 4}, {"I32", 4}, {"U32", 4},
      {"F64", 8},  {"I64", 8}, {"U64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

static int64_t elementCount(const std::vector<int64_t> &shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  return count;
}

bool writeSafetensors(const std::string &path,
                      const std::map<std::string, SafetensorsTensor> &tensors,
                      std::string &error,
                      const std::map<std::string, std::string> &metadata) {
  std::map<std::string, SafetensorsView> views;
  for (const auto &[name, tensor] : tensors)
    views[name] = {tensor.dtype, tensor.shape, tensor.data.data(),
                   tensor.data.size()};
  return writeSafetensors(path, views, error, metadata);
}

bool encodeSafetensors(const std::map<std::string, SafetensorsView> &tensors,
                       const std::map<std::string, std::string> &metadata,
                       std::string &header, std::vector<FileChunk> &chunks,
                       std::string &error) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (!metadata.empty())
    json["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto &[name, tensor] : tensors) {
    size_t size = safetensorsDTypeSize(tensor.dtype);
    if (size == 0) {
      error = "tensor '" + name + "' has unknown dtype '" + tensor.dtype + "'";
      return false;
    }
    if (static_cast<uint64_t>(elementCount(tensor.shape)) * size !=
        tensor.size) {
      error = "tensor '" + name + "' holds " + std::to_string(tensor.size) +
              " bytes, not the " +
              std::to_string(elementCount(tensor.shape) * size) +
              " its shape needs";
      return false;
    }
    json[name] = {{"dtype", tensor.dtype},
                  {"shape", tensor.shape},
                  {"data_offsets", {offset, offset + tensor.size}}};
    offset += tensor.size;
  }
  std::string text = json.dump();
  // Pad the header with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t headerSize = text.size();
  header.assign(8, '\0');
  for (int i = 0; i < 8; ++i)
    header[i] = static_cast<char>(headerSize >> (8 * i));
  header += text;
  chunks = {{header.data(), header.size()}};
  for (const auto &entry : tensors)
    chunks.push_back({entry.second.data, entry.second.size});
  return true;
}

bool writeSafetensors(const std::string &path,
                      const std::map<std::string, SafetensorsView> &tensors,
                      std::string &error,
                      const std::map<std::string, std::string> &metadata) {
  std::string header;
  std::vector<FileChunk> chunks;
  return encodeSafetensors(tensors, metadata, header, chunks, error) &&
         writeFileAtomically(path, chunks, error);
}

bool readSafetensors(const std::string &path,
                     std::map<std::string, SafetensorsTensor> &tensors,
                     std::string &error) {
  FILE *file = std::fopen(path.c_str(), "rb");
  if (!file) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const std::string &message) {
    error = path + ": " + message;
    std::fclose(file);
    return false;
  };
  std::fseek(file, 0, SEEK_END);
  long fileSize = std::ftell(file);
  std::fseek(file, 0, SEEK_SET);
  unsigned char sizeBytes[8];
  if (fileSize < 8 || std::fread(sizeBytes, 1, 8, file) != 8)
    return fail("too short for a safetensors header");
  uint64_t headerSize = 0;
  for (int i = 0; i < 8; ++i)
    headerSize |= static_cast<uint64_t>(sizeBytes[i]) << (8 * i);
  if (headerSize > static_cast<uint64_t>(fileSize) - 8)
    return fail("header length " + std::to_string(headerSize) +
                " runs past the end of the file");
  std::string text(headerSize, '\0');
  if (std::fread(text.data(), 1, headerSize, file) != headerSize)
    return fail("cannot read the header");
  nlohmann::json header = nlohmann::json::parse(text, nullptr, false);
  if (header.is_discarded() || !header.is_object())
    return fail("the header is not a JSON object");
  uint64_t dataSize = fileSize - 8 - headerSize;
  for (auto &[name, entry] : header.items()) {
    if (name == "__metadata__")
      continue;
    if (!entry.is_object() || !entry["dtype"].is_string() ||
        !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2)
      return fail("tensor '" + name + "' needs dtype, shape and data_offsets");
    SafetensorsTensor tensor;
    tensor.dtype = entry["dtype"].get<std::string>();
    for (auto &d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        return fail("tensor '" + name + "' has a bad shape");
      tensor.shape.push_back(d.get<int64_t>());
    }
    auto &offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      return fail("tensor '" + name + "' has bad data_offsets");
    uint64_t begin = offsets[0], end = offsets[1];
    size_t size = safetensorsDTypeSize(tensor.dtype);
    if (size == 0)
      return fail("tensor '" + name + "' has unknown dtype '" + tensor.dtype +
                  "'");
    if (begin > end || end > dataSize ||
        end - begin != static_cast<uint64_t>(elementCount(tensor.shape)) * size)
      return fail("tensor '" + name + "' byte range [" + std::to_string(begin) +
                  ", " + std::to_string(end) +
                  ") does not fit its shape or the file");
    tensor.data.resize(end - begin);
    std::fseek(file, static_cast<long>(8 + headerSize + begin), SEEK_SET);
    if (std::fread(tensor.data.data(), 1, tensor.data.size(), file) !=
        tensor.data.size())
      return fail("cannot read tensor '" + name + "'");
    tensors[name] = std::move(tensor);
  }
  std::fclose(file);
  return true;
}

} // namespace galvatron
