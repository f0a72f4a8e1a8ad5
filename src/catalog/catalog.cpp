#include "deforma/catalog/catalog.hpp"

#include <sqlite3.h>

#include <gdal_priv.h>
#include <ogr_geometry.h>
#include <ogrsf_frmts.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"
#include "deforma/io/dates.hpp"

namespace deforma::catalog {
namespace {

using json = nlohmann::json;

// Prepared statements kept per connection and SQL text: an ingest runs the same few statements for every
// item, and preparing them costs as much as running them.
struct StatementCache {
  std::mutex mutex;
  std::map<std::pair<sqlite3*, std::string>, std::pair<sqlite3_stmt*, bool>> statements;  // -> (stmt, in use)
};
StatementCache& statement_cache() {
  static StatementCache cache;
  return cache;
}

void drop_cached_statements(sqlite3* db) {
  auto& c = statement_cache();
  std::lock_guard lock(c.mutex);
  for (auto it = c.statements.begin(); it != c.statements.end();) {
    if (it->first.first == db) {
      sqlite3_finalize(it->second.first);
      it = c.statements.erase(it);
    } else {
      ++it;
    }
  }
}

// One prepared statement: from the cache (reset on scope exit) unless `reuse` is false or the cached one is
// in use by an enclosing query (then prepared afresh and finalized on scope exit).
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, bool reuse = true) : db_(db) {
    if (reuse) {
      auto& c = statement_cache();
      std::lock_guard lock(c.mutex);
      auto it = c.statements.find({db, sql});
      if (it != c.statements.end() && !it->second.second) {
        stmt_ = it->second.first;
        it->second.second = true;
        cached_ = true;
        return;
      }
      if (it == c.statements.end()) {
        prepare(sql);
        c.statements[{db, sql}] = {stmt_, true};
        cached_ = true;
        return;
      }
    }
    prepare(sql);
  }
  ~Statement() {
    if (!cached_) {
      sqlite3_finalize(stmt_);
      return;
    }
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    auto& c = statement_cache();
    std::lock_guard lock(c.mutex);
    for (auto& [key, entry] : c.statements) {
      if (entry.first == stmt_) entry.second = false;
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, const SqlValue& v) {
    switch (v.index()) {
      case 0:
        sqlite3_bind_null(stmt_, index);
        break;
      case 1:
        sqlite3_bind_int64(stmt_, index, std::get<std::int64_t>(v));
        break;
      case 2:
        sqlite3_bind_double(stmt_, index, std::get<double>(v));
        break;
      case 3: {
        const auto& s = std::get<std::string>(v);
        sqlite3_bind_text(stmt_, index, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
        break;
      }
      default: {
        const auto& b = std::get<Blob>(v).bytes;
        sqlite3_bind_blob(stmt_, index, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
      }
    }
  }
  void bind_all(const std::vector<SqlValue>& values) {
    for (std::size_t i = 0; i < values.size(); ++i) bind(static_cast<int>(i) + 1, values[i]);
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw IoError(fmt::format("catalogue: {}", sqlite3_errmsg(db_)));
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  void prepare(const std::string& sql) {
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
      throw IoError(fmt::format("catalogue: cannot prepare a query: {}", sqlite3_errmsg(db_)));
    }
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool cached_ = false;
};

// SQL function catalog_intersects(item_wkb, aoi_wkb): exact intersection of an item's footprint with the
// area of interest (GEOS through OGR). The aoi is parsed once per query (SQLite's auxiliary data).
void sql_intersects(sqlite3_context* ctx, int, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_BLOB || sqlite3_value_type(argv[1]) != SQLITE_BLOB) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  auto* aoi = static_cast<OGRGeometry*>(sqlite3_get_auxdata(ctx, 1));
  if (!aoi) {
    OGRGeometry* g = nullptr;
    const auto* bytes = static_cast<const unsigned char*>(sqlite3_value_blob(argv[1]));
    if (OGRGeometryFactory::createFromWkb(bytes, nullptr, &g, sqlite3_value_bytes(argv[1])) != OGRERR_NONE) {
      sqlite3_result_int(ctx, 0);
      return;
    }
    sqlite3_set_auxdata(ctx, 1, g, [](void* p) { delete static_cast<OGRGeometry*>(p); });
    aoi = static_cast<OGRGeometry*>(sqlite3_get_auxdata(ctx, 1));
    if (!aoi) aoi = g;  // SQLite may refuse to keep it; it then owns and frees it after this call
  }
  OGRGeometry* item = nullptr;
  const auto* bytes = static_cast<const unsigned char*>(sqlite3_value_blob(argv[0]));
  if (OGRGeometryFactory::createFromWkb(bytes, nullptr, &item, sqlite3_value_bytes(argv[0])) != OGRERR_NONE) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  OGREnvelope a, b;
  item->getEnvelope(&a);
  aoi->getEnvelope(&b);
  int result = 0;
  if (a.Intersects(b)) {
    // An item whose envelope lies inside a rectangular aoi intersects it: no GEOS call needed.
    const bool aoi_is_box = wkbFlatten(aoi->getGeometryType()) == wkbPolygon &&
                            aoi->toPolygon()->getExteriorRing()->getNumPoints() == 5 &&
                            std::fabs(aoi->toPolygon()->get_Area() - (b.MaxX - b.MinX) * (b.MaxY - b.MinY)) <
                                1e-9 * std::max(1.0, (b.MaxX - b.MinX) * (b.MaxY - b.MinY));
    result = (aoi_is_box && b.Contains(a)) || item->Intersects(aoi) ? 1 : 0;
  }
  delete item;
  sqlite3_result_int(ctx, result);
}

// SQL function catalog_aoi_cloud(item_json, aoi_json): cloud_cover_on, NULL when unknown. Results are cached
// per item and aoi: a paged search asks again for the same pairs.
struct CloudCache {
  std::mutex mutex;
  std::map<std::pair<std::string, std::string>, std::optional<double>> values;
};

void sql_aoi_cloud(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* cache = static_cast<CloudCache*>(sqlite3_user_data(ctx));
  const auto* item_text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const auto* aoi_text = reinterpret_cast<const char*>(sqlite3_value_text(argv[1]));
  if (!item_text || !aoi_text) {
    sqlite3_result_null(ctx);
    return;
  }
  const json item = json::parse(item_text, nullptr, false);
  const std::string key = item.value("collection", "") + "/" + item.value("id", "");
  {
    std::lock_guard lock(cache->mutex);
    auto it = cache->values.find({key, aoi_text});
    if (it != cache->values.end()) {
      if (it->second)
        sqlite3_result_double(ctx, *it->second);
      else
        sqlite3_result_null(ctx);
      return;
    }
  }
  std::optional<double> value;
  try {
    value = cloud_cover_on(item, json::parse(aoi_text));
  } catch (const std::exception&) {
    value.reset();  // an unreadable mask: the cloud cover is unknown, the item does not match
  }
  {
    std::lock_guard lock(cache->mutex);
    if (cache->values.size() > 100000) cache->values.clear();
    cache->values[{key, aoi_text}] = value;
  }
  if (value)
    sqlite3_result_double(ctx, *value);
  else
    sqlite3_result_null(ctx);
}

std::string fts_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  std::string out;
  if (value.is_array()) {
    for (const auto& v : value) {
      const std::string s = fts_text(v);
      if (!s.empty()) out += (out.empty() ? "" : " ") + s;
    }
  }
  return out;
}

// The themes of a collection, as text for the full-text index: its keywords, title and theme concepts.
std::string collection_themes(const json& c) {
  std::string out = fts_text(c.value("keywords", json::array()));
  if (c.contains("themes") && c["themes"].is_array()) {
    for (const auto& theme : c["themes"]) {
      if (!theme.is_object() || !theme.contains("concepts") || !theme["concepts"].is_array()) continue;
      for (const auto& concept_ : theme["concepts"]) {
        if (!concept_.is_object()) continue;
        for (const char* k : {"id", "title"}) {
          if (concept_.contains(k) && concept_[k].is_string()) out += " " + concept_[k].get<std::string>();
        }
      }
    }
  }
  if (c.contains("title") && c["title"].is_string()) out += " " + c["title"].get<std::string>();
  return out;
}

json default_collection(const std::string& id) {
  return {{"type", "Collection"},
          {"stac_version", "1.0.0"},
          {"id", id},
          {"description", fmt::format("Items of '{}'", id)},
          {"license", "other"},
          {"extent", {{"spatial", {{"bbox", json::array()}}}, {"temporal", {{"interval", json::array()}}}}},
          {"links", json::array()}};
}

std::string iso_of(double seconds) {
  return io::iso_utc(static_cast<std::time_t>(std::floor(seconds)));
}

}  // namespace

struct Catalog::Impl {
  sqlite3* db = nullptr;
  std::recursive_mutex mutex;  // one query or transaction at a time on this connection (ingest nests them)
  CloudCache clouds;
  std::filesystem::path path;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string why = error ? error : "unknown error";
      sqlite3_free(error);
      throw IoError(fmt::format("{}: catalogue: {}", path.string(), why));
    }
  }

  bool visible_collection(const std::string& id, const Viewer& viewer) {
    if (viewer.admin) {
      Statement s(db, "SELECT 1 FROM catalog_collections WHERE id = ?");
      s.bind(1, id);
      return s.step();
    }
    Statement s(db,
                "SELECT 1 FROM catalog_collections c WHERE c.id = ?1 AND (c.public = 1 OR (c.owner <> '' AND "
                "c.owner = ?2) OR EXISTS (SELECT 1 FROM catalog_items i WHERE i.collection = c.id AND "
                "i.public = 1))");
    s.bind(1, id);
    s.bind(2, viewer.user);
    return s.step();
  }

  json collection_doc(Statement& s) {
    // id, doc, minx, miny, maxx, maxy, t0, t1
    json c = json::parse(s.text(1), nullptr, false);
    if (!c.is_object()) c = default_collection(s.text(0));
    if (!s.null(2))
      c["extent"]["spatial"]["bbox"] =
          json::array({json::array({s.real(2), s.real(3), s.real(4), s.real(5)})});
    if (!s.null(6))
      c["extent"]["temporal"]["interval"] =
          json::array({json::array({iso_of(s.real(6)), iso_of(s.real(7))})});
    if (!c.contains("links")) c["links"] = json::array();
    return c;
  }

  void ensure_collection(const std::string& id, const std::string& owner, bool is_public) {
    Statement s(db,
                "INSERT INTO catalog_collections(id, owner, public, doc, themes) VALUES(?, ?, ?, ?, '') "
                "ON CONFLICT(id) DO NOTHING");
    s.bind(1, id);
    s.bind(2, owner);
    s.bind(3, std::int64_t{is_public ? 1 : 0});
    s.bind(4, default_collection(id).dump());
    s.step();
  }
};

