// The streamed pair correlation (correlate_pair) and `deforma correlate`: outputs, streaming, determinism,
// bad inputs, and the real Landsat 8 pair over Yahtse Glacier.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <gdal_priv.h>
#include <gdal_utils.h>
#include <ogr_spatialref.h>
#include <tbb/global_control.h>

#include "correlate/matcher_count.hpp"
#include "deforma/core/command_line.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/vector.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// SEC = REF shifted by a smooth field (dx, dy) px, by bilinear sampling of a smooth texture.
GridF shifted(const GridF& ref, double dx, double dy) {
  GridF out(ref.width(), ref.height(), 0.f);
  for (int r = 0; r < ref.height(); ++r) {
    for (int c = 0; c < ref.width(); ++c) {
      const double sc = c - dx, sr = r - dy;  // sec(c + dx) = ref(c)
      const int c0 = static_cast<int>(std::floor(sc)), r0 = static_cast<int>(std::floor(sr));
      if (c0 < 0 || r0 < 0 || c0 + 1 >= ref.width() || r0 + 1 >= ref.height()) {
        out(c, r) = ref(std::clamp(c, 0, ref.width() - 1), std::clamp(r, 0, ref.height() - 1));
        continue;
      }
      const double fc = sc - c0, fr = sr - r0;
      out(c, r) = static_cast<float>((1 - fc) * (1 - fr) * ref(c0, r0) + fc * (1 - fr) * ref(c0 + 1, r0) +
                                     (1 - fc) * fr * ref(c0, r0 + 1) + fc * fr * ref(c0 + 1, r0 + 1));
    }
  }
  return out;
}

struct Result {
  io::RasterInfo info;
  std::map<std::string, GridF> bands;
  std::map<std::string, GridU8> valid;
};

Result read_result(const std::string& path) {
  Result res;
  const auto raster = io::Raster::open(path);
  res.info = raster.info();
  for (const auto& b : res.info.bands) {
    auto w = raster.read_all(b.index);
    res.bands[b.description] = std::move(w.values);
    res.valid[b.description] = std::move(w.valid);
  }
  return res;
}

CorrelateOptions default_options() {
  CorrelateOptions o;
  o.match.chip_px = 32;
  o.match.search_px = 8;
  o.step_px = 16;
  return o;
}

TEST(CorrelatePair, RecoversAShiftAndWritesTheDocumentedBands) {
  TempDir tmp;
  const GridF ref = test::make_texture(400, 300, 11);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 2.25, -1.5));
  RunContext ctx;
  const auto summary = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"),
                                      default_options(), ctx);
  const auto res = read_result(tmp.file("out.tif"));
  std::vector<std::string> names;
  for (const auto& b : res.info.bands) names.push_back(b.description);
  // The base bands, then the gradients of the affine shape (the default).
  std::vector<std::string> expected = result_band_names();
  expected.insert(expected.end(), gradient_band_names().begin(), gradient_band_names().end());
  EXPECT_EQ(names, expected);
  EXPECT_EQ(res.info.width, 25);   // nodes at 8, 24, ..., 392
  EXPECT_EQ(res.info.height, 19);  // nodes at 8, ..., 296
  EXPECT_EQ(res.info.epsg.value_or(0), 32607);
  EXPECT_DOUBLE_EQ(res.info.geotransform.c[1], 15.0 * 16);
  // Node (0, 0) is the centre of image pixel (8, 8).
  double x, y;
  res.info.geotransform.pixel_to_map(0.5, 0.5, x, y);
  EXPECT_DOUBLE_EQ(x, 500000.0 + 8.5 * 15);
  EXPECT_DOUBLE_EQ(y, 6700000.0 - 8.5 * 15);
  EXPECT_EQ(res.info.bands[0].unit, "px");
  EXPECT_EQ(res.info.bands[2].unit, "m");

  int valid = 0, interior = 0;
  for (int j = 2; j < res.info.height - 2; ++j) {
    for (int i = 2; i < res.info.width - 2; ++i) {
      ++interior;
      if (res.bands.at("flag")(i, j) != 0) continue;
      ++valid;
      EXPECT_NEAR(res.bands.at("dx_px")(i, j), 2.25, 0.05);
      EXPECT_NEAR(res.bands.at("dy_px")(i, j), -1.5, 0.05);
      // Geotransform: +x = east, +row = south.
      EXPECT_NEAR(res.bands.at("east_m")(i, j), 2.25 * 15, 0.8);
      EXPECT_NEAR(res.bands.at("north_m")(i, j), 1.5 * 15, 0.8);
      EXPECT_GT(res.bands.at("corr")(i, j), 0.9);
    }
  }
  EXPECT_GT(valid, interior * 9 / 10);
  EXPECT_EQ(summary.counts.at("nodes"), 25 * 19);
  EXPECT_EQ(summary.counts.at("valid"), std::count(res.bands.at("flag").values().begin(),
                                                     res.bands.at("flag").values().end(), 0.f));
  // Invalid nodes are nodata in the displacement bands, never garbage.
  for (std::size_t k = 0; k < res.bands.at("flag").size(); ++k) {
    if (res.bands.at("flag").data()[k] != 0) {
      EXPECT_EQ(res.valid.at("dx_px").data()[k], 0);
    }
  }
}

