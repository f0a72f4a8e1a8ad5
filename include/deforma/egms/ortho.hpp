#pragma once
// The Ortho level (EGMS L3): vertical and east-west motion on a 100 m grid from an ascending and a
// descending dataset.
//
// 1. Every series is resampled to EGMS's common 6-day grid (days origin + 6k, origin 2014-04-03) over
//    the span both datasets cover: linear interpolation between the two acquisitions around a grid
//    date when they are at most max_gap_days apart, empty otherwise; then shifted to zero at the first
//    common grid date so that both geometries share the temporal origin.
// 2. Points are binned into cells of EPSG:3035 aligned on cell_size_m (centres at xx50 for 100 m).
// 3. Per cell and per grid date, the least-squares solution of d_i = e·los_east_i + u·los_up_i over the
//    points of both geometries (north neglected, or removed first with a GNSS model's north velocity),
//    only where both geometries are present and there are at least min_observations values.
// 4. The cell series of u and e are fitted with the EGMS model (mean velocity, acceleration, seasonality,
//    rmse). The velocity uncertainty comes from the same least squares on the points' mean velocities:
//    σ² = max(RSS/(n-2), mean of the points' mean_velocity_std²), cov = σ²(AᵀA)⁻¹.
// Outputs: <prefix>_U.tif and <prefix>_E.tif (mean velocity, EPSG:3035, cell_size_m, nodata -9999, COG),
// <prefix>_U.csv and <prefix>_E.csv in the EGMS L3 layout (pid from the cell, easting, northing,
// statistics, one YYYYMMDD column per grid date) with XML metadata beside them.
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/egms/processing.hpp"

namespace deforma::egms {

struct OrthoOptions {
  double cell_size_m = 100.0;
  int grid_origin_day = 16163;  ///< 2014-04-03 as days since 1970-01-01
  int grid_step_days = 6;
  int max_gap_days = 90;
  int min_observations = 3;     ///< values per cell and date (both geometries together)
  std::string gnss_north_path;  ///< optional GNSS model (grid or stations) giving the north velocity
  bool quicklook = false;       ///< also draw the grids as <prefix>_U.png and <prefix>_E.png
  void validate() const;
};

/// Resamples one series (values at `days`, NaN = missing) onto `grid_days` with linear interpolation
/// across gaps of at most `max_gap_days` (NaN elsewhere). The kernel of step 1.
std::vector<float> resample_series(const std::vector<int>& days, const float* values,
                                   const std::vector<int>& grid_days, int max_gap_days);

/// The common grid dates of two datasets (ascending day numbers); empty when their spans do not overlap
/// on any grid date.
std::vector<int> common_grid_days(const std::vector<int>& a_days, const std::vector<int>& b_days,
                                  const OrthoOptions& options);

/// Runs the Ortho level on an ascending and a descending product, writing the outputs under
/// `output_prefix`. Throws InvalidArgument when the two have no common grid date.
Summary run_ortho(const std::string& ascending, const std::string& descending,
                  const std::string& output_prefix, const OrthoOptions& ortho, const StreamOptions& options,
                  const RunContext& context, const io::Provenance& provenance);

}  // namespace deforma::egms
