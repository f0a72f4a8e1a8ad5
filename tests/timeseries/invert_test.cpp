#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include "deforma/core/error.hpp"
#include "deforma/timeseries/invert.hpp"

namespace deforma::timeseries {
namespace {

// A known motion history: linear + seasonal + a sudden step (east only) at `step_date`.
struct Truth {
  double velocity_east = 12.0;  // m/yr
  double velocity_north = -4.0;
  double seasonal_m = 1.5;
  double step_m = 3.0;
  int step_date = 15;

  double east(const std::vector<io::Date>& dates, int k) const {
    const double t = io::years_between(dates[0], dates[k]);
    const double season = seasonal_m * (std::sin(2 * M_PI * t) - 0.0);
    return velocity_east * t + season + (k >= step_date ? step_m : 0.0);
  }
  double north(const std::vector<io::Date>& dates, int k) const {
    const double t = io::years_between(dates[0], dates[k]);
    return velocity_north * t + 0.5 * seasonal_m * std::sin(2 * M_PI * t);
  }
};

std::vector<io::Date> make_dates(int count) {
  std::vector<io::Date> dates;
  long long day = io::Date::from_ymd(2020, 1, 3).days_since_epoch();
  std::mt19937 rng(7);
  for (int k = 0; k < count; ++k) {
    dates.push_back(io::Date::from_days_since_epoch(day));
    day += 10 + static_cast<int>(rng() % 15);  // irregular sampling: 10..24 days
  }
  return dates;
}

std::vector<NetworkPair> make_pairs(int dates, int max_step) {
  std::vector<NetworkPair> pairs;
  for (int i = 0; i < dates; ++i)
    for (int s = 1; s <= max_step && i + s < dates; ++s) pairs.push_back({i, i + s, 1.0});
  return pairs;
}

// Node-major observations from the truth with noise; `mutate(node, pair, east, north)` may spoil them.
template <typename Mutate>
void observe(const std::vector<io::Date>& dates, const std::vector<NetworkPair>& pairs, const Truth& truth,
             int nodes, double noise_m, unsigned seed, Mutate mutate, std::vector<float>& east,
             std::vector<float>& north) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> gauss(0.0, noise_m);
  east.assign(static_cast<std::size_t>(nodes) * pairs.size(), 0.0f);
  north.assign(east.size(), 0.0f);
  for (int n = 0; n < nodes; ++n) {
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      const auto i = static_cast<std::size_t>(n) * pairs.size() + p;
      east[i] =
          static_cast<float>(truth.east(dates, pairs[p].sec) - truth.east(dates, pairs[p].ref) + gauss(rng));
      north[i] = static_cast<float>(truth.north(dates, pairs[p].sec) - truth.north(dates, pairs[p].ref) +
                                    gauss(rng));
      mutate(n, static_cast<int>(p), east[i], north[i]);
    }
  }
}

// The OLS slope of the true series: what "mean velocity" means.
double true_slope(const std::vector<io::Date>& dates, const Truth& truth, bool east_component) {
  const int n = static_cast<int>(dates.size());
  std::vector<double> t(n);
  for (int k = 0; k < n; ++k) t[k] = io::years_between(dates[0], dates[k]);
  const double mt = std::accumulate(t.begin(), t.end(), 0.0) / n;
  double sxy = 0;
  double sxx = 0;
  for (int k = 0; k < n; ++k) {
    const double u = east_component ? truth.east(dates, k) : truth.north(dates, k);
    sxy += (t[k] - mt) * u;
    sxx += (t[k] - mt) * (t[k] - mt);
  }
  return sxy / sxx;
}