TEST(CorrelatePair, StreamingAndThreadCountDoNotChangeTheResult) {
  TempDir tmp;
  const GridF ref = test::make_texture(300, 500, 12);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 0.4, 1.7));
  auto opts = default_options();
  opts.step_px = 8;
  RunContext big;
  big.ram_budget_mb = 1024;
  const auto s1 = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("a.tif"), opts, big);
  RunContext small;
  small.ram_budget_mb = 20;  // forces several strips
  Summary s2;
  {
    tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
    s2 = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("b.tif"), opts, small);
  }
  EXPECT_GT(s2.details["strips"].get<int>(), s1.details["strips"].get<int>());
  const auto a = read_result(tmp.file("a.tif"));
  const auto b = read_result(tmp.file("b.tif"));
  for (const auto& name : result_band_names()) {
    ASSERT_EQ(a.bands.at(name).values(), b.bands.at(name).values()) << name;
  }
}

// The strips of a pair share the run's matchers: at most one per thread and per options set (coarse,
// fine, full-range: coarse-to-fine here), however many strips the budget cuts the grid into.
TEST(CorrelatePair, MatchersAreMadeOncePerThreadForTheWholeRun) {
  TempDir tmp;
  const GridF ref = test::make_texture(300, 600, 14);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 5.4, -3.2));
  auto opts = default_options();
  opts.match.search_px = 16;
  opts.step_px = 8;
  RunContext small;
  small.ram_budget_mb = 24;  // several strips
  const int threads = 2;
  const int levels = 3;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  const long long before = detail::matchers_made();
  const auto summary =
      correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), opts, small);
  const long long made = detail::matchers_made() - before;
  ASSERT_GE(summary.details["strips"].get<int>(), 4);
  EXPECT_GE(made, levels);
  EXPECT_LE(made, threads * levels) << summary.details["strips"].get<int>() << " strips";
  std::printf("[matchers] %d strips, %lld matchers\n", summary.details["strips"].get<int>(), made);
  EXPECT_NEAR(summary.details["median_dx_px"].get<double>(), 5.4, 0.05);
}

TEST(CorrelatePair, RotatedGeotransformGivesEastNorthThroughTheRotation) {
  TempDir tmp;
  const GridF ref = test::make_texture(200, 200, 13);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 3.0, 0.0));
  // A grid rotated by 90 degrees: +column points south, +row points west.
  for (const char* name : {"ref.tif", "sec.tif"}) {
    auto* ds = static_cast<GDALDataset*>(GDALOpen(tmp.file(name).c_str(), GA_Update));
    double gt[6] = {500000.0, 0.0, -10.0, 6700000.0, -10.0, 0.0};
    ds->SetGeoTransform(gt);
    GDALClose(ds);
  }
  RunContext ctx;
  correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), default_options(), ctx);
  const auto res = read_result(tmp.file("out.tif"));
  const int i = res.info.width / 2, j = res.info.height / 2;
  ASSERT_EQ(res.bands.at("flag")(i, j), 0);
  EXPECT_NEAR(res.bands.at("east_m")(i, j), 0.0, 0.5);
  EXPECT_NEAR(res.bands.at("north_m")(i, j), -30.0, 0.5);
}

