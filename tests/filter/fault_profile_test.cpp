#include "deforma/filter/fault_profile.hpp"

#include <cmath>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogrsf_frmts.h>
#include <nlohmann/json.hpp>

#include "correlate/correlate_support.hpp"
#include "deforma/core/operation.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/render/image.hpp"
#include "test_support.hpp"

namespace deforma::filter {
namespace {

// Samples every 50 m over 20 x 20 km around a fault through the origin striking N60E, right-lateral slip
// growing along strike (1 m at the south-west end, 3 m at the north-east) plus 0.3 m of shortening, with
// 0.2 m noise and 2 % outliers.
FieldSamples synthetic_step(double& strike_rad) {
  strike_rad = 60.0 * M_PI / 180.0;
  const double tx = std::sin(strike_rad), ty = std::cos(strike_rad);
  const double rx = ty, ry = -tx;
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0, 0.2);
  std::uniform_real_distribution<double> uni(0, 1);
  FieldSamples s;
  for (double y = -10000; y <= 10000; y += 50) {
    for (double x = -10000; x <= 10000; x += 50) {
      const double along = x * tx + y * ty;
      const double across = x * rx + y * ry;
      const double slip = 2.0 + along / 10000.0;
      const double side = across < 0 ? 0.5 : -0.5;  // left (north-west) half moves along +t
      // Parallel: left +slip/2, right -slip/2. Perpendicular: each side 0.15 m towards the fault.
      const double par = side * slip;
      const double perp = across < 0 ? 0.15 : -0.15;
      double e = par * tx + perp * rx + 0.00002 * x;  // a gentle regional gradient the line fits absorb
      double n = par * ty + perp * ry;
      e += noise(rng);
      n += noise(rng);
      if (uni(rng) < 0.02) e += 30;
      s.x_m.push_back(x);
      s.y_m.push_back(y);
      s.east.push_back(e);
      s.north.push_back(n);
    }
  }
  return s;
}

FaultProfileOptions synthetic_options() {
  FaultProfileOptions o;
  o.spacing_m = 2000;
  o.width_m = 1000;
  o.length_m = 6000;
  o.near_fault_m = 300;
  return o;
}

TEST(FaultProfile, RecoversRightLateralSlipAndShorteningAlongStrike) {
  double strike = 0;
  const FieldSamples s = synthetic_step(strike);
  const double tx = std::sin(strike), ty = std::cos(strike);
  const std::vector<std::array<double, 2>> trace = {{-8000 * tx, -8000 * ty}, {8000 * tx, 8000 * ty}};
  const auto profiles = profile_offsets(trace, s, synthetic_options());
  ASSERT_EQ(profiles.size(), 9u);
  for (const auto& p : profiles) {
    ASSERT_EQ(p.status, "ok");
    const double along = p.distance_m - 8000;
    EXPECT_NEAR(p.parallel, 2.0 + along / 10000.0, 3 * p.sigma_parallel + 0.02) << "profile " << p.index;
    EXPECT_NEAR(p.perpendicular, 0.3, 3 * p.sigma_perpendicular + 0.02);
    EXPECT_GT(p.sigma_parallel, 0.005);
    EXPECT_LT(p.sigma_parallel, 0.1);
    EXPECT_NEAR(p.strike_deg, 60.0, 1e-6);
  }
}

TEST(FaultProfile, TheSignDoesNotDependOnWhichWayTheTraceWasDigitised) {
  double strike = 0;
  const FieldSamples s = synthetic_step(strike);
  const double tx = std::sin(strike), ty = std::cos(strike);
  const std::vector<std::array<double, 2>> reversed = {{8000 * tx, 8000 * ty}, {-8000 * tx, -8000 * ty}};
  const auto profiles = profile_offsets(reversed, s, synthetic_options());
  for (const auto& p : profiles) {
    EXPECT_GT(p.parallel, 0.5);
    EXPECT_NEAR(p.perpendicular, 0.3, 3 * p.sigma_perpendicular + 0.02);
    EXPECT_NEAR(p.strike_deg, 240.0, 1e-6);
  }
}

TEST(FaultProfile, EastOnlyGivesTheParallelOffsetAlongTheTraceAndNoPerpendicular) {
  double strike = 0;
  FieldSamples s = synthetic_step(strike);
  s.north.clear();
  const double tx = std::sin(strike), ty = std::cos(strike);
  const auto profiles =
      profile_offsets({{-8000 * tx, -8000 * ty}, {8000 * tx, 8000 * ty}}, s, synthetic_options());
  for (const auto& p : profiles) {
    EXPECT_TRUE(std::isnan(p.perpendicular));
    EXPECT_TRUE(std::isnan(p.north));
    // The east offset holds the shortening's east part too: the parallel estimate is biased by it (0.3 x
    // cos 60 / sin 60 = 0.17 m), which is why east-only results are labelled as such.
    EXPECT_NEAR(p.parallel, 2.0 + (p.distance_m - 8000) / 10000.0 + 0.3 * ty / tx, 0.1);
  }
}

TEST(FaultProfile, ProfilesWithoutDataSayWhy) {
  FieldSamples s;
  for (double x = 0; x < 3000; x += 50) {
    for (double y = -3000; y < 3000; y += 50) {
      s.x_m.push_back(x), s.y_m.push_back(y), s.east.push_back(y > 0 ? 1 : 0);
    }
  }
  FaultProfileOptions o = synthetic_options();
  const auto profiles = profile_offsets({{-6000, 0}, {3000, 0}}, s, o);
  ASSERT_GE(profiles.size(), 3u);
  EXPECT_NE(profiles.front().status.find("too few points"), std::string::npos);
  EXPECT_TRUE(std::isnan(profiles.front().parallel));
  EXPECT_EQ(profiles.back().status, "ok");
  EXPECT_NEAR(profiles.back().parallel, 1.0, 1e-6);
}

TEST(FaultProfile, OptionsOutOfRangeNameTheParameter) {
  FaultProfileOptions o;
  o.width_m = 0;
  EXPECT_THROW(
      {
        try {
          o.validate();
        } catch (const InvalidArgument& e) {
          EXPECT_NE(std::string(e.what()).find("--width"), std::string::npos);
          throw;
        }
      },
      InvalidArgument);
  o = FaultProfileOptions{};
  o.length_m = 1000;
  o.near_fault_m = 400;
  EXPECT_THROW(o.validate(), InvalidArgument);
}

// The trace of the North Anatolian Fault through Lake Sapanca, digitised from EW_Adapazari.tif itself: in
// columns of cells 0.02 deg of longitude apart, the latitude where the median east offset of the cells
// north minus that of the cells south (each over ~1.5 km) is largest, kept where both sides had data and
// smoothed by eye across the lake (30.18 .. 30.30 E) where the grid has none.
void write_sapanca_trace(const std::string& path) {
  std::ofstream f(path);
  f << R"({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "NAF Sapanca"},
"geometry": {"type": "LineString", "coordinates": [[30.06, 40.729], [30.14, 40.728], [30.20, 40.721],
[30.26, 40.716], [30.34, 40.708], [30.44, 40.699], [30.52, 40.692], [30.60, 40.694]]}}]})";
}

