// Quicklooks as a user gets them from the command line: EGMS point maps and Ortho grids.
#include <filesystem>

#include <gtest/gtest.h>

#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"
#include "test_support.hpp"

namespace deforma::render {
namespace {

// Pixels of the image far from white, grey and black: the coloured part of a map.
int coloured_pixels(const RgbImage& image) {
  int n = 0;
  for (int r = 0; r < image.height(); ++r) {
    for (int c = 0; c < image.width(); ++c) {
      const Rgb px = image.at(c, r);
      const int hi = std::max({px.r, px.g, px.b}), lo = std::min({px.r, px.g, px.b});
      n += hi - lo > 60;
    }
  }
  return n;
}

TEST(QuicklookCli, EgmsOrthoDrawsBothGridsWithTitles) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  const std::string prefix = tmp.file("ustica");
  const auto r = test::run_cli("egms ortho '" + (dir / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip").string() +
                               "' '" + (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string() +
                               "' -o '" + prefix + "' --quicklook");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& [suffix, word] : {std::pair<std::string, std::string>{"_U", "vertical"},
                                     std::pair<std::string, std::string>{"_E", "east-west"}}) {
    const std::string png = prefix + suffix + ".png";
    ASSERT_TRUE(std::filesystem::exists(png)) << png;
    EXPECT_NE(r.out.find(png), std::string::npos) << "the report lists " << png;
    const auto image = read_rgb(png);
    EXPECT_GE(image.width(), 800);
    ASSERT_TRUE(image.text().count("Title")) << png;
    const std::string& title = image.text().at("Title");
    EXPECT_NE(title.find(word), std::string::npos) << title;
    EXPECT_NE(title.find("mm/yr"), std::string::npos) << title;
    EXPECT_NE(title.find("2020-"), std::string::npos) << title;
    EXPECT_NE(title.find("2024-"), std::string::npos) << title;
    EXPECT_GT(coloured_pixels(image), 20000) << png;  // the grid's cells, enlarged
  }
}

TEST(QuicklookCli, EgmsFitDrawsThePointsColouredByVelocity) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  const std::string png = tmp.file("points.png");
  const auto r = test::run_cli("egms fit '" + (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string() +
                               "' --quicklook '" + png + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto image = read_rgb(png);
  EXPECT_GE(image.width(), 800);
  ASSERT_TRUE(image.text().count("Title"));
  const std::string& title = image.text().at("Title");
  EXPECT_NE(title.find("L2b"), std::string::npos) << title;
  EXPECT_NE(title.find("track 22"), std::string::npos) << title;
  EXPECT_NE(title.find("mean LOS velocity (mm/yr)"), std::string::npos) << title;
  // Thousands of points: both ends of the diverging scale appear (the island subsides and rises).
  const Rgb blue = Colormap::diverging().at(0.0), red = Colormap::diverging().at(1.0);
  int blue_px = 0, red_px = 0;
  for (int row = 0; row < image.height(); ++row) {
    for (int col = 0; col < image.width(); ++col) {
      blue_px += image.at(col, row) == blue;
      red_px += image.at(col, row) == red;
    }
  }
  EXPECT_GT(blue_px, 100);
  EXPECT_GT(red_px, 5);
  EXPECT_GT(coloured_pixels(image), 20000);
}

}  // namespace
}  // namespace deforma::render
