#include "deforma/filter/filter.hpp"

#include <cmath>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "test_support.hpp"

namespace deforma::filter {
namespace {

// A smooth displacement field (a rotation-like flow) with small noise, all nodes valid.
FieldWindow smooth_field(int w, int h, unsigned seed = 3) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.f, 0.05f);
  FieldWindow f;
  f.dx_px = GridF(w, h);
  f.dy_px = GridF(w, h);
  f.flag = GridF(w, h, 0.f);
  f.corr = GridF(w, h, 0.8f);
  f.snr = GridF(w, h, 10.f);
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      f.dx_px(c, r) = 2.0f + 0.05f * r + noise(rng);
      f.dy_px(c, r) = -1.0f + 0.03f * c + noise(rng);
    }
  }
  return f;
}

TEST(FilterKernel, MedianTestRejectsInjectedOutliersOnly) {
  FieldWindow f = smooth_field(40, 30);
  const std::vector<std::pair<int, int>> outliers = {{5, 5}, {20, 10}, {33, 25}, {0, 0}, {39, 29}};
  for (auto [c, r] : outliers) {
    f.dx_px(c, r) += 6.0f;
    f.dy_px(c, r) -= 4.0f;
  }
  FilterOptions o;
  FilterCounts counts;
  const GridF flags = flag_outliers(f, io::Window{0, 0, 40, 30}, o, counts);
  for (auto [c, r] : outliers) EXPECT_EQ(flags(c, r), 7.f) << c << "," << r;
  EXPECT_EQ(counts.median_rejected, static_cast<std::int64_t>(outliers.size()));
  EXPECT_EQ(counts.valid_out, 40 * 30 - static_cast<std::int64_t>(outliers.size()));
  EXPECT_EQ(counts.valid_in, 40 * 30);
}

TEST(FilterKernel, ThresholdsSetTheirFlags) {
  FieldWindow f = smooth_field(10, 10);
  f.snr(1, 1) = 1.0f;
  f.corr(2, 2) = 0.1f;
  f.dx_px(3, 3) = 50.0f;
  f.flag(4, 4) = 2.0f;  // set by the correlation: stays
  FilterOptions o;
  o.min_snr = 3;
  o.min_corr = 0.3;
  o.max_displacement_px = 20;
  o.median_test = false;
  FilterCounts counts;
  const GridF flags = flag_outliers(f, io::Window{0, 0, 10, 10}, o, counts);
  EXPECT_EQ(flags(1, 1), 1.f);
  EXPECT_EQ(flags(2, 2), 9.f);
  EXPECT_EQ(flags(3, 3), 8.f);
  EXPECT_EQ(flags(4, 4), 2.f);
  EXPECT_EQ(flags(5, 5), 0.f);
  EXPECT_EQ(counts.low_snr, 1);
  EXPECT_EQ(counts.low_corr, 1);
  EXPECT_EQ(counts.above_max, 1);
  EXPECT_EQ(counts.valid_in, 99);
  EXPECT_EQ(counts.valid_out, 96);
}

TEST(FilterKernel, ResultDoesNotDependOnWindowing) {
  FieldWindow f = smooth_field(30, 30, 9);
  f.dx_px(14, 15) += 8.f;
  f.dx_px(15, 15) += 8.f;  // two adjacent outliers straddling the cut
  FilterOptions o;
  FilterCounts whole_counts;
  const GridF whole = flag_outliers(f, io::Window{0, 0, 30, 30}, o, whole_counts);
  // Left half with a one-node halo on its right.
  FieldWindow left;
  auto crop = [](const GridF& g, int c0, int w) {
    GridF out(w, g.height());
    for (int r = 0; r < g.height(); ++r)
      for (int c = 0; c < w; ++c) out(c, r) = g(c0 + c, r);
    return out;
  };
  left.dx_px = crop(f.dx_px, 0, 16);
  left.dy_px = crop(f.dy_px, 0, 16);
  left.flag = crop(f.flag, 0, 16);
  FilterCounts part_counts;
  const GridF part = flag_outliers(left, io::Window{0, 0, 15, 30}, o, part_counts);
  for (int r = 0; r < 30; ++r)
    for (int c = 0; c < 15; ++c) EXPECT_EQ(part(c, r), whole(c, r)) << c << "," << r;
}