Catalog::Catalog(const std::filesystem::path& database) : impl_(std::make_unique<Impl>()) {
  impl_->path = database;
  std::error_code ec;
  if (database.has_parent_path()) std::filesystem::create_directories(database.parent_path(), ec);
  if (sqlite3_open_v2(database.c_str(), &impl_->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = impl_->db ? sqlite3_errmsg(impl_->db) : "out of memory";
    sqlite3_close(impl_->db);
    impl_->db = nullptr;
    throw IoError(fmt::format("{}: cannot open the catalogue: {}", database.string(), why));
  }
  // The service's store writes to the same file from its own connection.
  sqlite3_busy_timeout(impl_->db, 10000);
  auto& d = *impl_;
  d.exec("PRAGMA journal_mode=WAL");
  d.exec("PRAGMA synchronous=NORMAL");
  d.exec(
      "CREATE TABLE IF NOT EXISTS catalog_collections(id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', "
      "public INTEGER NOT NULL DEFAULT 1, doc TEXT NOT NULL, themes TEXT NOT NULL DEFAULT '', minx REAL, "
      "miny REAL, "
      "maxx REAL, maxy REAL, t0 REAL, t1 REAL)");
  d.exec(
      "CREATE TABLE IF NOT EXISTS catalog_items(rid INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT "
      "NOT "
      "NULL, owner TEXT NOT NULL DEFAULT '', public INTEGER NOT NULL DEFAULT 1, datetime REAL, start REAL, "
      "end REAL, cloud REAL, geom BLOB, doc TEXT NOT NULL, source TEXT NOT NULL DEFAULT '', fingerprint TEXT "
      "NOT "
      "NULL DEFAULT '', UNIQUE(collection, id))");
  d.exec("CREATE INDEX IF NOT EXISTS catalog_items_datetime ON catalog_items(datetime)");
  d.exec("CREATE INDEX IF NOT EXISTS catalog_items_source ON catalog_items(source)");
  d.exec("CREATE INDEX IF NOT EXISTS catalog_items_owner ON catalog_items(owner)");
  d.exec("CREATE VIRTUAL TABLE IF NOT EXISTS catalog_items_rtree USING rtree(rid, minx, maxx, miny, maxy)");
  d.exec(
      "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_items_fts USING fts5(title, description, keywords, "
      "themes)");
  // Added after the first release: CREATE IF NOT EXISTS brings an older store up to date at its next open.
  d.exec(
      "CREATE TABLE IF NOT EXISTS catalog_searches(id TEXT PRIMARY KEY, owner TEXT NOT NULL, public INTEGER "
      "NOT NULL DEFAULT 0, body TEXT NOT NULL, created REAL NOT NULL)");
  d.exec("CREATE INDEX IF NOT EXISTS catalog_searches_owner ON catalog_searches(owner)");
  sqlite3_create_function_v2(d.db, "catalog_intersects", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                             sql_intersects, nullptr, nullptr, nullptr);
  sqlite3_create_function_v2(d.db, "catalog_aoi_cloud", 2, SQLITE_UTF8, &d.clouds, sql_aoi_cloud, nullptr,
                             nullptr, nullptr);
}

Catalog::~Catalog() {
  if (impl_ && impl_->db) {
    drop_cached_statements(impl_->db);
    sqlite3_close(impl_->db);
  }
}

void Catalog::in_transaction(const std::function<void()>& fn) {
  std::lock_guard lock(impl_->mutex);
  impl_->exec("BEGIN IMMEDIATE");
  try {
    fn();
  } catch (...) {
    impl_->exec("ROLLBACK");
    throw;
  }
  impl_->exec("COMMIT");
}

std::int64_t Catalog::size() {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "SELECT count(*) FROM catalog_items");
  s.step();
  return s.integer(0);
}

