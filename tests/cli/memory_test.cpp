// Streamed operations keep to their --ram budget whatever the size of the scene: each test runs the CLI in
// a child process on a generated raster far larger than the budget and reads the child's peak resident set.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <ogr_spatialref.h>
#include <nlohmann/json.hpp>

#include "deforma/core/log.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "measure_support.hpp"

namespace deforma::test {
namespace {

// What a run may hold besides its budget: the binary and its shared libraries (GDAL, OpenCV, oneTBB,
// FFTW...), the allocator's per-thread arenas and GDAL's driver state (`deforma info` of a small file peaks
// at about 60 MiB), and the COG driver's conversion of the staged file (per-thread compression buffers and
// the overview pass: `deforma cog` of a 64 MiB band under --ram 64 peaks about 60 MiB above its budget).
constexpr double kAllowanceMb = 128.0;
constexpr int kBudgetMb = 256;

// A smooth deterministic texture: a random lattice interpolated bilinearly, two octaves.
float lattice(std::int64_t i, std::int64_t j, std::uint32_t seed) {
  std::uint64_t h = static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull ^
                    static_cast<std::uint64_t>(j) * 0xC2B2AE3D27D4EB4Full ^ seed;
  h ^= h >> 31, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 29;
  return static_cast<float>(h & 0xFFFF) / 65535.0f;
}

float value_noise(double x, double y, double cell, std::uint32_t seed) {
  const double u = x / cell, v = y / cell;
  const auto i = static_cast<std::int64_t>(std::floor(u)), j = static_cast<std::int64_t>(std::floor(v));
  const double fu = u - i, fv = v - j;
  return static_cast<float>((1 - fu) * (1 - fv) * lattice(i, j, seed) + fu * (1 - fv) * lattice(i + 1, j, seed) +
                            (1 - fu) * fv * lattice(i, j + 1, seed) + fu * fv * lattice(i + 1, j + 1, seed));
}

// An optical-like scene to match: value noise at two scales around 1000.
float scene_texture(double x, double y) {
  return 1000.0f + 600.0f * value_noise(x, y, 6.0, 7) + 300.0f * value_noise(x, y, 2.5, 11);
}

// Creates a tiled GeoTIFF (256 px blocks, UTM 7N, 15 m) and fills each band strip by strip from
// `value(band, col, row)`, so that the test itself never holds a whole band.
template <class F>
void write_generated(const std::string& path, int width, int height, const std::vector<std::string>& names,
                     GDALDataType type, F value) {
  io::ensure_gdal_initialized();
  char** options = nullptr;
  options = CSLSetNameValue(options, "TILED", "YES");
  options = CSLSetNameValue(options, "BLOCKXSIZE", "256");
  options = CSLSetNameValue(options, "BLOCKYSIZE", "256");
  options = CSLSetNameValue(options, "BIGTIFF", "IF_SAFER");
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  std::unique_ptr<GDALDataset> ds(
      driver->Create(path.c_str(), width, height, static_cast<int>(names.size()), type, options));
  CSLDestroy(options);
  ASSERT_TRUE(ds) << path;
  double gt[6] = {500000.0, 15.0, 0.0, 6700000.0, 0.0, -15.0};
  ds->SetGeoTransform(gt);
  OGRSpatialReference srs;
  srs.importFromEPSG(32607);
  ds->SetSpatialRef(&srs);
  constexpr int kStripRows = 256;
  std::vector<float> strip(static_cast<std::size_t>(width) * kStripRows);
  for (int b = 0; b < static_cast<int>(names.size()); ++b) {
    auto* band = ds->GetRasterBand(b + 1);
    band->SetDescription(names[b].c_str());
    for (int row0 = 0; row0 < height; row0 += kStripRows) {
      const int rows = std::min(kStripRows, height - row0);
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < width; ++c) strip[static_cast<std::size_t>(r) * width + c] = value(b, c, row0 + r);
      ASSERT_EQ(band->RasterIO(GF_Write, 0, row0, width, rows, strip.data(), width, rows, GDT_Float32, 0, 0),
                CE_None);
    }
  }
}

class StreamedMemory : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new TempDir(); }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* StreamedMemory::dir_ = nullptr;

