//===- Executor.cpp - run one rank's instruction stream -------------------===//
//
// Tensors live where the plan says: inputs and weights are bound by name,
// constants come from the plan, everything else sits in the arena at the
// offset the memory planner chose. Every tensor is a view of its place, made
// once: kernels read their inputs where they lie and write their results
// straight into their arena slots (the planner keeps an instruction's
// outputs clear of its inputs), so nothing is copied per instruction.
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

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <new>
#include <optional>

namespace galvatron::rt {

namespace {

// Plan reductions convert to the kernels' by value.
static_assert(static_cast<int>(plan::Reduction::Sum) ==
                      static_cast<int>(Reduction::Sum) &&
                  static_cast<int>(plan::Reduction::Prod) ==
                      static_cast<int>(Reduction::Prod),
              "plan::Reduction and rt::Reduction differ");

/// The arena's bytes, kept by the thread between runs: a training step
/// reuses the last step's pages instead of faulting in fresh ones. Zeroed
/// when it grows; 64-byte aligned like the planner's offsets.
uint8_t *threadArena(size_t bytes) {
  struct Buffer {
    uint8_t *data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (bytes > buffer.size || !buffer.data) {
    std::free(buffer.data);
    // Never empty: even an empty arena's views point at memory.
    size_t rounded = std::max<size_t>((bytes + 63) / 64 * 64, 64);
    buffer.data = static_cast<uint8_t *>(std::aligned_alloc(64, rounded));
    if (!buffer.data)
      throw std::bad_alloc();
    std::memset(buffer.data, 0, rounded);
    buffer.size = rounded;
  }
  return buffer.data;
}

class Machine {
public:
  Machine(const plan::Plan &plan, const plan::RankProgram &program,
          Communicator &comm, bool trace, RunStats &stats, std::string &error)
      : plan(plan), program(program), comm(comm), trace(trace), stats(stats),
        error(error), arena(threadArena(program.arena_bytes())) {
    stats.arenaBytes = program.arena_bytes();
    // Last instruction reading each arena buffer, for the live-bytes count;
    // a reshape the planner placed on its operand is the same buffer.
    bufferLifetimes(program, bufferOf, lastUse);
  }

  bool bind(const std::map<std::string, Tensor> &inputs,
            const std::map<std::string, Tensor> &weights) {
    views.resize(program.tensors()->size());
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
        // Read in place unless cut here.
        if (given == &piece)
          given = &owned.emplace_back(std::move(piece));
        views[i] = TensorView(*given);
        stats.boundBytes += given->byteSize();
      } else if (t.storage() == plan::Storage::Constant) {
        views[i] = constant(t);
      } else {
        views[i] =
            TensorView(toDType(t.dtype()), shapeOf(t), arena + t.offset());
      }
    }
    return true;
  }

  /// What writing in place assumes of the plan (the memory planner's
  /// promises, which a damaged plan may break): arena elements aligned, and
  /// no result over one of its own instruction's inputs (a copy may land on
  /// exactly its input).
  bool checkLayout() {
    for (const plan::Tensor *t : *program.tensors())
      if (t->storage() == plan::Storage::Arena &&
          t->offset() % dtypeSize(toDType(t->dtype())) != 0)
        return fail("tensor at arena offset " + std::to_string(t->offset()) +
                    " is not aligned to its " +
                    std::to_string(dtypeSize(toDType(t->dtype()))) +
                    "-byte elements");
    for (size_t i = 0; i < program.instructions()->size(); ++i) {
      const plan::Instruction &inst = *program.instructions()->Get(i);
      bool copies = inst.opcode() == plan::Opcode::Copy ||
                    inst.opcode() == plan::Opcode::Send;
      for (int32_t o : *inst.outputs())
        for (int32_t t : *inst.inputs()) {
          const plan::Tensor &out = *program.tensors()->Get(o);
          const plan::Tensor &in = *program.tensors()->Get(t);
          if (in.storage() != plan::Storage::Arena || !out.bytes() ||
              !in.bytes() || out.offset() >= in.offset() + in.bytes() ||
              in.offset() >= out.offset() + out.bytes() ||
              (copies && in.offset() == out.offset() &&
               in.bytes() == out.bytes()))
            continue;
          return fail("instruction " + std::to_string(i) + " (" +
                      plan::EnumNameOpcode(inst.opcode()) + ") writes " +
                      tensorName(o) + " over its input " + tensorName(t));
        }
    }
    return true;
  }

