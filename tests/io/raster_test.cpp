#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <gdal_utils.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/raster.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

using test::TempDir;

GridF ramp(int w, int h) {
  GridF g(w, h);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) g(c, r) = static_cast<float>(c + 1000 * r);
  return g;
}

TEST(Raster, InfoOfAGeoTiff) {
  TempDir tmp;
  const auto path = tmp.file("a.tif");
  test::write_test_geotiff(path, ramp(100, 70), "UInt16", 0, true);
  const auto info = describe(path);
  EXPECT_EQ(info.driver, "GTiff");
  EXPECT_EQ(info.width, 100);
  EXPECT_EQ(info.height, 70);
  ASSERT_EQ(info.band_count(), 1);
  EXPECT_EQ(info.bands[0].data_type, "UInt16");
  ASSERT_TRUE(info.bands[0].nodata.has_value());
  EXPECT_EQ(*info.bands[0].nodata, 0.0);
  EXPECT_EQ(info.bands[0].block_width, 64);
  EXPECT_TRUE(info.georeferenced);
  ASSERT_TRUE(info.epsg.has_value());
  EXPECT_EQ(*info.epsg, 32607);
  EXPECT_DOUBLE_EQ(info.pixel_size_x_m, 15.0);
  EXPECT_DOUBLE_EQ(info.pixel_size_y_m, 15.0);
  const auto json = info.to_json();
  EXPECT_EQ(json["epsg"], 32607);
  EXPECT_EQ(json["bands"][0]["data_type"], "UInt16");
  EXPECT_NE(info.to_text().find("EPSG:32607"), std::string::npos);
}

TEST(Raster, ReadsWindowsWithHaloOutsideAsInvalid) {
  TempDir tmp;
  const auto path = tmp.file("a.tif");
  test::write_test_geotiff(path, ramp(50, 40));
  const auto raster = Raster::open(path);
  const auto w = raster.read(1, Window{-2, -3, 10, 10});
  EXPECT_EQ(w.values.width(), 10);
  EXPECT_EQ(w.valid(0, 0), 0);  // outside
  EXPECT_EQ(w.valid(1, 2), 0);
  EXPECT_EQ(w.valid(2, 3), 1);  // image pixel (0, 0)
  EXPECT_FLOAT_EQ(w.values(2, 3), 0.f);
  EXPECT_FLOAT_EQ(w.values(5, 7), 3.f + 1000.f * 4.f);
  const auto corner = raster.read(1, Window{45, 35, 10, 10});
  EXPECT_EQ(corner.valid(4, 4), 1);
  EXPECT_EQ(corner.valid(5, 4), 0);
  EXPECT_FLOAT_EQ(corner.values(4, 4), 49.f + 39000.f);
  const auto outside = raster.read(1, Window{100, 100, 5, 5});
  EXPECT_EQ(std::count(outside.valid.values().begin(), outside.valid.values().end(), 1), 0);
}

TEST(Raster, NodataAndNanAreInvalid) {
  TempDir tmp;
  const auto path = tmp.file("a.tif");
  GridF g = ramp(20, 20);
  g(3, 4) = -9999.f;
  g(5, 6) = std::nanf("");
  test::write_test_geotiff(path, g, "Float32", -9999.0, true);
  const auto w = Raster::open(path).read_all(1);
  EXPECT_EQ(w.valid(3, 4), 0);
  EXPECT_EQ(w.valid(5, 6), 0);
  EXPECT_EQ(w.valid(4, 4), 1);
  long valid = std::count(w.valid.values().begin(), w.valid.values().end(), 1);
  EXPECT_EQ(valid, 20 * 20 - 2);
}

// Value of band `b` (1-based) at pixel (c, r) of the files of the multi-band test.
float multi_band_value(int b, int c, int r) {
  if (b == 2 && (c + r) % 7 == 0) return -9999.f;
  if (b == 3 && (c * r) % 11 == 0) return std::nanf("");
  return static_cast<float>(b * 100000 + c + 1000 * r);
}

