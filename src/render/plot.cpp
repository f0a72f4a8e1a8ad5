#include "deforma/render/plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/render/colormap.hpp"

namespace deforma::render {

void PlotOptions::validate() const {
  if (width_px < 200 || height_px < 150) {
    throw InvalidArgument(fmt::format("plot size {}x{} px: expected at least 200x150", width_px, height_px));
  }
}

std::vector<std::pair<io::Date, std::string>> date_ticks(const io::Date& first, const io::Date& last,
                                                         int target_count) {
  std::vector<std::pair<io::Date, std::string>> ticks;
  const long long span = std::max<long long>(1, io::days_between(first, last));
  target_count = std::max(target_count, 2);
  // Day steps, then month steps, then year steps: the first that gives at most target_count ticks.
  for (const int step : {1, 2, 5, 7, 14}) {
    if (span / step + 1 <= target_count) {
      for (long long d = first.days_since_epoch(); d <= last.days_since_epoch(); d += step) {
        const auto date = io::Date::from_days_since_epoch(d);
        ticks.emplace_back(date, date.iso());
      }
      return ticks;
    }
  }
  for (const int months : {1, 2, 3, 6}) {
    if (span / (30.44 * months) + 1 <= target_count) {
      int y = first.year();
      int m = first.month();
      // First boundary on a multiple of the step (Jan, Apr, Jul, Oct for 3 months).
      int index = y * 12 + (m - 1);
      if (first.day() != 1) ++index;
      index = (index + months - 1) / months * months;
      for (;; index += months) {
        y = index / 12;
        m = index % 12 + 1;
        const auto date = io::Date::from_ymd(y, m, 1);
        if (date > last) break;
        ticks.emplace_back(date, fmt::format("{:04d}-{:02d}", y, m));
      }
      return ticks;
    }
  }
  int years = 1;
  for (const int step : {1, 2, 5, 10, 20, 50}) {
    years = step;
    if (span / (365.25 * step) + 1 <= target_count) break;
  }
  int y = (first.month() == 1 && first.day() == 1) ? first.year() : first.year() + 1;
  y = (y + years - 1) / years * years;
  for (; io::Date::from_ymd(y, 1, 1) <= last; y += years) {
    ticks.emplace_back(io::Date::from_ymd(y, 1, 1), fmt::format("{}", y));
  }
  return ticks;
}

namespace {

// The plot frame: data coordinates (days, value) to pixels.
struct Frame {
  int left = 80;
  int right = 20;
  int top = 44;
  int bottom = 52;
  int width = 0;
  int height = 0;
  double day0 = 0;
  double day1 = 1;
  double v0 = 0;
  double v1 = 1;

