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

const char *collectiveName(plan::Opcode opcode) {
  switch (opcode) {
  case plan::Opcode::AllReduce:
    return "all_reduce";
  case plan::Opcode::AllGather:
    return "all_gather";
  case plan::Opcode::ReduceScatter:
    return "reduce_scatter";
  case plan::Opcode::AllToAll:
    return "all_to_all";
  case plan::Opcode::Broadcast:
    return "broadcast";
  case plan::Opcode::Send:
    return "send";
  case plan::Opcode::Recv:
    return "recv";
  default:
    return nullptr;
  }
}

std::string groupKey(const plan::Plan &p, int64_t group) {
  std::string key;
  if (p.groups() && group >= 0 && group < p.groups()->size())
    if (auto ranks = p.groups()->Get(group)->ranks())
      for (int r : *ranks)
        key += (key.empty() ? "" : ",") + std::to_string(r);
  return key;
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
    const char *name = collectiveName(inst->opcode());
    if (!name)
      continue;
    int64_t group =
        inst->ints() && inst->ints()->size() ? inst->ints()->Get(0) : -1;
    // The communicator counts what a rank hands over; a receive nothing.
    uint64_t sent = 0;
    if (inst->opcode() != plan::Opcode::Recv && inst->inputs() &&
        inst->inputs()->size())
      sent = rank.tensors()->Get(inst->inputs()->Get(0))->bytes();
    r.bytesSent[std::string(name) + ":" + groupKey(p, group)] += sent;
    std::string key = groupKey(p, group);
    r.collectiveGroups.push_back(
        1 + static_cast<int>(std::count(key.begin(), key.end(), ',')));
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