std::vector<json> Catalog::collections(const Viewer& viewer) {
  std::lock_guard lock(impl_->mutex);
  std::vector<json> out;
  Statement s(impl_->db,
              "SELECT id, doc, minx, miny, maxx, maxy, t0, t1 FROM catalog_collections ORDER BY id");
  std::vector<std::pair<std::string, json>> all;
  while (s.step()) all.emplace_back(s.text(0), impl_->collection_doc(s));
  for (auto& [id, doc] : all) {
    if (impl_->visible_collection(id, viewer)) out.push_back(std::move(doc));
  }
  return out;
}

std::optional<json> Catalog::collection(const std::string& id, const Viewer& viewer) {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->visible_collection(id, viewer)) return std::nullopt;
  Statement s(impl_->db,
              "SELECT id, doc, minx, miny, maxx, maxy, t0, t1 FROM catalog_collections WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return impl_->collection_doc(s);
}

std::optional<json> Catalog::item(const std::string& collection, const std::string& id,
                                  const Viewer& viewer) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "SELECT doc, owner, public FROM catalog_items WHERE collection = ? AND id = ?");
  s.bind(1, collection);
  s.bind(2, id);
  if (!s.step()) return std::nullopt;
  const std::string owner = s.text(1);
  const bool is_public = s.integer(2) != 0;
  if (!viewer.admin && !is_public && (owner.empty() || owner != viewer.user)) return std::nullopt;
  return json::parse(s.text(0));
}

