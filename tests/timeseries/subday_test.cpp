// Networks of images hours apart (Sentinel-1 passes): the inversion's time axis is the acquisition instants,
// intervals are days with their fractions, and the products carry the instants.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/timeseries/invert.hpp"
#include "deforma/timeseries/products.hpp"
#include "test_support.hpp"

namespace deforma::timeseries {
namespace {

// Five passes over two days, three on the first and two on the second, at irregular times of day.
constexpr double kDayStartS = 17079.0 * 86400.0;  // 2016-10-05 00:00:00 UTC
const double kTimesS[5] = {kDayStartS + 6 * 3600 + 2 * 60 + 10, kDayStartS + 10 * 3600 + 18 * 60 + 35,
                           kDayStartS + 14 * 3600 + 24 * 60 + 46, kDayStartS + 86400 + 5 * 3600 + 40 * 60,
                           kDayStartS + 86400 + 13 * 3600 + 5 * 60 + 30};
const char* const kLabels[5] = {"2016-10-05T06:02:10Z", "2016-10-05T10:18:35Z", "2016-10-05T14:24:46Z",
                                "2016-10-06T05:40:00Z", "2016-10-06T13:05:30Z"};
// Sea ice drifting at a constant velocity: about 10 m a day east, 3.3 m a day south.
constexpr double kVelocityEast = 3650.0;    // m/yr
constexpr double kVelocityNorth = -1200.0;  // m/yr

double years_since_first(int k) {
  return (kTimesS[k] - kTimesS[0]) / 86400.0 / 365.25;
}

// Pairs of each pass with the next two: 7 pairs, 3 of them within one day.
std::vector<std::pair<int, int>> pair_indices() {
  std::vector<std::pair<int, int>> out;
  for (int i = 0; i < 5; ++i)
    for (int s = 1; s <= 2 && i + s < 5; ++s) out.emplace_back(i, i + s);
  return out;
}

TEST(SubDayNetwork, EpochTextRoundTrip) {
  const Epoch e = Epoch::at(kTimesS[1] + 0.8);
  EXPECT_EQ(e.date, io::Date::from_ymd(2016, 10, 5));
  EXPECT_EQ(e.iso(), "2016-10-05T10:18:35Z");  // truncated to the second
  const Epoch back = Epoch::parse("2016-10-05T10:18:35.8Z");
  ASSERT_TRUE(back.time_s);
  EXPECT_NEAR(*back.time_s, kTimesS[1] + 0.8, 1e-6);
  EXPECT_EQ(back.date, e.date);
  const Epoch day = Epoch::parse("2016-10-05");
  EXPECT_FALSE(day.time_s);
  EXPECT_EQ(day.iso(), "2016-10-05");
  EXPECT_DOUBLE_EQ(day.days_since_epoch(), 17079.0);
  EXPECT_NEAR(e.days_since_epoch(), 17079.0 + (10 * 3600 + 18 * 60 + 35.8) / 86400.0, 1e-9);
  EXPECT_THROW(Epoch::parse("2016-10-05T25:00:00Z"), InvalidArgument);
}

TEST(SubDayNetwork, InversionRecoversTheVelocityAndTheDisplacementAtEachInstant) {
  std::vector<Epoch> epochs;
  for (const double t : kTimesS) epochs.push_back(Epoch::at(t));
  std::vector<NetworkPair> network;
  std::vector<float> east, north;
  for (const auto& [i, j] : pair_indices()) {
    network.push_back({i, j, 1.0});
    east.push_back(static_cast<float>(kVelocityEast * (years_since_first(j) - years_since_first(i))));
    north.push_back(static_cast<float>(kVelocityNorth * (years_since_first(j) - years_since_first(i))));
  }
  const NetworkInverter inverter(epochs, network);
  ASSERT_EQ(inverter.dates().size(), 5u);  // two epochs share each day
  EXPECT_EQ(inverter.dates()[0], inverter.dates()[2]);
  InversionResult result;
  inverter.invert({1, static_cast<int>(network.size()), east.data(), north.data()}, result);
  // The data are exact (a constant velocity over instants), so the regularization costs nothing and the
  // only error is the single-precision storage: 1e-5 of the velocity, 1 mm of displacement.
  EXPECT_NEAR(result.velocity_east[0], kVelocityEast, 1e-5 * kVelocityEast);
  EXPECT_NEAR(result.velocity_north[0], kVelocityNorth, 1e-5 * std::abs(kVelocityNorth));
  for (int k = 0; k < 5; ++k) {
    EXPECT_NEAR(result.east[k], kVelocityEast * years_since_first(k), 1e-3) << kLabels[k];
    EXPECT_NEAR(result.north[k], kVelocityNorth * years_since_first(k), 1e-3) << kLabels[k];
  }
  EXPECT_EQ(result.flags[0] & kNodeBridged, 0);
  EXPECT_NEAR(result.rmse[0], 0.0, 1e-3);

  // Epochs that do not increase in time (two passes given in the wrong order) are refused, naming them.
  std::vector<Epoch> swapped = epochs;
  std::swap(swapped[1], swapped[2]);
  try {
    NetworkInverter bad(swapped, network);
    ADD_FAILURE() << "epochs out of order accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("2016-10-05T14:24:46Z then 2016-10-05T10:18:35Z"), std::string::npos)
        << e.what();
  }
}

TEST(SubDayNetwork, DatesGiveTheSameInversionAsBefore) {
  // An optical series: epochs without times are its dates, and the two constructors agree value for value.
  std::vector<io::Date> dates;
  for (int k = 0; k < 4; ++k) dates.push_back(io::Date::from_days_since_epoch(18000 + 16 * k + (k == 2)));
  std::vector<Epoch> epochs;
  for (const auto& d : dates) epochs.push_back({d, std::nullopt});
  const std::vector<NetworkPair> network = {{0, 1, 1.0}, {0, 2, 1.0}, {1, 2, 1.0}, {1, 3, 1.0}, {2, 3, 1.0}};
  const std::vector<float> east = {1.0f, 2.1f, 1.0f, 2.0f, 0.9f}, north = {0.5f, 1.0f, 0.4f, 1.1f, 0.5f};
  InversionResult a, b;
  NetworkInverter(dates, network).invert({1, 5, east.data(), north.data()}, a);
  NetworkInverter(epochs, network).invert({1, 5, east.data(), north.data()}, b);
  EXPECT_EQ(a.east, b.east);
  EXPECT_EQ(a.velocity_east, b.velocity_east);
  EXPECT_EQ(a.velocity_north_std, b.velocity_north_std);
}

// Pairs of the five passes with their times, each a small raster of pixel offsets (bands dx_px, dy_px)
// of the known drift, written to `dir`.
std::vector<Pair> write_timed_pairs(const test::TempDir& dir) {
  std::vector<Pair> pairs;
  for (const auto& [i, j] : pair_indices()) {
    Pair p;
    p.ref_time_s = kTimesS[i];
    p.sec_time_s = kTimesS[j];
    p.ref_date = Epoch::at(kTimesS[i]).date;
    p.sec_date = Epoch::at(kTimesS[j]).date;
    p.id = fmt::format("pass{}_pass{}", i, j);
    p.ref_path = fmt::format("pass{}.tif", i);
    p.sec_path = fmt::format("pass{}.tif", j);
    p.result_path = dir.file(p.id + ".tif");
    const double years = years_since_first(j) - years_since_first(i);
    GridF dx(6, 5, static_cast<float>(kVelocityEast * years));
    GridF dy(6, 5, static_cast<float>(kVelocityNorth * years));
    io::write_cog(p.result_path, {&dx, &dy}, {{"dx_px", "px", -9999.0}, {"dy_px", "px", -9999.0}},
                  io::GeoTransform{}, "", {});
    pairs.push_back(p);
  }
  return pairs;
}

TEST(SubDayNetwork, InvertCommandCarriesTheInstantsFromThePairTable) {
  test::TempDir dir;
  write_pair_table(dir.file("pairs.csv"), write_timed_pairs(dir));

  // The spans come back from the pair table's ref_time_s / sec_time_s, to the second.
  const auto pairs = read_pair_table(dir.file("pairs.csv"));
  ASSERT_EQ(pairs.size(), 7u);
  EXPECT_EQ(pairs[0].days(), 0);
  EXPECT_NEAR(pairs[0].span_days() * 24.0, (kTimesS[1] - kTimesS[0]) / 3600.0, 1e-6);  // 4 h 16 min 25 s
  std::vector<std::pair<int, int>> indices;
  const auto epochs = network_epochs(pairs, &indices);
  ASSERT_EQ(epochs.size(), 5u);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(epochs[k].iso(), kLabels[k]);
  EXPECT_EQ(indices, pair_indices());

  const auto run = test::run_cli("-q --summary-json invert " + dir.file("pairs.csv") + " -o " +
                                 dir.file("out") + " --units px --no-quicklooks");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["counts"]["dates"], 5) << run.out;  // five instants of two days
  EXPECT_EQ(summary["counts"]["bridged"], 0) << run.out;
  ASSERT_EQ(summary["details"]["dates"].size(), 5u) << summary.dump(2);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(summary["details"]["dates"][k], kLabels[k]);

