//===- CudaBackend.cpp - run a rank's program on one CUDA device ----------===//
//
// The device holds what the CPU executor holds in host memory: one arena of
// the plan's size (plain cudaMalloc, no managed memory), the plan's
// constants, the weights, and the training state, uploaded once and kept:
// each run uploads only the data inputs, runs the computations on one
// stream (kernels in DeviceKernels.h, products through cuBLASLt) and the
// collectives on another (NCCL), copies each fed-back output into its state
// input on the device and downloads the other outputs.
//
// A collective overlaps the computations after it until one of them reads
// its result or writes memory it reads or writes (the memory planner reuses
// a buffer once its last reader is issued): that computation waits for it.
// So gradient all-reduces run beside the rest of the backward pass and a
// ZeRO-3 gather beside the layer before, as far as the schedule allows.
//
//===----------------------------------------------------------------------===//

#include "Dispatch.h"
#include "NcclComm.h"

#include "galvatron/runtime/Backend.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Shard.h"

#include <cstdlib>
#include <cstring>
#include <set>

namespace galvatron::rt {
namespace {

using cuda::DeviceView;

/// Device memory owned by the backend.
struct DeviceBuffer {
  void *data = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() {
    if (data)
      cudaFree(data);
  }
  cudaError_t allocate(size_t n) {
    bytes = n;
    // Never empty: an empty tensor's view still points somewhere.
    return cudaMalloc(&data, std::max<size_t>(n, 256));
  }
};

/// The bytes a view covers.
std::pair<const char *, const char *> rangeOf(const DeviceView &v) {
  const char *begin = static_cast<const char *>(v.data);
  return {begin, begin + v.byteSize()};
}

std::string cudaWhy(const std::string &what, cudaError_t e) {
  return what + ": " + cudaGetErrorString(e);
}

/// The device this process drives: its rank on the node (as Open MPI,
/// Slurm or torchrun say) modulo the devices.
int localDevice(int count) {
  for (const char *name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                           "MPI_LOCALRANKID", "LOCAL_RANK"})
    if (const char *v = std::getenv(name))
      return std::atoi(v) % count;
  return 0;
}

class CudaBackend final : public Backend {
public:
  CudaBackend(Communicator *host, int device) : host(host), device(device) {}
  ~CudaBackend() override {
    nccl.reset();
    for (cudaEvent_t e : events)
      cudaEventDestroy(e);
    for (cudaStream_t s : {stream, commStream})
      if (s)
        cudaStreamDestroy(s);
  }
  const char *name() const override { return "cuda"; }

  bool run(const plan::Plan &plan, int rank,
           const std::map<std::string, Tensor> &inputs,
           const std::map<std::string, Tensor> &weights,
           std::map<std::string, Tensor> &outputs, RunStats &stats,
           std::string &error, const RunOptions &options) override;
  bool fetchState(std::map<std::string, Tensor> &state,
                  std::string &error) override;

private:
  bool prepare(const plan::Plan &plan, int rank, std::string &error);
  bool bind(const std::map<std::string, Tensor> &inputs,
            const std::map<std::string, Tensor> &weights,
            const std::map<std::string, Tensor> *state, RunStats &stats,
            std::string &error);
  bool upload(int32_t index, const Tensor &given, const char *what,
              std::string &error);
  bool execute(size_t index, const plan::Instruction &inst, std::string &error);
  /// Whether instruction `i` is a linear with a bias whose result the next
  /// one, a tanh GELU, reads: cuBLASLt's GELU epilogue runs both.
  bool geluEpilogue(size_t i) const;
  bool executeLinearGelu(size_t i, std::string &error);
  bool communicate(const plan::Instruction &inst, std::vector<DeviceView> &in,
                   std::vector<DeviceView> &out, std::string &error);
  bool feedBack(RunStats &stats, std::string &error);
  /// Makes the compute stream wait for the collectives in flight that
  /// `in` and `out` conflict with (all of them when `all`).
  void waitForCollectives(const std::vector<DeviceView> &in,
                          const std::vector<DeviceView> &out, bool all);
  cudaEvent_t nextEvent();

