//===- NcclComm.h - the plan's collectives on NCCL --------------*- C++ -*-===//
//
// One NCCL communicator per device group this rank belongs to, made once
// when the backend starts (the group's first rank makes the unique id and
// sends it over MPI), and one two-rank channel per (sender, receiver) pair
// the plan's sends use, so that each channel carries one direction: sends
// leave from a staging copy on their own stream and never wait behind this
// rank's receives.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_CUDA_NCCLCOMM_H
#define GALVATRON_RUNTIME_CUDA_NCCLCOMM_H

#include "DeviceKernels.h"

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/plan_generated.h"

#include <nccl.h>

#include <deque>
#include <map>
#include <memory>
#include <string>

namespace galvatron::rt::cuda {

class NcclComm {
public:
  /// Makes the communicators `plan` needs on this rank; the host
  /// communicator carries the unique ids (every rank calls this at once).
  static std::unique_ptr<NcclComm> create(const plan::Plan &plan, int rank,
                                          Communicator &host,
                                          cudaStream_t stream,
                                          std::string &error);
  ~NcclComm();

  bool allReduce(int group, Reduction kind, const DeviceView &in,
                 DeviceView &out, std::string &error);
  bool allGather(int group, int64_t axis, const DeviceView &in, DeviceView &out,
                 std::string &error);
  bool reduceScatter(int group, int64_t axis, const DeviceView &in,
                     DeviceView &out, std::string &error);
  bool allToAll(int group, int64_t splitAxis, int64_t concatAxis,
                const DeviceView &in, DeviceView &out, std::string &error);
  bool broadcast(int group, int root, const DeviceView &in, DeviceView &out,
                 std::string &error);
  bool send(int group, int peer, const DeviceView &in, std::string &error);
  bool recv(int group, int peer, DeviceView &out, std::string &error);
  /// Waits for sends in flight; the counts of bytes per collective and
  /// group (as the CPU communicator keys them) since the last call.
  bool flush(std::string &error);
  std::map<std::string, uint64_t> takeByteCounts();

private:
  NcclComm(const plan::Plan &plan, int rank, cudaStream_t stream);
  bool member(int group, const char *op, int &size, int &position,
              std::string &error) const;
  /// A collective's start: this rank's group size and the NCCL type of
  /// `in`, its bytes counted; false with the reason.
  bool enter(const char *op, int group, const DeviceView &in, int &size,
             ncclDataType_t &type, std::string &error);
  /// A group of one: the result is the input.
  bool alone(const char *op, const DeviceView &in, DeviceView &out,
             std::string &error);
  bool check(ncclResult_t result, const char *op, int group,
             std::string &error) const;
  void count(const char *op, int group, uint64_t bytes);
  /// A scratch buffer on the stream, freed when the stream passes `free`.
  void *scratch(size_t bytes, std::string &error);

  GroupRanks groups;
  int rank;
  cudaStream_t stream, sendStream = nullptr;
  /// Per group: this rank's communicator (null when not a member or alone).
  std::vector<ncclComm_t> comms;
  /// Two-rank channels by (group, sender position, receiver position).
  std::map<std::tuple<int, int, int>, ncclComm_t> channels;
  /// Sends to this rank itself (staged copies and their sizes), received
  /// later in order.
  std::map<int, std::deque<std::pair<void *, size_t>>> selfMessages;
  /// Recorded after each send's staging copy, for the send stream.
  cudaEvent_t staged = nullptr;
  std::map<std::string, uint64_t> byteCounts;
};

} // namespace galvatron::rt::cuda

#endif // GALVATRON_RUNTIME_CUDA_NCCLCOMM_H
