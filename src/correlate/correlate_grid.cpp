// The in-memory node loop: direct search, coarse-to-fine search for large motion, and the flow method.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/correlate/matcher.hpp"

namespace deforma::correlate {

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Largest search (in coarse pixels) of the coarse pass; larger searches downsample further.
constexpr int kCoarseSearchPx = 12;

int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

void store(GridResult& out, int i, int j, const NodeResult& r) {
  out.dx_px(i, j) = r.dx_px;
  out.dy_px(i, j) = r.dy_px;
  out.corr(i, j) = r.corr;
  out.snr(i, j) = r.snr;
  out.flag(i, j) = static_cast<unsigned char>(r.flag);
  out.dudx(i, j) = r.dudx;
  out.dudy(i, j) = r.dudy;
  out.dvdx(i, j) = r.dvdx;
  out.dvdy(i, j) = r.dvdy;
  out.translation_only(i, j) = r.translation_only ? 1 : 0;
}

double guess_at(const GridF* g, int i, int j) {
  if (!g) return 0.0;
  const float v = (*g)(i, j);
  return std::isfinite(v) ? v : 0.0;
}

// Matches the nodes (i, j) for which `wanted(i, j)` holds, in parallel over rows, with the pool's matchers
// for `options`. Each node depends only on its own data, so the result is the same for any number of
// threads.
template <typename Wanted, typename Guess>
void match_nodes(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                 const NodeGrid& nodes, MatcherPool& matchers, Wanted wanted, Guess guess, GridResult& out) {
  tbb::parallel_for(tbb::blocked_range<int>(0, nodes.rows), [&](const tbb::blocked_range<int>& range) {
    Matcher& matcher = matchers.local(options);
    for (int j = range.begin(); j < range.end(); ++j) {
      for (int i = 0; i < nodes.cols; ++i) {
        if (!wanted(i, j)) continue;
        double gdx = 0, gdy = 0;
        guess(i, j, gdx, gdy);
        const int col = nodes.first_col + i * nodes.step_px;
        const int row = nodes.first_row + j * nodes.step_px;
        store(out, i, j, matcher.match(ref, sec, col, row, gdx, gdy));
      }
    }
  });
}

// Box-downsampling of a window by `factor`, averaging the valid pixels; a coarse pixel is valid when at
// least half of its fine pixels are. Coarse pixel (c, r) covers fine pixels [c * factor, (c + 1) * factor)
// (a lattice fixed in image coordinates, whatever the window).
ImageBuffer downsample(const ImageWindow& w, int factor) {
  ImageBuffer out;
  const int width = w.values ? w.values->width() : 0;
  const int height = w.values ? w.values->height() : 0;
  out.origin_col = floor_div(w.origin_col, factor);
  out.origin_row = floor_div(w.origin_row, factor);
  const int end_col = floor_div(w.origin_col + width - 1, factor);
  const int end_row = floor_div(w.origin_row + height - 1, factor);
  const int cw = std::max(0, end_col - out.origin_col + 1);
  const int ch = std::max(0, end_row - out.origin_row + 1);
  out.values = GridF(cw, ch, 0.0f);
  out.valid = GridU8(cw, ch, 0);
  // Coarse column of every fine column of the window.
  std::vector<int> coarse_col(static_cast<std::size_t>(width));
  for (int c = 0; c < width; ++c) coarse_col[c] = floor_div(w.origin_col + c, factor) - out.origin_col;
  tbb::parallel_for(0, ch, [&](int r) {
    // Sums over the fine rows of this coarse row, accumulated row by row (contiguous reads) in the same
    // order as a pixel-by-pixel loop would: row by row, left to right.
    std::vector<double> sum(static_cast<std::size_t>(cw), 0.0);
    std::vector<int> count(static_cast<std::size_t>(cw), 0);
    for (int y = 0; y < factor; ++y) {
      const int lr = (out.origin_row + r) * factor + y - w.origin_row;
      if (lr < 0 || lr >= height) continue;
      const float* values = w.values->row(lr);
      const unsigned char* ok = w.valid ? w.valid->row(lr) : nullptr;
      for (int c = 0; c < width; ++c) {
        const float v = values[c];
        if ((ok && !ok[c]) || !std::isfinite(v)) continue;
        sum[coarse_col[c]] += v;
        ++count[coarse_col[c]];
      }
    }
    for (int c = 0; c < cw; ++c) {
      if (count[c] * 2 >= factor * factor) {
        out.values(c, r) = static_cast<float>(sum[c] / count[c]);
        out.valid(c, r) = 1;
      }
    }
  });
  return out;
}

GridResult make_result(const NodeGrid& nodes) {
  GridResult out;
  out.dx_px = GridF(nodes.cols, nodes.rows, kNaN);
  out.dy_px = GridF(nodes.cols, nodes.rows, kNaN);
  out.corr = GridF(nodes.cols, nodes.rows, kNaN);
  out.snr = GridF(nodes.cols, nodes.rows, kNaN);
  out.flag = GridU8(nodes.cols, nodes.rows, static_cast<unsigned char>(NodeFlag::kNoPeak));
  for (GridF* g : {&out.dudx, &out.dudy, &out.dvdx, &out.dvdy}) *g = GridF(nodes.cols, nodes.rows, kNaN);
  out.translation_only = GridU8(nodes.cols, nodes.rows, 0);
  return out;
}

// Parameters of the coarse pass for `options` (shared by coarse_to_fine and grid_halo_px).
struct CoarsePlan {
  int factor = 2;
  int every = 1;  // a coarse node every `every` fine nodes, on a lattice fixed in image coordinates
  MatchOptions coarse;
  MatchOptions fine;
};
// Coarse nodes computed beyond the node grid on each side, so that the median filter (radius 1, fallback
// 2) and the interpolation of the seeds see the same coarse nodes as a run over the whole image: results
// do not depend on how the driver cuts the image into strips, given grid_halo_px() of context.
constexpr int kCoarseApron = 3;
// Correlation of a fine match strong enough not to need a full search to rule out a competing peak: the
// best match of unrelated highpassed chips over a whole search stays below (at most 0.59 on Landsat
// windows, 0.35 on synthetic texture: test CorrelateFlags.UnrelatedChipsStayBelowTheConfidentCorrelation).
constexpr float kConfidentCorr = 0.7f;

CoarsePlan plan_coarse(const MatchOptions& options, int step_px) {
  CoarsePlan plan;
  // The smallest downsampling (at least 2) that brings the coarse search to at most kCoarseSearchPx.
  while ((options.search_px + plan.factor - 1) / plan.factor > kCoarseSearchPx) plan.factor *= 2;
  // Coarse pass: a chip covering twice the fine chip's footprint (a robust seed that sees the same
  // ground), coarse nodes spaced at three quarters of that footprint.
  plan.coarse = options;
  plan.coarse.chip_px = std::max(16, 2 * options.chip_px / plan.factor);
  plan.coarse.search_px = (options.search_px + plan.factor - 1) / plan.factor + 1;
  plan.coarse.coarse_above_px = 0;
  plan.coarse.subpixel = Subpixel::kParabolic;
  plan.coarse.shape = Shape::kTranslation;  // the coarse pass only seeds the fine search
  plan.coarse.min_snr = 0.6 * options.min_snr;
  if (plan.coarse.method == Method::kPhase && 2 * plan.coarse.search_px >= plan.coarse.chip_px)
    plan.coarse.method = Method::kNcc;
  plan.every = std::max(1, plan.coarse.chip_px * plan.factor * 3 / 4 / std::max(1, step_px));
  // The fine search covers the seed's error (a fraction of a coarse pixel, plus the variation of the motion
  // within a coarse chip).
  plan.fine = options;
  plan.fine.search_px = std::max(3, plan.factor + 1);
  plan.fine.coarse_above_px = 0;
  return plan;
}

int positive_mod(int a, int b) {
  return ((a % b) + b) % b;
}

// Local fine-node indices (possibly negative or past the end) of the coarse nodes along one axis.
std::vector<int> coarse_lattice(int first_px, int step_px, int count, int every) {
  const int g0 = floor_div(first_px, step_px);  // global index of the grid's first node
  const int start = -kCoarseApron * every;
  std::vector<int> idx;
  for (int i = start + positive_mod(-(g0 + start), every); i <= count - 1 + kCoarseApron * every; i += every)
    idx.push_back(i);
  return idx;
}

bool uses_coarse_to_fine(const MatchOptions& options) {
  return options.method != Method::kFlow && options.coarse_above_px > 0 &&
         options.search_px > options.coarse_above_px;
}

// The coarse level of both images, downsampled from the unfiltered windows and then prefiltered.
struct CoarseLevel {
  ImageBuffer ref, sec;
};

CoarseLevel make_coarse_level(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                              int step_px) {
  const int factor = plan_coarse(options, step_px).factor;
  CoarseLevel level{downsample(ref, factor), downsample(sec, factor)};
  apply_prefilter(options.prefilter, level.ref.values, level.ref.valid);
  apply_prefilter(options.prefilter, level.sec.values, level.sec.valid);
  return level;
}

// `ref` and `sec` are the prefiltered fine windows; `level` their coarse level.
void coarse_to_fine(const ImageWindow& ref, const ImageWindow& sec, const CoarseLevel& level,
                    const MatchOptions& options, const NodeGrid& nodes, MatcherPool& matchers,
                    const GridF* gdx, const GridF* gdy, GridResult& out) {
  const CoarsePlan plan = plan_coarse(options, nodes.step_px);
  const int factor = plan.factor;
  const std::vector<int> coarse_i = coarse_lattice(nodes.first_col, nodes.step_px, nodes.cols, plan.every);
  const std::vector<int> coarse_j = coarse_lattice(nodes.first_row, nodes.step_px, nodes.rows, plan.every);
  const int ci_count = static_cast<int>(coarse_i.size());
  const int cj_count = static_cast<int>(coarse_j.size());
  const ImageBuffer& cref = level.ref;
  const ImageBuffer& csec = level.sec;
  GridF seed_dx(ci_count, cj_count, kNaN), seed_dy(ci_count, cj_count, kNaN);
  {
    const ImageWindow rv = cref.view();
    const ImageWindow sv = csec.view();
    tbb::parallel_for(0, cj_count, [&](int b) {
      Matcher& matcher = matchers.local(plan.coarse);
      for (int a = 0; a < ci_count; ++a) {
        const int i = coarse_i[a];
        const int j = coarse_j[b];
        const int col = nodes.first_col + i * nodes.step_px;
        const int row = nodes.first_row + j * nodes.step_px;
        // Apron nodes take the a-priori guess of the nearest node of the grid.
        const int gi = std::clamp(i, 0, nodes.cols - 1);
        const int gj = std::clamp(j, 0, nodes.rows - 1);
        const NodeResult r = matcher.match(rv, sv, floor_div(col, factor), floor_div(row, factor),
                                           guess_at(gdx, gi, gj) / factor, guess_at(gdy, gi, gj) / factor);
        if (r.flag == NodeFlag::kValid) {
          seed_dx(a, b) = r.dx_px * factor;
          seed_dy(a, b) = r.dy_px * factor;
        }
      }
    });
  }
  // Outlier-resistant seed: the median of the valid coarse results around each coarse node (3 x 3, then
  // 5 x 5 with at least 3 values where nothing is valid nearby); otherwise the a-priori guess.
  GridF fdx(ci_count, cj_count, kNaN), fdy(ci_count, cj_count, kNaN);
  for (int b = 0; b < cj_count; ++b) {
    for (int a = 0; a < ci_count; ++a) {
      for (int radius : {1, 2}) {
        std::vector<double> vx, vy;
        for (int y = std::max(0, b - radius); y <= std::min(cj_count - 1, b + radius); ++y)
          for (int x = std::max(0, a - radius); x <= std::min(ci_count - 1, a + radius); ++x)
            if (std::isfinite(seed_dx(x, y))) {
              vx.push_back(seed_dx(x, y));
              vy.push_back(seed_dy(x, y));
            }
        if (vx.size() >= (radius == 1 ? 1u : 3u)) {
          fdx(a, b) = static_cast<float>(median_in_place(vx));
          fdy(a, b) = static_cast<float>(median_in_place(vy));
          break;
        }
      }
    }
  }
  // Coarse nodes bracketing fine node v: idx[k] <= v < idx[k + 1] (the lattice is regular).
  auto locate = [&](const std::vector<int>& idx, int v, int& k, double& t) {
    k = floor_div(v - idx.front(), plan.every);
    k = std::clamp(k, 0, static_cast<int>(idx.size()) - 2);
    t = static_cast<double>(v - idx[k]) / plan.every;
  };
  // Fine pass around the seed, bilinearly interpolated between coarse nodes.
  auto seed = [&](int i, int j, double& dx, double& dy) {
    int a = 0, b = 0;
    double ta = 0, tb = 0;
    locate(coarse_i, i, a, ta);
    locate(coarse_j, j, b, tb);
    double sx = 0, sy = 0, sw = 0;
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x) {
        const double w = (x ? ta : 1 - ta) * (y ? tb : 1 - tb);
        if (w <= 0 || !std::isfinite(fdx(a + x, b + y))) continue;
        sx += w * fdx(a + x, b + y);
        sy += w * fdy(a + x, b + y);
        sw += w;
      }
    if (sw > 0) {
      dx = sx / sw;
      dy = sy / sw;
    } else {
      dx = guess_at(gdx, i, j);
      dy = guess_at(gdy, i, j);
    }
  };
  match_nodes(
      ref, sec, plan.fine, nodes, matchers, [](int, int) { return true; }, seed, out);
  // Full-range search again where the seed is doubtful: the fine peak sits on the border of its small
  // window (the seed was wrong), or the nearest coarse node found no valid match (clouds, low texture,
  // ambiguity), where a small fine surface could not reveal a competing peak farther away, unless the fine
  // match is strong (correlation >= kConfidentCorr): on the Yahtse pair the full search changed none of
  // the 228 such nodes, while it demoted 25 and moved 2 of the 153 weaker ones. These nodes get the SNR of
  // the full search surface.
  auto nearest = [&](const std::vector<int>& idx, int v) {
    int k = 0;
    double t = 0;
    locate(idx, v, k, t);
    return t > 0.5 ? k + 1 : k;
  };
  MatchOptions full = options;
  full.coarse_above_px = 0;
  if (full.method == Method::kPhase && 2 * full.search_px >= full.chip_px) full.method = Method::kNcc;
  const GridU8 first_flags = out.flag;
  const GridF first_corr = out.corr;
  match_nodes(
      ref, sec, full, nodes, matchers,
      [&](int i, int j) {
        const auto flag = static_cast<NodeFlag>(first_flags(i, j));
        if (flag == NodeFlag::kSearchBorder) return true;
        const bool confident = flag == NodeFlag::kValid && first_corr(i, j) >= kConfidentCorr;
        const bool fine_ok = flag == NodeFlag::kValid || flag == NodeFlag::kLowSnr;
        return fine_ok && !confident && !std::isfinite(seed_dx(nearest(coarse_i, i), nearest(coarse_j, j)));
      },
      [&](int i, int j, double& dx, double& dy) {
        dx = guess_at(gdx, i, j);
        dy = guess_at(gdy, i, j);
      },
      out);
}

