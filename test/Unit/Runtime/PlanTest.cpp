//===- PlanTest.cpp - plan verification and communication instructions ---===//

#include "TestPlans.h"

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/PlanFile.h"

#include <cmath>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>

using namespace galvatron;
using namespace galvatron::rt;

namespace {

/// A one-rank plan: y = AllReduce(x) over `groupRanks`, then Tanh.
std::vector<uint8_t> makePlan(std::vector<int32_t> groupRanks) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<int64_t> shape = {2, 2};
  std::vector<flatbuffers::Offset<plan::Tensor>> tensors = {
      plan::CreateTensorDirect(fbb, "x", plan::DType::F32, &shape,
                               plan::Storage::Input, 0, 16),
      plan::CreateTensorDirect(fbb, nullptr, plan::DType::F32, &shape,
                               plan::Storage::Arena, 0, 16),
      plan::CreateTensorDirect(fbb, "y", plan::DType::F32, &shape,
                               plan::Storage::Arena, 64, 16)};
  std::vector<int32_t> in0 = {0}, out0 = {1}, in1 = {1}, out1 = {2};
  std::vector<flatbuffers::Offset<plan::Instruction>> instructions = {
      plan::CreateInstructionDirect(
          fbb, plan::Opcode::AllReduce, &in0, &out0,
          plan::InstructionAttrs::AllReduceAttrs,
          plan::CreateAllReduceAttrs(fbb, 0, plan::Reduction::Sum).Union()),
      plan::CreateInstructionDirect(fbb, plan::Opcode::Tanh, &in1, &out1)};
  std::vector<int32_t> inputs = {0}, outputs = {2};
  std::vector<flatbuffers::Offset<plan::RankProgram>> ranks = {
      plan::CreateRankProgramDirect(fbb, 0, &tensors, &instructions, &inputs,
                                    &outputs, 80)};
  std::vector<flatbuffers::Offset<plan::DeviceGroup>> groups = {
      plan::CreateDeviceGroupDirect(fbb, &groupRanks)};
  fbb.Finish(plan::CreatePlanDirect(fbb, 1, "", &groups, &ranks),
             plan::PlanIdentifier());
  return wrapPlan(fbb.GetBufferPointer(), fbb.GetSize());
}

TEST(Plan, CollectiveOverOneRankIsTheIdentity) {
  std::vector<uint8_t> bytes = makePlan({0});
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  ASSERT_TRUE(p) << error;
  Tensor x(DType::F32, {2, 2});
  float values[] = {-1, 0, 0.5f, 2};
  std::copy(values, values + 4, x.f32());
  std::map<std::string, Tensor> outputs;
  RunStats stats;
  ASSERT_TRUE(runRank(*p, 0, {{"x", x}}, {}, outputs, stats, error)) << error;
  for (int i = 0; i < 4; ++i)
    EXPECT_FLOAT_EQ(outputs["y"].f32()[i], std::tanh(values[i]));
  EXPECT_EQ(stats.highWaterBytes, 80u);
}

TEST(Plan, GroupsMustNameRanksOfTheWorld) {
  std::vector<uint8_t> bytes = makePlan({0, 1});
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_EQ(error, "device group 0 names rank 1, outside the world size 1");
}

using galvatron::testing::allReduce;
using galvatron::testing::argMaxOver;
using galvatron::testing::Attrs;
using galvatron::testing::axis;
using galvatron::testing::buildPlan;
using galvatron::testing::collectiveAxis;
using galvatron::testing::peer;
using galvatron::testing::permutation;
using galvatron::testing::ProgramBuilder;
using galvatron::testing::reduceOver;
using galvatron::testing::ShardSpec;
using galvatron::testing::sliceOf;

/// Two ranks, each all-reducing its x over group 0 = [0, 1].
std::vector<uint8_t> twoRankPlan() {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < 2; ++r) {
    ProgramBuilder b(r);
    int32_t x = b.input("x", plan::DType::F32, {2});
    b.output(
        b.op(plan::Opcode::AllReduce, {x}, {2}, plan::DType::F32, allReduce(0)),
        "y");
    programs.push_back(std::move(b));
  }
  return buildPlan({{0, 1}}, programs);
}