  bool run() {
    for (size_t i = 0; i < program.instructions()->size(); ++i) {
      const plan::Instruction &inst = *program.instructions()->Get(i);
      int64_t start = trace ? nowUs() : 0;
      if (!execute(static_cast<int64_t>(i), inst))
        return false;
      if (trace) {
        bool communicates = isCommunication(inst.opcode());
        stats.trace.push_back(
            {plan::EnumNameOpcode(inst.opcode()), static_cast<int32_t>(i),
             communicates ? static_cast<int32_t>(groupOf(inst)) : -1, start,
             nowUs()});
      }
      for (int32_t t : *inst.outputs())
        wrote(t);
      release(static_cast<int64_t>(i));
    }
    return true;
  }

  /// Points each fed-back output of an AdamW update at its state input's
  /// tensor in `state` when the update is that input's last reader (the
  /// kernel reads each element before it writes it). Returns those outputs.
  std::vector<int32_t> updateInPlace(std::map<std::string, Tensor> &state) {
    std::vector<int32_t> updated;
    if (!program.feedback())
      return updated;
    size_t count = program.tensors()->size();
    std::vector<int64_t> producer(count, -1), lastReader(count, -1);
    for (size_t i = 0; i < program.instructions()->size(); ++i) {
      const plan::Instruction &inst = *program.instructions()->Get(i);
      for (int32_t t : *inst.inputs())
        lastReader[t] = static_cast<int64_t>(i);
      for (int32_t t : *inst.outputs())
        producer[t] = static_cast<int64_t>(i);
    }
    // AdamWUpdate's outputs (parameter, m, v) and the operands they update.
    constexpr int32_t kUpdatedOperand[3] = {0, 2, 3};
    for (const plan::Feedback *f : *program.feedback()) {
      int32_t out = program.outputs()->Get(f->output());
      int32_t in = program.inputs()->Get(f->input());
      if (producer[out] < 0 || lastReader[in] != producer[out])
        continue;
      const plan::Instruction &inst =
          *program.instructions()->Get(producer[out]);
      if (inst.opcode() != plan::Opcode::AdamWUpdate)
        continue;
      const auto &outs = *inst.outputs();
      const auto &ins = *inst.inputs();
      auto at = std::find(outs.begin(), outs.end(), out) - outs.begin();
      if (at > 2 || ins.size() != 6 || ins.Get(kUpdatedOperand[at]) != in ||
          std::count(ins.begin(), ins.end(), in) != 1)
        continue;
      auto lent = state.find(program.tensors()->Get(in)->name()->str());
      // A state input cut here from a whole tensor is the executor's copy.
      if (lent == state.end() || lent->second.data() != views[in].data() ||
          views[out].byteSize() != views[in].byteSize())
        continue;
      views[out] = TensorView(lent->second);
      updated.push_back(out);
    }
    return updated;
  }

  /// An output's value copied out of the arena for the caller, into
  /// `into`'s bytes when they fit (a trainer passes last step's outputs).
  void output(int32_t index, Tensor &into) {
    const TensorView &view = views[index];
    if (into.dtype != view.dtype || into.byteSize() != view.byteSize()) {
      into = Tensor(view);
      return;
    }
    into.shape = view.shape;
    std::memcpy(into.data(), view.data(), view.byteSize());
  }

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

  /// A constant, read where the plan holds it when its elements are
  /// aligned there (FlatBuffers aligns the blob only to 4 bytes), else
  /// from an aligned copy.
  TensorView constant(const plan::Tensor &t) {
    DType dtype = toDType(t.dtype());
    const uint8_t *bytes = plan.constants()->data() + t.offset();
    if (reinterpret_cast<uintptr_t>(bytes) % dtypeSize(dtype) == 0)
      // Kernels only read their inputs, so the view never writes the plan.
      return TensorView(dtype, shapeOf(t), const_cast<uint8_t *>(bytes));
    Tensor &copy = owned.emplace_back(dtype, shapeOf(t));
    std::memcpy(copy.data(), bytes, t.bytes());
    return TensorView(copy);
  }

