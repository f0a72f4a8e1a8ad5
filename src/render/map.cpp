#include "deforma/render/map.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "deforma/core/error.hpp"

namespace deforma::render {

RgbImage render_scalar_map(const GridF& values, const GridU8& valid, const ColorScale& scale,
                           Rgb nodata_color) {
  scale.validate();
  if (valid.width() != values.width() || valid.height() != values.height()) {
    throw InvalidArgument(fmt::format("render_scalar_map: mask {}x{} differs from values {}x{}",
                                      valid.width(), valid.height(), values.width(), values.height()));
  }
  if (values.empty()) throw InvalidArgument("render_scalar_map: empty grid");
  RgbImage image(values.width(), values.height(), nodata_color);
  for (int r = 0; r < values.height(); ++r) {
    for (int c = 0; c < values.width(); ++c) {
      const float v = values(c, r);
      if (valid(c, r) != 0 && std::isfinite(v)) image.set(c, r, scale.color_of(v));
    }
  }
  return image;
}

ClipMarks clip_marks(const GridF& values, const GridU8& valid, const ColorScale& scale) {
  ClipMarks marks;
  const bool use_mask = valid.size() == values.size();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float v = values.data()[i];
    if ((use_mask && valid.data()[i] == 0) || !std::isfinite(v)) continue;
    marks.below = marks.below || v < scale.min_value;
    marks.above = marks.above || v > scale.max_value;
  }
  return marks;
}

namespace {

constexpr double kLabelScale = 0.5;
constexpr double kTitleScale = 0.7;

// A filled triangle with its base on y = base_y (from x0 to x0 + width) and its tip `height` px away,
// upwards (height > 0) or downwards (height < 0).
void draw_end_triangle(RgbImage& image, int x0, int width, int base_y, int height, Rgb color) {
  const int rows = std::abs(height);
  for (int i = 0; i <= rows; ++i) {
    const double half = width / 2.0 * (1.0 - static_cast<double>(i) / rows);
    const int y = height > 0 ? base_y - i : base_y + i;
    image.fill_rect(static_cast<int>(std::lround(x0 + width / 2.0 - half)), y,
                    std::max(1, static_cast<int>(std::lround(2 * half))), 1, color);
  }
  const double tip_y = base_y - height;
  image.draw_line(x0, base_y, x0 + width / 2.0, tip_y, colors::kBlack);
  image.draw_line(x0 + width, base_y, x0 + width / 2.0, tip_y, colors::kBlack);
}

// A round value (1, 2 or 5 times a power of ten) not above `limit`.
double round_value_below(double limit) {
  if (!(limit > 0.0) || !std::isfinite(limit)) return 0.0;
  const double power = std::pow(10.0, std::floor(std::log10(limit)));
  for (const double m : {5.0, 2.0, 1.0}) {
    if (m * power <= limit * (1 + 1e-9)) return m * power;
  }
  return power;
}

// A scale bar of a round length about a fifth of the map's width (`map_width` px), in the footer under
// the map (never over the data), its right end at `right`; the label sits beside it.
void draw_scale_bar(RgbImage& figure, double metres_per_px, int map_width, int right, int top) {
  const double bar_m = round_value_below(0.2 * map_width * metres_per_px);
  if (!(bar_m > 0.0)) return;
  const double bar_px = bar_m / metres_per_px;
  if (bar_px < 10.0) return;
  const std::string label =
      bar_m >= 1000.0 ? fmt::format("{:g} km", bar_m / 1000.0) : fmt::format("{:g} m", bar_m);
  const int y = top + 14;
  const int left = right - static_cast<int>(std::lround(bar_px));
  figure.fill_rect(left, y - 2, static_cast<int>(std::lround(bar_px)), 5, colors::kBlack);
  figure.draw_text(label, left - 8, y, colors::kBlack, kLabelScale, RgbImage::Anchor::kCenterRight);
}

}  // namespace

