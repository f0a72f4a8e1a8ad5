#pragma once
// Order statistics shared by the modules (medians, percentiles, NMAD) and a bounded sample of a stream of
// values, so that a streamed operation's summary statistics do not grow with the scene.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace deforma {

/// The value of rank floor(p (n - 1)) of `values` (reordered in place); NaN when empty. p is clamped to [0, 1].
double percentile_in_place(std::vector<float>& values, double p);

/// The same on a copy.
inline double percentile_of(std::vector<float> values, double p) { return percentile_in_place(values, p); }

/// The median of `values` (reordered in place): the middle value, or the mean of the two middle values for
/// an even count; NaN when empty.
double median_in_place(std::vector<double>& values);

/// The same on a copy.
inline double median_of(std::vector<double> values) { return median_in_place(values); }

/// The upper median of `values` (reordered in place): the value of rank floor(n / 2), the upper of the two
/// middle values for an even count; NaN when empty. Unlike median_in_place, it is always one of the values;
/// the estimators that used it keep it, so that their results do not move.
double upper_median_in_place(std::vector<float>& values);
double upper_median_in_place(std::vector<double>& values);

/// The same on a copy.
inline double upper_median_of(std::vector<float> values) {
  return upper_median_in_place(values);
}
inline double upper_median_of(std::vector<double> values) {
  return upper_median_in_place(values);
}

/// The value of rank round(p (n - 1)) of `values` (reordered in place), the nearest rank rather than
/// percentile_in_place's floor; NaN when empty. p is clamped to [0, 1].
double nearest_rank_percentile_in_place(std::vector<double>& values, double p);

/// The same on a copy.
inline double nearest_rank_percentile_of(std::vector<double> values, double p) {
  return nearest_rank_percentile_in_place(values, p);
}

/// Normalized median absolute deviation about `median`: 1.4826 median |v - median|; NaN when empty.
double nmad_of(const std::vector<float>& values, double median);

/// A uniform random sample of at most `capacity` records out of a stream (reservoir sampling, Vitter's
/// algorithm R) with a fixed seed: the same stream in the same order gives the same sample, so a streamed
/// operation whose writer sees its nodes in order reports the same statistics for any thread count. Up to
/// `capacity` records it holds them all, and its percentiles are exact.
template <class Record>
class Reservoir {
 public:
  explicit Reservoir(std::size_t capacity = std::size_t{1} << 18) : capacity_(capacity) {}

  void add(const Record& record) {
    ++seen_;
    if (records_.size() < capacity_) {
      records_.push_back(record);
      return;
    }
    const std::uint64_t k = std::uniform_int_distribution<std::uint64_t>(0, seen_ - 1)(random_);
    if (k < capacity_) records_[static_cast<std::size_t>(k)] = record;
  }

  std::uint64_t seen() const { return seen_; }      ///< records offered
  bool exact() const { return seen_ <= capacity_; }  ///< true while every record is kept
  const std::vector<Record>& records() const { return records_; }

 private:
  std::size_t capacity_;
  std::uint64_t seen_ = 0;
  std::vector<Record> records_;
  std::mt19937_64 random_{0x5eed};
};

}  // namespace deforma
