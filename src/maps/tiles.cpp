#include "deforma/maps/tiles.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include "deforma/core/error.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/gdal_error_trap.hpp"
#include "deforma/maps/expression.hpp"
#include "deforma/maps/points.hpp"
#include "deforma/render/map.hpp"
#include "maps/gdal_cache.hpp"

namespace deforma::maps {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool is_raster_media(const std::string& type) {
  return type.rfind("image/tiff", 0) == 0 || type.rfind("image/vnd.stac.geotiff", 0) == 0 ||
         type == "application/x-netcdf" || type == "image/jp2";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string href_path(std::string href) {
  if (href.rfind("file://", 0) == 0) href = href.substr(7);
  return href;
}

double parse_number(const std::string& text, const std::string& parameter) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(v)) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw InvalidArgument(fmt::format("parameter {}: '{}' is not a number", parameter, text));
  }
}

// -------------------------------------------------------------------------------- file descriptions
struct FileInfo {
  int width = 0;
  int height = 0;
  std::array<double, 6> gt{};
  bool georeferenced = false;
  std::string wkt;
  std::vector<AssetBand> bands;
  std::optional<Bounds> lonlat;  ///< footprint in lon/lat
};

OGRSpatialReferenceH make_srs(const std::string& text) {
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  if (OSRSetFromUserInput(srs, text.c_str()) != OGRERR_NONE) {
    OSRDestroySpatialReference(srs);
    throw InvalidArgument(fmt::format("'{}' is not a coordinate reference system GDAL knows", text));
  }
  OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
  return srs;
}

// Bounds of `b` in `from` transformed to `to` (densified edges); nullopt when the transform fails.
std::optional<Bounds> transform_bounds(const Bounds& b, OGRSpatialReferenceH from, OGRSpatialReferenceH to) {
  OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(from, to);
  if (!ct) return std::nullopt;
  Bounds out;
  const int ok = OCTTransformBounds(ct, b.min_x, b.min_y, b.max_x, b.max_y, &out.min_x, &out.min_y,
                                    &out.max_x, &out.max_y, 21);
  OCTDestroyCoordinateTransformation(ct);
  if (!ok || !std::isfinite(out.min_x) || !std::isfinite(out.max_y)) return std::nullopt;
  return out;
}

const FileInfo& file_info(const std::string& path) {
  // Shared by all threads: the description of a file does not change while the service runs.
  static std::mutex mutex;
  static std::map<std::string, FileInfo> infos;
  {
    std::lock_guard lock(mutex);
    if (auto it = infos.find(path); it != infos.end()) return it->second;
  }
  auto* ds = static_cast<GDALDatasetH>(detail::dataset(path));
  FileInfo info;
  info.width = GDALGetRasterXSize(ds);
  info.height = GDALGetRasterYSize(ds);
  const char* wkt = GDALGetProjectionRef(ds);
  info.georeferenced = GDALGetGeoTransform(ds, info.gt.data()) == CE_None && wkt && *wkt;
  if (info.georeferenced) info.wkt = wkt;
  for (int b = 1; b <= GDALGetRasterCount(ds); ++b) {
    GDALRasterBandH band = GDALGetRasterBand(ds, b);
    AssetBand ab;
    ab.index = b;
    ab.name = GDALGetDescription(band);
    ab.unit = GDALGetRasterUnitType(band);
    int has = 0;
    const double nodata = GDALGetRasterNoDataValue(band, &has);
    if (has) ab.nodata = nodata;
    info.bands.push_back(ab);
  }
  if (info.georeferenced) {
    Bounds extent;
    std::vector<double> xs, ys;
    for (double c : {0.0, 1.0 * info.width}) {
      for (double r : {0.0, 1.0 * info.height}) {
        xs.push_back(info.gt[0] + c * info.gt[1] + r * info.gt[2]);
        ys.push_back(info.gt[3] + c * info.gt[4] + r * info.gt[5]);
      }
    }
    extent = {*std::min_element(xs.begin(), xs.end()), *std::min_element(ys.begin(), ys.end()),
              *std::max_element(xs.begin(), xs.end()), *std::max_element(ys.begin(), ys.end())};
    io::GdalErrorTrap trap;  // an odd CRS leaves the footprint unknown, which only disables a shortcut
    OGRSpatialReferenceH from = make_srs(info.wkt);
    OGRSpatialReferenceH wgs84 = make_srs("EPSG:4326");
    info.lonlat = transform_bounds(extent, from, wgs84);
    OSRDestroySpatialReference(from);
    OSRDestroySpatialReference(wgs84);
  }
  std::lock_guard lock(mutex);
  return infos.emplace(path, std::move(info)).first->second;
}

bool lonlat_intersects(const Bounds& data, const Bounds& tile) {
  if (data.min_x <= data.max_x) return data.intersects(tile);
  // Data across the antimeridian: two pieces.
  return Bounds{data.min_x, data.min_y, 180, data.max_y}.intersects(tile) ||
         Bounds{-180, data.min_y, data.max_x, data.max_y}.intersects(tile);
}

