//===- TrainableSet.cpp - which initializers an import trains -------------===//
//
// A forward walk over the graph before the import follows each float
// initializer through layout changes (Transpose, Reshape, constant-index
// Gather, ...) and through arithmetic with scalar constants (Gemma's
// `1 + weight`) to the op that combines it with data. It is a weight when
// that op is a linear (MatMul/Gemm operand of rank >= 2, Gemm's bias), an
// embedding (the table of a Gather with data-dependent indices), a norm
// (LayerNormalization's scale and bias), or an elementwise op with a
// per-feature vector (a linear's bias add, a decomposed norm's scale) or
// with rows looked up from a table or added to an embedding lookup (a
// position embedding whose positions were folded). Anything else (masks, rotary
// tables, ALiBi slopes, values folded together with other constants) is frozen.
//
//===----------------------------------------------------------------------===//

#include "TrainableSet.h"

#include "HostTensor.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Regex.h"

#include <onnx/onnx_pb.h>

using namespace mlir;
using namespace mlir::galv;
using namespace mlir::galv::onnx_import;

bool mlir::galv::onnx_import::isDataMovement(StringRef op) {
  return llvm::is_contained({"Identity", "Cast", "CastLike", "Reshape",
                             "Flatten", "Unsqueeze", "Squeeze", "Transpose",
                             "Gather", "Slice", "Concat", "Split", "Expand",
                             "Tile"},
                            op);
}

namespace {

/// What the walk knows about one ONNX value.
struct Flow {
  /// Depends on a graph input (or is computed by emitted IR).
  bool dynamic = false;
  /// A constant of at most one element.
  bool scalar = false;
  /// Went through a Gather along axis 0 of a weight (looked-up rows).
  bool rowLookup = false;
  /// Went through an op that changes the layout (Reshape, Unsqueeze, ...):
  /// the source's own shape says nothing about this value's.
  bool reshaped = false;
  /// An embedding lookup's result (a Gather of a weight by data), or the
  /// sum of one with others (BERT's word + position + token type).
  bool embedding = false;
  /// Float initializers whose values reach here.
  SmallVector<unsigned, 2> sources;
};

/// A float initializer of more than one element.
struct Source {
  std::string name;
  SmallVector<int64_t> dims;
  bool weight = false;
  int64_t elements() const {
    int64_t n = 1;
    for (int64_t d : dims)
      n *= d;
    return n;
  }
  /// All dimensions but the last are 1: a vector over the features.
  bool perFeature() const {
    return !dims.empty() && llvm::all_of(ArrayRef(dims).drop_back(),
                                         [](int64_t d) { return d == 1; });
  }
};

int64_t intAttr(const onnx::NodeProto &node, StringRef name, int64_t dflt) {
  for (const auto &attr : node.attribute())
    if (attr.name() == name)
      return attr.i();
  return dflt;
}

/// A Constant node whose value has at most one element.
bool isScalarConstant(const onnx::NodeProto &node) {
  for (const auto &attr : node.attribute()) {
    if (attr.name() == "value") {
      int64_t n = 1;
      for (int64_t d : attr.t().dims())
        n *= d;
      return n <= 1;
    }
    if (attr.name() == "value_float" || attr.name() == "value_int")
      return true;
    if (attr.name() == "value_floats")
      return attr.floats_size() <= 1;
    if (attr.name() == "value_ints")
      return attr.ints_size() <= 1;
  }
  return false;
}

/// Whether input `index` of `node`, carrying `source`, is a weight operand.
bool isWeightOperand(const onnx::NodeProto &node, int index,
                     const Source &source, const Flow &flow) {
  StringRef op = node.op_type();
  bool matrix = source.dims.size() >= 2;
  if (op == "MatMul")
    return matrix;
  if (op == "Gemm")
    return index == 2 || matrix;
  if (op == "Gather")
    return index == 0;
  if (op == "LayerNormalization")
    return index == 1 || index == 2;
  bool perFeature = source.perFeature() && !flow.reshaped;
  if (op == "Add" || op == "Sub")
    return perFeature || flow.rowLookup;
  if (op == "Mul" || op == "Div")
    return perFeature;
  return false;
}

/// Arithmetic with scalar constants keeps a weight's shape and identity.
bool isScalarArithmetic(StringRef op, ArrayRef<const Flow *> inputs) {
  if (!llvm::is_contained({"Add", "Sub", "Mul", "Div", "Neg"}, op))
    return false;
  return llvm::all_of(inputs, [](const Flow *in) {
    return !in || !in->sources.empty() || in->scalar;
  });
}

class Walk {
public:
  Walk(const onnx::GraphProto &graph) : graph(graph) {}
  void run();
  SmallVector<Source> sources;

private:
  void visit(const onnx::NodeProto &node);
  const onnx::GraphProto &graph;
  llvm::StringMap<Flow> values;
};

void Walk::run() {
  for (const auto &init : graph.initializer()) {
    Flow &flow = values[init.name()];
    Source source{init.name(), {init.dims().begin(), init.dims().end()}};
    int32_t type = init.data_type();
    bool isFloat = type == onnx::TensorProto::FLOAT ||
                   type == onnx::TensorProto::DOUBLE ||
                   type == onnx::TensorProto::FLOAT16 ||
                   type == onnx::TensorProto::BFLOAT16;
    flow.scalar = source.elements() <= 1;
    if (isFloat && !flow.scalar) {
      flow.sources.push_back(sources.size());
      sources.push_back(std::move(source));
    }
  }
  for (const auto &input : graph.input())
    if (!values.count(input.name()))
      values[input.name()].dynamic = true;
  for (const auto &node : graph.node())
    visit(node);
}

void Walk::visit(const onnx::NodeProto &node) {
  StringRef op = node.op_type();
  Flow out;
  if (op == "Constant")
    out.scalar = isScalarConstant(node);
  if (op == "Constant" || op == "Shape" || op == "Size") {
    for (const std::string &name : node.output())
      values[name] = out;
    return;
  }
  SmallVector<const Flow *> inputs;
  for (const std::string &name : node.input()) {
    auto it = name.empty() ? values.end() : values.find(name);
    inputs.push_back(it == values.end() ? nullptr : &it->second);
  }
  bool dynamic =
      llvm::any_of(inputs, [](auto *in) { return in && in->dynamic; });
  if (!dynamic && isFoldableONNXOp(op)) {
    // Folded (or deferred) by the importer.
    bool keeps = isDataMovement(op) || isScalarArithmetic(op, inputs);
    bool sameLayout = !isDataMovement(op) ||
                      llvm::is_contained({"Identity", "Cast", "CastLike"}, op);
    for (const Flow *in : inputs) {
      if (!in || in->sources.empty() || !keeps)
        continue;
      out.sources.append(in->sources.begin(), in->sources.end());
      out.rowLookup |= in->rowLookup;
      out.reshaped |= in->reshaped || !sameLayout;
    }
    if (op == "Gather" && inputs[0] && !inputs[0]->sources.empty() &&
        intAttr(node, "axis", 0) == 0)
      out.rowLookup = true;
  } else {
    // Emitted as IR: this is where each source meets the data.
    bool sum = op == "Add" || op == "Sub";
    bool embeddingInput =
        llvm::any_of(inputs, [](auto *in) { return in && in->embedding; });
    for (auto [index, in] : llvm::enumerate(inputs))
      if (in)
        for (unsigned s : in->sources)
          sources[s].weight |=
              isWeightOperand(node, index, sources[s], *in) ||
              // Rows added to an embedding (a position or token-type
              // table the exporter looked up at static positions).
              (sum && embeddingInput && !in->dynamic);
    out.embedding =
        (sum && embeddingInput) ||
        (op == "Gather" && inputs.size() > 1 && inputs[0] &&
         !inputs[0]->sources.empty() && inputs[1] && inputs[1]->dynamic);
    out.dynamic = true;
  }
  for (const std::string &name : node.output())
    if (!name.empty())
      values[name] = out;
}

} // namespace

