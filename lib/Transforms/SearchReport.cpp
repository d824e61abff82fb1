//===- SearchReport.cpp - what galv-search chose and why ------------------===//

#include "SearchReport.h"

#include "galvatron/Support/AtomicFile.h"

#include "llvm/Support/Path.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>

using namespace mlir;
using namespace mlir::galv;
namespace cm = galvatron::costmodel;
namespace gs = galvatron::search;

std::vector<TimelineSlot>
mlir::galv::pipelineTimeline(const std::vector<double> &stageMs, int chunks,
                             bool oneFOneB) {
  const int pp = static_cast<int>(stageMs.size());
  // Each stage's order of (micro-batch, backward?) slots.
  std::vector<std::vector<std::pair<int, bool>>> order(pp);
  for (int s = 0; s < pp; ++s) {
    int warmup = oneFOneB ? std::min(pp - s - 1, chunks) : chunks;
    int f = 0, b = 0;
    for (; f < warmup; ++f)
      order[s].push_back({f, false});
    while (b < chunks) {
      if (f < chunks)
        order[s].push_back({f++, false});
      order[s].push_back({b++, true});
    }
  }
  // Ready times: forward after the previous stage's forward of the same
  // micro-batch, backward after the next stage's backward.
  std::vector<std::vector<double>> fEnd(pp, std::vector<double>(chunks, -1)),
      bEnd(pp, std::vector<double>(chunks, -1));
  std::vector<size_t> next(pp, 0);
  std::vector<double> free(pp, 0);
  std::vector<TimelineSlot> slots;
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < pp; ++s) {
      while (next[s] < order[s].size()) {
        auto [m, backward] = order[s][next[s]];
        double ready = free[s];
        if (!backward && s > 0) {
          if (fEnd[s - 1][m] < 0)
            break;
          ready = std::max(ready, fEnd[s - 1][m]);
        }
        if (backward) {
          double after = s + 1 < pp ? bEnd[s + 1][m] : fEnd[s][m];
          if (after < 0)
            break;
          ready = std::max(ready, after);
        }
        double length = stageMs[s] * (backward ? 2.0 / 3 : 1.0 / 3);
        slots.push_back({s, m, backward, ready, ready + length});
        (backward ? bEnd : fEnd)[s][m] = free[s] = ready + length;
        ++next[s];
        progress = true;
      }
    }
  }
  return slots;
}

