#include "deforma/core/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace deforma {

double percentile_in_place(std::vector<float>& values, double p) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto k = static_cast<std::size_t>(std::clamp(p, 0.0, 1.0) * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

double median_in_place(std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  if (values.size() % 2 == 1) return *mid;
  return 0.5 * (*mid + *std::max_element(values.begin(), mid));
}

namespace {

template <class T>
double upper_median(std::vector<T>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  return *mid;
}

}  // namespace

double upper_median_in_place(std::vector<float>& values) {
  return upper_median(values);
}

double upper_median_in_place(std::vector<double>& values) {
  return upper_median(values);
}

double nearest_rank_percentile_in_place(std::vector<double>& values, double p) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto k =
      static_cast<std::size_t>(std::round(std::clamp(p, 0.0, 1.0) * static_cast<double>(values.size() - 1)));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

double nmad_of(const std::vector<float>& values, double median) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<float> deviations;
  deviations.reserve(values.size());
  for (float v : values) deviations.push_back(static_cast<float>(std::abs(v - median)));
  // The upper median, as the driver always reported it.
  return 1.4826 * upper_median_in_place(deviations);
}

}  // namespace deforma
