#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/processing.hpp"
#include "egms/egms_test_helpers.hpp"
#include "egms/stream.hpp"

namespace deforma::egms {
namespace {

using deforma::test::TempDir;

TEST(EgmsReference, ToAPointMakesItsSeriesZero) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string input = (dir / test::kDescending).string();
  const auto original = test::load(input);
  const std::string ref_pid = original.points.pid[1234];
  ReferenceOptions reference;
  reference.method = ReferenceMethod::kPid;
  reference.pid = ref_pid;
  RunContext context;
  const auto summary =
      run_reference(input, reference, ProductOutputs{tmp.file("ref.csv"), ""}, {}, context, {});
  EXPECT_EQ(summary.counts.at("reference_points"), 1);
  const auto out = test::load(tmp.file("ref.csv"));
  const int v = out.layout.find(column::kMeanVelocity);
  const double ref_velocity = original.points.scalar(1234, v);
  EXPECT_NEAR(summary.details["reference"]["reference_velocity_mm_per_yr"].get<double>(), ref_velocity, 0.1);
  for (std::size_t d = 0; d < out.layout.date_count(); ++d)
    EXPECT_NEAR(out.points.series_of(1234)[d], 0.0, 1e-6);
  EXPECT_NEAR(out.points.scalar(1234, v), 0.0, 1e-6);
  // Every other point moves by the reference's velocity.
  for (std::size_t p = 0; p < out.points.size(); p += 211) {
    EXPECT_NEAR(out.points.scalar(p, v), original.points.scalar(p, v) - ref_velocity, 0.2);
  }
  EXPECT_NE(out.metadata.xml.find("\"method\":\"pid\""), std::string::npos);
  EXPECT_EQ(out.metadata.level, "L2a");
  EXPECT_NE(out.metadata.xml.find(ref_pid), std::string::npos);
}

TEST(EgmsReference, AreaAndAutomaticStableArea) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  const std::string input = (dir / test::kAscending).string();
  RunContext context;
  ReferenceOptions area;
  area.method = ReferenceMethod::kArea;
  area.centre_easting_m = 4599000;
  area.centre_northing_m = 1741500;
  area.radius_m = 300;
  const auto by_area = run_reference(input, area, {}, {}, context, {});
  EXPECT_GE(by_area.counts.at("reference_points"), 10);
  EXPECT_NEAR(by_area.details["reference"]["easting_m"].get<double>(), 4599000, 300);

  ReferenceOptions automatic;
  const auto by_auto = run_reference(input, automatic, {}, {}, context, {});
  const auto& r = by_auto.details["reference"];
  EXPECT_EQ(r["method"], "auto");
  EXPECT_GE(by_auto.counts.at("reference_points"), automatic.min_points);
  // The chosen cell is stable: its velocities agree within a fraction of a mm/yr.
  EXPECT_LT(r["velocity_std_mm_per_yr"].get<double>(), 0.5);
  area.radius_m = 0.01;
  EXPECT_THROW(run_reference(input, area, {}, {}, context, {}), InvalidArgument);
}

// Adds offset + ramp (mm/yr) to velocities and series: a synthetic uncalibrated "L2a".
std::string make_l2a(const std::string& input, const std::string& path, double offset, double ramp_e_per_km,
                     double ramp_n_per_km) {
  auto product = test::load(input);
  const TimeSeriesModel model(product.layout.dates);
  const int e = product.layout.find(column::kEasting), n = product.layout.find(column::kNorthing);
  const int v = product.layout.find(column::kMeanVelocity);
  for (std::size_t p = 0; p < product.points.size(); ++p) {
    const double add = offset + ramp_e_per_km * (product.points.scalar(p, e) - 4599000) / 1000 +
                       ramp_n_per_km * (product.points.scalar(p, n) - 1741000) / 1000;
    product.points.scalar(p, v) += add;
    for (std::size_t d = 0; d < product.layout.date_count(); ++d) {
      product.points.series_of(p)[d] += static_cast<float>(add * model.times_years()[d]);
    }
  }
  test::write_csv(path, product.layout, product.points);
  return path;
}

