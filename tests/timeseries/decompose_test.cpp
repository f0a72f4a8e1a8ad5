#include "deforma/timeseries/decompose.hpp"

#include <cmath>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "test_support.hpp"

namespace deforma::timeseries {
namespace {

namespace flag = decompose_flag;

// Bounds of DecomposeSeriesCli.EgmsUsticaAgreesWithEgmsOrtho (mm/yr, mm), set from the observed differences
// with margin (docs/decompose.md gives the observed values).
constexpr double kUsticaVelocityMedian = 0.15;  // observed 0.061 (up), 0.036 (east)
constexpr double kUsticaVelocityP90 = 0.3;      // observed 0.139, 0.091
constexpr double kUsticaSeriesRmsMedian = 0.4;  // observed 0.15
constexpr double kUsticaSeriesRmsP90 = 0.6;     // observed 0.27
constexpr double kUsticaL3Velocity = 0.6;       // observed 0.38 at worst

Observation constant_observation(const std::string& label, const GridF& value, std::array<double, 3> d,
                                 double sigma, int geometry) {
  const int w = value.width();
  const int h = value.height();
  Observation o;
  o.label = label;
  o.value = value;
  o.valid = GridU8(w, h, 1);
  o.sigma = GridF(w, h, static_cast<float>(sigma));
  o.east = GridF(w, h, static_cast<float>(d[0]));
  o.north = GridF(w, h, static_cast<float>(d[1]));
  o.up = GridF(w, h, static_cast<float>(d[2]));
  o.geometry = geometry;
  return o;
}

// A synthetic field on 30 m cells: a subsidence bowl (up to -8 cm) beside a landslide moving 2 m to the
// south-east, seen by Sentinel-1-like ascending and descending passes and an optical pair.
struct Field {
  GridF east, north, up;
};

Field synthetic_field(int n) {
  Field f{GridF(n, n), GridF(n, n), GridF(n, n)};
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      const double bowl = std::exp(-(std::pow(c - 30.0, 2) + std::pow(r - 40.0, 2)) / (2 * 12.0 * 12.0));
      const double slide =
          std::exp(-(std::pow(c - 70.0, 2) / (2 * 10.0 * 10.0) + std::pow(r - 60.0, 2) / (2 * 18.0 * 18.0)));
      f.east(c, r) = static_cast<float>(1.6 * slide);
      f.north(c, r) = static_cast<float>(-1.2 * slide);
      f.up(c, r) = static_cast<float>(-0.08 * bowl - 0.3 * slide);
    }
  }
  return f;
}

GridF project(const Field& f, std::array<double, 3> d, double sigma, std::mt19937& rng) {
  std::normal_distribution<double> noise(0.0, sigma);
  GridF out(f.east.width(), f.east.height());
  for (std::size_t i = 0; i < out.size(); ++i) {
    out.data()[i] = static_cast<float>(d[0] * f.east.data()[i] + d[1] * f.north.data()[i] +
                                       d[2] * f.up.data()[i] + noise(rng));
  }
  return out;
}

TEST(Decompose, LosUnitVectorPointsFromGroundToARightLookingSensor) {
  const auto asc = los_unit_vector(39.0, -10.0);
  EXPECT_LT(asc[0], -0.6);  // the ascending sensor is to the west
  EXPECT_LT(asc[1], 0.0);
  EXPECT_NEAR(asc[2], std::cos(39.0 * M_PI / 180), 1e-12);
  const auto desc = los_unit_vector(41.0, 190.0);
  EXPECT_GT(desc[0], 0.6);
  EXPECT_NEAR(std::hypot(desc[0], desc[1], desc[2]), 1.0, 1e-12);
}

// Ascending + descending LOS (sigma 4 mm) and an optical east/north pair (sigma 0.25 m): east and up are
// fixed by the two LOS (their horizontal parts are nearly east-west), north by the optical pair. Bounds:
// every cell within 4.5 of its own sigma, and the sigmas honest (normalised RMS within 0.85..1.15).
TEST(Decompose, AscendingDescendingAndOpticalRecoverA3dField) {
  constexpr int n = 100;
  const Field truth = synthetic_field(n);
  std::mt19937 rng(7);
  const auto asc = los_unit_vector(38.5, -10.3);
  const auto desc = los_unit_vector(41.2, 190.4);
  std::vector<Observation> obs = {
      constant_observation("asc", project(truth, asc, 0.004, rng), asc, 0.004, 0),
      constant_observation("desc", project(truth, desc, 0.004, rng), desc, 0.004, 1),
      constant_observation("optical east", project(truth, {1, 0, 0}, 0.25, rng), {1, 0, 0}, 0.25, 2),
      constant_observation("optical north", project(truth, {0, 1, 0}, 0.25, rng), {0, 1, 0}, 0.25, 2),
  };
  const DecomposedWindow d = decompose(obs, Slope{}, DecomposeOptions{});
  double worst[3] = {0, 0, 0}, sum_sq[3] = {0, 0, 0};
  const GridF* est[3] = {&d.east, &d.north, &d.up};
  const GridF* sig[3] = {&d.sigma_east, &d.sigma_north, &d.sigma_up};
  const GridF* tru[3] = {&truth.east, &truth.north, &truth.up};
  for (std::size_t i = 0; i < d.flags.size(); ++i) {
    ASSERT_EQ(d.flags.data()[i], 0) << "cell " << i;
    ASSERT_EQ(d.geometries.data()[i], 3.f);
    for (int k = 0; k < 3; ++k) {
      const double z = (est[k]->data()[i] - tru[k]->data()[i]) / sig[k]->data()[i];
      worst[k] = std::max(worst[k], std::abs(z));
      sum_sq[k] += z * z;
    }
  }
  for (int k = 0; k < 3; ++k) {
    const double rms = std::sqrt(sum_sq[k] / static_cast<double>(d.flags.size()));
    EXPECT_LT(worst[k], 4.5) << "component " << k;
    EXPECT_GT(rms, 0.85) << "component " << k;
    EXPECT_LT(rms, 1.15) << "component " << k;
  }
  // The documented precision of this geometry: east and up to a few centimetres (the LOS vectors' small north
  // part, ~0.1, carries the optical north uncertainty into them), north about the optical sigma.
  EXPECT_LT(d.sigma_east(0, 0), 0.05);
  EXPECT_LT(d.sigma_up(0, 0), 0.05);
  EXPECT_NEAR(d.sigma_north(0, 0), 0.25, 0.03);
  // Condition of the geometry (unit vectors): finite, and below the default limit.
  EXPECT_GT(d.condition(0, 0), 1.0);
  EXPECT_LT(d.condition(0, 0), 50.0);
}

