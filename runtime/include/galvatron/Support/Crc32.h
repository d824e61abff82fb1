//===- Crc32.h - CRC-32 of byte streams -------------------------*- C++ -*-===//
//
// Plain C++ (no MLIR) so the runtime can use it.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_SUPPORT_CRC32_H
#define GALVATRON_SUPPORT_CRC32_H

#include <cstddef>
#include <cstdint>

namespace galvatron {

/// The CRC-32 of IEEE 802.3 (zlib's crc32, Python's zlib.crc32) of the
/// bytes seen so far, continued over `size` more: start from 0, and
/// crc32Update(crc32Update(0, a), b) is the CRC of a followed by b.
uint32_t crc32Update(uint32_t crc, const void *data, size_t size);

} // namespace galvatron

#endif // GALVATRON_SUPPORT_CRC32_H