  Communicator *host;
  int device;
  const plan::Plan *plan = nullptr;
  const plan::RankProgram *program = nullptr;
  cudaStream_t stream = nullptr, commStream = nullptr;
  /// prepare() ran (and succeeded).
  bool started = false, ready = false;
  /// GALVATRON_CUDA_SYNC=1: wait for each instruction and check it, so that
  /// a fault is reported at the instruction that made it.
  bool syncEach = false;
  /// GALVATRON_CUDA_GELU_EPILOGUE=0 runs a linear and its GELU apart (to
  /// measure the epilogue).
  bool fuseGelu = true;
  /// A collective in flight: what it reads and writes, and its end.
  struct InFlight {
    cudaEvent_t done;
    std::vector<std::pair<const char *, const char *>> reads, writes;
  };
  std::vector<InFlight> inFlight;
  /// Events reused from run to run (one per collective).
  std::vector<cudaEvent_t> events;
  size_t eventsUsed = 0;
  DeviceBuffer arena, constants;
  /// Inputs and weights on the device, by tensor index.
  std::map<int32_t, DeviceBuffer> bound;
  /// Tensors uploaded once and kept: weights and training state.
  std::set<int32_t> resident;
  std::vector<DeviceView> views;
  std::unique_ptr<cuda::NcclComm> nccl;
  /// The device's stream-ordered pool (the scratch): its high water is the
  /// run's scratchBytes.
  cudaMemPool_t pool = nullptr;
};

bool CudaBackend::prepare(const plan::Plan &p, int rank, std::string &error) {
  if (ready)
    return plan == &p && program->rank() == rank
               ? true
               : (error = "the CUDA backend runs one plan and rank", false);
  if (started)
    return error = "the CUDA backend did not start (see its first error)",
           false;
  started = true;
  plan = &p;
  program = findRankProgram(p, rank);
  if (!program)
    return error = "rank " + std::to_string(rank) + " is not in the plan",
           false;
  if (cudaError_t e = cudaSetDevice(device))
    return error = cudaWhy("cudaSetDevice", e), false;
  for (cudaStream_t *s : {&stream, &commStream})
    if (cudaError_t e = cudaStreamCreateWithFlags(s, cudaStreamNonBlocking))
      return error = cudaWhy("cudaStreamCreate", e), false;
  if (cudaError_t e = arena.allocate(program->arena_bytes()))
    return error = cudaWhy("allocating the arena", e), false;
  size_t constantBytes = p.constants() ? p.constants()->size() : 0;
  if (cudaError_t e = constants.allocate(constantBytes))
    return error = cudaWhy("allocating the constants", e), false;
  if (constantBytes)
    if (cudaError_t e = cudaMemcpy(constants.data, p.constants()->data(),
                                   constantBytes, cudaMemcpyHostToDevice))
      return error = cudaWhy("uploading the constants", e), false;
  std::unique_ptr<Communicator> local;
  Communicator *comm = host;
  if (!comm) {
    local = createLocalCommunicator(planGroups(p), rank);
    comm = local.get();
  }
  nccl = cuda::NcclComm::create(p, rank, *comm, commStream, error);
  if (!nccl)
    return false;
  views.resize(program->tensors()->size());
  for (size_t i = 0; i < views.size(); ++i) {
    const plan::Tensor &t = *program->tensors()->Get(i);
    views[i] = {toDType(t.dtype()), shapeOf(t), nullptr};
    if (t.storage() == plan::Storage::Arena)
      views[i].data = static_cast<char *>(arena.data) + t.offset();
    else if (t.storage() == plan::Storage::Constant)
      views[i].data = static_cast<char *>(constants.data) + t.offset();
  }
  // Scratch (collectives, attention statistics) stays in the pool between
  // steps instead of going back to the driver at each synchronisation.
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    uint64_t keep = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  const char *gelu = std::getenv("GALVATRON_CUDA_GELU_EPILOGUE");
  fuseGelu = !gelu || std::string(gelu) != "0";
  const char *sync = std::getenv("GALVATRON_CUDA_SYNC");
  syncEach = sync && *sync && std::string(sync) != "0";
  ready = true;
  return true;
}

bool CudaBackend::upload(int32_t index, const Tensor &given, const char *what,
                         std::string &error) {
  const plan::Tensor &t = *program->tensors()->Get(index);
  const Tensor *source = &given;
  Tensor piece;
  // A sharded tensor may come whole, as on the CPU backend.
  if (t.shard() && given.shape != shapeOf(t) &&
      given.shape == shardFullShape(*t.shard())) {
    std::string why;
    if (!cutShard(given, *t.shard(), piece, why))
      return error = std::string(what) + " '" + t.name()->str() + "': " + why,
             false;
    source = &piece;
  }
  if (source->shape != shapeOf(t) || source->dtype != toDType(t.dtype()))
    return error = std::string(what) + " '" + t.name()->str() + "' is " +
                   dtypeName(source->dtype) + " " + shapeString(source->shape) +
                   ", the plan wants " + dtypeName(toDType(t.dtype())) + " " +
                   shapeString(shapeOf(t)),
           false;
  DeviceBuffer &buffer = bound[index];
  if (!buffer.data)
    if (cudaError_t e = buffer.allocate(source->byteSize()))
      return error = cudaWhy("allocating an input", e), false;
  views[index].data = buffer.data;
  if (cudaError_t e =
          cudaMemcpyAsync(buffer.data, source->data(), source->byteSize(),
                          cudaMemcpyHostToDevice, stream))
    return error = cudaWhy("uploading an input", e), false;
  // The host tensor (`piece`) must outlive the copy.
  if (cudaError_t e = cudaStreamSynchronize(stream))
    return error = cudaWhy("uploading an input", e), false;
  return true;
}

bool CudaBackend::bind(const std::map<std::string, Tensor> &inputs,
                       const std::map<std::string, Tensor> &weights,
                       const std::map<std::string, Tensor> *state,
                       RunStats &stats, std::string &error) {
  for (size_t i = 0; i < views.size(); ++i) {
    const plan::Tensor &t = *program->tensors()->Get(i);
    bool isInput = t.storage() == plan::Storage::Input;
    if (!isInput && t.storage() != plan::Storage::Weight)
      continue;
    int32_t index = static_cast<int32_t>(i);
    if (resident.count(index))
      continue;
    const std::map<std::string, Tensor> &source = isInput ? inputs : weights;
    const char *what = isInput ? "input" : "weight";
    auto it = source.find(t.name()->str());
    if (it == source.end())
      return error = std::string("no ") + what + " named '" + t.name()->str() +
                     "' was given",
             false;
    if (!upload(index, it->second, what, error))
      return false;
    stats.boundBytes += bound[index].bytes;
    // Weights, and in training the parameters and moments: the state the
    // trainer lends is fed back on the device from now on.
    bool stateRole = t.role() == plan::Role::Parameter ||
                     t.role() == plan::Role::AdamM ||
                     t.role() == plan::Role::AdamV;
    if (!isInput || (state && stateRole && state->count(t.name()->str())))
      resident.insert(index);
  }
  return true;
}

bool CudaBackend::run(const plan::Plan &p, int rank,
                      const std::map<std::string, Tensor> &inputs,
                      const std::map<std::string, Tensor> &weights,
                      std::map<std::string, Tensor> &outputs, RunStats &stats,
                      std::string &error, const RunOptions &options) {
  auto fail = [&](const std::string &why) {
    error = "rank " + std::to_string(rank) + " (cuda): " + why;
    return false;
  };
  if (!prepare(p, rank, error) ||
      !bind(inputs, weights, options.state, stats, error))
    return fail(error);
  stats.arenaBytes = program->arena_bytes();
  stats.highWaterBytes = program->arena_bytes();
  eventsUsed = 0;
  uint64_t zero = 0;
  if (pool)
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero);
  for (size_t i = 0; i < program->instructions()->size(); ++i) {
    if (geluEpilogue(i)) {
      if (!executeLinearGelu(i, error))
        return fail(error);
      ++i; // the GELU ran in the product's epilogue
      continue;
    }
    if (!execute(i, *program->instructions()->Get(i), error))
      return fail(error);
  }
  waitForCollectives({}, {}, true);
  if (options.state && !feedBack(stats, error))
    return fail(error);
  if (!nccl->flush(error))
    return fail(error);
  // The downloads below go through the default stream, which does not wait
  // for non-blocking streams.
  if (cudaError_t e = cudaStreamSynchronize(stream))
    return fail(cudaWhy("running the program", e));
  if (pool)
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh,
                            &stats.scratchBytes);
  stats.commBytes = nccl->takeByteCounts();
  for (int32_t index : *program->outputs()) {
    const plan::Tensor &t = *program->tensors()->Get(index);
    std::string name = t.name() ? t.name()->str() : std::to_string(index);
    if (std::find(stats.updatedInPlace.begin(), stats.updatedInPlace.end(),
                  name) != stats.updatedInPlace.end())
      continue;
    Tensor &into = outputs[name];
    if (into.dtype != views[index].dtype || into.shape != views[index].shape)
      into = Tensor(views[index].dtype, views[index].shape);
    if (cudaError_t e = cudaMemcpy(into.data(), views[index].data,
                                   into.byteSize(), cudaMemcpyDeviceToHost))
      return fail(cudaWhy("downloading output '" + name + "'", e));
  }
  return true;
}

