//===- PlanDecoder.cpp - plan.bin back to text ----------------------------===//

#include "galvatron/Target/Plan.h"

#include "galvatron/runtime/PlanFile.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
namespace plan = galvatron::plan;

LogicalResult mlir::galv::decodePlan(StringRef bytes, llvm::raw_ostream &os,
                                     std::string &error) {
  std::vector<uint8_t> storage(bytes.begin(), bytes.end());
  const plan::Plan *p = galvatron::rt::verifyPlan(storage, error);
  if (!p)
    return failure();
  os << "plan format " << galvatron::rt::kPlanFormatVersion << ", world size "
     << p->world_size() << ", weights '"
     << (p->weights_file() ? p->weights_file()->str() : "") << "', "
     << (p->constants() ? p->constants()->size() : 0) << " constant bytes"
     << (p->shapes_only() ? ", shapes only" : "") << "\n";
  for (const plan::DeviceGroup *g : *p->groups()) {
    os << "group [";
    llvm::interleaveComma(*g->ranks(), os);
    os << "]\n";
  }
  for (const plan::RankProgram *rank : *p->ranks()) {
    os << "rank " << rank->rank() << ": arena " << rank->arena_bytes()
       << " bytes, " << rank->tensors()->size() << " tensors, "
       << rank->instructions()->size() << " instructions";
    if (p->ranks()->size() > 1)
      os << ", stage " << rank->stage();
    os << "\n";
    for (size_t i = 0; i < rank->tensors()->size(); ++i) {
      const plan::Tensor *t = rank->tensors()->Get(i);
      os << "  %" << i << " " << plan::EnumNameStorage(t->storage()) << " "
         << plan::EnumNameDType(t->dtype()) << "[";
      llvm::interleave(*t->shape(), os, "x");
      os << "]";
      if (t->name())
        os << " '" << t->name()->str() << "'";
      if (t->storage() == plan::Storage::Arena ||
          t->storage() == plan::Storage::Constant)
        os << " @" << t->offset();
      os << " (" << t->bytes() << " bytes)";
      // The piece of the full tensor this rank holds.
      if (const plan::Shard *shard = t->shard()) {
        os << " of [";
        llvm::interleave(*shard->full_shape(), os, "x");
        os << "]";
        if (shard->cuts())
          for (const plan::DimCut *cut : *shard->cuts())
            os << " axis " << cut->axis() << " piece " << cut->index() << "/"
               << cut->parts() << (cut->blocks() > 1 ? " per block" : "");
        if (shard->flat_parts() > 1)
          os << " flat piece " << shard->flat_index() << "/"
             << shard->flat_parts();
      }
      os << "\n";
    }
    for (const plan::Instruction *inst : *rank->instructions()) {
      os << "  ";
      for (size_t k = 0; k < inst->outputs()->size(); ++k)
        os << (k ? ", %" : "%") << inst->outputs()->Get(k);
      os << " = " << plan::EnumNameOpcode(inst->opcode());
      for (size_t k = 0; k < inst->inputs()->size(); ++k)
        os << (k ? ", %" : " %") << inst->inputs()->Get(k);
      if (inst->ints() && inst->ints()->size()) {
        os << " ints[";
        llvm::interleaveComma(*inst->ints(), os);
        os << "]";
      }
      if (inst->floats() && inst->floats()->size()) {
        os << " floats[";
        llvm::interleaveComma(*inst->floats(), os);
        os << "]";
      }
      os << "\n";
    }
  }
  return success();
}
