// The filter's kernels on in-memory grids: node tests (thresholds, normalized median test) and the robust
// fit of a bias or ramp to stable-ground samples.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/filter/filter.hpp"
#include "filter/nodes.hpp"

namespace deforma::filter {

using detail::has;
using detail::measured;
using detail::usable;

bool is_valid_node(const FieldWindow& f, int col, int row) {
  return measured(f.flag(col, row)) && usable(f.dx_px(col, row)) && usable(f.dy_px(col, row));
}

void median_nmad(std::vector<double> values, double& median, double& nmad) {
  median = 0;
  nmad = 0;
  if (values.empty()) return;
  median = median_in_place(values);
  for (auto& v : values) v = std::abs(v - median);
  nmad = 1.4826 * median_in_place(values);
}

GridF flag_outliers(const FieldWindow& f, const io::Window& core, const FilterOptions& o,
                    FilterCounts& counts) {
  const int w = f.dx_px.width(), h = f.dx_px.height();
  GridF flags = f.flag;
  // Thresholds first, over the whole window: the median test's neighbours are the nodes that pass them.
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const bool in_core =
          c >= core.col && c < core.col + core.width && r >= core.row && r < core.row + core.height;
      if (in_core) ++counts.nodes;
      if (!is_valid_node(f, c, r)) continue;
      if (in_core) ++counts.valid_in;
      NodeFlag verdict = NodeFlag::kValid;
      if (o.min_snr > 0 && has(f.snr) && !(f.snr(c, r) >= o.min_snr)) {
        verdict = NodeFlag::kLowSnr;
      } else if (o.min_corr > 0 && has(f.corr) && !(f.corr(c, r) >= o.min_corr)) {
        verdict = NodeFlag::kLowCorrelation;
      } else if (o.max_displacement_px > 0 &&
                 std::hypot(f.dx_px(c, r), f.dy_px(c, r)) > o.max_displacement_px) {
        verdict = NodeFlag::kAboveMaxDisplacement;
      } else if (o.max_displacement_m > 0 && has(f.east_m) && has(f.north_m) && usable(f.east_m(c, r)) &&
                 usable(f.north_m(c, r)) &&
                 std::hypot(f.east_m(c, r), f.north_m(c, r)) > o.max_displacement_m) {
        verdict = NodeFlag::kAboveMaxDisplacement;
      }
      if (verdict == NodeFlag::kValid) continue;
      flags(c, r) = static_cast<float>(verdict);
      if (!in_core) continue;
      if (verdict == NodeFlag::kLowSnr) ++counts.low_snr;
      if (verdict == NodeFlag::kLowCorrelation) ++counts.low_corr;
      if (verdict == NodeFlag::kAboveMaxDisplacement) ++counts.above_max;
    }
  }
  auto passes = [&](int c, int r) {
    return measured(flags(c, r)) && usable(f.dx_px(c, r)) && usable(f.dy_px(c, r));
  };
  // The median test reads the thresholded flags and writes its verdicts apart, so that a rejection does
  // not change its neighbours' tests (the result does not depend on the visiting order).
  GridF result = flags;
  std::vector<double> nx, ny;
  const int rad = o.median_radius;
  nx.reserve(static_cast<std::size_t>((2 * rad + 1) * (2 * rad + 1)));
  ny.reserve(nx.capacity());
  for (int r = core.row; r < core.row + core.height; ++r) {
    for (int c = core.col; c < core.col + core.width; ++c) {
      if (!passes(c, r)) continue;
      if (o.median_test) {
        nx.clear();
        ny.clear();
        for (int rr = std::max(0, r - rad); rr <= std::min(h - 1, r + rad); ++rr) {
          for (int cc = std::max(0, c - rad); cc <= std::min(w - 1, c + rad); ++cc) {
            if ((cc == c && rr == r) || !passes(cc, rr)) continue;
            nx.push_back(f.dx_px(cc, rr));
            ny.push_back(f.dy_px(cc, rr));
          }
        }
        if (static_cast<int>(nx.size()) < o.median_min_neighbours) {
          ++counts.median_untested;
        } else {
          // Westerweel & Scarano (2005): the residual of the centre vector to the neighbours' median,
          // normalized by the neighbours' own median residual plus epsilon (the measurement noise level),
          // per component; a vector is rejected when the norm of the two normalized residuals exceeds the
          // threshold.
          auto normalized_residual = [&](std::vector<double>& values, double centre) {
            const double med = median_in_place(values);
            for (auto& v : values) v = std::abs(v - med);
            const double residual_median = median_in_place(values);
            return std::abs(centre - med) / (residual_median + o.median_epsilon_px);
          };
          const double rx = normalized_residual(nx, f.dx_px(c, r));
          const double ry = normalized_residual(ny, f.dy_px(c, r));
          if (std::hypot(rx, ry) > o.median_threshold) {
            result(c, r) = static_cast<float>(NodeFlag::kMedianTest);
            ++counts.median_rejected;
            continue;
          }
        }
      }
      ++counts.valid_out;
    }
  }
  return result;
}