TEST(FaultProfile, IzmitOffsetsAcrossTheNorthAnatolianFaultAreRightLateral) {
  DEFORMA_REQUIRE_DATA("izmit-coseismic", dir);
  test::TempDir tmp;
  FaultProfileRun run;
  run.input = (dir / "EW_Adapazari.tif").string();
  run.trace = tmp.file("sapanca.geojson");
  write_sapanca_trace(run.trace);
  run.output_csv = tmp.file("offsets.csv");
  run.output_gpkg = tmp.file("profiles.gpkg");
  run.output_plot = tmp.file("offsets.png");
  run.options.spacing_m = 2000;
  run.options.width_m = 1000;
  run.options.length_m = 8000;
  run.options.near_fault_m = 400;
  RunContext context;
  const Summary summary = fault_profile(run, context);
  EXPECT_EQ(summary.details.at("components"), "east");
  const double median = summary.details.at("median_parallel").get<double>();
  std::printf("[izmit] %s", summary.report.c_str());
  std::ifstream f(run.output_csv);
  std::string line;
  std::getline(f, line);  // header
  int rows = 0, measured = 0, positive = 0, in_range = 0;
  while (std::getline(f, line)) {
    ++rows;
    std::stringstream ss(line);
    std::vector<std::string> cells;
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    ASSERT_GE(cells.size(), 16u);
    if (cells[5].empty()) continue;
    const double offset = std::stod(cells[5]);
    std::printf("[izmit] %s m along: %.2f +- %s m\n", cells[1].c_str(), offset, cells[6].c_str());
    ++measured;
    if (offset > 0) ++positive;
    if (offset > 1.0 && offset < 6.0) ++in_range;
  }
  EXPECT_EQ(rows, summary.counts.at("profiles"));
  ASSERT_GE(measured, 10);
  EXPECT_GE(positive, measured * 17 / 20);
  EXPECT_GE(in_range, measured * 3 / 4);
  EXPECT_GT(median, 2.0);
  EXPECT_LT(median, 4.5);
  EXPECT_TRUE(std::filesystem::exists(run.output_gpkg));
  const render::RgbImage plot = render::read_rgb(run.output_plot);
  EXPECT_GT(plot.width(), 100);
}