RgbImage render_color_bar(const ColorScale& scale, int height, ClipMarks clipped) {
  scale.validate();
  height = std::max(height, 160);
  const auto ticks = nice_ticks(scale.min_value, scale.max_value, 5);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : (scale.max_value - scale.min_value);
  int label_width = 0;
  int w = 0;
  int h = 0;
  for (const double t : ticks) {
    RgbImage::text_size(format_tick(t, step), kLabelScale, 1, w, h);
    label_width = std::max(label_width, w);
  }
  const std::string title =
      scale.unit.empty() ? scale.title : fmt::format("{} ({})", scale.title, scale.unit);
  int title_width = 0;
  int title_height = 0;
  RgbImage::text_size(title, kLabelScale, 1, title_width, title_height);
  // The note says why an end is a triangle: values beyond it exist and take the end colour.
  std::string note;
  if (clipped.above || clipped.below) {
    note = scale.clip_percentile > 0.0 ? fmt::format("scale clipped at p{:g}", scale.clip_percentile)
                                       : std::string("values beyond the scale");
  }
  int note_width = 0;
  int note_height = 0;
  if (!note.empty()) RgbImage::text_size(note, kLabelScale * 0.9, 1, note_width, note_height);
  const int bar_width = 22;
  const int triangle_px = 14;
  const int margin_top = title_height + 14 + (clipped.above ? triangle_px + 2 : 0);
  const int margin_bottom =
      10 + (clipped.below ? triangle_px + 2 : 0) + (note.empty() ? 0 : note_height + 10);
  const int width = std::max({8 + bar_width + 6 + label_width + 8, title_width + 12, note_width + 12});
  RgbImage bar(width, height, colors::kWhite);
  bar.draw_text(title, 6, 4, colors::kBlack, kLabelScale);
  const int x0 = 8;
  const int y0 = margin_top;
  const int bar_height = height - margin_top - margin_bottom;
  const auto& map = Colormap::of(scale.kind);
  for (int i = 0; i < bar_height; ++i) {
    // Top of the bar is the maximum.
    const double t = 1.0 - static_cast<double>(i) / std::max(1, bar_height - 1);
    bar.fill_rect(x0, y0 + i, bar_width, 1, map.at(t));
  }
  bar.draw_rect(x0, y0, bar_width, bar_height, colors::kBlack);
  if (clipped.above) draw_end_triangle(bar, x0, bar_width - 1, y0 - 1, triangle_px, map.at(1.0));
  if (clipped.below) draw_end_triangle(bar, x0, bar_width - 1, y0 + bar_height, -triangle_px, map.at(0.0));
  for (const double t : ticks) {
    const double f = (t - scale.min_value) / (scale.max_value - scale.min_value);
    const double y = y0 + (1.0 - f) * (bar_height - 1);
    bar.draw_line(x0 + bar_width, y, x0 + bar_width + 4, y, colors::kBlack);
    bar.draw_text(format_tick(t, step), x0 + bar_width + 7, y, colors::kBlack, kLabelScale,
                  RgbImage::Anchor::kCenterLeft);
  }
  if (!note.empty()) {
    bar.draw_text(note, 6, height - 6 - note_height, colors::kBlack, kLabelScale * 0.9);
  }
  return bar;
}

void ArrowOptions::validate() const {
  if (step < 2) throw InvalidArgument(fmt::format("arrow step {} px: expected at least 2", step));
  if (thickness < 1) throw InvalidArgument(fmt::format("arrow thickness {}: expected at least 1", thickness));
  if (!(max_length_steps > 0.0))
    throw InvalidArgument(fmt::format("arrow max length {} steps: expected > 0", max_length_steps));
}

