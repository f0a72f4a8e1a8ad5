#include "deforma/render/colormap.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::render {

Colormap::Colormap(std::string name, std::vector<std::pair<double, Rgb>> control_points)
    : name_(std::move(name)), points_(std::move(control_points)) {
  if (points_.size() < 2 || points_.front().first != 0.0 || points_.back().first != 1.0) {
    throw InvalidArgument(fmt::format("colour map '{}': needs control points from t=0 to t=1", name_));
  }
  for (std::size_t i = 1; i < points_.size(); ++i) {
    if (!(points_[i].first > points_[i - 1].first)) {
      throw InvalidArgument(fmt::format("colour map '{}': control points must increase in t", name_));
    }
  }
  lut_.resize(256);
  for (int i = 0; i < 256; ++i) {
    const double t = i / 255.0;
    std::size_t k = 1;
    while (k + 1 < points_.size() && points_[k].first < t) ++k;
    const auto& [t0, c0] = points_[k - 1];
    const auto& [t1, c1] = points_[k];
    const double f = std::clamp((t - t0) / (t1 - t0), 0.0, 1.0);
    auto mix = [f](std::uint8_t a, std::uint8_t b) {
      return static_cast<std::uint8_t>(std::lround(a + (static_cast<double>(b) - a) * f));
    };
    lut_[i] = {mix(c0.r, c1.r), mix(c0.g, c1.g), mix(c0.b, c1.b)};
  }
}

const Colormap& Colormap::sequential() {
  // Dark violet -> blue -> teal -> green -> yellow: lightness rises steadily along the map, hue turns
  // through blue-green so neighbouring values stay distinguishable, and it survives greyscale printing.
  static const Colormap map("sequential", {{0.0, {48, 18, 85}},
                                           {0.2, {62, 74, 138}},
                                           {0.4, {42, 120, 142}},
                                           {0.6, {34, 163, 132}},
                                           {0.8, {122, 206, 84}},
                                           {1.0, {250, 230, 40}}});
  return map;
}

const Colormap& Colormap::diverging() {
  // Blue - near-white - red with symmetric lightness steps, so +v and -v look equally strong.
  static const Colormap map("diverging", {{0.0, {36, 62, 150}},
                                          {0.25, {115, 155, 210}},
                                          {0.5, {245, 245, 245}},
                                          {0.75, {225, 135, 105}},
                                          {1.0, {165, 25, 40}}});
  return map;
}

const Colormap& Colormap::of(ColormapKind kind) {
  return kind == ColormapKind::kDiverging ? diverging() : sequential();
}

Rgb Colormap::at(double t) const {
  if (!std::isfinite(t)) t = 0.0;
  const int i = static_cast<int>(std::lround(std::clamp(t, 0.0, 1.0) * 255.0));
  return lut_[i];
}

void ColorScale::validate() const {
  if (!std::isfinite(min_value) || !std::isfinite(max_value) || !(min_value < max_value)) {
    throw InvalidArgument(
        fmt::format("colour scale limits [{}, {}]: expected finite min < max", min_value, max_value));
  }
}

Rgb ColorScale::color_of(double value) const {
  return Colormap::of(kind).at((value - min_value) / (max_value - min_value));
}

double percentile(const GridF& values, const GridU8& valid, double pct) {
  std::vector<float> v;
  v.reserve(values.size());
  const bool use_mask = valid.size() == values.size();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float x = values.data()[i];
    if ((!use_mask || valid.data()[i] != 0) && std::isfinite(x)) v.push_back(x);
  }
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(pct, 0.0, 100.0) / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

namespace {
void widen_if_degenerate(double& lo, double& hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    lo = 0.0;
    hi = 1.0;
  }
  if (!(hi > lo)) {
    const double pad = std::max(std::abs(lo) * 0.1, 1e-6);
    lo -= pad;
    hi += pad;
  }
}
}  // namespace

ColorScale ColorScale::robust_sequential(const GridF& values, const GridU8& valid, std::string title,
                                         std::string unit) {
  ColorScale scale;
  scale.kind = ColormapKind::kSequential;
  scale.title = std::move(title);
  scale.unit = std::move(unit);
  const double p0 = percentile(values, valid, 0.0);
  double lo = p0 >= 0.0 ? 0.0 : percentile(values, valid, 2.0);
  double hi = percentile(values, valid, 98.0);
  widen_if_degenerate(lo, hi);
  scale.min_value = lo;
  scale.max_value = hi;
  scale.clip_percentile = 98.0;
  return scale;
}

ColorScale ColorScale::robust_diverging(const GridF& values, const GridU8& valid, std::string title,
                                        std::string unit) {
  GridF magnitude(values.width(), values.height());
  for (std::size_t i = 0; i < values.size(); ++i) magnitude.data()[i] = std::abs(values.data()[i]);
  double a = percentile(magnitude, valid, 98.0);
  if (!std::isfinite(a) || a <= 0.0) a = 1.0;
  ColorScale scale;
  scale.kind = ColormapKind::kDiverging;
  scale.min_value = -a;
  scale.max_value = a;
  scale.clip_percentile = 98.0;
  scale.title = std::move(title);
  scale.unit = std::move(unit);
  return scale;
}

}  // namespace deforma::render

namespace deforma::render {

std::vector<double> nice_ticks(double lo, double hi, int target_count) {
  std::vector<double> ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(hi > lo) || target_count < 1) return ticks;
  const double raw = (hi - lo) / target_count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (double v = first; v <= hi + step * 1e-9; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

std::string format_tick(double value, double step) {
  if (step <= 0.0 || !std::isfinite(step)) return fmt::format("{:g}", value);
  if (step < 1e-4 || std::abs(value) >= 1e6) return fmt::format("{:.2g}", value);
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return fmt::format("{:.{}f}", value, decimals);
}

}  // namespace deforma::render