// Several bands of one window in one read give what one read per band gives, for a pixel-interleaved
// compressed tiled file (as deforma writes its products) and a striped one, with windows that cut blocks
// and reach outside the raster, a nodata value of NaN (tiled: the NaN test is then the mask) or -9999
// (striped: GDAL's mask; a GeoTIFF has one nodata value for all its bands), and bands asked in any order.
TEST(Raster, SeveralBandsInOneReadMatchOneReadPerBand) {
  TempDir tmp;
  ensure_gdal_initialized();
  constexpr int kWidth = 300, kHeight = 200, kBands = 4;
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  struct Layout {
    const char* name;
    double nodata;
    std::vector<std::pair<const char*, const char*>> options;
  };
  const Layout layouts[] = {
      {"tiled.tif", std::nan(""), {{"TILED", "YES"}, {"BLOCKXSIZE", "64"}, {"BLOCKYSIZE", "32"}, {"COMPRESS", "DEFLATE"},
                     {"INTERLEAVE", "PIXEL"}}},
      {"striped.tif", -9999.0, {{"BLOCKYSIZE", "3"}, {"INTERLEAVE", "BAND"}}},
  };
  for (const auto& layout : layouts) {
    SCOPED_TRACE(layout.name);
    const std::string path = tmp.file(layout.name);
    char** options = nullptr;
    for (const auto& [key, value] : layout.options) options = CSLSetNameValue(options, key, value);
    {
      std::unique_ptr<GDALDataset> ds(driver->Create(path.c_str(), kWidth, kHeight, kBands, GDT_Float32, options));
      ASSERT_TRUE(ds);
      std::vector<float> values(static_cast<std::size_t>(kWidth) * kHeight);
      for (int b = 1; b <= kBands; ++b) {
        for (int r = 0; r < kHeight; ++r)
          for (int c = 0; c < kWidth; ++c) values[static_cast<std::size_t>(r) * kWidth + c] = multi_band_value(b, c, r);
        auto* band = ds->GetRasterBand(b);
        band->SetNoDataValue(layout.nodata);
        ASSERT_EQ(band->RasterIO(GF_Write, 0, 0, kWidth, kHeight, values.data(), kWidth, kHeight, GDT_Float32, 0, 0),
                  CE_None);
      }
    }
    CSLDestroy(options);
    const auto raster = Raster::open(path);
    const std::vector<int> order = {3, 1, 4, 2};
    for (const Window& window : {Window{0, 0, kWidth, kHeight}, Window{-5, -7, 90, 50}, Window{37, 61, 150, 100},
                                 Window{250, 180, 80, 40}, Window{400, 10, 10, 10}}) {
      SCOPED_TRACE(fmt::format("window col {} row {} size {}x{}", window.col, window.row, window.width,
                               window.height));
      const auto together = raster.read(order, window);
      ASSERT_EQ(together.size(), order.size());
      for (std::size_t k = 0; k < order.size(); ++k) {
        const auto alone = raster.read(order[k], window);
        EXPECT_EQ(together[k].window.col, window.col);
        EXPECT_EQ(together[k].values.width(), window.width);
        for (int r = 0; r < window.height; ++r) {
          for (int c = 0; c < window.width; ++c) {
            const int col = window.col + c, row = window.row + r;
            const bool inside = col >= 0 && row >= 0 && col < kWidth && row < kHeight;
            const float expected = inside ? multi_band_value(order[k], col, row) : std::nanf("");
            const bool valid = inside && std::isfinite(expected) && expected != layout.nodata;
            ASSERT_EQ(together[k].valid(c, r), valid ? 1 : 0) << "band " << order[k] << " at " << col << "," << row;
            ASSERT_EQ(alone.valid(c, r), together[k].valid(c, r));
            if (valid) {
              ASSERT_EQ(together[k].values(c, r), expected) << "band " << order[k] << " at " << col << "," << row;
              ASSERT_EQ(alone.values(c, r), expected);
            }
          }
        }
      }
    }
  }
}

