#include "deforma/io/cloud_mask.hpp"

#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogr_api.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::io {
namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// The aoi text as a WGS84 lon/lat geometry.
std::unique_ptr<OGRGeometry> parse_aoi(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return nullptr;
  OGRGeometry* g = nullptr;
  if (text[first] == '{') {
    g = OGRGeometry::FromHandle(OGR_G_CreateGeometryFromJson(text.c_str()));
    if (!g) throw InvalidArgument(fmt::format("aoi: not a GeoJSON geometry: {}", text.substr(0, 80)));
  } else if (std::isalpha(static_cast<unsigned char>(text[first]))) {
    const char* wkt = text.c_str() + first;
    if (OGRGeometryFactory::createFromWkt(&wkt, nullptr, &g) != OGRERR_NONE || !g) {
      throw InvalidArgument(
          fmt::format("aoi: '{}' is not a WKT geometry (expected e.g. POLYGON((lon lat, ...)))", text));
    }
  } else {
    std::vector<double> v;
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) {
      try {
        std::size_t used = 0;
        v.push_back(std::stod(part, &used));
        if (part.find_first_not_of(" \t", used) != std::string::npos) throw std::invalid_argument(part);
      } catch (const std::exception&) {
        throw InvalidArgument(fmt::format("aoi: '{}' is not a number in the bbox '{}'", part, text));
      }
    }
    if (v.size() != 4 || !(v[0] < v[2]) || !(v[1] < v[3]) || v[0] < -180 || v[2] > 180 || v[1] < -90 ||
        v[3] > 90) {
      throw InvalidArgument(fmt::format(
          "aoi: '{}' is not a bbox west,south,east,north in degrees (west < east, south < north)", text));
    }
    auto ring = std::make_unique<OGRLinearRing>();
    ring->addPoint(v[0], v[1]);
    ring->addPoint(v[2], v[1]);
    ring->addPoint(v[2], v[3]);
    ring->addPoint(v[0], v[3]);
    ring->addPoint(v[0], v[1]);
    auto polygon = std::make_unique<OGRPolygon>();
    polygon->addRingDirectly(ring.release());
    return polygon;
  }
  std::unique_ptr<OGRGeometry> out(g);
  if (out->IsEmpty()) throw InvalidArgument(fmt::format("aoi: the geometry '{}' is empty", text));
  return out;
}

}  // namespace

std::string cloud_mask_rule() {
  return "a Sentinel-2 band's SCL (same tile and time, in its folder or the granule's R20m/R60m), a "
         "Landsat Collection 2 band's _QA_PIXEL.TIF or a Collection 1 band's _BQA.TIF beside it";
}