TEST(FilterKernel, RobustPlaneFitRecoversKnownRampDespiteOutliers) {
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.02);
  std::vector<StableSample> samples;
  for (int r = 0; r < 50; ++r) {
    for (int c = 0; c < 60; ++c) {
      const double x = normalized_coordinate(c, 60), y = normalized_coordinate(r, 50);
      double v = 0.7 + 0.4 * x - 0.25 * y + noise(rng);
      if ((c * 7 + r * 3) % 23 == 0) v += 5.0;  // moving ground wrongly included
      samples.push_back({x, y, v});
    }
  }
  const RampFit fit = fit_ramp(samples, RampModel::kPlane);
  ASSERT_EQ(fit.coefficients.size(), 3u);
  EXPECT_NEAR(fit.coefficients[0], 0.7, 0.01);
  EXPECT_NEAR(fit.coefficients[1], 0.4, 0.01);
  EXPECT_NEAR(fit.coefficients[2], -0.25, 0.01);
  EXPECT_LT(fit.used, fit.samples);
  EXPECT_LT(fit.nmad_after, 0.03);
  EXPECT_NEAR(fit.median_after, 0.0, 0.01);

  const RampFit quad = fit_ramp(samples, RampModel::kQuadratic);
  EXPECT_NEAR(quad.coefficients[0], 0.7, 0.02);
  EXPECT_NEAR(quad.coefficients[3], 0.0, 0.02);
  EXPECT_THROW(fit_ramp({{0, 0, 1}, {1, 1, 2}}, RampModel::kPlane), NumericalError);
}

TEST(FilterOptions, ValidateNamesTheParameter) {
  FilterOptions o;
  o.median_radius = 0;
  try {
    o.validate();
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--median-radius"), std::string::npos);
  }
  FilterOptions needs_ground;
  needs_ground.ramp = RampModel::kPlane;
  EXPECT_THROW(needs_ground.validate(), InvalidArgument);
  EXPECT_THROW(parse_ramp_model("cubic"), InvalidArgument);
}

// A synthetic correlation result on a UTM node grid (60 m nodes): a moving "glacier" in the middle columns,
// a plane ramp everywhere, and a few outliers; stable ground = the columns outside the glacier.
struct SyntheticResult {
  static constexpr int kWidth = 90, kHeight = 70;
  GridF dx, dy, east, north, corr, snr, flag;
  io::GeoTransform gt;
  std::string crs;
  double ramp_x[3] = {0.3, 0.5, -0.2};  // dx_px plane: a0 + a1 x + a2 y
  double ramp_y[3] = {-0.4, 0.1, 0.3};
  static bool on_glacier(int c) { return c >= 30 && c < 60; }

  SyntheticResult()
      : dx(kWidth, kHeight),
        dy(kWidth, kHeight),
        east(kWidth, kHeight),
        north(kWidth, kHeight),
        corr(kWidth, kHeight, 0.7f),
        snr(kWidth, kHeight, 12.f),
        flag(kWidth, kHeight, 0.f) {
    gt.c = {500000.0, 60.0, 0.0, 6700000.0, 0.0, -60.0};
    crs = R"(EPSG:32607)";
    std::mt19937 rng(11);
    std::normal_distribution<float> noise(0.f, 0.03f);
    for (int r = 0; r < kHeight; ++r) {
      for (int c = 0; c < kWidth; ++c) {
        const double x = normalized_coordinate(c, kWidth), y = normalized_coordinate(r, kHeight);
        double vx = ramp_x[0] + ramp_x[1] * x + ramp_x[2] * y + noise(rng);
        double vy = ramp_y[0] + ramp_y[1] * x + ramp_y[2] * y + noise(rng);
        if (on_glacier(c)) {
          vx += 8.0;
          vy += 3.0;
          corr(c, r) = 0.5f;
        }
        dx(c, r) = static_cast<float>(vx);
        dy(c, r) = static_cast<float>(vy);
      }
    }
    for (auto [c, r] : std::vector<std::pair<int, int>>{{10, 10}, {70, 50}, {45, 35}, {5, 60}}) {
      dx(c, r) += 12.f;
      dy(c, r) += 9.f;
    }
    flag(80, 5) = 6.f;
    dx(80, 5) = dy(80, 5) = kNodata;
    for (std::size_t i = 0; i < dx.size(); ++i) {
      const bool ok = flag.data()[i] == 0.f;
      // 15 m image pixels: east = dx * 15, north = -dy * 15.
      east.data()[i] = ok ? dx.data()[i] * 15.f : kNodata;
      north.data()[i] = ok ? -dy.data()[i] * 15.f : kNodata;
    }
  }

