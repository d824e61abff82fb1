//===- Estimate.cpp - galv-estimate: a strategy's predicted cost ----------===//
//
// Time and memory per stage come from the cost model over the module's cost
// attributes. What each rank sends is not modelled but counted: a copy of
// the module is lowered with the training pipeline to plan.bin, and every
// collective of every rank's program is summed as the runtime's
// communicator counts it (the input tensor's bytes, keyed by the op and the
// group's ranks; a receive counts nothing). The same lowering gives each
// rank's exact plan memory: its arena plus the tensors bound from outside.
//
//===----------------------------------------------------------------------===//

#include "CostInputs.h"
#include "PlanMeasure.h"
#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace mlir::galv {
#define GEN_PASS_DEF_ESTIMATE
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;
namespace cm = galvatron::costmodel;

namespace {

struct EstimatePass : galv::impl::EstimateBase<EstimatePass> {
  using Base::Base;

  LogicalResult estimate(ModuleOp module, std::string &error) {
    cm::Strategy strategy;
    if (failed(strategyOfModule(module, strategy, error)))
      return failure();
    auto plan =
        module->getAttrOfType<PlanConfigAttr>(GalvDialect::getPlanAttrName());
    bool megatronSp = false;
    module.walk([&](LayerOp layer) {
      if (auto s = layer.getStrategyAttr())
        megatronSp |= s.getSp() == SequenceParallelKind::megatron;
    });
    ModuleCosts costs;
    if (failed(loadModuleCosts(module, plan.getWorldSize(), 0, memoryGb,
                               megatronSp, costs, error)))
      return failure();
    // The window of tp degrees the strategy uses (Galvatron's search sets
    // it; a lone strategy takes its own).
    cm::GalvatronCostModel model;
    cm::Estimate est;
    if (!model.init(costs.hardware.comm, costs.computation, costs.memory,
                    costs.settings, error) ||
        !model.estimate(strategy, est, error))
      return failure();
    std::vector<RankMeasure> ranks;
    if (traffic && failed(measurePlan(module, training, ranks, error)))
      return failure();
    PlanTime detail;
    nlohmann::ordered_json j = toJson(costs, strategy, est, ranks, detail);
    printTable(j);
    if (!trace.empty() && !writeTrace(ranks, detail, error))
      return failure();
    if (!out.empty()) {
      std::string text = j.dump(2) + "\n";
      if (!galvatron::writeFileAtomically(out, {{text.data(), text.size()}},
                                          error))
        return failure();
    }
    return success();
  }

  nlohmann::ordered_json toJson(const ModuleCosts &costs,
                                const cm::Strategy &strategy,
                                const cm::Estimate &est,
                                const std::vector<RankMeasure> &ranks,
                                PlanTime &detail) {
    nlohmann::ordered_json j;
    j["model"] = costs.native ? "native" : "galvatron";
    j["hardware"] = costs.hardware.name;
    j["world_size"] =
        costs.hardware.comm.numNodes * costs.hardware.comm.gpusPerNode;
    // What the bandwidth tables miss, from the lowered plan: each rank's
    // instructions at the runtime's fixed cost and its collectives at their
    // start-up latency; the slowest rank's sum is added to the step.
    double fixedS = 0;
    for (const RankMeasure &r : ranks) {
      double ms = r.instructions * costs.hardware.instructionMs;
      for (const RankMeasure::Instruction &step : r.program)
        if (step.group >= 0 && step.group < int64_t(r.groups.size()))
          ms += costs.hardware.startupMs(int(r.groups[step.group].size()));
      fixedS = std::max(fixedS, ms / 1000);
    }
    double stepS = est.timeMs / 1000 + fixedS;
    // With the runtime's kernel rates measured, the step is the slowest
    // rank's program priced instruction by instruction instead.
    const cm::HardwareSpec &hw = costs.hardware;
    double tflops =
        costs.settings.mixedPrecision && hw.device.gemmTflopsBf16 > 0
            ? hw.device.gemmTflopsBf16
            : hw.device.gemmTflopsFp32;
    double planS =
        ranks.empty() ? 0 : planStepSeconds(hw, tflops, ranks, &detail);
    if (planS < 0) {
      emitWarning(UnknownLoc::get(&getContext()))
          << "galv-estimate: the plan's ranks cannot be played out against "
             "each other (a receive or collective is never matched); the step "
             "time is the cost model's";
      planS = 0;
    }
    if (planS > 0) {
      stepS = planS;
      j["plan_step_time_s"] = planS;
    }
    j["step_time_s"] = stepS;
    j["samples_per_s"] = strategy.globalBatch / stepS;
    j["model_step_time_s"] = est.timeMs / 1000;
    j["fixed_costs_s"] = fixedS;
    j["global_batch"] = strategy.globalBatch;
    // The native model's memory is the plan's own when it was lowered: the
    // memory planner's arena is exact. The formula's number stays beside it.
    std::vector<uint64_t> planPeak(est.stageMemoryMb.size(), 0);
    for (const RankMeasure &r : ranks)
      if (r.stage >= 0 && r.stage < static_cast<int>(planPeak.size()))
        planPeak[r.stage] = std::max(planPeak[r.stage], r.memoryBytes());
    for (size_t s = 0; s < est.stageMemoryMb.size(); ++s) {
      double formula = (est.stageMemoryMb[s] - est.reserveMb) * kBytesPerMb;
      bool exact = costs.native && !ranks.empty();
      j["stages"].push_back(
          {{"stage", s},
           {"time_s", est.stageTimeMs[s] / 1000},
           {"peak_memory_bytes", exact ? double(planPeak[s]) : formula},
           {"model_memory_bytes", formula}});
    }
    for (size_t r = 0; r < ranks.size(); ++r)
      j["ranks"].push_back({{"rank", r},
                            {"stage", ranks[r].stage},
                            {"plan_memory_bytes", ranks[r].memoryBytes()},
                            {"arena_bytes", ranks[r].arenaBytes},

                            {"bytes_sent", ranks[r].bytesSent}});
    // The played-out step per rank: when it finishes and where its time went.
    for (size_t r = 0; r < detail.finish.size() && r < ranks.size(); ++r) {
      j["ranks"][r]["finish_s"] = detail.finish[r];
      j["ranks"][r]["time_by_class_s"] = detail.byClass[r];
    }
    return j;
  }

