#pragma once
// Polygons from any OGR source (GeoPackage, Shapefile, GeoJSON, GMT...) and their rasterization onto a
// raster grid. Closed linestrings are taken as polygon rings: GMT files often store polygons that way.
#include <memory>
#include <string>
#include <vector>

#include "deforma/core/grid.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::io {

/// A set of polygons in one CRS, held as OGR geometries.
class PolygonSet {
 public:
  PolygonSet();
  PolygonSet(PolygonSet&&) noexcept;
  PolygonSet& operator=(PolygonSet&&) noexcept;
  ~PolygonSet();

  std::size_t size() const;
  bool empty() const { return size() == 0; }
  const std::string& crs_wkt() const;  ///< empty when the source declared none
  /// Number of source features that were closed linestrings converted to polygons.
  std::size_t converted_rings() const;
  /// Number of source features skipped (points, open lines, empty geometries).
  std::size_t skipped_features() const;

  /// OGRGeometry* pointers, valid while this set lives.
  std::vector<void*> geometries() const;

 private:
  friend PolygonSet read_polygons(const std::string&, const std::string&);
  struct State;
  std::unique_ptr<State> state_;
};

/// Reads every polygon of every layer of `path`. When `target_crs_wkt` is given and the source has a CRS,
/// polygons are reprojected to it; a source without CRS is assumed to be in the target CRS (logged).
/// Throws IoError/FormatError naming the file; InvalidArgument when it holds no usable polygon.
PolygonSet read_polygons(const std::string& path, const std::string& target_crs_wkt = "");

/// Burns the polygons onto `window` of the grid described by `grid` (1 inside, 0 outside).
/// `all_touched` burns every pixel a polygon touches instead of those whose centre is inside.
GridU8 rasterize(const PolygonSet& polygons, const RasterInfo& grid, const Window& window,
                 bool all_touched = false);

/// The same over the whole grid.
GridU8 rasterize(const PolygonSet& polygons, const RasterInfo& grid, bool all_touched = false);

/// A mask source given on the command line: a raster (non-zero = inside) or a polygon file, read onto a
/// window of `grid`. Rasters on another grid are resampled (nearest).
GridU8 read_mask(const std::string& path, const RasterInfo& grid, const Window& window);

}  // namespace deforma::io
