//===- StrategyApplication.cpp - a whole strategy onto a module -----------===//
//
// Galvatron's strategy file stores per-layer lists as comma-separated
// strings ("1,1,2,2") and scalars as numbers; both JSON arrays and numbers
// in strings are accepted here too, since hand-written files vary.
//
//===----------------------------------------------------------------------===//

#include "StrategyApplication.h"

#include "Galv/Galv.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <nlohmann/json.hpp>

using namespace mlir;
using namespace mlir::galv;

namespace {

/// A list key: "1,2,4", [1, 2, 4] or a single number.
FailureOr<SmallVector<int64_t>> intList(const nlohmann::json &value,
                                        StringRef key, std::string &error) {
  SmallVector<int64_t> out;
  auto bad = [&] {
    error = ("key '" + key +
             "' must be a list of integers (\"1,2\" or "
             "[1, 2]), got " +
             value.dump())
                .str();
    return failure();
  };
  if (value.is_number_integer()) {
    out.push_back(value.get<int64_t>());
  } else if (value.is_array()) {
    for (const auto &v : value) {
      if (!v.is_number_integer())
        return bad();
      out.push_back(v.get<int64_t>());
    }
  } else if (value.is_string()) {
    SmallVector<StringRef> parts;
    StringRef(value.get_ref<const std::string &>()).split(parts, ',');
    for (StringRef part : parts) {
      int64_t v;
      if (part.trim().getAsInteger(10, v))
        return bad();
      out.push_back(v);
    }
  } else {
    return bad();
  }
  return out;
}

FailureOr<int64_t> intValue(const nlohmann::json &value, StringRef key,
                            std::string &error) {
  auto list = intList(value, key, error);
  if (failed(list))
    return failure();
  if (list->size() != 1) {
    error =
        ("key '" + key + "' must be one integer, got " + value.dump()).str();
    return failure();
  }
  return (*list)[0];
}

/// Galvatron's per-layer switches (ZeRO-3, Ulysses, recompute, consecutive
/// TP groups) are 0 or 1; anything else is a typo, not a strategy.
/// `name` says where the values came from ("key 'use_sp'", "option 'sdp'").
} // namespace

LogicalResult mlir::galv::checkSwitches(ArrayRef<int64_t> values,
                                        const std::string &name,
                                        std::string &error) {
  for (auto [layer, value] : llvm::enumerate(values))
    if (value != 0 && value != 1) {
      error = name + " has " + std::to_string(value) +
              (values.size() > 1 ? " for layer " + std::to_string(layer)
                                 : std::string()) +
              "; it must be 0 or 1";
      return failure();
    }
  return success();
}

