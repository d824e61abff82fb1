//===- Comm.h - collectives over the plan's device groups -------*- C++ -*-===//
//
// A Communicator carries the plan's communication instructions. Groups are
// indices into Plan.groups; a rank's position in the group's rank list
// orders the pieces (plan.fbs states the semantics). The base class does the
// tensor-level work shared by every implementation (shape checks, packing a
// non-leading axis into contiguous per-rank pieces and back, byte counts);
// an implementation moves contiguous buffers. Two exist: the single-process
// one (world size 1: every group is one rank and every collective the
// identity) and MPI (MpiComm.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_COMM_H
#define GALVATRON_RUNTIME_COMM_H

#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Tensor.h"
#include "galvatron/runtime/plan_generated.h"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace galvatron::rt {

using GroupRanks = std::vector<std::vector<int>>;

/// The rank lists of `plan`'s device groups, in order.
GroupRanks planGroups(const plan::Plan &plan);

/// "0,1": how a group is named in byte-count keys.
std::string groupKey(const std::vector<int> &ranks);

class Communicator {
public:
  Communicator(GroupRanks groups, int rank, int worldSize);
  virtual ~Communicator();

  int rank() const { return worldRank; }
  int size() const { return worldSize; }
  const GroupRanks &groups() const { return groupRanks; }

  // Plan collectives. Each returns false with `error` for what the caller
  // got wrong (a group this rank is not in, a shape the group does not
  // divide); an implementation that cannot finish (a peer that never
  // answers) ends the job instead.
  bool allReduce(int group, Reduction kind, const TensorView &in, Tensor &out,
                 std::string &error);
  /// Pieces concatenated along `axis` in the group's rank order.
  bool allGather(int group, int64_t axis, const TensorView &in, Tensor &out,
                 std::string &error);
  /// Sums, then keeps the k-th of group-size pieces along `axis` on the
  /// group's k-th rank.
  bool reduceScatter(int group, int64_t axis, const TensorView &in, Tensor &out,
                     std::string &error);
  /// Splits along `splitAxis` into group-size pieces, sends piece k to the
  /// k-th rank, concatenates what arrives along `concatAxis`.
  bool allToAll(int group, int64_t splitAxis, int64_t concatAxis,
                const TensorView &in, Tensor &out, std::string &error);
  /// `root` is a position in the group; `out` gets the root's `in`.
  bool broadcast(int group, int root, const TensorView &in, Tensor &out,
                 std::string &error);
  /// `peer` is a position in the group. A send returns once its bytes are
  /// handed over (it may still be in flight: flush() completes it).
  bool send(int group, int peer, const TensorView &in, std::string &error);
  /// `out` arrives with the dtype and shape it was given.
  bool recv(int group, int peer, Tensor &out, std::string &error);
  /// Completes every send still in flight.
  virtual bool flush(std::string &error) = 0;

  // Whole-job operations over world ranks, outside the plan's groups: used
  // to consolidate checkpoints and to agree on a trace clock. `what` names
  // the transfer in a timeout message.
  virtual bool worldSend(int to, const void *data, size_t bytes,
                         const std::string &what, std::string &error) = 0;
  virtual bool worldRecv(int from, void *data, size_t bytes,
                         const std::string &what, std::string &error) = 0;
  virtual bool worldBroadcast(void *data, size_t bytes, int root,
                              const std::string &what, std::string &error) = 0;
  virtual bool worldBarrier(const std::string &what, std::string &error) = 0;

  /// Bytes this rank handed to each collective since the last call (the
  /// input tensor's size; a send's tensor; 0 for a receive), keyed
  /// "all_reduce:0,1" (the op and the group's world ranks in list order).
  std::map<std::string, uint64_t> takeByteCounts();

protected:
  /// What a timeout message calls an operation: "all_reduce over group
  /// [0,1]".
  std::string describe(const char *op, int group) const;

