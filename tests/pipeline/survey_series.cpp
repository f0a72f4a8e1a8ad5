#include "pipeline/survey_series.hpp"

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/core/grid.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::test {
namespace {

namespace fs = std::filesystem;

// Texture of the 2016-07-18 scene (rock, snow and glacier) from this corner, and room for the shifts.
constexpr int kBaseCol = 200, kBaseRow = 150;
constexpr int kMargin = 12;

struct Scene {
  const char* tile;   // "T07AAA" (west) or "T07BBB" (east)
  const char* orbit;  // "R001", "R002"
  int day;            // days after 2020-07-01
  enum { kClear, kCloudyAoi, kCloudyOutside } clouds = kClear;
};

void write_raster(const std::string& path, const GridF& values, double x0, double y0) {
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  std::unique_ptr<GDALDataset> ds(
      driver->Create(path.c_str(), values.width(), values.height(), 1, GDT_Float32, nullptr));
  if (!ds) throw IoError(fmt::format("{}: cannot be created", path));
  double gt[6] = {x0, kSurveyPixelM, 0, y0, 0, -kSurveyPixelM};
  ds->SetGeoTransform(gt);
  OGRSpatialReference utm;
  utm.importFromEPSG(32607);
  ds->SetSpatialRef(&utm);
  if (ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, values.width(), values.height(),
                                     const_cast<float*>(values.data()), values.width(), values.height(),
                                     GDT_Float32, 0, 0) != CE_None) {
    throw IoError(fmt::format("{}: cannot be written", path));
  }
}


bool inside(const SurveyBox& b, int col, int row) {
  return col >= b.col0 && col < b.col1 && row >= b.row0 && row < b.row1;
}

}  // namespace

std::pair<double, double> to_lonlat(double x, double y) {
  OGRSpatialReference utm, wgs84;
  utm.importFromEPSG(32607);
  wgs84.importFromEPSG(4326);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&utm, &wgs84));
  ct->Transform(1, &x, &y);
  return {x, y};
}

SurveySeries write_survey_series(const std::string& dir, const std::string& yahtse_dir,
                                 const SurveySeriesOptions& options) {
  const io::Raster scene =
      io::Raster::open((fs::path(yahtse_dir) / "LC80630182016200LGN00_B8_yahtse.TIF").string());
  const auto& info = scene.info();
  const int base_w = kSurveyTileBOffset + kSurveyTileWidth + 2 * kMargin,
            base_h = kSurveyTileHeight + 2 * kMargin;
  const auto base = scene.read(1, io::Window{kBaseCol, kBaseRow, base_w, base_h});
  SurveySeries s;
  info.geotransform.pixel_to_map(kBaseCol + kMargin, kBaseRow + kMargin, s.base_x0, s.base_y0);
  const Scene scenes[] = {
      {"T07AAA", "R001", 0},
      {"T07AAA", "R001", 10, Scene::kCloudyOutside},
      {"T07AAA", "R001", 15, Scene::kCloudyAoi},
      {"T07AAA", "R001", 20},
      {"T07BBB", "R002", 2},
      {"T07BBB", "R002", 12},
      {"T07BBB", "R002", 22},
  };
  std::ostringstream manifest;
  manifest << "path,date,orbit,tile\n";
  for (const auto& sc : scenes) {
    const int offset = std::string(sc.tile) == "T07AAA" ? 0 : kSurveyTileBOffset;
    const int shift_e = static_cast<int>(std::lround(kSurveyEastPxPerDay * sc.day));
    const int shift_s = static_cast<int>(std::lround(kSurveySouthPxPerDay * sc.day));
    GridF image(kSurveyTileWidth, kSurveyTileHeight, 0.f);
    GridF scl(kSurveyTileWidth, kSurveyTileHeight, 4.f);  // vegetation: clear
    for (int r = 0; r < kSurveyTileHeight; ++r) {
      for (int c = 0; c < kSurveyTileWidth; ++c) {
        // What was at (c - shift) is now at c: the ground moves east and south (inside the moving box only,
        // when one is given).
        const bool moves = !options.moving || inside(*options.moving, offset + c, r);
        image(c, r) = moves ? base.values(kMargin + offset + c - shift_e, kMargin + r - shift_s)
                            : base.values(kMargin + offset + c, kMargin + r);
        if (sc.clouds == Scene::kCloudyAoi) scl(c, r) = 9.f;
        if (sc.clouds == Scene::kCloudyOutside && c < 64) scl(c, r) = 9.f;
      }
    }
    if (sc.clouds == Scene::kCloudyAoi) {
      // A cloud over the aoi: no texture to match (a pair with it would spoil the track).
      for (auto& v : image.values()) v = 300.f;
    }
    const std::string date = fmt::format("202007{:02d}", 1 + sc.day);
    const std::string stem = fmt::format("{}_{}T200000", sc.tile, date);
    const double x0 = s.base_x0 + offset * kSurveyPixelM;
    const std::string band = (fs::path(dir) / (stem + "_B08_10m.tif")).string();
    write_raster(band, image, x0, s.base_y0);
    write_raster((fs::path(dir) / (stem + "_SCL_20m.tif")).string(), scl, x0, s.base_y0);
    manifest << band << ',' << date << ',' << sc.orbit << ',' << sc.tile << '\n';
  }
  s.manifest = (fs::path(dir) / "scenes.csv").string();
  std::ofstream out(s.manifest);
  out << manifest.str();
  if (!out.flush()) throw IoError(fmt::format("{}: cannot be written", s.manifest));
  // The aoi leaves out the western 80 px of tile A (where the kept scene's clouds are).
  const auto [w, n] = to_lonlat(s.base_x0 + 80 * kSurveyPixelM, s.base_y0);
  const auto [e, south] = to_lonlat(s.base_x0 + (kSurveyTileBOffset + kSurveyTileWidth) * kSurveyPixelM,
                                    s.base_y0 - kSurveyTileHeight * kSurveyPixelM);
  s.aoi = fmt::format("{:.6f},{:.6f},{:.6f},{:.6f}", w, south, e, n);
  return s;
}

void write_survey_outlines(const std::string& path, const SurveySeries& series,
                           const std::vector<SurveyOutline>& outlines) {
  nlohmann::json features = nlohmann::json::array();
  for (const auto& o : outlines) {
    nlohmann::json ring = nlohmann::json::array();
    // Corners, and points along the edges so that the polygon stays the box once projected back to UTM.
    const std::pair<int, int> corners[] = {{o.box.col0, o.box.row0},
                                           {o.box.col1, o.box.row0},
                                           {o.box.col1, o.box.row1},
                                           {o.box.col0, o.box.row1}};
    for (int k = 0; k < 4; ++k) {
      const auto [c0, r0] = corners[k];
      const auto [c1, r1] = corners[(k + 1) % 4];
      for (int t = 0; t < 8; ++t) {
        const double col = c0 + (c1 - c0) * t / 8.0, row = r0 + (r1 - r0) * t / 8.0;
        const auto [lon, lat] =
            to_lonlat(series.base_x0 + col * kSurveyPixelM, series.base_y0 - row * kSurveyPixelM);
        ring.push_back({lon, lat});
      }
    }
    ring.push_back(ring.front());
    features.push_back({{"type", "Feature"},
                        {"properties", {{"glac_id", o.id}, {"glac_name", o.name}}},
                        {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}}});
  }
  std::ofstream out(path);
  out << nlohmann::json{{"type", "FeatureCollection"}, {"features", features}}.dump(1) << '\n';
  if (!out.flush()) throw IoError(fmt::format("{}: cannot be written", path));
}

}  // namespace deforma::test
