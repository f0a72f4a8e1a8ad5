#include "deforma/egms/model.hpp"

#include <cmath>
#include <complex>
#include <limits>
#include <numbers>

#include <fmt/format.h>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"

namespace deforma::egms {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The three EGMS designs as selections of the common basis H = [1 t t² t³ cos sin] (index, scale).
struct Basis {
  int k;
  int index[6];
  double scale[6];
};
constexpr Basis kVelocity{4, {1, 0, 4, 5, 0, 0}, {1, 1, 1, 1, 0, 0}};        // [t 1 cos sin]
constexpr Basis kAcceleration{5, {2, 1, 0, 4, 5, 0}, {0.5, 1, 1, 1, 1, 0}};  // [t²/2 t 1 cos sin]
constexpr Basis kCubic{6, {3, 2, 1, 0, 4, 5}, {1, 1, 1, 1, 1, 1}};           // [t³ t² t 1 cos sin]

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;
using Vec = Eigen::VectorXd;

double h_value(int index, double t, double c, double s) {
  switch (index) {
    case 0:
      return 1.0;
    case 1:
      return t;
    case 2:
      return t * t;
    case 3:
      return t * t * t;
    case 4:
      return c;
    default:
      return s;
  }
}

// (GᵀG)⁻¹ for a basis evaluated on the given rows; false when singular.
bool normal_inverse(const Basis& b, const std::vector<double>& t, const std::vector<double>& cs,
                    const std::vector<double>& sn, const std::vector<int>& rows, Mat& q) {
  Mat g(static_cast<Eigen::Index>(rows.size()), b.k);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const int i = rows[r];
    for (int j = 0; j < b.k; ++j)
      g(static_cast<Eigen::Index>(r), j) = b.scale[j] * h_value(b.index[j], t[i], cs[i], sn[i]);
  }
  const Mat n = g.transpose() * g;
  Eigen::FullPivLU<Mat> lu(n);
  if (!lu.isInvertible()) return false;
  q = lu.inverse();
  return true;
}

double coherence(const float* d, const std::vector<double>& t, double velocity, double offset,
                 double phase_per_mm, const std::vector<int>* rows) {
  // Accumulate in double; sines and cosines in float precision are far below the 0.01 printed.
  double re = 0, im = 0;
  std::size_t n = 0;
  const auto add = [&](std::size_t k) {
    const float phase = static_cast<float>(phase_per_mm * (d[k] - (velocity * t[k] + offset)));
    re += std::cos(phase);
    im += std::sin(phase);
    ++n;
  };
  if (rows) {
    for (const int k : *rows) add(static_cast<std::size_t>(k));
  } else {
    for (std::size_t k = 0; k < t.size(); ++k) add(k);
  }
  return n ? std::hypot(re, im) / static_cast<double>(n) : kNaN;
}

PointModel nan_model(int valid) {
  PointModel m;
  m.mean_velocity = m.mean_velocity_std = m.acceleration = m.acceleration_std = kNaN;
  m.seasonality = m.seasonality_std = m.rmse = m.temporal_coherence = m.offset = kNaN;
  m.valid_dates = valid;
  return m;
}

}  // namespace

void ModelOptions::validate() const {
  if (!(days_per_year >= 300 && days_per_year <= 400)) {
    throw InvalidArgument(
        fmt::format("days-per-year = {}: expected a year length in days (365 or 365.25)", days_per_year));
  }
  if (!(wavelength_mm > 0))
    throw InvalidArgument(fmt::format("wavelength-mm = {}: expected > 0", wavelength_mm));
  if (min_dates < 6)
    throw InvalidArgument(
        fmt::format("min-dates = {}: expected >= 6 (the cubic model has 6 unknowns)", min_dates));
}

