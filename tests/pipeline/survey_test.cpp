// `deforma survey` on a synthetic multi-tile, multi-orbit series cut from real Landsat texture: two
// overlapping tiles seen from two relative orbits, a known uniform velocity, one scene whose cloud mask
// covers the aoi (dropped) and one whose clouds lie outside the aoi (kept).
#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/pipeline/survey.hpp"
#include "pipeline/survey_series.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;

constexpr double kPixelM = test::kSurveyPixelM;
constexpr int kTileWidth = test::kSurveyTileWidth;
constexpr int kTileBOffset = test::kSurveyTileBOffset;
constexpr double kEastMPerYr = test::kSurveyEastMPerYr, kNorthMPerYr = test::kSurveyNorthMPerYr;

using Series = test::SurveySeries;

Series write_series(const test::TempDir& dir, const fs::path& data,
                    const test::SurveySeriesOptions& options = {}) {
  return test::write_survey_series(dir.path().string(), data.string(), options);
}

// A survey of the series into `dir`/out over its area of interest, dropping scenes above 20 % cloud.
pipeline::SurveyOptions survey_of(const Series& series, const test::TempDir& dir) {
  pipeline::SurveyOptions o;
  o.inputs = {series.manifest};
  o.output_dir = dir.file("out");
  o.aoi = series.aoi;
  o.max_cloud_percent = 20.0;
  return o;
}

struct PartStats {
  int cells = 0;
  int close = 0;  // within 3 % of the true velocity in both components
};

TEST(Survey, TwoTilesTwoOrbitsMosaicRecoversTheVelocityEverywhere) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", data);
  test::TempDir dir;
  const Series series = write_series(dir, data);
  pipeline::SurveyOptions o = survey_of(series, dir);
  o.track.correlation.match.search_px = 8;
  o.track.network.max_step = 3;
  o.quicklooks = false;
  RunContext context;
  context.threads = 2;
  const Summary s = pipeline::run_survey(o, context);
  EXPECT_EQ(s.counts.at("scenes"), 7);
  EXPECT_EQ(s.counts.at("dropped"), 1);
  EXPECT_EQ(s.counts.at("tracks"), 2);
  EXPECT_EQ(s.counts.at("pairs"), 6);  // 3 scenes per track, every pair within 3 acquisitions
  EXPECT_GT(s.counts.at("overlap"), 0);

  // The scene table says which was dropped and why; the scene cloudy outside the aoi is kept.
  std::ifstream in(dir.file("out/scenes.csv"));
  std::stringstream table;
  table << in.rdbuf();
  bool saw_dropped = false, saw_kept_cloudy = false;
  std::string line;
  while (std::getline(table, line)) {
    if (line.find("20200716") != std::string::npos) {
      saw_dropped = line.find("dropped: 100.0 % cloud on the aoi") != std::string::npos;
    }
    if (line.find("20200711") != std::string::npos) saw_kept_cloudy = line.find(",kept") != std::string::npos;
  }
  EXPECT_TRUE(saw_dropped) << table.str();
  EXPECT_TRUE(saw_kept_cloudy) << table.str();

  const io::Raster mosaic = io::Raster::open(dir.file("out/velocity.tif"));
  const auto& info = mosaic.info();
  ASSERT_EQ(info.bands.size(), 7u);
  EXPECT_EQ(info.bands[0].description, "velocity_east_m_per_yr");
  EXPECT_EQ(info.bands[6].description, "tracks");
  EXPECT_EQ(info.metadata.count("DEFORMA_INPUTS"), 1u);  // provenance: the tracks' products
  const io::Window all{0, 0, info.width, info.height};
  const auto east = mosaic.read(1, all), north = mosaic.read(2, all), tracks = mosaic.read(7, all);
  // Tile A alone west of tile B's edge, tile B alone east of tile A's edge, and the cells both tracks
  // measured (within the tiles' overlap, less the edge nodes that one of them could not match).
  const double b_west = series.base_x0 + kTileBOffset * kPixelM,
               a_east = series.base_x0 + kTileWidth * kPixelM;
  PartStats parts[3];
  for (int r = 0; r < info.height; ++r) {
    for (int c = 0; c < info.width; ++c) {
      if (!east.valid(c, r) || !north.valid(c, r)) continue;
      double x = 0, y = 0;
      info.geotransform.pixel_to_map(c + 0.5, r + 0.5, x, y);
      int part = -1;
      if (tracks.values(c, r) == 2.f) {
        part = 1;
        EXPECT_TRUE(x > b_west && x < a_east) << c << "," << r;
      } else if (x < b_west) {
        part = 0;
      } else if (x > a_east) {
        part = 2;
      }
      if (part < 0) continue;
      auto& p = parts[part];
      ++p.cells;
      if (std::abs(east.values(c, r) - kEastMPerYr) <= 0.03 * kEastMPerYr &&
          std::abs(north.values(c, r) - kNorthMPerYr) <= 0.03 * std::abs(kNorthMPerYr)) {
        ++p.close;
      }
    }
  }
  const char* names[3] = {"tile A alone", "overlap", "tile B alone"};
  for (int k = 0; k < 3; ++k) {
    SCOPED_TRACE(names[k]);
    EXPECT_GE(parts[k].cells, 20);
    EXPECT_GE(parts[k].close, parts[k].cells * 9 / 10) << parts[k].close << " of " << parts[k].cells;
    std::printf("[ survey ] %s: %d of %d cells within 3 %%\n", names[k], parts[k].close, parts[k].cells);
  }
  // The STAC catalog of the mosaic.
  EXPECT_TRUE(fs::exists(dir.file("out/catalog.json")));
  EXPECT_TRUE(fs::exists(dir.file("out/velocity/velocity.json")));
  EXPECT_TRUE(fs::exists(dir.file("out/survey.json")));
}