// A strike-slip step on real Landsat texture: the north half of a Yahtse crop moves east by slip/2 and the
// south half west by slip/2, the slip growing from 1 px at the west edge to 2.5 px at the east edge. The pair
// is correlated by the library's correlate_pair (its defaults, 8 px step) and profiled along the step: the
// fault-parallel offset of every profile matches the slip at its centre to 0.1 px in the median.
TEST(FaultProfile, SyntheticStrikeSlipOnLandsatTextureThroughCorrelate) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  constexpr int kWidth = 480, kHeight = 320, kFaultRow = 160;
  const GridF ref =
      test::read_crop((dir / "LC80630182016200LGN00_B8_yahtse.TIF").string(), 200, 100, kWidth, kHeight);
  auto slip_px = [](double col) { return 1.0 + 1.5 * col / kWidth; };
  const GridF sec = test::warp_by_field(ref, [&](double c, double r, double& u, double& v) {
    u = (r < kFaultRow ? 0.5 : -0.5) * slip_px(c);
    v = 0;
  });
  test::TempDir tmp;
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), sec);
  correlate::CorrelateOptions copt;
  copt.step_px = 8;
  RunContext context;
  correlate::correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("pair.tif"), copt, context);

  // The trace along the step, in the test rasters' UTM 7N coordinates (origin 500000, 6700000; 15 m cells).
  const double y = 6700000.0 - 15.0 * kFaultRow;
  {
    std::ofstream f(tmp.file("trace.geojson"));
    f << fmt::format(R"({{"type": "FeatureCollection", "crs": {{"type": "name", "properties": {{"name":
"urn:ogc:def:crs:EPSG::32607"}}}}, "features": [{{"type": "Feature", "properties": {{}}, "geometry":
{{"type": "LineString", "coordinates": [[{}, {}], [{}, {}]]}}}}]}})",
                     500000.0 + 15 * 40, y, 500000.0 + 15 * 440, y);
  }
  FaultProfileRun run;
  run.input = tmp.file("pair.tif");
  run.trace = tmp.file("trace.geojson");
  run.output_csv = tmp.file("offsets.csv");
  run.options.spacing_m = 600;
  run.options.width_m = 600;
  run.options.length_m = 3600;
  run.options.near_fault_m = 360;  // beyond half a 32 px chip
  run.options.min_points = 15;
  fault_profile(run, context);
  std::ifstream f(run.output_csv);
  std::string line;
  std::getline(f, line);  // header
  std::vector<double> errors;
  while (std::getline(f, line)) {
    std::stringstream ss(line);
    std::vector<std::string> cells;
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (cells[5].empty()) continue;
    const double col = 40 + std::stod(cells[1]) / 15.0;
    const double offset_px = std::stod(cells[5]) / 15.0;
    std::printf("[strike-slip] col %.0f: slip %.3f px, measured %.3f px\n", col, slip_px(col), offset_px);
    errors.push_back(std::abs(offset_px - slip_px(col)));
  }
  ASSERT_GE(errors.size(), 9u);
  std::sort(errors.begin(), errors.end());
  EXPECT_LT(errors[errors.size() / 2], 0.1);
}