// -------------------------------------------------------------------------------- colour maps
render::ColormapKind colormap_kind(const std::string& name) {
  const std::string n = lower(name);
  if (n == "sequential" || n == "viridis" || n == "speed") return render::ColormapKind::kSequential;
  if (n == "diverging" || n == "rdbu" || n == "displacement") return render::ColormapKind::kDiverging;
  throw InvalidArgument(fmt::format("parameter colormap: '{}' is not a colour map; expected one of {}", name,
                                    fmt::join(colormap_names(), ", ")));
}

std::string colormap_name(render::ColormapKind kind) {
  return kind == render::ColormapKind::kDiverging ? "diverging" : "sequential";
}

}  // namespace

std::vector<std::string> colormap_names() {
  return {"sequential", "viridis", "speed", "diverging", "rdbu", "displacement"};
}

// -------------------------------------------------------------------------------- items
std::string refused_href(const std::string& href) {
  const bool archive = href.rfind("/vsizip/", 0) == 0 || href.rfind("/vsitar/", 0) == 0;
  if (!archive && href.rfind("/vsi", 0) == 0)
    return "its href is neither a local file nor a member of a local zip or tar";
  // Any ".." component: in an archive member's name it would leave the archive (or name another file
  // through GDAL's path handling); a plain path with one is refused alike, catalogue paths being absolute.
  std::size_t start = archive ? href.find('/', 4) + 1 : 0;
  while (start <= href.size()) {
    std::size_t end = href.find_first_of("/\\", start);
    if (end == std::string::npos) end = href.size();
    if (href.compare(start, end - start, "..") == 0)
      return "its href climbs out of its folder or archive ('..')";
    start = end + 1;
  }
  if (archive && href.find("/vsi", 8) != std::string::npos)
    return "its href nests a virtual file system in an archive path";
  return {};
}

MapItem map_item(const json& item) {
  if (!item.is_object() || !item.contains("id") || !item["id"].is_string()) {
    throw FormatError("item: expected a STAC item (a JSON object with an 'id')");
  }
  MapItem m;
  m.json = item;
  m.id = item["id"];
  m.collection = item.value("collection", "");
  const json props = item.value("properties", json::object());
  m.title = props.value("title", m.id);
  if (props.contains("datetime") && props["datetime"].is_string())
    m.datetime = props["datetime"];
  else if (props.contains("start_datetime") && props["start_datetime"].is_string())
    m.datetime = props["start_datetime"];
  bool egms = lower(m.id).find("egms") != std::string::npos;
  for (const auto& [key, value] : props.items()) egms = egms || key.rfind("egms:", 0) == 0;
  const json assets = item.value("assets", json::object());
  for (const auto& [key, asset] : assets.items()) {
    if (!asset.is_object() || !asset.contains("href") || !asset["href"].is_string()) continue;
    const std::string href = href_path(asset["href"]);
    if (const std::string why = refused_href(href); !why.empty()) {
      m.refused_assets.emplace_back(key, why);
      continue;
    }
    const std::string type = asset.value("type", "");
    const std::string ext = lower(fs::path(href).extension().string());
    if ((type == "text/csv" || type == "application/zip" || ext == ".csv" || ext == ".zip") &&
        (egms || lower(fs::path(href).filename().string()).rfind("egms", 0) == 0)) {
      m.point_assets.emplace_back(key, href);
      continue;
    }
    const bool raster = is_raster_media(type) || asset.contains("raster:bands") ||
                        asset.contains("proj:shape") || (type.empty() && (ext == ".tif" || ext == ".tiff"));
    if (!raster) continue;
    const auto roles = asset.value("roles", json::array());
    if (std::find(roles.begin(), roles.end(), "thumbnail") != roles.end() ||
        std::find(roles.begin(), roles.end(), "overview") != roles.end())
      continue;
    RasterAsset r;
    r.key = key;
    r.href = href;
    r.title = asset.value("title", key);
    int index = 1;
    for (const auto& b : asset.value("raster:bands", json::array())) {
      AssetBand ab;
      ab.index = index++;
      ab.name = b.value("name", b.value("description", ""));
      ab.unit = b.value("unit", "");
      if (b.contains("nodata") && b["nodata"].is_number()) ab.nodata = b["nodata"].get<double>();
      r.bands.push_back(ab);
    }
    m.rasters.push_back(std::move(r));
  }
  return m;
}

// Completes the asset's bands from the file (names, units, nodata the JSON did not give).
static std::vector<AssetBand> bands_of(const RasterAsset& asset) {
  const FileInfo& info = file_info(asset.href);
  std::vector<AssetBand> bands = info.bands;
  for (std::size_t i = 0; i < bands.size() && i < asset.bands.size(); ++i) {
    if (!asset.bands[i].name.empty()) bands[i].name = asset.bands[i].name;
    if (!asset.bands[i].unit.empty()) bands[i].unit = asset.bands[i].unit;
    if (asset.bands[i].nodata) bands[i].nodata = asset.bands[i].nodata;
  }
  return bands;
}

