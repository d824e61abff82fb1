//===- InterfacesTest.cpp - every op states its rules ---------------------===//
//
// Every galv op that runs in a program implements the four rule interfaces
// (partition, adjoint, cost, plan instruction), or refuses through them
// with a reason; costs match hand-computed counts.
//
//===----------------------------------------------------------------------===//

#include "Galv/Adjoint.h"
#include "Galv/Galv.h"
#include "Galv/Partitioning.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

using namespace mlir;
using namespace mlir::galv;

namespace {

/// The module's structure, never inside a program: no rules apply.
const std::set<std::string> kStructural = {"galv.parameter", "galv.layer_type",
                                           "galv.return", "galv.layer"};
/// Instructions of the stage programs galv-schedule builds, after
/// partitioning and autodiff: --emit-plan lowers them itself.
const std::set<std::string> kStageProgram = {"galv.send", "galv.recv",
                                             "galv.copy"};

TEST(Interfaces, EveryProgramOpImplementsEveryRule) {
  MLIRContext context;
  context.loadDialect<GalvDialect>();
  int programOps = 0;
  for (RegisteredOperationName name : context.getRegisteredOperations()) {
    if (name.getDialectNamespace() != "galv")
      continue;
    std::string op = name.getStringRef().str();
    bool partition = name.hasInterface<PartitionOpInterface>();
    bool adjoint = name.hasInterface<AdjointOpInterface>();
    bool cost = name.hasInterface<CostOpInterface>();
    bool plan = name.hasInterface<PlanOpInterface>();
    if (kStructural.count(op) || kStageProgram.count(op)) {
      EXPECT_FALSE(partition || adjoint || cost || plan) << op;
      continue;
    }
    ++programOps;
    EXPECT_TRUE(partition) << op << " has no partition rule";
    EXPECT_TRUE(adjoint) << op << " has no adjoint rule";
    EXPECT_TRUE(cost) << op << " has no cost rule";
    EXPECT_TRUE(plan) << op << " has no plan instruction rule";
  }
  EXPECT_GE(programOps, 50);
}

class RuleTest : public ::testing::Test {
protected:
  RuleTest() : builder(&context), loc(builder.getUnknownLoc()) {
    context.loadDialect<GalvDialect, func::FuncDialect>();
    module = ModuleOp::create(loc);
    context.getDiagEngine().registerHandler([this](Diagnostic &d) {
      messages += d.str() + "\n";
      return success();
    });
  }

  SmallVector<Value> begin(ArrayRef<Type> inputs) {
    builder.setInsertionPointToEnd(module->getBody());
    func = func::FuncOp::create(builder, loc, "loss",
                                builder.getFunctionType(inputs, {}));
    Block *entry = func.addEntryBlock();
    builder.setInsertionPointToEnd(entry);
    return SmallVector<Value>(entry->getArguments());
  }
  RankedTensorType f32(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, builder.getF32Type());
  }
  RankedTensorType i64(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, builder.getI64Type());
  }
  PlanConfigAttr plan() {
    return PlanConfigAttr::get(&context, /*world_size=*/2, /*pp=*/1,
                               /*pp_division=*/{1}, /*chunks=*/1,
                               /*global_batch=*/2, PipelineSchedule::gpipe,
                               DataParallelKind::ddp, /*vocab_tp=*/1,
                               SequenceParallelKind::none,
                               /*embed_zero3=*/false);
  }
  StrategyAttr strategy() {
    return StrategyAttr::get(&context, 1, 2, true, DataParallelKind::ddp,
                             SequenceParallelKind::none, false, 0);
  }

  MLIRContext context;
  OpBuilder builder;
  Location loc;
  OwningOpRef<ModuleOp> module;
  func::FuncOp func;
  std::string messages;
};

TEST_F(RuleTest, CostsAreCountedFromTypes) {
  auto args =
      begin({f32({2, 3, 4}), f32({2, 4, 5}), f32({8, 16}), f32({32, 16}),
             f32({32}), f32({1, 2, 4, 8}), f32({1, 2, 6, 8})});
  auto matmul = MatmulOp::create(builder, loc, args[0], args[1]);
  OpCost c = cast<CostOpInterface>(*matmul).getCost();
  EXPECT_EQ(c.flops, 2.0 * 2 * 3 * 5 * 4);
  EXPECT_EQ(c.bytesRead, (24 + 40) * 4);
  EXPECT_EQ(c.bytesWritten, 30 * 4);

  auto linear = LinearOp::create(builder, loc, args[2], args[3], args[4],
                                 WeightLayout::out_in);
  c = cast<CostOpInterface>(*linear).getCost();
  EXPECT_EQ(c.flops, 2.0 * 8 * 32 * 16 + 8 * 32);
  EXPECT_EQ(c.bytesRead, (8 * 16 + 32 * 16 + 32) * 4);
  EXPECT_EQ(c.bytesWritten, 8 * 32 * 4);

  auto attention =
      AttentionOp::create(builder, loc, args[5], args[6], args[6], Value(),
                          /*causal=*/true, llvm::APFloat(0.25));
  c = cast<CostOpInterface>(*attention).getCost();
  double scores = 1 * 2 * 4 * 6;
  EXPECT_EQ(c.flops, 4 * scores * 8 + 5 * scores);
  auto attentionGrad = AttentionGradOp::create(
      builder, loc, args[5], args[6], args[6], attention.getResult(), Value(),
      /*causal=*/true, llvm::APFloat(0.25));
  c = cast<CostOpInterface>(*attentionGrad).getCost();
  EXPECT_EQ(c.flops, 10 * scores * 8 + 8 * scores);
  EXPECT_EQ(c.bytesWritten, (8 + 12 + 12) * 8 * 4);

  auto add = AddOp::create(builder, loc, args[0], args[0]);
  c = cast<CostOpInterface>(*add).getCost();
  EXPECT_EQ(c.flops, 24);
  EXPECT_EQ(c.bytesRead, 2 * 24 * 4);

  auto reshape = ReshapeOp::create(builder, loc, f32({6, 4}), args[0]);
  c = cast<CostOpInterface>(*reshape).getCost();
  EXPECT_EQ(c.flops, 0);
  EXPECT_EQ(c.bytesWritten, 24 * 4);
}

