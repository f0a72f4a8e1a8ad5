#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <nlohmann/json.hpp>
#include <ogr_spatialref.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/staged_file.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::vector<std::string> folder_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

GeoTransform utm_transform() {
  GeoTransform g;
  g.c = {500000, 30, 0, 6700000, 0, -30};
  return g;
}

std::string utm7_wkt() {
  OGRSpatialReference srs;
  srs.importFromEPSG(32607);
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  std::string out = wkt;
  CPLFree(wkt);
  return out;
}

std::vector<OutputBand> two_bands() {
  OutputBand a;
  a.description = "dx_px";
  a.unit = "px";
  OutputBand b;
  b.description = "east_m";
  b.unit = "m";
  return {a, b};
}

Provenance sample_provenance(const std::string& input) {
  Provenance p;
  p.command_line = "deforma test --chip 32";
  p.parameters = {{"chip", 32}};
  p.inputs = {input};
  return p;
}

TEST(CogWriter, WritesACogWithBandsUnitsNodataAndProvenance) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("input.tif"), test::make_texture(10, 10));
  const auto path = tmp.file("out.tif");
  const GridF values = test::make_texture(600, 500, 5);
  {
    CogWriter writer(path, 600, 500, two_bands(), utm_transform(), utm7_wkt(), sample_provenance(tmp.file("input.tif")));
    // Written in two strips, from two threads' worth of windows, in any order.
    GridF top(600, 250), bottom(600, 250);
    for (int r = 0; r < 250; ++r)
      for (int c = 0; c < 600; ++c) top(c, r) = values(c, r), bottom(c, r) = values(c, r + 250);
    writer.write(1, Window{0, 250, 600, 250}, bottom);
    writer.write(1, Window{0, 0, 600, 250}, top);
    // Band 2 left unwritten on purpose: it must read as nodata.
    EXPECT_FALSE(fs::exists(path)) << "final name must not exist before finish()";
    writer.finish();
  }
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(folder_entries(tmp.path()).size(), 2u) << "temporary files left behind";

  io::ensure_gdal_initialized();
  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(GDALOpen(path.c_str(), GA_ReadOnly)));
  ASSERT_TRUE(ds);
  const char* layout = ds->GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE");
  ASSERT_NE(layout, nullptr);
  EXPECT_STREQ(layout, "COG");
  EXPECT_STREQ(ds->GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE"), "DEFLATE");
  EXPECT_GT(ds->GetRasterBand(1)->GetOverviewCount(), 0);
  EXPECT_STREQ(ds->GetRasterBand(1)->GetDescription(), "dx_px");
  EXPECT_STREQ(ds->GetRasterBand(2)->GetDescription(), "east_m");
  EXPECT_STREQ(ds->GetRasterBand(1)->GetUnitType(), "px");
  EXPECT_STREQ(ds->GetRasterBand(2)->GetUnitType(), "m");
  int has_nodata = 0;
  EXPECT_EQ(ds->GetRasterBand(1)->GetNoDataValue(&has_nodata), -9999.0);
  EXPECT_TRUE(has_nodata);
  ASSERT_NE(ds->GetMetadataItem("DEFORMA_VERSION"), nullptr);
  EXPECT_STREQ(ds->GetMetadataItem("DEFORMA_COMMAND"), "deforma test --chip 32");
  const auto params = nlohmann::json::parse(ds->GetMetadataItem("DEFORMA_PARAMETERS"));
  EXPECT_EQ(params["chip"], 32);
  const auto inputs = nlohmann::json::parse(ds->GetMetadataItem("DEFORMA_INPUTS"));
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_GT(inputs[0]["size_bytes"].get<long long>(), 0);
  EXPECT_TRUE(inputs[0].contains("modified"));

  const auto raster = Raster::open(path);
  EXPECT_EQ(raster.info().epsg.value_or(0), 32607);
  const auto band1 = raster.read_all(1);
  EXPECT_FLOAT_EQ(band1.values(123, 321), values(123, 321));
  const auto band2 = raster.read_all(2);
  EXPECT_EQ(std::count(band2.valid.values().begin(), band2.valid.values().end(), 1), 0);
}

TEST(CogWriter, PerBandNodataTravelsWithTheFile) {
  TempDir tmp;
  auto bands = two_bands();
  bands[1].nodata = 255;
  const auto path = tmp.file("out.tif");
  {
    CogWriter writer(path, 32, 32, bands, utm_transform(), utm7_wkt(), {});
    writer.write(1, Window{0, 0, 32, 32}, GridF(32, 32, 1.f));
    writer.finish();
  }
  for (const auto& name : folder_entries(tmp.path())) EXPECT_NE(name.front(), '.') << "left behind: " << name;
  const auto info = describe(path);
  EXPECT_EQ(info.bands[0].nodata.value_or(0), -9999.0);
  EXPECT_EQ(info.bands[1].nodata.value_or(0), 255.0);
}

