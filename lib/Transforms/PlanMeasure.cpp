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

/// The kernel class of a compute opcode (HardwareSpec::kernelClasses; the
/// profiler times one kernel of each).
const char *kernelClass(plan::Opcode opcode) {
  using O = plan::Opcode;
  switch (opcode) {
  case O::Matmul:
  case O::Linear:
    return "gemm";
  case O::Attention:
    return "attention";
  case O::AttentionGrad:
    return "attention_grad";
  case O::Exp:
  case O::Log:
  case O::Tanh:
  case O::Erf:
  case O::Sigmoid:
  case O::Silu:
  case O::Gelu:
  case O::GeluTanh:
    return "transcendental";
  case O::GeluGrad:
  case O::GeluTanhGrad:
    return "activation_grad";
  case O::Transpose:
    return "transpose";
  case O::Copy:
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
    return "reduction";
  case O::Softmax:
  case O::LogSoftmax:
  case O::LayerNorm:
  case O::RmsNorm:
  case O::AddLayerNorm:
  case O::AddRmsNorm:
  case O::Rotary:
    return "normalisation";
  case O::LayerNormGrad:
  case O::RmsNormGrad:
    return "norm_grad";
  case O::CrossEntropy:
    return "cross_entropy";
  case O::CrossEntropyGrad:
    return "cross_entropy_grad";
  case O::AdamWUpdate:
    return "optimizer";
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
    const auto *attrs = inst.attrs_as_AttentionAttrs();
    double causal = attrs && attrs->causal() ? 0.5 : 1.0;
    return causal * (attention ? 4.0 : 10.0) * elements(in0) * s;
  }
  return 2.0 * elements(out0) * k;
}

/// Bytes an instruction reads and writes. A slice or a lookup reads of its
/// source only the rows it copies: its output's bytes, not the source's (a
/// 4 MB embedding table, of which a step's tokens read 256 KB).
double bytesMoved(const plan::RankProgram &rank,
                  const plan::Instruction &inst) {
  double bytes = 0, largestInput = 0, outputs = 0;
  if (inst.inputs())
    for (int32_t t : *inst.inputs()) {
      double b = rank.tensors()->Get(t)->bytes();
      bytes += b;
      largestInput = std::max(largestInput, b);
    }
  if (inst.outputs())
    for (int32_t t : *inst.outputs())
      outputs += rank.tensors()->Get(t)->bytes();
  using O = plan::Opcode;
  O op = inst.opcode();
  if (op == O::Slice || op == O::Gather || op == O::Embedding)
    bytes += outputs - largestInput;
  return bytes + outputs;
}

/// A compute instruction: its kernel class and work.
RankMeasure::Instruction computeStep(const plan::RankProgram &rank,
                                     const plan::Instruction &inst) {
  RankMeasure::Instruction step;
  step.kernelClass = kernelClass(inst.opcode());
  // A transpose that keeps the last axis (heads split or merged) copies
  // whole rows, as slices do; only one that moves it transposes elements.
  if (const auto *t = inst.attrs_as_TransposeAttrs())
    if (t->perm() && t->perm()->size() &&
        t->perm()->Get(t->perm()->size() - 1) ==
            static_cast<int32_t>(t->perm()->size() - 1))
      step.kernelClass = "movement";
  bool contraction = step.kernelClass == "gemm" ||
                     step.kernelClass == "attention" ||
                     step.kernelClass == "attention_grad";
  if (contraction && inst.inputs() && inst.inputs()->size() && inst.outputs() &&
      inst.outputs()->size()) {
    step.work = contractionFlops(rank, inst);
    if (step.kernelClass == "gemm")
      step.bytes = bytesMoved(rank, inst);
    // Attention's rate depends on the sequence, not on how many (batch,
    // head) pairs run it: read at the FLOPs of one pair.
    const plan::Tensor &q = *rank.tensors()->Get(inst.inputs()->Get(0));
    if (step.kernelClass != "gemm" && q.shape() && q.shape()->size() >= 2) {
      size_t dims = q.shape()->size();
      double perPair =
          double(q.shape()->Get(dims - 2)) * q.shape()->Get(dims - 1);
      if (perPair > 0 && elements(q) >= perPair)
        step.rateWork = step.work / (elements(q) / perPair);
    }
  } else if (galvatron::rt::isAliasingCopy(rank, inst)) {
    // A reshape on its operand's buffer moves nothing.
    step.kind = RankMeasure::Instruction::Alias;
  } else {
    if (contraction)
      step.kernelClass = "elementwise";
    step.work = bytesMoved(rank, inst);
  }
  return step;
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
  if (p.groups())
    for (const plan::DeviceGroup *g : *p.groups()) {
      std::vector<int> members;
      if (g->ranks())
        members.assign(g->ranks()->begin(), g->ranks()->end());
      r.groups.push_back(std::move(members));
    }
  for (const plan::Instruction *inst : *rank.instructions()) {
    CollectiveNames names = collectiveNames(inst->opcode());
    if (!names.counted) {
      r.program.push_back(computeStep(rank, *inst));
      r.program.back().opcode = plan::EnumNameOpcode(inst->opcode());
      continue;
    }
    int64_t group = galvatron::rt::groupOf(*inst);
    // The communicator counts what a rank hands over; a receive nothing.
    uint64_t sent = 0;
    if (inst->opcode() != plan::Opcode::Recv && inst->inputs() &&
        inst->inputs()->size())
      sent = rank.tensors()->Get(inst->inputs()->Get(0))->bytes();
    r.bytesSent[std::string(names.counted) + ":" + groupKey(p, group)] += sent;
    RankMeasure::Instruction step;
    step.kind = RankMeasure::Instruction::Collective;
    step.opcode = plan::EnumNameOpcode(inst->opcode());
    step.group = group;
    const std::vector<int> *members =
        group >= 0 && group < int64_t(r.groups.size()) ? &r.groups[group]
                                                       : nullptr;
    if (const auto *peer = inst->attrs_as_PeerAttrs()) {
      bool send = inst->opcode() == plan::Opcode::Send;
      step.kind = send ? RankMeasure::Instruction::Send
                       : RankMeasure::Instruction::Recv;
      if (members && peer->peer() >= 0 &&
          peer->peer() < int64_t(members->size()))
        step.peer = (*members)[peer->peer()];
      step.bytes =
          send ? sent : rank.tensors()->Get(inst->outputs()->Get(0))->bytes();
    }
    if (step.kind != RankMeasure::Instruction::Recv) {
      RankMeasure::Collective c;
      c.op = names.priced;
      c.group = members ? int(members->size()) : 1;
      if (members)
        for (size_t i = 1; i < members->size(); ++i)
          c.consecutive =
              c.consecutive && (*members)[i] == (*members)[i - 1] + 1;
      // The whole buffer, as HardwareSpec::collectiveMs takes it: the
      // gathered result of an all-gather, else what the rank hands over.
      c.bytes = sent;
      if (inst->opcode() == plan::Opcode::AllGather)
        c.bytes = double(sent) * c.group;
      r.collectives.push_back(c);
      step.collective = int(r.collectives.size()) - 1;
    }
    r.program.push_back(step);
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
