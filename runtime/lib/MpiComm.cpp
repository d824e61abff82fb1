//===- MpiComm.cpp - the MPI communicator ---------------------------------===//
//
// One MPI communicator per distinct group holding this rank, made once with
// MPI_Comm_create_group (collective only over the group's members, so ranks
// outside a group never wait for it); MPI orders its ranks as the plan's
// rank list does, so a rank's MPI rank is its position in the group.
//
// Every operation is nonblocking and polled against a deadline: a peer that
// died or took another branch ends the job with a message naming the rank,
// the operation and the group, instead of hanging it. Sends hand their bytes
// over and return; flush() completes them, so two ranks that both send
// before they receive cannot deadlock.
//
// Built without MPI, only the process-wide functions exist, and they keep
// the process single.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Comm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#ifdef GALVATRON_HAVE_MPI
#include <mpi.h>

#include <chrono>
#include <climits>
#include <list>
#include <thread>
#endif

namespace galvatron::rt::mpi {

namespace {
bool started = false;
int rank = 0, size = 1, local = 1;

/// Set by the launchers this runtime knows: Open MPI, PMIx and PMI (MPICH's
/// hydra, Slurm). GALVATRON_MPI=1 forces MPI on.
const char *launcherSize() {
  for (const char *name :
       {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "GALVATRON_MPI"})
    if (const char *value = std::getenv(name))
      return value;
  if (std::getenv("PMIX_RANK") || std::getenv("PMI_RANK"))
    return "?";
  return nullptr;
}
} // namespace

bool active() { return started; }
int worldRank() { return rank; }
int worldSize() { return size; }
int localSize() { return local; }

#ifdef GALVATRON_HAVE_MPI

bool available() { return true; }

bool init(int *argc, char ***argv, std::string &error) {
  if (started || !launcherSize())
    return true;
  // A tool that started MPI itself (galvatron-profile) hands it over.
  int already = 0;
  MPI_Initialized(&already);
  if (!already && MPI_Init(argc, argv) != MPI_SUCCESS)
    return error = "MPI_Init failed", false;
  started = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm node;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank,
                          MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
  }
  return true;
}

void finalize() {
  int finalized = 0;
  if (started && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized)
    MPI_Finalize();
  started = false;
}

void abortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (started)
    MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

namespace {

MPI_Datatype mpiType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return MPI_FLOAT;
  case DType::F64:
    return MPI_DOUBLE;
  case DType::I64:
    return MPI_INT64_T;
  case DType::I32:
    return MPI_INT32_T;
  case DType::Bool:
    return MPI_BYTE;
  case DType::BF16:
    return MPI_UINT16_T;
  }
  return MPI_BYTE;
}

/// MPI has no bfloat16: its reductions widen each pair to fp32, combine and
/// round (as NCCL's bf16 reductions do per step).
template <Reduction Kind>
void combineBf16(void *in, void *inout, int *count, MPI_Datatype *) {
  const auto *a = static_cast<const uint16_t *>(in);
  auto *b = static_cast<uint16_t *>(inout);
  for (int i = 0; i < *count; ++i) {
    float x = bf16ToFloat(a[i]), y = bf16ToFloat(b[i]);
    float r = Kind == Reduction::Max    ? std::max(x, y)
              : Kind == Reduction::Min  ? std::min(x, y)
              : Kind == Reduction::Prod ? x * y
                                        : x + y;
    b[i] = floatToBf16(r);
  }
}

MPI_Op createOp(MPI_User_function *combine) {
  MPI_Op op;
  MPI_Op_create(combine, /*commute=*/1, &op);
  return op;
}

MPI_Op mpiOp(Reduction kind, DType dtype) {
  if (dtype == DType::BF16) {
    // Made once, after MPI_Init (the first reduction comes after it).
    static const MPI_Op ops[] = {createOp(combineBf16<Reduction::Sum>),
                                 createOp(combineBf16<Reduction::Max>),
                                 createOp(combineBf16<Reduction::Min>),
                                 createOp(combineBf16<Reduction::Prod>)};
    return ops[kind == Reduction::Max    ? 1
               : kind == Reduction::Min  ? 2
               : kind == Reduction::Prod ? 3
                                         : 0];
  }
  switch (kind) {
  case Reduction::Max:
    return MPI_MAX;
  case Reduction::Min:
    return MPI_MIN;
  case Reduction::Prod:
    return MPI_PROD;
  default:
    return MPI_SUM;
  }
}

/// MPI counts are ints; larger transfers go in pieces of this many bytes.
constexpr size_t kWorldChunk = size_t(1) << 30;

