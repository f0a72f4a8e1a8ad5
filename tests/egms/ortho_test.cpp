#include <cmath>
#include <random>

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/ortho.hpp"
#include "deforma/egms/pid.hpp"
#include "deforma/io/raster.hpp"
#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {

using deforma::test::TempDir;

TEST(EgmsOrtho, ResamplesOnTheSixDayGridAcrossShortGapsOnly) {
  const std::vector<int> days = {100, 112, 124, 300};
  const std::vector<float> values = {0.0f, 12.0f, 24.0f, 100.0f};
  const std::vector<int> grid = {100, 106, 112, 118, 130, 200, 310};
  const auto out = resample_series(days, values.data(), grid, 90);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[1], 6.0f);
  EXPECT_FLOAT_EQ(out[2], 12.0f);
  EXPECT_FLOAT_EQ(out[3], 18.0f);
  EXPECT_TRUE(std::isnan(out[4]));  // inside a 176-day gap
  EXPECT_TRUE(std::isnan(out[5]));
  EXPECT_TRUE(std::isnan(out[6]));  // after the last acquisition
  // A missing acquisition widens the gap around it.
  const std::vector<float> gappy = {0.0f, std::nanf(""), 24.0f, 100.0f};
  EXPECT_FLOAT_EQ(resample_series(days, gappy.data(), {112}, 90)[0], 12.0f);
  EXPECT_TRUE(std::isnan(resample_series(days, gappy.data(), {112}, 20)[0]));
  OrthoOptions options;
  const auto common = common_grid_days({16163 + 1, 16163 + 100}, {16163 + 5, 16163 + 200}, options);
  ASSERT_FALSE(common.empty());
  EXPECT_EQ(common.front(), 16163 + 6);
  EXPECT_EQ((common.back() - 16163) % 6, 0);
  EXPECT_TRUE(common_grid_days({16163, 16200}, {17000, 17100}, options).empty());
}

// Writes a synthetic product: points in 100 m cells with LOS vector (le, ln, lu) observing vertical
// velocity up(i, j) and east velocity east(i, j) (mm/yr) of the cell (i, j), every 12 days from `first`.
void write_scene(const std::string& path, int first_day, double le, double ln, double lu, int points_per_cell,
                 unsigned seed) {
  ProductLayout layout;
  for (const char* name : {column::kEasting, column::kNorthing, column::kLosEast, column::kLosNorth,
                           column::kLosUp, column::kMeanVelocity, column::kMeanVelocityStd}) {
    layout.add_column(name, 4);
  }
  for (int k = 0; k < 90; ++k) layout.dates.push_back(first_day + 12 * k);
  PointChunk chunk;
  chunk.reset(layout.scalar_count(), layout.date_count());
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> inside(1.0, 99.0);
  std::normal_distribution<double> noise(0.0, 0.3);
  for (int j = 0; j < 8; ++j) {
    for (int i = 0; i < 10; ++i) {
      const double up = -2.0 + 0.3 * i, east = 1.5 - 0.4 * j;
      for (int q = 0; q < points_per_cell; ++q) {
        const std::size_t p = chunk.add_point(fmt::format("P{}_{}_{}", i, j, q));
        const double values[] = {4000000 + 100 * i + inside(rng),
                                 2000000 + 100 * j + inside(rng),
                                 le,
                                 ln,
                                 lu,
                                 east * le + up * lu,
                                 0.1};
        for (int c = 0; c < 7; ++c) chunk.scalar(p, c) = values[c];
        for (std::size_t d = 0; d < layout.date_count(); ++d) {
          const double t = (layout.dates[d] - layout.dates[0]) / 365.0;
          chunk.series_of(p)[d] = static_cast<float>((east * le + up * lu) * t + (d == 0 ? 0.0 : noise(rng)));
        }
      }
    }
  }
  test::write_csv(path, layout, chunk);
}