TEST(Survey, EveryTrackLeftWithOneSceneIsRefusedNamingTheDrops) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", data);
  test::TempDir dir;
  const Series series = write_series(dir, data);
  pipeline::SurveyOptions o = survey_of(series, dir);
  o.track.network.max_step = 1;
  // Keep only the cloudy scene of track A and one scene of track B: no track has a pair.
  std::ifstream in(series.manifest);
  std::string header, line;
  std::getline(in, header);
  std::ostringstream few;
  few << header << '\n';
  while (std::getline(in, line)) {
    if (line.find("20200716") != std::string::npos || line.find("20200703") != std::string::npos)
      few << line << '\n';
  }
  std::ofstream(series.manifest) << few.str();
  RunContext context;
  try {
    pipeline::run_survey(o, context);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("no track"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1 dropped"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("out/velocity.tif")));
}

// A velocity product of `width` x 4 cells of 100 m from map x `x0`: east = `v`, north = -`v`, sigmas `sigma`
// (none when negative).
void write_product(const std::string& path, double x0, int width, float v, float sigma) {
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  const int bands = sigma < 0 ? 2 : 4;
  std::unique_ptr<GDALDataset> ds(driver->Create(path.c_str(), width, 4, bands, GDT_Float32, nullptr));
  ASSERT_TRUE(ds);
  double gt[6] = {x0, 100, 0, 6700000, 0, -100};
  ds->SetGeoTransform(gt);
  OGRSpatialReference utm;
  utm.importFromEPSG(32607);
  ds->SetSpatialRef(&utm);
  const char* names[4] = {"velocity_east_m_per_yr", "velocity_north_m_per_yr", "velocity_east_std_m_per_yr",
                          "velocity_north_std_m_per_yr"};
  const float values[4] = {v, -v, sigma, sigma};
  for (int b = 0; b < bands; ++b) {
    auto* band = ds->GetRasterBand(b + 1);
    band->SetDescription(names[b]);
    band->SetNoDataValue(-9999);
    std::vector<float> data(static_cast<std::size_t>(width) * 4, values[b]);
    ASSERT_EQ(band->RasterIO(GF_Write, 0, 0, width, 4, data.data(), width, 4, GDT_Float32, 0, 0), CE_None);
  }
}

// Overlaps are combined by inverse-variance weighting: 10 (sigma 1) and 20 (sigma 2) give 12, sigma
// sqrt(1 / 1.25); a product without sigmas counts only where none has one.
TEST(Survey, MosaicWeightsOverlapsByInverseVariance) {
  test::TempDir dir;
  write_product(dir.file("a.tif"), 500000, 6, 10.f, 1.f);   // x 500000 .. 500600
  write_product(dir.file("b.tif"), 500400, 6, 20.f, 2.f);   // x 500400 .. 501000
  write_product(dir.file("c.tif"), 500800, 4, 40.f, -1.f);  // x 500800 .. 501200, no sigma
  pipeline::MosaicOptions m;
  m.output_path = dir.file("mosaic.tif");
  RunContext context;
  const Summary s = pipeline::mosaic_velocity_products(
      {{dir.file("a.tif"), "a"}, {dir.file("b.tif"), "b"}, {dir.file("c.tif"), "c"}}, m, context);
  EXPECT_EQ(s.counts.at("cells"), 12 * 4);
  const io::Raster mosaic = io::Raster::open(m.output_path);
  ASSERT_EQ(mosaic.info().width, 12);
  const io::Window all{0, 0, 12, 4};
  const auto east = mosaic.read(1, all), north = mosaic.read(2, all), sigma = mosaic.read(4, all),
             tracks = mosaic.read(7, all);
  EXPECT_NEAR(east.values(1, 1), 10.f, 1e-4);
  EXPECT_NEAR(east.values(5, 1), 12.f, 1e-4);
  EXPECT_NEAR(north.values(5, 1), -12.f, 1e-4);
  EXPECT_NEAR(sigma.values(5, 1), std::sqrt(1 / 1.25), 1e-4);
  EXPECT_EQ(tracks.values(5, 1), 2.f);
  EXPECT_NEAR(east.values(7, 1), 20.f, 1e-4);
  EXPECT_NEAR(east.values(9, 1), 20.f, 1e-4);  // b has a sigma, c none: b alone
  EXPECT_EQ(tracks.values(9, 1), 2.f);
  EXPECT_NEAR(east.values(11, 1), 40.f, 1e-4);  // c alone: its value, sigma unknown
  EXPECT_FALSE(sigma.valid(11, 1));
}

// The same series as STAC Items in the catalogue (band and cloud-mask assets, relative orbit and MGRS tile
// properties): `deforma survey --catalog` finds the scenes over the aoi, counts their cloud cover on it
// from the masks and mosaics the two tracks.
TEST(Survey, CliTakesTheScenesFromTheCatalogue) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", data);
  test::TempDir dir;
  const Series series = write_series(dir, data);
  nlohmann::json features = nlohmann::json::array();
  std::ifstream in(series.manifest);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    ASSERT_EQ(f.size(), 4u) << line;
    const std::string band = f[0];
    std::string scl = band;
    scl.replace(scl.find("_B08_10m"), 8, "_SCL_20m");
    const auto info = io::describe(band);
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    info.geotransform.pixel_to_map(0, 0, x0, y0);
    info.geotransform.pixel_to_map(info.width, info.height, x1, y1);
    const auto [w, n] = test::to_lonlat(x0, y0);
    const auto [e, south] = test::to_lonlat(x1, y1);
    const std::string date = f[1].substr(0, 4) + "-" + f[1].substr(4, 2) + "-" + f[1].substr(6, 2);
    features.push_back(
        {{"type", "Feature"},
         {"stac_version", "1.0.0"},
         {"id", fs::path(band).stem().string()},
         {"collection", "survey-test"},
         {"geometry",
          {{"type", "Polygon"}, {"coordinates", {{{w, south}, {e, south}, {e, n}, {w, n}, {w, south}}}}}},
         {"bbox", {w, south, e, n}},
         {"properties",
          {{"datetime", date + "T20:00:00Z"},
           {"sat:relative_orbit", std::stoi(f[2].substr(1))},
           {"s2:mgrs_tile", f[3].substr(1)},
           {"platform", "sentinel-2a"}}},
         {"links", nlohmann::json::array()},
         {"assets",
          {{"B08_10m", {{"href", band}, {"type", "image/tiff; application=geotiff"}, {"roles", {"data"}}}},
           {"cloud-mask",
            {{"href", scl}, {"type", "image/tiff; application=geotiff"}, {"roles", {"cloud"}}}}}}});
  }
  std::ofstream(dir.file("items.json"))
      << nlohmann::json{{"type", "FeatureCollection"}, {"features", features}}.dump();
  const auto added =
      test::run_cli(fmt::format("catalog add --root {} {}", dir.file("root"), dir.file("items.json")));
  ASSERT_EQ(added.exit_code, 0) << added.err << added.out;

  const auto run =
      test::run_cli(fmt::format("--summary-json -q survey --catalog {} --aoi={} --datetime "
                                "2020-06-01/2020-08-31 --asset B08 --max-cloud 20 "
                                "--search 8 --no-quicklooks -o {}",
                                dir.file("root"), series.aoi, dir.file("out")));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["counts"]["scenes"], 7);
  EXPECT_EQ(summary["counts"]["dropped"], 1);
  EXPECT_EQ(summary["counts"]["tracks"], 2);
  EXPECT_TRUE(summary["details"]["tracks"].contains("R001/T07AAA")) << summary["details"]["tracks"].dump();
  EXPECT_TRUE(fs::exists(dir.file("out/velocity.tif")));

  // Refusals, each with exit code 3 and the parameter named.
  const auto both = test::run_cli(fmt::format("survey {} --catalog {} --aoi={} -o {}", series.manifest,
                                              dir.file("root"), series.aoi, dir.file("x")));
  EXPECT_EQ(both.exit_code, 3);
  EXPECT_NE(both.err.find("--catalog"), std::string::npos) << both.err;
  const auto none = test::run_cli(fmt::format("survey -o {}", dir.file("x")));
  EXPECT_EQ(none.exit_code, 3);
  EXPECT_NE(none.err.find("images"), std::string::npos) << none.err;
  const auto metres =
      test::run_cli(fmt::format("survey {} --search 300m -o {}", series.manifest, dir.file("x")));
  EXPECT_EQ(metres.exit_code, 3);
  EXPECT_NE(metres.err.find("--search"), std::string::npos) << metres.err;
  const auto mode = test::run_cli(
      fmt::format("survey {} --pair-mode consecutive --max-step 2 -o {}", series.manifest, dir.file("x")));
  EXPECT_EQ(mode.exit_code, 3);
  EXPECT_NE(mode.err.find("--pair-mode"), std::string::npos) << mode.err;
  EXPECT_FALSE(fs::exists(dir.file("x")));
}