  /// The played-out step as Chrome trace events, one file per rank named as
  /// galvatron-run --trace names its own, so that a measured step and its
  /// prediction can be compared instruction by instruction.
  bool writeTrace(const std::vector<RankMeasure> &ranks, const PlanTime &detail,
                  std::string &error) {
    if (detail.spans.size() != ranks.size()) {
      error = "trace=" + trace +
              ": the step was not played out (no kernel rates in the "
              "hardware, or no plan)";
      return false;
    }
    if (std::error_code ec = llvm::sys::fs::create_directories(trace)) {
      error =
          "trace=" + trace + ": cannot create the directory: " + ec.message();
      return false;
    }
    for (size_t r = 0; r < ranks.size(); ++r) {
      nlohmann::ordered_json events = nlohmann::ordered_json::array();
      for (size_t i = 0; i < ranks[r].program.size(); ++i) {
        const RankMeasure::Instruction &step = ranks[r].program[i];
        auto [start, end] = detail.spans[r][i];
        bool comm = step.kind == RankMeasure::Instruction::Collective ||
                    step.kind == RankMeasure::Instruction::Send ||
                    step.kind == RankMeasure::Instruction::Recv;
        nlohmann::ordered_json args = {{"step", 0}, {"instruction", i}};
        if (!comm)
          args["class"] = step.kind == RankMeasure::Instruction::Alias
                              ? "alias"
                              : step.kernelClass;
        events.push_back({{"name", step.opcode},
                          {"cat", comm ? "comm" : "compute"},
                          {"ph", "X"},
                          {"ts", start * 1000},
                          {"dur", (end - start) * 1000},
                          {"pid", r},
                          {"tid", 0},
                          {"args", args}});
      }
      nlohmann::ordered_json file = {{"traceEvents", events},
                                     {"displayTimeUnit", "ms"}};
      std::string text = file.dump() + "\n";
      std::string path = trace + "/trace-rank" + std::to_string(r) + ".json";
      if (!galvatron::writeFileAtomically(path, {{text.data(), text.size()}},
                                          error))
        return false;
    }
    return true;
  }

  void printTable(const nlohmann::ordered_json &j) {
    char line[200];
    std::snprintf(line, sizeof(line),
                  "galv-estimate (%s model, hardware '%s', %d devices)\n"
                  "step time %.4g s, %.4g samples/s (global batch %d)\n"
                  "stage | time (s)   | peak memory (bytes)\n",
                  j["model"].get<std::string>().c_str(),
                  j["hardware"].get<std::string>().c_str(),
                  j["world_size"].get<int>(), j["step_time_s"].get<double>(),
                  j["samples_per_s"].get<double>(),
                  j["global_batch"].get<int>());
    llvm::outs() << line;
    for (auto &s : j["stages"]) {
      std::snprintf(line, sizeof(line), "%5d | %10.4g | %.0f\n",
                    s["stage"].get<int>(), s["time_s"].get<double>(),
                    s["peak_memory_bytes"].get<double>());
      llvm::outs() << line;
    }
    if (j.contains("ranks")) {
      llvm::outs() << "rank | stage | plan memory (bytes) | bytes sent per "
                      "step\n";
      for (auto &r : j["ranks"]) {
        uint64_t sent = 0;
        for (auto &[key, bytes] : r["bytes_sent"].items())
          sent += bytes.get<uint64_t>();
        std::snprintf(line, sizeof(line), "%4d | %5d | %19llu | %llu\n",
                      r["rank"].get<int>(), r["stage"].get<int>(),
                      static_cast<unsigned long long>(
                          r["plan_memory_bytes"].get<uint64_t>()),
                      static_cast<unsigned long long>(sent));
        llvm::outs() << line;
      }
    }
    llvm::outs().flush();
  }

  void runOnOperation() override {
    std::string error;
    if (failed(estimate(getOperation(), error))) {
      emitError(getOperation().getLoc(), "galv-estimate: ") << error;
      signalPassFailure();
    }
    markAllAnalysesPreserved();
  }
};

} // namespace
