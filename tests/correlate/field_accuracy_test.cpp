// Accuracy on a known spatially varying displacement field (smooth shear plus a glacier-like band of fast
// motion) applied by sub-pixel warping, clean and with the nuisances of real pairs: noise, an illumination
// and contrast change, and 20 % nodata holes. Also the real Landsat 8 pair on stable rock.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <vector>

#include "correlate/correlate_support.hpp"
#include "deforma/io/vector.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

constexpr int kSize = 448;

// Smooth shear everywhere plus a 120 px wide band (rows ~164..284) moving up to 7 px along +x, with
// cosine-tapered 40 px margins, like a glacier tongue between stable walls.
void glacier_field(double c, double r, double& u, double& v) {
  const double centre = 0.5 * kSize;
  const double distance = std::abs(r - centre);
  double band = 0.0;
  if (distance < 40) {
    band = 1.0;
  } else if (distance < 80) {
    band = 0.5 + 0.5 * std::cos(std::numbers::pi * (distance - 40) / 40);
  }
  u = 0.6 + 0.002 * (r - centre) + 7.0 * band * (1.0 - 0.3 * std::pow((c - centre) / centre, 2));
  v = -0.4 + 0.0015 * (c - centre) + 0.8 * band;
}

// Largest partial derivative of the field (px per px) over the 32 x 32 chip centred on (c, r).
double field_gradient(double c, double r) {
  double worst = 0;
  for (double y = r - 16; y <= r + 16; y += 2)
    for (double x = c - 16; x <= c + 16; x += 2) {
      double u0, v0, u1, v1, u2, v2;
      glacier_field(x, y, u0, v0);
      glacier_field(x + 1, y, u1, v1);
      glacier_field(x, y + 1, u2, v2);
      worst = std::max({worst, std::abs(u1 - u0), std::abs(v1 - v0), std::abs(u2 - u0), std::abs(v2 - v0)});
    }
  return worst;
}

struct FieldRun {
  test::ErrorStats stats;
  test::ErrorStats smooth;  // nodes where the field gradient is below 0.02 px/px (outside the band margins)
  long long nodes = 0;
  long long valid = 0;
  long long masked = 0;
  double worst = 0;
};

FieldRun run_field(GridF ref, GridU8 ref_valid, GridF sec, GridU8 sec_valid, Prefilter prefilter,
                   const char* label) {
  MatchOptions options;  // chip 32, search 16 (coarse-to-fine)
  options.prefilter = prefilter;  // applied by correlate_grid at each level
  const NodeGrid nodes = test::interior_nodes(kSize, kSize, options.halo_px(), 8);
  const GridResult g = correlate_grid({&ref, &ref_valid, 0, 0}, {&sec, &sec_valid, 0, 0}, options, nodes);
  FieldRun run;
  std::vector<double> errors, smooth_errors;
  for (int j = 0; j < nodes.rows; ++j)
    for (int i = 0; i < nodes.cols; ++i) {
      ++run.nodes;
      if (g.flag(i, j) == static_cast<unsigned char>(NodeFlag::kMasked)) ++run.masked;
      if (g.flag(i, j) != 0) {
        EXPECT_TRUE(std::isnan(g.dx_px(i, j)) && std::isnan(g.dy_px(i, j))) << "invalid node with a value";
        continue;
      }
      ++run.valid;
      double u = 0, v = 0;
      const double c = nodes.first_col + i * nodes.step_px, r = nodes.first_row + j * nodes.step_px;
      glacier_field(c, r, u, v);
      const double e = std::hypot(g.dx_px(i, j) - u, g.dy_px(i, j) - v);
      errors.push_back(e);
      if (field_gradient(c, r) < 0.02) smooth_errors.push_back(e);
      run.worst = std::max(run.worst, e);
    }
  run.stats = test::error_stats(errors);
  run.smooth = test::error_stats(smooth_errors);
  std::printf("[field] %s: %lld/%lld valid (%lld masked), |error| rmse %.3f px, median %.3f px, p95 %.3f px, "
              "max %.2f px; where the gradient < 0.02: %zu nodes, rmse %.3f px, p95 %.3f px\n",
              label, run.valid, run.nodes, run.masked, run.stats.rmse, run.stats.median, run.stats.p95, run.worst,
              run.smooth.count, run.smooth.rmse, run.smooth.p95);
  return run;
}