ArrowKey draw_vector_field(RgbImage& image, const GridF& east, const GridF& north, const GridU8& valid,
                           const ArrowOptions& options) {
  options.validate();
  if (east.width() != north.width() || east.height() != north.height() || valid.size() != east.size() ||
      east.width() != image.width() || east.height() != image.height()) {
    throw InvalidArgument("draw_vector_field: east, north, valid and the image must have the same size");
  }
  auto usable = [&](int c, int r) {
    return valid(c, r) != 0 && std::isfinite(east(c, r)) && std::isfinite(north(c, r));
  };
  std::vector<float> magnitudes;
  const int half = options.step / 2;
  for (int r = half; r < east.height(); r += options.step) {
    for (int c = half; c < east.width(); c += options.step) {
      if (usable(c, r)) magnitudes.push_back(std::hypot(east(c, r), north(c, r)));
    }
  }
  if (magnitudes.empty()) return {};
  std::sort(magnitudes.begin(), magnitudes.end());
  const double p95 = magnitudes[static_cast<std::size_t>(0.95 * static_cast<double>(magnitudes.size() - 1))];
  if (!(p95 > 0.0)) return {};
  const double pixels_per_unit = options.step * 0.9 / p95;
  const double max_length_px = options.max_length_steps * options.step;
  // Arrows go on a copy; pixels of invalid nodes are then restored so that no arrow (nor the end of one
  // from a valid neighbour) is drawn where there is no measurement.
  const RgbImage original = image;
  for (int r = half; r < east.height(); r += options.step) {
    for (int c = half; c < east.width(); c += options.step) {
      if (!usable(c, r)) continue;
      double dx = east(c, r) * pixels_per_unit;
      double dy = -north(c, r) * pixels_per_unit;  // rows grow southwards
      const double length = std::hypot(dx, dy);
      if (length < 1.0) continue;
      if (length > max_length_px) dx *= max_length_px / length, dy *= max_length_px / length;
      image.draw_arrow(c + 0.5, r + 0.5, c + 0.5 + dx, r + 0.5 + dy, options.color, options.thickness);
    }
  }
  for (int r = 0; r < image.height(); ++r) {
    for (int c = 0; c < image.width(); ++c) {
      if (valid(c, r) == 0) image.set(c, r, original.at(c, r));
    }
  }
  ArrowKey key;
  // The key's arrow is 24 to 60 px long whatever the field's arrows are, so that it is easy to see.
  key.value = round_value_below(60.0 / pixels_per_unit);
  key.length_px = key.value * pixels_per_unit;
  return key;
}

void QuicklookOptions::validate() const {
  if (max_size_px < 16)
    throw InvalidArgument(fmt::format("quicklook max size {} px: expected >= 16", max_size_px));
  if (!(cell_size_m >= 0.0) || !std::isfinite(cell_size_m))
    throw InvalidArgument(fmt::format("quicklook cell size {} m: expected >= 0", cell_size_m));
  if (min_size_px < 1 || min_size_px > max_size_px)
    throw InvalidArgument(fmt::format("quicklook min size {} px: expected between 1 and the max size {} px",
                                      min_size_px, max_size_px));
  arrow_options.validate();
}

void downsample_nearest(const GridF& values, const GridU8& valid, int factor, GridF& out_values,
                        GridU8& out_valid) {
  if (factor < 1) throw InvalidArgument(fmt::format("downsample factor {}: expected >= 1", factor));
  const int w = (values.width() + factor - 1) / factor;
  const int h = (values.height() + factor - 1) / factor;
  out_values = GridF(w, h);
  out_valid = GridU8(w, h);
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const int sc = std::min(c * factor + factor / 2, values.width() - 1);
      const int sr = std::min(r * factor + factor / 2, values.height() - 1);
      out_values(c, r) = values(sc, sr);
      out_valid(c, r) = valid(sc, sr);
    }
  }
}

