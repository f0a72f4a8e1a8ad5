#pragma once
// The filter's parameters, shared by `deforma filter` and `deforma pipeline` (internal header).
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::ops {

/// The filtering and stable-ground options (everything but input and output), bound to FilterOptions with
/// the defaults of `defaults`.
ParamGroup<filter::FilterOptions> filter_parameter_group(const filter::FilterOptions& defaults = {});
/// Their declarations.
std::vector<ParamDecl> filter_parameters(const filter::FilterOptions& defaults = {});
/// Reads them back into validated FilterOptions; throws InvalidArgument naming the parameter. With
/// `read_max_velocity` false, --max-velocity/--days are left to the caller (the pipeline applies the
/// velocity per pair, with each pair's own time span).
filter::FilterOptions filter_options_from(const ParamValues& params, bool read_max_velocity = true,
                                          const filter::FilterOptions& defaults = {});

}  // namespace deforma::ops
