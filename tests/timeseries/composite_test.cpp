#include "deforma/timeseries/composite.hpp"

#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/io/raster.hpp"
#include "test_support.hpp"

namespace deforma::timeseries {
namespace {

constexpr int kW = 6, kH = 2;

// Four scenes: 2022-10-05, 10-15, 10-30 and 11-20, band B1 = 100 (k + 1), band B2 = 1000 + k, all clear
// except
//   (1,0) scene 1 cloud (9); (2,0) scene 1 cloud shadow (3) and scene 0 snow (11);
//   (3,0) scenes 0..2 cloud (8, 9, 10); (4,0) scene 0 band value 0 (no data); (5,0) scene 2 SCL 0 (no data).
struct Series {
  test::TempDir tmp;
  std::string manifest;
  Series() {
    const char* dates[4] = {"2022-10-05", "2022-10-15", "2022-10-30", "2022-11-20"};
    manifest = tmp.file("scenes.csv");
    std::ofstream csv(manifest);
    csv << "date,scl,B1,B2\n";
    for (int k = 0; k < 4; ++k) {
      GridF scl(kW, kH, 4.f), b1(kW, kH, 100.f * (k + 1)), b2(kW, kH, 1000.f + k);
      if (k == 1) scl(1, 0) = 9, scl(2, 0) = 3;
      if (k == 0) scl(2, 0) = 11, b1(4, 0) = 0;
      if (k <= 2) scl(3, 0) = static_cast<float>(8 + k);
      if (k == 2) scl(5, 0) = 0;
      const auto name = [&](const char* what) { return fmt::format("s{}_{}.tif", k, what); };
      test::write_test_geotiff(tmp.file(name("scl")), scl, "Byte");
      test::write_test_geotiff(tmp.file(name("b1")), b1, "UInt16");
      test::write_test_geotiff(tmp.file(name("b2")), b2, "UInt16");
      csv << fmt::format("{},{},{},{}\n", dates[k], name("scl"), name("b1"), name("b2"));
    }
  }
};

struct Composite {
  std::map<std::string, io::BandWindow> bands;
  io::RasterInfo info;
};
Composite read_composite(const std::string& path) {
  Composite c;
  c.info = io::describe(path);
  io::Raster r = io::Raster::open(path);
  for (const auto& b : c.info.bands) c.bands[b.description] = r.read_all(b.index);
  return c;
}

// The weighted mean of (weight, value) pairs.
double mean(std::initializer_list<std::pair<double, double>> wv) {
  double s = 0, w = 0;
  for (const auto& [wi, vi] : wv) s += wi * vi, w += wi;
  return s / w;
}

TEST(Composite, SyntheticSeriesGivesTheWeightedMeanOfClearObservations) {
  Series series;
  const std::string out = series.tmp.file("out");
  const auto r = test::run_cli(fmt::format("--summary-json -q composite {} -o {}", series.manifest, out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto js = nlohmann::json::parse(r.out);
  EXPECT_EQ(js["counts"]["composites"], 2);

  // October: centre 10-15, half window 22.5 days: weights 1 - 10/22.5, 1, 1 - 15/22.5; 11-20 is out.
  const double w0 = 1 - 10 / 22.5, w1 = 1.0, w2 = 1 - 15 / 22.5;
  const auto oct = read_composite(out + "/composite_2022-10.tif");
  EXPECT_EQ(oct.info.metadata.at("DEFORMA_CENTRE_DATE"), "2022-10-15");
  const auto& b1 = oct.bands.at("B1").values;
  const auto& b2 = oct.bands.at("B2").values;
  const auto& n = oct.bands.at("clear_count").values;
  const auto& d = oct.bands.at("date_offset_days").values;
  EXPECT_NEAR(b1(0, 0), mean({{w0, 100}, {w1, 200}, {w2, 300}}), 1e-3);
  EXPECT_NEAR(b2(0, 0), mean({{w0, 1000}, {w1, 1001}, {w2, 1002}}), 1e-3);
  EXPECT_EQ(n(0, 0), 3);
  EXPECT_NEAR(d(0, 0), mean({{w0, -10}, {w1, 0}, {w2, 15}}), 1e-4);
  EXPECT_NEAR(b1(1, 0), mean({{w0, 100}, {w2, 300}}), 1e-3);  // cloud in scene 1
  EXPECT_EQ(n(1, 0), 2);
  EXPECT_NEAR(b1(2, 0), mean({{w0, 100}, {w2, 300}}), 1e-3);  // shadow in 1; snow in 0 is clear by default
  EXPECT_EQ(n(3, 0), 0);                                      // cloudy in every October scene
  EXPECT_EQ(b1(3, 0), -9999.f);
  EXPECT_EQ(d(3, 0), -9999.f);
  EXPECT_NEAR(b1(4, 0), mean({{w1, 200}, {w2, 300}}), 1e-3);  // band value 0 in scene 0
  EXPECT_EQ(n(4, 0), 2);
  EXPECT_NEAR(b1(5, 0), mean({{w0, 100}, {w1, 200}}), 1e-3);  // SCL no data in scene 2
  EXPECT_NEAR(b1(0, 1), b1(0, 0), 1e-6);

  // November: centre 11-15: 10-30 (16 days before) and 11-20 (5 days after).
  const double v2 = 1 - 16 / 22.5, v3 = 1 - 5 / 22.5;
  const auto nov = read_composite(out + "/composite_2022-11.tif");
  EXPECT_NEAR(nov.bands.at("B1").values(0, 0), mean({{v2, 300}, {v3, 400}}), 1e-3);
  EXPECT_NEAR(nov.bands.at("B1").values(3, 0), 400, 1e-3);  // scene 2 cloudy there
  EXPECT_EQ(nov.bands.at("clear_count").values(3, 0), 1);
  EXPECT_NEAR(nov.bands.at("date_offset_days").values(3, 0), 5, 1e-4);
}

TEST(Composite, SnowMaskWindowAndMonthsAreHonoured) {
  Series series;
  const std::string out = series.tmp.file("out");
  const auto r =
      test::run_cli(fmt::format("--summary-json -q composite {} -o {} --mask-snow --window-days 25 "
                                "--months 2022-10",
                                series.manifest, out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out + "/composite_2022-11.tif"));
  // Half window 12.5 days: 10-05 (w 1 - 10/12.5) and 10-15 (w 1); 10-30 is out.
  const double w0 = 1 - 10 / 12.5;
  const auto oct = read_composite(out + "/composite_2022-10.tif");
  EXPECT_NEAR(oct.bands.at("B1").values(0, 0), mean({{w0, 100}, {1.0, 200}}), 1e-3);
  EXPECT_EQ(oct.bands.at("clear_count").values(2, 0), 0);  // snow in 0, shadow in 1
  EXPECT_EQ(oct.bands.at("B1").values(2, 0), -9999.f);
}

TEST(Composite, BadInputGivesOneLineErrors) {
  Series series;
  const auto months = test::run_cli(
      fmt::format("composite {} -o {} --months 2022-13", series.manifest, series.tmp.file("o")));
  EXPECT_EQ(months.exit_code, 3);
  EXPECT_NE(months.err.find("--months"), std::string::npos) << months.err;
  const auto none = test::run_cli(
      fmt::format("composite {} -o {} --months 2023-06", series.manifest, series.tmp.file("o")));
  EXPECT_EQ(none.exit_code, 3);
  EXPECT_NE(none.err.find("no scene"), std::string::npos) << none.err;
  // A scene on another grid.
  test::write_test_geotiff(series.tmp.file("small.tif"), GridF(3, 3, 1.f), "UInt16");
  std::ofstream(series.tmp.file("bad.csv"))
      << "date,scl,B1\n2022-10-05,s0_scl.tif,s0_b1.tif\n2022-10-06,s1_scl.tif,small.tif\n";
  const auto grid =
      test::run_cli(fmt::format("composite {} -o {}", series.tmp.file("bad.csv"), series.tmp.file("o")));
  EXPECT_EQ(grid.exit_code, 3);
  EXPECT_NE(grid.err.find("small.tif"), std::string::npos) << grid.err;
  const auto safe =
      test::run_cli(fmt::format("composite {} -o {}", series.tmp.path().string(), series.tmp.file("o")));
  EXPECT_EQ(safe.exit_code, 3) << safe.err;
  EXPECT_FALSE(std::filesystem::exists(series.tmp.file("o/composite_2022-10.tif")));
}

// Streamed: a budget that holds a few rows at a time gives the same composites as one window.
TEST(Composite, WindowsUnderASmallBudgetGiveTheSameComposite) {
  test::TempDir tmp;
  const GridF texture = test::make_texture(400, 300, 11);
  std::vector<CompositeScene> scenes;
  for (int k = 0; k < 3; ++k) {
    GridF scl(400, 300, 4.f), band(400, 300);
    for (int r = 0; r < 300; ++r) {
      for (int c = 0; c < 400; ++c) {
        band(c, r) = 1000 + 500 * texture(c, r) + 10 * k;
        if ((c / 37 + r / 23 + k) % 3 == 0) scl(c, r) = 9;  // a different cloud pattern per date
      }
    }
    CompositeScene s;
    s.date = io::Date::from_ymd(2022, 10, 5 + 10 * k);
    s.scl_path = tmp.file(fmt::format("scl{}.tif", k));
    s.band_paths = {tmp.file(fmt::format("b{}.tif", k))};
    s.label = s.scl_path;
    test::write_test_geotiff(s.scl_path, scl, "Byte");
    test::write_test_geotiff(s.band_paths[0], band, "UInt16");
    scenes.push_back(s);
  }
  struct Counting final : Progress {
    std::uint64_t total = 0;
    void start(const std::string&, std::uint64_t t) override { total = t; }
    void advance(std::uint64_t) override {}
    void finish() override {}
  };
  auto run = [&](std::size_t ram_mb, const std::string& dir) {
    CompositeOptions o;
    o.band_names = {"B"};
    o.output_dir = tmp.file(dir);
    Counting progress;
    RunContext context;
    context.ram_budget_mb = ram_mb;
    context.progress = &progress;
    composite_scenes(scenes, o, context);
    return progress.total;
  };
  EXPECT_EQ(run(1024, "whole"), 1u);
  EXPECT_GT(run(1, "strips"), 2u);
  const auto a = read_composite(tmp.file("whole/composite_2022-10.tif"));
  const auto b = read_composite(tmp.file("strips/composite_2022-10.tif"));
  for (const char* band : {"B", "clear_count", "date_offset_days"}) {
    const auto& va = a.bands.at(band).values;
    const auto& vb = b.bands.at(band).values;
    long long differ = 0;
    for (std::size_t p = 0; p < va.size(); ++p) differ += va.data()[p] != vb.data()[p];
    EXPECT_EQ(differ, 0) << band;
  }
}

// The real Sentinel-2 L2A sample: one date, one composite whose clear count is the SCL's clear pixels with
// data and whose values are that date's values there.
TEST(Composite, RealSentinel2SafeGivesOneCompositeWithItsClearCount) {
  DEFORMA_REQUIRE_DATA("s2-l2a-safe", dir);
  std::string safe;
  for (const auto& e : std::filesystem::directory_iterator(dir)) safe = e.path().string();
  test::TempDir tmp;
  const auto r = test::run_cli(
      fmt::format("--summary-json -q composite {} -o {} --resolution 60 --bands B02", safe, tmp.file("out")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto js = nlohmann::json::parse(r.out);
  ASSERT_EQ(js["details"]["months"].size(), 1u);
  EXPECT_EQ(js["details"]["months"][0]["month"], "2022-10");
  const auto c = read_composite(tmp.file("out/composite_2022-10.tif"));
  const std::string img = safe + "/GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA/R60m/";
  io::Raster scl_r = io::Raster::open(img + "T29UNU_20221005T115411_SCL_60m.jp2");
  io::Raster b02_r = io::Raster::open(img + "T29UNU_20221005T115411_B02_60m.jp2");
  const auto scl = scl_r.read_all(1), b02 = b02_r.read_all(1);
  long long clear = 0, data = 0, mismatched = 0;
  for (std::size_t p = 0; p < scl.values.size(); ++p) {
    const int cls = static_cast<int>(scl.values.data()[p]);
    const float v = b02.values.data()[p];
    const bool expected = cls != 0 && cls != 1 && cls != 3 && cls != 8 && cls != 9 && cls != 10 && v != 0;
    data += cls != 0;
    clear += expected;
    if (c.bands.at("clear_count").values.data()[p] != (expected ? 1.f : 0.f)) ++mismatched;
    if (expected && c.bands.at("B02").values.data()[p] != v) ++mismatched;
    if (expected && c.bands.at("date_offset_days").values.data()[p] != -10.f) ++mismatched;  // 10-05 vs 10-15
  }
  EXPECT_EQ(mismatched, 0);
  // The product's own cloud assessment: clouds 59.8 % and shadows 10.3 % of the valid pixels leave about 30
  // %.
  EXPECT_NEAR(static_cast<double>(clear) / data, 0.30, 0.03);
  EXPECT_NEAR(js["details"]["months"][0]["clear_fraction"].get<double>(),
              static_cast<double>(clear) / scl.values.size(), 1e-9);
}

}  // namespace
}  // namespace deforma::timeseries
