// `deforma pipeline` on Sentinel-1 series: relative orbits from product names, pairs per orbit only, times
// to the second in the pair spans, and one common map grid for the whole series. Real data: the two
// Sentinel-1 EW crops of s1-seaice, plus copies of them whose GCPs are moved by a known drift.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/timeseries/image_set.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr const char* kEarly = "S1B_EW_GRDM_1SDH_20161005T101835.tif";
constexpr const char* kLate = "S1A_EW_GRDM_1SDH_20161005T142446.tif";

// A copy of `source` named `name` in `folder`, acquired at `time` (ISO, metadata time_coverage_start),
// whose GCPs are moved by (dx_m, dy_m) on the EPSG:3413 grid: every feature of the copy then lies
// (dx_m, dy_m) further along that grid's axes than in `source`, a rigid drift known to the metre.
std::string drifted_copy(const std::string& source, const fs::path& folder, const std::string& name,
                         const std::string& time, double dx_m, double dy_m) {
  GDALAllRegister();
  std::unique_ptr<GDALDataset> src(GDALDataset::Open(source.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  const std::string path = (folder / name).string();
  GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  std::unique_ptr<GDALDataset> out(
      driver->CreateCopy(path.c_str(), src.get(), FALSE, nullptr, nullptr, nullptr));
  OGRSpatialReference wgs84, polar;
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  polar.importFromEPSG(3413);
  polar.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> to_polar(OGRCreateCoordinateTransformation(&wgs84, &polar));
  std::unique_ptr<OGRCoordinateTransformation> to_wgs84(OGRCreateCoordinateTransformation(&polar, &wgs84));
  std::vector<GDAL_GCP> gcps(src->GetGCPs(), src->GetGCPs() + src->GetGCPCount());
  for (auto& g : gcps) {
    double x = g.dfGCPX, y = g.dfGCPY;
    EXPECT_TRUE(to_polar->Transform(1, &x, &y));
    x += dx_m;
    y += dy_m;
    EXPECT_TRUE(to_wgs84->Transform(1, &x, &y));
    g.dfGCPX = x;
    g.dfGCPY = y;
  }
  EXPECT_EQ(out->SetGCPs(static_cast<int>(gcps.size()), gcps.data(), &wgs84), CE_None);
  // An empty `time`: the copy keeps no time of its own (the source's is removed), only its name's date.
  out->SetMetadataItem("time_coverage_start", time.empty() ? nullptr : time.c_str());
  out->SetMetadataItem("time_coverage_end", time.empty() ? nullptr : time.c_str());
  return path;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// The valid values of the band called `name`.
std::vector<double> band_values(const std::string& path, const std::string& name) {
  const io::Raster r = io::Raster::open(path);
  for (const auto& b : r.info().bands) {
    if (b.description != name) continue;
    const auto w = r.read_all(b.index);
    std::vector<double> out;
    for (std::size_t i = 0; i < w.values.size(); ++i)
      if (w.valid.data()[i]) out.push_back(w.values.data()[i]);
    return out;
  }
  ADD_FAILURE() << path << " has no band " << name;
  return {};
}

TEST(SarSeries, RelativeOrbitFromAbsoluteOrbit) {
  // ESA's examples: S1A 018302 and S1B 007231 both fly relative orbit 30; S1A 029739 and 033764 are 23
  // repeat cycles apart, both relative orbit 92.
  EXPECT_EQ(correlate::s1_relative_orbit("S1A", 18302), 30);
  EXPECT_EQ(correlate::s1_relative_orbit("S1B", 7231), 30);
  EXPECT_EQ(correlate::s1_relative_orbit("S1A", 29739), 92);
  EXPECT_EQ(correlate::s1_relative_orbit("S1A", 33764), 92);
  EXPECT_EQ(correlate::s1_relative_orbit("S1A", 73), 1);
  EXPECT_FALSE(correlate::s1_relative_orbit("S1C", 1000));
  EXPECT_FALSE(correlate::s1_relative_orbit("S1A", 0));
  const auto p =
      correlate::inspect_product("S1A_IW_GRDH_1SDV_20170909T175748_20170909T175813_018302_01EC88_98A1.tif");
  EXPECT_EQ(p.absolute_orbit, 18302);
  EXPECT_EQ(p.relative_orbit, "30");
}

TEST(SarSeries, SameDayPairsKeepTheirHours) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  // The real pair: S1B 10:18:35.8 and S1A 14:24:46.6 the same day. Their names carry no orbit, so they are
  // one track as far as the series can tell, and they form one pair 4.1 h long.
  const auto set = timeseries::load_image_set({(dir / kEarly).string(), (dir / kLate).string()});
  ASSERT_EQ(set.size(), 2u);
  ASSERT_TRUE(set.images[0].time_s && set.images[1].time_s);
  EXPECT_EQ(set.images[0].sensor, "S1B");
  const auto pairs = timeseries::build_pair_network(set, {});
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].days(), 0);
  EXPECT_NEAR(pairs[0].span_days() * 24.0, 4.1030, 1e-3);

  // Two same-day images of one orbit are two acquisitions when their times differ, one when they do not.
  TempDir tmp;
  drifted_copy((dir / kEarly).string(), tmp.path(),
               "S1B_EW_GRDM_1SDH_20161005T101835_20161005T101935_002372_004019_0001.tif",
               "2016-10-05T10:18:35.000000", 0, 0);
  drifted_copy((dir / kEarly).string(), tmp.path(),
               "S1B_EW_GRDM_1SDH_20161005T120000_20161005T120100_002373_004020_0001.tif",
               "2016-10-05T12:00:00.000000", 0, 0);
  // Same relative orbit for both (an absolute orbit 175 later), only the time tells them apart.
  drifted_copy((dir / kEarly).string(), tmp.path(),
               "S1B_EW_GRDM_1SDH_20161005T101835_20161005T101935_002547_004019_0002.tif",
               "2016-10-05T10:18:35.000000", 0, 0);
  EXPECT_THROW(timeseries::load_image_set(
                   {tmp.file("S1B_EW_GRDM_1SDH_20161005T101835_20161005T101935_002372_004019_0001.tif"),
                    tmp.file("S1B_EW_GRDM_1SDH_20161005T101835_20161005T101935_002547_004019_0002.tif")}),
               InvalidArgument);
  const auto two = timeseries::load_image_set(
      {tmp.file("S1B_EW_GRDM_1SDH_20161005T101835_20161005T101935_002372_004019_0001.tif"),
       tmp.file("S1B_EW_GRDM_1SDH_20161005T120000_20161005T120100_002373_004020_0001.tif")});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two.images[0].orbit, "R071");  // (2372 - 27) mod 175 + 1
  EXPECT_EQ(two.images[1].orbit, "R072");
}

