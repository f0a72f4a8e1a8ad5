// The streamed matching of a pair: strips of node rows read with their context, then matched.
#include "node_matching.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/oversample.hpp"
#include "deforma/io/product.hpp"
#include "deforma/io/tiles.hpp"

namespace deforma::correlate::detail {
namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
}  // namespace

GuessField::GuessField(const std::string& path, const io::RasterInfo& ref_grid)
    : raster_(io::Raster::open(path)) {
  const auto& info = raster_.info();
  band_dx_ = band_dy_ = 0;
  for (const auto& b : info.bands) {
    if (b.description == io::product::band::kDx) band_dx_ = b.index;
    if (b.description == io::product::band::kDy) band_dy_ = b.index;
  }
  if (!band_dx_ || !band_dy_) {
    if (info.band_count() < 2) {
      throw InvalidArgument(fmt::format("--guess {}: expected bands dx_px and dy_px (or two bands), found {}",
                                        path, info.band_count()));
    }
    band_dx_ = 1, band_dy_ = 2;
  }
  if (info.georeferenced != ref_grid.georeferenced) {
    throw InvalidArgument(fmt::format("--guess {}: georeferencing differs from {}", path, ref_grid.path));
  }
  ref_gt_ = ref_grid.geotransform;
}

void GuessField::sample(const NodeGrid& nodes, GridF& dx, GridF& dy) const {
  dx = GridF(nodes.cols, nodes.rows, kNaN);
  dy = GridF(nodes.cols, nodes.rows, kNaN);
  // Guess-raster pixel coordinates of every node, and their bounding window.
  std::vector<double> gc(static_cast<std::size_t>(nodes.cols) * nodes.rows), gr(gc.size());
  double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
  for (int j = 0; j < nodes.rows; ++j) {
    for (int i = 0; i < nodes.cols; ++i) {
      double x, y, c, r;
      ref_gt_.pixel_to_map(nodes.first_col + i * nodes.step_px + 0.5,
                           nodes.first_row + j * nodes.step_px + 0.5, x, y);
      raster_.info().geotransform.map_to_pixel(x, y, c, r);
      const std::size_t k = static_cast<std::size_t>(j) * nodes.cols + i;
      gc[k] = c - 0.5, gr[k] = r - 0.5;
      cmin = std::min(cmin, c), cmax = std::max(cmax, c), rmin = std::min(rmin, r), rmax = std::max(rmax, r);
    }
  }
  const io::Window window{static_cast<int>(std::floor(cmin)) - 2, static_cast<int>(std::floor(rmin)) - 2,
                          static_cast<int>(std::ceil(cmax) - std::floor(cmin)) + 5,
                          static_cast<int>(std::ceil(rmax) - std::floor(rmin)) + 5};
  const auto both = raster_.read(std::vector<int>{band_dx_, band_dy_}, window);
  const auto& wx = both[0];
  const auto& wy = both[1];
  for (std::size_t k = 0; k < gc.size(); ++k) {
    const double c = gc[k] - window.col, r = gr[k] - window.row;
    const int c0 = static_cast<int>(std::floor(c)), r0 = static_cast<int>(std::floor(r));
    const double fc = c - c0, fr = r - r0;
    double sx = 0, sy = 0, sw = 0;
    for (int dr = 0; dr <= 1; ++dr) {
      for (int dc = 0; dc <= 1; ++dc) {
        const int cc = c0 + dc, rr = r0 + dr;
        if (!wx.valid.contains(cc, rr) || !wx.valid(cc, rr) || !wy.valid(cc, rr)) continue;
        if (wx.values(cc, rr) == kResultNodata) continue;
        const double w = (dc ? fc : 1 - fc) * (dr ? fr : 1 - fr);
        sx += w * wx.values(cc, rr), sy += w * wy.values(cc, rr), sw += w;
      }
    }
    if (sw > 1e-6) dx.data()[k] = static_cast<float>(sx / sw), dy.data()[k] = static_cast<float>(sy / sw);
  }
}