  /// Results go to the arena only: any other place is the caller's memory
  /// or the plan's.
  bool writable(int32_t index) {
    if (program.tensors()->Get(index)->storage() != plan::Storage::Arena)
      return fail("instruction writes to tensor " + std::to_string(index) +
                  ", which is not in the arena");
    return true;
  }

  /// Copies a result made elsewhere (by a collective) into its slot.
  bool store(int32_t index, const Tensor &value) {
    const plan::Tensor &t = *program.tensors()->Get(index);
    if (value.bytes.size() != t.bytes())
      return fail("instruction wrote " + std::to_string(value.bytes.size()) +
                  " bytes to tensor " + std::to_string(index) + " of " +
                  std::to_string(t.bytes()));
    if (!writable(index))
      return false;
    std::memcpy(views[index].data(), value.data(), t.bytes());
    return true;
  }

  /// Counts tensor `index` as written and live.
  void wrote(int32_t index) {
    const plan::Tensor &t = *program.tensors()->Get(index);
    stats.highWaterBytes =
        std::max<uint64_t>(stats.highWaterBytes, t.offset() + t.bytes());
    if (bufferOf[index] != index)
      return; // an alias of a buffer already counted
    live += t.bytes();
    stats.peakLiveBytes = std::max(stats.peakLiveBytes, live);
  }