std::optional<Bounds> footprint_lonlat(const MapItem& item) {
  std::optional<Bounds> all;
  for (const auto& r : item.rasters) {
    const auto& fp = file_info(r.href).lonlat;
    if (!fp) continue;
    if (!all) {
      all = fp;
    } else if (all->min_x <= all->max_x && fp->min_x <= fp->max_x) {
      all = Bounds{std::min(all->min_x, fp->min_x), std::min(all->min_y, fp->min_y),
                   std::max(all->max_x, fp->max_x), std::max(all->max_y, fp->max_y)};
    }
  }
  return all;
}

// -------------------------------------------------------------------------------- styles
StyleOptions parse_style(const std::multimap<std::string, std::string>& query) {
  StyleOptions o;
  auto one = [&](const std::string& key) -> std::optional<std::string> {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return it->second;
  };
  for (auto [it, end] = query.equal_range("assets"); it != end; ++it) {
    std::stringstream ss(it->second);
    for (std::string key; std::getline(ss, key, ',');) {
      if (!key.empty()) o.assets.push_back(key);
    }
  }
  if (auto v = one("bidx")) {
    const double b = parse_number(*v, "bidx");
    if (b < 1 || b != std::floor(b) || b > 65535)
      throw InvalidArgument(fmt::format("parameter bidx: '{}' is not a band number (1, 2, ...)", *v));
    o.band = static_cast<int>(b);
  }
  if (auto v = one("rescale")) {
    const auto comma = v->find(',');
    if (comma == std::string::npos)
      throw InvalidArgument(fmt::format("parameter rescale: '{}' is not 'min,max'", *v));
    const double lo = parse_number(v->substr(0, comma), "rescale");
    const double hi = parse_number(v->substr(comma + 1), "rescale");
    if (!(lo < hi)) throw InvalidArgument(fmt::format("parameter rescale: '{}': expected min < max", *v));
    o.rescale = std::make_pair(lo, hi);
  }
  if (auto v = one("colormap")) {
    colormap_kind(*v);  // validates
    o.colormap = lower(*v);
  }
  if (auto v = one("colormap_name")) {  // the name titiler clients send
    colormap_kind(*v);
    o.colormap = lower(*v);
  }
  if (auto v = one("expression")) {
    Expression::parse(*v);
    o.expression = *v;
  }
  if (auto v = one("units")) o.units = *v;
  if (auto v = one("tilesize")) {
    if (*v != "256" && *v != "512")
      throw InvalidArgument(fmt::format("parameter tilesize: '{}': expected 256 or 512", *v));
    o.tile_size = std::stoi(*v);
  }
  if (auto v = one("resampling")) {
    const std::string r = lower(*v);
    if (r != "nearest" && r != "bilinear" && r != "cubic" && r != "average")
      throw InvalidArgument(
          fmt::format("parameter resampling: '{}': expected nearest, bilinear, cubic or average", *v));
    o.resampling = r;
  }
  if (auto v = one("datetime")) {
    if (!v->empty() && *v != "..") {
      try {
        io::Date::parse(v->substr(0, 10));
      } catch (const Error&) {
        throw InvalidArgument(fmt::format("parameter datetime: '{}' is not an ISO 8601 date", *v));
      }
      o.datetime = *v;
    }
  }
  return o;
}

namespace {

// Robust limits of a style's value over the whole asset, from a coarse read (GDAL uses overviews).
render::ColorScale data_scale(const MapItem& item, const Style& style) {
  static std::mutex mutex;
  static std::map<std::string, render::ColorScale> scales;
  std::string key = style.options.expression;
  for (const auto& in : style.inputs) key += fmt::format("|{}#{}", item.rasters[in.asset].href, in.band);
  {
    std::lock_guard lock(mutex);
    if (auto it = scales.find(key); it != scales.end()) return it->second;
  }
  // The first asset's grid, at most 512 px across.
  const FileInfo& info = file_info(item.rasters[style.inputs.front().asset].href);
  const double factor = std::max(1.0, std::max(info.width, info.height) / 512.0);
  const int w = std::max(1, static_cast<int>(info.width / factor));
  const int h = std::max(1, static_cast<int>(info.height / factor));
  GridF values(w, h, NAN);
  if (info.georeferenced) {
    const double x1 = info.gt[0] + info.width * info.gt[1], y1 = info.gt[3] + info.height * info.gt[5];
    values = render_values(item, style, info.wkt,
                           {std::min(info.gt[0], x1), std::min(info.gt[3], y1), std::max(info.gt[0], x1),
                            std::max(info.gt[3], y1)},
                           w, h);
  }
  GridU8 valid(w, h, 0);
  bool any = false, negative = false;
  for (std::size_t i = 0; i < values.size(); ++i) {
    valid.data()[i] = std::isfinite(values.data()[i]) ? 1 : 0;
    any = any || valid.data()[i];
    negative = negative || (valid.data()[i] && values.data()[i] < 0);
  }
  render::ColorScale scale;
  if (any) {
    const bool diverging = style.options.colormap.empty()
                               ? negative
                               : colormap_kind(style.options.colormap) == render::ColormapKind::kDiverging;
    scale = diverging ? render::ColorScale::robust_diverging(values, valid, style.title, style.units)
                      : render::ColorScale::robust_sequential(values, valid, style.title, style.units);
  }
  std::lock_guard lock(mutex);
  if (scales.size() > 4096) scales.clear();  // bounded: keys come from requests
  scales[key] = scale;
  return scale;
}

}  // namespace

