#include "deforma/core/statistics.hpp"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace deforma {
namespace {

TEST(Statistics, PercentileAndNmadOfSmallSets) {
  std::vector<float> v = {5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(percentile_of(v, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(percentile_of(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile_of(v, 1.0), 5.0);
  EXPECT_DOUBLE_EQ(nmad_of(v, 3.0), 1.4826);
  EXPECT_TRUE(std::isnan(percentile_of({}, 0.5)));
}

TEST(Statistics, MedianAveragesTheTwoMiddleValuesOfAnEvenCount) {
  EXPECT_DOUBLE_EQ(median_of({5, 1, 4, 2, 3}), 3.0);
  EXPECT_DOUBLE_EQ(median_of({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(median_of({-7}), -7.0);
  EXPECT_TRUE(std::isnan(median_of({})));
  std::vector<double> in_place = {9, 8, 1, 2};
  EXPECT_DOUBLE_EQ(median_in_place(in_place), 5.0);
  EXPECT_EQ(in_place.size(), 4u);
}

TEST(Statistics, UpperMedianTakesTheUpperOfTheTwoMiddleValues) {
  EXPECT_DOUBLE_EQ(upper_median_of(std::vector<double>{5, 1, 4, 2, 3}), 3.0);
  EXPECT_DOUBLE_EQ(upper_median_of(std::vector<double>{4, 1, 3, 2}), 3.0);
  EXPECT_DOUBLE_EQ(upper_median_of(std::vector<float>{4, 1, 3, 2}), 3.0);
  EXPECT_DOUBLE_EQ(upper_median_of(std::vector<float>{-7}), -7.0);
  EXPECT_TRUE(std::isnan(upper_median_of(std::vector<float>{})));
  EXPECT_TRUE(std::isnan(upper_median_of(std::vector<double>{})));
  // A float is returned exactly, not rounded through an average.
  std::vector<float> in_place = {0.1f, 0.3f, 0.2f, 0.4f};
  EXPECT_EQ(upper_median_in_place(in_place), static_cast<double>(0.3f));
  EXPECT_EQ(in_place[2], 0.3f);
}

TEST(Statistics, NearestRankPercentileRoundsTheRank) {
  const std::vector<double> v = {50, 10, 40, 20, 30};
  // p = 0.65: rank 0.65 (5 - 1) = 2.6 rounds to 3 (40), where percentile_of's floor takes rank 2 (30).
  EXPECT_DOUBLE_EQ(nearest_rank_percentile_of(v, 0.65), 40.0);
  EXPECT_DOUBLE_EQ(percentile_of({50, 10, 40, 20, 30}, 0.65), 30.0);
  EXPECT_DOUBLE_EQ(nearest_rank_percentile_of(v, 0.55), 30.0);
  // Halves round away from zero: rank 1.5 of four values is 2.
  EXPECT_DOUBLE_EQ(nearest_rank_percentile_of({1, 2, 3, 4}, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(nearest_rank_percentile_of(v, 0.0), 10.0);
  EXPECT_DOUBLE_EQ(nearest_rank_percentile_of(v, 2.0), 50.0);
  EXPECT_TRUE(std::isnan(nearest_rank_percentile_of({}, 0.5)));
}

TEST(Statistics, ReservoirIsExactUpToItsCapacityAndBoundedBeyond) {
  Reservoir<float> small(100);
  for (int i = 0; i < 100; ++i) small.add(static_cast<float>(i));
  EXPECT_TRUE(small.exact());
  EXPECT_EQ(small.records().size(), 100u);

  // A million values 0..999999: the sample holds 4096 of them, and its percentiles are those of the stream
  // within the sampling error (a few tenths of a percent of the range).
  Reservoir<float> a(4096), b(4096);
  for (int i = 0; i < 1000000; ++i) {
    a.add(static_cast<float>(i));
    b.add(static_cast<float>(i));
  }
  EXPECT_FALSE(a.exact());
  EXPECT_EQ(a.seen(), 1000000u);
  ASSERT_EQ(a.records().size(), 4096u);
  EXPECT_NEAR(percentile_of(a.records(), 0.5), 500000.0, 30000.0);
  EXPECT_NEAR(percentile_of(a.records(), 0.99), 990000.0, 10000.0);
  // The same stream gives the same sample: results do not depend on anything but the order of the stream.
  EXPECT_EQ(a.records(), b.records());
}

}  // namespace
}  // namespace deforma
