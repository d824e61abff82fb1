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

#include "galvatron/runtime/AttentionKernels.h"
#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/FusedKernels.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/OptimizerKernels.h"
#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Shard.h"

#include <chrono>
#include <cstring>
#include <optional>

namespace galvatron::rt {

namespace {

// Plan reductions convert to the kernels' by value.
static_assert(static_cast<int>(plan::Reduction::Sum) ==
                      static_cast<int>(Reduction::Sum) &&
                  static_cast<int>(plan::Reduction::Prod) ==
                      static_cast<int>(Reduction::Prod),
              "plan::Reduction and rt::Reduction differ");

/// An attribute vector as int64s; absent reads as empty.
template <typename T>
std::vector<int64_t> int64s(const flatbuffers::Vector<T> *v) {
  return v ? std::vector<int64_t>(v->begin(), v->end())
           : std::vector<int64_t>();
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
        if (given == &piece)
          values[i] = std::move(piece);
        else
          values[i] = *given;
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
             communicates ? static_cast<int32_t>(groupOf(inst)) : -1, start,
             nowUs()});
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

  /// One instruction's operands and first result's plan entry.
  struct Call {
    const plan::Instruction &inst;
    std::vector<Tensor> in;
    const plan::Tensor &out0;
  };
  /// What a kernel group made of an instruction.
  enum class Outcome { NotMine, Failed, Done };

  bool need(const Call &c, size_t inputs) {
    if (c.in.size() < inputs)
      return fail(std::string("instruction ") +
                  plan::EnumNameOpcode(c.inst.opcode()) + " needs " +
                  std::to_string(inputs) + " inputs");
    return true;
  }
  /// The instruction's attribute table of type T; null (and the run fails)
  /// when it carries another (the verifier refuses such plans).
  template <typename T> const T *attrs(const Call &c) {
    const T *table = c.inst.attrs_as<T>();
    if (!table)
      fail(std::string("instruction ") + plan::EnumNameOpcode(c.inst.opcode()) +
           " has no " +
           plan::EnumNameInstructionAttrs(
               plan::InstructionAttrsTraits<T>::enum_value) +
           " table");
    return table;
  }

  static Outcome done(bool ok) { return ok ? Outcome::Done : Outcome::Failed; }

