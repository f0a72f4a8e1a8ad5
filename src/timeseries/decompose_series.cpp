// The per-date (4-D) decomposition: pairs of several geometries inverted jointly (MSBAS-style).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <Eigen/Dense>
#include <Eigen/SparseCholesky>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/timeseries/decompose.hpp"
#include "timeseries/decompose_detail.hpp"

namespace deforma::timeseries {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kDaysPerYear = 365.25;
}  // namespace

void SeriesOptions::validate() const {
  geometry.validate();
  if (!(regularization >= 0) || !std::isfinite(regularization) || regularization > 100) {
    throw InvalidArgument(fmt::format("--regularization {}: expected 0..100", regularization));
  }
}

SeriesDecomposer::SeriesDecomposer(std::vector<io::Date> dates, std::vector<SeriesPair> pairs,
                                   SeriesOptions options)
    : dates_(std::move(dates)), pairs_(std::move(pairs)), options_(options) {
  options_.validate();
  if (dates_.size() < 2) throw InvalidArgument("decompose series: at least two dates are needed");
  for (std::size_t i = 1; i < dates_.size(); ++i) {
    if (!(dates_[i - 1] < dates_[i]))
      throw InvalidArgument("decompose series: dates must be strictly increasing");
    interval_days_.push_back(
        static_cast<double>(dates_[i].days_since_epoch() - dates_[i - 1].days_since_epoch()));
  }
  const int n = static_cast<int>(dates_.size());
  for (const auto& p : pairs_) {
    if (p.ref < 0 || p.sec < 0 || p.ref >= n || p.sec >= n || p.ref == p.sec) {
      throw InvalidArgument(
          fmt::format("decompose series: pair ({}, {}) is not two distinct dates of {}", p.ref, p.sec, n));
    }
  }
  // The penalty compares velocities over a typical interval, as invert's does.
  tau_days_ = upper_median_of(interval_days_);
}