SearchResult Catalog::search(const SearchRequest& request, const Viewer& viewer) {
  SqlQuery where;
  build_search_conditions(request, viewer, where);
  std::string order;
  for (const auto& key : request.sortby) {
    // Items without the value (undated items for datetime) come last either way; SQLite's DESC already
    // puts NULLs last, and leaving it unsaid there keeps the datetime index usable for the default order.
    order += sort_expression(key.field, where) + (key.ascending ? " ASC NULLS LAST, " : " DESC, ");
  }
  if (request.sortby.empty()) order = "i.datetime DESC, ";
  order += "i.collection ASC, i.id ASC";
  const int limit = std::clamp(request.limit, 1, kMaxLimit);
  const std::string sql = fmt::format(
      "SELECT i.doc FROM catalog_items i WHERE {} ORDER BY {} LIMIT {} OFFSET {}",
      where.sql.empty() ? "1" : where.sql, order, limit + 1, std::max<std::int64_t>(0, request.offset));
  SearchResult result;
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, sql, false);  // limit and offset make each text new: not worth keeping
  s.bind_all(where.values);
  while (s.step()) {
    if (static_cast<int>(result.items.size()) == limit) {
      result.has_next = true;
      break;
    }
    result.items.push_back(apply_fields(json::parse(s.text(0)), request));
  }
  result.next_offset = request.offset + static_cast<std::int64_t>(result.items.size());
  result.matched = -1;
  if (!result.has_next && (!result.items.empty() || request.offset == 0)) {
    // The last page: what came before it and what it holds is every match, at no cost.
    result.matched = result.next_offset;
  } else if (!request.aoi_cloud_cover_max) {
    // The same conditions counted, up to a bound: a count over most of a million items is not worth its
    // time on every page, and the cloud cover over an aoi reads each candidate's mask. Beyond the bound,
    // or with an aoi cloud cover, the count is left unsaid (STAC API makes numberMatched optional).
    const std::string count_sql =
        fmt::format("SELECT count(*) FROM (SELECT 1 FROM catalog_items i WHERE {} LIMIT {})",
                    where.sql.empty() ? "1" : where.sql, kMaxCounted + 1);
    Statement c(impl_->db, count_sql, false);
    c.bind_all(where.values);
    if (c.step() && c.integer(0) <= kMaxCounted) result.matched = c.integer(0);
  }
  return result;
}

