//===- PlanTiming.cpp - a lowered step's time, rank against rank ----------===//
//
// Summing each rank's instructions misses what makes a parallel step slow:
// ranks wait. A collective cannot start before the last rank of its group
// reaches it, and a pipeline stage idles until its input arrives (the
// bubble). So the ranks' programs are played out together: each rank keeps
// a clock, compute advances it, a collective sets every member's clock to
// the last arrival plus the collective's cost, and a receive waits for its
// message (sends are eager: the runtime's MPI_Isend returns at once, and
// messages from one peer arrive in order).
//
//===----------------------------------------------------------------------===//

#include "PlanMeasure.h"

#include "galvatron/CostModel/Hardware.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>

using namespace mlir::galv;
namespace cm = galvatron::costmodel;

namespace {

using Step = RankMeasure::Instruction;

/// A compute instruction's time (ms): the fixed cost plus its work at its
/// class's rate; contractions without a rate at the sustained GEMM rate.
double computeMs(const cm::HardwareSpec &hw, double gemmTflops,
                 const Step &step) {
  double ms = hw.instructionMs;
  if (step.kind == Step::Alias)
    return ms;
  double ns = hw.kernelNsPerUnit(step.kernelClass, step.work);
  if (ns > 0)
    return ms + step.work * ns / 1e6;
  if (cm::kernelCountsFlops(step.kernelClass) && gemmTflops > 0)
    return ms + step.work / (gemmTflops * 1e9);
  return ms;
}

/// A collective's or a message's time (ms) once it can start: its start-up
/// and its bytes over the bandwidth tables, plus the runtime's two copies of
/// the buffer (into the tensor handed to MPI, and back into the arena).
double transferMs(const cm::HardwareSpec &hw,
                  const RankMeasure::Collective &c) {
  double ms = hw.startupMs(c.group);
  double bytes = hw.collectiveMs(c.op, c.group, c.consecutive, c.bytes);
  double copies = 4 * c.bytes, ns = hw.kernelNsPerUnit("movement", copies);
  if (ns > 0)
    ms += copies * ns / 1e6;
  return std::isfinite(bytes) ? ms + bytes : ms;
}

struct Player {
  const cm::HardwareSpec &hw;
  double gemmTflops;
  const std::vector<RankMeasure> &ranks;
  std::vector<size_t> next;
  std::vector<double> clock;
  std::vector<std::map<std::string, double>> byClass;
  /// Per (sender, receiver): when each message in flight arrives.
  std::map<std::pair<int, int>, std::deque<double>> inFlight;
  /// Per plan group: the ranks waiting at its current collective, and
  /// when each arrived.
  std::map<int64_t, std::map<int, double>> waiting;

  Player(const cm::HardwareSpec &hw, double gemmTflops,
         const std::vector<RankMeasure> &ranks)
      : hw(hw), gemmTflops(gemmTflops), ranks(ranks), next(ranks.size(), 0),
        clock(ranks.size(), 0.0), byClass(ranks.size()) {}

  /// Advances rank r's clock to `until` (waiting) and then by `ms` of `kind`.
  void spend(int r, double until, double ms, const std::string &kind) {
    if (until > clock[r])
      byClass[r]["wait"] += until - clock[r];
    clock[r] = std::max(clock[r], until) + ms;
    byClass[r][kind] += ms;
  }

  /// Runs rank `r` until it blocks or ends; true when it advanced.
  bool advance(int r) {
    const std::vector<Step> &program = ranks[r].program;
    bool moved = false;
    while (next[r] < program.size()) {
      const Step &step = program[next[r]];
      if (step.kind == Step::Compute || step.kind == Step::Alias) {
        spend(r, 0, computeMs(hw, gemmTflops, step),
              step.kind == Step::Alias ? "alias" : step.kernelClass);
      } else if (step.kind == Step::Send) {
        spend(r, 0, hw.instructionMs, "communication");
        inFlight[{r, step.peer}].push_back(
            clock[r] + transferMs(hw, ranks[r].collectives[step.collective]));
      } else if (step.kind == Step::Recv) {
        auto &queue = inFlight[{step.peer, r}];
        if (queue.empty())
          return moved;
        spend(r, queue.front(), hw.instructionMs, "communication");
        queue.pop_front();
      } else {
        return collective(r, step) || moved;
      }
      ++next[r];
      moved = true;
    }
    return moved;
  }

  /// Rank `r` reaches a collective: it waits, and when it is the group's
  /// last, every member finishes at the last arrival plus the cost.
  bool collective(int r, const Step &step) {
    auto &arrived = waiting[step.group];
    if (arrived.count(r))
      return false;
    arrived[r] = clock[r];
    const std::vector<int> &members = ranks[r].groups[step.group];
    if (arrived.size() < members.size())
      return true;
    double start = 0, cost = 0;
    for (auto &[member, at] : arrived) {
      start = std::max(start, at);
      const Step &theirs = ranks[member].program[next[member]];
      cost = std::max(
          cost,
          hw.instructionMs +
              transferMs(hw, ranks[member].collectives[theirs.collective]));
    }
    for (auto &[member, at] : arrived) {
      spend(member, start, cost, "communication");
      ++next[member];
    }
    arrived.clear();
    return true;
  }

  bool valid() const {
    for (const RankMeasure &r : ranks)
      for (const Step &step : r.program) {
        bool message = step.kind == Step::Send || step.kind == Step::Recv;
        if (message && (step.peer < 0 || step.peer >= int(ranks.size())))
          return false;
        if (step.kind == Step::Collective &&
            (step.group < 0 || step.group >= int64_t(r.groups.size()) ||
             step.collective < 0))
          return false;
        if (step.kind == Step::Collective)
          for (int member : r.groups[step.group])
            if (member < 0 || member >= int(ranks.size()))
              return false;
      }
    return true;
  }
};

} // namespace

double mlir::galv::planStepSeconds(const cm::HardwareSpec &hw,
                                   double gemmTflops,
                                   const std::vector<RankMeasure> &ranks,
                                   PlanTime *detail) {
  if (hw.kernelRates.empty())
    return 0;
  Player player(hw, gemmTflops, ranks);
  if (!player.valid())
    return -1;
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < int(ranks.size()); ++r)
      moved |= player.advance(r);
  }
  for (size_t r = 0; r < ranks.size(); ++r)
    if (player.next[r] < ranks[r].program.size())
      return -1;
  if (detail) {
    for (size_t r = 0; r < ranks.size(); ++r) {
      detail->finish.push_back(player.clock[r] / 1000);
      detail->byClass.emplace_back();
      for (auto &[kind, ms] : player.byClass[r])
        detail->byClass.back()[kind] = ms / 1000;
    }
  }
  return *std::max_element(player.clock.begin(), player.clock.end()) / 1000;
}