double GuessField::max_abs_px(std::size_t ram_budget_mb) const {
  double m = 0;
  for (int band : {band_dx_, band_dy_}) {
    // Values and validity of one window.
    const auto windows = io::plan_tiles(io::TilePlanOptions::for_band(
        raster_.info(), band, sizeof(float) + 1, std::max<std::size_t>(1, ram_budget_mb / 4)));
    for (const auto& window : windows) {
      const auto w = raster_.read(band, window.core);
      for (std::size_t i = 0; i < w.values.size(); ++i) {
        if (w.valid.data()[i] && w.values.data()[i] != kResultNodata)
          m = std::max(m, std::abs(double(w.values.data()[i])));
      }
    }
  }
  return m;
}

StripSource::StripSource(io::Raster& ref, int ref_band, io::Raster& sec, int sec_band,
                         const io::Window& sec_footprint, const NodeGrid& all_nodes, int halo_px,
                         int sec_halo_px, const CorrelateOptions& options, const std::string& output,
                         const GuessField* guess)
    : ref_(ref),
      ref_band_(ref_band),
      sec_(sec),
      sec_band_(sec_band),
      sec_footprint_(sec_footprint),
      all_nodes_(all_nodes),
      halo_px_(halo_px),
      sec_halo_px_(sec_halo_px),
      options_(options),
      guess_(guess) {
  const auto& ref_info = ref_.info();
  if (!options.mask_path.empty()) {
    // Polygons are read once; rasters are read per strip by io::read_mask.
    try {
      io::Raster::open(options.mask_path);
      mask_is_raster_ = true;
    } catch (const FormatError&) {
      mask_polygons_ = io::read_polygons(options.mask_path, ref_info.crs_wkt);
    }
  }
  // Stable ground on the node grid, read strip by strip: polygons are read once here, a raster is read
  // (and checked now, on its first node row) per strip.
  node_info_ = ref_info;
  node_info_.width = all_nodes.cols;
  node_info_.height = all_nodes.rows;
  node_info_.geotransform =
      ref_info.geotransform.node_grid(all_nodes.first_col, all_nodes.first_row, all_nodes.step_px);
  node_info_.path = output + " (node grid)";
  if (!options.stable_path.empty()) {
    bool stable_is_raster = false;
    try {
      io::Raster::open(options.stable_path);
      stable_is_raster = true;
    } catch (const FormatError&) {
      stable_polygons_ = io::read_polygons(options.stable_path, ref_info.crs_wkt);
    }
    if (stable_is_raster) io::read_mask(options.stable_path, node_info_, io::Window{0, 0, all_nodes.cols, 1});
  }
}