LogicalResult mlir::galv::parseGalvatronConfig(StringRef text, StringRef path,
                                               bool megatronSp, StrategySpec &s,
                                               std::string &error) {
  s.fromConfig = true;
  nlohmann::json json = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    error = (path + ": not a JSON object").str();
    return failure();
  }
  static const char *known[] = {
      "pp_deg",      "tp_sizes_enc",  "tp_consecutive_flags", "dp_types_enc",
      "use_sp",      "checkpoint",    "global_bsz",           "chunks",
      "pp_division", "pipeline_type", "default_dp_type",      "vtp",
      "vsp",         "embed_sdp"};
  for (auto it = json.begin(); it != json.end(); ++it)
    if (!llvm::is_contained(known, it.key())) {
      error = (path + ": unknown key '" + it.key() + "'").str();
      return failure();
    }
  auto need = [&](const char *key) -> const nlohmann::json * {
    if (!json.contains(key)) {
      error = (path + ": missing key '" + key + "'").str();
      return nullptr;
    }
    return &json[key];
  };
  auto getInt = [&](const char *key, int64_t &out) -> LogicalResult {
    const nlohmann::json *v = need(key);
    if (!v)
      return failure();
    auto value = intValue(*v, key, error);
    if (failed(value))
      return error = (path + ": " + error).str(), failure();
    out = *value;
    return success();
  };
  auto getList = [&](const char *key,
                     SmallVector<int64_t> &out) -> LogicalResult {
    const nlohmann::json *v = need(key);
    if (!v)
      return failure();
    auto value = intList(*v, key, error);
    if (failed(value))
      return error = (path + ": " + error).str(), failure();
    out = *value;
    return success();
  };
  auto getString = [&](const char *key, std::string &out) -> LogicalResult {
    const nlohmann::json *v = need(key);
    if (!v)
      return failure();
    if (!v->is_string()) {
      error = (path + ": key '" + key + "' must be a string").str();
      return failure();
    }
    out = v->get<std::string>();
    return success();
  };
  SmallVector<int64_t> dpTypes, useSp;
  int64_t vsp = 0, embedSdp = 0;
  if (failed(getInt("pp_deg", s.pp)) || failed(getList("tp_sizes_enc", s.tp)) ||
      failed(getList("tp_consecutive_flags", s.tpConsec)) ||
      failed(getList("dp_types_enc", dpTypes)) ||
      failed(getList("use_sp", useSp)) ||
      failed(getList("checkpoint", s.checkpoint)) ||
      failed(getInt("global_bsz", s.globalBatch)) ||
      failed(getInt("chunks", s.chunks)) ||
      failed(getList("pp_division", s.ppDivision)) ||
      failed(getString("pipeline_type", s.pipeline)) ||
      failed(getString("default_dp_type", s.dpType)) ||
      failed(getInt("vtp", s.vocabTp)) || failed(getInt("vsp", vsp)) ||
      failed(getInt("embed_sdp", embedSdp)))
    return failure();
  for (auto [key, values] : {std::pair<const char *, ArrayRef<int64_t>>{
                                 "tp_consecutive_flags", s.tpConsec},
                             {"dp_types_enc", dpTypes},
                             {"use_sp", useSp},
                             {"checkpoint", s.checkpoint},
                             {"vsp", vsp},
                             {"embed_sdp", embedSdp}})
    if (failed(checkSwitches(values, "key '" + std::string(key) + "'", error)))
      return error = (path + ": " + error).str(), failure();
  // Galvatron always writes the batch; 0 would silently mean "imported".
  if (s.globalBatch < 1)
    return error = (path + ": key 'global_bsz' has " + Twine(s.globalBatch) +
                    "; it must be at least 1")
                       .str(),
           failure();
  s.sdp = dpTypes;
  // Galvatron's use_sp: the layer's tp degree runs Ulysses instead.
  for (int64_t flag : useSp)
    s.sp.push_back(flag ? "ulysses" : megatronSp ? "megatron" : "none");
  // The embedding and head have no attention: their sequence parallelism
  // is Megatron's.
  s.vocabSp = vsp ? "megatron" : "none";
  s.embedSdp = embedSdp != 0;
  return success();
}

