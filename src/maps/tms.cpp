#include "deforma/maps/tms.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::maps {
namespace {

std::vector<TileMatrixSet> make_sets() {
  std::vector<TileMatrixSet> sets;
  constexpr double kHalfWorld = 20037508.3427892;  // π × 6378137 m
  {
    TileMatrixSet s;
    s.id = "WebMercatorQuad";
    s.title = "Google Maps Compatible for the World";
    s.crs_uri = "http://www.opengis.net/def/crs/EPSG/0/3857";
    s.crs_urn = "urn:ogc:def:crs:EPSG::3857";
    s.gdal_crs = "EPSG:3857";
    s.origin_x = -kHalfWorld;
    s.origin_y = kHalfWorld;
    s.bounds = {-kHalfWorld, -kHalfWorld, kHalfWorld, kHalfWorld};
    s.cell_size_z0 = 2 * kHalfWorld / 256;
    s.max_zoom = 24;
    s.well_known_scale_set = "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible";
    sets.push_back(s);
  }
  {
    TileMatrixSet s;
    s.id = "WorldCRS84Quad";
    s.title = "CRS84 for the World";
    s.crs_uri = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
    s.crs_urn = "urn:ogc:def:crs:OGC:1.3:CRS84";
    s.gdal_crs = "OGC:CRS84";
    s.geographic = true;
    s.origin_x = -180;
    s.origin_y = 90;
    s.bounds = {-180, -90, 180, 90};
    s.matrix_width_z0 = 2;
    s.cell_size_z0 = 180.0 / 256;
    s.max_zoom = 23;
    s.well_known_scale_set = "urn:ogc:def:wkss:OGC:1.0:GoogleCRS84Quad";
    sets.push_back(s);
  }
  {
    // OGC 17-083r4 annex D: the INSPIRE/EEA grid, 4,500 km square from (E 2,000 km, N 1,000 km).
    TileMatrixSet s;
    s.id = "EuropeanETRS89_LAEAQuad";
    s.title = "Lambert Azimuthal Equal Area ETRS89 for Europe";
    s.crs_uri = "http://www.opengis.net/def/crs/EPSG/0/3035";
    s.crs_urn = "urn:ogc:def:crs:EPSG::3035";
    s.gdal_crs = "EPSG:3035";
    s.northing_first = true;
    s.origin_x = 2000000;
    s.origin_y = 5500000;
    s.bounds = {2000000, 1000000, 6500000, 5500000};
    s.cell_size_z0 = 4500000.0 / 256;
    s.max_zoom = 15;
    sets.push_back(s);
  }
  return sets;
}

}  // namespace

double TileMatrixSet::meters_per_unit() const {
  return geographic ? 2 * std::numbers::pi * 6378137.0 / 360.0 : 1.0;
}

double TileMatrixSet::cell_size(int zoom) const {
  return cell_size_z0 / std::ldexp(1.0, zoom);
}

double TileMatrixSet::scale_denominator(int zoom) const {
  return cell_size(zoom) * meters_per_unit() / 0.00028;
}

void TileMatrixSet::check_tile(int zoom, int x, int y) const {
  if (zoom < 0 || zoom > max_zoom) {
    throw InvalidArgument(fmt::format("tile matrix {}: zoom {} is outside 0..{}", id, zoom, max_zoom));
  }
  if (x < 0 || x >= matrix_width(zoom)) {
    throw InvalidArgument(fmt::format("tile matrix {}: column x={} is outside 0..{} at zoom {}", id, x,
                                      matrix_width(zoom) - 1, zoom));
  }
  if (y < 0 || y >= matrix_height(zoom)) {
    throw InvalidArgument(fmt::format("tile matrix {}: row y={} is outside 0..{} at zoom {}", id, y,
                                      matrix_height(zoom) - 1, zoom));
  }
}

Bounds TileMatrixSet::tile_bounds(int zoom, int x, int y) const {
  check_tile(zoom, x, y);
  const double span = cell_size(zoom) * 256;
  return {origin_x + x * span, origin_y - (y + 1) * span, origin_x + (x + 1) * span, origin_y - y * span};
}

const std::vector<TileMatrixSet>& tile_matrix_sets() {
  static const std::vector<TileMatrixSet> sets = make_sets();
  return sets;
}

const TileMatrixSet& tile_matrix_set(const std::string& id) {
  for (const auto& s : tile_matrix_sets()) {
    if (s.id == id) return s;
  }
  throw InvalidArgument(
      fmt::format("tile matrix set '{}' is not offered; expected WebMercatorQuad, WorldCRS84Quad or "
                  "EuropeanETRS89_LAEAQuad",
                  id));
}

}  // namespace deforma::maps
