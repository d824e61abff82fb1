//===- PlanTimingTest.cpp - a step played out rank against rank -----------===//
//
// planStepSeconds on hand-written programs whose times are worked out by
// hand: the fixed cost per instruction, a kernel rate interpolated between
// measured sizes, a collective waiting for its last rank, and a pipeline
// stage waiting for its input.
//
//===----------------------------------------------------------------------===//

#include "../../../lib/Transforms/PlanMeasure.h"

#include "galvatron/CostModel/Hardware.h"

#include <gtest/gtest.h>

using namespace mlir::galv;
namespace cm = galvatron::costmodel;

namespace {

using Step = RankMeasure::Instruction;

cm::HardwareSpec spec() {
  cm::HardwareSpec hw;
  hw.instructionMs = 0.001;
  hw.collectiveLatencyMs = {{2, 0.010}};
  // 1 ns per byte at 1 KB, 0.25 at 1 MB; 0.01 ns per FLOP throughout.
  hw.kernelRates = {{"elementwise", {{1e3, 1.0}, {1e6, 0.25}}},
                    {"gemm", {{1e6, 0.01}}}};
  return hw;
}

Step compute(const char *kind, double work) {
  Step s;
  s.kernelClass = kind;
  s.work = work;
  return s;
}

/// A communication step on group 0, priced by collectives[0].
Step communication(Step::Kind kind, int peer = -1) {
  Step s;
  s.kind = kind;
  s.group = 0;
  s.peer = peer;
  s.collective = kind == Step::Recv ? -1 : 0;
  return s;
}

/// A collective entry of group size 2.
RankMeasure::Collective entry(const char *op) {
  RankMeasure::Collective c;
  c.op = op;
  c.group = 2;
  return c;
}

/// Two ranks in group 0 = {0, 1}.
RankMeasure rank(std::vector<Step> program) {
  RankMeasure r;
  r.groups = {{0, 1}};
  r.program = std::move(program);
  return r;
}

} // namespace

TEST(PlanTiming, KernelRateInterpolatesOnLogScales) {
  cm::HardwareSpec hw = spec();
  EXPECT_DOUBLE_EQ(hw.kernelNsPerUnit("elementwise", 10), 1.0);
  EXPECT_DOUBLE_EQ(hw.kernelNsPerUnit("elementwise", 1e7), 0.25);
  // Halfway on log(work): sqrt(1 x 0.25).
  EXPECT_NEAR(hw.kernelNsPerUnit("elementwise", std::sqrt(1e9)), 0.5, 1e-12);
  // A class not measured takes its coarser class's rate, else none.
  EXPECT_DOUBLE_EQ(hw.kernelNsPerUnit("optimizer", 1e3), 1.0);
  EXPECT_DOUBLE_EQ(hw.kernelNsPerUnit("attention", 5e6), 0.01);
  EXPECT_LT(hw.kernelNsPerUnit("movement", 1e3), 0);
}

TEST(PlanTiming, RateReadAtItsOwnWork) {
  // 1 MB of work whose rate is read at 1 KB (as attention's is read per
  // batch and head): 1e6 x 1.0 ns, not 1e6 x 0.25, plus the fixed 0.001.
  cm::HardwareSpec hw = spec();
  Step step = compute("elementwise", 1e6);
  EXPECT_NEAR(planStepSeconds(hw, 0, {rank({step})}) * 1e3, 0.251, 1e-9);
  step.rateWork = 1e3;
  EXPECT_NEAR(planStepSeconds(hw, 0, {rank({step})}) * 1e3, 1.001, 1e-9);
}

