#pragma once
// The tile matrix sets the map server offers (OGC Two Dimensional Tile Matrix Set, 17-083r4):
// WebMercatorQuad (EPSG:3857, web maps), WorldCRS84Quad (longitude/latitude, two tiles at zoom 0) and
// EuropeanETRS89_LAEAQuad (EPSG:3035, EGMS's grid, northing first in its CRS's axis order).
// Geometry is kept in "x = easting/longitude, y = northing/latitude" order everywhere in C++; only the
// XML writers turn it into the CRS's own axis order.
#include <string>
#include <vector>

namespace deforma::maps {

/// A rectangle in a tile matrix set's CRS, x = easting or longitude, y = northing or latitude.
struct Bounds {
  double min_x = 0;
  double min_y = 0;
  double max_x = 0;
  double max_y = 0;
  double width() const { return max_x - min_x; }
  double height() const { return max_y - min_y; }
  bool intersects(const Bounds& o) const {
    return min_x < o.max_x && o.min_x < max_x && min_y < o.max_y && o.min_y < max_y;
  }
};

struct TileMatrixSet {
  std::string id;  ///< "WebMercatorQuad"...
  std::string title;
  std::string crs_uri;          ///< "http://www.opengis.net/def/crs/EPSG/0/3857"
  std::string crs_urn;          ///< "urn:ogc:def:crs:EPSG::3857" (WMTS capabilities)
  std::string gdal_crs;         ///< what GDAL is given: "EPSG:3857", "OGC:CRS84"
  bool northing_first = false;  ///< the CRS's axis order is northing, easting (EPSG:3035)
  bool geographic = false;      ///< units are degrees
  double origin_x = 0;          ///< top-left corner of every matrix
  double origin_y = 0;
  Bounds bounds;            ///< the area covered
  int matrix_width_z0 = 1;  ///< tiles across at zoom 0 (2 for WorldCRS84Quad)
  int matrix_height_z0 = 1;
  double cell_size_z0 = 0;  ///< CRS units per pixel at zoom 0 for 256 px tiles
  int max_zoom = 24;
  std::string well_known_scale_set;  ///< "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible" or ""

  /// Metres per CRS unit (1, or 2πR/360 for degrees), for scale denominators.
  double meters_per_unit() const;
  /// CRS units per pixel at `zoom` for 256 px tiles.
  double cell_size(int zoom) const;
  /// OGC scale denominator at `zoom` (0.28 mm pixels).
  double scale_denominator(int zoom) const;
  int matrix_width(int zoom) const { return matrix_width_z0 << zoom; }
  int matrix_height(int zoom) const { return matrix_height_z0 << zoom; }
  /// Bounds of tile (col x, row y) at `zoom`. Throws InvalidArgument naming z/x/y when out of range.
  Bounds tile_bounds(int zoom, int x, int y) const;
  /// Checks zoom/x/y; throws InvalidArgument naming the wrong one and its range.
  void check_tile(int zoom, int x, int y) const;
};

/// All the sets, in the order capabilities list them.
const std::vector<TileMatrixSet>& tile_matrix_sets();
/// The set named `id`; throws InvalidArgument listing the known ids.
const TileMatrixSet& tile_matrix_set(const std::string& id);

}  // namespace deforma::maps