Style resolve_style(const MapItem& item, const StyleOptions& options) {
  Style style;
  style.options = options;
  if (item.rasters.empty()) {
    throw InvalidArgument(fmt::format("item '{}' has no raster asset to draw", item.id));
  }
  std::vector<std::size_t> chosen;
  for (const auto& key : options.assets) {
    auto it =
        std::find_if(item.rasters.begin(), item.rasters.end(), [&](const auto& r) { return r.key == key; });
    if (it == item.rasters.end()) {
      std::vector<std::string> keys;
      for (const auto& r : item.rasters) keys.push_back(r.key);
      throw InvalidArgument(fmt::format("parameter assets: item '{}' has no raster asset '{}' (it has {})",
                                        item.id, key, fmt::join(keys, ", ")));
    }
    chosen.push_back(static_cast<std::size_t>(it - item.rasters.begin()));
  }
  if (chosen.empty()) chosen.push_back(0);
  std::vector<std::string> units;
  if (!options.expression.empty()) {
    const Expression e = Expression::parse(options.expression);
    for (const auto& name : e.variables()) {
      Style::Input in;
      in.variable = name;
      bool found = false;
      // b3: band 3 of the first chosen asset; KEY_b3: band 3 of asset KEY; otherwise a band name.
      static const std::regex band_ref(R"((?:(.+)_)?b(\d+))");
      std::smatch m;
      if (std::regex_match(name, m, band_ref)) {
        std::size_t asset = chosen.front();
        if (m[1].matched) {
          auto it = std::find_if(item.rasters.begin(), item.rasters.end(),
                                 [&](const auto& r) { return r.key == m[1].str(); });
          if (it != item.rasters.end())
            asset = static_cast<std::size_t>(it - item.rasters.begin());
          else
            asset = item.rasters.size();
        }
        if (asset < item.rasters.size()) {
          const auto bands = bands_of(item.rasters[asset]);
          in.asset = asset;
          in.band = std::stoi(m[2].str());
          if (in.band < 1 || in.band > static_cast<int>(bands.size()))
            throw InvalidArgument(
                fmt::format("parameter expression: asset '{}' of item '{}' has no band {} (it has {})",
                            item.rasters[asset].key, item.id, in.band, bands.size()));
          units.push_back(bands[in.band - 1].unit);
          found = true;
        }
      }
      for (std::size_t a : chosen) {
        if (found) break;
        for (const auto& b : bands_of(item.rasters[a])) {
          if (lower(b.name) == lower(name)) {
            in.asset = a;
            in.band = b.index;
            units.push_back(b.unit);
            found = true;
            break;
          }
        }
      }
      for (std::size_t a = 0; a < item.rasters.size() && !found; ++a) {
        for (const auto& b : bands_of(item.rasters[a])) {
          if (lower(b.name) == lower(name)) {
            in.asset = a;
            in.band = b.index;
            units.push_back(b.unit);
            found = true;
            break;
          }
        }
      }
      if (!found)
        throw InvalidArgument(fmt::format(
            "parameter expression: '{}' is neither a band (b1, ASSET_b1) nor a band name of item '{}'", name,
            item.id));
      style.inputs.push_back(in);
    }
    if (style.inputs.empty()) throw InvalidArgument("parameter expression: uses no band");
    style.title = options.expression;
  } else {
    Style::Input in;
    in.asset = chosen.front();
    const auto bands = bands_of(item.rasters[in.asset]);
    in.band = options.band == 0 ? 1 : options.band;
    if (options.band == 0 && !options.datetime.empty()) {
      // A cube: the last date at or before the one asked (the first date when it is earlier than all).
      const auto dates = band_dates(item.rasters[in.asset]);
      for (std::size_t i = 0; i < dates.size(); ++i) {
        if (dates[i] <= options.datetime.substr(0, 10)) in.band = static_cast<int>(i) + 1;
      }
    }
    if (in.band > static_cast<int>(bands.size()))
      throw InvalidArgument(fmt::format("parameter bidx: asset '{}' of item '{}' has {} band(s), not {}",
                                        item.rasters[in.asset].key, item.id, bands.size(), in.band));
    const auto& b = bands[in.band - 1];
    style.title = b.name.empty() ? fmt::format("{} band {}", item.rasters[in.asset].key, in.band) : b.name;
    units.push_back(b.unit);
    style.inputs.push_back(in);
  }
  // Units: the inputs' common unit (hypot of two velocities is a velocity), else none.
  if (!units.empty() &&
      std::all_of(units.begin(), units.end(), [&](const auto& u) { return u == units.front(); }))
    style.units = units.front();
  if (!options.units.empty()) style.units = options.units;

  if (options.rescale) {
    style.scale.min_value = options.rescale->first;
    style.scale.max_value = options.rescale->second;
    style.scale.kind = options.colormap.empty() ? (options.rescale->first < 0 && options.rescale->second > 0
                                                       ? render::ColormapKind::kDiverging
                                                       : render::ColormapKind::kSequential)
                                                : colormap_kind(options.colormap);
  } else {
    style.scale = data_scale(item, style);
    if (!options.colormap.empty()) style.scale.kind = colormap_kind(options.colormap);
  }
  style.scale.title = style.title;
  style.scale.unit = style.units;
  style.colormap = colormap_name(style.scale.kind);
  return style;
}

