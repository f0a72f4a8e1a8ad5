#include <gtest/gtest.h>

#include <fstream>

#include "deforma/core/error.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/vector.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

using test::TempDir;

// 100 x 100 px grid, 15 m pixels, origin (500000, 6700000), EPSG:32607 (as write_test_geotiff).
RasterInfo test_grid(TempDir& tmp) {
  test::write_test_geotiff(tmp.file("grid.tif"), GridF(100, 100, 1.f));
  return describe(tmp.file("grid.tif"));
}

long count_ones(const GridU8& g) { return std::count(g.values().begin(), g.values().end(), 1); }

TEST(Polygons, GeoJsonPolygonRasterizesToItsArea) {
  TempDir tmp;
  const auto grid = test_grid(tmp);
  // A 30 x 20 px rectangle: x 500150..500600, y 6699400..6699700.
  std::ofstream(tmp.file("rect.geojson")) << R"({"type":"FeatureCollection",
    "crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::32607"}},
    "features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":
    [[[500150,6699400],[500600,6699400],[500600,6699700],[500150,6699700],[500150,6699400]]]}}]})";
  const auto polygons = read_polygons(tmp.file("rect.geojson"), grid.crs_wkt);
  EXPECT_EQ(polygons.size(), 1u);
  const auto mask = rasterize(polygons, grid);
  EXPECT_EQ(count_ones(mask), 30 * 20);
  EXPECT_EQ(mask(10, 20), 1);
  EXPECT_EQ(mask(9, 20), 0);
  // A window of the same grid sees the same pixels.
  const auto part = rasterize(polygons, grid, Window{5, 15, 10, 10});
  EXPECT_EQ(part(5, 5), mask(10, 20));
  EXPECT_EQ(count_ones(part), 5 * 5);  // cols 10..14, rows 20..24
}

TEST(Polygons, GmtClosedLinestringsAreRings) {
  TempDir tmp;
  const auto grid = test_grid(tmp);
  // GMT files often hold polygons as closed linestrings, without a CRS.
  std::ofstream(tmp.file("rings.gmt")) << "# @VGMT1.0 @GLINESTRING\n# FEATURE_DATA\n>\n"
                                          "500150 6699400\n500600 6699400\n500600 6699700\n500150 6699700\n"
                                          "500150 6699400\n>\n500000 6699000\n500100 6699100\n";
  const auto polygons = read_polygons(tmp.file("rings.gmt"), grid.crs_wkt);
  EXPECT_EQ(polygons.size(), 1u);
  EXPECT_EQ(polygons.converted_rings(), 1u);
  EXPECT_EQ(polygons.skipped_features(), 1u);  // the open line
  EXPECT_EQ(count_ones(rasterize(polygons, grid)), 30 * 20);
}

TEST(Polygons, ErrorsNameTheFile) {
  TempDir tmp;
  EXPECT_THROW(read_polygons(tmp.file("none.gpkg")), IoError);
  std::ofstream(tmp.file("bad.geojson")) << "{ not json";
  try {
    read_polygons(tmp.file("bad.geojson"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.geojson"), std::string::npos);
  }
  std::ofstream(tmp.file("points.geojson"))
      << R"({"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}]})";
  EXPECT_THROW(read_polygons(tmp.file("points.geojson")), InvalidArgument);
}

TEST(Mask, FromRasterOrPolygons) {
  TempDir tmp;
  const auto grid = test_grid(tmp);
  GridF m(100, 100, 0.f);
  for (int r = 0; r < 10; ++r)
    for (int c = 0; c < 100; ++c) m(c, r) = 1.f;
  test::write_test_geotiff(tmp.file("mask.tif"), m);
  EXPECT_EQ(count_ones(read_mask(tmp.file("mask.tif"), grid, Window{0, 0, 100, 100})), 1000);
  EXPECT_THROW(read_mask(tmp.file("nope.tif"), grid, Window{0, 0, 10, 10}), IoError);
}

TEST(RealData, YahtseRockPolygonsRasterizeOntoTheLandsatGrid) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  const auto grid = describe((dir / "LC80630182016200LGN00_B8_yahtse.TIF").string());
  const auto polygons = read_polygons((dir / "StEliasMtn_utm7v_rock.gmt").string(), grid.crs_wkt);
  EXPECT_GT(polygons.size(), 100u);
  const auto mask = rasterize(polygons, grid);
  const double fraction = static_cast<double>(count_ones(mask)) / mask.size();
  std::printf("stable-rock fraction of the Yahtse grid: %.2f%%\n", 100 * fraction);
  EXPECT_GT(fraction, 0.01);
  EXPECT_LT(fraction, 0.40);
}

}  // namespace
}  // namespace deforma::io
