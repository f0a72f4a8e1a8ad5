// The vector inner loops of the chip matcher against plain double-precision loops, including the sizes that
// take their scalar tails, and the in-place form of correlate_grid against the one on views.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "correlate/fft_plans.hpp"
#include "correlate/kernels.hpp"
#include "deforma/correlate/matcher.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

TEST(ChipKernels, DirectCorrelationMatchesAPlainSum) {
  for (const int chip : {32, 13}) {
    for (const int m : {7, 11, 4}) {
      const int stride = chip + m - 1 + 3;  // a row longer than needed, as in the matcher's window
      const auto t = random_values(static_cast<std::size_t>(chip) * chip, 1);
      const auto w = random_values(static_cast<std::size_t>(stride) * (chip + m - 1), 2);
      std::vector<float> surface(static_cast<std::size_t>(m) * m);
      detail::correlate_direct(t.data(), chip, w.data(), stride, m, surface.data());
      for (int ky = 0; ky < m; ++ky)
        for (int kx = 0; kx < m; ++kx) {
          double expected = 0;
          for (int j = 0; j < chip; ++j)
            for (int i = 0; i < chip; ++i)
              expected += double(t[j * chip + i]) * w[(j + ky) * stride + i + kx];
          EXPECT_NEAR(surface[ky * m + kx], expected, 1e-4 * chip) << "chip " << chip << " m " << m;
        }
    }
  }
}

TEST(ChipKernels, SeparableFilterMatchesAPlainSum) {
  for (const int chip : {32, 21}) {
    const int stride = chip + 7 + 5;
    const auto src = random_values(static_cast<std::size_t>(stride) * (chip + 7), 3);
    const auto wx = random_values(8, 4), wy = random_values(8, 5);
    std::vector<float> tmp(static_cast<std::size_t>(chip + 7) * chip),
        out(static_cast<std::size_t>(chip) * chip);
    detail::separable_8tap(src.data(), stride, wx.data(), wy.data(), chip, tmp.data(), out.data());
    for (int j = 0; j < chip; ++j)
      for (int i = 0; i < chip; ++i) {
        double expected = 0;
        for (int ty = 0; ty < 8; ++ty)
          for (int tx = 0; tx < 8; ++tx)
            expected += double(wy[ty]) * wx[tx] * src[(j + ty) * stride + i + tx];
        EXPECT_NEAR(out[j * chip + i], expected, 1e-4) << "chip " << chip;
      }
  }
}

TEST(ChipKernels, SumsOfTheRefinementMatchPlainSums) {
  for (const int n : {1024, 1089}) {
    const auto s = random_values(n, 6), t = random_values(n, 7), gx = random_values(n, 8),
               gy = random_values(n, 9);
    std::vector<float> mask(n);
    for (int i = 0; i < n; ++i) mask[i] = i % 7 == 3 ? 0.0f : 1.0f;
    const float mean = 0.3f, offset = -0.2f, gain = 0.8f;
    float s1 = 0, s2 = 0, st = 0, aa = 0, ab = 0, bb = 0, bx = 0, by = 0;
    detail::masked_moments(s.data(), mask.data(), t.data(), n, mean, s1, s2, st);
    detail::cross_moments(gx.data(), gy.data(), n, aa, ab, bb);
    detail::project_residual(s.data(), t.data(), gx.data(), gy.data(), n, mean, offset, gain, bx, by);
    double e1 = 0, e2 = 0, et = 0, eaa = 0, eab = 0, ebb = 0, ebx = 0, eby = 0;
    for (int i = 0; i < n; ++i) {
      const double v = (double(s[i]) - mean) * mask[i];
      e1 += v;
      e2 += v * v;
      et += t[i] * v;
      eaa += double(gx[i]) * gx[i];
      eab += double(gx[i]) * gy[i];
      ebb += double(gy[i]) * gy[i];
      const double e = (double(s[i]) - mean - offset) - gain * double(t[i]);
      ebx += gx[i] * e;
      eby += gy[i] * e;
    }
    for (const auto& [got, expected] :
         {std::pair{s1, e1}, {s2, e2}, {st, et}, {aa, eaa}, {ab, eab}, {bb, ebb}, {bx, ebx}, {by, eby}})
      EXPECT_NEAR(got, expected, 1e-3) << "n " << n;
  }
}