llvm::StringMap<InitializerRole> mlir::galv::onnx_import::classifyInitializers(
    const onnx::GraphProto &graph, const ONNXImportOptions &options,
    llvm::function_ref<StringRef(StringRef)> bytesOf,
    SmallVectorImpl<std::string> &unmatched) {
  Walk walk(graph);
  walk.run();
  std::optional<StateDictIndex> index;
  if (options.stateDict)
    index.emplace(*options.stateDict);
  SmallVector<
      std::pair<llvm::Regex, const ONNXImportOptions::TrainablePattern *>>
      patterns;
  for (const auto &pattern : options.trainablePatterns)
    patterns.emplace_back(llvm::Regex(pattern.regex), &pattern);

  SmallVector<bool> used(patterns.size(), false);
  llvm::StringMap<InitializerRole> roles;
  for (const Source &source : walk.sources) {
    InitializerRole &role = roles[source.name];
    std::string name = source.name;
    if (index) {
      std::string found = index->nameOf(bytesOf(source.name).str());
      if (!found.empty())
        name = found;
    }
    // A weight the state dict does not hold is a copy the exporter derived
    // from a parameter (position rows looked up at static positions):
    // PyTorch trains its source through it, so it is trained too, under
    // the exporter's name.
    if (!source.weight)
      role = {WeightRole::Frozen, "rule: not a linear, embedding or norm "
                                  "operand"};
    else
      role = {WeightRole::Trainable, ""};
    for (auto [i, entry] : llvm::enumerate(patterns)) {
      auto &[regex, pattern] = entry;
      if (!regex.match(name) && !regex.match(source.name))
        continue;
      used[i] = true;
      role = pattern->trainable
                 ? InitializerRole{WeightRole::Trainable, ""}
                 : InitializerRole{WeightRole::Frozen,
                                   "--frozen '" + pattern->regex + "'"};
    }
  }
  for (auto [i, entry] : llvm::enumerate(patterns))
    if (!used[i])
      unmatched.push_back(
          (entry.second->trainable ? "--trainable '" : "--frozen '") +
          entry.second->regex + "'");
  return roles;
}