/// Each fed-back output becomes its state input on the device; the caller's
/// host copy is refreshed by fetchState.
bool CudaBackend::feedBack(RunStats &stats, std::string &error) {
  if (!program->feedback())
    return true;
  for (const plan::Feedback *f : *program->feedback()) {
    int32_t out = program->outputs()->Get(f->output());
    int32_t in = program->inputs()->Get(f->input());
    if (!resident.count(in))
      continue;
    if (cudaError_t e = cudaMemcpyAsync(views[in].data, views[out].data,
                                        views[in].byteSize(),
                                        cudaMemcpyDeviceToDevice, stream))
      return error = cudaWhy("feeding the state back", e), false;
    const plan::Tensor &t = *program->tensors()->Get(out);
    stats.updatedInPlace.push_back(t.name() ? t.name()->str()
                                            : std::to_string(out));
  }
  return true;
}

bool CudaBackend::fetchState(std::map<std::string, Tensor> &state,
                             std::string &error) {
  if (!program)
    return true;
  for (int32_t index : resident) {
    const plan::Tensor &t = *program->tensors()->Get(index);
    auto it = state.find(t.name()->str());
    if (it == state.end() || it->second.byteSize() != views[index].byteSize())
      continue;
    if (cudaError_t e =
            cudaMemcpy(it->second.data(), views[index].data,
                       it->second.byteSize(), cudaMemcpyDeviceToHost))
      return error = cudaWhy("downloading the training state", e), false;
  }
  return true;
}

