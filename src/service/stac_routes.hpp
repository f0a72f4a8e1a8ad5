#pragma once
// The catalogue's STAC API 1.0 in the service (internal): core, collections, ogcapi-features, item-search,
// sort, fields, filter (CQL2 text and JSON) and free-text. Items and collections come from catalog::Catalog
// as the viewer may see them; asset files are served by a download route of the item, so a private item's
// files are as invisible as the item.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"
#include "service/http.hpp"

namespace deforma::service {

struct StacContext {
  catalog::Catalog& catalog;
  std::string base;  ///< the service's URL as the client reached it (X-Forwarded-* honoured)
  catalog::Viewer viewer;
  /// Streams a local file (ranges, ETag) as the job downloads are.
  std::function<HttpResponse(const HttpRequest&, const std::filesystem::path&)> send_file;
  /// The local path of a file an admin asks to ingest, checked to lie in a data root; throws ApiError 400.
  std::function<std::filesystem::path(const std::string& path)> resolve_ingest_path;
};

/// Whether `parts` (the request path split at '/') is a catalogue route: /collections..., /search,
/// /queryables.
bool is_stac_route(const std::vector<std::string>& parts);

/// Answers a catalogue request. Throws ApiError (404, 405...) or InvalidArgument (400) for client mistakes.
/// Returns false when the path is not one of the catalogue's (another module may answer it).
bool route_stac(const HttpRequest& req, const std::vector<std::string>& parts, StacContext& ctx,
                const Reply& reply);

/// Links of the landing page (data, search GET and POST, queryables).
nlohmann::json stac_landing_links(const std::string& base);
/// Conformance classes of STAC API and OGC API - Features implemented.
std::vector<std::string> stac_conformance_classes();
/// OpenAPI 3.0 path entries of the catalogue routes.
nlohmann::json stac_openapi_paths();

}  // namespace deforma::service
