//===- AttrsTest.cpp - cost, strategy, plan and sharding attributes -------===//

#include "Galv/Galv.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::galv;

namespace {

class AttrsTest : public ::testing::Test {
protected:
  AttrsTest() { context.loadDialect<GalvDialect>(); }

  /// Parses `text`, returning the attribute or null and the diagnostics.
  Attribute parse(StringRef text) {
    errors.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      errors += diag.str();
      return success();
    });
    return parseAttribute(text, &context);
  }

  std::string print(Attribute attr) {
    std::string text;
    llvm::raw_string_ostream os(text);
    attr.print(os);
    return text;
  }

  MLIRContext context;
  std::string errors;
};

TEST_F(AttrsTest, CostRoundTripsDoublesExactly) {
  // 0.1 and 1/3 have no short exact decimal; printing must still give back
  // the same bits.
  auto cost = LayerCostAttr::get(&context, APFloat(0.1), APFloat(1.0 / 3.0),
                                 1234, {1, 2, 4}, {300, 200, 120}, 50);
  Attribute reparsed = parse(print(cost));
  ASSERT_TRUE(reparsed) << errors;
  auto back = cast<LayerCostAttr>(reparsed);
  EXPECT_EQ(back, cost);
  EXPECT_EQ(back.getBackwardRatio().convertToDouble(), 1.0 / 3.0);
  EXPECT_EQ(back.getActivationBytesAt(2), 200);
  EXPECT_FALSE(back.getActivationBytesAt(8).has_value());
}

TEST_F(AttrsTest, StrategyDefaultsAreElided) {
  auto strategy = cast<StrategyAttr>(parse("#galv.strategy<tp = 2, dp = 4>"));
  ASSERT_TRUE(strategy) << errors;
  EXPECT_TRUE(strategy.getTpConsecutive());
  EXPECT_EQ(strategy.getDpKind(), DataParallelKind::ddp);
  EXPECT_EQ(strategy.getSp(), SequenceParallelKind::none);
  EXPECT_FALSE(strategy.getCheckpoint());
  EXPECT_EQ(print(strategy), "#galv.strategy<tp = 2, dp = 4>");
}

TEST_F(AttrsTest, StrategyVerifierNamesTheField) {
  EXPECT_FALSE(parse("#galv.strategy<tp = 3, dp = 1>"));
  EXPECT_NE(errors.find("tp must be a power of two, got 3"), std::string::npos)
      << errors;
  EXPECT_FALSE(parse("#galv.strategy<tp = 1, dp = 2, sp = ulysses>"));
  EXPECT_NE(errors.find("needs tp > 1"), std::string::npos) << errors;
}

TEST_F(AttrsTest, PlanDerivedQuantities) {
  auto plan = cast<PlanConfigAttr>(
      parse("#galv.plan<world_size = 8, pp = 2, pp_division = [5, 7], "
            "chunks = 4, global_batch = 32>"));
  ASSERT_TRUE(plan) << errors;
  EXPECT_EQ(plan.getDevicesPerStage(), 4);
  EXPECT_EQ(plan.getNumLayers(), 12);
  EXPECT_EQ(plan.getSchedule(), PipelineSchedule::gpipe);
  EXPECT_FALSE(parse("#galv.plan<world_size = 8, pp = 2, pp_division = [5], "
                     "chunks = 4, global_batch = 32>"));
  EXPECT_NE(errors.find("pp_division has 1 stages but pp is 2"),
            std::string::npos)
      << errors;
}

TEST_F(AttrsTest, DeviceGroupPositionsAndMembers) {
  // Four ranks two apart in a stage of eight: stage-local rank 6 is last
  // of {0, 2, 4, 6}, rank 3 second of {1, 3, 5, 7}.
  auto strided = DeviceGroupAttr::get(&context, 4, 2);
  EXPECT_EQ(strided.getPosition(6), 3);
  EXPECT_EQ(strided.getMembers(6), (SmallVector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(strided.getPosition(3), 1);
  EXPECT_EQ(strided.getMembers(3), (SmallVector<int64_t>{1, 3, 5, 7}));
  // Consecutive pairs: rank 5 is second of {4, 5}.
  auto pairs = DeviceGroupAttr::get(&context, 2, 1);
  EXPECT_EQ(pairs.getPosition(5), 1);
  EXPECT_EQ(pairs.getMembers(5), (SmallVector<int64_t>{4, 5}));
  EXPECT_FALSE(parse("#galv.group<size = 0, stride = 1>"));
  EXPECT_NE(errors.find("group size must be at least 1, got 0"),
            std::string::npos)
      << errors;
}

TEST_F(AttrsTest, ShardPiecesAndLocalType) {
  auto shard = dyn_cast_or_null<ShardAttr>(
      parse("#galv.shard<cuts = [<axis = 1, blocks = 3, group = <size = 2, "
            "stride = 1>>], flat = <size = 5, stride = 2>>"));
  ASSERT_TRUE(shard) << errors;
  ASSERT_EQ(shard.getCuts().size(), 1u);
  CutAttr cut = shard.getCuts()[0];
  EXPECT_EQ(cut.getAxis(), 1);
  EXPECT_EQ(cut.getBlocks(), 3);
  EXPECT_EQ(cut.getGroup(), DeviceGroupAttr::get(&context, 2, 1));
  EXPECT_EQ(shard.getNumPieces(), 10);
  // [8, 24] cut to [8, 12], flattened to 96 and padded to 100 over 5 ranks.
  Type f32 = Float32Type::get(&context);
  auto full = RankedTensorType::get({8, 24}, f32);
  EXPECT_EQ(shard.getLocalType(full), RankedTensorType::get({20}, f32));
  auto emit = [&] { return emitError(UnknownLoc::get(&context)); };
  EXPECT_TRUE(succeeded(shard.verifyFits(full, emit)));
  errors.clear();
  {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      errors += diag.str();
      return success();
    });
    EXPECT_TRUE(
        failed(shard.verifyFits(RankedTensorType::get({8, 9}, f32), emit)));
  }
  EXPECT_NE(errors.find("does not divide dimension 1 of 'tensor<8x9xf32>' "
                        "into 6 equal pieces"),
            std::string::npos)
      << errors;
}

} // namespace