void expect_within_budget(const MeasuredCliResult& run, const std::string& what) {
  ASSERT_EQ(run.exit_code, 0) << what << ": " << run.err;
  ::testing::Test::RecordProperty("peak_rss_mb", static_cast<int>(run.peak_rss_mb));
  std::printf("%s: peak RSS %.0f MiB (budget %d MiB + allowance %.0f MiB)\n", what.c_str(), run.peak_rss_mb,
              kBudgetMb, kAllowanceMb);
  EXPECT_LE(run.peak_rss_mb, kBudgetMb + kAllowanceMb) << what << " exceeds --ram " << kBudgetMb;
}

// A 4096 x 4096 pair at every pixel (--step 1): 16.8 million nodes, whose per-node results and output
// bands (about 80 bytes a node, 1.3 GiB over the whole grid) weigh as much as the pixels: any whole node
// grid (results, statistics, quicklook: 64 MiB a float band) would show. A --mask raster covers seven node
// rows in eight, whose nodes are flagged without a search, so that the run stays short; every node is still
// read, assembled, counted and written. A small chip and search and no prefilter keep the matching short.
TEST_F(StreamedMemory, CorrelateStepOneStaysWithinTheBudget) {
  constexpr int kWidth = 4096, kHeight = 4096;
  const std::string ref = dir_->file("ref.tif"), sec = dir_->file("sec.tif"), mask = dir_->file("mask.tif");
  write_generated(ref, kWidth, kHeight, {"ref"}, GDT_Float32,
                  [&](int, int c, int r) { return scene_texture(c, r); });
  // SEC: the texture moved by (+1.5, -0.75) px.
  write_generated(sec, kWidth, kHeight, {"sec"}, GDT_Float32,
                  [&](int, int c, int r) { return scene_texture(c - 1.5, r + 0.75); });
  write_generated(mask, kWidth, kHeight, {"mask"}, GDT_Byte,
                  [](int, int, int r) { return (r / 32) % 8 == 0 ? 0.0f : 1.0f; });
  const auto run = run_cli_measured({"correlate",
                                     ref,
                                     sec,
                                     "-o",
                                     dir_->file("offsets.tif"),
                                     "--step",
                                     "1",
                                     "--chip",
                                     "8",
                                     "--search",
                                     "2",
                                     "--prefilter",
                                     "none",
                                     "--mask",
                                     mask,
                                     "--quicklook",
                                     dir_->file("offsets.png"),
                                     "--ram",
                                     std::to_string(kBudgetMb),
                                     "--threads",
                                     "2",
                                     "-q"});
  expect_within_budget(run, "correlate --step 1 on 4096 x 4096");
}

// A 4096 x 2048 correlation result with seven bands (224 MiB of float32, each window of it read with a
// halo): the median test and a plane fit on automatic stable ground, written back, with two worker threads.
// Most nodes are flagged (no texture) so that the run stays short; every node is still read and written.
TEST_F(StreamedMemory, FilterStaysWithinTheBudgetWithTwoThreads) {
  constexpr int kWidth = 4096, kHeight = 2048;
  const std::string input = dir_->file("field.tif");
  write_generated(input, kWidth, kHeight, {"dx_px", "dy_px", "east_m", "north_m", "corr", "snr", "flag"},
                  GDT_Float32, [](int band, int c, int r) -> float {
                    const float dx = 0.5f + 1e-4f * c + 0.01f * static_cast<float>((c * 13 + r * 7) % 5);
                    const float dy = -0.3f + 1e-4f * r - 0.01f * static_cast<float>((c * 5 + r * 11) % 3);
                    switch (band) {
                      case 0: return dx;
                      case 1: return dy;
                      case 2: return 15.0f * dx;
                      case 3: return -15.0f * dy;
                      case 4: return 0.5f + 0.05f * static_cast<float>((c + r) % 10);
                      case 5: return 3.0f;
                      default: return r % 8 == 0 ? 0.0f : 2.0f;
                    }
                  });
  const auto run = run_cli_measured({"filter", input, "-o", dir_->file("filtered.tif"), "--auto-stable",
                                     "--ramp", "plane", "--ram", std::to_string(kBudgetMb), "--threads", "2",
                                     "-q"});
  expect_within_budget(run, "filter of a 4096 x 2048 result");
}

