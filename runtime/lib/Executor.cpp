//===- Executor.cpp - run one rank's instruction stream -------------------===//
//
// Tensors live where the plan says: inputs and weights are bound by name,
// constants come from the plan, everything else sits in the arena at the
// offset the memory planner chose. Each instruction reads its inputs, runs a
// kernel (or a collective on the communicator), and stores the result at its
// output's place.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Executor.h"

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Shard.h"

#include <chrono>
#include <cstring>
#include <optional>

namespace galvatron::rt {

namespace {

std::vector<int64_t> ints(const plan::Instruction &inst) {
  if (!inst.ints())
    return {};
  return std::vector<int64_t>(inst.ints()->begin(), inst.ints()->end());
}

class Machine {
public:
  Machine(const plan::Plan &plan, const plan::RankProgram &program,
          Communicator &comm, bool trace, RunStats &stats, std::string &error)
      : plan(plan), program(program), comm(comm), trace(trace), stats(stats),
        error(error), arena(program.arena_bytes()) {
    stats.arenaBytes = program.arena_bytes();
    // Last instruction reading each arena tensor, for the live-bytes count.
    lastUse.assign(program.tensors()->size(), -1);
    for (size_t i = 0; i < program.instructions()->size(); ++i)
      for (int32_t t : *program.instructions()->Get(i)->inputs())
        lastUse[t] = static_cast<int64_t>(i);
    if (program.outputs())
      for (int32_t t : *program.outputs())
        lastUse[t] = INT64_MAX;
  }

  bool bind(const std::map<std::string, Tensor> &inputs,
            const std::map<std::string, Tensor> &weights) {
    values.resize(program.tensors()->size());
    for (size_t i = 0; i < program.tensors()->size(); ++i) {
      const plan::Tensor &t = *program.tensors()->Get(i);
      const std::map<std::string, Tensor> *source = nullptr;
      const char *what = nullptr;
      if (t.storage() == plan::Storage::Input) {
        source = &inputs;
        what = "input";
      } else if (t.storage() == plan::Storage::Weight) {
        source = &weights;
        what = "weight";
      }
      if (source) {
        auto it = source->find(t.name()->str());
        if (it == source->end())
          return fail(std::string("no ") + what + " named '" + t.name()->str() +
                      "' was given");
        const Tensor *given = &it->second;
        // A sharded tensor may come whole (every rank loads the same
        // weights file and batch) and is cut here.
        Tensor piece;
        if (t.shard() && given->shape != shapeOf(t) &&
            given->shape == shardFullShape(*t.shard())) {
          std::string why;
          if (!cutShard(*given, *t.shard(), piece, why))
            return fail(std::string(what) + " '" + t.name()->str() +
                        "': " + why);
          given = &piece;
        }
        if (given->shape != shapeOf(t) || given->dtype != toDType(t.dtype()))
          return fail(
              std::string(what) + " '" + t.name()->str() + "' is " +
              dtypeName(given->dtype) + " " + shapeString(given->shape) +
              ", the plan wants " + dtypeName(toDType(t.dtype())) + " " +
              shapeString(shapeOf(t)) +
              (t.shard() ? " (a shard of " +
                               shapeString(shardFullShape(*t.shard())) + ")"
                         : std::string()));
        values[i] = given == &piece ? std::move(piece) : *given;
        stats.boundBytes += values[i].bytes.size();
      } else if (t.storage() == plan::Storage::Constant) {
        values[i] = Tensor(toDType(t.dtype()), shapeOf(t));
        std::memcpy(values[i].bytes.data(),
                    plan.constants()->data() + t.offset(), t.bytes());
      }
    }
    return true;
  }

