#include "deforma/pipeline/pipeline.hpp"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/filter/filter.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/vector.hpp"
#include "test_support.hpp"

namespace deforma::pipeline {
namespace {
namespace fs = std::filesystem;

nlohmann::json load_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Checks the STAC catalog of an output folder: items exist, every href resolves.
void expect_valid_catalog(const fs::path& folder) {
  const auto catalog = load_json(folder / "catalog.json");
  EXPECT_EQ(catalog["type"], "Catalog");
  int items = 0;
  for (const auto& link : catalog["links"]) {
    const fs::path target = folder / link["href"].get<std::string>();
    ASSERT_TRUE(fs::exists(target)) << target;
    if (link["rel"] != "item") continue;
    ++items;
    const auto item = load_json(target);
    EXPECT_TRUE(item["properties"]["start_datetime"].is_string());
    for (const auto& [key, asset] : item["assets"].items()) {
      EXPECT_TRUE(fs::exists(target.parent_path() / asset["href"].get<std::string>())) << key;
    }
  }
  EXPECT_GE(items, 3);
}

// Synthetic georeferenced images (UTM 7N, 15 m): a texture moving 2 px east per 10 days over its middle
// third (the "glacier"); the rest is still. The file names carry the dates.
struct MovingScene {
  static constexpr int kSize = 192;
  std::vector<std::string> paths;
  std::vector<int> day_offsets;

  MovingScene(const test::TempDir& tmp, int count, std::vector<int> days = {}) {
    const GridF texture = test::make_texture(kSize + 64, kSize, 7);
    if (days.empty()) {
      for (int k = 0; k < count; ++k) days.push_back(10 * k);
    }
    day_offsets = days;
    for (int k = 0; k < count; ++k) {
      const int shift = days[static_cast<std::size_t>(k)] / 5;  // 2 px per 10 days
      GridF img(kSize, kSize);
      for (int r = 0; r < kSize; ++r) {
        for (int c = 0; c < kSize; ++c) {
          const bool moving = c >= kSize / 3 && c < 2 * kSize / 3;
          img(c, r) = texture(c + 32 - (moving ? shift : 0), r);
        }
      }
      const io::Date date = io::Date::from_days_since_epoch(
          io::Date::from_ymd(2021, 3, 1).days_since_epoch() + days[static_cast<std::size_t>(k)]);
      const std::string path = tmp.file("scene_" + date.compact() + ".tif");
      test::write_test_geotiff(path, img);
      paths.push_back(path);
    }
  }
};

PipelineOptions fast_options(const std::vector<std::string>& inputs, const std::string& out) {
  PipelineOptions o;
  o.inputs = inputs;
  o.output_dir = out;
  o.correlation.step_px = 16;
  o.correlation.match.chip_px = 32;
  o.correlation.match.search_px = 10;
  o.correlation.match.prefilter = correlate::Prefilter::kNone;
  o.network.max_step = 2;
  o.quicklooks = false;
  o.per_pair_ram_mb = 64;
  return o;
}

TEST(Pipeline, SyntheticSeriesRecoversVelocityAndResumes) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 4);
  auto options = fast_options(scene.paths, tmp.file("out"));
  RunContext context;
  context.ram_budget_mb = 256;
  const Summary first = run_pipeline(options, context);
  EXPECT_EQ(first.counts.at("images"), 4);
  EXPECT_EQ(first.counts.at("pairs"), 5);  // steps 1 and 2 among 4 dates
  EXPECT_EQ(first.counts.at("pairs_correlated"), 5);
  EXPECT_EQ(first.details["units"], "m");