TEST(SarSeries, PipelineRealSingleSameDayPairVelocityOverHours) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const auto run =
      test::run_cli(fmt::format("pipeline {} {} -o {} --chip 64 --search 16 --step 32 --no-quicklooks",
                                (dir / kEarly).string(), (dir / kLate).string(), tmp.file("out")));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto pairs = timeseries::read_pair_table(tmp.file("out/pairs.csv"));
  ASSERT_EQ(pairs.size(), 1u);
  ASSERT_TRUE(pairs[0].ref_time_s && pairs[0].sec_time_s);
  EXPECT_NEAR(pairs[0].span_days() * 24.0, 4.1030, 1e-3);
  // The single pair's velocity is its displacement over 4 h 06 min 10.8 s, not over a day or zero days.
  const auto east = band_values(pairs[0].result_path, "east_m");
  const auto v_east = band_values(tmp.file("out/products/velocity.tif"), "velocity_east_m_per_yr");
  ASSERT_FALSE(east.empty());
  ASSERT_EQ(east.size(), v_east.size());
  const double years = (4 * 3600 + 6 * 60 + 10.826282) / 86400.0 / 365.25;
  EXPECT_NEAR(median(v_east) * years, median(east), 1e-3 * std::abs(median(east)));
  // About 390 m of drift in 4.1 h (docs/correlate.md).
  const auto speed = band_values(tmp.file("out/products/velocity.tif"), "velocity_magnitude_m_per_yr");
  EXPECT_GT(median(speed), 5e5);
  EXPECT_LT(median(speed), 1.2e6);
}

