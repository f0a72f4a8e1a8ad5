// Pair selection by cloud cover over an area of interest: the masks found beside the images (Sentinel-2
// SCL, Landsat QA_PIXEL), the cover they give, and `deforma pairs --max-cloud --aoi`.
#include <gdal_priv.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/cloud_mask.hpp"
#include "deforma/timeseries/image_set.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "io/lonlat_test_grid.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;

using test::write_lonlat_test_grid;

constexpr unsigned kClear = 1u << 6;  // QA_PIXEL "clear" bit: not counted either way
constexpr unsigned kCloud = 1u << 3;
constexpr unsigned kShadow = 1u << 4;

// Three Landsat Collection 2 scenes with their QA_PIXEL: clear; cloud over the west half; cloud shadow
// everywhere but one row of fill.
std::vector<std::string> landsat_series(const test::TempDir& dir, bool with_masks = true) {
  std::vector<std::string> bands;
  const std::vector<std::string> dates{"20200101", "20200117", "20200202"};
  for (std::size_t k = 0; k < dates.size(); ++k) {
    const std::string scene = fmt::format("LC08_L2SP_195028_{}_20200110_02_T1", dates[k]);
    bands.push_back(dir.file(scene + "_SR_B4.TIF"));
    write_lonlat_test_grid(bands.back(), GDT_UInt16, [](int x, int y) { return 1000 + 7 * x + 3 * y; });
    if (!with_masks) continue;
    write_lonlat_test_grid(dir.file(scene + "_QA_PIXEL.TIF"), GDT_UInt16, [k](int x, int y) -> double {
      if (k == 0) return kClear;
      if (k == 1) return x < 20 ? kCloud : kClear;
      return y == 0 ? 1 : kShadow;  // 1 = fill bit
    });
  }
  return bands;
}

TEST(CloudSelection, LandsatQaPixelBitsOverAnAoi) {
  test::TempDir dir;
  const auto bands = landsat_series(dir);
  const auto mask = io::find_cloud_mask(bands[1]);
  ASSERT_TRUE(mask);
  EXPECT_EQ(mask->kind, io::CloudMaskKind::kLandsatQaPixel);
  EXPECT_EQ(fs::path(mask->path).filename(), "LC08_L2SP_195028_20200117_20200110_02_T1_QA_PIXEL.TIF");
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, ""), 50.0, 1e-9);
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, "10.0,45.7,10.2,46.0"), 100.0, 1e-9);
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, "POLYGON((10.2 45.7,10.4 45.7,10.4 46,10.2 46,10.2 45.7))"),
              0.0, 1e-9);
  // A GeoJSON aoi straddling the halves: its pixel centres 10.105 .. 10.295 are half cloudy.
  EXPECT_NEAR(
      *io::cloud_cover_percent(
          *mask,
          R"({"type":"Polygon","coordinates":[[[10.1,45.8],[10.3,45.8],[10.3,45.9],[10.1,45.9],[10.1,45.8]]]})"),
      50.0, 1e-9);
  // Fill pixels are not valid: all the others of the third scene are shadow.
  EXPECT_NEAR(*io::cloud_cover_percent(*io::find_cloud_mask(bands[2]), ""), 100.0, 1e-9);
  // An aoi off the scene has no cover rather than 0 %.
  EXPECT_FALSE(io::cloud_cover_percent(*mask, "20,10,21,11"));
  EXPECT_THROW(io::cloud_cover_percent(*mask, "10,46,10.2"), InvalidArgument);
  EXPECT_THROW(io::cloud_cover_percent(*mask, "10.2,46,10,45"), InvalidArgument);
  EXPECT_THROW(io::cloud_cover_percent(*mask, "POLYGON((nope))"), InvalidArgument);
}

TEST(CloudSelection, DropsCloudyImagesOnTheAoiAndSaysWhy) {
  test::TempDir dir;
  const auto bands = landsat_series(dir);
  auto images = timeseries::load_image_set(bands);
  ASSERT_EQ(images.size(), 3u);
  // East half: the second scene is clear there.
  auto east = images;
  auto dropped = timeseries::drop_cloudy_images(east, {20.0, "10.2,45.6,10.4,46.0"});
  ASSERT_EQ(east.size(), 2u);
  EXPECT_EQ(east.images[1].date.iso(), "2020-01-17");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_NE(dropped[0].find("20200202"), std::string::npos) << dropped[0];
  EXPECT_NE(dropped[0].find("100.0 % cloud on the aoi > --max-cloud 20 %"), std::string::npos) << dropped[0];
  // West half: only the first scene is left.
  auto west = images;
  dropped = timeseries::drop_cloudy_images(west, {20.0, "10.0,45.6,10.2,46.0"});
  EXPECT_EQ(west.size(), 1u);
  EXPECT_EQ(dropped.size(), 2u);
  // The whole scene: 50 % for the second.
  auto whole = images;
  timeseries::drop_cloudy_images(whole, {50.0, ""});
  EXPECT_EQ(whole.size(), 2u);
}

