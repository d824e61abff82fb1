//===- Comm.cpp - collectives over the plan's device groups ---------------===//
//
// The tensor-level half of every communicator: implementations move
// contiguous per-rank pieces, so a gather, scatter or exchange along a
// non-leading axis is packed here. Viewing a tensor as [outer, n, chunk]
// around the axis (n pieces of `chunk` bytes each in every outer row), the
// per-rank layout is [n, outer, chunk]: a transpose of the two leading
// dimensions, done with one memcpy per chunk.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Comm.h"

#include <algorithm>
#include <cstring>

namespace galvatron::rt {

GroupRanks planGroups(const plan::Plan &plan) {
  GroupRanks groups;
  if (plan.groups())
    for (const plan::DeviceGroup *g : *plan.groups())
      groups.emplace_back(
          g->ranks() ? std::vector<int>(g->ranks()->begin(), g->ranks()->end())
                     : std::vector<int>());
  return groups;
}

std::string groupKey(const std::vector<int> &ranks) {
  std::string key;
  for (size_t i = 0; i < ranks.size(); ++i)
    key += (i ? "," : "") + std::to_string(ranks[i]);
  return key;
}

namespace {

/// [outer, n, chunk] <-> [n, outer, chunk]; `toPieces` goes left to right.
void transposeChunks(const uint8_t *in, uint8_t *out, int64_t outer, int64_t n,
                     size_t chunk, bool toPieces) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < n; ++k) {
      size_t byRow = (o * n + k) * chunk, byPiece = (k * outer + o) * chunk;
      std::memcpy(out + (toPieces ? byPiece : byRow),
                  in + (toPieces ? byRow : byPiece), chunk);
    }
}

/// Elements before `axis` (the outer count) and the bytes of one piece when
/// `shape[axis]` is cut into `n`.
void around(const Shape &shape, int64_t axis, int64_t n, size_t width,
            int64_t &outer, size_t &chunk) {
  outer = 1;
  for (int64_t i = 0; i < axis; ++i)
    outer *= shape[i];
  int64_t inner = 1;
  for (size_t i = axis; i < shape.size(); ++i)
    inner *= shape[i];
  chunk = static_cast<size_t>(inner / n) * width;
}

bool reducible(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::I64 ||
         dtype == DType::I32 || dtype == DType::BF16;
}

} // namespace

Communicator::Communicator(GroupRanks groups, int rank, int worldSize)
    : groupRanks(std::move(groups)), worldRank(rank), worldSize(worldSize) {}

Communicator::~Communicator() = default;

std::map<std::string, uint64_t> Communicator::takeByteCounts() {
  std::map<std::string, uint64_t> counts;
  counts.swap(byteCounts);
  return counts;
}

std::string Communicator::describe(const char *op, int group) const {
  std::string ranks = group >= 0 && group < static_cast<int>(groupRanks.size())
                          ? groupKey(groupRanks[group])
                          : "?";
  return std::string(op) + " over group [" + ranks + "]";
}

bool Communicator::member(int group, const char *op, int &count, int &position,
                          std::string &error) const {
  if (group < 0 || group >= static_cast<int>(groupRanks.size()))
    return error = std::string(op) + " names group " + std::to_string(group) +
                   ", but there are " + std::to_string(groupRanks.size()),
           false;
  const std::vector<int> &ranks = groupRanks[group];
  auto it = std::find(ranks.begin(), ranks.end(), worldRank);
  if (it == ranks.end())
    return error = describe(op, group) + " does not contain rank " +
                   std::to_string(worldRank),
           false;
  count = static_cast<int>(ranks.size());
  position = static_cast<int>(it - ranks.begin());
  return true;
}

void Communicator::count(const char *op, int group, uint64_t bytes) {
  byteCounts[std::string(op) + ":" + groupKey(groupRanks[group])] += bytes;
}

static bool normaliseAxis(int64_t &axis, const TensorView &t,
                          const std::string &op, std::string &error) {
  if (axis < 0)
    axis += t.rank();
  if (axis < 0 || axis >= t.rank())
    return error = op + ": axis " + std::to_string(axis) +
                   " is not an axis of " + shapeString(t.shape),
           false;
  return true;
}

bool Communicator::allReduce(int group, Reduction kind, const TensorView &in,
                             Tensor &out, std::string &error) {
  const char *op = "all_reduce";
  int n, position;
  if (!member(group, op, n, position, error))
    return false;
  if (!reducible(in.dtype) ||
      (kind == Reduction::Mean && in.dtype != DType::F32 &&
       in.dtype != DType::F64 && in.dtype != DType::BF16))
    return error = describe(op, group) + " cannot reduce " +
                   dtypeName(in.dtype) + " tensors",
           false;
  count(op, group, in.byteSize());
  out = Tensor(in);
  if (n == 1)
    return true;
  Reduction raw = kind == Reduction::Mean ? Reduction::Sum : kind;
  if (!rawAllReduce(group, out.bytes.data(), out.size(), out.dtype, raw, error))
    return false;
  if (kind == Reduction::Mean) {
    if (out.dtype == DType::F32) {
      float *data = out.f32();
      for (int64_t i = 0; i < out.size(); ++i)
        data[i] /= n;
    } else {
      for (int64_t i = 0; i < out.size(); ++i)
        out.set(i, out.at(i) / n);
    }
  }
  return true;
}