  double x(double day) const { return left + (day - day0) / (day1 - day0) * (width - left - right); }
  double y(double value) const { return top + (1.0 - (value - v0) / (v1 - v0)) * (height - top - bottom); }
};

void pad_day_range(const std::vector<io::Date>& dates, Frame& frame) {
  const auto [lo, hi] = std::minmax_element(dates.begin(), dates.end());
  double d0 = static_cast<double>(lo->days_since_epoch());
  double d1 = static_cast<double>(hi->days_since_epoch());
  const double pad = std::max(1.0, (d1 - d0) * 0.04);
  frame.day0 = d0 - pad;
  frame.day1 = d1 + pad;
}

void draw_date_axis(RgbImage& image, const Frame& frame, const std::vector<io::Date>& dates) {
  const double base = image.height() - frame.bottom;
  image.draw_line(frame.left, base, image.width() - frame.right, base, colors::kBlack);
  const auto first = io::Date::from_days_since_epoch(static_cast<long long>(std::ceil(frame.day0)));
  const auto last = io::Date::from_days_since_epoch(static_cast<long long>(std::floor(frame.day1)));
  (void)dates;
  for (const auto& [date, label] : date_ticks(first, last, std::max(3, (image.width() - 100) / 110))) {
    const double x = frame.x(static_cast<double>(date.days_since_epoch()));
    image.draw_line(x, base, x, base + 5, colors::kBlack);
    image.draw_line(x, frame.top, x, base, colors::kLightGrey);
    image.draw_text(label, x, base + 8, colors::kBlack, 0.42, RgbImage::Anchor::kTopCenter);
  }
}

}  // namespace

namespace {

// The value range of all series, error bars included, padded; (-1, 1) when nothing is finite. Checks sizes.
std::pair<double, double> value_range(std::size_t count, const std::vector<PlotSeries>& series,
                                      const char* what) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (const auto& s : series) {
    if (s.values.size() != count) {
      throw InvalidArgument(fmt::format("{}: series '{}' has {} values for {} positions", what, s.label,
                                        s.values.size(), count));
    }
    if (!s.errors.empty() && s.errors.size() != s.values.size()) {
      throw InvalidArgument(fmt::format("{}: series '{}' has {} errors for {} values", what, s.label,
                                        s.errors.size(), s.values.size()));
    }
    for (std::size_t i = 0; i < s.values.size(); ++i) {
      if (!std::isfinite(s.values[i])) continue;
      const double e = (!s.errors.empty() && std::isfinite(s.errors[i])) ? std::abs(s.errors[i]) : 0.0;
      lo = std::min(lo, s.values[i] - e);
      hi = std::max(hi, s.values[i] + e);
    }
  }
  if (!std::isfinite(lo)) {
    lo = -1.0;
    hi = 1.0;
  }
  if (!(hi > lo)) {
    lo -= 1.0;
    hi += 1.0;
  }
  const double vpad = (hi - lo) * 0.06;
  return {lo - vpad, hi + vpad};
}

// Title, value axis with grid lines and its label.
void draw_value_axis(RgbImage& image, const Frame& frame, const std::string& title,
                     const std::string& y_label) {
  image.draw_text(title, image.width() / 2.0, 12, colors::kBlack, 0.55, RgbImage::Anchor::kTopCenter);
  const auto yticks = nice_ticks(frame.v0, frame.v1, 6);
  const double ystep = yticks.size() > 1 ? yticks[1] - yticks[0] : 1.0;
  for (const double t : yticks) {
    const double y = frame.y(t);
    image.draw_line(frame.left, y, image.width() - frame.right, y, colors::kLightGrey);
    image.draw_text(format_tick(t, ystep), frame.left - 6, y, colors::kBlack, 0.42,
                    RgbImage::Anchor::kCenterRight);
  }
  image.draw_line(frame.left, frame.top, frame.left, image.height() - frame.bottom, colors::kBlack);
  image.draw_text_vertical(y_label, 16, (frame.top + image.height() - frame.bottom) / 2.0, colors::kBlack,
                           0.45);
}

// Each series as a thin line through its points, error bars and dots, then the legend; `xs` in frame units.
void draw_series(RgbImage& image, const Frame& frame, const std::vector<double>& xs,
                 const std::vector<PlotSeries>& series) {
  for (const auto& s : series) {
    double prev_x = std::nan("");
    double prev_y = std::nan("");
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (!std::isfinite(s.values[i])) continue;
      const double x = frame.x(xs[i]);
      const double y = frame.y(s.values[i]);
      if (std::isfinite(prev_x)) image.draw_line(prev_x, prev_y, x, y, s.color, 1);
      prev_x = x;
      prev_y = y;
    }
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (!std::isfinite(s.values[i])) continue;
      const double x = frame.x(xs[i]);
      const double y = frame.y(s.values[i]);
      if (!s.errors.empty() && std::isfinite(s.errors[i]) && s.errors[i] > 0) {
        const double ya = frame.y(s.values[i] - s.errors[i]);
        const double yb = frame.y(s.values[i] + s.errors[i]);
        image.draw_line(x, ya, x, yb, s.color, 1);
        image.draw_line(x - 3, ya, x + 3, ya, s.color, 1);
        image.draw_line(x - 3, yb, x + 3, yb, s.color, 1);
      }
      image.draw_circle(x, y, 3, s.color);
    }
  }
  // Legend when several series (or one with a label) share the axes.
  int legend_y = frame.top + 6;
  int widest = 0;
  for (const auto& s : series) {
    int w = 0, h = 0;
    RgbImage::text_size(s.label, 0.42, 1, w, h);
    widest = std::max(widest, w);
  }
  // Room for the widest label, and never less than the usual 150 px so that short legends stay put.
  const double lx = image.width() - frame.right - std::max(150, widest + 24);
  for (const auto& s : series) {
    if (s.label.empty()) continue;
    image.draw_circle(lx, legend_y + 6, 4, s.color);
    image.draw_text(s.label, lx + 10, legend_y, colors::kBlack, 0.42);
    legend_y += 18;
  }
}

}  // namespace

RgbImage plot_time_series(const std::vector<io::Date>& dates, const std::vector<PlotSeries>& series,
                          const std::string& title, const std::string& y_label, const PlotOptions& options) {
  options.validate();
  if (dates.empty()) throw InvalidArgument("plot_time_series: no dates");
  Frame frame;
  frame.width = options.width_px;
  frame.height = options.height_px;
  std::tie(frame.v0, frame.v1) = value_range(dates.size(), series, "plot_time_series");
  pad_day_range(dates, frame);

  RgbImage image(options.width_px, options.height_px, colors::kWhite);
  draw_value_axis(image, frame, title, y_label);
  draw_date_axis(image, frame, dates);
  std::vector<double> xs;
  for (const auto& d : dates) xs.push_back(static_cast<double>(d.days_since_epoch()));
  draw_series(image, frame, xs, series);
  return image;
}

