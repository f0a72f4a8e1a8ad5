// The map server's library: tile matrix sets, band expressions, tiles of the real Yahtse velocity COG
// decoded back through the colour scale, transparent nodata and empty tiles, EPSG:3035 tiles of an EGMS
// Ortho grid, legends, point queries, EGMS points as vector tiles, and the capabilities documents.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <tuple>

#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include "deforma/core/error.hpp"
#include "deforma/maps/capabilities.hpp"
#include "deforma/maps/expression.hpp"
#include "deforma/maps/points.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/maps/tms.hpp"
#include "deforma/render/colormap.hpp"
#include "maps/maps_fixtures.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

using json = nlohmann::json;

// An RGBA image decoded from PNG/WebP bytes.
struct Rgba {
  int width = 0, height = 0;
  std::vector<unsigned char> px;  // r,g,b,a
  const unsigned char* at(int c, int r) const { return &px[(static_cast<std::size_t>(r) * width + c) * 4]; }
};

Rgba decode(const std::string& bytes, const std::string& ext = "png") {
  GDALAllRegister();
  static int n = 0;
  const std::string name = "/vsimem/maps_test_" + std::to_string(n++) + "." + ext;
  VSILFILE* f = VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(bytes.data())),
                                     bytes.size(), FALSE);
  VSIFCloseL(f);
  GDALDatasetH ds = GDALOpen(name.c_str(), GA_ReadOnly);
  Rgba img;
  if (!ds) {
    ADD_FAILURE() << "not an image";
    VSIUnlink(name.c_str());
    return img;
  }
  img.width = GDALGetRasterXSize(ds);
  img.height = GDALGetRasterYSize(ds);
  EXPECT_EQ(GDALGetRasterCount(ds), 4);
  img.px.resize(static_cast<std::size_t>(img.width) * img.height * 4);
  EXPECT_EQ(GDALDatasetRasterIO(ds, GF_Read, 0, 0, img.width, img.height, img.px.data(), img.width,
                                img.height, GDT_Byte, 4, nullptr, 4, img.width * 4, 1),
            CE_None);
  GDALClose(ds);
  VSIUnlink(name.c_str());
  return img;
}

bool fully_transparent(const Rgba& img) {
  for (std::size_t i = 3; i < img.px.size(); i += 4) {
    if (img.px[i] != 0) return false;
  }
  return !img.px.empty();
}

// The tile (x, y) of `tms` at `zoom` that holds (lon, lat).
std::pair<int, int> tile_of(const maps::TileMatrixSet& tms, int zoom, double lon, double lat) {
  OGRSpatialReferenceH a = OSRNewSpatialReference(nullptr), b = OSRNewSpatialReference(nullptr);
  OSRSetFromUserInput(a, "EPSG:4326");
  OSRSetFromUserInput(b, tms.gdal_crs.c_str());
  OSRSetAxisMappingStrategy(a, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(b, OAMS_TRADITIONAL_GIS_ORDER);
  auto ct = OCTNewCoordinateTransformation(a, b);
  double x = lon, y = lat;
  OCTTransform(ct, 1, &x, &y, nullptr);
  OCTDestroyCoordinateTransformation(ct);
  OSRDestroySpatialReference(a);
  OSRDestroySpatialReference(b);
  const double span = tms.cell_size(zoom) * 256;
  return {static_cast<int>(std::floor((x - tms.origin_x) / span)),
          static_cast<int>(std::floor((tms.origin_y - y) / span))};
}

TEST(MapsTileMatrixSets, BoundsOfKnownTiles) {
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  auto b = web.tile_bounds(0, 0, 0);
  EXPECT_NEAR(b.min_x, -20037508.3427892, 1e-3);
  EXPECT_NEAR(b.max_y, 20037508.3427892, 1e-3);
  b = web.tile_bounds(1, 1, 0);  // north-east quarter
  EXPECT_NEAR(b.min_x, 0, 1e-6);
  EXPECT_NEAR(b.min_y, 0, 1e-6);
  EXPECT_NEAR(web.scale_denominator(0), 559082264.0287178, 1e-3);

  const auto& crs84 = maps::tile_matrix_set("WorldCRS84Quad");
  EXPECT_EQ(crs84.matrix_width(0), 2);
  EXPECT_EQ(crs84.matrix_height(0), 1);
  b = crs84.tile_bounds(0, 1, 0);
  EXPECT_DOUBLE_EQ(b.min_x, 0);
  EXPECT_DOUBLE_EQ(b.max_x, 180);
  EXPECT_DOUBLE_EQ(b.min_y, -90);
  EXPECT_NEAR(crs84.scale_denominator(0), 279541132.0143589, 1e-3);

  const auto& laea = maps::tile_matrix_set("EuropeanETRS89_LAEAQuad");
  EXPECT_TRUE(laea.northing_first);
  b = laea.tile_bounds(0, 0, 0);
  EXPECT_DOUBLE_EQ(b.min_x, 2000000);
  EXPECT_DOUBLE_EQ(b.max_x, 6500000);
  EXPECT_DOUBLE_EQ(b.min_y, 1000000);
  EXPECT_DOUBLE_EQ(b.max_y, 5500000);
  EXPECT_NEAR(laea.scale_denominator(0), 62779017.857142866, 1e-3);

  EXPECT_THROW(web.tile_bounds(3, 8, 0), InvalidArgument);
  EXPECT_THROW(web.tile_bounds(-1, 0, 0), InvalidArgument);
  EXPECT_THROW(maps::tile_matrix_set("GoogleMaps"), InvalidArgument);
}

TEST(MapsExpression, ArithmeticFunctionsAndNodata) {
  const auto e = maps::Expression::parse("hypot(east, north) * 2 - -1 + 2^3/4");
  ASSERT_EQ(e.variables(), (std::vector<std::string>{"east", "north"}));
  const std::vector<float> east{3, NAN, 0}, north{4, 1, 0};
  std::vector<float> out(3);
  e.evaluate({east.data(), north.data()}, 3, out.data());
  EXPECT_FLOAT_EQ(out[0], 5 * 2 + 1 + 2);
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_FLOAT_EQ(out[2], 3);
  const auto d = maps::Expression::parse("b1 / b2");
  const std::vector<float> one{1}, zero{0};
  d.evaluate({one.data(), zero.data()}, 1, out.data());
  EXPECT_TRUE(std::isnan(out[0]));  // a division by zero is nodata, not inf
  EXPECT_THROW(maps::Expression::parse("b1 +"), InvalidArgument);
  EXPECT_THROW(maps::Expression::parse("foo(b1)"), InvalidArgument);
  EXPECT_THROW(maps::Expression::parse("(b1"), InvalidArgument);
  try {
    maps::Expression::parse("b1 $ b2");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("character 4"), std::string::npos) << e.what();
  }
}