TEST(Inversion, RecoversLinearSeasonalAndStepMotionWithNoise) {
  const auto dates = make_dates(30);
  const auto pairs = make_pairs(30, 4);
  const Truth truth;
  std::vector<float> east;
  std::vector<float> north;
  const int nodes = 300;
  observe(
      dates, pairs, truth, nodes, 0.05, 1, [](int, int, float&, float&) {}, east, north);
  NetworkInverter inverter(dates, pairs);
  InversionResult result;
  inverter.invert({nodes, static_cast<int>(pairs.size()), east.data(), north.data()}, result);
  double worst_normalised = 0;
  std::vector<double> bias(30, 0.0);
  int reweighted = 0;
  for (int n = 0; n < nodes; ++n) {
    for (int k = 1; k < 30; ++k) {
      const double err = result.east[n * 30 + k] - truth.east(dates, k);
      bias[k] += err / nodes;
      worst_normalised = std::max(worst_normalised, std::abs(err) / result.east_sigma[n * 30 + k]);
      worst_normalised =
          std::max(worst_normalised, std::abs(result.north[n * 30 + k] - truth.north(dates, k)) /
                                         result.north_sigma[n * 30 + k]);
    }
    reweighted += (result.flags[n] & kNodeReweighted) != 0;
    EXPECT_NEAR(result.velocity_east[n], true_slope(dates, truth, true), 0.3);
    EXPECT_NEAR(result.velocity_north[n], true_slope(dates, truth, false), 0.3);
    EXPECT_EQ(result.flags[n] & ~kNodeReweighted, kNodeOk);
    EXPECT_GE(result.valid_pairs[n], static_cast<float>(pairs.size()) - 3);
    EXPECT_NEAR(result.rmse[n], 0.05 * std::sqrt(2.0), 0.04);
    EXPECT_GT(result.consistency[n], 0.99);
    EXPECT_GT(result.east_sigma[n * 30 + 29], 0.0f);
    EXPECT_LT(result.east_sigma[n * 30 + 29], 0.2f);
  }
  // The step (3 m) is kept sharp: no date is biased by more than 2 cm (noise 5 cm per pair), and every
  // error is within 5 of its own sigma.
  for (int k = 0; k < 30; ++k) EXPECT_LT(std::abs(bias[k]), 0.02) << "date " << k;
  EXPECT_LT(worst_normalised, 5.0);
  EXPECT_LE(reweighted, nodes / 50);  // Gaussian noise alone rarely triggers the robust pass
  EXPECT_EQ(inverter.stats().patterns, 1);
  // Sigma agrees with the scatter of the estimates across nodes at the last date.
  double mean = 0;
  for (int n = 0; n < nodes; ++n) mean += result.east[n * 30 + 29];
  mean /= nodes;
  double var = 0;
  for (int n = 0; n < nodes; ++n) var += std::pow(result.east[n * 30 + 29] - mean, 2);
  const double scatter = std::sqrt(var / (nodes - 1));
  EXPECT_NEAR(result.east_sigma[29], scatter, 0.35 * scatter);
}

TEST(Inversion, OutlierPairsAreRejectedByReweighting) {
  const auto dates = make_dates(30);
  const auto pairs = make_pairs(30, 4);
  const Truth truth;
  std::vector<float> east;
  std::vector<float> north;
  const int nodes = 200;
  // Every node has 4 gross outlier pairs (mismatches of 5-20 m).
  observe(
      dates, pairs, truth, nodes, 0.05, 2,
      [](int n, int p, float& e, float& no) {
        if ((p * 7 + n) % 29 == 0) {
          e += 5.0f + static_cast<float>(n % 15);
          no -= 8.0f;
        }
      },
      east, north);
  InversionResult robust;
  NetworkInverter(dates, pairs)
      .invert({nodes, static_cast<int>(pairs.size()), east.data(), north.data()}, robust);
  InversionOptions plain_options;
  plain_options.robust = RobustLoss::kNone;
  InversionResult plain;
  NetworkInverter(dates, pairs, plain_options)
      .invert({nodes, static_cast<int>(pairs.size()), east.data(), north.data()}, plain);
  double worst_robust = 0;
  double worst_plain = 0;
  for (int n = 0; n < nodes; ++n) {
    for (int k = 0; k < 30; ++k) {
      worst_robust = std::max(worst_robust, std::abs(robust.east[n * 30 + k] - truth.east(dates, k)));
      worst_plain = std::max(worst_plain, std::abs(plain.east[n * 30 + k] - truth.east(dates, k)));
    }
    EXPECT_TRUE(robust.flags[n] & kNodeReweighted) << "node " << n;
    EXPECT_LT(robust.valid_pairs[n], static_cast<float>(pairs.size()));
  }
  EXPECT_LT(worst_robust, 0.2);
  EXPECT_GT(worst_plain, 1.0);  // the outliers do spoil plain least squares
}

