// Behaviour of the correlation kernels: parsing and validation, node flags, every method recovering a known
// displacement, guesses and coarse-to-fine search, and identical results for any thread count.
#include <gtest/gtest.h>

#include <filesystem>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include <tbb/global_control.h>

#include "correlate/correlate_support.hpp"
#include "correlate/matcher_count.hpp"
#include "deforma/core/error.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool is(NodeFlag expected, const NodeResult& r) {
  return r.flag == expected;
}

TEST(CorrelateParse, MethodsAndPrefilters) {
  EXPECT_EQ(parse_method("ncc"), Method::kNcc);
  EXPECT_EQ(parse_method("phase"), Method::kPhase);
  EXPECT_EQ(parse_method("flow"), Method::kFlow);
  EXPECT_EQ(parse_prefilter("none"), Prefilter::kNone);
  EXPECT_EQ(parse_prefilter("highpass"), Prefilter::kHighpass);
  EXPECT_EQ(parse_prefilter("wallis"), Prefilter::kWallis);
  EXPECT_EQ(parse_prefilter("orientation"), Prefilter::kOrientation);
  for (Method m : {Method::kNcc, Method::kPhase, Method::kFlow}) EXPECT_EQ(parse_method(to_string(m)), m);
  try {
    parse_method("sad");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--method"), std::string::npos);
  }
  try {
    parse_prefilter("sobel");
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--prefilter"), std::string::npos);
  }
}