TEST(MapsStyle, ParsesAndRefusesQueryParameters) {
  const auto o = maps::parse_style({{"assets", "a,b"},
                                    {"bidx", "3"},
                                    {"rescale", "-5,5"},
                                    {"colormap", "diverging"},
                                    {"tilesize", "512"}});
  EXPECT_EQ(o.assets, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(o.band, 3);
  ASSERT_TRUE(o.rescale);
  EXPECT_EQ(o.rescale->first, -5);
  EXPECT_EQ(o.tile_size, 512);
  EXPECT_THROW(maps::parse_style({{"rescale", "5"}}), InvalidArgument);
  EXPECT_THROW(maps::parse_style({{"rescale", "5,1"}}), InvalidArgument);
  EXPECT_THROW(maps::parse_style({{"bidx", "0"}}), InvalidArgument);
  EXPECT_THROW(maps::parse_style({{"tilesize", "300"}}), InvalidArgument);
  EXPECT_THROW(maps::parse_style({{"colormap", "jet"}}), InvalidArgument);
  EXPECT_THROW(maps::parse_style({{"expression", "b1 +"}}), InvalidArgument);
  EXPECT_THROW(maps::parse_style({{"datetime", "yesterday"}}), InvalidArgument);
}

class MapsYahtse : public ::testing::Test {
 protected:
  void SetUp() override {
    cog_ = test::yahtse_velocity_cog();
    if (cog_.empty()) GTEST_SKIP() << "sample data 'yahtse-l8' not found; skipping";
    item_ = maps::map_item(test::raster_item("yahtse", "pair-2016", "velocity", cog_));
    GDALAllRegister();
    ds_ = GDALOpen(cog_.c_str(), GA_ReadOnly);
    ASSERT_NE(ds_, nullptr);
    GDALGetGeoTransform(ds_, gt_);
    const auto fp = maps::footprint_lonlat(item_);
    ASSERT_TRUE(fp);
    lon_ = (fp->min_x + fp->max_x) / 2;
    lat_ = (fp->min_y + fp->max_y) / 2;
  }
  void TearDown() override {
    if (ds_) GDALClose(ds_);
  }
  // The COG's value of `band` at map point (x, y) of `crs`; NaN for nodata or outside.
  double cog_value(int band, const std::string& crs, double x, double y, bool* near_edge = nullptr) {
    OGRSpatialReferenceH a = OSRNewSpatialReference(nullptr), b = OSRNewSpatialReference(nullptr);
    OSRSetFromUserInput(a, crs.c_str());
    OSRImportFromWkt(
        b, const_cast<char**>(std::vector<char*>{const_cast<char*>(GDALGetProjectionRef(ds_))}.data()));
    OSRSetAxisMappingStrategy(a, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(b, OAMS_TRADITIONAL_GIS_ORDER);
    auto ct = OCTNewCoordinateTransformation(a, b);
    OCTTransform(ct, 1, &x, &y, nullptr);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(a);
    OSRDestroySpatialReference(b);
    const double fc = (x - gt_[0]) / gt_[1], fr = (y - gt_[3]) / gt_[5];
    const int col = static_cast<int>(std::floor(fc));
    const int row = static_cast<int>(std::floor(fr));
    // Within a tenth of a pixel of an edge, the warper's approximate transform may pick the neighbour.
    if (near_edge) *near_edge = std::min({fc - col, col + 1 - fc, fr - row, row + 1 - fr}) < 0.1;
    if (col < 0 || row < 0 || col >= GDALGetRasterXSize(ds_) || row >= GDALGetRasterYSize(ds_)) return NAN;
    float v = 0;
    EXPECT_EQ(
        GDALRasterIO(GDALGetRasterBand(ds_, band), GF_Read, col, row, 1, 1, &v, 1, 1, GDT_Float32, 0, 0),
        CE_None);
    return v == -9999.0f ? NAN : v;
  }

  std::filesystem::path cog_;
  maps::MapItem item_;
  GDALDatasetH ds_ = nullptr;
  double gt_[6]{};
  double lon_ = 0, lat_ = 0;
};

TEST_F(MapsYahtse, TileDecodesBackToTheCogValues) {
  const auto& tms = maps::tile_matrix_set("WebMercatorQuad");
  const int zoom = 12;
  const auto [x, y] = tile_of(tms, zoom, lon_, lat_);
  maps::StyleOptions options =
      maps::parse_style({{"bidx", "10"}, {"rescale", "0,3000"}, {"colormap", "speed"}});
  const Rgba img = decode(maps::render_tile(item_, options, tms, zoom, x, y));
  ASSERT_EQ(img.width, 256);
  ASSERT_EQ(img.height, 256);
  // Invert the colour map: the value whose colour is nearest each pixel's.
  const auto& map = render::Colormap::sequential();
  const double step = 3000.0 / 255;
  const auto b = tms.tile_bounds(zoom, x, y);
  int compared = 0, matched = 0, transparent_nodata = 0, nodata = 0;
  for (int r = 0; r < 256; r += 3) {
    for (int c = 0; c < 256; c += 3) {
      const double mx = b.min_x + (c + 0.5) * b.width() / 256, my = b.max_y - (r + 0.5) * b.height() / 256;
      bool near_edge = false;
      const double truth = cog_value(10, "EPSG:3857", mx, my, &near_edge);
      const unsigned char* p = img.at(c, r);
      if (near_edge) continue;
      if (std::isnan(truth)) {
        ++nodata;
        transparent_nodata += p[3] == 0;
        continue;
      }
      ++compared;
      if (p[3] != 255) continue;
      // Neighbouring entries of the 256-colour table may share a colour: a colour stands for the range
      // of values of all the entries that have it.
      int lo = 256, hi = -1, best_d = 1 << 30;
      for (int i = 0; i < 256; ++i) {
        const auto col = map.at(i / 255.0);
        const int d = (col.r - p[0]) * (col.r - p[0]) + (col.g - p[1]) * (col.g - p[1]) +
                      (col.b - p[2]) * (col.b - p[2]);
        if (d < best_d)
          best_d = d, lo = hi = i;
        else if (d == best_d)
          hi = i;
      }
      const double expected = std::clamp(truth, 0.0, 3000.0);
      matched += expected >= (lo - 1) * step && expected <= (hi + 1) * step;
    }
  }
  ASSERT_GT(compared, 1000);
  EXPECT_GE(matched, 0.995 * compared) << matched << " of " << compared;
  ASSERT_GT(nodata, 10);
  EXPECT_GE(transparent_nodata, 0.98 * nodata) << transparent_nodata << " of " << nodata;
}

TEST_F(MapsYahtse, TilesOutsideTheDataAndAcrossTheAntimeridianAreEmpty) {
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  const maps::StyleOptions options = maps::parse_style({{"bidx", "10"}});
  // Same latitude, the other side of the world; then both edge columns of the matrix (the antimeridian).
  auto [x, y] = tile_of(web, 10, lon_ + 180, lat_);
  EXPECT_TRUE(fully_transparent(decode(maps::render_tile(item_, options, web, 10, x, y))));
  auto [x0, y0] = tile_of(web, 3, lon_, lat_);
  const auto [x5, y5] = tile_of(web, 5, lon_, lat_);
  ASSERT_GT(x5, 0);  // the data are 20 degrees east of the antimeridian
  EXPECT_TRUE(fully_transparent(decode(maps::render_tile(item_, options, web, 5, 0, y5))));
  EXPECT_TRUE(fully_transparent(decode(maps::render_tile(item_, options, web, 5, 31, y5))));
  const auto& crs84 = maps::tile_matrix_set("WorldCRS84Quad");
  EXPECT_TRUE(fully_transparent(decode(maps::render_tile(item_, options, crs84, 2, 7, 0))));
  // The data's own tile at zoom 3 is not empty, in every set.
  EXPECT_FALSE(fully_transparent(decode(maps::render_tile(item_, options, web, 3, x0, y0))));
  const auto [cx, cy] = tile_of(crs84, 6, lon_, lat_);
  EXPECT_FALSE(fully_transparent(decode(maps::render_tile(item_, options, crs84, 6, cx, cy))));
  // 512 px tiles and WebP.
  maps::StyleOptions big = options;
  big.tile_size = 512;
  big.format = "webp";
  const Rgba w = decode(maps::render_tile(item_, big, web, 3, x0, y0), "webp");
  EXPECT_EQ(w.width, 512);
}

TEST_F(MapsYahtse, ExpressionSpeedEqualsTheSpeedBand) {
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  const auto [x, y] = tile_of(web, 11, lon_, lat_);
  const auto b = web.tile_bounds(11, x, y);
  const auto speed = maps::render_values(
      item_, maps::resolve_style(item_, maps::parse_style({{"bidx", "10"}})), web.gdal_crs, b, 256, 256);
  const auto style =
      maps::resolve_style(item_, maps::parse_style({{"expression", "hypot(east_m_per_yr, b9)"}}));
  EXPECT_EQ(style.units, "m/yr");
  EXPECT_EQ(style.colormap, "sequential");
  const auto derived = maps::render_values(item_, style, web.gdal_crs, b, 256, 256);
  int valid = 0;
  for (std::size_t i = 0; i < speed.size(); ++i) {
    if (!std::isfinite(speed.data()[i])) continue;
    ++valid;
    ASSERT_NEAR(derived.data()[i], speed.data()[i], 1e-3 * std::max(1.f, speed.data()[i]));
  }
  EXPECT_GT(valid, 1000);
  EXPECT_THROW(maps::resolve_style(item_, maps::parse_style({{"expression", "hypot(nothing, b9)"}})),
               InvalidArgument);
  // 18 bands: the base, velocity, gradient and strain-rate bands of `correlate --velocity` (affine shape).
  EXPECT_THROW(maps::resolve_style(item_, maps::parse_style({{"bidx", "19"}})), InvalidArgument);
  EXPECT_THROW(maps::resolve_style(item_, maps::parse_style({{"assets", "nope"}})), InvalidArgument);
}

TEST_F(MapsYahtse, LegendsAndDefaultScales) {
  // Without rescale: the east velocity is signed, so a diverging scale symmetric about zero.
  const auto east = maps::resolve_style(item_, maps::parse_style({{"bidx", "8"}}));
  EXPECT_EQ(east.colormap, "diverging");
  EXPECT_DOUBLE_EQ(east.scale.min_value, -east.scale.max_value);
  const auto style = maps::resolve_style(item_, maps::parse_style({{"bidx", "10"}, {"rescale", "0,4000"}}));
  const json legend = maps::legend_json(style);
  EXPECT_EQ(legend["title"], "speed_m_per_yr");
  EXPECT_EQ(legend["units"], "m/yr");
  EXPECT_EQ(legend["min"], 0.0);
  EXPECT_EQ(legend["max"], 4000.0);
  EXPECT_EQ(legend["colormap"], "sequential");
  ASSERT_EQ(legend["stops"].size(), 11u);
  EXPECT_EQ(legend["stops"][10]["value"], 4000.0);
  const auto first = render::Colormap::sequential().at(0);
  EXPECT_EQ(legend["stops"][0]["color"], fmt::format("#{:02x}{:02x}{:02x}", first.r, first.g, first.b));
  const std::string png = maps::legend_png(style);
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

TEST_F(MapsYahtse, PointQueryReadsEveryBand) {
  // The centre of pixel (100, 60), in lon/lat.
  const double x = gt_[0] + 100.5 * gt_[1], y = gt_[3] + 60.5 * gt_[5];
  OGRSpatialReferenceH utm = OSRNewSpatialReference(nullptr), wgs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(utm, 32607);
  OSRImportFromEPSG(wgs, 4326);
  OSRSetAxisMappingStrategy(utm, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(wgs, OAMS_TRADITIONAL_GIS_ORDER);
  auto ct = OCTNewCoordinateTransformation(utm, wgs);
  double lon = x, lat = y;
  OCTTransform(ct, 1, &lon, &lat, nullptr);
  OCTDestroyCoordinateTransformation(ct);
  OSRDestroySpatialReference(utm);
  OSRDestroySpatialReference(wgs);
  const json r = maps::point_query(item_, lon, lat);
  // The base, velocity, gradient and strain-rate bands of `correlate --velocity` (affine shape).
  ASSERT_EQ(r["values"].size(), 18u);
  EXPECT_EQ(r["values"][17]["name"], "effective_strain_rate");
  EXPECT_EQ(r["values"][9]["name"], "speed_m_per_yr");
  EXPECT_EQ(r["values"][9]["units"], "m/yr");
  EXPECT_EQ(r["values"][9]["asset"], "velocity");
  const double truth = cog_value(10, "EPSG:32607", x, y);
  if (std::isnan(truth))
    EXPECT_TRUE(r["values"][9]["value"].is_null());
  else
    EXPECT_NEAR(r["values"][9]["value"].get<double>(), truth, 1e-3);
  EXPECT_FALSE(r.contains("series"));
  const std::string csv = maps::point_query_csv(r);
  EXPECT_EQ(csv.rfind("asset,band,name,units,value\n", 0), 0u);
  EXPECT_NE(csv.find("velocity,10,speed_m_per_yr,m/yr,"), std::string::npos);
  // Outside the data: nulls, not an error; not a coordinate: an error.
  const json far = maps::point_query(item_, 10, 45);
  EXPECT_TRUE(far["values"][0]["value"].is_null());
  EXPECT_THROW(maps::point_query(item_, 200, 45), InvalidArgument);
}

TEST_F(MapsYahtse, MosaicPutsTheMostRecentOnTop) {
  // Two items over the same place: the later one's values win, or the earlier one's at an earlier date.
  const auto later =
      maps::map_item(test::raster_item("yahtse", "later", "velocity", cog_, "2017-01-01T00:00:00Z"));
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  const auto [x, y] = tile_of(web, 11, lon_, lat_);
  auto options = maps::parse_style({{"bidx", "10"}, {"rescale", "0,3000"}});
  // Same file, so same pixels: what differs is that a date before both yields an empty tile.
  EXPECT_FALSE(fully_transparent(decode(maps::render_mosaic({item_, later}, options, web, 11, x, y))));
  options.datetime = "2016-01-01";
  EXPECT_TRUE(fully_transparent(decode(maps::render_mosaic({item_, later}, options, web, 11, x, y))));
  options.datetime = "2016-08-03";
  EXPECT_FALSE(fully_transparent(decode(maps::render_mosaic({item_, later}, options, web, 11, x, y))));
}

TEST(MapsEgms, OrthoTilesInEtrs89Laea) {
  const auto ortho = test::ustica_ortho_up();
  if (ortho.empty()) GTEST_SKIP() << "sample data 'egms-ustica' not found; skipping";
  const auto item = maps::map_item(test::raster_item("egms", "ustica-ortho-u", "vertical", ortho));
  const auto& laea = maps::tile_matrix_set("EuropeanETRS89_LAEAQuad");
  // The grid's centre, in EPSG:3035 tile coordinates directly.
  GDALAllRegister();
  GDALDatasetH ds = GDALOpen(ortho.c_str(), GA_ReadOnly);
  ASSERT_NE(ds, nullptr);
  double gt[6];
  GDALGetGeoTransform(ds, gt);
  const double e = gt[0] + GDALGetRasterXSize(ds) / 2.0 * gt[1],
               n = gt[3] + GDALGetRasterYSize(ds) / 2.0 * gt[5];
  const int zoom = 9;
  const double span = laea.cell_size(zoom) * 256;
  const int x = static_cast<int>((e - laea.origin_x) / span),
            y = static_cast<int>((laea.origin_y - n) / span);
  const auto style = maps::resolve_style(item, {});
  EXPECT_EQ(style.units, "mm/yr");
  const auto b = laea.tile_bounds(zoom, x, y);
  const auto values = maps::render_values(item, style, laea.gdal_crs, b, 256, 256);
  // Tile pixels and grid pixels share the CRS: compare directly.
  int compared = 0;
  for (int r = 0; r < 256; r += 4) {
    for (int c = 0; c < 256; c += 4) {
      const double mx = b.min_x + (c + 0.5) * b.width() / 256, my = b.max_y - (r + 0.5) * b.height() / 256;
      const int col = static_cast<int>(std::floor((mx - gt[0]) / gt[1]));
      const int row = static_cast<int>(std::floor((my - gt[3]) / gt[5]));
      if (col < 0 || row < 0 || col >= GDALGetRasterXSize(ds) || row >= GDALGetRasterYSize(ds)) {
        EXPECT_TRUE(std::isnan(values(c, r)));
        continue;
      }
      float v = 0;
      ASSERT_EQ(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Read, col, row, 1, 1, &v, 1, 1, GDT_Float32, 0, 0),
                CE_None);
      if (v == -9999.0f) {
        EXPECT_TRUE(std::isnan(values(c, r)));
      } else {
        EXPECT_NEAR(values(c, r), v, 1e-4);
        ++compared;
      }
    }
  }
  GDALClose(ds);
  EXPECT_GT(compared, 20);
  EXPECT_FALSE(fully_transparent(decode(maps::render_tile(item, {}, laea, zoom, x, y))));
}

TEST(MapsEgms, PointsAsVectorTilesAndSeries) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  const std::string product = (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string();
  std::size_t count = 0;
  const auto extent = maps::points_extent(product, &count);
  ASSERT_GT(count, 100u);
  const double lon = (extent.min_x + extent.max_x) / 2, lat = (extent.min_y + extent.max_y) / 2;
  // Read a tile back with GDAL's MVT reader: one layer 'points'; its number of features and field names.
  auto read_back = [](const std::string& tile, const std::string& id) {
    std::pair<long long, std::vector<std::string>> out{-1, {}};
    const std::string name = "/vsimem/maps_test_tile_" + id + ".pbf";
    VSIFCloseL(VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(tile.data())),
                                    tile.size(), FALSE));
    GDALDatasetH ds = GDALOpenEx(("MVT:" + name).c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr);
    EXPECT_NE(ds, nullptr) << id;
    OGRLayerH layer = ds ? GDALDatasetGetLayerByName(ds, "points") : nullptr;
    EXPECT_NE(layer, nullptr) << id;
    if (layer) {
      out.first = OGR_L_GetFeatureCount(layer, TRUE);
      OGRFeatureDefnH defn = OGR_L_GetLayerDefn(layer);
      for (int i = 0; i < OGR_FD_GetFieldCount(defn); ++i)
        out.second.push_back(OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, i)));
    }
    if (ds) GDALClose(ds);
    VSIUnlink(name.c_str());
    return out;
  };
  auto has = [](const std::vector<std::string>& fields, const char* name) {
    return std::find(fields.begin(), fields.end(), name) != fields.end();
  };
  for (const char* id : {"WebMercatorQuad", "EuropeanETRS89_LAEAQuad"}) {
    const auto& tms = maps::tile_matrix_set(id);
    // Zoom 8: the whole burst (more points than a tile's budget) in one tile, aggregated into cells.
    auto [x, y] = tile_of(tms, 8, lon, lat);
    maps::PointsTileInfo info;
    std::string tile = maps::points_tile(product, tms, 8, x, y, &info);
    ASSERT_FALSE(tile.empty()) << id;
    ASSERT_GT(count, maps::kPointsTileBudget);
    EXPECT_TRUE(info.aggregated) << id;
    EXPECT_LE(info.features, maps::kPointsTileBudget) << id;
    auto [features, fields] = read_back(tile, id);
    EXPECT_EQ(features, static_cast<long long>(info.features)) << id;
    EXPECT_TRUE(has(fields, "count") && has(fields, "velocity_mm_per_yr") && has(fields, "aggregated")) << id;
    EXPECT_FALSE(has(fields, "pid")) << id;
    // Closer in, the first zoom whose tile is under the budget: one feature per point, with pid and velocity.
    int zoom = 9;
    for (; zoom <= 16; ++zoom) {
      std::tie(x, y) = tile_of(tms, zoom, lon, lat);
      tile = maps::points_tile(product, tms, zoom, x, y, &info);
      if (!info.aggregated) break;
    }
    ASSERT_LE(zoom, 16) << id;
    ASSERT_FALSE(tile.empty()) << id << " zoom " << zoom;
    std::tie(features, fields) = read_back(tile, id);
    EXPECT_GT(features, 10) << id << " zoom " << zoom;
    EXPECT_EQ(features, static_cast<long long>(info.points)) << id << " zoom " << zoom;
    EXPECT_TRUE(has(fields, "pid") && has(fields, "velocity_mm_per_yr")) << id;
    EXPECT_FALSE(has(fields, "count")) << id;
  }
  // Far from the product: no points, an empty tile.
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  EXPECT_TRUE(maps::points_tile(product, web, 8, 0, 0).empty());
  // A point's series by pid, then by position.
  const json features =
      maps::point_features(product, maps::Bounds{lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01}, 5, 0);
  ASSERT_GT(features["numberMatched"].get<int>(), 0);
  ASSERT_GE(features["features"].size(), 1u);
  EXPECT_LE(features["features"].size(), 5u);
  const std::string pid = features["features"][0]["properties"]["pid"];
  const auto s = maps::point_series(product, pid);
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)["pid"], pid);
  EXPECT_GT((*s)["dates"].size(), 100u);
  EXPECT_EQ((*s)["dates"].size(), (*s)["values"].size());
  EXPECT_EQ((*s)["dates"][0], "2020-01-03");
  EXPECT_EQ((*s)["velocity_units"], "mm/yr");
  EXPECT_FALSE(maps::point_series(product, "no-such-pid"));
  const auto coords = features["features"][0]["geometry"]["coordinates"];
  const auto near = maps::nearest_point_series(product, coords[0], coords[1], 100);
  ASSERT_TRUE(near);
  EXPECT_EQ((*near)["pid"], pid);
}

