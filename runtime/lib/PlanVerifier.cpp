//===- PlanVerifier.cpp - each instruction's contract, before anything runs
//===//
//
// A plan whose checksum is right can still be wrong (a compiler bug, or a
// crafted file): every compute instruction is checked against what its
// kernel assumes (operand and attribute counts, axes and permutations in
// range, shapes that follow from the inputs), so that the kernels never
// index outside their tensors. PlanFile.cpp has checked first that the
// instruction carries its opcode's attribute table, and checks collectives.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/PlanVerifier.h"

#include "galvatron/runtime/PlanFile.h"

#include <algorithm>
#include <numeric>

namespace galvatron::rt {
namespace {

using Shape = std::vector<int64_t>;
using O = plan::Opcode;

class InstructionChecker {
public:
  InstructionChecker(
      const plan::Instruction &inst,
      const flatbuffers::Vector<flatbuffers::Offset<plan::Tensor>> &tensors,
      std::string &error)
      : inst(inst), tensors(tensors), error(error) {
    for (int32_t t : *inst.inputs())
      in.push_back(shapeOf(t));
    for (int32_t t : *inst.outputs())
      out.push_back(shapeOf(t));
  }

  bool check();

private:
  Shape shapeOf(int32_t t) const {
    const plan::Tensor *tensor = tensors.Get(t);
    return tensor->shape()
               ? Shape(tensor->shape()->begin(), tensor->shape()->end())
               : Shape();
  }
  static int64_t count(const Shape &s) {
    return std::accumulate(s.begin(), s.end(), int64_t{1},
                           std::multiplies<int64_t>());
  }
  bool fail(const std::string &why) {
    error = why;
    return false;
  }
  bool need(size_t inputs, size_t outputs = 1) {
    if (in.size() < inputs || out.size() != outputs)
      return fail("needs " + std::to_string(inputs) + " inputs and " +
                  std::to_string(outputs) + " outputs");
    return true;
  }
  /// Normalises `axis` of a rank-`rank` tensor, or fails.
  bool axis(int64_t value, size_t rank, int64_t &result) {
    int64_t r = static_cast<int64_t>(rank);
    if (value < -r || value >= r)
      return fail("axis " + std::to_string(value) + " is out of range for " +
                  "rank " + std::to_string(rank));
    result = value < 0 ? value + r : value;
    return true;
  }
  bool outputIs(const Shape &expected) {
    if (out[0] != expected)
      return fail("output shape does not follow from the inputs");
    return true;
  }
  bool broadcast(const Shape &x, const Shape &y, Shape &result) {
    size_t rank = std::max(x.size(), y.size());
    result.assign(rank, 1);
    for (size_t i = 0; i < rank; ++i) {
      int64_t l = i < x.size() ? x[x.size() - 1 - i] : 1;
      int64_t r = i < y.size() ? y[y.size() - 1 - i] : 1;
      if (l != r && l != 1 && r != 1)
        return fail("operand shapes do not broadcast");
      result[rank - 1 - i] = l == 1 ? r : l;
    }
    return true;
  }
  bool checkTranspose();
  bool checkSlice();
  bool checkSplit();
  bool checkReduce();
  bool checkArgMax();
  bool checkMatmul();
  bool checkCrossEntropy();
  bool checkNormGrad(size_t outputs);
  bool checkAddNorm(bool bias);