  void write(const std::string& path) const {
    io::Provenance provenance;
    provenance.command_line = "synthetic";
    io::CogOptions options;
    options.block_size = 16;
    options.metadata["PAIR_REFERENCE_DATE"] = "2016-07-18";
    io::write_cog(path, {&dx, &dy, &east, &north, &corr, &snr, &flag},
                  {{"dx_px", "px"},
                   {"dy_px", "px"},
                   {"east_m", "m"},
                   {"north_m", "m"},
                   {"corr", ""},
                   {"snr", ""},
                   {"flag", ""}},
                  gt, crs_wkt(), provenance, options);
  }
  static std::string crs_wkt() {
    return R"(PROJCS["WGS 84 / UTM zone 7N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-141],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32607"]])";
  }
  // Stable ground: outside the glacier columns, as a GeoJSON in map coordinates (two rectangles).
  void write_stable_polygons(const std::string& path) const {
    auto rect = [&](int c0, int c1) {
      const double x0 = gt.c[0] + c0 * 60.0, x1 = gt.c[0] + c1 * 60.0;
      const double y0 = gt.c[3], y1 = gt.c[3] - kHeight * 60.0;
      return nlohmann::json{
          {"type", "Feature"},
          {"properties", nlohmann::json::object()},
          {"geometry",
           {{"type", "Polygon"}, {"coordinates", {{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}}}}}};
    };
    nlohmann::json fc = {
        {"type", "FeatureCollection"},
        {"crs", {{"type", "name"}, {"properties", {{"name", "urn:ogc:def:crs:EPSG::32607"}}}}},
        {"features", {rect(0, 30), rect(60, kWidth)}}};
    std::ofstream(path) << fc.dump();
  }
};

struct ReadBack {
  GridF dx, dy, east, flag;
  nlohmann::json record;
};

ReadBack read_back(const std::string& path) {
  const auto raster = io::Raster::open(path);
  ReadBack b;
  b.dx = raster.read_all(1).values;
  b.dy = raster.read_all(2).values;
  b.east = raster.read_all(3).values;
  b.flag = raster.read_all(7).values;
  b.record = nlohmann::json::parse(raster.info().metadata.at("DEFORMA_FILTER"));
  EXPECT_EQ(raster.info().metadata.at("PAIR_REFERENCE_DATE"), "2016-07-18");
  return b;
}

