//===- CollectiveCheck.cpp - ranks agree on their collectives -------------===//

#include "galvatron/runtime/CollectiveCheck.h"
#include "galvatron/runtime/PlanFile.h"

#include <algorithm>
#include <vector>

namespace galvatron::rt {
namespace {

/// FNV-1a, 64-bit: stable across ranks and builds.
struct Fnv {
  uint64_t hash = 1469598103934665603ull;
  void add(int64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash ^= static_cast<uint64_t>(value >> (8 * i)) & 0xff;
      hash *= 1099511628211ull;
    }
  }
};

bool isGroupCollective(plan::Opcode op) {
  using O = plan::Opcode;
  // Sends and receives pair up differently on each side: not compared.
  return op == O::AllReduce || op == O::AllGather || op == O::ReduceScatter ||
         op == O::AllToAll || op == O::Broadcast;
}

/// What the ranks of a group must agree on besides the opcode and the
/// input: the reduction, axes or root (the group itself is the same).
std::vector<int64_t> agreedAttributes(const plan::Instruction &inst) {
  if (const auto *a = inst.attrs_as_AllReduceAttrs())
    return {static_cast<int64_t>(a->reduction())};
  if (const auto *a = inst.attrs_as_CollectiveAxisAttrs())
    return {a->axis()};
  if (const auto *a = inst.attrs_as_AllToAllAttrs())
    return {a->split_axis(), a->concat_axis()};
  if (const auto *a = inst.attrs_as_BroadcastAttrs())
    return {a->root()};
  return {};
}

} // namespace

uint64_t collectiveDigest(const plan::RankProgram &program, int group) {
  Fnv fnv;
  for (const plan::Instruction *inst : *program.instructions()) {
    if (!isGroupCollective(inst->opcode()) || groupOf(*inst) != group)
      continue;
    fnv.add(static_cast<int64_t>(inst->opcode()));
    for (int64_t value : agreedAttributes(*inst))
      fnv.add(value);
    const plan::Tensor *in = program.tensors()->Get(inst->inputs()->Get(0));
    int64_t count = 1;
    if (in->shape())
      for (int64_t d : *in->shape())
        count *= d;
    fnv.add(static_cast<int64_t>(in->dtype()));
    fnv.add(count);
  }
  return fnv.hash;
}

bool checkCollectiveSequences(const plan::Plan &plan,
                              const plan::RankProgram &program,
                              Communicator &comm, std::string &error) {
  if (!plan.groups())
    return true;
  for (size_t g = 0; g < plan.groups()->size(); ++g) {
    const auto *ranks = plan.groups()->Get(g)->ranks();
    if (!ranks || ranks->size() < 2 ||
        std::find(ranks->begin(), ranks->end(), program.rank()) == ranks->end())
      continue;
    int group = static_cast<int>(g);
    Tensor mine(DType::I64, {1}), all;
    mine.i64()[0] = static_cast<int64_t>(collectiveDigest(program, group));
    if (!comm.allGather(group, 0, mine, all, error))
      return false;
    for (size_t k = 1; k < ranks->size(); ++k)
      if (all.i64()[k] != all.i64()[0]) {
        error = "the ranks of group " + std::to_string(g) +
                " run different collective sequences over it (rank " +
                std::to_string(ranks->Get(0)) + " and rank " +
                std::to_string(ranks->Get(k)) +
                " disagree): their programs do not belong to one plan";
        return false;
      }
  }
  comm.takeByteCounts(); // the check is not part of any step's traffic
  return true;
}

} // namespace galvatron::rt