  bool run() {
    for (size_t i = 0; i < program.instructions()->size(); ++i) {
      const plan::Instruction &inst = *program.instructions()->Get(i);
      std::vector<Tensor> results;
      int64_t start = trace ? nowUs() : 0;
      if (!execute(static_cast<int64_t>(i), inst, results))
        return false;
      if (trace) {
        bool communicates = isCommunication(inst.opcode());
        stats.trace.push_back(
            {plan::EnumNameOpcode(inst.opcode()), static_cast<int32_t>(i),
             communicates ? static_cast<int32_t>(inst.ints()->Get(0)) : -1,
             start, nowUs()});
      }
      for (size_t k = 0; k < results.size(); ++k)
        if (!store(inst.outputs()->Get(k), std::move(results[k])))
          return false;
      release(static_cast<int64_t>(i));
    }
    return true;
  }

  Tensor output(int32_t index) { return load(index); }

private:
  static int64_t nowUs() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  bool fail(const std::string &message) {
    error = "rank " + std::to_string(program.rank()) + ": " + message;
    return false;
  }

  /// A tensor's current value; arena tensors are read from the arena.
  Tensor load(int32_t index) {
    const plan::Tensor &t = *program.tensors()->Get(index);
    if (t.storage() != plan::Storage::Arena)
      return values[index];
    Tensor out(toDType(t.dtype()), shapeOf(t));
    std::memcpy(out.bytes.data(), arena.data() + t.offset(), t.bytes());
    return out;
  }

  bool store(int32_t index, Tensor value) {
    const plan::Tensor &t = *program.tensors()->Get(index);
    if (value.bytes.size() != t.bytes())
      return fail("instruction wrote " + std::to_string(value.bytes.size()) +
                  " bytes to tensor " + std::to_string(index) + " of " +
                  std::to_string(t.bytes()));
    if (t.storage() != plan::Storage::Arena)
      return fail("instruction writes to tensor " + std::to_string(index) +
                  ", which is not in the arena");
    std::memcpy(arena.data() + t.offset(), value.bytes.data(), t.bytes());
    stats.highWaterBytes =
        std::max<uint64_t>(stats.highWaterBytes, t.offset() + t.bytes());
    live += t.bytes();
    stats.peakLiveBytes = std::max(stats.peakLiveBytes, live);
    return true;
  }

  /// Arena tensors whose last reader was instruction `i` are dead now.
  void release(int64_t i) {
    const plan::Instruction &inst = *program.instructions()->Get(i);
    for (int32_t t : *inst.inputs())
      if (lastUse[t] == i &&
          program.tensors()->Get(t)->storage() == plan::Storage::Arena) {
        live -= program.tensors()->Get(t)->bytes();
        lastUse[t] = -2; // counted once even if read twice
      }
    // Results nobody reads die at once.
    for (int32_t t : *inst.outputs())
      if (lastUse[t] == -1) {
        live -= program.tensors()->Get(t)->bytes();
        lastUse[t] = -2;
      }
  }

  /// A tensor's name for messages: its plan name, or %index.
  std::string tensorName(int32_t index) const {
    const plan::Tensor &t = *program.tensors()->Get(index);
    return t.name() && t.name()->size() ? t.name()->str()
                                        : "%" + std::to_string(index);
  }

  /// Indices read a table: one outside [low, high) (other than `skip`, a
  /// loss's ignore_index) would read another tensor's memory or change the
  /// result without a word, so it ends the run, named with its position.
  bool checkIndices(const plan::Instruction &inst, int input, int64_t low,
                    int64_t high, std::optional<int64_t> skip = {}) {
    const Tensor ids = load(inst.inputs()->Get(input));
    if (ids.dtype != DType::I64 && ids.dtype != DType::I32)
      return fail(std::string(plan::EnumNameOpcode(inst.opcode())) +
                  " indices must be integers");
    for (int64_t i = 0; i < ids.size(); ++i) {
      int64_t v = ids.dtype == DType::I64
                      ? ids.i64()[i]
                      : reinterpret_cast<const int32_t *>(ids.bytes.data())[i];
      if ((v < low || v >= high) && v != skip)
        return fail(std::string(plan::EnumNameOpcode(inst.opcode())) + " of '" +
                    tensorName(inst.inputs()->Get(input)) + "': index " +
                    std::to_string(v) + " at position " + std::to_string(i) +
                    " is outside [" + std::to_string(low) + ", " +
                    std::to_string(high) + ")");
    }
    return true;
  }