TEST(FilterResult, PolygonStableGroundRemovesKnownPlaneAndOutliers) {
  test::TempDir tmp;
  SyntheticResult s;
  s.write(tmp.file("pair.tif"));
  s.write_stable_polygons(tmp.file("stable.geojson"));
  FilterRun run;
  run.input = tmp.file("pair.tif");
  run.output = tmp.file("filtered.tif");
  run.options.ramp = RampModel::kPlane;
  run.options.stable = StableSource::kPolygons;
  run.options.stable_path = tmp.file("stable.geojson");
  run.ram_budget_mb = 1;  // many strips: exercises the halo
  const Summary summary = filter_result(run);
  EXPECT_EQ(summary.counts.at("rejected_median_test"), 4);
  EXPECT_EQ(summary.counts.at("stable_nodes"),
            60 * 70 - 4);  // minus 3 outliers on stable ground, 1 flag-6 node

  const ReadBack b = read_back(run.output);
  EXPECT_EQ(b.flag(10, 10), 7.f);
  EXPECT_EQ(b.flag(45, 35), 7.f);
  EXPECT_EQ(b.flag(80, 5), 6.f);
  EXPECT_EQ(b.dx(10, 10), kNodata);
  // After correction: stable ground ~0, the glacier keeps its 8 px / 3 px motion.
  double stable_sum = 0, glacier_sum = 0;
  int stable_n = 0, glacier_n = 0;
  for (int r = 0; r < SyntheticResult::kHeight; ++r) {
    for (int c = 0; c < SyntheticResult::kWidth; ++c) {
      if (b.flag(c, r) != 0.f) continue;
      if (SyntheticResult::on_glacier(c)) {
        glacier_sum += b.dx(c, r);
        ++glacier_n;
      } else {
        stable_sum += b.dx(c, r);
        ++stable_n;
        EXPECT_NEAR(b.dx(c, r), 0.0, 0.15);
        EXPECT_NEAR(b.dy(c, r), 0.0, 0.15);
        EXPECT_NEAR(b.east(c, r), 0.0, 2.0);
      }
    }
  }
  EXPECT_NEAR(stable_sum / stable_n, 0.0, 0.01);
  EXPECT_NEAR(glacier_sum / glacier_n, 8.0, 0.1);
  const auto& removed = b.record["removed"]["dx_px"];
  EXPECT_NEAR(removed["coefficients"][0].get<double>(), s.ramp_x[0], 0.01);
  EXPECT_NEAR(removed["coefficients"][1].get<double>(), s.ramp_x[1], 0.01);
  EXPECT_NEAR(removed["coefficients"][2].get<double>(), s.ramp_x[2], 0.01);
  EXPECT_NEAR(b.record["removed"]["dy_px"]["coefficients"][2].get<double>(), s.ramp_y[2], 0.01);
  EXPECT_LT(removed["nmad_after"].get<double>(), removed["nmad_before"].get<double>());
  EXPECT_EQ(b.record["stable_ground"]["source"], "polygons");
}

TEST(FilterResult, MaskAndAutomaticStableGroundAgreeAndStripsDoNotMatter) {
  test::TempDir tmp;
  SyntheticResult s;
  s.write(tmp.file("pair.tif"));
  // The glacier as an exclusion mask on the node grid.
  GridF glacier(SyntheticResult::kWidth, SyntheticResult::kHeight, 0.f);
  for (int r = 0; r < glacier.height(); ++r)
    for (int c = 0; c < glacier.width(); ++c) glacier(c, r) = SyntheticResult::on_glacier(c) ? 1.f : 0.f;
  GridF stable_mask = glacier;
  for (auto& v : stable_mask.values()) v = 1.f - v;
  io::write_cog(tmp.file("glacier.tif"), {&glacier}, {{"glacier", ""}}, s.gt, SyntheticResult::crs_wkt(), {});
  io::write_cog(tmp.file("stable.tif"), {&stable_mask}, {{"stable", ""}}, s.gt, SyntheticResult::crs_wkt(),
                {});

  FilterRun mask_run;
  mask_run.input = tmp.file("pair.tif");
  mask_run.output = tmp.file("mask.tif");
  mask_run.options.ramp = RampModel::kPlane;
  mask_run.options.stable = StableSource::kMask;
  mask_run.options.stable_path = tmp.file("stable.tif");
  filter_result(mask_run);
  FilterRun small = mask_run;
  small.output = tmp.file("mask_small_strips.tif");
  small.ram_budget_mb = 1;
  filter_result(small);
  const ReadBack a = read_back(mask_run.output), b = read_back(small.output);
  EXPECT_EQ(a.dx.values(), b.dx.values());
  EXPECT_EQ(a.flag.values(), b.flag.values());

  FilterRun auto_run = mask_run;
  auto_run.output = tmp.file("auto.tif");
  auto_run.options.stable = StableSource::kAuto;
  auto_run.options.stable_path.clear();
  auto_run.options.exclude_path = tmp.file("glacier.tif");
  auto_run.options.auto_fraction = 1.0;  // with the glacier excluded, all well-correlated ground is stable
  auto_run.options.auto_corr_quantile = 0.0;
  const Summary auto_summary = filter_result(auto_run);
  const ReadBack c = read_back(auto_run.output);
  EXPECT_EQ(c.record["stable_ground"]["source"], "auto");
  EXPECT_NEAR(c.record["removed"]["dx_px"]["coefficients"][1].get<double>(), s.ramp_x[1], 0.02);
  EXPECT_GT(auto_summary.counts.at("stable_nodes"), 4000);

  // Automatic without exclusion: the default rule (well-correlated, least-moving 30%) finds the off-glacier
  // nodes by itself here because the glacier is both faster and less correlated.
  FilterRun plain_auto = auto_run;
  plain_auto.output = tmp.file("auto_plain.tif");
  plain_auto.options = FilterOptions{};
  plain_auto.options.ramp = RampModel::kBias;
  plain_auto.options.stable = StableSource::kAuto;
  filter_result(plain_auto);
  const ReadBack d = read_back(plain_auto.output);
  EXPECT_LT(std::abs(d.record["removed"]["dx_px"]["coefficients"][0].get<double>() - s.ramp_x[0]), 0.5);
}

