// The library side of `deforma cog` and `deforma stats`: copy_to_cog and band_statistics on a small raster.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/io/band_statistics.hpp"
#include "deforma/io/copy_to_cog.hpp"
#include "deforma/io/raster.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

// 300 x 200 values 0..6 with every 11th pixel nodata.
GridF sample_values() {
  GridF values(300, 200);
  for (std::size_t i = 0; i < values.size(); ++i) {
    values.data()[i] = i % 11 == 0 ? -9999.0f : static_cast<float>(i % 7);
  }
  return values;
}

TEST(BandOperations, StatisticsOfTheValidPixelsForAnyThreadCount) {
  test::TempDir dir;
  const std::string path = dir.file("values.tif");
  const GridF values = sample_values();
  test::write_test_geotiff(path, values, "Float32", -9999.0, true);
  double sum = 0, sum_sq = 0;
  std::int64_t n = 0;
  for (float v : values.values()) {
    if (v == -9999.0f) continue;
    ++n, sum += v, sum_sq += double(v) * v;
  }
  const double mean = sum / n;
  for (int threads : {1, 3}) {
    BandStatisticsOptions options;
    options.path = path;
    options.threads = threads;
    const BandStatistics stats = band_statistics(options);
    EXPECT_EQ(stats.pixels, 300 * 200);
    EXPECT_EQ(stats.valid, n);
    EXPECT_EQ(stats.min, 0.0);
    EXPECT_EQ(stats.max, 6.0);
    EXPECT_NEAR(stats.mean, mean, 1e-9);
    EXPECT_NEAR(stats.stddev, std::sqrt(sum_sq / n - mean * mean), 1e-9);
  }
  BandStatisticsOptions missing;
  missing.path = path;
  missing.band = 2;
  EXPECT_THROW(band_statistics(missing), InvalidArgument);
}

TEST(BandOperations, CopyToCogKeepsValuesAndWritesNodataWhereInvalid) {
  test::TempDir dir;
  const std::string input = dir.file("values.tif");
  const GridF values = sample_values();
  test::write_test_geotiff(input, values, "Float32", -9999.0, true);
  CopyToCogOptions options;
  options.input = input;
  options.output = dir.file("copy.tif");
  options.provenance.inputs = {input};
  const CopyToCogSummary summary = copy_to_cog(options);
  EXPECT_EQ(summary.bands, 1);
  EXPECT_GE(summary.windows, 1u);
  EXPECT_EQ(summary.valid_pixels + summary.nodata_pixels, 300 * 200);
  EXPECT_EQ(summary.nodata_pixels, (300 * 200 + 10) / 11);
  const Raster copy = Raster::open(options.output);
  ASSERT_EQ(copy.info().width, 300);
  const BandWindow w = copy.read(1, Window{0, 0, 300, 200});
  for (std::size_t i = 0; i < values.size(); ++i) {
    const bool valid = values.data()[i] != -9999.0f;
    ASSERT_EQ(w.valid.data()[i] != 0, valid) << i;
    if (valid) {
      ASSERT_EQ(w.values.data()[i], values.data()[i]) << i;
    }
  }

  test::CancelAfter stop(0);
  options.output = dir.file("cancelled.tif");
  options.progress = &stop;
  EXPECT_THROW(copy_to_cog(options), Cancelled);
  EXPECT_FALSE(std::filesystem::exists(options.output));
}

}  // namespace
}  // namespace deforma::io
