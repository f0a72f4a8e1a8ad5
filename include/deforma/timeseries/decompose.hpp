#pragma once
// 3-D displacement from several geometries: each measurement is the projection of the ground motion
// (east, north, up) on a known unit vector (optical east/north offsets: (1,0,0) and (0,1,0); InSAR or
// SAR-offset line of sight: the ground-to-sensor vector), with its standard deviation. Per cell, the
// measurements are combined by weighted least squares into E, N, U with their standard deviations from the
// covariance. A component the geometries present cannot see (it has a part in the null space of their
// directions, or lies along a direction weaker than the condition limit) is left nodata with a flag saying
// why. Where only horizontal motion is measured, U may come from the surface-parallel flow assumption:
// U = E dz/dx + N dz/dy with the slope of a DEM (landslides, glaciers).
//
// The kernel works on grids in memory (one window of the common grid); decompose_rasters streams it over
// files, resampling every input onto the common grid.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/grid.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/timeseries/invert.hpp"

namespace deforma {
struct RunContext;
}

namespace deforma::timeseries {

/// Flag bits of a decomposed cell (the `flags` band; 0 = all three components resolved by measurements).
namespace decompose_flag {
inline constexpr std::uint8_t kNoData = 1;           ///< no valid measurement at all
inline constexpr std::uint8_t kEastUnresolved = 2;   ///< east not seen by the geometries present
inline constexpr std::uint8_t kNorthUnresolved = 4;  ///< north not seen by the geometries present
inline constexpr std::uint8_t kUpUnresolved = 8;     ///< up not seen (and no surface-parallel estimate)
/// Directions exist but are nearly parallel: the weakest was dropped (condition above the limit).
inline constexpr std::uint8_t kIllConditioned = 16;
inline constexpr std::uint8_t kUpFromSlope = 32;  ///< up from the surface-parallel flow assumption
}  // namespace decompose_flag

/// Unit vector from the ground to a side-looking SAR sensor (east, north, up) for an incidence angle and a
/// heading (track angle, clockwise from north), both in degrees; right-looking, as Sentinel-1 and EGMS
/// (ascending heading ~ -10 deg: the vector points west and up).
std::array<double, 3> los_unit_vector(double incidence_deg, double heading_deg);

/// One measured quantity on a window of the common grid: its values, validity, standard deviation and the
/// unit vector (east, north, up) it is measured along, per cell. `geometry` numbers the product it comes
/// from (an optical pair's east and north share one): cells count distinct geometries.
struct Observation {
  std::string label;
  GridF value;
  GridU8 valid;
  GridF sigma;  ///< > 0 and finite where usable
  GridF east, north, up;
  int geometry = 0;
};

struct DecomposeOptions {
  /// Directions whose singular value is below the largest over this ratio are taken as missing: the
  /// components along them are left nodata (flag kIllConditioned). The condition number is that of the
  /// unweighted geometry (unit vectors), so that it describes the viewing geometry, not the noise.
  double max_condition = 50.0;
  /// Neglect north, as EGMS Ortho does with an ascending and a descending geometry alone: the north part of
  /// every direction is dropped, east and up are solved from the rest, north is left nodata (flag 4).
  bool north_zero = false;
  void validate() const;
};

/// One cell's solution.
struct CellSolution {
  std::array<double, 3> enu{};     ///< NaN where unresolved
  std::array<double, 3> sigma{};   ///< NaN where unresolved
  std::array<double, 3> cov_en{};  ///< var(E), cov(E,N), var(N): for the surface-parallel U
  double condition = 0;            ///< NaN when fewer than three independent directions
  int geometries = 0;
  std::uint8_t flags = 0;
};

/// A row of the system: value = direction . (E, N, U), with standard deviation sigma.
struct CellRow {
  std::array<double, 3> direction{};
  double value = 0;
  double sigma = 1;
  int geometry = 0;
};

/// Solves one cell (weighted least squares through the SVD of the weighted geometry).
CellSolution solve_cell(const std::vector<CellRow>& rows, const DecomposeOptions& options);

/// The decomposed window: one grid per output band (NaN = nodata) and the flags.
struct DecomposedWindow {
  GridF east, north, up, sigma_east, sigma_north, sigma_up, geometries, condition;
  GridU8 flags;
};

/// Slope of the DEM on the window's cells (dz/dx towards east, dz/dy towards north, metres per metre),
/// for the surface-parallel assumption; empty grids = not used.
struct Slope {
  GridF dz_dx, dz_dy;
  GridU8 valid;
};

/// Decomposes every cell of a window. All observations must share the window's size.
DecomposedWindow decompose(const std::vector<Observation>& observations, const Slope& slope,
                           const DecomposeOptions& options);

/// Slope from DEM heights read with one cell of margin on every side ((w+2) x (h+2)), on a north-up grid
/// whose cells are `dx_m` by `dy_m` metres. Central differences; invalid where a neighbour is.
Slope slope_from_dem(const GridF& dem_with_margin, const GridU8& valid_with_margin, double dx_m, double dy_m);

// ---- Per date (4-D) ----

/// One pair measurement of the joint inversion: the displacement between dates `ref` and `sec` (indices
/// into the decomposer's dates) projected on its geometry's unit vector.
struct SeriesPair {
  int ref = 0;
  int sec = 0;
};

struct SeriesOptions {
  /// Weight of the velocity-change penalty (as `invert`'s --regularization), relative to a pair of the
  /// median standard deviation of the cell: bridges dates that no pair of some geometry reaches.
  double regularization = 0.05;
  DecomposeOptions geometry;  ///< resolvability (condition limit, north neglected)
  /// Outlier pairs: none (weighted least squares), or iteratively reweighted least squares with Huber's or
  /// Tukey's weights on the residuals normalised by each pair's sigma and by their robust scale (1.4826 x
  /// their median absolute value, at least kSeriesMinRobustScale).
  RobustLoss robust = RobustLoss::kNone;
  void validate() const;
};

/// Floor of the robust scale of the normalised residuals: residuals within a tenth of their own sigma are
/// never taken for outliers, even where the other pairs fit exactly.
inline constexpr double kSeriesMinRobustScale = 0.1;

/// With a robust loss, a pair whose final weight is below this is counted as downweighted (not kept): it
/// no longer counts among the cell's valid pairs. Half weight: Huber's weight halves at twice its
/// threshold, Tukey's at 0.64 of its cut-off.
inline constexpr double kSeriesKeptWeight = 0.5;

/// One cell's series: displacement since the first date per component (NaN where unresolved), 1-sigma,
/// and the linear velocity per year fitted through it.
struct CellSeries {
  std::array<std::vector<double>, 3> displacement;
  std::array<std::vector<double>, 3> sigma;
  std::array<double, 3> velocity_per_yr{};
  std::array<double, 3> velocity_sigma_per_yr{};
  int pairs_used = 0;  ///< valid pairs of the cell (finite value, positive sigma), downweighted ones included
  /// With a robust loss: pairs whose final weight is below kSeriesKeptWeight (pairs_used minus these are
  /// the pairs kept).
  int pairs_downweighted = 0;
  int geometries = 0;
  double condition = 0;
  std::uint8_t flags = 0;  ///< decompose_flag bits
};

/// MSBAS-style joint inversion (Samsonov & d'Oreye 2012): pairs from several geometries and sensors, each
/// the projection of the 3-D displacement between its dates, inverted together for the velocities of the
/// intervals between consecutive dates of the union of dates, in the span of the directions the cell's
/// geometries resolve, with invert's weak penalty on velocity changes. Thread-safe (solve is const).
class SeriesDecomposer {
 public:
  /// Dates strictly increasing (at least two), pairs on distinct dates in range; InvalidArgument otherwise.
  SeriesDecomposer(std::vector<io::Date> dates, std::vector<SeriesPair> pairs, SeriesOptions options = {});

