// Sub-pixel accuracy of the correlation kernels on exactly known translations (Fourier phase ramp).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

#include "correlate/correlate_support.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

using test::ErrorStats;

// Known fractional translations, covering every quarter of the pixel and both signs.
const std::vector<std::pair<double, double>> kShifts = {
    {0.25, -0.5}, {-0.37, 0.13}, {0.5, 0.5}, {1.71, -2.29}, {-3.45, 0.82}, {0.06, 0.94}, {4.6, 3.3}, {-0.81, -1.62}};

struct ShiftErrors {
  std::vector<double> abs_errors;  // both components pooled
  std::size_t nodes = 0;
  std::size_t valid = 0;
  std::array<long long, 7> flags{};
};

void accumulate_shift_errors(GridF image, const MatchOptions& options, Prefilter prefilter, ShiftErrors& out) {
  const GridU8 all_valid(image.width(), image.height(), 1);
  const GridF original = image;
  apply_prefilter(prefilter, image, all_valid);
  const ImageWindow ref{&image, nullptr, 0, 0};
  for (const auto& [dx, dy] : kShifts) {
    GridF shifted = test::fourier_shift(original, dx, dy);
    apply_prefilter(prefilter, shifted, all_valid);
    const ImageWindow sec{&shifted, nullptr, 0, 0};
    // Nodes clear of the image edges (where the shifted copy brings in mirrored content).
    const NodeGrid nodes = test::interior_nodes(image.width(), image.height(), options.halo_px(), 16);
    const GridResult result = correlate_grid(ref, sec, options, nodes);
    for (int f = 0; f < 7; ++f) out.flags[f] += result.flag_counts[f];
    for (int j = 0; j < nodes.rows; ++j)
      for (int i = 0; i < nodes.cols; ++i) {
        ++out.nodes;
        if (result.flag(i, j) != static_cast<unsigned char>(NodeFlag::kValid)) continue;
        ++out.valid;
        out.abs_errors.push_back(std::abs(result.dx_px(i, j) - dx));
        out.abs_errors.push_back(std::abs(result.dy_px(i, j) - dy));
      }
  }
}

void report(const char* label, const ShiftErrors& e, const ErrorStats& s) {
  std::printf("[accuracy] %s: %zu/%zu nodes valid, |error| median %.4f px, p95 %.4f px, rmse %.4f px; flags",
              label, e.valid, e.nodes, s.median, s.p95, s.rmse);
  for (int f = 1; f < 7; ++f)
    if (e.flags[f] > 0) std::printf(" %s %lld", to_string(static_cast<NodeFlag>(f)), e.flags[f]);
  std::printf("\n");
}

TEST(NccAccuracy, SyntheticTextureFourierShiftChip32) {
  const GridF image = test::make_noise_texture(320, 320, 1.2, 7);
  for (const Prefilter prefilter : {Prefilter::kNone, Prefilter::kHighpass}) {
    MatchOptions options;
    options.chip_px = 32;
    options.search_px = 8;
    ShiftErrors errors;
    accumulate_shift_errors(image, options, prefilter, errors);
    const ErrorStats s = test::error_stats(errors.abs_errors);
    report(("synthetic texture, ncc chip 32, prefilter " + to_string(prefilter)).c_str(), errors, s);
    EXPECT_GE(errors.valid, errors.nodes * 95 / 100);
    EXPECT_LE(s.median, 0.02);
    EXPECT_LE(s.p95, 0.05);
  }
}

// The target: Fourier-shifted real Landsat 8 texture, chip 32: median |error| <= 0.02 px, p95 <= 0.05.
TEST(NccAccuracy, LandsatTextureFourierShiftChip32) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  // Two crops of the 2016-07-18 scene: rock, snow and glacier texture.
  for (const auto& [col, row] : std::vector<std::pair<int, int>>{{200, 150}, {900, 500}}) {
    const GridF image = test::read_crop((dir / "LC80630182016200LGN00_B8_yahtse.TIF").string(), col, row, 320, 320);
    // Without prefilter every node is kept (min_snr 0): the accuracy of all nodes, smooth ones included.
    MatchOptions all_nodes;
    all_nodes.min_snr = 0;
    // With the recommended highpass prefilter and the default SNR threshold.
    MatchOptions defaults;
    for (const auto& [options, prefilter] :
         {std::pair{all_nodes, Prefilter::kNone}, std::pair{defaults, Prefilter::kHighpass}}) {
      ShiftErrors errors;
      accumulate_shift_errors(image, options, prefilter, errors);
      const ErrorStats s = test::error_stats(errors.abs_errors);
      report(("Landsat 8 crop, ncc chip 32, prefilter " + to_string(prefilter)).c_str(), errors, s);
      EXPECT_GE(errors.valid, errors.nodes * 95 / 100);
      EXPECT_LE(s.median, 0.02);
      EXPECT_LE(s.p95, 0.05);
    }
  }
}

}  // namespace
}  // namespace deforma::correlate