cudaEvent_t CudaBackend::nextEvent() {
  if (eventsUsed == events.size()) {
    cudaEvent_t e;
    cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    events.push_back(e);
  }
  return events[eventsUsed++];
}

void CudaBackend::waitForCollectives(const std::vector<DeviceView> &in,
                                     const std::vector<DeviceView> &out,
                                     bool all) {
  auto overlaps =
      [](const std::vector<std::pair<const char *, const char *>> &ranges,
         const DeviceView &v) {
        auto [begin, end] = rangeOf(v);
        for (auto [b, e] : ranges)
          if (begin < e && b < end)
            return true;
        return false;
      };
  std::vector<InFlight> still;
  for (InFlight &flight : inFlight) {
    bool conflict = all;
    for (const DeviceView &v : in)
      conflict |= overlaps(flight.writes, v);
    for (const DeviceView &v : out)
      conflict |= overlaps(flight.writes, v) || overlaps(flight.reads, v);
    if (conflict)
      cudaStreamWaitEvent(stream, flight.done, 0);
    else
      still.push_back(std::move(flight));
  }
  inFlight.swap(still);
}

bool CudaBackend::geluEpilogue(size_t i) const {
  const auto &instructions = *program->instructions();
  if (!fuseGelu || i + 1 >= instructions.size())
    return false;
  const plan::Instruction &linear = *instructions.Get(i);
  const plan::Instruction &gelu = *instructions.Get(i + 1);
  if (linear.opcode() != plan::Opcode::Linear || linear.inputs()->size() != 3 ||
      gelu.opcode() != plan::Opcode::GeluTanh || gelu.inputs()->size() != 1 ||
      gelu.inputs()->Get(0) != linear.outputs()->Get(0) ||
      !linear.attrs_as_LinearAttrs())
    return false;
  const DeviceView &x = views[linear.inputs()->Get(0)];
  const DeviceView &out = views[gelu.outputs()->Get(0)];
  const DeviceView &pre = views[linear.outputs()->Get(0)];
  return out.dtype == x.dtype && pre.dtype == x.dtype &&
         cuda::linearGeluFits(views[linear.inputs()->Get(2)], out);
}

bool CudaBackend::executeLinearGelu(size_t i, std::string &error) {
  const plan::Instruction &linear = *program->instructions()->Get(i);
  const plan::Instruction &gelu = *program->instructions()->Get(i + 1);
  std::vector<DeviceView> in,
      out = {views[linear.outputs()->Get(0)], views[gelu.outputs()->Get(0)]};
  for (int32_t t : *linear.inputs())
    in.push_back(views[t]);
  waitForCollectives(in, out, false);
  bool outIn =
      linear.attrs_as_LinearAttrs()->layout() == plan::WeightLayout::OutIn;
  cudaError_t e =
      cuda::linearGelu(in[0], in[1], in[2], outIn, out[0], out[1], stream);
  if (e == cudaErrorUnknown || e == cudaErrorNotSupported) {
    // cuBLASLt has no algorithm with this epilogue for these operands (the
    // launch itself made nothing): run the two apart from now on.
    fuseGelu = false;
    return execute(i, linear, error) && execute(i + 1, gelu, error);
  }
  if (e == cudaSuccess && syncEach)
    e = cudaDeviceSynchronize();
  if (e != cudaSuccess)
    return error = "instructions " + std::to_string(i) + " and " +
                   std::to_string(i + 1) + " (Linear and GeluTanh in one " +
                   "GEMM): " + cudaGetErrorString(e) + " (" +
                   cuda::gemmErrorDetail() + ")",
           false;
  return true;
}

