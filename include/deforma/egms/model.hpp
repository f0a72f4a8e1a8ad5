#pragma once
// The EGMS time-series model of a measurement point (EGMS Product Description Document and Algorithm
// Theoretical Basis Document), t in years from the first date of the dataset:
//   mean velocity:  d = v t + c + a cos2πt + b sin2πt,           std = sqrt(Q11) · std(residuals)
//   acceleration:   d = A t²/2 + v t + c + a cos2πt + b sin2πt,  std = sqrt(Q11) · std(residuals)
//   seasonality:    d = k3 t³ + k2 t² + k1 t + c + a cos + b sin, amplitude sqrt(a² + b²),
//                   rmse = rms(residuals), seasonality_std = sqrt((4-π)/2 · (Q55+Q66)/2) · rmse
//   temporal coherence γ = |mean_k exp(j 4π/λ (d_k - (v t_k + c'))) |, λ = 55.46576 mm, where v t + c'
//                   is the linear part of the mean-velocity model written with cos2πt - 1 (so that the
//                   seasonal term is zero at t = 0).
// with Q = (GᵀG)⁻¹ of each design G and std the population standard deviation. On the real 2020-2024
// products these reproduce the files' columns to their rounding when t = days / 365 (docs/egms.md).
//
// Fast path: without missing values the design matrices are the same for every point, so all three
// models come from one product Hᵀ·D with H = [1 t t² t³ cos sin] and precomputed (GᵀG)⁻¹; residual sums of
// squares follow from dᵀd - (Gᵀd)ᵀx. Points with missing dates are fitted one by one on their own dates.
#include <cstddef>
#include <vector>

namespace deforma::egms {

struct ModelOptions {
  double days_per_year = 365.0;     ///< t = days since the first date / days_per_year
  double wavelength_mm = 55.46576;  ///< Sentinel-1 C-band wavelength, for the temporal coherence
  int min_dates = 8;                ///< fewer valid dates than this: the point's model is NaN (flagged)

  /// Throws InvalidArgument naming the field.
  void validate() const;
};

/// Model figures of one point (NaN when it has fewer than min_dates valid dates).
struct PointModel {
  double mean_velocity = 0;       ///< mm/yr
  double mean_velocity_std = 0;   ///< mm/yr
  double acceleration = 0;        ///< mm/yr²
  double acceleration_std = 0;    ///< mm/yr²
  double seasonality = 0;         ///< mm (amplitude)
  double seasonality_std = 0;     ///< mm
  double rmse = 0;                ///< mm, of the cubic + seasonal model
  double temporal_coherence = 0;  ///< 0..1
  double offset = 0;              ///< mm, constant c' of the linear part (cos - 1 convention)
  int valid_dates = 0;
};

class TimeSeriesModel {
 public:
  /// `day_numbers`: the acquisition days (ascending, days since 1970-01-01). Throws InvalidArgument when
  /// there are fewer than 6 dates (the cubic model has 6 unknowns) or the options are invalid.
  TimeSeriesModel(const std::vector<int>& day_numbers, ModelOptions options = {});

  const std::vector<double>& times_years() const { return t_; }
  const ModelOptions& options() const { return options_; }

  /// Fits `count` series stored row-major (count x dates, mm, NaN = missing) into `out[0..count)`.
  /// Thread-safe (const); the caller parallelises over blocks of points.
  void fit(const float* series, std::size_t count, PointModel* out) const;
  /// One point (any missing values allowed).
  PointModel fit_one(const float* series) const;

 private:
  void fit_complete_block(const float* series, std::size_t count, PointModel* out) const;
  std::vector<double> t_;
  std::vector<double> cos_, sin_;
  ModelOptions options_;
  // Precomputed for complete series: per model, P = Q·S (k x 6) with S mapping Hᵀd to Gᵀd.
  std::vector<double> p1_, p2_, p3_;  // row-major k x 6
  double q1_vel_ = 0, q2_acc_ = 0, q3_seasonal_ = 0;
};

}  // namespace deforma::egms