TEST(Plan, CollectiveOverAGroupWithoutTheRankIsRefused) {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < 2; ++r) {
    ProgramBuilder b(r);
    int32_t x = b.input("x", plan::DType::F32, {2});
    // Rank 0 names group 0 = [1].
    b.output(b.op(plan::Opcode::AllReduce, {x}, {2}, plan::DType::F32,
                  allReduce(r == 0 ? 0 : 1)),
             "y");
    programs.push_back(std::move(b));
  }
  std::vector<uint8_t> bytes = buildPlan({{1}, {0, 1}}, programs);
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_EQ(error, "rank 0: instruction 0 (AllReduce) uses group 0, which "
                   "does not contain this rank");
}

TEST(Plan, CollectiveOverSeveralRanksNeedsSeveralProcesses) {
  std::vector<uint8_t> bytes = twoRankPlan();
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  ASSERT_TRUE(p) << error;
  std::map<std::string, Tensor> outputs;
  RunStats stats;
  EXPECT_FALSE(runRank(*p, 1, {{"x", Tensor(DType::F32, {2})}}, {}, outputs,
                       stats, error));
  EXPECT_EQ(error, "rank 1: instruction 0 (AllReduce): all_reduce over group "
                   "[0,1] needs 2 processes, but this is a single one: run "
                   "the plan under mpirun");
}

TEST(Plan, CollectiveShapesAreVerified) {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < 2; ++r) {
    ProgramBuilder b(r);
    int32_t x = b.input("x", plan::DType::F32, {2, 3});
    // Gathering [2, 3] over two ranks along axis 1 gives [2, 6], not [4, 3].
    b.output(b.op(plan::Opcode::AllGather, {x}, {4, 3}, plan::DType::F32,
                  collectiveAxis(0, 1)),
             "y");
    programs.push_back(std::move(b));
  }
  std::vector<uint8_t> bytes = buildPlan({{0, 1}}, programs);
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_EQ(error, "rank 0: instruction 0 (AllGather) over group 0: gives "
                   "[2, 6] but its output is [4, 3]");
}

TEST(Plan, ShardShapesAreVerified) {
  ProgramBuilder b(0);
  // Rows of [4, 2] in two pieces are [2, 2], not [3, 2].
  int32_t x = b.input("x", plan::DType::F32, {3, 2},
                      ShardSpec{{4, 2}, {plan::DimCut(0, 1, 2, 0)}});
  b.output(b.op(plan::Opcode::Tanh, {x}, {3, 2}, plan::DType::F32), "y");
  std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_EQ(error, "rank 0: tensor 0 is [3, 2], but its shard of [4, 2] "
                   "gives [2, 2]");
}

// A weight or input with a shard may be bound whole; the executor cuts it.
TEST(Plan, BindCutsWholeTensors) {
  ProgramBuilder b(0);
  int32_t x = b.input("x", plan::DType::F32, {1, 2},
                      ShardSpec{{2, 2}, {plan::DimCut(0, 1, 2, 1)}});
  int32_t w = b.weight("w", plan::DType::F32, {2, 1},
                       ShardSpec{{2, 2}, {plan::DimCut(1, 1, 2, 0)}});
  b.output(b.op(plan::Opcode::Matmul, {x, w}, {1, 1}, plan::DType::F32,
                galvatron::testing::matmulAttrs()),
           "y");
  std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  ASSERT_TRUE(p) << error;
  Tensor xs(DType::F32, {2, 2}), ws(DType::F32, {2, 2});
  float xv[] = {1, 2, 3, 4}, wv[] = {10, 20, 30, 40};
  std::copy(xv, xv + 4, xs.f32());
  std::copy(wv, wv + 4, ws.f32());
  std::map<std::string, Tensor> outputs;
  RunStats stats;
  // x row 1 = [3, 4]; w column 0 = [10, 30]: 3 * 10 + 4 * 30.
  ASSERT_TRUE(runRank(*p, 0, {{"x", xs}}, {{"w", ws}}, outputs, stats, error))
      << error;
  EXPECT_FLOAT_EQ(outputs["y"].f32()[0], 150);
  // The local shape binds too; any other shape is refused naming both.
  Tensor wrong(DType::F32, {3, 2});
  EXPECT_FALSE(
      runRank(*p, 0, {{"x", wrong}}, {{"w", ws}}, outputs, stats, error));
  EXPECT_EQ(error, "rank 0: input 'x' is f32 [3, 2], the plan wants f32 "
                   "[1, 2] (a shard of [2, 2])");
}