  /// Arena tensors whose last reader was instruction `i` are dead now.
  void release(int64_t i) {
    const plan::Instruction &inst = *program.instructions()->Get(i);
    for (int32_t input : *inst.inputs()) {
      int32_t t = bufferOf[input];
      if (lastUse[t] == i &&
          program.tensors()->Get(t)->storage() == plan::Storage::Arena) {
        live -= program.tensors()->Get(t)->bytes();
        lastUse[t] = -2; // counted once even if read twice
      }
    }
    // Results nobody reads die at once.
    for (int32_t t : *inst.outputs())
      if (bufferOf[t] == t && lastUse[t] == -1) {
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
    const TensorView &ids = views[inst.inputs()->Get(input)];
    if (ids.dtype != DType::I64 && ids.dtype != DType::I32)
      return fail(std::string(plan::EnumNameOpcode(inst.opcode())) +
                  " indices must be integers");
    for (int64_t i = 0; i < ids.size(); ++i) {
      int64_t v = ids.dtype == DType::I64
                      ? ids.i64()[i]
                      : reinterpret_cast<const int32_t *>(ids.data())[i];
      if ((v < low || v >= high) && v != skip)
        return fail(std::string(plan::EnumNameOpcode(inst.opcode())) + " of '" +
                    tensorName(inst.inputs()->Get(input)) + "': index " +
                    std::to_string(v) + " at position " + std::to_string(i) +
                    " is outside [" + std::to_string(low) + ", " +
                    std::to_string(high) + ")");
    }
    return true;
  }

  /// One instruction's operands, the places of its results, and its first
  /// result's plan entry.
  struct Call {
    const plan::Instruction &inst;
    std::vector<TensorView> in;
    std::vector<TensorView> out;
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
  Outcome elementwise(Call &c) {
    using O = plan::Opcode;
    const auto &in = c.in;
    auto &out = c.out;
    Binary binaryKind;
    if (binaryKindOf(c.inst.opcode(), binaryKind)) {
      if (!need(c, 2))
        return Outcome::Failed;
      binary(binaryKind, in[0], in[1], out[0]);
      return Outcome::Done;
    }
    Unary unaryKind;
    if (unaryKindOf(c.inst.opcode(), unaryKind)) {
      if (!need(c, 1))
        return Outcome::Failed;
      unary(unaryKind, in[0], out[0]);
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
      binary(kinds[p], in[0], in[1], out[0]);
      return Outcome::Done;
    }
    case O::Where:
      if (!need(c, 3))
        return Outcome::Failed;
      where(in[0], in[1], in[2], out[0]);
      return Outcome::Done;
    case O::Cast:
      if (!need(c, 1))
        return Outcome::Failed;
      cast(in[0], out[0]);
      return Outcome::Done;
    default:
      return Outcome::NotMine;
    }
  }

  /// Data movement: copies, layouts, slices, gathers and lookups.
  Outcome movement(Call &c) {
    using O = plan::Opcode;
    const auto &in = c.in;
    auto &out = c.out;
    switch (c.inst.opcode()) {
    case O::Copy:
      if (!need(c, 1))
        return Outcome::Failed;
      reshape(in[0], out[0]);
      return Outcome::Done;
    case O::Transpose: {
      const auto *a = attrs<plan::TransposeAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      std::vector<int64_t> perm = int64s(a->perm());
      if (static_cast<int64_t>(perm.size()) != in[0].rank())
        return done(fail("Transpose needs one permutation entry per input "
                         "dimension"));
      transpose(in[0], perm, out[0]);
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
      slice(in[0], starts, steps, out[0]);
      return Outcome::Done;
    }
    case O::Concat: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      std::vector<const TensorView *> parts;
      for (const TensorView &t : in)
        parts.push_back(&t);
      concat(parts, a->axis(), out[0]);
      return Outcome::Done;
    }
    case O::Split: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      int64_t axis = a->axis() < 0 ? a->axis() + in[0].rank() : a->axis();
      split(in[0], axis, out);
      return Outcome::Done;
    }
    case O::Expand:
      if (!need(c, 1))
        return Outcome::Failed;
      expand(in[0], out[0]);
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
      gather(in[0], in[1], axis, out[0]);
      return Outcome::Done;
    }
    case O::Embedding:
      if (!need(c, 2) || in[0].rank() != 2 ||
          !checkIndices(c.inst, 1, 0, in[0].shape[0]))
        return Outcome::Failed;
      embedding(in[0], in[1], out[0]);
      return Outcome::Done;
    case O::EmbeddingGrad: {
      const auto *a = attrs<plan::EmbeddingGradAttrs>(c);
      if (!a || !need(c, 2) || !checkIndices(c.inst, 1, 0, a->rows()))
        return Outcome::Failed;
      embeddingGrad(in[0], in[1], out[0], a->padding_idx());
      return Outcome::Done;
    }
    default:
      return Outcome::NotMine;
    }
  }

  /// Contractions, reductions, normalisations, attention and loss.
  Outcome compute(Call &c) {
    using O = plan::Opcode;
    const auto &in = c.in;
    auto &out = c.out;
    switch (c.inst.opcode()) {
    case O::Matmul: {
      const auto *a = attrs<plan::MatmulAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      matmul(in[0], in[1], out[0], a->transpose_lhs(), a->transpose_rhs());
      return Outcome::Done;
    }
    case O::Linear: {
      const auto *a = attrs<plan::LinearAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      linear(in[0], in[1], in.size() > 2 ? &in[2] : nullptr,
             a->layout() == plan::WeightLayout::OutIn, out[0]);
      return Outcome::Done;
    }
    case O::Reduce: {
      const auto *a = attrs<plan::ReduceAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      reduce(static_cast<Reduction>(a->kind()), in[0], int64s(a->axes()),
             out[0]);
      return Outcome::Done;
    }
    case O::Softmax:
    case O::LogSoftmax: {
      const auto *a = attrs<plan::AxisAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      if (c.inst.opcode() == O::Softmax)
        softmax(in[0], a->axis(), out[0]);
      else
        logSoftmax(in[0], a->axis(), out[0]);
      return Outcome::Done;
    }
    case O::ArgMax: {
      const auto *a = attrs<plan::ArgMaxAttrs>(c);
      if (!a || !need(c, 1))
        return Outcome::Failed;
      argMax(in[0], a->axis(), a->select_last_index(), out[0]);
      return Outcome::Done;
    }
    case O::LayerNorm:
    case O::RmsNorm: {
      const auto *a = attrs<plan::NormAttrs>(c);
      if (!a || !need(c, 2))
        return Outcome::Failed;
      if (c.inst.opcode() == O::LayerNorm)
        layerNorm(in[0], in[1], in.size() > 2 ? &in[2] : nullptr, a->eps(),
                  out[0]);
      else
        rmsNorm(in[0], in[1], a->eps(), out[0]);
      return Outcome::Done;
    }
    case O::AddLayerNorm:
    case O::AddRmsNorm: {
      const auto *a = attrs<plan::NormAttrs>(c);
      if (!a || !need(c, 3))
        return Outcome::Failed;
      addNorm(in[0], in[1], in[2], in.size() > 3 ? &in[3] : nullptr,
              c.inst.opcode() == O::AddRmsNorm, a->eps(), out[0], out[1]);
      return Outcome::Done;
    }
    case O::Rotary: {
      const auto *a = attrs<plan::RotaryAttrs>(c);
      if (!a || !need(c, 3))
        return Outcome::Failed;
      rotary(in[0], in[1], in[2], a->interleaved(), out[0]);
      return Outcome::Done;
    }
    case O::Attention: {
      const auto *a = attrs<plan::AttentionAttrs>(c);
      if (!a || !need(c, 3))
        return Outcome::Failed;
      attention(in[0], in[1], in[2], in.size() > 3 ? &in[3] : nullptr,
                a->causal(), a->scale(), out[0]);
      return Outcome::Done;
    }
    case O::CrossEntropy: {
      const auto *a = attrs<plan::CrossEntropyAttrs>(c);
      if (!a || !need(c, 2) || in[0].rank() < 1 ||
          !checkIndices(c.inst, 1, 0, in[0].shape.back(), a->ignore_index()))
        return Outcome::Failed;
      crossEntropy(in[0], in[1], a->reduction() == plan::Reduction::Mean,
                   a->ignore_index(), out[0]);
      return Outcome::Done;
    }
    default:
      return fused(c);
    }
  }

  /// The fused backward and optimizer kernels (their shapes are the plan
  /// verifier's).
  Outcome fused(Call &c) {
    using O = plan::Opcode;
    const auto &in = c.in;
    auto &out = c.out;
    // The first `operands` operands are f32 (but for the loss's labels).
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
      crossEntropyGrad(in[0], in[1], in[2],
                       a->reduction() == plan::Reduction::Mean,
                       a->ignore_index(), out[0]);
      return Outcome::Done;
    }
    case O::LayerNormGrad:
    case O::RmsNormGrad: {
      const auto *a = attrs<plan::NormAttrs>(c);
      if (!a || !need(c, 3) || !floats(false))
        return Outcome::Failed;
      if (c.inst.opcode() == O::LayerNormGrad)
        layerNormGrad(in[0], in[1], in[2], a->eps(), out[0], out[1], out[2]);
      else
        rmsNormGrad(in[0], in[1], in[2], a->eps(), out[0], out[1]);
      return Outcome::Done;
    }
    case O::GeluGrad:
    case O::GeluTanhGrad:
      if (!need(c, 2) || !floats(false, 2))
        return Outcome::Failed;
      geluGrad(in[0], in[1], c.inst.opcode() == O::GeluTanhGrad, out[0]);
      return Outcome::Done;
    case O::AttentionGrad: {
      const auto *a = attrs<plan::AttentionAttrs>(c);
      if (!a || !need(c, 4) || !floats(false, 4))
        return Outcome::Failed;
      attentionGrad(in[0], in[1], in[2], in[3],
                    in.size() > 4 ? &in[4] : nullptr, a->causal(), a->scale(),
                    out[0], out[1], out[2]);
      return Outcome::Done;
    }
    case O::AdamWUpdate: {
      const auto *a = attrs<plan::AdamWAttrs>(c);
      if (!a || !need(c, 6) || !floats(false, 6))
        return Outcome::Failed;
      adamwUpdate({a->beta1(), a->beta2(), a->epsilon(), a->weight_decay()},
                  in[0].size(), in[0].f32(), in[1].f32(), in[2].f32(),
                  in[3].f32(), in[4].f32()[0], in[5].f32()[0], out[0].f32(),
                  out[1].f32(), out[2].f32());
      return Outcome::Done;
    }
    default:
      return Outcome::NotMine;
    }
  }

  bool execute(int64_t index, const plan::Instruction &inst) {
    Call c{inst, {}, {}, *program.tensors()->Get(inst.outputs()->Get(0))};
    for (int32_t t : *inst.inputs())
      c.in.push_back(views[t]);
    for (int32_t t : *inst.outputs()) {
      if (!writable(t))
        return false;
      c.out.push_back(views[t]);
    }
    if (isCommunication(inst.opcode()))
      return communicate(index, c);
    if (inst.opcode() != plan::Opcode::Cast && touchesBf16(c))
      return computeWidened(c);
    return computeKernel(c);
  }

  bool computeKernel(Call &c) {
    for (auto group :
         {&Machine::elementwise, &Machine::movement, &Machine::compute}) {
      Outcome outcome = (this->*group)(c);
      if (outcome != Outcome::NotMine)
        return outcome == Outcome::Done;
    }
    return fail(std::string("no kernel for instruction ") +
                plan::EnumNameOpcode(c.inst.opcode()));
  }

  static bool touchesBf16(const Call &c) {
    auto bf16 = [](const TensorView &t) { return t.dtype == DType::BF16; };
    return std::any_of(c.in.begin(), c.in.end(), bf16) ||
           std::any_of(c.out.begin(), c.out.end(), bf16);
  }

  /// A bf16 instruction runs as a GPU kernel does: on its operands widened
  /// to fp32, computing in fp32, and rounding each bf16 result once when it
  /// is stored.
  bool computeWidened(Call &c) {
    std::deque<Tensor> wide;
    for (TensorView &operand : c.in)
      if (operand.dtype == DType::BF16) {
        Tensor &w = wide.emplace_back(DType::F32, operand.shape);
        TensorView into(w);
        cast(operand, into);
        operand = TensorView(w);
      }
    std::vector<std::pair<size_t, TensorView>> slots;
    for (size_t k = 0; k < c.out.size(); ++k)
      if (c.out[k].dtype == DType::BF16) {
        slots.emplace_back(k, c.out[k]);
        c.out[k] = TensorView(wide.emplace_back(DType::F32, c.out[k].shape));
      }
    if (!computeKernel(c))
      return false;
    for (auto &[k, slot] : slots)
      cast(c.out[k], slot);
    return true;
  }

  /// Communication instructions: the group and the rest of each
  /// collective's attribute table, as plan.fbs lists them.
  bool communicate(int64_t index, Call &c) {
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
    const std::vector<TensorView> &in = c.in;
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
    case O::Send: {
      // The output passes the input on (ordering what reads it after the
      // send); an output of another size is a token and reads as zeros.
      TensorView &passed = c.out[0];
      if (!comm.send(g, inst.attrs_as_PeerAttrs()->peer(), in[0], why))
        return fail(what + ": " + why);
      if (passed.size() == in[0].size() && passed.dtype == in[0].dtype)
        reshape(in[0], passed);
      else
        std::memset(passed.data(), 0, passed.byteSize());
      return true;
    }
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
    return store(inst.outputs()->Get(0), out);
  }

  const plan::Plan &plan;
  const plan::RankProgram &program;
  Communicator &comm;
  bool trace;
  RunStats &stats;
  std::string &error;
  uint8_t *arena;
  /// Every plan tensor where it lies, once bound.
  std::vector<TensorView> views;
  /// Tensors the run had to make: shards cut from whole inputs, and
  /// constants copied to alignment (a deque keeps them where they are).
  std::deque<Tensor> owned;
  std::vector<int64_t> lastUse;
  uint64_t live = 0;
  /// The tensor whose buffer each tensor is (itself, or the operand of the
  /// aliasing copies that led to it).
  std::vector<int32_t> bufferOf;
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
  std::vector<int32_t> inPlace;
  bool ok = machine.bind(inputs, weights) && machine.checkLayout();
  if (ok && options.state)
    inPlace = machine.updateInPlace(*options.state);
  ok = ok && machine.run();
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
      std::string name = t.name() ? t.name()->str() : std::to_string(index);
      if (std::find(inPlace.begin(), inPlace.end(), index) != inPlace.end())
        stats.updatedInPlace.push_back(name);
      else
        machine.output(index, outputs[name]);
    }
  return true;
}

} // namespace galvatron::rt