// A node with a few gross outlier pairs is less consistent than a clean one, even though the robust pass
// rejects them: consistency counts every valid pair (it was 0.999 on nodes of the Perito Moreno series
// where the robust pass had set the noise matches aside).
TEST(Inversion, ConsistencyCountsThePairsTheRobustPassRejected) {
  const auto dates = make_dates(15);
  const auto pairs = make_pairs(15, 4);
  const int p = static_cast<int>(pairs.size());
  std::vector<float> east(2 * static_cast<std::size_t>(p)), north(east.size());
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> noise(-1.0f, 1.0f);
  for (int node = 0; node < 2; ++node) {
    for (int k = 0; k < p; ++k) {
      const double days = static_cast<double>(io::days_between(dates[pairs[k].ref], dates[pairs[k].sec]));
      float& e = east[static_cast<std::size_t>(node) * p + k];
      float& n = north[static_cast<std::size_t>(node) * p + k];
      e = static_cast<float>(0.1 * days) + 0.02f * noise(rng);  // 36.5 units/yr east
      n = 0.02f * noise(rng);
      if (node == 1 && k % 13 == 5) {
        e += 40.0f;  // a match on something else
        n -= 30.0f;
      }
    }
  }
  InversionResult result;
  NetworkInverter(dates, pairs).invert({2, p, east.data(), north.data()}, result);
  ASSERT_TRUE(result.flags[1] & kNodeReweighted);
  EXPECT_LT(result.valid_pairs[1], static_cast<float>(p));
  EXPECT_NEAR(result.velocity_east[1], 36.5, 1.0);
  EXPECT_GT(result.consistency[0], 0.99);
  EXPECT_LT(result.consistency[1], 0.9);
}

TEST(Inversion, MissingPairsAndFewValidPairs) {
  const auto dates = make_dates(20);
  const auto pairs = make_pairs(20, 3);
  Truth truth;
  truth.step_date = 100;  // no step
  std::vector<float> east;
  std::vector<float> north;
  const int nodes = 400;
  std::mt19937 rng(3);
  observe(
      dates, pairs, truth, nodes, 0.02, 3,
      [&](int n, int, float& e, float& no) {
        if (n < 300 && rng() % 5 == 0) e = std::nanf("");  // 20% missing, varying patterns
        if (n >= 390) no = std::nanf("");                  // nodes without any valid pair
      },
      east, north);
  NetworkInverter inverter(dates, pairs);
  InversionResult result;
  inverter.invert({nodes, static_cast<int>(pairs.size()), east.data(), north.data()}, result);
  for (int n = 0; n < 390; ++n) {
    EXPECT_FALSE(result.flags[n] & kNodeNoData);
    EXPECT_NEAR(result.velocity_east[n], true_slope(dates, truth, true), 0.5) << n;
    for (int k = 0; k < 20; ++k) EXPECT_TRUE(std::isfinite(result.east[n * 20 + k]));
  }
  for (int n = 390; n < nodes; ++n) {
    EXPECT_EQ(result.flags[n], kNodeNoData);
    EXPECT_TRUE(std::isnan(result.velocity_east[n]));
  }
  EXPECT_GT(inverter.stats().patterns, 10);
  EXPECT_EQ(inverter.stats().nodes_nodata, 10);
}

TEST(Inversion, DisconnectedNetworkIsBridgedWithHonestUncertainty) {
  const auto dates = make_dates(24);
  auto pairs = make_pairs(24, 3);
  // Remove every pair spanning the boundary between dates 11 and 12: two sub-networks.
  std::erase_if(pairs, [](const NetworkPair& p) { return p.ref <= 11 && p.sec >= 12; });
  Truth truth;
  truth.seasonal_m = 0.0;
  truth.step_date = 100;
  std::vector<float> east;
  std::vector<float> north;
  observe(
      dates, pairs, truth, 50, 0.02, 4, [](int, int, float&, float&) {}, east, north);
  NetworkInverter inverter(dates, pairs);
  InversionResult result;
  inverter.invert({50, static_cast<int>(pairs.size()), east.data(), north.data()}, result);
  for (int n = 0; n < 50; ++n) {
    EXPECT_TRUE(result.flags[n] & kNodeBridged);
    // A constant velocity is bridged exactly by the velocity-continuity penalty.
    EXPECT_NEAR(result.velocity_east[n], truth.velocity_east, 0.3);
    EXPECT_NEAR(result.east[n * 24 + 23], truth.east(dates, 23), 0.4);
    // Dates after the gap are less certain than those before it.
    EXPECT_GT(result.east_sigma[n * 24 + 14], 2.0 * result.east_sigma[n * 24 + 9]);
    for (int k = 0; k < 24; ++k) EXPECT_TRUE(std::isfinite(result.east_sigma[n * 24 + k]));
  }
  EXPECT_EQ(inverter.stats().nodes_bridged, 50);
}