class MpiCommunicator final : public Communicator {
public:
  MpiCommunicator(GroupRanks groups, const Options &options)
      : Communicator(std::move(groups), mpi::worldRank(), mpi::worldSize()),
        options(options), comms(this->groups().size(), MPI_COMM_NULL) {}

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
      return;
    std::string ignored;
    flush(ignored);
    for (MPI_Comm &comm : owned)
      MPI_Comm_free(&comm);
    if (world != MPI_COMM_NULL)
      MPI_Comm_free(&world);
  }

  bool setUp(std::string &error) {
    // Every rank arrives first, under the timeout: the communicator calls
    // below block and cannot time out, but with all ranks present they
    // return at once.
    MPI_Request arrived;
    MPI_Ibarrier(MPI_COMM_WORLD, &arrived);
    wait(arrived, "start-up (every rank reading its plan and weights)");
    // Whole-job traffic gets its own communicator, so it can never match a
    // plan send.
    MPI_Comm_dup(MPI_COMM_WORLD, &world);
    MPI_Group worldGroup;
    MPI_Comm_group(MPI_COMM_WORLD, &worldGroup);
    std::map<std::vector<int>, MPI_Comm> made;
    for (size_t g = 0; g < groups().size(); ++g) {
      const std::vector<int> &ranks = groups()[g];
      for (int r : ranks)
        if (r < 0 || r >= size())
          return error = "group " + std::to_string(g) + " [" + groupKey(ranks) +
                         "] names rank " + std::to_string(r) +
                         ", but the job has " + std::to_string(size()),
                 false;
      if (ranks.size() < 2 ||
          std::find(ranks.begin(), ranks.end(), rank()) == ranks.end())
        continue;
      auto it = made.find(ranks);
      if (it != made.end()) {
        comms[g] = it->second;
        continue;
      }
      // Every member walks the groups in the same order and tags a group
      // by its first index, so the members' calls pair up.
      MPI_Group group;
      MPI_Group_incl(worldGroup, static_cast<int>(ranks.size()), ranks.data(),
                     &group);
      MPI_Comm comm;
      MPI_Comm_create_group(MPI_COMM_WORLD, group, static_cast<int>(g % 32768),
                            &comm);
      MPI_Group_free(&group);
      made[ranks] = comm;
      owned.push_back(comm);
      comms[g] = comm;
    }
    MPI_Group_free(&worldGroup);
    return true;
  }

  bool flush(std::string &error) override {
    while (!pending.empty()) {
      wait(pending.front().request, pending.front().what);
      pending.pop_front();
    }
    return true;
  }

  bool worldSend(int to, const void *data, size_t bytes,
                 const std::string &what, std::string &error) override {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    size_t done = 0;
    do {
      size_t n = std::min(kWorldChunk, bytes - done);
      MPI_Request request;
      MPI_Isend(p + done, static_cast<int>(n), MPI_BYTE, to, 1, world,
                &request);
      wait(request, what);
      done += n;
    } while (done < bytes);
    return true;
  }

  bool worldRecv(int from, void *data, size_t bytes, const std::string &what,
                 std::string &error) override {
    uint8_t *p = static_cast<uint8_t *>(data);
    size_t done = 0;
    do {
      size_t n = std::min(kWorldChunk, bytes - done);
      MPI_Request request;
      MPI_Irecv(p + done, static_cast<int>(n), MPI_BYTE, from, 1, world,
                &request);
      if (!waitCount(request, static_cast<int>(n), what, error))
        return false;
      done += n;
    } while (done < bytes);
    return true;
  }

  bool worldBroadcast(void *data, size_t bytes, int root,
                      const std::string &what, std::string &error) override {
    if (bytes > INT_MAX)
      return error = what + ": " + std::to_string(bytes) +
                     " bytes are too many for one broadcast",
             false;
    MPI_Request request;
    MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, world, &request);
    wait(request, what);
    return true;
  }

  bool worldBarrier(const std::string &what, std::string &error) override {
    MPI_Request request;
    MPI_Ibarrier(world, &request);
    wait(request, what);
    return true;
  }

