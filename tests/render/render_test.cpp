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
  FigureLayout layout;
  const auto figure = render_quicklook(values, valid, scale, options, &east, &north, &layout);
  EXPECT_GE(figure.width(), 800);  // legible whatever the grid's size
  EXPECT_GT(layout.bar_left, layout.map_left + layout.map_width);
  // The colour bar: its top is the maximum colour, its bottom the minimum one, right of the map.
  const int bar_x = layout.bar_left + 8 + 11;
  bool found_max = false;
  bool found_min = false;
  for (int r = layout.map_top; r < figure.height(); ++r) {
    found_max |= close(figure.at(bar_x, r), Colormap::sequential().at(1.0));
    found_min |= close(figure.at(bar_x, r), Colormap::sequential().at(0.0));
  }
  EXPECT_TRUE(found_max);
  EXPECT_TRUE(found_min);
  // Arrows are black pixels inside the map area (the map itself has no black).
  int black = 0;
  for (int r = layout.map_top; r < layout.map_top + layout.map_height; ++r)
    for (int c = layout.map_left; c < layout.map_left + layout.map_width; ++c)
      black += luminance(figure.at(c, r)) < 30;
  EXPECT_GT(black, 20);
  // The arrow key under the map: an arrow and its label.
  ASSERT_GE(layout.arrow_key_top, layout.map_top + layout.map_height);
  int key = 0;
  for (int r = layout.arrow_key_top; r < layout.arrow_key_top + 24; ++r)
    for (int c = layout.map_left; c < layout.map_left + 200; ++c) key += luminance(figure.at(c, r)) < 60;
  EXPECT_GT(key, 40);
  // Legend text: dark pixels in the bar's label column.
  int text = 0;
  for (int r = layout.map_top; r < figure.height(); ++r)
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
  FigureLayout layout;
  const auto figure = render_quicklook(values, valid, scale, options, nullptr, nullptr, &layout);
  EXPECT_GE(figure.width(), 800);
  // Enlarged by a whole factor to at least min_size_px on the longer side.
  EXPECT_EQ(layout.map_scale, 36);
  EXPECT_EQ(layout.map_width, 20 * 36);
  // The nodata node became a grey square at the map's top-left corner.
  const int half = layout.map_scale / 2;
  EXPECT_EQ(figure.at(layout.map_left + half, layout.map_top + half), colors::kNodata);
  EXPECT_EQ(figure.at(layout.map_left + 3 * half, layout.map_top + half), Colormap::sequential().at(0.5));
}

TEST(RenderQuicklook, TitleIsDrawnAboveTheMapAndStoredInThePng) {
  GridF values(64, 48, 3.0f);
  GridU8 valid(64, 48, 1);
  ColorScale scale;
  scale.max_value = 5.0;
  QuicklookOptions options;
  options.title = figure_title("Yahtse", "speed", "m/yr", "2016-07-18", "2016-08-03");
  EXPECT_EQ(options.title, "Yahtse - speed (m/yr) - 2016-07-18 to 2016-08-03");
  FigureLayout layout;
  const auto figure = render_quicklook(values, valid, scale, options, nullptr, nullptr, &layout);
  int dark = 0;
  for (int r = 0; r < layout.map_top - 2; ++r)
    for (int c = 0; c < figure.width(); ++c) dark += luminance(figure.at(c, r)) < 100;
  EXPECT_GT(dark, 100) << "no title text above the map";
  test::TempDir dir;
  write_png(dir.file("q.png"), figure);
  const auto back = read_rgb(dir.file("q.png"));
  ASSERT_TRUE(back.text().count("Title"));
  EXPECT_EQ(back.text().at("Title"), options.title);
  // Without a title there is no text band and no Title chunk.
  const auto untitled = render_quicklook(values, valid, scale, QuicklookOptions{}, nullptr, nullptr, &layout);
  EXPECT_LT(layout.map_top, 20);
  EXPECT_EQ(untitled.text().count("Title"), 0u);
}

