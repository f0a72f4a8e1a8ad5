// The pair correlation's statistics: counts, bounded-sample percentiles, stable ground, quicklook.
#include "pair_statistics.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/map.hpp"

namespace deforma::correlate::detail {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The largest side of the quicklook's node grid: larger grids are decimated while streaming (every k-th
// node), so that the figure costs the same whatever the scene.
constexpr int kQuicklookMaxNodes = 1024;

const char* const kFlagNames[7] = {"valid",         "low_snr",         "no_texture", "masked",
                                   "search_border", "outside_overlap", "no_peak"};

// One column of a sample of records.
template <class Record, class Field>
std::vector<float> column(const std::vector<Record>& records, Field field) {
  std::vector<float> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(field(r));
  return out;
}

}  // namespace

PairStatistics::PairStatistics(const NodeGrid& all_nodes, bool with_quicklook) : all_nodes_(all_nodes) {
  // The quicklook's displacement on a node grid decimated to at most kQuicklookMaxNodes a side.
  quick_every_ = (std::max(all_nodes.cols, all_nodes.rows) + kQuicklookMaxNodes - 1) / kQuicklookMaxNodes;
  if (with_quicklook) {
    const int quick_cols = (all_nodes.cols + quick_every_ - 1) / quick_every_;
    const int quick_rows = (all_nodes.rows + quick_every_ - 1) / quick_every_;
    quick_dx_ = GridF(quick_cols, quick_rows, kNaN);
    quick_dy_ = GridF(quick_cols, quick_rows, kNaN);
  }
}

void PairStatistics::add_valid(int node_col, int node_row, float dx_px, float dy_px, float speed_m,
                               bool on_stable_ground) {
  valid_sample_.add({dx_px, dy_px, speed_m});
  if (on_stable_ground) stable_sample_.add({dx_px, dy_px});
  if (!quick_dx_.empty() && node_col % quick_every_ == 0 && node_row % quick_every_ == 0) {
    quick_dx_(node_col / quick_every_, node_row / quick_every_) = dx_px;
    quick_dy_(node_col / quick_every_, node_row / quick_every_) = dy_px;
  }
}

void PairStatistics::summarize(Summary& summary, const CorrelateOptions& options, double to_m, bool affine,
                               long long stable_node_count, int strip_count) const {
  const long long nodes_total = static_cast<long long>(all_nodes_.cols) * all_nodes_.rows;
  summary.counts["nodes"] = nodes_total;
  for (int f = 0; f < 7; ++f) summary.counts[kFlagNames[f]] = flag_counts_[f];
  if (affine) summary.counts["translation_only"] = translation_only_;
  const double valid_fraction = nodes_total ? static_cast<double>(flag_counts_[0]) / nodes_total : 0.0;
  const auto& valid_nodes = valid_sample_.records();
  std::vector<float> valid_dx = column(valid_nodes, [](const ValidNode& n) { return n.dx_px; });
  std::vector<float> valid_dy = column(valid_nodes, [](const ValidNode& n) { return n.dy_px; });
  std::vector<float> speed_px =
      column(valid_nodes, [](const ValidNode& n) { return std::hypot(n.dx_px, n.dy_px); });
  // Added to what the preparation of the inputs recorded (input kind, map grid).
  if (summary.details.is_null()) summary.details = nlohmann::json::object();
  summary.details.update(nlohmann::json{
      {"node_grid", {{"cols", all_nodes_.cols}, {"rows", all_nodes_.rows}, {"step_px", options.step_px}}},
      {"valid_fraction", valid_fraction},
      {"median_dx_px", percentile_in_place(valid_dx, 0.5)},
      {"median_dy_px", percentile_in_place(valid_dy, 0.5)},
      {"p99_displacement_px", percentile_in_place(speed_px, 0.99)},
      {"strips", strip_count}});
  if (!valid_nodes.empty() && to_m > 0) {
    std::vector<float> valid_speed_m = column(valid_nodes, [](const ValidNode& n) { return n.speed_m; });
    summary.details["p99_displacement_m"] = percentile_in_place(valid_speed_m, 0.99);
    if (options.years_between) {
      summary.details["p99_speed_m_per_yr"] =
          summary.details["p99_displacement_m"].get<double>() / *options.years_between;
      summary.details["years_between"] = *options.years_between;
    }
  }
  if (!options.stable_path.empty()) {
    summary.counts["stable_nodes"] = static_cast<std::int64_t>(stable_node_count);
    summary.counts["stable_valid"] = static_cast<std::int64_t>(stable_sample_.seen());
    const auto& stable_nodes = stable_sample_.records();
    const std::vector<float> stable_dx =
        column(stable_nodes, [](const std::pair<float, float>& n) { return n.first; });
    const std::vector<float> stable_dy =
        column(stable_nodes, [](const std::pair<float, float>& n) { return n.second; });
    if (stable_sample_.seen() >= 3) {
      const double mx = percentile_of(stable_dx, 0.5), my = percentile_of(stable_dy, 0.5);
      summary.details["stable_median_dx_px"] = mx;
      summary.details["stable_median_dy_px"] = my;
      summary.details["stable_nmad_dx_px"] = nmad_of(stable_dx, mx);
      summary.details["stable_nmad_dy_px"] = nmad_of(stable_dy, my);
    } else {
      summary.warnings.push_back(
          fmt::format("only {} valid node(s) on the stable ground of {}: no statistics",
                      stable_sample_.seen(), options.stable_path));
    }
  }
  if (options.ref_date && options.sec_date) {
    summary.details["ref_date"] = options.ref_date->iso();
    summary.details["sec_date"] = options.sec_date->iso();
  }
  if (flag_counts_[0] == 0) {
    summary.warnings.push_back(
        "no node could be matched: check that the images overlap and have texture, or "
        "lower --min-snr");
  }
}

