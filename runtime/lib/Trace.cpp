//===- Trace.cpp - Chrome trace-event JSON per rank -----------------------===//

#include "galvatron/runtime/Trace.h"
#include "galvatron/Support/AtomicFile.h"
#include "galvatron/runtime/Comm.h"

#include <filesystem>

namespace galvatron::rt {

TraceWriter::TraceWriter(const Job &job) : job(job) {
  for (const std::vector<int> &ranks : planGroups(*job.plan))
    groupKeys.push_back(groupKey(ranks));
  if (enabled())
    add("{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": " +
        std::to_string(job.rank) +
        ", \"tid\": 0, \"args\": {\"name\": \"rank " +
        std::to_string(job.rank) + "\"}}");
}

void TraceWriter::addStep(int step, int64_t startUs, int64_t endUs,
                          const RunStats &stats) {
  if (!wants())
    return;
  ++traced;
  add(event("step", "step", startUs, endUs, step, ""));
  for (const TraceEvent &e : stats.trace) {
    std::string extra = ", \"instruction\": " + std::to_string(e.instruction);
    if (e.group >= 0)
      extra += ", \"group\": \"" + groupKeys[e.group] + "\"";
    add(event(e.name, e.group >= 0 ? "comm" : "compute", e.startUs, e.endUs,
              step, extra));
  }
}

void TraceWriter::write() {
  if (!enabled())
    return;
  std::error_code ec;
  std::filesystem::create_directories(job.traceDir, ec);
  if (ec)
    fatal("--trace: cannot create '" + job.traceDir + "': " + ec.message());
  std::string text =
      "{\"traceEvents\": [\n" + events + "\n], \"displayTimeUnit\": \"ms\"}\n";
  std::string path =
      job.traceDir + "/trace-rank" + std::to_string(job.rank) + ".json";
  std::string error;
  if (!writeFileAtomically(path, {{text.data(), text.size()}}, error))
    fatal(error);
}

std::string TraceWriter::event(const std::string &name, const char *category,
                               int64_t startUs, int64_t endUs, int step,
                               const std::string &extra) const {
  return "{\"name\": \"" + name + "\", \"cat\": \"" + category +
         "\", \"ph\": \"X\", \"ts\": " +
         std::to_string(startUs - job.traceOriginUs) +
         ", \"dur\": " + std::to_string(endUs - startUs) +
         ", \"pid\": " + std::to_string(job.rank) +
         ", \"tid\": 0, \"args\": {\"step\": " + std::to_string(step) + extra +
         "}}";
}

void TraceWriter::add(const std::string &line) {
  events += (events.empty() ? "" : ",\n") + line;
}

} // namespace galvatron::rt
