//===- ShapesTest.cpp - broadcasting and shape inference ------------------===//

#include "Galv/Galv.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::galv;

namespace {

TEST(BroadcastShapes, FollowsNumpyRules) {
  auto check = [](ArrayRef<int64_t> a, ArrayRef<int64_t> b,
                  ArrayRef<int64_t> expected) {
    auto result = broadcastShapes(a, b);
    ASSERT_TRUE(succeeded(result));
    EXPECT_EQ(ArrayRef<int64_t>(*result), expected);
    // Broadcasting is symmetric.
    auto swapped = broadcastShapes(b, a);
    ASSERT_TRUE(succeeded(swapped));
    EXPECT_EQ(ArrayRef<int64_t>(*swapped), expected);
  };
  check({2, 3}, {2, 3}, {2, 3});
  check({2, 1, 4}, {3, 1}, {2, 3, 4});
  check({}, {5, 6}, {5, 6});
  check({1}, {7}, {7});
  check({8, 1, 6, 1}, {7, 1, 5}, {8, 7, 6, 5});
  EXPECT_TRUE(failed(broadcastShapes({2, 3}, {3, 2})));
  EXPECT_TRUE(failed(broadcastShapes({4}, {3})));
}

/// Builds ops inside a function whose arguments have the requested types,
/// the way the ONNX importer will: result types come from shape inference.
class InferenceTest : public ::testing::Test {
protected:
  InferenceTest() : builder(&context), loc(builder.getUnknownLoc()) {
    context.loadDialect<GalvDialect, func::FuncDialect>();
    module = ModuleOp::create(loc);
  }

  /// Starts a function taking `inputs` and returns its arguments.
  SmallVector<Value> begin(ArrayRef<Type> inputs) {
    builder.setInsertionPointToEnd(module->getBody());
    func = func::FuncOp::create(builder, loc, "f",
                                builder.getFunctionType(inputs, {}));
    Block *entry = func.addEntryBlock();
    builder.setInsertionPointToEnd(entry);
    return SmallVector<Value>(entry->getArguments());
  }

  void end() {
    func::ReturnOp::create(builder, loc);
    EXPECT_TRUE(succeeded(verify(*module)));
  }

  RankedTensorType f32(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, builder.getF32Type());
  }
  RankedTensorType i64(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, builder.getI64Type());
  }
  static ArrayRef<int64_t> shapeOf(Value value) {
    return cast<RankedTensorType>(value.getType()).getShape();
  }

  MLIRContext context;
  OpBuilder builder;
  Location loc;
  OwningOpRef<ModuleOp> module;
  func::FuncOp func;
};

TEST_F(InferenceTest, ElementwiseAndMatmul) {
  auto args = begin({f32({2, 1, 8, 16}), f32({4, 16, 8}), f32({8})});
  Value scores = MatmulOp::create(builder, loc, args[0], args[1]);
  EXPECT_EQ(shapeOf(scores), (ArrayRef<int64_t>{2, 4, 8, 8}));
  Value biased = AddOp::create(builder, loc, scores, args[2]);
  EXPECT_EQ(shapeOf(biased), (ArrayRef<int64_t>{2, 4, 8, 8}));
  Value mask =
      CompareOp::create(builder, loc, ComparePredicate::gt, biased, args[2]);
  EXPECT_TRUE(
      cast<RankedTensorType>(mask.getType()).getElementType().isInteger(1));
  end();
}

TEST_F(InferenceTest, LinearLayouts) {
  auto args =
      begin({f32({2, 8, 64}), f32({192, 64}), f32({64, 256}), f32({192})});
  auto column = LinearOp::create(builder, loc, args[0], args[1], args[3],
                                 WeightLayout::out_in);
  EXPECT_EQ(shapeOf(column), (ArrayRef<int64_t>{2, 8, 192}));
  EXPECT_EQ(column.getInFeatures(), 64);
  EXPECT_EQ(column.getOutFeatures(), 192);
  auto conv1d = LinearOp::create(builder, loc, args[0], args[2], Value(),
                                 WeightLayout::in_out);
  EXPECT_EQ(shapeOf(conv1d), (ArrayRef<int64_t>{2, 8, 256}));
  end();
}