namespace {

std::string describeLayer(const cm::LayerStrategy &l, int dp) {
  std::ostringstream os;
  os << "tp" << l.tp;
  if (l.tp > 1 && dp > 1)
    os << (l.consecutive ? " (consecutive)" : " (strided)");
  os << " dp" << dp << (l.zero3 ? " zero3" : "")
     << (l.ulysses ? " ulysses" : "") << (l.checkpoint ? " checkpoint" : "");
  return os.str();
}

/// One strategy's prediction, in bytes and seconds.
struct Priced {
  std::string name;
  cm::Strategy strategy;
  bool priced = false, fits = false;
  double stepS = 0, samplesPerS = 0;
  std::vector<double> stageS, stageBytes;
  std::string verdict;
};

Priced price(const std::string &name, const cm::Strategy &s,
             const cm::GalvatronCostModel &model, const ModuleCosts &costs,
             double budgetBytes) {
  Priced p{name, s};
  cm::Estimate est;
  std::string error;
  if (!model.estimate(s, est, error)) {
    p.verdict = "not in the space: " + error;
    return p;
  }
  p.priced = true;
  p.stepS = est.timeMs / 1000;
  p.samplesPerS = s.globalBatch / p.stepS;
  p.fits = true;
  for (size_t i = 0; i < est.stageMemoryMb.size(); ++i) {
    p.stageS.push_back(est.stageTimeMs[i] / 1000);
    double bytes = (est.stageMemoryMb[i] - est.reserveMb) * kBytesPerMb;
    p.stageBytes.push_back(bytes);
    p.fits = p.fits && bytes <= budgetBytes;
  }
  return p;
}

/// Why `other` lost to `best`.
std::string verdict(const Priced &best, const Priced &other) {
  if (!other.priced)
    return other.verdict;
  char text[160];
  double slower = (other.stepS / best.stepS - 1) * 100;
  if (!other.fits)
    std::snprintf(text, sizeof(text), "does not fit%s",
                  slower > 0 ? " and is slower" : " (would be faster)");
  else
    std::snprintf(text, sizeof(text), "%.1f%% slower", slower);
  return text;
}

/// Plain data parallelism and plain tensor parallelism at the winner's
/// batch: what a user would try by hand.
std::vector<Priced> references(const cm::Strategy &best, int world,
                               const cm::GalvatronCostModel &model,
                               const ModuleCosts &costs, double budget) {
  std::vector<Priced> out;
  cm::Strategy dp = best;
  dp.pp = 1;
  dp.ppDivision = {static_cast<int>(best.layers.size())};
  dp.layers.assign(best.layers.size(), cm::LayerStrategy());
  dp.pipeline = cm::PipelineType::GPipe;
  dp.defaultZero2 = false;
  dp.vtp = 1;
  dp.vsp = dp.embedSdp = false;
  out.push_back(price("data parallel (DDP)", dp, model, costs, budget));
  cm::Strategy zero = dp;
  for (auto &l : zero.layers)
    l.zero3 = true;
  zero.embedSdp = true;
  out.push_back(price("data parallel (ZeRO-3)", zero, model, costs, budget));
  cm::Strategy tp = dp;
  for (auto &l : tp.layers)
    l.tp = world;
  tp.vtp = world;
  out.push_back(price("tensor parallel", tp, model, costs, budget));
  return out;
}

std::string svgTimeline(const Priced &best) {
  const cm::Strategy &s = best.strategy;
  std::vector<double> ms;
  for (double t : best.stageS)
    ms.push_back(t * 1000);
  auto slots = pipelineTimeline(ms, s.chunks,
                                s.pipeline == cm::PipelineType::PipeDreamFlush);
  double end = 0;
  for (auto &slot : slots)
    end = std::max(end, slot.endMs);
  const double width = 720, row = 28, left = 70;
  std::ostringstream os;
  os << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width + left + 10
     << "' height='" << row * s.pp + 30 << "' font-family='sans-serif' "
     << "font-size='11'>\n";
  for (int st = 0; st < s.pp; ++st)
    os << "<text x='4' y='" << row * st + 18 << "'>stage " << st << "</text>\n";
  for (auto &slot : slots) {
    double x = left + slot.startMs / end * width;
    double w = std::max(1.0, (slot.endMs - slot.startMs) / end * width - 1);
    os << "<rect x='" << x << "' y='" << row * slot.stage + 4 << "' width='"
       << w << "' height='" << row - 8 << "' fill='"
       << (slot.backward ? "#e8a33d" : "#4c8bd6") << "'><title>"
       << (slot.backward ? "backward" : "forward") << " micro-batch "
       << slot.microBatch << "</title></rect>\n";
    if (w > 14)
      os << "<text x='" << x + 3 << "' y='" << row * slot.stage + 18
         << "' fill='white'>" << (slot.backward ? "B" : "F") << slot.microBatch
         << "</text>\n";
  }
  os << "<text x='" << left << "' y='" << row * s.pp + 22
     << "'>one step: " << end
     << " ms (forward blue, backward orange)</text>\n</svg>\n";
  return os.str();
}

std::string svgMemory(const Priced &best, double budget) {
  const double height = 160, bar = 60, left = 50;
  double top = budget;
  for (double b : best.stageBytes)
    top = std::max(top, b);
  std::ostringstream os;
  size_t n = best.stageBytes.size();
  os << "<svg xmlns='http://www.w3.org/2000/svg' width='"
     << left + n * (bar + 20) + 120 << "' height='" << height + 40
     << "' font-family='sans-serif' "
     << "font-size='11'>\n";
  for (size_t i = 0; i < n; ++i) {
    double h = best.stageBytes[i] / top * height;
    double x = left + i * (bar + 20);
    os << "<rect x='" << x << "' y='" << 10 + height - h << "' width='" << bar
       << "' height='" << h << "' fill='#4c8bd6'/>\n<text x='" << x << "' y='"
       << height + 25 << "'>stage " << i << "</text>\n";
  }
  double y = 10 + height - budget / top * height;
  os << "<line x1='" << left - 10 << "' x2='" << left + n * (bar + 20)
     << "' y1='" << y << "' y2='" << y << "' stroke='#c0392b' "
     << "stroke-dasharray='4'/>\n<text x='" << left + n * (bar + 20) + 4
     << "' y='" << y + 4 << "' fill='#c0392b'>budget</text>\n</svg>\n";
  return os.str();
}

nlohmann::ordered_json toJson(const Priced &p, int world) {
  nlohmann::ordered_json j;
  j["name"] = p.name;
  j["fits"] = p.fits;
  j["step_time_s"] = p.stepS;
  j["samples_per_s"] = p.samplesPerS;
  j["verdict"] = p.verdict;
  const cm::Strategy &s = p.strategy;
  j["pp"] = s.pp;
  j["pp_division"] = s.ppDivision;
  j["chunks"] = s.chunks;
  j["global_batch"] = s.globalBatch;
  j["pipeline"] =
      s.pipeline == cm::PipelineType::GPipe ? "gpipe" : "pipedream_flush";
  j["vocab_tp"] = s.vtp;
  j["vocab_sp"] = s.vsp;
  j["embed_zero3"] = s.embedSdp;
  j["default_dp"] = s.defaultZero2 ? "zero2" : "ddp";
  for (auto &l : s.layers)
    j["layers"].push_back(describeLayer(l, world / s.pp / l.tp));
  for (size_t i = 0; i < p.stageS.size(); ++i)
    j["stages"].push_back(
        {{"time_s", p.stageS[i]}, {"memory_bytes", p.stageBytes[i]}});
  return j;
}

std::string markdown(const std::vector<Priced> &all, const gs::SearchResult &r,
                     const ModuleCosts &costs, int world, double budget,
                     const ExactMemory *exact, bool html) {
  const Priced &best = all.front();
  std::ostringstream os;
  char line[256];
  os << (html ? "<h1>galv-search report</h1>\n<p>"
              : "# galv-search report\n\n");
  std::snprintf(line, sizeof(line),
                "Model: %s costs on hardware '%s', %d devices, %.4g GB per "
                "device. Searched %llu candidates in %.4f s.",
                costs.native ? "native" : "Galvatron",
                costs.hardware.name.c_str(), world, budget / double(1 << 30),
                static_cast<unsigned long long>(r.candidatesWeighed),
                r.seconds);
  if (exact && exact->rejected) {
    os << line;
    std::snprintf(line, sizeof(line),
                  " %zu candidates estimated faster needed more than the "
                  "budget once lowered.",
                  exact->rejected);
  }
  os << line
     << (html ? "</p>\n<h2>Chosen</h2>\n<pre>" : "\n\n## Chosen\n\n```\n");
  std::snprintf(
      line, sizeof(line),
      "pp %d, division %s, global batch %d in %d chunks, %s, "
      "vocabulary tp %d%s%s\nstep %.4g s, %.4g samples/s\n",
      best.strategy.pp, nlohmann::json(best.strategy.ppDivision).dump().c_str(),
      best.strategy.globalBatch, best.strategy.chunks,
      best.strategy.pipeline == cm::PipelineType::GPipe ? "GPipe" : "1F1B",
      best.strategy.vtp, best.strategy.vsp ? ", vocabulary sp" : "",
      best.strategy.embedSdp ? ", embedding ZeRO-3" : "", best.stepS,
      best.samplesPerS);
  os << line;
  int layer = 0;
  for (int st = 0; st < best.strategy.pp; ++st) {
    std::snprintf(line, sizeof(line),
                  "stage %d: %.4g s per micro-batch, %.0f bytes (%.1f%% of "
                  "the budget)\n",
                  st, best.stageS[st], best.stageBytes[st],
                  100 * best.stageBytes[st] / budget);
    os << line;
    if (exact && st < static_cast<int>(exact->stageBytes.size())) {
      std::snprintf(line, sizeof(line),
                    "  lowered: %llu bytes on its largest rank (%.1f%% of "
                    "the budget)\n",
                    static_cast<unsigned long long>(exact->stageBytes[st]),
                    100 * exact->stageBytes[st] / budget);
      os << line;
    }
    for (int i = 0; i < best.strategy.ppDivision[st]; ++i, ++layer) {
      const cm::LayerStrategy &l = best.strategy.layers[layer];
      os << "  layer " << layer << ": "
         << describeLayer(l, world / best.strategy.pp / l.tp) << "\n";
    }
  }
  os << (html ? "</pre>\n" : "```\n");
  if (html)
    os << "<h2>Pipeline</h2>\n"
       << svgTimeline(best) << "<h2>Memory per stage</h2>\n"
       << svgMemory(best, budget);
  os << (html ? "<h2>Alternatives</h2>\n<table border='1' cellpadding='4'>"
                "<tr><th>strategy</th><th>step (s)</th><th>samples/s</th>"
                "<th>peak memory (bytes)</th><th>why it lost</th></tr>\n"
              : "\n## Alternatives\n\n| strategy | step (s) | samples/s | "
                "peak memory (bytes) | why it lost |\n|---|---|---|---|---|\n");
  for (size_t i = 1; i < all.size(); ++i) {
    const Priced &p = all[i];
    double peak = 0;
    for (double b : p.stageBytes)
      peak = std::max(peak, b);
    std::snprintf(line, sizeof(line),
                  html ? "<tr><td>%s</td><td>%.4g</td><td>%.4g</td><td>%.0f"
                         "</td><td>%s</td></tr>\n"
                       : "| %s | %.4g | %.4g | %.0f | %s |\n",
                  p.name.c_str(), p.stepS, p.samplesPerS, peak,
                  p.verdict.c_str());
    os << line;
  }
  os << (html ? "</table>\n" : "");
  return os.str();
}

} // namespace

