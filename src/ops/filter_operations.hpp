#pragma once
// The filter's parameters, shared by `deforma filter` and `deforma pipeline` (internal header).
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::ops {

/// The filtering and stable-ground options (everything but input and output).
std::vector<ParamDecl> filter_parameters();
/// Reads them back into validated FilterOptions; throws InvalidArgument naming the parameter. With
/// `read_max_velocity` false, --max-velocity/--days are left to the caller (the pipeline applies the
/// velocity per pair, with each pair's own time span).
filter::FilterOptions filter_options_from(const ParamValues& params, bool read_max_velocity = true);

}  // namespace deforma::ops
