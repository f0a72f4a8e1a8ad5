#pragma once
// The filter's parameters, shared by `deforma filter` and `deforma pipeline` (internal header).
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::ops {

/// The filtering and stable-ground options (everything but input and output), bound to FilterOptions with
/// the defaults of `defaults`.
ParamGroup<filter::FilterOptions> filter_parameter_group(const filter::FilterOptions& defaults = {});
/// Their declarations.
std::vector<ParamDecl> filter_parameters(const filter::FilterOptions& defaults = {});
/// Their declarations for runs of many pairs (pipeline, survey): without --days (each pair's own time span
/// is used) and with --max-velocity described as such, in `velocity_unit`.
std::vector<ParamDecl> per_pair_filter_parameters(const filter::FilterOptions& defaults,
                                                  const std::string& velocity_unit);
/// Reads them back into validated FilterOptions; throws InvalidArgument naming the parameter. With
/// `read_max_velocity` false, --max-velocity/--days are left to the caller (the pipeline applies the
/// velocity per pair, with each pair's own time span).
filter::FilterOptions filter_options_from(const ParamValues& params, bool read_max_velocity = true,
                                          const filter::FilterOptions& defaults = {});

}  // namespace deforma::ops