TEST(ChipKernels, CopyValidZeroesInvalidValuesAndCountsTheRest) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const int n : {40, 37}) {
    std::vector<float> src(n);
    for (int i = 0; i < n; ++i) src[i] = 1.0f + i;
    std::vector<std::uint8_t> ok(n, 1);
    std::vector<float> dst(n, -1.0f);
    std::vector<std::uint8_t> state(n, 9);
    // Entirely valid (the fast path), without and with a mask.
    EXPECT_EQ(detail::copy_valid(src.data(), nullptr, n, dst.data(), state.data()), n);
    EXPECT_EQ(dst, src);
    EXPECT_EQ(state, std::vector<std::uint8_t>(n, 1));
    EXPECT_EQ(detail::copy_valid(src.data(), ok.data(), n, dst.data(), state.data()), n);
    // Masked pixels, NaN and infinities, in the vector part and in the tail.
    ok[3] = 0;
    ok[n - 1] = 0;
    src[10] = nan;
    src[n - 2] = inf;
    const int count = detail::copy_valid(src.data(), ok.data(), n, dst.data(), state.data());
    EXPECT_EQ(count, n - 4);
    for (int i = 0; i < n; ++i) {
      const bool bad = i == 3 || i == n - 1 || i == 10 || i == n - 2;
      EXPECT_EQ(state[i], bad ? 0 : 1) << i;
      EXPECT_EQ(dst[i], bad ? 0.0f : src[i]) << i;
    }
    // Without a mask only the non-finite values are invalid.
    EXPECT_EQ(detail::copy_valid(src.data(), nullptr, n, dst.data(), state.data()), n - 2);
  }
}

TEST(ChipKernels, NormalizationZeroesFlatChips) {
  std::vector<float> values = {2.0f, 3.0f, -4.0f, 5.0f, 1.0f, 6.0f, 7.0f};
  const std::vector<double> var = {4.0, 0.0, 16.0, 1e-9, 9.0, 0.5, 100.0};
  const std::vector<float> original = values;
  EXPECT_TRUE(detail::normalize_by_deviation(values.data(), var.data(), 7, 0.5, 0.25));
  for (int i = 0; i < 7; ++i) {
    const float expected = var[i] > 0.25 ? static_cast<float>(original[i] * 0.5 / std::sqrt(var[i])) : 0.0f;
    EXPECT_FLOAT_EQ(values[i], expected) << i;
  }
  std::vector<float> flat = {1.0f, 2.0f};
  const std::vector<double> low = {0.1, 0.2};
  EXPECT_FALSE(detail::normalize_by_deviation(flat.data(), low.data(), 2, 1.0, 0.25));
  EXPECT_EQ(flat, (std::vector<float>{0.0f, 0.0f}));
}

TEST(FftSizes, FastSizesCoverEverySizeWithSmallPrimesOnly) {
  EXPECT_EQ(detail::fast_fft_size(58), 64);  // 60 is much slower with estimated plans
  EXPECT_EQ(detail::fast_fft_size(80), 80);
  EXPECT_EQ(detail::fast_fft_size(96), 100);  // 96 is slower than 100
  for (int n = 1; n <= 600; ++n) {
    const int size = detail::fast_fft_size(n);
    ASSERT_GE(size, n);
    int r = size;
    for (int p : {2, 3, 5})
      while (r % p == 0) r /= p;
    EXPECT_EQ(r, 1) << n << " -> " << size;
  }
}

TEST(CorrelateGrid, InPlaceGivesTheSameResultAsViews) {
  const int size = 256;
  GridF ref = test::make_texture(size, size, 11);
  GridF sec(size, size);
  for (int r = 0; r < size; ++r)
    for (int c = 0; c < size; ++c) sec(c, r) = ref(std::max(0, c - 9), std::min(size - 1, r + 4));
  GridU8 valid(size, size, 1);
  for (int r = 100; r < 130; ++r)
    for (int c = 60; c < 90; ++c) valid(c, r) = 0;  // a hole, so that the hole filling runs too
  MatchOptions options;
  options.search_px = 16;  // coarse-to-fine
  options.prefilter = Prefilter::kHighpass;
  NodeGrid nodes;
  nodes.first_col = nodes.first_row = 40;
  nodes.step_px = 16;
  nodes.cols = nodes.rows = 12;
  const GridResult on_views = correlate_grid({&ref, &valid, 0, 0}, {&sec, &valid, 0, 0}, options, nodes);
  ImageBuffer ref_buffer{ref, valid, 0, 0}, sec_buffer{sec, valid, 0, 0};
  const GridResult in_place = correlate_grid_in_place(ref_buffer, sec_buffer, options, nodes);
  // Near the edges (replicated pixels) and the hole a few nodes are off; the rest find the shift.
  EXPECT_GT(on_views.flag_counts[0], 80);
  long long accurate = 0;
  for (int j = 0; j < nodes.rows; ++j)
    for (int i = 0; i < nodes.cols; ++i) {
      EXPECT_EQ(on_views.flag(i, j), in_place.flag(i, j));
      if (on_views.flag(i, j) != 0) continue;
      EXPECT_EQ(on_views.dx_px(i, j), in_place.dx_px(i, j));
      EXPECT_EQ(on_views.dy_px(i, j), in_place.dy_px(i, j));
      accurate +=
          std::abs(on_views.dx_px(i, j) - 9.0f) < 0.05f && std::abs(on_views.dy_px(i, j) + 4.0f) < 0.05f;
    }
  EXPECT_GE(accurate, on_views.flag_counts[0] * 9 / 10);
  // The buffers now hold the filtered images.
  EXPECT_EQ(ref_buffer.values(5, 5), prefiltered(Prefilter::kHighpass, ref, valid)(5, 5));
}

}  // namespace
}  // namespace deforma::correlate