TimeSeriesModel::TimeSeriesModel(const std::vector<int>& day_numbers, ModelOptions options)
    : options_(options) {
  options_.validate();
  if (day_numbers.size() < 6) {
    throw InvalidArgument(
        fmt::format("time-series model: {} dates, expected at least 6", day_numbers.size()));
  }
  for (std::size_t i = 1; i < day_numbers.size(); ++i) {
    if (day_numbers[i] <= day_numbers[i - 1])
      throw InvalidArgument("time-series model: dates must be strictly ascending");
  }
  const double two_pi = 2.0 * std::numbers::pi;
  for (const int day : day_numbers) {
    const double t = (day - day_numbers.front()) / options_.days_per_year;
    t_.push_back(t);
    cos_.push_back(std::cos(two_pi * t));
    sin_.push_back(std::sin(two_pi * t));
  }
  std::vector<int> all(t_.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  const auto store = [&](const Basis& b, std::vector<double>& q_out, double& diag, int diag_index) {
    Mat q;
    if (!normal_inverse(b, t_, cos_, sin_, all, q))
      throw NumericalError("time-series model: singular design matrix");
    q_out.assign(q.data(), q.data() + q.size());
    diag = q(diag_index, diag_index);
  };
  store(kVelocity, p1_, q1_vel_, 0);
  store(kAcceleration, p2_, q2_acc_, 0);
  store(kCubic, p3_, q3_seasonal_, 0);
  const Eigen::Map<const Mat> q3(p3_.data(), 6, 6);
  q3_seasonal_ = (q3(4, 4) + q3(5, 5)) / 2.0;
}

void TimeSeriesModel::fit_complete_block(const float* series, std::size_t count, PointModel* out) const {
  const auto n_dates = static_cast<Eigen::Index>(t_.size());
  Mat h(n_dates, 6);
  for (Eigen::Index k = 0; k < n_dates; ++k) {
    for (int j = 0; j < 6; ++j) h(k, j) = h_value(j, t_[k], cos_[k], sin_[k]);
  }
  Mat d(n_dates, static_cast<Eigen::Index>(count));
  for (std::size_t p = 0; p < count; ++p) {
    const float* row = series + p * t_.size();
    for (Eigen::Index k = 0; k < n_dates; ++k) d(k, static_cast<Eigen::Index>(p)) = row[k];
  }
  const Mat m = h.transpose() * d;  // 6 x count: Hᵀd for every point at once
  const Eigen::VectorXd dd = d.colwise().squaredNorm().transpose();
  const Eigen::Map<const Mat> q1(p1_.data(), 4, 4), q2(p2_.data(), 5, 5), q3(p3_.data(), 6, 6);
  const double n = static_cast<double>(n_dates);
  const double phase_per_mm = 4.0 * std::numbers::pi / options_.wavelength_mm;
  for (std::size_t p = 0; p < count; ++p) {
    const auto col = m.col(static_cast<Eigen::Index>(p));
    const auto solve = [&](const Basis& b, const Eigen::Map<const Mat>& q, Vec& x) {
      Vec g(b.k);
      for (int j = 0; j < b.k; ++j) g(j) = b.scale[j] * col(b.index[j]);
      x = q * g;
      return std::max(0.0, dd(static_cast<Eigen::Index>(p)) - g.dot(x));  // residual sum of squares
    };
    Vec x1, x2, x3;
    const double rss1 = solve(kVelocity, q1, x1);
    const double rss2 = solve(kAcceleration, q2, x2);
    const double rss3 = solve(kCubic, q3, x3);
    PointModel& r = out[p];
    r.valid_dates = static_cast<int>(n_dates);
    r.mean_velocity = x1(0);
    r.mean_velocity_std = std::sqrt(q1_vel_) * std::sqrt(rss1 / n);
    r.acceleration = x2(0);
    r.acceleration_std = std::sqrt(q2_acc_) * std::sqrt(rss2 / n);
    r.seasonality = std::hypot(x3(4), x3(5));
    r.rmse = std::sqrt(rss3 / n);
    r.seasonality_std = std::sqrt((4.0 - std::numbers::pi) / 2.0 * q3_seasonal_) * r.rmse;
    r.offset = x1(1) + x1(2);
    r.temporal_coherence =
        coherence(series + p * t_.size(), t_, r.mean_velocity, r.offset, phase_per_mm, nullptr);
  }
}

PointModel TimeSeriesModel::fit_one(const float* series) const {
  std::vector<int> rows;
  rows.reserve(t_.size());
  for (std::size_t k = 0; k < t_.size(); ++k) {
    if (!std::isnan(series[k])) rows.push_back(static_cast<int>(k));
  }
  const int valid = static_cast<int>(rows.size());
  if (valid < options_.min_dates) return nan_model(valid);
  if (valid == static_cast<int>(t_.size())) {
    PointModel m;
    fit_complete_block(series, 1, &m);
    return m;
  }
  PointModel r;
  r.valid_dates = valid;
  const double n = valid;
  const auto fit = [&](const Basis& b, Vec& x, double& q_diag, double& rss, Mat& q) {
    if (!normal_inverse(b, t_, cos_, sin_, rows, q)) return false;
    Vec g = Vec::Zero(b.k);
    for (const int k : rows) {
      for (int j = 0; j < b.k; ++j)
        g(j) += b.scale[j] * h_value(b.index[j], t_[k], cos_[k], sin_[k]) * series[k];
    }
    x = q * g;
    rss = 0;
    for (const int k : rows) {
      double model = 0;
      for (int j = 0; j < b.k; ++j) model += x(j) * b.scale[j] * h_value(b.index[j], t_[k], cos_[k], sin_[k]);
      rss += (series[k] - model) * (series[k] - model);
    }
    q_diag = q(0, 0);
    return true;
  };
  Vec x1, x2, x3;
  Mat q1, q2, q3;
  double d1 = 0, d2 = 0, d3 = 0, rss1 = 0, rss2 = 0, rss3 = 0;
  if (!fit(kVelocity, x1, d1, rss1, q1) || !fit(kAcceleration, x2, d2, rss2, q2) ||
      !fit(kCubic, x3, d3, rss3, q3)) {
    return nan_model(valid);  // dates too clustered for the design: flagged, not thrown
  }
  r.mean_velocity = x1(0);
  r.mean_velocity_std = std::sqrt(d1) * std::sqrt(rss1 / n);
  r.acceleration = x2(0);
  r.acceleration_std = std::sqrt(d2) * std::sqrt(rss2 / n);
  r.seasonality = std::hypot(x3(4), x3(5));
  r.rmse = std::sqrt(rss3 / n);
  r.seasonality_std = std::sqrt((4.0 - std::numbers::pi) / 2.0 * (q3(4, 4) + q3(5, 5)) / 2.0) * r.rmse;
  r.offset = x1(1) + x1(2);
  r.temporal_coherence = coherence(series, t_, r.mean_velocity, r.offset,
                                   4.0 * std::numbers::pi / options_.wavelength_mm, &rows);
  return r;
}

void TimeSeriesModel::fit(const float* series, std::size_t count, PointModel* out) const {
  // Runs of complete series go through the shared factorisation; the others are fitted alone.
  const std::size_t n_dates = t_.size();
  if (static_cast<int>(n_dates) < options_.min_dates) {
    for (std::size_t i = 0; i < count; ++i) out[i] = nan_model(static_cast<int>(n_dates));
    return;
  }
  std::size_t p = 0;
  while (p < count) {
    std::size_t end = p;
    while (end < count) {
      const float* row = series + end * n_dates;
      bool complete = true;
      for (std::size_t k = 0; k < n_dates; ++k) {
        if (std::isnan(row[k])) {
          complete = false;
          break;
        }
      }
      if (!complete) break;
      ++end;
    }
    if (end > p) {
      fit_complete_block(series + p * n_dates, end - p, out + p);
      p = end;
    } else {
      out[p] = fit_one(series + p * n_dates);
      ++p;
    }
  }
}

}  // namespace deforma::egms
