//===- CollectivesTest.cpp - every collective under mpirun -np 4 ---------===//
//
// Each test builds a four-rank plan by hand, every process runs its own
// rank's program through the MPI communicator, and each rank checks its
// results against values worked out by hand below. Rank r's input x holds
// 10 r + i at flat index i, so every expected number can be read off.
//
// Groups (the same table for every plan, so one communicator serves all):
// consecutive pairs {0,1} {2,3}, strided pairs {0,2} {1,3}, all four, and
// {1,0}, a pair listed in reverse, whose position order is not rank order.
//
//===----------------------------------------------------------------------===//

#include "TestPlans.h"

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/Executor.h"

#include <functional>
#include <gtest/gtest.h>
#include <iostream>

using namespace galvatron;
using namespace galvatron::rt;
using galvatron::testing::allReduce;
using galvatron::testing::allToAll;
using galvatron::testing::Attrs;
using galvatron::testing::broadcastFrom;
using galvatron::testing::buildPlan;
using galvatron::testing::collectiveAxis;
using galvatron::testing::peer;
using galvatron::testing::ProgramBuilder;
using O = plan::Opcode;

namespace {

constexpr int kWorld = 4;
const std::vector<std::vector<int32_t>> kGroups = {
    {0, 1}, {2, 3}, {0, 2}, {1, 3}, {0, 1, 2, 3}, {1, 0}};
enum Group { k01, k23, k02, k13, kAll, k10 };

Communicator *comm = nullptr;
int me = 0;

constexpr plan::DType F32 = plan::DType::F32;
constexpr plan::Reduction kSum = plan::Reduction::Sum,
                          kMean = plan::Reduction::Mean,
                          kMax = plan::Reduction::Max,
                          kMin = plan::Reduction::Min,
                          kProd = plan::Reduction::Prod;

/// 10 r + i at flat index i.
Tensor rankValues(int r, Shape shape, DType dtype = DType::F32) {
  Tensor t(dtype, std::move(shape));
  for (int64_t i = 0; i < t.size(); ++i)
    t.set(i, 10.0 * r + i);
  return t;
}

/// Builds the plan whose rank-r program is `make(r)`, runs this rank's, and
/// returns its outputs; x = rankValues(me, xShape).
std::map<std::string, Tensor>
run(const std::function<ProgramBuilder(int)> &make, Shape xShape,
    RunStats *statsOut = nullptr, DType dtype = DType::F32) {
  std::vector<ProgramBuilder> programs;
  for (int r = 0; r < kWorld; ++r)
    programs.push_back(make(r));
  std::vector<uint8_t> bytes = buildPlan(kGroups, programs);
  std::string error;
  const plan::Plan *p = verifyPlan(bytes, error);
  EXPECT_TRUE(p) << error;
  std::map<std::string, Tensor> outputs;
  if (!p)
    return outputs;
  RunStats stats;
  RunOptions options;
  options.comm = comm;
  EXPECT_TRUE(runRank(*p, me, {{"x", rankValues(me, xShape, dtype)}}, {},
                      outputs, stats, error, options))
      << error;
  if (statsOut)
    *statsOut = stats;
  return outputs;
}

void expectValues(const Tensor &t, const Shape &shape,
                  const std::vector<double> &want) {
  EXPECT_EQ(t.shape, shape) << "on rank " << me;
  ASSERT_EQ(t.size(), static_cast<int64_t>(want.size())) << "on rank " << me;
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(t.at(i), want[i]) << "element " << i << " on rank " << me;
}

/// One collective per rank: y = op(x) with the attributes `attrs(r)`.
std::function<ProgramBuilder(int)>
single(O op, Shape in, Shape out, const std::function<Attrs(int)> &attrs,
       plan::DType dtype = F32) {
  return [=](int r) {
    ProgramBuilder b(r);
    int32_t x = b.input("x", dtype, in);
    b.output(b.op(op, {x}, out, dtype, attrs(r)), "y");
    return b;
  };
}

/// An AllReduce's attributes over `group(r)`.
std::function<Attrs(int)> summing(const std::function<int(int)> &group,
                                  plan::Reduction kind) {
  return [=](int r) { return allReduce(group(r), kind); };
}
/// An AllGather's or ReduceScatter's attributes over `group(r)`.
std::function<Attrs(int)> alongAxis(const std::function<int(int)> &group,
                                    int32_t axis) {
  return [=](int r) { return collectiveAxis(group(r), axis); };
}

int pairs(int r) { return r < 2 ? k01 : k23; }
int strided(int r) { return r % 2 == 0 ? k02 : k13; }
int all(int) { return kAll; }

TEST(Collectives, AllReduceSumOverConsecutivePairs) {
  RunStats stats;
  auto out = run(single(O::AllReduce, {2, 2}, {2, 2}, summing(pairs, kSum)),
                 {2, 2}, &stats);
  // {0,1}: x0 + x1 = 10 + 2i; {2,3}: 50 + 2i.
  if (me < 2)
    expectValues(out["y"], {2, 2}, {10, 12, 14, 16});
  else
    expectValues(out["y"], {2, 2}, {50, 52, 54, 56});
  std::string key = me < 2 ? "all_reduce:0,1" : "all_reduce:2,3";
  EXPECT_EQ(stats.commBytes, (std::map<std::string, uint64_t>{{key, 16}}));
}

TEST(Collectives, AllReduceMeanOverStridedPairs) {
  auto out = run(single(O::AllReduce, {2, 2}, {2, 2}, summing(strided, kMean)),
                 {2, 2});
  // {0,2}: (x0 + x2) / 2 = 10 + i; {1,3}: 20 + i.
  if (me % 2 == 0)
    expectValues(out["y"], {2, 2}, {10, 11, 12, 13});
  else
    expectValues(out["y"], {2, 2}, {20, 21, 22, 23});
}

TEST(Collectives, AllReduceMaxMinProd) {
  auto out = run(
      [](int r) {
        ProgramBuilder b(r);
        int32_t x = b.input("x", F32, {4});
        b.output(b.op(O::AllReduce, {x}, {4}, F32, allReduce(kAll, kMax)),
                 "max");
        b.output(b.op(O::AllReduce, {x}, {4}, F32, allReduce(kAll, kMin)),
                 "min");
        b.output(b.op(O::AllReduce, {x}, {4}, F32, allReduce(pairs(r), kProd)),
                 "prod");
        return b;
      },
      {4});
  expectValues(out["max"], {4}, {30, 31, 32, 33});
  expectValues(out["min"], {4}, {0, 1, 2, 3});
  // {0,1}: x0 * x1 = i (10 + i); {2,3}: (20 + i) (30 + i).
  if (me < 2)
    expectValues(out["prod"], {4}, {0, 11, 24, 39});
  else
    expectValues(out["prod"], {4}, {600, 651, 704, 759});
}

TEST(Collectives, AllGatherAxis0OverConsecutivePairs) {
  auto out =
      run(single(O::AllGather, {2, 2}, {4, 2}, alongAxis(pairs, 0)), {2, 2});
  if (me < 2)
    expectValues(out["y"], {4, 2}, {0, 1, 2, 3, 10, 11, 12, 13});
  else
    expectValues(out["y"], {4, 2}, {20, 21, 22, 23, 30, 31, 32, 33});
}

TEST(Collectives, AllGatherAxis1OverStridedPairs) {
  auto out =
      run(single(O::AllGather, {2, 2}, {2, 4}, alongAxis(strided, 1)), {2, 2});
  // Rows of x_a then x_b side by side.
  if (me % 2 == 0)
    expectValues(out["y"], {2, 4}, {0, 1, 20, 21, 2, 3, 22, 23});
  else
    expectValues(out["y"], {2, 4}, {10, 11, 30, 31, 12, 13, 32, 33});
}

TEST(Collectives, AllGatherFollowsTheGroupsOrder) {
  // {1,0}: rank 1 is position 0, so its piece comes first. Ranks 2 and 3
  // gather over {2,3} with the negative axis -1.
  auto out = run(single(O::AllGather, {2, 2}, {2, 4},
                        alongAxis([](int r) { return r < 2 ? k10 : k23; }, -1)),
                 {2, 2});
  if (me < 2)
    expectValues(out["y"], {2, 4}, {10, 11, 0, 1, 12, 13, 2, 3});
  else
    expectValues(out["y"], {2, 4}, {20, 21, 30, 31, 22, 23, 32, 33});
}

TEST(Collectives, AllGatherMiddleAxisOverAll) {
  // x [2, 1, 2] = 10 r + 2 a + c; y[a][k][c] = 10 k + 2 a + c.
  auto out = run(single(O::AllGather, {2, 1, 2}, {2, 4, 2}, alongAxis(all, 1)),
                 {2, 1, 2});
  expectValues(out["y"], {2, 4, 2},
               {0, 1, 10, 11, 20, 21, 30, 31, 2, 3, 12, 13, 22, 23, 32, 33});
}

TEST(Collectives, ReduceScatterAxis0OverAll) {
  // Sum of x [4, 2] over the four ranks: 60 + 4i; rank k keeps row k.
  auto out =
      run(single(O::ReduceScatter, {4, 2}, {1, 2}, alongAxis(all, 0)), {4, 2});
  const std::vector<std::vector<double>> rows = {
      {60, 64}, {68, 72}, {76, 80}, {84, 88}};
  expectValues(out["y"], {1, 2}, rows[me]);
}

TEST(Collectives, ReduceScatterAxis1OverPairs) {
  // x [2, 4]; {0,1} sums to 10 + 2i, {2,3} to 50 + 2i; position 0 keeps
  // columns 0-1, position 1 columns 2-3.
  auto out = run(single(O::ReduceScatter, {2, 4}, {2, 2}, alongAxis(pairs, 1)),
                 {2, 4});
  const std::vector<std::vector<double>> want = {
      {10, 12, 18, 20}, {14, 16, 22, 24}, {50, 52, 58, 60}, {54, 56, 62, 64}};
  expectValues(out["y"], {2, 2}, want[me]);
}

TEST(Collectives, AllToAllSplitRowsConcatColumnsOverAll) {
  // Rank k receives row k of every rank's x [4, 2], side by side.
  auto out = run(single(O::AllToAll, {4, 2}, {1, 8},
                        [](int) { return allToAll(kAll, 0, 1); }),
                 {4, 2});
  double k = 2 * me;
  expectValues(out["y"], {1, 8},
               {k, k + 1, 10 + k, 11 + k, 20 + k, 21 + k, 30 + k, 31 + k});
}

TEST(Collectives, AllToAllSplitColumnsConcatRowsOverStridedPairs) {
  // x [2, 4]; position p receives columns 2p, 2p+1 of both members' x,
  // stacked in position order.
  auto out = run(single(O::AllToAll, {2, 4}, {4, 2},
                        [](int r) { return allToAll(strided(r), 1, 0); }),
                 {2, 4});
  const std::vector<std::vector<double>> want = {
      {0, 1, 4, 5, 20, 21, 24, 25},     // rank 0, position 0 of {0,2}
      {10, 11, 14, 15, 30, 31, 34, 35}, // rank 1, position 0 of {1,3}
      {2, 3, 6, 7, 22, 23, 26, 27},     // rank 2, position 1 of {0,2}
      {12, 13, 16, 17, 32, 33, 36, 37}};
  expectValues(out["y"], {4, 2}, want[me]);
}

TEST(Collectives, Broadcast) {
  auto out = run(
      [](int r) {
        ProgramBuilder b(r);
        int32_t x = b.input("x", F32, {4});
        // Root = position 1 of all four: rank 1.
        b.output(b.op(O::Broadcast, {x}, {4}, F32, broadcastFrom(kAll, 1)),
                 "all");
        // Position 0 of {1,0} is rank 1; position 1 of {2,3} is rank 3.
        b.output(b.op(O::Broadcast, {x}, {4}, F32,
                      broadcastFrom(r < 2 ? k10 : k23, r < 2 ? 0 : 1)),
                 "pair");
        return b;
      },
      {4});
  expectValues(out["all"], {4}, {10, 11, 12, 13});
  if (me < 2)
    expectValues(out["pair"], {4}, {10, 11, 12, 13});
  else
    expectValues(out["pair"], {4}, {30, 31, 32, 33});
}

// Partners send to each other first and receive second: the sends must not
// wait for the receives (the messages are large enough for MPI's rendezvous
// protocol). Two messages to the same peer arrive in program order.
TEST(Collectives, SendAndReceiveBothWays) {
  const int64_t n = 1 << 16;
  RunStats stats;
  auto out = run(
      [n](int r) {
        ProgramBuilder b(r);
        int32_t x = b.input("x", F32, {n});
        int group = pairs(r), position = r % 2 == 0 ? 1 : 0;
        int32_t twice = b.op(O::Add, {x, x}, {n}, F32);
        b.op(O::Send, {x}, {n}, F32, peer(group, position));
        b.op(O::Send, {twice}, {n}, F32, peer(group, position));
        b.output(b.op(O::Recv, {}, {n}, F32, peer(group, position)), "first");
        b.output(b.op(O::Recv, {}, {n}, F32, peer(group, position)), "second");
        // And over the strided pairs, one message each way.
        int other = strided(r), otherPeer = r < 2 ? 1 : 0;
        b.op(O::Send, {x}, {n}, F32, peer(other, otherPeer));
        b.output(b.op(O::Recv, {}, {n}, F32, peer(other, otherPeer)),
                 "strided");
        return b;
      },
      {n}, &stats);
  int partner = me ^ 1, across = (me + 2) % 4;
  for (int64_t i : {int64_t(0), int64_t(1), n - 1}) {
    EXPECT_EQ(out["first"].f32()[i], 10 * partner + i);
    EXPECT_EQ(out["second"].f32()[i], 2 * (10 * partner + i));
    EXPECT_EQ(out["strided"].f32()[i], 10 * across + i);
  }
  std::string pair = me < 2 ? "0,1" : "2,3", cross = me % 2 ? "1,3" : "0,2";
  EXPECT_EQ(stats.commBytes,
            (std::map<std::string, uint64_t>{{"recv:" + pair, 0},
                                             {"recv:" + cross, 0},
                                             {"send:" + pair, 2 * 4 * n},
                                             {"send:" + cross, 4 * n}}));
}

TEST(Collectives, IntegerGatherAndSum) {
  auto out = run(
      [](int r) {
        ProgramBuilder b(r);
        int32_t x = b.input("x", plan::DType::I64, {2});
        b.output(b.op(O::AllGather, {x}, {8}, plan::DType::I64,
                      collectiveAxis(kAll, 0)),
                 "gathered");
        b.output(b.op(O::AllReduce, {x}, {2}, plan::DType::I64,
                      allReduce(kAll, kSum)),
                 "sum");
        return b;
      },
      {2}, nullptr, DType::I64);
  expectValues(out["gathered"], {8}, {0, 1, 10, 11, 20, 21, 30, 31});
  expectValues(out["sum"], {2}, {60, 64});
  EXPECT_EQ(out["sum"].dtype, DType::I64);
}

// MPI has no bfloat16: bf16 sums, means and maxima go through galvatron's
// own reduction; a reduce-scatter too. Values below 256 are exact in bf16.
TEST(Collectives, Bf16ReductionsAndScatter) {
  constexpr plan::DType BF16 = plan::DType::BF16;
  auto out = run(
      [](int r) {
        ProgramBuilder b(r);
        int32_t x = b.input("x", BF16, {4});
        b.output(b.op(O::AllReduce, {x}, {4}, BF16, allReduce(kAll, kSum)),
                 "sum");
        b.output(b.op(O::AllReduce, {x}, {4}, BF16, allReduce(kAll, kMean)),
                 "mean");
        b.output(b.op(O::AllReduce, {x}, {4}, BF16, allReduce(pairs(r), kMax)),
                 "max");
        b.output(
            b.op(O::ReduceScatter, {x}, {1}, BF16, collectiveAxis(kAll, 0)),
            "piece");
        return b;
      },
      {4}, nullptr, DType::BF16);
  expectValues(out["sum"], {4}, {60, 64, 68, 72});
  expectValues(out["mean"], {4}, {15, 16, 17, 18});
  if (me < 2)
    expectValues(out["max"], {4}, {10, 11, 12, 13});
  else
    expectValues(out["max"], {4}, {30, 31, 32, 33});
  expectValues(out["piece"], {1}, {60.0 + 4 * me});
  EXPECT_EQ(out["sum"].dtype, DType::BF16);
}

TEST(Collectives, LargeAllReduce) {
  const int64_t n = 1 << 20;
  auto out = run(single(O::AllReduce, {n}, {n}, summing(all, kSum)), {n});
  // sum over r of (10 r + i) = 60 + 4i: check a few, exactly (below 2^24).
  for (int64_t i : {int64_t(0), int64_t(12345), n - 1})
    EXPECT_EQ(out["y"].f32()[i], 60 + 4 * i);
}

// Mistakes every member makes alike fail on every member, without
// communicating (so nothing hangs), naming the group.
TEST(Collectives, ErrorsNameTheGroup) {
  Tensor out;
  std::string error;
  if (me < 2) {
    EXPECT_FALSE(
        comm->reduceScatter(k01, 0, rankValues(me, {3, 2}), out, error));
    EXPECT_EQ(error, "reduce_scatter over group [0,1] cannot cut axis 0 of "
                     "[3, 2] into 2 pieces");
  }
  EXPECT_FALSE(comm->allReduce(me < 2 ? k23 : k01, Reduction::Sum,
                               rankValues(me, {2}), out, error));
  EXPECT_EQ(error, std::string("all_reduce over group ") +
                       (me < 2 ? "[2,3] does not contain rank "
                               : "[0,1] does not contain rank ") +
                       std::to_string(me));
  EXPECT_FALSE(comm->allGather(kAll, 2, rankValues(me, {2}), out, error));
  EXPECT_EQ(error, "all_gather over group [0,1,2,3]: axis 2 is not an axis of "
                   "[2]");
  comm->takeByteCounts();
}

TEST(Collectives, WholeJobOperations) {
  std::string error;
  int64_t value = me == 0 ? 1234 : 0;
  ASSERT_TRUE(comm->worldBroadcast(&value, sizeof(value), 0, "test", error))
      << error;
  EXPECT_EQ(value, 1234);
  // Ranks 1-3 each send rank 0 a distinct buffer.
  if (me == 0) {
    for (int r = 1; r < kWorld; ++r) {
      std::vector<int32_t> got(5);
      ASSERT_TRUE(comm->worldRecv(r, got.data(), 20, "test", error)) << error;
      EXPECT_EQ(got[4], 100 * r + 4);
    }
  } else {
    std::vector<int32_t> mine(5);
    for (int i = 0; i < 5; ++i)
      mine[i] = 100 * me + i;
    ASSERT_TRUE(comm->worldSend(0, mine.data(), 20, "test", error)) << error;
  }
  EXPECT_TRUE(comm->worldBarrier("test", error)) << error;
}

/// Ranks other than 0 print only their failures, each line tagged.
class FailurePrinter : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult &result) override {
    if (result.failed())
      std::cerr << "[rank " << me << "] " << result.file_name() << ":"
                << result.line_number() << ": " << result.summary() << "\n";
  }
};

} // namespace

int main(int argc, char **argv) {
  std::string error;
  if (!mpi::init(&argc, &argv, error) || !mpi::active() ||
      mpi::worldSize() != kWorld) {
    std::cerr << "CollectivesTest: run it under mpirun -np " << kWorld
              << (error.empty() ? "" : ": " + error) << "\n";
    return 1;
  }
  me = mpi::worldRank();
  ::testing::InitGoogleTest(&argc, argv);
  if (me != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter);
  }
  mpi::Options options;
  options.timeoutSeconds = 60;
  options.program = "CollectivesTest";
  std::unique_ptr<Communicator> made =
      mpi::createCommunicator(kGroups, options, error);
  if (!made) {
    std::cerr << "CollectivesTest: " << error << "\n";
    mpi::abortJob(1);
  }
  comm = made.get();
  int result = RUN_ALL_TESTS();
  made.reset();
  mpi::finalize();
  return result;
}
