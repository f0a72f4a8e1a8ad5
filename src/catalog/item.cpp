// STAC Items as the catalogue stores them: validation of the 1.0 structure, what the tables index, the
// `fields` extension.
#include <ogr_api.h>
#include <ogr_geometry.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <memory>
#include <regex>

#include <fmt/format.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"

namespace deforma::catalog {
namespace {

using json = nlohmann::json;

bool is_number_array(const json& v, std::size_t n1, std::size_t n2) {
  if (!v.is_array() || (v.size() != n1 && v.size() != n2)) return false;
  return std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number(); });
}

std::optional<double> time_property(const json& properties, const char* key) {
  if (!properties.contains(key) || !properties[key].is_string()) return std::nullopt;
  return parse_rfc3339(properties[key].get<std::string>());
}

}  // namespace

std::optional<double> parse_rfc3339(const std::string& text) {
  // YYYY-MM-DD, then optionally [T t space]HH:MM:SS[.fff][Z|+HH:MM|-HH:MM]
  static const std::regex re(
      R"(^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?)?$)");
  std::smatch m;
  if (!std::regex_match(text, m, re)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  if (m[4].matched) {
    tm.tm_hour = std::stoi(m[4]);
    tm.tm_min = std::stoi(m[5]);
    tm.tm_sec = std::stoi(m[6]);
    if (tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) return std::nullopt;
    // A time without a zone is ambiguous in RFC 3339; STAC requires one, but a date-time from a file name
    // or metadata without it is UTC in every source deforma reads.
  }
  const int mday = tm.tm_mday;
  double seconds = static_cast<double>(timegm(&tm));
  if (tm.tm_mday != mday) return std::nullopt;  // 2021-02-30 normalised to March
  if (m[7].matched) seconds += std::stod("0" + m[7].str());
  if (m[8].matched && m[8].str() != "Z" && m[8].str() != "z") {
    const std::string z = m[8].str();
    const int sign = z[0] == '-' ? -1 : 1;
    const std::string digits = std::regex_replace(z.substr(1), std::regex(":"), "");
    const int hh = std::stoi(digits.substr(0, 2)), mm = std::stoi(digits.substr(2, 2));
    seconds -= sign * (hh * 3600.0 + mm * 60.0);
  }
  return seconds;
}

Blob geojson_to_wkb(const json& geometry, const std::string& what) {
  if (!geometry.is_object() || !geometry.contains("type")) {
    throw InvalidArgument(fmt::format("{}: expected a GeoJSON geometry object", what));
  }
  OGRGeometryH g = OGR_G_CreateGeometryFromJson(geometry.dump().c_str());
  if (!g) throw InvalidArgument(fmt::format("{}: not a valid GeoJSON geometry", what));
  std::unique_ptr<OGRGeometry> owned(OGRGeometry::FromHandle(g));
  if (owned->IsEmpty()) throw InvalidArgument(fmt::format("{}: the geometry is empty", what));
  Blob blob;
  blob.bytes.resize(static_cast<std::size_t>(owned->WkbSize()));
  owned->exportToWkb(wkbNDR, blob.bytes.data(), wkbVariantIso);
  return blob;
}

std::string stac_item_problem(const json& item) {
  if (!item.is_object()) return "not a JSON object";
  if (item.value("type", "") != "Feature") return "'type' must be \"Feature\"";
  if (!item.contains("stac_version") || !item["stac_version"].is_string()) return "'stac_version' is missing";
  const std::string version = item["stac_version"];
  if (version.rfind("1.", 0) != 0 && version.rfind("0.9", 0) != 0)
    return fmt::format("stac_version '{}' is not 1.x", version);
  if (!item.contains("id") || !item["id"].is_string() || item["id"].get<std::string>().empty())
    return "'id' must be a non-empty string";
  const std::string id = item["id"];
  if (id.find('/') != std::string::npos) return "'id' must not contain '/'";
  if (!item.contains("geometry")) return "'geometry' is missing (null is allowed)";
  const json& g = item["geometry"];
  if (!g.is_null()) {
    if (!g.is_object() || !g.contains("type") || !g["type"].is_string())
      return "'geometry' is not a GeoJSON geometry";
    if (!item.contains("bbox")) return "'bbox' is required when 'geometry' is not null";
    if (!is_number_array(item["bbox"], 4, 6)) return "'bbox' must be 4 or 6 numbers";
  }
  if (!item.contains("properties") || !item["properties"].is_object())
    return "'properties' must be an object";
  const json& p = item["properties"];
  if (!p.contains("datetime")) return "'properties.datetime' is missing (null is allowed with start/end)";
  if (p["datetime"].is_null()) {
    // deforma's rule for data with no known time at all (docs/catalog.md): marked, and then no range.
    const bool undated = p.contains("deforma:undated") && p["deforma:undated"] == true &&
                         !p.contains("start_datetime") && !p.contains("end_datetime");
    if (!undated && (!time_property(p, "start_datetime") || !time_property(p, "end_datetime")))
      return "'properties.datetime' is null: 'start_datetime' and 'end_datetime' are then required";
  } else if (!p["datetime"].is_string() || !parse_rfc3339(p["datetime"].get<std::string>())) {
    return fmt::format("'properties.datetime' ({}) is not an RFC 3339 date-time", p["datetime"].dump());
  }
  for (const char* key : {"start_datetime", "end_datetime"}) {
    if (p.contains(key) && !time_property(p, key))
      return fmt::format("'properties.{}' ({}) is not an RFC 3339 date-time", key, p[key].dump());
  }
  if (p.contains("eo:cloud_cover") && !p["eo:cloud_cover"].is_number())
    return "'properties.eo:cloud_cover' must be a number";
  if (!item.contains("links") || !item["links"].is_array()) return "'links' must be an array";
  for (const auto& l : item["links"]) {
    if (!l.is_object() || !l.contains("href") || !l["href"].is_string() || !l.contains("rel"))
      return "every link needs 'href' and 'rel'";
  }
  if (!item.contains("assets") || !item["assets"].is_object()) return "'assets' must be an object";
  for (const auto& [key, a] : item["assets"].items()) {
    if (!a.is_object() || !a.contains("href") || !a["href"].is_string())
      return fmt::format("asset '{}' has no 'href'", key);
  }
  if (item.contains("stac_extensions") && !item["stac_extensions"].is_array())
    return "'stac_extensions' must be an array";
  return "";
}

void normalise_item(json& item) {
  if (!item.is_object()) return;
  if (item.contains("properties") && item["properties"].is_object()) {
    json& p = item["properties"];
    // STAC 0.9 / 1.0.0-beta kept the collection inside properties.
    if (!item.contains("collection") && p.contains("collection") && p["collection"].is_string())
      item["collection"] = p["collection"];
  }
  if (!item.contains("links")) item["links"] = json::array();
  // Links are the server's to write (self, parent, collection, root): stored ones would point elsewhere.
  if (item["links"].is_array()) {
    json kept = json::array();
    for (const auto& l : item["links"]) {
      const std::string rel = l.is_object() ? l.value("rel", "") : "";
      if (rel != "self" && rel != "parent" && rel != "collection" && rel != "root") kept.push_back(l);
    }
    item["links"] = kept;
  }
  if (item.contains("geometry") && !item["geometry"].is_null() && !item.contains("bbox")) {
    // A bbox is required with a geometry; derive it rather than refusing an otherwise complete item.
    try {
      const Blob wkb = geojson_to_wkb(item["geometry"], "geometry");
      OGRGeometry* g = nullptr;
      if (OGRGeometryFactory::createFromWkb(wkb.bytes.data(), nullptr, &g,
                                            static_cast<int>(wkb.bytes.size())) == OGRERR_NONE) {
        OGREnvelope e;
        g->getEnvelope(&e);
        item["bbox"] = {e.MinX, e.MinY, e.MaxX, e.MaxY};
        delete g;
      }
    } catch (const InvalidArgument&) {
      // reported by the validation
    }
  }
}

ItemIndex index_item(const json& item) {
  ItemIndex index;
  const json& p = item["properties"];
  index.datetime = time_property(p, "datetime");
  index.start = time_property(p, "start_datetime");
  index.end = time_property(p, "end_datetime");
  if (!index.start) index.start = index.datetime;
  if (!index.end) index.end = index.datetime;
  if (!index.datetime) index.datetime = index.start;
  if (p.contains("eo:cloud_cover") && p["eo:cloud_cover"].is_number())
    index.cloud = p["eo:cloud_cover"].get<double>();
  if (!item["geometry"].is_null()) {
    index.wkb =
        geojson_to_wkb(item["geometry"], fmt::format("item '{}': geometry", item["id"].get<std::string>()));
    const json& b = item["bbox"];
    const bool three_d = b.size() == 6;
    std::array<double, 4> box{b[0].get<double>(), b[1].get<double>(), b[three_d ? 3 : 2].get<double>(),
                              b[three_d ? 4 : 3].get<double>()};
    // A footprint across the antimeridian (west > east) is indexed over all longitudes: the exact test on
    // the geometry decides.
    if (box[0] > box[2]) {
      box[0] = -180;
      box[2] = 180;
    }
    index.bbox = box;
  }
  return index;
}

json apply_fields(json item, const SearchRequest& request) {
  if (request.fields_include.empty() && request.fields_exclude.empty()) return item;
  auto split_path = [](const std::string& path) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    // "properties.eo:cloud_cover" -> properties / eo:cloud_cover (only the first dot separates).
    const auto dot = path.find('.');
    if (dot == std::string::npos) return std::vector<std::string>{path};
    parts.push_back(path.substr(start, dot));
    parts.push_back(path.substr(dot + 1));
    return parts;
  };
  if (!request.fields_include.empty()) {
    json out = json::object();
    // What makes it still a STAC Item is kept.
    for (const char* k : {"type", "stac_version", "id", "collection", "links"}) {
      if (item.contains(k)) out[k] = item[k];
    }
    for (const auto& path : request.fields_include) {
      const auto parts = split_path(path);
      if (!item.contains(parts[0])) continue;
      if (parts.size() == 1) {
        out[parts[0]] = item[parts[0]];
      } else if (item[parts[0]].is_object() && item[parts[0]].contains(parts[1])) {
        out[parts[0]][parts[1]] = item[parts[0]][parts[1]];
      }
    }
    item = std::move(out);
  }
  for (const auto& path : request.fields_exclude) {
    const auto parts = split_path(path);
    if (parts.size() == 1) {
      item.erase(parts[0]);
    } else if (item.contains(parts[0]) && item[parts[0]].is_object()) {
      item[parts[0]].erase(parts[1]);
    }
  }
  return item;
}

}  // namespace deforma::catalog