bool CudaBackend::execute(size_t index, const plan::Instruction &inst,
                          std::string &error) {
  std::vector<DeviceView> in, out;
  for (int32_t t : *inst.inputs())
    in.push_back(views[t]);
  for (int32_t t : *inst.outputs()) {
    if (program->tensors()->Get(t)->storage() != plan::Storage::Arena)
      return error = "instruction " + std::to_string(index) +
                     " writes outside the arena",
             false;
    out.push_back(views[t]);
  }
  bool ok;
  if (isCommunication(inst.opcode())) {
    // After everything computed so far (its input, and readers of the
    // memory it writes), beside what is computed next.
    cudaEvent_t ready = nextEvent();
    cudaEventRecord(ready, stream);
    cudaStreamWaitEvent(commStream, ready, 0);
    ok = communicate(inst, in, out, error);
    InFlight flight{nextEvent(), {}, {}};
    cudaEventRecord(flight.done, commStream);
    for (const DeviceView &v : in)
      flight.reads.push_back(rangeOf(v));
    for (const DeviceView &v : out)
      flight.writes.push_back(rangeOf(v));
    inFlight.push_back(std::move(flight));
  } else {
    waitForCollectives(in, out, false);
    ok = cuda::dispatch(inst, in, out, stream, error);
  }
  if (ok && syncEach)
    if (cudaError_t e = cudaDeviceSynchronize()) {
      error = cudaWhy("running it", e);
      ok = false;
    }
  if (!ok)
    error = "instruction " + std::to_string(index) + " (" +
            plan::EnumNameOpcode(inst.opcode()) + "): " + error;
  return ok;
}

bool CudaBackend::communicate(const plan::Instruction &inst,
                              std::vector<DeviceView> &in,
                              std::vector<DeviceView> &out,
                              std::string &error) {
  using O = plan::Opcode;
  int g = static_cast<int>(groupOf(inst));
  if (g < 0 || (inst.opcode() != O::Recv && in.empty()) || out.empty())
    return error = "a communication needs its group, input and output", false;
  switch (inst.opcode()) {
  case O::AllReduce:
    return nccl->allReduce(
        g, static_cast<Reduction>(inst.attrs_as_AllReduceAttrs()->reduction()),
        in[0], out[0], error);
  case O::AllGather:
    return nccl->allGather(g, inst.attrs_as_CollectiveAxisAttrs()->axis(),
                           in[0], out[0], error);
  case O::ReduceScatter:
    return nccl->reduceScatter(g, inst.attrs_as_CollectiveAxisAttrs()->axis(),
                               in[0], out[0], error);
  case O::AllToAll: {
    const auto *a = inst.attrs_as_AllToAllAttrs();
    return nccl->allToAll(g, a->split_axis(), a->concat_axis(), in[0], out[0],
                          error);
  }
  case O::Broadcast:
    return nccl->broadcast(g, inst.attrs_as_BroadcastAttrs()->root(), in[0],
                           out[0], error);
  case O::Send:
    if (!nccl->send(g, inst.attrs_as_PeerAttrs()->peer(), in[0], error))
      return false;
    // The output passes the input on, or is a token of zeros.
    if (out[0].byteSize() == in[0].byteSize() && out[0].dtype == in[0].dtype)
      return cuda::copy(in[0], out[0], commStream) == cudaSuccess;
    return cudaMemsetAsync(out[0].data, 0, out[0].byteSize(), commStream) ==
           cudaSuccess;
  case O::Recv:
    return nccl->recv(g, inst.attrs_as_PeerAttrs()->peer(), out[0], error);
  default:
    return error = "not a communication", false;
  }
}

} // namespace

std::unique_ptr<Backend> makeCudaBackend(Communicator *comm, int device) {
  return std::make_unique<CudaBackend>(comm, device);
}

int localDeviceOf(int count) { return localDevice(count); }

} // namespace galvatron::rt