// ---------------------------------------------------------------- saved searches
namespace {

SavedSearch saved_search_of(Statement& s) {
  // id, owner, public, body, created
  SavedSearch out;
  out.id = s.text(0);
  out.owner = s.text(1);
  out.is_public = s.integer(2) != 0;
  out.body = json::parse(s.text(3), nullptr, false);
  out.created_s = s.real(4);
  return out;
}

std::string new_search_id() {
  static std::mutex mutex;
  static std::mt19937_64 engine{std::random_device{}()};
  std::lock_guard lock(mutex);
  return fmt::format("{:016x}", engine());
}

}  // namespace

std::string Catalog::save_search(json body, const std::string& owner, const std::string& wanted_id) {
  if (!wanted_id.empty() &&
      (wanted_id.size() > 64 ||
       wanted_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789-_") != std::string::npos)) {
    throw InvalidArgument(
        fmt::format("search id '{}': expected up to 64 letters, digits, '-' or '_'", wanted_id));
  }
  if (!body.is_object()) throw InvalidArgument("search: expected a JSON object (a STAC search body)");
  body.erase("token");
  // Refused here, naming the parameter, rather than each time it is run: the body as /search parses it,
  // and its filter as a search builds it (an unknown operator or property type).
  const SearchRequest request = parse_search_json(body);
  SqlQuery where;
  build_search_conditions(request, Viewer{}, where);
  const double now_s =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(impl_->mutex);
  const std::string id = wanted_id.empty() ? new_search_id() : wanted_id;
  Statement s(impl_->db,
              "INSERT INTO catalog_searches(id, owner, public, body, created) VALUES(?1, ?2, ?3, ?4, ?5) ON "
              "CONFLICT(id) DO UPDATE SET owner = ?2, public = ?3, body = ?4, created = ?5");
  s.bind(1, id);
  s.bind(2, owner);
  s.bind(3, std::int64_t{owner.empty() ? 1 : 0});
  s.bind(4, body.dump());
  s.bind(5, now_s);
  s.step();
  return id;
}

std::optional<SavedSearch> Catalog::saved_search(const std::string& id, const Viewer& viewer) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "SELECT id, owner, public, body, created FROM catalog_searches WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  SavedSearch found = saved_search_of(s);
  if (!viewer.admin && !found.is_public && (viewer.user.empty() || found.owner != viewer.user))
    return std::nullopt;
  return found;
}

