#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/model.hpp"
#include "deforma/egms/processing.hpp"
#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {

std::vector<int> six_day_dates(int count, int first = 18264) {
  std::vector<int> days;
  for (int i = 0; i < count; ++i) days.push_back(first + 6 * i);
  return days;
}

TEST(EgmsModel, RecoversKnownVelocityAccelerationAndSeasonality) {
  const auto days = six_day_dates(250);
  const TimeSeriesModel model(days);
  const auto& t = model.times_years();
  std::vector<float> series(days.size());
  // Noise-free: velocity -3 mm/yr, acceleration 0.8 mm/yr², annual amplitude 2 mm.
  for (std::size_t k = 0; k < t.size(); ++k) {
    const double w = 2 * std::numbers::pi * t[k];
    series[k] = static_cast<float>(-3.0 * t[k] + 1.5 + 1.2 * std::cos(w) + 1.6 * std::sin(w));
  }
  const PointModel linear = model.fit_one(series.data());
  EXPECT_NEAR(linear.mean_velocity, -3.0, 1e-4);
  EXPECT_NEAR(linear.seasonality, 2.0, 1e-4);
  EXPECT_NEAR(linear.rmse, 0.0, 1e-4);
  // The coherence is measured against the linear part only (EGMS convention): seasonality lowers it.
  EXPECT_LT(linear.temporal_coherence, 0.99);
  EXPECT_NEAR(linear.acceleration, 0.0, 1e-4);
  for (std::size_t k = 0; k < t.size(); ++k) series[k] += static_cast<float>(0.8 * t[k] * t[k] / 2.0);
  const PointModel accelerating = model.fit_one(series.data());
  EXPECT_NEAR(accelerating.acceleration, 0.8, 1e-3);
  for (std::size_t k = 0; k < t.size(); ++k) series[k] = static_cast<float>(2.5 * t[k] - 1.0);
  EXPECT_NEAR(model.fit_one(series.data()).temporal_coherence, 1.0, 1e-6);
}

TEST(EgmsModel, StandardDeviationsFollowTheEgmsDefinitions) {
  const auto days = six_day_dates(200);
  const TimeSeriesModel model(days);
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 2.0f);
  std::vector<float> series(days.size());
  for (std::size_t k = 0; k < series.size(); ++k)
    series[k] = static_cast<float>(1.0 * model.times_years()[k]) + noise(rng);
  const PointModel m = model.fit_one(series.data());
  // Residual std ~2 mm; sqrt(Q11) ~ 1/(std(t)·sqrt(n)) for the velocity: the std must be of that order.
  EXPECT_NEAR(m.rmse, 2.0, 0.3);
  EXPECT_GT(m.mean_velocity_std, 0.05);
  EXPECT_LT(m.mean_velocity_std, 0.2);
  // (Q55 + Q66)/2 is about 2/n for well-spread dates.
  const double expected_ratio = std::sqrt((4 - std::numbers::pi) / 2 * 2.0 / 200.0);
  EXPECT_NEAR(m.seasonality_std / m.rmse, expected_ratio, 0.3 * expected_ratio);
  EXPECT_LT(m.temporal_coherence, 1.0);
  EXPECT_GT(m.temporal_coherence, 0.8);
}

TEST(EgmsModel, MissingDatesFallBackToAPerPointFit) {
  const auto days = six_day_dates(120);
  const TimeSeriesModel model(days);
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> complete(days.size());
  for (std::size_t k = 0; k < complete.size(); ++k)
    complete[k] = static_cast<float>(-5.0 * model.times_years()[k]) + noise(rng);
  std::vector<float> gappy = complete;
  for (std::size_t k = 10; k < 30; ++k) gappy[k] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> both(complete);
  both.insert(both.end(), gappy.begin(), gappy.end());
  std::vector<PointModel> out(2);
  model.fit(both.data(), 2, out.data());
  EXPECT_EQ(out[0].valid_dates, 120);
  EXPECT_EQ(out[1].valid_dates, 100);
  EXPECT_NEAR(out[0].mean_velocity, -5.0, 0.2);
  EXPECT_NEAR(out[1].mean_velocity, -5.0, 0.3);
  // The fallback path on a complete series equals the shared factorisation.
  const PointModel fast = model.fit_one(complete.data());
  EXPECT_NEAR(fast.mean_velocity, out[0].mean_velocity, 1e-9);
  // Too few dates: flagged as NaN, not thrown.
  std::vector<float> empty(days.size(), std::numeric_limits<float>::quiet_NaN());
  empty[0] = 1;
  EXPECT_TRUE(std::isnan(model.fit_one(empty.data()).mean_velocity));
  EXPECT_THROW(TimeSeriesModel(six_day_dates(4)), InvalidArgument);
}

TEST(EgmsModel, ReproducesTheColumnsOfTheRealProducts) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  RunContext context;
  for (const char* name : {test::kDescending, test::kAscending}) {
    const auto summary = run_fit((dir / name).string(), {}, {}, context, {});
    std::cout << summary.report;
    const auto& c = summary.details["comparison"];
    EXPECT_EQ(summary.counts.at("failed"), 0);
    // Files round velocities and series to 0.1 mm(/yr): medians of a quarter of that are rounding.
    EXPECT_LE(c["mean_velocity"]["median_abs_diff"].get<double>(), 0.05) << name;
    EXPECT_LE(c["mean_velocity_std"]["median_abs_diff"].get<double>(), 0.05) << name;
    EXPECT_LE(c["acceleration"]["median_abs_diff"].get<double>(), 0.01) << name;
    EXPECT_LE(c["acceleration_std"]["median_abs_diff"].get<double>(), 0.01) << name;
    EXPECT_LE(c["seasonality"]["median_abs_diff"].get<double>(), 0.05) << name;
    EXPECT_LE(c["seasonality_std"]["median_abs_diff"].get<double>(), 0.05) << name;
    EXPECT_LE(c["rmse"]["median_abs_diff"].get<double>(), 0.05) << name;
    EXPECT_LE(c["temporal_coherence"]["median_abs_diff"].get<double>(), 0.005) << name;
    EXPECT_LE(c["mean_velocity"]["max_abs_diff"].get<double>(), 0.11) << name;
  }
}

}  // namespace
}  // namespace deforma::egms