TEST_F(InferenceTest, GroupedQueryAttention) {
  auto args = begin({f32({2, 8, 16, 32}), f32({2, 2, 16, 32})});
  auto attention = AttentionOp::create(builder, loc, args[0], args[1], args[1],
                                       /*mask=*/Value(), /*causal=*/true,
                                       /*scale=*/APFloat(0.125));
  EXPECT_EQ(shapeOf(attention), (ArrayRef<int64_t>{2, 8, 16, 32}));
  EXPECT_EQ(attention.getNumHeads(), 8);
  EXPECT_EQ(attention.getNumKvHeads(), 2);
  end();
}

TEST_F(InferenceTest, ShapeOps) {
  auto args = begin({f32({2, 8, 192}), i64({2, 8}), f32({100, 64})});
  auto split = SplitOp::create(builder, loc, args[0], /*axis=*/-1,
                               ArrayRef<int64_t>{64, 64, 64});
  ASSERT_EQ(split.getNumResults(), 3u);
  EXPECT_EQ(shapeOf(split.getResult(2)), (ArrayRef<int64_t>{2, 8, 64}));
  Value gathered = GatherOp::create(builder, loc, args[2], args[1], 0);
  EXPECT_EQ(shapeOf(gathered), (ArrayRef<int64_t>{2, 8, 64}));
  Value transposed =
      TransposeOp::create(builder, loc, args[0], ArrayRef<int64_t>{2, 0, 1});
  EXPECT_EQ(shapeOf(transposed), (ArrayRef<int64_t>{192, 2, 8}));
  Value sliced =
      SliceOp::create(builder, loc, args[0], ArrayRef<int64_t>{0, 1, 0},
                      ArrayRef<int64_t>{2, 8, 192}, ArrayRef<int64_t>{1, 2, 3});
  EXPECT_EQ(shapeOf(sliced), (ArrayRef<int64_t>{2, 4, 64}));
  Value reduced = ReduceOp::create(builder, loc, ReduceKind::mean, args[0],
                                   ArrayRef<int64_t>{2}, /*keepdims=*/true);
  EXPECT_EQ(shapeOf(reduced), (ArrayRef<int64_t>{2, 8, 1}));
  Value concat = ConcatOp::create(builder, loc, ValueRange{gathered, gathered},
                                  /*axis=*/1);
  EXPECT_EQ(shapeOf(concat), (ArrayRef<int64_t>{2, 16, 64}));
  end();
}

TEST_F(InferenceTest, EmbeddingAndLoss) {
  auto args = begin({f32({100, 64}), i64({2, 8}), f32({2, 8, 100})});
  Value hidden = EmbeddingOp::create(builder, loc, args[0], args[1]);
  EXPECT_EQ(shapeOf(hidden), (ArrayRef<int64_t>{2, 8, 64}));
  Value loss = CrossEntropyOp::create(builder, loc, args[2], args[1]);
  EXPECT_TRUE(shapeOf(loss).empty());
  end();
}

TEST_F(InferenceTest, InferenceRejectsMismatches) {
  auto args = begin({f32({2, 3}), f32({3, 2}), f32({4, 5})});
  SmallVector<Type> inferred;
  SmallVector<Value> goodOperands = {args[0], args[1]};
  MatmulOp::Adaptor good(goodOperands);
  EXPECT_TRUE(
      succeeded(MatmulOp::inferReturnTypes(&context, loc, good, inferred)));
  inferred.clear();
  SmallVector<Value> badOperands = {args[0], args[2]};
  MatmulOp::Adaptor bad(badOperands);
  // Silence the diagnostic: only the failure matters here.
  ScopedDiagnosticHandler quiet(&context,
                                [](Diagnostic &) { return success(); });
  EXPECT_TRUE(failed(MatmulOp::inferReturnTypes(&context, loc, bad, inferred)));
  SmallVector<Value> badAddOperands = {args[0], args[1]};
  AddOp::Adaptor badAdd(badAddOperands);
  EXPECT_TRUE(failed(AddOp::inferReturnTypes(&context, loc, badAdd, inferred)));
  end();
}

} // namespace
