#pragma once
// Generic plots on a date axis: a time series with error bars, and a pair network (one arc per pair).
// Ticks fall on readable calendar steps (days, months, years) chosen from the span.
#include <string>
#include <utility>
#include <vector>

#include "deforma/io/dates.hpp"
#include "deforma/render/image.hpp"

namespace deforma::render {

struct PlotOptions {
  int width_px = 900;
  int height_px = 500;
  void validate() const;
};

/// One series of a time-series plot: values (NaN = missing, not drawn) and optional 1-sigma errors.
struct PlotSeries {
  std::string label;
  std::vector<double> values;
  std::vector<double> errors;  ///< empty or the size of values
  Rgb color = colors::kBlue;
};

/// Points with error bars (and a thin line through them) against dates. Several series share the axes
/// and get a legend. Throws InvalidArgument when sizes disagree or there are no dates.
RgbImage plot_time_series(const std::vector<io::Date>& dates, const std::vector<PlotSeries>& series,
                          const std::string& title, const std::string& y_label,
                          const PlotOptions& options = {});

/// Convenience for a single series.
RgbImage plot_time_series(const std::vector<io::Date>& dates, const std::vector<double>& values,
                          const std::vector<double>& errors, const std::string& title,
                          const std::string& y_label, const PlotOptions& options = {});

/// Points with error bars (and a thin line through them) against a numeric x axis (distance along a fault
/// trace, say), with a dashed zero line when the values change sign. Several series share the axes and get a
/// legend. Throws InvalidArgument when sizes disagree or there are no points.
RgbImage plot_xy(const std::vector<double>& x, const std::vector<PlotSeries>& series,
                 const std::string& title, const std::string& x_label, const std::string& y_label,
                 const PlotOptions& options = {});

/// The pair network: each date is a dot on the time axis, each pair (indices into `dates`) an arc above
/// it joining its two dates (arc height grows with the interval, so long and short pairs separate).
RgbImage plot_pair_network(const std::vector<io::Date>& dates, const std::vector<std::pair<int, int>>& pairs,
                           const std::string& title = "pair network", const PlotOptions& options = {});

/// Calendar ticks for [first, last]: about `target_count` dates on day, month or year boundaries, with
/// their labels ("2020-03", "2020-03-15", "2020").
std::vector<std::pair<io::Date, std::string>> date_ticks(const io::Date& first, const io::Date& last,
                                                         int target_count = 6);

}  // namespace deforma::render