// A bf16 instruction computes as a GPU kernel does: on widened operands,
// accumulating in fp32, rounding its result once. x = [1 + 2^-7, 1] and
// w = [1 + 2^-7, -3 * 2^-8] (bf16 values) give 1 + 2^-8 + 2^-14 in fp32,
// just above the tie between bf16's 1 and 1 + 2^-7: 1 + 2^-7. Rounding the
// first product to bf16 first would lose the 2^-14 and give 1 (ties to
// even); no rounding at all would give 1.0039368.
TEST(Plan, Bf16InstructionsRoundTheirResultOnce) {
  ProgramBuilder b(0);
  int32_t x = b.input("x", plan::DType::BF16, {1, 2});
  int32_t w = b.weight("w", plan::DType::BF16, {2, 1});
  int32_t y = b.op(plan::Opcode::Matmul, {x, w}, {1, 1}, plan::DType::BF16,
                   galvatron::testing::matmulAttrs());
  b.output(b.op(plan::Opcode::Cast, {y}, {1, 1}, plan::DType::F32), "y");
  std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  ASSERT_TRUE(p) << error;
  Tensor xs(DType::BF16, {1, 2}), ws(DType::BF16, {2, 1});
  xs.set(0, 1 + 0x1p-7), xs.set(1, 1);
  ws.set(0, 1 + 0x1p-7), ws.set(1, -3 * 0x1p-8);
  std::map<std::string, Tensor> outputs;
  RunStats stats;
  ASSERT_TRUE(runRank(*p, 0, {{"x", xs}}, {{"w", ws}}, outputs, stats, error))
      << error;
  EXPECT_EQ(outputs["y"].dtype, DType::F32);
  EXPECT_EQ(outputs["y"].f32()[0], 1 + 0x1p-7f);
}

// On one rank, a send to oneself is received later; byte counts name the
// op and the group.
TEST(Plan, SendToSelfAndByteCounts) {
  ProgramBuilder b(0);
  int32_t x = b.input("x", plan::DType::F32, {3});
  int32_t sent =
      b.op(plan::Opcode::Send, {x}, {3}, plan::DType::F32, peer(0, 0));
  int32_t got = b.op(plan::Opcode::Recv, {}, {3}, plan::DType::F32, peer(0, 0));
  int32_t sum =
      b.op(plan::Opcode::AllReduce, {got}, {3}, plan::DType::F32, allReduce(0));
  b.output(sent, "sent");
  b.output(sum, "y");
  std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  ASSERT_TRUE(p) << error;
  Tensor xs(DType::F32, {3});
  float xv[] = {1, 2, 3};
  std::copy(xv, xv + 3, xs.f32());
  std::map<std::string, Tensor> outputs;
  RunStats stats;
  RunOptions options;
  options.trace = true;
  ASSERT_TRUE(runRank(*p, 0, {{"x", xs}}, {}, outputs, stats, error, options))
      << error;
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(outputs["y"].f32()[i], xv[i]);
  EXPECT_EQ(stats.commBytes,
            (std::map<std::string, uint64_t>{
                {"all_reduce:0", 12}, {"recv:0", 0}, {"send:0", 12}}));
  ASSERT_EQ(stats.trace.size(), 3u);
  EXPECT_STREQ(stats.trace[1].name, "Recv");
  EXPECT_EQ(stats.trace[1].group, 0);
  EXPECT_LE(stats.trace[0].startUs, stats.trace[0].endUs);
}

TEST(Plan, VersionIsChecked) {
  std::vector<uint8_t> bytes = makePlan({0});
  bytes[8] = 3; // a version-3 plan, from before typed attributes
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_EQ(error, "plan format version 3 is not the version 5 this runtime "
                   "reads: re-emit the plan with this galvatron-translate "
                   "(--emit-plan)");
}

TEST(Plan, CorruptionIsDetected) {
  std::vector<uint8_t> bytes = makePlan({0});
  std::string error;
  std::vector<uint8_t> flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  EXPECT_FALSE(verifyPlan(flipped, error));
  EXPECT_NE(error.find("checksum mismatch"), std::string::npos) << error;
  std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + 10);
  EXPECT_FALSE(verifyPlan(truncated, error));
  EXPECT_NE(error.find("bad magic or too short"), std::string::npos) << error;
}

} // namespace