protected:
  bool rawAllReduce(int group, void *data, int64_t count, DType dtype,
                    Reduction kind, std::string &error) override {
    const char *op = "all_reduce";
    if (!fits(op, group, count, error))
      return false;
    int n = static_cast<int>(count);
    collective(
        group, op, count * dtypeSize(dtype),
        [&](MPI_Request *r) {
          MPI_Iallreduce(MPI_IN_PLACE, data, n, mpiType(dtype),
                         mpiOp(kind, dtype), comms[group], r);
        },
        [&] {
          MPI_Allreduce(MPI_IN_PLACE, data, n, mpiType(dtype),
                        mpiOp(kind, dtype), comms[group]);
        });
    return true;
  }

  bool rawAllGather(int group, const void *in, void *out, size_t bytesEach,
                    std::string &error) override {
    const char *op = "all_gather";
    size_t total = bytesEach * groups()[group].size();
    if (!fits(op, group, total, error))
      return false;
    int n = static_cast<int>(bytesEach);
    collective(
        group, op, total,
        [&](MPI_Request *r) {
          MPI_Iallgather(in, n, MPI_BYTE, out, n, MPI_BYTE, comms[group], r);
        },
        [&] {
          MPI_Allgather(in, n, MPI_BYTE, out, n, MPI_BYTE, comms[group]);
        });
    return true;
  }

  bool rawReduceScatter(int group, const void *in, void *out, int64_t countEach,
                        DType dtype, std::string &error) override {
    const char *op = "reduce_scatter";
    int64_t total = countEach * int64_t(groups()[group].size());
    if (!fits(op, group, total, error))
      return false;
    int n = static_cast<int>(countEach);
    collective(
        group, op, total * dtypeSize(dtype),
        [&](MPI_Request *r) {
          MPI_Ireduce_scatter_block(in, out, n, mpiType(dtype),
                                    mpiOp(Reduction::Sum, dtype), comms[group],
                                    r);
        },
        [&] {
          MPI_Reduce_scatter_block(in, out, n, mpiType(dtype),
                                   mpiOp(Reduction::Sum, dtype), comms[group]);
        });
    return true;
  }

  bool rawAllToAll(int group, const void *in, void *out, size_t bytesEach,
                   std::string &error) override {
    const char *op = "all_to_all";
    size_t total = bytesEach * groups()[group].size();
    if (!fits(op, group, total, error))
      return false;
    int n = static_cast<int>(bytesEach);
    collective(
        group, op, total,
        [&](MPI_Request *r) {
          MPI_Ialltoall(in, n, MPI_BYTE, out, n, MPI_BYTE, comms[group], r);
        },
        [&] { MPI_Alltoall(in, n, MPI_BYTE, out, n, MPI_BYTE, comms[group]); });
    return true;
  }

  bool rawBroadcast(int group, void *data, size_t bytes, int root,
                    std::string &error) override {
    const char *op = "broadcast";
    if (!fits(op, group, bytes, error))
      return false;
    int n = static_cast<int>(bytes);
    collective(
        group, op, bytes,
        [&](MPI_Request *r) {
          MPI_Ibcast(data, n, MPI_BYTE, root, comms[group], r);
        },
        [&] { MPI_Bcast(data, n, MPI_BYTE, root, comms[group]); });
    return true;
  }

  bool rawSend(int group, int peer, Bytes data, std::string &error) override {
    const char *op = "send";
    if (!fits(op, group, data.size(), error))
      return false;
    // The list keeps each buffer where MPI was told it is until it is sent.
    pending.push_back({std::move(data), MPI_REQUEST_NULL,
                       describe(op, group) + " to rank " +
                           std::to_string(groups()[group][peer])});
    Pending &p = pending.back();
    MPI_Isend(p.data.data(), static_cast<int>(p.data.size()), MPI_BYTE, peer, 0,
              comms[group], &p.request);
    // Retire sends that are done, so a long program does not pile them up.
    while (!pending.empty()) {
      int done = 0;
      MPI_Test(&pending.front().request, &done, MPI_STATUS_IGNORE);
      if (!done)
        break;
      pending.pop_front();
    }
    return true;
  }

  bool rawRecv(int group, int peer, void *data, size_t bytes,
               std::string &error) override {
    const char *op = "recv";
    if (!fits(op, group, bytes, error))
      return false;
    MPI_Request request;
    MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, 0, comms[group],
              &request);
    return waitCount(request, static_cast<int>(bytes),
                     describe(op, group) + " from rank " +
                         std::to_string(groups()[group][peer]),
                     error);
  }

