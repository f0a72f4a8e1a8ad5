#include "service/map_routes.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <cpl_vsi.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/error.hpp"
#include "deforma/maps/capabilities.hpp"
#include "deforma/maps/points.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/maps/tms.hpp"
#include "service/request.hpp"

namespace deforma::service {
namespace {

using json = nlohmann::json;

constexpr int kMaxLayerItems = 1000;       // items per collection listed as layers or drawn in a mosaic
constexpr int kMaxMosaicItems = 100;       // items drawn in one mosaic tile
constexpr std::size_t kMaxWmsLayers = 32;  // layers composed in one WMS GetMap
constexpr int kStyleItems = 10;            // items of a search looked at for its mosaic's style

HttpResponse bytes_response(std::string body, const std::string& type, const MapViewer& viewer) {
  HttpResponse res;
  res.body = std::move(body);
  res.content_type = type;
  // Public layers may sit in shared caches; what a key opened stays in the caller's own cache.
  res.headers.emplace_back("Cache-Control",
                           viewer.user.empty() ? "public, max-age=300" : "private, max-age=300");
  res.headers.emplace_back("Access-Control-Allow-Origin", "*");
  return res;
}

HttpResponse json_reply(const json& body, const MapViewer& viewer) {
  return bytes_response(body.dump(), "application/json", viewer);
}

int parse_int(const std::string& text, const std::string& what) {
  int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    fail(400, "Bad Request", fmt::format("{} '{}' is not an integer", what, text), "invalid-parameter");
  return v;
}

double parse_double(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(400, "Bad Request", fmt::format("{} '{}' is not a number", what, text), "invalid-parameter");
}

// "7.png" -> (7, "png"); the extension must be one of `allowed`.
std::pair<int, std::string> split_extension(const std::string& last,
                                            const std::vector<std::string>& allowed) {
  const auto dot = last.rfind('.');
  const std::string ext = dot == std::string::npos ? "" : last.substr(dot + 1);
  if (std::find(allowed.begin(), allowed.end(), ext) == allowed.end())
    fail(404, "Not Found",
         fmt::format("'{}': expected a tile row with extension {}", last, fmt::join(allowed, " or ")));
  return {parse_int(last.substr(0, dot), "tile row"), ext};
}

// "a,,b" -> {"a", "", "b"} (WMS STYLES keeps a place for every layer).
std::vector<std::string> split_keep_empty(const std::string& text) {
  std::vector<std::string> out{""};
  for (char ch : text) {
    if (ch == ',') {
      out.emplace_back();
    } else if (ch != ' ') {
      out.back() += ch;
    }
  }
  return out;
}

// WMS BGCOLOR: 0xRRGGBB (white when absent).
render::Rgb parse_bgcolor(const std::string& text) {
  if (text.empty()) return {255, 255, 255};
  unsigned value = 0;
  const bool prefixed = text.size() == 8 && (text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0);
  const auto [end, ec] = prefixed ? std::from_chars(text.data() + 2, text.data() + text.size(), value, 16)
                                  : std::from_chars_result{};
  if (!prefixed || ec != std::errc() || end != text.data() + text.size())
    throw InvalidArgument(fmt::format("BGCOLOR '{}': expected 0xRRGGBB", text));
  return {static_cast<unsigned char>(value >> 16), static_cast<unsigned char>((value >> 8) & 0xff),
          static_cast<unsigned char>(value & 0xff)};
}

std::string content_type_of(const std::string& format) {
  return format == "webp" ? "image/webp" : "image/png";
}

std::string date_of(const maps::MapItem& item) {
  return item.datetime.substr(0, std::min<std::size_t>(10, item.datetime.size()));
}

}  // namespace

struct MapRoutes::Impl {
  MapCatalog catalog;

  maps::MapItem item(const std::string& collection, const std::string& id, const MapViewer& viewer) {
    auto found = catalog.item ? catalog.item(collection, id, viewer) : std::nullopt;
    if (!found)
      fail(404, "Not Found", fmt::format("item '{}' of collection '{}' does not exist", id, collection),
           "not-found");
    auto m = maps::map_item(*found);
    // An asset the server does not read (a member name climbing out of its archive...) is the item's
    // fault, not the caller's, and no server error either: the item has nothing to draw here.
    if (m.rasters.empty() && m.point_assets.empty() && !m.refused_assets.empty())
      fail(404, "Not Found",
           fmt::format("asset '{}' of item '{}' is not served: {}", m.refused_assets.front().first, id,
                       m.refused_assets.front().second),
           "not-found");
    // A file gone (or a member its archive does not hold) is a resource gone: 404 naming the asset.
    if (const auto* r = missing_raster(m))
      fail(404, "Not Found",
           fmt::format("asset '{}' of item '{}' {}", r->key, id,
                       r->href.rfind("/vsi", 0) == 0 ? "lies inside an archive that does not hold it"
                                                     : "is missing from the server's files"),
           "not-found");
    return m;
  }

