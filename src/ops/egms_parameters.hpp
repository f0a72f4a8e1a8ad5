#pragma once
// The EGMS streaming and model parameters, shared by the egms operations (internal header).
#include "deforma/core/operation.hpp"
#include "deforma/egms/processing.hpp"

namespace deforma::ops {

/// chunk-points, days-per-year, wavelength-mm and min-dates, bound to StreamOptions.
ParamGroup<egms::StreamOptions> egms_stream_parameters();

}  // namespace deforma::ops
