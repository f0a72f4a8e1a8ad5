#include <cmath>
#include <filesystem>

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include "deforma/render/colormap.hpp"
#include "deforma/render/map.hpp"
#include "deforma/render/plot.hpp"
#include "test_support.hpp"

namespace deforma::render {
namespace {

bool close(Rgb a, Rgb b) {
  return std::abs(a.r - b.r) <= 6 && std::abs(a.g - b.g) <= 6 && std::abs(a.b - b.b) <= 6;
}

int luminance(Rgb c) {
  return (299 * c.r + 587 * c.g + 114 * c.b) / 1000;
}

TEST(Colormap, SequentialLightnessIncreases) {
  const auto& map = Colormap::sequential();
  int previous = -1;
  for (int i = 0; i <= 20; ++i) {
    const int l = luminance(map.at(i / 20.0));
    EXPECT_GT(l, previous) << "t=" << i / 20.0;
    previous = l;
  }
}

TEST(Colormap, DivergingIsLightInTheMiddleAndSymmetric) {
  const auto& map = Colormap::diverging();
  EXPECT_GT(luminance(map.at(0.5)), 230);
  EXPECT_LT(std::abs(luminance(map.at(0.1)) - luminance(map.at(0.9))), 40);
  EXPECT_GT(map.at(0.0).b, map.at(0.0).r);
  EXPECT_GT(map.at(1.0).r, map.at(1.0).b);
}

TEST(ColorScale, RobustLimitsIgnoreOutliersAndMaskedValues) {
  GridF values(100, 1);
  GridU8 valid(100, 1, 1);
  for (int i = 0; i < 100; ++i) values(i, 0) = static_cast<float>(i);
  values(99, 0) = 1e6f;  // outlier above p98
  values(0, 0) = -5.0f;
  valid(0, 0) = 0;  // masked: magnitudes start at 0
  const auto s = ColorScale::robust_sequential(values, valid, "speed", "m/yr");
  EXPECT_EQ(s.min_value, 0.0);
  EXPECT_GT(s.max_value, 90.0);
  EXPECT_LT(s.max_value, 100.0);
  const auto d = ColorScale::robust_diverging(values, valid, "east", "m/yr");
  EXPECT_DOUBLE_EQ(d.min_value, -d.max_value);
  ColorScale flat;
  flat.min_value = 1.0;
  flat.max_value = 1.0;
  EXPECT_THROW(flat.validate(), InvalidArgument);
}

TEST(RenderScalarMap, NodataIsGreyAndValuesFollowTheScale) {
  GridF values(4, 2, 0.0f);
  GridU8 valid(4, 2, 1);
  values(3, 0) = 10.0f;
  valid(1, 1) = 0;
  values(2, 1) = std::nanf("");
  ColorScale scale;
  scale.min_value = 0;
  scale.max_value = 10;
  const auto image = render_scalar_map(values, valid, scale);
  EXPECT_EQ(image.at(1, 1), colors::kNodata);
  EXPECT_EQ(image.at(2, 1), colors::kNodata);
  EXPECT_EQ(image.at(0, 0), Colormap::sequential().at(0.0));
  EXPECT_EQ(image.at(3, 0), Colormap::sequential().at(1.0));
  EXPECT_THROW(render_scalar_map(values, GridU8(3, 2), scale), InvalidArgument);
}

TEST(RenderQuicklook, HasColorBarLegendAndArrows) {
  GridF values(400, 300);
  GridF east(400, 300, 1.0f);
  GridF north(400, 300, 0.0f);
  GridU8 valid(400, 300, 1);
  for (int r = 0; r < 300; ++r)
    for (int c = 0; c < 400; ++c) values(c, r) = static_cast<float>(c) / 40.0f;
  const auto scale = ColorScale::robust_sequential(values, valid, "speed", "m/yr");
  QuicklookOptions options;
  options.title = "test map";
  options.arrows = true;
  options.arrow_options.step = 40;
  const auto figure = render_quicklook(values, valid, scale, options, &east, &north);
  EXPECT_GT(figure.width(), 400 + 40);  // map + colour bar
  // The colour bar: its top is the maximum colour, its bottom the minimum one, right of the map.
  const int bar_x = 8 + 400 + 8 + 8 + 9;
  bool found_max = false;
  bool found_min = false;
  for (int r = 28; r < figure.height(); ++r) {
    found_max |= close(figure.at(bar_x, r), Colormap::sequential().at(1.0));
    found_min |= close(figure.at(bar_x, r), Colormap::sequential().at(0.0));
  }
  EXPECT_TRUE(found_max);
  EXPECT_TRUE(found_min);
  // Arrows are black pixels inside the map area (the map itself has no black).
  int black = 0;
  for (int r = 36; r < 36 + 300; ++r)
    for (int c = 8; c < 408; ++c) black += luminance(figure.at(c, r)) < 30;
  EXPECT_GT(black, 20);
  // Legend text: dark pixels in the bar's label column.
  int text = 0;
  for (int r = 28; r < figure.height(); ++r)
    for (int c = bar_x + 14; c < figure.width(); ++c) text += luminance(figure.at(c, r)) < 100;
  EXPECT_GT(text, 30);
}

TEST(RenderQuicklook, SmallGridsAreEnlargedAndKeepTheirTitle) {
  GridF values(20, 10, 1.0f);
  GridU8 valid(20, 10, 1);
  valid(0, 0) = 0;
  ColorScale scale;
  scale.min_value = 0;
  scale.max_value = 2;
  QuicklookOptions options;
  options.title = "a rather long title for such a small map";
  const auto figure = render_quicklook(values, valid, scale, options);
  EXPECT_GE(figure.width(), 400);
  int title_width = 0;
  int title_height = 0;
  RgbImage::text_size(options.title, 0.55, 1, title_width, title_height);
  EXPECT_GE(figure.width(), title_width);
  // The nodata node became a 20x20 grey square at the map's top-left corner.
  EXPECT_EQ(figure.at(8 + 10, 36 + 10), colors::kNodata);
  EXPECT_EQ(figure.at(8 + 30, 36 + 10), Colormap::sequential().at(0.5));
}

TEST(WritePng, WritesAValidPngOfTheExpectedSize) {
  test::TempDir dir;
  RgbImage image(37, 21, colors::kWhite);
  image.set(5, 6, {10, 200, 30});
  const auto path = dir.file("x.png");
  write_png(path, image);
  GDALAllRegister();
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER));
  ASSERT_TRUE(ds);
  EXPECT_STREQ(ds->GetDriver()->GetDescription(), "PNG");
  EXPECT_EQ(ds->GetRasterXSize(), 37);
  EXPECT_EQ(ds->GetRasterYSize(), 21);
  EXPECT_EQ(ds->GetRasterCount(), 3);
  ds.reset();
  const auto back = read_rgb(path);
  EXPECT_EQ(back.at(5, 6), (Rgb{10, 200, 30}));
  EXPECT_FALSE(std::filesystem::exists(path + ".aux.xml"));
  EXPECT_THROW(write_png(dir.file("missing/x.png"), image), IoError);
}