LogicalResult mlir::galv::writeSearchReport(
    StringRef path, const cm::GalvatronCostModel &model,
    const ModuleCosts &costs, const gs::SearchResult &result, double memoryGB,
    const ExactMemory *exact, std::string &error) {
  int world = model.worldSize();
  double budget = memoryGB * double(1 << 30);
  std::vector<Priced> all;
  for (size_t i = 0; i < result.best.size(); ++i)
    all.push_back(price(i == 0 ? "chosen" : "runner-up " + std::to_string(i),
                        result.best[i].strategy, model, costs, budget));
  for (Priced &p :
       references(all.front().strategy, world, model, costs, budget))
    all.push_back(p);
  for (size_t i = 1; i < all.size(); ++i)
    all[i].verdict = verdict(all.front(), all[i]);
  StringRef ext = llvm::sys::path::extension(path);
  std::string text;
  if (ext == ".json") {
    nlohmann::ordered_json j;
    j["model"] = costs.native ? "native" : "galvatron";
    j["hardware"] = costs.hardware.name;
    j["world_size"] = world;
    j["memory_budget_bytes"] = budget;
    j["search_seconds"] = result.seconds;
    j["candidates_weighed"] = result.candidatesWeighed;
    j["chosen"] = toJson(all.front(), world);
    if (exact) {
      j["chosen"]["lowered_stage_memory_bytes"] = exact->stageBytes;
      j["rejected_when_lowered"] = exact->rejected;
    }
    for (size_t i = 1; i < all.size(); ++i)
      j["alternatives"].push_back(toJson(all[i], world));
    text = j.dump(2) + "\n";
  } else if (ext == ".md") {
    text = markdown(all, result, costs, world, budget, exact, false);
  } else if (ext == ".html") {
    text = "<!doctype html>\n<html><head><meta charset='utf-8'><title>"
           "galv-search report</title></head><body>\n" +
           markdown(all, result, costs, world, budget, exact, true) +
           "</body></html>\n";
  } else {
    return error = "report path '" + path.str() +
                   "' must end in .html, .md or .json",
           failure();
  }
  if (!galvatron::writeFileAtomically(path.str(), {{text.data(), text.size()}},
                                      error))
    return failure();
  return success();
}
