//===- PlanMeasure.cpp - what a strategy's plan holds and sends -----------===//

#include "PlanMeasure.h"

#include "galvatron/Target/Plan.h"
#include "galvatron/Transforms/Passes.h"
#include "galvatron/runtime/PlanFile.h"

#include "mlir/Pass/PassManager.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::galv;
namespace plan = galvatron::plan;

namespace {

/// A communication opcode's names: as the runtime's communicator counts it,
/// and as HardwareSpec::collectiveMs prices it. Null for compute opcodes.
struct CollectiveNames {
  const char *counted, *priced;
};

CollectiveNames collectiveNames(plan::Opcode opcode) {
  switch (opcode) {
  case plan::Opcode::AllReduce:
    return {"all_reduce", "allreduce"};
  case plan::Opcode::AllGather:
    return {"all_gather", "allgather"};
  case plan::Opcode::ReduceScatter:
    return {"reduce_scatter", "reducescatter"};
  case plan::Opcode::AllToAll:
    return {"all_to_all", "all2all"};
  case plan::Opcode::Broadcast:
    return {"broadcast", "p2p"};
  case plan::Opcode::Send:
    return {"send", "p2p"};
  case plan::Opcode::Recv:
    return {"recv", "p2p"};
  default:
    return {nullptr, nullptr};
  }
}

std::string groupKey(const plan::Plan &p, int64_t group) {
  std::string key;
  if (p.groups() && group >= 0 && group < p.groups()->size())
    if (const auto *ranks = p.groups()->Get(group)->ranks())
      for (int r : *ranks)
        key += (key.empty() ? "" : ",") + std::to_string(r);
  return key;
}

/// The kernel class of a compute opcode (the profiler's classes).
const char *kernelClass(plan::Opcode opcode) {
  using O = plan::Opcode;
  switch (opcode) {
  case O::Exp:
  case O::Log:
  case O::Tanh:
  case O::Erf:
  case O::Sigmoid:
  case O::Silu:
  case O::Gelu:
  case O::GeluTanh:
  case O::GeluGrad:
  case O::GeluTanhGrad:
    return "transcendental";
  case O::Copy:
  case O::Transpose:
  case O::Slice:
  case O::Concat:
  case O::Split:
  case O::Expand:
  case O::Gather:
  case O::Embedding:
  case O::EmbeddingGrad:
    return "movement";
  case O::Reduce:
  case O::ArgMax:
  case O::CrossEntropy:
    return "reduction";
  case O::Softmax:
  case O::LogSoftmax:
  case O::LayerNorm:
  case O::RmsNorm:
  case O::CrossEntropyGrad:
  case O::LayerNormGrad:
  case O::RmsNormGrad:
  case O::Rotary:
    return "normalisation";
  default:
    return "elementwise";
  }
}

double elements(const plan::Tensor &t) {
  double n = 1;
  if (t.shape())
    for (int64_t d : *t.shape())
      n *= d;
  return n;
}

/// FLOPs of a contraction from its operand and result shapes.
double contractionFlops(const plan::RankProgram &rank,
                        const plan::Instruction &inst) {
  const auto *tensors = rank.tensors();
  const plan::Tensor &in0 = *tensors->Get(inst.inputs()->Get(0));
  const plan::Tensor &out0 = *tensors->Get(inst.outputs()->Get(0));
  int64_t k = in0.shape() && in0.shape()->size()
                  ? in0.shape()->Get(in0.shape()->size() - 1)
                  : 1;
  // A transposed left operand is [..., K, M].
  const auto *matmul = inst.attrs_as_MatmulAttrs();
  if (matmul && matmul->transpose_lhs() && in0.shape()->size() >= 2)
    k = in0.shape()->Get(in0.shape()->size() - 2);
  bool attention = inst.opcode() == plan::Opcode::Attention,
       attentionGrad = inst.opcode() == plan::Opcode::AttentionGrad;
  if ((attention || attentionGrad) && in0.shape() && in0.shape()->size() >= 2) {
    // q k^T and p v: 2 x 2 x (B H S) x S x D; the gradient recomputes q k^T
    // and forms p^T g, g v^T, ds k and ds^T q.
    int64_t s = in0.shape()->Get(in0.shape()->size() - 2);
    return (attention ? 4.0 : 10.0) * elements(in0) * s;
  }
  return 2.0 * elements(out0) * k;
}

RankMeasure measureRank(const plan::Plan &p, const plan::RankProgram &rank) {
  RankMeasure r;
  r.stage = rank.stage();
  r.arenaBytes = rank.arena_bytes();
  for (const plan::Tensor *t : *rank.tensors())
    if (t->storage() == plan::Storage::Input ||
        t->storage() == plan::Storage::Weight)
      r.boundBytes += t->bytes();
  r.instructions = rank.instructions()->size();
  for (const plan::Instruction *inst : *rank.instructions()) {
    CollectiveNames names = collectiveNames(inst->opcode());
    const char *name = names.counted;
    if (!name) {
      bool contraction = inst->opcode() == plan::Opcode::Linear ||
                         inst->opcode() == plan::Opcode::Matmul ||
                         inst->opcode() == plan::Opcode::Attention ||
                         inst->opcode() == plan::Opcode::AttentionGrad;
      if (contraction && inst->inputs() && inst->inputs()->size() &&
          inst->outputs() && inst->outputs()->size()) {
        r.contractionFlops += contractionFlops(rank, *inst);
        continue;
      }
      // A reshape on its operand's buffer moves nothing.
      if (galvatron::rt::isAliasingCopy(rank, *inst))
        continue;
      double bytes = 0;
      for (const auto *list : {inst->inputs(), inst->outputs()})
        if (list)
          for (int32_t t : *list)
            bytes += rank.tensors()->Get(t)->bytes();
      r.classBytes[kernelClass(inst->opcode())] += bytes;
      continue;
    }
    int64_t group = galvatron::rt::groupOf(*inst);
    // The communicator counts what a rank hands over; a receive nothing.
    uint64_t sent = 0;
    if (inst->opcode() != plan::Opcode::Recv && inst->inputs() &&
        inst->inputs()->size())
      sent = rank.tensors()->Get(inst->inputs()->Get(0))->bytes();
    r.bytesSent[std::string(name) + ":" + groupKey(p, group)] += sent;
    std::string key = groupKey(p, group);
    r.collectiveGroups.push_back(
        1 + static_cast<int>(std::count(key.begin(), key.end(), ',')));
    RankMeasure::Collective c;
    c.op = names.priced;
    c.group = r.collectiveGroups.back();
    if (p.groups() && group >= 0 && group < p.groups()->size())
      if (const auto *ranks = p.groups()->Get(group)->ranks())
        for (size_t i = 1; i < ranks->size(); ++i)
          c.consecutive =
              c.consecutive && ranks->Get(i) == ranks->Get(i - 1) + 1;
    // The whole buffer, as HardwareSpec::collectiveMs takes it: the
    // gathered result of an all-gather, else what the rank hands over.
    c.bytes = sent;
    if (inst->opcode() == plan::Opcode::AllGather)
      c.bytes = double(sent) * c.group;
    if (inst->opcode() != plan::Opcode::Recv)
      r.collectives.push_back(c);
  }
  return r;
}

} // namespace

LogicalResult mlir::galv::measurePlan(ModuleOp module, StringRef training,
                                      std::vector<RankMeasure> &out,
                                      std::string &error) {
  auto options = TrainingPipelineOptions::createFromString(training);
  if (!options)
    return error = "cannot parse '" + training.str() +
                   "' as training-pipeline options",
           failure();
  OwningOpRef<ModuleOp> copy = module.clone();
  PassManager pm(module.getContext());
  buildTrainingPipeline(pm, *options);
  if (failed(pm.run(*copy)))
    return error = "lowering a copy of the module with the training pipeline "
                   "failed (see the diagnostics above)",
           failure();
  std::string bytes;
  llvm::raw_string_ostream os(bytes);
  if (failed(emitPlan(*copy, "train_step", os)))
    return error = "emitting the plan of a copy of the module failed",
           failure();
  std::vector<uint8_t> storage(bytes.begin(), bytes.end());
  const plan::Plan *p = galvatron::rt::verifyPlan(storage, error);
  if (!p)
    return error = "the lowered plan does not verify: " + error, failure();
  out.clear();
  for (const plan::RankProgram *rank : *p->ranks())
    out.push_back(measureRank(*p, *rank));
  return success();
}