  // 2 px x 15 m per 10 days east on the moving band: 1095.75 m/yr; still elsewhere.
  const auto velocity = io::Raster::open(tmp.file("out/products/velocity.tif"));
  int east_band = 0;
  for (const auto& b : velocity.info().bands) {
    if (b.description == "velocity_east_m_per_yr") east_band = b.index;
  }
  ASSERT_GT(east_band, 0);
  const auto east = velocity.read_all(east_band);
  int moving_checked = 0, still_checked = 0;
  for (int r = 2; r < east.values.height() - 2; ++r) {
    for (int c = 0; c < east.values.width(); ++c) {
      if (!east.valid(c, r)) continue;
      double x = 0, y = 0;
      velocity.info().geotransform.pixel_to_map(c + 0.5, r + 0.5, x, y);
      const double image_col =
          (x - 500000.0) / 15.0;  // the node's image column (test images start at 500000 E)
      if (image_col > MovingScene::kSize / 3 + 24 && image_col < 2 * MovingScene::kSize / 3 - 24) {
        EXPECT_NEAR(east.values(c, r), 1095.75, 60.0) << c << "," << r;
        ++moving_checked;
      } else if (image_col < MovingScene::kSize / 3 - 24 || image_col > 2 * MovingScene::kSize / 3 + 24) {
        EXPECT_NEAR(east.values(c, r), 0.0, 40.0) << c << "," << r;
        ++still_checked;
      }
    }
  }
  EXPECT_GT(moving_checked, 5);
  EXPECT_GT(still_checked, 10);
  expect_valid_catalog(tmp.path() / "out");
  EXPECT_TRUE(fs::exists(tmp.file("out/pairs.csv")));
  EXPECT_TRUE(fs::exists(tmp.file("out/network.png")));

  // Rerun: every pair is reused.
  const Summary second = run_pipeline(options, context);
  EXPECT_EQ(second.counts.at("pairs_reused"), 5);
  EXPECT_EQ(second.counts.at("pairs_correlated"), 0);
}

using test::CancelAfter;

TEST(Pipeline, KilledCorrelationResumesKeepingCompletePairs) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 5);
  auto options = fast_options(scene.paths, tmp.file("out"));
  CancelAfter cancel(2);
  RunContext context;
  context.threads = 1;  // one pair at a time: exactly two complete before the stop
  context.progress = &cancel;
  EXPECT_THROW(run_pipeline(options, context), Cancelled);
  int complete = 0;
  for (const auto& e : fs::directory_iterator(tmp.file("out/correlation"))) {
    EXPECT_NE(e.path().filename().string().front(), '.') << "temporary file left: " << e.path();
    if (e.path().extension() == ".tif") ++complete;
  }
  EXPECT_EQ(complete, 2);
  RunContext again;
  const Summary resumed = run_pipeline(options, again);
  EXPECT_EQ(resumed.counts.at("pairs_reused"), 2);
  EXPECT_EQ(resumed.counts.at("pairs_correlated"), 5);  // 7 pairs in all
  EXPECT_EQ(resumed.counts.at("pairs"), 7);
}

TEST(Pipeline, TwoImagesGiveTheVelocityOfTheSinglePair) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 2, {0, 20});
  auto options = fast_options(scene.paths, tmp.file("out"));
  RunContext context;
  const Summary s = run_pipeline(options, context);
  EXPECT_EQ(s.counts.at("pairs"), 1);
  EXPECT_EQ(s.counts.at("pairs_inverted"), 1);
  const auto v = io::Raster::open(tmp.file("out/products/velocity.tif"));
  EXPECT_EQ(v.info().bands[0].description, "velocity_east_m_per_yr");
  EXPECT_EQ(v.info().bands[0].unit, "m/yr");
  const auto east = v.read_all(1);
  const int mid = east.values.width() / 2;
  EXPECT_NEAR(east.values(mid, east.values.height() / 2), 1095.75, 60.0);
  expect_valid_catalog(tmp.path() / "out");
}

