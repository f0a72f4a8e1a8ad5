#pragma once
// Co-seismic offsets along a fault trace. Every `spacing_m` along the trace, the cells within a box
// `width_m` wide (along strike) and `length_m` long (across, centred on the trace) are stacked into one
// profile; on each side, outside a near-fault zone, a robust straight line (value against distance to the
// trace) is fitted to each displacement component and extrapolated to the trace. The offset is the left
// side's intercept minus the right side's (left and right looking along the trace's direction), projected
// on the local strike (fault-parallel: positive = right-lateral, whichever way the trace was digitised) and
// on its normal (fault-perpendicular: positive = shortening across the fault). With east only, the
// fault-parallel offset assumes motion along the trace (pure strike-slip) and the perpendicular one is not
// measured.
//
// The kernel works on samples in a local metric frame; fault_profile() reads a raster and a trace file,
// builds that frame (an azimuthal equidistant projection at the trace for geographic CRSs) and writes a
// CSV, a GeoPackage of profile lines with their offsets and a PNG of the offset along strike.
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/grid.hpp"
#include "deforma/core/summary.hpp"

namespace deforma {
struct RunContext;
}

namespace deforma::filter {

struct FaultProfileOptions {
  double spacing_m = 2000;    ///< between profile centres along the trace (S)
  double width_m = 1000;      ///< along strike, over which cells are stacked (W)
  double length_m = 10000;    ///< across the trace, centred on it (L)
  double near_fault_m = 500;  ///< excluded on each side of the trace (damage zone, decorrelation)
  int min_points = 20;        ///< per side, else the profile has no offset
  double robust_k = 3.0;      ///< robust fit: reject residuals beyond this many NMADs
  int robust_iterations = 5;

  /// Throws InvalidArgument naming the parameter (--spacing, --width, --length, --near-fault...).
  void validate() const;
};

/// Displacement samples in a local metric frame (x east, y north, metres); `north` empty = east only.
struct FieldSamples {
  std::vector<double> x_m, y_m, east, north;
};

struct ProfileOffset {
  int index = 0;
  double distance_m = 0;                    ///< of the profile centre along the trace from its first vertex
  std::array<double, 2> centre_m{};         ///< in the metric frame
  double strike_deg = 0;                    ///< azimuth of the trace direction, clockwise from north
  double parallel = 0, sigma_parallel = 0;  ///< NaN when not measured
  double perpendicular = 0, sigma_perpendicular = 0;  ///< NaN when not measured (east only)
  double east = 0, sigma_east = 0;
  double north = 0, sigma_north = 0;  ///< NaN when east only
  int points_left = 0, points_right = 0;
  std::string status = "ok";  ///< "ok", or why there is no offset ("too few points on the left side"...)
};

/// Offsets along `trace_m` (vertices in the metric frame of `samples`). Throws InvalidArgument when the
/// trace has fewer than two distinct vertices.
std::vector<ProfileOffset> profile_offsets(const std::vector<std::array<double, 2>>& trace_m,
                                           const FieldSamples& samples, const FaultProfileOptions& options);

/// Which way an automatic trace runs: east-west (searched in columns), north-south (in rows), or the
/// sharper of the two.
enum class TraceDirection { kAuto, kEastWest, kNorthSouth };
TraceDirection parse_trace_direction(const std::string& text);

/// The fault traced automatically as the ridge of the displacement step. In bands `step` cells wide (columns
/// for a trace running east-west, rows for one running north-south), every position across is scored by the
/// difference of the medians of the `half_window` cells on either side over their scatter; the ridge is the
/// best path through the bands (dynamic programming, a jump of 10 cells costing a typical band's best
/// score), without the bands at either end where it has no real step. Vertices in pixel coordinates
/// (col, row) of the grid; empty when no band had data on both sides. For a fault crossing the raster within
/// 45 degrees of one of its axes; with kAuto, the orientation whose ridge is sharper.
std::vector<std::array<double, 2>> ridge_trace(const GridF& values, const GridU8& valid, int step,
                                               int half_window,
                                               TraceDirection direction = TraceDirection::kAuto);

struct FaultProfileRun {
  std::string input;       ///< displacement raster
  std::string east_band;   ///< description or 1-based index; empty = "east_m", else band 1 of a one-band file
  std::string north_band;  ///< empty = "north_m" when present, else east only; "none" = east only
  std::string trace;       ///< vector file with the trace (the longest line); empty = ridge_trace()
  TraceDirection trace_direction = TraceDirection::kAuto;  ///< of the automatic trace
  std::string output_csv;
  std::string output_gpkg;  ///< empty = none
  std::string output_plot;  ///< empty = none
  FaultProfileOptions options;
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();
};

/// Reads, profiles and writes (all outputs committed together by the caller's io::run_operation).
/// Summary counts: profiles, measured; details: components, median_parallel, unit.
Summary fault_profile(const FaultProfileRun& run, RunContext& context);

}  // namespace deforma::filter
