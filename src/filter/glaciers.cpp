#include "deforma/filter/glaciers.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogrsf_frmts.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/filter/filter.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/provenance.hpp"
#include "deforma/io/staged_file.hpp"

namespace deforma::filter {
namespace fs = std::filesystem;

namespace {

struct TransformDeleter {
  void operator()(OGRCoordinateTransformation* t) const { OGRCoordinateTransformation::DestroyCT(t); }
};
using Transform = std::unique_ptr<OGRCoordinateTransformation, TransformDeleter>;

std::string with_gdal_reason(const std::string& message) {
  const std::string reason = io::last_gdal_error();
  return reason.empty() ? message : fmt::format("{} ({})", message, reason);
}

std::unique_ptr<GDALDataset> open_vector(const std::string& path, const std::string& parameter) {
  io::ensure_gdal_initialized();
  io::clear_gdal_error();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError(fmt::format("--{} {}: no such file", parameter, path));
  io::check_input_path(path, "--" + parameter);
  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(
      GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
  if (!ds)
    throw FormatError(
        with_gdal_reason(fmt::format("--{} {}: not a vector file OGR can read", parameter, path)));
  return ds;
}

// The first of `fields` the feature has with a meaningful value (GLIMS writes "None" for missing ones).
std::string attribute(OGRFeature& feature, std::initializer_list<const char*> fields) {
  for (const char* name : fields) {
    const int i = feature.GetFieldIndex(name);
    if (i < 0 || !feature.IsFieldSetAndNotNull(i)) continue;
    std::string v = feature.GetFieldAsString(i);
    if (!v.empty() && v != "None") return v;
  }
  return "";
}

// Area in km² of a geometry given in `srs`, measured in the UTM zone of its centroid (any CRS, including
// geographic lon/lat, gives the same answer).
double utm_area_km2(const OGRGeometry& g, const OGRSpatialReference* srs) {
  if (!srs) return 0;
  OGRSpatialReference wgs84;
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  OGRPoint centroid;
  if (g.Centroid(&centroid) != OGRERR_NONE) return 0;
  Transform to_ll(OGRCreateCoordinateTransformation(srs, &wgs84));
  if (!to_ll) return 0;
  double lon = centroid.getX(), lat = centroid.getY();
  if (!to_ll->Transform(1, &lon, &lat)) return 0;
  const int zone = std::clamp(static_cast<int>(std::floor((lon + 180.0) / 6.0)) + 1, 1, 60);
  OGRSpatialReference utm;
  utm.importFromEPSG((lat >= 0 ? 32600 : 32700) + zone);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  Transform to_utm(OGRCreateCoordinateTransformation(srs, &utm));
  if (!to_utm) return 0;
  std::unique_ptr<OGRGeometry> copy(g.clone());
  if (copy->transform(to_utm.get()) != OGRERR_NONE) return 0;
  const auto type = wkbFlatten(copy->getGeometryType());
  if (type == wkbPolygon) return copy->toPolygon()->get_Area() / 1e6;
  if (type == wkbMultiPolygon) return copy->toMultiPolygon()->get_Area() / 1e6;
  if (type == wkbGeometryCollection) return copy->toGeometryCollection()->get_Area() / 1e6;
  return 0;
}

// Polygons only (MakeValid may return a collection with lines or points); empty when none.
std::unique_ptr<OGRGeometry> polygonal_part(std::unique_ptr<OGRGeometry> g) {
  if (!g) return nullptr;
  const auto type = wkbFlatten(g->getGeometryType());
  if (type == wkbPolygon || type == wkbMultiPolygon) return g;
  if (type != wkbGeometryCollection) return nullptr;
  auto out = std::make_unique<OGRMultiPolygon>();
  const auto* coll = g->toGeometryCollection();
  for (int i = 0; i < coll->getNumGeometries(); ++i) {
    const auto* part = coll->getGeometryRef(i);
    const auto t = wkbFlatten(part->getGeometryType());
    if (t == wkbPolygon) out->addGeometry(part);
    if (t == wkbMultiPolygon) {
      for (const auto* p : *part->toMultiPolygon()) out->addGeometry(p);
    }
  }
  if (out->IsEmpty()) return nullptr;
  return out;
}

std::string csv_text(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_number(const std::optional<double>& v, int decimals) {
  return v ? fmt::format("{:.{}f}", *v, decimals) : std::string();
}

}  // namespace

void GlacierOptions::validate() const {
  if (!(buffer_m >= 0))
    throw InvalidArgument(fmt::format("--glacier-buffer-m {}: expected >= 0 m", buffer_m));
  if (!(margin_m >= 0) || (buffer_m > 0 && !(margin_m < buffer_m))) {
    throw InvalidArgument(
        fmt::format("--glacier-margin-m {}: expected >= 0 m and less than --glacier-buffer-m ({} m): stable "
                    "ground is the "
                    "ring between the two",
                    margin_m, buffer_m));
  }
}

struct GlacierSet::State {
  std::string path;
  std::string crs_wkt;
  std::vector<Glacier> glaciers;
  std::vector<std::unique_ptr<OGRGeometry>> geometries;
};

GlacierSet::GlacierSet() : state_(std::make_unique<State>()) {}
GlacierSet::GlacierSet(GlacierSet&&) noexcept = default;
GlacierSet& GlacierSet::operator=(GlacierSet&&) noexcept = default;
GlacierSet::~GlacierSet() = default;
const std::vector<Glacier>& GlacierSet::glaciers() const {
  return state_->glaciers;
}
const std::string& GlacierSet::path() const {
  return state_->path;
}
const std::string& GlacierSet::crs_wkt() const {
  return state_->crs_wkt;
}
void* GlacierSet::geometry(std::size_t i) const {
  return state_->geometries.at(i).get();
}

GlacierSet read_glaciers(const std::string& path, const std::string& target_crs_wkt) {
  auto ds = open_vector(path, "glaciers");
  GlacierSet set;
  auto& st = *set.state_;
  st.path = path;
  OGRSpatialReference target;
  const bool has_target =
      !target_crs_wkt.empty() && target.importFromWkt(target_crs_wkt.c_str()) == OGRERR_NONE;
  target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  if (has_target) st.crs_wkt = target_crs_wkt;
  std::size_t skipped = 0;
  for (auto* layer : ds->GetLayers()) {
    const OGRSpatialReference* layer_srs = layer->GetSpatialRef();
    std::unique_ptr<OGRSpatialReference> source;
    if (layer_srs && !layer_srs->IsEmpty()) {
      source.reset(layer_srs->Clone());
      source->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    }
    if (!source && !has_target) {
      throw FormatError(fmt::format("--glaciers {}: layer {} declares no CRS", path, layer->GetName()));
    }
    Transform ct;
    if (has_target && source && !source->IsSame(&target)) {
      ct.reset(OGRCreateCoordinateTransformation(source.get(), &target));
      if (!ct) {
        throw InvalidArgument(fmt::format("--glaciers {}: layer {}: no transformation to the raster's CRS",
                                          path, layer->GetName()));
      }
    }
    if (!has_target && st.crs_wkt.empty()) {
      char* wkt = nullptr;
      source->exportToWkt(&wkt);
      st.crs_wkt = wkt ? wkt : "";
      CPLFree(wkt);
    }
    layer->ResetReading();
    for (auto& feature : *layer) {
      const OGRGeometry* g = feature->GetGeometryRef();
      const auto type = g ? wkbFlatten(g->getGeometryType()) : wkbUnknown;
      if (!g || g->IsEmpty() || (type != wkbPolygon && type != wkbMultiPolygon)) {
        ++skipped;
        continue;
      }
      std::unique_ptr<OGRGeometry> geom(g->clone());
      geom->flattenTo2D();  // GLIMS polygons carry z = 0
      if (!geom->IsValid()) geom = polygonal_part(std::unique_ptr<OGRGeometry>(geom->MakeValid()));
      if (!geom) {
        ++skipped;
        continue;
      }
      Glacier glacier;
      glacier.id = attribute(*feature, {"glac_id", "RGIId", "rgi_id", "GLIMSId", "glims_id"});
      if (glacier.id.empty()) glacier.id = fmt::format("feature-{}", feature->GetFID());
      glacier.name = attribute(*feature, {"glac_name", "Name", "name"});
      glacier.outline_area_km2 = utm_area_km2(*geom, source ? source.get() : &target);
      if (ct && geom->transform(ct.get()) != OGRERR_NONE) {
        throw FormatError(fmt::format("--glaciers {}: outline {} cannot be reprojected to the raster's CRS",
                                      path, glacier.id));
      }
      st.glaciers.push_back(std::move(glacier));
      st.geometries.push_back(std::move(geom));
    }
  }
  if (st.glaciers.empty()) {
    throw InvalidArgument(fmt::format(
        "--glaciers {}: holds no glacier outline (polygon); {} feature(s) skipped", path, skipped));
  }
  return set;
}

GlacierRegions write_glacier_regions(const GlacierSet& glaciers, const io::RasterInfo& grid,
                                     const GlacierOptions& options, const std::string& dir) {
  options.validate();
  OGRSpatialReference srs;
  if (!grid.georeferenced || grid.crs_wkt.empty() || srs.importFromWkt(grid.crs_wkt.c_str()) != OGRERR_NONE ||
      !srs.IsProjected()) {
    throw InvalidArgument(fmt::format(
        "--glaciers: {} has no projected CRS; outlines need a georeferenced image in metres", grid.path));
  }
  const double to_m = srs.GetLinearUnits();
  if (!OGRGeometryFactory::haveGEOS())
    throw IoError("--glaciers: GDAL was built without GEOS (buffers need it)");

  OGRMultiPolygon all;
  for (std::size_t i = 0; i < glaciers.size(); ++i) {
    const auto* g = static_cast<const OGRGeometry*>(glaciers.geometry(i));
    if (wkbFlatten(g->getGeometryType()) == wkbPolygon) {
      all.addGeometry(g);
    } else {
      for (const auto* p : *g->toMultiPolygon()) all.addGeometry(p);
    }
  }
  // Buffers of the union: overlapping outlines (tributaries) become one region.
  std::unique_ptr<OGRGeometry> merged(all.UnionCascaded());
  if (!merged)
    throw FormatError(
        with_gdal_reason(fmt::format("--glaciers {}: cannot merge the outlines", glaciers.path())));
  std::unique_ptr<OGRGeometry> grown(merged->Buffer(options.buffer_m / to_m, 8));
  std::unique_ptr<OGRGeometry> inner(options.margin_m > 0 ? merged->Buffer(options.margin_m / to_m, 8)
                                                          : merged->clone());
  if (!grown || !inner)
    throw FormatError(with_gdal_reason("--glacier-buffer-m: buffering the outlines failed"));

  OGRLinearRing ring;
  const double cs[5] = {0, 1.0 * grid.width, 1.0 * grid.width, 0, 0};
  const double rs[5] = {0, 0, 1.0 * grid.height, 1.0 * grid.height, 0};
  for (int k = 0; k < 5; ++k) {
    double x, y;
    grid.geotransform.pixel_to_map(cs[k], rs[k], x, y);
    ring.addPoint(x, y);
  }
  OGRPolygon extent;
  extent.addRing(&ring);
  std::unique_ptr<OGRGeometry> skip(extent.Difference(grown.get()));
  std::unique_ptr<OGRGeometry> stable(grown->Difference(inner.get()));
  std::unique_ptr<OGRGeometry> matched(extent.Intersection(grown.get()));
  auto area = [&](const OGRGeometry* g) {
    if (!g || g->IsEmpty()) return 0.0;
    const auto t = wkbFlatten(g->getGeometryType());
    double a = 0;
    if (t == wkbPolygon) a = g->toPolygon()->get_Area();
    if (t == wkbMultiPolygon) a = g->toMultiPolygon()->get_Area();
    if (t == wkbGeometryCollection) a = g->toGeometryCollection()->get_Area();
    return a * to_m * to_m / 1e6;
  };
  GlacierRegions regions;
  regions.matched_area_km2 = area(matched.get());
  regions.grid_area_km2 = area(&extent);
  if (regions.matched_area_km2 <= 0) {
    throw InvalidArgument(fmt::format("--glaciers {}: no outline (grown by {} m) meets the image {}",
                                      glaciers.path(), options.buffer_m, grid.path));
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  auto write = [&](const std::string& name, const OGRGeometry* g) {
    const std::string path = (fs::path(dir) / name).string();
    if (!g || g->IsEmpty()) {
      std::error_code ignored;
      fs::remove(path, ignored);
      return std::string();
    }
    // Built in memory first: the file is replaced only when its content changes.
    const std::string mem = fmt::format("/vsimem/deforma_glacier_{}_{}", static_cast<const void*>(g), name);
    {
      // FlatGeobuf keeps the CRS as WKT (GeoJSON could only name it by an EPSG code) and writes the same
      // bytes for the same geometry.
      auto* driver = GetGDALDriverManager()->GetDriverByName("FlatGeobuf");
      if (!driver) throw IoError("GDAL has no FlatGeobuf driver");
      std::unique_ptr<GDALDataset> ds(driver->Create(mem.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
      if (!ds) throw IoError(with_gdal_reason(fmt::format("{}: cannot create", path)));
      char** layer_options = CSLSetNameValue(nullptr, "SPATIAL_INDEX", "NO");
      OGRLayer* layer =
          ds->CreateLayer(fs::path(name).stem().string().c_str(), &srs, wkbMultiPolygon, layer_options);
      CSLDestroy(layer_options);
      if (!layer) throw IoError(with_gdal_reason(fmt::format("{}: cannot create its layer", path)));
      OGRFeature feature(layer->GetLayerDefn());
      std::unique_ptr<OGRGeometry> poly =
          polygonal_part(std::unique_ptr<OGRGeometry>(g ? g->clone() : nullptr));
      if (poly && wkbFlatten(poly->getGeometryType()) == wkbPolygon) {
        poly.reset(OGRGeometryFactory::forceToMultiPolygon(poly.release()));
      }
      if (poly) {
        feature.SetGeometry(poly.get());
        if (layer->CreateFeature(&feature) != OGRERR_NONE) throw IoError(with_gdal_reason(path));
      }
    }
    vsi_l_offset size = 0;
    GByte* bytes = VSIGetMemFileBuffer(mem.c_str(), &size, TRUE);
    const std::string text(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(size));
    CPLFree(bytes);
    std::string existing;
    {
      std::ifstream in(path, std::ios::binary);
      if (in) existing.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (existing != text) {
      io::write_atomically(path, [&](const std::string& temp) {
        std::ofstream f(temp, std::ios::binary);
        f << text;
        f.flush();
        if (!f) throw IoError(fmt::format("{}: cannot write", path));
      });
    }
    return path;
  };
  regions.skip_path = write("glacier_skip.fgb", skip.get());
  regions.stable_path = write("glacier_stable.fgb", stable.get());
  return regions;
}

GlacierReport glacier_statistics(const GlacierSet& glaciers, const std::string& product_path,
                                 const GlacierOptions& options, const std::string& stable_path) {
  GlacierReport report;
  report.product = product_path;
  io::Raster raster = io::Raster::open(product_path);
  const auto& info = raster.info();
  if (!info.georeferenced || info.crs_wkt.empty()) {
    throw InvalidArgument(
        fmt::format("--glaciers: {} has no CRS; glacier statistics need georeferencing", product_path));
  }
  struct Candidate {
    const char* east;
    const char* north;
    const char* quantity;
    const char* unit;
  };
  int be = 0, bn = 0;
  for (const Candidate& c : {Candidate{"velocity_east_m_per_yr", "velocity_north_m_per_yr", "speed", "m/yr"},
                             Candidate{"east_m_per_yr", "north_m_per_yr", "speed", "m/yr"},
                             Candidate{"east_m", "north_m", "displacement", "m"}}) {
    be = io::find_band(info, c.east, "glaciers");
    bn = io::find_band(info, c.north, "glaciers");
    if (be && bn) {
      report.quantity = c.quantity;
      report.unit = c.unit;
      break;
    }
  }
  if (!be || !bn) {
    throw InvalidArgument(fmt::format(
        "--glaciers: {} has no east/north bands in metres (velocity_east_m_per_yr, east_m_per_yr or east_m; "
        "found {})",
        product_path, io::band_names(info)));
  }
  const auto east = raster.read_all(be);
  const auto north = raster.read_all(bn);
  const int w = info.width, h = info.height;
  auto valid = [&](int c, int r) {
    return east.valid(c, r) && north.valid(c, r) && std::isfinite(east.values(c, r)) &&
           std::isfinite(north.values(c, r));
  };

  // Bias: the median over the valid stable nodes.
  double bias_e = 0, bias_n = 0;
  if (!stable_path.empty()) {
    const GridU8 stable = read_node_mask(stable_path, info, io::Window{0, 0, w, h}, "stable");
    std::vector<double> se, sn;
    for (int r = 0; r < h; ++r) {
      for (int c = 0; c < w; ++c) {
        if (stable(c, r) && valid(c, r)) se.push_back(east.values(c, r)), sn.push_back(north.values(c, r));
      }
    }
    report.stable_valid_nodes = static_cast<long long>(se.size());
    if (se.size() >= 3) {
      bias_e = nearest_rank_percentile_of(se, 0.5), bias_n = nearest_rank_percentile_of(sn, 0.5);
      report.bias_east = bias_e, report.bias_north = bias_n;
    } else {
      report.warnings.push_back(fmt::format(
          "only {} valid node(s) on the stable ground: speeds not corrected for a bias", se.size()));
    }
  }
  GridF speed(w, h, std::numeric_limits<float>::quiet_NaN());
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      if (valid(c, r))
        speed(c, r) = static_cast<float>(std::hypot(east.values(c, r) - bias_e, north.values(c, r) - bias_n));
    }
  }

  // Glacier labels on the product's grid (index + 1; 0 = no glacier); a later outline wins an overlap.
  GridF labels(w, h, 0.f);
  {
    auto* mem = GetGDALDriverManager()->GetDriverByName("MEM");
    std::unique_ptr<GDALDataset> ds(mem->Create("", w, h, 1, GDT_Float32, nullptr));
    auto gt = info.geotransform;
    ds->SetGeoTransform(gt.c.data());
    std::vector<OGRGeometryH> geoms;
    std::vector<double> burn;
    for (std::size_t i = 0; i < glaciers.size(); ++i) {
      geoms.push_back(static_cast<OGRGeometryH>(glaciers.geometry(i)));
      burn.push_back(static_cast<double>(i + 1));
    }
    int band = 1;
    io::clear_gdal_error();
    if (GDALRasterizeGeometries(ds.get(), 1, &band, static_cast<int>(geoms.size()), geoms.data(), nullptr,
                                nullptr, burn.data(), nullptr, nullptr, nullptr) != CE_None ||
        ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, w, h, labels.data(), w, h, GDT_Float32, 0, 0,
                                       nullptr) != CE_None) {
      throw IoError(
          with_gdal_reason(fmt::format("--glaciers {}: rasterizing the outlines failed", glaciers.path())));
    }
  }
  const double cell_km2 = info.pixel_size_x_m * info.pixel_size_y_m / 1e6;
  std::vector<std::vector<double>> speeds(glaciers.size());
  for (auto& g : glaciers.glaciers()) {
    GlacierStatistics s;
    s.glacier = g;
    report.glaciers.push_back(std::move(s));
  }
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const int label = static_cast<int>(labels(c, r));
      if (label <= 0) continue;
      auto& s = report.glaciers[static_cast<std::size_t>(label - 1)];
      ++s.nodes;
      if (std::isfinite(speed(c, r))) speeds[static_cast<std::size_t>(label - 1)].push_back(speed(c, r));
    }
  }
  for (std::size_t i = 0; i < glaciers.size(); ++i) {
    auto& s = report.glaciers[i];
    s.valid_nodes = static_cast<long long>(speeds[i].size());
    s.valid_fraction = s.nodes ? static_cast<double>(s.valid_nodes) / s.nodes : 0.0;
    s.measured_area_km2 = s.valid_nodes * cell_km2;
    if (!speeds[i].empty()) {
      s.median_speed = nearest_rank_percentile_of(speeds[i], 0.5);
      s.p95_speed = nearest_rank_percentile_of(speeds[i], 0.95);
    }
    if (s.nodes == 0) {
      report.warnings.push_back(
          fmt::format("glacier {} has no node of {} inside its outline", s.glacier.id, product_path));
    }
  }

  // Centrelines: sampled every node spacing, nearest node.
  if (!options.centrelines_path.empty()) {
    auto ds = open_vector(options.centrelines_path, "centrelines");
    OGRSpatialReference target;
    target.importFromWkt(info.crs_wkt.c_str());
    target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const double step_map = std::hypot(info.geotransform.c[1], info.geotransform.c[4]);
    std::vector<std::vector<double>> along(glaciers.size());
    int line_index = -1;
    std::size_t unassigned = 0;
    for (auto* layer : ds->GetLayers()) {
      Transform ct;
      if (const auto* srs = layer->GetSpatialRef(); srs && !srs->IsEmpty()) {
        OGRSpatialReference source(*srs);
        source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
        if (!source.IsSame(&target)) ct.reset(OGRCreateCoordinateTransformation(&source, &target));
      }
      layer->ResetReading();
      for (auto& feature : *layer) {
        const OGRGeometry* g = feature->GetGeometryRef();
        if (!g) continue;
        std::vector<std::unique_ptr<OGRLineString>> lines;
        const auto type = wkbFlatten(g->getGeometryType());
        if (type == wkbLineString) lines.emplace_back(g->toLineString()->clone());
        if (type == wkbMultiLineString) {
          for (const auto* l : *g->toMultiLineString()) lines.emplace_back(l->clone());
        }
        for (auto& line : lines) {
          ++line_index;
          if (ct && line->transform(ct.get()) != OGRERR_NONE) {
            throw FormatError(fmt::format("--centrelines {}: line {} cannot be reprojected",
                                          options.centrelines_path, line_index));
          }
          const double length = line->get_Length();
          OGRPoint mid;
          line->Value(length / 2, &mid);
          std::optional<std::size_t> owner;
          for (std::size_t i = 0; i < glaciers.size() && !owner; ++i) {
            if (static_cast<const OGRGeometry*>(glaciers.geometry(i))->Contains(&mid)) owner = i;
          }
          if (!owner) {
            ++unassigned;
            continue;
          }
          for (double d = 0; d <= length; d += step_map) {
            OGRPoint p;
            line->Value(d, &p);
            double col, row;
            info.geotransform.map_to_pixel(p.getX(), p.getY(), col, row);
            const int c = static_cast<int>(std::floor(col)), r = static_cast<int>(std::floor(row));
            CentrelineSample sample{glaciers.glaciers()[*owner].id,
                                    line_index,
                                    d * info.pixel_size_x_m / step_map,
                                    p.getX(),
                                    p.getY(),
                                    std::nullopt};
            if (c >= 0 && r >= 0 && c < w && r < h && std::isfinite(speed(c, r))) {
              sample.speed = speed(c, r);
              along[*owner].push_back(speed(c, r));
            }
            auto& s = report.glaciers[*owner];
            ++s.centreline_samples;
            if (sample.speed) ++s.centreline_valid_samples;
            report.centreline.push_back(sample);
          }
        }
      }
    }
    if (line_index < 0) {
      throw InvalidArgument(fmt::format("--centrelines {}: holds no line", options.centrelines_path));
    }
    for (std::size_t i = 0; i < glaciers.size(); ++i) {
      if (!along[i].empty())
        report.glaciers[i].centreline_median_speed = nearest_rank_percentile_of(along[i], 0.5);
    }
    if (unassigned) {
      report.warnings.push_back(
          fmt::format("--centrelines {}: {} line(s) whose midpoint lies in no outline were left out",
                      options.centrelines_path, unassigned));
    }
  }
  return report;
}

nlohmann::json GlacierReport::to_json() const {
  auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : glaciers) {
    nlohmann::json j = {{"id", s.glacier.id},
                        {"name", s.glacier.name},
                        {"outline_area_km2", s.glacier.outline_area_km2},
                        {"nodes", s.nodes},
                        {"valid_nodes", s.valid_nodes},
                        {"valid_fraction", s.valid_fraction},
                        {"measured_area_km2", s.measured_area_km2},
                        {"median_" + quantity, opt(s.median_speed)},
                        {"p95_" + quantity, opt(s.p95_speed)}};
    if (s.centreline_samples) {
      j["centreline_samples"] = s.centreline_samples;
      j["centreline_valid_samples"] = s.centreline_valid_samples;
      j["centreline_median_" + quantity] = opt(s.centreline_median_speed);
    }
    list.push_back(j);
  }
  return {{"product", product},
          {"quantity", quantity},
          {"unit", unit},
          {"bias_east", opt(bias_east)},
          {"bias_north", opt(bias_north)},
          {"stable_valid_nodes", stable_valid_nodes},
          {"glaciers", list}};
}

std::vector<std::string> write_glacier_tables(const std::string& csv_path, const GlacierReport& report,
                                              const io::Provenance& provenance) {
  std::vector<std::string> written;
  const std::string q = report.quantity;
  const std::string u = report.unit == "m/yr" ? "m_per_yr" : "m";
  io::write_atomically(csv_path, [&](const std::string& temp) {
    std::ofstream f(temp);
    f << fmt::format(
        "id,name,outline_area_km2,nodes,valid_nodes,valid_fraction,measured_area_km2,median_{0}_{1},"
        "p95_{0}_{1},centreline_samples,centreline_median_{0}_{1}\n",
        q, u);
    for (const auto& s : report.glaciers) {
      f << fmt::format("{},{},{:.4f},{},{},{:.4f},{:.4f},{},{},{},{}\n", csv_text(s.glacier.id),
                       csv_text(s.glacier.name), s.glacier.outline_area_km2, s.nodes, s.valid_nodes,
                       s.valid_fraction, s.measured_area_km2, csv_number(s.median_speed, 3),
                       csv_number(s.p95_speed, 3), s.centreline_samples,
                       csv_number(s.centreline_median_speed, 3));
    }
    f.flush();
    if (!f) throw IoError(fmt::format("{}: cannot write the glacier table", csv_path));
  });
  written.push_back(csv_path);
  const fs::path base = fs::path(csv_path).parent_path() / fs::path(csv_path).stem();
  if (!report.centreline.empty()) {
    const std::string path = base.string() + "_centrelines.csv";
    io::write_atomically(path, [&](const std::string& temp) {
      std::ofstream f(temp);
      f << fmt::format("glacier_id,line,distance_m,x,y,{}_{}\n", q, u);
      for (const auto& s : report.centreline) {
        f << fmt::format("{},{},{:.1f},{:.3f},{:.3f},{}\n", csv_text(s.glacier_id), s.line, s.distance_m, s.x,
                         s.y, csv_number(s.speed, 3));
      }
      f.flush();
      if (!f) throw IoError(fmt::format("{}: cannot write the centreline table", path));
    });
    written.push_back(path);
  }
  const std::string json_path = base.string() + ".json";
  io::write_atomically(json_path, [&](const std::string& temp) {
    std::ofstream f(temp);
    nlohmann::json j = report.to_json();
    j["provenance"] = provenance.to_json();
    f << j.dump(2) << '\n';
    f.flush();
    if (!f) throw IoError(fmt::format("{}: cannot write", json_path));
  });
  written.push_back(json_path);
  return written;
}

}  // namespace deforma::filter