CellSeries SeriesDecomposer::solve(const std::vector<double>& values, const std::vector<double>& sigmas,
                                   const std::vector<std::array<double, 3>>& directions,
                                   const std::vector<int>& geometries) const {
  const std::size_t pair_count = pairs_.size();
  if (values.size() != pair_count || sigmas.size() != pair_count || directions.size() != pair_count ||
      geometries.size() != pair_count) {
    throw InvalidArgument("decompose series: one value, sigma, direction and geometry per pair");
  }
  const int dates = static_cast<int>(dates_.size());
  const int intervals = dates - 1;
  CellSeries out;
  for (int j = 0; j < 3; ++j) {
    out.displacement[j].assign(dates, kNaN);
    out.sigma[j].assign(dates, kNaN);
  }
  out.velocity_per_yr = {kNaN, kNaN, kNaN};
  out.velocity_sigma_per_yr = {kNaN, kNaN, kNaN};
  out.condition = kNaN;
  std::vector<std::size_t> used;
  std::vector<std::array<double, 3>> used_directions;
  std::set<int> used_geometries;
  std::vector<double> used_sigmas;
  for (std::size_t p = 0; p < pair_count; ++p) {
    const auto& d = directions[p];
    const double norm = std::hypot(d[0], d[1], d[2]);
    if (!std::isfinite(values[p]) || !(sigmas[p] > 0) || !std::isfinite(sigmas[p]) || !(norm > 0) ||
        !std::isfinite(norm)) {
      continue;
    }
    used.push_back(p);
    used_directions.push_back(d);
    used_geometries.insert(geometries[p]);
    used_sigmas.push_back(sigmas[p]);
  }
  out.pairs_used = static_cast<int>(used.size());
  out.geometries = static_cast<int>(used_geometries.size());
  if (used.empty()) {
    out.flags = decompose_flag::kNoData | decompose_flag::kEastUnresolved | decompose_flag::kNorthUnresolved |
                decompose_flag::kUpUnresolved;
    return out;
  }
  const detail::GeometryBasis g = detail::geometry_basis(used_directions, options_.geometry);
  out.condition = g.condition;
  out.flags = g.flags;
  const int r = static_cast<int>(g.basis.cols());
  // Nothing to report where no component is resolved (one look alone): spare the solve.
  if (r == 0 || !(g.resolved[0] || g.resolved[1] || g.resolved[2])) return out;

  // Unknowns: the displacement at every date after the first (the first is the origin, 0) in the basis of
  // resolved directions, x[(m - 1) * r + c]. A pair then touches two dates only and the velocity-change
  // penalty three consecutive ones, so the normal matrix is sparse whatever the number of dates (an EGMS
  // series of 200 dates per track gives a system of over a thousand unknowns per cell, which a dense
  // factorisation could not afford over a grid). The model is the same as with interval velocities
  // (v_k = (D_k+1 - D_k) / dt_k): a change of variables.
  const int unknowns = intervals * r;
  auto index_of = [r](int date, int c) { return (date - 1) * r + c; };
  const double sigma_median = upper_median_in_place(used_sigmas);
  // One design row per used pair: its non-zero entries (at most 2 r).
  struct Entry {
    int index;
    double coefficient;
  };
  std::vector<std::vector<Entry>> design(used.size());
  for (std::size_t u = 0; u < used.size(); ++u) {
    const std::size_t p = used[u];
    const auto d = detail::project_direction(directions[p], options_.geometry);
    const Eigen::RowVectorXd along = Eigen::Vector3d(d[0], d[1], d[2]).transpose() * g.basis;
    for (const auto& [date, sign] : {std::pair{pairs_[p].sec, 1.0}, std::pair{pairs_[p].ref, -1.0}}) {
      if (date == 0) continue;
      for (int c = 0; c < r; ++c) design[u].push_back({index_of(date, c), sign * along(c)});
    }
  }
  auto predicted = [&](std::size_t u, const Eigen::VectorXd& x) {
    double v = 0;
    for (const Entry& e : design[u]) v += e.coefficient * x(e.index);
    return v;
  };
  // Velocity changes between consecutive intervals, over the median interval, weighted as a pair of the
  // cell's median sigma times the regularization: negligible where pairs decide, a bridge where none do.
  // North neglected: north pinned to zero by the same kind of row in every interval.
  const double wr = std::pow(options_.regularization * tau_days_ / sigma_median, 2);
  const double wn = std::pow(tau_days_ / sigma_median, 2);
  std::vector<Eigen::Triplet<double>> prior;
  auto add_outer = [](std::vector<Eigen::Triplet<double>>& t, const std::vector<Entry>& row, double w) {
    for (const Entry& a : row) {
      for (const Entry& b : row) t.emplace_back(a.index, b.index, w * a.coefficient * b.coefficient);
    }
  };
  std::vector<Entry> row;
  for (int k = 0; k + 1 < intervals; ++k) {
    // v_k+1 - v_k = D_k+2 / dt_k+1 - D_k+1 (1/dt_k+1 + 1/dt_k) + D_k / dt_k, per basis direction.
    const double a = 1.0 / interval_days_[k], b = 1.0 / interval_days_[k + 1];
    for (int c = 0; c < r; ++c) {
      row.clear();
      if (k > 0) row.push_back({index_of(k, c), a});
      row.push_back({index_of(k + 1, c), -(a + b)});
      row.push_back({index_of(k + 2, c), b});
      add_outer(prior, row, wr);
    }
  }
  if (options_.geometry.north_zero) {
    const Eigen::RowVectorXd north = Eigen::Vector3d(0, 1, 0).transpose() * g.basis;
    for (int k = 0; k < intervals; ++k) {
      row.clear();
      const double a = 1.0 / interval_days_[k];
      for (int c = 0; c < r; ++c) {
        if (k > 0) row.push_back({index_of(k, c), -a * north(c)});
        row.push_back({index_of(k + 1, c), a * north(c)});
      }
      add_outer(prior, row, wn);
    }
  }
  std::vector<double> robust_weight(used.size(), 1.0);
  Eigen::SparseMatrix<double> normal(unknowns, unknowns);
  Eigen::VectorXd rhs;
  std::vector<Eigen::Triplet<double>> triplets;
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt;
  // Assembles and factorises with the current weights; false when the system is singular (a date that no
  // pair reaches and no penalty bridges) or nearly so.
  auto factorise = [&] {
    triplets = prior;
    rhs = Eigen::VectorXd::Zero(unknowns);
    for (std::size_t u = 0; u < used.size(); ++u) {
      const std::size_t p = used[u];
      const double w = robust_weight[u] / (sigmas[p] * sigmas[p]);
      add_outer(triplets, design[u], w);
      for (const Entry& e : design[u]) rhs(e.index) += w * values[p] * e.coefficient;
    }
    normal.setFromTriplets(triplets.begin(), triplets.end());
    ldlt.compute(normal);
    if (ldlt.info() != Eigen::Success) return false;
    // The ratio of the pivots stands for the condition number a dense factorisation would estimate.
    const Eigen::VectorXd pivots = ldlt.vectorD();
    const double largest = pivots.cwiseAbs().maxCoeff();
    return pivots.allFinite() && pivots.minCoeff() > 1e-13 * largest;
  };
  if (!factorise()) {
    out.flags |= decompose_flag::kIllConditioned;
    return out;
  }
  Eigen::VectorXd x = ldlt.solve(rhs);
  // Robust loss: iteratively reweighted least squares (as invert's), residuals normalised by each pair's
  // sigma and by their robust scale; the weights of the last pass give the solution and its covariance.
  if (options_.robust != RobustLoss::kNone && used.size() > 2) {
    const double c = options_.robust == RobustLoss::kTukey ? 4.685 : 1.345;
    for (int iteration = 0; iteration < 20; ++iteration) {
      std::vector<double> normalised(used.size()), magnitudes(used.size());
      for (std::size_t u = 0; u < used.size(); ++u) {
        const std::size_t p = used[u];
        normalised[u] = (values[p] - predicted(u, x)) / sigmas[p];
        magnitudes[u] = std::abs(normalised[u]);
      }
      const double scale = std::max(kSeriesMinRobustScale, 1.4826 * upper_median_in_place(magnitudes));
      double change = 0;
      for (std::size_t u = 0; u < used.size(); ++u) {
        const double z = std::abs(normalised[u]) / (c * scale);
        const double w = options_.robust == RobustLoss::kTukey ? (z < 1 ? std::pow(1 - z * z, 2) : 0.0)
                                                               : (z <= 1 ? 1.0 : 1.0 / z);
        change = std::max(change, std::abs(w - robust_weight[u]));
        robust_weight[u] = w;
      }
      if (!factorise()) {
        out.flags |= decompose_flag::kIllConditioned;
        return out;
      }
      x = ldlt.solve(rhs);
      if (change < 1e-3) break;
    }
    for (const double w : robust_weight) out.pairs_downweighted += w < kSeriesKeptWeight ? 1 : 0;
  }

  // Displacement at date m, component j: gᵀ x with g = basis row j at date m; its variance gᵀ N⁻¹ g.
  std::vector<double> t_years(dates);
  for (int m = 0; m < dates; ++m) {
    t_years[m] =
        static_cast<double>(dates_[m].days_since_epoch() - dates_[0].days_since_epoch()) / kDaysPerYear;
  }
  double t_mean = 0;
  for (const double t : t_years) t_mean += t;
  t_mean /= dates;
  double sxx = 0;
  for (const double t : t_years) sxx += (t - t_mean) * (t - t_mean);
  Eigen::VectorXd gm = Eigen::VectorXd::Zero(unknowns);
  for (int j = 0; j < 3; ++j) {
    if (!g.resolved[j]) continue;
    Eigen::VectorXd h = Eigen::VectorXd::Zero(unknowns);
    double slope = 0;
    out.displacement[j][0] = 0.0;
    out.sigma[j][0] = 0.0;
    for (int m = 1; m < dates; ++m) {
      gm.segment(index_of(m, 0), r) = g.basis.row(j).transpose();
      const double u = gm.dot(x);
      out.displacement[j][m] = u;
      out.sigma[j][m] = std::sqrt(std::max(0.0, gm.dot(ldlt.solve(gm))));
      gm.segment(index_of(m, 0), r).setZero();
      const double wm = (t_years[m] - t_mean) / sxx;
      slope += wm * u;
      h.segment(index_of(m, 0), r) = wm * g.basis.row(j).transpose();
    }
    out.velocity_per_yr[j] = slope;
    out.velocity_sigma_per_yr[j] = std::sqrt(std::max(0.0, h.dot(ldlt.solve(h))));
  }
  return out;
}

}  // namespace deforma::timeseries