TEST(Decompose, OneLineOfSightLeavesEveryComponentNodataWithItsFlag) {
  constexpr int n = 8;
  const Field truth = synthetic_field(n);
  std::mt19937 rng(3);
  const auto asc = los_unit_vector(39.0, -10.0);
  const DecomposedWindow d =
      decompose({constant_observation("asc", project(truth, asc, 0.004, rng), asc, 0.004, 0)}, Slope{}, {});
  for (std::size_t i = 0; i < d.flags.size(); ++i) {
    EXPECT_EQ(d.flags.data()[i], flag::kEastUnresolved | flag::kNorthUnresolved | flag::kUpUnresolved);
    EXPECT_TRUE(std::isnan(d.east.data()[i]));
    EXPECT_TRUE(std::isnan(d.north.data()[i]));
    EXPECT_TRUE(std::isnan(d.up.data()[i]));
    EXPECT_TRUE(std::isnan(d.condition.data()[i]));
    EXPECT_EQ(d.geometries.data()[i], 1.f);
  }
}

TEST(Decompose, OpticalOnlyResolvesTheHorizontalAndFlagsUp) {
  std::vector<CellRow> rows = {{{1, 0, 0}, 2.0, 0.1, 0}, {{0, 1, 0}, -1.0, 0.1, 0}};
  const CellSolution s = solve_cell(rows, {});
  EXPECT_EQ(s.flags, flag::kUpUnresolved);
  EXPECT_DOUBLE_EQ(s.enu[0], 2.0);
  EXPECT_DOUBLE_EQ(s.enu[1], -1.0);
  EXPECT_TRUE(std::isnan(s.enu[2]));
  EXPECT_NEAR(s.sigma[0], 0.1, 1e-12);
  EXPECT_EQ(s.geometries, 1);
}

TEST(Decompose, NearlyParallelLooksAreIllConditionedNotTrusted) {
  // Two looks 1 degree of incidence apart plus an optical pair: up would be amplified ~100 times.
  const auto a = los_unit_vector(39.0, -10.0);
  const auto b = los_unit_vector(40.0, -10.0);
  std::vector<CellRow> rows = {{a, 0.01, 0.004, 0}, {b, 0.01, 0.004, 1}};
  const CellSolution s = solve_cell(rows, {});
  EXPECT_TRUE(s.flags & flag::kIllConditioned);
  EXPECT_TRUE(s.flags & flag::kUpUnresolved);
  EXPECT_TRUE(std::isnan(s.enu[2]));
}

TEST(Decompose, NoMeasurementIsFlaggedAsSuch) {
  const CellSolution s = solve_cell({{{1, 0, 0}, std::nan(""), 0.1, 0}}, {});
  EXPECT_TRUE(s.flags & flag::kNoData);
  EXPECT_EQ(s.geometries, 0);
}

// Surface-parallel flow on the real Yahtse DEM: a synthetic flow moving downslope along the surface, its
// horizontal part measured on a grid twice as coarse as the DEM (as correlation nodes are) with 5 cm noise.
// Up from the resampled DEM's slope matches the true up to a median error below 15 % of its median size.
TEST(Decompose, SurfaceParallelFlowOnTheYahtseDemRecoversUp) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  const std::string dem_path = (dir / "yahtse_srtm_dem.tif").string();
  io::Raster dem = io::Raster::open(dem_path);
  const io::RasterInfo& info = dem.info();
  const io::BandWindow z = dem.read_all(1);
  const double dx = std::abs(info.geotransform.c[1]);
  const double dy = std::abs(info.geotransform.c[5]);
  const Slope fine = slope_from_dem(z.values, z.valid, dx, dy);  // (w-2) x (h-2), offset by one cell
  const int cw = (info.width - 2) / 2;
  const int ch = (info.height - 2) / 2;
  GridF east(cw, ch, -9999.f), north(cw, ch, -9999.f), up_true(cw, ch, std::nanf(""));
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0.0, 0.05);
  for (int r = 0; r < ch; ++r) {
    for (int c = 0; c < cw; ++c) {
      double se = 0, sn = 0, su = 0;
      int count = 0;
      for (int j = 0; j < 2; ++j) {
        for (int i = 0; i < 2; ++i) {
          const int fc = 2 * c + i;
          const int fr = 2 * r + j;
          if (!fine.valid(fc, fr)) continue;
          // 2 m of motion per unit of slope, downhill: e = -2 dz/dx, n = -2 dz/dy, along the surface.
          const double gx = fine.dz_dx(fc, fr);
          const double gy = fine.dz_dy(fc, fr);
          se += -2.0 * gx;
          sn += -2.0 * gy;
          su += -2.0 * (gx * gx + gy * gy);
          ++count;
        }
      }
      if (count < 4) continue;
      east(c, r) = static_cast<float>(se / 4 + noise(rng));
      north(c, r) = static_cast<float>(sn / 4 + noise(rng));
      up_true(c, r) = static_cast<float>(su / 4);
    }
  }
  test::TempDir tmp;
  // The coarse grid starts one DEM cell in (the slope's margin) with cells two DEM cells wide.
  io::GeoTransform gt = info.geotransform;
  gt.c[0] += gt.c[1];
  gt.c[3] += gt.c[5];
  gt.c[1] *= 2;
  gt.c[5] *= 2;
  const std::string optical = tmp.file("flow.tif");
  io::write_cog(optical, {&east, &north}, {{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}}, gt,
                info.crs_wkt, io::Provenance{});
  DecomposeRun run;
  run.optical = {OpticalInput{optical, "east_m", "north_m", "0.05"}};
  run.dem_path = dem_path;
  run.output = tmp.file("enu.tif");
  RunContext context;
  const Summary summary = decompose_rasters(run, context);
  EXPECT_GT(summary.counts.at("up_from_slope"), 0);
  io::Raster out = io::Raster::open(run.output);
  ASSERT_EQ(out.info().band_count(), 9);
  EXPECT_EQ(out.info().bands[2].description, "up");
  const io::BandWindow up = out.read_all(3);
  const io::BandWindow flags = out.read_all(9);
  std::vector<double> errors, sizes;
  for (int r = 0; r < ch; ++r) {
    for (int c = 0; c < cw; ++c) {
      if (!std::isfinite(up_true(c, r)) || !up.valid(c, r)) continue;
      EXPECT_EQ(static_cast<int>(flags.values(c, r)), flag::kUpFromSlope);
      errors.push_back(std::abs(up.values(c, r) - up_true(c, r)));
      sizes.push_back(std::abs(up_true(c, r)));
    }
  }
  ASSERT_GT(errors.size(), static_cast<std::size_t>(cw * ch / 2));
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  EXPECT_LT(median(errors), 0.15 * median(sizes)) << "median |U| " << median(sizes);
}