  /// One instruction's operands, attributes and first result's plan entry.
  struct Call {
    const plan::Instruction &inst;
    std::vector<Tensor> in;
    std::vector<int64_t> a;
    const plan::Tensor &out0;
    double f(size_t k) const {
      return inst.floats() && k < inst.floats()->size() ? inst.floats()->Get(k)
                                                        : 0.0;
    }
  };
  /// What a kernel group made of an instruction.
  enum class Outcome { NotMine, Failed, Done };

  bool need(const Call &c, size_t inputs, size_t attrs) {
    if (c.in.size() < inputs || c.a.size() < attrs)
      return fail(std::string("instruction ") +
                  plan::EnumNameOpcode(c.inst.opcode()) + " needs " +
                  std::to_string(inputs) + " inputs and " +
                  std::to_string(attrs) + " integer attributes");
    return true;
  }

  static Outcome done(bool ok) { return ok ? Outcome::Done : Outcome::Failed; }

  /// Elementwise kernels: binary, unary, compare, select and cast.
  Outcome elementwise(const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const auto &in = c.in;
    const auto &a = c.a;
    static const std::pair<O, Binary> binaries[] = {
        {O::Add, Binary::Add}, {O::Sub, Binary::Sub}, {O::Mul, Binary::Mul},
        {O::Div, Binary::Div}, {O::Pow, Binary::Pow}, {O::Max, Binary::Max},
        {O::Min, Binary::Min}, {O::And, Binary::And}, {O::Or, Binary::Or}};
    for (auto [op, kind] : binaries)
      if (c.inst.opcode() == op) {
        if (!need(c, 2, 0))
          return Outcome::Failed;
        results.push_back(binary(kind, in[0], in[1]));
        return Outcome::Done;
      }
    static const std::pair<O, Unary> unaries[] = {
        {O::Neg, Unary::Neg},          {O::Not, Unary::Not},
        {O::Abs, Unary::Abs},          {O::Exp, Unary::Exp},
        {O::Log, Unary::Log},          {O::Sqrt, Unary::Sqrt},
        {O::Rsqrt, Unary::Rsqrt},      {O::Reciprocal, Unary::Reciprocal},
        {O::Tanh, Unary::Tanh},        {O::Erf, Unary::Erf},
        {O::Sigmoid, Unary::Sigmoid},  {O::Relu, Unary::Relu},
        {O::Silu, Unary::Silu},        {O::Gelu, Unary::Gelu},
        {O::GeluTanh, Unary::GeluTanh}};
    for (auto [op, kind] : unaries)
      if (c.inst.opcode() == op) {
        if (!need(c, 1, 0))
          return Outcome::Failed;
        results.push_back(unary(kind, in[0]));
        return Outcome::Done;
      }
    switch (c.inst.opcode()) {
    case O::Compare: {
      static const Binary kinds[] = {Binary::Eq, Binary::Ne, Binary::Lt,
                                     Binary::Le, Binary::Gt, Binary::Ge};
      if (!need(c, 2, 1) || a[0] < 0 || a[0] > 5)
        return done(fail("bad Compare instruction"));
      results.push_back(binary(kinds[a[0]], in[0], in[1]));
      return Outcome::Done;
    }
    case O::Where:
      if (!need(c, 3, 0))
        return Outcome::Failed;
      results.push_back(where(in[0], in[1], in[2]));
      return Outcome::Done;
    case O::Cast:
      if (!need(c, 1, 0))
        return Outcome::Failed;
      results.push_back(cast(in[0], toDType(c.out0.dtype())));
      return Outcome::Done;
    default:
      return Outcome::NotMine;
    }
  }

