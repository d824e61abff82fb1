//===- Npy.cpp - numpy .npy files -----------------------------------------===//

#include "galvatron/runtime/Npy.h"
#include "galvatron/Support/AtomicFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

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

bool readNpy(const std::string &path, Tensor &tensor, std::string &error) {
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
  for (size_t i = 0; i < shapeText.size();) {
    if (isdigit(static_cast<unsigned char>(shapeText[i]))) {
      size_t end;
      shape.push_back(std::stoll(shapeText.substr(i), &end));
      i += end;
    } else {
      ++i;
    }
  }
  tensor = Tensor(dtype, shape);
  size_t offset = headerStart + headerLength;
  if (data.size() - offset != tensor.bytes.size())
    return fail("holds " + std::to_string(data.size() - offset) +
                " data bytes, not the " + std::to_string(tensor.bytes.size()) +
                " of shape " + shapeString(shape));
  std::memcpy(tensor.bytes.data(), data.data() + offset, tensor.bytes.size());
  return true;
}

bool writeNpy(const std::string &path, const Tensor &tensor,
              std::string &error) {
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