TEST(RenderQuicklook, ScaleBarUnderTheMapWhenTheCellSizeIsKnown) {
  GridF values(60, 40, 1.0f);
  GridU8 valid(60, 40, 1);
  ColorScale scale;
  scale.max_value = 2.0;
  auto black_bottom_left = [&](const QuicklookOptions& options) {
    FigureLayout layout;
    const auto figure = render_quicklook(values, valid, scale, options, nullptr, nullptr, &layout);
    // Under the map (never over the data), at its right end.
    int n = 0;
    for (int r = layout.map_top + layout.map_height + 2;
         r < std::min(figure.height(), layout.map_top + layout.map_height + 40); ++r)
      for (int c = layout.map_left + layout.map_width / 2; c < layout.map_left + layout.map_width; ++c)
        n += figure.at(c, r) == colors::kBlack;
    return n;
  };
  QuicklookOptions options;
  EXPECT_EQ(black_bottom_left(options), 0);
  options.cell_size_m = 100.0;  // 6 km wide: a 1 km bar
  EXPECT_GT(black_bottom_left(options), 5 * 100);
}

TEST(RenderQuicklook, NoArrowsOverInvalidNodes) {
  // A uniform eastward field with an invalid block; arrows from the nodes left of the block point into
  // it and a fast outlier next to it would reach far across. None may show over the block.
  GridF values(200, 150, 2.0f);
  GridF east(200, 150, 2.0f);
  GridF north(200, 150, 0.0f);
  GridU8 valid(200, 150, 1);
  for (int r = 40; r < 110; ++r)
    for (int c = 58; c < 140; ++c) valid(c, r) = 0;
  // Grid column 52 carries arrows (the map is enlarged 4 times, arrows every 32 px from px 16: px 208).
  for (int r = 40; r < 110; ++r) east(52, r) = 50.0f;
  ColorScale scale;
  scale.max_value = 4.0;
  QuicklookOptions options;
  options.arrows = true;
  options.arrow_options.step = 32;
  FigureLayout layout;
  const auto figure = render_quicklook(values, valid, scale, options, &east, &north, &layout);
  const int k = layout.map_scale;
  ASSERT_EQ(k, 4);
  int arrows_over_block = 0;
  for (int r = 40 * k; r < 110 * k; ++r)
    for (int c = 58 * k; c < 140 * k; ++c)
      arrows_over_block += figure.at(layout.map_left + c, layout.map_top + r) != colors::kNodata;
  EXPECT_EQ(arrows_over_block, 0);
  int arrows_elsewhere = 0;
  for (int r = 0; r < 30 * k; ++r)
    for (int c = 0; c < 200 * k; ++c)
      arrows_elsewhere += luminance(figure.at(layout.map_left + c, layout.map_top + r)) < 30;
  EXPECT_GT(arrows_elsewhere, 50);
}

// Pixels of the colour bar's middle column equal to the colour of the top of the scale.
int top_colour_pixels(const RgbImage& bar) {
  int n = 0;
  for (int r = 0; r < bar.height(); ++r) n += bar.at(8 + 11, r) == Colormap::sequential().at(1.0);
  return n;
}

// Dark grey pixels (black text on white, antialiased; no colour of the bar is grey) in a band of rows.
int text_pixels_in_rows(const RgbImage& image, int first_row, int last_row) {
  int n = 0;
  for (int r = std::max(0, first_row); r < std::min(image.height(), last_row); ++r) {
    for (int c = 0; c < image.width(); ++c) {
      const Rgb px = image.at(c, r);
      n += px.r == px.g && px.g == px.b && px.r < 128;
    }
  }
  return n;
}

TEST(ColorBar, ClippedEndIsMarkedOnlyWhenValuesExceedTheScale) {
  GridF values(100, 1);
  GridU8 valid(100, 1, 1);
  for (int i = 0; i < 100; ++i) values(i, 0) = static_cast<float>(i);
  const auto scale = ColorScale::robust_sequential(values, valid, "speed", "m/yr");
  EXPECT_EQ(scale.clip_percentile, 98.0);
  const auto marks = clip_marks(values, valid, scale);
  EXPECT_TRUE(marks.above);
  EXPECT_FALSE(marks.below);
  ColorScale wide = scale;
  wide.max_value = 120.0;
  const auto none = clip_marks(values, valid, wide);
  EXPECT_FALSE(none.above || none.below);

  const auto clipped = render_color_bar(scale, 300, marks);
  const auto plain = render_color_bar(scale, 300, none);
  // The triangle above the bar is filled with the top colour; without clipping only the bar's top row is.
  EXPECT_GE(top_colour_pixels(clipped), 8);
  EXPECT_LE(top_colour_pixels(plain), 3);
  // "scale clipped at p98" under the bar, and nothing there without clipping.
  EXPECT_GT(text_pixels_in_rows(clipped, clipped.height() - 24, clipped.height()),
            text_pixels_in_rows(plain, plain.height() - 24, plain.height()) + 50);

  // Through the quicklook: values above p98 mark the bar's top end.
  FigureLayout layout;
  const auto figure = render_quicklook(values, valid, scale, QuicklookOptions{}, nullptr, nullptr, &layout);
  int triangle = 0;
  for (int r = layout.map_top; r < figure.height(); ++r)
    triangle += figure.at(layout.bar_left + 8 + 11, r) == Colormap::sequential().at(1.0);
  EXPECT_GE(triangle, 8);
  const auto unclipped = render_quicklook(values, valid, wide, QuicklookOptions{}, nullptr, nullptr, &layout);
  triangle = 0;
  for (int r = layout.map_top; r < unclipped.height(); ++r)
    triangle += unclipped.at(layout.bar_left + 8 + 11, r) == Colormap::sequential().at(1.0);
  EXPECT_LE(triangle, 3);
}