TEST(Raster, BandOutOfRangeNamesFileAndRange) {
  TempDir tmp;
  const auto path = tmp.file("a.tif");
  test::write_test_geotiff(path, ramp(8, 8));
  const auto raster = Raster::open(path);
  try {
    raster.read(3, Window{0, 0, 2, 2});
    FAIL();
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("--band 3"), std::string::npos) << m;
    EXPECT_NE(m.find("1 band"), std::string::npos) << m;
  }
}

TEST(Raster, OpenFailuresAreClassified) {
  TempDir tmp;
  EXPECT_THROW(Raster::open(tmp.file("missing.tif")), IoError);
  EXPECT_THROW(Raster::open(tmp.path().string()), IoError);
  { std::ofstream(tmp.file("empty.tif")); }
  EXPECT_THROW(Raster::open(tmp.file("empty.tif")), FormatError);
  { std::ofstream(tmp.file("text.tif")) << "this is not an image\n"; }
  EXPECT_THROW(Raster::open(tmp.file("text.tif")), FormatError);
  // A truncated GeoTIFF: the header is fine but the image data are missing.
  test::write_test_geotiff(tmp.file("full.tif"), test::make_texture(300, 300));
  {
    std::ifstream in(tmp.file("full.tif"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(tmp.file("truncated.tif"), std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  try {
    const auto r = Raster::open(tmp.file("truncated.tif"));
    r.read_all(1);
    FAIL() << "truncated file read without error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated.tif"), std::string::npos) << e.what();
  }
}

TEST(Raster, PngWithoutGeoreferencingOpensInPixelUnits) {
  TempDir tmp;
  io::ensure_gdal_initialized();
  auto* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  std::unique_ptr<GDALDataset> src(mem->Create("", 16, 12, 1, GDT_Byte, nullptr));
  src->GetRasterBand(1)->Fill(7);
  auto* png = GetGDALDriverManager()->GetDriverByName("PNG");
  GDALClose(png->CreateCopy(tmp.file("a.png").c_str(), src.get(), FALSE, nullptr, nullptr, nullptr));
  const auto raster = Raster::open(tmp.file("a.png"));
  EXPECT_FALSE(raster.info().georeferenced);
  EXPECT_EQ(raster.info().width, 16);
  EXPECT_EQ(raster.info().pixel_size_x_m, 0.0);
  EXPECT_FLOAT_EQ(raster.read_all(1).values(3, 3), 7.f);
}

TEST(GeoTransform, RoundTripWithRotationAndNodeGrid) {
  GeoTransform g;
  g.c = {1000.0, 10.0, 2.0, 5000.0, 1.5, -10.0};
  double x, y, col, row;
  g.pixel_to_map(12.25, 7.5, x, y);
  g.map_to_pixel(x, y, col, row);
  EXPECT_NEAR(col, 12.25, 1e-9);
  EXPECT_NEAR(row, 7.5, 1e-9);
  double dx, dy;
  g.pixel_delta_to_map(1.0, 0.0, dx, dy);
  EXPECT_DOUBLE_EQ(dx, 10.0);
  EXPECT_DOUBLE_EQ(dy, 1.5);
  // A node grid every 4 px from pixel (16, 16): node (0,0)'s centre is the centre of pixel (16, 16).
  const auto nodes = g.node_grid(16, 16, 4);
  double nx, ny, px, py;
  nodes.pixel_to_map(0.5, 0.5, nx, ny);
  g.pixel_to_map(16.5, 16.5, px, py);
  EXPECT_NEAR(nx, px, 1e-9);
  EXPECT_NEAR(ny, py, 1e-9);
  nodes.pixel_to_map(2.5, 1.5, nx, ny);
  g.pixel_to_map(24.5, 20.5, px, py);
  EXPECT_NEAR(nx, px, 1e-9);
  EXPECT_NEAR(ny, py, 1e-9);
  GeoTransform singular;
  singular.c = {0, 0, 0, 0, 0, 0};
  EXPECT_THROW(singular.map_to_pixel(1, 1, col, row), NumericalError);
}

TEST(Resample, OntoAnotherGridAndCrs) {
  TempDir tmp;
  const auto texture = test::make_texture(200, 200, 3);
  test::write_test_geotiff(tmp.file("ref.tif"), texture);
  // The same image, reprojected to UTM zone 6N with GDAL's warper, then brought back onto ref's grid.
  io::ensure_gdal_initialized();
  {
    const auto ref = Raster::open(tmp.file("ref.tif"));
    RasterInfo target = ref.info();
    // Build a UTM 6N description covering the same area by warping into a VRT and materializing it.
    GDALDatasetH h = ref.gdal_handle();
    const char* argv[] = {"-t_srs", "EPSG:32606", "-r", "cubic", nullptr};
    auto* opts = GDALWarpAppOptionsNew(const_cast<char**>(argv), nullptr);
    GDALDatasetH out = GDALWarp(tmp.file("utm6.tif").c_str(), nullptr, 1, &h, opts, nullptr);
    GDALWarpAppOptionsFree(opts);
    ASSERT_NE(out, nullptr);
    GDALClose(out);
  }
  const auto ref_info = describe(tmp.file("ref.tif"));
  const auto utm6 = describe(tmp.file("utm6.tif"));
  EXPECT_FALSE(same_grid(ref_info, utm6));
  EXPECT_FALSE(overlap_window(ref_info, utm6).empty());
  const auto back = resample_to_grid(tmp.file("utm6.tif"), ref_info, Resampling::kCubic);
  EXPECT_EQ(back.info().width, 200);
  EXPECT_EQ(back.info().height, 200);
  EXPECT_TRUE(same_grid(ref_info, back.info()));
  const auto w = back.read(1, Window{50, 50, 100, 100});
  double err = 0;
  int n = 0;
  for (int r = 10; r < 90; ++r)
    for (int c = 10; c < 90; ++c)
      if (w.valid(c, r)) err += std::abs(w.values(c, r) - texture(c + 50, r + 50)), ++n;
  ASSERT_GT(n, 6000);
  EXPECT_LT(err / n, 3.0);  // two cubic resamplings of a smooth texture with values ~1000 +- 100
}

TEST(Resample, RefusesRastersThatDoNotOverlap) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(20, 20));
  GridF far = test::make_texture(20, 20);
  // Same CRS, 100 km away.
  io::ensure_gdal_initialized();
  test::write_test_geotiff(tmp.file("b.tif"), far);
  {
    auto* ds = static_cast<GDALDataset*>(GDALOpen(tmp.file("b.tif").c_str(), GA_Update));
    double gt[6] = {600000.0, 15.0, 0.0, 6700000.0, 0.0, -15.0};
    ds->SetGeoTransform(gt);
    GDALClose(ds);
  }
  EXPECT_TRUE(overlap_window(describe(tmp.file("a.tif")), describe(tmp.file("b.tif"))).empty());
  try {
    resample_to_grid(tmp.file("b.tif"), describe(tmp.file("a.tif")));
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("do not overlap"), std::string::npos);
  }
}

TEST(RealData, YahtseLandsatPair) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  for (const char* name : {"LC80630182016200LGN00_B8_yahtse.TIF", "LC80630182016216LGN00_B8_yahtse.TIF"}) {
    const auto info = describe((dir / name).string());
    EXPECT_EQ(info.width, 1698);
    EXPECT_EQ(info.height, 1087);
    ASSERT_TRUE(info.epsg.has_value());
    EXPECT_EQ(*info.epsg, 32607);
    EXPECT_DOUBLE_EQ(info.pixel_size_x_m, 15.0);
    EXPECT_DOUBLE_EQ(info.pixel_size_y_m, 15.0);
    EXPECT_EQ(info.bands[0].data_type, "UInt16");
  }
  EXPECT_TRUE(same_grid(describe((dir / "LC80630182016200LGN00_B8_yahtse.TIF").string()),
                        describe((dir / "LC80630182016216LGN00_B8_yahtse.TIF").string())));
}

}  // namespace
}  // namespace deforma::io