// Three pairs of 4096 x 2048 nodes (two float32 bands each, 192 MiB read) inverted into four series cubes,
// the velocity product (22 float32 bands in all, 704 MiB staged and converted to COG) and the NetCDF cube
// (the same 22 bands copied again), with two worker threads. Valid nodes lie on one row in 32 (the others
// are NaN in every pair and become nodata at once) so that the run stays short; every node is still read,
// written, converted and copied.
TEST_F(StreamedMemory, InvertWithItsNetcdfCubeStaysWithinTheBudgetWithTwoThreads) {
  constexpr int kWidth = 4096, kHeight = 2048;
  const std::vector<std::pair<int, int>> links = {{0, 1}, {1, 2}, {0, 2}};
  const std::vector<std::string> dates = {"2021-03-01", "2021-03-13", "2021-03-25"};
  const std::vector<int> days = {0, 12, 24};
  std::vector<timeseries::Pair> pairs;
  for (const auto& [i, j] : links) {
    timeseries::Pair p;
    p.id = fmt::format("p{}{}", i, j);
    p.ref_path = "ref.tif";
    p.sec_path = "sec.tif";
    p.ref_date = io::Date::parse(dates[i]);
    p.sec_date = io::Date::parse(dates[j]);
    p.result_path = dir_->file(p.id + ".tif");
    const double years = (days[j] - days[i]) / 365.25;
    write_generated(p.result_path, kWidth, kHeight, {"east_m", "north_m"}, GDT_Float32,
                    [&](int band, int c, int r) -> float {
                      if (r % 32 != 0) return std::nanf("");
                      const float noise = 0.001f * static_cast<float>((c * 13 + r * 7 + i) % 5);
                      return static_cast<float>(band == 0 ? 0.005 * c * years : -2.0 * years) + noise;
                    });
    pairs.push_back(p);
  }
  const std::string table = dir_->file("pairs.csv");
  timeseries::write_pair_table(table, pairs);
  const std::string out = dir_->file("series");
  const auto run = run_cli_measured({"invert", table, "-o", out, "--ram", std::to_string(kBudgetMb), "--threads",
                                     "2", "-q"});
  expect_within_budget(run, "invert of three 4096 x 2048 pairs");
  EXPECT_TRUE(std::filesystem::exists(out + "/timeseries.nc"));
  EXPECT_TRUE(std::filesystem::exists(out + "/velocity.tif"));
}

// `correlate --input-kind sar --oversample 2` matches both images interpolated to a grid twice as fine, with
// its transforms' buffers: about 90 bytes per image pixel of a strip at its peak instead of 25 (driver.cpp),
// which the strip plan counts. An 8192 x 1024 SAR-like pair (linear backscatter, matched in decibels) under
// --ram 256: strips sized for the original pixels only would peak near 500 MiB. A budget that no strip of
// oversampled nodes fits (--ram 64; enough without oversampling) is refused naming --ram and
// --oversample, with no output.
TEST_F(StreamedMemory, SarOversampledCorrelationStaysWithinTheBudget) {
  constexpr int kWidth = 8192, kHeight = 1024;
  const std::string ref = dir_->file("sar_ref.tif"), sec = dir_->file("sar_sec.tif");
  auto backscatter = [](double x, double y) {
    return 0.01f + 0.1f * value_noise(x, y, 5.0, 3) + 0.05f * value_noise(x, y, 2.0, 5);
  };
  write_generated(ref, kWidth, kHeight, {"sigma0"}, GDT_Float32,
                  [&](int, int c, int r) { return backscatter(c, r); });
  // SEC: the backscatter moved by (+1.25, -0.5) px.
  write_generated(sec, kWidth, kHeight, {"sigma0"}, GDT_Float32,
                  [&](int, int c, int r) { return backscatter(c - 1.25, r + 0.5); });
  const std::vector<std::string> args = {
      "correlate", ref,        sec, "--input-kind", "sar", "--oversample", "2", "--chip",
      "32",        "--search", "4", "--step",       "32",  "--threads",    "2", "--summary-json"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> all = args;
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  };
  const auto run =
      run_cli_measured(with({"-o", dir_->file("sar_offsets.tif"), "--ram", std::to_string(kBudgetMb)}));
  expect_within_budget(run, "correlate --input-kind sar --oversample 2 on 8192 x 1024");
  // The run matched: most nodes valid, at the shift.
  const auto summary = nlohmann::json::parse(run.out.substr(run.out.find('{')));
  EXPECT_EQ(summary["details"]["input_kind"], "sar");
  EXPECT_GT(summary["details"]["valid_fraction"].get<double>(), 0.9) << summary.dump();
  EXPECT_NEAR(summary["details"]["median_dx_px"].get<double>(), 1.25, 0.05) << summary.dump();

  const auto small = run_cli_measured(with({"-o", dir_->file("sar_small.tif"), "--ram", "64"}));
  EXPECT_EQ(small.exit_code, 3) << small.err;
  EXPECT_NE(small.err.find("--ram 64"), std::string::npos) << small.err;
  EXPECT_NE(small.err.find("--oversample 2"), std::string::npos) << small.err;
  EXPECT_FALSE(std::filesystem::exists(dir_->file("sar_small.tif")));
}