TEST(FilterResult, MissingBandIsAFormatErrorAndNoOutputIsLeft) {
  test::TempDir tmp;
  GridF only(10, 10, 1.f);
  io::write_cog(tmp.file("one.tif"), {&only}, {{"dx_px", "px"}}, io::GeoTransform{}, "", {});
  FilterRun run;
  run.input = tmp.file("one.tif");
  run.output = tmp.file("out.tif");
  try {
    filter_result(run);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("dy_px"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("one.tif"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(run.output));
}

TEST(FilterCli, RunsAndReportsRemovedBias) {
  test::TempDir tmp;
  SyntheticResult s;
  s.write(tmp.file("pair.tif"));
  s.write_stable_polygons(tmp.file("stable.geojson"));
  const auto r = test::run_cli("--summary-json -q filter " + tmp.file("pair.tif") + " -o " +
                               tmp.file("out.tif") + " --stable " + tmp.file("stable.geojson"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["details"]["stable_ground"]["ramp"], "bias");
  EXPECT_TRUE(std::filesystem::exists(tmp.file("out.tif")));
  const auto bad =
      test::run_cli("filter " + tmp.file("pair.tif") + " -o " + tmp.file("out2.tif") + " --ramp plane");
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  EXPECT_NE(bad.err.find("--ramp"), std::string::npos);
}

}  // namespace
}  // namespace deforma::filter

namespace deforma::filter {
namespace {

TEST(FilterMask, PixelUnitMaskIsSampledAtNodeCentres) {
  // A result on a node grid every 8 image pixels, first node centred on image pixel (4, 4), without CRS, and
  // a mask in image pixels (also without CRS): white (255) on image columns >= 40, with JPEG-like noise (30)
  // elsewhere, which must not count as inside.
  test::TempDir tmp;
  GridF mask(96, 64, 30.f);
  for (int r = 0; r < 64; ++r)
    for (int c = 40; c < 96; ++c) mask(c, r) = 250.f;
  test::write_test_geotiff(tmp.file("mask.tif"), mask, "Byte", -9999, false, 0);
  // The mask has a geotransform but no CRS (not georeferenced); the node grid derives from the image's
  // geotransform as the correlation derives it from the reference image.
  const io::RasterInfo mask_info = io::describe(tmp.file("mask.tif"));
  io::GeoTransform nodes = mask_info.geotransform.node_grid(3.5, 3.5, 8.0);
  GridF dx(12, 8, 0.f);
  io::write_cog(tmp.file("result.tif"), {&dx}, {{"dx_px", "px"}}, nodes, "", {});
  const io::RasterInfo grid = io::describe(tmp.file("result.tif"));
  ASSERT_FALSE(grid.georeferenced);
  const GridU8 inside = read_node_mask(tmp.file("mask.tif"), grid, {0, 0, 12, 8}, "exclude");
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 12; ++c) {
      const int image_col = 4 + 8 * c;
      EXPECT_EQ(inside(c, r), image_col >= 40 ? 1 : 0) << c << "," << r;
    }
  }
}

}  // namespace
}  // namespace deforma::filter