namespace {
/// A one-rank plan of one instruction on input x.
std::string verifyOne(plan::Opcode opcode, std::vector<int64_t> xShape,
                      std::vector<int64_t> outShape, Attrs attrs,
                      plan::DType outType = plan::DType::F32) {
  ProgramBuilder b(0);
  int32_t x = b.input("x", plan::DType::F32, std::move(xShape));
  b.output(b.op(opcode, {x}, std::move(outShape), outType, std::move(attrs)),
           "y");
  std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
  std::string error;
  return verifyPlan(bytes, error) ? "" : error;
}
} // namespace

// Plans with a valid checksum but contents no compiler writes: each is
// refused before a kernel could index outside a tensor.
TEST(Plan, InstructionsAreVerifiedAgainstTheirKernels) {
  using O = plan::Opcode;
  using R = plan::Reduction;
  EXPECT_EQ(verifyOne(O::Transpose, {2, 3}, {3, 2}, permutation({1, 0})), "");
  EXPECT_EQ(verifyOne(O::Transpose, {2, 3}, {3, 2}, permutation({99, 0})),
            "rank 0: instruction 0 (Transpose): permutation is not a "
            "permutation of 0..1");
  EXPECT_EQ(verifyOne(O::Transpose, {2, 3}, {3, 2}, permutation({0, 0})),
            "rank 0: instruction 0 (Transpose): permutation is not a "
            "permutation of 0..1");
  EXPECT_EQ(verifyOne(O::Transpose, {2, 3}, {2, 3}, permutation({1, 0})),
            "rank 0: instruction 0 (Transpose): output shape does not follow "
            "from the inputs");
  EXPECT_EQ(
      verifyOne(O::Slice, {4, 3}, {2, 3}, sliceOf({1, 0}, {3, 3}, {1, 1})), "");
  EXPECT_EQ(
      verifyOne(O::Slice, {4, 3}, {2, 3}, sliceOf({3, 0}, {5, 3}, {1, 1})),
      "rank 0: instruction 0 (Slice): slice [3, 5) step 1 does not fit "
      "dimension 0 of 4");
  EXPECT_EQ(verifyOne(O::Slice, {4, 3}, {2, 3}, sliceOf({1}, {3}, {1})),
            "rank 0: instruction 0 (Slice): needs starts, limits and steps "
            "for every dimension");
  EXPECT_EQ(verifyOne(O::Softmax, {4, 3}, {4, 3}, axis(2)),
            "rank 0: instruction 0 (Softmax): axis 2 is out of range for "
            "rank 2");
  EXPECT_EQ(verifyOne(O::Split, {4, 3}, {3, 3}, axis(0)),
            "rank 0: instruction 0 (Split): pieces add up to 3, not 4");
  EXPECT_EQ(verifyOne(O::Split, {4, 3}, {4, 3}, axis(7)),
            "rank 0: instruction 0 (Split): axis 7 is out of range for "
            "rank 2");
  EXPECT_EQ(verifyOne(O::Reduce, {4, 3}, {4}, reduceOver(R::Sum, {1, 1})),
            "rank 0: instruction 0 (Reduce): reduction axes must be distinct "
            "dimensions of the input");
  EXPECT_EQ(verifyOne(O::ArgMax, {4, 3}, {4}, argMaxOver(1, false, false),
                      plan::DType::I64),
            "");
  EXPECT_EQ(verifyOne(O::ArgMax, {4, 3}, {3}, argMaxOver(1, false, false),
                      plan::DType::I64),
            "rank 0: instruction 0 (ArgMax): output shape does not follow "
            "from the inputs");
  EXPECT_EQ(verifyOne(O::Copy, {4, 3}, {5, 3}, {}),
            "rank 0: instruction 0 (Copy): input and output hold different "
            "element counts");
  EXPECT_EQ(verifyOne(O::Embedding, {4, 3}, {4, 3}, {}),
            "rank 0: instruction 0 (Embedding): needs a [rows, features] "
            "table and ids");
}