TEST(PlanTiming, GemmPaysForBytesBeyondItsProbes) {
  // 1e6 FLOPs at 0.01 ns (0.01 ms) and the fixed 0.001. The probe of 1e6
  // FLOPs (s = 50) moves 36 x 50^2 = 90000 bytes; at 0.1 ns per byte, 2 MB
  // add (2e6 - 9e4) x 0.1 ns = 0.191 ms.
  EXPECT_DOUBLE_EQ(cm::gemmProbeBytes(1e6), 90000);
  cm::HardwareSpec hw = spec();
  Step gemm = compute("gemm", 1e6);
  gemm.bytes = 2e6;
  EXPECT_NEAR(planStepSeconds(hw, 0, {rank({gemm})}) * 1e3, 0.011, 1e-9);
  hw.gemmNsPerByte = 0.1;
  EXPECT_NEAR(planStepSeconds(hw, 0, {rank({gemm})}) * 1e3, 0.202, 1e-9);
  // Fewer bytes than the probe take time off, down to half the FLOPs'.
  gemm.bytes = 0;
  EXPECT_NEAR(planStepSeconds(hw, 0, {rank({gemm})}) * 1e3, 0.006, 1e-9);
}

TEST(PlanTiming, CollectiveWaitsForItsLastRank) {
  cm::HardwareSpec hw = spec();
  Step all = communication(Step::Collective);
  // Rank 0 computes 1 MB (0.25 ms + 0.001), rank 1 a 1e6-FLOP GEMM
  // (0.01 ms + 0.001); both then all-reduce (no bandwidth table: the
  // latency 0.010 plus the instruction 0.001) and add 1 KB (0.001 + 0.001).
  RankMeasure r0 =
      rank({compute("elementwise", 1e6), all, compute("elementwise", 1e3)});
  RankMeasure r1 =
      rank({compute("gemm", 1e6), all, compute("elementwise", 1e3)});
  r0.collectives = r1.collectives = {entry("allreduce")};
  PlanTime detail;
  double step = planStepSeconds(hw, 0, {r0, r1}, &detail);
  double expectedMs = 0.251 + 0.011 + 0.002;
  EXPECT_NEAR(step * 1e3, expectedMs, 1e-9);
  ASSERT_EQ(detail.finish.size(), 2u);
  EXPECT_NEAR(detail.finish[0], detail.finish[1], 1e-12);
  // Rank 1 waited 0.251 - 0.011 for rank 0.
  EXPECT_NEAR(detail.byClass[1]["wait"] * 1e3, 0.240, 1e-9);
  EXPECT_NEAR(detail.byClass[0]["communication"] * 1e3, 0.011, 1e-9);
}

TEST(PlanTiming, ReceiveWaitsForItsMessage) {
  cm::HardwareSpec hw = spec();
  Step send = communication(Step::Send, 1), recv = communication(Step::Recv, 0);
  // Stage 0 computes 1 MB then sends (0.251 + 0.001); stage 1 has posted
  // its receive, so the message moves at once (the p2p latency 0.010 plus
  // the receive's 0.001): received at 0.263, when stage 0's step returns
  // (its send is complete). Stage 1 then computes 1 KB (0.002) and ends at
  // 0.265, after stage 0 began its next step: steps follow every 0.263.
  send.bytes = 1e6;
  RankMeasure r0 = rank({compute("elementwise", 1e6), send});
  r0.collectives = {entry("p2p")};
  RankMeasure r1 = rank({recv, compute("elementwise", 1e3)});
  PlanTime detail;
  double step = planStepSeconds(hw, 0, {r0, r1}, &detail);
  EXPECT_NEAR(step * 1e3, 0.263, 1e-9);
  EXPECT_NEAR(detail.finish[0] * 1e3, 0.263, 1e-9);
  EXPECT_NEAR(detail.finish[1] * 1e3, 0.265, 1e-9);
  // Stage 0 waited 0.011 for its message to be received; stage 1, from
  // its previous step's end (0.002 into stage 0's step) to the send (0.252).
  EXPECT_NEAR(detail.byClass[0]["wait"] * 1e3, 0.011, 1e-9);
  EXPECT_NEAR(detail.byClass[1]["wait"] * 1e3, 0.250, 1e-9);
  // Within the eager limit the send is complete at once: steps follow
  // every 0.252, stage 1 keeping up.
  r0.program[1].bytes = 64;
  EXPECT_NEAR(planStepSeconds(hw, 0, {r0, r1}) * 1e3, 0.252, 1e-9);
}