namespace {

template <typename T>
FailureOr<SmallVector<T>> perLayer(ArrayRef<T> values, const T &fallback,
                                   int64_t layers, StringRef name,
                                   std::string &error) {
  if (values.empty())
    return SmallVector<T>(layers, fallback);
  if (values.size() == 1)
    return SmallVector<T>(layers, values[0]);
  if (static_cast<int64_t>(values.size()) != layers) {
    error = (name + " has " + Twine(values.size()) +
             " entries but the model has " + Twine(layers) + " layers")
                .str();
    return failure();
  }
  return SmallVector<T>(values.begin(), values.end());
}

/// Fills an empty division with the even split and checks that it covers
/// every layer with non-empty stages.
LogicalResult resolveDivision(StrategySpec &s, int64_t layers,
                              std::string &error) {
  // An empty or negative stage would leave layers without a strategy.
  for (auto [stage, count] : llvm::enumerate(s.ppDivision))
    if (count < 1)
      return error = std::string(s.fromConfig ? "key 'pp_division'"
                                              : "option 'pp-division'") +
                     " gives stage " + std::to_string(stage) + " " +
                     std::to_string(count) +
                     " layers; every stage needs at least one",
             failure();
  if (s.ppDivision.empty()) {
    if (layers % s.pp != 0)
      return error = (Twine(layers) + " layers do not split evenly into pp = " +
                      Twine(s.pp) + " stages; give pp_division")
                         .str(),
             failure();
    s.ppDivision.assign(s.pp, layers / s.pp);
  }
  int64_t covered = 0;
  for (int64_t c : s.ppDivision)
    covered += c;
  if (static_cast<int64_t>(s.ppDivision.size()) != s.pp || covered != layers)
    return error = ("pp_division covers " + Twine(covered) + " layers in " +
                    Twine(s.ppDivision.size()) + " stages; the model has " +
                    Twine(layers) + " layers and pp = " + Twine(s.pp))
                       .str(),
           failure();
  return success();
}

/// The imported batch and sequence length (the first input of @forward), 0
/// and 1 when unknown.
std::pair<int64_t, int64_t> importedBatchAndSequence(ModuleOp module) {
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  if (forward && forward.getNumArguments() > 0)
    if (auto t = dyn_cast<RankedTensorType>(forward.getArgumentTypes()[0]))
      if (t.getRank() > 0)
        return {t.getDimSize(0), t.getRank() > 1 ? t.getDimSize(1) : 1};
  return {0, 1};
}

/// The global batch: chunks micro-batches of the imported batch.
LogicalResult resolveBatch(StrategySpec &s, int64_t imported,
                           std::string &error) {
  if (s.chunks < 1)
    return error = ("chunks must be at least 1, got " + Twine(s.chunks)).str(),
           failure();
  if (s.globalBatch == 0)
    s.globalBatch = imported * s.chunks;
  if (imported && s.globalBatch != imported * s.chunks)
    return error = ("global batch " + Twine(s.globalBatch) + " is not " +
                    Twine(s.chunks) + " chunks x the imported batch " +
                    Twine(imported) +
                    " (import with --batch-size global_bsz / chunks)")
                       .str(),
           failure();
  return success();
}

/// The per-layer lists, expanded to one entry per layer.
struct LayerLists {
  SmallVector<int64_t> tp, consec, sdp, checkpoint;
  SmallVector<std::string> sp;
};

LogicalResult expandLists(const StrategySpec &s, int64_t n, LayerLists &out,
                          std::string &error) {
  auto tps = perLayer<int64_t>(s.tp, 1, n, "tp", error);
  auto consec =
      perLayer<int64_t>(s.tpConsec, 1, n, "tp_consecutive_flags", error);
  auto sdps = perLayer<int64_t>(s.sdp, 0, n, "dp_types_enc", error);
  auto ckpts = perLayer<int64_t>(s.checkpoint, 0, n, "checkpoint", error);
  auto sps = perLayer<std::string>(s.sp, "none", n, "use_sp", error);
  if (failed(tps) || failed(consec) || failed(sdps) || failed(ckpts) ||
      failed(sps))
    return failure();
  out = {*tps, *consec, *sdps, *ckpts, *sps};
  return success();
}

/// The #galv.strategy of every layer, checked against the stage's devices,
/// the imported batch and the sequence.
LogicalResult layerStrategies(MLIRContext *context, const StrategySpec &s,
                              const LayerLists &lists, DataParallelKind dpKind,
                              int64_t imported, int64_t sequence,
                              SmallVector<StrategyAttr> &out,
                              std::string &error) {
  int64_t perStage = s.worldSize / s.pp;
  int64_t layer = 0;
  for (auto [stage, count] : llvm::enumerate(s.ppDivision))
    for (int64_t i = 0; i < count; ++i, ++layer) {
      int64_t t = lists.tp[layer];
      if (t < 1 || perStage % t != 0)
        return error = ("layer " + Twine(layer) + ": tp = " + Twine(t) +
                        " does not divide the " + Twine(perStage) +
                        " devices per stage")
                           .str(),
               failure();
      int64_t d = perStage / t;
      auto sp = symbolizeSequenceParallelKind(lists.sp[layer]);
      if (!sp)
        return error = "layer " + std::to_string(layer) + ": sp '" +
                       lists.sp[layer] + "' is not none, megatron or ulysses",
               failure();
      DataParallelKind kind =
          lists.sdp[layer] ? DataParallelKind::zero3 : dpKind;
      if (d == 1)
        kind = DataParallelKind::ddp;
      if (imported && imported % d != 0)
        return error =
                   ("layer " + Twine(layer) + ": the imported batch " +
                    Twine(imported) + " does not split over dp = " + Twine(d))
                       .str(),
               failure();
      if (*sp != SequenceParallelKind::none && t == 1)
        *sp = SequenceParallelKind::none;
      if (*sp != SequenceParallelKind::none && sequence % t != 0)
        return error = ("layer " + Twine(layer) + ": sequence parallelism " +
                        "needs the sequence of " + Twine(sequence) +
                        " to split over tp = " + Twine(t))
                           .str(),
               failure();
      out.push_back(StrategyAttr::get(context, t, d, lists.consec[layer] != 0,
                                      kind, *sp, lists.checkpoint[layer] != 0,
                                      stage));
    }
  return success();
}

/// The embedding and head: the sequence parallelism of the vocabulary tp
/// and its batch split.
LogicalResult checkVocabulary(const StrategySpec &s, int64_t imported,
                              int64_t sequence, std::string &error) {
  int64_t perStage = s.worldSize / s.pp;
  if (s.vocabSp == "megatron" && s.vocabTp > 1 && sequence % s.vocabTp != 0)
    return error = ("vocabulary sequence parallelism needs the sequence of " +
                    Twine(sequence) +
                    " to split over vocab tp = " + Twine(s.vocabTp))
                       .str(),
           failure();
  if (imported && imported % (perStage / s.vocabTp) != 0)
    return error = ("the imported batch " + Twine(imported) +
                    " does not split over the embedding's dp = " +
                    Twine(perStage / s.vocabTp))
                       .str(),
           failure();
  return success();
}

} // namespace

