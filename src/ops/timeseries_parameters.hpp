#pragma once
// The pair-network and inversion parameters, shared by `deforma pairs`, `deforma invert` and `deforma
// pipeline` (internal header): the same names, units and bounds everywhere, bound to the library's Options.
#include <string>

#include "deforma/core/operation.hpp"
#include "deforma/timeseries/invert.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace deforma::ops {

/// min-step, max-step, min-days, max-days, direction, max-pairs and any-track, with defaults read from
/// `defaults`. `help_prefix` is put before each help text ("pair network: " in the pipeline).
ParamGroup<timeseries::PairNetworkOptions> pair_network_parameters(
    const timeseries::PairNetworkOptions& defaults = {}, const std::string& help_prefix = "");

/// regularization, robust, outlier-threshold and min-pairs, with defaults read from `defaults`.
ParamGroup<timeseries::InversionOptions> inversion_parameters(const timeseries::InversionOptions& defaults = {},
                                                              const std::string& help_prefix = "");

}  // namespace deforma::ops