TEST(MapsPointIndex, QueryEqualsAScan) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1000, 1000);
  std::vector<double> x, y;
  for (int i = 0; i < 50000; ++i) {
    // Clustered and spread points, some on a lattice (coordinates exactly on box edges), a few not finite.
    const double cx = i % 3 == 0 ? std::round(u(rng) / 10) * 10 : (i % 3 == 1 ? u(rng) / 50 : u(rng));
    const double cy = i % 3 == 0 ? std::round(u(rng) / 10) * 10 : (i % 3 == 1 ? u(rng) / 50 : u(rng));
    x.push_back(i % 997 == 0 ? NAN : cx);
    y.push_back(i % 1009 == 0 ? INFINITY : cy);
  }
  const maps::PointIndex index(x, y);
  EXPECT_LT(index.size(), x.size());
  for (int q = 0; q < 300; ++q) {
    double a = u(rng), b = u(rng), c = u(rng), d = u(rng);
    if (q % 4 == 0) {  // lattice edges
      a = std::round(a / 10) * 10;
      b = std::round(b / 10) * 10;
      c = std::round(c / 10) * 10;
      d = std::round(d / 10) * 10;
    }
    if (q % 5 == 0) {  // small boxes in the cluster
      a /= 50, b /= 50, c /= 50, d /= 50;
    }
    const maps::Bounds box{std::min(a, b), std::min(c, d), std::max(a, b), std::max(c, d)};
    std::vector<std::size_t> scan;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (x[i] >= box.min_x && x[i] <= box.max_x && y[i] >= box.min_y && y[i] <= box.max_y) scan.push_back(i);
    }
    EXPECT_EQ(index.query(box), scan) << q;
  }
  // The whole plane, nothing, and an index of no points.
  std::size_t finite = 0;
  for (std::size_t i = 0; i < x.size(); ++i) finite += std::isfinite(x[i]) && std::isfinite(y[i]);
  EXPECT_EQ(index.query({-1e9, -1e9, 1e9, 1e9}).size(), finite);
  EXPECT_TRUE(index.query({2000, 2000, 3000, 3000}).empty());
  const std::vector<double> none;
  EXPECT_TRUE(maps::PointIndex(none, none).query({-1, -1, 1, 1}).empty());
}

