//===- ShardTest.cpp - cutting and placing shards -------------------------===//

#include "TestPlans.h"

#include "galvatron/runtime/Shard.h"

#include <gtest/gtest.h>
#include <numeric>

using namespace galvatron;
using namespace galvatron::rt;
using galvatron::testing::ShardSpec;
using galvatron::testing::ShardTable;

namespace {

/// 0, 1, 2, ... in `shape`.
Tensor iota(Shape shape) {
  Tensor t(DType::F32, std::move(shape));
  std::iota(t.f32(), t.f32() + t.size(), 0.0f);
  return t;
}

std::vector<float> values(const Tensor &t) {
  return std::vector<float>(t.f32(), t.f32() + t.size());
}

Tensor cut(const Tensor &full, const ShardSpec &spec) {
  ShardTable shard(spec);
  Tensor piece;
  std::string error;
  EXPECT_TRUE(cutShard(full, shard.get(), piece, error)) << error;
  return piece;
}

/// Cuts every piece of `specs` from `full` and places them all into a
/// tensor of zeros, which must then equal `full`.
void expectRoundTrip(const Tensor &full, const std::vector<ShardSpec> &specs) {
  Tensor rebuilt = Tensor::zeros(full.dtype, full.shape);
  for (const ShardSpec &spec : specs) {
    ShardTable shard(spec);
    Tensor piece;
    std::string error;
    ASSERT_TRUE(cutShard(full, shard.get(), piece, error)) << error;
    Shape shape;
    ASSERT_TRUE(shardShape(shard.get(), shape, error)) << error;
    EXPECT_EQ(piece.shape, shape);
    ASSERT_TRUE(placeShard(piece, shard.get(), rebuilt, error)) << error;
  }
  EXPECT_EQ(values(rebuilt), values(full));
}

plan::DimCut dimCut(int axis, int blocks, int parts, int index) {
  return plan::DimCut(axis, blocks, parts, index);
}

TEST(Shard, RowsAndColumns) {
  Tensor full = iota({4, 3});
  Tensor rows = cut(full, {{4, 3}, {dimCut(0, 1, 2, 1)}});
  EXPECT_EQ(rows.shape, (Shape{2, 3}));
  EXPECT_EQ(values(rows), (std::vector<float>{6, 7, 8, 9, 10, 11}));

  Tensor wide = iota({2, 4});
  Tensor columns = cut(wide, {{2, 4}, {dimCut(1, 1, 2, 1)}});
  EXPECT_EQ(columns.shape, (Shape{2, 2}));
  EXPECT_EQ(values(columns), (std::vector<float>{2, 3, 6, 7}));

  expectRoundTrip(
      full, {{{4, 3}, {dimCut(0, 1, 2, 0)}}, {{4, 3}, {dimCut(0, 1, 2, 1)}}});
  expectRoundTrip(wide, {{{2, 4}, {dimCut(1, 1, 4, 0)}},
                         {{2, 4}, {dimCut(1, 1, 4, 1)}},
                         {{2, 4}, {dimCut(1, 1, 4, 2)}},
                         {{2, 4}, {dimCut(1, 1, 4, 3)}}});
}

// A fused QKV projection [2, 6]: columns q0 q1 | k0 k1 | v0 v1. Rank 0 of two
// keeps q0 k0 v0 (columns 0, 2, 4), rank 1 keeps q1 k1 v1.
TEST(Shard, ThreeBlocksAreCutAlike) {
  Tensor full = iota({2, 6});
  Tensor first = cut(full, {{2, 6}, {dimCut(1, 3, 2, 0)}});
  EXPECT_EQ(first.shape, (Shape{2, 3}));
  EXPECT_EQ(values(first), (std::vector<float>{0, 2, 4, 6, 8, 10}));
  Tensor second = cut(full, {{2, 6}, {dimCut(1, 3, 2, 1)}});
  EXPECT_EQ(values(second), (std::vector<float>{1, 3, 5, 7, 9, 11}));
  expectRoundTrip(
      full, {{{2, 6}, {dimCut(1, 3, 2, 0)}}, {{2, 6}, {dimCut(1, 3, 2, 1)}}});
  // Along rows, with blocks of two rows each cut in two.
  Tensor tall = iota({12, 2});
  Tensor middle = cut(tall, {{12, 2}, {dimCut(0, 3, 2, 1)}});
  EXPECT_EQ(values(middle),
            (std::vector<float>{4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23}));
  std::vector<ShardSpec> all;
  for (int i = 0; i < 2; ++i)
    all.push_back({{12, 2}, {dimCut(0, 3, 2, i)}});
  expectRoundTrip(tall, all);
}

TEST(Shard, ChainedCuts) {
  // Rows in two, then columns in two: a 2 x 2 grid of [2, 3] pieces.
  Tensor full = iota({4, 6});
  Tensor corner = cut(full, {{4, 6}, {dimCut(0, 1, 2, 1), dimCut(1, 1, 2, 0)}});
  EXPECT_EQ(values(corner), (std::vector<float>{12, 13, 14, 18, 19, 20}));
  std::vector<ShardSpec> grid;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c)
      grid.push_back({{4, 6}, {dimCut(0, 1, 2, r), dimCut(1, 1, 2, c)}});
  expectRoundTrip(full, grid);
}