std::vector<SavedSearch> Catalog::saved_searches(const Viewer& viewer) {
  std::lock_guard lock(impl_->mutex);
  std::vector<SavedSearch> out;
  if (viewer.user.empty() && !viewer.admin) return out;
  Statement s(impl_->db,
              "SELECT id, owner, public, body, created FROM catalog_searches WHERE ?1 OR owner = ?2 "
              "ORDER BY created, id");
  s.bind(1, std::int64_t{viewer.admin ? 1 : 0});
  s.bind(2, viewer.user);
  while (s.step()) out.push_back(saved_search_of(s));
  return out;
}

bool Catalog::set_saved_search_public(const std::string& id, const Viewer& viewer, bool is_public) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "UPDATE catalog_searches SET public = ?1 WHERE id = ?2 AND (?3 OR owner = ?4)");
  s.bind(1, std::int64_t{is_public ? 1 : 0});
  s.bind(2, id);
  s.bind(3, std::int64_t{viewer.admin ? 1 : 0});
  s.bind(4, viewer.user);
  s.step();
  return sqlite3_changes(impl_->db) > 0;
}

bool Catalog::remove_saved_search(const std::string& id, const Viewer& viewer) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "DELETE FROM catalog_searches WHERE id = ?1 AND (?2 OR owner = ?3)");
  s.bind(1, id);
  s.bind(2, std::int64_t{viewer.admin ? 1 : 0});
  s.bind(3, viewer.user);
  s.step();
  return sqlite3_changes(impl_->db) > 0;
}

