#pragma once
// Colour maps and colour scales. The sequential map is perceptually uniform (lightness increases
// monotonically, from dark blue-violet through teal and green to yellow, in the manner of viridis) and
// the diverging map runs blue - white - red with equal lightness steps on both sides, for signed
// quantities such as east/north velocity. Both are interpolated from control points in CIELAB-like
// lightness order defined here, not copied tables.
#include <string>
#include <vector>

#include "deforma/core/grid.hpp"
#include "deforma/render/image.hpp"

namespace deforma::render {

enum class ColormapKind {
  kSequential,  ///< magnitudes, counts, uncertainties
  kDiverging,   ///< signed values centred on zero
};

/// A colour map: t in [0, 1] -> colour (piecewise-linear between control points).
class Colormap {
 public:
  /// Control points must be at least two, with t increasing from 0 to 1.
  Colormap(std::string name, std::vector<std::pair<double, Rgb>> control_points);
  static const Colormap& sequential();
  static const Colormap& diverging();
  static const Colormap& of(ColormapKind kind);

  /// Colour at t; t is clamped to [0, 1].
  Rgb at(double t) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<std::pair<double, Rgb>> points_;
  std::vector<Rgb> lut_;  // 256 entries, for speed
};

/// How values map to colours: limits, colour map, and the legend's title and unit.
struct ColorScale {
  double min_value = 0.0;
  double max_value = 1.0;
  ColormapKind kind = ColormapKind::kSequential;
  std::string title;  ///< e.g. "velocity magnitude"
  std::string unit;   ///< e.g. "m/yr"
  /// The percentile of the data the limits were set at (98 for robust_*: "scale clipped at p98"); 0
  /// when the limits were chosen otherwise.
  double clip_percentile = 0.0;

  /// Colour of `value` (clamped to the limits).
  Rgb color_of(double value) const;
  /// Throws InvalidArgument when the limits are not finite or min >= max.
  void validate() const;

  /// Robust limits for a sequential quantity: [0, p98] when all valid values are >= 0 (magnitudes),
  /// else [p2, p98]. Degenerate cases widen to a non-empty interval.
  static ColorScale robust_sequential(const GridF& values, const GridU8& valid, std::string title,
                                      std::string unit);
  /// Robust symmetric limits [-a, a] with a = p98 of |value|, diverging colour map.
  static ColorScale robust_diverging(const GridF& values, const GridU8& valid, std::string title,
                                     std::string unit);
};

/// About `target_count` round tick values (steps of 1, 2 or 5 times a power of ten) inside [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target_count = 5);
/// A tick label with just enough decimals for ticks `step` apart ("0.25", "10", "-1.5e-05").
std::string format_tick(double value, double step);

/// The `percentile` (0..100) of the valid finite values, linear interpolation; NaN when none.
double percentile(const GridF& values, const GridU8& valid, double percentile);

}  // namespace deforma::render