TEST(CorrelateOptions, ValidateNamesTheParameter) {
  auto message = [](const MatchOptions& o) {
    try {
      o.validate();
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  MatchOptions o;
  EXPECT_EQ(message(o), "");
  o.chip_px = 4;
  EXPECT_NE(message(o).find("--chip"), std::string::npos);
  o = MatchOptions{};
  o.search_px = 0;
  EXPECT_NE(message(o).find("--search"), std::string::npos);
  o = MatchOptions{};
  o.min_snr = -1;
  EXPECT_NE(message(o).find("--min-snr"), std::string::npos);
  o = MatchOptions{};
  o.method = Method::kPhase;
  o.search_px = 12;
  o.chip_px = 16;
  o.coarse_above_px = 0;  // without coarse-to-fine, phase correlation cannot see 12 px in a 16 px chip
  EXPECT_NE(message(o).find("--search"), std::string::npos);
  o.coarse_above_px = 6;
  EXPECT_EQ(message(o), "");
  // Options that no operation exposes are named by their field, never by a command-line flag that does not
  // exist.
  o = MatchOptions{};
  o.max_invalid_fraction = 1.5;
  EXPECT_NE(message(o).find("max_invalid_fraction"), std::string::npos);
  EXPECT_EQ(message(o).find("--"), std::string::npos) << message(o);
  o = MatchOptions{};
  o.coarse_above_px = -1;
  EXPECT_NE(message(o).find("coarse_above_px"), std::string::npos);
  EXPECT_EQ(message(o).find("--"), std::string::npos) << message(o);
  EXPECT_GE(MatchOptions{}.halo_px(), MatchOptions{}.chip_px / 2 + MatchOptions{}.search_px);
}

class TranslatedPair : public ::testing::Test {
 protected:
  static constexpr double kDx = 2.37;
  static constexpr double kDy = -1.62;
  void SetUp() override {
    ref = test::make_noise_texture(256, 256, 1.2, 3);
    sec = test::fourier_shift(ref, kDx, kDy);
  }
  ImageWindow ref_window() const { return ImageWindow{&ref, nullptr, 0, 0}; }
  ImageWindow sec_window() const { return ImageWindow{&sec, nullptr, 0, 0}; }
  GridF ref, sec;
};

TEST_F(TranslatedPair, NccMatchRecoversTheShift) {
  Matcher matcher(MatchOptions{});
  const NodeResult r = matcher.match(ref_window(), sec_window(), 128, 128);
  ASSERT_TRUE(is(NodeFlag::kValid, r)) << to_string(r.flag);
  EXPECT_NEAR(r.dx_px, kDx, 0.01);
  EXPECT_NEAR(r.dy_px, kDy, 0.01);
  EXPECT_GT(r.corr, 0.99);
  EXPECT_GT(r.snr, 2.0);
}

TEST_F(TranslatedPair, SubpixelAlternativesAllLandNearTheShift) {
  for (Subpixel s : {Subpixel::kParabolic, Subpixel::kGaussian, Subpixel::kIterative}) {
    MatchOptions o;
    o.subpixel = s;
    Matcher matcher(o);
    const NodeResult r = matcher.match(ref_window(), sec_window(), 100, 140);
    ASSERT_TRUE(is(NodeFlag::kValid, r));
    EXPECT_NEAR(r.dx_px, kDx, s == Subpixel::kIterative ? 0.01 : 0.2);
    EXPECT_NEAR(r.dy_px, kDy, s == Subpixel::kIterative ? 0.01 : 0.2);
  }
}

TEST_F(TranslatedPair, WindowsWithOffsetOriginsUseImageCoordinates) {
  // The same pair seen through windows that start elsewhere: results must not move.
  GridF ref_part(160, 160), sec_part(170, 150);
  for (int r = 0; r < 160; ++r)
    for (int c = 0; c < 160; ++c) ref_part(c, r) = ref(c + 40, r + 50);
  for (int r = 0; r < 150; ++r)
    for (int c = 0; c < 170; ++c) sec_part(c, r) = sec(c + 30, r + 55);
  Matcher matcher(MatchOptions{});
  const NodeResult whole = matcher.match(ref_window(), sec_window(), 120, 130);
  const NodeResult part = matcher.match(ImageWindow{&ref_part, nullptr, 40, 50},
                                        ImageWindow{&sec_part, nullptr, 30, 55}, 120, 130);
  ASSERT_TRUE(is(NodeFlag::kValid, part)) << to_string(part.flag);
  EXPECT_EQ(whole.dx_px, part.dx_px);
  EXPECT_EQ(whole.dy_px, part.dy_px);
}

TEST_F(TranslatedPair, PhaseRecoversTheShift) {
  MatchOptions o;
  o.method = Method::kPhase;
  o.search_px = 8;
  const NodeGrid nodes = test::interior_nodes(256, 256, o.halo_px(), 16);
  const GridResult g = correlate_grid(ref_window(), sec_window(), o, nodes);
  std::vector<double> errors;
  for (int j = 0; j < nodes.rows; ++j)
    for (int i = 0; i < nodes.cols; ++i) {
      ASSERT_EQ(g.flag(i, j), 0) << to_string(static_cast<NodeFlag>(g.flag(i, j)));
      errors.push_back(std::abs(g.dx_px(i, j) - kDx));
      errors.push_back(std::abs(g.dy_px(i, j) - kDy));
    }
  const test::ErrorStats s = test::error_stats(errors);
  EXPECT_LE(s.median, 0.03);
  EXPECT_LE(s.p95, 0.08);
}

TEST_F(TranslatedPair, PhaseIsInsensitiveToAnIlluminationChange) {
  GridF darker = sec;
  for (int r = 0; r < darker.height(); ++r)
    for (int c = 0; c < darker.width(); ++c) darker(c, r) = 0.6f * darker(c, r) + 150.0f + 0.3f * c;
  MatchOptions o;
  o.method = Method::kPhase;
  o.search_px = 8;
  Matcher matcher(o);
  const NodeResult r = matcher.match(ref_window(), ImageWindow{&darker, nullptr, 0, 0}, 128, 128);
  ASSERT_TRUE(is(NodeFlag::kValid, r)) << to_string(r.flag);
  EXPECT_NEAR(r.dx_px, kDx, 0.05);
  EXPECT_NEAR(r.dy_px, kDy, 0.05);
}

TEST(CorrelateFlow, DenseFlowRecoversASmallSmoothShift) {
  const GridF ref = test::make_noise_texture(192, 192, 1.5, 11);
  const GridF sec = test::fourier_shift(ref, 0.8, -0.45);
  const GridU8 valid(192, 192, 1);
  const FlowField flow = dense_flow(ref, valid, sec, valid);
  std::vector<double> errors;
  for (int r = 24; r < 168; r += 4)
    for (int c = 24; c < 168; c += 4) {
      errors.push_back(std::abs(flow.dx_px(c, r) - 0.8));
      errors.push_back(std::abs(flow.dy_px(c, r) + 0.45));
    }
  const test::ErrorStats s = test::error_stats(errors);
  EXPECT_LE(s.median, 0.1);
  // Through the node loop: sampled at nodes, evaluated with NCC.
  MatchOptions o;
  o.method = Method::kFlow;
  o.search_px = 4;
  const NodeGrid nodes = test::interior_nodes(192, 192, o.halo_px(), 16);
  const GridResult g =
      correlate_grid(ImageWindow{&ref, nullptr, 0, 0}, ImageWindow{&sec, nullptr, 0, 0}, o, nodes);
  int valid_nodes = 0;
  for (int j = 0; j < nodes.rows; ++j)
    for (int i = 0; i < nodes.cols; ++i) {
      if (g.flag(i, j) != 0) continue;
      ++valid_nodes;
      EXPECT_NEAR(g.dx_px(i, j), 0.8, 0.25);
      EXPECT_NEAR(g.dy_px(i, j), -0.45, 0.25);
      EXPECT_GT(g.corr(i, j), 0.9);
    }
  EXPECT_GE(valid_nodes, nodes.cols * nodes.rows * 9 / 10);
  EXPECT_THROW(dense_flow(ref, valid, GridF(10, 10), GridU8(10, 10, 1)), InvalidArgument);
}

TEST_F(TranslatedPair, EvaluateRatesTheTrueDisplacementAboveAWrongOne) {
  MatchOptions o;
  o.search_px = 6;
  const NodeResult good = evaluate_displacement(ref_window(), sec_window(), 128, 128, kDx, kDy, o);
  const NodeResult bad = evaluate_displacement(ref_window(), sec_window(), 128, 128, kDx + 3, kDy - 2, o);
  ASSERT_TRUE(is(NodeFlag::kValid, good)) << to_string(good.flag);
  EXPECT_GT(good.corr, 0.99);
  EXPECT_LT(bad.corr, 0.6);
  EXPECT_GT(good.snr, bad.snr);
  EXPECT_FLOAT_EQ(good.dx_px, static_cast<float>(kDx));
}

TEST(CorrelateFlags, ConstantImagesHaveNoTexture) {
  const GridF flat(128, 128, 1234.0f);
  const GridF texture = test::make_noise_texture(128, 128, 1.2, 5);
  Matcher matcher(MatchOptions{});
  EXPECT_TRUE(
      is(NodeFlag::kNoTexture, matcher.match({&flat, nullptr, 0, 0}, {&texture, nullptr, 0, 0}, 64, 64)));
  EXPECT_TRUE(
      is(NodeFlag::kNoTexture, matcher.match({&texture, nullptr, 0, 0}, {&flat, nullptr, 0, 0}, 64, 64)));
  const NodeResult r = matcher.match({&flat, nullptr, 0, 0}, {&flat, nullptr, 0, 0}, 64, 64);
  EXPECT_TRUE(is(NodeFlag::kNoTexture, r));
  EXPECT_TRUE(std::isnan(r.dx_px));
}

TEST(CorrelateFlags, UnrelatedImagesAreNotMatched) {
  // Two independent textures: whatever the correlation surface looks like, nodes must not pass as valid.
  const GridF a = test::make_noise_texture(320, 320, 1.2, 41);
  const GridF b = test::make_noise_texture(320, 320, 1.2, 42);
  for (const Prefilter prefilter : {Prefilter::kNone, Prefilter::kHighpass}) {
    GridF fa = a, fb = b;
    const GridU8 valid(320, 320, 1);
    apply_prefilter(prefilter, fa, valid);
    apply_prefilter(prefilter, fb, valid);
    MatchOptions o;
    o.search_px = 8;
    const NodeGrid nodes = test::interior_nodes(320, 320, o.halo_px(), 8);
    const GridResult g = correlate_grid({&fa, nullptr, 0, 0}, {&fb, nullptr, 0, 0}, o, nodes);
    const long long total = static_cast<long long>(nodes.cols) * nodes.rows;
    std::printf("[flags] unrelated textures, prefilter %s: %lld of %lld nodes pass as valid\n",
                to_string(prefilter).c_str(), g.flag_counts[0], total);
    EXPECT_LE(g.flag_counts[0], total / 50);
  }
}

// correlate_grid skips the full-range check of a fine match whose correlation is >= 0.7 (kConfidentCorr):
// the best match of unrelated highpassed chips over a whole +-24 px search must stay below that.
TEST(CorrelateFlags, UnrelatedChipsStayBelowTheConfidentCorrelation) {
  auto check = [](const GridF& a, const GridF& b, const char* label) {
    MatchOptions o;
    o.prefilter = Prefilter::kHighpass;
    o.search_px = 24;
    o.coarse_above_px = 0;  // the full search at every node
    o.min_snr = 0;
    o.min_corr = -1;
    const NodeGrid nodes = test::interior_nodes(a.width(), a.height(), o.halo_px(), 16);
    const GridResult g = correlate_grid({&a, nullptr, 0, 0}, {&b, nullptr, 0, 0}, o, nodes);
    float highest = -1;
    for (std::size_t k = 0; k < g.corr.size(); ++k)
      if (g.flag.data()[k] == 0) highest = std::max(highest, g.corr.data()[k]);
    std::printf("[flags] unrelated %s: %lld nodes, highest correlation %.3f\n", label, g.flag_counts[0],
                highest);
    EXPECT_GT(g.flag_counts[0], 100);
    EXPECT_LT(highest, 0.7f);
  };
  check(test::make_noise_texture(480, 480, 1.2, 41), test::make_noise_texture(480, 480, 1.2, 42), "textures");
  const auto dir = test::data_dir() / "yahtse-l8";
  if (test::data_dir().empty() || !std::filesystem::exists(dir)) return;  // the synthetic case still ran
  const std::string scene = (dir / "LC80630182016200LGN00_B8_yahtse.TIF").string();
  // Two windows of the same Landsat scene, 550 rows apart: rock, snow, glacier and sea that do not match.
  check(test::read_crop(scene, 50, 0, 1600, 500), test::read_crop(scene, 50, 550, 1600, 500),
        "Landsat windows");
}

TEST(CorrelateFlags, PeakOnTheSearchBorder) {
  // A smooth texture: the correlation rises steadily towards the true displacement beyond the search.
  const GridF ref = test::make_noise_texture(160, 160, 3.0, 9);
  const GridF sec = test::fourier_shift(ref, 9.3, 0.4);
  MatchOptions o;
  o.search_px = 5;
  o.min_snr = 1.2;  // an unfiltered smooth texture has broad secondary maxima (docs/correlate.md, SNR)
  Matcher matcher(o);
  const NodeResult r = matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, 80, 80);
  EXPECT_TRUE(is(NodeFlag::kSearchBorder, r))
      << to_string(r.flag) << " " << r.dx_px << " " << r.dy_px << " corr " << r.corr << " snr " << r.snr;
  EXPECT_TRUE(std::isnan(r.dx_px));
  // With a guess near the true motion the same search finds it.
  const NodeResult guided = matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, 80, 80, 8.0, 0.0);
  ASSERT_TRUE(is(NodeFlag::kValid, guided))
      << to_string(guided.flag) << " snr " << guided.snr << " corr " << guided.corr;
  EXPECT_NEAR(guided.dx_px, 9.3, 0.01);
}

