//===- Npy.cpp - numpy .npy files -----------------------------------------===//

#include "galvatron/runtime/Npy.h"
#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Support/FileChecks.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

namespace galvatron::rt {

/// The value of `key` in the .npy header dict, as raw text.
static std::string headerField(const std::string &header,
                               const std::string &key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return "";
  at = header.find(':', at);
  if (at == std::string::npos)
    return "";
  ++at;
  while (at < header.size() && header[at] == ' ')
    ++at;
  if (at < header.size() && header[at] == '(') {
    size_t end = header.find(')', at);
    return end == std::string::npos ? "" : header.substr(at, end - at + 1);
  }
  size_t end = header.find_first_of(",}", at);
  return header.substr(at, end - at);
}

/// Parses a .npy shape tuple ("()", "(5,)", "(2, 8)") into `shape`, and its
/// size in bytes for elements of `elementSize`; false with `message` when a
/// dimension is not a non-negative integer or the size does not fit in 64
/// bits (it is checked against the file before anything is allocated).
static bool parseShape(const std::string &text, size_t elementSize,
                       Shape &shape, uint64_t &bytes, std::string &message) {
  message = "shape " + (text.empty() ? std::string("(missing)") : text);
  if (text.size() < 2 || text.front() != '(' || text.back() != ')')
    return message += " is not a tuple", false;
  bytes = elementSize;
  size_t at = 1, end = text.size() - 1;
  while (at < end) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos || comma > end)
      comma = end;
    size_t first = text.find_first_not_of(' ', at);
    size_t last = text.find_last_not_of(' ', comma - 1);
    std::string dim = first < comma && last >= first
                          ? text.substr(first, last - first + 1)
                          : std::string();
    // Only a trailing comma may leave an empty item: "(5,)".
    if (dim.empty() && !(comma == end && !shape.empty()))
      return message += " has an empty dimension", false;
    if (dim.empty())
      break;
    uint64_t value = 0;
    for (char c : dim) {
      if (c < '0' || c > '9')
        return message +=
               ": dimension '" + dim + "' is not a non-negative integer",
               false;
      if (value >
          (uint64_t(std::numeric_limits<int64_t>::max()) - (c - '0')) / 10)
        return message += ": dimension " + dim + " is too large", false;
      value = value * 10 + (c - '0');
    }
    if (__builtin_mul_overflow(bytes, value, &bytes) ||
        bytes > uint64_t(std::numeric_limits<int64_t>::max()))
      return message += " holds more bytes than a 64-bit size counts", false;
    shape.push_back(static_cast<int64_t>(value));
    at = comma + 1;
  }
  return true;
}

bool readNpy(const std::string &path, Tensor &tensor, std::string &error) {
  // The whole file is read: a directory cannot be, a device may never end.
  if (std::string reason = notRegularFileReason(path); !reason.empty()) {
    error = reason;
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  auto fail = [&](const std::string &message) {
    error = path + ": " + message;
    return false;
  };
  if (data.size() < 10 || data.compare(0, 6, "\x93NUMPY") != 0)
    return fail("not a .npy file");
  int major = static_cast<uint8_t>(data[6]);
  size_t headerLength, headerStart;
  if (major == 1) {
    headerLength =
        static_cast<uint8_t>(data[8]) | (static_cast<uint8_t>(data[9]) << 8);
    headerStart = 10;
  } else if ((major == 2 || major == 3) && data.size() >= 12) {
    headerLength = 0;
    for (int i = 0; i < 4; ++i)
      headerLength |= static_cast<size_t>(static_cast<uint8_t>(data[8 + i]))
                      << (8 * i);
    headerStart = 12;
  } else {
    return fail("unsupported .npy version " + std::to_string(major));
  }
  if (headerStart + headerLength > data.size())
    return fail("truncated header");
  std::string header = data.substr(headerStart, headerLength);
  std::string descr = headerField(header, "descr");
  std::string order = headerField(header, "fortran_order");
  std::string shapeText = headerField(header, "shape");
  if (order.find("False") == std::string::npos)
    return fail("only C-order arrays are supported");
  DType dtype;
  if (descr == "'<f4'")
    dtype = DType::F32;
  else if (descr == "'<f8'")
    dtype = DType::F64;
  else if (descr == "'<i8'")
    dtype = DType::I64;
  else if (descr == "'<i4'")
    dtype = DType::I32;
  else if (descr == "'|b1'")
    dtype = DType::Bool;
  else
    return fail("unsupported dtype " + descr);
  Shape shape;
  uint64_t bytes = 0;
  std::string message;
  if (!parseShape(shapeText, dtypeSize(dtype), shape, bytes, message))
    return fail(message);
  size_t offset = headerStart + headerLength;
  if (data.size() - offset != bytes)
    return fail("holds " + std::to_string(data.size() - offset) +
                " data bytes, not the " + std::to_string(bytes) + " of shape " +
                shapeString(shape));
  tensor = Tensor(dtype, shape);
  std::memcpy(tensor.bytes.data(), data.data() + offset, tensor.bytes.size());
  return true;
}

bool readTokenIds(const std::string &path, Tensor &tokens, std::string &error) {
  if (!readNpy(path, tokens, error))
    return false;
  if (tokens.dtype == DType::I64 || tokens.dtype == DType::I32)
    return true;
  error = path + ": token ids must be integers (int32 or int64), not " +
          dtypeName(tokens.dtype);
  return false;
}

bool writeNpy(const std::string &path, const Tensor &given,
              std::string &error) {
  // numpy has no bfloat16: such outputs are written widened (exactly).
  Tensor widened;
  if (given.dtype == DType::BF16) {
    widened = Tensor(DType::F32, given.shape);
    for (int64_t i = 0; i < given.size(); ++i)
      widened.f32()[i] = bf16ToFloat(given.bf16()[i]);
  }
  const Tensor &tensor = given.dtype == DType::BF16 ? widened : given;
  const char *descr = tensor.dtype == DType::F32   ? "<f4"
                      : tensor.dtype == DType::F64 ? "<f8"
                      : tensor.dtype == DType::I64 ? "<i8"
                      : tensor.dtype == DType::I32 ? "<i4"
                                                   : "|b1";
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape.size(); ++i)
    shape += std::to_string(tensor.shape[i]) + ",";
  if (tensor.shape.size() > 1)
    shape.pop_back();
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts on a 64-byte boundary, newline-terminated.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  unsigned char preamble[10] = {0x93,
                                'N',
                                'U',
                                'M',
                                'P',
                                'Y',
                                1,
                                0,
                                static_cast<unsigned char>(header.size()),
                                static_cast<unsigned char>(header.size() >> 8)};
  return writeFileAtomically(path,
                             {{preamble, 10},
                              {header.data(), header.size()},
                              {tensor.bytes.data(), tensor.bytes.size()}},
                             error);
}

} // namespace galvatron::rt