std::optional<Bounds> to_lonlat(const std::string& crs, const Bounds& bounds) {
  io::GdalErrorTrap trap;
  OGRSpatialReferenceH from = make_srs(crs);
  OGRSpatialReferenceH wgs84 = make_srs("EPSG:4326");
  auto out = transform_bounds(bounds, from, wgs84);
  OSRDestroySpatialReference(from);
  OSRDestroySpatialReference(wgs84);
  return out;
}

std::vector<std::string> band_dates(const RasterAsset& asset) {
  std::vector<std::string> dates;
  for (const auto& b : bands_of(asset)) {
    if (b.name.size() != 10) return {};
    try {
      io::Date::parse(b.name);
    } catch (const Error&) {
      return {};
    }
    dates.push_back(b.name);
  }
  return dates;
}

// -------------------------------------------------------------------------------- rendering
GridF render_values(const MapItem& item, const Style& style, const std::string& crs, const Bounds& bounds,
                    int width, int height) {
  if (width < 1 || height < 1 || width > 8192 || height > 8192)
    throw InvalidArgument(fmt::format("image size {}x{}: expected 1..8192 pixels each way", width, height));
  // Group the inputs by asset: one warp per asset, of just the bands used.
  std::map<std::size_t, std::vector<int>> per_asset;
  for (const auto& in : style.inputs) {
    auto& bands = per_asset[in.asset];
    if (std::find(bands.begin(), bands.end(), in.band) == bands.end()) bands.push_back(in.band);
  }
  std::map<std::pair<std::size_t, int>, std::vector<float>> planes;
  const std::size_t count = static_cast<std::size_t>(width) * height;
  for (const auto& [asset_index, bands] : per_asset) {
    const RasterAsset& asset = item.rasters[asset_index];
    const FileInfo& info = file_info(asset.href);
    if (!info.georeferenced) {
      for (int b : bands) planes[{asset_index, b}].assign(count, NAN);
      continue;
    }
    auto* src = static_cast<GDALDatasetH>(detail::dataset(asset.href, bands));
    std::vector<std::string> args{"-of",
                                  "MEM",
                                  "-t_srs",
                                  crs,
                                  "-te",
                                  fmt::format("{:.17g}", bounds.min_x),
                                  fmt::format("{:.17g}", bounds.min_y),
                                  fmt::format("{:.17g}", bounds.max_x),
                                  fmt::format("{:.17g}", bounds.max_y),
                                  "-ts",
                                  std::to_string(width),
                                  std::to_string(height),
                                  "-r",
                                  style.options.resampling,
                                  "-ot",
                                  "Float32",
                                  "-dstnodata",
                                  "nan",
                                  "-q"};
    // Nodata the item declares but the file does not.
    const auto all_bands = bands_of(asset);
    std::string src_nodata;
    bool declared = false;
    for (int b : bands) {
      const auto& nd = all_bands[b - 1].nodata;
      src_nodata +=
          (src_nodata.empty() ? "" : " ") + (nd ? fmt::format("{:.17g}", *nd) : std::string("None"));
      declared = declared || nd.has_value();
    }
    if (declared) {
      args.push_back("-srcnodata");
      args.push_back(src_nodata);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    io::GdalErrorTrap trap;
    GDALWarpAppOptions* options = GDALWarpAppOptionsNew(argv.data(), nullptr);
    if (!options) throw InvalidArgument(fmt::format("cannot warp to '{}': {}", crs, trap.describe()));
    GDALDatasetH srcs[] = {src};
    int usage_error = 0;
    GDALDatasetH out = GDALWarp("", nullptr, 1, srcs, options, &usage_error);
    GDALWarpAppOptionsFree(options);
    if (!out) {
      // A tile whose corners do not transform (far outside the source CRS's domain) holds no data.
      for (int b : bands) planes[{asset_index, b}].assign(count, NAN);
      continue;
    }
    for (std::size_t i = 0; i < bands.size(); ++i) {
      auto& plane = planes[{asset_index, bands[i]}];
      plane.resize(count);
      if (GDALRasterIO(GDALGetRasterBand(out, static_cast<int>(i) + 1), GF_Read, 0, 0, width, height,
                       plane.data(), width, height, GDT_Float32, 0, 0) != CE_None) {
        GDALClose(out);
        throw IoError(fmt::format("{}: cannot read band {}: {}", asset.href, bands[i], trap.describe()));
      }
    }
    GDALClose(out);
  }
  GridF values(width, height, NAN);
  if (style.options.expression.empty()) {
    const auto& plane = planes.at({style.inputs[0].asset, style.inputs[0].band});
    std::copy(plane.begin(), plane.end(), values.data());
  } else {
    const Expression e = Expression::parse(style.options.expression);
    std::vector<const float*> inputs;
    for (const auto& in : style.inputs) inputs.push_back(planes.at({in.asset, in.band}).data());
    e.evaluate(inputs, count, values.data());
  }
  return values;
}

std::string encode_image(const GridF& values, const Style& style, const std::string& format) {
  std::vector<unsigned char> rgba(values.size() * 4, 0);
  const auto& map = render::Colormap::of(style.scale.kind);
  const double lo = style.scale.min_value, span = style.scale.max_value - style.scale.min_value;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float v = values.data()[i];
    if (!std::isfinite(v)) continue;
    const render::Rgb c = map.at((v - lo) / span);
    rgba[4 * i] = c.r;
    rgba[4 * i + 1] = c.g;
    rgba[4 * i + 2] = c.b;
    rgba[4 * i + 3] = 255;
  }
  return detail::encode_pixels(rgba.data(), values.width(), values.height(), 4, format);
}

