//===- OutlineLayers.cpp - repeated blocks -> layer types and instances ---===//
//
// Works on the sequence of "real" ops of @forward: everything but constants
// and parameter reads, which belong to whichever segment uses them. Each op
// gets a structural signature (name, attributes, operand and result types);
// the longest tandem repeat of signatures is a candidate run of blocks, which
// is then checked exactly (wiring included) before it is outlined.
//
//===----------------------------------------------------------------------===//

#include "Matchers.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::galv {
#define GEN_PASS_DEF_OUTLINELAYERS
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {

/// Constants, parameter reads, and whatever is computed from them alone
/// (T5's relative position bias: a gather from a parameter at constant
/// buckets): none depends on the activations, so they stay outside the
/// layers and reach them as inputs.
bool isFree(Operation *op) {
  if (isa<ConstantOp, GetParameterOp>(op))
    return true;
  if (op->getNumRegions() != 0 || op->getNumResults() == 0 ||
      op->getNumOperands() == 0 || isa<LayerOp>(op))
    return false;
  return llvm::all_of(op->getOperands(), [](Value v) {
    Operation *def = v.getDefiningOp();
    return def && isFree(def);
  });
}

llvm::hash_code signature(Operation *op) {
  llvm::hash_code h = llvm::hash_combine(
      op->getName().getAsOpaquePointer(),
      op->getAttrDictionary().getAsOpaquePointer(),
      op->getPropertiesStorage() ? op->hashProperties() : llvm::hash_code(0));
  for (Type t : op->getOperandTypes())
    h = llvm::hash_combine(h, t.getAsOpaquePointer());
  for (Type t : op->getResultTypes())
    h = llvm::hash_combine(h, t.getAsOpaquePointer());
  return h;
}

/// One segment of the op sequence, [begin, end).
struct Segment {
  size_t begin, end;
};

/// A tandem repeat of op signatures: `count` blocks of `period` ops from
/// `start`, within the run [start, end).
struct Candidate {
  size_t start, period, count, end;
};

/// The exact shape of a segment: how each operand of each op is produced.
/// Two segments with equal forms compute the same function of their
/// (external input, parameter) lists.
struct Form {
  SmallVector<Value> inputs;   // non-parameter values from outside
  SmallVector<Value> params;   // parameter reads
  SmallVector<Value> outputs;  // values used after the segment
  SmallVector<int64_t> wiring; // per operand: encoded source
  SmallVector<Attribute> constants;
  SmallVector<int64_t> outputPositions;
};

class Outliner {
public:
  Outliner(ModuleOp module, func::FuncOp func, unsigned minOps)
      : module(module), func(func), minOps(minOps) {}

  /// Outlines one run; false when there is none left.
  bool outlineOne();

private:
  void collectOps();
  Form formOf(Segment segment);
  bool sameForm(const Form &a, const Form &b);
  int64_t liveAcross(size_t cut);
  std::optional<std::pair<size_t, SmallVector<Form, 4>>>
  blocksOf(const Candidate &c);
  std::string typeName(ArrayRef<Form> forms);
  SmallVector<std::string> paramNames(ArrayRef<Form> forms);

  ModuleOp module;
  func::FuncOp func;
  unsigned minOps;
  SmallVector<Operation *> ops;
  DenseMap<Operation *, size_t> position;
};

void Outliner::collectOps() {
  ops.clear();
  position.clear();
  for (Operation &op : func.getBody().front().without_terminator())
    if (!isFree(&op)) {
      position[&op] = ops.size();
      ops.push_back(&op);
    }
}

Form Outliner::formOf(Segment segment) {
  Form form;
  DenseMap<Value, int64_t> external;
  DenseMap<Value, int64_t> paramIndex;
  DenseMap<Operation *, int64_t> local;
  for (size_t i = segment.begin; i < segment.end; ++i) {
    Operation *op = ops[i];
    local[op] = i - segment.begin;
    for (Value operand : op->getOperands()) {
      Operation *def = operand.getDefiningOp();
      int64_t code;
      if (def && local.count(def)) {
        code = (local[def] << 8) | cast<OpResult>(operand).getResultNumber();
        code = code * 4 + 0;
      } else if (isa_and_nonnull<GetParameterOp>(def)) {
        auto [it, inserted] =
            paramIndex.try_emplace(operand, form.params.size());
        if (inserted)
          form.params.push_back(operand);
        code = it->second * 4 + 1;
      } else if (isa_and_nonnull<ConstantOp>(def)) {
        form.constants.push_back(cast<ConstantOp>(def).getValue());
        code = (form.constants.size() - 1) * 4 + 2;
      } else {
        auto [it, inserted] = external.try_emplace(operand, form.inputs.size());
        if (inserted)
          form.inputs.push_back(operand);
        code = it->second * 4 + 3;
      }
      form.wiring.push_back(code);
    }
  }
  // Outputs: results used by ops after the segment (or by the return).
  for (size_t i = segment.begin; i < segment.end; ++i)
    for (Value result : ops[i]->getResults())
      for (Operation *user : result.getUsers()) {
        auto it = position.find(user);
        bool outside = it == position.end() || it->second >= segment.end ||
                       it->second < segment.begin;
        if (outside) {
          form.outputs.push_back(result);
          form.outputPositions.push_back(
              ((i - segment.begin) << 8) |
              cast<OpResult>(result).getResultNumber());
          break;
        }
      }
  return form;
}

bool Outliner::sameForm(const Form &a, const Form &b) {
  if (a.wiring != b.wiring || a.constants != b.constants ||
      a.outputPositions != b.outputPositions ||
      a.inputs.size() != b.inputs.size() || a.params.size() != b.params.size())
    return false;
  for (auto [x, y] : llvm::zip(a.inputs, b.inputs))
    if (x.getType() != y.getType())
      return false;
  for (auto [x, y] : llvm::zip(a.params, b.params))
    if (x.getType() != y.getType())
      return false;
  return true;
}

int64_t Outliner::liveAcross(size_t cut) {
  // Values defined before `cut` (or block arguments) used at or after it.
  llvm::DenseSet<Value> live;
  for (size_t i = cut; i < ops.size(); ++i)
    for (Value operand : ops[i]->getOperands()) {
      Operation *def = operand.getDefiningOp();
      if (!def)
        live.insert(operand);
      else if (!isFree(def) && position.lookup(def) < cut)
        live.insert(operand);
    }
  return live.size();
}

/// The blocks of `c` to outline (their first op and forms): of the phases
/// whose blocks all have one form, the one with the most whole blocks,
/// then the fewest values crossing its first cut. A block may begin after
/// the run's first op (OPT's embedding sum looks like its residual sums).
std::optional<std::pair<size_t, SmallVector<Form, 4>>>
Outliner::blocksOf(const Candidate &c) {
  struct Phase {
    size_t start, count;
    int64_t live;
  };
  SmallVector<Phase> phases;
  for (size_t shift = 0; shift < c.period; ++shift) {
    size_t start = c.start + shift;
    size_t count = (c.end - start) / c.period;
    if (count >= 2)
      phases.push_back({start, count, liveAcross(start)});
  }
  llvm::stable_sort(phases, [](const Phase &a, const Phase &b) {
    return a.count != b.count ? a.count > b.count : a.live < b.live;
  });
  for (const Phase &p : phases) {
    SmallVector<Form, 4> forms;
    for (size_t k = 0; k < p.count; ++k)
      forms.push_back(
          formOf({p.start + k * c.period, p.start + (k + 1) * c.period}));
    if (forms[0].params.empty() || forms[0].outputs.empty() ||
        !llvm::all_of(forms,
                      [&](const Form &f) { return sameForm(forms[0], f); }))
      continue;
    return std::make_pair(p.start, std::move(forms));
  }
  return std::nullopt;
}

/// "transformer.h.3.attn.c_attn.weight" -> the part after the layer index
/// that every instance shares: "attn.c_attn.weight".
SmallVector<std::string> Outliner::paramNames(ArrayRef<Form> forms) {
  SmallVector<std::string> names;
  llvm::StringSet<> used;
  for (size_t j = 0; j < forms[0].params.size(); ++j) {
    SmallVector<StringRef> all;
    for (const Form &form : forms)
      all.push_back(form.params[j].getDefiningOp<GetParameterOp>().getName());
    StringRef suffix = all[0];
    for (StringRef name : all)
      while (!name.ends_with(suffix))
        suffix = suffix.drop_front();
    // Keep whole dotted components.
    size_t dot = suffix.find('.');
    std::string name;
    if (all.size() > 1 &&
        llvm::all_of(all, [&](StringRef n) { return n == all[0]; }))
      name = all[0].str(); // shared by every instance (tied weights)
    else if (dot != StringRef::npos && dot + 1 < suffix.size() &&
             (suffix.size() == all[0].size() ||
              all[0][all[0].size() - suffix.size() - 1] != '.'))
      name = suffix.substr(dot + 1).str();
    else if (suffix.size() < all[0].size() &&
             all[0][all[0].size() - suffix.size() - 1] == '.')
      name = suffix.str();
    if (name.empty() || used.contains(name))
      name = "param" + std::to_string(j);
    used.insert(name);
    names.push_back(name);
  }
  return names;
}

std::string Outliner::typeName(ArrayRef<Form> forms) {
  // From the first parameter whose names differ only in a numbered component,
  // "transformer.h.0.x" / "transformer.h.1.x" -> "transformer_h".
  std::string base = "block";
  for (size_t j = 0; forms.size() > 1 && j < forms[0].params.size(); ++j) {
    StringRef a = forms[0].params[j].getDefiningOp<GetParameterOp>().getName();
    StringRef b = forms[1].params[j].getDefiningOp<GetParameterOp>().getName();
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n])
      ++n;
    StringRef prefix = a.take_front(n).rtrim("0123456789");
    if (prefix.size() < 2 || !prefix.ends_with(".") ||
        !llvm::isDigit(a[prefix.size()]) || !llvm::isDigit(b[prefix.size()]))
      continue;
    base.clear();
    for (char ch : prefix.drop_back())
      base.push_back(llvm::isAlnum(ch) ? ch : '_');
    break;
  }
  std::string name = base;
  for (int i = 1; module.lookupSymbol(name); ++i)
    name = base + "_" + std::to_string(i);
  return name;
}