// The command line: the real Izmit run writes its three outputs; bad inputs get one line naming the
// parameter or file and the documented exit code, and no output.
TEST(FaultProfileCli, IzmitRunAndBadInputs) {
  DEFORMA_REQUIRE_DATA("izmit-coseismic", dir);
  test::TempDir tmp;
  const std::string input = (dir / "EW_Adapazari.tif").string();
  write_sapanca_trace(tmp.file("trace.geojson"));
  const std::string common = "fault-profile " + input + " --trace " + tmp.file("trace.geojson");
  const auto ok = test::run_cli("--summary-json -q " + common + " -o " + tmp.file("o.csv") + " --gpkg " +
                                tmp.file("p.gpkg") + " --plot " + tmp.file("p.png") + " --length 8000");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const auto j = nlohmann::json::parse(ok.out);
  EXPECT_GT(j["details"]["median_parallel"].get<double>(), 2.0);
  for (const char* f : {"o.csv", "p.gpkg", "p.png"}) EXPECT_TRUE(std::filesystem::exists(tmp.file(f))) << f;

  const auto no_band = test::run_cli(common + " -o " + tmp.file("a.csv") + " --east-band 3");
  EXPECT_EQ(no_band.exit_code, 5) << no_band.err;
  EXPECT_NE(no_band.err.find("--east-band"), std::string::npos) << no_band.err;
  const auto bad_width = test::run_cli(common + " -o " + tmp.file("a.csv") + " --width 0");
  EXPECT_EQ(bad_width.exit_code, 3);
  EXPECT_NE(bad_width.err.find("--width"), std::string::npos) << bad_width.err;
  const auto bad_length =
      test::run_cli(common + " -o " + tmp.file("a.csv") + " --length 1000 --near-fault 400");
  EXPECT_EQ(bad_length.exit_code, 3);
  EXPECT_NE(bad_length.err.find("--length"), std::string::npos) << bad_length.err;

  // A trace digitised beyond the data is accepted, with a warning and profiles without data there.
  {
    std::ofstream f(tmp.file("long.geojson"));
    f << R"({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
"geometry": {"type": "LineString", "coordinates": [[29.80, 40.73], [30.14, 40.728], [30.60, 40.694]]}}]})";
  }
  const auto longer = test::run_cli("--summary-json -q fault-profile " + input + " --trace " +
                                    tmp.file("long.geojson") + " -o " + tmp.file("long.csv"));
  ASSERT_EQ(longer.exit_code, 0) << longer.err;
  const auto lj = nlohmann::json::parse(longer.out);
  EXPECT_LT(lj["counts"]["measured"].get<int>(), lj["counts"]["profiles"].get<int>());
  EXPECT_NE(lj["warnings"].dump().find("outside"), std::string::npos);

  {
    std::ofstream f(tmp.file("far.geojson"));
    f << R"({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
"geometry": {"type": "LineString", "coordinates": [[2.30, 48.85], [2.40, 48.86]]}}]})";
  }
  const auto outside = test::run_cli("fault-profile " + input + " --trace " + tmp.file("far.geojson") +
                                     " -o " + tmp.file("a.csv"));
  EXPECT_EQ(outside.exit_code, 3);
  EXPECT_NE(outside.err.find("outside"), std::string::npos) << outside.err;

  // A raster without a CRS cannot take a trace that has one.
  test::write_test_geotiff(tmp.file("nocrs.tif"), GridF(50, 50, 1.f), "Float32", -9999, false, 0);
  const auto mismatch = test::run_cli("fault-profile " + tmp.file("nocrs.tif") + " --trace " +
                                      tmp.file("trace.geojson") + " -o " + tmp.file("a.csv"));
  EXPECT_EQ(mismatch.exit_code, 3);
  EXPECT_NE(mismatch.err.find("CRS mismatch"), std::string::npos) << mismatch.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("a.csv")));
}