TEST(SarSeries, PipelinePairsPerOrbitOnOneGridWithTheKnownDrift) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const fs::path series = tmp.path() / "series";
  fs::create_directories(series);
  // Two relative orbits: S1B 002372 -> R071 (and 002547, 12 days later), S1A 013353 -> R156 (and 013528).
  // The first scene of each orbit is the real crop; the second its copy with the ice drifted by
  // (97.5, -58.5) m on the EPSG:3413 grid in the 12 days. The real scenes of the two orbits, 4.1 h apart,
  // see the ice of the sample drift ~390 m: a pair across orbits would not measure the known drift.
  constexpr double kDx = 97.5, kDy = -58.5;
  drifted_copy((dir / kEarly).string(), series,
               "S1B_EW_GRDM_1SDH_20161005T101835_20161005T101935_002372_004019_0001.tif",
               "2016-10-05T10:18:35.812311", 0, 0);
  drifted_copy((dir / kLate).string(), series,
               "S1A_EW_GRDM_1SDH_20161005T142446_20161005T142546_013353_0154C6_0001.tif",
               "2016-10-05T14:24:46.638593", 0, 0);
  drifted_copy((dir / kEarly).string(), series,
               "S1B_EW_GRDM_1SDH_20161017T101836_20161017T101936_002547_00451A_0001.tif",
               "2016-10-17T10:18:36.100000", kDx, kDy);
  drifted_copy((dir / kLate).string(), series,
               "S1A_EW_GRDM_1SDH_20161017T142447_20161017T142547_013528_015A01_0001.tif",
               "2016-10-17T14:24:47.000000", kDx, kDy);
  const auto run = test::run_cli(fmt::format(
      "pipeline {} -o {} --chip 64 --search 8 --step 32 --no-quicklooks", series.string(), tmp.file("out")));
  ASSERT_EQ(run.exit_code, 0) << run.err;

  const auto pairs = timeseries::read_pair_table(tmp.file("out/pairs.csv"));
  ASSERT_EQ(pairs.size(), 2u);
  for (const auto& p : pairs) {
    const std::string ref = fs::path(p.ref_path).filename().string();
    const std::string sec = fs::path(p.sec_path).filename().string();
    // Same platform and orbit on both sides: S1B with S1B, S1A with S1A.
    EXPECT_EQ(ref.substr(0, 3), sec.substr(0, 3)) << p.id;
    EXPECT_EQ(p.days(), 12) << p.id;
  }
  std::ifstream summary_file(tmp.file("out/pipeline.json"));
  const auto summary = nlohmann::json::parse(summary_file);
  ASSERT_TRUE(summary["details"].contains("series_grid")) << summary.dump(2);
  EXPECT_EQ(summary["details"]["series_grid"]["crs"], "EPSG:3413");

  // Both pairs on the series' one grid, with the known drift.
  const io::RasterInfo first = io::describe(pairs[0].result_path);
  for (const auto& p : pairs) {
    const io::RasterInfo info = io::describe(p.result_path);
    EXPECT_EQ(info.width, first.width);
    EXPECT_EQ(info.height, first.height);
    for (int k = 0; k < 6; ++k) EXPECT_DOUBLE_EQ(info.geotransform.c[k], first.geotransform.c[k]);
    const auto east = band_values(p.result_path, "east_m");
    const auto north = band_values(p.result_path, "north_m");
    // The grid covers the overlap's bounding box; its corners outside some footprint have no data.
    EXPECT_GT(east.size(), 0.6 * info.width * info.height) << p.id;
    EXPECT_NEAR(median(east), kDx, 3.0) << p.id;
    EXPECT_NEAR(median(north), kDy, 3.0) << p.id;
    std::cout << fmt::format("[ measured ] {}: {} valid nodes of {}, median drift ({:.2f}, {:.2f}) m\n", p.id,
                             east.size(), info.width * info.height, median(east), median(north));
  }
  // Provenance: the input kind, the series' map grid and the GCP transform, in each correlation COG's
  // metadata and in each pair's STAC Item.
  const auto& grid = summary["details"]["series_grid"];
  for (const auto& p : pairs) {
    const io::RasterInfo raw = io::describe(tmp.file("out/correlation/" + p.id + ".tif"));
    EXPECT_EQ(raw.metadata.at("DEFORMA_INPUT_KIND"), "sar");
    EXPECT_EQ(raw.metadata.at("DEFORMA_GCP_TRANSFORM"), "poly3");
    const auto map_grid = nlohmann::json::parse(raw.metadata.at("DEFORMA_MAP_GRID"));
    EXPECT_EQ(map_grid["crs"], "EPSG:3413");
    EXPECT_DOUBLE_EQ(map_grid["resolution_m"].get<double>(), grid["resolution_m"].get<double>());
    EXPECT_EQ(map_grid["origin"], grid["origin"]);
    EXPECT_EQ(map_grid["width_px"], grid["width_px"]);
    const auto parameters = nlohmann::json::parse(raw.metadata.at("DEFORMA_PARAMETERS"));
    EXPECT_EQ(parameters["input"]["polarization"], "HV");
    EXPECT_FALSE(parameters["input"]["map_grid"]["crs_wkt"].get<std::string>().empty());

    std::ifstream item_file(tmp.file("out/pair-" + p.id + "/pair-" + p.id + ".json"));
    ASSERT_TRUE(item_file) << p.id;
    const auto item = nlohmann::json::parse(item_file);
    const auto& input = item["properties"]["deforma:input"];
    EXPECT_EQ(input["input_kind"], "sar");
    EXPECT_EQ(input["gcp_transform"], "poly3");
    EXPECT_EQ(input["map_grid"]["crs"], "EPSG:3413");
    EXPECT_EQ(input["map_grid"]["origin"], grid["origin"]);
    EXPECT_DOUBLE_EQ(input["map_grid"]["resolution_m"].get<double>(), grid["resolution_m"].get<double>());
  }

  // The inversion of the two pairs: the drift over 12 days (plus a second) as a velocity in m/yr.
  const auto v_east = band_values(tmp.file("out/products/velocity.tif"), "velocity_east_m_per_yr");
  const auto v_north = band_values(tmp.file("out/products/velocity.tif"), "velocity_north_m_per_yr");
  EXPECT_NEAR(median(v_east), kDx * 365.25 / 12, 0.05 * kDx * 365.25 / 12);
  EXPECT_NEAR(median(v_north), kDy * 365.25 / 12, 0.05 * std::abs(kDy) * 365.25 / 12);
}