void flow_nodes(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                const NodeGrid& nodes, MatcherPool& matchers, GridResult& out) {
  if (!ref.values || ref.values->empty()) return;
  const int w = ref.values->width();
  const int h = ref.values->height();
  GridU8 ref_valid = ref.valid ? *ref.valid : GridU8(w, h, 1);
  // The secondary on the reference window's pixels.
  GridF sec_values(w, h, 0.0f);
  GridU8 sec_valid(w, h, 0);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const int sc = ref.origin_col + c - sec.origin_col;
      const int sr = ref.origin_row + r - sec.origin_row;
      if (!sec.values || !sec.values->contains(sc, sr)) continue;
      const float v = (*sec.values)(sc, sr);
      if ((sec.valid && !(*sec.valid)(sc, sr)) || !std::isfinite(v)) continue;
      sec_values(c, r) = v;
      sec_valid(c, r) = 1;
    }
  const FlowField flow = dense_flow(*ref.values, ref_valid, sec_values, sec_valid);
  MatchOptions eval = options;
  eval.method = Method::kNcc;
  tbb::parallel_for(0, nodes.rows, [&](int j) {
    Matcher& matcher = matchers.local(eval);
    for (int i = 0; i < nodes.cols; ++i) {
      const int col = nodes.first_col + i * nodes.step_px;
      const int row = nodes.first_row + j * nodes.step_px;
      const int lc = col - ref.origin_col;
      const int lr = row - ref.origin_row;
      NodeResult r;
      if (!flow.dx_px.contains(lc, lr)) {
        r.flag = NodeFlag::kOutsideOverlap;
      } else if (!std::isfinite(flow.dx_px(lc, lr))) {
        r.flag = NodeFlag::kMasked;
      } else {
        r = matcher.evaluate(ref, sec, col, row, flow.dx_px(lc, lr), flow.dy_px(lc, lr));
      }
      store(out, i, j, r);
    }
  });
}
}  // namespace

