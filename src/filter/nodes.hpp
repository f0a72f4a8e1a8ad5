#pragma once
// Tests on the nodes of a correlation result shared by the filter's kernels and its driver.
#include <cmath>

#include "deforma/filter/filter.hpp"

namespace deforma::filter::detail {

inline bool usable(float v) {
  return std::isfinite(v) && v != kNodata;
}

inline bool has(const GridF& g) {
  return !g.empty();
}

// A node with a displacement: flag 0, or 16 (valid, translation only: correlate --shape affine kept the
// translation there).
inline bool measured(float flag) {
  return io::product::is_measured(flag);
}

}  // namespace deforma::filter::detail