TEST(DateTicks, PickCalendarSteps) {
  const auto months = date_ticks(io::Date::from_ymd(2020, 1, 1), io::Date::from_ymd(2020, 12, 31), 6);
  ASSERT_FALSE(months.empty());
  EXPECT_EQ(months.front().second, "2020-01");
  for (const auto& [d, label] : months) EXPECT_EQ(d.day(), 1);
  const auto years = date_ticks(io::Date::from_ymd(2001, 3, 1), io::Date::from_ymd(2020, 1, 1), 6);
  ASSERT_FALSE(years.empty());
  EXPECT_EQ(years.front().second.size(), 4u);
}

TEST(PlotTimeSeries, DrawsPointsAndErrorBars) {
  std::vector<io::Date> dates;
  std::vector<double> values;
  std::vector<double> errors;
  for (int i = 0; i < 10; ++i) {
    dates.push_back(io::Date::from_ymd(2020, 1, 1 + 3 * i));
    values.push_back(i * 0.5);
    errors.push_back(0.2);
  }
  values[4] = std::nan("");
  const auto image = plot_time_series(dates, values, errors, "series", "east (m)");
  EXPECT_EQ(image.width(), 900);
  int blue = 0;
  for (int r = 0; r < image.height(); ++r)
    for (int c = 0; c < image.width(); ++c) blue += image.at(c, r) == colors::kBlue;
  EXPECT_GT(blue, 9 * 15);
  EXPECT_THROW(plot_time_series(dates, std::vector<double>(3), {}, "t", "y"), InvalidArgument);
}

TEST(PlotPairNetwork, DrawsOneArcPerPair) {
  std::vector<io::Date> dates;
  for (int i = 0; i < 6; ++i)
    dates.push_back(
        io::Date::from_days_since_epoch(io::Date::from_ymd(2020, 1, 1).days_since_epoch() + 10 * i));
  const auto empty = plot_pair_network(dates, {});
  const auto network = plot_pair_network(dates, {{0, 1}, {1, 2}, {0, 5}});
  auto count_blue = [](const RgbImage& im) {
    int n = 0;
    for (int r = 0; r < im.height(); ++r)
      for (int c = 0; c < im.width(); ++c)
        n += luminance(im.at(c, r)) < 200 && im.at(c, r).b > im.at(c, r).r + 40;
    return n;
  };
  EXPECT_EQ(count_blue(empty), 0);
  EXPECT_GT(count_blue(network), 300);
  EXPECT_THROW(plot_pair_network(dates, {{0, 9}}), InvalidArgument);
}

}  // namespace
}  // namespace deforma::render
