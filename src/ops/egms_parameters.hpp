#pragma once
// The EGMS streaming and model parameters, shared by the egms operations (internal header).
#include "deforma/core/operation.hpp"
#include "deforma/egms/ortho.hpp"
#include "deforma/egms/processing.hpp"

namespace deforma::ops {

/// chunk-points, days-per-year, wavelength-mm and min-dates, bound to StreamOptions.
ParamGroup<egms::StreamOptions> egms_stream_parameters();

/// egms reference: the reference's position and selection, bound to ReferenceOptions (`method` and the
/// WGS84 centre are declared only: the operation reads them to choose the method and project the centre).
ParamGroup<egms::ReferenceOptions> egms_reference_parameters();

/// egms calibrate: bound to CalibrateOptions (the source follows from whether `gnss` is given).
ParamGroup<egms::CalibrateOptions> egms_calibrate_parameters();

/// egms ortho: bound to OrthoOptions.
ParamGroup<egms::OrthoOptions> egms_ortho_parameters();

}  // namespace deforma::ops
