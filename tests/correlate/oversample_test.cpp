// Frequency-domain oversampling of the chips (x2, as ampcor does) on speckled SAR amplitude: what it
// changes in accuracy, measured on the real Sentinel-1 crop shifted by a known fractional offset.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "correlate_support.hpp"
#include "deforma/core/error.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/correlate/oversample.hpp"
#include "deforma/correlate/sar.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

TEST(Oversample, KeepsTheSamplesAndInterpolatesBandLimited) {
  // A band-limited signal (a few low frequencies): its x2 oversampling is the signal at half pixels.
  constexpr int kW = 48, kH = 40;
  auto signal = [](double c, double r) {
    return std::sin(2 * M_PI * 3 * c / kW) + 0.5 * std::cos(2 * M_PI * (2 * r / kH + c / kW));
  };
  GridF image(kW, kH);
  for (int r = 0; r < kH; ++r)
    for (int c = 0; c < kW; ++c) image(c, r) = static_cast<float>(signal(c, r));
  GridU8 valid(kW, kH, 1), valid2;
  const GridF up = fourier_oversample(image, valid, 2, &valid2);
  ASSERT_EQ(up.width(), 2 * kW);
  ASSERT_EQ(up.height(), 2 * kH);
  double worst = 0;
  for (int r = 0; r < 2 * kH; ++r)
    for (int c = 0; c < 2 * kW; ++c) worst = std::max(worst, std::abs(up(c, r) - signal(c / 2.0, r / 2.0)));
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(valid2(5, 7), 1);
  // An invalid input pixel makes the output pixels around it invalid.
  valid(10, 10) = 0;
  fourier_oversample(image, valid, 2, &valid2);
  EXPECT_EQ(valid2(20, 20), 0);
  EXPECT_EQ(valid2(21, 21), 0);
  EXPECT_EQ(valid2(19, 19), 0);
  EXPECT_EQ(valid2(23, 23), 1);
  EXPECT_THROW(fourier_oversample(image, valid, 3, nullptr), InvalidArgument);
}

// The real S1 crop shifted by (2.37, -1.61) px, each image with its own 8-look gamma speckle, in decibels
// as `correlate --input-kind sar` matches it; chip 64 and 32, with and without oversampling.
TEST(Oversample, SpeckledShiftedSentinel1CropMeasuredAndOffByDefault) {
  EXPECT_EQ(CorrelateOptions{}.oversample, 1);
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  const GridF crop =
      test::read_crop((dir / "S1B_EW_GRDM_1SDH_20161005T101835.tif").string(), 200, 200, 512, 512);
  const double true_dx = 2.37, true_dy = -1.61;
  const GridF moved = test::fourier_shift(crop, true_dx, true_dy);
  std::mt19937 rng(11);
  std::gamma_distribution<float> speckle(8.f, 1.f / 8.f);
  GridF ref(512, 512), sec(512, 512);
  for (std::size_t k = 0; k < crop.size(); ++k) {
    ref.data()[k] = 10.f * std::log10(std::max(1e-4f, crop.data()[k]) * speckle(rng));
    sec.data()[k] = 10.f * std::log10(std::max(1e-4f, moved.data()[k]) * speckle(rng));
  }
  const GridU8 valid(512, 512, 1);
  const ImageWindow rw{&ref, &valid, 0, 0}, sw{&sec, &valid, 0, 0};
  for (const int chip : {64, 32}) {
    MatchOptions options = sar_match_options(MatchOptions{});
    options.chip_px = chip;
    options.search_px = 6;
    options.prefilter = Prefilter::kHighpass;
    // Nodes away from the wrapped edges of the periodic shift.
    NodeGrid nodes{64, 64, 16, 25, 25};
    double median[2] = {0, 0};
    for (const int factor : {1, 2}) {
      const GridResult result = correlate_grid_oversampled(rw, sw, options, nodes, factor);
      std::vector<double> errors;
      for (std::size_t k = 0; k < result.dx_px.size(); ++k) {
        if (result.flag.data()[k] != 0) continue;
        errors.push_back(std::hypot(result.dx_px.data()[k] - true_dx, result.dy_px.data()[k] - true_dy));
      }
      const auto stats = test::error_stats(errors);
      median[factor - 1] = stats.median;
      std::printf(
          "[ measured ] chip %d, oversample %d: %zu of 625 nodes valid, median %.4f px, p95 %.4f px\n", chip,
          factor, errors.size(), stats.median, stats.p95);
      EXPECT_GE(errors.size(), 560u);
    }
    // Measured: oversampling does not help here (chip 64: median 0.040 px without, 0.051 px with; chip 32:
    // 0.089 and 0.109 px), so it stays off by default; it must not do worse than this.
    EXPECT_LE(median[1], median[0] + 0.03) << "chip " << chip;
  }
}

}  // namespace
}  // namespace deforma::correlate