TEST(PlanTiming, UnmatchedReceiveIsReported) {
  Step recv = communication(Step::Recv, 1);
  EXPECT_EQ(planStepSeconds(spec(), 0, {rank({recv}), rank({})}), -1);
  // Without kernel rates the plan is not priced.
  EXPECT_EQ(planStepSeconds(cm::HardwareSpec(), 0, {rank({})}), 0);
}

TEST(PlanTiming, RanksBeyondTheCoresShareThem) {
  // Four ranks on a node of two cores, profiled with all four busy: a rate
  // holds half a core. 8 MB at 0.25 ns/B plus the fixed 0.001 is 2.001 ms
  // as profiled, 1.0005 on a whole core.
  cm::HardwareSpec hw = spec();
  hw.comm.gpusPerNode = 4;
  hw.device.coresPerNode = 2;
  Step big = compute("elementwise", 8e6), small = compute("elementwise", 4e6);
  // All four busy: each at half a core, as profiled.
  EXPECT_NEAR(planStepSeconds(
                  hw, 0, {rank({big}), rank({big}), rank({big}), rank({big})}) *
                  1e3,
              2.001, 1e-9);
  // Two busy, two with nothing to do: each of the two has a core.
  EXPECT_NEAR(
      planStepSeconds(hw, 0, {rank({big}), rank({big}), rank({}), rank({})}) *
          1e3,
      2.001 / 2, 1e-9);
  // Three busy: some core holds two of them, and the step waits for those.
  EXPECT_NEAR(planStepSeconds(
                  hw, 0, {rank({big}), rank({big}), rank({big}), rank({})}) *
                  1e3,
              2.001, 1e-9);
  // Two 2.001 ms and two 1.001 ms (as profiled), then an all-reduce of
  // the four (0.011 as profiled: the instruction and the 4 KB latency): all
  // four share until the small ones end at 1.001; the big ones are then
  // halfway through their whole-core 1.0005 and finish the other half
  // alone (1.501); the all-reduce runs on all four (1.512). The small ones
  // wait 0.5 for it.
  Step all = communication(Step::Collective);
  auto withAll = [&](Step work) {
    RankMeasure r = rank({work, all});
    r.groups = {{0, 1, 2, 3}};
    r.collectives = {entry("allreduce")};
    return r;
  };
  PlanTime detail;
  double step = planStepSeconds(
      hw, 0, {withAll(big), withAll(big), withAll(small), withAll(small)},
      &detail);
  EXPECT_NEAR(step * 1e3, 1.512, 1e-9);
  EXPECT_NEAR(detail.byClass[2]["wait"] * 1e3, 0.5, 1e-9);
  // Without the cores recorded (an accelerator) every rank runs alone.
  hw.device.coresPerNode = 0;
  EXPECT_NEAR(
      planStepSeconds(hw, 0, {rank({big}), rank({big}), rank({}), rank({})}) *
          1e3,
      2.001, 1e-9);
}