int grid_halo_px(const MatchOptions& options, int step_px) {
  options.validate();
  // A prefiltered pixel depends on pixels up to `filter` away, at each level.
  const int filter = prefilter_context_px(options.prefilter);
  const int direct = options.halo_px() + filter;
  if (options.method == Method::kFlow) return std::max(direct, 64 + filter);  // DIS benefits from context
  if (!uses_coarse_to_fine(options)) return direct;
  const CoarsePlan plan = plan_coarse(options, std::max(1, step_px));
  const int coarse_reach = (plan.coarse.halo_px() + 1 + filter) * plan.factor;
  return std::max(direct, kCoarseApron * plan.every * std::max(1, step_px) + coarse_reach);
}

namespace {
void check_grid_arguments(const MatchOptions& options, const NodeGrid& nodes, const GridF* guess_dx_px,
                          const GridF* guess_dy_px) {
  options.validate();
  if (nodes.step_px < 1)
    throw InvalidArgument("--step: expected >= 1 px, got " + std::to_string(nodes.step_px));
  if (nodes.cols < 0 || nodes.rows < 0) throw InvalidArgument("correlate_grid: negative node grid size");
  for (const GridF* g : {guess_dx_px, guess_dy_px})
    if (g && (g->width() != nodes.cols || g->height() != nodes.rows))
      throw InvalidArgument("--guess: the a-priori displacement grid must have one value per node (" +
                            std::to_string(nodes.cols) + " x " + std::to_string(nodes.rows) + ")");
}

// The node loop on prefiltered windows (`level`: their coarse level when coarse-to-fine is used).
GridResult run_grid(const ImageWindow& ref, const ImageWindow& sec, const CoarseLevel* level,
                    const MatchOptions& options, const NodeGrid& nodes, MatcherPool& matchers,
                    const GridF* guess_dx_px, const GridF* guess_dy_px) {
  GridResult out = make_result(nodes);
  if (options.method == Method::kFlow) {
    flow_nodes(ref, sec, options, nodes, matchers, out);
  } else if (level) {
    coarse_to_fine(ref, sec, *level, options, nodes, matchers, guess_dx_px, guess_dy_px, out);
  } else {
    match_nodes(
        ref, sec, options, nodes, matchers, [](int, int) { return true; },
        [&](int i, int j, double& dx, double& dy) {
          dx = guess_at(guess_dx_px, i, j);
          dy = guess_at(guess_dy_px, i, j);
        },
        out);
  }
  for (std::size_t k = 0; k < out.flag.size(); ++k) ++out.flag_counts[std::min<int>(out.flag.data()[k], 6)];
  return out;
}

}  // namespace