namespace deforma::filter {
namespace {

// A `correlate --velocity` result: the synthetic field plus the velocity bands derived from east/north over
// 16 days, recorded as correlate records it (years_between in its parameters).
void write_velocity_result(const SyntheticResult& s, const std::string& path, bool record_span) {
  const double years = 16.0 / 365.25;
  GridF ve(s.kWidth, s.kHeight, kNodata), vn = ve, speed = ve;
  for (std::size_t i = 0; i < ve.size(); ++i) {
    const float e = s.east.data()[i], n = s.north.data()[i];
    if (e == kNodata || n == kNodata) continue;
    ve.data()[i] = static_cast<float>(e / years);
    vn.data()[i] = static_cast<float>(n / years);
    speed.data()[i] = static_cast<float>(std::hypot(e, n) / years);
  }
  io::Provenance provenance;
  provenance.command_line = "synthetic";
  if (record_span) provenance.parameters = {{"years_between", years}};
  io::write_cog(path, {&s.dx, &s.dy, &s.east, &s.north, &s.corr, &s.snr, &s.flag, &ve, &vn, &speed},
                {{"dx_px", "px"},
                 {"dy_px", "px"},
                 {"east_m", "m"},
                 {"north_m", "m"},
                 {"corr", ""},
                 {"snr", ""},
                 {"flag", ""},
                 {"east_m_per_yr", "m/yr"},
                 {"north_m_per_yr", "m/yr"},
                 {"speed_m_per_yr", "m/yr"}},
                s.gt, SyntheticResult::crs_wkt(), provenance);
}

TEST(FilterCli, VelocityBandsFollowTheCorrectedDisplacementWithoutDays) {
  test::TempDir tmp;
  SyntheticResult s;
  write_velocity_result(s, tmp.file("v.tif"), true);
  s.write_stable_polygons(tmp.file("stable.geojson"));
  // The outliers move at least 14.6 px (220 m) in 16 days, over 5,000 m/yr; the glacier under 3,300 m/yr.
  const auto r = test::run_cli("filter " + tmp.file("v.tif") + " -o " + tmp.file("f.tif") + " --stable " +
                               tmp.file("stable.geojson") + " --max-velocity 4000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("velocity bands recomputed"), std::string::npos) << r.out;
  const auto out = io::Raster::open(tmp.file("f.tif"));
  ASSERT_EQ(out.info().band_count(), 10);
  const auto flag = out.read_all(7), east = out.read_all(3), north = out.read_all(4);
  const auto ve = out.read_all(8), vn = out.read_all(9), speed = out.read_all(10);
  const double years = 16.0 / 365.25;
  EXPECT_EQ(flag.values(10, 10), static_cast<float>(NodeFlag::kAboveMaxDisplacement));
  std::vector<double> stable_speed;
  for (int r = 0; r < s.kHeight; ++r) {
    for (int c = 0; c < s.kWidth; ++c) {
      ASSERT_EQ(ve.valid(c, r), east.valid(c, r)) << c << "," << r;
      ASSERT_EQ(speed.valid(c, r), east.valid(c, r)) << c << "," << r;
      if (!east.valid(c, r)) continue;
      EXPECT_NEAR(ve.values(c, r), east.values(c, r) / years, 0.01) << c << "," << r;
      EXPECT_NEAR(vn.values(c, r), north.values(c, r) / years, 0.01) << c << "," << r;
      EXPECT_NEAR(speed.values(c, r), std::hypot(east.values(c, r), north.values(c, r)) / years, 0.01);
      EXPECT_LT(speed.values(c, r), 4000.0);
      if (!SyntheticResult::on_glacier(c)) stable_speed.push_back(ve.values(c, r));
    }
  }
  // The bias of the stable ground was removed from the velocity too (it was about 0.3 px x 15 m / 16 d).
  std::nth_element(stable_speed.begin(), stable_speed.begin() + stable_speed.size() / 2, stable_speed.end());
  EXPECT_LT(std::abs(stable_speed[stable_speed.size() / 2]), 10.0);

  // --days contradicting the recorded span is refused; a result without a span needs --days.
  const auto wrong = test::run_cli("filter " + tmp.file("v.tif") + " -o " + tmp.file("g.tif") +
                                   " --max-velocity 4000 --days 30");
  EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
  EXPECT_NE(wrong.err.find("--days"), std::string::npos) << wrong.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("g.tif")));
  write_velocity_result(s, tmp.file("undated.tif"), false);
  const auto undated = test::run_cli("filter " + tmp.file("undated.tif") + " -o " + tmp.file("h.tif"));
  EXPECT_EQ(undated.exit_code, 5) << undated.err;
  EXPECT_NE(undated.err.find("--days"), std::string::npos) << undated.err;
  const auto given = test::run_cli("filter " + tmp.file("undated.tif") + " -o " + tmp.file("h.tif") +
                                   " --max-velocity 4000 --days 16");
  ASSERT_EQ(given.exit_code, 0) << given.err;
  EXPECT_EQ(io::Raster::open(tmp.file("h.tif")).read_all(7).values(10, 10),
            static_cast<float>(NodeFlag::kAboveMaxDisplacement));
}

}  // namespace
}  // namespace deforma::filter