LogicalResult mlir::galv::applyStrategySpec(ModuleOp module, StrategySpec s,
                                            std::string &error) {
  SmallVector<LayerOp> layers;
  module.walk([&](LayerOp layer) { layers.push_back(layer); });
  int64_t n = layers.size();
  if (n == 0)
    return error = "the module has no layer instances (galv.layer); "
                   "apply the strategy before inlining",
           failure();
  if (s.worldSize < 1 || s.pp < 1 || s.worldSize % s.pp != 0)
    return error = ("pp = " + Twine(s.pp) + " does not divide world size " +
                    Twine(s.worldSize))
                       .str(),
           failure();
  LayerLists lists;
  if (failed(resolveDivision(s, n, error)) ||
      failed(expandLists(s, n, lists, error)))
    return failure();
  auto dpKind = symbolizeDataParallelKind(s.dpType);
  if (!dpKind)
    return error =
               "default dp type '" + s.dpType + "' is not ddp, zero2 or zero3",
           failure();
  auto schedule = symbolizePipelineSchedule(
      s.pipeline == "1f1b" ? std::string("pipedream_flush") : s.pipeline);
  if (!schedule)
    return error = "pipeline type '" + s.pipeline +
                   "' is not gpipe or pipedream_flush",
           failure();
  auto vocabSp = symbolizeSequenceParallelKind(s.vocabSp);
  if (!vocabSp)
    return error = "vocabulary sp '" + s.vocabSp + "' is not none or megatron",
           failure();
  auto [imported, sequence] = importedBatchAndSequence(module);
  MLIRContext *context = module.getContext();
  SmallVector<StrategyAttr> strategies;
  // Checked in the order a user fixes them: the degrees, the batch, each
  // layer, then the embedding's split.
  int64_t perStage = s.worldSize / s.pp;
  if (s.vocabTp < 1 || perStage % s.vocabTp != 0)
    return error = ("vocab tp = " + Twine(s.vocabTp) + " does not divide the " +
                    Twine(perStage) + " devices per stage")
                       .str(),
           failure();
  if (failed(resolveBatch(s, imported, error)) ||
      failed(layerStrategies(context, s, lists, *dpKind, imported, sequence,
                             strategies, error)) ||
      failed(checkVocabulary(s, imported, sequence, error)))
    return failure();
  for (auto [layer, strategy] : llvm::zip_equal(layers, strategies))
    layer.setStrategyAttr(strategy);
  module->setAttr(
      GalvDialect::getPlanAttrName(),
      PlanConfigAttr::get(context, s.worldSize, s.pp, s.ppDivision, s.chunks,
                          s.globalBatch, *schedule, *dpKind, s.vocabTp,
                          s.vocabTp > 1 ? *vocabSp : SequenceParallelKind::none,
                          s.embedSdp));
  return success();
}
