#pragma once
// The map server's HTTP routes (internal): raster tiles, mosaics, legends, point queries, EGMS vector
// tiles and point series, WMTS and WMS, over the items of a catalogue as the caller may see them
// (docs/maps.md has the URL contract). The drawing is the maps library's; this file reads requests,
// checks visibility and writes responses.
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "service/http.hpp"

namespace deforma::catalog {
class Catalog;
}

namespace deforma::service {

/// Who asks: the map routes show what the catalogue lets this viewer see (anonymous: public items only).
struct MapViewer {
  std::string user;  ///< empty = anonymous
  bool admin = false;
};

/// What the map routes need of the catalogue. A private item of someone else must be absent (nullopt or
/// left out), exactly as a missing one.
struct MapCatalog {
  std::function<std::optional<nlohmann::json>(const std::string& collection, const std::string& item,
                                              const MapViewer&)>
      item;
  /// A collection's visible items, those intersecting `bbox` (lon/lat) when given, at most `limit`.
  std::function<std::vector<nlohmann::json>(const std::string& collection,
                                            const std::optional<std::array<double, 4>>& bbox, int limit,
                                            const MapViewer&)>
      items;
  /// The visible items a STAC search finds (its GET parameters, as the catalogue's /search takes them),
  /// those intersecting `bbox` (lon/lat) too when given, the most recent first, at most `limit`. Throws
  /// InvalidArgument naming a malformed parameter.
  std::function<std::vector<nlohmann::json>(const std::vector<std::pair<std::string, std::string>>& params,
                                            const std::optional<std::array<double, 4>>& bbox, int limit,
                                            const MapViewer&)>
      search;
  /// The ids of the collections the viewer can see.
  std::function<std::vector<std::string>(const MapViewer&)> collections;
};

/// The map routes' view of the service's catalogue (visibility as the catalogue's own).
MapCatalog map_catalog(catalog::Catalog& catalog);

class MapRoutes {
 public:
  explicit MapRoutes(MapCatalog catalog);
  ~MapRoutes();

  /// Whether `parts` (the request path split at '/') is a map route: then handle() answers it.
  static bool is_map_path(const std::vector<std::string>& parts);

  /// Answers a map request (GET or HEAD). Throws ApiError (404 for an item the viewer cannot see,
  /// 400 for a bad parameter) or deforma::Error, which the server turns into its error documents; WMS
  /// errors are answered here as ServiceExceptionReports.
  void handle(const HttpRequest& req, const std::vector<std::string>& parts, const MapViewer& viewer,
              const std::string& base_url, const Reply& reply);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deforma::service
