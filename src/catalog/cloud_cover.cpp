// Cloud cover over an area of interest, from a scene's classification mask (GDM-Survey's rule: the share of
// the aoi's valid pixels that are cloud or cloud shadow, rather than the scene-wide figure of the metadata).
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogr_api.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"

namespace deforma::catalog {

std::optional<double> cloud_cover_on(const nlohmann::json& item, const nlohmann::json& aoi,
                                     const std::vector<int>& classes) {
  if (!item.contains("assets") || !item["assets"].is_object() || !item["assets"].contains("cloud-mask")) {
    return std::nullopt;
  }
  ensure_gdal_initialized();
  const std::string path = item["assets"]["cloud-mask"].value("href", "");
  if (path.empty()) return std::nullopt;
  std::unique_ptr<GDALDataset> ds(
      GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR));
  if (!ds) throw IoError(fmt::format("{}: cannot open the cloud mask: {}", path, CPLGetLastErrorMsg()));
  const int width = ds->GetRasterXSize(), height = ds->GetRasterYSize();
  double gt[6];
  const bool georeferenced = ds->GetGeoTransform(gt) == CE_None && ds->GetSpatialRef();
  int x0 = 0, y0 = 0, x1 = width, y1 = height;
  std::unique_ptr<OGRGeometry> shape;  // the aoi in the mask's CRS
  if (!aoi.is_null()) {
    if (!georeferenced) throw FormatError(fmt::format("{}: the cloud mask has no georeferencing", path));
    const Blob wkb = geojson_to_wkb(aoi, "aoi");
    OGRGeometry* g = nullptr;
    OGRGeometryFactory::createFromWkb(wkb.bytes.data(), nullptr, &g, static_cast<int>(wkb.bytes.size()));
    shape.reset(g);
    OGRSpatialReference wgs84;
    wgs84.SetWellKnownGeogCS("WGS84");
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    OGRSpatialReference target(*ds->GetSpatialRef());
    target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    shape->assignSpatialReference(&wgs84);
    // Densified first, so that straight lon/lat edges stay close to their true path once projected.
    shape->segmentize(0.01);
    if (shape->transformTo(&target) != OGRERR_NONE) {
      throw FormatError(fmt::format("{}: the aoi cannot be transformed to the mask's CRS", path));
    }
    OGREnvelope e;
    shape->getEnvelope(&e);
    // Pixel window of the envelope (north-up masks: Sentinel-2 and Landsat grids are).
    const double px_a = (e.MinX - gt[0]) / gt[1], px_b = (e.MaxX - gt[0]) / gt[1];
    const double py_a = (e.MaxY - gt[3]) / gt[5], py_b = (e.MinY - gt[3]) / gt[5];
    x0 = std::max(0, static_cast<int>(std::floor(std::min(px_a, px_b))));
    x1 = std::min(width, static_cast<int>(std::ceil(std::max(px_a, px_b))));
    y0 = std::max(0, static_cast<int>(std::floor(std::min(py_a, py_b))));
    y1 = std::min(height, static_cast<int>(std::ceil(std::max(py_a, py_b))));
    if (x0 >= x1 || y0 >= y1) return std::nullopt;
  }
  const int w = x1 - x0, h = y1 - y0;
  std::vector<unsigned char> values(static_cast<std::size_t>(w) * h);
  if (ds->GetRasterBand(1)->RasterIO(GF_Read, x0, y0, w, h, values.data(), w, h, GDT_Byte, 0, 0) != CE_None) {
    throw IoError(fmt::format("{}: cannot read the cloud mask: {}", path, CPLGetLastErrorMsg()));
  }
  std::vector<unsigned char> inside;
  if (shape) {
    // The aoi burnt into a grid of the window: pixels whose centre lies inside count.
    auto* mem = GetGDALDriverManager()->GetDriverByName("MEM");
    std::unique_ptr<GDALDataset> grid(mem->Create("", w, h, 1, GDT_Byte, nullptr));
    double wgt[6] = {gt[0] + x0 * gt[1], gt[1], 0, gt[3] + y0 * gt[5], 0, gt[5]};
    grid->SetGeoTransform(wgt);
    grid->SetSpatialRef(ds->GetSpatialRef());
    int band = 1;
    double burn = 1;
    OGRGeometryH handle = OGRGeometry::ToHandle(shape.get());
    if (GDALRasterizeGeometries(grid.get(), 1, &band, 1, &handle, nullptr, nullptr, &burn, nullptr, nullptr,
                                nullptr) != CE_None) {
      throw FormatError(fmt::format("{}: cannot rasterise the aoi over the mask", path));
    }
    inside.resize(values.size());
    if (grid->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, w, h, inside.data(), w, h, GDT_Byte, 0, 0) !=
        CE_None) {
      throw FormatError(fmt::format("{}: cannot rasterise the aoi over the mask", path));
    }
  }
  bool cloud_class[256] = {};
  for (int c : classes) {
    if (c >= 0 && c < 256) cloud_class[c] = true;
  }
  std::int64_t valid = 0, cloudy = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!inside.empty() && !inside[i]) continue;
    if (values[i] == 0) continue;  // no data in Sentinel-2 SCL
    ++valid;
    if (cloud_class[values[i]]) ++cloudy;
  }
  if (valid == 0) return std::nullopt;
  return 100.0 * static_cast<double>(cloudy) / static_cast<double>(valid);
}

}  // namespace deforma::catalog
