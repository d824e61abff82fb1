//===- MakeTestPlans.cpp - plans for galvatron-run's multi-rank tests -----===//
//
//   galvatron-make-test-plans DIR
//
// Writes small plans, built by hand, that the galvatron-run lit tests run
// under mpirun, each in a one-rank and a two-rank form that compute the same
// numbers exactly (small integers and quarters, so no sum depends on its
// order), plus their weights and data:
//
//   toy-train-{1,2}.bin  a @train_step-shaped plan (inputs by role, state
//                        fed back). Two ranks split the batch (input_ids
//                        rows), cut parameter w and its first moment by
//                        rows, its second moment flat, and b and both its
//                        moments flat with padding ([3] in two pieces of
//                        2). The vocabulary is 16 ids. The loss is
//                        mean(column sums of the batch) + sum(w), with both
//                        sums all-reduced; the update is w -= lr * w,
//                        b += lr, m/v += lr or step.
//   toy-forward-{1,2}.bin  y = tanh(x * w) (x, w and y cut by rows) and
//                        s = sum(x), all-reduced.
//   mismatched-2.bin     two ranks whose collectives disagree
//   mismatched-attrs-1.bin  a Softmax carrying a Send's attribute table
//   toy.safetensors      w [4, 2] = 1..8, b [3] = 1, 2, 3
//   x.npy                [4, 2] = 0..7 / 4;  tokens.npy  64 token ids
//
//===----------------------------------------------------------------------===//

#include "TestPlans.h"

#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Npy.h"

#include <cstdio>
#include <cstring>

using namespace galvatron;
using galvatron::testing::allReduce;
using galvatron::testing::buildPlan;
using galvatron::testing::ProgramBuilder;
using galvatron::testing::reduceOver;
using galvatron::testing::ShardSpec;
using O = plan::Opcode;
using R = plan::Reduction;

namespace {

constexpr plan::DType F32 = plan::DType::F32;
/// The toy training plan's vocabulary: tokens.npy holds ids below it.
constexpr int64_t kVocab = 16;

/// Rows of `full` in `n` pieces, piece `r` (no shard when n == 1).
std::optional<ShardSpec> rows(std::vector<int64_t> full, int n, int r) {
  if (n == 1)
    return std::nullopt;
  return ShardSpec{full, {plan::DimCut(0, 1, n, r)}};
}

/// `full` flattened in `n` pieces, piece `r`.
std::optional<ShardSpec> flat(std::vector<int64_t> full, int n, int r) {
  if (n == 1)
    return std::nullopt;
  return ShardSpec{full, {}, n, r};
}

std::vector<int64_t> local(const std::vector<int64_t> &full,
                           const std::optional<ShardSpec> &shard) {
  if (!shard)
    return full;
  std::vector<int64_t> shape = full;
  for (const plan::DimCut &cut : shard->cuts)
    shape[cut.axis()] /= cut.parts();
  if (shard->flatParts > 1) {
    int64_t count = 1;
    for (int64_t d : shape)
      count *= d;
    shape = {(count + shard->flatParts - 1) / shard->flatParts};
  }
  return shape;
}

std::vector<uint8_t> trainPlan(int n) {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < n; ++r) {
    ProgramBuilder b(r);
    struct State {
      std::string name;
      plan::Role role;
      std::string param;
      std::optional<ShardSpec> shard;
      int32_t tensor;
    };
    const plan::Role P = plan::Role::Parameter, M = plan::Role::AdamM,
                     V = plan::Role::AdamV;
    std::vector<State> state = {{"param:w", P, "w", rows({4, 2}, n, r), -1},
                                {"param:b", P, "b", flat({3}, n, r), -1},
                                {"adam_m:w", M, "w", rows({4, 2}, n, r), -1},
                                {"adam_v:w", V, "w", flat({4, 2}, n, r), -1},
                                {"adam_m:b", M, "b", flat({3}, n, r), -1},
                                {"adam_v:b", V, "b", flat({3}, n, r), -1}};
    std::vector<std::vector<int64_t>> fullShapes = {{4, 2}, {3}, {4, 2},
                                                    {4, 2}, {3}, {3}};
    for (size_t i = 0; i < state.size(); ++i)
      state[i].tensor =
          b.input(state[i].name, F32, local(fullShapes[i], state[i].shard),
                  state[i].role, state[i].param, state[i].shard);
    int32_t lr = b.input("lr", F32, {}, plan::Role::LearningRate);
    int32_t step = b.input("step", F32, {}, plan::Role::Step);
    auto idsShard = rows({2, 4}, n, r);
    int32_t ids = b.input("input_ids", plan::DType::I64,
                          local({2, 4}, idsShard), idsShard);
    int32_t group = 0; // [0] or [0, 1]
    int32_t xf = b.op(O::Cast, {ids}, local({2, 4}, idsShard), F32);
    int32_t columns = b.op(O::Reduce, {xf}, {4}, F32, reduceOver(R::Sum, {0}));
    int32_t total = b.op(O::AllReduce, {columns}, {4}, F32, allReduce(group));
    int32_t mean = b.op(O::Reduce, {total}, {}, F32, reduceOver(R::Mean, {0}));
    int32_t w = state[0].tensor;
    std::vector<int64_t> wShape = local({4, 2}, state[0].shard);
    int32_t wPart = b.op(O::Reduce, {w}, {}, F32, reduceOver(R::Sum, {0, 1}));
    int32_t wSum = b.op(O::AllReduce, {wPart}, {}, F32, allReduce(group));
    b.output(b.op(O::Add, {mean, wSum}, {}, F32), "loss");
    int32_t scaled = b.op(O::Mul, {w, lr}, wShape, F32);
    int32_t newW = b.op(O::Sub, {w, scaled}, wShape, F32);
    b.output(newW, "param:w", state[0].shard);
    b.feedBack(newW, w);
    const int32_t bumps[] = {-1, lr, lr, step, step, lr};
    for (size_t i = 1; i < state.size(); ++i) {
      int32_t next = b.op(O::Add, {state[i].tensor, bumps[i]},
                          local(fullShapes[i], state[i].shard), F32);
      b.output(next, state[i].name, state[i].shard);
      b.feedBack(next, state[i].tensor);
    }
    programs.push_back(std::move(b));
  }
  std::vector<std::vector<int32_t>> groups = {{0}};
  if (n == 2)
    groups = {{0, 1}};
  return buildPlan(groups, programs, "toy.safetensors", kVocab);
}

