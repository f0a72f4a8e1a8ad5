#include "deforma/pipeline/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/filter/filter.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/vector.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "deforma/timeseries/products.hpp"
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

// One more image in the same output folder: only the pairs with the new image are correlated, the rest
// reused, the network inverted again, and the summary says so.
TEST(Pipeline, OneMoreImageUpdatesTheSeriesComputingOnlyTheNewPairs) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 5);
  const std::vector<std::string> four(scene.paths.begin(), scene.paths.begin() + 4);
  RunContext context;
  context.ram_budget_mb = 256;
  const Summary first = run_pipeline(fast_options(four, tmp.file("out")), context);
  EXPECT_EQ(first.counts.at("pairs_correlated"), 5);
  EXPECT_FALSE(first.details.contains("update"));

  const Summary updated = run_pipeline(fast_options(scene.paths, tmp.file("out")), context);
  EXPECT_EQ(updated.counts.at("images"), 5);
  EXPECT_EQ(updated.counts.at("pairs"), 7);  // steps 1 and 2 among 5 dates: two pairs with the new image
  EXPECT_EQ(updated.counts.at("pairs_reused"), 5);
  EXPECT_EQ(updated.counts.at("pairs_correlated"), 2);
  EXPECT_EQ(updated.counts.at("pairs_inverted"), 7);
  EXPECT_EQ(updated.details["update"]["previous_images"], 4);
  EXPECT_EQ(updated.details["update"]["new_images"], 1);
  EXPECT_EQ(updated.details["last_date"], "2021-04-10");
  EXPECT_NE(updated.report.find("5 pairs reused, 2 computed"), std::string::npos) << updated.report;
  const auto written = load_json(tmp.path() / "out" / "pipeline.json");
  EXPECT_EQ(written["details"]["update"]["pairs_reused"], 5);
}

