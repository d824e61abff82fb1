//===- PlanTiming.cpp - a lowered step's time, rank against rank ----------===//
//
// Summing each rank's instructions misses what makes a parallel step slow:
// ranks wait. A collective cannot start before the last rank of its group
// reaches it, and a pipeline stage idles until its input arrives (the
// bubble). So the ranks' programs are played out together in time: compute
// runs, a collective starts for every member when the last one arrives and
// costs them all its price, and a receive waits for its message. A send
// does not wait (the runtime's MPI_Isend returns at once; messages from one
// peer arrive in order), but its message moves only once the receive is
// posted (MPI's rendezvous above the eager limit, 4 KiB), and the step
// returns only when every such message it sent has been received. Ranks do
// not wait for each other between steps, so several steps are played back
// to back and the step time is their period, not the first step's length.
//
// On the CPU backend the ranks of a node may outnumber its cores. The
// profiler measured every rate with all of them busy at once, so a rate
// holds a share of a core; a rank that waits sleeps (the runtime's
// communicator does when oversubscribed), and the ranks still running go
// faster. Each cost is therefore taken back to a whole core and every
// running rank of a node advances at 1 / ceil(running ranks / cores): the
// scheduler keeps a rank on its core, so k ranks on c cores leave some
// core with ceil(k / c) of them, and a group in lockstep goes at its
// slowest member's pace (three ranks on two cores computing 10 ms each
// between all-reduces took 19.4 ms an iteration, not the 15 an even share
// gives; two of four took 10.2). Ranks that compute in turns on a shared
// core and then meet at a collective lose more than that share: each
// collective costs them the profile's extra time after a burst as long as
// the longest its members computed since their last collective (four
// ranks on two cores, GEMM bursts of 0.16-1.6 ms on a whole core between
// all-reduces of 4 KB, lost 0.5-0.9 of a burst each time). A collective
// whose members wait while other ranks of their node compute loses more
// again: its members progress only while each holds a core, and a computing
// rank gives its core up between calls, not within one (two ranks of four
// on two cores all-reducing 128 KB took 1.3-1.8, 7.3-7.6 and 16.5-16.8 ms
// an all-reduce while the other two ran GEMMs of about 0.4, 3 and 25 ms,
// 0.1 while they slept).
// The members poll meanwhile (Open MPI's blocking calls do), so they keep
// their share of the cores.
//
//===----------------------------------------------------------------------===//

#include "PlanMeasure.h"

#include "galvatron/CostModel/Hardware.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>

using namespace mlir::galv;
namespace cm = galvatron::costmodel;