TEST(Inversion, TwoDatesOnePairHasNoRedundancy) {
  const std::vector<io::Date> dates = {io::Date::from_ymd(2016, 7, 18), io::Date::from_ymd(2016, 8, 3)};
  const std::vector<NetworkPair> pairs = {{0, 1, 1.0}};
  std::vector<float> east = {1.6f, 0.0f};
  std::vector<float> north = {-0.8f, 0.1f};
  InversionResult result;
  NetworkInverter(dates, pairs).invert({2, 1, east.data(), north.data()}, result);
  EXPECT_NEAR(result.east[1], 1.6f, 1e-5);
  EXPECT_NEAR(result.velocity_east[0], 1.6 / (16 / 365.25), 1e-3);
  EXPECT_TRUE(result.flags[0] & kNodeNoRedundancy);
  EXPECT_TRUE(std::isnan(result.east_sigma[1]));
  EXPECT_NEAR(result.north[3], 0.1f, 1e-5);
}

TEST(Inversion, SameResultsForAnyThreadCount) {
  const auto dates = make_dates(15);
  const auto pairs = make_pairs(15, 3);
  const Truth truth;
  std::vector<float> east;
  std::vector<float> north;
  std::mt19937 rng(5);
  observe(
      dates, pairs, truth, 9000, 0.1, 5,
      [&](int, int, float& e, float&) {
        if (rng() % 7 == 0) e = std::nanf("");
        if (rng() % 97 == 0) e += 10.0f;
      },
      east, north);
  NetworkInverter inverter(dates, pairs);
  const PairObservations obs{9000, static_cast<int>(pairs.size()), east.data(), north.data()};
  InversionResult a;
  InversionResult b;
  {
    tbb::task_arena one(1);
    one.execute([&] { inverter.invert(obs, a); });
  }
  inverter.invert(obs, b);
  for (std::size_t i = 0; i < a.east.size(); ++i) {
    ASSERT_TRUE((std::isnan(a.east[i]) && std::isnan(b.east[i])) || a.east[i] == b.east[i]) << i;
  }
  EXPECT_EQ(a.flags, b.flags);
}

TEST(Inversion, PerNodeWeightsOfOneMatchTheSharedFactorization) {
  const auto dates = make_dates(18);
  const auto pairs = make_pairs(18, 3);
  const Truth truth;
  std::vector<float> east;
  std::vector<float> north;
  std::mt19937 rng(9);
  observe(
      dates, pairs, truth, 300, 0.05, 9,
      [&](int, int, float& e, float&) {
        if (rng() % 6 == 0) e = std::nanf("");
      },
      east, north);
  const std::vector<float> ones(east.size(), 1.0f);
  NetworkInverter inverter(dates, pairs);
  InversionResult shared;
  InversionResult single;
  inverter.invert({300, static_cast<int>(pairs.size()), east.data(), north.data()}, shared);
  inverter.invert({300, static_cast<int>(pairs.size()), east.data(), north.data(), ones.data()}, single);
  for (std::size_t i = 0; i < shared.east.size(); ++i) {
    ASSERT_NEAR(shared.east[i], single.east[i], 1e-4) << i;
    ASSERT_NEAR(shared.east_sigma[i], single.east_sigma[i], 1e-4) << i;
  }
  for (int n = 0; n < 300; ++n) {
    EXPECT_NEAR(shared.velocity_east_std[n], single.velocity_east_std[n], 1e-4);
    EXPECT_EQ(shared.flags[n], single.flags[n]);
  }
}

TEST(Inversion, RejectsBadNetworks) {
  const std::vector<io::Date> dates = {io::Date::from_ymd(2020, 1, 1), io::Date::from_ymd(2020, 1, 11)};
  EXPECT_THROW({ NetworkInverter inverter({dates[0]}, {{0, 0, 1.0}}); }, InvalidArgument);
  EXPECT_THROW({ NetworkInverter inverter(dates, {{0, 2, 1.0}}); }, InvalidArgument);
  EXPECT_THROW({ NetworkInverter inverter(dates, {{0, 1, 0.0}}); }, InvalidArgument);
  EXPECT_THROW({ NetworkInverter inverter({dates[1], dates[0]}, {{0, 1, 1.0}}); }, InvalidArgument);
  InversionOptions bad;
  bad.regularization = -1;
  EXPECT_THROW({ NetworkInverter inverter(dates, {{0, 1, 1.0}}, bad); }, InvalidArgument);
}

}  // namespace
}  // namespace deforma::timeseries
