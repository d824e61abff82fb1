//===- PlanVerifier.cpp - each instruction's contract, before anything runs
//===//
//
// A plan whose checksum is right can still be wrong (a compiler bug, or a
// crafted file): every compute instruction is checked against what its
// kernel assumes (operand and attribute counts, axes and permutations in
// range, shapes that follow from the inputs), so that the kernels never
// index outside their tensors. Collectives are checked in PlanFile.cpp.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/PlanVerifier.h"

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
    if (inst.ints())
      a.assign(inst.ints()->begin(), inst.ints()->end());
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
  bool need(size_t inputs, size_t attrs, size_t outputs = 1) {
    if (in.size() < inputs || a.size() < attrs || out.size() != outputs)
      return fail("needs " + std::to_string(inputs) + " inputs, " +
                  std::to_string(attrs) + " integer attributes and " +
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

  const plan::Instruction &inst;
  const flatbuffers::Vector<flatbuffers::Offset<plan::Tensor>> &tensors;
  std::string &error;
  std::vector<Shape> in, out;
  std::vector<int64_t> a;
};

bool InstructionChecker::checkTranspose() {
  if (!need(1, in.empty() ? 0 : in[0].size()) || a.size() != in[0].size())
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
  size_t r = in.empty() ? 0 : in[0].size();
  if (!need(1, 3 * r) || a.size() != 3 * r)
    return fail("needs starts, limits and steps for every dimension");
  Shape expected;
  for (size_t d = 0; d < r; ++d) {
    int64_t start = a[d], limit = a[r + d], step = a[2 * r + d];
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
  if (!need(1, 1, out.size()) || out.empty() || !axis(a[0], in[0].size(), d))
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
  if (!need(1, 2) || a[0] < 0 || a[0] > 4)
    return fail("needs a reduction kind (0-4), keepdims and axes");
  std::vector<bool> reduced(in[0].size(), false);
  for (size_t k = 2; k < a.size(); ++k) {
    if (a[k] < 0 || a[k] >= static_cast<int64_t>(in[0].size()) || reduced[a[k]])
      return fail("reduction axes must be distinct dimensions of the input");
    reduced[a[k]] = true;
  }
  Shape expected;
  for (size_t d = 0; d < in[0].size(); ++d)
    if (!reduced[d])
      expected.push_back(in[0][d]);
    else if (a[1])
      expected.push_back(1);
  return outputIs(expected);
}

bool InstructionChecker::checkArgMax() {
  int64_t d;
  if (!need(1, 3) || !axis(a[0], in[0].size(), d))
    return false;
  Shape expected;
  for (size_t k = 0; k < in[0].size(); ++k)
    if (static_cast<int64_t>(k) != d)
      expected.push_back(in[0][k]);
    else if (a[1])
      expected.push_back(1);
  return outputIs(expected);
}

bool InstructionChecker::checkMatmul() {
  if (!need(2, 0) || in[0].size() < 2 || in[1].size() < 2 ||
      in[0].back() != in[1][in[1].size() - 2])
    return fail("operands are not [..., M, K] x [..., K, N]");
  Shape batch;
  if (!broadcast(Shape(in[0].begin(), in[0].end() - 2),
                 Shape(in[1].begin(), in[1].end() - 2), batch))
    return false;
  batch.push_back(in[0][in[0].size() - 2]);
  batch.push_back(in[1].back());
  return outputIs(batch);
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
    return need(2, 0) && broadcast(in[0], in[1], expected) &&
           outputIs(expected);
  case O::Compare:
    if (!need(2, 1) || a[0] < 0 || a[0] > 5)
      return fail("needs a predicate 0-5");
    return broadcast(in[0], in[1], expected) && outputIs(expected);
  case O::Where: {
    Shape values;
    return need(3, 0) && broadcast(in[1], in[2], values) &&
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
    return need(1, 1) && axis(a[0], in[0].size(), d);
  case O::Reduce:
    return checkReduce();
  case O::ArgMax:
    return checkArgMax();
  case O::Matmul:
    return checkMatmul();
  case O::Copy:
  case O::Cast:
    if (!need(1, 0) || count(in[0]) != count(out[0]))
      return fail("input and output hold different element counts");
    return true;
  case O::Embedding:
    if (!need(2, 0) || in[0].size() != 2)
      return fail("needs a [rows, features] table and ids");
    expected = in[1];
    expected.push_back(in[0][1]);
    return outputIs(expected);
  case O::EmbeddingGrad:
    if (!need(2, 1) || out[0].size() != 2 || a[0] != out[0][0])
      return fail("needs [rows, features] output with rows = its attribute");
    return true;
  default:
    return need(1, 0);
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