TEST(MapsEgms, IndexedVectorTilesEqualTheFullScan) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  // A copy, rewritten below with the other product: the map must then draw the new points.
  const std::string product = tmp.file("product.zip");
  std::filesystem::copy_file(dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip", product);
  std::size_t count = 0;
  const auto extent = maps::points_extent(product, &count);
  const double lon = (extent.min_x + extent.max_x) / 2, lat = (extent.min_y + extent.max_y) / 2;
  int compared = 0, non_empty = 0;
  for (const char* id : {"WebMercatorQuad", "EuropeanETRS89_LAEAQuad", "WorldCRS84Quad"}) {
    const auto& tms = maps::tile_matrix_set(id);
    for (int zoom = 11; zoom <= 15; zoom += 2) {
      const auto [x0, y0] = tile_of(tms, zoom, lon, lat);
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          const int x = x0 + dx, y = y0 + dy;
          if (x < 0 || y < 0 || x >= tms.matrix_width(zoom) || y >= tms.matrix_height(zoom)) continue;
          maps::detail::set_points_index_enabled(false);
          const std::string scanned = maps::points_tile(product, tms, zoom, x, y);
          maps::detail::set_points_index_enabled(true);
          EXPECT_EQ(maps::points_tile(product, tms, zoom, x, y), scanned) << id << " " << zoom;
          ++compared;
          non_empty += !scanned.empty();
        }
      }
    }
  }
  EXPECT_GT(compared, 60);
  EXPECT_GT(non_empty, 12);
  // Features in a box through the index: those of the tile-free query, in the same order, all inside.
  const maps::Bounds box{lon - 0.02, lat - 0.02, lon + 0.02, lat + 0.02};
  const json in_box = maps::point_features(product, box, 100000, 0);
  ASSERT_GT(in_box["numberMatched"].get<int>(), 0);
  for (const auto& f : in_box["features"]) {
    const double flon = f["geometry"]["coordinates"][0], flat = f["geometry"]["coordinates"][1];
    EXPECT_TRUE(flon >= box.min_x && flon <= box.max_x && flat >= box.min_y && flat <= box.max_y);
  }
  const json first = in_box["features"][0];
  const auto near = maps::nearest_point_series(product, first["geometry"]["coordinates"][0],
                                               first["geometry"]["coordinates"][1], 100);
  ASSERT_TRUE(near);
  EXPECT_EQ((*near)["pid"], first["id"]);

  // The product rewritten in place (another burst): tiles, features and series are the new file's.
  const std::string before = maps::point_features(product, std::nullopt, 1, 0)["features"][0]["id"];
  std::filesystem::copy_file(dir / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip", product,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::last_write_time(product,
                                   std::filesystem::last_write_time(product) + std::chrono::seconds(2));
  const std::string after = maps::point_features(product, std::nullopt, 1, 0)["features"][0]["id"];
  EXPECT_NE(after, before);
  EXPECT_FALSE(maps::point_series(product, before));
  EXPECT_TRUE(maps::point_series(product, after));
}