// ZeRO: 10 elements in 4 flat pieces of 3; the last holds 9 and two zeros.
TEST(Shard, PaddedFlatCut) {
  Tensor full = iota({2, 5});
  Tensor last = cut(full, {{2, 5}, {}, 4, 3});
  EXPECT_EQ(last.shape, (Shape{3}));
  EXPECT_EQ(values(last), (std::vector<float>{9, 0, 0}));
  Tensor second = cut(full, {{2, 5}, {}, 4, 1});
  EXPECT_EQ(values(second), (std::vector<float>{3, 4, 5}));
  std::vector<ShardSpec> pieces;
  for (int i = 0; i < 4; ++i)
    pieces.push_back({{2, 5}, {}, 4, i});
  expectRoundTrip(full, pieces);

  // Placing ignores whatever the padding holds.
  ShardTable shard({{2, 5}, {}, 4, 3});
  Tensor piece(DType::F32, {3});
  piece.f32()[0] = -1;
  piece.f32()[1] = 99;
  piece.f32()[2] = 98;
  Tensor target = iota({2, 5});
  std::string error;
  ASSERT_TRUE(placeShard(piece, shard.get(), target, error)) << error;
  EXPECT_EQ(values(target),
            (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, -1}));
}

// A dimension cut, then a flat cut of what it kept: rows 2 and 3 of [4, 3]
// (6 elements) in 4 flat pieces of 2; the last is all padding.
TEST(Shard, DimensionThenFlat) {
  Tensor full = iota({4, 3});
  Tensor piece = cut(full, {{4, 3}, {dimCut(0, 1, 2, 1)}, 4, 1});
  EXPECT_EQ(values(piece), (std::vector<float>{8, 9}));
  Tensor empty = cut(full, {{4, 3}, {dimCut(0, 1, 2, 1)}, 4, 3});
  EXPECT_EQ(values(empty), (std::vector<float>{0, 0}));
  std::vector<ShardSpec> pieces;
  for (int r = 0; r < 2; ++r)
    for (int f = 0; f < 4; ++f)
      pieces.push_back({{4, 3}, {dimCut(0, 1, 2, r)}, 4, f});
  expectRoundTrip(full, pieces);
}

TEST(Shard, IntegersAndBlocksThenFlat) {
  Tensor full(DType::I64, {3, 4});
  for (int64_t i = 0; i < full.size(); ++i)
    full.i64()[i] = 100 + i;
  ShardTable shard({{3, 4}, {dimCut(1, 2, 2, 1)}, 2, 0});
  Tensor piece;
  std::string error;
  ASSERT_TRUE(cutShard(full, shard.get(), piece, error)) << error;
  // Columns 1 and 3 of each row: 101 103 105 107 109 111; flat half 0.
  ASSERT_EQ(piece.shape, (Shape{3}));
  EXPECT_EQ(piece.i64()[0], 101);
  EXPECT_EQ(piece.i64()[1], 103);
  EXPECT_EQ(piece.i64()[2], 105);
}

TEST(Shard, ErrorsNameTheProblem) {
  std::string error;
  Tensor piece;
  {
    ShardTable shard({{4, 4}, {dimCut(0, 1, 2, 0)}});
    EXPECT_FALSE(cutShard(iota({4, 3}), shard.get(), piece, error));
    EXPECT_EQ(error, "the full tensor is [4, 3] but the shard's full shape is "
                     "[4, 4]");
  }
  {
    ShardTable shard({{5, 2}, {dimCut(0, 1, 2, 0)}});
    EXPECT_FALSE(cutShard(iota({5, 2}), shard.get(), piece, error));
    EXPECT_EQ(error, "shard cut (axis 0, 1 blocks, 2 parts, index 0) does not "
                     "divide dimension 5 of [5, 2]");
  }
  {
    ShardTable shard({{4, 2}, {dimCut(0, 3, 2, 1)}});
    EXPECT_FALSE(cutShard(iota({4, 2}), shard.get(), piece, error));
    EXPECT_NE(error.find("(axis 0, 3 blocks, 2 parts, index 1) does not "
                         "divide dimension 4"),
              std::string::npos)
        << error;
  }
  {
    ShardTable shard({{4, 2}, {dimCut(2, 1, 2, 0)}});
    EXPECT_FALSE(cutShard(iota({4, 2}), shard.get(), piece, error));
    EXPECT_NE(error.find("names no axis of [4, 2]"), std::string::npos)
        << error;
  }
  {
    ShardTable shard({{4, 2}, {dimCut(0, 1, 2, 2)}});
    EXPECT_FALSE(cutShard(iota({4, 2}), shard.get(), piece, error));
    EXPECT_NE(error.find("is malformed"), std::string::npos) << error;
  }
  {
    ShardTable shard({{4, 2}, {dimCut(0, 1, 2, 0)}});
    Tensor full = iota({4, 2});
    EXPECT_FALSE(placeShard(iota({4, 2}), shard.get(), full, error));
    EXPECT_EQ(error, "the piece is f32 [4, 2], the shard gives f32 [2, 2]");
  }
}

TEST(Shard, SameShard) {
  ShardTable a({{4, 2}, {dimCut(0, 1, 2, 0)}}),
      b({{4, 2}, {dimCut(0, 1, 2, 0)}}), c({{4, 2}, {dimCut(0, 1, 2, 1)}}),
      whole({{4, 2}, {}});
  EXPECT_TRUE(sameShard(&a.get(), &b.get()));
  EXPECT_FALSE(sameShard(&a.get(), &c.get()));
  EXPECT_FALSE(sameShard(&a.get(), nullptr));
  EXPECT_TRUE(sameShard(&whole.get(), nullptr));
  EXPECT_TRUE(sameShard(nullptr, nullptr));
}

} // namespace