  // The first raster asset of `m` whose file (or archive member) is not there; nullptr when all are.
  static const maps::RasterAsset* missing_raster(const maps::MapItem& m) {
    for (const auto& r : m.rasters) {
      VSIStatBufL st;
      if (VSIStatL(r.href.c_str(), &st) != 0 || VSI_ISDIR(st.st_mode)) return &r;
    }
    return nullptr;
  }

  // Whether a mosaic draws `m`: it has raster assets and all are there (a product whose file is gone is
  // left out of the layer rather than failing every tile of it).
  static bool drawable(const maps::MapItem& m) {
    if (m.rasters.empty()) return false;
    if (const auto* r = missing_raster(m)) {
      spdlog::debug("maps: item {} of {} left out of its mosaic: asset '{}' is missing", m.id, m.collection,
                    r->key);
      return false;
    }
    return true;
  }

  // The collection's raster items (for a mosaic), most recent first; 404 when the viewer sees none.
  std::vector<maps::MapItem> mosaic_items(const std::string& collection,
                                          const std::optional<maps::Bounds>& lonlat, int limit,
                                          const MapViewer& viewer) {
    std::optional<std::array<double, 4>> bbox;
    if (lonlat) bbox = std::array<double, 4>{lonlat->min_x, lonlat->min_y, lonlat->max_x, lonlat->max_y};
    std::vector<maps::MapItem> out;
    for (const auto& j :
         catalog.items ? catalog.items(collection, bbox, limit, viewer) : std::vector<json>{}) {
      auto m = maps::map_item(j);
      if (drawable(m)) out.push_back(std::move(m));
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.datetime > b.datetime; });
    return out;
  }

  void require_collection(const std::string& collection, const MapViewer& viewer) {
    const auto ids = catalog.collections ? catalog.collections(viewer) : std::vector<std::string>{};
    if (std::find(ids.begin(), ids.end(), collection) == ids.end())
      fail(404, "Not Found", fmt::format("collection '{}' does not exist", collection), "not-found");
  }

  // ------------------------------------------------------------------ layers
  std::vector<maps::LayerInfo> layers(const MapViewer& viewer) {
    std::vector<maps::LayerInfo> out;
    for (const auto& c : catalog.collections ? catalog.collections(viewer) : std::vector<std::string>{}) {
      std::vector<maps::MapItem> items;
      try {
        items = mosaic_items(c, std::nullopt, kMaxLayerItems, viewer);
      } catch (const std::exception& e) {
        spdlog::warn("map layers: collection {}: {}", c, e.what());
        continue;
      }
      if (items.empty()) continue;
      maps::LayerInfo mosaic{c,
                             fmt::format("{} (mosaic)", c),
                             "all the collection's items, the most recent on top",
                             {180, 90, -180, -90},
                             "/collections/" + c,
                             {},
                             ""};
      bool any = false;
      for (const auto& item : items) {
        std::optional<maps::Bounds> fp;
        std::vector<std::string> dates;
        try {
          fp = maps::footprint_lonlat(item);
          dates = maps::band_dates(item.rasters.front());
        } catch (const std::exception& e) {
          spdlog::warn("map layers: item {}/{}: {}", c, item.id, e.what());
          continue;
        }
        if (!fp || fp->min_x > fp->max_x) continue;  // no place on the map (or across 180°: not listed)
        maps::LayerInfo l{
            c + ":" + item.id, item.title, "", *fp, "/collections/" + c + "/items/" + item.id, dates, ""};
        out.push_back(l);
        any = true;
        mosaic.lonlat = {std::min(mosaic.lonlat.min_x, fp->min_x), std::min(mosaic.lonlat.min_y, fp->min_y),
                         std::max(mosaic.lonlat.max_x, fp->max_x), std::max(mosaic.lonlat.max_y, fp->max_y)};
        if (!item.datetime.empty()) mosaic.times.push_back(date_of(item));
      }
      std::sort(mosaic.times.begin(), mosaic.times.end());
      mosaic.times.erase(std::unique(mosaic.times.begin(), mosaic.times.end()), mosaic.times.end());
      if (any) out.push_back(mosaic);
    }
    return out;
  }

  // A layer name ("C:I" or "C") as the items to draw.
  std::vector<maps::MapItem> layer_items(const std::string& name, const MapViewer& viewer) {
    const auto colon = name.find(':');
    if (colon != std::string::npos) return {item(name.substr(0, colon), name.substr(colon + 1), viewer)};
    require_collection(name, viewer);
    auto items = mosaic_items(name, std::nullopt, kMaxLayerItems, viewer);
    if (items.empty())
      fail(404, "Not Found", fmt::format("layer '{}' has no raster item", name), "not-found");
    return items;
  }