// The command line: two constant-geometry LOS rasters plus an optical pair give all three components; one
// LOS alone gives nodata with flags 2|4|8; bad inputs get one line naming the parameter or file.
TEST(DecomposeCli, ConstantGeometriesAndBadInputs) {
  test::TempDir tmp;
  constexpr int n = 40;
  const Field truth = synthetic_field(n);
  std::mt19937 rng(9);
  const auto asc = los_unit_vector(39.0, -10.0);
  const auto desc = los_unit_vector(41.0, 190.0);
  test::write_test_geotiff(tmp.file("asc.tif"), project(truth, asc, 0.003, rng));
  test::write_test_geotiff(tmp.file("desc.tif"), project(truth, desc, 0.003, rng));
  GridF e = project(truth, {1, 0, 0}, 0.1, rng);
  GridF nn = project(truth, {0, 1, 0}, 0.1, rng);
  io::GeoTransform gt;
  gt.c = {500000.0, 15.0, 0.0, 6700000.0, 0.0, -15.0};
  const std::string wkt = io::describe(tmp.file("asc.tif")).crs_wkt;
  io::write_cog(tmp.file("opt.tif"), {&e, &nn}, {{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}}, gt,
                wkt, io::Provenance{});
  const std::string los = " --los " + tmp.file("asc.tif") + " " + tmp.file("desc.tif") +
                          " --los-geometry 39/-10 41/190 --los-sigma 0.003";
  const auto ok = test::run_cli("--summary-json -q decompose --optical " + tmp.file("opt.tif") +
                                " --optical-sigma 0.1" + los + " -o " + tmp.file("enu.tif"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out)["counts"]["resolved_3d"], n * n);
  io::Raster out = io::Raster::open(tmp.file("enu.tif"));
  const io::BandWindow up = out.read_all(3);
  EXPECT_NEAR(up.values(30, 25), truth.up(30, 25), 0.05);
  EXPECT_NE(out.info().metadata.count("DEFORMA_COMMAND"), 0u);

  const auto one = test::run_cli("-q decompose --los " + tmp.file("asc.tif") + " --los-geometry 39/-10 -o " +
                                 tmp.file("one.tif"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  io::Raster one_out = io::Raster::open(tmp.file("one.tif"));
  const io::BandWindow flags = one_out.read_all(9);
  const io::BandWindow east = one_out.read_all(1);
  EXPECT_EQ(static_cast<int>(flags.values(3, 3)),
            flag::kEastUnresolved | flag::kNorthUnresolved | flag::kUpUnresolved);
  EXPECT_FALSE(east.valid(3, 3));

  const auto no_band =
      test::run_cli("decompose --optical " + tmp.file("asc.tif") + " -o " + tmp.file("x.tif"));
  EXPECT_EQ(no_band.exit_code, 5) << no_band.err;
  EXPECT_NE(no_band.err.find("east_m"), std::string::npos) << no_band.err;
  const auto bad_geometry = test::run_cli("decompose --los " + tmp.file("asc.tif") +
                                          " --los-geometry 95/10 -o " + tmp.file("x.tif"));
  EXPECT_EQ(bad_geometry.exit_code, 3);
  EXPECT_NE(bad_geometry.err.find("--los-geometry"), std::string::npos) << bad_geometry.err;
  const auto counts = test::run_cli("decompose" + los + " --los-sigma 0.1 0.2 0.3 -o " + tmp.file("x.tif"));
  EXPECT_EQ(counts.exit_code, 3);
  EXPECT_NE(counts.err.find("--los-sigma"), std::string::npos) << counts.err;
  const auto nothing = test::run_cli("decompose -o " + tmp.file("x.tif"));
  EXPECT_EQ(nothing.exit_code, 3);
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x.tif")));
}

// EGMS points as inputs: the real Ustica ascending and descending L2b bursts, decomposed with north
// neglected on the grid of `deforma egms ortho`'s output, agree with the Ortho mean velocities where both
// have a value: median difference below 0.1 mm/yr and 90th percentile below 0.3 mm/yr for up and east
// (observed 0.04 and 0.13). The two differ in method (Ortho fits the model to per-date solutions over the
// common dates; decompose solves on the points' mean velocities, averaged per cell).
TEST(DecomposeCli, EgmsUsticaAgreesWithEgmsOrtho) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  const std::string asc = (dir / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip").string();
  const std::string desc = (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string();
  const auto ortho = test::run_cli("-q egms ortho " + asc + " " + desc + " -o " + tmp.file("ortho"));
  ASSERT_EQ(ortho.exit_code, 0) << ortho.err;
  const auto r =
      test::run_cli("--summary-json -q decompose --egms " + asc + " " + desc + " --north-zero --grid " +
                    tmp.file("ortho_U.tif") + " -o " + tmp.file("enu.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["counts"]["east_up_north_neglected"].get<int>(), 500);
  io::Raster enu = io::Raster::open(tmp.file("enu.tif"));
  EXPECT_EQ(enu.info().bands[0].unit, "m/yr");
  for (const auto& [band, file] : {std::pair{3, "ortho_U.tif"}, std::pair{1, "ortho_E.tif"}}) {
    const io::BandWindow mine = enu.read_all(band);
    const io::BandWindow flags = enu.read_all(9);
    const io::BandWindow theirs = io::Raster::open(tmp.file(file)).read_all(1);
    std::vector<double> diffs;
    for (int row = 0; row < mine.values.height(); ++row) {
      for (int col = 0; col < mine.values.width(); ++col) {
        if (!mine.valid(col, row) || !theirs.valid(col, row)) continue;
        EXPECT_EQ(static_cast<int>(flags.values(col, row)), flag::kNorthUnresolved);
        diffs.push_back(std::abs(mine.values(col, row) * 1000.0 - theirs.values(col, row)));
      }
    }
    ASSERT_GT(diffs.size(), 500u) << file;
    std::sort(diffs.begin(), diffs.end());
    EXPECT_LT(diffs[diffs.size() / 2], 0.1) << file;
    EXPECT_LT(diffs[diffs.size() * 9 / 10], 0.3) << file;
  }
  // EGMS points alone need a cell size or a grid.
  const auto no_grid = test::run_cli("decompose --egms " + asc + " -o " + tmp.file("x.tif"));
  EXPECT_EQ(no_grid.exit_code, 3);
  EXPECT_NE(no_grid.err.find("--resolution"), std::string::npos) << no_grid.err;
}

TEST(Decompose, NorthZeroSolvesEastAndUpFromTwoLooks) {
  const auto asc = los_unit_vector(39.0, -10.0);
  const auto desc = los_unit_vector(41.0, 190.0);
  // True motion: east 0.01, north 0 , up -0.02.
  auto project = [](std::array<double, 3> d) { return d[0] * 0.01 + d[2] * -0.02; };
  DecomposeOptions o;
  o.north_zero = true;
  const CellSolution s = solve_cell({{asc, project(asc), 0.001, 0}, {desc, project(desc), 0.001, 1}}, o);
  EXPECT_EQ(s.flags, flag::kNorthUnresolved);
  EXPECT_NEAR(s.enu[0], 0.01, 1e-9);
  EXPECT_NEAR(s.enu[2], -0.02, 1e-9);
  EXPECT_TRUE(std::isnan(s.enu[1]));
  EXPECT_EQ(s.geometries, 2);
  // Without the assumption the same two looks resolve nothing.
  EXPECT_EQ(solve_cell({{asc, project(asc), 0.001, 0}, {desc, project(desc), 0.001, 1}}, {}).flags,
            flag::kEastUnresolved | flag::kNorthUnresolved | flag::kUpUnresolved);
}

// 4-D: ascending and descending LOS series (12-day repeat, 6 days apart, 3 mm) and an optical series
// (36-day repeat, 1 cm on east and north), inverted jointly on the union of their 20 dates. Truth: east a
// trend of 0.10 m/yr; north a 5 cm step on day 60; up a trend of -3 cm/yr and a -1 cm step on day 60.
// Bounds (documented in docs/decompose.md): east and up within 4 sigma + 5 mm at every date, north within
// 4 sigma + 5 mm at the optical dates (between them north is bridged), velocities within 3 sigma + 5 mm/yr.
TEST(DecomposeSeries, RecoversStepAndTrendFromThreeGeometries) {
  std::vector<io::Date> dates;
  const io::Date t0 = io::Date::from_ymd(2020, 1, 1);
  std::vector<int> day_of;
  for (int d = 0; d <= 114; d += 6) day_of.push_back(d);
  for (const int d : day_of) dates.push_back(io::Date::from_days_since_epoch(t0.days_since_epoch() + d));
  auto truth = [](int day) {
    const double t = day / 365.25;
    const double step = day >= 60 ? 1.0 : 0.0;
    return std::array<double, 3>{0.10 * t, 0.05 * step, -0.03 * t - 0.01 * step};
  };
  const auto asc = los_unit_vector(39.0, -10.0);
  const auto desc = los_unit_vector(41.0, 190.0);
  std::vector<SeriesPair> pairs;
  std::vector<double> values, sigmas;
  std::vector<std::array<double, 3>> directions;
  std::vector<int> geometries;
  std::mt19937 rng(21);
  auto add = [&](int i, int j, std::array<double, 3> d, double sigma, int geometry) {
    std::normal_distribution<double> noise(0, sigma);
    const auto a = truth(day_of[i]), b = truth(day_of[j]);
    double v = 0;
    for (int k = 0; k < 3; ++k) v += d[k] * (b[k] - a[k]);
    pairs.push_back({i, j});
    values.push_back(v + noise(rng));
    sigmas.push_back(sigma);
    directions.push_back(d);
    geometries.push_back(geometry);
  };
  for (int i = 0; i < 20; i += 2) {  // ascending: even dates; descending: odd ones
    for (int step = 2; step <= 4; step += 2) {
      if (i + step < 20) add(i, i + step, asc, 0.003, 0);
      if (i + 1 + step < 20) add(i + 1, i + 1 + step, desc, 0.003, 1);
    }
  }
  const std::vector<int> optical_dates = {0, 6, 12, 18};  // days 0, 36, 72, 108
  for (std::size_t a = 0; a < optical_dates.size(); ++a) {
    for (std::size_t b = a + 1; b < optical_dates.size() && b <= a + 2; ++b) {
      add(optical_dates[a], optical_dates[b], {1, 0, 0}, 0.01, 2);
      add(optical_dates[a], optical_dates[b], {0, 1, 0}, 0.01, 2);
    }
  }
  const SeriesDecomposer solver(dates, pairs);
  const CellSeries s = solver.solve(values, sigmas, directions, geometries);
  EXPECT_EQ(s.flags, 0);
  EXPECT_EQ(s.geometries, 3);
  double worst[3] = {0, 0, 0};
  for (int m = 0; m < 20; ++m) {
    const auto t = truth(day_of[m]);
    for (int j = 0; j < 3; ++j) {
      const bool optical_date =
          std::find(optical_dates.begin(), optical_dates.end(), m) != optical_dates.end();
      if (j == 1 && !optical_date) continue;
      const double excess = std::abs(s.displacement[j][m] - t[j]) - 4 * s.sigma[j][m];
      worst[j] = std::max(worst[j], std::abs(s.displacement[j][m] - t[j]));
      EXPECT_LT(excess, 0.005) << "component " << j << " date " << m;
    }
  }
  std::printf(
      "[4-D] worst errors E %.4f N %.4f U %.4f m; velocities %.4f %.4f %.4f m/yr (sigma %.4f %.4f %.4f)\n",
      worst[0], worst[1], worst[2], s.velocity_per_yr[0], s.velocity_per_yr[1], s.velocity_per_yr[2],
      s.velocity_sigma_per_yr[0], s.velocity_sigma_per_yr[1], s.velocity_sigma_per_yr[2]);
  EXPECT_NEAR(s.velocity_per_yr[0], 0.10, 3 * s.velocity_sigma_per_yr[0] + 0.005);
  // Without the optical series, the two looks leave north unresolved and with it all three (rank 2).
  std::vector<double> no_optical = sigmas;
  for (std::size_t p = 0; p < pairs.size(); ++p) {
    if (geometries[p] == 2) no_optical[p] = 0;
  }
  const CellSeries los_only = solver.solve(values, no_optical, directions, geometries);
  EXPECT_EQ(los_only.flags, flag::kEastUnresolved | flag::kNorthUnresolved | flag::kUpUnresolved);
  EXPECT_TRUE(std::isnan(los_only.displacement[2][5]));
  // With north neglected (as EGMS Ortho), east and up come back.
  SeriesOptions o;
  o.geometry.north_zero = true;
  const CellSeries ortho =
      SeriesDecomposer(dates, pairs, o).solve(values, no_optical, directions, geometries);
  EXPECT_EQ(ortho.flags, flag::kNorthUnresolved);
  EXPECT_NEAR(ortho.displacement[0][19], truth(114)[0], 0.02);
}

// Robust reweighting: the three-geometry scenario with one line-of-sight pair in eight off by 5 cm (an
// unwrapping error, a bad pair): plain least squares is pulled off by centimetres; Tukey's IRLS gives zero
// weight to those pairs and recovers east and up within 4 sigma + 5 mm at every date (in our run: 6.8 cm
// worst error plain, 0.8 cm Tukey); Huber's only downweights them, and at least halves the error (2.7 cm).
TEST(DecomposeSeries, RobustReweightingRejectsOutlierPairs) {
  std::vector<io::Date> dates;
  const io::Date t0 = io::Date::from_ymd(2020, 1, 1);
  std::vector<int> day_of;
  for (int d = 0; d <= 114; d += 6) day_of.push_back(d);
  for (const int d : day_of) dates.push_back(io::Date::from_days_since_epoch(t0.days_since_epoch() + d));
  auto truth = [](int day) {
    const double t = day / 365.25;
    return std::array<double, 3>{0.10 * t, 0.0, -0.03 * t};
  };
  const auto asc = los_unit_vector(39.0, -10.0);
  const auto desc = los_unit_vector(41.0, 190.0);
  std::vector<SeriesPair> pairs;
  std::vector<double> values, sigmas;
  std::vector<std::array<double, 3>> directions;
  std::vector<int> geometries;
  std::mt19937 rng(5);
  int los_pairs = 0, outliers = 0;
  auto add = [&](int i, int j, std::array<double, 3> d, double sigma, int geometry) {
    std::normal_distribution<double> noise(0, sigma);
    const auto a = truth(day_of[i]), b = truth(day_of[j]);
    double v = 0;
    for (int k = 0; k < 3; ++k) v += d[k] * (b[k] - a[k]);
    if (geometry < 2 && ++los_pairs % 8 == 3) {
      v += 0.05;
      ++outliers;
    }
    pairs.push_back({i, j});
    values.push_back(v + noise(rng));
    sigmas.push_back(sigma);
    directions.push_back(d);
    geometries.push_back(geometry);
  };
  for (int i = 0; i < 20; i += 2) {
    for (int step = 2; step <= 6; step += 2) {
      if (i + step < 20) add(i, i + step, asc, 0.003, 0);
      if (i + 1 + step < 20) add(i + 1, i + 1 + step, desc, 0.003, 1);
    }
  }
  const std::vector<int> optical_dates = {0, 6, 12, 18};
  for (std::size_t a = 0; a < optical_dates.size(); ++a) {
    for (std::size_t b = a + 1; b < optical_dates.size(); ++b) {
      add(optical_dates[a], optical_dates[b], {1, 0, 0}, 0.01, 2);
      add(optical_dates[a], optical_dates[b], {0, 1, 0}, 0.01, 2);
    }
  }
  ASSERT_GE(outliers, 4);
  auto worst_error = [&](const CellSeries& s) {
    double worst = 0;
    for (int m = 0; m < 20; ++m) {
      for (const int j : {0, 2}) {
        worst = std::max(worst, std::abs(s.displacement[j][m] - truth(day_of[m])[j]));
      }
    }
    return worst;
  };
  const CellSeries plain = SeriesDecomposer(dates, pairs).solve(values, sigmas, directions, geometries);
  SeriesOptions tukey;
  tukey.robust = RobustLoss::kTukey;
  const CellSeries robust =
      SeriesDecomposer(dates, pairs, tukey).solve(values, sigmas, directions, geometries);
  SeriesOptions huber;
  huber.robust = RobustLoss::kHuber;
  const CellSeries soft = SeriesDecomposer(dates, pairs, huber).solve(values, sigmas, directions, geometries);
  std::printf("[4-D robust] %d outlier pairs of %zu: worst E/U error %.4f m plain, %.4f Tukey, %.4f Huber\n",
              outliers, pairs.size(), worst_error(plain), worst_error(robust), worst_error(soft));
  EXPECT_GT(worst_error(plain), 0.01);
  EXPECT_EQ(plain.pairs_downweighted, 0);
  // Every outlier, and at most a couple of good pairs next to them.
  EXPECT_GE(robust.pairs_downweighted, outliers);
  EXPECT_LE(robust.pairs_downweighted, outliers + 2);
  EXPECT_EQ(robust.flags, 0);
  for (int m = 0; m < 20; ++m) {
    for (const int j : {0, 2}) {
      EXPECT_LT(std::abs(robust.displacement[j][m] - truth(day_of[m])[j]) - 4 * robust.sigma[j][m], 0.005)
          << "component " << j << " date " << m;
    }
  }
  EXPECT_LT(worst_error(soft), 0.5 * worst_error(plain));
}

// The 4-D command over files: the scenario of RecoversStepAndTrendFromThreeGeometries written as 6 x 5
// rasters (one per pair, per-cell noise), a pair table, and the cubes read back: every cell within the same
// bounds at the last date, all cells resolved, the NetCDF cube written; a bad table is a format error.
TEST(DecomposeSeriesCli, PairTableOfThreeGeometriesToCubes) {
  test::TempDir tmp;
  const io::Date t0 = io::Date::from_ymd(2020, 1, 1);
  auto date = [&](int day) { return io::Date::from_days_since_epoch(t0.days_since_epoch() + day); };
  auto truth = [](int day) {
    const double t = day / 365.25;
    const double step = day >= 60 ? 1.0 : 0.0;
    return std::array<double, 3>{0.10 * t, 0.05 * step, -0.03 * t - 0.01 * step};
  };
  std::mt19937 rng(4);
  std::ofstream table(tmp.file("pairs.csv"));
  table << "ref_date,sec_date,path,kind,geometry,look,band,sigma\n";
  int count = 0;
  auto raster = [&](int a, int b, std::array<double, 3> d, double sigma) {
    std::normal_distribution<double> noise(0, sigma);
    GridF g(6, 5);
    const auto ta = truth(a), tb = truth(b);
    for (auto& v : g.values())
      v = static_cast<float>(d[0] * (tb[0] - ta[0]) + d[1] * (tb[1] - ta[1]) + d[2] * (tb[2] - ta[2]) +
                             noise(rng));
    return g;
  };
  const auto asc = los_unit_vector(39.0, -10.0);
  const auto desc = los_unit_vector(41.0, 190.0);
  for (int a = 0; a <= 108; a += 12) {
    for (int span = 12; span <= 24; span += 12) {
      for (int geometry = 0; geometry < 2; ++geometry) {
        const int ra = a + 6 * geometry, rb = ra + span;
        if (rb > 114) continue;
        const std::string name = fmt::format("los{}.tif", count++);
        test::write_test_geotiff(tmp.file(name), raster(ra, rb, geometry == 0 ? asc : desc, 0.003));
        table << date(ra).iso() << "," << date(rb).iso() << "," << name << ",los,"
              << (geometry == 0 ? "asc,39/-10" : "desc,41/190") << ",1,0.003\n";
      }
    }
  }
  io::GeoTransform gt;
  gt.c = {500000.0, 15.0, 0.0, 6700000.0, 0.0, -15.0};
  const std::string wkt = io::describe(tmp.file("los0.tif")).crs_wkt;
  for (int a = 0; a <= 72; a += 36) {
    for (int b = a + 36; b <= 108 && b <= a + 72; b += 36) {
      GridF e = raster(a, b, {1, 0, 0}, 0.01), n = raster(a, b, {0, 1, 0}, 0.01);
      const std::string name = fmt::format("opt{}.tif", count++);
      io::write_cog(tmp.file(name), {&e, &n}, {{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}}, gt, wkt,
                    io::Provenance{});
      table << date(a).iso() << "," << date(b).iso() << "," << name << ",optical,s2,,,0.01\n";
    }
  }
  table.close();
  const auto r =
      test::run_cli("--summary-json -q decompose-series " + tmp.file("pairs.csv") + " -o " + tmp.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["counts"]["dates"], 20);
  EXPECT_EQ(j["counts"]["resolved_3d"], 30);
  EXPECT_EQ(j["details"]["geometries"], 3);
  const auto last = truth(114);
  const char* names[3] = {"east", "north", "up"};
  for (int c = 0; c < 3; ++c) {
    io::Raster cube = io::Raster::open(tmp.file(std::string("out/") + names[c] + ".tif"));
    io::Raster sigma = io::Raster::open(tmp.file(std::string("out/") + names[c] + "_sigma.tif"));
    ASSERT_EQ(cube.info().band_count(), 20);
    EXPECT_EQ(cube.info().bands[19].description, date(114).iso());
    const io::BandWindow v = cube.read_all(20);
    const io::BandWindow s = sigma.read_all(20);
    for (std::size_t i = 0; i < v.values.size(); ++i) {
      ASSERT_TRUE(v.valid.data()[i]);
      EXPECT_LT(std::abs(v.values.data()[i] - last[c]), 4 * s.values.data()[i] + 0.005)
          << names[c] << " cell " << i;
    }
  }
  EXPECT_TRUE(std::filesystem::exists(tmp.file("out/decompose_series.nc")));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("out/velocity.tif")));

  std::ofstream bad(tmp.file("bad.csv"));
  bad << "ref_date,sec_date,path,kind,geometry\n2020-01-01,2020-01-13,los0.tif,radar,asc\n";
  bad.close();
  const auto b = test::run_cli("decompose-series " + tmp.file("bad.csv") + " -o " + tmp.file("out2"));
  EXPECT_EQ(b.exit_code, 5);
  EXPECT_NE(b.err.find("line 2"), std::string::npos) << b.err;
}

// A small table of the three-geometry scenario (6 x 5 cells of 15 m), every pair raster written with a
// per-cell noise; `outlier` adds 5 cm to one ascending pair in cell (2, 2) (an unwrapping error there).
std::string write_small_pair_table(test::TempDir& tmp, bool outlier) {
  const io::Date t0 = io::Date::from_ymd(2020, 1, 1);
  auto date = [&](int day) { return io::Date::from_days_since_epoch(t0.days_since_epoch() + day); };
  auto truth = [](int day) {
    const double t = day / 365.25;
    return std::array<double, 3>{0.10 * t, 0.0, -0.03 * t};
  };
  std::mt19937 rng(8);
  const std::string path = tmp.file(outlier ? "robust_pairs.csv" : "plain_pairs.csv");
  std::ofstream table(path);
  table << "ref_date,sec_date,path,kind,geometry,look,band,sigma\n";
  const auto asc = los_unit_vector(39.0, -10.0);
  const auto desc = los_unit_vector(41.0, 190.0);
  int count = 0;
  for (int a = 0; a <= 108; a += 12) {
    for (int span = 12; span <= 36; span += 12) {
      for (int geometry = 0; geometry < 2; ++geometry) {
        const int ra = a + 6 * geometry, rb = ra + span;
        if (rb > 114) continue;
        const auto d = geometry == 0 ? asc : desc;
        std::normal_distribution<double> noise(0, 0.003);
        GridF g(6, 5);
        const auto ta = truth(ra), tb = truth(rb);
        for (auto& v : g.values())
          v = static_cast<float>(d[0] * (tb[0] - ta[0]) + d[2] * (tb[2] - ta[2]) + noise(rng));
        if (outlier && geometry == 0 && a == 48 && span == 24) g(2, 2) += 0.05f;
        const std::string name = fmt::format("{}{}.tif", outlier ? "r" : "p", count++);
        test::write_test_geotiff(tmp.file(name), g);
        table << date(ra).iso() << "," << date(rb).iso() << "," << name << ",los,"
              << (geometry == 0 ? "asc,39/-10" : "desc,41/190") << ",1,0.003\n";
      }
    }
  }
  return path;
}

// valid_pairs counts the pairs kept: with --robust tukey, the cell holding the outlier pair counts it (and
// any other pair whose final weight is below 0.5) in downweighted_pairs instead, and the two bands add up
// to the cell's pairs; without --robust every pair counts and none is downweighted.
TEST(DecomposeSeries, RobustValidPairsCountOnlyThePairsKept) {
  test::TempDir tmp;
  const std::string table = write_small_pair_table(tmp, true);
  int total_pairs = 0;
  {
    std::ifstream f(table);
    std::string line;
    while (std::getline(f, line)) ++total_pairs;
    --total_pairs;  // the header
  }
  for (const bool robust : {false, true}) {
    const std::string out = tmp.file(robust ? "robust" : "plain");
    const auto r = test::run_cli("--summary-json -q decompose-series " + table +
                                 " --north-zero --no-netcdf -o " + out + (robust ? " --robust tukey" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    io::Raster velocity = io::Raster::open(out + "/velocity.tif");
    ASSERT_EQ(velocity.info().band_count(), 11);
    EXPECT_EQ(velocity.info().bands[6].description, "valid_pairs");
    EXPECT_EQ(velocity.info().bands[10].description, "downweighted_pairs");
    const io::BandWindow kept = velocity.read_all(7);
    const io::BandWindow down = velocity.read_all(11);
    std::int64_t down_sum = 0;
    for (int row = 0; row < 5; ++row) {
      for (int col = 0; col < 6; ++col) {
        EXPECT_EQ(kept.values(col, row) + down.values(col, row), total_pairs) << col << "," << row;
        down_sum += static_cast<std::int64_t>(down.values(col, row));
        if (!robust) {
          EXPECT_EQ(down.values(col, row), 0);
        }
      }
    }
    const auto summary = nlohmann::json::parse(r.out);
    EXPECT_EQ(summary["counts"]["pairs_downweighted"].get<std::int64_t>(), down_sum);
    if (robust) {
      EXPECT_GE(down.values(2, 2), 1);
      EXPECT_LT(kept.values(2, 2), total_pairs);
      // Elsewhere only the noise's tail: Tukey's weight is below 0.5 beyond 0.64 of its cut-off, about 2
      // robust sigmas, so a few pairs a cell (2.7 in 48 on average in our run), never a tenth of them.
      const double elsewhere =
          static_cast<double>(down_sum - static_cast<std::int64_t>(down.values(2, 2))) / 29;
      std::printf("[4-D robust] outlier cell: %d of %d pairs downweighted; other cells: %.1f on average\n",
                  static_cast<int>(down.values(2, 2)), total_pairs, elsewhere);
      EXPECT_LT(elsewhere, 0.1 * total_pairs);
    }
  }
}

// The real Ustica bursts through decompose-series: their per-date LOS series, averaged per 100 m cell of
// `deforma egms ortho`'s grid and inverted jointly with north neglected, give east and up velocities close to
// Ortho's mean velocities, and per-date up series close to Ortho's per-date solution (PREFIX_U.csv) once
// the references are aligned. Ortho resamples both tracks to a 6-day grid and solves each date on its own,
// then fits the EGMS model (with seasonal terms); decompose-series solves every date of the union jointly and
// fits a straight line: the bounds below (documented in docs/decompose.md) are those differences with margin.
TEST(DecomposeSeriesCli, EgmsUsticaAgreesWithEgmsOrtho) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  const std::string asc = (dir / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip").string();
  const std::string desc = (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string();
  const auto ortho = test::run_cli("-q egms ortho " + asc + " " + desc + " -o " + tmp.file("ortho"));
  ASSERT_EQ(ortho.exit_code, 0) << ortho.err;
  const auto r = test::run_cli("--summary-json -q decompose-series --egms " + asc + " " + desc +
                               " --north-zero --no-netcdf --grid " + tmp.file("ortho_U.tif") + " -o " +
                               tmp.file("series"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_GT(summary["counts"]["east_up_north_neglected"].get<int>(), 500);
  // The union of the two tracks' acquisitions (207 and 210; 301 in all).
  EXPECT_GT(summary["counts"]["dates"].get<int>(), 210);
  io::Raster velocity = io::Raster::open(tmp.file("series/velocity.tif"));
  const io::BandWindow flags = velocity.read_all(10);
  for (const auto& [band, file] : {std::pair{3, "ortho_U.tif"}, std::pair{1, "ortho_E.tif"}}) {
    const io::BandWindow mine = velocity.read_all(band);
    const io::BandWindow theirs = io::Raster::open(tmp.file(file)).read_all(1);
    std::vector<double> diffs;
    for (int row = 0; row < mine.values.height(); ++row) {
      for (int col = 0; col < mine.values.width(); ++col) {
        if (!mine.valid(col, row) || !theirs.valid(col, row)) continue;
        EXPECT_EQ(static_cast<int>(flags.values(col, row)), flag::kNorthUnresolved);
        diffs.push_back(std::abs(mine.values(col, row) * 1000.0 - theirs.values(col, row)));
      }
    }
    ASSERT_GT(diffs.size(), 500u) << file;
    std::sort(diffs.begin(), diffs.end());
    std::printf("[4-D Ustica] %s: %zu cells, |velocity difference| median %.3f p90 %.3f max %.3f mm/yr\n",
                file, diffs.size(), diffs[diffs.size() / 2], diffs[diffs.size() * 9 / 10], diffs.back());
    EXPECT_LT(diffs[diffs.size() / 2], kUsticaVelocityMedian) << file;
    EXPECT_LT(diffs[diffs.size() * 9 / 10], kUsticaVelocityP90) << file;
  }
  // Per date: Ortho's vertical series (6-day grid) against ours interpolated to its dates, both shifted to
  // their mean over the common dates (their references differ); the RMS per cell, median over the cells.
  io::Raster up = io::Raster::open(tmp.file("series/up.tif"));
  const int bands = up.info().band_count();
  std::vector<double> day_of_band;
  std::vector<io::BandWindow> cube;
  for (int b = 1; b <= bands; ++b) {
    day_of_band.push_back(
        static_cast<double>(io::Date::parse(up.info().bands[b - 1].description).days_since_epoch()));
    cube.push_back(up.read_all(b));
  }
  const io::RasterInfo grid = up.info();
  auto reader = egms::ProductReader::open(tmp.file("ortho_U.csv"));
  const int ce = reader.layout().require(egms::column::kEasting, "test");
  const int cn = reader.layout().require(egms::column::kNorthing, "test");
  egms::PointChunk chunk;
  std::vector<double> rms_per_cell;
  while (reader.read(chunk, 4096)) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      double colf = 0, rowf = 0;
      grid.geotransform.map_to_pixel(chunk.scalar(i, ce), chunk.scalar(i, cn), colf, rowf);
      const int col = static_cast<int>(std::floor(colf)), row = static_cast<int>(std::floor(rowf));
      if (col < 0 || row < 0 || col >= grid.width || row >= grid.height || !cube[1].valid(col, row)) continue;
      std::vector<double> d;
      for (std::size_t k = 0; k < reader.layout().date_count(); ++k) {
        const double theirs = chunk.series_of(i)[k];
        const double day = reader.layout().dates[k];
        const auto it = std::upper_bound(day_of_band.begin(), day_of_band.end(), day);
        if (!std::isfinite(theirs) || it == day_of_band.begin() || it == day_of_band.end()) continue;
        const std::size_t b = static_cast<std::size_t>(it - day_of_band.begin());
        const double f = (day - day_of_band[b - 1]) / (day_of_band[b] - day_of_band[b - 1]);
        const double mine = (1 - f) * cube[b - 1].values(col, row) + f * cube[b].values(col, row);
        d.push_back(mine * 1000.0 - theirs);
      }
      if (d.size() < 100) continue;
      double mean = 0, sq = 0;
      for (const double x : d) mean += x / static_cast<double>(d.size());
      for (const double x : d) sq += (x - mean) * (x - mean);
      rms_per_cell.push_back(std::sqrt(sq / static_cast<double>(d.size())));
    }
  }
  ASSERT_GT(rms_per_cell.size(), 500u);
  std::sort(rms_per_cell.begin(), rms_per_cell.end());
  std::printf("[4-D Ustica] per-date up vs Ortho: %zu cells, RMS median %.2f p90 %.2f mm\n",
              rms_per_cell.size(), rms_per_cell[rms_per_cell.size() / 2],
              rms_per_cell[rms_per_cell.size() * 9 / 10]);
  EXPECT_LT(rms_per_cell[rms_per_cell.size() / 2], kUsticaSeriesRmsMedian);
  EXPECT_LT(rms_per_cell[rms_per_cell.size() * 9 / 10], kUsticaSeriesRmsP90);

  // Ortho's own L3 products as inputs: U and E series along the vertical and east axes, north left out.
  const auto l3 = test::run_cli("--summary-json -q decompose-series --egms " + tmp.file("ortho_U.csv") + " " +
                                tmp.file("ortho_E.csv") + " --no-netcdf --grid " + tmp.file("ortho_U.tif") +
                                " -o " + tmp.file("l3"));
  ASSERT_EQ(l3.exit_code, 0) << l3.err;
  io::Raster l3_velocity = io::Raster::open(tmp.file("l3/velocity.tif"));
  const io::BandWindow l3_up = l3_velocity.read_all(3);
  const io::BandWindow l3_flags = l3_velocity.read_all(10);
  const io::BandWindow ortho_up = io::Raster::open(tmp.file("ortho_U.tif")).read_all(1);
  int compared = 0;
  double worst_l3 = 0;
  for (int row = 0; row < grid.height; ++row) {
    for (int col = 0; col < grid.width; ++col) {
      if (!ortho_up.valid(col, row) || !l3_up.valid(col, row)) continue;
      ++compared;
      EXPECT_EQ(static_cast<int>(l3_flags.values(col, row)), flag::kNorthUnresolved);
      // A straight line through Ortho's series against Ortho's model velocity (seasonal terms beside it).
      EXPECT_NEAR(l3_up.values(col, row) * 1000.0, ortho_up.values(col, row), kUsticaL3Velocity)
          << col << "," << row;
      worst_l3 = std::max(worst_l3, std::abs(l3_up.values(col, row) * 1000.0 - ortho_up.values(col, row)));
    }
  }
  std::printf(
      "[4-D Ustica] Ortho L3 U/E products as inputs: %d cells, worst |up velocity difference| %.3f mm/yr\n",
      compared, worst_l3);
  EXPECT_GT(compared, 500);
}

// Bad EGMS inputs are format errors naming the file; points alone need a grid.
TEST(DecomposeSeriesCli, BadEgmsInputsNameTheFile) {
  test::TempDir tmp;
  {
    std::ofstream f(tmp.file("EGMS_L2b_001_0001_IW1_VV_2020_2024_1.csv"));
    f << "pid,easting,northing,rmse_ts,20200101,20200113,20200125\n"
         "1000000001,4500000,1500000,1.0,0,1.5,2.5\n";
  }
  const auto no_los =
      test::run_cli("decompose-series --egms " + tmp.file("EGMS_L2b_001_0001_IW1_VV_2020_2024_1.csv") +
                    " --resolution 100 -o " + tmp.file("a"));
  EXPECT_EQ(no_los.exit_code, 5) << no_los.err;
  EXPECT_NE(no_los.err.find("EGMS_L2b_001_0001_IW1_VV_2020_2024_1.csv"), std::string::npos) << no_los.err;
  EXPECT_NE(no_los.err.find("los_east"), std::string::npos) << no_los.err;
  {
    std::ofstream f(tmp.file("no_dates.csv"));
    f << "pid,easting,northing,los_east,los_north,los_up,rmse_ts\n"
         "1000000001,4500000,1500000,-0.6,-0.1,0.78,1.0\n";
  }
  const auto no_dates = test::run_cli("decompose-series --egms " + tmp.file("no_dates.csv") +
                                      " --resolution 100 -o " + tmp.file("b"));
  EXPECT_EQ(no_dates.exit_code, 5) << no_dates.err;
  EXPECT_NE(no_dates.err.find("no_dates.csv"), std::string::npos) << no_dates.err;
  {
    std::ofstream f(tmp.file("good.csv"));
    f << "pid,easting,northing,los_east,los_north,los_up,rmse_ts,20200101,20200113\n"
         "1000000001,4500000,1500000,-0.6,-0.1,0.78,1.0,0,1.5\n";
  }
  const auto no_grid =
      test::run_cli("decompose-series --egms " + tmp.file("good.csv") + " -o " + tmp.file("c"));
  EXPECT_EQ(no_grid.exit_code, 3);
  EXPECT_NE(no_grid.err.find("--resolution"), std::string::npos) << no_grid.err;
  const auto nothing = test::run_cli("decompose-series -o " + tmp.file("d"));
  EXPECT_EQ(nothing.exit_code, 3) << nothing.err;
  // One point alone on a 100 m grid: one geometry resolves nothing, but the run completes.
  const auto one = test::run_cli("--summary-json -q decompose-series --egms " + tmp.file("good.csv") +
                                 " --resolution 100 --no-netcdf -o " + tmp.file("e"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(nlohmann::json::parse(one.out)["counts"]["series_pairs"].get<int>(), 1);
}

}  // namespace
}  // namespace deforma::timeseries