TEST(EgmsOrtho, RecoversVerticalAndEastWestMotionOfASyntheticScene) {
  TempDir tmp;
  const int first = *parse_yyyymmdd("20200103");
  write_scene(tmp.file("asc.csv"), first, -0.62, -0.10, 0.78, 4, 1);
  write_scene(tmp.file("desc.csv"), first + 5, 0.59, -0.12, 0.795, 3, 2);
  RunContext context;
  const auto summary =
      run_ortho(tmp.file("asc.csv"), tmp.file("desc.csv"), tmp.file("scene"), {}, {}, context, {});
  EXPECT_EQ(summary.counts.at("cells"), 80);
  const auto up = test::load(tmp.file("scene_U.csv"));
  const auto east = test::load(tmp.file("scene_E.csv"));
  ASSERT_EQ(up.points.size(), 80u);
  EXPECT_EQ(up.metadata.level, "L3");
  const int e = up.layout.find(column::kEasting), n = up.layout.find(column::kNorthing);
  const int v = up.layout.find(column::kMeanVelocity), vs = up.layout.find(column::kMeanVelocityStd);
  for (std::size_t p = 0; p < up.points.size(); ++p) {
    const int i = static_cast<int>((up.points.scalar(p, e) - 4000000) / 100);
    const int j = static_cast<int>((up.points.scalar(p, n) - 2000000) / 100);
    EXPECT_DOUBLE_EQ(std::fmod(up.points.scalar(p, e), 100.0), 50.0);
    EXPECT_EQ(up.points.pid[p], l3_pid_at(up.points.scalar(p, e), up.points.scalar(p, n)));
    EXPECT_NEAR(up.points.scalar(p, v), -2.0 + 0.3 * i, 0.1) << up.points.pid[p];
    EXPECT_NEAR(east.points.scalar(p, v), 1.5 - 0.4 * j, 0.1) << east.points.pid[p];
    EXPECT_GT(up.points.scalar(p, vs), 0.0);
    EXPECT_LT(up.points.scalar(p, vs), 1.0);
  }
  // Six-day grid from the first common date, aligned on 2014-04-03.
  EXPECT_EQ((up.layout.dates.front() - *parse_yyyymmdd("20140403")) % 6, 0);
  EXPECT_GE(up.layout.dates.front(), first + 5);
  const auto raster = io::describe(tmp.file("scene_U.tif"));
  EXPECT_EQ(raster.epsg.value_or(0), 3035);
  EXPECT_EQ(raster.width, 10);
  EXPECT_EQ(raster.height, 8);
  EXPECT_DOUBLE_EQ(raster.geotransform.c[0], 4000000);
  EXPECT_DOUBLE_EQ(raster.geotransform.c[1], 100);
  EXPECT_EQ(raster.bands[0].nodata.value_or(0), -9999);
}

TEST(EgmsOrtho, NoCommonDatesIsAClearError) {
  TempDir tmp;
  write_scene(tmp.file("asc.csv"), *parse_yyyymmdd("20150101"), -0.62, -0.10, 0.78, 1, 1);
  write_scene(tmp.file("desc.csv"), *parse_yyyymmdd("20220101"), 0.59, -0.12, 0.795, 1, 2);
  RunContext context;
  try {
    run_ortho(tmp.file("asc.csv"), tmp.file("desc.csv"), tmp.file("x"), {}, {}, context, {});
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("no common dates"), std::string::npos) << message;
    EXPECT_NE(message.find("asc.csv"), std::string::npos) << message;
    EXPECT_NE(message.find("desc.csv"), std::string::npos) << message;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x_U.tif")));
}

TEST(EgmsOrtho, RealUsticaPair) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  RunContext context;
  const auto summary = run_ortho((dir / test::kAscending).string(), (dir / test::kDescending).string(),
                                 tmp.file("ustica"), {}, {}, context, {});
  std::cout << summary.report;
  EXPECT_GT(summary.counts.at("cells"), 500);
  EXPECT_LT(summary.counts.at("cells"), 800);
  const auto& d = summary.details;
  // Ustica is mostly stable: small velocities (a few mm/yr at most).
  EXPECT_GT(d["vertical_mm_per_yr"]["min"].get<double>(), -10);
  EXPECT_LT(d["vertical_mm_per_yr"]["max"].get<double>(), 5);
  EXPECT_LT(std::abs(d["vertical_mm_per_yr"]["mean"].get<double>()), 3);
  EXPECT_LT(std::abs(d["east_mm_per_yr"]["mean"].get<double>()), 2);
  EXPECT_TRUE(summary.warnings.empty());
  const auto up = test::load(tmp.file("ustica_U.csv"));
  EXPECT_EQ(static_cast<std::int64_t>(up.points.size()), summary.counts.at("cells"));
  EXPECT_NE(up.metadata.xml.find("EGMS_L2b_117_0227"), std::string::npos);  // provenance
  const auto raster = io::describe(tmp.file("ustica_E.tif"));
  EXPECT_EQ(raster.epsg.value_or(0), 3035);
  EXPECT_EQ(std::fmod(raster.geotransform.c[0], 100.0), 0.0);
  EXPECT_NE(raster.metadata.at("DEFORMA_INPUTS").find("EGMS_L2b_022_0845"), std::string::npos);
}

}  // namespace
}  // namespace deforma::egms