// Each opcode carries its own attribute table, or none: another table would
// have its fields read as the wrong ones.
TEST(Plan, MismatchedAttributeTablesAreRefused) {
  using O = plan::Opcode;
  EXPECT_EQ(verifyOne(O::Transpose, {2, 3}, {3, 2}, axis(1)),
            "rank 0: instruction 0 (Transpose) carries AxisAttrs, but "
            "Transpose takes TransposeAttrs");
  EXPECT_EQ(verifyOne(O::Softmax, {4, 3}, {4, 3}, {}),
            "rank 0: instruction 0 (Softmax) carries no attributes, but "
            "Softmax takes AxisAttrs");
  EXPECT_EQ(verifyOne(O::Tanh, {4, 3}, {4, 3}, axis(0)),
            "rank 0: instruction 0 (Tanh) carries AxisAttrs, but Tanh takes "
            "no attributes");
  // A collective with another collective's table names no group it reads.
  EXPECT_EQ(verifyOne(O::AllReduce, {4, 3}, {4, 3}, collectiveAxis(0, 0)),
            "rank 0: instruction 0 (AllReduce) carries CollectiveAxisAttrs, "
            "but AllReduce takes AllReduceAttrs");
  EXPECT_EQ(verifyOne(O::Send, {4, 3}, {4, 3}, allReduce(0)),
            "rank 0: instruction 0 (Send) carries AllReduceAttrs, but Send "
            "takes PeerAttrs");
}

// Roles and feedback: the trainer relies on them instead of names.
TEST(Plan, RolesAndFeedbackAreVerified) {
  auto verify = [](const ProgramBuilder &b) {
    std::string error;
    std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
    return verifyPlan(bytes, error) ? "" : error;
  };
  using R = plan::Role;
  {
    ProgramBuilder b(0);
    int32_t w = b.input("param:w", plan::DType::F32, {2}, R::Parameter, "w");
    int32_t next = b.op(plan::Opcode::Neg, {w}, {2}, plan::DType::F32);
    b.output(next, "param:w");
    EXPECT_EQ(verify(b), ""); // a state input may pass unchanged
    b.feedBack(next, w);
    EXPECT_EQ(verify(b), "");
    int32_t again = b.op(plan::Opcode::Abs, {w}, {2}, plan::DType::F32);
    b.output(again, "again");
    b.feedBack(again, w);
    EXPECT_EQ(verify(b), "rank 0: state input 'param:w' (Parameter of 'w') "
                         "is fed back by 2 outputs");
  }
  {
    ProgramBuilder b(0);
    int32_t w = b.input("w", plan::DType::F32, {2}, R::AdamM);
    b.output(b.op(plan::Opcode::Neg, {w}, {2}, plan::DType::F32), "y");
    EXPECT_EQ(verify(b), "rank 0: input 'w' (AdamM) names no parameter");
  }
  {
    ProgramBuilder b(0);
    int32_t lr = b.input("lr", plan::DType::F32, {1}, R::LearningRate);
    b.output(b.op(plan::Opcode::Neg, {lr}, {1}, plan::DType::F32), "y");
    EXPECT_EQ(verify(b),
              "rank 0: input 'lr' (LearningRate) must be an f32 scalar");
  }
  {
    // A state output of another shape cannot replace its input.
    ProgramBuilder b(0);
    int32_t w = b.input("param:w", plan::DType::F32, {2}, R::Parameter, "w");
    int32_t sum = b.op(plan::Opcode::Reduce, {w}, {}, plan::DType::F32,
                       reduceOver(plan::Reduction::Sum, {0}));
    b.output(sum, "s");
    b.feedBack(sum, w);
    EXPECT_EQ(verify(b), "rank 0: feedback 0 (output 0 -> input 0) joins "
                         "tensors of different types");
  }
}