namespace {

using Step = RankMeasure::Instruction;

/// Open MPI's shared-memory eager limit (btl_vader_eager_limit, 4 KiB): a
/// message this small is copied out at the send, which is then complete; a
/// larger one waits for its receive (rendezvous).
constexpr double kEagerLimitBytes = 4096;

/// A compute instruction's time (ms): the fixed cost plus its work at its
/// class's rate; contractions without a rate at the sustained GEMM rate.
double computeMs(const cm::HardwareSpec &hw, double gemmTflops,
                 const Step &step) {
  double ms = hw.instructionMs;
  if (step.kind == Step::Alias)
    return ms;
  double ns = hw.kernelNsPerUnit(step.kernelClass,
                                 step.rateWork > 0 ? step.rateWork : step.work);
  if (ns > 0) {
    double flopMs = step.work * ns / 1e6;
    // A GEMM's bytes beyond (or short of) those of the probe of its FLOPs.
    if (step.kernelClass == "gemm" && hw.gemmNsPerByte > 0)
      return ms +
             std::max(flopMs / 2,
                      flopMs + (step.bytes - cm::gemmProbeBytes(step.work)) *
                                   hw.gemmNsPerByte / 1e6);
    return ms + flopMs;
  }
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
  /// A profiled cost's part on a whole core, and the node's cores (0:
  /// every rank computes on its own).
  double share = 1;
  int cores = 0, perNode = 1;
  double now = 0;

  /// Draining: a step's instructions are done but a message it sent has
  /// not been received yet (the runtime completes its sends before the
  /// step returns).
  enum State { Ready, Running, Blocked, Draining, Done };
  struct Progress {
    State state = Ready;
    size_t next = 0;
    /// Work left and in all (ms on a whole core), when the instruction was
    /// reached and when it started running, and what its time counts as.
    double remaining = 0, work = 0, arrived = 0, started = 0;
    std::string kind;
    /// Messages sent above the eager limit and not yet received.
    int unreceived = 0;
    /// The current receive's message is eager.
    bool eagerReceive = false;
  };
  std::vector<Progress> at;
  std::vector<std::map<std::string, double>> byClass;
  /// Steps played back to back: a rank starts its next step as soon as it
  /// ends one, as galvatron-run's ranks do (no barrier between steps).
  int repeats = 1;
  /// Per rank, per instruction of the last step: reached and ended (ms),
  /// and when that step began.
  std::vector<std::vector<std::pair<double, double>>> spans;
  std::vector<double> lastStart;
  /// Per rank: when each step ended (ms).
  std::vector<std::vector<double>> stepEnds;
  /// A message sent: its transfer (ms as profiled) once the receive is
  /// posted too.
  struct Message {
    double transferMs;
    bool eager; ///< Complete for its sender once sent.
  };
  /// Per (sender, receiver): the messages sent and not yet received.
  std::map<std::pair<int, int>, std::deque<Message>> inFlight;
  /// Per plan group: the ranks waiting at its current collective.
  std::map<int64_t, std::vector<int>> waiting;
  /// Per rank: computation (ms on a whole core) since its last collective.
  std::vector<double> burst;

  Player(const cm::HardwareSpec &hw, double gemmTflops,
         const std::vector<RankMeasure> &ranks, int repeats)
      : hw(hw), gemmTflops(gemmTflops), ranks(ranks), at(ranks.size()),
        byClass(ranks.size()), repeats(repeats), spans(ranks.size()),
        lastStart(ranks.size(), 0), stepEnds(ranks.size()),
        burst(ranks.size(), 0) {
    perNode = std::max(1, hw.comm.gpusPerNode);
    if (hw.device.coresPerNode > 0 && hw.device.coresPerNode < perNode) {
      cores = hw.device.coresPerNode;
      share = coreShare(perNode);
    }
    for (size_t r = 0; r < ranks.size(); ++r)
      spans[r].resize(ranks[r].program.size());
  }

  /// What each of `running` ranks of a node gets of a core.
  double coreShare(int running) const {
    return cores && running > cores ? 1.0 / std::ceil(double(running) / cores)
                                    : 1.0;
  }

  void run(int r, double ms, const std::string &kind) {
    at[r].state = Running;
    at[r].remaining = at[r].work = ms * share;
    at[r].started = now;
    at[r].kind = kind;
  }

  /// Rank r's current instruction; null once it has played every step.
  const Step *current(int r) const {
    const std::vector<Step> &program = ranks[r].program;
    if (program.empty() || at[r].next >= program.size() * repeats)
      return nullptr;
    return &program[at[r].next % program.size()];
  }
  bool inLastStep(int r) const {
    return at[r].next >= ranks[r].program.size() * (repeats - 1);
  }

  /// Starts rank r's next instruction, or leaves it blocked.
  void start(int r) {
    Progress &p = at[r];
    const Step *current = this->current(r);
    if (!current) {
      p.state = Done;
      return;
    }
    const Step &step = *current;
    if (p.state == Ready) {
      p.arrived = now;
      if (p.next == ranks[r].program.size() * (repeats - 1))
        lastStart[r] = now;
    }
    if (step.kind == Step::Compute || step.kind == Step::Alias) {
      run(r, computeMs(hw, gemmTflops, step),
          step.kind == Step::Alias ? "alias" : step.kernelClass);
    } else if (step.kind == Step::Send) {
      run(r, hw.instructionMs, "communication");
    } else if (step.kind == Step::Recv) {
      // Above MPI's eager limit a message moves once both sides are there
      // (rendezvous): its transfer starts at the later of the two.
      std::deque<Message> &queue = inFlight[{step.peer, r}];
      if (queue.empty()) {
        p.state = Blocked;
        return;
      }
      run(r, hw.instructionMs + queue.front().transferMs, "communication");
      p.eagerReceive = queue.front().eager;
      queue.pop_front();
    } else if (p.state == Ready) {
      arrive(r, step);
    }
  }

  /// Rank r reaches a collective; the group's last arrival starts it for
  /// every member at the price of the costliest member's part.
  void arrive(int r, const Step &step) {
    std::vector<int> &arrived = waiting[step.group];
    arrived.push_back(r);
    at[r].state = Blocked;
    if (arrived.size() < ranks[r].groups[step.group].size())
      return;
    double cost = 0, longestBurst = 0, bytes = 0;
    for (int member : arrived) {
      const RankMeasure::Collective &theirs =
          ranks[member].collectives[current(member)->collective];
      cost = std::max(cost, hw.instructionMs + transferMs(hw, theirs));
      bytes = std::max(bytes, double(theirs.bytes));
      longestBurst = std::max(longestBurst, burst[member]);
      burst[member] = 0;
    }
    if (cores) {
      cost += hw.syncExcessAt(longestBurst);
      if (!hw.contendedExcessMs.empty())
        cost += hw.contendedExcessAt(bytes, othersCallMs(arrived));
    }
    for (int member : arrived)
      run(member, cost, "communication");
    arrived.clear();
  }

  /// The longest call (ms on a whole core) that ranks outside `members`
  /// are computing on a node of theirs, where they and the members
  /// outnumber its cores; 0 where none does.
  double othersCallMs(const std::vector<int> &members) const {
    struct Node {
      int members = 0, computing = 0;
      double longestCall = 0;
    };
    std::map<int, Node> nodes;
    for (int member : members)
      ++nodes[member / perNode].members;
    for (int r = 0; r < int(ranks.size()); ++r) {
      auto node = nodes.find(r / perNode);
      if (node == nodes.end() || at[r].state != Running ||
          at[r].kind == "communication" ||
          std::find(members.begin(), members.end(), r) != members.end())
        continue;
      ++node->second.computing;
      node->second.longestCall = std::max(node->second.longestCall, at[r].work);
    }
    double longest = 0;
    for (auto &[index, node] : nodes)
      if (node.members + node.computing > cores)
        longest = std::max(longest, node.longestCall);
    return longest;
  }

  void finish(int r) {
    Progress &p = at[r];
    const Step &step = *current(r);
    size_t size = ranks[r].program.size();
    if (inLastStep(r)) {
      byClass[r]["wait"] += p.started - p.arrived;
      byClass[r][p.kind] += now - p.started;
      spans[r][p.next % size] = {p.arrived, now};
    }
    if (step.kind == Step::Compute)
      burst[r] += p.work;
    if (step.kind == Step::Send) {
      bool eager = step.bytes <= kEagerLimitBytes;
      inFlight[{r, step.peer}].push_back(
          {transferMs(hw, ranks[r].collectives[step.collective]), eager});
      p.unreceived += !eager;
    }
    if (step.kind == Step::Recv) {
      Progress &sender = at[step.peer];
      if (!p.eagerReceive && --sender.unreceived == 0 &&
          sender.state == Draining)
        endStep(step.peer);
    }
    ++p.next;
    p.state = Ready;
    if (p.next % size == 0) {
      p.state = Draining;
      p.arrived = now;
      if (p.unreceived == 0)
        endStep(r);
    }
  }

  /// Rank r's step returns: its sends are complete.
  void endStep(int r) {
    Progress &p = at[r];
    if (p.next == ranks[r].program.size() * repeats)
      byClass[r]["wait"] += now - p.arrived;
    stepEnds[r].push_back(now);
    p.state = Ready;
  }

  /// Plays the step out; false when it cannot complete.
  bool play() {
    int count = int(ranks.size());
    for (;;) {
      // Start what can start; a start may unblock others (a collective's
      // last arrival), so until nothing changes.
      for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < count; ++r) {
          State before = at[r].state;
          bool blockedRecv =
              before == Blocked && current(r) && current(r)->kind == Step::Recv;
          if (before == Ready || blockedRecv) {
            start(r);
            changed |= at[r].state != before;
          }
        }
      }
      // Each node's running ranks share its cores.
      std::vector<int> running(count / perNode + 1, 0);
      bool done = true;
      for (int r = 0; r < count; ++r) {
        running[r / perNode] += at[r].state == Running;
        done &= at[r].state == Done;
      }
      if (done)
        return true;
      auto rate = [&](int r) { return coreShare(running[r / perNode]); };
      double dt = std::numeric_limits<double>::infinity();
      for (int r = 0; r < count; ++r)
        if (at[r].state == Running)
          dt = std::min(dt, at[r].remaining / rate(r));
      if (!std::isfinite(dt))
        return false;
      now += std::max(dt, 0.0);
      for (int r = 0; r < count; ++r) {
        if (at[r].state != Running)
          continue;
        at[r].remaining -= dt * rate(r);
        if (at[r].remaining <= 1e-9)
          finish(r);
      }
    }
  }

  bool valid() const {
    for (const RankMeasure &r : ranks)
      for (const Step &step : r.program) {
        bool message = step.kind == Step::Send || step.kind == Step::Recv;
        if (message && (step.peer < 0 || step.peer >= int(ranks.size())))
          return false;
        if (step.kind == Step::Send && step.collective < 0)
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
  // Four steps back to back; the step is the mean of the last two periods
  // (the first step starts every rank together, which no later one does: a
  // pipeline's last stage starts its next step while the first still ends
  // the previous one).
  constexpr int kRepeats = 4;
  Player player(hw, gemmTflops, ranks, kRepeats);
  if (!player.valid() || !player.play())
    return -1;
  std::vector<double> ends(kRepeats, 0);
  double origin = std::numeric_limits<double>::infinity();
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (ranks[r].program.empty())
      continue;
    for (int k = 0; k < kRepeats; ++k)
      ends[k] = std::max(ends[k], player.stepEnds[r][k]);
    origin = std::min(origin, player.lastStart[r]);
  }
  if (!std::isfinite(origin))
    return 0;
  if (detail) {
    for (size_t r = 0; r < ranks.size(); ++r) {
      for (auto &[start, end] : player.spans[r]) {
        start -= origin;
        end -= origin;
      }
      detail->finish.push_back(player.stepEnds[r].empty()
                                   ? 0
                                   : (player.stepEnds[r].back() - origin) /
                                         1000);
      detail->byClass.emplace_back();
      for (auto &[kind, ms] : player.byClass[r])
        detail->byClass.back()[kind] = ms / 1000;
    }
    detail->spans = std::move(player.spans);
  }
  return (ends[kRepeats - 1] - ends[1]) / (kRepeats - 2) / 1000;
}