bool Communicator::allGather(int group, int64_t axis, const TensorView &in,
                             Tensor &out, std::string &error) {
  const char *op = "all_gather";
  int n, position;
  if (!member(group, op, n, position, error) ||
      !normaliseAxis(axis, in, describe(op, group), error))
    return false;
  count(op, group, in.byteSize());
  Shape shape = in.shape;
  shape[axis] *= n;
  out = Tensor(in.dtype, shape);
  if (n == 1) {
    std::memcpy(out.data(), in.data(), in.byteSize());
    return true;
  }
  int64_t outer;
  size_t chunk;
  around(in.shape, axis, 1, dtypeSize(in.dtype), outer, chunk);
  if (outer == 1)
    return rawAllGather(group, in.data(), out.bytes.data(), in.byteSize(),
                        error);
  Bytes pieces(out.bytes.size());
  if (!rawAllGather(group, in.data(), pieces.data(), in.byteSize(), error))
    return false;
  transposeChunks(pieces.data(), out.bytes.data(), outer, n, chunk, false);
  return true;
}

bool Communicator::reduceScatter(int group, int64_t axis, const TensorView &in,
                                 Tensor &out, std::string &error) {
  const char *op = "reduce_scatter";
  int n, position;
  if (!member(group, op, n, position, error) ||
      !normaliseAxis(axis, in, describe(op, group), error))
    return false;
  if (!reducible(in.dtype))
    return error = describe(op, group) + " cannot reduce " +
                   dtypeName(in.dtype) + " tensors",
           false;
  if (in.shape[axis] % n != 0)
    return error = describe(op, group) + " cannot cut axis " +
                   std::to_string(axis) + " of " + shapeString(in.shape) +
                   " into " + std::to_string(n) + " pieces",
           false;
  count(op, group, in.byteSize());
  Shape shape = in.shape;
  shape[axis] /= n;
  out = Tensor(in.dtype, shape);
  if (n == 1) {
    std::memcpy(out.data(), in.data(), in.byteSize());
    return true;
  }
  int64_t outer;
  size_t chunk;
  around(in.shape, axis, n, dtypeSize(in.dtype), outer, chunk);
  if (outer == 1)
    return rawReduceScatter(group, in.data(), out.bytes.data(), out.size(),
                            in.dtype, error);
  Bytes pieces(in.byteSize());
  transposeChunks(in.data(), pieces.data(), outer, n, chunk, true);
  return rawReduceScatter(group, pieces.data(), out.bytes.data(), out.size(),
                          in.dtype, error);
}

bool Communicator::allToAll(int group, int64_t splitAxis, int64_t concatAxis,
                            const TensorView &in, Tensor &out,
                            std::string &error) {
  const char *op = "all_to_all";
  int n, position;
  if (!member(group, op, n, position, error) ||
      !normaliseAxis(splitAxis, in, describe(op, group), error) ||
      !normaliseAxis(concatAxis, in, describe(op, group), error))
    return false;
  if (in.shape[splitAxis] % n != 0)
    return error = describe(op, group) + " cannot cut axis " +
                   std::to_string(splitAxis) + " of " + shapeString(in.shape) +
                   " into " + std::to_string(n) + " pieces",
           false;
  count(op, group, in.byteSize());
  Shape piece = in.shape;
  piece[splitAxis] /= n;
  Shape shape = piece;
  shape[concatAxis] *= n;
  out = Tensor(in.dtype, shape);
  if (n == 1) {
    std::memcpy(out.data(), in.data(), in.byteSize());
    return true;
  }
  size_t width = dtypeSize(in.dtype), bytesEach = in.byteSize() / n;
  int64_t outer;
  size_t chunk;
  // Pack the split axis into per-rank pieces.
  Bytes packed;
  const uint8_t *send = in.data();
  around(in.shape, splitAxis, n, width, outer, chunk);
  if (outer > 1) {
    packed.resize(in.byteSize());
    transposeChunks(in.data(), packed.data(), outer, n, chunk, true);
    send = packed.data();
  }
  // Unpack what arrives (pieces in position order) along the concat axis.
  around(piece, concatAxis, 1, width, outer, chunk);
  if (outer == 1)
    return rawAllToAll(group, send, out.bytes.data(), bytesEach, error);
  Bytes received(in.byteSize());
  if (!rawAllToAll(group, send, received.data(), bytesEach, error))
    return false;
  transposeChunks(received.data(), out.bytes.data(), outer, n, chunk, false);
  return true;
}