TEST(CorrelatePair, VelocityBandsAndMaskAndRoi) {
  TempDir tmp;
  const GridF ref = test::make_texture(256, 256, 14);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 1.0, 0.0));
  GridF mask(256, 256, 0.f);
  for (int r = 0; r < 256; ++r)
    for (int c = 0; c < 128; ++c) mask(c, r) = 1.f;  // skip the western half
  test::write_test_geotiff(tmp.file("mask.tif"), mask);
  auto opts = default_options();
  opts.years_between = 0.5;
  opts.mask_path = tmp.file("mask.tif");
  opts.roi = io::Window{0, 0, 256, 128};
  opts.quicklook_path = tmp.file("q.png");
  RunContext ctx;
  const auto summary = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), opts, ctx);
  const auto res = read_result(tmp.file("out.tif"));
  EXPECT_EQ(res.info.height, 8);
  ASSERT_TRUE(res.bands.count("speed_m_per_yr"));
  EXPECT_EQ(res.info.bands[9].unit, "m/yr");
  EXPECT_EQ(res.bands.at("flag")(2, 4), static_cast<float>(NodeFlag::kMasked));
  EXPECT_EQ(res.bands.at("flag")(11, 4), 0.f);
  EXPECT_NEAR(res.bands.at("east_m_per_yr")(11, 4), 15.0 / 0.5, 1.0);
  EXPECT_GT(summary.counts.at("masked"), 0);
  EXPECT_TRUE(fs::exists(tmp.file("q.png")));
  EXPECT_GT(io::describe(tmp.file("q.png")).width, 300);
}

// A node grid wider than the quicklook's largest side (1024 nodes) goes through the grid decimated while
// streaming: the figure is drawn, and the summary statistics (from the bounded sample of valid nodes) still
// find the shift.
TEST(CorrelatePair, LargeNodeGridStillGivesAQuicklookAndTheShift) {
  TempDir tmp;
  const GridF ref = test::make_texture(1100, 48, 21);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 0.5, 0.0));
  CorrelateOptions opts;
  opts.match.chip_px = 16;
  opts.match.search_px = 3;
  opts.step_px = 1;
  opts.quicklook_path = tmp.file("q.png");
  RunContext ctx;
  const auto summary = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), opts, ctx);
  EXPECT_EQ(summary.details.at("node_grid").at("cols").get<int>(), 1100);
  EXPECT_NEAR(summary.details.at("median_dx_px").get<double>(), 0.5, 0.05);
  ASSERT_TRUE(fs::exists(tmp.file("q.png")));
  EXPECT_GT(io::describe(tmp.file("q.png")).width, 300);
}

TEST(CorrelatePair, LargeMotionIsFoundCoarseToFine) {
  TempDir tmp;
  const GridF ref = test::make_texture(512, 384, 15);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 41.3, -27.6));
  auto opts = default_options();
  opts.match.search_px = 64;
  opts.step_px = 32;
  RunContext ctx;
  const auto summary = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), opts, ctx);
  EXPECT_NEAR(summary.details["median_dx_px"].get<double>(), 41.3, 0.1);
  EXPECT_NEAR(summary.details["median_dy_px"].get<double>(), -27.6, 0.1);
}

TEST(CorrelatePair, SecondaryOnAnotherGridIsResampledWithAWarning) {
  TempDir tmp;
  const GridF ref = test::make_texture(300, 300, 16);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec0.tif"), shifted(ref, 1.5, 0.5));
  io::ensure_gdal_initialized();
  GDALDatasetH src = GDALOpen(tmp.file("sec0.tif").c_str(), GA_ReadOnly);
  const char* argv[] = {"-t_srs", "EPSG:32606", "-r", "cubic", nullptr};
  auto* wo = GDALWarpAppOptionsNew(const_cast<char**>(argv), nullptr);
  GDALClose(GDALWarp(tmp.file("sec.tif").c_str(), nullptr, 1, &src, wo, nullptr));
  GDALWarpAppOptionsFree(wo);
  GDALClose(src);
  RunContext ctx;
  const auto summary = correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"),
                                      default_options(), ctx);
  ASSERT_FALSE(summary.warnings.empty());
  EXPECT_NE(summary.warnings.front().find("resampled"), std::string::npos);
  EXPECT_NEAR(summary.details["median_dx_px"].get<double>(), 1.5, 0.15);
  EXPECT_NEAR(summary.details["median_dy_px"].get<double>(), 0.5, 0.15);
}