TEST(PipelineBadInput, UnreadableImageIsNamedOrSkipped) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 3);
  const std::string bad = tmp.file("scene_20210305.tif");
  std::ofstream(bad) << "this is not a GeoTIFF";
  std::string args;
  for (const auto& p : scene.paths) args += " " + p;
  args += " " + bad;
  const std::string common = " --step 16 --chip 32 --search 10 --prefilter none --no-quicklooks";
  const auto r = test::run_cli("-q pipeline" + args + " -o " + tmp.file("out") + common);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("scene_20210305.tif"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--skip-bad"), std::string::npos) << r.err;
  const auto skipped = test::run_cli("pipeline" + args + " -o " + tmp.file("out2") + common + " --skip-bad");
  EXPECT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_NE((skipped.out + skipped.err).find("scene_20210305.tif"), std::string::npos);
  EXPECT_TRUE(fs::exists(tmp.file("out2/catalog.json")));
}

TEST(PipelineBadInput, SingleImageDifferentSizesAndDuplicateDatesAreRefused) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 2);
  const auto single = test::run_cli("-q pipeline " + scene.paths[0] + " -o " + tmp.file("o1"));
  EXPECT_EQ(single.exit_code, 3) << single.err;
  EXPECT_NE(single.err.find("at least two images"), std::string::npos) << single.err;

  const std::string other_size = tmp.file("small_20210401.tif");
  test::write_test_geotiff(other_size, test::make_texture(100, 90, 3));
  const auto sizes = test::run_cli("-q pipeline " + scene.paths[0] + " " + scene.paths[1] + " " + other_size +
                                   " -o " + tmp.file("o2"));
  EXPECT_EQ(sizes.exit_code, 3) << sizes.err;
  EXPECT_NE(sizes.err.find("small_20210401.tif"), std::string::npos) << sizes.err;

  const std::string other_crs = tmp.file("crs_20210402.tif");
  test::write_test_geotiff(other_crs, test::make_texture(MovingScene::kSize, MovingScene::kSize, 3),
                           "Float32", -9999, false, 32608);
  const auto crs = test::run_cli("-q pipeline " + scene.paths[0] + " " + other_crs + " -o " + tmp.file("o3"));
  EXPECT_EQ(crs.exit_code, 3) << crs.err;
  EXPECT_NE(crs.err.find("crs_20210402.tif"), std::string::npos) << crs.err;

  const std::string duplicate = tmp.file("copy_20210301.tif");
  fs::copy_file(scene.paths[0], duplicate);
  const auto dup = test::run_cli("-q pipeline " + scene.paths[0] + " " + scene.paths[1] + " " + duplicate +
                                 " -o " + tmp.file("o4"));
  EXPECT_EQ(dup.exit_code, 3) << dup.err;
  EXPECT_NE(dup.err.find("copy_20210301.tif"), std::string::npos) << dup.err;
  EXPECT_NE(dup.err.find("same date"), std::string::npos) << dup.err;
}

