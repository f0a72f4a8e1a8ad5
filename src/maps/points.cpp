#include "deforma/maps/points.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <list>
#include <memory>
#include <mutex>

#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/gdal_error_trap.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::maps {
namespace {

using json = nlohmann::json;

// One tile matrix set's coordinates of a product's points, with their index.
struct Projected {
  std::vector<double> x, y;
  PointIndex index;
};

std::atomic<bool> index_enabled{true};

struct Points {
  std::string path;
  // The file as it was read: a product rewritten in place is read again.
  std::filesystem::file_time_type mtime;
  std::uintmax_t file_size = 0;
  std::vector<std::string> pid;
  std::vector<double> lon, lat, velocity, velocity_std;
  std::vector<float> series;  // points x dates, mm
  std::vector<std::string> dates;
  std::size_t date_count = 0;
  // Coordinates in each tile matrix set's CRS, made on first use.
  std::mutex projected_mutex;
  std::map<std::string, std::unique_ptr<Projected>> projected;
};

std::shared_ptr<Points> load(const std::string& path) {
  static std::mutex mutex;
  static std::list<std::shared_ptr<Points>> cache;  // most recent first, a few products
  std::lock_guard lock(mutex);  // one load at a time: a product is large, two loads of one file waste
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  const auto size = ec ? 0 : std::filesystem::file_size(path, ec);
  for (auto it = cache.begin(); it != cache.end(); ++it) {
    if ((*it)->path == path) {
      auto p = *it;
      cache.erase(it);
      if (p->mtime == mtime && p->file_size == size) {
        cache.push_front(p);
        return p;
      }
      break;  // changed since it was read (its index with it): read again
    }
  }
  auto p = std::make_shared<Points>();
  p->path = path;
  p->mtime = mtime;
  p->file_size = size;
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
  auto laea = std::make_unique<Projected>();
  laea->x = std::move(easting);
  laea->y = std::move(northing);
  laea->index = PointIndex(laea->x, laea->y);
  p->projected["EPSG:3035"] = std::move(laea);
  cache.push_front(p);
  if (cache.size() > 4) cache.pop_back();
  return p;
}

const Projected& projected(Points& p, const std::string& crs) {
  std::lock_guard lock(p.projected_mutex);
  auto it = p.projected.find(crs);
  if (it != p.projected.end()) return *it->second;
  auto out = std::make_unique<Projected>();
  out->x = p.lon;
  out->y = p.lat;
  if (crs != "OGC:CRS84") {
    OGRSpatialReferenceH from = OSRNewSpatialReference(nullptr), to = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(from, 4326);
    OSRSetFromUserInput(to, crs.c_str());
    OSRSetAxisMappingStrategy(from, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(to, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(from, to);
    if (ct) OCTTransform(ct, static_cast<int>(out->x.size()), out->x.data(), out->y.data(), nullptr);
    if (ct) OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(from);
    OSRDestroySpatialReference(to);
  }
  out->index = PointIndex(out->x, out->y);
  return *p.projected.emplace(crs, std::move(out)).first->second;
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

// -------------------------------------------------------------------------------- index
PointIndex::PointIndex(const std::vector<double>& x, const std::vector<double>& y) : x_(&x), y_(&y) {
  if (x.size() != y.size() || x.size() >= std::numeric_limits<std::uint32_t>::max())
    throw InvalidArgument(fmt::format("point index: {} x and {} y coordinates", x.size(), y.size()));
  double max_x = -INFINITY, max_y = -INFINITY;
  min_x_ = INFINITY;
  min_y_ = INFINITY;
  std::size_t count = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    min_x_ = std::min(min_x_, x[i]);
    min_y_ = std::min(min_y_, y[i]);
    max_x = std::max(max_x, x[i]);
    max_y = std::max(max_y, y[i]);
    ++count;
  }
  if (count == 0) {
    nx_ = ny_ = 0;
    start_.assign(1, 0);
    return;
  }
  // About 16 points per cell, cells about square, at most 4096 a side.
  const double w = std::max(max_x - min_x_, 1e-9), h = std::max(max_y - min_y_, 1e-9);
  const double cells = std::max(1.0, static_cast<double>(count) / 16);
  nx_ = static_cast<int>(std::clamp(std::ceil(std::sqrt(cells * w / h)), 1.0, 4096.0));
  ny_ = static_cast<int>(std::clamp(std::ceil(cells / nx_), 1.0, 4096.0));
  // Cells a little larger than the extent / count, so that the largest coordinate falls in the last cell.
  cell_w_ = w / nx_ * (1 + 1e-9);
  cell_h_ = h / ny_ * (1 + 1e-9);
  std::vector<std::uint32_t> cell_of(x.size(), std::numeric_limits<std::uint32_t>::max());
  start_.assign(static_cast<std::size_t>(nx_) * ny_ + 1, 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    const int cx = std::min(nx_ - 1, static_cast<int>((x[i] - min_x_) / cell_w_));
    const int cy = std::min(ny_ - 1, static_cast<int>((y[i] - min_y_) / cell_h_));
    cell_of[i] = static_cast<std::uint32_t>(cy) * nx_ + cx;
    ++start_[cell_of[i] + 1];
  }
  for (std::size_t c = 1; c < start_.size(); ++c) start_[c] += start_[c - 1];
  order_.resize(count);
  std::vector<std::uint32_t> fill(start_.begin(), start_.end() - 1);
  for (std::size_t i = 0; i < x.size(); ++i) {  // increasing i: each cell's points stay in index order
    if (cell_of[i] != std::numeric_limits<std::uint32_t>::max())
      order_[fill[cell_of[i]]++] = static_cast<std::uint32_t>(i);
  }
}

std::vector<std::size_t> PointIndex::query(const Bounds& b) const {
  std::vector<std::size_t> out;
  if (nx_ == 0 || !(b.min_x <= b.max_x) || !(b.min_y <= b.max_y)) return out;
  auto cell = [](double v, double origin, double size, int n) {
    const double c = std::floor((v - origin) / size);
    return static_cast<int>(std::clamp(c, 0.0, static_cast<double>(n - 1)));
  };
  if (b.max_x < min_x_ || b.max_y < min_y_ || b.min_x > min_x_ + cell_w_ * nx_ ||
      b.min_y > min_y_ + cell_h_ * ny_)
    return out;
  const int cx0 = cell(b.min_x, min_x_, cell_w_, nx_), cx1 = cell(b.max_x, min_x_, cell_w_, nx_);
  const int cy0 = cell(b.min_y, min_y_, cell_h_, ny_), cy1 = cell(b.max_y, min_y_, cell_h_, ny_);
  const auto& x = *x_;
  const auto& y = *y_;
  for (int cy = cy0; cy <= cy1; ++cy) {
    for (int cx = cx0; cx <= cx1; ++cx) {
      const std::size_t c = static_cast<std::size_t>(cy) * nx_ + cx;
      for (std::uint32_t k = start_[c]; k < start_[c + 1]; ++k) {
        const std::uint32_t i = order_[k];
        if (x[i] >= b.min_x && x[i] <= b.max_x && y[i] >= b.min_y && y[i] <= b.max_y) out.push_back(i);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// -------------------------------------------------------------------------------- tiles
namespace {

std::atomic<std::size_t> tile_budget{kPointsTileBudget};

// One vector tile being written by GDAL's MVT driver into a /vsimem/ folder, layer `points`.
class MvtTile {
 public:
  MvtTile(const std::string& product, const TileMatrixSet& tms, int zoom, int x, int y)
      : product_(product), zoom_(zoom), x_(x), y_(y) {
    io::ensure_gdal_initialized();
    GDALDriverH driver = GDALGetDriverByName("MVT");
    if (!driver) throw IoError("GDAL has no MVT driver: vector tiles are not available");
    dir_ = fmt::format("/vsimem/deforma_mvt_{}", tile_counter++);
    // BUFFER: GDAL's writer drops what lies more than 80 of the tile's 4096 units outside it by default,
    // less than the 2% margin (82 units) points_tile selects: 128 keeps every point it was given.
    std::vector<std::string> options{"FORMAT=DIRECTORY", "COMPRESS=NO", "BUFFER=128",
                                     fmt::format("MINZOOM={}", zoom), fmt::format("MAXZOOM={}", zoom)};
    if (tms.id != "WebMercatorQuad") {
      options.push_back(fmt::format("TILING_SCHEME={},{:.17g},{:.17g},{:.17g}", tms.gdal_crs, tms.origin_x,
                                    tms.origin_y, tms.cell_size_z0 * 256));
    }
    std::vector<char*> argv;
    for (auto& o : options) argv.push_back(o.data());
    argv.push_back(nullptr);
    ds_ = GDALCreate(driver, dir_.c_str(), 0, 0, 0, GDT_Unknown, argv.data());
    if (!ds_) throw IoError("cannot create a vector tile: " + trap_.describe());
    OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
    OSRSetFromUserInput(srs, tms.gdal_crs.c_str());
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    layer_ = GDALDatasetCreateLayer(ds_, "points", srs, wkbPoint, nullptr);
    OSRDestroySpatialReference(srs);
    if (!layer_) {
      discard();
      throw IoError("cannot create the points layer of a vector tile: " + trap_.describe());
    }
  }
  MvtTile(const MvtTile&) = delete;
  MvtTile& operator=(const MvtTile&) = delete;
  ~MvtTile() { discard(); }

  void add_field(const char* name, OGRFieldType type, OGRFieldSubType subtype = OFSTNone) {
    OGRFieldDefnH field = OGR_Fld_Create(name, type);
    OGR_Fld_SetSubType(field, subtype);
    OGR_L_CreateField(layer_, field, TRUE);
    OGR_Fld_Destroy(field);
  }

  // A feature at (px, py) in the set's CRS; `fill` sets its fields. `what` names it in an error.
  template <typename Fill>
  void add_point(double px, double py, const std::string& what, Fill&& fill) {
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(layer_));
    fill(f);
    OGRGeometryH g = OGR_G_CreateGeometry(wkbPoint);
    OGR_G_SetPoint_2D(g, 0, px, py);
    OGR_F_SetGeometryDirectly(f, g);
    const OGRErr err = OGR_L_CreateFeature(layer_, f);
    OGR_F_Destroy(f);
    if (err != OGRERR_NONE)
      throw IoError(
          fmt::format("{}: cannot write {} to a vector tile: {}", product_, what, trap_.describe()));
  }

  // The tile's bytes (GDAL writes the tiles when the dataset closes).
  std::string finish() {
    GDALClose(ds_);
    ds_ = nullptr;
    const std::string file = fmt::format("{}/{}/{}/{}.pbf", dir_, zoom_, x_, y_);
    vsi_l_offset length = 0;
    GByte* bytes = VSIGetMemFileBuffer(file.c_str(), &length, FALSE);
    std::string result = bytes ? std::string(reinterpret_cast<const char*>(bytes), length) : std::string();
    discard();
    return result;
  }

 private:
  void discard() {
    if (ds_) GDALClose(ds_);
    ds_ = nullptr;
    if (!dir_.empty()) VSIRmdirRecursive(dir_.c_str());
    dir_.clear();
  }

  io::GdalErrorTrap trap_;
  std::string product_;
  int zoom_, x_, y_;
  std::string dir_;
  GDALDatasetH ds_ = nullptr;
  OGRLayerH layer_ = nullptr;
};

// The sums of one aggregation cell.
struct Cell {
  std::size_t count = 0, finite_velocities = 0;
  double sum_x = 0, sum_y = 0, sum_velocity = 0;
};

}  // namespace

namespace detail {
void set_points_index_enabled(bool enabled) {
  index_enabled = enabled;
}
void set_points_tile_budget(std::size_t budget) {
  tile_budget = budget;
}
}  // namespace detail

std::string points_tile(const std::string& product, const TileMatrixSet& tms, int zoom, int x, int y,
                        PointsTileInfo* info) {
  if (info) *info = {};
  const Bounds tile = tms.tile_bounds(zoom, x, y);
  auto p = load(product);
  const Projected& proj = projected(*p, tms.gdal_crs);
  const auto& px = proj.x;
  const auto& py = proj.y;
  // Points within the tile and a margin (symbols drawn across the edge), nothing else is written.
  const double margin = tile.width() * 0.02;
  const Bounds area{tile.min_x - margin, tile.min_y - margin, tile.max_x + margin, tile.max_y + margin};
  std::vector<std::size_t> inside;
  if (index_enabled) {
    inside = proj.index.query(area);
  } else {
    for (std::size_t i = 0; i < px.size(); ++i) {
      if (px[i] >= area.min_x && px[i] <= area.max_x && py[i] >= area.min_y && py[i] <= area.max_y)
        inside.push_back(i);
    }
  }
  if (inside.empty()) return {};
  if (inside.size() <= tile_budget) {
    MvtTile out(product, tms, zoom, x, y);
    out.add_field("pid", OFTString);
    out.add_field("velocity_mm_per_yr", OFTReal);
    for (std::size_t i : inside) {
      out.add_point(px[i], py[i], "point " + p->pid[i], [&](OGRFeatureH f) {
        OGR_F_SetFieldString(f, 0, p->pid[i].c_str());
        if (std::isfinite(p->velocity[i])) OGR_F_SetFieldDouble(f, 1, p->velocity[i]);
      });
    }
    if (info) *info = {false, inside.size(), inside.size()};
    return out.finish();
  }
  // Too many points to send one by one (GDAL's writer and the page would get them all): one feature per
  // cell of the tile itself, so that neighbouring tiles never count a point twice.
  constexpr int kCells = 256 / kPointsCellPx;
  const double cell_w = tile.width() / kCells, cell_h = (tile.max_y - tile.min_y) / kCells;
  std::vector<Cell> cells(static_cast<std::size_t>(kCells) * kCells);
  std::size_t counted = 0;
  for (std::size_t i : inside) {  // increasing i: the sums are made in the same order every time
    if (!(px[i] >= tile.min_x && px[i] < tile.max_x && py[i] > tile.min_y && py[i] <= tile.max_y)) continue;
    // Rows from the top (the tile's north edge belongs to it, its south edge to the tile below).
    const int cx = std::min(kCells - 1, static_cast<int>((px[i] - tile.min_x) / cell_w));
    const int cy = std::min(kCells - 1, static_cast<int>((tile.max_y - py[i]) / cell_h));
    Cell& c = cells[static_cast<std::size_t>(cy) * kCells + cx];
    ++c.count;
    c.sum_x += px[i];
    c.sum_y += py[i];
    if (std::isfinite(p->velocity[i])) {
      ++c.finite_velocities;
      c.sum_velocity += p->velocity[i];
    }
    ++counted;
  }
  if (counted == 0) return {};  // all of them in the margin
  MvtTile out(product, tms, zoom, x, y);
  out.add_field("count", OFTInteger);
  out.add_field("velocity_mm_per_yr", OFTReal);
  out.add_field("aggregated", OFTInteger, OFSTBoolean);
  std::size_t features = 0;
  for (std::size_t k = 0; k < cells.size(); ++k) {
    const Cell& c = cells[k];
    if (c.count == 0) continue;
    const double n = static_cast<double>(c.count);
    out.add_point(c.sum_x / n, c.sum_y / n, fmt::format("cell {}", k), [&](OGRFeatureH f) {
      OGR_F_SetFieldInteger(f, 0, static_cast<int>(c.count));
      if (c.finite_velocities > 0)
        OGR_F_SetFieldDouble(f, 1, c.sum_velocity / static_cast<double>(c.finite_velocities));
      OGR_F_SetFieldInteger(f, 2, 1);
    });
    ++features;
  }
  if (info) *info = {true, counted, features};
  return out.finish();
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
  const Projected& laea = projected(*p, "EPSG:3035");
  const auto& e = laea.x;
  const auto& n = laea.y;
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
  for (std::size_t i :
       laea.index.query({x - max_distance_m, y - max_distance_m, x + max_distance_m, y + max_distance_m})) {
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
  std::vector<std::size_t> in_bbox;
  if (bbox) in_bbox = projected(*p, "OGC:CRS84").index.query(*bbox);
  const std::size_t candidates = bbox ? in_bbox.size() : p->pid.size();
  for (std::size_t k = 0; k < candidates; ++k) {
    const std::size_t i = bbox ? in_bbox[k] : k;
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