  const plan::Instruction &inst;
  const flatbuffers::Vector<flatbuffers::Offset<plan::Tensor>> &tensors;
  std::string &error;
  std::vector<Shape> in, out;
};

bool InstructionChecker::checkTranspose() {
  std::vector<int64_t> a = int64s(inst.attrs_as_TransposeAttrs()->perm());
  if (!need(1) || a.size() != in[0].size())
    return fail("needs a permutation of the input's dimensions");
  std::vector<bool> seen(a.size(), false);
  Shape expected;
  for (int64_t p : a) {
    if (p < 0 || p >= static_cast<int64_t>(a.size()) || seen[p])
      return fail("permutation is not a permutation of 0.." +
                  std::to_string(a.size() - 1));
    seen[p] = true;
    expected.push_back(in[0][p]);
  }
  return outputIs(expected);
}

bool InstructionChecker::checkSlice() {
  const plan::SliceAttrs &attrs = *inst.attrs_as_SliceAttrs();
  std::vector<int64_t> starts = int64s(attrs.starts()),
                       limits = int64s(attrs.limits()),
                       steps = int64s(attrs.steps());
  size_t r = in.empty() ? 0 : in[0].size();
  if (!need(1) || starts.size() != r || limits.size() != r || steps.size() != r)
    return fail("needs starts, limits and steps for every dimension");
  Shape expected;
  for (size_t d = 0; d < r; ++d) {
    int64_t start = starts[d], limit = limits[d], step = steps[d];
    if (step < 1 || start < 0 || limit > in[0][d] || start > limit)
      return fail("slice [" + std::to_string(start) + ", " +
                  std::to_string(limit) + ") step " + std::to_string(step) +
                  " does not fit dimension " + std::to_string(d) + " of " +
                  std::to_string(in[0][d]));
    expected.push_back((limit - start + step - 1) / step);
  }
  return outputIs(expected);
}

bool InstructionChecker::checkSplit() {
  int64_t d;
  if (!need(1, out.size()) || out.empty() ||
      !axis(inst.attrs_as_AxisAttrs()->axis(), in[0].size(), d))
    return false;
  int64_t total = 0;
  for (const Shape &piece : out) {
    if (piece.size() != in[0].size())
      return fail("a piece's rank differs from the input's");
    for (size_t k = 0; k < piece.size(); ++k)
      if (static_cast<int64_t>(k) != d && piece[k] != in[0][k])
        return fail("a piece differs from the input off the split axis");
    total += piece[d];
  }
  if (total != in[0][d])
    return fail("pieces add up to " + std::to_string(total) + ", not " +
                std::to_string(in[0][d]));
  return true;
}

bool InstructionChecker::checkReduce() {
  const plan::ReduceAttrs &attrs = *inst.attrs_as_ReduceAttrs();
  if (!need(1) || attrs.kind() < plan::Reduction::MIN ||
      attrs.kind() > plan::Reduction::MAX)
    return fail("needs a reduction kind (sum, mean, max, min, prod)");
  std::vector<bool> reduced(in[0].size(), false);
  for (int64_t k : int64s(attrs.axes())) {
    if (k < 0 || k >= static_cast<int64_t>(in[0].size()) || reduced[k])
      return fail("reduction axes must be distinct dimensions of the input");
    reduced[k] = true;
  }
  Shape expected;
  for (size_t d = 0; d < in[0].size(); ++d)
    if (!reduced[d])
      expected.push_back(in[0][d]);
    else if (attrs.keepdims())
      expected.push_back(1);
  return outputIs(expected);
}

bool InstructionChecker::checkArgMax() {
  const plan::ArgMaxAttrs &attrs = *inst.attrs_as_ArgMaxAttrs();
  int64_t d;
  if (!need(1) || !axis(attrs.axis(), in[0].size(), d))
    return false;
  Shape expected;
  for (size_t k = 0; k < in[0].size(); ++k)
    if (static_cast<int64_t>(k) != d)
      expected.push_back(in[0][k]);
    else if (attrs.keepdims())
      expected.push_back(1);
  return outputIs(expected);
}

bool InstructionChecker::checkMatmul() {
  const plan::MatmulAttrs &a = *inst.attrs_as_MatmulAttrs();
  if (!need(2) || in[0].size() < 2 || in[1].size() < 2)
    return fail("operands are not [..., M, K] x [..., K, N]");
  // The last two dimensions, as read (after the transpose flags).
  auto rows = [](const Shape &s, bool t) { return s[s.size() - (t ? 1 : 2)]; };
  auto cols = [](const Shape &s, bool t) { return s[s.size() - (t ? 2 : 1)]; };
  if (cols(in[0], a.transpose_lhs()) != rows(in[1], a.transpose_rhs()))
    return fail("operands are not [..., M, K] x [..., K, N]");
  Shape batch;
  if (!broadcast(Shape(in[0].begin(), in[0].end() - 2),
                 Shape(in[1].begin(), in[1].end() - 2), batch))
    return false;
  batch.push_back(rows(in[0], a.transpose_lhs()));
  batch.push_back(cols(in[1], a.transpose_rhs()));
  return outputIs(batch);
}

/// Logits [..., V] and labels [...]; the gradient also takes the loss's
/// rank-0 adjoint and gives the logits' shape.
bool InstructionChecker::checkCrossEntropy() {
  plan::Reduction r = inst.attrs_as_CrossEntropyAttrs()->reduction();
  if (r != plan::Reduction::Sum && r != plan::Reduction::Mean)
    return fail("needs a reduction of sum or mean");
  if (inst.opcode() == O::CrossEntropy)
    return need(2);
  if (!need(3) || in[0].empty() ||
      Shape(in[0].begin(), in[0].end() - 1) != in[1] || count(in[2]) != 1)
    return fail("needs logits [..., V], labels [...] and a scalar");
  return outputIs(in[0]);
}

/// x [..., D], scale [D] and dy like x give dx like x and [D] sums.
bool InstructionChecker::checkNormGrad(size_t outputs) {
  if (!need(3, outputs) || in[0].empty() || in[1] != Shape{in[0].back()} ||
      in[2] != in[0])
    return fail("needs x [..., D], scale [D] and a gradient shaped like x");
  for (size_t k = 1; k < outputs; ++k)
    if (out[k] != in[1])
      return fail("scale gradients must be shaped like the scale");
  return outputIs(in[0]);
}

/// x and residual [..., D], scale [D] (and bias [D]) give the sum and the
/// normalised sum, both shaped like x.
bool InstructionChecker::checkAddNorm(bool bias) {
  if (!need(3, 2) || in.size() > (bias ? 4u : 3u) || in[0].empty() ||
      in[1] != in[0] || in[2] != Shape{in[0].back()} ||
      (in.size() == 4 && in[3] != in[2]) || out[1] != in[0])
    return fail("needs x and a residual of one shape [..., D], scale [D]" +
                std::string(bias ? " and an optional bias [D]" : "") +
                ", and two results shaped like x");
  return outputIs(in[0]);
}

bool InstructionChecker::check() {
  Shape expected;
  int64_t d;
  switch (inst.opcode()) {
  case O::Add:
  case O::Sub:
  case O::Mul:
  case O::Div:
  case O::Pow:
  case O::Max:
  case O::Min:
  case O::And:
  case O::Or:
    return need(2) && broadcast(in[0], in[1], expected) && outputIs(expected);
  case O::Compare: {
    plan::ComparePredicate p = inst.attrs_as_CompareAttrs()->predicate();
    if (!need(2) || p < plan::ComparePredicate::MIN ||
        p > plan::ComparePredicate::MAX)
      return fail("needs a predicate (eq, ne, lt, le, gt, ge)");
    return broadcast(in[0], in[1], expected) && outputIs(expected);
  }
  case O::Linear: {
    plan::WeightLayout l = inst.attrs_as_LinearAttrs()->layout();
    if (l < plan::WeightLayout::MIN || l > plan::WeightLayout::MAX)
      return fail("needs a weight layout (InOut or OutIn)");
    return need(2);
  }
  case O::Where: {
    Shape values;
    return need(3) && broadcast(in[1], in[2], values) &&
           broadcast(in[0], values, expected) && outputIs(expected);
  }
  case O::Transpose:
    return checkTranspose();
  case O::Slice:
    return checkSlice();
  case O::Split:
    return checkSplit();
  case O::Concat:
  case O::Gather:
  case O::Softmax:
  case O::LogSoftmax:
    return need(1) && axis(inst.attrs_as_AxisAttrs()->axis(), in[0].size(), d);
  case O::Reduce:
    return checkReduce();
  case O::ArgMax:
    return checkArgMax();
  case O::Matmul:
    return checkMatmul();
  case O::Copy:
  case O::Cast:
    if (!need(1) || count(in[0]) != count(out[0]))
      return fail("input and output hold different element counts");
    return true;
  case O::Embedding:
    if (!need(2) || in[0].size() != 2)
      return fail("needs a [rows, features] table and ids");
    expected = in[1];
    expected.push_back(in[0][1]);
    return outputIs(expected);
  case O::EmbeddingGrad: {
    if (!need(2) || out[0].size() != 2 ||
        inst.attrs_as_EmbeddingGradAttrs()->rows() != out[0][0])
      return fail("needs [rows, features] output with rows = its attribute");
    int64_t padding = inst.attrs_as_EmbeddingGradAttrs()->padding_idx();
    if (padding < -1 || padding >= out[0][0])
      return fail("padding_idx outside the table's rows");
    return true;
  }
  case O::GeluGrad:
  case O::GeluTanhGrad:
    if (!need(2) || in[1] != in[0] || out[0] != in[0])
      return fail("needs the input and its gradient, and a result, of one "
                  "shape");
    return true;
  case O::AttentionGrad:
    // q, k, v, the result's gradient (and a mask) -> dq, dk, dv.
    if (!need(4, 3) || out[0] != in[0] || out[1] != in[1] || out[2] != in[2])
      return fail("needs q, k, v and a gradient, and dq, dk, dv shaped like "
                  "q, k, v");
    return true;
  case O::AdamWUpdate:
    if (!need(6, 3) || in[1] != in[0] || in[2] != in[0] || in[3] != in[0] ||
        !in[4].empty() || !in[5].empty() || out[0] != in[0] ||
        out[1] != in[0] || out[2] != in[0])
      return fail("needs param, grad, m, v of one shape, scalar lr and step, "
                  "and outputs of the param's shape");
    return true;
  case O::CrossEntropy:
  case O::CrossEntropyGrad:
    return checkCrossEntropy();
  case O::LayerNormGrad:
    return checkNormGrad(3);
  case O::RmsNormGrad:
    return checkNormGrad(2);
  case O::AddLayerNorm:
    return checkAddNorm(true);
  case O::AddRmsNorm:
    return checkAddNorm(false);
  default:
    return need(1);
  }
}

} // namespace

bool checkInstruction(
    const plan::Instruction &inst,
    const flatbuffers::Vector<flatbuffers::Offset<plan::Tensor>> &tensors,
    std::string &error) {
  return InstructionChecker(inst, tensors, error).check();
}

} // namespace galvatron::rt