private:
  struct Pending {
    Bytes data;
    MPI_Request request;
    std::string what;
  };

  bool fits(const char *op, int group, uint64_t count, std::string &error) {
    if (count <= INT_MAX)
      return true;
    error = describe(op, group) + ": " + std::to_string(count) +
            " elements are too many for one MPI call";
    return false;
  }

  /// From this size on a collective runs as MPI's blocking call: Open MPI's
  /// nonblocking collectives (libnbc) moved 256 KB-4 MB 4.7-6.7x slower
  /// than its blocking ones on two ranks of one machine.
  static constexpr uint64_t kBlockingBytes = kBlockingCollectiveBytes;
  /// An oversubscribed rank's wait: polls before it sleeps, and its first
  /// and longest sleep (us).
  static constexpr long kSpinPolls = 100;
  static constexpr std::chrono::microseconds kFirstPause{5}, kMaxPause{100};

  /// Runs one collective of `bytes` on `group`: a small one as the
  /// nonblocking call `start` polled to completion; a large one as the
  /// blocking call `blocking`, once an MPI_Ibarrier polled the same way has
  /// shown that every rank of the group reached it, so that a rank that
  /// never arrives still ends the job after --comm-timeout instead of
  /// hanging it.
  template <typename Start, typename Blocking>
  void collective(int group, const char *op, uint64_t bytes, Start start,
                  Blocking blocking) {
    MPI_Request request;
    if (bytes < kBlockingBytes) {
      start(&request);
      wait(request, describe(op, group));
      return;
    }
    MPI_Ibarrier(comms[group], &request);
    wait(request, describe(op, group));
    blocking();
  }

  /// Polls `request` until it completes or the deadline passes. A
  /// nonblocking collective progresses only while it is polled, so a rank
  /// with a core of its own polls without pause. Ranks that outnumber the
  /// machine's cores spin briefly (small collectives finish in
  /// microseconds) and then sleep between polls, a little longer each time
  /// up to kMaxPause: a rank that only yielded would stay runnable, and the
  /// scheduler would never hand its core to a rank that computes (two ranks
  /// of a stage that shared a core idled the other one: np 4 pp=2 tp=2 on
  /// two cores took 122-129 ms a step or 82, by where the ranks landed;
  /// 73-84 with sleeps). A wait of seconds (a stalled peer) sleeps 100 us
  /// a poll.
  void wait(MPI_Request &request, const std::string &what,
            MPI_Status *status = MPI_STATUS_IGNORE) {
    using Clock = std::chrono::steady_clock;
    auto start = Clock::now();
    auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(options.timeoutSeconds));
    static const bool oversubscribed =
        localSize() > int(std::max(1u, std::thread::hardware_concurrency()));
    bool stalled = false;
    std::chrono::microseconds pause = kFirstPause;
    for (long spin = 0;; ++spin) {
      int done = 0;
      MPI_Test(&request, &done, status);
      if (done)
        return;
      if ((spin & 1023) == 0) {
        auto now = Clock::now();
        if (now > deadline)
          timedOut(what);
        stalled = now - start > std::chrono::seconds(1);
      }
      if (stalled) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      } else if (oversubscribed && spin > kSpinPolls) {
        std::this_thread::sleep_for(pause);
        pause = std::min(2 * pause, kMaxPause);
      }
    }
  }

  bool waitCount(MPI_Request &request, int want, const std::string &what,
                 std::string &error) {
    MPI_Status status;
    wait(request, what, &status);
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    if (got != want)
      return error = what + ": received " + std::to_string(got) +
                     " bytes, expected " + std::to_string(want),
             false;
    return true;
  }

  [[noreturn]] void timedOut(const std::string &what) {
    std::fprintf(stderr, "%s: error: rank %d: %s got no answer within %g s\n",
                 options.program.c_str(), rank(), what.c_str(),
                 options.timeoutSeconds);
    abortJob(1);
  }

  Options options;
  /// Per plan group: its communicator, or MPI_COMM_NULL when this rank is
  /// not in it or it is one rank.
  std::vector<MPI_Comm> comms;
  std::vector<MPI_Comm> owned;
  MPI_Comm world = MPI_COMM_NULL;
  std::list<Pending> pending;
};

} // namespace

std::unique_ptr<Communicator> createCommunicator(GroupRanks groups,
                                                 const Options &options,
                                                 std::string &error) {
  if (!started)
    return error = "MPI is not running (start galvatron-run under mpirun)",
           nullptr;
  auto comm = std::make_unique<MpiCommunicator>(std::move(groups), options);
  if (!comm->setUp(error))
    return nullptr;
  return comm;
}

#else // !GALVATRON_HAVE_MPI

bool available() { return false; }

bool init(int *, char ***, std::string &error) {
  const char *launched = launcherSize();
  if (launched && std::string(launched) != "1")
    return error = "started by an MPI launcher, but this galvatron-run was "
                   "built without MPI (install libopenmpi-dev and rebuild)",
           false;
  return true;
}

void finalize() {}

void abortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(code);
}

std::unique_ptr<Communicator> createCommunicator(GroupRanks, const Options &,
                                                 std::string &error) {
  return error = "this runtime was built without MPI", nullptr;
}

#endif // GALVATRON_HAVE_MPI

} // namespace galvatron::rt::mpi
