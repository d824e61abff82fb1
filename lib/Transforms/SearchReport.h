//===- SearchReport.h - what galv-search chose and why ----------*- C++ -*-===//
//
// The report of a search: the chosen strategy per layer, predicted time and
// memory per stage against the budget, a pipeline timeline and a memory
// chart (SVG in the HTML page), the runners-up and reference strategies
// (plain data parallelism, ...) with why each lost, and the search's own
// time and number of candidates. Written as HTML, Markdown or JSON by the
// path's extension, atomically.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_LIB_TRANSFORMS_SEARCHREPORT_H
#define GALVATRON_LIB_TRANSFORMS_SEARCHREPORT_H

#include "CostInputs.h"
#include "galvatron/Search/Search.h"

#include <string>
#include <vector>

namespace mlir::galv {

/// One stage's slot in the pipeline timeline (ms from the step's start).
struct TimelineSlot {
  int stage = 0, microBatch = 0;
  bool backward = false;
  double startMs = 0, endMs = 0;
};

/// The slots of one step: each stage runs its micro-batches' forward and
/// backward (twice the forward) in GPipe or 1F1B order, a stage waiting for
/// the previous one's forward and the next one's backward.
std::vector<TimelineSlot> pipelineTimeline(const std::vector<double> &stageMs,
                                           int chunks, bool oneFOneB);

/// The chosen plan's memory as lowered: per stage, the largest rank's arena
/// plus bound tensors; and how many better-estimated candidates exceeded
/// the budget when lowered.
struct ExactMemory {
  std::vector<uint64_t> stageBytes;
  size_t rejected = 0;
};

LogicalResult writeSearchReport(
    StringRef path, const galvatron::costmodel::GalvatronCostModel &model,
    const ModuleCosts &costs, const galvatron::search::SearchResult &result,
    double memoryGB, const ExactMemory *exact, std::string &error);

} // namespace mlir::galv

#endif // GALVATRON_LIB_TRANSFORMS_SEARCHREPORT_H