RgbImage plot_xy(const std::vector<double>& x, const std::vector<PlotSeries>& series,
                 const std::string& title, const std::string& x_label, const std::string& y_label,
                 const PlotOptions& options) {
  options.validate();
  double x0 = std::numeric_limits<double>::infinity();
  double x1 = -x0;
  for (const double v : x) {
    if (!std::isfinite(v)) continue;
    x0 = std::min(x0, v);
    x1 = std::max(x1, v);
  }
  if (!std::isfinite(x0)) throw InvalidArgument("plot_xy: no finite x position");
  Frame frame;
  frame.width = options.width_px;
  frame.height = options.height_px;
  std::tie(frame.v0, frame.v1) = value_range(x.size(), series, "plot_xy");
  const double pad = x1 > x0 ? (x1 - x0) * 0.04 : 1.0;
  frame.day0 = x0 - pad;
  frame.day1 = x1 + pad;

  RgbImage image(options.width_px, options.height_px, colors::kWhite);
  draw_value_axis(image, frame, title, y_label);
  const double base = image.height() - frame.bottom;
  image.draw_line(frame.left, base, image.width() - frame.right, base, colors::kBlack);
  const auto xticks = nice_ticks(frame.day0, frame.day1, std::max(3, (image.width() - 100) / 110));
  const double xstep = xticks.size() > 1 ? xticks[1] - xticks[0] : 1.0;
  for (const double t : xticks) {
    const double px = frame.x(t);
    image.draw_line(px, base, px, base + 5, colors::kBlack);
    image.draw_line(px, frame.top, px, base, colors::kLightGrey);
    image.draw_text(format_tick(t, xstep), px, base + 8, colors::kBlack, 0.42, RgbImage::Anchor::kTopCenter);
  }
  image.draw_text(x_label, (frame.left + image.width() - frame.right) / 2.0, base + 28, colors::kBlack, 0.45,
                  RgbImage::Anchor::kTopCenter);
  if (frame.v0 < 0 && frame.v1 > 0) {
    // Dashed zero line: the sign of an offset is what such figures are read for.
    const double y = frame.y(0.0);
    for (double px = frame.left; px < image.width() - frame.right; px += 12) {
      image.draw_line(px, y, std::min(px + 6, static_cast<double>(image.width() - frame.right)), y,
                      colors::kGrey);
    }
  }
  draw_series(image, frame, x, series);
  return image;
}

RgbImage plot_time_series(const std::vector<io::Date>& dates, const std::vector<double>& values,
                          const std::vector<double>& errors, const std::string& title,
                          const std::string& y_label, const PlotOptions& options) {
  PlotSeries s;
  s.values = values;
  s.errors = errors;
  return plot_time_series(dates, std::vector<PlotSeries>{s}, title, y_label, options);
}

RgbImage plot_pair_network(const std::vector<io::Date>& dates, const std::vector<std::pair<int, int>>& pairs,
                           const std::string& title, const PlotOptions& options) {
  options.validate();
  if (dates.empty()) throw InvalidArgument("plot_pair_network: no dates");
  Frame frame;
  frame.width = options.width_px;
  frame.height = options.height_px;
  pad_day_range(dates, frame);
  RgbImage image(options.width_px, options.height_px, colors::kWhite);
  image.draw_text(fmt::format("{} ({} dates, {} pairs)", title, dates.size(), pairs.size()),
                  options.width_px / 2.0, 12, colors::kBlack, 0.55, RgbImage::Anchor::kTopCenter);
  const double base = options.height_px - frame.bottom;
  const double max_arc = base - frame.top - 8;
  long long longest = 1;
  for (const auto& [a, b] : pairs) {
    if (a < 0 || b < 0 || a >= static_cast<int>(dates.size()) || b >= static_cast<int>(dates.size())) {
      throw InvalidArgument(fmt::format("plot_pair_network: pair ({}, {}) refers to a date outside 0..{}", a,
                                        b, dates.size() - 1));
    }
    longest = std::max(longest, std::llabs(io::days_between(dates[a], dates[b])));
  }
  draw_date_axis(image, frame, dates);
  for (const auto& [a, b] : pairs) {
    const double xa = frame.x(static_cast<double>(dates[a].days_since_epoch()));
    const double xb = frame.x(static_cast<double>(dates[b].days_since_epoch()));
    const double span = std::abs(static_cast<double>(io::days_between(dates[a], dates[b])));
    // Arc height grows with the interval (square root: short pairs stay visible beside long ones).
    const double h = std::max(4.0, max_arc * std::sqrt(span / static_cast<double>(longest)));
    image.draw_ellipse_arc((xa + xb) / 2.0, base, std::abs(xb - xa) / 2.0, h, 180.0, 360.0, colors::kBlue, 1);
  }
  for (const auto& d : dates) {
    image.draw_circle(frame.x(static_cast<double>(d.days_since_epoch())), base, 4, colors::kRed);
  }
  return image;
}

}  // namespace deforma::render