double RampFit::evaluate(double x, double y) const {
  if (coefficients.empty()) return 0.0;
  double v = coefficients[0];
  if (coefficients.size() >= 3) v += coefficients[1] * x + coefficients[2] * y;
  if (coefficients.size() >= 6)
    v += coefficients[3] * x * x + coefficients[4] * x * y + coefficients[5] * y * y;
  return v;
}

nlohmann::json RampFit::to_json() const {
  return {{"model", to_string(model)},
          {"coefficients", coefficients},
          {"coordinates", "x = 2 (col + 0.5) / width - 1, y = 2 (row + 0.5) / height - 1 (node grid)"},
          {"samples", samples},
          {"used", used},
          {"median_before", median_before},
          {"nmad_before", nmad_before},
          {"median_after", median_after},
          {"nmad_after", nmad_after}};
}

RampFit fit_ramp(const std::vector<StableSample>& samples, RampModel model, int robust_iterations,
                 double robust_k) {
  RampFit fit;
  fit.model = model;
  fit.samples = static_cast<std::int64_t>(samples.size());
  std::vector<double> raw;
  raw.reserve(samples.size());
  for (const auto& s : samples) raw.push_back(s.value);
  median_nmad(raw, fit.median_before, fit.nmad_before);
  if (model == RampModel::kNone) {
    fit.used = fit.samples;
    fit.median_after = fit.median_before;
    fit.nmad_after = fit.nmad_before;
    return fit;
  }
  const int terms = model == RampModel::kBias ? 1 : (model == RampModel::kPlane ? 3 : 6);
  if (static_cast<int>(samples.size()) < terms) {
    throw NumericalError(
        fmt::format("stable-ground correction: {} stable nodes for a {} fit with {} coefficients",
                    samples.size(), to_string(model), terms));
  }
  auto row_of = [&](const StableSample& s, double* out) {
    out[0] = 1.0;
    if (terms >= 3) {
      out[1] = s.x;
      out[2] = s.y;
    }
    if (terms >= 6) {
      out[3] = s.x * s.x;
      out[4] = s.x * s.y;
      out[5] = s.y * s.y;
    }
  };
  std::vector<char> keep(samples.size(), 1);
  Eigen::VectorXd coef = Eigen::VectorXd::Zero(terms);
  std::vector<double> residuals(samples.size());
  for (int iteration = 0; iteration < robust_iterations; ++iteration) {
    const auto kept = static_cast<Eigen::Index>(std::count(keep.begin(), keep.end(), 1));
    if (kept < terms) break;
    Eigen::MatrixXd a(kept, terms);
    Eigen::VectorXd b(kept);
    Eigen::Index k = 0;
    double terms_of_row[6];
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (!keep[i]) continue;
      row_of(samples[i], terms_of_row);
      for (int j = 0; j < terms; ++j) a(k, j) = terms_of_row[j];
      b(k) = samples[i].value;
      ++k;
    }
    coef = a.colPivHouseholderQr().solve(b);
    for (std::size_t i = 0; i < samples.size(); ++i) {
      row_of(samples[i], terms_of_row);
      double predicted = 0;
      for (int j = 0; j < terms; ++j) predicted += terms_of_row[j] * coef(j);
      residuals[i] = samples[i].value - predicted;
    }
    std::vector<double> kept_residuals;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (keep[i]) kept_residuals.push_back(residuals[i]);
    }
    double med = 0, nmad = 0;
    median_nmad(kept_residuals, med, nmad);
    if (nmad <= 0) break;
    std::vector<char> next(samples.size());
    for (std::size_t i = 0; i < samples.size(); ++i) {
      next[i] = std::abs(residuals[i] - med) <= robust_k * nmad ? 1 : 0;
    }
    if (next == keep || std::count(next.begin(), next.end(), 1) < terms) break;
    keep = std::move(next);
  }
  fit.coefficients.assign(coef.data(), coef.data() + terms);
  std::vector<double> after;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (keep[i]) after.push_back(samples[i].value - fit.evaluate(samples[i].x, samples[i].y));
  }
  fit.used = static_cast<std::int64_t>(after.size());
  median_nmad(after, fit.median_after, fit.nmad_after);
  return fit;
}

}  // namespace deforma::filter
