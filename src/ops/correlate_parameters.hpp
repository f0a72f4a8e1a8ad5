#pragma once
// The correlation parameters, shared by `deforma correlate` and `deforma pipeline` (internal header): the
// same names, units and bounds in both, bound to CorrelateOptions.
#include <string>

#include "deforma/core/operation.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::ops {

/// method, chip, search, step, prefilter, shape and band, with defaults read from `defaults`. `help_prefix`
/// is put before each help text ("correlation: " in the pipeline). `search` is declared, not bound: its value
/// may carry a unit and is read with search_px().
ParamGroup<correlate::CorrelateOptions> correlation_parameters(const correlate::CorrelateOptions& defaults,
                                                               const std::string& help_prefix = "");

/// min-snr and min-corr, the quality thresholds of `deforma correlate` (the pipeline leaves them to its
/// filter stage), bound to CorrelateOptions::match.
ParamGroup<correlate::CorrelateOptions> correlation_thresholds(const correlate::CorrelateOptions& defaults);

/// The `search` parameter in pixels: "20", "20px", or a length ("300m", "1.5km") converted with the pixel
/// size of `grid`. Throws InvalidArgument naming the parameter and its bounds when outside them.
/// --input-kind, --grid-crs, --grid-resolution, --gcp-transform (correlate/sar.hpp).
ParamGroup<correlate::CorrelateOptions> map_grid_parameters(const correlate::CorrelateOptions& defaults);

int search_px(const ParamValues& params, const io::RasterInfo& grid);

/// True when `search` is given in pixels (no grid is needed to read it).
bool search_in_pixels(const ParamValues& params);

}  // namespace deforma::ops