  /// Data movement: copies, layouts, slices, gathers and lookups.
  Outcome movement(const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const auto &in = c.in;
    const auto &a = c.a;
    switch (c.inst.opcode()) {
    case O::Copy:
      if (!need(c, 1, 0))
        return Outcome::Failed;
      results.push_back(reshape(in[0], shapeOf(c.out0)));
      return Outcome::Done;
    case O::Transpose:
      if (!need(c, 1, static_cast<size_t>(in.empty() ? 0 : in[0].rank())))
        return Outcome::Failed;
      results.push_back(transpose(in[0], a));
      return Outcome::Done;
    case O::Slice: {
      size_t r = in.empty() ? 0 : in[0].rank();
      if (!need(c, 1, 3 * r))
        return Outcome::Failed;
      results.push_back(slice(in[0], {a.begin(), a.begin() + r},
                              {a.begin() + r, a.begin() + 2 * r},
                              {a.begin() + 2 * r, a.begin() + 3 * r}));
      return Outcome::Done;
    }
    case O::Concat: {
      if (!need(c, 1, 1))
        return Outcome::Failed;
      std::vector<const Tensor *> parts;
      for (const Tensor &t : in)
        parts.push_back(&t);
      results.push_back(concat(parts, a[0]));
      return Outcome::Done;
    }
    case O::Split: {
      if (!need(c, 1, 1))
        return Outcome::Failed;
      std::vector<int64_t> sizes;
      int64_t axis = a[0] < 0 ? a[0] + in[0].rank() : a[0];
      for (int32_t t : *c.inst.outputs())
        sizes.push_back(program.tensors()->Get(t)->shape()->Get(axis));
      results = split(in[0], axis, sizes);
      return Outcome::Done;
    }
    case O::Expand:
      if (!need(c, 1, 0))
        return Outcome::Failed;
      results.push_back(expand(in[0], shapeOf(c.out0)));
      return Outcome::Done;
    case O::Gather: {
      if (!need(c, 2, 1) || a[0] < -in[0].rank() || a[0] >= in[0].rank())
        return done(need(c, 2, 1) && fail("Gather axis out of range"));
      int64_t n = in[0].shape[a[0] < 0 ? a[0] + in[0].rank() : a[0]];
      if (!checkIndices(c.inst, 1, -n, n))
        return Outcome::Failed;
      results.push_back(gather(in[0], in[1], a[0]));
      return Outcome::Done;
    }
    case O::Embedding:
      if (!need(c, 2, 0) || in[0].rank() != 2 ||
          !checkIndices(c.inst, 1, 0, in[0].shape[0]))
        return Outcome::Failed;
      results.push_back(embedding(in[0], in[1]));
      return Outcome::Done;
    case O::EmbeddingGrad:
      if (!need(c, 2, 1) || !checkIndices(c.inst, 1, 0, a[0]))
        return Outcome::Failed;
      results.push_back(embeddingGrad(in[0], in[1], a[0]));
      return Outcome::Done;
    default:
      return Outcome::NotMine;
    }
  }

