#pragma once
// EGMS measurement points as a map layer: Mapbox Vector Tiles (GDAL's MVT writer) with each point's pid and
// mean velocity, a point's displacement series by pid, and GeoJSON features for OGC API - Features
// clients. A product is read once (egms::ProductReader) and kept in memory, a few products at a time (read
// again when its file changes). Each tile matrix set's coordinates are indexed once per product
// (PointIndex), so a vector tile costs the points near it, not a scan of the product.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/maps/tms.hpp"

namespace deforma::maps {

/// A uniform grid over a set of points (about 16 points per cell): the points of a cell are contiguous, so
/// a rectangle costs the cells it touches and the points in them. Points with a non-finite coordinate are
/// left out.
class PointIndex {
 public:
  PointIndex() = default;
  /// Indexes the points (x[i], y[i]); `x` and `y` must outlive the index, unchanged.
  PointIndex(const std::vector<double>& x, const std::vector<double>& y);
  /// The points inside `b` (edges included), in increasing index order.
  std::vector<std::size_t> query(const Bounds& b) const;
  std::size_t size() const { return order_.size(); }

 private:
  const std::vector<double>* x_ = nullptr;
  const std::vector<double>* y_ = nullptr;
  double min_x_ = 0, min_y_ = 0, cell_w_ = 1, cell_h_ = 1;
  int nx_ = 0, ny_ = 0;
  std::vector<std::uint32_t> start_;  ///< first entry of each cell in order_, nx*ny + 1 entries
  std::vector<std::uint32_t> order_;  ///< point indices grouped by cell
};

/// Features a vector tile carries point by point. Above it (a dense product at a low zoom) the tile is
/// aggregated: one feature per screen cell instead of one per point.
inline constexpr std::size_t kPointsTileBudget = 4096;
/// The side of an aggregation cell in pixels of a 256 px tile: 64 x 64 cells, never more than the budget.
inline constexpr int kPointsCellPx = 4;

/// What points_tile wrote.
struct PointsTileInfo {
  bool aggregated = false;   ///< one feature per cell rather than per point
  std::size_t points = 0;    ///< points written or counted (aggregated: those inside the tile)
  std::size_t features = 0;  ///< features in the tile
};

/// One tile of the product's points as a Mapbox Vector Tile, one layer `points`.
/// - At most kPointsTileBudget points near the tile (the tile and a 2% margin): one feature per point,
///   attributes `pid` (string) and `velocity_mm_per_yr`.
/// - More: the tile is cut into cells of kPointsCellPx px and each cell holding points inside the tile (edges
///   half-open, so that a point is counted by one tile only) is one feature at the centroid of its points,
///   attributes `count` (the points), `velocity_mm_per_yr` (their mean velocity, finite ones only; absent
///   when none is finite) and `aggregated` (true, on every feature: MVT has no layer-level attributes). Cells
///   are written row by row, top first, the sums in point order: the same product gives the same bytes.
/// A tile without points is an empty (zero-byte) tile. Throws IoError/FormatError naming the product when it
/// cannot be read.
std::string points_tile(const std::string& product, const TileMatrixSet& tms, int zoom, int x, int y,
                        PointsTileInfo* info = nullptr);

/// The series of the point `pid`: {"pid","lon","lat","dates","values","sigma","units","velocity",
/// "velocity_sigma","velocity_units"}; nullopt when the product has no such point.
std::optional<nlohmann::json> point_series(const std::string& product, const std::string& pid);

/// The series of the point nearest to (lon, lat) within `max_distance_m`; nullopt when none.
std::optional<nlohmann::json> nearest_point_series(const std::string& product, double lon, double lat,
                                                   double max_distance_m);

/// Points inside `bbox` (lon/lat; the whole product when absent) as a GeoJSON FeatureCollection, `limit`
/// features from `offset`, with numberMatched and numberReturned.
nlohmann::json point_features(const std::string& product, const std::optional<Bounds>& bbox,
                              std::size_t limit, std::size_t offset);

/// The product's extent in lon/lat and its number of points.
Bounds points_extent(const std::string& product, std::size_t* count = nullptr);

namespace detail {
/// Whether points_tile finds a tile's points through the index (default) or by scanning every point, as it
/// did before the index: for the tests and the benchmark that compare the two.
void set_points_index_enabled(bool enabled);
/// The point budget of points_tile (kPointsTileBudget by default; SIZE_MAX writes every point, as before
/// aggregation): for the benchmark that times both.
void set_points_tile_budget(std::size_t budget);
}  // namespace detail

}  // namespace deforma::maps
