//===- StrategyConfig.cpp - Galvatron's strategy file ---------------------===//

#include "galvatron/CostModel/StrategyConfig.h"
#include "JsonUtil.h"

#include <fstream>
#include <sstream>

using nlohmann::ordered_json;

namespace galvatron {
namespace costmodel {

namespace {

bool readInt(const ordered_json &json, const std::string &source,
             const std::string &key, bool required, int fallback, int &out,
             std::string &error) {
  if (!json.contains(key)) {
    out = fallback;
    return !required || keyError(error, source, key, "missing");
  }
  const ordered_json &v = json[key];
  if (v.is_number_integer()) {
    out = v.get<int>();
    return true;
  }
  if (v.is_string() && parseCount(v.get<std::string>(), out))
    return true;
  return keyError(error, source, key, "must be an integer");
}

/// "1,2,2" (Galvatron's form) or a JSON array of integers.
bool readList(const ordered_json &json, const std::string &source,
              const std::string &key, bool required, std::vector<int> &out,
              std::string &error) {
  out.clear();
  if (!json.contains(key))
    return !required || keyError(error, source, key, "missing");
  const ordered_json &v = json[key];
  if (v.is_array()) {
    for (const ordered_json &e : v) {
      if (!e.is_number_integer())
        return keyError(error, source, key, "list entries must be integers");
      out.push_back(e.get<int>());
    }
    return true;
  }
  if (!v.is_string())
    return keyError(error, source, key,
                    "must be a comma-separated string of integers");
  std::stringstream items(v.get<std::string>());
  std::string item;
  while (std::getline(items, item, ',')) {
    int n = 0;
    if (!parseCount(item, n))
      return keyError(error, source, key,
                      "'" + item + "' is not a non-negative integer");
    out.push_back(n);
  }
  return true;
}

std::string join(const std::vector<int> &values) {
  std::string text;
  for (size_t i = 0; i < values.size(); ++i)
    text += (i ? "," : "") + std::to_string(values[i]);
  return text;
}

} // namespace

bool parseGalvatronConfig(const std::string &text, const std::string &source,
                          Strategy &out, std::string &error) {
  ordered_json json = ordered_json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    error = source + ": not a JSON object";
    return false;
  }
  out = Strategy();
  std::vector<int> tp, consec, dpTypes, sp, ckpt;
  int vsp = 0, embedSdp = 0;
  if (!readInt(json, source, "pp_deg", true, 1, out.pp, error) ||
      !readList(json, source, "tp_sizes_enc", true, tp, error) ||
      !readList(json, source, "tp_consecutive_flags", true, consec, error) ||
      !readList(json, source, "dp_types_enc", true, dpTypes, error) ||
      !readList(json, source, "use_sp", false, sp, error) ||
      !readList(json, source, "checkpoint", false, ckpt, error) ||
      !readInt(json, source, "global_bsz", true, 8, out.globalBatch, error) ||
      !readInt(json, source, "chunks", true, 1, out.chunks, error) ||
      !readList(json, source, "pp_division", false, out.ppDivision, error) ||
      !readInt(json, source, "vtp", false, 1, out.vtp, error) ||
      !readInt(json, source, "vsp", false, 0, vsp, error) ||
      !readInt(json, source, "embed_sdp", false, 0, embedSdp, error))
    return false;
  size_t n = tp.size();
  auto sameLength = [&](const char *key, std::vector<int> &list) {
    if (list.empty())
      list.assign(n, 0); // optional lists default to all off
    return list.size() == n ||
           keyError(error, source, key,
                    "has " + std::to_string(list.size()) +
                        " entries, tp_sizes_enc " + std::to_string(n));
  };
  if (!sameLength("tp_consecutive_flags", consec) ||
      !sameLength("dp_types_enc", dpTypes) || !sameLength("use_sp", sp) ||
      !sameLength("checkpoint", ckpt))
    return false;
  std::string pipeline = "gpipe", dpType = "ddp";
  for (auto [key, value] :
       {std::pair<const char *, std::string *>{"pipeline_type", &pipeline},
        {"default_dp_type", &dpType}}) {
    if (!json.contains(key))
      continue;
    if (!json[key].is_string())
      return keyError(error, source, key, "must be a string");
    *value = json[key].get<std::string>();
  }
  if (pipeline != "gpipe" && pipeline != "pipedream_flush")
    return keyError(error, source, "pipeline_type",
                    "'" + pipeline + "' is not gpipe or pipedream_flush");
  if (dpType != "ddp" && dpType != "zero2" && dpType != "zero3")
    return keyError(error, source, "default_dp_type",
                    "'" + dpType + "' is not ddp, zero2 or zero3");
  out.pipeline =
      pipeline == "gpipe" ? PipelineType::GPipe : PipelineType::PipeDreamFlush;
  out.defaultZero2 = dpType == "zero2";
  out.vsp = vsp != 0;
  out.embedSdp = embedSdp != 0;
  for (size_t i = 0; i < n; ++i) {
    LayerStrategy layer;
    layer.tp = tp[i];
    layer.consecutive = consec[i] != 0;
    layer.zero3 = dpTypes[i] != 0 || dpType == "zero3";
    layer.ulysses = sp[i] != 0;
    layer.checkpoint = ckpt[i] != 0;
    out.layers.push_back(layer);
  }
  return true;
}

bool readGalvatronConfig(const std::string &path, Strategy &out,
                         std::string &error) {
  std::ifstream file(path);
  if (!file) {
    error = path + ": cannot open";
    return false;
  }
  std::stringstream text;
  text << file.rdbuf();
  return parseGalvatronConfig(text.str(), path, out, error);
}

std::string formatGalvatronConfig(const Strategy &s) {
  std::vector<int> tp, consec, dpTypes, sp, ckpt;
  for (const LayerStrategy &l : s.layers) {
    tp.push_back(l.tp);
    consec.push_back(l.consecutive);
    dpTypes.push_back(l.zero3);
    sp.push_back(l.ulysses);
    ckpt.push_back(l.checkpoint);
  }
  ordered_json json;
  json["pp_deg"] = s.pp;
  json["tp_sizes_enc"] = join(tp);
  json["tp_consecutive_flags"] = join(consec);
  json["dp_types_enc"] = join(dpTypes);
  json["use_sp"] = join(sp);
  json["checkpoint"] = join(ckpt);
  json["global_bsz"] = s.globalBatch;
  json["chunks"] = s.chunks;
  json["pp_division"] = join(s.ppDivision);
  json["pipeline_type"] =
      s.pipeline == PipelineType::GPipe ? "gpipe" : "pipedream_flush";
  json["default_dp_type"] = s.defaultZero2 ? "zero2" : "ddp";
  json["vtp"] = s.vtp;
  json["vsp"] = s.vsp ? 1 : 0;
  json["embed_sdp"] = s.embedSdp ? 1 : 0;
  return json.dump(4) + "\n";
}

} // namespace costmodel
} // namespace galvatron
