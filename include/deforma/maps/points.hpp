#pragma once
// EGMS measurement points as a map layer: Mapbox Vector Tiles (GDAL's MVT writer) with each point's pid and
// mean velocity, a point's displacement series by pid, and GeoJSON features for OGC API - Features
// clients. A product is read once (egms::ProductReader) and kept in memory, a few products at a time.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "deforma/maps/tms.hpp"

namespace deforma::maps {

/// One tile of the product's points as a Mapbox Vector Tile: layer `points`, attributes `pid` (string) and
/// `velocity_mm_per_yr`. A tile without points is an empty (zero-byte) tile. Throws IoError/FormatError
/// naming the product when it cannot be read.
std::string points_tile(const std::string& product, const TileMatrixSet& tms, int zoom, int x, int y);

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

}  // namespace deforma::maps