TEST(EgmsCalibrate, RoundTripWithTheGnssVelocityColumn) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string input = (dir / test::kDescending).string();
  const std::string l2a = make_l2a(input, tmp.file("l2a.csv"), 4.0, 0.8, -0.5);
  CalibrateOptions options;  // gnss_velocity column, plane + 50 km smoothing
  RunContext context;
  run_calibrate(input, options, ProductOutputs{tmp.file("l2b_from_original.csv"), ""}, {}, context, {});
  const auto summary = run_calibrate(l2a, options, ProductOutputs{tmp.file("l2b.csv"), ""}, {}, context, {});
  std::cout << summary.report;
  const auto& cal = summary.details["calibration"];
  EXPECT_GT(std::abs(cal["residual_before"]["mean_mm_per_yr"].get<double>()), 3.0);
  EXPECT_LT(std::abs(cal["residual_after"]["mean_mm_per_yr"].get<double>()), 0.05);
  // The calibration removes what was added: the result equals the original's own calibration.
  const auto a = test::load(tmp.file("l2b.csv"));
  const auto b = test::load(tmp.file("l2b_from_original.csv"));
  const auto original = test::load(input);
  const int v = a.layout.find(column::kMeanVelocity);
  double worst = 0, worst_to_original = 0;
  for (std::size_t p = 0; p < a.points.size(); ++p) {
    worst = std::max(worst, std::abs(a.points.scalar(p, v) - b.points.scalar(p, v)));
    worst_to_original =
        std::max(worst_to_original, std::abs(a.points.scalar(p, v) - original.points.scalar(p, v)));
  }
  EXPECT_LT(worst, 0.1);
  // The original L2b is already tied to the same GNSS: re-calibrating it changes it by its own small residual
  // ramp only (well under a mm/yr over the island).
  EXPECT_LT(worst_to_original, 1.0);
  EXPECT_EQ(a.metadata.level, "L2b");
}

TEST(EgmsCalibrate, RoundTripWithSyntheticStations) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string input = (dir / test::kAscending).string();
  const auto original = test::load(input);
  const int e = original.layout.find(column::kEasting), n = original.layout.find(column::kNorthing);
  const int v = original.layout.find(column::kMeanVelocity), lu = original.layout.find(column::kLosUp);
  const int lat = original.layout.find(column::kLatitude), lon = original.layout.find(column::kLongitude);
  // Five stations on points of the island; purely vertical GNSS whose LOS projection equals the mean
  // original velocity around each station: the original is then the exact calibrated answer.
  std::ofstream csv(tmp.file("stations.csv"));
  csv << "station_id,longitude,latitude,velocity_east_mmyr,velocity_north_mmyr,velocity_up_mmyr\n";
  const double radius = 300;
  for (const std::size_t anchor : {500u, 3000u, 6000u, 9000u, 11000u}) {
    const double ae = original.points.scalar(anchor, e), an = original.points.scalar(anchor, n);
    double sum_v = 0, sum_lu = 0;
    int count = 0;
    for (std::size_t p = 0; p < original.points.size(); ++p) {
      if (std::hypot(original.points.scalar(p, e) - ae, original.points.scalar(p, n) - an) <= radius) {
        sum_v += original.points.scalar(p, v);
        sum_lu += original.points.scalar(p, lu);
        ++count;
      }
    }
    csv << fmt::format("S{},{:.9f},{:.9f},0,0,{:.6f}\n", anchor, original.points.scalar(anchor, lon),
                       original.points.scalar(anchor, lat), (sum_v / count) / (sum_lu / count));
  }
  csv.close();
  const std::string l2a = make_l2a(input, tmp.file("l2a.csv"), -2.5, -0.6, 0.9);
  CalibrateOptions options;
  options.source = GnssSource::kFile;
  options.gnss_path = tmp.file("stations.csv");
  options.station_radius_m = radius;
  options.smoothing_wavelength_m = 0;
  RunContext context;
  const auto summary = run_calibrate(l2a, options, ProductOutputs{tmp.file("l2b.zip"), ""}, {}, context, {});
  std::cout << summary.report;
  EXPECT_EQ(summary.counts.at("stations_used"), 5);
  const auto out = test::load(tmp.file("l2b.zip"));
  double worst = 0;
  for (std::size_t p = 0; p < out.points.size(); ++p) {
    worst = std::max(worst, std::abs(out.points.scalar(p, v) - original.points.scalar(p, v)));
  }
  // Station positions are rounded in lon/lat and the mean LOS differs slightly from point to point.
  EXPECT_LT(worst, 0.1);
  for (const auto& s : summary.details["calibration"]["stations"]) {
    EXPECT_LT(std::abs(s["residual_after_mm_per_yr"].get<double>()), 0.05);
  }
}