TEST(CloudSelection, PairsCliMaxCloudOnAoi) {
  test::TempDir dir;
  const auto bands = landsat_series(dir);
  const std::string images = fmt::format("{} {} {}", bands[0], bands[1], bands[2]);
  auto r = test::run_cli(fmt::format("pairs {} -o {} --max-cloud 20 --aoi 10.2,45.6,10.4,46.0 --max-step 3",
                                     images, dir.file("east")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream csv(dir.file("east/pairs.csv"));
  std::string header, row, extra;
  std::getline(csv, header);
  std::getline(csv, row);
  EXPECT_FALSE(std::getline(csv, extra)) << "one pair only";
  EXPECT_NE(row.find("20200101_20200117"), std::string::npos) << row;
  EXPECT_NE(
      r.err.find("LC08_L2SP_195028_20200202_20200110_02_T1_SR_B4.TIF (2020-02-02): left out, 100.0 % cloud"),
      std::string::npos)
      << r.err;
  // Over the west half only one image is left: no pair can be formed, said as such.
  r = test::run_cli(
      fmt::format("pairs {} -o {} --max-cloud 20 --aoi 10.0,45.6,10.2,46.0", images, dir.file("west")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  // --aoi without --max-cloud, and a malformed aoi.
  r = test::run_cli(fmt::format("pairs {} -o {} --aoi 10,45,11,46", images, dir.file("x")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("--aoi"), std::string::npos) << r.err;
  r = test::run_cli(fmt::format("pairs {} -o {} --max-cloud 20 --aoi 10,45,11", images, dir.file("x")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("aoi"), std::string::npos) << r.err;
  r = test::run_cli(fmt::format("pairs {} -o {} --max-cloud 120", images, dir.file("x")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
}

TEST(CloudSelection, ImagesWithoutMasksAreAClearError) {
  test::TempDir dir;
  const auto bands = landsat_series(dir, false);
  const auto r =
      test::run_cli(fmt::format("pairs {} {} -o {} --max-cloud 20", bands[0], bands[1], dir.file("out")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("LC08_L2SP_195028_20200101_20200110_02_T1_SR_B4.TIF has no cloud mask"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir.file("out/pairs.csv")));
  // The pipeline takes the same parameters and refuses the same way, before writing anything.
  const auto p = test::run_cli(fmt::format("pipeline {} {} -o {} --max-cloud 20 --aoi 10,45.6,10.4,46",
                                           bands[0], bands[1], dir.file("run")));
  EXPECT_EQ(p.exit_code, 3) << p.err;
  EXPECT_NE(p.err.find("has no cloud mask"), std::string::npos) << p.err;
  EXPECT_FALSE(fs::exists(dir.file("run/network.png")));
  // Without --max-cloud the same images pair as before.
  EXPECT_EQ(test::run_cli(fmt::format("pairs {} {} -o {}", bands[0], bands[1], dir.file("out"))).exit_code,
            0);
}

// The real Sentinel-2 SAFE: a band finds its granule's 20 m SCL, whose classes 8 + 9 + 10 over the tile are
// the product's Cloud_Coverage_Assessment (59.770 %, data README).
TEST(CloudSelection, Sentinel2SafeBandFindsItsScl) {
  DEFORMA_REQUIRE_DATA("s2-l2a-safe", safe_dir);
  const fs::path r60 = safe_dir / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE" /
                       "GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA/R60m";
  const auto mask = io::find_cloud_mask((r60 / "T29UNU_20221005T115411_B04_60m.jp2").string());
  ASSERT_TRUE(mask);
  EXPECT_EQ(mask->kind, io::CloudMaskKind::kSentinel2Scl);
  EXPECT_EQ(fs::path(mask->path).filename(), "T29UNU_20221005T115411_SCL_20m.jp2");
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, "", {8, 9, 10}), 59.770, 0.001);
  // With the shadows, over a box of the data, and a box outside the tile.
  const auto part = io::cloud_cover_percent(*mask, "-8.9,52.3,-8.5,52.6");
  ASSERT_TRUE(part);
  EXPECT_GE(*part, 0.0);
  EXPECT_LE(*part, 100.0);
  EXPECT_FALSE(io::cloud_cover_percent(*mask, "20,40,20.1,40.1"));
  // The image set drops it above its cover, keeps it below.
  timeseries::ImageSet set;
  set.images.push_back({(r60 / "T29UNU_20221005T115411_B04_60m.jp2").string(),
                        io::Date::from_ymd(2022, 10, 5), "", "", "", "", std::nullopt, false});
  auto cloudy = set;
  EXPECT_EQ(timeseries::drop_cloudy_images(cloudy, {50.0, ""}).size(), 1u);
  EXPECT_EQ(cloudy.size(), 0u);
  auto kept = set;
  EXPECT_TRUE(timeseries::drop_cloudy_images(kept, {90.0, ""}).empty());
}

}  // namespace
}  // namespace deforma