TEST(CorrelateFlags, MaskedAndOutside) {
  const GridF ref = test::make_noise_texture(128, 128, 1.2, 13);
  const GridF sec = test::fourier_shift(ref, 1.25, 0.5);
  GridU8 holes(128, 128, 1);
  for (int r = 50; r < 70; ++r)
    for (int c = 50; c < 70; ++c) holes(c, r) = 0;  // 400 px: 39 % of a 32 x 32 chip
  GridF with_nan = sec;
  for (int r = 50; r < 70; ++r)
    for (int c = 50; c < 70; ++c) with_nan(c, r) = kNaN;
  Matcher matcher(MatchOptions{});
  EXPECT_TRUE(is(NodeFlag::kMasked, matcher.match({&ref, &holes, 0, 0}, {&sec, nullptr, 0, 0}, 60, 60)));
  EXPECT_TRUE(
      is(NodeFlag::kMasked, matcher.match({&ref, nullptr, 0, 0}, {&with_nan, nullptr, 0, 0}, 60, 60)));
  // A few invalid pixels (below max_invalid_fraction) are tolerated and do not bias the result much.
  GridU8 few(128, 128, 1);
  for (int c = 50; c < 60; ++c) few(c, 60) = 0;
  const NodeResult tolerant = matcher.match({&ref, &few, 0, 0}, {&sec, nullptr, 0, 0}, 60, 60);
  ASSERT_TRUE(is(NodeFlag::kValid, tolerant)) << to_string(tolerant.flag);
  EXPECT_NEAR(tolerant.dx_px, 1.25, 0.05);
  // Chips beyond the window.
  EXPECT_TRUE(
      is(NodeFlag::kOutsideOverlap, matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, 2, 60)));
  EXPECT_TRUE(
      is(NodeFlag::kOutsideOverlap, matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 500, 500}, 60, 60)));
}

