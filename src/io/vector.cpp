#include "deforma/io/vector.hpp"

#include <filesystem>

#include <fmt/format.h>
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogrsf_frmts.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::io {

struct PolygonSet::State {
  std::vector<std::unique_ptr<OGRGeometry>> polygons;
  std::vector<OGREnvelope> envelopes;
  std::string crs_wkt;
  std::size_t converted = 0;
  std::size_t skipped = 0;
};

PolygonSet::PolygonSet() : state_(std::make_unique<State>()) {}
PolygonSet::PolygonSet(PolygonSet&&) noexcept = default;
PolygonSet& PolygonSet::operator=(PolygonSet&&) noexcept = default;
PolygonSet::~PolygonSet() = default;

std::size_t PolygonSet::size() const { return state_->polygons.size(); }
const std::string& PolygonSet::crs_wkt() const { return state_->crs_wkt; }
std::size_t PolygonSet::converted_rings() const { return state_->converted; }
std::size_t PolygonSet::skipped_features() const { return state_->skipped; }

std::vector<void*> PolygonSet::geometries() const {
  std::vector<void*> out;
  for (const auto& g : state_->polygons) out.push_back(g.get());
  return out;
}

namespace {

bool is_closed_ring(const OGRLineString& line) {
  if (line.getNumPoints() < 4) return false;
  OGRPoint a, b;
  line.StartPoint(&a);
  line.EndPoint(&b);
  return a.getX() == b.getX() && a.getY() == b.getY();
}

// Collects polygons from any geometry; closed linestrings become polygons (GMT stores rings that way).
void collect(const OGRGeometry* g, std::vector<std::unique_ptr<OGRGeometry>>& out, std::size_t& converted,
             std::size_t& skipped) {
  if (!g || g->IsEmpty()) {
    ++skipped;
    return;
  }
  switch (wkbFlatten(g->getGeometryType())) {
    case wkbPolygon:
    case wkbMultiPolygon:
      out.emplace_back(g->clone());
      break;
    case wkbLineString:
    case wkbLinearRing: {
      const auto* line = g->toLineString();
      if (is_closed_ring(*line)) {
        auto poly = std::make_unique<OGRPolygon>();
        auto* ring = new OGRLinearRing();
        ring->addSubLineString(line);
        poly->addRingDirectly(ring);
        out.push_back(std::move(poly));
        ++converted;
      } else {
        ++skipped;
      }
      break;
    }
    case wkbMultiLineString:
    case wkbGeometryCollection:
    case wkbMultiCurve: {
      const auto* coll = g->toGeometryCollection();
      for (int i = 0; i < coll->getNumGeometries(); ++i) collect(coll->getGeometryRef(i), out, converted, skipped);
      break;
    }
    default:
      ++skipped;
  }
}

std::string with_gdal_reason(const std::string& message) {
  const std::string reason = last_gdal_error();
  return reason.empty() ? message : fmt::format("{} ({})", message, reason);
}

}  // namespace

PolygonSet read_polygons(const std::string& path, const std::string& target_crs_wkt) {
  ensure_gdal_initialized();
  clear_gdal_error();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && path.rfind("/vsi", 0) != 0) {
    throw IoError(fmt::format("{}: no such file", path));
  }
  check_input_path(path);  // before OGR opens it: a FIFO would block, a device never end
  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(
      GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
  if (!ds) throw FormatError(with_gdal_reason(fmt::format("{}: not a vector file OGR can read", path)));

  PolygonSet set;
  auto& st = *set.state_;
  OGRSpatialReference target;
  const bool has_target = !target_crs_wkt.empty() && target.importFromWkt(target_crs_wkt.c_str()) == OGRERR_NONE;
  target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  for (auto* layer : ds->GetLayers()) {
    const OGRSpatialReference* source = layer->GetSpatialRef();
    std::unique_ptr<OGRCoordinateTransformation> ct;
    if (has_target && source && !source->IsEmpty()) {
      OGRSpatialReference src(*source);
      src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
      if (!src.IsSame(&target)) {
        ct.reset(OGRCreateCoordinateTransformation(&src, &target));
        if (!ct) {
          throw InvalidArgument(fmt::format("{}: layer {}: no transformation to the target CRS", path,
                                            layer->GetName()));
        }
      }
    } else if (has_target && (!source || source->IsEmpty())) {
      run_log()->warn("{}: layer {} declares no CRS; assuming the raster's CRS", path, layer->GetName());
    }
    if (source && !source->IsEmpty() && st.crs_wkt.empty() && !has_target) {
      char* wkt = nullptr;
      source->exportToWkt(&wkt);
      st.crs_wkt = wkt ? wkt : "";
      CPLFree(wkt);
    }
    layer->ResetReading();
    for (auto& feature : *layer) {
      const std::size_t before = st.polygons.size();
      collect(feature->GetGeometryRef(), st.polygons, st.converted, st.skipped);
      for (std::size_t i = before; i < st.polygons.size(); ++i) {
        if (ct && st.polygons[i]->transform(ct.get()) != OGRERR_NONE) {
          throw FormatError(fmt::format("{}: feature {} cannot be reprojected", path, feature->GetFID()));
        }
      }
    }
  }
  if (has_target) st.crs_wkt = target_crs_wkt;
  if (st.polygons.empty()) {
    throw InvalidArgument(fmt::format("{}: holds no polygon (nor closed ring); {} feature(s) skipped", path, st.skipped));
  }
  st.envelopes.resize(st.polygons.size());
  for (std::size_t i = 0; i < st.polygons.size(); ++i) st.polygons[i]->getEnvelope(&st.envelopes[i]);
  run_log()->debug("{}: {} polygons ({} closed rings converted, {} features skipped)", path, st.polygons.size(),
                st.converted, st.skipped);
  return set;
}

GridU8 rasterize(const PolygonSet& polygons, const RasterInfo& grid, const Window& window, bool all_touched) {
  ensure_gdal_initialized();
  GridU8 out(window.width, window.height, 0);
  if (window.empty()) return out;
  auto* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  std::unique_ptr<GDALDataset> ds(mem->Create("", window.width, window.height, 1, GDT_Byte, nullptr));
  GeoTransform g = grid.geotransform;
  g.pixel_to_map(window.col, window.row, g.c[0], g.c[3]);
  ds->SetGeoTransform(g.c.data());

  // Only polygons whose envelope meets the window: large polygon files are burnt window by window.
  double xs[4], ys[4];
  const double cs[4] = {0.0, 1.0 * window.width, 0.0, 1.0 * window.width};
  const double rs[4] = {0.0, 0.0, 1.0 * window.height, 1.0 * window.height};
  OGREnvelope win;
  for (int i = 0; i < 4; ++i) {
    g.pixel_to_map(cs[i], rs[i], xs[i], ys[i]);
    win.Merge(xs[i], ys[i]);
  }
  std::vector<OGRGeometryH> selected;
  const auto all = polygons.geometries();
  for (std::size_t i = 0; i < all.size(); ++i) {
    OGREnvelope env;
    static_cast<OGRGeometry*>(all[i])->getEnvelope(&env);
    if (env.Intersects(win)) selected.push_back(static_cast<OGRGeometryH>(all[i]));
  }
  if (selected.empty()) return out;
  std::vector<double> burn(selected.size(), 1.0);
  int band = 1;
  char** options = nullptr;
  if (all_touched) options = CSLSetNameValue(options, "ALL_TOUCHED", "TRUE");
  clear_gdal_error();
  const CPLErr err = GDALRasterizeGeometries(ds.get(), 1, &band, static_cast<int>(selected.size()), selected.data(),
                                             nullptr, nullptr, burn.data(), options, nullptr, nullptr);
  CSLDestroy(options);
  if (err != CE_None) throw IoError(with_gdal_reason("rasterizing polygons failed"));
  if (ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, window.width, window.height, out.data(), window.width,
                                     window.height, GDT_Byte, 0, 0, nullptr) != CE_None) {
    throw IoError(with_gdal_reason("reading rasterized polygons failed"));
  }
  return out;
}