TEST(CorrelatePair, BadInputsAreRefusedWithoutPartialOutput) {
  TempDir tmp;
  const GridF ref = test::make_texture(128, 128, 17);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("far.tif"), ref);
  {
    auto* ds = static_cast<GDALDataset*>(GDALOpen(tmp.file("far.tif").c_str(), GA_Update));
    double gt[6] = {700000.0, 15.0, 0.0, 6700000.0, 0.0, -15.0};
    ds->SetGeoTransform(gt);
    GDALClose(ds);
  }
  RunContext ctx;
  auto expect_refusal = [&](const std::string& sec, CorrelateOptions opts, const std::string& needle) {
    try {
      correlate_pair(tmp.file("ref.tif"), sec, tmp.file("out.tif"), opts, ctx);
      FAIL() << "expected a refusal mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(tmp.file("out.tif")));
  };
  expect_refusal(tmp.file("far.tif"), default_options(), "do not overlap");
  auto big_chip = default_options();
  big_chip.match.chip_px = 256;
  expect_refusal(tmp.file("ref.tif"), big_chip, "--chip 256");
  auto bad_band = default_options();
  bad_band.sec_band = 2;
  expect_refusal(tmp.file("ref.tif"), bad_band, "--sec-band 2");
  auto bad_step = default_options();
  bad_step.step_px = 0;
  expect_refusal(tmp.file("ref.tif"), bad_step, "--step");
}

TEST(CorrelatePair, ConstantImagesAndHolesAreFlaggedNotGarbage) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("flat.tif"), GridF(128, 128, 500.f));
  RunContext ctx;
  const auto flat = correlate_pair(tmp.file("flat.tif"), tmp.file("flat.tif"), tmp.file("flat_out.tif"),
                                   default_options(), ctx);
  EXPECT_EQ(flat.counts.at("valid"), 0);
  // Nodes whose chip fits in the image are "no texture"; those at the edges are masked or outside.
  EXPECT_EQ(flat.counts.at("no_texture") + flat.counts.at("outside_overlap") + flat.counts.at("masked"),
            flat.counts.at("nodes"));
  EXPECT_GE(flat.counts.at("no_texture"), 36);  // the 6 x 6 interior nodes
  EXPECT_FALSE(flat.warnings.empty());
  // NaN and nodata holes.
  GridF ref = test::make_texture(256, 256, 18);
  GridF sec = shifted(ref, 1.0, 1.0);
  for (int r = 100; r < 160; ++r)
    for (int c = 100; c < 160; ++c) ref(c, r) = std::nanf(""), sec(c, r) = -9999.f;
  test::write_test_geotiff(tmp.file("ref.tif"), ref, "Float32", -9999.0, true);
  test::write_test_geotiff(tmp.file("sec.tif"), sec, "Float32", -9999.0, true);
  correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), default_options(), ctx);
  const auto res = read_result(tmp.file("out.tif"));
  // The node at pixel (136, 136) is in the hole.
  EXPECT_EQ(res.bands.at("flag")(8, 8), static_cast<float>(NodeFlag::kMasked));
  EXPECT_EQ(res.valid.at("dx_px")(8, 8), 0);
  for (std::size_t k = 0; k < res.bands.at("dx_px").size(); ++k) {
    if (res.valid.at("dx_px").data()[k]) {
      EXPECT_NEAR(res.bands.at("dx_px").data()[k], 1.0, 0.15);  // chips may hold up to 10 % of hole
    }
  }
}

