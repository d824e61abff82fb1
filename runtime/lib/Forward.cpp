//===- Forward.cpp - run a forward plan and check its outputs -------------===//

#include "galvatron/runtime/Backend.h"
#include "galvatron/runtime/Driver.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/Trace.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace galvatron::rt {

namespace {

/// The job's outputs in order: rank 0's, then those only later ranks have.
std::vector<std::string> jobOutputNames(const Job &job) {
  std::vector<std::string> names;
  const plan::RankProgram *lead = findRankProgram(*job.plan, 0);
  std::vector<const plan::RankProgram *> programs = {
      job.worldSize == 1 ? job.program : lead};
  if (job.worldSize > 1)
    for (const plan::RankProgram *r : *job.plan->ranks())
      if (r != lead)
        programs.push_back(r);
  for (const plan::RankProgram *r : programs)
    if (r->outputs())
      for (int32_t index : *r->outputs()) {
        std::string name = tensorName(*r, index);
        if (std::find(names.begin(), names.end(), name) == names.end())
          names.push_back(name);
      }
  return names;
}

/// --expect NAME=ref.npy: prints the comparison; true when it passes.
bool checkOutput(const std::string &name, const Tensor &got,
                 const std::string &file, double rtol) {
  Tensor expected;
  std::string error;
  if (!readNpy(file, expected, error))
    fatal(error);
  if (expected.shape != got.shape)
    fatal("output '" + name + "' is " + shapeString(got.shape) +
          ", the reference " + shapeString(expected.shape));
  double maxError = 0, maxReference = 0;
  for (int64_t k = 0; k < expected.size(); ++k) {
    maxError = std::max(maxError, std::fabs(got.at(k) - expected.at(k)));
    maxReference = std::max(maxReference, std::fabs(expected.at(k)));
  }
  double relative = maxError / std::max(maxReference, 1e-30);
  bool pass = relative <= rtol;
  std::printf("%s: max abs error %.3e, max abs reference %.3e, relative "
              "%.3e (rtol %.1e): %s\n",
              name.c_str(), maxError, maxReference, relative, rtol,
              pass ? "PASS" : "FAIL");
  return pass;
}

} // namespace

int forward(const Job &job, const std::map<std::string, Tensor> &inputs,
            const std::map<std::string, Tensor> &weights,
            const DriverOptions &options) {
  std::string error;
  std::map<std::string, Tensor> outputs;
  RunStats runStats;
  TraceWriter trace(job);
  int64_t startUs = nowUs();
  if (!job.backend->run(*job.plan, job.rank, inputs, weights, outputs, runStats,
                        error, {job.comm, trace.enabled()}))
    fatal(error);
  trace.addStep(1, startUs, nowUs(), runStats);
  trace.write();
  std::vector<std::string> outputNames = jobOutputNames(job);
  std::map<std::string, Tensor> whole = consolidate(
      job, outputNames,
      [](const plan::RankProgram &r, const std::string &name) {
        return findNamed(r, r.outputs(), name);
      },
      outputs, "output");
  if (!job.lead())
    return 0;

  auto find = [&](const std::string &name) -> const Tensor & {
    auto it = whole.find(name);
    if (it == whole.end())
      fatal("the plan has no output named '" + name + "'");
    return it->second;
  };
  for (size_t i = 0; i < options.outputSpecs.size(); ++i) {
    auto [name, file] = splitSpec(options.outputSpecs[i], i, outputNames);
    if (!writeNpy(file, find(name), error))
      fatal(error);
  }
  if (options.stats)
    std::cout << "arena " << runStats.arenaBytes << " bytes (plan), high water "
              << runStats.highWaterBytes << " bytes (measured), peak live "
              << runStats.peakLiveBytes << " bytes"
              << (runStats.scratchBytes
                      ? ", device scratch " +
                            std::to_string(runStats.scratchBytes) + " bytes"
                      : std::string())
              << "\n";
  bool allPass = true;
  for (size_t i = 0; i < options.expectSpecs.size(); ++i) {
    auto [name, file] = splitSpec(options.expectSpecs[i], i, outputNames);
    allPass = checkOutput(name, find(name), file, options.rtol) && allPass;
  }
  return allPass ? 0 : 1;
}

} // namespace galvatron::rt
