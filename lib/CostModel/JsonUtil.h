//===- JsonUtil.h - JSON helpers of the cost-model library ------*- C++ -*-===//
//
// Loading, saving and checking JSON without exceptions (LLVM builds without
// them): every check names the file, the key and the reason.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_LIB_COSTMODEL_JSONUTIL_H
#define GALVATRON_LIB_COSTMODEL_JSONUTIL_H

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace galvatron {
namespace costmodel {

/// Reads `path` as one JSON object, keys in file order.
bool loadJsonObject(const std::string &path, nlohmann::ordered_json &out,
                    std::string &error);
/// Writes `json` indented by 4 (as Galvatron does), atomically.
bool saveJson(const std::string &path, const nlohmann::ordered_json &json,
              std::string &error);
bool fileExists(const std::string &path);

/// Sets `error` to "<path>: key '<key>': <reason>" and returns false.
bool keyError(std::string &error, const std::string &path,
              const std::string &key, const std::string &reason);

/// "a_b_c" -> {"a", "b", "c"}.
std::vector<std::string> splitKey(const std::string &key);
/// Decimal digits only, fits an int.
bool parseCount(const std::string &text, int &out);
bool positiveNumber(const nlohmann::ordered_json &value, double &out);
bool nonNegativeNumber(const nlohmann::ordered_json &value, double &out);

} // namespace costmodel
} // namespace galvatron

#endif // GALVATRON_LIB_COSTMODEL_JSONUTIL_H