class GlacierField : public ::testing::Test {
 protected:
  void SetUp() override {
    ref = test::make_noise_texture(kSize, kSize, 1.3, 77);
    sec = test::warp_by_field(ref, glacier_field);
    all_valid = GridU8(kSize, kSize, 1);
  }
  GridF ref, sec;
  GridU8 all_valid;
};

TEST_F(GlacierField, Clean) {
  const FieldRun run = run_field(ref, all_valid, sec, all_valid, Prefilter::kNone, "clean");
  EXPECT_GE(run.valid, run.nodes * 92 / 100);
  // Most of the error comes from the band margins, where the displacement changes by up to 0.27 px per px:
  // a 32 px chip then spans several pixels of motion and no single shift fits it.
  EXPECT_LE(run.stats.rmse, 0.3);
  EXPECT_LE(run.stats.median, 0.02);
  EXPECT_LE(run.smooth.rmse, 0.03);
}

TEST_F(GlacierField, WithNoise) {
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 25.0f);  // about 1/6 of the texture's standard deviation
  GridF noisy_ref = ref, noisy_sec = sec;
  for (float& v : noisy_ref.values()) v += noise(rng);
  for (float& v : noisy_sec.values()) v += noise(rng);
  const FieldRun run = run_field(noisy_ref, all_valid, noisy_sec, all_valid, Prefilter::kNone, "noise");
  EXPECT_GE(run.valid, run.nodes * 92 / 100);
  EXPECT_LE(run.stats.rmse, 0.3);
  EXPECT_LE(run.stats.median, 0.05);
  EXPECT_LE(run.smooth.rmse, 0.06);
}

TEST_F(GlacierField, WithIlluminationAndContrastChange) {
  GridF changed = sec;
  for (int r = 0; r < kSize; ++r)
    for (int c = 0; c < kSize; ++c)
      changed(c, r) = 0.55f * changed(c, r) + 300.0f + 0.4f * static_cast<float>(c) - 0.25f * static_cast<float>(r);
  for (const Prefilter prefilter : {Prefilter::kNone, Prefilter::kHighpass, Prefilter::kWallis}) {
    const FieldRun run = run_field(ref, all_valid, changed, all_valid, prefilter,
                                   ("illumination, prefilter " + to_string(prefilter)).c_str());
    EXPECT_GE(run.valid, run.nodes * 92 / 100);
    EXPECT_LE(run.stats.rmse, 0.35);
    EXPECT_LE(run.stats.median, 0.03);
    EXPECT_LE(run.smooth.rmse, 0.04);
  }
}