  /// Contractions, reductions, normalisations, attention and loss.
  Outcome compute(const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const auto &in = c.in;
    const auto &a = c.a;
    switch (c.inst.opcode()) {
    case O::Matmul:
      if (!need(c, 2, 0))
        return Outcome::Failed;
      results.push_back(matmul(in[0], in[1]));
      return Outcome::Done;
    case O::Linear:
      if (!need(c, 2, 1))
        return Outcome::Failed;
      results.push_back(
          linear(in[0], in[1], in.size() > 2 ? &in[2] : nullptr, a[0] != 0));
      return Outcome::Done;
    case O::Reduce:
      if (!need(c, 1, 2))
        return Outcome::Failed;
      results.push_back(reduce(static_cast<Reduction>(a[0]), in[0],
                               {a.begin() + 2, a.end()}, a[1] != 0));
      return Outcome::Done;
    case O::Softmax:
      if (!need(c, 1, 1))
        return Outcome::Failed;
      results.push_back(softmax(in[0], a[0]));
      return Outcome::Done;
    case O::LogSoftmax:
      if (!need(c, 1, 1))
        return Outcome::Failed;
      results.push_back(logSoftmax(in[0], a[0]));
      return Outcome::Done;
    case O::ArgMax:
      if (!need(c, 1, 3))
        return Outcome::Failed;
      results.push_back(argMax(in[0], a[0], a[1] != 0, a[2] != 0));
      return Outcome::Done;
    case O::LayerNorm:
      if (!need(c, 2, 0))
        return Outcome::Failed;
      results.push_back(
          layerNorm(in[0], in[1], in.size() > 2 ? &in[2] : nullptr, c.f(0)));
      return Outcome::Done;
    case O::RmsNorm:
      if (!need(c, 2, 0))
        return Outcome::Failed;
      results.push_back(rmsNorm(in[0], in[1], c.f(0)));
      return Outcome::Done;
    case O::Rotary:
      if (!need(c, 3, 1))
        return Outcome::Failed;
      results.push_back(rotary(in[0], in[1], in[2], a[0] != 0));
      return Outcome::Done;
    case O::Attention:
      if (!need(c, 3, 1))
        return Outcome::Failed;
      results.push_back(attention(in[0], in[1], in[2],
                                  in.size() > 3 ? &in[3] : nullptr, a[0] != 0,
                                  c.f(0)));
      return Outcome::Done;
    case O::CrossEntropy:
      if (!need(c, 2, 2) || in[0].rank() < 1 ||
          !checkIndices(c.inst, 1, 0, in[0].shape.back(), a[1]))
        return Outcome::Failed;
      results.push_back(crossEntropy(in[0], in[1], a[0] != 0, a[1]));
      return Outcome::Done;
    default:
      return Outcome::NotMine;
    }
  }

  bool execute(int64_t index, const plan::Instruction &inst,
               std::vector<Tensor> &results) {
    Call c{
        inst, {}, ints(inst), *program.tensors()->Get(inst.outputs()->Get(0))};
    for (int32_t t : *inst.inputs())
      c.in.push_back(load(t));
    for (auto group :
         {&Machine::elementwise, &Machine::movement, &Machine::compute}) {
      Outcome outcome = (this->*group)(c, results);
      if (outcome != Outcome::NotMine)
        return outcome == Outcome::Done;
    }
    if (isCommunication(inst.opcode()))
      return communicate(index, inst, c.in, c.a, c.out0, results);
    return fail(std::string("no kernel for instruction ") +
                plan::EnumNameOpcode(inst.opcode()));
  }