void PairStatistics::write_quicklook(const std::string& ref_path, const std::string& sec_path,
                                     const std::string& output, const CorrelateOptions& options, double to_m,
                                     double pixel_size_x_m) const {
  // Magnitude in the most meaningful unit available: m or m/yr when georeferenced, else px or px/yr.
  double scale = to_m > 0 ? pixel_size_x_m : 1.0;
  std::string unit = to_m > 0 ? "m" : "px";
  if (options.years_between) scale /= *options.years_between, unit += "/yr";
  const int quick_cols = quick_dx_.width(), quick_rows = quick_dx_.height();
  GridF magnitude(quick_cols, quick_rows, 0.f), east(quick_cols, quick_rows, 0.f),
      north(quick_cols, quick_rows, 0.f);
  GridU8 valid(quick_cols, quick_rows, 0);
  for (std::size_t k = 0; k < magnitude.size(); ++k) {
    const float dx = quick_dx_.data()[k], dy = quick_dy_.data()[k];
    if (!std::isfinite(dx)) continue;
    valid.data()[k] = 1;
    magnitude.data()[k] = static_cast<float>(std::hypot(dx, dy) * scale);
    // In the magnitude's unit, so that the arrow key reads in the colour bar's unit.
    east.data()[k] = static_cast<float>(dx * scale);
    north.data()[k] =
        static_cast<float>(-dy * scale);  // rows grow downwards; arrows point the way the surface moved
  }
  // Node grids are small: enlarge them (nearest) so that the figure is readable.
  const int zoom = std::max(1, 720 / std::max(quick_cols, quick_rows));
  if (zoom > 1) {
    auto enlarge = [&](const auto& grid) {
      std::remove_cvref_t<decltype(grid)> out(grid.width() * zoom, grid.height() * zoom);
      for (int r = 0; r < out.height(); ++r)
        for (int c = 0; c < out.width(); ++c) out(c, r) = grid(c / zoom, r / zoom);
      return out;
    };
    magnitude = enlarge(magnitude), east = enlarge(east), north = enlarge(north), valid = enlarge(valid);
  }
  const std::string what = options.years_between ? "velocity" : "displacement";
  auto color_scale = render::ColorScale::robust_sequential(magnitude, valid, what + " magnitude", unit);
  render::QuicklookOptions q;
  std::string first_date, last_date;
  try {
    const auto a = io::acquisition_date(ref_path), b = io::acquisition_date(sec_path);
    first_date = std::min(a, b).iso(), last_date = std::max(a, b).iso();
  } catch (const Error&) {
    // Undated images: the title goes without dates.
  }
  q.title = render::figure_title(std::filesystem::path(output).stem().string(), what + " magnitude", unit,
                                 first_date, last_date);
  // Each figure cell is a node spacing divided by the enlargement above.
  if (to_m > 0) q.cell_size_m = options.step_px * quick_every_ * pixel_size_x_m / zoom;
  q.arrows = options.quicklook_arrows;
  q.arrow_options.step = std::max(16, std::max(magnitude.width(), magnitude.height()) / 30);
  render::write_png(options.quicklook_path,
                    render::render_quicklook(magnitude, valid, color_scale, q, &east, &north));
}

std::string PairStatistics::report(const Summary& summary, const CorrelateOptions& options,
                                   bool affine) const {
  std::string report =
      fmt::format("correlated {} x {} nodes (step {} px, chip {} px, search {} px, method {}) in {:.1f} s\n",
                  all_nodes_.cols, all_nodes_.rows, options.step_px, options.match.chip_px,
                  options.match.search_px, to_string(options.match.method), summary.seconds);
  if (options.ref_date && options.sec_date) {
    report += fmt::format("  dates {} -> {} ({} days)\n", options.ref_date->iso(), options.sec_date->iso(),
                          io::days_between(*options.ref_date, *options.sec_date));
  }
  report += fmt::format("  valid {:.1f}% ({} nodes)",
                        100 * summary.details.at("valid_fraction").get<double>(), flag_counts_[0]);
  for (int f = 1; f < 7; ++f) {
    if (flag_counts_[f]) report += fmt::format(", {} {}", kFlagNames[f], flag_counts_[f]);
  }
  report += "\n";
  if (affine && flag_counts_[0] > 0) {
    report += fmt::format("  affine shape: {} of the valid nodes kept the translation (flag 16)\n",
                          translation_only_);
  }
  if (!valid_sample_.records().empty()) {
    report += fmt::format(
        "  median displacement dx {:+.3f} px, dy {:+.3f} px; 99th percentile of |d| {:.2f} px",
        summary.details.at("median_dx_px").get<double>(), summary.details.at("median_dy_px").get<double>(),
        summary.details.at("p99_displacement_px").get<double>());
    if (summary.details.contains("p99_speed_m_per_yr")) {
      report += fmt::format(" ({:.1f} m/yr)", summary.details.at("p99_speed_m_per_yr").get<double>());
    }
    report += "\n";
  }
  if (summary.details.contains("stable_nmad_dx_px")) {
    report += fmt::format(
        "  stable ground ({} valid nodes): bias dx {:+.3f} px, dy {:+.3f} px; NMAD dx {:.3f} px, dy {:.3f} "
        "px\n",
        stable_sample_.seen(), summary.details.at("stable_median_dx_px").get<double>(),
        summary.details.at("stable_median_dy_px").get<double>(),
        summary.details.at("stable_nmad_dx_px").get<double>(),
        summary.details.at("stable_nmad_dy_px").get<double>());
  }
  return report;
}

}  // namespace deforma::correlate::detail
