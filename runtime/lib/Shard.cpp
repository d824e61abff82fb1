//===- Shard.cpp - a rank's piece of a full tensor ------------------------===//
//
// A dimension cut views its input as [outer, blocks, parts, piece] (piece =
// the rows of one part times everything after the axis) and keeps
// [outer, blocks, index, piece]: a strided copy, and placing is the same
// copy the other way. Several cuts chain; placing walks the chain back,
// re-reading each intermediate from the full tensor so that the pieces of
// other ranks stay as they are.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Shard.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace galvatron::rt {

namespace {

std::string cutString(const plan::DimCut &cut) {
  return "(axis " + std::to_string(cut.axis()) + ", " +
         std::to_string(cut.blocks()) + " blocks, " +
         std::to_string(cut.parts()) + " parts, index " +
         std::to_string(cut.index()) + ")";
}

/// The shape after `cut`, or false with `error`.
bool cutShape(const Shape &in, const plan::DimCut &cut, Shape &out,
              std::string &error) {
  if (cut.axis() < 0 || cut.axis() >= static_cast<int64_t>(in.size()))
    return error = "shard cut " + cutString(cut) + " names no axis of " +
                   shapeString(in),
           false;
  if (cut.blocks() < 1 || cut.parts() < 1 || cut.index() < 0 ||
      cut.index() >= cut.parts())
    return error = "shard cut " + cutString(cut) + " is malformed", false;
  int64_t dim = in[cut.axis()];
  int64_t pieces = int64_t(cut.blocks()) * cut.parts();
  if (dim % pieces != 0)
    return error = "shard cut " + cutString(cut) + " does not divide " +
                   "dimension " + std::to_string(dim) + " of " +
                   shapeString(in),
           false;
  out = in;
  out[cut.axis()] = dim / cut.parts();
  return true;
}

/// Copies between a tensor of `shape` and its piece under `cut` (already
/// validated): whole to piece when `fromWhole`, else piece back into whole.
void blockCopy(const Shape &shape, size_t width, const plan::DimCut &cut,
               const uint8_t *from, uint8_t *to, bool fromWhole) {
  assert(cut.axis() >= 0 && cut.axis() < static_cast<int64_t>(shape.size()) &&
         cut.blocks() >= 1 && cut.parts() >= 1 && cut.index() >= 0 &&
         cut.index() < cut.parts() &&
         shape[cut.axis()] % (int64_t(cut.blocks()) * cut.parts()) == 0 &&
         "block copy under an unvalidated cut");
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < cut.axis(); ++i)
    outer *= shape[i];
  for (size_t i = cut.axis() + 1; i < shape.size(); ++i)
    inner *= shape[i];
  int64_t blocks = cut.blocks(), parts = cut.parts();
  int64_t rows = shape[cut.axis()] / (blocks * parts);
  size_t chunk = static_cast<size_t>(rows * inner) * width;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t b = 0; b < blocks; ++b) {
      size_t w = ((o * blocks + b) * parts + cut.index()) * chunk;
      size_t p = (o * blocks + b) * chunk;
      if (fromWhole)
        std::memcpy(to + p, from + w, chunk);
      else
        std::memcpy(to + w, from + p, chunk);
    }
}

Tensor applyCut(const Tensor &in, const plan::DimCut &cut, const Shape &out) {
  assert(in.bytes.size() ==
             static_cast<size_t>(in.size()) * dtypeSize(in.dtype) &&
         numElements(out) * cut.parts() == in.size() &&
         "cut of a tensor that does not match the cut's shapes");
  Tensor result(in.dtype, out);
  blockCopy(in.shape, dtypeSize(in.dtype), cut, in.bytes.data(),
            result.bytes.data(), true);
  return result;
}

int64_t flatChunk(int64_t count, int64_t parts) {
  return (count + parts - 1) / parts;
}

bool checkFull(const Tensor &full, const plan::Shard &shard, const char *what,
               std::string &error) {
  Shape want = shardFullShape(shard);
  if (full.shape != want)
    return error = std::string(what) + " is " + shapeString(full.shape) +
                   " but the shard's full shape is " + shapeString(want),
           false;
  return true;
}

} // namespace

Shape shardFullShape(const plan::Shard &shard) {
  if (!shard.full_shape())
    return {};
  return Shape(shard.full_shape()->begin(), shard.full_shape()->end());
}

bool shardShape(const plan::Shard &shard, Shape &shape, std::string &error) {
  shape = shardFullShape(shard);
  // A crafted full shape must not overflow the element count (found by the
  // plan fuzzer): at most 2^40 elements, as for tensors.
  uint64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || (d > 0 && count > (uint64_t{1} << 40) / d))
      return error = "shard full shape " + shapeString(shape) +
                     " is negative or too large",
             false;
    else
      count *= d;
  if (shard.cuts())
    for (const plan::DimCut *cut : *shard.cuts())
      if (!cutShape(shape, *cut, shape, error))
        return false;
  if (shard.flat_parts() < 1 || shard.flat_index() < 0 ||
      shard.flat_index() >= shard.flat_parts())
    return error = "shard flat cut (piece " +
                   std::to_string(shard.flat_index()) + " of " +
                   std::to_string(shard.flat_parts()) + ") is malformed",
           false;
  if (shard.flat_parts() > 1)
    shape = {flatChunk(numElements(shape), shard.flat_parts())};
  return true;
}