// `survey --glaciers`: on the series where only a glacier crossing both tiles moves (over still rock), with
// its outline in GLIMS layout. Each track matches only the ice and a 600 m buffer (cells farther away stay
// empty), corrects each pair on the ring outside the outline (still rock: its speed stays near 0 after the
// correction), and the mosaic's per-glacier statistics recover the glacier's speed; the table is in
// glaciers/, in survey.json and in the velocity STAC Item. Outlines that reach no track are refused.
TEST(Survey, GlaciersRestrictMatchingToTheIceAndGiveStatisticsPerGlacier) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", data);
  test::TempDir dir;
  test::SurveySeriesOptions options;
  options.moving = test::kSurveyGlacierBox;
  const Series series = write_series(dir, data, options);
  const std::string outlines = dir.file("outlines.geojson");
  test::write_survey_outlines(outlines, series,
                              {{"G000001E00001N", "Test Glacier", test::kSurveyGlacierBox}});
  const auto run = test::run_cli(fmt::format(
      "--summary-json -q survey {} --aoi={} --max-cloud 20 --search 8 --max-step 3 --no-quicklooks "
      "--glaciers {} --glacier-buffer-m 600 --glacier-margin-m 100 -o {}",
      series.manifest, series.aoi, outlines, dir.file("out")));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["counts"]["tracks"], 2);
  const auto& glaciers = summary["details"]["glaciers"]["glaciers"];
  ASSERT_EQ(glaciers.size(), 1u) << summary["details"].dump();
  const auto& g = glaciers[0];
  EXPECT_EQ(g["id"], "G000001E00001N");
  const double speed = std::hypot(kEastMPerYr, kNorthMPerYr);
  EXPECT_NEAR(g["median_speed"].get<double>(), speed, 0.03 * speed) << g.dump();
  EXPECT_GT(g["valid_fraction"].get<double>(), 0.6) << g.dump();
  // The table beside the mosaic, and in the STAC Item of the velocity.
  std::ifstream csv(dir.file("out/glaciers/glaciers.csv"));
  std::stringstream table;
  table << csv.rdbuf();
  EXPECT_NE(table.str().find("\"G000001E00001N\",\"Test Glacier\","), std::string::npos) << table.str();
  std::ifstream item_file(dir.file("out/velocity/velocity.json"));
  const auto item = nlohmann::json::parse(item_file);
  EXPECT_EQ(item["properties"]["deforma:glaciers"].size(), 1u);
  EXPECT_EQ(item["assets"]["glaciers"].value("href", ""), "../glaciers/glaciers.csv")
      << item["assets"].dump();
  EXPECT_EQ(item["assets"]["glaciers_report"].value("href", ""), "../glaciers/glaciers.json")
      << item["assets"].dump();

  // The mosaic: the ice recovered; the still rock of the ring near 0; nothing matched far from the ice.
  const io::Raster mosaic = io::Raster::open(dir.file("out/velocity.tif"));
  const auto& info = mosaic.info();
  const io::Window all{0, 0, info.width, info.height};
  const auto east = mosaic.read(1, all), north = mosaic.read(2, all);
  const auto box = test::kSurveyGlacierBox;
  int ice = 0, ice_close = 0, rock = 0, rock_still = 0, far_valid = 0, far = 0;
  for (int r = 0; r < info.height; ++r) {
    for (int c = 0; c < info.width; ++c) {
      double x = 0, y = 0;
      info.geotransform.pixel_to_map(c + 0.5, r + 0.5, x, y);
      // The cell's centre in pixels of the series, and its distance outside the glacier's box.
      const double col = (x - series.base_x0) / kPixelM, row = (series.base_y0 - y) / kPixelM;
      const double dx = std::max({box.col0 - col, col - box.col1, 0.0});
      const double dy = std::max({box.row0 - row, row - box.row1, 0.0});
      const double outside_m = std::hypot(dx, dy) * kPixelM;
      const bool valid = east.valid(c, r) && north.valid(c, r);
      // Nodes whose chip (32 px) lies wholly on one side of the outline.
      if (col > box.col0 + 16 && col < box.col1 - 16 && row > box.row0 + 16 && row < box.row1 - 16 && valid) {
        ++ice;
        if (std::abs(east.values(c, r) - kEastMPerYr) <= 0.03 * kEastMPerYr &&
            std::abs(north.values(c, r) - kNorthMPerYr) <= 0.03 * std::abs(kNorthMPerYr))
          ++ice_close;
      } else if (outside_m > 16 * kPixelM && outside_m < 500 && valid) {
        ++rock;
        if (std::hypot(east.values(c, r), north.values(c, r)) < 0.05 * speed) ++rock_still;
      } else if (outside_m > 600 + 16 * kPixelM) {
        ++far;
        if (valid) ++far_valid;
      }
    }
  }
  std::printf("[ survey ] ice %d of %d within 3 %%, rock %d of %d still, far from the ice %d of %d valid\n",
              ice_close, ice, rock_still, rock, far_valid, far);
  EXPECT_GE(ice, 20);
  EXPECT_GE(ice_close, ice * 9 / 10);
  EXPECT_GE(rock, 10);
  EXPECT_GE(rock_still, rock * 9 / 10);
  EXPECT_GT(far, 0);
  EXPECT_EQ(far_valid, 0);

  // Outlines far from every tile: refused before anything is matched.
  const std::string away = dir.file("away.geojson");
  test::write_survey_outlines(away, series, {{"G2", "Far Away", {3000, 3000, 3100, 3100}}});
  const auto refused = test::run_cli(
      fmt::format("survey {} --search 8 --glaciers {} --glacier-buffer-m 600 --glacier-margin-m 100 -o {}",
                  series.manifest, away, dir.file("x")));
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_NE(refused.err.find("--glaciers"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir.file("x/velocity.tif")));
}

TEST(Survey, MosaicRefusesProductsInPixels) {
  test::TempDir dir;
  GridF v(8, 8, 1.f);
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  {
    std::unique_ptr<GDALDataset> ds(driver->Create(dir.file("v.tif").c_str(), 8, 8, 2, GDT_Float32, nullptr));
    ds->GetRasterBand(1)->SetDescription("velocity_east_m_per_yr");
    ds->GetRasterBand(2)->SetDescription("velocity_north_m_per_yr");
  }
  pipeline::MosaicOptions m;
  m.output_path = dir.file("mosaic.tif");
  RunContext context;
  EXPECT_THROW(pipeline::mosaic_velocity_products({{dir.file("v.tif"), "R001/T1"}}, m, context),
               InvalidArgument);
  EXPECT_FALSE(fs::exists(m.output_path));
}

}  // namespace
}  // namespace deforma