std::string Catalog::put_item(json item, const IngestOptions& options, const std::string& source,
                              const std::string& fingerprint) {
  normalise_item(item);
  if (!options.collection.empty()) item["collection"] = options.collection;
  if (!item.contains("collection") || !item["collection"].is_string() ||
      item["collection"].get<std::string>().empty()) {
    throw InvalidArgument(fmt::format("item '{}': no collection (give one with --collection)",
                                      item.value("id", std::string("?"))));
  }
  if (const std::string problem = stac_item_problem(item); !problem.empty()) {
    throw InvalidArgument(fmt::format("item '{}': {}", item.value("id", std::string("?")), problem));
  }
  const ItemIndex index = index_item(item);
  const std::string collection = item["collection"];
  const std::string id = item["id"];
  const std::string doc = item.dump();
  std::lock_guard lock(impl_->mutex);
  auto& d = *impl_;
  d.ensure_collection(collection, options.owner, options.is_public);
  std::int64_t rid = -1;
  bool existed = false;
  {
    Statement s(d.db, "SELECT rid, doc, owner, public FROM catalog_items WHERE collection = ? AND id = ?");
    s.bind(1, collection);
    s.bind(2, id);
    if (s.step()) {
      rid = s.integer(0);
      existed = true;
      if (s.text(1) == doc && s.text(2) == options.owner && (s.integer(3) != 0) == options.is_public) {
        Statement f(d.db, "UPDATE catalog_items SET source = ?, fingerprint = ? WHERE rid = ?");
        f.bind(1, source);
        f.bind(2, fingerprint);
        f.bind(3, rid);
        f.step();
        return "unchanged";
      }
    }
  }
  std::vector<SqlValue> values;
  values.reserve(13);
  auto optional_real = [&](const std::optional<double>& v) {
    if (v)
      values.emplace_back(*v);
    else
      values.emplace_back(std::monostate{});
  };
  values.emplace_back(collection);
  values.emplace_back(id);
  values.emplace_back(options.owner);
  values.emplace_back(std::int64_t{options.is_public ? 1 : 0});
  optional_real(index.datetime);
  optional_real(index.start);
  optional_real(index.end);
  optional_real(index.cloud);
  if (index.wkb.bytes.empty())
    values.emplace_back(std::monostate{});
  else
    values.emplace_back(index.wkb);
  values.emplace_back(doc);
  values.emplace_back(source);
  values.emplace_back(fingerprint);
  if (rid < 0) {
    Statement s(
        d.db,
        "INSERT INTO catalog_items(collection, id, owner, public, datetime, start, end, cloud, geom, doc, "
        "source, fingerprint) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind_all(values);
    s.step();
    rid = sqlite3_last_insert_rowid(d.db);
  } else {
    Statement s(
        d.db,
        "UPDATE catalog_items SET collection = ?, id = ?, owner = ?, public = ?, datetime = ?, start = ?, "
        "end = ?, cloud = ?, geom = ?, doc = ?, source = ?, fingerprint = ? WHERE rid = ?");
    s.bind_all(values);
    s.bind(static_cast<int>(values.size()) + 1, rid);
    s.step();
    Statement r(d.db, "DELETE FROM catalog_items_rtree WHERE rid = ?");
    r.bind(1, rid);
    r.step();
    Statement f(d.db, "DELETE FROM catalog_items_fts WHERE rowid = ?");
    f.bind(1, rid);
    f.step();
  }
  if (index.bbox) {
    Statement s(d.db, "INSERT INTO catalog_items_rtree(rid, minx, maxx, miny, maxy) VALUES(?,?,?,?,?)");
    const auto& b = *index.bbox;
    s.bind_all({rid, b[0], b[2], b[1], b[3]});
    s.step();
  }
  {
    std::string themes;
    Statement c(d.db, "SELECT themes FROM catalog_collections WHERE id = ?");
    c.bind(1, collection);
    if (c.step()) themes = c.text(0);
    const json& p = item["properties"];
    Statement s(
        d.db, "INSERT INTO catalog_items_fts(rowid, title, description, keywords, themes) VALUES(?,?,?,?,?)");
    s.bind_all({rid, fts_text(p.value("title", json())), fts_text(p.value("description", json())),
                fts_text(p.value("keywords", json())) + " " + id, themes});
    s.step();
  }
  // The collection's extent grows with its items.
  {
    Statement s(d.db,
                "UPDATE catalog_collections SET minx = min(coalesce(minx, ?1), ?1), miny = "
                "min(coalesce(miny, ?2), ?2), "
                "maxx = max(coalesce(maxx, ?3), ?3), maxy = max(coalesce(maxy, ?4), ?4) WHERE id = ?5");
    if (index.bbox) {
      const auto& b = *index.bbox;
      s.bind_all({b[0], b[1], b[2], b[3], collection});
      s.step();
    }
  }
  if (index.start || index.end) {
    Statement s(
        d.db,
        "UPDATE catalog_collections SET t0 = min(coalesce(t0, ?1), ?1), t1 = max(coalesce(t1, ?2), ?2) "
        "WHERE id = ?3");
    const double t0 = index.start ? *index.start : *index.end;
    const double t1 = index.end ? *index.end : *index.start;
    s.bind_all({t0, t1, collection});
    s.step();
  }
  return existed ? "updated" : "added";
}

void Catalog::put_collection(json collection, const std::string& owner, bool is_public) {
  if (!collection.is_object() || collection.value("type", "") != "Collection" || !collection.contains("id") ||
      !collection["id"].is_string() || collection["id"].get<std::string>().empty()) {
    throw InvalidArgument("collection: expected a STAC Collection object with a string id");
  }
  if (!collection.contains("description") || !collection["description"].is_string()) {
    throw InvalidArgument(
        fmt::format("collection '{}': 'description' is required", collection["id"].get<std::string>()));
  }
  if (!collection.contains("extent") || !collection["extent"].is_object()) {
    throw InvalidArgument(
        fmt::format("collection '{}': 'extent' is required", collection["id"].get<std::string>()));
  }
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db,
              "INSERT INTO catalog_collections(id, owner, public, doc, themes) VALUES(?, ?, ?, ?, ?) "
              "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, themes = excluded.themes");
  const std::string themes = collection_themes(collection);
  s.bind_all({collection["id"].get<std::string>(), owner, std::int64_t{is_public ? 1 : 0}, collection.dump(),
              themes});
  s.step();
  // Items added before their collection document find it by its themes too.
  Statement f(impl_->db,
              "UPDATE catalog_items_fts SET themes = ? WHERE rowid IN (SELECT rid FROM catalog_items WHERE "
              "collection = ?)");
  f.bind_all({themes, collection["id"].get<std::string>()});
  f.step();
}