// A 16384 x 8192 UInt16 band (256 MiB read, 512 MiB once converted to float32) through `stats` and `cog`
// with two worker threads: the statistics are merged per window and the COG is staged by tiles, so neither
// holds the band. Column c holds c mod 1000 and every 97th row is nodata (65535), so that the figures are
// known without reading the file back whole.
TEST_F(StreamedMemory, StatsAndCogOfALargeBandStayWithinTheBudgetWithTwoThreads) {
  constexpr int kWidth = 16384, kHeight = 8192;
  constexpr float kNodata = 65535.0f;
  const std::string input = dir_->file("band.tif");
  write_generated(input, kWidth, kHeight, {"dn"}, GDT_UInt16, [&](int, int c, int r) {
    return r % 97 == 0 ? kNodata : static_cast<float>(c % 1000);
  });
  {
    std::unique_ptr<GDALDataset> ds(GDALDataset::Open(input.c_str(), GDAL_OF_RASTER | GDAL_OF_UPDATE));
    ASSERT_TRUE(ds);
    ds->GetRasterBand(1)->SetNoDataValue(kNodata);
  }
  double column_sum = 0, column_sum_sq = 0;
  for (int c = 0; c < kWidth; ++c) column_sum += c % 1000, column_sum_sq += double(c % 1000) * (c % 1000);
  const double mean = column_sum / kWidth;
  const double std_dev = std::sqrt(column_sum_sq / kWidth - mean * mean);
  const int nodata_rows = (kHeight + 96) / 97;

  const auto stats = run_cli_measured({"stats", input, "--json", "--ram", std::to_string(kBudgetMb), "--threads",
                                       "2", "-q"});
  expect_within_budget(stats, "stats of a 16384 x 8192 band");
  const auto figures = nlohmann::json::parse(stats.out);
  EXPECT_DOUBLE_EQ(figures["min"].get<double>(), 0.0) << stats.out;
  EXPECT_DOUBLE_EQ(figures["max"].get<double>(), 999.0) << stats.out;
  EXPECT_NEAR(figures["mean"].get<double>(), mean, 1e-9 * mean) << stats.out;
  EXPECT_NEAR(figures["std"].get<double>(), std_dev, 1e-6 * std_dev) << stats.out;
  EXPECT_NEAR(figures["valid_fraction"].get<double>(), 1.0 - double(nodata_rows) / kHeight, 1e-12) << stats.out;

  const std::string cog = dir_->file("band_cog.tif");
  const auto copy = run_cli_measured({"cog", input, "-o", cog, "--ram", std::to_string(kBudgetMb), "--threads",
                                      "2", "-q"});
  expect_within_budget(copy, "cog of a 16384 x 8192 band");
  std::unique_ptr<GDALDataset> out(GDALDataset::Open(cog.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  ASSERT_TRUE(out) << cog;
  ASSERT_EQ(out->GetRasterXSize(), kWidth);
  ASSERT_EQ(out->GetRasterYSize(), kHeight);
  auto* band = out->GetRasterBand(1);
  EXPECT_EQ(band->GetRasterDataType(), GDT_Float32);
  // Two sampled rows read back: a valid one and a nodata one.
  std::vector<float> row(kWidth);
  ASSERT_EQ(band->RasterIO(GF_Read, 0, 4001, kWidth, 1, row.data(), kWidth, 1, GDT_Float32, 0, 0), CE_None);
  for (int c = 0; c < kWidth; c += 127) ASSERT_EQ(row[static_cast<std::size_t>(c)], float(c % 1000)) << c;
  int has_nodata = 0;
  const double nodata = band->GetNoDataValue(&has_nodata);
  ASSERT_TRUE(has_nodata);
  ASSERT_EQ(band->RasterIO(GF_Read, 0, 97 * 40, kWidth, 1, row.data(), kWidth, 1, GDT_Float32, 0, 0), CE_None);
  for (int c = 0; c < kWidth; c += 127) {
    const float v = row[static_cast<std::size_t>(c)];
    ASSERT_TRUE(std::isnan(nodata) ? std::isnan(v) : v == static_cast<float>(nodata)) << c << ": " << v;
  }
}

// The pipeline on one pair of 4096 x 4096 images at --step 2: its correlation and filter (4.2 million nodes,
// about 80 bytes each with their ten product bands: 320 MiB as whole grids), the velocity of the single pair
// (no inversion: displacement over the time span, four bands written window by window) and the headline
// figures read back from it. Only one row band of 48 in 8 carries texture; the other nodes see flat images
// and are rejected at once, so that the run stays short.
TEST_F(StreamedMemory, PipelineOfOnePairStaysWithinTheBudgetWithTwoThreads) {
  constexpr int kSize = 4096;
  const std::string ref = dir_->file("scene_ref.tif"), sec = dir_->file("scene_sec.tif");
  auto texture = [](double x, double y) {
    return (static_cast<int>(std::floor(y)) / 48) % 8 != 0 ? 1000.0f : scene_texture(x, y);
  };
  write_generated(ref, kSize, kSize, {"pan"}, GDT_Float32, [&](int, int c, int r) { return texture(c, r); });
  // SEC, twelve days later: the texture moved by (+1.5, -0.75) px, that is 22.5 m east and 11.25 m north.
  write_generated(sec, kSize, kSize, {"pan"}, GDT_Float32,
                  [&](int, int c, int r) { return texture(c - 1.5, r + 0.75); });
  const std::string manifest = dir_->file("scenes.csv");
  {
    std::FILE* f = std::fopen(manifest.c_str(), "w");
    ASSERT_TRUE(f) << manifest;
    std::fprintf(f, "path,date\n%s,2021-06-01\n%s,2021-06-13\n", ref.c_str(), sec.c_str());
    std::fclose(f);
  }
  const std::string out = dir_->file("pipeline");
  const auto run = run_cli_measured({"pipeline", manifest, "-o", out, "--step", "2", "--chip", "8", "--search", "2",
                                     "--prefilter", "none", "--shape", "translation", "--no-median-test",
                                     "--ram", std::to_string(kBudgetMb), "--threads", "2", "-q"});
  expect_within_budget(run, "pipeline of one 4096 x 4096 pair at --step 2");

  const std::string velocity = out + "/products/velocity.tif";
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(velocity.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  ASSERT_TRUE(ds) << velocity;
  ASSERT_EQ(ds->GetRasterXSize(), kSize / 2);
  ASSERT_EQ(ds->GetRasterYSize(), kSize / 2);
  // A node row in the middle of a textured band: east 22.5 m and north 11.25 m over twelve days.
  const double years = 12.0 / 365.25;
  std::vector<float> row(kSize / 2);
  ASSERT_EQ(ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 12, kSize / 2, 1, row.data(), kSize / 2, 1, GDT_Float32,
                                           0, 0),
            CE_None);
  int has_nodata = 0;
  const double nodata = ds->GetRasterBand(1)->GetNoDataValue(&has_nodata);
  std::vector<float> valid;
  for (float v : row) {
    if (std::isfinite(v) && !(has_nodata && v == static_cast<float>(nodata))) valid.push_back(v);
  }
  // Chips of 8 px on this texture leave some nodes without a clear peak; most match.
  ASSERT_GT(valid.size(), row.size() / 2) << "valid nodes of node row 12";
  std::nth_element(valid.begin(), valid.begin() + valid.size() / 2, valid.end());
  EXPECT_NEAR(valid[valid.size() / 2], 22.5 / years, 0.02 * 22.5 / years) << "median east velocity, node row 12";
}

// The real Ustica EGMS bursts through decompose-series: 301 dates in all, so that each of its six series
// cubes (and the NetCDF cube) has 301 bands. With 256 px COG tiles holding every date, one tile was 79 MB
// and the run peaked at about 820 MiB whatever --ram said; the tiles of many-band cubes are now smaller.
TEST_F(StreamedMemory, DecomposeSeriesOfEgmsPointSeriesStaysWithinTheBudget) {
  DEFORMA_REQUIRE_DATA("egms-ustica", data);
  const std::string asc = (data / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip").string();
  const std::string desc = (data / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string();
  const auto run = run_cli_measured({"decompose-series", "--egms", asc, desc, "--north-zero", "--resolution",
                                     "100", "-o", dir_->file("series"), "--ram", std::to_string(kBudgetMb),
                                     "--threads", "2", "-q"});
  expect_within_budget(run, "decompose-series of two EGMS bursts (301 dates)");
  EXPECT_TRUE(std::filesystem::exists(dir_->file("series/decompose_series.nc")));
  EXPECT_TRUE(std::filesystem::exists(dir_->file("series/up.tif")));
}

}  // namespace
}  // namespace deforma::test