TEST(SarSeries, PipelineInvertsANetworkOfPassesHoursApart) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const fs::path series = tmp.path() / "series";
  fs::create_directories(series);
  // Four passes of one track (no orbit in the names) over two days, three of them the same day: copies of
  // the real crop whose ice drifts at a constant 10 m/h east and 5 m/h south. The sample has two scenes
  // only, so the series is made of copies of one of them.
  constexpr double kEastPerHour = 10.0, kNorthPerHour = -5.0;
  const std::pair<const char*, double> passes[] = {{"20161005T101835", 0.0},
                                                   {"20161005T121835", 2.0},
                                                   {"20161005T141835", 4.0},
                                                   {"20161006T021835", 16.0}};
  for (const auto& [stamp, hours] : passes) {
    const std::string s = stamp;
    const std::string time = fmt::format("{}-{}-{}T{}:{}:{}", s.substr(0, 4), s.substr(4, 2), s.substr(6, 2),
                                         s.substr(9, 2), s.substr(11, 2), s.substr(13, 2));
    drifted_copy((dir / kEarly).string(), series, "S1B_EW_GRDM_1SDH_" + s + ".tif", time,
                 kEastPerHour * hours, kNorthPerHour * hours);
  }
  const auto run = test::run_cli(
      fmt::format("pipeline {} -o {} --chip 64 --search 8 --step 32 --max-step 2 --no-quicklooks",
                  series.string(), tmp.file("out")));
  ASSERT_EQ(run.exit_code, 0) << run.err;

  // The pairs keep their spans to the second; the network is inverted on the passes' instants.
  const auto pairs = timeseries::read_pair_table(tmp.file("out/pairs.csv"));
  ASSERT_EQ(pairs.size(), 5u);
  for (const auto& p : pairs) ASSERT_TRUE(p.ref_time_s && p.sec_time_s) << p.id;
  EXPECT_NEAR(pairs.front().span_days() * 24.0, 2.0, 1e-6);
  std::ifstream summary_file(tmp.file("out/pipeline.json"));
  const auto summary = nlohmann::json::parse(summary_file);
  EXPECT_EQ(summary["counts"]["dates"], 4) << summary.dump(2);
  EXPECT_EQ(summary["details"]["epochs"], nlohmann::json({"2016-10-05T10:18:35Z", "2016-10-05T12:18:35Z",
                                                          "2016-10-05T14:18:35Z", "2016-10-06T02:18:35Z"}))
      << summary.dump(2);
  const io::RasterInfo cube = io::describe(tmp.file("out/products/timeseries_east.tif"));
  ASSERT_EQ(cube.band_count(), 4);
  EXPECT_EQ(cube.bands[1].description, "2016-10-05T12:18:35Z");

  // The velocity of the drift, in m/yr, from intervals of hours.
  const double hours_per_year = 24.0 * 365.25;
  const auto v_east = band_values(tmp.file("out/products/velocity.tif"), "velocity_east_m_per_yr");
  const auto v_north = band_values(tmp.file("out/products/velocity.tif"), "velocity_north_m_per_yr");
  ASSERT_FALSE(v_east.empty());
  EXPECT_NEAR(median(v_east), kEastPerHour * hours_per_year, 0.05 * kEastPerHour * hours_per_year);
  EXPECT_NEAR(median(v_north), kNorthPerHour * hours_per_year,
              0.05 * std::abs(kNorthPerHour) * hours_per_year);
  // The displacement at the last pass: 16 h of drift.
  const auto last_east = band_values(tmp.file("out/products/timeseries_east.tif"), "2016-10-06T02:18:35Z");
  EXPECT_NEAR(median(last_east), 16.0 * kEastPerHour, 0.05 * 16.0 * kEastPerHour);
  std::cout << fmt::format("[ measured ] median velocity ({:.0f}, {:.0f}) m/yr, expected ({:.0f}, {:.0f})\n",
                           median(v_east), median(v_north), kEastPerHour * hours_per_year,
                           kNorthPerHour * hours_per_year);
}

TEST(SarSeries, PipelineRefusesASeriesMixingTimesAndDates) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  // Two passes with their times and a third scene that says only its day: its time of day is unknown, so
  // the series has no time axis to the second and is refused, naming it, before anything is written.
  drifted_copy((dir / kEarly).string(), tmp.path(), "S1B_EW_GRDM_1SDH_20161005T101835.tif",
               "2016-10-05T10:18:35", 0, 0);
  drifted_copy((dir / kEarly).string(), tmp.path(), "S1B_EW_GRDM_1SDH_20161005T141835.tif",
               "2016-10-05T14:18:35", 40, 0);
  drifted_copy((dir / kEarly).string(), tmp.path(), "seaice_20161006.tif", "", 80, 0);
  const auto run = test::run_cli(fmt::format("pipeline {} -o {}", tmp.path().string(), tmp.file("out")));
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("seaice_20161006.tif carries no acquisition time"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(tmp.file("out")));
}

}  // namespace
}  // namespace deforma
