//===- NcclComm.cpp - the plan's collectives on NCCL ----------------------===//

#include "NcclComm.h"

#include "galvatron/runtime/PlanFile.h"

#include <algorithm>
#include <set>

namespace galvatron::rt::cuda {
namespace {

bool ncclTypeOf(DType dtype, ncclDataType_t &type) {
  switch (dtype) {
  case DType::F32:
    type = ncclFloat32;
    return true;
  case DType::BF16:
    type = ncclBfloat16;
    return true;
  case DType::F64:
    type = ncclFloat64;
    return true;
  case DType::I64:
    type = ncclInt64;
    return true;
  case DType::I32:
    type = ncclInt32;
    return true;
  case DType::Bool:
    type = ncclUint8;
    return true;
  }
  return false;
}

ncclRedOp_t ncclOpOf(Reduction kind) {
  switch (kind) {
  case Reduction::Mean:
    return ncclAvg;
  case Reduction::Max:
    return ncclMax;
  case Reduction::Min:
    return ncclMin;
  case Reduction::Prod:
    return ncclProd;
  default:
    return ncclSum;
  }
}

/// The group's first rank makes the id and hands it to the others.
bool shareId(Communicator &host, const std::vector<int> &ranks, int rank,
             ncclUniqueId &id, const std::string &what, std::string &error) {
  if (rank == ranks[0]) {
    if (ncclResult_t r = ncclGetUniqueId(&id))
      return error = what + ": ncclGetUniqueId: " + ncclGetErrorString(r),
             false;
    for (size_t k = 1; k < ranks.size(); ++k)
      if (!host.worldSend(ranks[k], &id, sizeof id, what, error))
        return false;
    return true;
  }
  return host.worldRecv(ranks[0], &id, sizeof id, what, error);
}

/// Every (group, sender position, receiver position) some rank's program
/// sends along, in one order all ranks agree on.
std::set<std::tuple<int, int, int>> channelsOf(const plan::Plan &plan,
                                               const GroupRanks &groups) {
  std::set<std::tuple<int, int, int>> channels;
  for (const plan::RankProgram *program : *plan.ranks())
    for (const plan::Instruction *inst : *program->instructions()) {
      if (inst->opcode() != plan::Opcode::Send || !inst->attrs_as_PeerAttrs())
        continue;
      int g = inst->attrs_as_PeerAttrs()->group();
      if (g < 0 || g >= static_cast<int>(groups.size()))
        continue;
      const std::vector<int> &ranks = groups[g];
      auto at = std::find(ranks.begin(), ranks.end(), program->rank());
      int peer = inst->attrs_as_PeerAttrs()->peer();
      int from = static_cast<int>(at - ranks.begin());
      if (at != ranks.end() && peer != from)
        channels.insert({g, from, peer});
    }
  return channels;
}

} // namespace

NcclComm::NcclComm(const plan::Plan &plan, int rank, cudaStream_t stream)
    : groups(planGroups(plan)), rank(rank), stream(stream),
      comms(groups.size(), nullptr) {}

NcclComm::~NcclComm() {
  if (sendStream) {
    cudaStreamSynchronize(sendStream);
    cudaStreamDestroy(sendStream);
  }
  for (ncclComm_t c : comms)
    if (c)
      ncclCommDestroy(c);
  for (auto &[key, c] : channels)
    ncclCommDestroy(c);
  for (auto &[group, queue] : selfMessages)
    for (auto [message, bytes] : queue)
      cudaFree(message);
  if (staged)
    cudaEventDestroy(staged);
}

std::unique_ptr<NcclComm> NcclComm::create(const plan::Plan &plan, int rank,
                                           Communicator &host,
                                           cudaStream_t stream,
                                           std::string &error) {
  std::unique_ptr<NcclComm> nccl(new NcclComm(plan, rank, stream));
  if (cudaError_t e =
          cudaStreamCreateWithFlags(&nccl->sendStream, cudaStreamNonBlocking))
    return error = std::string("cudaStreamCreate: ") + cudaGetErrorString(e),
           nullptr;
  if (cudaError_t e =
          cudaEventCreateWithFlags(&nccl->staged, cudaEventDisableTiming))
    return error = std::string("cudaEventCreate: ") + cudaGetErrorString(e),
           nullptr;
  // Groups in plan order: a rank inits a group only after the groups before
  // it, which every member also reached, so no init waits forever.
  for (size_t g = 0; g < nccl->groups.size(); ++g) {
    const std::vector<int> &ranks = nccl->groups[g];
    auto at = std::find(ranks.begin(), ranks.end(), rank);
    if (ranks.size() < 2 || at == ranks.end())
      continue;
    std::string what = "NCCL id of group [" + groupKey(ranks) + "]";
    ncclUniqueId id;
    if (!shareId(host, ranks, rank, id, what, error))
      return nullptr;
    if (ncclResult_t r =
            ncclCommInitRank(&nccl->comms[g], static_cast<int>(ranks.size()),
                             id, static_cast<int>(at - ranks.begin())))
      return error = what + ": ncclCommInitRank: " + ncclGetErrorString(r),
             nullptr;
  }
  for (auto [g, from, to] : channelsOf(plan, nccl->groups)) {
    const std::vector<int> &ranks = nccl->groups[g];
    std::vector<int> pair = {ranks[from], ranks[to]};
    if (rank != pair[0] && rank != pair[1])
      continue;
    std::string what = "NCCL id of the channel " + std::to_string(pair[0]) +
                       " -> " + std::to_string(pair[1]);
    ncclUniqueId id;
    if (!shareId(host, pair, rank, id, what, error))
      return nullptr;
    ncclComm_t channel;
    if (ncclResult_t r = ncclCommInitRank(&channel, 2, id, rank == pair[1]))
      return error = what + ": ncclCommInitRank: " + ncclGetErrorString(r),
             nullptr;
    nccl->channels[{g, from, to}] = channel;
    // NCCL connects a pair on its first message, and a send blocks the host
    // until the receiver connects: connect every channel now, in the order
    // all ranks agree on, so that no later send waits on a peer that is
    // itself blocked sending.
    void *byte = nullptr;
    cudaMalloc(&byte, 1);
    ncclResult_t r = rank == pair[0]
                         ? ncclSend(byte, 1, ncclUint8, 1, channel, stream)
                         : ncclRecv(byte, 1, ncclUint8, 0, channel, stream);
    cudaError_t e = cudaStreamSynchronize(stream);
    cudaFree(byte);
    if (r != ncclSuccess || e != cudaSuccess)
      return error = what + ": connecting: " +
                     (r != ncclSuccess ? ncclGetErrorString(r)
                                       : cudaGetErrorString(e)),
             nullptr;
  }
  return nccl;
}

bool NcclComm::member(int group, const char *op, int &size, int &position,
                      std::string &error) const {
  if (group < 0 || group >= static_cast<int>(groups.size()))
    return error = std::string(op) + " names group " + std::to_string(group) +
                   ", but there are " + std::to_string(groups.size()),
           false;
  const std::vector<int> &ranks = groups[group];
  auto at = std::find(ranks.begin(), ranks.end(), rank);
  if (at == ranks.end())
    return error = std::string(op) + " over group [" + groupKey(ranks) +
                   "] does not contain rank " + std::to_string(rank),
           false;
  size = static_cast<int>(ranks.size());
  position = static_cast<int>(at - ranks.begin());
  return true;
}

bool NcclComm::check(ncclResult_t result, const char *op, int group,
                     std::string &error) const {
  if (result == ncclSuccess)
    return true;
  error = std::string(op) + " over group [" + groupKey(groups[group]) +
          "]: " + ncclGetErrorString(result);
  return false;
}

void NcclComm::count(const char *op, int group, uint64_t bytes) {
  byteCounts[std::string(op) + ":" + groupKey(groups[group])] += bytes;
}

bool NcclComm::enter(const char *op, int group, const DeviceView &in, int &size,
                     ncclDataType_t &type, std::string &error) {
  int position;
  if (!member(group, op, size, position, error))
    return false;
  if (!ncclTypeOf(in.dtype, type))
    return error = std::string(op) + " cannot carry " + dtypeName(in.dtype) +
                   " tensors",
           false;
  count(op, group, in.byteSize());
  return true;
}

bool NcclComm::alone(const char *op, const DeviceView &in, DeviceView &out,
                     std::string &error) {
  if (cudaError_t e = copy(in, out, stream))
    return error = std::string(op) + ": " + cudaGetErrorString(e), false;
  return true;
}

std::map<std::string, uint64_t> NcclComm::takeByteCounts() {
  std::map<std::string, uint64_t> counts;
  counts.swap(byteCounts);
  return counts;
}

void *NcclComm::scratch(size_t bytes, std::string &error) {
  void *p = nullptr;
  if (cudaError_t e = cudaMallocAsync(&p, std::max<size_t>(bytes, 1), stream)) {
    error = std::string("cudaMallocAsync: ") + cudaGetErrorString(e);
    return nullptr;
  }
  return p;
}

bool NcclComm::allReduce(int group, Reduction kind, const DeviceView &in,
                         DeviceView &out, std::string &error) {
  int size;
  ncclDataType_t type;
  if (!enter("all_reduce", group, in, size, type, error))
    return false;
  if (size == 1)
    return alone("all_reduce", in, out, error);
  return check(ncclAllReduce(in.data, out.data, in.size(), type, ncclOpOf(kind),
                             comms[group], stream),
               "all_reduce", group, error);
}

bool NcclComm::allGather(int group, int64_t axis, const DeviceView &in,
                         DeviceView &out, std::string &error) {
  int size;
  ncclDataType_t type;
  if (!enter("all_gather", group, in, size, type, error))
    return false;
  if (axis < 0)
    axis += in.rank();
  if (size == 1)
    return alone("all_gather", in, out, error);
  if (axis == 0)
    return check(
        ncclAllGather(in.data, out.data, in.size(), type, comms[group], stream),
        "all_gather", group, error);
  // NCCL concatenates whole pieces; along another axis they interleave.
  char *gathered = static_cast<char *>(scratch(out.byteSize(), error));
  if (!gathered)
    return false;
  if (!check(ncclAllGather(in.data, gathered, in.size(), type, comms[group],
                           stream),
             "all_gather", group, error)) {
    cudaFreeAsync(gathered, stream);
    return false;
  }
  std::vector<DeviceView> pieces(size, in);
  for (int k = 0; k < size; ++k)
    pieces[k].data = gathered + k * in.byteSize();
  cudaError_t e = concat(pieces, axis, out, stream);
  cudaFreeAsync(gathered, stream);
  return e == cudaSuccess ||
         (error = std::string("all_gather: ") + cudaGetErrorString(e), false);
}

bool NcclComm::reduceScatter(int group, int64_t axis, const DeviceView &in,
                             DeviceView &out, std::string &error) {
  int size;
  ncclDataType_t type;
  if (!enter("reduce_scatter", group, in, size, type, error))
    return false;
  if (axis < 0)
    axis += in.rank();
  if (size == 1)
    return alone("reduce_scatter", in, out, error);
  if (axis == 0)
    return check(ncclReduceScatter(in.data, out.data, out.size(), type, ncclSum,
                                   comms[group], stream),
                 "reduce_scatter", group, error);
  // Each rank's piece made contiguous first.
  char *pieces = static_cast<char *>(scratch(in.byteSize(), error));
  if (!pieces)
    return false;
  std::vector<DeviceView> parts(size, out);
  for (int k = 0; k < size; ++k)
    parts[k].data = pieces + k * out.byteSize();
  if (cudaError_t e = split(in, axis, parts, stream)) {
    cudaFreeAsync(pieces, stream);
    return error = std::string("reduce_scatter: ") + cudaGetErrorString(e),
           false;
  }
  bool ok = check(ncclReduceScatter(pieces, out.data, out.size(), type, ncclSum,
                                    comms[group], stream),
                  "reduce_scatter", group, error);
  cudaFreeAsync(pieces, stream);
  return ok;
}

bool NcclComm::allToAll(int group, int64_t splitAxis, int64_t concatAxis,
                        const DeviceView &in, DeviceView &out,
                        std::string &error) {
  int size;
  ncclDataType_t type;
  if (!enter("all_to_all", group, in, size, type, error))
    return false;
  if (splitAxis < 0)
    splitAxis += in.rank();
  if (concatAxis < 0)
    concatAxis += in.rank();
  if (in.shape[splitAxis] % size != 0)
    return error = "all_to_all: split axis " + std::to_string(splitAxis) +
                   " of " + shapeString(in.shape) + " does not divide among " +
                   std::to_string(size) + " ranks",
           false;
  DeviceView piece = in;
  piece.shape[splitAxis] /= size;
  size_t bytes = piece.byteSize();
  char *sent = static_cast<char *>(scratch(2 * bytes * size, error));
  if (!sent)
    return false;
  char *received = sent + bytes * size;
  std::vector<DeviceView> outgoing(size, piece), incoming(size, piece);
  for (int k = 0; k < size; ++k) {
    outgoing[k].data = sent + k * bytes;
    incoming[k].data = received + k * bytes;
  }
  bool ok = split(in, splitAxis, outgoing, stream) == cudaSuccess;
  if (ok && size == 1)
    ok = copy(outgoing[0], incoming[0], stream) == cudaSuccess;
  else if (ok) {
    ncclGroupStart();
    for (int k = 0; k < size; ++k) {
      ncclSend(outgoing[k].data, piece.size(), type, k, comms[group], stream);
      ncclRecv(incoming[k].data, piece.size(), type, k, comms[group], stream);
    }
    ok = check(ncclGroupEnd(), "all_to_all", group, error);
  }
  ok = ok && concat(incoming, concatAxis, out, stream) == cudaSuccess;
  cudaFreeAsync(sent, stream);
  if (!ok && error.empty())
    error = "all_to_all: rearranging the pieces failed";
  return ok;
}

bool NcclComm::broadcast(int group, int root, const DeviceView &in,
                         DeviceView &out, std::string &error) {
  int size;
  ncclDataType_t type;
  if (!enter("broadcast", group, in, size, type, error))
    return false;
  if (size == 1)
    return alone("all_to_all", in, out, error);
  return check(ncclBroadcast(in.data, out.data, in.size(), type, root,
                             comms[group], stream),
               "broadcast", group, error);
}

bool NcclComm::send(int group, int peer, const DeviceView &in,
                    std::string &error) {
  int size, position;
  if (!member(group, "send", size, position, error))
    return false;
  count("send", group, in.byteSize());
  // The staging copy frees the arena slot at once: the memory planner may
  // reuse it before the receiver has taken the message.
  void *staging = scratch(in.byteSize(), error);
  if (!staging || cudaMemcpyAsync(staging, in.data, in.byteSize(),
                                  cudaMemcpyDeviceToDevice, stream))
    return error.empty() ? (error = "send: staging copy failed", false) : false;
  if (peer == position) {
    selfMessages[group].push_back({staging, in.byteSize()});
    return true;
  }
  auto channel = channels.find({group, position, peer});
  if (channel == channels.end())
    return error = "send to a peer no channel was made for", false;
  cudaEventRecord(staged, stream);
  cudaStreamWaitEvent(sendStream, staged, 0);
  bool ok = check(ncclSend(staging, in.byteSize(), ncclUint8, 1,
                           channel->second, sendStream),
                  "send", group, error);
  cudaFreeAsync(staging, sendStream);
  return ok;
}

bool NcclComm::recv(int group, int peer, DeviceView &out, std::string &error) {
  int size, position;
  if (!member(group, "recv", size, position, error))
    return false;
  count("recv", group, 0);
  if (peer == position) {
    auto &queue = selfMessages[group];
    if (queue.empty())
      return error = "recv from this rank itself with no send before it", false;
    auto [message, bytes] = queue.front();
    queue.pop_front();
    if (bytes != out.byteSize()) {
      cudaFreeAsync(message, stream);
      return error = "recv from this rank itself: " + std::to_string(bytes) +
                     " bytes sent, " + std::to_string(out.byteSize()) +
                     " expected",
             false;
    }
    cudaMemcpyAsync(out.data, message, out.byteSize(), cudaMemcpyDeviceToDevice,
                    stream);
    cudaFreeAsync(message, stream);
    return true;
  }
  auto channel = channels.find({group, peer, position});
  if (channel == channels.end())
    return error = "recv from a peer that never sends here", false;
  return check(
      ncclRecv(out.data, out.byteSize(), ncclUint8, 0, channel->second, stream),
      "recv", group, error);
}

bool NcclComm::flush(std::string &error) {
  for (cudaStream_t s : {sendStream, stream})
    if (cudaError_t e = cudaStreamSynchronize(s))
      return error = std::string("waiting for the device: ") +
                     cudaGetErrorString(e),
             false;
  return true;
}

} // namespace galvatron::rt::cuda
