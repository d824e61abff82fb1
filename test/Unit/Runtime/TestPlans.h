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

inline size_t widthOf(plan::DType d) {
  return d == plan::DType::Bool                           ? 1
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
  };
  struct InstSpec {
    plan::Opcode opcode;
    std::vector<int32_t> inputs, outputs;
    std::vector<int64_t> ints;
    std::vector<double> floats;
  };

  explicit ProgramBuilder(int rank) : rank(rank) {}

  int32_t input(const std::string &name, plan::DType dtype,
                std::vector<int64_t> shape,
                std::optional<ShardSpec> shard = std::nullopt) {
    inputs.push_back(add({name, dtype, shape, plan::Storage::Input, 0, shard}));
    return inputs.back();
  }
  int32_t weight(const std::string &name, plan::DType dtype,
                 std::vector<int64_t> shape,
                 std::optional<ShardSpec> shard = std::nullopt) {
    return add({name, dtype, shape, plan::Storage::Weight, 0, shard});
  }
  /// An instruction with one result in the arena; `name` it to make it an
  /// output.
  int32_t op(plan::Opcode opcode, std::vector<int32_t> in,
             std::vector<int64_t> shape, plan::DType dtype,
             std::vector<int64_t> ints = {}, std::vector<double> floats = {}) {
    int32_t out = arena(dtype, shape);
    instructions.push_back({opcode, std::move(in), {out}, ints, floats});
    return out;
  }
  /// Makes tensor `t` an output called `name`, with an optional shard.
  void output(int32_t t, const std::string &name,
              std::optional<ShardSpec> shard = std::nullopt) {
    tensors[t].name = name;
    tensors[t].shard = shard;
    outputs.push_back(t);
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
          t.storage, t.offset, bytes, shard));
    }
    std::vector<flatbuffers::Offset<plan::Instruction>> is;
    for (const InstSpec &i : instructions)
      is.push_back(plan::CreateInstructionDirect(
          fbb, i.opcode, &i.inputs, &i.outputs, &i.ints, &i.floats));
    return plan::CreateRankProgramDirect(fbb, rank, &ts, &is, &inputs, &outputs,
                                         arenaBytes, 0);
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
  uint64_t arenaBytes = 0;
};

/// The whole plan: groups, then one program per rank.
inline std::vector<uint8_t>
buildPlan(const std::vector<std::vector<int32_t>> &groups,
          const std::vector<ProgramBuilder> &programs,
          const std::string &weightsFile = "") {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::DeviceGroup>> gs;
  for (const std::vector<int32_t> &g : groups)
    gs.push_back(plan::CreateDeviceGroupDirect(fbb, &g));
  std::vector<flatbuffers::Offset<plan::RankProgram>> ps;
  for (const ProgramBuilder &p : programs)
    ps.push_back(p.finish(fbb));
  fbb.Finish(plan::CreatePlanDirect(fbb, static_cast<int32_t>(programs.size()),
                                    weightsFile.c_str(), &gs, &ps),
             plan::PlanIdentifier());
  return rt::wrapPlan(fbb.GetBufferPointer(), fbb.GetSize());
}

} // namespace galvatron::testing

#endif // GALVATRON_TEST_UNIT_RUNTIME_TESTPLANS_H