std::string empty_image(int width, int height, const std::string& format) {
  static std::mutex mutex;
  static std::map<std::string, std::string> cache;
  const std::string key = fmt::format("{}x{}.{}", width, height, format);
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  std::vector<unsigned char> rgba(static_cast<std::size_t>(width) * height * 4, 0);
  std::string bytes = detail::encode_pixels(rgba.data(), width, height, 4, format);
  std::lock_guard lock(mutex);
  if (cache.size() < 64) cache[key] = bytes;
  return bytes;
}

namespace {

// Whether the item may have data in `bounds` of `crs` (false only when sure it has none).
bool may_cover(const MapItem& item, const std::string& crs, const Bounds& bounds) {
  const auto fp = footprint_lonlat(item);
  if (!fp) return !item.rasters.empty();
  io::GdalErrorTrap trap;
  OGRSpatialReferenceH from = make_srs(crs);
  OGRSpatialReferenceH wgs84 = make_srs("EPSG:4326");
  const auto tile = transform_bounds(bounds, from, wgs84);
  OSRDestroySpatialReference(from);
  OSRDestroySpatialReference(wgs84);
  if (!tile) return true;
  if (tile->min_x > tile->max_x) {  // the request crosses the antimeridian
    return lonlat_intersects(*fp, {tile->min_x, tile->min_y, 180, tile->max_y}) ||
           lonlat_intersects(*fp, {-180, tile->min_y, tile->max_x, tile->max_y});
  }
  return lonlat_intersects(*fp, *tile);
}

bool before_or_at(const std::string& datetime, const std::string& limit) {
  if (limit.empty()) return true;
  return datetime.substr(0, limit.size()) <= limit;
}

}  // namespace

namespace {

// The values of a mosaic of `items` over the map, with the style that colours them (the most recent
// item's, shared by all); nullopt when no item has data there.
std::optional<std::pair<GridF, Style>> mosaic_values(const std::vector<MapItem>& items,
                                                     const StyleOptions& options, const std::string& crs,
                                                     const Bounds& bounds, int width, int height) {
  std::vector<const MapItem*> order;
  for (const auto& item : items) {
    if (!item.rasters.empty() && before_or_at(item.datetime, options.datetime)) order.push_back(&item);
  }
  // Most recent on top: drawn first, later items only fill what is still empty.
  std::stable_sort(order.begin(), order.end(),
                   [](const MapItem* a, const MapItem* b) { return a->datetime > b->datetime; });
  if (order.empty()) return std::nullopt;
  const Style first = resolve_style(*order.front(), options);
  StyleOptions shared = options;
  shared.rescale = std::make_pair(first.scale.min_value, first.scale.max_value);
  shared.colormap = first.colormap;
  GridF values(width, height, NAN);
  std::size_t empty = values.size();
  bool drawn = false;
  for (const MapItem* item : order) {
    if (empty == 0) break;
    if (!may_cover(*item, crs, bounds)) continue;
    const Style style = item == order.front() ? first : resolve_style(*item, shared);
    const GridF v = render_values(*item, style, crs, bounds, width, height);
    empty = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values.data()[i])) values.data()[i] = v.data()[i];
      if (!std::isfinite(values.data()[i])) ++empty;
    }
    drawn = true;
  }
  if (!drawn || empty == values.size()) return std::nullopt;
  return std::make_pair(std::move(values), first);
}

void check_format(const std::string& format) {
  if (format != "png" && format != "webp")
    throw InvalidArgument(fmt::format("format '{}': expected png or webp", format));
}

}  // namespace

std::string render_map(const std::vector<MapItem>& items, const StyleOptions& options, const std::string& crs,
                       const Bounds& bounds, int width, int height) {
  check_format(options.format);
  auto drawn = mosaic_values(items, options, crs, bounds, width, height);
  if (!drawn) return empty_image(width, height, options.format);
  return encode_image(drawn->first, drawn->second, options.format);
}

