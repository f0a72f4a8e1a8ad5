#pragma once
// The catalogue: STAC 1.0 Items and Collections of scenes and products, stored in the service's SQLite
// database (its own tables, its own connection, WAL mode). Each item keeps its footprint in an R*Tree (exact
// intersection tests through OGR/GEOS on the candidates), its time range as sortable numbers, its cloud
// cover, and a full-text index (FTS5) over title, description, keywords and its collection's themes.
//
// Visibility: an item has an owner (empty = catalogue-wide) and a public flag. A Viewer sees the public
// items and their own; an admin sees everything. A private item of someone else is absent everywhere, as if
// it did not exist.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace deforma::catalog {

struct Viewer {
  std::string user;  ///< empty = anonymous
  bool admin = false;
};

/// One sort key of a search: a property name ("datetime", "eo:cloud_cover", "id", "collection" or any
/// property) and its direction.
struct SortKey {
  std::string field;
  bool ascending = true;
};

/// A STAC API item search, already parsed (parse_search_json / parse_search_query build it from a request).
struct SearchRequest {
  std::optional<std::array<double, 4>> bbox;  ///< west, south, east, north (WGS84); west > east crosses 180°
  nlohmann::json intersects;                  ///< GeoJSON geometry (WGS84), null = none
  std::optional<double> start_s, end_s;       ///< datetime interval, seconds since 1970 UTC; absent = open
  std::vector<std::string> collections;
  std::vector<std::string> ids;
  int limit = 10;  ///< 1..10,000
  std::vector<SortKey> sortby;
  nlohmann::json filter;  ///< CQL2 JSON expression, null = none (CQL2 text is converted by the parser)
  std::string q;          ///< free text: terms separated by commas are alternatives
  std::optional<double> aoi_cloud_cover_max;  ///< % cloud over the aoi (the bbox or intersects), from masks
  std::vector<std::string> fields_include, fields_exclude;  ///< the `fields` extension
  std::int64_t offset = 0;                                  ///< paging: items skipped (from `token`)
};

struct SearchResult {
  std::vector<nlohmann::json> items;  ///< STAC Items, `fields` applied
  /// All items matching, across pages; -1 when not counted (more than kMaxCounted, or a search with
  /// `aoi_cloud_cover` whose count would read every candidate's mask), except on the last page.
  std::int64_t matched = 0;
  bool has_next = false;  ///< a next page exists (offset + items.size() < matched)
  std::int64_t next_offset = 0;
};

/// Limits of a search request.
inline constexpr int kDefaultLimit = 10;
inline constexpr int kMaxLimit = 10000;
/// numberMatched is counted up to this many items (a bounded count per page), and left out beyond.
inline constexpr std::int64_t kMaxCounted = 100000;

/// A search from a POST /search body (STAC API item-search JSON). Throws InvalidArgument naming the
/// parameter for anything malformed (bbox and intersects together, a bad datetime, an unknown
/// filter-lang...).
SearchRequest parse_search_json(const nlohmann::json& body);

/// A search from GET parameters (name -> raw text, percent-decoded). Same checks as parse_search_json.
SearchRequest parse_search_query(const std::vector<std::pair<std::string, std::string>>& params);

/// The GET parameters of a search as the equivalent POST /search body (what parse_search_query checks and
/// a saved search keeps). Throws InvalidArgument naming a malformed parameter.
nlohmann::json search_query_body(const std::vector<std::pair<std::string, std::string>>& params);

/// A CQL2 text expression as CQL2 JSON. Throws InvalidArgument quoting the text and the position.
nlohmann::json cql2_text_to_json(const std::string& text);

/// A STAC datetime parameter ("2020-01-01T00:00:00Z", "2020-01-01", "2020-01-01/..", "../2021-01-01",
/// "a/b") as [start, end] seconds; an open end is absent. Throws InvalidArgument quoting the text.
std::pair<std::optional<double>, std::optional<double>> parse_datetime_interval(const std::string& text);

/// RFC 3339 date-time (or a date, or the space-separated form) as seconds since 1970 UTC; nullopt when the
/// text is not one.
std::optional<double> parse_rfc3339(const std::string& text);

/// Outcome of one ingest call.
struct IngestReport {
  int added = 0;
  int updated = 0;
  int unchanged = 0;
  /// What could not be ingested: the file (and the item id where there is one) and why.
  std::vector<std::pair<std::string, std::string>> failed;
  std::vector<std::string> item_ids;  ///< "collection/id" of every item added, updated or unchanged
  /// Counts one item by what Catalog::put_item answered ("added", "updated" or "unchanged") and keeps its id.
  void count(const std::string& outcome, const std::string& collection_and_id);
  nlohmann::json to_json() const;
  std::string to_text() const;
};

/// A search kept in the catalogue under an id (`POST /searches`): its STAC search body, run again on
/// demand. Private to its owner unless published.
struct SavedSearch {
  std::string id;
  std::string owner;
  bool is_public = false;
  nlohmann::json body;   ///< the STAC search (POST /search body), without a paging token
  double created_s = 0;  ///< seconds since 1970 UTC
};

