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

double nmad_of(const std::vector<float>& values, double median) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<float> deviations;
  deviations.reserve(values.size());
  for (float v : values) deviations.push_back(static_cast<float>(std::abs(v - median)));
  // The upper median, as the driver always reported it.
  std::nth_element(deviations.begin(), deviations.begin() + static_cast<std::ptrdiff_t>(deviations.size() / 2),
                   deviations.end());
  return 1.4826 * deviations[deviations.size() / 2];
}

}  // namespace deforma
