#pragma once
// EGMS point products as inputs of the per-date (4-D) decomposition: each point's LOS displacement series
// placed on the common grid, the points of a cell averaged per date, strip by strip.
#include <memory>
#include <string>
#include <vector>

#include "deforma/timeseries/decompose.hpp"

namespace deforma::egms {

/// EPSG:3035 extent of a product's points (metres).
struct PointExtent {
  double min_easting = 0, max_easting = 0, min_northing = 0, max_northing = 0;
};

/// An EGMS L2a/L2b product (CSV or zip) or an Ortho L3 one (`egms ortho`'s PREFIX_U.csv / PREFIX_E.csv,
/// or EGMS's own L3 files), read as series on a grid. Points are placed by their EPSG:3035
/// easting/northing (transformed to the grid's CRS). Per cell: the unit vector is the mean of the points'
/// los_east/los_north/los_up, renormalised (L3: (0,0,1) for a `U` product, (1,0,0) for an `E` one, told by
/// a `U` or `E` field of the file name between underscores); each date's value the mean of the points'
/// displacements since the first date, converted from mm to m; the standard deviation the RMS of the
/// points' `sigma` column (default `rmse`, the per-date residual of the EGMS model; `rmse_ts` in the
/// 2020-2024 release) or a constant in mm, not divided by the square root of the count (points of a cell
/// share most of their errors).
class PointSeriesSource final : public timeseries::SeriesGridSource {
 public:
  /// Opens the product and reads it once (its extent; the format is checked before any output). Throws
  /// FormatError naming the file: no date column, no easting/northing, no los_* columns on an L2
  /// product, an L3 product whose name does not tell U or E, the sigma column missing, no point.
  /// `sigma`: a column name or a positive number in mm.
  PointSeriesSource(const std::string& path, const std::string& sigma = "rmse");
  ~PointSeriesSource() override;

  std::string path() const override;
  const std::vector<io::Date>& dates() const override;
  timeseries::GriddedSeries read_strip(const io::RasterInfo& grid, int row, int height) override;

  const PointExtent& extent() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// A north-up EPSG:3035 grid of `resolution_m` cells over the union of the extents, aligned on multiples of
/// the resolution (as the Ortho grid). InvalidArgument when it would exceed 4e8 cells.
io::RasterInfo grid_over_extent(const std::vector<PointExtent>& extents, double resolution_m);

}  // namespace deforma::egms