namespace {

// Title above, map on the left (framed), colour bar on the right, an optional footer under the map; the
// figure at least `min_width` wide. Returns the figure and where the map and the footer went.
struct Figure {
  RgbImage image;
  int map_left = 0;
  int map_top = 0;
  int footer_top = 0;
  FigureLayout layout;
};

Figure compose(const RgbImage& map, const RgbImage& bar, const std::string& title, int footer_height,
               int min_width) {
  constexpr int pad = 10;
  int title_width = 0;
  int title_height = 0;
  if (!title.empty()) RgbImage::text_size(title, kTitleScale, 1, title_width, title_height);
  const int title_band = title.empty() ? 0 : title_height + 14;
  const int content_width = pad + map.width() + pad + bar.width() + pad;
  const int width = std::max({content_width, title_width + 2 * pad, min_width});
  const int left = (width - content_width) / 2 + pad;
  const int body = std::max(map.height() + footer_height, bar.height());
  Figure f{RgbImage(width, title_band + pad + body + pad, colors::kWhite), left, title_band + pad, 0, {}};
  if (!title.empty()) {
    f.image.draw_text(title, width / 2.0, 8, colors::kBlack, kTitleScale, RgbImage::Anchor::kTopCenter);
    f.image.text()["Title"] = title;
  }
  f.image.paste(map, f.map_left, f.map_top);
  f.image.draw_rect(f.map_left - 1, f.map_top - 1, map.width() + 2, map.height() + 2, colors::kBlack);
  f.image.paste(bar, f.map_left + map.width() + pad, f.map_top);
  f.footer_top = f.map_top + map.height();
  f.layout.map_left = f.map_left;
  f.layout.map_top = f.map_top;
  f.layout.map_width = map.width();
  f.layout.map_height = map.height();
  f.layout.bar_left = f.map_left + map.width() + pad;
  return f;
}

// The arrow key under the map: "<arrow> = 500 m/yr".
void draw_arrow_key(RgbImage& image, const ArrowKey& key, const std::string& unit, int left, int top,
                    Rgb color) {
  const double y = top + 14;
  image.draw_arrow(left, y, left + key.length_px, y, color, 2, std::min(0.3, 8.0 / key.length_px));
  const double step = key.value;
  image.draw_text(fmt::format("= {} {}", format_tick(key.value, step), unit), left + key.length_px + 8, y,
                  colors::kBlack, kLabelScale, RgbImage::Anchor::kCenterLeft);
}

}  // namespace

RgbImage render_quicklook(const GridF& values, const GridU8& valid, const ColorScale& scale,
                          const QuicklookOptions& options, const GridF* east, const GridF* north,
                          FigureLayout* layout) {
  options.validate();
  if (values.empty()) throw InvalidArgument("render_quicklook: empty grid");
  const int longer = std::max(values.width(), values.height());
  const int factor = std::max(1, (longer + options.max_size_px - 1) / options.max_size_px);
  // Small grids (a coarse node grid) are enlarged by whole pixels so that a person can read them.
  const int enlarge = factor == 1 ? std::clamp((options.min_size_px + longer - 1) / longer, 1,
                                               std::max(1, options.max_size_px / longer))
                                  : 1;
  auto resample = [&](const GridF& v, const GridU8& ok, GridF& out_v, GridU8& out_ok) {
    if (enlarge == 1) {
      downsample_nearest(v, ok, factor, out_v, out_ok);
      return;
    }
    out_v = GridF(v.width() * enlarge, v.height() * enlarge);
    out_ok = GridU8(out_v.width(), out_v.height());
    for (int r = 0; r < out_v.height(); ++r) {
      for (int c = 0; c < out_v.width(); ++c) {
        out_v(c, r) = v(c / enlarge, r / enlarge);
        out_ok(c, r) = ok(c / enlarge, r / enlarge);
      }
    }
  };
  GridF small_values;
  GridU8 small_valid;
  resample(values, valid, small_values, small_valid);
  RgbImage map = render_scalar_map(small_values, small_valid, scale);
  ArrowKey key;
  if (options.arrows && east != nullptr && north != nullptr) {
    GridF small_east;
    GridF small_north;
    GridU8 ignored;
    resample(*east, valid, small_east, ignored);
    resample(*north, valid, small_north, ignored);
    ArrowOptions arrows = options.arrow_options;
    arrows.step = std::max(arrows.step, enlarge * 2);
    key = draw_vector_field(map, small_east, small_north, small_valid, arrows);
  }
  const RgbImage bar = render_color_bar(scale, std::max(map.height(), 240), clip_marks(values, valid, scale));
  const int footer = key.value > 0.0 || options.cell_size_m > 0.0 ? 32 : 0;
  Figure f = compose(map, bar, options.title, footer, options.min_width_px);
  if (options.cell_size_m > 0.0) {
    draw_scale_bar(f.image, options.cell_size_m * factor / enlarge, map.width(), f.map_left + map.width(),
                   f.footer_top + 4);
  }
  if (key.value > 0.0) {
    const std::string& unit = options.arrow_options.unit.empty() ? scale.unit : options.arrow_options.unit;
    draw_arrow_key(f.image, key, unit, f.map_left, f.footer_top + 4, options.arrow_options.color);
    f.layout.arrow_key_top = f.footer_top + 4;
  }
  f.layout.map_scale = enlarge;
  if (layout != nullptr) *layout = f.layout;
  return f.image;
}

