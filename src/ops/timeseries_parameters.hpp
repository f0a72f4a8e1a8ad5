#pragma once
// The pair-network and inversion parameters, shared by `deforma pairs`, `deforma invert` and `deforma
// pipeline` (internal header): the same names, units and bounds everywhere, bound to the library's Options.
#include <optional>
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/timeseries/invert.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace deforma::ops {

/// min-step, max-step, min-days, max-days, direction, max-pairs and any-track, with defaults read from
/// `defaults`. `help_prefix` is put before each help text ("pair network: " in the pipeline).
ParamGroup<timeseries::PairNetworkOptions> pair_network_parameters(
    const timeseries::PairNetworkOptions& defaults = {}, const std::string& help_prefix = "");

/// max-cloud and aoi: images cloudier than max-cloud % over the aoi (their masks) are left out.
std::vector<ParamDecl> cloud_selection_parameters(const std::string& help_prefix = "");

/// The cloud selection the parameters ask for; nullopt without --max-cloud. --aoi alone is an
/// InvalidArgument (it only says where --max-cloud counts).
std::optional<timeseries::CloudSelection> cloud_selection_from(const ParamValues& params);

/// regularization, robust, outlier-threshold and min-pairs, with defaults read from `defaults`.
ParamGroup<timeseries::InversionOptions> inversion_parameters(const timeseries::InversionOptions& defaults = {},
                                                              const std::string& help_prefix = "");

}  // namespace deforma::ops
