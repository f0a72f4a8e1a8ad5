#pragma once
// The parameters of the pipeline's work units (internal header): every field of the options a unit runs
// with, as one ParamGroup, so that a unit's parameter JSON (and with it its cache key) is written from the
// declarations rather than field by field. The fields the correlate and filter operations bind come under
// the same names as there (a test checks that each of those parameters reaches the unit's key); the fields
// they read by hand (a search length, a region, dates) or keep to themselves (sub-pixel method, iteration
// counts) follow.
#include "deforma/core/operation.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::pipeline {

/// Every field of CorrelateOptions: the correlate operation's parameters, then the others.
const ParamGroup<correlate::CorrelateOptions>& correlate_unit_parameters();

/// Every field of FilterOptions: the filter operation's parameters, then the others.
const ParamGroup<filter::FilterOptions>& filter_unit_parameters();

}  // namespace deforma::pipeline