  // One tile of a collection drawn as a mosaic. The style (scale, colours) is the collection's most recent
  // item's, for every tile alike.
  std::string collection_tile(const std::string& c, maps::StyleOptions o, const maps::TileMatrixSet& tms,
                              int z, int x, int y, const MapViewer& viewer) {
    require_collection(c, viewer);
    const auto all = mosaic_items(c, std::nullopt, kMaxLayerItems, viewer);
    if (all.empty()) return maps::empty_image(o.tile_size, o.tile_size, o.format);
    const auto first = maps::resolve_style(all.front(), o);
    o.rescale = std::make_pair(first.scale.min_value, first.scale.max_value);
    o.colormap = first.colormap;
    const auto lonlat = maps::to_lonlat(tms.gdal_crs, tms.tile_bounds(z, x, y));
    return maps::render_mosaic(mosaic_items(c, lonlat, kMaxMosaicItems, viewer), o, tms, z, x, y);
  }

  // ------------------------------------------------------------------ mosaics of a search
  // The raster items a STAC search finds (its parameters taken from the request), most recent first,
  // restricted to `lonlat` when given.
  std::vector<maps::MapItem> search_items(const HttpRequest& req, const std::optional<maps::Bounds>& lonlat,
                                          int limit, const MapViewer& viewer) {
    if (!catalog.search) fail(404, "Not Found", "this server has no catalogue search");
    std::vector<std::pair<std::string, std::string>> params;
    for (const auto& [k, v] : req.query) {
      // Paging, projection and ordering are the mosaic's own: the whole result, newest first.
      if (k != "limit" && k != "token" && k != "fields" && k != "sortby") params.emplace_back(k, v);
    }
    std::optional<std::array<double, 4>> bbox;
    if (lonlat) bbox = std::array<double, 4>{lonlat->min_x, lonlat->min_y, lonlat->max_x, lonlat->max_y};
    std::vector<maps::MapItem> out;
    for (const auto& j : catalog.search(params, bbox, limit, viewer)) {
      auto m = maps::map_item(j);
      if (drawable(m)) out.push_back(std::move(m));
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.datetime > b.datetime; });
    return out;
  }

  // GET /search/tiles/{tms}/{z}/{x}/{y}.{png|webp} and /search/legend.{png|json}: the items a STAC search
  // finds (collections, bbox, intersects, datetime, ids, filter, q) drawn as one layer, the most recent on
  // top. Here `datetime` is the search's (an instant or an interval): `../DATE` draws what existed at DATE.
  void search(const HttpRequest& req, const std::vector<std::string>& parts, const MapViewer& viewer,
              const Reply& reply) {
    auto style_query = req.query;
    style_query.erase("datetime");
    maps::StyleOptions o = maps::parse_style(style_query);
    const bool legend = parts.size() == 2 && (parts[1] == "legend.png" || parts[1] == "legend.json");
    const bool tile = parts.size() == 6 && parts[1] == "tiles";
    if (!legend && !tile)
      fail(404, "Not Found",
           "a search mosaic is /search/tiles/{tileMatrixSetId}/{z}/{x}/{y}.png or /search/legend.png|json");
    std::optional<maps::Style> first;
    try {
      // The style of the search's most recent item, for every tile alike.
      for (const auto& item : search_items(req, std::nullopt, kStyleItems, viewer)) {
        first = maps::resolve_style(item, o);
        break;
      }
    } catch (const InvalidArgument& e) {
      fail(400, "Bad Request", e.what(), "invalid-parameter");
    }
    if (legend) {
      if (!first) fail(404, "Not Found", "the search finds no raster item", "not-found");
      if (parts[1] == "legend.json") return reply(json_reply(maps::legend_json(*first), viewer));
      return reply(bytes_response(maps::legend_png(*first), "image/png", viewer));
    }
    const auto& tms = maps::tile_matrix_set(parts[2]);
    const auto [y, ext] = split_extension(parts[5], {"png", "webp"});
    const int z = parse_int(parts[3], "zoom"), x = parse_int(parts[4], "tile column");
    tms.check_tile(z, x, y);
    o.format = ext;
    if (!first)
      return reply(
          bytes_response(maps::empty_image(o.tile_size, o.tile_size, ext), content_type_of(ext), viewer));
    o.rescale = std::make_pair(first->scale.min_value, first->scale.max_value);
    o.colormap = first->colormap;
    auto lonlat = maps::to_lonlat(tms.gdal_crs, tms.tile_bounds(z, x, y));
    if (lonlat && lonlat->min_x > lonlat->max_x) lonlat.reset();  // across 180°: let the drawing sort it out
    std::vector<maps::MapItem> items;
    try {
      items = search_items(req, lonlat, kMaxMosaicItems, viewer);
    } catch (const InvalidArgument& e) {
      fail(400, "Bad Request", e.what(), "invalid-parameter");
    }
    return reply(bytes_response(maps::render_mosaic(items, o, tms, z, x, y), content_type_of(ext), viewer));
  }

  // ------------------------------------------------------------------ WMTS KVP
  // /wmts?SERVICE=WMTS&REQUEST=GetCapabilities|GetTile&LAYER=..&STYLE=..&FORMAT=..&TILEMATRIXSET=..
  // &TILEMATRIX=..&TILEROW=..&TILECOL=..[&TIME=..]: the KVP binding of the same tiles as the REST URLs.
  void wmts_kvp(const HttpRequest& req, const MapViewer& viewer, const std::string& base,
                const Reply& reply) {
    std::multimap<std::string, std::string> q;  // KVP names are case-insensitive
    for (const auto& [k, v] : req.query) {
      std::string key = k;
      std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return std::tolower(ch); });
      q.emplace(key, v);
    }
    auto get = [&](const std::string& key) {
      auto it = q.find(key);
      return it == q.end() ? std::string() : it->second;
    };
    auto exception = [&](int status, const std::string& code, const std::string& locator,
                         const std::string& message) {
      HttpResponse res =
          bytes_response(maps::ows_exception(code, locator, message), "application/xml", viewer);
      res.status = status;
      reply(std::move(res));
    };
    auto required = [&](const std::string& key) -> std::optional<std::string> {
      const std::string v = get(key);
      if (v.empty()) return std::nullopt;
      return v;
    };
    const std::string request = get("request");
    if (!get("service").empty() && get("service") != "WMTS")
      return exception(400, "InvalidParameterValue", "SERVICE",
                       fmt::format("SERVICE '{}': expected WMTS", get("service")));
    if (request == "GetCapabilities")
      return reply(bytes_response(maps::wmts_capabilities(layers(viewer), base), "application/xml", viewer));
    if (request != "GetTile")
      return exception(request.empty() ? 400 : 501,
                       request.empty() ? "MissingParameterValue" : "OperationNotSupported", "REQUEST",
                       fmt::format("REQUEST '{}': expected GetCapabilities or GetTile", request));
    for (const std::string key :
         {"layer", "style", "format", "tilematrixset", "tilematrix", "tilerow", "tilecol"}) {
      if (!required(key)) {
        // STYLE may be empty (the default style); the others are needed.
        if (key == "style" && q.count("style")) continue;
        std::string upper = key;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](unsigned char ch) { return std::toupper(ch); });
        return exception(400, "MissingParameterValue", upper, fmt::format("GetTile needs {}", upper));
      }
    }
    const std::string format = get("format");
    if (format != "image/png" && format != "image/webp")
      return exception(400, "InvalidParameterValue", "FORMAT",
                       fmt::format("FORMAT '{}': expected image/png or image/webp", format));
    const maps::TileMatrixSet* tms = nullptr;
    try {
      tms = &maps::tile_matrix_set(get("tilematrixset"));
    } catch (const InvalidArgument& e) {
      return exception(400, "InvalidParameterValue", "TILEMATRIXSET", e.what());
    }
    auto integer = [&](const std::string& key, int& out) {
      const std::string text = get(key);
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
      return ec == std::errc() && end == text.data() + text.size();
    };
    int z = 0, row = 0, col = 0;
    for (const auto& [key, out] :
         {std::pair<std::string, int*>{"tilematrix", &z}, {"tilerow", &row}, {"tilecol", &col}}) {
      if (!integer(key, *out)) {
        std::string upper = key;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](unsigned char ch) { return std::toupper(ch); });
        return exception(400, "InvalidParameterValue", upper,
                         fmt::format("{} '{}': expected an integer", upper, get(key)));
      }
    }
    try {
      tms->check_tile(z, col, row);
    } catch (const InvalidArgument& e) {
      return exception(400, z < 0 || z > tms->max_zoom ? "InvalidParameterValue" : "TileOutOfRange",
                       z < 0 || z > tms->max_zoom ? "TILEMATRIX" : "TILEROW", e.what());
    }
    try {
      auto style_query = q;
      style_query.erase("datetime");
      if (!get("time").empty()) style_query.emplace("datetime", get("time"));
      maps::StyleOptions o = maps::parse_style(style_query);
      o.format = format == "image/webp" ? "webp" : "png";
      const std::string style = get("style");
      if (!style.empty() && style != "default") {
        const auto known = maps::colormap_names();
        if (std::find(known.begin(), known.end(), style) == known.end())
          return exception(
              400, "InvalidParameterValue", "STYLE",
              fmt::format("STYLE '{}': expected default or one of {}", style, fmt::join(known, ", ")));
        o.colormap = style;
      }
      const std::string layer = get("layer");
      const auto colon = layer.find(':');
      std::string bytes;
      try {
        if (colon == std::string::npos) {
          bytes = collection_tile(layer, o, *tms, z, col, row, viewer);
        } else {
          bytes = maps::render_tile(item(layer.substr(0, colon), layer.substr(colon + 1), viewer), o, *tms, z,
                                    col, row);
        }
      } catch (const ApiError& e) {
        if (e.status != 404) throw;
        return exception(400, "InvalidParameterValue", "LAYER",
                         fmt::format("LAYER '{}' is not a layer of this server: {}", layer, e.detail));
      }
      return reply(bytes_response(std::move(bytes), content_type_of(o.format), viewer));
    } catch (const ApiError& e) {
      return exception(e.status, "InvalidParameterValue", "", e.detail);
    } catch (const InvalidArgument& e) {
      return exception(400, "InvalidParameterValue", "", e.what());
    }
  }

  // ------------------------------------------------------------------ routes
  void handle(const HttpRequest& req, const std::vector<std::string>& parts, const MapViewer& viewer,
              const std::string& base, const Reply& reply) {
    if (req.method != "GET" && req.method != "HEAD")
      fail(405, "Method Not Allowed", "map resources are read with GET");
    if (parts[0] == "wmts") {
      if (parts.size() == 1) return wmts_kvp(req, viewer, base, reply);
      if (parts.size() == 3 && parts[1] == "1.0.0" && parts[2] == "WMTSCapabilities.xml")
        return reply(
            bytes_response(maps::wmts_capabilities(layers(viewer), base), "application/xml", viewer));
      fail(404, "Not Found",
           "WMTS offers /wmts/1.0.0/WMTSCapabilities.xml, the REST tile URLs it lists and KVP requests on "
           "/wmts");
    }
    if (parts[0] == "wms") return wms(req, viewer, base, reply);
    if (parts[0] == "search") return search(req, parts, viewer, reply);
    const std::string& c = parts[1];
    const maps::StyleOptions style = maps::parse_style(req.query);
    if (parts[2] == "items") {
      const std::string& i = parts[3];
      const std::string& what = parts[4];
      if (what == "tiles" && parts.size() == 9) {
        const auto& tms = maps::tile_matrix_set(parts[5]);
        const auto [y, ext] = split_extension(parts[8], {"png", "webp"});
        const int z = parse_int(parts[6], "zoom"), x = parse_int(parts[7], "tile column");
        const auto m = item(c, i, viewer);
        maps::StyleOptions o = style;
        o.format = ext;
        return reply(bytes_response(maps::render_tile(m, o, tms, z, x, y), content_type_of(ext), viewer));
      }
      if ((what == "legend.png" || what == "legend.json") && parts.size() == 5) {
        const auto s = maps::resolve_style(item(c, i, viewer), style);
        if (what == "legend.json") return reply(json_reply(maps::legend_json(s), viewer));
        return reply(bytes_response(maps::legend_png(s), "image/png", viewer));
      }
      if (what == "point" && parts.size() == 6) {
        const auto comma = parts[5].find(',');
        if (comma == std::string::npos)
          fail(400, "Bad Request", fmt::format("point '{}': expected LON,LAT", parts[5]),
               "invalid-parameter");
        const double lon = parse_double(parts[5].substr(0, comma), "longitude");
        const double lat = parse_double(parts[5].substr(comma + 1), "latitude");
        const json result = maps::point_query(item(c, i, viewer), lon, lat);
        auto f = req.query.find("f");
        if (f != req.query.end() && f->second == "csv")
          return reply(bytes_response(maps::point_query_csv(result), "text/csv", viewer));
        return reply(json_reply(result, viewer));
      }
      if (what == "vector-tiles" && parts.size() == 9) {
        const auto& tms = maps::tile_matrix_set(parts[5]);
        const auto [y, ext] = split_extension(parts[8], {"mvt", "pbf"});
        const int z = parse_int(parts[6], "zoom"), x = parse_int(parts[7], "tile column");
        const auto m = item(c, i, viewer);
        if (m.point_assets.empty())
          fail(404, "Not Found", fmt::format("item '{}' has no EGMS points", i), "not-found");
        return reply(bytes_response(maps::points_tile(m.point_assets.front().second, tms, z, x, y),
                                    "application/vnd.mapbox-vector-tile", viewer));
      }
      if (what == "points" && (parts.size() == 5 || parts.size() == 6)) {
        const auto m = item(c, i, viewer);
        if (m.point_assets.empty())
          fail(404, "Not Found", fmt::format("item '{}' has no EGMS points", i), "not-found");
        const std::string& product = m.point_assets.front().second;
        if (parts.size() == 6) {
          auto s = maps::point_series(product, parts[5]);
          if (!s)
            fail(404, "Not Found", fmt::format("item '{}' has no point '{}'", i, parts[5]), "not-found");
          return reply(json_reply(*s, viewer));
        }
        return reply(json_reply(
            features(req, product, base + "/collections/" + c + "/items/" + i + "/points"), viewer));
      }
    } else if (parts[2] == "tiles" && parts.size() == 7) {
      const auto& tms = maps::tile_matrix_set(parts[3]);
      const auto [y, ext] = split_extension(parts[6], {"png", "webp"});
      const int z = parse_int(parts[4], "zoom"), x = parse_int(parts[5], "tile column");
      maps::StyleOptions o = style;
      o.format = ext;
      return reply(bytes_response(collection_tile(c, o, tms, z, x, y, viewer), content_type_of(ext), viewer));
    } else if ((parts[2] == "legend.png" || parts[2] == "legend.json") && parts.size() == 3) {
      require_collection(c, viewer);
      auto all = mosaic_items(c, std::nullopt, kMaxLayerItems, viewer);
      if (all.empty())
        fail(404, "Not Found", fmt::format("collection '{}' has no raster item", c), "not-found");
      const auto s = maps::resolve_style(all.front(), style);
      if (parts[2] == "legend.json") return reply(json_reply(maps::legend_json(s), viewer));
      return reply(bytes_response(maps::legend_png(s), "image/png", viewer));
    }
    fail(404, "Not Found", fmt::format("no map resource {}", req.path));
  }

  json features(const HttpRequest& req, const std::string& product, const std::string& self) {
    std::optional<maps::Bounds> bbox;
    std::size_t limit = 100, offset = 0;
    if (auto it = req.query.find("bbox"); it != req.query.end()) {
      const auto v = split(it->second, ',');
      if (v.size() != 4)
        fail(400, "Bad Request", fmt::format("bbox '{}': expected west,south,east,north", it->second),
             "invalid-parameter");
      bbox = maps::Bounds{parse_double(v[0], "bbox"), parse_double(v[1], "bbox"), parse_double(v[2], "bbox"),
                          parse_double(v[3], "bbox")};
    }
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      const int l = parse_int(it->second, "limit");
      if (l < 1) fail(400, "Bad Request", "limit: expected 1 or more", "invalid-parameter");
      limit = static_cast<std::size_t>(std::min(l, 10000));
    }
    if (auto it = req.query.find("offset"); it != req.query.end()) {
      const int o = parse_int(it->second, "offset");
      if (o < 0) fail(400, "Bad Request", "offset: expected 0 or more", "invalid-parameter");
      offset = static_cast<std::size_t>(o);
    }
    json fc = maps::point_features(product, bbox, limit, offset);
    std::string query = fmt::format("limit={}", limit);
    if (bbox) query += fmt::format("&bbox={},{},{},{}", bbox->min_x, bbox->min_y, bbox->max_x, bbox->max_y);
    fc["links"] = json::array({{{"href", fmt::format("{}?{}&offset={}", self, query, offset)},
                                {"rel", "self"},
                                {"type", "application/geo+json"}}});
    if (offset + fc["numberReturned"].get<std::size_t>() < fc["numberMatched"].get<std::size_t>()) {
      fc["links"].push_back({{"href", fmt::format("{}?{}&offset={}", self, query, offset + limit)},
                             {"rel", "next"},
                             {"type", "application/geo+json"}});
    }
    return fc;
  }

  // ------------------------------------------------------------------ WMS
  void wms(const HttpRequest& req, const MapViewer& viewer, const std::string& base, const Reply& reply) {
    // WMS parameter names are case-insensitive.
    std::multimap<std::string, std::string> q;
    for (const auto& [k, v] : req.query) {
      std::string key = k;
      std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return std::tolower(ch); });
      q.emplace(key, v);
    }
    auto get = [&](const std::string& key) {
      auto it = q.find(key);
      return it == q.end() ? std::string() : it->second;
    };
    auto exception = [&](int status, const std::string& code, const std::string& message) {
      HttpResponse res = bytes_response(maps::wms_exception(code, message), "text/xml", viewer);
      res.status = status;
      reply(std::move(res));
    };
    const std::string request = get("request");
    try {
      if (!get("service").empty() && get("service") != "WMS" && request != "GetLegendGraphic")
        return exception(400, "InvalidParameterValue", "SERVICE must be WMS");
      if (request == "GetCapabilities")
        return reply(bytes_response(maps::wms_capabilities(layers(viewer), base), "text/xml", viewer));
      const std::string version = get("version").empty() ? "1.3.0" : get("version");
      if (request == "GetMap" || request == "GetFeatureInfo") {
        const std::string layer_list = request == "GetMap" ? get("layers") : get("query_layers");
        const auto names = split(layer_list, ',');
        if (names.empty() || (request == "GetFeatureInfo" && names.size() != 1))
          return exception(
              400, request == "GetMap" ? "MissingParameterValue" : "InvalidParameterValue",
              fmt::format("{}: expected {}, got '{}'", request == "GetMap" ? "LAYERS" : "QUERY_LAYERS",
                          request == "GetMap" ? "one or more layer names" : "one layer", layer_list));
        if (names.size() > kMaxWmsLayers)
          return exception(400, "InvalidParameterValue",
                           fmt::format("LAYERS: {} layers, at most {} per map", names.size(), kMaxWmsLayers));
        const std::string crs = get(version == "1.3.0" ? "crs" : "srs");
        maps::Bounds bounds;
        const std::string gdal_crs = maps::wms_crs_and_bounds(crs, get("bbox"), version, bounds);
        const int width = parse_int(get("width"), "WIDTH"), height = parse_int(get("height"), "HEIGHT");
        if (width < 1 || height < 1 || width > 4096 || height > 4096)
          return exception(400, "InvalidParameterValue", "WIDTH and HEIGHT: expected 1..4096");
        auto style_query = q;
        if (!get("time").empty()) style_query.emplace("datetime", get("time"));
        const maps::StyleOptions o = maps::parse_style(style_query);
        // STYLES has one entry per layer (all empty, or absent, for the default styles).
        std::vector<std::string> styles = split_keep_empty(get("styles"));
        if (styles.size() == 1 && styles.front().empty()) styles.assign(names.size(), "");
        if (request == "GetMap" && styles.size() != names.size())
          return exception(400, "InvalidParameterValue",
                           fmt::format("STYLES '{}': expected {} entries, one per layer of LAYERS '{}'",
                                       get("styles"), names.size(), layer_list));
        std::vector<maps::MapLayer> map_layers;
        for (std::size_t k = 0; k < names.size(); ++k) {
          maps::MapLayer layer;
          try {
            layer.items = layer_items(names[k], viewer);
          } catch (const ApiError& e) {
            return exception(404, "LayerNotDefined", fmt::format("layer '{}': {}", names[k], e.detail));
          }
          layer.options = o;
          if (request == "GetMap") {
            const std::string name = styles[k];
            if (!name.empty() && name != "default") {
              const auto known = maps::colormap_names();
              if (std::find(known.begin(), known.end(), name) == known.end())
                return exception(
                    400, "StyleNotDefined",
                    fmt::format("STYLES: '{}' is not a style of layer '{}' (expected default, {})", name,
                                names[k], fmt::join(known, ", ")));
              layer.options.colormap = name;
            }
          }
          map_layers.push_back(std::move(layer));
        }
        if (request == "GetMap") {
          const std::string format = get("format").empty() ? "image/png" : get("format");
          if (format != "image/png" && format != "image/webp")
            return exception(400, "InvalidFormat",
                             fmt::format("FORMAT '{}': expected image/png or image/webp", format));
          const std::string ext = format == "image/webp" ? "webp" : "png";
          // TRANSPARENT=FALSE asks for an opaque map on BGCOLOR (white by default); otherwise what no layer
          // covers is transparent.
          std::string transparent = get("transparent");
          std::transform(transparent.begin(), transparent.end(), transparent.begin(),
                         [](unsigned char ch) { return std::toupper(ch); });
          if (!transparent.empty() && transparent != "TRUE" && transparent != "FALSE")
            return exception(400, "InvalidParameterValue",
                             fmt::format("TRANSPARENT '{}': expected TRUE or FALSE", get("transparent")));
          std::optional<render::Rgb> background;
          if (transparent == "FALSE") background = parse_bgcolor(get("bgcolor"));
          return reply(bytes_response(
              maps::render_layers(map_layers, gdal_crs, bounds, width, height, ext, background),
              content_type_of(ext), viewer));
        }
        const auto& items = map_layers.front().items;
        const std::string i_text = get(version == "1.3.0" ? "i" : "x"),
                          j_text = get(version == "1.3.0" ? "j" : "y");
        const int i = parse_int(i_text, "I"), j = parse_int(j_text, "J");
        if (i < 0 || j < 0 || i >= width || j >= height)
          return exception(400, "InvalidPoint",
                           fmt::format("I={} J={} is outside the {}x{} map", i, j, width, height));
        const double x = bounds.min_x + (i + 0.5) * bounds.width() / width;
        const double y = bounds.max_y - (j + 0.5) * bounds.height() / height;
        const auto point = maps::to_lonlat(gdal_crs, {x, y, x, y});
        if (!point)
          return exception(400, "InvalidPoint", "the point does not transform to longitude/latitude");
        json features = json::array();
        for (const auto& item : items) {  // most recent first: the first with a value is the one drawn
          json r = maps::point_query(item, point->min_x, point->min_y);
          const bool has_value = std::any_of(r["values"].begin(), r["values"].end(),
                                             [](const json& v) { return !v["value"].is_null(); });
          if (!has_value && items.size() > 1) continue;
          features.push_back(
              {{"type", "Feature"},
               {"id", item.collection + ":" + item.id},
               {"geometry", {{"type", "Point"}, {"coordinates", {point->min_x, point->min_y}}}},
               {"properties", r}});
          break;
        }
        return reply(bytes_response(json{{"type", "FeatureCollection"}, {"features", features}}.dump(),
                                    "application/json", viewer));
      }
      if (request == "GetLegendGraphic") {
        std::vector<maps::MapItem> items;
        try {
          items = layer_items(get("layer"), viewer);
        } catch (const ApiError& e) {
          return exception(404, "LayerNotDefined", e.detail);
        }
        const auto s = maps::resolve_style(items.front(), maps::parse_style(q));
        if (get("format") == "application/json") return reply(json_reply(maps::legend_json(s), viewer));
        return reply(bytes_response(maps::legend_png(s), "image/png", viewer));
      }
      return exception(
          400, "OperationNotSupported",
          fmt::format("REQUEST '{}': expected GetCapabilities, GetMap, GetFeatureInfo or GetLegendGraphic",
                      request));
    } catch (const ApiError& e) {
      return exception(e.status, "InvalidParameterValue", e.detail);
    } catch (const InvalidArgument& e) {
      return exception(400, "InvalidParameterValue", e.what());
    }
  }
};