TEST(PipelineRealData, YahtsePairWithRockPolygonsHasNoBiasAfterCorrection) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  test::TempDir tmp;
  PipelineOptions o;
  o.inputs = {(dir / "LC80630182016200LGN00_B8_yahtse.TIF").string(),
              (dir / "LC80630182016216LGN00_B8_yahtse.TIF").string()};
  o.output_dir = tmp.file("out");
  o.correlation.step_px = 16;
  o.correlation.match.chip_px = 32;
  o.correlation.match.search_px = 24;
  o.filter.stable = filter::StableSource::kPolygons;
  o.filter.stable_path = (dir / "StEliasMtn_utm7v_rock.gmt").string();
  o.filter.ramp = filter::RampModel::kPlane;
  o.per_pair_ram_mb = 128;
  RunContext context;
  const Summary s = run_pipeline(o, context);
  EXPECT_EQ(s.counts.at("pairs"), 1);
  // The filtered pair, measured on the rock polygons: the bias is gone.
  fs::path result;
  for (const auto& e : fs::directory_iterator(tmp.file("out/filtered"))) {
    if (e.path().extension() == ".tif") result = e.path();
  }
  ASSERT_FALSE(result.empty());
  const auto raster = io::Raster::open(result.string());
  const auto& info = raster.info();
  const auto rock =
      filter::read_node_mask(o.filter.stable_path, info, {0, 0, info.width, info.height}, "stable");
  const auto dx = raster.read_all(1), dy = raster.read_all(2);
  std::vector<float> sx, sy;
  for (int r = 0; r < info.height; ++r) {
    for (int c = 0; c < info.width; ++c) {
      if (rock(c, r) && dx.valid(c, r) && dy.valid(c, r)) {
        sx.push_back(dx.values(c, r));
        sy.push_back(dy.values(c, r));
      }
    }
  }
  ASSERT_GT(sx.size(), 100u);
  auto median = [](std::vector<float> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  RecordProperty("rock_nodes", static_cast<int>(sx.size()));
  RecordProperty("rock_median_dx_px", fmt::format("{:.4f}", median(sx)));
  RecordProperty("rock_median_dy_px", fmt::format("{:.4f}", median(sy)));
  EXPECT_NEAR(median(sx), 0.0, 0.05);
  EXPECT_NEAR(median(sy), 0.0, 0.05);
  const auto record = nlohmann::json::parse(info.metadata.at("DEFORMA_FILTER"));
  EXPECT_EQ(record["stable_ground"]["source"], "polygons");
  EXPECT_GT(record["stable_ground"]["nodes"].get<int>(), 100);
  // The glacier moves: the 95th percentile of the speed is far above the rock's median.
  const auto& headline = s.details["headline"];
  EXPECT_GT(headline["p95_speed"].get<double>(),
            10 * std::max(1.0, headline["median_speed_stable"].get<double>()));
  expect_valid_catalog(tmp.path() / "out");
  const auto item = load_json(tmp.path() / "out" / "velocity" / "velocity.json");
  EXPECT_EQ(item["properties"]["proj:code"], "EPSG:32607");
}

TEST(PipelineRealData, PeritoMorenoSubsetRunsEndToEnd) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  test::TempDir tmp;
  PipelineOptions o;
  for (const char* date : {"20200101", "20200106", "20200108", "20200116", "20200118", "20200121"}) {
    o.inputs.push_back((dir / (std::string(date) + ".jpg")).string());
  }
  o.output_dir = tmp.file("out");
  o.correlation.step_px = 32;
  o.correlation.match.chip_px = 32;
  o.correlation.match.search_px = 8;  // ~0.3 px/day at most: a few px per pair
  o.max_velocity_per_yr = 300;        // px/yr: about 3 times the fastest ice
  o.network.max_step = 2;
  o.filter.stable = filter::StableSource::kAuto;
  o.filter.ramp = filter::RampModel::kBias;
  o.filter.exclude_path = (dir / "mask.jpg").string();
  o.quicklooks = true;
  RunContext context;
  const Summary s = run_pipeline(o, context);
  EXPECT_EQ(s.details["units"], "px");
  const auto& h = s.details["headline"];
  ASSERT_GT(h["stable_nodes"].get<int>(), 100);
  ASSERT_GT(h["moving_nodes"].get<int>(), 100);
  const double off_ice = h["median_speed_stable"], on_ice = h["median_speed_moving"], p95 = h["p95_speed"];
  RecordProperty("off_ice_median_px_per_yr", fmt::format("{:.2f}", off_ice));
  RecordProperty("on_ice_median_px_per_yr", fmt::format("{:.2f}", on_ice));
  RecordProperty("median_rmse_px", fmt::format("{:.3f}", h.value("median_rmse", -1.0)));
  // Off-ice median speed near zero; the glacier clearly moving.
  EXPECT_LT(off_ice, 12.0);
  EXPECT_GT(on_ice, 3 * off_ice);
  EXPECT_GT(p95, 40.0);
  ASSERT_TRUE(h.contains("median_rmse"));
  EXPECT_GE(h["median_rmse"].get<double>(), 0.0);
  EXPECT_NE(s.report.find("residual RMSE"), std::string::npos);
  expect_valid_catalog(tmp.path() / "out");
}

}  // namespace
}  // namespace deforma::pipeline