std::string figure_title(const std::string& product, const std::string& what, const std::string& unit,
                         const std::string& first_date, const std::string& last_date) {
  std::vector<std::string> parts;
  if (!product.empty()) parts.push_back(product);
  if (!what.empty()) parts.push_back(unit.empty() ? what : fmt::format("{} ({})", what, unit));
  if (!first_date.empty() && !last_date.empty() && first_date != last_date) {
    parts.push_back(fmt::format("{} to {}", first_date, last_date));
  } else if (!first_date.empty() || !last_date.empty()) {
    parts.push_back(first_date.empty() ? last_date : first_date);
  }
  return fmt::format("{}", fmt::join(parts, " - "));
}

void PointMapOptions::validate() const {
  if (map_size_px < 64)
    throw InvalidArgument(fmt::format("point map size {} px: expected >= 64", map_size_px));
  if (point_radius_px < 0)
    throw InvalidArgument(fmt::format("point radius {} px: expected >= 0", point_radius_px));
}

RgbImage render_point_map(const std::vector<double>& x_m, const std::vector<double>& y_m,
                          const std::vector<float>& values, const ColorScale& scale,
                          const PointMapOptions& options, FigureLayout* layout) {
  options.validate();
  scale.validate();
  if (x_m.size() != y_m.size() || x_m.size() != values.size()) {
    throw InvalidArgument(fmt::format("render_point_map: {} x, {} y and {} values: expected as many of each",
                                      x_m.size(), y_m.size(), values.size()));
  }
  std::vector<std::size_t> order;
  double x_min = HUGE_VAL, x_max = -HUGE_VAL, y_min = HUGE_VAL, y_max = -HUGE_VAL;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]) || !std::isfinite(x_m[i]) || !std::isfinite(y_m[i])) continue;
    order.push_back(i);
    x_min = std::min(x_min, x_m[i]), x_max = std::max(x_max, x_m[i]);
    y_min = std::min(y_min, y_m[i]), y_max = std::max(y_max, y_m[i]);
  }
  if (order.empty()) throw InvalidArgument("render_point_map: no point has a value");
  // A margin of 4% (at least 50 m) around the points; equal metres per pixel in x and y.
  const double margin_m = std::max(50.0, 0.04 * std::max(x_max - x_min, y_max - y_min));
  x_min -= margin_m, x_max += margin_m, y_min -= margin_m, y_max += margin_m;
  const double metres_per_px = std::max(x_max - x_min, y_max - y_min) / options.map_size_px;
  const int width = std::max(1, static_cast<int>(std::ceil((x_max - x_min) / metres_per_px)));
  const int height = std::max(1, static_cast<int>(std::ceil((y_max - y_min) / metres_per_px)));
  RgbImage map(width, height, Rgb{236, 236, 236});
  int radius = options.point_radius_px;
  if (radius == 0) {
    // Points cover about a third of the area they span, so neighbours touch without hiding each other.
    const double px_per_point = static_cast<double>(width) * height / static_cast<double>(order.size());
    radius = std::clamp(static_cast<int>(std::lround(std::sqrt(px_per_point / 3.0 / std::numbers::pi))), 1, 4);
  }
  const double centre =
      scale.kind == ColormapKind::kDiverging ? 0.5 * (scale.min_value + scale.max_value) : scale.min_value;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::abs(values[a] - centre) < std::abs(values[b] - centre);
  });
  for (const std::size_t i : order) {
    const double col = (x_m[i] - x_min) / metres_per_px;
    const double row = (y_max - y_m[i]) / metres_per_px;
    map.draw_circle(col, row, radius, scale.color_of(values[i]));
  }
  GridF all(static_cast<int>(values.size()), 1);
  for (std::size_t i = 0; i < values.size(); ++i) all.data()[i] = values[i];
  const RgbImage bar = render_color_bar(scale, std::max(map.height(), 240), clip_marks(all, GridU8(), scale));
  Figure f = compose(map, bar, options.title, 32, 800);
  draw_scale_bar(f.image, metres_per_px, map.width(), f.map_left + map.width(), f.footer_top + 4);
  if (layout != nullptr) *layout = f.layout;
  return f.image;
}

}  // namespace deforma::render