GridResult correlate_grid_in_place(ImageBuffer& ref, ImageBuffer& sec, const MatchOptions& options,
                                   const NodeGrid& nodes, MatcherPool& matchers, const GridF* guess_dx_px,
                                   const GridF* guess_dy_px) {
  check_grid_arguments(options, nodes, guess_dx_px, guess_dy_px);
  for (const ImageBuffer* b : {&ref, &sec})
    if (b->valid.width() != b->values.width() || b->valid.height() != b->values.height())
      throw InvalidArgument("correlate_grid: the validity mask and the values of a window differ in size");
  if (nodes.cols == 0 || nodes.rows == 0) return make_result(nodes);
  std::optional<CoarseLevel> level;
  if (uses_coarse_to_fine(options)) level = make_coarse_level(ref.view(), sec.view(), options, nodes.step_px);
  apply_prefilter(options.prefilter, ref.values, ref.valid);
  apply_prefilter(options.prefilter, sec.values, sec.valid);
  return run_grid(ref.view(), sec.view(), level ? &*level : nullptr, options, nodes, matchers, guess_dx_px,
                  guess_dy_px);
}

GridResult correlate_grid_in_place(ImageBuffer& ref, ImageBuffer& sec, const MatchOptions& options,
                                   const NodeGrid& nodes, const GridF* guess_dx_px,
                                   const GridF* guess_dy_px) {
  MatcherPool matchers;
  return correlate_grid_in_place(ref, sec, options, nodes, matchers, guess_dx_px, guess_dy_px);
}

