#include "deforma/render/map.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

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

RgbImage render_color_bar(const ColorScale& scale, int height) {
  scale.validate();
  height = std::max(height, 120);
  const double text_scale = 0.42;
  const auto ticks = nice_ticks(scale.min_value, scale.max_value, 5);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : (scale.max_value - scale.min_value);
  int label_width = 0;
  for (const double t : ticks) {
    int w = 0;
    int h = 0;
    RgbImage::text_size(format_tick(t, step), text_scale, 1, w, h);
    label_width = std::max(label_width, w);
  }
  const std::string title =
      scale.unit.empty() ? scale.title : fmt::format("{} ({})", scale.title, scale.unit);
  int title_width = 0;
  int title_height = 0;
  RgbImage::text_size(title, text_scale, 1, title_width, title_height);
  const int bar_width = 18;
  const int margin_top = title_height + 16;
  const int margin_bottom = 10;
  const int width = std::max(8 + bar_width + 6 + label_width + 8, title_width + 12);
  RgbImage bar(width, height, colors::kWhite);
  bar.draw_text(title, 6, 4, colors::kBlack, text_scale);
  const int x0 = 8;
  const int y0 = margin_top;
  const int bar_height = height - margin_top - margin_bottom;
  for (int i = 0; i < bar_height; ++i) {
    // Top of the bar is the maximum.
    const double t = 1.0 - static_cast<double>(i) / std::max(1, bar_height - 1);
    bar.fill_rect(x0, y0 + i, bar_width, 1, Colormap::of(scale.kind).at(t));
  }
  bar.draw_rect(x0, y0, bar_width, bar_height, colors::kBlack);
  for (const double t : ticks) {
    const double f = (t - scale.min_value) / (scale.max_value - scale.min_value);
    const double y = y0 + (1.0 - f) * (bar_height - 1);
    bar.draw_line(x0 + bar_width, y, x0 + bar_width + 4, y, colors::kBlack);
    bar.draw_text(format_tick(t, step), x0 + bar_width + 6, y, colors::kBlack, text_scale,
                  RgbImage::Anchor::kCenterLeft);
  }
  return bar;
}

void ArrowOptions::validate() const {
  if (step < 2) throw InvalidArgument(fmt::format("arrow step {} px: expected at least 2", step));
  if (thickness < 1) throw InvalidArgument(fmt::format("arrow thickness {}: expected at least 1", thickness));
}

void draw_vector_field(RgbImage& image, const GridF& east, const GridF& north, const GridU8& valid,
                       const ArrowOptions& options) {
  options.validate();
  if (east.width() != north.width() || east.height() != north.height() || valid.size() != east.size() ||
      east.width() != image.width() || east.height() != image.height()) {
    throw InvalidArgument("draw_vector_field: east, north, valid and the image must have the same size");
  }
  std::vector<float> magnitudes;
  const int half = options.step / 2;
  for (int r = half; r < east.height(); r += options.step) {
    for (int c = half; c < east.width(); c += options.step) {
      if (valid(c, r) == 0 || !std::isfinite(east(c, r)) || !std::isfinite(north(c, r))) continue;
      magnitudes.push_back(std::hypot(east(c, r), north(c, r)));
    }
  }
  if (magnitudes.empty()) return;
  std::sort(magnitudes.begin(), magnitudes.end());
  const double p95 = magnitudes[static_cast<std::size_t>(0.95 * static_cast<double>(magnitudes.size() - 1))];
  if (!(p95 > 0.0)) return;
  const double pixels_per_unit = options.step * 0.9 / p95;
  for (int r = half; r < east.height(); r += options.step) {
    for (int c = half; c < east.width(); c += options.step) {
      if (valid(c, r) == 0 || !std::isfinite(east(c, r)) || !std::isfinite(north(c, r))) continue;
      const double dx = east(c, r) * pixels_per_unit;
      const double dy = -north(c, r) * pixels_per_unit;  // rows grow southwards
      if (std::hypot(dx, dy) < 1.0) continue;
      image.draw_arrow(c + 0.5, r + 0.5, c + 0.5 + dx, r + 0.5 + dy, options.color, options.thickness);
    }
  }
}

void QuicklookOptions::validate() const {
  if (max_size_px < 16)
    throw InvalidArgument(fmt::format("quicklook max size {} px: expected >= 16", max_size_px));
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

RgbImage render_quicklook(const GridF& values, const GridU8& valid, const ColorScale& scale,
                          const QuicklookOptions& options, const GridF* east, const GridF* north) {
  options.validate();
  if (values.empty()) throw InvalidArgument("render_quicklook: empty grid");
  const int longer = std::max(values.width(), values.height());
  const int factor = std::max(1, (longer + options.max_size_px - 1) / options.max_size_px);
  // Small grids (a coarse node grid) are enlarged by whole pixels so that a person can read them.
  const int enlarge = factor == 1 ? std::max(1, std::min(400, options.max_size_px) / longer) : 1;
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
  if (options.arrows && east != nullptr && north != nullptr) {
    GridF small_east;
    GridF small_north;
    GridU8 ignored;
    resample(*east, valid, small_east, ignored);
    resample(*north, valid, small_north, ignored);
    ArrowOptions arrows = options.arrow_options;
    arrows.step = std::max(arrows.step, enlarge * 2);
    draw_vector_field(map, small_east, small_north, small_valid, arrows);
  }
  const RgbImage bar = render_color_bar(scale, std::max(map.height(), 200));
  const int title_height = options.title.empty() ? 0 : 28;
  const int pad = 8;
  int title_width = 0;
  int title_text_height = 0;
  RgbImage::text_size(options.title, 0.55, 1, title_width, title_text_height);
  RgbImage figure(std::max(pad + map.width() + pad + bar.width() + pad, title_width + 2 * pad),
                  title_height + pad + std::max(map.height(), bar.height()) + pad, colors::kWhite);
  if (!options.title.empty()) {
    figure.draw_text(options.title, figure.width() / 2.0, 8, colors::kBlack, 0.55,
                     RgbImage::Anchor::kTopCenter);
  }
  figure.paste(map, pad, title_height + pad);
  figure.draw_rect(pad - 1, title_height + pad - 1, map.width() + 2, map.height() + 2, colors::kBlack);
  figure.paste(bar, pad + map.width() + pad, title_height + pad);
  return figure;
}

}  // namespace deforma::render