TEST_F(GlacierField, WithTwentyPercentNodataHoles) {
  // Random discs of nodata covering about 20 % of each image (NaN in the values, and 0 in the mask).
  auto punch = [](GridF& values, GridU8& valid, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> pos(0, kSize), radius(6, 22);
    long long holes = 0;
    while (holes < static_cast<long long>(0.2 * kSize * kSize)) {
      const double cx = pos(rng), cy = pos(rng), rad = radius(rng);
      for (int r = std::max(0, int(cy - rad)); r < std::min(kSize, int(cy + rad) + 1); ++r)
        for (int c = std::max(0, int(cx - rad)); c < std::min(kSize, int(cx + rad) + 1); ++c)
          if (std::hypot(c - cx, r - cy) <= rad && valid(c, r)) {
            valid(c, r) = 0;
            values(c, r) = std::numeric_limits<float>::quiet_NaN();
            ++holes;
          }
    }
  };
  GridF ref_holes = ref, sec_holes = sec;
  GridU8 ref_valid = all_valid, sec_valid = all_valid;
  punch(ref_holes, ref_valid, 1);
  punch(sec_holes, sec_valid, 2);
  const FieldRun run = run_field(ref_holes, ref_valid, sec_holes, sec_valid, Prefilter::kNone, "20 % holes");
  // Nodes whose chips hold more than 10 % holes are flagged masked, never filled with garbage.
  EXPECT_GT(run.masked, run.nodes / 4);
  EXPECT_GE(run.valid, run.nodes / 10);
  EXPECT_LE(run.stats.rmse, 0.3);
  EXPECT_LE(run.stats.median, 0.03);
  EXPECT_LE(run.smooth.rmse, 0.05);
  EXPECT_LE(run.worst, 2.0);
}

// The real pair: Landsat 8, 16 days apart. Stable rock must not move: NMAD of each component <= 0.08 px at
// chip 32 with the recommended highpass prefilter. The median is the co-registration bias of the scenes.
TEST(YahtsePair, StableRockPrecision) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  const io::Raster a = io::Raster::open((dir / "LC80630182016200LGN00_B8_yahtse.TIF").string());
  const io::Raster b = io::Raster::open((dir / "LC80630182016216LGN00_B8_yahtse.TIF").string());
  io::BandWindow ref = a.read_all(1);
  io::BandWindow sec = b.read_all(1);
  const GridU8 rock = io::rasterize(
      io::read_polygons((dir / "StEliasMtn_utm7v_rock.gmt").string(), a.info().crs_wkt), a.info());
  MatchOptions options;
  options.prefilter = Prefilter::kHighpass;
  options.chip_px = 32;
  options.search_px = 24;  // the glacier moves up to ~18 px
  NodeGrid nodes;
  nodes.step_px = 16;
  nodes.first_col = 16;
  nodes.first_row = 16;
  nodes.cols = (ref.values.width() - 32) / 16 + 1;
  nodes.rows = (ref.values.height() - 32) / 16 + 1;
  const GridResult g =
      correlate_grid({&ref.values, &ref.valid, 0, 0}, {&sec.values, &sec.valid, 0, 0}, options, nodes);
  std::vector<double> dx, dy;
  long long rock_nodes = 0;
  for (int j = 0; j < nodes.rows; ++j)
    for (int i = 0; i < nodes.cols; ++i) {
      if (!rock(nodes.first_col + i * 16, nodes.first_row + j * 16)) continue;
      ++rock_nodes;
      if (g.flag(i, j) != 0) continue;
      dx.push_back(g.dx_px(i, j));
      dy.push_back(g.dy_px(i, j));
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto nmad = [&](const std::vector<double>& v) {
    const double m = median(v);
    std::vector<double> d;
    for (double x : v) d.push_back(std::abs(x - m));
    return 1.4826 * median(d);
  };
  ASSERT_GT(dx.size(), 100u);
  std::printf("[yahtse] %zu/%lld rock nodes valid; bias dx %.3f px dy %.3f px; NMAD dx %.3f px dy %.3f px; "
              "all nodes: %lld valid of %d\n",
              dx.size(), rock_nodes, median(dx), median(dy), nmad(dx), nmad(dy), g.flag_counts[0],
              nodes.cols * nodes.rows);
  EXPECT_GE(dx.size(), static_cast<std::size_t>(rock_nodes * 9 / 10));
  EXPECT_LE(nmad(dx), 0.08);
  EXPECT_LE(nmad(dy), 0.08);
  // The co-registration bias of the two scenes is small but real.
  EXPECT_LT(std::abs(median(dx)), 0.5);
  EXPECT_LT(std::abs(median(dy)), 0.5);
}

}  // namespace
}  // namespace deforma::correlate