// The inversion runs as blocks of node rows (work units) assembled into the products: the same products as
// one process inverting every node of the kept pairs, value for value; a rerun reuses every block.
TEST(Pipeline, InversionBlocksGiveTheProductsOfOneProcessAndAreReused) {
  test::TempDir tmp;
  const MovingScene scene(tmp, 4);
  auto options = fast_options(scene.paths, tmp.file("out"));
  options.invert_block_rows = 3;
  RunContext context;
  context.ram_budget_mb = 256;
  const Summary first = run_pipeline(options, context);
  const auto& blocks = first.details["stages"]["invert"]["details"]["blocks"];
  ASSERT_GT(blocks["blocks"].get<int>(), 2);
  EXPECT_EQ(blocks["computed"], blocks["blocks"]);
  EXPECT_TRUE(fs::exists(tmp.file("out/inversion/blocks/rows_000003.bin")));

  auto pairs = timeseries::read_pair_table(tmp.file("out/pairs.csv"));
  for (auto& p : pairs) p.result_path = (tmp.path() / "out" / p.result_path).string();
  timeseries::InvertRastersOptions whole;
  whole.output_dir = tmp.file("whole");
  whole.units = "m";
  whole.weight_band = "corr";
  whole.quicklooks = false;
  whole.netcdf = false;
  timeseries::invert_pair_rasters(pairs, whole, context);
  for (const char* name : {"velocity.tif", "timeseries_east.tif", "timeseries_north_sigma.tif"}) {
    const auto a = io::Raster::open(tmp.file(std::string("whole/") + name));
    const auto b = io::Raster::open(tmp.file(std::string("out/products/") + name));
    ASSERT_EQ(a.info().band_count(), b.info().band_count());
    for (int band = 1; band <= a.info().band_count(); ++band) {
      EXPECT_EQ(a.read_all(band).values.values(), b.read_all(band).values.values()) << name << " " << band;
    }
  }

  const Summary second = run_pipeline(options, context);
  EXPECT_EQ(second.details["stages"]["invert"]["details"]["blocks"]["reused"], blocks["blocks"]);
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

// The headline figures of a velocity product larger than the sample and than one window under a small
// --ram: the same for any budget and any thread count (windows are merged in order), the counts exact.
TEST(Pipeline, HeadlineIsTheSameForAnyBudgetAndThreadCount) {
  test::TempDir tmp;
  constexpr int kWidth = 1200, kHeight = 1000;  // 1.2 million nodes: more than one sample, several windows
  GridF speed(kWidth, kHeight), rmse(kWidth, kHeight);
  long long valid = 0;
  for (int r = 0; r < kHeight; ++r) {
    for (int c = 0; c < kWidth; ++c) {
      const bool hole = (c * 31 + r * 17) % 13 == 0;
      speed(c, r) = hole ? -9999.0f : static_cast<float>((c * 7 + r * 3) % 1000) * 0.5f;
      rmse(c, r) = hole ? -9999.0f : static_cast<float>((c + 2 * r) % 50) * 0.01f;
      valid += hole ? 0 : 1;
    }
  }
  const std::string path = tmp.file("velocity.tif");
  io::GeoTransform gt;
  io::write_cog(path, {&speed, &rmse},
                {{"velocity_magnitude_m_per_yr", "m/yr", -9999.0}, {"rmse_m", "m", -9999.0}}, gt, "", {});
  const Headline whole = velocity_headline(path, "", "", 1024);
  Headline small;
  {
    tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
    small = velocity_headline(path, "", "", 16);
  }
  Headline two;
  {
    tbb::global_control two_threads(tbb::global_control::max_allowed_parallelism, 2);
    two = velocity_headline(path, "", "", 16);
  }
  EXPECT_EQ(whole.valid_nodes, valid);
  for (const Headline* h : {&small, &two}) {
    EXPECT_EQ(h->valid_nodes, whole.valid_nodes);
    EXPECT_EQ(h->p95_speed, whole.p95_speed);
    EXPECT_EQ(h->median_rmse, whole.median_rmse);
  }
  // The sample's 95th percentile of a uniform spread over [0, 500) m/yr.
  EXPECT_NEAR(whole.p95_speed, 475.0, 2.0);
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

// The whole Perito Moreno series through the documented command (docs/pipeline.md), checked against the
// pairs themselves: where most pairs agree on a node's velocity the inversion must give that velocity, and
// a steadily moving node must not move backwards by more than its uncertainty. One run (~20 s) serves
// every assertion.
TEST(PipelineRealData, PeritoMorenoInversionAgreesWithTheAgreeingPairs) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  test::TempDir tmp;
  const fs::path out = tmp.path() / "out";
  const auto run = test::run_cli("-q pipeline " + (dir / "2020*.jpg").string() + " -o " + out.string() +
                                 " --exclude " + (dir / "mask.jpg").string() +
                                 " --auto-stable --search 8 --max-velocity 300 --no-quicklooks");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto pairs = timeseries::read_pair_table((out / "pairs.csv").string());
  ASSERT_GE(pairs.size(), 60u);
  const auto velocity = io::Raster::open((out / "products" / "velocity.tif").string());
  const int width = velocity.info().width, height = velocity.info().height;
  const auto vx = velocity.read_all(1), vy = velocity.read_all(2);
  const auto cube_x = io::Raster::open((out / "products" / "timeseries_dx.tif").string());
  const auto cube_y = io::Raster::open((out / "products" / "timeseries_dy.tif").string());
  const auto sigma_x = io::Raster::open((out / "products" / "timeseries_dx_sigma.tif").string());
  const auto sigma_y = io::Raster::open((out / "products" / "timeseries_dy_sigma.tif").string());
  const int dates = cube_x.info().band_count();
  std::vector<io::BandWindow> sx, sy, ex, ey;
  for (int b = 1; b <= dates; ++b) {
    sx.push_back(cube_x.read_all(b));
    sy.push_back(cube_y.read_all(b));
    ex.push_back(sigma_x.read_all(b));
    ey.push_back(sigma_y.read_all(b));
  }
  // Pair velocities (px/yr) of every node, from the filtered pairs the inversion read.
  std::vector<std::vector<float>> pvx(static_cast<std::size_t>(width) * height), pvy(pvx.size()),
      pyears(pvx.size());
  for (const auto& p : pairs) {
    const auto r = io::Raster::open(p.result_path);
    const auto dx = r.read_all(1), dy = r.read_all(2);
    ASSERT_EQ(r.info().bands[0].description, "dx_px");
    const double years = static_cast<double>(p.days()) / 365.25;
    for (std::size_t i = 0; i < pvx.size(); ++i) {
      if (!dx.valid.data()[i] || !dy.valid.data()[i]) continue;
      pvx[i].push_back(static_cast<float>(dx.values.data()[i] / years));
      pvy[i].push_back(static_cast<float>(dy.values.data()[i] / years));
      pyears[i].push_back(static_cast<float>(years));
    }
  }
  auto median = [](std::vector<float> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return static_cast<double>(v[v.size() / 2]);
  };
  // A pair agrees with the node's median pair velocity v when its displacement is within
  // max(0.5 px, 25 % of v x its time span) of v x its time span (short pairs are noisier in px/yr); a
  // node's pairs agree when two thirds of at least 10 valid pairs do. The inverted velocity must then be
  // within max(15 px/yr, 25 %) of v.
  int agreeing = 0, inverted_agrees = 0, moving = 0, dips = 0, backwards = 0;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const std::size_t i = static_cast<std::size_t>(r) * width + c;
      if (pvx[i].size() < 10 || !vx.valid(c, r) || !vy.valid(c, r)) continue;
      const double mx = median(pvx[i]), my = median(pvy[i]), speed = std::hypot(mx, my);
      const double tolerance = std::max(15.0, 0.25 * speed);
      int agree = 0;
      for (std::size_t k = 0; k < pvx[i].size(); ++k) {
        const double t = pyears[i][k];
        agree += std::hypot(pvx[i][k] - mx, pvy[i][k] - my) * t <= std::max(0.5, 0.25 * speed * t) ? 1 : 0;
      }
      if (3 * agree < 2 * static_cast<int>(pvx[i].size())) continue;
      ++agreeing;
      const double miss = std::hypot(vx.values(c, r) - mx, vy.values(c, r) - my);
      if (miss <= tolerance) ++inverted_agrees;
      if (speed < 30.0) continue;
      // Steady motion: the series projected on the flow direction never goes back by more than twice
      // the uncertainty of the step, and never far behind its start.
      ++moving;
      const double ux = mx / speed, uy = my / speed;
      double previous = 0, previous_sigma = 0, lowest = 0;
      bool back = false;
      for (int k = 1; k < dates; ++k) {
        if (!sx[k].valid(c, r) || !sy[k].valid(c, r)) continue;
        const double along = sx[k].values(c, r) * ux + sy[k].values(c, r) * uy;
        const double sigma = ex[k].valid(c, r) && ey[k].valid(c, r)
                                 ? std::hypot(ex[k].values(c, r) * ux, ey[k].values(c, r) * uy)
                                 : 0.0;
        if (along < previous - 2.0 * std::hypot(sigma, previous_sigma) - 0.5) back = true;
        lowest = std::min(lowest, along);
        previous = along;
        previous_sigma = sigma;
      }
      dips += lowest < -5.0 ? 1 : 0;
      backwards += back ? 1 : 0;
    }
  }
  // The figure of the report: nodes inverted faster than 20 px/yr whose series goes more than 5 px
  // backwards along their own velocity (266 of 3,206 before the fix).
  int fast = 0, fast_dipping = 0;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      if (!vx.valid(c, r) || !vy.valid(c, r)) continue;
      const double speed = std::hypot(vx.values(c, r), vy.values(c, r));
      if (speed <= 20.0) continue;
      ++fast;
      double lowest = 0;
      for (int k = 1; k < dates; ++k) {
        if (!sx[k].valid(c, r) || !sy[k].valid(c, r)) continue;
        lowest = std::min(
            lowest, (sx[k].values(c, r) * vx.values(c, r) + sy[k].values(c, r) * vy.values(c, r)) / speed);
      }
      fast_dipping += lowest < -5.0 ? 1 : 0;
    }
  }
  RecordProperty("fast_nodes", fast);
  RecordProperty("fast_nodes_dipping_below_minus_5px", fast_dipping);
  EXPECT_GT(fast, 3000);
  EXPECT_LE(fast_dipping, fast / 100);
  RecordProperty("agreeing_nodes", agreeing);
  RecordProperty("inverted_within_tolerance", inverted_agrees);
  RecordProperty("moving_nodes", moving);
  RecordProperty("moving_dipping_below_minus_5px", dips);
  RecordProperty("moving_going_back", backwards);
  // The node of the report: its well-correlated pairs (correlation >= 0.45) give about +80 px/yr in x.
  ASSERT_TRUE(vx.valid(56, 38));
  RecordProperty("node_56_38_vx_px_per_yr", fmt::format("{:.1f}", vx.values(56, 38)));
  EXPECT_GT(vx.values(56, 38), 60.0f);
  EXPECT_LT(vx.values(56, 38), 100.0f);

  // series-at on the pipeline's folder: image pixel (904, 616) is node (56, 38) (16 px steps).
  const auto at_pixel = test::run_cli("series-at 904 616 --pixel -p " + out.string() + " --plot " +
                                      (tmp.path() / "a.png").string());
  ASSERT_EQ(at_pixel.exit_code, 0) << at_pixel.err;
  EXPECT_EQ(at_pixel.out.rfind("date,dx_px,dx_sigma_px,dy_px,dy_sigma_px\n2020-01-01,", 0), 0u)
      << at_pixel.out;
  const auto at_node = test::run_cli("series-at 56 38 --node -p " + (out / "products").string() + " --plot " +
                                     (tmp.path() / "b.png").string());
  ASSERT_EQ(at_node.exit_code, 0) << at_node.err;
  EXPECT_EQ(at_node.out, at_pixel.out);
  const auto both = test::run_cli("series-at 56 38 --node --pixel -p " + out.string());
  EXPECT_EQ(both.exit_code, 3) << both.err;

  ASSERT_GT(agreeing, 1000);
  ASSERT_GT(moving, 500);
  EXPECT_GE(inverted_agrees, 0.9 * agreeing);
  EXPECT_LE(dips, moving / 100);
  EXPECT_LE(backwards, moving / 20);
}

}  // namespace
}  // namespace deforma::pipeline