std::vector<uint8_t> forwardPlan(int n) {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < n; ++r) {
    ProgramBuilder b(r);
    auto shard = rows({4, 2}, n, r);
    std::vector<int64_t> shape = local({4, 2}, shard);
    int32_t x = b.input("x", F32, shape, shard);
    int32_t w = b.weight("w", F32, shape, shard);
    int32_t xw = b.op(O::Mul, {x, w}, shape, F32);
    b.output(b.op(O::Tanh, {xw}, shape, F32), "y", shard);
    int32_t part = b.op(O::Reduce, {x}, {}, F32, reduceOver(R::Sum, {0, 1}));
    b.output(b.op(O::AllReduce, {part}, {}, F32, allReduce(0)), "s");
    programs.push_back(std::move(b));
  }
  std::vector<std::vector<int32_t>> groups = {{0}};
  if (n == 2)
    groups = {{0, 1}};
  return buildPlan(groups, programs, "toy.safetensors");
}

/// Two ranks whose programs disagree: rank 0 all-reduces 4 floats, rank 1
/// all-reduces 8 (the MPI calls would not match).
std::vector<uint8_t> mismatchedPlan() {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < 2; ++r) {
    ProgramBuilder b(r);
    int64_t n = r == 0 ? 4 : 8;
    int32_t x = b.input("x", F32, {n});
    b.output(b.op(O::AllReduce, {x}, {n}, F32, allReduce(0)), "y");
    programs.push_back(std::move(b));
  }
  return buildPlan({{0, 1}}, programs);
}

/// One rank whose Softmax carries a Send's attribute table: the verifier
/// must refuse it before anything runs.
std::vector<uint8_t> mismatchedAttrsPlan() {
  ProgramBuilder b(0);
  int32_t x = b.input("x", F32, {2, 3});
  b.output(b.op(O::Softmax, {x}, {2, 3}, F32, galvatron::testing::peer(0, 0)),
           "y");
  return buildPlan({{0}}, {b});
}

void write(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::string error;
  if (!writeFileAtomically(path, {{bytes.data(), bytes.size()}}, error)) {
    std::fprintf(stderr, "galvatron-make-test-plans: %s\n", error.c_str());
    std::exit(1);
  }
}

SafetensorsTensor f32(std::vector<int64_t> shape,
                      const std::vector<float> &values) {
  SafetensorsTensor t;
  t.dtype = "F32";
  t.shape = std::move(shape);
  t.data.resize(values.size() * 4);
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: galvatron-make-test-plans DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  for (int n : {1, 2}) {
    write(dir + "/toy-train-" + std::to_string(n) + ".bin", trainPlan(n));
    write(dir + "/toy-forward-" + std::to_string(n) + ".bin", forwardPlan(n));
  }
  write(dir + "/mismatched-2.bin", mismatchedPlan());
  write(dir + "/mismatched-attrs-1.bin", mismatchedAttrsPlan());
  std::string error;
  if (!writeSafetensors(dir + "/toy.safetensors",
                        {{"w", f32({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8})},
                         {"b", f32({3}, {1, 2, 3})}},
                        error)) {
    std::fprintf(stderr, "galvatron-make-test-plans: %s\n", error.c_str());
    return 1;
  }
  rt::Tensor x(rt::DType::F32, {4, 2}), tokens(rt::DType::I64, {64});
  for (int64_t i = 0; i < 8; ++i)
    x.f32()[i] = i / 4.0f;
  for (int64_t i = 0; i < 64; ++i)
    tokens.i64()[i] = (i * 7) % 13;
  if (!rt::writeNpy(dir + "/x.npy", x, error) ||
      !rt::writeNpy(dir + "/tokens.npy", tokens, error)) {
    std::fprintf(stderr, "galvatron-make-test-plans: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
