#pragma once
// The bound parameters of the workflow operations (internal header): decompose, decompose-series and
// fault-profile.
#include "deforma/core/operation.hpp"
#include "deforma/filter/fault_profile.hpp"
#include "deforma/timeseries/decompose.hpp"

namespace deforma::ops {

/// decompose: max-condition and north-zero, bound to DecomposeOptions (the products and their bands,
/// sigmas and geometries are lists read by the operation).
ParamGroup<timeseries::DecomposeOptions> decompose_parameters();

/// decompose-series: regularization, max-condition and north-zero, bound to SeriesOptions.
ParamGroup<timeseries::SeriesOptions> decompose_series_parameters();

/// fault-profile: the profile geometry and the line fits, bound to FaultProfileOptions.
ParamGroup<filter::FaultProfileOptions> fault_profile_parameters();

}  // namespace deforma::ops