GridResult correlate_grid(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                          const NodeGrid& nodes, const GridF* guess_dx_px, const GridF* guess_dy_px) {
  MatcherPool matchers;
  return correlate_grid(ref, sec, options, nodes, matchers, guess_dx_px, guess_dy_px);
}

GridResult correlate_grid(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                          const NodeGrid& nodes, MatcherPool& matchers, const GridF* guess_dx_px,
                          const GridF* guess_dy_px) {
  check_grid_arguments(options, nodes, guess_dx_px, guess_dy_px);
  if (nodes.cols == 0 || nodes.rows == 0) return make_result(nodes);
  std::optional<CoarseLevel> level;
  if (uses_coarse_to_fine(options)) level = make_coarse_level(ref, sec, options, nodes.step_px);
  if (options.prefilter != Prefilter::kNone) {
    // Filtered copies of the values; the validity masks are shared with the caller's windows.
    auto filtered = [&](const ImageWindow& w, GridF& values, GridU8& all_valid) {
      if (!w.values) return w;
      if (!w.valid) all_valid = GridU8(w.values->width(), w.values->height(), 1);
      const GridU8& valid = w.valid ? *w.valid : all_valid;
      values = prefiltered(options.prefilter, *w.values, valid);
      return ImageWindow{&values, &valid, w.origin_col, w.origin_row};
    };
    GridF ref_values, sec_values;
    GridU8 ref_all_valid, sec_all_valid;
    const ImageWindow ref_filtered = filtered(ref, ref_values, ref_all_valid);
    const ImageWindow sec_filtered = filtered(sec, sec_values, sec_all_valid);
    return run_grid(ref_filtered, sec_filtered, level ? &*level : nullptr, options, nodes, matchers,
                    guess_dx_px, guess_dy_px);
  }
  return run_grid(ref, sec, level ? &*level : nullptr, options, nodes, matchers, guess_dx_px, guess_dy_px);
}

}  // namespace deforma::correlate