TEST_F(RuleTest, RefusalsSayWhy) {
  auto args =
      begin({f32({4, 8}), i64({4}), f32({}), f32({8}), f32({1, 2, 4, 8})});
  Value reduced =
      AllReduceOp::create(builder, loc, ReduceKind::sum, args[0],
                          DeviceGroupAttr::get(builder.getContext(), 2, 1));
  PartitionState state(func, plan(), strategy());
  Axes axes = axesOf(strategy());
  EXPECT_TRUE(failed(cast<PartitionOpInterface>(reduced.getDefiningOp())
                         .partition(state, axes)));
  EXPECT_NE(messages.find("'galv.all_reduce' is made by partitioning"),
            std::string::npos)
      << messages;

  auto grad =
      EmbeddingGradOp::create(builder, loc, f32({10, 8}), args[0], args[1], 10);
  AdjointBuilder ab(builder, loc);
  EXPECT_TRUE(failed(cast<AdjointOpInterface>(*grad).buildAdjoint(
      ab, ArrayRef<Value>{args[0]})));
  EXPECT_NE(messages.find("no gradient for 'galv.embedding_grad': it is "
                          "itself a gradient"),
            std::string::npos)
      << messages;

  // The fused gradients: built by autodiff after partitioning, and not
  // differentiated again; each lowers to its plan instruction.
  auto eps = builder.getF64FloatAttr(1e-5);
  SmallVector<Operation *> fused = {
      CrossEntropyGradOp::create(
          builder, loc, f32({4, 8}), args[0], args[1], args[2],
          ReduceKindAttr::get(&context, ReduceKind::mean),
          builder.getI64IntegerAttr(-100)),
      LayerNormGradOp::create(builder, loc, f32({4, 8}), f32({8}), f32({8}),
                              args[0], args[3], args[0], eps),
      RmsNormGradOp::create(builder, loc, f32({4, 8}), f32({8}), args[0],
                            args[3], args[0], eps)};
  for (Operation *op : fused) {
    std::string name = op->getName().getStringRef().str();
    messages.clear();
    EXPECT_TRUE(failed(cast<PartitionOpInterface>(op).partition(state, axes)));
    EXPECT_NE(messages.find("'" + name + "' appears only in the backward"),
              std::string::npos)
        << messages;
    EXPECT_TRUE(failed(cast<AdjointOpInterface>(op).buildAdjoint(
        ab, ArrayRef<Value>{args[0]})));
    EXPECT_NE(messages.find("no gradient for '" + name +
                            "': it is itself a gradient"),
              std::string::npos)
        << messages;
    PlanInstruction lowered;
    EXPECT_TRUE(succeeded(cast<PlanOpInterface>(op).lowerToPlan(lowered)));
    EXPECT_GE(cast<CostOpInterface>(op).getCost().flops, 4 * 8);
  }
  Value q = args[4];
  auto attentionGrad = AttentionGradOp::create(
      builder, loc, q, q, q, q, Value(), /*causal=*/false, llvm::APFloat(0.5));
  EXPECT_TRUE(failed(
      cast<PartitionOpInterface>(*attentionGrad).partition(state, axes)));
  EXPECT_NE(messages.find("'galv.attention_grad' appears only in the backward "
                          "pass"),
            std::string::npos)
      << messages;
  EXPECT_TRUE(failed(cast<AdjointOpInterface>(*attentionGrad)
                         .buildAdjoint(ab, ArrayRef<Value>{q})));
  EXPECT_NE(messages.find("no gradient for 'galv.attention_grad': it is "
                          "itself a gradient"),
            std::string::npos)
      << messages;

  auto constant = ConstantOp::create(
      builder, loc,
      DenseElementsAttr::get(f32({}), builder.getF32FloatAttr(1)));
  PlanInstruction instruction;
  EXPECT_TRUE(
      failed(cast<PlanOpInterface>(*constant).lowerToPlan(instruction)));
  EXPECT_NE(messages.find("'galv.constant' is not a plan instruction"),
            std::string::npos)
      << messages;
}

} // namespace