MapCatalog map_catalog(catalog::Catalog& cat) {
  auto viewer_of = [](const MapViewer& v) { return catalog::Viewer{v.user, v.admin}; };
  MapCatalog m;
  m.item = [&cat, viewer_of](const std::string& c, const std::string& i, const MapViewer& v) {
    return cat.item(c, i, viewer_of(v));
  };
  m.items = [&cat, viewer_of](const std::string& c, const std::optional<std::array<double, 4>>& bbox,
                              int limit, const MapViewer& v) {
    catalog::SearchRequest r;
    r.collections = {c};
    r.bbox = bbox;
    r.limit = std::clamp(limit, 1, catalog::kMaxLimit);
    r.sortby = {{"datetime", false}};  // most recent first
    return cat.search(r, viewer_of(v)).items;
  };
  m.search = [&cat, viewer_of](const std::vector<std::pair<std::string, std::string>>& params,
                               const std::optional<std::array<double, 4>>& tile, int limit,
                               const MapViewer& v) {
    // `search_id`: a saved search (POST /searches) as the layer, its `datetime` replaced by the request's
    // when given (the layer at a chosen date); someone else's private search is 404 like a missing one.
    const auto saved_id =
        std::find_if(params.begin(), params.end(), [](const auto& p) { return p.first == "search_id"; });
    catalog::SearchRequest r;
    if (saved_id != params.end()) {
      const auto saved = cat.saved_search(saved_id->second, viewer_of(v));
      if (!saved)
        fail(404, "Not Found", fmt::format("saved search '{}' does not exist", saved_id->second),
             "not-found");
      nlohmann::json body = saved->body;
      for (const auto& [k, value] : params) {
        if (k == "datetime") body["datetime"] = value;
      }
      r = catalog::parse_search_json(body);
    } else {
      r = catalog::parse_search_query(params);
    }
    if (tile) {
      if (r.bbox) {
        // Both the search's box and the tile's (boxes across 180° are left to the search alone).
        auto& b = *r.bbox;
        if (b[0] <= b[2]) {
          b = {std::max(b[0], (*tile)[0]), std::max(b[1], (*tile)[1]), std::min(b[2], (*tile)[2]),
               std::min(b[3], (*tile)[3])};
          if (!(b[0] < b[2] && b[1] < b[3])) return std::vector<nlohmann::json>{};
        }
      } else if (r.intersects.is_null()) {
        r.bbox = tile;
      }
    }
    r.limit = std::clamp(limit, 1, catalog::kMaxLimit);
    r.offset = 0;
    r.fields_include.clear();
    r.fields_exclude.clear();
    r.sortby = {{"datetime", false}};  // most recent first
    return cat.search(r, viewer_of(v)).items;
  };
  m.collections = [&cat, viewer_of](const MapViewer& v) {
    std::vector<std::string> ids;
    for (const auto& c : cat.collections(viewer_of(v))) {
      if (c.contains("id") && c["id"].is_string()) ids.push_back(c["id"]);
    }
    return ids;
  };
  return m;
}