  /// Solves one cell: per pair its value, standard deviation (non-finite or <= 0: pair invalid here),
  /// unit vector and geometry number.
  CellSeries solve(const std::vector<double>& values, const std::vector<double>& sigmas,
                   const std::vector<std::array<double, 3>>& directions,
                   const std::vector<int>& geometries) const;

  const std::vector<io::Date>& dates() const { return dates_; }

 private:
  std::vector<io::Date> dates_;
  std::vector<SeriesPair> pairs_;
  SeriesOptions options_;
  std::vector<double> interval_days_;
  double tau_days_ = 1;
};

// ---- Files ----

/// An optical displacement or velocity product (deforma correlate): east and north bands found by
/// description or 1-based index, with a constant standard deviation or a band's.
struct OpticalInput {
  std::string path;
  std::string east_band = "east_m";
  std::string north_band = "north_m";
  std::string sigma = "0.5";  ///< a number (same unit as the values) or a band name/index
};

/// A line-of-sight product: its value band; its unit vector from bands (los_east/los_north/los_up), from
/// incidence/heading bands, or from constants; its standard deviation from a band or a constant.
struct LosInput {
  std::string path;
  std::string band = "1";
  /// "E,N,U" constants, "INCIDENCE/HEADING" constants in degrees, "bands" (bands described los_east,
  /// los_north, los_up), or "angles" (bands incidence_deg and heading_deg, or incidence/heading).
  std::string geometry = "bands";
  std::string sigma = "0.005";  ///< a number or a band name/index
};

struct DecomposeRun {
  std::vector<OpticalInput> optical;
  std::vector<LosInput> los;
  /// Products already placed on the common grid by the caller (EGMS points gridded by the operation):
  /// whole-grid observations, each with its own geometry number (renumbered after the files').
  std::vector<Observation> gridded;
  std::vector<std::string> gridded_paths;  ///< their sources, for provenance
  /// The common grid when the caller fixed it (EGMS points alone); otherwise from grid_path or the inputs.
  std::optional<io::RasterInfo> grid;
  std::string dem_path;   ///< empty = no surface-parallel estimate
  std::string grid_path;  ///< the common grid; empty = the first input's
  double resolution = 0;  ///< > 0: the grid's extent resampled to this cell size (its CRS units)
  std::string output;
  DecomposeOptions options;
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();
};

/// One row of a 4-D pair table: a pair measurement (a raster) between two dates, from one geometry.
struct SeriesPairInput {
  io::Date ref_date, sec_date;
  std::string path;
  std::string kind;      ///< "los" (one value along `look`) or "optical" (east and north bands)
  std::string geometry;  ///< name of the geometry (track, sensor): pairs sharing it count as one
  std::string look;      ///< los: as LosInput::geometry ("bands", "angles", "E,N,U", "INC/HEAD")
  std::string band;      ///< los: value band ("1"); optical: "EAST,NORTH" ("east_m,north_m")
  std::string sigma;     ///< a number or a band; optical: the same for both components
};

/// Reads a pair table (CSV with header ref_date,sec_date,path,kind,geometry,look,band,sigma; the last
/// four may be left empty: look "bands", band "1" or "east_m,north_m", sigma 0.005 or 0.5; paths relative
/// to the table's folder). Throws FormatError naming the file, line and column.
std::vector<SeriesPairInput> read_series_table(const std::string& csv_path);

/// One window of rows of a point product's series placed on the common grid (cells' points averaged): per
/// cell a unit vector (ground to sensor, or a component's axis) and a standard deviation of one date's
/// value, and per date after the source's first its displacement since that first date (NaN: no point of
/// the cell has a value that date).
struct GriddedSeries {
  GridF east, north, up;
  GridF sigma;                ///< NaN or <= 0: the cell has no point
  std::vector<GridF> values;  ///< one per date of SeriesGridSource::dates() but the first
};

/// A product of displacement series at points (EGMS) that decompose_series_rasters places on its grid
/// strip by strip. Implemented above this module (egms): the inversion does not know the file format.
class SeriesGridSource {
 public:
  virtual ~SeriesGridSource() = default;
  /// The product (for provenance and messages).
  virtual std::string path() const = 0;
  /// The series' dates, strictly increasing; the values are displacements since the first.
  virtual const std::vector<io::Date>& dates() const = 0;
  /// Rows [row, row + height) of `grid`, read from the product (the whole product is read once per call;
  /// only what falls in the window is kept).
  virtual GriddedSeries read_strip(const io::RasterInfo& grid, int row, int height) = 0;
};

struct DecomposeSeriesRun {
  std::vector<SeriesPairInput> pairs;
  /// Point products whose series enter the inversion as pairs from their first date to each other date
  /// (each one's own geometry, numbered after the table's).
  std::vector<std::shared_ptr<SeriesGridSource>> series;
  /// The common grid when the caller fixed it (points alone, --resolution); otherwise grid_path's.
  std::optional<io::RasterInfo> grid;
  std::string grid_path;   ///< empty = the first pair's raster
  std::string output_dir;  ///< east.tif, north.tif, up.tif (+ _sigma), velocity.tif, decompose_series.nc
  SeriesOptions options;
  bool netcdf = true;
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();
  std::vector<std::string> extra_inputs;  ///< for provenance (the table)
};

/// The 4-D decomposition over files: every pair raster resampled onto the common grid and every point
/// product gridded (its series as pairs from its first date to each other date), cells solved by
/// SeriesDecomposer in strips within the RAM budget, cubes (one band per date of the union) and the
/// velocity product written as COGs, and a CF NetCDF cube. Summary counts: cells, pairs (table rows),
/// series_pairs (from point products), dates, resolved_3d, east_up_north_neglected, no_data,
/// pairs_downweighted (over all cells, with a robust loss).
Summary decompose_series_rasters(const DecomposeSeriesRun& run, RunContext& context);

/// The common grid of a run: `grid`, else `grid_path`'s, else the first product's, at `resolution` when
/// given. Throws InvalidArgument when none can be found.
io::RasterInfo decompose_grid(const DecomposeRun& run);

/// Reads the inputs strip by strip on the common grid and writes one COG with bands east, north, up,
/// sigma_east, sigma_north, sigma_up, n_geometries, condition, flags (provenance included). Summary counts:
/// cells, resolved_3d, up_from_slope, unresolved, no_data.
Summary decompose_rasters(const DecomposeRun& run, RunContext& context);

}  // namespace deforma::timeseries
