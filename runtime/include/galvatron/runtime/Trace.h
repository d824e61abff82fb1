//===- Trace.h - Chrome trace-event JSON per rank ---------------*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_TRACE_H
#define GALVATRON_RUNTIME_TRACE_H

#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Job.h"

#include <string>
#include <vector>

namespace galvatron::rt {

/// Chrome trace-event JSON (Perfetto, chrome://tracing): one complete ("X")
/// event per instruction and per step, pid = rank, timed from the job's
/// clock origin. Enabled by Job::traceDir; keeps Job::traceSteps steps.
class TraceWriter {
public:
  explicit TraceWriter(const Job &job);

  bool enabled() const { return !job.traceDir.empty(); }
  /// Whether the next step is traced.
  bool wants() const { return enabled() && traced < job.traceSteps; }

  /// One step: its own event, then one per instruction of `stats.trace`.
  void addStep(int step, int64_t startUs, int64_t endUs, const RunStats &stats);

  /// DIR/trace-rank<r>.json, written whole or not at all; ends the job when
  /// it cannot be written.
  void write();

private:
  std::string event(const std::string &name, const char *category,
                    int64_t startUs, int64_t endUs, int step,
                    const std::string &extra) const;
  void add(const std::string &line);

  const Job &job;
  std::vector<std::string> groupKeys;
  std::string events;
  int traced = 0;
};

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_TRACE_H
