//===- PlanDecoder.cpp - plan.bin back to text ----------------------------===//

#include "galvatron/Target/Plan.h"

#include "galvatron/runtime/PlanFile.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
namespace plan = galvatron::plan;

namespace {

template <typename T>
void printList(llvm::raw_ostream &os, const flatbuffers::Vector<T> *v) {
  os << "[";
  if (v)
    llvm::interleaveComma(*v, os);
  os << "]";
}

const char *boolName(bool b) { return b ? "true" : "false"; }

/// The typed attribute table, as `{field = value, ...}`.
void printAttrs(llvm::raw_ostream &os, const plan::Instruction &inst) {
  if (const auto *a = inst.attrs_as_CompareAttrs()) {
    os << " {predicate = " << plan::EnumNameComparePredicate(a->predicate());
  } else if (const auto *a = inst.attrs_as_LinearAttrs()) {
    os << " {layout = " << plan::EnumNameWeightLayout(a->layout());
  } else if (const auto *a = inst.attrs_as_TransposeAttrs()) {
    os << " {perm = ";
    printList(os, a->perm());
  } else if (const auto *a = inst.attrs_as_SliceAttrs()) {
    os << " {starts = ";
    printList(os, a->starts());
    os << ", limits = ";
    printList(os, a->limits());
    os << ", steps = ";
    printList(os, a->steps());
  } else if (const auto *a = inst.attrs_as_AxisAttrs()) {
    os << " {axis = " << a->axis();
  } else if (const auto *a = inst.attrs_as_ArgMaxAttrs()) {
    os << " {axis = " << a->axis() << ", keepdims = " << boolName(a->keepdims())
       << ", select_last_index = " << boolName(a->select_last_index());
  } else if (const auto *a = inst.attrs_as_ReduceAttrs()) {
    os << " {kind = " << plan::EnumNameReduction(a->kind())
       << ", keepdims = " << boolName(a->keepdims()) << ", axes = ";
    printList(os, a->axes());
  } else if (const auto *a = inst.attrs_as_NormAttrs()) {
    os << " {eps = " << a->eps();
  } else if (const auto *a = inst.attrs_as_RotaryAttrs()) {
    os << " {interleaved = " << boolName(a->interleaved());
  } else if (const auto *a = inst.attrs_as_AttentionAttrs()) {
    os << " {causal = " << boolName(a->causal()) << ", scale = " << a->scale();
  } else if (const auto *a = inst.attrs_as_CrossEntropyAttrs()) {
    os << " {reduction = " << plan::EnumNameReduction(a->reduction())
       << ", ignore_index = " << a->ignore_index();
  } else if (const auto *a = inst.attrs_as_EmbeddingGradAttrs()) {
    os << " {rows = " << a->rows();
    if (a->padding_idx() >= 0)
      os << ", padding_idx = " << a->padding_idx();
  } else if (const auto *a = inst.attrs_as_AdamWAttrs()) {
    os << " {beta1 = " << a->beta1() << ", beta2 = " << a->beta2()
       << ", epsilon = " << a->epsilon()
       << ", weight_decay = " << a->weight_decay();
  } else if (const auto *a = inst.attrs_as_MatmulAttrs()) {
    os << " {transpose_lhs = " << boolName(a->transpose_lhs())
       << ", transpose_rhs = " << boolName(a->transpose_rhs());
  } else if (const auto *a = inst.attrs_as_AllReduceAttrs()) {
    os << " {group = " << a->group()
       << ", reduction = " << plan::EnumNameReduction(a->reduction());
  } else if (const auto *a = inst.attrs_as_CollectiveAxisAttrs()) {
    os << " {group = " << a->group() << ", axis = " << a->axis();
  } else if (const auto *a = inst.attrs_as_AllToAllAttrs()) {
    os << " {group = " << a->group() << ", split_axis = " << a->split_axis()
       << ", concat_axis = " << a->concat_axis();
  } else if (const auto *a = inst.attrs_as_BroadcastAttrs()) {
    os << " {group = " << a->group() << ", root = " << a->root();
  } else if (const auto *a = inst.attrs_as_PeerAttrs()) {
    os << " {group = " << a->group() << ", peer = " << a->peer();
  } else {
    return;
  }
  os << "}";
}

} // namespace

LogicalResult mlir::galv::decodePlan(StringRef bytes, llvm::raw_ostream &os,
                                     std::string &error) {
  std::vector<uint8_t> storage(bytes.begin(), bytes.end());
  const plan::Plan *p = galvatron::rt::verifyPlan(storage, error);
  if (!p)
    return failure();
  os << "plan format " << galvatron::rt::kPlanFormatVersion << ", world size "
     << p->world_size() << ", weights '"
     << (p->weights_file() ? p->weights_file()->str() : "") << "', "
     << (p->constants() ? p->constants()->size() : 0) << " constant bytes, "
     << "vocab size " << p->vocab_size()
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
      // What an input is to the runtime.
      if (t->storage() == plan::Storage::Input) {
        os << " " << plan::EnumNameRole(t->role());
        if (t->param_name())
          os << "('" << t->param_name()->str() << "')";
      }
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
      printAttrs(os, *inst);
      os << "\n";
    }
    if (rank->feedback() && rank->feedback()->size()) {
      os << "  feedback";
      for (const plan::Feedback *f : *rank->feedback())
        os << " " << f->output() << "->" << f->input();
      os << " (output -> input)\n";
    }
  }
  return success();
}
