// A point query on a time-series cube written by the inversion (`deforma invert`): the whole series with
// its uncertainties and the velocity, as the viewer plots them; a date selects the cube's band in tiles.
#include <gtest/gtest.h>

#include <cmath>

#include <ogr_spatialref.h>

#include "deforma/io/cog_writer.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/timeseries/products.hpp"
#include "maps/maps_fixtures.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

using json = nlohmann::json;

TEST(MapsCube, PointQueryReturnsTheSeriesSigmasAndVelocity) {
  test::TempDir dir;
  const int width = 20, height = 12, date_count = 8;
  std::vector<io::Date> dates;
  for (int k = 0; k < date_count; ++k)
    dates.push_back(
        io::Date::from_days_since_epoch(io::Date::from_ymd(2021, 3, 1).days_since_epoch() + 12 * k));
  io::GeoTransform gt;
  gt.c = {500000.0, 30.0, 0.0, 6700000.0, 0.0, -30.0};
  OGRSpatialReference srs;
  srs.importFromEPSG(32607);
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  const std::string crs = wkt;
  CPLFree(wkt);
  // Pairs of a field moving 0.5 * col m/yr east and 2 m/yr south, with a little noise for uncertainties.
  std::vector<timeseries::Pair> pairs;
  unsigned seed = 1;
  auto noise = [&seed] {
    return ((seed = seed * 1103515245u + 12345u) >> 16 & 0x7fff) / 32768.0 * 0.02 - 0.01;
  };
  for (int i = 0; i < date_count; ++i) {
    for (int s = 1; s <= 3 && i + s < date_count; ++s) {
      const double years = io::years_between(dates[i], dates[i + s]);
      GridF east(width, height), north(width, height), corr(width, height, 0.9f);
      for (int r = 0; r < height; ++r) {
        for (int c = 0; c < width; ++c) {
          east(c, r) = static_cast<float>(0.5 * c * years + noise());
          north(c, r) = static_cast<float>(-2.0 * years + noise());
        }
      }
      timeseries::Pair p;
      p.id = dates[i].compact() + "_" + dates[i + s].compact();
      p.ref_date = dates[i];
      p.sec_date = dates[i + s];
      p.ref_path = "ref.tif";
      p.sec_path = "sec.tif";
      p.result_path = dir.file(p.id + ".tif");
      io::write_cog(p.result_path, {&east, &north, &corr},
                    {{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}, {"corr", "", -9999.0}}, gt, crs,
                    {});
      pairs.push_back(p);
    }
  }
  timeseries::InvertRastersOptions options;
  options.output_dir = dir.file("out");
  options.netcdf = false;
  options.quicklooks = false;
  RunContext context;
  timeseries::invert_pair_rasters(pairs, options, context);

  const auto item =
      maps::map_item(test::raster_item("cubes", "c1", "east", dir.path() / "out" / "timeseries_east.tif"));
  // Node (10, 5): east velocity 5 m/yr.
  double lon = gt.c[0] + 10.5 * 30, lat = gt.c[3] - 5.5 * 30;
  OGRSpatialReference wgs;
  wgs.importFromEPSG(4326);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  auto* ct = OGRCreateCoordinateTransformation(&srs, &wgs);
  ASSERT_TRUE(ct->Transform(1, &lon, &lat));
  OGRCoordinateTransformation::DestroyCT(ct);
  const json r = maps::point_query(item, lon, lat);
  ASSERT_TRUE(r.contains("series")) << r.dump();
  const json& s = r["series"];
  ASSERT_EQ(s["dates"].size(), static_cast<std::size_t>(date_count));
  EXPECT_EQ(s["dates"][0], dates[0].iso());
  EXPECT_EQ(s["units"], "m");
  EXPECT_EQ(s["component"], "east");
  ASSERT_FALSE(s["values"][date_count - 1].is_null());
  EXPECT_NEAR(s["values"][date_count - 1].get<double>(), 5.0 * io::years_between(dates[0], dates.back()),
              0.05);
  ASSERT_EQ(s["sigma"].size(), static_cast<std::size_t>(date_count));
  EXPECT_FALSE(s["sigma"][3].is_null());
  ASSERT_FALSE(s["velocity"].is_null()) << s.dump();
  EXPECT_NEAR(s["velocity"].get<double>(), 5.0, 0.1);
  EXPECT_FALSE(s["velocity_sigma"].is_null());
  EXPECT_EQ(s["velocity_units"], "m/yr");
  const std::string csv = maps::point_query_csv(r);
  EXPECT_NE(csv.find("\ndate,value,sigma\n" + dates[0].iso() + ","), std::string::npos) << csv;

  // A date picks the cube's band: the last date at or before it.
  maps::StyleOptions o;
  o.datetime = dates[3].iso();
  EXPECT_EQ(maps::resolve_style(item, o).inputs[0].band, 4);
  EXPECT_EQ(maps::band_dates(item.rasters[0]).size(), static_cast<std::size_t>(date_count));
}

}  // namespace
}  // namespace deforma
