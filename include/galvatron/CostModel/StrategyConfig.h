//===- StrategyConfig.h - Galvatron's strategy file -------------*- C++ -*-===//
//
// galvatron_config_*.json as hetu-galvatron 2.4.0 writes it
// (search_engine.py save_results, config_utils.py config2strategy): pp_deg,
// tp_sizes_enc, tp_consecutive_flags, dp_types_enc, use_sp, checkpoint,
// global_bsz, chunks, pp_division, pipeline_type, default_dp_type, vtp, vsp,
// embed_sdp. Lists are comma-separated strings ("1,1,2,2").
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_COSTMODEL_STRATEGYCONFIG_H
#define GALVATRON_COSTMODEL_STRATEGYCONFIG_H

#include "galvatron/CostModel/GalvatronCostModel.h"

#include <string>

namespace galvatron {
namespace costmodel {

/// Parses the JSON text of a strategy file; `source` names it in errors.
/// default_dp_type zero3 marks every dp_types_enc 0 layer ZeRO-3.
bool parseGalvatronConfig(const std::string &text, const std::string &source,
                          Strategy &out, std::string &error);
bool readGalvatronConfig(const std::string &path, Strategy &out,
                         std::string &error);
/// The JSON text Galvatron would write for `strategy`.
std::string formatGalvatronConfig(const Strategy &strategy);

} // namespace costmodel
} // namespace galvatron

#endif // GALVATRON_COSTMODEL_STRATEGYCONFIG_H