TEST(FaultProfile, RidgeTraceFollowsASyntheticStep) {
  // A step of 2 along a line from row 20 (left) to row 30 (right) across a 100 x 50 field with noise and
  // a few wild cells: the trace stays within 2.5 cells of it (the jump penalty lets it lag a little).
  GridF v(100, 50);
  GridU8 valid(100, 50, 1);
  std::mt19937 rng(2);
  std::normal_distribution<double> noise(0, 0.3);
  for (int r = 0; r < 50; ++r) {
    for (int c = 0; c < 100; ++c) {
      const double line = 20 + 10.0 * c / 100;
      v(c, r) =
          static_cast<float>((r < line ? 1.0 : -1.0) + noise(rng) + ((c * 7 + r * 3) % 97 == 0 ? 20 : 0));
    }
  }
  const auto trace = ridge_trace(v, valid, 10, 8);
  ASSERT_EQ(trace.size(), 10u);
  for (const auto& p : trace) EXPECT_NEAR(p[1], 20 + 10.0 * p[0] / 100, 2.5) << "at column " << p[0];
  // Transposed (a north-south fault), the other orientation is found.
  GridF t(50, 100);
  GridU8 tv(50, 100, 1);
  for (int r = 0; r < 100; ++r)
    for (int c = 0; c < 50; ++c) t(c, r) = v(r, c);
  const auto ns = ridge_trace(t, tv, 10, 8);
  ASSERT_EQ(ns.size(), 10u);
  for (const auto& p : ns) EXPECT_NEAR(p[0], 20 + 10.0 * p[1] / 100, 2.5);
}

// The automatic trace on the real Izmit offsets, searched east-west (in auto mode the NNE stripe artefacts
// of this grid, continuous where the fault is broken by Lake Sapanca, make the sharper ridge): close to the
// digitised one (median distance of its vertices from it below 1.5 km), and the offsets along it
// right-lateral with a median of 2 to 4.5 m.
TEST(FaultProfile, IzmitAutomaticTraceIsNearTheDigitisedOneAndRightLateral) {
  DEFORMA_REQUIRE_DATA("izmit-coseismic", dir);
  test::TempDir tmp;
  const std::string input = (dir / "EW_Adapazari.tif").string();
  const auto r = test::run_cli("--summary-json -q fault-profile " + input +
                               " --auto-trace --trace-direction east-west -o " + tmp.file("o.csv") +
                               " --gpkg " + tmp.file("p.gpkg") + " --length 8000 --near-fault 400");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const double median = j["details"]["median_parallel"].get<double>();
  std::printf("[izmit auto] %s\n", j["details"].dump().c_str());
  EXPECT_GT(median, 2.0);
  EXPECT_LT(median, 4.5);
  // Vertices of the automatic trace against the digitised polyline (degrees to km at 40.7 N).
  GDALAllRegister();
  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(
      GDALOpenEx(tmp.file("p.gpkg").c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
  ASSERT_TRUE(ds);
  OGRLayer* layer = ds->GetLayerByName("trace");
  ASSERT_TRUE(layer);
  std::unique_ptr<OGRFeature> f(layer->GetNextFeature());
  ASSERT_TRUE(f);
  const OGRLineString* line = f->GetGeometryRef()->toLineString();
  const std::vector<std::array<double, 2>> digitised = {{30.06, 40.729}, {30.14, 40.728}, {30.20, 40.721},
                                                        {30.26, 40.716}, {30.34, 40.708}, {30.44, 40.699},
                                                        {30.52, 40.692}, {30.60, 40.694}};
  std::vector<double> distances_km;
  for (int i = 0; i < line->getNumPoints(); ++i) {
    const double x = line->getX(i), y = line->getY(i);
    if (x < 30.06 || x > 30.60) continue;
    for (std::size_t k = 1; k < digitised.size(); ++k) {
      if (x < digitised[k - 1][0] || x > digitised[k][0]) continue;
      const double f_ = (x - digitised[k - 1][0]) / (digitised[k][0] - digitised[k - 1][0]);
      const double yd = digitised[k - 1][1] + f_ * (digitised[k][1] - digitised[k - 1][1]);
      distances_km.push_back(std::abs(y - yd) * 111.2);
      break;
    }
  }
  ASSERT_GE(distances_km.size(), 10u);
  std::sort(distances_km.begin(), distances_km.end());
  EXPECT_LT(distances_km[distances_km.size() / 2], 1.5);
  const auto both = test::run_cli("fault-profile " + input + " --auto-trace --trace " + tmp.file("o.csv") +
                                  " -o " + tmp.file("x.csv"));
  EXPECT_EQ(both.exit_code, 3);
}

}  // namespace
}  // namespace deforma::filter