struct IngestOptions {
  std::string collection;  ///< every item goes there; empty = the collection each reader chooses
  std::string owner;       ///< empty = catalogue-wide
  bool is_public = true;
};

class Catalog {
 public:
  /// Opens (or creates) the catalogue's tables in `database` (normally ROOT/service.db). Throws IoError
  /// naming the file.
  explicit Catalog(const std::filesystem::path& database);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // ---------------------------------------------------------------- reading
  /// STAC Collections the viewer can see (those with at least one visible item, or catalogue-wide ones).
  std::vector<nlohmann::json> collections(const Viewer& viewer);
  std::optional<nlohmann::json> collection(const std::string& id, const Viewer& viewer);
  std::optional<nlohmann::json> item(const std::string& collection, const std::string& id,
                                     const Viewer& viewer);
  SearchResult search(const SearchRequest& request, const Viewer& viewer);
  /// Properties a filter may name, as a JSON Schema (the `queryables` document without its $id).
  nlohmann::json queryables();

  // ---------------------------------------------------------------- saved searches
  /// Keeps `body` (a STAC search, checked by parse_search_json: InvalidArgument naming the parameter) as a
  /// search of `owner`, private (public when `owner` is empty, as catalogue-wide items are); returns its
  /// id: `id` when given (letters, digits, '-', '_'; a search of that id is replaced), else a new one. A
  /// paging `token` in the body is not kept.
  std::string save_search(nlohmann::json body, const std::string& owner, const std::string& id = "");
  /// A saved search the viewer may read (their own, a published one, any for an admin); nullopt otherwise,
  /// exactly as for an id that does not exist.
  std::optional<SavedSearch> saved_search(const std::string& id, const Viewer& viewer);
  /// The saved searches the viewer owns (all of them for an admin), oldest first.
  std::vector<SavedSearch> saved_searches(const Viewer& viewer);
  /// Publishes or withdraws a saved search of the viewer's (an admin's: any); false when there is none.
  bool set_saved_search_public(const std::string& id, const Viewer& viewer, bool is_public);
  /// Removes a saved search of the viewer's (an admin's: any); false when there is none.
  bool remove_saved_search(const std::string& id, const Viewer& viewer);

  // ---------------------------------------------------------------- writing
  /// Ingests files and folders (recursively): each reader recognises what it can; a file nothing
  /// recognises is skipped silently inside folders and reported when named directly.
  IngestReport ingest(const std::vector<std::filesystem::path>& paths, const IngestOptions& options);
  /// Adds or replaces one STAC Item (validated). Returns "added", "updated" or "unchanged". Throws
  /// InvalidArgument with the reason when the item is not valid STAC 1.0.
  std::string put_item(nlohmann::json item, const IngestOptions& options, const std::string& source = "",
                       const std::string& fingerprint = "");
  /// Adds or replaces a Collection document.
  void put_collection(nlohmann::json collection, const std::string& owner, bool is_public);
  /// Changes the public flag of every item of `owner` that came from files under `source_prefix`.
  int set_public(const std::string& owner, const std::string& source_prefix, bool is_public);
  bool remove_item(const std::string& collection, const std::string& id);
  /// Removes every item ingested from files under `source_prefix` (a job's folder that is deleted); returns
  /// how many.
  int remove_items_from(const std::string& source_prefix);

  /// Whether items came from `source` (a file or folder path) and all carry `fingerprint` (its size and
  /// time, and the ingest options); fills `ids` ("collection/id") when so.
  bool source_unchanged(const std::string& source, const std::string& fingerprint,
                        std::vector<std::string>& ids);

  /// The source (file or folder) an item was ingested from; nullopt when there is no such item.
  std::optional<std::string> item_source(const std::string& collection, const std::string& id);

  /// Number of items in the catalogue (all owners).
  std::int64_t size();
  /// Runs `fn` in one transaction (bulk loads).
  void in_transaction(const std::function<void()>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Cloud cover (%) of an item's scene over `aoi` (GeoJSON geometry, WGS84), from its cloud mask asset
/// (`cloud-mask`: Sentinel-2 SCL, classes 3, 8, 9, 10 over the aoi's valid, non-zero pixels). nullopt when
/// the item has no cloud mask or the aoi misses its data; a null aoi is the whole scene. `classes` are the
/// mask values counted as cloud. Throws IoError/FormatError naming the mask file.
std::optional<double> cloud_cover_on(const nlohmann::json& item, const nlohmann::json& aoi,
                                     const std::vector<int>& classes = {3, 8, 9, 10});

/// Checks the structure of a STAC 1.0 Item (type, stac_version, id, geometry/bbox, properties.datetime or
/// start/end, links, assets with href). Returns the reason it is invalid, empty when it is valid.
std::string stac_item_problem(const nlohmann::json& item);

}  // namespace deforma::catalog