  const auto velocity = io::Raster::open(dir.file("out/velocity.tif"));
  EXPECT_NEAR(velocity.read_all(1).values(3, 2), kVelocityEast, 1e-5 * kVelocityEast);
  EXPECT_NEAR(velocity.read_all(2).values(3, 2), kVelocityNorth, 1e-5 * std::abs(kVelocityNorth));
  // The series cube: one band per instant, named by it.
  const auto cube = io::Raster::open(dir.file("out/timeseries_dx.tif"));
  ASSERT_EQ(cube.info().band_count(), 5);
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(cube.info().bands[k].description, kLabels[k]);
    EXPECT_NEAR(cube.read_all(k + 1).values(1, 1), kVelocityEast * years_since_first(k), 1e-3);
  }
  // The NetCDF time axis: days since 1970-01-01 with the fraction of the day.
  GDALAllRegister();
  std::unique_ptr<GDALDataset> nc(GDALDataset::Open(
      ("NETCDF:\"" + dir.file("out/timeseries.nc") + "\":dx").c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  ASSERT_TRUE(nc);
  ASSERT_EQ(nc->GetRasterCount(), 5);
  for (int k = 0; k < 5; ++k) {
    const char* t = nc->GetRasterBand(k + 1)->GetMetadataItem("NETCDF_DIM_time");
    ASSERT_NE(t, nullptr);
    EXPECT_NEAR(std::strtod(t, nullptr), kTimesS[k] / 86400.0, 1e-6) << kLabels[k];
  }
  // The series at a node, read back with its instants.
  const auto series = read_series_at(dir.file("out"), "", 2, 2, PointKind::kNode);
  ASSERT_EQ(series.dates.size(), 5u);
  ASSERT_TRUE(series.dates[3].time_s);
  EXPECT_NEAR(*series.dates[3].time_s, kTimesS[3], 1.0);
  EXPECT_NE(series_to_csv(series).find(kLabels[4]), std::string::npos);
}

TEST(SubDayNetwork, MixedNetworkIsRefusedNamingThePair) {
  test::TempDir dir;
  auto pairs = write_timed_pairs(dir);
  pairs[3].ref_time_s.reset();
  pairs[3].sec_time_s.reset();
  try {
    network_epochs(pairs);
    ADD_FAILURE() << "a network mixing instants and dates was accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("pair pass1_pass3 (pass1.tif, pass3.tif) has no acquisition times"),
              std::string::npos)
        << e.what();
  }
  write_pair_table(dir.file("pairs.csv"), pairs);
  const auto run = test::run_cli("invert " + dir.file("pairs.csv") + " -o " + dir.file("out") +
                                 " --units px --no-quicklooks");
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("pass1_pass3"), std::string::npos) << run.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/velocity.tif")));
}

}  // namespace
}  // namespace deforma::timeseries