bool Outliner::outlineOne() {
  collectOps();
  size_t n = ops.size();
  SmallVector<llvm::hash_code> sigs;
  for (Operation *op : ops)
    sigs.push_back(isa<LayerOp>(op)
                       ? llvm::hash_code(reinterpret_cast<size_t>(op))
                       : signature(op));

  // Candidates by tandem-repeat length.
  SmallVector<Candidate> candidates;
  for (size_t period = minOps; period <= n / 2; ++period) {
    size_t runStart = 0, runLength = 0;
    for (size_t i = 0; i + period <= n; ++i) {
      bool match = i + period < n && sigs[i] == sigs[i + period];
      if (match) {
        if (runLength == 0)
          runStart = i;
        ++runLength;
        continue;
      }
      if (runLength >= period)
        candidates.push_back({runStart, period, runLength / period + 1,
                              runStart + runLength + period});
      runLength = 0;
    }
  }
  // Most ops covered first; then shorter periods (single blocks, not pairs).
  llvm::sort(candidates, [](const Candidate &a, const Candidate &b) {
    if (a.period * a.count != b.period * b.count)
      return a.period * a.count > b.period * b.count;
    return a.period < b.period;
  });

  for (const Candidate &c : candidates) {
    std::optional<std::pair<size_t, SmallVector<Form, 4>>> blocks = blocksOf(c);
    if (!blocks)
      continue;
    size_t start = blocks->first;
    SmallVector<Form, 4> &forms = blocks->second;
    size_t count = forms.size();
    // A segment must not feed itself through an output used inside a later
    // op of the same segment before its end: guaranteed by program order.

    // Build the layer type from the first instance.
    OpBuilder builder(module.getContext());
    builder.setInsertionPoint(func);
    const Form &first = forms[0];
    SmallVector<Type> argTypes, resultTypes;
    for (Value v : first.inputs)
      argTypes.push_back(v.getType());
    for (Value v : first.params)
      argTypes.push_back(v.getType());
    for (Value v : first.outputs)
      resultTypes.push_back(v.getType());
    bool causal = false;
    for (size_t i = start; i < start + c.period; ++i)
      if (auto attention = dyn_cast<AttentionOp>(ops[i]))
        causal |= attention.getCausal();
    SmallVector<Attribute> names;
    for (const std::string &name : paramNames(forms))
      names.push_back(builder.getStringAttr(name));
    auto layerType = LayerTypeOp::create(
        builder, ops[start]->getLoc(), typeName(forms),
        builder.getFunctionType(argTypes, resultTypes),
        /*arg_attrs=*/ArrayAttr(), /*res_attrs=*/ArrayAttr(),
        causal ? LayerKind::decoder : LayerKind::encoder,
        builder.getArrayAttr(names), /*cost=*/LayerCostAttr());
    Block *body = builder.createBlock(&layerType.getBody());
    IRMapping mapping;
    for (Value v : first.inputs)
      mapping.map(v, body->addArgument(v.getType(), v.getLoc()));
    for (Value v : first.params)
      mapping.map(v, body->addArgument(v.getType(), v.getLoc()));
    for (size_t i = start; i < start + c.period; ++i) {
      for (Value operand : ops[i]->getOperands())
        if (auto constant = operand.getDefiningOp<ConstantOp>())
          if (!mapping.contains(operand))
            mapping.map(operand, builder.clone(*constant)->getResult(0));
      builder.clone(*ops[i], mapping);
    }
    SmallVector<Value> returned;
    for (Value v : first.outputs)
      returned.push_back(mapping.lookup(v));
    ReturnOp::create(builder, layerType.getLoc(), returned);

    // Replace every segment with an instance. A later segment's inputs may
    // be an earlier one's outputs, which are gone by then.
    DenseMap<Value, Value> replaced;
    for (size_t k = 0; k < count; ++k) {
      const Form &form = forms[k];
      size_t begin = start + k * c.period, end = begin + c.period;
      SmallVector<Value> inputs;
      for (Value v : form.inputs)
        inputs.push_back(replaced.lookup(v) ? replaced.lookup(v) : v);
      builder.setInsertionPoint(ops[end - 1]);
      auto layer =
          LayerOp::create(builder, ops[begin]->getLoc(), resultTypes,
                          FlatSymbolRefAttr::get(layerType.getSymNameAttr()),
                          inputs, form.params, /*strategy=*/nullptr);
      for (auto [i, old] : llvm::enumerate(form.outputs)) {
        Value(old).replaceAllUsesWith(layer.getResult(i));
        replaced[old] = layer.getResult(i);
      }
      for (size_t i = end; i > begin; --i)
        ops[i - 1]->erase();
      // Move the instance after its last input's definition point; it sits
      // where the segment ended, which dominates every later use.
    }
    return true;
  }
  return false;
}

struct OutlineLayersPass : galv::impl::OutlineLayersBase<OutlineLayersPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>("forward");
    if (!func || func.isExternal() || !func.getBody().hasOneBlock())
      return;
    Outliner outliner(module, func, minOps);
    while (outliner.outlineOne()) {
    }
  }
};
} // namespace