int Catalog::set_public(const std::string& owner, const std::string& source_prefix, bool is_public) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "UPDATE catalog_items SET public = ? WHERE owner = ? AND substr(source, 1, ?) = ?");
  s.bind_all({std::int64_t{is_public ? 1 : 0}, owner, static_cast<std::int64_t>(source_prefix.size()),
              source_prefix});
  s.step();
  return sqlite3_changes(impl_->db);
}

bool Catalog::remove_item(const std::string& collection, const std::string& id) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "SELECT rid FROM catalog_items WHERE collection = ? AND id = ?");
  s.bind_all({collection, id});
  if (!s.step()) return false;
  const std::int64_t rid = s.integer(0);
  for (const char* sql :
       {"DELETE FROM catalog_items WHERE rid = ?", "DELETE FROM catalog_items_rtree WHERE rid = ?",
        "DELETE FROM catalog_items_fts WHERE rowid = ?"}) {
    Statement d(impl_->db, sql);
    d.bind(1, rid);
    d.step();
  }
  return true;
}

int Catalog::remove_items_from(const std::string& source_prefix) {
  if (source_prefix.empty()) return 0;
  std::lock_guard lock(impl_->mutex);
  std::vector<std::pair<std::string, std::string>> keys;
  {
    Statement s(impl_->db, "SELECT collection, id FROM catalog_items WHERE substr(source, 1, ?) = ?");
    s.bind_all({static_cast<std::int64_t>(source_prefix.size()), source_prefix});
    while (s.step()) keys.emplace_back(s.text(0), s.text(1));
  }
  for (const auto& [collection, id] : keys) remove_item(collection, id);
  return static_cast<int>(keys.size());
}

bool Catalog::source_unchanged(const std::string& source, const std::string& fingerprint,
                               std::vector<std::string>& ids) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "SELECT collection, id, fingerprint FROM catalog_items WHERE source = ?");
  s.bind(1, source);
  bool all_same = true;
  while (s.step()) {
    ids.push_back(s.text(0) + "/" + s.text(1));
    if (s.text(2) != fingerprint) all_same = false;
  }
  if (!all_same) ids.clear();
  return all_same && !ids.empty();
}

std::optional<std::string> Catalog::item_source(const std::string& collection, const std::string& id) {
  std::lock_guard lock(impl_->mutex);
  Statement s(impl_->db, "SELECT source FROM catalog_items WHERE collection = ? AND id = ?");
  s.bind_all({collection, id});
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

nlohmann::json Catalog::queryables() {
  const json str{{"type", "string"}};
  const json num{{"type", "number"}};
  return {{"$schema", "https://json-schema.org/draft/2019-09/schema"},
          {"type", "object"},
          {"title", "Queryables of the deforma catalogue"},
          {"properties",
           {{"id", {{"title", "Item id"}, {"type", "string"}}},
            {"collection", {{"title", "Collection"}, {"type", "string"}}},
            {"geometry", {{"title", "Footprint"}, {"$ref", "https://geojson.org/schema/Geometry.json"}}},
            {"datetime", {{"title", "Acquisition time"}, {"type", "string"}, {"format", "date-time"}}},
            {"start_datetime", {{"type", "string"}, {"format", "date-time"}}},
            {"end_datetime", {{"type", "string"}, {"format", "date-time"}}},
            {"eo:cloud_cover",
             {{"title", "Cloud cover (%)"}, {"type", "number"}, {"minimum", 0}, {"maximum", 100}}},
            {"platform", str},
            {"constellation", str},
            {"instruments", {{"type", "array"}, {"items", str}}},
            {"gsd", num},
            {"proj:epsg", {{"type", "integer"}}},
            {"sat:relative_orbit", {{"type", "integer"}}},
            {"sat:orbit_state", {{"type", "string"}, {"enum", {"ascending", "descending", "geostationary"}}}},
            {"s2:mgrs_tile", str},
            {"processing:level", str},
            {"title", str},
            {"keywords", {{"type", "array"}, {"items", str}}}}},
          {"additionalProperties", true}};
}

}  // namespace deforma::catalog