bool Communicator::memberWith(int group, const char *op, const char *role,
                              int other, int &n, int &position,
                              std::string &error) const {
  if (!member(group, op, n, position, error))
    return false;
  if (other < 0 || other >= n)
    return error = describe(op, group) + ": " + role + " " +
                   std::to_string(other) + " is not a position in the group",
           false;
  return true;
}

bool Communicator::broadcast(int group, int root, const TensorView &in,
                             Tensor &out, std::string &error) {
  const char *op = "broadcast";
  int n, position;
  if (!memberWith(group, op, "root", root, n, position, error))
    return false;
  count(op, group, in.byteSize());
  out = Tensor(in);
  if (n == 1)
    return true;
  return rawBroadcast(group, out.bytes.data(), out.bytes.size(), root, error);
}

bool Communicator::send(int group, int peer, const TensorView &in,
                        std::string &error) {
  const char *op = "send";
  int n, position;
  if (!memberWith(group, op, "peer", peer, n, position, error))
    return false;
  count(op, group, in.byteSize());
  if (peer == position) {
    selfMessages[group].emplace_back(in.data(), in.data() + in.byteSize());
    return true;
  }
  return rawSend(group, peer, Bytes(in.data(), in.data() + in.byteSize()),
                 error);
}

bool Communicator::recv(int group, int peer, Tensor &out, std::string &error) {
  const char *op = "recv";
  int n, position;
  if (!memberWith(group, op, "peer", peer, n, position, error))
    return false;
  count(op, group, 0);
  if (peer != position)
    return rawRecv(group, peer, out.bytes.data(), out.bytes.size(), error);
  std::deque<Bytes> &queue = selfMessages[group];
  if (queue.empty())
    return error = describe(op, group) +
                   ": a receive from this rank itself with no send before it",
           false;
  if (queue.front().size() != out.bytes.size())
    return error = describe(op, group) + ": received " +
                   std::to_string(queue.front().size()) + " bytes, expected " +
                   std::to_string(out.bytes.size()),
           false;
  out.bytes = std::move(queue.front());
  queue.pop_front();
  return true;
}

namespace {

/// World size 1: the base class handles groups of one rank; a larger group
/// means the plan was built for more processes than this one.
class LocalCommunicator final : public Communicator {
public:
  LocalCommunicator(GroupRanks groups, int rank)
      : Communicator(std::move(groups), rank, 1) {}

  bool flush(std::string &error) override { return true; }
  bool worldSend(int to, const void *, size_t, const std::string &what,
                 std::string &error) override {
    return alone(what, error);
  }
  bool worldRecv(int from, void *, size_t, const std::string &what,
                 std::string &error) override {
    return alone(what, error);
  }
  bool worldBroadcast(void *, size_t, int root, const std::string &what,
                      std::string &error) override {
    return root == rank() || alone(what, error);
  }
  bool worldBarrier(const std::string &, std::string &) override {
    return true;
  }

protected:
  bool rawAllReduce(int group, void *, int64_t, DType, Reduction,
                    std::string &error) override {
    return needsRanks("all_reduce", group, error);
  }
  bool rawAllGather(int group, const void *, void *, size_t,
                    std::string &error) override {
    return needsRanks("all_gather", group, error);
  }
  bool rawReduceScatter(int group, const void *, void *, int64_t, DType,
                        std::string &error) override {
    return needsRanks("reduce_scatter", group, error);
  }
  bool rawAllToAll(int group, const void *, void *, size_t,
                   std::string &error) override {
    return needsRanks("all_to_all", group, error);
  }
  bool rawBroadcast(int group, void *, size_t, int,
                    std::string &error) override {
    return needsRanks("broadcast", group, error);
  }
  bool rawSend(int group, int, Bytes, std::string &error) override {
    return needsRanks("send", group, error);
  }
  bool rawRecv(int group, int, void *, size_t, std::string &error) override {
    return needsRanks("recv", group, error);
  }

private:
  bool needsRanks(const char *op, int group, std::string &error) {
    error = describe(op, group) + " needs " +
            std::to_string(groups()[group].size()) +
            " processes, but this is a single one: run the plan under "
            "mpirun";
    return false;
  }
  bool alone(const std::string &what, std::string &error) {
    error = what + ": there is no other rank in a single process";
    return false;
  }
};

} // namespace

std::unique_ptr<Communicator> createLocalCommunicator(GroupRanks groups,
                                                      int rank) {
  return std::make_unique<LocalCommunicator>(std::move(groups), rank);
}

} // namespace galvatron::rt