MapRoutes::MapRoutes(MapCatalog catalog) : impl_(std::make_unique<Impl>()) {
  impl_->catalog = std::move(catalog);
}
MapRoutes::~MapRoutes() = default;

bool MapRoutes::is_map_path(const std::vector<std::string>& parts) {
  if (parts.empty()) return false;
  if (parts[0] == "wmts" || parts[0] == "wms") return true;
  // Mosaics of a search: /search/tiles/... and /search/legend.* (the search itself is the catalogue's).
  if (parts[0] == "search" && parts.size() >= 2)
    return parts[1] == "tiles" || parts[1] == "legend.png" || parts[1] == "legend.json";
  if (parts[0] != "collections" || parts.size() < 3) return false;
  if (parts[2] == "tiles" || parts[2] == "legend.png" || parts[2] == "legend.json") return true;
  if (parts[2] != "items" || parts.size() < 5) return false;
  static const std::vector<std::string> item_routes{"tiles", "legend.png",   "legend.json",
                                                    "point", "vector-tiles", "points"};
  return std::find(item_routes.begin(), item_routes.end(), parts[4]) != item_routes.end();
}

void MapRoutes::handle(const HttpRequest& req, const std::vector<std::string>& parts, const MapViewer& viewer,
                       const std::string& base_url, const Reply& reply) {
  impl_->handle(req, parts, viewer, base_url, reply);
}

}  // namespace deforma::service