std::optional<CloudMask> find_cloud_mask(const std::string& image_path) {
  const fs::path path(image_path);
  const std::string name = path.filename().string();
  const fs::path dir = path.parent_path();
  std::smatch m;
  // Sentinel-2 tile file: T29UNU_20221005T115411_B04_60m.jp2 -> T29UNU_20221005T115411_SCL_20m.jp2.
  static const std::regex s2(R"(^(T\d{2}[A-Z]{3}_\d{8}T\d{6})_[A-Z0-9]+(_\d+m)?\.(\w+)$)");
  if (std::regex_match(name, m, s2)) {
    const std::string stem = m[1].str() + "_SCL";
    std::vector<fs::path> folders{dir};
    if (dir.parent_path().filename() == "IMG_DATA" || dir.filename() == "IMG_DATA") {
      const fs::path img = dir.filename() == "IMG_DATA" ? dir : dir.parent_path();
      folders = {img / "R20m", img / "R60m", img, dir};
    }
    for (const auto& folder : folders) {
      for (const char* suffix : {"_20m", "_60m", ""}) {
        for (const std::string& ext :
             {std::string(".") + m[3].str(), std::string(".jp2"), std::string(".tif")}) {
          const fs::path candidate = folder / (stem + suffix + ext);
          if (is_file(candidate)) return CloudMask{candidate.string(), CloudMaskKind::kSentinel2Scl};
        }
      }
    }
    return std::nullopt;
  }
  // Landsat Collection 2: LC08_L2SP_063018_20160718_20200906_02_T1_SR_B4.TIF -> ..._T1_QA_PIXEL.TIF.
  static const std::regex landsat(R"(^(L[COTEM]0\d_\w{4}_\d{6}_\d{8}_\d{8}_\d{2}_\w{2})_.*\.(\w+)$)");
  if (std::regex_match(name, m, landsat)) {
    for (const std::string& ext : {m[2].str(), std::string("TIF"), std::string("tif")}) {
      const fs::path candidate = dir / (m[1].str() + "_QA_PIXEL." + ext);
      if (is_file(candidate) && candidate != path)
        return CloudMask{candidate.string(), CloudMaskKind::kLandsatQaPixel};
    }
    // Collection 1 (collection number 01 in the product id): the older BQA band.
    if (m[1].str().find("_01_") != std::string::npos) {
      for (const std::string& ext : {m[2].str(), std::string("TIF"), std::string("tif")}) {
        const fs::path candidate = dir / (m[1].str() + "_BQA." + ext);
        if (is_file(candidate) && candidate != path)
          return CloudMask{candidate.string(), CloudMaskKind::kLandsatBqa};
      }
    }
  }
  return std::nullopt;
}

std::optional<double> cloud_cover_percent(const CloudMask& mask, const std::string& aoi,
                                          const std::vector<int>& scl_classes) {
  ensure_gdal_initialized();
  const std::string& path = mask.path;
  std::unique_ptr<OGRGeometry> shape = parse_aoi(aoi);  // checked before the file is opened
  std::unique_ptr<GDALDataset> ds(
      GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR));
  if (!ds) throw IoError(fmt::format("{}: cannot open the cloud mask: {}", path, CPLGetLastErrorMsg()));
  if (ds->GetRasterCount() < 1) throw FormatError(fmt::format("{}: the cloud mask has no band", path));
  const int width = ds->GetRasterXSize(), height = ds->GetRasterYSize();
  double gt[6];
  const bool georeferenced = ds->GetGeoTransform(gt) == CE_None && ds->GetSpatialRef();
  int x0 = 0, y0 = 0, x1 = width, y1 = height;
  if (shape) {
    if (!georeferenced) throw FormatError(fmt::format("{}: the cloud mask has no georeferencing", path));
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
  std::vector<std::uint16_t> values(static_cast<std::size_t>(w) * h);
  if (ds->GetRasterBand(1)->RasterIO(GF_Read, x0, y0, w, h, values.data(), w, h, GDT_UInt16, 0, 0) !=
      CE_None) {
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
  std::int64_t valid = 0, cloudy = 0;
  if (mask.kind == CloudMaskKind::kSentinel2Scl) {
    bool cloud_class[256] = {};
    for (int c : scl_classes) {
      if (c >= 0 && c < 256) cloud_class[c] = true;
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!inside.empty() && !inside[i]) continue;
      if (values[i] == 0 || values[i] > 255) continue;  // 0: no data in the SCL
      ++valid;
      if (cloud_class[values[i]]) ++cloudy;
    }
  } else if (mask.kind == CloudMaskKind::kLandsatBqa) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!inside.empty() && !inside[i]) continue;
      if (values[i] & kBqaFillBit) continue;
      ++valid;
      if (bqa_is_cloud(values[i])) ++cloudy;
    }
  } else {
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!inside.empty() && !inside[i]) continue;
      if (values[i] & kQaPixelFillBit) continue;
      ++valid;
      if (values[i] & kQaPixelCloudBits) ++cloudy;
    }
  }
  if (valid == 0) return std::nullopt;
  return 100.0 * static_cast<double>(cloudy) / static_cast<double>(valid);
}

}  // namespace deforma::io