// An AdamW update that is the last reader of its state writes the new state
// into the lent input tensors (RunOptions::state) instead of returning it,
// with the values it would have returned; a parameter read after the update
// keeps its old value there, so its update is returned as before.
TEST(Plan, AdamWUpdatesLentStateInPlace) {
  using R = plan::Role;
  auto build = [](bool readAfter) {
    ProgramBuilder b(0);
    int32_t w = b.input("param:w", plan::DType::F32, {5}, R::Parameter, "w");
    int32_t g = b.input("g", plan::DType::F32, {5});
    int32_t m = b.input("m:w", plan::DType::F32, {5}, R::AdamM, "w");
    int32_t v = b.input("v:w", plan::DType::F32, {5}, R::AdamV, "w");
    int32_t lr = b.input("lr", plan::DType::F32, {}, R::LearningRate);
    int32_t step = b.input("step", plan::DType::F32, {}, R::Step);
    plan::AdamWAttrsT adamw;
    adamw.beta1 = 0.9;
    adamw.beta2 = 0.999;
    adamw.epsilon = 1e-8;
    adamw.weight_decay = 0.01;
    std::vector<int32_t> next = b.ops(
        plan::Opcode::AdamWUpdate, {w, g, m, v, lr, step}, {{5}, {5}, {5}},
        plan::DType::F32, galvatron::testing::attrsOf(adamw));
    int32_t loss =
        b.op(plan::Opcode::Neg, {readAfter ? w : g}, {5}, plan::DType::F32);
    b.output(loss, "loss");
    const char *names[3] = {"param:w", "m:w", "v:w"};
    int32_t state[3] = {w, m, v};
    for (int k = 0; k < 3; ++k) {
      b.output(next[k], std::string("new_") + names[k]);
      b.feedBack(next[k], state[k]);
    }
    return buildPlan({{0}}, {b});
  };
  auto inputsOf = [] {
    std::map<std::string, Tensor> in;
    for (const char *name : {"param:w", "g", "m:w", "v:w"}) {
      Tensor t(DType::F32, {5});
      for (int i = 0; i < 5; ++i)
        t.f32()[i] = 0.1f * (i + 1) * (name[0] == 'g' ? -1.0f : 1.0f);
      in[name] = std::move(t);
    }
    for (const char *name : {"lr", "step"}) {
      Tensor t(DType::F32, {});
      t.f32()[0] = name[0] == 'l' ? 0.01f : 3.0f;
      in[name] = std::move(t);
    }
    return in;
  };
  for (bool readAfter : {false, true}) {
    std::vector<uint8_t> bytes = build(readAfter);
    std::string error;
    const plan::Plan *p = verifyPlan(bytes, error);
    ASSERT_TRUE(p) << error;
    std::map<std::string, Tensor> copied = inputsOf(), lent = inputsOf(), out,
                                  outLent;
    RunStats stats, statsLent;
    ASSERT_TRUE(runRank(*p, 0, copied, {}, out, stats, error)) << error;
    EXPECT_TRUE(stats.updatedInPlace.empty());
    RunOptions options;
    options.state = &lent;
    ASSERT_TRUE(runRank(*p, 0, lent, {}, outLent, statsLent, error, options))
        << error;
    for (const char *name : {"param:w", "m:w", "v:w"}) {
      std::string produced = std::string("new_") + name;
      bool inPlace = std::count(statsLent.updatedInPlace.begin(),
                                statsLent.updatedInPlace.end(), produced);
      // Only the parameter is read after the update.
      EXPECT_EQ(inPlace, !(readAfter && name[0] == 'p')) << name;
      const Tensor &want = out.at(produced);
      const Tensor &got = inPlace ? lent.at(name) : outLent.at(produced);
      EXPECT_EQ(got.bytes, want.bytes) << name;
      EXPECT_EQ(outLent.count(produced), inPlace ? 0u : 1u) << name;
    }
    EXPECT_EQ(outLent.at("loss").bytes, out.at("loss").bytes);
  }
}

// Found by the plan fuzzer: a shard's full shape whose element count
// overflows int64 is refused instead of overflowing.
TEST(Plan, HugeShardFullShapeIsRefused) {
  ProgramBuilder b(0);
  // Each dimension is in range; their product (2^60) is not.
  ShardSpec shard{{1 << 20, 1 << 20, 1 << 20}, {{0, 1, 2, 0}}};
  int32_t x = b.input("x", plan::DType::F32, {2, 3}, shard);
  b.output(b.op(plan::Opcode::Neg, {x}, {2, 3}, plan::DType::F32), "y");
  std::vector<uint8_t> bytes = buildPlan({{0}}, {b});
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_NE(error.find("is negative or too large"), std::string::npos) << error;
}

// The plan fuzzer's findings (runtime/fuzz/crashes), sealed with a valid
// header as the fuzzer does: each is refused before anything runs.
TEST(Plan, FuzzerFindingsAreRefused) {
  for (const char *name :
       {"shard-count-overflow-fixed", "unknown-storage-output-fixed"}) {
    std::ifstream file(std::string(GALVATRON_FUZZ_CRASHES_DIR) + "/" + name,
                       std::ios::binary);
    ASSERT_TRUE(file) << name;
    std::vector<uint8_t> payload((std::istreambuf_iterator<char>(file)), {});
    std::vector<uint8_t> sealed = wrapPlan(payload.data(), payload.size());
    std::string error;
    EXPECT_FALSE(verifyPlan(sealed, error)) << name;
    EXPECT_FALSE(error.empty()) << name;
  }
}