TEST(MapsCapabilities, WmtsAndWmsDocuments) {
  maps::LayerInfo layer{"yahtse:pair-2016",
                        "Yahtse <2016>",
                        "",
                        {-141.5, 60.0, -141.0, 60.3},
                        "/collections/yahtse/items/pair-2016",
                        {},
                        ""};
  maps::LayerInfo mosaic{"yahtse",
                         "Yahtse mosaic",
                         "",
                         {-141.5, 60.0, -141.0, 60.3},
                         "/collections/yahtse",
                         {"2016-07-18", "2016-08-03"},
                         ""};
  const std::string wmts = maps::wmts_capabilities({layer, mosaic}, "http://h:1");
  EXPECT_NE(wmts.find("Yahtse &lt;2016&gt;"), std::string::npos);
  EXPECT_NE(wmts.find("template=\"http://h:1/collections/yahtse/items/pair-2016/tiles/{TileMatrixSet}/"
                      "{TileMatrix}/{TileCol}/{TileRow}.png\""),
            std::string::npos);
  EXPECT_NE(wmts.find("?datetime={Time}"), std::string::npos);
  EXPECT_NE(wmts.find("<Value>2016-07-18</Value>"), std::string::npos);
  // EPSG:3035 corners are northing first.
  EXPECT_NE(wmts.find("<TopLeftCorner>5500000 2000000</TopLeftCorner>"), std::string::npos);
  EXPECT_NE(wmts.find("<TopLeftCorner>-180 90</TopLeftCorner>"), std::string::npos);
  EXPECT_NE(
      wmts.find("LegendURL format=\"image/png\" xlink:href=\"http://h:1/collections/yahtse/legend.png\""),
      std::string::npos);
  const std::string wms = maps::wms_capabilities({layer}, "http://h:1");
  EXPECT_NE(wms.find("<Name>yahtse:pair-2016</Name>"), std::string::npos);
  EXPECT_NE(wms.find("<BoundingBox CRS=\"EPSG:4326\" minx=\"60\" miny=\"-141.5\""), std::string::npos);

  maps::Bounds b;
  EXPECT_EQ(maps::wms_crs_and_bounds("EPSG:4326", "60,-141.5,60.3,-141", "1.3.0", b), "EPSG:4326");
  EXPECT_DOUBLE_EQ(b.min_x, -141.5);
  EXPECT_DOUBLE_EQ(b.min_y, 60);
  maps::wms_crs_and_bounds("EPSG:4326", "-141.5,60,-141,60.3", "1.1.1", b);
  EXPECT_DOUBLE_EQ(b.min_x, -141.5);
  maps::wms_crs_and_bounds("EPSG:3035", "1000,2000,3000,4000", "1.3.0", b);
  EXPECT_DOUBLE_EQ(b.min_x, 2000);  // northing first
  maps::wms_crs_and_bounds("EPSG:3857", "1000,2000,3000,4000", "1.3.0", b);
  EXPECT_DOUBLE_EQ(b.min_x, 1000);
  EXPECT_EQ(maps::wms_crs_and_bounds("CRS:84", "-141.5,60,-141,60.3", "1.3.0", b), "OGC:CRS84");
  EXPECT_THROW(maps::wms_crs_and_bounds("EPSG:3857", "1,2,3", "1.3.0", b), InvalidArgument);
  EXPECT_THROW(maps::wms_crs_and_bounds("EPSG:0", "1,2,3,4", "1.3.0", b), InvalidArgument);
  EXPECT_THROW(maps::wms_crs_and_bounds("EPSG:3857", "3,2,1,4", "1.3.0", b), InvalidArgument);
}

}  // namespace
}  // namespace deforma