TEST(EgmsCalibrate, GnssFileWithoutStationInTheAreaIsRejected) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  DEFORMA_REQUIRE_DATA("alps-gnss", gnss_dir);
  CalibrateOptions options;
  options.source = GnssSource::kFile;
  options.gnss_path = (gnss_dir / "alps-gps-velocity.csv").string();
  RunContext context;
  try {
    run_calibrate((dir / test::kDescending).string(), options, {}, {}, context, {});
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("alps-gps-velocity.csv"), std::string::npos) << message;
    EXPECT_NE(message.find("no station inside the area"), std::string::npos) << message;
  }
  // A GNSS file without velocity columns names what is missing.
  TempDir tmp;
  std::ofstream(tmp.file("bad.csv")) << "name,lon,lat,speed\nA,1,2,3\n";
  options.gnss_path = tmp.file("bad.csv");
  try {
    GnssModel::read(options.gnss_path);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("no east velocity column"), std::string::npos) << e.what();
  }
}

TEST(EgmsCalibrate, GriddedModelInAEpndLayout) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  // A 50 km A-EPND grid around Ustica with a uniform motion: up -1.5, east 0.4, north 0.2 mm/yr.
  std::ofstream grid(tmp.file("aepnd.csv"));
  grid << "Latitude,Longitude,N,E,Up,SigmaN,SigmaE,SigmaUP,easting,northing\n";
  for (int i = -2; i <= 2; ++i) {
    for (int j = -2; j <= 2; ++j) {
      grid << fmt::format("38.7,13.2,0.2,0.4,-1.5,0.1,0.1,0.3,{},{}\n", 4600000 + 50000 * i,
                          1740000 + 50000 * j);
    }
  }
  grid.close();
  const GnssModel model = GnssModel::read(tmp.file("aepnd.csv"));
  EXPECT_EQ(model.kind, GnssKind::kGrid);
  EXPECT_DOUBLE_EQ(model.grid_spacing_m, 50000);
  CalibrateOptions options;
  options.source = GnssSource::kFile;
  options.gnss_path = tmp.file("aepnd.csv");
  options.polynomial_order = 0;
  RunContext context;
  const auto summary = run_calibrate((dir / test::kDescending).string(), options, {}, {}, context, {});
  const auto& cal = summary.details["calibration"];
  EXPECT_EQ(cal["mode"], "points");
  EXPECT_LT(std::abs(cal["residual_after"]["mean_mm_per_yr"].get<double>()), 0.05);
  EXPECT_EQ(summary.counts.at("points_without_gnss"), 0);
}

}  // namespace
}  // namespace deforma::egms

namespace deforma::egms {
namespace {

TEST(EgmsReference, InsideAPolygonFile) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  deforma::test::TempDir tmp;
  // A 400 m square in EPSG:3035 on the island, as GeoJSON with its CRS named.
  std::ofstream(tmp.file("square.geojson"))
      << R"({"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3035"}},)"
      << R"("features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":)"
      << R"([[[4598800,1741300],[4599200,1741300],[4599200,1741700],[4598800,1741700],[4598800,1741300]]]}}]})";
  ReferenceOptions reference;
  reference.method = ReferenceMethod::kPolygon;
  reference.polygon_path = tmp.file("square.geojson");
  RunContext context;
  const auto summary = run_reference((dir / test::kAscending).string(), reference, {}, {}, context, {});
  const auto& r = summary.details["reference"];
  EXPECT_GE(summary.counts.at("reference_points"), 10);
  EXPECT_GT(r["easting_m"].get<double>(), 4598800);
  EXPECT_LT(r["easting_m"].get<double>(), 4599200);
  EXPECT_GT(r["northing_m"].get<double>(), 1741300);
  EXPECT_LT(r["northing_m"].get<double>(), 1741700);
}

TEST(EgmsStreaming, ChunkSizeFollowsTheRamBudget) {
  ProductLayout layout;
  layout.dates.assign(300, 0);
  StreamOptions options;
  RunContext context;
  context.ram_budget_mb = 1024;
  EXPECT_EQ(detail::chunk_points_for(options, layout, context), options.chunk_points);
  context.ram_budget_mb = 1;
  const auto small = detail::chunk_points_for(options, layout, context);
  EXPECT_LT(small, 1000u);
  EXPECT_GE(small, 1u);
}

}  // namespace
}  // namespace deforma::egms
