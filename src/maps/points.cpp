#include "deforma/maps/points.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <list>
#include <memory>
#include <mutex>

#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include "deforma/core/error.hpp"
#include "deforma/core/gdal_error_trap.hpp"
#include "deforma/core/log.hpp"
#include "deforma/egms/product.hpp"

namespace deforma::maps {
namespace {

using json = nlohmann::json;

struct Points {
  std::string path;
  std::vector<std::string> pid;
  std::vector<double> lon, lat, velocity, velocity_std;
  std::vector<float> series;  // points x dates, mm
  std::vector<std::string> dates;
  std::size_t date_count = 0;
  // Coordinates in each tile matrix set's CRS, made on first use.
  std::mutex projected_mutex;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> projected;
};

std::shared_ptr<Points> load(const std::string& path) {
  static std::mutex mutex;
  static std::list<std::shared_ptr<Points>> cache;  // most recent first, a few products
  std::lock_guard lock(mutex);  // one load at a time: a product is large, two loads of one file waste
  for (auto it = cache.begin(); it != cache.end(); ++it) {
    if ((*it)->path == path) {
      auto p = *it;
      cache.erase(it);
      cache.push_front(p);
      return p;
    }
  }
  auto p = std::make_shared<Points>();
  p->path = path;
  auto reader = egms::ProductReader::open(path);
  const auto& layout = reader.layout();
  const int lat_col = layout.find(egms::column::kLatitude);
  const int lon_col = layout.find(egms::column::kLongitude);
  const int e_col = layout.require(egms::column::kEasting, "the map of points");
  const int n_col = layout.require(egms::column::kNorthing, "the map of points");
  const int v_col = layout.find(egms::column::kMeanVelocity);
  const int vs_col = layout.find(egms::column::kMeanVelocityStd);
  p->date_count = layout.date_count();
  for (int d : layout.dates) {
    const std::string s = egms::format_yyyymmdd(d);
    p->dates.push_back(s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2));
  }
  egms::PointChunk chunk;
  std::vector<double> easting, northing;
  while (reader.read(chunk, 20000)) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      p->pid.push_back(chunk.pid[i]);
      p->lat.push_back(lat_col >= 0 ? chunk.scalar(i, lat_col) : NAN);
      p->lon.push_back(lon_col >= 0 ? chunk.scalar(i, lon_col) : NAN);
      easting.push_back(chunk.scalar(i, e_col));
      northing.push_back(chunk.scalar(i, n_col));
      p->velocity.push_back(v_col >= 0 ? chunk.scalar(i, v_col) : NAN);
      p->velocity_std.push_back(vs_col >= 0 ? chunk.scalar(i, vs_col) : NAN);
      p->series.insert(p->series.end(), chunk.series_of(i), chunk.series_of(i) + chunk.date_count);
    }
  }
  // EGMS coordinates are EPSG:3035; lon/lat come from them when the product lacks the columns.
  if (lat_col < 0 || lon_col < 0) {
    OGRSpatialReferenceH laea = OSRNewSpatialReference(nullptr), wgs84 = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(laea, 3035);
    OSRImportFromEPSG(wgs84, 4326);
    OSRSetAxisMappingStrategy(laea, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(wgs84, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(laea, wgs84);
    p->lon = easting;
    p->lat = northing;
    if (ct) OCTTransform(ct, static_cast<int>(p->lon.size()), p->lon.data(), p->lat.data(), nullptr);
    if (ct) OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(laea);
    OSRDestroySpatialReference(wgs84);
  }
  p->projected["EPSG:3035"] = {std::move(easting), std::move(northing)};
  cache.push_front(p);
  if (cache.size() > 4) cache.pop_back();
  return p;
}

const std::pair<std::vector<double>, std::vector<double>>& projected(Points& p, const std::string& crs) {
  std::lock_guard lock(p.projected_mutex);
  auto it = p.projected.find(crs);
  if (it != p.projected.end()) return it->second;
  std::vector<double> x = p.lon, y = p.lat;
  if (crs != "OGC:CRS84") {
    OGRSpatialReferenceH from = OSRNewSpatialReference(nullptr), to = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(from, 4326);
    OSRSetFromUserInput(to, crs.c_str());
    OSRSetAxisMappingStrategy(from, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(to, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(from, to);
    if (ct) OCTTransform(ct, static_cast<int>(x.size()), x.data(), y.data(), nullptr);
    if (ct) OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(from);
    OSRDestroySpatialReference(to);
  }
  return p.projected.emplace(crs, std::make_pair(std::move(x), std::move(y))).first->second;
}

json number_or_null(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json series_of(const Points& p, std::size_t i) {
  json values = json::array(), sigma = json::array();
  for (std::size_t d = 0; d < p.date_count; ++d) {
    values.push_back(number_or_null(p.series[i * p.date_count + d]));
    sigma.push_back(nullptr);  // EGMS gives no per-date uncertainty
  }
  return {{"pid", p.pid[i]},
          {"lon", p.lon[i]},
          {"lat", p.lat[i]},
          {"dates", p.dates},
          {"values", values},
          {"sigma", sigma},
          {"units", "mm"},
          {"velocity", number_or_null(p.velocity[i])},
          {"velocity_sigma", number_or_null(p.velocity_std[i])},
          {"velocity_units", "mm/yr"}};
}

std::atomic<unsigned long> tile_counter{0};

}  // namespace

std::string points_tile(const std::string& product, const TileMatrixSet& tms, int zoom, int x, int y) {
  const Bounds tile = tms.tile_bounds(zoom, x, y);
  auto p = load(product);
  const auto& [px, py] = projected(*p, tms.gdal_crs);
  // Points within the tile and a margin (symbols drawn across the edge), nothing else is written.
  const double margin = tile.width() * 0.02;
  std::vector<std::size_t> inside;
  for (std::size_t i = 0; i < px.size(); ++i) {
    if (px[i] >= tile.min_x - margin && px[i] <= tile.max_x + margin && py[i] >= tile.min_y - margin &&
        py[i] <= tile.max_y + margin)
      inside.push_back(i);
  }
  if (inside.empty()) return {};
  ensure_gdal_initialized();
  GdalErrorTrap trap;
  GDALDriverH driver = GDALGetDriverByName("MVT");
  if (!driver) throw IoError("GDAL has no MVT driver: vector tiles are not available");
  const std::string dir = fmt::format("/vsimem/deforma_mvt_{}", tile_counter++);
  std::vector<std::string> options{"FORMAT=DIRECTORY", "COMPRESS=NO", fmt::format("MINZOOM={}", zoom),
                                   fmt::format("MAXZOOM={}", zoom)};
  if (tms.id != "WebMercatorQuad") {
    options.push_back(fmt::format("TILING_SCHEME={},{:.17g},{:.17g},{:.17g}", tms.gdal_crs, tms.origin_x,
                                  tms.origin_y, tms.cell_size_z0 * 256));
  }
  std::vector<char*> argv;
  for (auto& o : options) argv.push_back(o.data());
  argv.push_back(nullptr);
  GDALDatasetH ds = GDALCreate(driver, dir.c_str(), 0, 0, 0, GDT_Unknown, argv.data());
  if (!ds) throw IoError("cannot create a vector tile: " + trap.describe());
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  OSRSetFromUserInput(srs, tms.gdal_crs.c_str());
  OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
  OGRLayerH layer = GDALDatasetCreateLayer(ds, "points", srs, wkbPoint, nullptr);
  OSRDestroySpatialReference(srs);
  if (!layer) {
    GDALClose(ds);
    throw IoError("cannot create the points layer of a vector tile: " + trap.describe());
  }
  OGRFieldDefnH pid_field = OGR_Fld_Create("pid", OFTString);
  OGRFieldDefnH velocity_field = OGR_Fld_Create("velocity_mm_per_yr", OFTReal);
  OGR_L_CreateField(layer, pid_field, TRUE);
  OGR_L_CreateField(layer, velocity_field, TRUE);
  OGR_Fld_Destroy(pid_field);
  OGR_Fld_Destroy(velocity_field);
  OGRFeatureDefnH defn = OGR_L_GetLayerDefn(layer);
  for (std::size_t i : inside) {
    OGRFeatureH f = OGR_F_Create(defn);
    OGR_F_SetFieldString(f, 0, p->pid[i].c_str());
    if (std::isfinite(p->velocity[i])) OGR_F_SetFieldDouble(f, 1, p->velocity[i]);
    OGRGeometryH g = OGR_G_CreateGeometry(wkbPoint);
    OGR_G_SetPoint_2D(g, 0, px[i], py[i]);
    OGR_F_SetGeometryDirectly(f, g);
    const OGRErr err = OGR_L_CreateFeature(layer, f);
    OGR_F_Destroy(f);
    if (err != OGRERR_NONE) {
      GDALClose(ds);
      VSIRmdirRecursive(dir.c_str());
      throw IoError(
          fmt::format("{}: cannot write point {} to a vector tile: {}", product, p->pid[i], trap.describe()));
    }
  }
  GDALClose(ds);  // the tiles are written here
  const std::string file = fmt::format("{}/{}/{}/{}.pbf", dir, zoom, x, y);
  vsi_l_offset length = 0;
  GByte* bytes = VSIGetMemFileBuffer(file.c_str(), &length, FALSE);
  std::string result = bytes ? std::string(reinterpret_cast<const char*>(bytes), length) : std::string();
  VSIRmdirRecursive(dir.c_str());
  return result;
}

std::optional<json> point_series(const std::string& product, const std::string& pid) {
  auto p = load(product);
  for (std::size_t i = 0; i < p->pid.size(); ++i) {
    if (p->pid[i] == pid) return series_of(*p, i);
  }
  return std::nullopt;
}

std::optional<json> nearest_point_series(const std::string& product, double lon, double lat,
                                         double max_distance_m) {
  auto p = load(product);
  const auto& [e, n] = projected(*p, "EPSG:3035");
  double x = lon, y = lat;
  OGRSpatialReferenceH from = OSRNewSpatialReference(nullptr), to = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(from, 4326);
  OSRImportFromEPSG(to, 3035);
  OSRSetAxisMappingStrategy(from, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(to, OAMS_TRADITIONAL_GIS_ORDER);
  OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(from, to);
  const bool ok = ct && OCTTransform(ct, 1, &x, &y, nullptr);
  if (ct) OCTDestroyCoordinateTransformation(ct);
  OSRDestroySpatialReference(from);
  OSRDestroySpatialReference(to);
  if (!ok) return std::nullopt;
  std::size_t best = p->pid.size();
  double best_d2 = max_distance_m * max_distance_m;
  for (std::size_t i = 0; i < e.size(); ++i) {
    const double d2 = (e[i] - x) * (e[i] - x) + (n[i] - y) * (n[i] - y);
    if (d2 <= best_d2) {
      best_d2 = d2;
      best = i;
    }
  }
  if (best == p->pid.size()) return std::nullopt;
  return series_of(*p, best);
}

json point_features(const std::string& product, const std::optional<Bounds>& bbox, std::size_t limit,
                    std::size_t offset) {
  auto p = load(product);
  json features = json::array();
  std::size_t matched = 0;
  for (std::size_t i = 0; i < p->pid.size(); ++i) {
    if (bbox && !(p->lon[i] >= bbox->min_x && p->lon[i] <= bbox->max_x && p->lat[i] >= bbox->min_y &&
                  p->lat[i] <= bbox->max_y))
      continue;
    if (matched >= offset && features.size() < limit) {
      features.push_back({{"type", "Feature"},
                          {"id", p->pid[i]},
                          {"geometry", {{"type", "Point"}, {"coordinates", {p->lon[i], p->lat[i]}}}},
                          {"properties",
                           {{"pid", p->pid[i]},
                            {"velocity_mm_per_yr", number_or_null(p->velocity[i])},
                            {"velocity_std_mm_per_yr", number_or_null(p->velocity_std[i])}}}});
    }
    ++matched;
  }
  return {{"type", "FeatureCollection"},
          {"numberMatched", matched},
          {"numberReturned", features.size()},
          {"features", features}};
}

Bounds points_extent(const std::string& product, std::size_t* count) {
  auto p = load(product);
  if (count) *count = p->pid.size();
  if (p->pid.empty()) return {};
  return {*std::min_element(p->lon.begin(), p->lon.end()), *std::min_element(p->lat.begin(), p->lat.end()),
          *std::max_element(p->lon.begin(), p->lon.end()), *std::max_element(p->lat.begin(), p->lat.end())};
}

}  // namespace deforma::maps