TEST(CorrelateCli, VelocityNeedsDatesAndParsesUnits) {
  TempDir tmp;
  const GridF ref = test::make_texture(200, 200, 19);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 1.0, 0.0));
  auto r = test::run_cli("correlate " + tmp.file("ref.tif") + " " + tmp.file("sec.tif") + " -o " + tmp.file("v.tif") +
                         " --velocity");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("--dates"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("v.tif")));
  r = test::run_cli("correlate " + tmp.file("ref.tif") + " " + tmp.file("sec.tif") + " -o " + tmp.file("v.tif") +
                    " --velocity --dates 2020-01-01,2020-01-17 --search 150m");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto params = io::describe(tmp.file("v.tif")).metadata.at("DEFORMA_PARAMETERS");
  EXPECT_NE(params.find("\"search_px\":10"), std::string::npos) << params;
  r = test::run_cli("correlate " + tmp.file("ref.tif") + " " + tmp.file("sec.tif") + " -o " + tmp.file("w.tif") +
                    " --search 12parsecs");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("--search '12parsecs'"), std::string::npos) << r.err;
  r = test::run_cli("correlate " + tmp.file("ref.tif") + " " + tmp.file("sec.tif") + " -o " + tmp.file("w.tif") +
                    " --method sad");
  EXPECT_EQ(r.exit_code, 3);
}

// An approximate outline of the main trunk of Yahtse Glacier in the pixel grid of the 2016 Landsat 8 scenes,
// drawn for this test from the image (columns, rows): the fast-flowing ice between the icefall and the
// terminus, away from its margins.
const std::vector<std::pair<double, double>> kYahtseTrunkPx = {
    {770, 60}, {900, 60}, {960, 260}, {1010, 420}, {1020, 600}, {1000, 760},
    {960, 880}, {900, 880}, {900, 760}, {920, 600}, {900, 430}, {840, 280}};

TEST(RealData, YahtsePairStableRockPrecisionAndGlacierCoverage) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  TempDir tmp;
  const auto ref = (dir / "LC80630182016200LGN00_B8_yahtse.TIF").string();
  const auto sec = (dir / "LC80630182016216LGN00_B8_yahtse.TIF").string();
  CorrelateOptions opts;
  opts.match.chip_px = 32;
  opts.match.search_px = 24;
  opts.step_px = 8;
  opts.match.prefilter = Prefilter::kHighpass;
  RunContext ctx;
  const auto summary = correlate_pair(ref, sec, tmp.file("out.tif"), opts, ctx);
  const auto res = read_result(tmp.file("out.tif"));
  // Stable rock, rasterized onto the node grid.
  io::RasterInfo node_grid = res.info;
  const auto rock = io::rasterize(io::read_polygons((dir / "StEliasMtn_utm7v_rock.gmt").string(), res.info.crs_wkt),
                                  node_grid);
  std::vector<float> dx, dy;
  long rock_nodes = 0;
  for (std::size_t k = 0; k < rock.size(); ++k) {
    if (!rock.data()[k]) continue;
    ++rock_nodes;
    if (res.bands.at("flag").data()[k] != 0) continue;
    dx.push_back(res.bands.at("dx_px").data()[k]);
    dy.push_back(res.bands.at("dy_px").data()[k]);
  }
  auto median = [](std::vector<float> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return static_cast<double>(v[v.size() / 2]);
  };
  auto nmad = [&](const std::vector<float>& v) {
    const double m = median(v);
    std::vector<float> dev;
    for (float x : v) dev.push_back(std::abs(x - m));
    return 1.4826 * median(dev);
  };
  ASSERT_GT(dx.size(), 200u);
  const double nmad_x = nmad(dx), nmad_y = nmad(dy);
  std::printf("Yahtse stable rock: %zu valid of %ld nodes; bias dx %+.3f px dy %+.3f px; NMAD dx %.3f px dy %.3f px\n",
              dx.size(), rock_nodes, median(dx), median(dy), nmad_x, nmad_y);
  EXPECT_LE(nmad_x, 0.08);
  EXPECT_LE(nmad_y, 0.08);
  EXPECT_LT(std::abs(median(dx)), 0.5);
  EXPECT_LT(std::abs(median(dy)), 0.5);

  // Glacier trunk coverage.
  OGRPolygon poly;
  OGRLinearRing ring;
  for (const auto& [c, r] : kYahtseTrunkPx) {
    double x, y;
    io::describe(ref).geotransform.pixel_to_map(c, r, x, y);
    ring.addPoint(x, y);
  }
  ring.closeRings();
  poly.addRing(&ring);
  long glacier = 0, glacier_valid = 0;
  std::array<long, 7> glacier_flags{};
  for (int j = 0; j < res.info.height; ++j) {
    for (int i = 0; i < res.info.width; ++i) {
      double x, y;
      res.info.geotransform.pixel_to_map(i + 0.5, j + 0.5, x, y);
      OGRPoint p(x, y);
      if (!poly.Contains(&p)) continue;
      ++glacier;
      ++glacier_flags[static_cast<std::size_t>(res.bands.at("flag")(i, j)) % 7];
      if (res.bands.at("flag")(i, j) == 0) ++glacier_valid;
    }
  }
  ASSERT_GT(glacier, 500);
  for (int f = 1; f < 7; ++f) {
    if (glacier_flags[f]) std::printf("  glacier nodes flagged %s: %ld\n", to_string(static_cast<NodeFlag>(f)), glacier_flags[f]);
  }
  const double coverage = static_cast<double>(glacier_valid) / glacier;
  std::printf("Yahtse glacier trunk: %ld of %ld nodes valid (%.1f%%); whole scene %.1f%% valid\n", glacier_valid,
              glacier, 100 * coverage, 100 * summary.details["valid_fraction"].get<double>());
  EXPECT_GE(coverage, 0.85);
}

}  // namespace
}  // namespace deforma::correlate