TEST(CorrelateGrid, LargeMotionCoarseToFineAndGuess) {
  const GridF ref = test::make_noise_texture(384, 384, 1.5, 21);
  const double dx = 37.3, dy = -21.6;
  const GridF sec = test::fourier_shift(ref, dx, dy);
  MatchOptions o;
  o.search_px = 48;  // coarse-to-fine: a 48 px search without a 48 px fine search at every node
  const NodeGrid nodes = test::interior_nodes(384, 384, o.halo_px(), 24);
  const ImageWindow rw{&ref, nullptr, 0, 0}, sw{&sec, nullptr, 0, 0};
  const GridResult g = correlate_grid(rw, sw, o, nodes);
  int valid = 0;
  for (int j = 0; j < nodes.rows; ++j)
    for (int i = 0; i < nodes.cols; ++i)
      if (g.flag(i, j) == 0) {
        ++valid;
        EXPECT_NEAR(g.dx_px(i, j), dx, 0.02);
        EXPECT_NEAR(g.dy_px(i, j), dy, 0.02);
      }
  EXPECT_GE(valid, nodes.cols * nodes.rows * 9 / 10);
  // An a-priori guess (e.g. a previous result) lets a small search find the same motion.
  MatchOptions small;
  small.search_px = 4;
  const GridF gx(nodes.cols, nodes.rows, 36.0f), gy(nodes.cols, nodes.rows, -22.0f);
  const GridResult guided = correlate_grid(rw, sw, small, nodes, &gx, &gy);
  EXPECT_GE(guided.flag_counts[0], nodes.cols * nodes.rows * 9 / 10);
  EXPECT_NEAR(guided.dx_px(nodes.cols / 2, nodes.rows / 2), dx, 0.02);
  const GridF wrong_size(3, 3, 0.0f);
  EXPECT_THROW(correlate_grid(rw, sw, small, nodes, &wrong_size, &gy), InvalidArgument);
}

