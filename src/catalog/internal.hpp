#pragma once
// Pieces of the catalogue shared by its files (internal): SQL building for searches, item indexing, the
// readers of ingest.
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"

namespace deforma::catalog {

struct Blob {
  std::vector<unsigned char> bytes;
};
using SqlValue = std::variant<std::monostate, std::int64_t, double, std::string, Blob>;

/// A WHERE clause with its bound values, in order of the '?' placeholders.
struct SqlQuery {
  std::string sql;
  std::vector<SqlValue> values;
};

/// The WHERE clause of a search over `catalog_items i` (visibility, bbox/intersects, datetime, collections,
/// ids, q, filter, aoi cloud cover). Throws InvalidArgument for a filter naming an unknown operator.
void build_search_conditions(const SearchRequest& request, const Viewer& viewer, SqlQuery& where);

/// The SQL expression of a property for ORDER BY (indexed columns for datetime, cloud cover, id...).
std::string sort_expression(const std::string& field, SqlQuery& query);

/// The `fields` extension applied to an item.
nlohmann::json apply_fields(nlohmann::json item, const SearchRequest& request);

/// What the tables index of an item.
struct ItemIndex {
  std::optional<double> datetime, start, end, cloud;
  std::optional<std::array<double, 4>> bbox;  ///< west, south, east, north
  Blob wkb;                                   ///< footprint, empty when the item has no geometry
};
ItemIndex index_item(const nlohmann::json& item);

/// Small repairs of pre-1.0 items that keep their meaning (collection inside properties, a missing
/// stac_version on an otherwise valid item).
void normalise_item(nlohmann::json& item);

/// A GeoJSON geometry as OGR WKB; throws InvalidArgument with the reason when it is not valid GeoJSON.
Blob geojson_to_wkb(const nlohmann::json& geometry, const std::string& what);

/// One item made by a reader, with the file it came from.
struct Draft {
  nlohmann::json item;
  std::string default_collection;
};

/// Result of reading one source (file or folder).
struct ReadResult {
  bool recognised = false;
  std::vector<Draft> items;
  std::vector<nlohmann::json> collections;                  ///< STAC Collections found (external JSON)
  std::vector<std::pair<std::string, std::string>> failed;  ///< what (file, item id) and why, per bad item
};

/// Reads one path (a file, or a folder that is a product such as a .SAFE). `named` is true when the user
/// named the path directly (then an unrecognised file is an error). Throws deforma::Error for a corrupt file.
ReadResult read_source(const std::filesystem::path& path);

/// Whether a folder is itself one product (a Sentinel-2 SAFE) rather than a folder to walk.
bool is_product_folder(const std::filesystem::path& dir);

/// Whether a file is part of a product read through another file (a band of a SAFE or of a Landsat scene
/// with its MTL beside, an .aux.xml...), so that walking a folder does not make a second item of it.
bool is_companion_file(const std::filesystem::path& file);

}  // namespace deforma::catalog