GridU8 rasterize(const PolygonSet& polygons, const RasterInfo& grid, bool all_touched) {
  return rasterize(polygons, grid, Window{0, 0, grid.width, grid.height}, all_touched);
}

GridU8 read_mask(const std::string& path, const RasterInfo& grid, const Window& window) {
  ensure_gdal_initialized();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && path.rfind("/vsi", 0) != 0) {
    throw IoError(fmt::format("--mask {}: no such file", path));
  }
  check_input_path(path, "--mask");
  const bool is_raster = [&] {
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH h = GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
    CPLPopErrorHandler();
    if (h) GDALClose(h);
    return h != nullptr;
  }();
  if (!is_raster) return rasterize(read_polygons(path, grid.crs_wkt), grid, window);
  Raster mask = Raster::open(path);
  if (!same_grid(mask.info(), grid)) {
    if (!mask.info().georeferenced || !grid.georeferenced) {
      throw InvalidArgument(fmt::format("--mask {}: its grid differs from {} and one of them has no CRS", path,
                                        grid.path));
    }
    mask = resample_to_grid(path, grid, Resampling::kNearest);
  }
  const auto w = mask.read(1, window);
  GridU8 out(window.width, window.height, 0);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out.data()[i] = (w.valid.data()[i] && w.values.data()[i] != 0.f) ? 1 : 0;
  }
  return out;
}

}  // namespace deforma::io