TEST(RenderPointMap, PointsTakeTheirColoursWhereTheyLie) {
  // South-west point: -10 (blue end); north-east: +10 (red end); south-east: 0 (white); north-west: no
  // value (not drawn).
  const std::vector<double> x = {0, 1000, 1000, 0};
  const std::vector<double> y = {0, 1000, 0, 1000};
  const std::vector<float> v = {-10.f, 10.f, 0.f, std::nanf("")};
  ColorScale scale;
  scale.kind = ColormapKind::kDiverging;
  scale.min_value = -10;
  scale.max_value = 10;
  scale.title = "velocity";
  scale.unit = "mm/yr";
  PointMapOptions options;
  options.point_radius_px = 5;
  options.title = "points";
  FigureLayout layout;
  const auto figure = render_point_map(x, y, v, scale, options, &layout);
  const Rgb blue = Colormap::diverging().at(0.0);
  const Rgb red = Colormap::diverging().at(1.0);
  int blue_sw = 0, red_ne = 0, elsewhere = 0;
  const int mid_c = layout.map_left + layout.map_width / 2, mid_r = layout.map_top + layout.map_height / 2;
  for (int r = layout.map_top; r < layout.map_top + layout.map_height; ++r) {
    for (int c = layout.map_left; c < layout.map_left + layout.map_width; ++c) {
      const Rgb px = figure.at(c, r);
      const bool sw = c < mid_c && r > mid_r, ne = c > mid_c && r < mid_r;
      if (px == blue) (sw ? blue_sw : elsewhere)++;
      if (px == red) (ne ? red_ne : elsewhere)++;
    }
  }
  EXPECT_GT(blue_sw, 40);  // a filled disc of radius 5
  EXPECT_GT(red_ne, 40);
  EXPECT_EQ(elsewhere, 0);
  EXPECT_GE(figure.width(), 800);
  EXPECT_THROW(render_point_map(x, y, {1.f}, scale), InvalidArgument);
  EXPECT_THROW(render_point_map({0.0}, {0.0}, {std::nanf("")}, scale), InvalidArgument);
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

namespace deforma::render {
namespace {

TEST(PlotXy, DrawsPointsErrorBarsAndAZeroLineOnANumericAxis) {
  const std::vector<double> x = {0.0, 2.0, 4.0, 6.0};
  PlotSeries s{"offset", {1.0, -0.5, std::nan(""), 2.0}, {0.2, 0.2, 0.2, 0.5}, colors::kRed};
  const RgbImage image = plot_xy(x, {s}, "offsets", "distance (km)", "offset (m)");
  EXPECT_EQ(image.width(), PlotOptions{}.width_px);
  int red = 0;
  for (int r = 0; r < image.height(); ++r)
    for (int c = 0; c < image.width(); ++c)
      if (image.at(c, r) == colors::kRed) ++red;
  EXPECT_GT(red, 30);  // three points (the NaN is skipped), their bars and the line
  PlotSeries wrong{"bad", {1.0, 2.0}, {}, colors::kBlue};
  EXPECT_THROW(plot_xy(x, {wrong}, "t", "x", "y"), InvalidArgument);
  EXPECT_THROW(plot_xy({std::nan("")}, {PlotSeries{"n", {1.0}, {}, colors::kBlue}}, "t", "x", "y"),
               InvalidArgument);
}

}  // namespace
}  // namespace deforma::render
