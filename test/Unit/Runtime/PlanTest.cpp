//===- PlanTest.cpp - plan verification and communication instructions ---===//

#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/PlanFile.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace galvatron;
using namespace galvatron::rt;

namespace {

/// A one-rank plan: y = AllReduce(x) over `groupRanks`, then Tanh.
std::vector<uint8_t> makePlan(std::vector<int32_t> groupRanks,
                              plan::Opcode op = plan::Opcode::AllReduce) {
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
  std::vector<int64_t> ints = {0, 0};
  std::vector<flatbuffers::Offset<plan::Instruction>> instructions = {
      plan::CreateInstructionDirect(fbb, op, &in0, &out0, &ints),
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

TEST(Plan, CollectiveOverAGroupWithoutTheRankIsRefused) {
  std::vector<uint8_t> bytes = makePlan({1, 2});
  std::string error;
  EXPECT_FALSE(verifyPlan(bytes, error));
  EXPECT_NE(error.find("instruction 0 (AllReduce) uses group 0, which does "
                       "not contain this rank"),
            std::string::npos)
      << error;
}

TEST(Plan, CollectiveOverSeveralRanksNeedsACommunicator) {
  std::vector<uint8_t> bytes = makePlan({0, 1});
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  ASSERT_TRUE(p) << error;
  std::map<std::string, Tensor> outputs;
  RunStats stats;
  EXPECT_FALSE(runRank(*p, 0, {{"x", Tensor(DType::F32, {2, 2})}}, {}, outputs,
                       stats, error));
  EXPECT_NE(error.find("AllReduce over a group of 2 ranks needs a "
                       "communicator"),
            std::string::npos)
      << error;
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