TEST(CorrelateGrid, IdenticalResultsForAnyThreadCount) {
  const GridF ref = test::make_noise_texture(256, 256, 1.2, 31);
  const GridF sec = test::warp_by_field(ref, [](double c, double r, double& u, double& v) {
    u = 1.0 + 0.01 * (r - 128);
    v = -0.5 + 0.008 * (c - 128);
  });
  for (Method method : {Method::kNcc, Method::kPhase, Method::kFlow}) {
    MatchOptions o;
    o.method = method;
    o.search_px = method == Method::kPhase ? 8 : 20;
    const NodeGrid nodes = test::interior_nodes(256, 256, o.halo_px(), 12);
    auto run = [&](int threads) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      return correlate_grid({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, o, nodes);
    };
    const GridResult one = run(1);
    const GridResult two = run(2);
    const GridResult four = run(4);
    for (const GridResult* other : {&two, &four}) {
      EXPECT_EQ(0, std::memcmp(one.dx_px.data(), other->dx_px.data(), one.dx_px.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(one.dy_px.data(), other->dy_px.data(), one.dy_px.size() * sizeof(float)));
      EXPECT_EQ(one.flag.values(), other->flag.values());
    }
    EXPECT_GT(one.flag_counts[0], 0);
  }
}

TEST(CorrelateGrid, OddChipsTinyWindowsAndBadGuessesAreHandled) {
  const GridF ref = test::make_noise_texture(128, 128, 1.2, 61);
  const GridF sec = test::fourier_shift(ref, 1.4, -0.7);
  for (const Method method : {Method::kNcc, Method::kPhase}) {
    for (const int chip : {8, 15, 31, 33}) {
      MatchOptions o;
      o.method = method;
      o.chip_px = chip;
      o.search_px = std::min(3, (chip - 1) / 2 - 1);
      if (method == Method::kPhase && 2 * o.search_px >= chip) continue;
      Matcher matcher(o);
      const NodeResult r = matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, 64, 64);
      if (chip >= 15) {
        ASSERT_TRUE(is(NodeFlag::kValid, r))
            << to_string(method) << " chip " << chip << ": " << to_string(r.flag);
        EXPECT_NEAR(r.dx_px, 1.4, 0.1) << to_string(method) << " chip " << chip;
        EXPECT_NEAR(r.dy_px, -0.7, 0.1) << to_string(method) << " chip " << chip;
      }
      // A NaN guess counts as no guess; an absurd one lands outside the image.
      const NodeResult nan_guess =
          matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, 64, 64, kNaN, kNaN);
      EXPECT_EQ(nan_guess.flag, r.flag);
      const NodeResult far = matcher.match({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, 64, 64, 1e6, -1e6);
      EXPECT_TRUE(is(NodeFlag::kOutsideOverlap, far)) << to_string(far.flag);
    }
  }
  // Windows smaller than a chip, empty windows, empty node grids.
  const GridF tiny(5, 5, 1.0f);
  const GridF empty;
  Matcher matcher(MatchOptions{});
  EXPECT_TRUE(
      is(NodeFlag::kOutsideOverlap, matcher.match({&tiny, nullptr, 0, 0}, {&tiny, nullptr, 0, 0}, 2, 2)));
  EXPECT_TRUE(
      is(NodeFlag::kOutsideOverlap, matcher.match({&empty, nullptr, 0, 0}, {&ref, nullptr, 0, 0}, 2, 2)));
  EXPECT_TRUE(
      is(NodeFlag::kOutsideOverlap, matcher.match({nullptr, nullptr, 0, 0}, {&ref, nullptr, 0, 0}, 2, 2)));
  NodeGrid none;
  none.cols = 0;
  none.rows = 0;
  EXPECT_EQ(correlate_grid({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, MatchOptions{}, none).flag.size(),
            0u);
  NodeGrid bad_step;
  bad_step.step_px = 0;
  EXPECT_THROW(correlate_grid({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, MatchOptions{}, bad_step),
               InvalidArgument);
  // Every method over a grid reaching beyond the images: flags, no crash, NaN where invalid.
  for (const Method method : {Method::kNcc, Method::kPhase, Method::kFlow}) {
    MatchOptions o;
    o.method = method;
    o.search_px = method == Method::kPhase ? 6 : 10;
    NodeGrid beyond;
    beyond.first_col = -40;
    beyond.first_row = -40;
    beyond.step_px = 24;
    beyond.cols = 10;
    beyond.rows = 10;
    const GridResult g = correlate_grid({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, o, beyond);
    EXPECT_GT(g.flag_counts[static_cast<int>(NodeFlag::kOutsideOverlap)], 0) << to_string(method);
    for (std::size_t k = 0; k < g.flag.size(); ++k)
      if (g.flag.data()[k] != 0) {
        EXPECT_TRUE(std::isnan(g.dx_px.data()[k]));
      }
  }
}

TEST(CorrelateGrid, StripsGiveTheSameResultAsTheWholeImage) {
  // The streaming driver cuts the image into strips of node rows plus grid_halo_px() of context.
  const int size = 480;
  const GridF ref = test::make_noise_texture(size, size, 1.3, 51);
  const GridF sec = test::warp_by_field(ref, [](double c, double r, double& u, double& v) {
    u = 6.0 + 0.02 * (r - 240);
    v = -3.0 + 0.01 * (c - 240);
  });
  MatchOptions o;
  o.search_px = 20;  // coarse-to-fine
  const int step = 16;
  const NodeGrid whole = test::interior_nodes(size, size, o.halo_px(), step);
  const GridResult reference = correlate_grid({&ref, nullptr, 0, 0}, {&sec, nullptr, 0, 0}, o, whole);
  const int halo = grid_halo_px(o, step);
  EXPECT_GT(halo, o.halo_px());
  for (int first = 0; first < whole.rows; first += 7) {
    NodeGrid strip = whole;
    strip.first_row = whole.first_row + first * step;
    strip.rows = std::min(7, whole.rows - first);
    const int row0 = std::max(0, strip.first_row - halo);
    const int row1 = std::min(size, strip.first_row + (strip.rows - 1) * step + halo + 1);
    GridF ref_part(size, row1 - row0), sec_part(size, row1 - row0);
    for (int r = row0; r < row1; ++r)
      for (int c = 0; c < size; ++c) {
        ref_part(c, r - row0) = ref(c, r);
        sec_part(c, r - row0) = sec(c, r);
      }
    const GridResult part =
        correlate_grid({&ref_part, nullptr, 0, row0}, {&sec_part, nullptr, 0, row0}, o, strip);
    for (int j = 0; j < strip.rows; ++j)
      for (int i = 0; i < strip.cols; ++i) {
        const int jj = first + j;
        ASSERT_EQ(part.flag(i, j), reference.flag(i, jj)) << "node " << i << "," << jj;
        if (part.flag(i, j) != 0) continue;
        ASSERT_EQ(part.dx_px(i, j), reference.dx_px(i, jj)) << "node " << i << "," << jj;
        ASSERT_EQ(part.dy_px(i, j), reference.dy_px(i, jj)) << "node " << i << "," << jj;
      }
  }
  EXPECT_GE(reference.flag_counts[0], static_cast<long long>(whole.cols) * whole.rows * 9 / 10);
}

// A run that hands many strips to correlate_grid makes its matchers once per thread and per options set
// (coarse, fine and full-range levels here), not once per strip, and gets the same results.
TEST(CorrelateGrid, MatcherPoolMakesMatchersOncePerThreadAndLevel) {
  const int size = 320;
  const GridF ref = test::make_noise_texture(size, size, 1.3, 53);
  const GridF sec = test::warp_by_field(ref, [](double c, double r, double& u, double& v) {
    u = 5.0 + 0.01 * (r - 160);
    v = -2.0 + 0.01 * (c - 160);
  });
  MatchOptions o;
  o.search_px = 16;  // coarse-to-fine: three options sets
  const int step = 16;
  const int threads = 2;
  const int levels = 3;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  const NodeGrid whole = test::interior_nodes(size, size, o.halo_px(), step);
  const int halo = grid_halo_px(o, step);
  MatcherPool pool;
  int strips = 0;
  long long made_without_pool = 0;
  for (int first = 0; first < whole.rows; first += 3, ++strips) {
    NodeGrid strip = whole;
    strip.first_row = whole.first_row + first * step;
    strip.rows = std::min(3, whole.rows - first);
    const int row0 = std::max(0, strip.first_row - halo);
    const int row1 = std::min(size, strip.first_row + (strip.rows - 1) * step + halo + 1);
    GridF ref_part(size, row1 - row0), sec_part(size, row1 - row0);
    for (int r = row0; r < row1; ++r)
      for (int c = 0; c < size; ++c) {
        ref_part(c, r - row0) = ref(c, r);
        sec_part(c, r - row0) = sec(c, r);
      }
    const ImageWindow rw{&ref_part, nullptr, 0, row0}, sw{&sec_part, nullptr, 0, row0};
    const GridResult pooled = correlate_grid(rw, sw, o, strip, pool);
    const long long before = detail::matchers_made();
    const GridResult own = correlate_grid(rw, sw, o, strip);
    made_without_pool += detail::matchers_made() - before;
    ASSERT_EQ(pooled.flag.values(), own.flag.values()) << "strip " << strips;
    ASSERT_EQ(0, std::memcmp(pooled.dx_px.data(), own.dx_px.data(), own.dx_px.size() * sizeof(float)));
    ASSERT_EQ(0, std::memcmp(pooled.dy_px.data(), own.dy_px.data(), own.dy_px.size() * sizeof(float)));
    ASSERT_EQ(0, std::memcmp(pooled.corr.data(), own.corr.data(), own.corr.size() * sizeof(float)));
    ASSERT_GT(pooled.flag_counts[0], 0);
  }
  ASSERT_GE(strips, 5);
  EXPECT_GE(pool.made(), levels);
  EXPECT_LE(pool.made(), threads * levels);
  // Without a shared pool every strip makes its own: at least one per level and strip.
  EXPECT_GE(made_without_pool, static_cast<long long>(strips) * levels);
}

TEST(CorrelateGrid, MatcherPoolKeepsOneMatcherPerOptionsSet) {
  tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
  MatcherPool pool;
  MatchOptions a;
  MatchOptions b = a;
  b.chip_px = 24;
  Matcher& first = pool.local(a);
  EXPECT_EQ(&pool.local(b), &pool.local(b));
  EXPECT_EQ(&pool.local(a), &first);  // still valid after another options set was added
  EXPECT_EQ(pool.local(b).options().chip_px, 24);
  EXPECT_EQ(pool.made(), 2);
  MatchOptions bad = a;
  bad.chip_px = 2;
  EXPECT_THROW(pool.local(bad), InvalidArgument);
  EXPECT_EQ(pool.made(), 2);
}

}  // namespace
}  // namespace deforma::correlate
