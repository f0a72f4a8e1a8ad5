#include "service/stac_routes.hpp"

#include <cpl_vsi.h>

#include <algorithm>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "service/request.hpp"

namespace deforma::service {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kGeoJson = "application/geo+json";

json link(const std::string& href, const std::string& rel, const std::string& type,
          const std::string& title = "") {
  json l{{"href", href}, {"rel", rel}, {"type", type}};
  if (!title.empty()) l["title"] = title;
  return l;
}

HttpResponse json_reply(int status, const json& body, const std::string& type = "application/json") {
  HttpResponse res;
  res.status = status;
  res.body = body.dump();
  res.content_type = type;
  return res;
}

std::string url_encode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Item as served: links to itself, its collection and the root; local asset files as download URLs.
json served_item(json item, const std::string& base) {
  const std::string collection = item.value("collection", "");
  const std::string id = item.value("id", "");
  const std::string self = base + "/collections/" + url_encode(collection) + "/items/" + url_encode(id);
  json links = item.value("links", json::array());
  if (!links.is_array()) links = json::array();
  links.push_back(link(self, "self", kGeoJson));
  links.push_back(link(base + "/collections/" + url_encode(collection), "parent", "application/json"));
  links.push_back(link(base + "/collections/" + url_encode(collection), "collection", "application/json"));
  links.push_back(link(base + "/", "root", "application/json"));
  item["links"] = links;
  if (item.contains("assets") && item["assets"].is_object()) {
    for (auto& [key, a] : item["assets"].items()) {
      if (!a.is_object() || !a.contains("href") || !a["href"].is_string()) continue;
      const std::string href = a["href"];
      if (!href.empty() && href[0] == '/') a["href"] = self + "/assets/" + url_encode(key);
    }
  }
  return item;
}

json served_collection(json c, const std::string& base) {
  const std::string id = c.value("id", "");
  const std::string self = base + "/collections/" + url_encode(id);
  json links = json::array();
  for (const auto& l : c.value("links", json::array())) {
    const std::string rel = l.is_object() ? l.value("rel", "") : "";
    if (rel != "self" && rel != "root" && rel != "parent" && rel != "items") links.push_back(l);
  }
  links.push_back(link(self, "self", "application/json"));
  links.push_back(link(base + "/", "root", "application/json"));
  links.push_back(link(base + "/", "parent", "application/json"));
  links.push_back(link(self + "/items", "items", kGeoJson, "items"));
  links.push_back(link(self + "/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                       "application/schema+json", "queryables"));
  c["links"] = links;
  return c;
}

std::vector<std::pair<std::string, std::string>> query_params(const HttpRequest& req) {
  return {req.query.begin(), req.query.end()};
}

// The page as a FeatureCollection with its next link: GET repeats the query with a token, POST says how to
// send the body again.
HttpResponse item_collection(const catalog::SearchResult& result, const HttpRequest& req,
                             const std::string& base, const json& post_body) {
  json features = json::array();
  for (const auto& item : result.items) features.push_back(served_item(item, base));
  json links = json::array({link(base + "/", "root", "application/json")});
  const bool post = req.method == "POST";
  // The query again, without the paging token (a next link puts its own).
  std::string query;
  for (const auto& [k, v] : req.query) {
    if (k == "token") continue;
    query.append(query.empty() ? "?" : "&").append(url_encode(k)).append("=").append(url_encode(v));
  }
  std::string self = base + req.path;
  if (!post) {
    for (const auto& [k, v] : req.query) {
      self.append(self.find('?') == std::string::npos ? "?" : "&")
          .append(url_encode(k))
          .append("=")
          .append(url_encode(v));
    }
  }
  links.push_back(link(self, "self", kGeoJson));
  if (result.has_next) {
    const std::string token = fmt::format("next:{}", result.next_offset);
    if (post) {
      json l = link(base + req.path, "next", kGeoJson);
      l["method"] = "POST";
      l["body"] = {{"token", token}};
      l["merge"] = true;
      (void)post_body;
      links.push_back(l);
    } else {
      query.append(query.empty() ? "?" : "&").append("token=").append(url_encode(token));
      links.push_back(link(base + req.path + query, "next", kGeoJson));
    }
  }
  json page{{"type", "FeatureCollection"}, {"features", features}, {"numberReturned", result.items.size()}};
  if (result.matched >= 0) page["numberMatched"] = result.matched;
  page["links"] = links;
  return json_reply(200, page, kGeoJson);
}

// An asset inside an archive (a band of a zipped SAFE: /vsizip/ZIP/member), read through GDAL's virtual
// file system. One byte range ("bytes=a-b", "a-", "-n") is honoured, as for plain files, so that GDAL's
// /vsicurl/ on the client side reads a JP2 or COG member without fetching all of it.
HttpResponse archive_member(const HttpRequest& req, const std::string& href, const std::string& type,
                            const std::string& what) {
  VSIStatBufL st;
  if (VSIStatL(href.c_str(), &st) != 0 || VSI_ISDIR(st.st_mode)) {
    fail(404, "Not Found", fmt::format("{} lies inside an archive that no longer holds it", what));
  }
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  HttpResponse res;
  res.content_type = type.empty() ? "application/octet-stream" : type;
  const std::string etag = fmt::format("\"z{:x}-{:x}\"", size, static_cast<long long>(st.st_mtime));
  res.headers = {{"ETag", etag}, {"Accept-Ranges", "bytes"}};
  std::size_t first = 0, length = 0;
  if (!prepare_ranged_answer(req, res, size, etag, "the asset", first, length)) return res;
  std::unique_ptr<VSILFILE, int (*)(VSILFILE*)> f(VSIFOpenL(href.c_str(), "rb"), VSIFCloseL);
  if (!f) throw IoError(fmt::format("{}: cannot open the archive member", href));
  res.body.resize(length);
  if (VSIFSeekL(f.get(), first, SEEK_SET) != 0 || VSIFReadL(res.body.data(), 1, length, f.get()) != length) {
    throw IoError(fmt::format("{}: cannot read the archive member", href));
  }
  return res;
}

json parse_body(const HttpRequest& req) {
  const std::string type = req.header("content-type");
  if (!type.empty() && type.find("json") == std::string::npos) {
    fail(415, "Unsupported Media Type", fmt::format("expected a JSON body, got '{}'", type));
  }
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded())
    fail(400, "Bad Request", "the request body is not valid JSON", "invalid-parameter");
  return body;
}

void require_get(const HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") fail(405, "Method Not Allowed", "use GET here");
}

// POST /collections/{id}/items (admins): a STAC Item, an ItemCollection, or {"paths": [...]} of files and
// folders under the data roots, ingested into the collection.
HttpResponse ingest(const HttpRequest& req, const std::string& collection, StacContext& ctx) {
  if (!ctx.viewer.admin) fail(403, "Forbidden", "only administrators add items to the catalogue");
  const json body = parse_body(req);
  catalog::IngestOptions options{collection, "", true};
  catalog::IngestReport report;
  auto put = [&](json item) {
    const std::string id = item.is_object() ? item.value("id", std::string("?")) : std::string("?");
    try {
      report.count(ctx.catalog.put_item(std::move(item), options, "", ""), collection + "/" + id);
    } catch (const Error& e) {
      report.failed.emplace_back(fmt::format("item '{}'", id), e.what());
    }
  };
  if (!body.is_object())
    fail(400, "Bad Request", "expected a STAC Item, an ItemCollection or {\"paths\": [...]}");
  const std::string type = body.value("type", "");
  if (type == "Feature") {
    put(body);
  } else if (type == "FeatureCollection" && body.contains("features") && body["features"].is_array()) {
    for (const auto& f : body["features"]) put(f);
  } else if (body.contains("paths") && body["paths"].is_array()) {
    std::vector<fs::path> paths;
    for (const auto& p : body["paths"]) {
      if (!p.is_string())
        fail(400, "Bad Request", "paths: expected an array of strings", "invalid-parameter");
      paths.push_back(ctx.resolve_ingest_path(p.get<std::string>()));
    }
    report = ctx.catalog.ingest(paths, options);
  } else {
    fail(400, "Bad Request", "expected a STAC Item, an ItemCollection or {\"paths\": [...]}",
         "invalid-parameter");
  }
  const bool nothing = report.added + report.updated + report.unchanged == 0 && !report.failed.empty();
  if (nothing && report.failed.size() == 1 && type == "Feature") {
    fail(400, "Bad Request", report.failed.front().second, "invalid-parameter");
  }
  return json_reply(nothing ? 400 : 201, report.to_json());
}

// A saved search as the API shows it: its STAC search body, whether it is published, and links to itself
// and to its items.
json saved_search_doc(const catalog::SavedSearch& saved, const std::string& base) {
  const std::string self = base + "/searches/" + url_encode(saved.id);
  const std::time_t created_s = static_cast<std::time_t>(saved.created_s);
  std::tm utc{};
  gmtime_r(&created_s, &utc);
  char created[32];
  std::strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return {{"id", saved.id},
          {"owner", saved.owner},
          {"public", saved.is_public},
          {"created", created},
          {"search", saved.body},
          {"links",
           {link(self, "self", "application/json"),
            link(self + "/items", "items", kGeoJson, "the search's items"),
            link(base + "/", "root", "application/json")}}};
}

// /searches, /searches/{id}, /searches/{id}/items: searches kept under an id, run again on demand. Someone
// else's private search answers 404, as one that does not exist.
void route_saved_searches(const HttpRequest& req, const std::vector<std::string>& parts, StacContext& ctx,
                          const Reply& reply) {
  const std::string& base = ctx.base;
  const bool signed_in = !ctx.viewer.user.empty() || ctx.viewer.admin;
  auto require_user = [&] {
    if (!signed_in)
      fail(401, "Unauthorized", "saving or changing a search needs an API key (Authorization: Bearer KEY)");
  };
  if (parts.size() == 1) {
    if (req.method == "POST") {
      require_user();
      const json body = parse_body(req);
      if (!body.is_object())
        fail(400, "Bad Request", "the body must be a STAC search (a JSON object)", "invalid-parameter");
      const std::string id = ctx.catalog.save_search(body, ctx.viewer.user);
      const auto saved = ctx.catalog.saved_search(id, ctx.viewer);
      HttpResponse res = json_reply(201, saved_search_doc(*saved, base));
      res.headers.emplace_back("Location", base + "/searches/" + url_encode(id));
      return reply(std::move(res));
    }
    require_get(req);
    json list = json::array();
    for (const auto& saved : ctx.catalog.saved_searches(ctx.viewer))
      list.push_back(saved_search_doc(saved, base));
    return reply(json_reply(200, {{"searches", list},
                                  {"links",
                                   {link(base + "/searches", "self", "application/json"),
                                    link(base + "/", "root", "application/json")}}}));
  }
  const std::string& id = parts[1];
  auto not_found = [&] {
    fail(404, "Not Found", fmt::format("saved search '{}' does not exist", id), "not-found");
  };
  if (parts.size() == 2 && req.method == "DELETE") {
    require_user();
    if (!ctx.catalog.remove_saved_search(id, ctx.viewer)) not_found();
    return reply(json_reply(200, {{"id", id}, {"deleted", true}}));
  }
  if (parts.size() == 2 && req.method == "PATCH") {
    require_user();
    const json body = parse_body(req);
    if (!body.is_object() || body.size() != 1 || !body.contains("public") || !body["public"].is_boolean())
      fail(400, "Bad Request", "public: expected {\"public\": true|false}, the only member that can change",
           "invalid-parameter");
    if (!ctx.catalog.set_saved_search_public(id, ctx.viewer, body["public"].get<bool>())) not_found();
    return reply(json_reply(200, saved_search_doc(*ctx.catalog.saved_search(id, ctx.viewer), base)));
  }
  require_get(req);
  const auto saved = ctx.catalog.saved_search(id, ctx.viewer);
  if (!saved) not_found();
  if (parts.size() == 2) return reply(json_reply(200, saved_search_doc(*saved, base)));
  if (parts.size() != 3 || parts[2] != "items") not_found();
  // The saved body with the page asked for: `limit` and `token` are the only parameters here.
  json body = saved->body;
  for (const auto& [k, v] : req.query) {
    if (k == "token") {
      body["token"] = v;
    } else if (k == "limit") {
      try {
        std::size_t used = 0;
        const long long limit = std::stoll(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
        body["limit"] = limit;
      } catch (const std::exception&) {
        fail(400, "Bad Request", fmt::format("limit: '{}' is not an integer", v), "invalid-parameter");
      }
    } else {
      fail(400, "Bad Request",
           fmt::format("{}: not a parameter of a saved search's items (limit and token are)", k),
           "invalid-parameter");
    }
  }
  const auto request = catalog::parse_search_json(body);
  reply(item_collection(ctx.catalog.search(request, ctx.viewer), req, base, nullptr));
}

}  // namespace

bool is_stac_route(const std::vector<std::string>& parts) {
  return !parts.empty() && (parts[0] == "collections" || parts[0] == "search" || parts[0] == "queryables" ||
                            parts[0] == "searches");
}

bool route_stac(const HttpRequest& req, const std::vector<std::string>& parts, StacContext& ctx,
                const Reply& reply) {
  const std::string& base = ctx.base;
  const std::size_t n = parts.size();
  if (parts[0] == "search" && n == 1) {
    if (req.method == "POST") {
      const json body = parse_body(req);
      const auto request = catalog::parse_search_json(body);
      reply(item_collection(ctx.catalog.search(request, ctx.viewer), req, base, body));
      return true;
    }
    require_get(req);
    const auto request = catalog::parse_search_query(query_params(req));
    reply(item_collection(ctx.catalog.search(request, ctx.viewer), req, base, nullptr));
    return true;
  }
  if (parts[0] == "searches" && n <= 3) {
    route_saved_searches(req, parts, ctx, reply);
    return true;
  }
  if (parts[0] == "queryables" && n == 1) {
    require_get(req);
    json q = ctx.catalog.queryables();
    q["$id"] = base + "/queryables";
    reply(json_reply(200, q, "application/schema+json"));
    return true;
  }
  if (parts[0] != "collections") return false;
  if (n == 1) {
    require_get(req);
    json list = json::array();
    for (auto& c : ctx.catalog.collections(ctx.viewer)) list.push_back(served_collection(std::move(c), base));
    reply(json_reply(200, {{"collections", list},
                           {"links",
                            {link(base + "/collections", "self", "application/json"),
                             link(base + "/", "root", "application/json")}}}));
    return true;
  }
  const std::string& cid = parts[1];
  auto collection = ctx.catalog.collection(cid, ctx.viewer);
  if (n == 2) {
    require_get(req);
    if (!collection) fail(404, "Not Found", fmt::format("collection '{}' does not exist", cid));
    reply(json_reply(200, served_collection(std::move(*collection), base)));
    return true;
  }
  if (n == 3 && parts[2] == "queryables") {
    require_get(req);
    if (!collection) fail(404, "Not Found", fmt::format("collection '{}' does not exist", cid));
    json q = ctx.catalog.queryables();
    q["$id"] = base + "/collections/" + url_encode(cid) + "/queryables";
    reply(json_reply(200, q, "application/schema+json"));
    return true;
  }
  if (parts[2] != "items") return false;
  if (n == 3) {
    if (req.method == "POST") {
      reply(ingest(req, cid, ctx));
      return true;
    }
    require_get(req);
    if (!collection) fail(404, "Not Found", fmt::format("collection '{}' does not exist", cid));
    auto params = query_params(req);
    for (const auto& [k, v] : params) {
      if (k == "collections")
        fail(400, "Bad Request", "collections: not a parameter of a collection's items", "invalid-parameter");
    }
    auto request = catalog::parse_search_query(params);
    request.collections = {cid};
    reply(item_collection(ctx.catalog.search(request, ctx.viewer), req, base, nullptr));
    return true;
  }
  const std::string& iid = parts[3];
  if (n == 4) {
    require_get(req);
    auto item = ctx.catalog.item(cid, iid, ctx.viewer);
    if (!item) fail(404, "Not Found", fmt::format("item '{}' does not exist in collection '{}'", iid, cid));
    reply(json_reply(200, served_item(std::move(*item), base), kGeoJson));
    return true;
  }
  if (n == 6 && parts[4] == "assets") {
    require_get(req);
    auto item = ctx.catalog.item(cid, iid, ctx.viewer);
    if (!item) fail(404, "Not Found", fmt::format("item '{}' does not exist in collection '{}'", iid, cid));
    const json& assets = (*item)["assets"];
    if (!assets.contains(parts[5]))
      fail(404, "Not Found", fmt::format("item '{}' has no asset '{}'", iid, parts[5]));
    const std::string href = assets[parts[5]].value("href", "");
    if (href.rfind("/vsizip/", 0) == 0 || href.rfind("/vsitar/", 0) == 0) {
      reply(archive_member(req, href, assets[parts[5]].value("type", ""),
                           fmt::format("asset '{}' of item '{}'", parts[5], iid)));
      return true;
    }
    if (href.rfind("/vsi", 0) == 0) {
      fail(404, "Not Found",
           fmt::format("asset '{}' of item '{}' is not stored here: {}", parts[5], iid, href));
    }
    if (href.empty() || href[0] != '/') {
      fail(404, "Not Found",
           fmt::format("asset '{}' of item '{}' is not stored here: {}", parts[5], iid, href));
    }
    reply(ctx.send_file(req, fs::path(href)));
    return true;
  }
  return false;
}

json stac_landing_links(const std::string& base) {
  json search_post = link(base + "/search", "search", kGeoJson, "STAC search (POST)");
  search_post["method"] = "POST";
  json search_get = link(base + "/search", "search", kGeoJson, "STAC search");
  search_get["method"] = "GET";
  return {link(base + "/collections", "data", "application/json", "collections of the catalogue"),
          link(base + "/conformance", "conformance", "application/json", "conformance classes"), search_get,
          search_post,
          link(base + "/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables",
               "application/schema+json", "queryables")};
}

std::vector<std::string> stac_conformance_classes() {
  const std::string stac = "https://api.stacspec.org/v1.0.0/";
  return {stac + "core",
          stac + "collections",
          stac + "ogcapi-features",
          stac + "item-search",
          stac + "item-search#sort",
          stac + "item-search#fields",
          stac + "item-search#filter",
          stac + "item-search#free-text",
          stac + "ogcapi-features#fields",
          stac + "ogcapi-features#sort",
          "https://api.stacspec.org/v1.0.0-rc.1/item-search#filter",
          "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
          "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
          "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
          "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
          "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
          "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
          "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
          "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
          "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
          "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
          "http://www.opengis.net/spec/ogcapi-features-q/1.0/conf/free-text"};
}

json stac_openapi_paths() {
  const json problem = {{"description", "an exception document"}};
  auto entry = [&](const std::string& summary, const std::string& ok) {
    return json{{"summary", summary},
                {"responses", {{"200", {{"description", ok}}}, {"400", problem}, {"404", problem}}}};
  };
  auto param = [](const std::string& name, const std::string& in, const std::string& type, bool required) {
    return json{{"name", name}, {"in", in}, {"required", required}, {"schema", {{"type", type}}}};
  };
  const json search_params = {
      param("bbox", "query", "string", false),     param("intersects", "query", "string", false),
      param("datetime", "query", "string", false), param("collections", "query", "string", false),
      param("ids", "query", "string", false),      param("limit", "query", "integer", false),
      param("sortby", "query", "string", false),   param("fields", "query", "string", false),
      param("filter", "query", "string", false),   param("filter-lang", "query", "string", false),
      param("q", "query", "string", false),        param("aoi_cloud_cover", "query", "number", false),
      param("token", "query", "string", false)};
  json paths;
  paths["/collections"]["get"] = entry("the catalogue's collections", "Collections");
  paths["/collections/{collectionId}"]["get"] = entry("a collection", "Collection");
  paths["/collections/{collectionId}"]["parameters"] = {param("collectionId", "path", "string", true)};
  paths["/collections/{collectionId}/items"]["get"] =
      entry("items of a collection (bbox, datetime, limit)", "ItemCollection");
  paths["/collections/{collectionId}/items"]["get"]["parameters"] = search_params;
  paths["/collections/{collectionId}/items"]["post"] = entry("add items (administrators)", "ingest report");
  paths["/collections/{collectionId}/items"]["parameters"] = {param("collectionId", "path", "string", true)};
  paths["/collections/{collectionId}/items/{itemId}"]["get"] = entry("an item", "Item");
  paths["/collections/{collectionId}/items/{itemId}"]["parameters"] = {
      param("collectionId", "path", "string", true), param("itemId", "path", "string", true)};
  paths["/collections/{collectionId}/items/{itemId}/assets/{key}"]["get"] =
      entry("an asset's file", "the file");
  paths["/collections/{collectionId}/items/{itemId}/assets/{key}"]["parameters"] = {
      param("collectionId", "path", "string", true), param("itemId", "path", "string", true),
      param("key", "path", "string", true)};
  paths["/search"]["get"] = entry("STAC item search", "ItemCollection");
  paths["/search"]["get"]["parameters"] = search_params;
  paths["/search"]["post"] = entry("STAC item search (JSON body)", "ItemCollection");
  paths["/queryables"]["get"] = entry("properties a filter may name", "JSON Schema");
  paths["/searches"]["get"] = entry("the saved searches of the caller", "list of saved searches");
  paths["/searches"]["post"] =
      entry("save a STAC search (the body as POST /search takes it)", "the saved search");
  paths["/searches/{searchId}"]["get"] = entry("a saved search's definition", "the saved search");
  paths["/searches/{searchId}"]["patch"] =
      entry("publish or withdraw a saved search ({\"public\": bool})", "the saved search");
  paths["/searches/{searchId}"]["delete"] = entry("remove a saved search", "confirmation");
  paths["/searches/{searchId}"]["parameters"] = {param("searchId", "path", "string", true)};
  paths["/searches/{searchId}/items"]["get"] =
      entry("run a saved search (paged as /search)", "ItemCollection");
  paths["/searches/{searchId}/items"]["get"]["parameters"] = {param("limit", "query", "integer", false),
                                                              param("token", "query", "string", false)};
  paths["/searches/{searchId}/items"]["parameters"] = {param("searchId", "path", "string", true)};
  return paths;
}

}  // namespace deforma::service