namespace deforma::filter {
namespace {

// `correlate --shape affine` marks valid nodes that kept the translation with flag 16: they are measured
// nodes, tested and kept like flag 0.
TEST(FilterKernel, TranslationOnlyNodesAreValid) {
  FieldWindow f = smooth_field(12, 12);
  f.flag(4, 4) = 16.0f;
  f.flag(7, 7) = 16.0f;
  f.dx_px(7, 7) += 6.0f;  // an outlier among them is still rejected
  FilterOptions o;
  FilterCounts counts;
  EXPECT_TRUE(is_valid_node(f, 4, 4));
  const GridF flags = flag_outliers(f, io::Window{0, 0, 12, 12}, o, counts);
  EXPECT_EQ(flags(4, 4), 16.f);
  EXPECT_EQ(flags(7, 7), 7.f);
  EXPECT_EQ(counts.valid_in, 144);
  EXPECT_EQ(counts.valid_out, 143);
}

// The affine shape's bands are carried, and set to nodata where the filter rejects the node.
TEST(FilterResult, GradientBandsAreCarriedAndMaskedWhereRejected) {
  test::TempDir tmp;
  SyntheticResult s;
  s.flag(20, 20) = 16.f;  // valid, translation only: its gradients are nodata already
  GridF dudy(SyntheticResult::kWidth, SyntheticResult::kHeight, 0.01f);
  dudy(20, 20) = kNodata;
  io::Provenance provenance;
  provenance.command_line = "synthetic";
  io::CogOptions options;
  options.block_size = 16;
  io::write_cog(tmp.file("pair.tif"), {&s.dx, &s.dy, &s.east, &s.north, &s.corr, &s.snr, &s.flag, &dudy},
                {{"dx_px", "px"},
                 {"dy_px", "px"},
                 {"east_m", "m"},
                 {"north_m", "m"},
                 {"corr", ""},
                 {"snr", ""},
                 {"flag", ""},
                 {"dudy", "px/px"}},
                s.gt, SyntheticResult::crs_wkt(), provenance, options);
  FilterRun run;
  run.input = tmp.file("pair.tif");
  run.output = tmp.file("filtered.tif");
  filter_result(run);
  const auto raster = io::Raster::open(run.output);
  ASSERT_EQ(raster.info().band_count(), 8);
  EXPECT_EQ(raster.info().bands[7].description, "dudy");
  const GridF flag = raster.read_all(7).values, out = raster.read_all(8).values,
              dx = raster.read_all(1).values;
  EXPECT_EQ(flag(10, 10), 7.f);  // an injected outlier
  EXPECT_EQ(out(10, 10), kNodata);
  EXPECT_EQ(flag(20, 20), 16.f);
  EXPECT_NE(dx(20, 20), kNodata);
  EXPECT_FLOAT_EQ(out(30, 30), 0.01f);
}

}  // namespace
}  // namespace deforma::filter