  /// Communication instructions: ints[0] is the group, the rest as
  /// plan.fbs lists them.
  bool communicate(int64_t index, const plan::Instruction &inst,
                   std::vector<Tensor> &in, const std::vector<int64_t> &a,
                   const plan::Tensor &out0, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const char *name = plan::EnumNameOpcode(inst.opcode());
    size_t inputs = inst.opcode() == O::Recv ? 0 : 1;
    size_t attrs = inst.opcode() == O::AllReduce  ? 1
                   : inst.opcode() == O::AllToAll ? 3
                                                  : 2;
    if (in.size() < inputs || a.size() < attrs)
      return fail("instruction " + std::to_string(index) + " (" + name +
                  ") needs " + std::to_string(inputs) + " inputs and " +
                  std::to_string(attrs) + " integer attributes");
    int group = static_cast<int>(a[0]);
    Tensor out;
    std::string why;
    bool ok = true;
    switch (inst.opcode()) {
    case O::AllReduce: {
      int64_t kind = a.size() > 1 ? a[1] : 0;
      if (kind < 0 || kind > 4)
        return fail("instruction " + std::to_string(index) +
                    " (AllReduce) has reduction " + std::to_string(kind) +
                    "; 0 to 4 are sum, mean, max, min, prod");
      ok = comm.allReduce(group, static_cast<Reduction>(kind), in[0], out, why);
      break;
    }
    case O::AllGather:
      ok = comm.allGather(group, a[1], in[0], out, why);
      break;
    case O::ReduceScatter:
      ok = comm.reduceScatter(group, a[1], in[0], out, why);
      break;
    case O::AllToAll:
      ok = comm.allToAll(group, a[1], a[2], in[0], out, why);
      break;
    case O::Broadcast:
      ok = comm.broadcast(group, static_cast<int>(a[1]), in[0], out, why);
      break;
    case O::Send:
      // The output passes the input on (ordering what reads it after the
      // send); an output of another size is a token and reads as zeros.
      ok = comm.send(group, static_cast<int>(a[1]), in[0], why);
      out = numElements(shapeOf(out0)) == in[0].size() &&
                    toDType(out0.dtype()) == in[0].dtype
                ? reshape(in[0], shapeOf(out0))
                : Tensor::zeros(toDType(out0.dtype()), shapeOf(out0));
      break;
    case O::Recv:
      out = Tensor(toDType(out0.dtype()), shapeOf(out0));
      ok = comm.recv(group, static_cast<int>(a[1]), out, why);
      break;
    default:
      break;
    }
    if (!ok)
      return fail("instruction " + std::to_string(index) + " (" + name +
                  "): " + why);
    if (out.shape != shapeOf(out0))
      return fail("instruction " + std::to_string(index) + " (" + name +
                  ") gives " + shapeString(out.shape) +
                  ", but its output tensor is " + shapeString(shapeOf(out0)));
    results.push_back(std::move(out));
    return true;
  }

  const plan::Plan &plan;
  const plan::RankProgram &program;
  Communicator &comm;
  bool trace;
  RunStats &stats;
  std::string &error;
  std::vector<uint8_t> arena;
  std::vector<Tensor> values;
  std::vector<int64_t> lastUse;
  uint64_t live = 0;
};

} // namespace

const plan::RankProgram *findRankProgram(const plan::Plan &plan, int rank) {
  if (plan.ranks())
    for (const plan::RankProgram *program : *plan.ranks())
      if (program->rank() == rank)
        return program;
  return nullptr;
}

bool runRank(const plan::Plan &plan, int rank,
             const std::map<std::string, Tensor> &inputs,
             const std::map<std::string, Tensor> &weights,
             std::map<std::string, Tensor> &outputs, RunStats &stats,
             std::string &error, const RunOptions &options) {
  const plan::RankProgram *program = findRankProgram(plan, rank);
  if (!program) {
    error = "rank " + std::to_string(rank) +
            " is not in the plan (world size " +
            std::to_string(plan.world_size()) + ")";
    return false;
  }
  std::unique_ptr<Communicator> local;
  Communicator *comm = options.comm;
  if (!comm) {
    local = createLocalCommunicator(planGroups(plan), rank);
    comm = local.get();
  } else if (comm->rank() != rank || comm->groups() != planGroups(plan)) {
    error = "rank " + std::to_string(rank) +
            ": the communicator was made for rank " +
            std::to_string(comm->rank()) +
            " or for other device groups "
            "than this plan's";
    return false;
  }
  Machine machine(plan, *program, *comm, options.trace, stats, error);
  bool ok = machine.bind(inputs, weights) && machine.run();
  // Sends still in flight finish with the run, so no step leaks into the
  // next; the counts are this run's.
  std::string why;
  if (ok && !comm->flush(why)) {
    error = "rank " + std::to_string(rank) + ": " + why;
    ok = false;
  }
  stats.commBytes = comm->takeByteCounts();
  if (!ok)
    return false;
  if (program->outputs())
    for (int32_t index : *program->outputs()) {
      const plan::Tensor &t = *program->tensors()->Get(index);
      outputs[t.name() ? t.name()->str() : std::to_string(index)] =
          machine.output(index);
    }
  return true;
}

} // namespace galvatron::rt