bool cutShard(const Tensor &full, const plan::Shard &shard, Tensor &piece,
              std::string &error) {
  Shape local;
  if (!checkFull(full, shard, "the full tensor", error) ||
      !shardShape(shard, local, error))
    return false;
  Tensor t = full;
  if (shard.cuts())
    for (const plan::DimCut *cut : *shard.cuts()) {
      Shape out;
      [[maybe_unused]] bool valid = cutShape(t.shape, *cut, out, error);
      assert(valid && "a cut shardShape accepted fails on the full tensor");
      t = applyCut(t, *cut, out);
    }
  if (shard.flat_parts() > 1) {
    size_t width = dtypeSize(t.dtype);
    int64_t count = t.size(), chunk = local[0];
    int64_t begin = std::min(count, shard.flat_index() * chunk);
    int64_t end = std::min(count, begin + chunk);
    assert(local.size() == 1 && end - begin <= chunk && "flat cut overruns");
    piece = Tensor::zeros(t.dtype, local);
    std::memcpy(piece.bytes.data(), t.bytes.data() + begin * width,
                (end - begin) * width);
    return true;
  }
  piece = std::move(t);
  return true;
}

bool placeShard(const Tensor &piece, const plan::Shard &shard, Tensor &full,
                std::string &error) {
  Shape local;
  if (!checkFull(full, shard, "the tensor to place into", error) ||
      !shardShape(shard, local, error))
    return false;
  if (piece.shape != local || piece.dtype != full.dtype)
    return error = "the piece is " + std::string(dtypeName(piece.dtype)) + " " +
                   shapeString(piece.shape) + ", the shard gives " +
                   dtypeName(full.dtype) + " " + shapeString(local),
           false;
  // chain[k] is the tensor after k cuts, read from `full`; chain[0] is
  // `full` itself (not copied).
  std::vector<const plan::DimCut *> cuts;
  if (shard.cuts())
    cuts.assign(shard.cuts()->begin(), shard.cuts()->end());
  std::vector<Tensor> chain(cuts.size() + 1);
  auto at = [&](size_t k) -> Tensor & { return k == 0 ? full : chain[k]; };
  bool flat = shard.flat_parts() > 1;
  // Intermediates that are only overwritten whole need not be read.
  size_t readUpTo = flat ? cuts.size() : cuts.size() - (cuts.empty() ? 0 : 1);
  for (size_t k = 1; k <= readUpTo; ++k) {
    Shape out;
    [[maybe_unused]] bool valid =
        cutShape(at(k - 1).shape, *cuts[k - 1], out, error);
    assert(valid && "a cut shardShape accepted fails on the full tensor");
    chain[k] = applyCut(at(k - 1), *cuts[k - 1], out);
  }
  Tensor &last = at(cuts.size());
  if (flat) {
    size_t width = dtypeSize(piece.dtype);
    int64_t count = last.size(), chunk = local[0];
    int64_t begin = std::min(count, shard.flat_index() * chunk);
    int64_t end = std::min(count, begin + chunk);
    assert(static_cast<size_t>((end - begin) * width) <= piece.bytes.size() &&
           "flat piece smaller than its place");
    std::memcpy(last.bytes.data() + begin * width, piece.bytes.data(),
                (end - begin) * width);
  } else if (!cuts.empty()) {
    last = piece;
  } else {
    assert(piece.bytes.size() == full.bytes.size() && "whole piece differs");
    std::memcpy(full.bytes.data(), piece.bytes.data(), piece.bytes.size());
    return true;
  }
  for (size_t k = cuts.size(); k >= 1; --k)
    blockCopy(at(k - 1).shape, dtypeSize(piece.dtype), *cuts[k - 1],
              at(k).bytes.data(), at(k - 1).bytes.data(), false);
  return true;
}

bool sameShard(const plan::Shard *a, const plan::Shard *b) {
  auto whole = [](const plan::Shard *s) {
    return !s ||
           ((!s->cuts() || s->cuts()->size() == 0) && s->flat_parts() <= 1);
  };
  if (whole(a) || whole(b))
    return whole(a) && whole(b);
  if (shardFullShape(*a) != shardFullShape(*b) ||
      a->flat_parts() != b->flat_parts() || a->flat_index() != b->flat_index())
    return false;
  size_t n = a->cuts() ? a->cuts()->size() : 0;
  if (n != (b->cuts() ? b->cuts()->size() : 0))
    return false;
  for (size_t i = 0; i < n; ++i) {
    const plan::DimCut *x = a->cuts()->Get(i), *y = b->cuts()->Get(i);
    if (x->axis() != y->axis() || x->blocks() != y->blocks() ||
        x->parts() != y->parts() || x->index() != y->index())
      return false;
  }
  return true;
}

} // namespace galvatron::rt