NodeStrip StripSource::read(int first_node_row, int node_rows) {
  const auto& ref_info = ref_.info();
  const int step_px = all_nodes_.step_px;
  NodeStrip s;
  s.first_node_row = first_node_row;
  s.node_rows = node_rows;
  const int first_row_px = all_nodes_.first_row + first_node_row * step_px;
  const int last_row_px = first_row_px + (node_rows - 1) * step_px;
  const int first_col_px = all_nodes_.first_col;
  const int last_col_px = first_col_px + (all_nodes_.cols - 1) * step_px;
  // The strip plus its halo, clipped to the image (REF) and to SEC's own footprint: pixels beyond them
  // are outside for the kernels, whatever a resampler would produce there, and reading, filtering and
  // downsampling them would be wasted work.
  s.ref_window =
      io::Window{first_col_px - halo_px_, first_row_px - halo_px_,
                 last_col_px - first_col_px + 1 + 2 * halo_px_, last_row_px - first_row_px + 1 + 2 * halo_px_}
          .intersect(io::Window{0, 0, ref_info.width, ref_info.height});
  s.sec_window = io::Window{first_col_px - sec_halo_px_, first_row_px - sec_halo_px_,
                            last_col_px - first_col_px + 1 + 2 * sec_halo_px_,
                            last_row_px - first_row_px + 1 + 2 * sec_halo_px_}
                     .intersect(sec_footprint_);
  s.ref = ref_.read(ref_band_, s.ref_window);
  if (!s.sec_window.empty()) s.sec = sec_.read(sec_band_, s.sec_window);
  NodeGrid nodes = all_nodes_;
  nodes.first_row = first_row_px;
  nodes.rows = node_rows;
  s.node_masked = GridU8(nodes.cols, nodes.rows, 0);
  if (!options_.mask_path.empty()) {
    const auto mask = mask_is_raster_ ? io::read_mask(options_.mask_path, ref_info, s.ref_window)
                                      : io::rasterize(*mask_polygons_, ref_info, s.ref_window);
    for (std::size_t i = 0; i < mask.size(); ++i) {
      if (mask.data()[i]) s.ref.valid.data()[i] = 0;
    }
    for (int j = 0; j < nodes.rows; ++j) {
      for (int i = 0; i < nodes.cols; ++i) {
        const int c = nodes.first_col + i * nodes.step_px - s.ref_window.col;
        const int r = nodes.first_row + j * nodes.step_px - s.ref_window.row;
        s.node_masked(i, j) = mask(c, r);
      }
    }
  }
  if (!options_.stable_path.empty()) {
    const io::Window node_window{0, first_node_row, nodes.cols, nodes.rows};
    s.node_stable = stable_polygons_ ? io::rasterize(*stable_polygons_, node_info_, node_window)
                                     : io::read_mask(options_.stable_path, node_info_, node_window);
    stable_node_count_ += std::count(s.node_stable.values().begin(), s.node_stable.values().end(), 1);
  }
  if (guess_) {
    guess_->sample(nodes, s.guess_dx, s.guess_dy);
    s.has_guess = true;
  }
  return s;
}

void StripSource::match(NodeStrip& s, MatcherPool& matchers) const {
  NodeGrid nodes = all_nodes_;
  nodes.first_row = all_nodes_.first_row + s.first_node_row * all_nodes_.step_px;
  nodes.rows = s.node_rows;
  // The raw pixels are not needed afterwards: correlate_grid filters them in place.
  ImageBuffer ref_buffer{std::move(s.ref.values), std::move(s.ref.valid), s.ref_window.col, s.ref_window.row};
  ImageBuffer sec_buffer{std::move(s.sec.values), std::move(s.sec.valid), s.sec_window.col, s.sec_window.row};
  s.ref = {};
  s.sec = {};
  s.result = options_.oversample > 1
                 ? correlate_grid_oversampled(ref_buffer.view(), sec_buffer.view(), options_.match, nodes,
                                              options_.oversample, matchers, s.has_guess ? &s.guess_dx : nullptr,
                                              s.has_guess ? &s.guess_dy : nullptr)
                 : correlate_grid_in_place(ref_buffer, sec_buffer, options_.match, nodes, matchers,
                                           s.has_guess ? &s.guess_dx : nullptr, s.has_guess ? &s.guess_dy : nullptr);
  // Node-level classifications that the driver knows better than the kernel.
  for (int j = 0; j < nodes.rows; ++j) {
    for (int i = 0; i < nodes.cols; ++i) {
      auto set_flag = [&](NodeFlag f) {
        s.result.flag(i, j) = static_cast<unsigned char>(f);
        s.result.dx_px(i, j) = s.result.dy_px(i, j) = kNaN;
      };
      if (s.node_masked(i, j)) {
        set_flag(NodeFlag::kMasked);
        continue;
      }
      const int c = nodes.first_col + i * nodes.step_px, r = nodes.first_row + j * nodes.step_px;
      if (sec_footprint_.intersect(io::Window{c, r, 1, 1}).empty()) set_flag(NodeFlag::kOutsideOverlap);
    }
  }
}

}  // namespace deforma::correlate::detail
