//===- CostInputs.h - a module's costs as the cost model's inputs -*- C++ -*-//
//
// galv-annotate-costs writes #galv.cost / #galv.model_cost; galv-search and
// galv-estimate read them back into GalvatronCostModel's inputs (profiles,
// hardware, settings). The native model rounds memory to a unit small
// enough to resolve a small model (Galvatron rounds to whole MB).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_LIB_TRANSFORMS_COSTINPUTS_H
#define GALVATRON_LIB_TRANSFORMS_COSTINPUTS_H

#include "Galv/Galv.h"
#include "galvatron/CostModel/GalvatronCostModel.h"
#include "galvatron/CostModel/Hardware.h"

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <string>

namespace mlir::galv {

/// The shape a model was imported at: micro-batch, sequence, hidden size
/// (from the first layer type's activation input [B, S, H]).
struct ImportedShape {
  int64_t batch = 0, sequence = 1, hidden = 1;
};
ImportedShape importedShape(ModuleOp module);

/// One layer type's entries in Galvatron's model profiles.
struct ProfiledLayer {
  double forwardMs = 0, parameterMb = 0, checkpointMb = 0;
  std::map<int64_t, double> activationMb; ///< Per sample, by tp degree.
};
LogicalResult
readProfiledLayer(const galvatron::costmodel::ComputationProfile &computation,
                  const galvatron::costmodel::MemoryProfile &memory,
                  StringRef computationPath, StringRef memoryPath, int index,
                  int64_t sequence, ProfiledLayer &out, std::string &error);
/// The embedding and head ("other" layers) from the profiles: forward ms per
/// sample, and per vocabulary degree parameter and activation bytes.
LogicalResult readProfiledOther(
    const galvatron::costmodel::ComputationProfile &computation,
    const galvatron::costmodel::MemoryProfile &memory,
    StringRef computationPath, StringRef memoryPath, int64_t sequence,
    double &forwardMs, SmallVectorImpl<int64_t> &degrees,
    SmallVectorImpl<int64_t> &firstParams, SmallVectorImpl<int64_t> &lastParams,
    SmallVectorImpl<int64_t> &firstActs, SmallVectorImpl<int64_t> &lastActs,
    std::string &error);

/// Everything GalvatronCostModel::init takes, for one world size.
struct ModuleCosts {
  galvatron::costmodel::HardwareSpec hardware;
  galvatron::costmodel::ComputationProfile computation;
  galvatron::costmodel::MemoryProfile memory;
  galvatron::costmodel::CostModelSettings settings;
  bool native = true;
  ImportedShape shape;
  int64_t numLayers = 0;
};

/// Bytes in the cost model's MB.
constexpr double kBytesPerMb = 1 << 20;

/// Reads the module's cost attributes and hardware for `worldSize` devices
/// (`nodes` of them; 0 = as the hardware spec says) and a memory budget
/// (GB per device; 0 = none, the unit then follows the model's size).
LogicalResult loadModuleCosts(ModuleOp module, int64_t worldSize, int64_t nodes,
                              double memoryGB, bool megatronSp,
                              ModuleCosts &out, std::string &error);

/// Writes the module's native costs as Galvatron's model profiles,
/// `dir/computation_profiling_<precision>_model.json` and
/// `dir/memory_profiling_<precision>_model.json`, which Galvatron (and
/// `model=galvatron`) read.
LogicalResult exportGalvatronProfiles(ModuleOp module, StringRef dir,
                                      std::string &error);

/// The module's strategy (#galv.plan and every layer's #galv.strategy) in
/// the cost model's terms.
LogicalResult strategyOfModule(ModuleOp module,
                               galvatron::costmodel::Strategy &out,
                               std::string &error);

} // namespace mlir::galv

#endif // GALVATRON_LIB_TRANSFORMS_COSTINPUTS_H