std::string render_layers(const std::vector<MapLayer>& layers, const std::string& crs, const Bounds& bounds,
                          int width, int height, const std::string& format,
                          const std::optional<render::Rgb>& background) {
  check_format(format);
  const std::size_t count = static_cast<std::size_t>(width) * height;
  std::vector<unsigned char> rgba(count * 4, 0);
  if (background) {
    for (std::size_t i = 0; i < count; ++i) {
      rgba[4 * i] = background->r;
      rgba[4 * i + 1] = background->g;
      rgba[4 * i + 2] = background->b;
      rgba[4 * i + 3] = 255;
    }
  }
  bool any = false;
  for (const auto& layer : layers) {
    // Every layer's style is checked, even one with no data on this map: a wrong band is always an error.
    if (!layer.items.empty()) resolve_style(layer.items.front(), layer.options);
    const auto drawn = mosaic_values(layer.items, layer.options, crs, bounds, width, height);
    if (!drawn) continue;
    any = true;
    const auto& [values, style] = *drawn;
    const auto& map = render::Colormap::of(style.scale.kind);
    const double lo = style.scale.min_value, span = style.scale.max_value - style.scale.min_value;
    // Colours are opaque where there are data: an upper layer hides the lower ones there.
    for (std::size_t i = 0; i < count; ++i) {
      const float v = values.data()[i];
      if (!std::isfinite(v)) continue;
      const render::Rgb c = map.at((v - lo) / span);
      rgba[4 * i] = c.r;
      rgba[4 * i + 1] = c.g;
      rgba[4 * i + 2] = c.b;
      rgba[4 * i + 3] = 255;
    }
  }
  if (!any && !background) return empty_image(width, height, format);
  return detail::encode_pixels(rgba.data(), width, height, 4, format);
}

std::string render_mosaic(const std::vector<MapItem>& items, const StyleOptions& options,
                          const TileMatrixSet& tms, int zoom, int x, int y) {
  const Bounds bounds = tms.tile_bounds(zoom, x, y);
  return render_map(items, options, tms.gdal_crs, bounds, options.tile_size, options.tile_size);
}

std::string render_tile(const MapItem& item, const StyleOptions& options, const TileMatrixSet& tms, int zoom,
                        int x, int y) {
  // The style is checked even for a tile outside the data: a wrong band is an error on every tile.
  resolve_style(item, options);
  return render_mosaic({item}, options, tms, zoom, x, y);
}

// -------------------------------------------------------------------------------- legends
json legend_json(const Style& style, int stop_count) {
  json stops = json::array();
  const auto& map = render::Colormap::of(style.scale.kind);
  for (int i = 0; i < stop_count; ++i) {
    const double t = stop_count > 1 ? static_cast<double>(i) / (stop_count - 1) : 0.0;
    const render::Rgb c = map.at(t);
    stops.push_back({{"value", style.scale.min_value + t * (style.scale.max_value - style.scale.min_value)},
                     {"color", fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b)}});
  }
  return {{"title", style.title},         {"units", style.units},       {"min", style.scale.min_value},
          {"max", style.scale.max_value}, {"colormap", style.colormap}, {"stops", stops}};
}

std::string legend_png(const Style& style) {
  const render::RgbImage bar = render::render_color_bar(style.scale, 240);
  return detail::encode_pixels(bar.data(), bar.width(), bar.height(), 3, "png");
}