  /// Elementwise kernels: binary, unary, compare, select and cast.
  Outcome elementwise(const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const auto &in = c.in;
    static const std::pair<O, Binary> binaries[] = {
        {O::Add, Binary::Add}, {O::Sub, Binary::Sub}, {O::Mul, Binary::Mul},
        {O::Div, Binary::Div}, {O::Pow, Binary::Pow}, {O::Max, Binary::Max},
        {O::Min, Binary::Min}, {O::And, Binary::And}, {O::Or, Binary::Or}};
    for (auto [op, kind] : binaries)
      if (c.inst.opcode() == op) {
        if (!need(c, 2))
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
        if (!need(c, 1))
          return Outcome::Failed;
        results.push_back(unary(kind, in[0]));
        return Outcome::Done;
      }
    switch (c.inst.opcode()) {
    case O::Compare: {
      static const Binary kinds[] = {Binary::Eq, Binary::Ne, Binary::Lt,
                                     Binary::Le, Binary::Gt, Binary::Ge};
      const auto *a = attrs<plan::CompareAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      int p = static_cast<int>(a->predicate());
      if (p < 0 || p > 5)
        return done(fail("bad Compare predicate " + std::to_string(p)));
      results.push_back(binary(kinds[p], in[0], in[1]));
      return Outcome::Done;
    }
    case O::Where:
      if (!need(c, 3))
        return Outcome::Failed;
      results.push_back(where(in[0], in[1], in[2]));
      return Outcome::Done;
    case O::Cast:
      if (!need(c, 1))
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
    switch (c.inst.opcode()) {
    case O::Copy:
      if (!need(c, 1))
        return Outcome::Failed;
      results.push_back(reshape(in[0], shapeOf(c.out0)));
      return Outcome::Done;
    case O::Transpose: {
      const auto *a = attrs<plan::TransposeAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      std::vector<int64_t> perm = int64s(a->perm());
      if (static_cast<int64_t>(perm.size()) != in[0].rank())
        return done(fail("Transpose needs one permutation entry per input "
                         "dimension"));
      results.push_back(transpose(in[0], perm));
      return Outcome::Done;
    }
    case O::Slice: {
      const auto *a = attrs<plan::SliceAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      std::vector<int64_t> starts = int64s(a->starts()),
                           limits = int64s(a->limits()),
                           steps = int64s(a->steps());
      size_t r = static_cast<size_t>(in[0].rank());
      if (starts.size() != r || limits.size() != r || steps.size() != r)
        return done(fail("Slice needs a start, limit and step per input "
                         "dimension"));
      results.push_back(slice(in[0], starts, limits, steps));
      return Outcome::Done;
    }
    case O::Concat: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      std::vector<const Tensor *> parts;
      for (const Tensor &t : in)
        parts.push_back(&t);
      results.push_back(concat(parts, a->axis()));
      return Outcome::Done;
    }
    case O::Split: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      std::vector<int64_t> sizes;
      int64_t axis = a->axis() < 0 ? a->axis() + in[0].rank() : a->axis();
      for (int32_t t : *c.inst.outputs())
        sizes.push_back(program.tensors()->Get(t)->shape()->Get(axis));
      results = split(in[0], axis, sizes);
      return Outcome::Done;
    }
    case O::Expand:
      if (!need(c, 1))
        return Outcome::Failed;
      results.push_back(expand(in[0], shapeOf(c.out0)));
      return Outcome::Done;
    case O::Gather: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      int64_t axis = a->axis();
      if (axis < -in[0].rank() || axis >= in[0].rank())
        return done(fail("Gather axis out of range"));
      int64_t n = in[0].shape[axis < 0 ? axis + in[0].rank() : axis];
      if (!checkIndices(c.inst, 1, -n, n))
        return Outcome::Failed;
      results.push_back(gather(in[0], in[1], axis));
      return Outcome::Done;
    }
    case O::Embedding:
      if (!need(c, 2) || in[0].rank() != 2 ||
          !checkIndices(c.inst, 1, 0, in[0].shape[0]))
        return Outcome::Failed;
      results.push_back(embedding(in[0], in[1]));
      return Outcome::Done;
    case O::EmbeddingGrad: {
      const auto *a = attrs<plan::EmbeddingGradAttrs>(c);
      if (!a || !need(c, 2) || !checkIndices(c.inst, 1, 0, a->rows()))
        return Outcome::Failed;
      results.push_back(embeddingGrad(in[0], in[1], a->rows()));
      return Outcome::Done;
    }
    default:
      return Outcome::NotMine;
    }
  }

  /// Contractions, reductions, normalisations, attention and loss.
  Outcome compute(const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const auto &in = c.in;
    switch (c.inst.opcode()) {
    case O::Matmul: {
      const auto *a = attrs<plan::MatmulAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      results.push_back(
          matmul(in[0], in[1], a->transpose_lhs(), a->transpose_rhs()));
      return Outcome::Done;
    }
    case O::Linear: {
      const auto *a = attrs<plan::LinearAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      results.push_back(linear(in[0], in[1], in.size() > 2 ? &in[2] : nullptr,
                               a->layout() == plan::WeightLayout::OutIn));
      return Outcome::Done;
    }
    case O::Reduce: {
      const auto *a = attrs<plan::ReduceAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      results.push_back(reduce(static_cast<Reduction>(a->kind()), in[0],
                               int64s(a->axes()), a->keepdims()));
      return Outcome::Done;
    }
    case O::Softmax:
    case O::LogSoftmax: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      results.push_back(c.inst.opcode() == O::Softmax
                            ? softmax(in[0], a->axis())
                            : logSoftmax(in[0], a->axis()));
      return Outcome::Done;
    }
    case O::ArgMax: {
      const auto *a = attrs<plan::ArgMaxAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      results.push_back(
          argMax(in[0], a->axis(), a->keepdims(), a->select_last_index()));
      return Outcome::Done;
    }
    case O::LayerNorm:
    case O::RmsNorm: {
      const auto *a = attrs<plan::NormAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      results.push_back(c.inst.opcode() == O::LayerNorm
                            ? layerNorm(in[0], in[1],
                                        in.size() > 2 ? &in[2] : nullptr,
                                        a->eps())
                            : rmsNorm(in[0], in[1], a->eps()));
      return Outcome::Done;
    }
    case O::Rotary: {
      const auto *a = attrs<plan::RotaryAttrs>(c);
      if (!a || !need(c, 3))
        return Outcome::Failed;
      results.push_back(rotary(in[0], in[1], in[2], a->interleaved()));
      return Outcome::Done;
    }
    case O::Attention: {
      const auto *a = attrs<plan::AttentionAttrs>(c);
      if (!a || !need(c, 3))
        return Outcome::Failed;
      results.push_back(attention(in[0], in[1], in[2],
                                  in.size() > 3 ? &in[3] : nullptr, a->causal(),
                                  a->scale()));
      return Outcome::Done;
    }
    case O::AdamWUpdate: {
      const auto *a = attrs<plan::AdamWAttrs>(c);
      if (!a || !need(c, 6))
        return Outcome::Failed;
      results = adamwUpdate(
          {a->beta1(), a->beta2(), a->epsilon(), a->weight_decay()}, in[0],
          in[1], in[2], in[3], in[4].f32()[0], in[5].f32()[0]);
      return Outcome::Done;
    }
    case O::AttentionGrad: {
      const auto *a = attrs<plan::AttentionAttrs>(c);
      if (!a || !need(c, 4))
        return Outcome::Failed;
      for (Tensor &grad : attentionGrad(in[0], in[1], in[2], in[3],
                                        in.size() > 4 ? &in[4] : nullptr,
                                        a->causal(), a->scale()))
        results.push_back(std::move(grad));
      return Outcome::Done;
    }
    case O::CrossEntropy: {
      const auto *a = attrs<plan::CrossEntropyAttrs>(c);
      if (!a || !need(c, 2) || in[0].rank() < 1 ||
          !checkIndices(c.inst, 1, 0, in[0].shape.back(), a->ignore_index()))
        return Outcome::Failed;
      results.push_back(crossEntropy(in[0], in[1],
                                     a->reduction() == plan::Reduction::Mean,
                                     a->ignore_index()));
      return Outcome::Done;
    }
    default:
      return fused(c, results);
    }
  }

  /// The fused backward kernels (their shapes are the plan verifier's).
  Outcome fused(const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const auto &in = c.in;
    // The three operands are f32 (but for the loss's labels).
    auto floats = [&](bool labels, size_t operands = 3) {
      for (size_t k = 0; k < operands; ++k)
        if (!(labels && k == 1) && in[k].dtype != DType::F32)
          return fail(std::string(plan::EnumNameOpcode(c.inst.opcode())) +
                      " takes f32 operands");
      return true;
    };
    switch (c.inst.opcode()) {
    case O::CrossEntropyGrad: {
      const auto *a = attrs<plan::CrossEntropyAttrs>(c);
      if (!a || !need(c, 3) || in[0].rank() < 1 || !floats(true) ||
          !checkIndices(c.inst, 1, 0, in[0].shape.back(), a->ignore_index()))
        return Outcome::Failed;
      results.push_back(crossEntropyGrad(
          in[0], in[1], in[2], a->reduction() == plan::Reduction::Mean,
          a->ignore_index()));
      return Outcome::Done;
    }
    case O::GeluGrad:
    case O::GeluTanhGrad:
      if (!need(c, 2) || !floats(false, 2))
        return Outcome::Failed;
      results.push_back(
          geluGrad(in[0], in[1], c.inst.opcode() == O::GeluTanhGrad));
      return Outcome::Done;
    case O::LayerNormGrad:
    case O::RmsNormGrad: {
      const auto *a = attrs<plan::NormAttrs>(c);
      if (!a || !need(c, 3) || !floats(false))
        return Outcome::Failed;
      results = c.inst.opcode() == O::LayerNormGrad
                    ? layerNormGrad(in[0], in[1], in[2], a->eps())
                    : rmsNormGrad(in[0], in[1], in[2], a->eps());
      return Outcome::Done;
    }
    default:
      return Outcome::NotMine;
    }
  }

  bool execute(int64_t index, const plan::Instruction &inst,
               std::vector<Tensor> &results) {
    Call c{inst, {}, *program.tensors()->Get(inst.outputs()->Get(0))};
    for (int32_t t : *inst.inputs())
      c.in.push_back(load(t));
    for (auto group :
         {&Machine::elementwise, &Machine::movement, &Machine::compute}) {
      Outcome outcome = (this->*group)(c, results);
      if (outcome != Outcome::NotMine)
        return outcome == Outcome::Done;
    }
    if (isCommunication(inst.opcode()))
      return communicate(index, c, results);
    return fail(std::string("no kernel for instruction ") +
                plan::EnumNameOpcode(inst.opcode()));
  }

  /// Communication instructions: the group and the rest of each
  /// collective's attribute table, as plan.fbs lists them.
  bool communicate(int64_t index, const Call &c, std::vector<Tensor> &results) {
    using O = plan::Opcode;
    const plan::Instruction &inst = c.inst;
    const plan::Tensor &out0 = c.out0;
    const char *name = plan::EnumNameOpcode(inst.opcode());
    std::string what =
        "instruction " + std::to_string(index) + " (" + name + ")";
    size_t inputs = inst.opcode() == O::Recv ? 0 : 1;
    int64_t group = groupOf(inst);
    if (c.in.size() < inputs || group < 0)
      return fail(what + " needs " + std::to_string(inputs) +
                  " inputs and its " +
                  plan::EnumNameInstructionAttrs(attrsTypeOf(inst.opcode())) +
                  " table");
    const std::vector<Tensor> &in = c.in;
    int g = static_cast<int>(group);
    Tensor out;
    std::string why;
    bool ok = true;
    switch (inst.opcode()) {
    case O::AllReduce: {
      auto kind = inst.attrs_as_AllReduceAttrs()->reduction();
      if (kind < plan::Reduction::MIN || kind > plan::Reduction::MAX)
        return fail(what + " has reduction " +
                    std::to_string(static_cast<int>(kind)) +
                    "; 0 to 4 are sum, mean, max, min, prod");
      ok = comm.allReduce(g, static_cast<Reduction>(kind), in[0], out, why);
      break;
    }
    case O::AllGather:
      ok = comm.allGather(g, inst.attrs_as_CollectiveAxisAttrs()->axis(), in[0],
                          out, why);
      break;
    case O::ReduceScatter:
      ok = comm.reduceScatter(g, inst.attrs_as_CollectiveAxisAttrs()->axis(),
                              in[0], out, why);
      break;
    case O::AllToAll: {
      const auto *a = inst.attrs_as_AllToAllAttrs();
      ok = comm.allToAll(g, a->split_axis(), a->concat_axis(), in[0], out, why);
      break;
    }
    case O::Broadcast:
      ok = comm.broadcast(g, inst.attrs_as_BroadcastAttrs()->root(), in[0], out,
                          why);
      break;
    case O::Send:
      // The output passes the input on (ordering what reads it after the
      // send); an output of another size is a token and reads as zeros.
      ok = comm.send(g, inst.attrs_as_PeerAttrs()->peer(), in[0], why);
      out = numElements(shapeOf(out0)) == in[0].size() &&
                    toDType(out0.dtype()) == in[0].dtype
                ? reshape(in[0], shapeOf(out0))
                : Tensor::zeros(toDType(out0.dtype()), shapeOf(out0));
      break;
    case O::Recv:
      out = Tensor(toDType(out0.dtype()), shapeOf(out0));
      ok = comm.recv(g, inst.attrs_as_PeerAttrs()->peer(), out, why);
      break;
    default:
      break;
    }
    if (!ok)
      return fail(what + ": " + why);
    if (out.shape != shapeOf(out0))
      return fail(what + " gives " + shapeString(out.shape) +
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
