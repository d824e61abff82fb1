//===- TestPlans.h - small plans built by hand for tests --------*- C++ -*-===//
//
// Runtime tests need multi-rank plans before (and independently of) the
// compiler: these builders write them with FlatBufferBuilder. Every arena
// tensor gets its own slot, so the executor's liveness does not matter.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_TEST_UNIT_RUNTIME_TESTPLANS_H
#define GALVATRON_TEST_UNIT_RUNTIME_TESTPLANS_H

#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/Shard.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace galvatron::testing {

struct ShardSpec {
  std::vector<int64_t> fullShape;
  std::vector<plan::DimCut> cuts;
  int32_t flatParts = 1, flatIndex = 0;
};

/// A standalone plan::Shard table (the buffer owns it).
struct ShardTable {
  explicit ShardTable(const ShardSpec &spec) {
    fbb.Finish(plan::CreateShardDirect(fbb, &spec.fullShape, &spec.cuts,
                                       spec.flatParts, spec.flatIndex));
  }
  const plan::Shard &get() const {
    return *flatbuffers::GetRoot<plan::Shard>(fbb.GetBufferPointer());
  }
  flatbuffers::FlatBufferBuilder fbb;
};

/// Attribute tables as ProgramBuilder::op takes them (plan.fbs).
using Attrs = plan::InstructionAttrsUnion;

template <typename T> Attrs attrsOf(T table) {
  Attrs attrs;
  attrs.Set(std::move(table));
  return attrs;
}
inline Attrs allReduce(int32_t group,
                       plan::Reduction reduction = plan::Reduction::Sum) {
  plan::AllReduceAttrsT t;
  t.group = group;
  t.reduction = reduction;
  return attrsOf(std::move(t));
}
/// AllGather, ReduceScatter.
inline Attrs collectiveAxis(int32_t group, int32_t axis) {
  plan::CollectiveAxisAttrsT t;
  t.group = group;
  t.axis = axis;
  return attrsOf(std::move(t));
}
inline Attrs allToAll(int32_t group, int32_t split, int32_t concat) {
  plan::AllToAllAttrsT t;
  t.group = group;
  t.split_axis = split;
  t.concat_axis = concat;
  return attrsOf(std::move(t));
}
inline Attrs broadcastFrom(int32_t group, int32_t root) {
  plan::BroadcastAttrsT t;
  t.group = group;
  t.root = root;
  return attrsOf(std::move(t));
}
/// Send, Recv.
inline Attrs peer(int32_t group, int32_t position) {
  plan::PeerAttrsT t;
  t.group = group;
  t.peer = position;
  return attrsOf(std::move(t));
}
inline Attrs reduceOver(plan::Reduction kind, std::vector<int32_t> axes,
                        bool keepdims = false) {
  plan::ReduceAttrsT t;
  t.kind = kind;
  t.keepdims = keepdims;
  t.axes = std::move(axes);
  return attrsOf(std::move(t));
}
/// Concat, Split, Gather, Softmax, LogSoftmax.
inline Attrs matmulAttrs(bool transposeLhs = false, bool transposeRhs = false) {
  plan::MatmulAttrsT t;
  t.transpose_lhs = transposeLhs;
  t.transpose_rhs = transposeRhs;
  return attrsOf(t);
}
inline Attrs axis(int32_t a) {
  plan::AxisAttrsT t;
  t.axis = a;
  return attrsOf(std::move(t));
}
inline Attrs permutation(std::vector<int32_t> perm) {
  plan::TransposeAttrsT t;
  t.perm = std::move(perm);
  return attrsOf(std::move(t));
}
inline Attrs sliceOf(std::vector<int64_t> starts, std::vector<int64_t> limits,
                     std::vector<int64_t> steps) {
  plan::SliceAttrsT t;
  t.starts = std::move(starts);
  t.limits = std::move(limits);
  t.steps = std::move(steps);
  return attrsOf(std::move(t));
}
inline Attrs argMaxOver(int32_t a, bool keepdims, bool last) {
  plan::ArgMaxAttrsT t;
  t.axis = a;
  t.keepdims = keepdims;
  t.select_last_index = last;
  return attrsOf(std::move(t));
}

inline size_t widthOf(plan::DType d) {
  return d == plan::DType::Bool                           ? 1
         : d == plan::DType::BF16                         ? 2
         : d == plan::DType::F32 || d == plan::DType::I32 ? 4
                                                          : 8;
}

/// One rank's program.
class ProgramBuilder {
public:
  struct TensorSpec {
    std::string name;
    plan::DType dtype;
    std::vector<int64_t> shape;
    plan::Storage storage;
    uint64_t offset = 0;
    std::optional<ShardSpec> shard;
    plan::Role role = plan::Role::Data;
    std::string paramName;
  };
  struct InstSpec {
    plan::Opcode opcode;
    std::vector<int32_t> inputs, outputs;
    Attrs attrs;
  };

  explicit ProgramBuilder(int rank) : rank(rank) {}