TEST(PlanTiming, SharedCoresPayEachCollectiveAfterABurst) {
  cm::HardwareSpec hw = spec();
  hw.comm.gpusPerNode = 4;
  hw.device.coresPerNode = 2;
  // 0.1 ms extra after a 0.5 ms burst on a whole core, 0.4 after 2 ms.
  hw.syncExcessMs = {{0.5, 0.1}, {2.0, 0.4}};
  Step big = compute("elementwise", 8e6), small = compute("elementwise", 4e6);
  Step all = communication(Step::Collective);
  auto withAll = [&](std::vector<Step> program) {
    RankMeasure r = rank(std::move(program));
    r.groups = {{0, 1, 2, 3}};
    r.collectives = {entry("allreduce")};
    return r;
  };
  // As in RanksBeyondTheCoresShareThem (1.512 ms), and the all-reduce comes
  // after a longest burst of 2.001 / 2 = 1.0005 ms on a whole core: 0.1 +
  // 0.3 x 0.5005 / 1.5 = 0.2001 ms more, run by all four on two cores.
  double step = planStepSeconds(hw, 0,
                                {withAll({big, all}), withAll({big, all}),
                                 withAll({small, all}), withAll({small, all})});
  EXPECT_NEAR(step * 1e3, 1.512 + 0.2001, 1e-9);
  // A second all-reduce right after the first follows no burst: the same
  // 0.011 as profiled, and nothing more.
  step =
      planStepSeconds(hw, 0,
                      {withAll({big, all, all}), withAll({big, all, all}),
                       withAll({small, all, all}), withAll({small, all, all})});
  EXPECT_NEAR(step * 1e3, 1.512 + 0.2001 + 0.011, 1e-9);
  // Every rank on a core of its own: no extra.
  hw.device.coresPerNode = 4;
  step = planStepSeconds(hw, 0,
                         {withAll({big, all}), withAll({big, all}),
                          withAll({small, all}), withAll({small, all})});
  EXPECT_NEAR(step * 1e3, 2.001 + 0.011, 1e-9);
}

TEST(PlanTiming, SharedCoresSlowACollectiveWhileOthersCompute) {
  cm::HardwareSpec hw = spec();
  hw.comm.gpusPerNode = 4;
  hw.device.coresPerNode = 2;
  // Collectives of 4 KB and less: 0.2 ms more while others run 0.5 ms
  // calls, 0.8 while they run 2 ms calls; from 64 KB on, 1.0 and 4.0.
  hw.contendedExcessMs = {{4096, {{0.5, 0.2}, {2.0, 0.8}}},
                          {65536, {{0.5, 1.0}, {2.0, 4.0}}}};
  // Ranks 0 and 1 only all-reduce; ranks 2 and 3 compute 2.001 ms as
  // profiled (1.0005 on a whole core) a step, outside their group. The
  // all-reducing ranks' last step comes while the others compute.
  Step big = compute("elementwise", 8e6);
  Step all = communication(Step::Collective);
  auto reducer = [&](double bytes) {
    RankMeasure r = rank({all});
    r.collectives = {entry("allreduce")};
    r.collectives[0].bytes = bytes;
    return r;
  };
  auto lastAllReduceMs = [&](double bytes, bool othersCompute) {
    std::vector<Step> others;
    if (othersCompute)
      others = {big};
    PlanTime detail;
    planStepSeconds(
        hw, 0, {reducer(bytes), reducer(bytes), rank(others), rank(others)},
        &detail);
    return detail.byClass[0]["communication"] * 1e3;
  };
  // 100 KB: the 64 KB row at a 1.0005 ms call, 1.0 + 3.0 x 0.5005 / 1.5 =
  // 2.001 ms beyond the 0.011 of the instruction and the latency, run by
  // all four ranks on two cores (the members poll meanwhile).
  EXPECT_NEAR(lastAllReduceMs(1e5, true), 0.011 + 2.001, 1e-9);
  // 1 KB: the smallest row, 0.2 + 0.6 x 0.5005 / 1.5 = 0.4002 more.
  EXPECT_NEAR(lastAllReduceMs(1e3, true), 0.011 + 0.4002, 1e-9);
  // Nobody else computing: no extra, and a core each.
  EXPECT_NEAR(lastAllReduceMs(1e5, false), 0.011 / 2, 1e-9);
  // Without the table: what the shared cores alone give.
  hw.contendedExcessMs.clear();
  EXPECT_NEAR(lastAllReduceMs(1e5, true), 0.011, 1e-9);
}