namespace deforma::correlate {
namespace {

TEST(CommandLine, ShellQuotedSoThatItCanBePasted) {
  EXPECT_EQ(shell_quote("plain/path-1.tif"), "plain/path-1.tif");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("my file.tif"), "'my file.tif'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("2020*.jpg"), "'2020*.jpg'");
  const char* argv[] = {"deforma", "correlate", "a b.tif", "$HOME", "--dates", "2020-01-01,2020-01-17"};
  EXPECT_EQ(shell_quote_command_line(6, argv),
            "deforma correlate 'a b.tif' '$HOME' --dates 2020-01-01,2020-01-17");
}

TEST(CorrelateCli, PrintsAndStoresTheAcquisitionDatesAndAPastableCommand) {
  test::TempDir tmp;
  const GridF ref = test::make_texture(160, 160, 23);
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), shifted(ref, 1.0, 0.0));
  const std::string out = tmp.file("my result.tif");
  auto r = test::run_cli("correlate " + tmp.file("ref.tif") + " " + tmp.file("sec.tif") + " -o '" + out +
                         "' --velocity --dates 2020-01-01,2020-01-17");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dates 2020-01-01 -> 2020-01-17 (16 days)"), std::string::npos) << r.out;
  const auto info = io::describe(out);
  EXPECT_EQ(info.metadata.at("DEFORMA_START_DATE"), "2020-01-01");
  EXPECT_EQ(info.metadata.at("DEFORMA_END_DATE"), "2020-01-17");
  const auto params = nlohmann::json::parse(info.metadata.at("DEFORMA_PARAMETERS"));
  EXPECT_EQ(params.at("ref_date"), "2020-01-01");
  EXPECT_EQ(params.at("sec_date"), "2020-01-17");
  EXPECT_NE(info.metadata.at("DEFORMA_COMMAND").find("-o '" + out + "'"), std::string::npos)
      << info.metadata.at("DEFORMA_COMMAND");

  // Dates from the file names, without --velocity: recorded too; undated files give an undated result.
  test::write_test_geotiff(tmp.file("scene_20200101.tif"), ref);
  test::write_test_geotiff(tmp.file("scene_20200106.tif"), shifted(ref, 1.0, 0.0));
  r = test::run_cli("correlate " + tmp.file("scene_20200101.tif") + " " + tmp.file("scene_20200106.tif") +
                    " -o " + tmp.file("d.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::describe(tmp.file("d.tif")).metadata.at("DEFORMA_END_DATE"), "2020-01-06");
  r = test::run_cli("correlate " + tmp.file("ref.tif") + " " + tmp.file("sec.tif") + " -o " +
                    tmp.file("u.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::describe(tmp.file("u.tif")).metadata.count("DEFORMA_START_DATE"), 0u);

  // The filter reads the span back: --max-velocity needs no --days.
  r = test::run_cli("filter '" + out + "' -o " + tmp.file("f.tif") + " --max-velocity 1000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::describe(tmp.file("f.tif")).metadata.at("DEFORMA_START_DATE"), "2020-01-01");
}

}  // namespace
}  // namespace deforma::correlate