  int32_t input(const std::string &name, plan::DType dtype,
                std::vector<int64_t> shape,
                std::optional<ShardSpec> shard = std::nullopt) {
    inputs.push_back(add({name, dtype, shape, plan::Storage::Input, 0, shard}));
    return inputs.back();
  }
  /// An input of `role` (for state, of parameter `param`).
  int32_t input(const std::string &name, plan::DType dtype,
                std::vector<int64_t> shape, plan::Role role,
                const std::string &param = "",
                std::optional<ShardSpec> shard = std::nullopt) {
    int32_t t = input(name, dtype, std::move(shape), std::move(shard));
    tensors[t].role = role;
    tensors[t].paramName = param;
    return t;
  }
  int32_t weight(const std::string &name, plan::DType dtype,
                 std::vector<int64_t> shape,
                 std::optional<ShardSpec> shard = std::nullopt) {
    return add({name, dtype, shape, plan::Storage::Weight, 0, shard});
  }
  /// An instruction with one result in the arena; `name` it to make it an
  /// output.
  int32_t op(plan::Opcode opcode, std::vector<int32_t> in,
             std::vector<int64_t> shape, plan::DType dtype, Attrs attrs = {}) {
    int32_t out = arena(dtype, shape);
    instructions.push_back({opcode, std::move(in), {out}, std::move(attrs)});
    return out;
  }
  /// An instruction with one arena result per shape in `shapes`.
  std::vector<int32_t> ops(plan::Opcode opcode, std::vector<int32_t> in,
                           const std::vector<std::vector<int64_t>> &shapes,
                           plan::DType dtype, Attrs attrs = {}) {
    std::vector<int32_t> outs;
    for (const std::vector<int64_t> &shape : shapes)
      outs.push_back(arena(dtype, shape));
    instructions.push_back({opcode, std::move(in), outs, std::move(attrs)});
    return outs;
  }
  /// Makes tensor `t` an output called `name`, with an optional shard.
  void output(int32_t t, const std::string &name,
              std::optional<ShardSpec> shard = std::nullopt) {
    tensors[t].name = name;
    tensors[t].shard = shard;
    outputs.push_back(t);
  }
  /// Output `output` (a tensor) becomes input `input` (a tensor) next step.
  void feedBack(int32_t output, int32_t input) {
    auto position = [](const std::vector<int32_t> &list, int32_t t) {
      return static_cast<int32_t>(std::find(list.begin(), list.end(), t) -
                                  list.begin());
    };
    feedback.emplace_back(position(outputs, output), position(inputs, input));
  }

  flatbuffers::Offset<plan::RankProgram>
  finish(flatbuffers::FlatBufferBuilder &fbb) const {
    std::vector<flatbuffers::Offset<plan::Tensor>> ts;
    for (const TensorSpec &t : tensors) {
      uint64_t bytes = widthOf(t.dtype);
      for (int64_t d : t.shape)
        bytes *= d;
      flatbuffers::Offset<plan::Shard> shard = 0;
      if (t.shard)
        shard =
            plan::CreateShardDirect(fbb, &t.shard->fullShape, &t.shard->cuts,
                                    t.shard->flatParts, t.shard->flatIndex);
      ts.push_back(plan::CreateTensorDirect(
          fbb, t.name.empty() ? nullptr : t.name.c_str(), t.dtype, &t.shape,
          t.storage, t.offset, bytes, shard, t.role,
          t.paramName.empty() ? nullptr : t.paramName.c_str()));
    }
    std::vector<flatbuffers::Offset<plan::Instruction>> is;
    for (const InstSpec &i : instructions)
      is.push_back(plan::CreateInstructionDirect(fbb, i.opcode, &i.inputs,
                                                 &i.outputs, i.attrs.type,
                                                 i.attrs.Pack(fbb)));
    return plan::CreateRankProgramDirect(fbb, rank, &ts, &is, &inputs, &outputs,
                                         arenaBytes, 0, &feedback);
  }

private:
  int32_t add(TensorSpec spec) {
    tensors.push_back(std::move(spec));
    return static_cast<int32_t>(tensors.size() - 1);
  }
  int32_t arena(plan::DType dtype, const std::vector<int64_t> &shape) {
    uint64_t bytes = widthOf(dtype);
    for (int64_t d : shape)
      bytes *= d;
    int32_t t = add({"", dtype, shape, plan::Storage::Arena, arenaBytes, {}});
    arenaBytes += (bytes + 63) / 64 * 64;
    return t;
  }

  int rank;
  std::vector<TensorSpec> tensors;
  std::vector<InstSpec> instructions;
  std::vector<int32_t> inputs, outputs;
  std::vector<plan::Feedback> feedback;
  uint64_t arenaBytes = 0;
};

/// The whole plan: groups, then one program per rank.
inline std::vector<uint8_t>
buildPlan(const std::vector<std::vector<int32_t>> &groups,
          const std::vector<ProgramBuilder> &programs,
          const std::string &weightsFile = "", int64_t vocabSize = 0) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::DeviceGroup>> gs;
  for (const std::vector<int32_t> &g : groups)
    gs.push_back(plan::CreateDeviceGroupDirect(fbb, &g));
  std::vector<flatbuffers::Offset<plan::RankProgram>> ps;
  for (const ProgramBuilder &p : programs)
    ps.push_back(p.finish(fbb));
  fbb.Finish(plan::CreatePlanDirect(fbb, static_cast<int32_t>(programs.size()),
                                    weightsFile.c_str(), &gs, &ps, nullptr,
                                    false, vocabSize),
             plan::PlanIdentifier());
  return rt::wrapPlan(fbb.GetBufferPointer(), fbb.GetSize());
}

} // namespace galvatron::testing

#endif // GALVATRON_TEST_UNIT_RUNTIME_TESTPLANS_H