// -------------------------------------------------------------------------------- point queries
namespace {

// Value of every band of `path` at map point (x, y) of its CRS, given in lon/lat; nullopt outside.
std::optional<std::vector<double>> sample(const std::string& path, double lon, double lat) {
  const FileInfo& info = file_info(path);
  if (!info.georeferenced) return std::nullopt;
  io::GdalErrorTrap trap;
  OGRSpatialReferenceH wgs84 = make_srs("EPSG:4326");
  OGRSpatialReferenceH to = make_srs(info.wkt);
  OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(wgs84, to);
  double x = lon, y = lat;
  const bool ok = ct && OCTTransform(ct, 1, &x, &y, nullptr);
  if (ct) OCTDestroyCoordinateTransformation(ct);
  OSRDestroySpatialReference(wgs84);
  OSRDestroySpatialReference(to);
  if (!ok) return std::nullopt;
  double inv[6];
  if (!GDALInvGeoTransform(const_cast<double*>(info.gt.data()), inv)) return std::nullopt;
  const double col = inv[0] + x * inv[1] + y * inv[2];
  const double row = inv[3] + x * inv[4] + y * inv[5];
  if (!(col >= 0 && row >= 0 && col < info.width && row < info.height)) return std::nullopt;
  auto* ds = static_cast<GDALDatasetH>(detail::dataset(path));
  std::vector<double> values;
  for (const auto& b : info.bands) {
    float v = NAN;
    if (GDALRasterIO(GDALGetRasterBand(ds, b.index), GF_Read, static_cast<int>(col), static_cast<int>(row), 1,
                     1, &v, 1, 1, GDT_Float32, 0, 0) != CE_None)
      throw IoError(fmt::format("{}: cannot read band {}: {}", path, b.index, trap.describe()));
    values.push_back(b.nodata && v == static_cast<float>(*b.nodata) ? NAN : v);
  }
  return values;
}

json number_or_null(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

bool all_dates(const std::vector<AssetBand>& bands) {
  if (bands.empty()) return false;
  for (const auto& b : bands) {
    if (b.name.size() != 10) return false;
    try {
      io::Date::parse(b.name);
    } catch (const Error&) {
      return false;
    }
  }
  return true;
}

// The series of a `deforma invert` cube (timeseries_<c>.tif, its _sigma file and velocity.tif beside).
std::optional<json> cube_series(const RasterAsset& asset, double lon, double lat) {
  const auto bands = bands_of(asset);
  if (!all_dates(bands)) return std::nullopt;
  const auto values = sample(asset.href, lon, lat);
  json series{{"dates", json::array()},
              {"values", json::array()},
              {"sigma", json::array()},
              {"units", bands.front().unit}};
  const fs::path path(asset.href);
  std::optional<std::vector<double>> sigma;
  const fs::path sigma_path =
      path.parent_path() / (path.stem().string() + "_sigma" + path.extension().string());
  if (fs::exists(sigma_path)) sigma = sample(sigma_path.string(), lon, lat);
  for (std::size_t i = 0; i < bands.size(); ++i) {
    series["dates"].push_back(bands[i].name);
    series["values"].push_back(values ? number_or_null((*values)[i]) : json(nullptr));
    series["sigma"].push_back(sigma && i < sigma->size() ? number_or_null((*sigma)[i]) : json(nullptr));
  }
  static const std::regex cube_name(R"((.*)timeseries_([A-Za-z]+)\.tif)");
  std::smatch m;
  const std::string name = path.filename().string();
  series["velocity"] = nullptr;
  series["velocity_sigma"] = nullptr;
  series["velocity_units"] = "";
  if (std::regex_match(name, m, cube_name)) {
    const std::string component = m[2].str();
    series["component"] = component;
    const fs::path velocity = path.parent_path() / (m[1].str() + "velocity.tif");
    if (fs::exists(velocity)) {
      const auto vbands = file_info(velocity.string()).bands;
      const auto v = sample(velocity.string(), lon, lat);
      const std::string prefix = "velocity_" + component;
      for (const auto& b : vbands) {
        const bool is_std = b.name.rfind(prefix + "_std", 0) == 0;
        const bool is_value = !is_std && b.name.rfind(prefix, 0) == 0 &&
                              (b.name.size() == prefix.size() || b.name[prefix.size()] == '_');
        if (is_value) {
          series["velocity"] = v ? number_or_null((*v)[b.index - 1]) : json(nullptr);
          series["velocity_units"] = b.unit;
        } else if (is_std) {
          series["velocity_sigma"] = v ? number_or_null((*v)[b.index - 1]) : json(nullptr);
        }
      }
    }
  }
  return series;
}

std::string csv_field(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }
  return v.dump();
}

}  // namespace

json point_query(const MapItem& item, double lon, double lat) {
  if (!std::isfinite(lon) || !std::isfinite(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90)
    throw InvalidArgument(
        fmt::format("point {},{}: expected longitude -180..180 and latitude -90..90", lon, lat));
  json result{{"lon", lon}, {"lat", lat}, {"values", json::array()}};
  for (const auto& asset : item.rasters) {
    const auto bands = bands_of(asset);
    const auto values = sample(asset.href, lon, lat);
    for (const auto& b : bands) {
      result["values"].push_back(
          {{"asset", asset.key},
           {"band", b.index},
           {"name", b.name},
           {"units", b.unit},
           {"value", values ? number_or_null((*values)[b.index - 1]) : json(nullptr)}});
    }
    if (!result.contains("series")) {
      if (auto s = cube_series(asset, lon, lat)) result["series"] = *s;
    }
  }
  if (!result.contains("series")) {
    for (const auto& [key, href] : item.point_assets) {
      if (auto s = nearest_point_series(href, lon, lat, 100.0)) {
        result["series"] = *s;
        break;
      }
    }
  }
  return result;
}

std::string point_query_csv(const json& result) {
  std::string out = "asset,band,name,units,value\n";
  for (const auto& v : result.value("values", json::array())) {
    out += fmt::format("{},{},{},{},{}\n", csv_field(v["asset"]), csv_field(v["band"]), csv_field(v["name"]),
                       csv_field(v["units"]), csv_field(v["value"]));
  }
  if (result.contains("series")) {
    const json& s = result["series"];
    out += "\ndate,value,sigma\n";
    for (std::size_t i = 0; i < s["dates"].size(); ++i) {
      out += fmt::format("{},{},{}\n", csv_field(s["dates"][i]), csv_field(s["values"][i]),
                         i < s["sigma"].size() ? csv_field(s["sigma"][i]) : std::string());
    }
  }
  return out;
}

}  // namespace deforma::maps