  // Contiguous buffers over a group of at least two ranks; `position` and
  // `root` are positions in the group.
  virtual bool rawAllReduce(int group, void *data, int64_t count, DType dtype,
                            Reduction kind, std::string &error) = 0;
  /// `out` holds group-size pieces of `bytesEach`, in position order.
  virtual bool rawAllGather(int group, const void *in, void *out,
                            size_t bytesEach, std::string &error) = 0;
  /// Sums `in` (group-size pieces of `countEach` elements) and leaves piece
  /// k on position k.
  virtual bool rawReduceScatter(int group, const void *in, void *out,
                                int64_t countEach, DType dtype,
                                std::string &error) = 0;
  virtual bool rawAllToAll(int group, const void *in, void *out,
                           size_t bytesEach, std::string &error) = 0;
  virtual bool rawBroadcast(int group, void *data, size_t bytes, int root,
                            std::string &error) = 0;
  /// Takes the bytes over: the caller's tensor may change at once.
  virtual bool rawSend(int group, int peer, Bytes data, std::string &error) = 0;
  virtual bool rawRecv(int group, int peer, void *data, size_t bytes,
                       std::string &error) = 0;

private:
  /// Checks that `group` exists and holds this rank; sets its size and this
  /// rank's position.
  bool member(int group, const char *op, int &count, int &position,
              std::string &error) const;
  /// member(), and `other` (the `role`: root, peer) is a position in it.
  bool memberWith(int group, const char *op, const char *role, int other,
                  int &count, int &position, std::string &error) const;
  void count(const char *op, int group, uint64_t bytes);

  GroupRanks groupRanks;
  int worldRank, worldSize;
  std::map<std::string, uint64_t> byteCounts;
  /// Sends to oneself in a group of one rank, waiting for their receive.
  std::map<int, std::deque<Bytes>> selfMessages;
};

/// One process: groups of one rank (the identity) work, larger groups fail
/// naming the instruction, and whole-job operations have nobody to talk to.
/// `rank` is the plan rank this process runs (0 unless it runs one rank of a
/// larger plan alone, for debugging).
std::unique_ptr<Communicator> createLocalCommunicator(GroupRanks groups,
                                                      int rank = 0);

/// MPI: the runtime's process-wide MPI state. Built without MPI, init()
/// leaves the process single-process and createCommunicator() fails.
namespace mpi {

/// Whether this runtime was built with MPI.
bool available();
/// Starts MPI when an MPI launcher (mpirun, srun) started this process, so
/// that a plain `galvatron-run` stays a single process and starts fast.
/// False with `error` when launched by one but built without MPI. A process
/// that already called MPI_Init keeps its MPI (init() adopts it).
bool init(int *argc, char ***argv, std::string &error);
/// Whether init() started MPI (and finalize() has not run).
bool active();
int worldRank();
int worldSize();
/// Ranks of this job on this machine (1 without MPI).
int localSize();
/// Ends MPI cleanly; every rank must call it.
void finalize();
/// Ends the whole job at once with `code` (exits when MPI is not active).
[[noreturn]] void abortJob(int code);

/// From this size (bytes handed over) on, a collective runs as MPI's
/// blocking call, which polls; a smaller one is nonblocking and sleeps
/// between polls when the machine's ranks outnumber its cores.
constexpr uint64_t kBlockingCollectiveBytes = 64 * 1024;

struct Options {
  /// How long one operation may wait for its peers before the job ends.
  double timeoutSeconds = 120;
  /// Names the program in the timeout message.
  std::string program = "galvatron-run";
};

/// One MPI communicator per distinct group holding this rank, made once
/// (collective over MPI_COMM_WORLD's ranks: every rank must call it with the
/// same groups). Null with `error` when MPI is not active.
std::unique_ptr<Communicator> createCommunicator(GroupRanks groups,
                                                 const Options &options,
                                                 std::string &error);

} // namespace mpi

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_COMM_H