// A cube of many dates: the COG's tiles interleave its bands, so they are made smaller (down to 64 px) to
// hold at most 16 MiB each; products of a few bands keep 256 px tiles.
TEST(CogWriter, ManyBandCubesGetSmallerTilesWithTheSameValues) {
  EXPECT_EQ(cog_block_size(256, 1, 4), 256);
  EXPECT_EQ(cog_block_size(256, 60, 4), 256);   // 15 MiB per tile
  EXPECT_EQ(cog_block_size(256, 80, 4), 128);   // 20 MiB at 256 px
  EXPECT_EQ(cog_block_size(256, 301, 4), 64);   // 79 MiB at 256 px, 4.7 MiB at 64
  EXPECT_EQ(cog_block_size(256, 5000, 4), 64);  // never below 64 px

  TempDir tmp;
  constexpr int kBands = 301, kSide = 160;
  std::vector<OutputBand> bands;
  for (int b = 0; b < kBands; ++b) bands.push_back({fmt::format("date_{}", b), "m", -9999.0});
  const auto path = tmp.file("cube.tif");
  {
    CogWriter writer(path, kSide, kSide, bands, utm_transform(), utm7_wkt(), {});
    for (int b = 1; b <= kBands; ++b) writer.write(b, Window{0, 0, kSide, kSide}, GridF(kSide, kSide, 0.5f * static_cast<float>(b)));
    writer.finish();
  }
  const auto info = describe(path);
  ASSERT_EQ(info.bands.size(), static_cast<std::size_t>(kBands));
  EXPECT_EQ(info.bands[0].block_width, 64);
  EXPECT_EQ(info.bands[0].block_height, 64);
  Raster cube = Raster::open(path);
  for (int b : {1, 150, 301}) {
    const auto window = cube.read_all(b);
    EXPECT_EQ(window.values(kSide - 1, kSide - 1), 0.5f * static_cast<float>(b)) << "band " << b;
  }
}

TEST(CogWriter, AbandonedOrDestroyedWriterLeavesNothing) {
  TempDir tmp;
  const auto path = tmp.file("out.tif");
  {
    CogWriter writer(path, 64, 64, two_bands(), utm_transform(), utm7_wkt(), {});
    writer.write(1, Window{0, 0, 64, 64}, GridF(64, 64, 1.f));
  }
  EXPECT_TRUE(folder_entries(tmp.path()).empty());
  {
    CogWriter writer(path, 64, 64, two_bands(), utm_transform(), utm7_wkt(), {});
    writer.abandon();
  }
  EXPECT_TRUE(folder_entries(tmp.path()).empty());
}

TEST(CogWriter, CancelledConversionLeavesNoFinalFile) {
  TempDir tmp;
  const auto path = tmp.file("out.tif");
  CogOptions options;
  int calls = 0;
  options.conversion_progress = [&](double fraction) {
    ++calls;
    return fraction < 0.3;  // the failure injected half-way through the write
  };
  CogWriter writer(path, 1024, 1024, two_bands(), utm_transform(), utm7_wkt(), {}, options);
  writer.write(1, Window{0, 0, 1024, 1024}, test::make_texture(1024, 1024));
  EXPECT_THROW(writer.finish(), Error);
  EXPECT_GT(calls, 0);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(folder_entries(tmp.path()).empty());
}

TEST(CogWriter, RejectsMissingOrUnwritableFolders) {
  TempDir tmp;
  try {
    CogWriter writer(tmp.file("no/such/folder/out.tif"), 8, 8, two_bands(), utm_transform(), "", {});
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  if (::geteuid() != 0) {  // root ignores permission bits
    fs::create_directory(tmp.path() / "ro");
    fs::permissions(tmp.path() / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(CogWriter(tmp.file("ro/out.tif"), 8, 8, two_bands(), utm_transform(), "", {}), IoError);
  }
  EXPECT_THROW(CogWriter(tmp.path().string(), 8, 8, two_bands(), utm_transform(), "", {}), IoError);
  EXPECT_THROW(CogWriter(tmp.file("a.tif"), 0, 8, two_bands(), utm_transform(), "", {}), InvalidArgument);
  CogOptions bad;
  bad.compression = "JPEG2000";
  EXPECT_THROW(CogWriter(tmp.file("a.tif"), 8, 8, two_bands(), utm_transform(), "", {}, bad), InvalidArgument);
}

TEST(CogWriter, WindowChecks) {
  TempDir tmp;
  CogWriter writer(tmp.file("a.tif"), 16, 16, two_bands(), utm_transform(), "", {});
  EXPECT_THROW(writer.write(3, Window{0, 0, 4, 4}, GridF(4, 4)), InvalidArgument);
  EXPECT_THROW(writer.write(1, Window{0, 0, 4, 4}, GridF(5, 4)), InvalidArgument);
  EXPECT_THROW(writer.write(1, Window{14, 0, 4, 4}, GridF(4, 4)), InvalidArgument);
}

// A real disk-full failure half-way: a 256 KiB tmpfs. Needs the right to mount (root in CI); skipped
// otherwise since the injected-failure test above covers the same path.
TEST(CogWriter, FullDiskLeavesNoFinalFile) {
  TempDir tmp;
  const auto mount_point = tmp.path() / "small";
  fs::create_directory(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a size-limited tmpfs here (needs privileges); skipping";
  }
  const auto path = (mount_point / "out.tif").string();
  bool threw = false;
  try {
    CogOptions options;
    options.compression = "NONE";
    CogWriter writer(path, 2048, 2048, two_bands(), utm_transform(), utm7_wkt(), {}, options);
    writer.write(1, Window{0, 0, 2048, 2048}, test::make_texture(2048, 2048));
    writer.finish();
  } catch (const IoError& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find("out.tif"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(threw);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(folder_entries(mount_point).empty());
  ::umount(mount_point.c_str());
}

TEST(WriteAtomically, RenamesOnSuccessRemovesOnFailure) {
  TempDir tmp;
  const auto path = tmp.file("table.csv");
  write_atomically(path, [](const std::string& tmp_path) { std::ofstream(tmp_path) << "a,b\n1,2\n"; });
  EXPECT_TRUE(fs::exists(path));
  EXPECT_THROW(write_atomically(tmp.file("other.csv"),
                                [](const std::string& tmp_path) {
                                  std::ofstream(tmp_path) << "partial";
                                  throw IoError("disk full");
                                }),
               IoError);
  EXPECT_FALSE(fs::exists(tmp.file("other.csv")));
  EXPECT_EQ(folder_entries(tmp.path()).size(), 1u);
}

}  // namespace
}  // namespace deforma::io
