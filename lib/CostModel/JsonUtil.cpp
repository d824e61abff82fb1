//===- JsonUtil.cpp - JSON helpers of the cost-model library --------------===//

#include "JsonUtil.h"
#include "galvatron/Support/AtomicFile.h"

#include <cmath>
#include <fstream>
#include <sstream>

namespace galvatron {
namespace costmodel {

bool loadJsonObject(const std::string &path, nlohmann::ordered_json &out,
                    std::string &error) {
  std::ifstream file(path);
  if (!file) {
    error = path + ": cannot open";
    return false;
  }
  std::stringstream text;
  text << file.rdbuf();
  out = nlohmann::ordered_json::parse(text.str(), nullptr, false);
  if (out.is_discarded()) {
    error = path + ": not valid JSON";
    return false;
  }
  if (!out.is_object()) {
    error = path + ": the top level must be a JSON object";
    return false;
  }
  return true;
}

bool saveJson(const std::string &path, const nlohmann::ordered_json &json,
              std::string &error) {
  std::string text = json.dump(4) + "\n";
  return writeFileAtomically(path, {{text.data(), text.size()}}, error);
}

bool fileExists(const std::string &path) {
  return static_cast<bool>(std::ifstream(path));
}

bool keyError(std::string &error, const std::string &path,
              const std::string &key, const std::string &reason) {
  error = path + ": key '" + key + "': " + reason;
  return false;
}

std::vector<std::string> splitKey(const std::string &key) {
  std::vector<std::string> parts(1);
  for (char c : key) {
    if (c == '_')
      parts.emplace_back();
    else
      parts.back() += c;
  }
  return parts;
}

bool parseCount(const std::string &text, int &out) {
  if (text.empty() || text.size() > 9)
    return false;
  out = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

bool positiveNumber(const nlohmann::ordered_json &value, double &out) {
  if (!value.is_number())
    return false;
  out = value.get<double>();
  return std::isfinite(out) && out > 0;
}

bool nonNegativeNumber(const nlohmann::ordered_json &value, double &out) {
  if (!value.is_number())
    return false;
  out = value.get<double>();
  return std::isfinite(out) && out >= 0;
}

} // namespace costmodel
} // namespace galvatron
