#pragma once
// The time axis of a pair network (docs/timeseries.md, "Time axis"). An epoch is the instant an image was
// acquired when the images carry their time to the second (SAR products), else its calendar day (optical
// series: dates stay dates, taken at 00:00 UTC). Intervals between epochs are days as doubles, so pairs
// hours apart and two passes of one day are part of the axis like pairs of whole days.
#include <optional>
#include <string>

#include "deforma/io/dates.hpp"

namespace deforma::timeseries {

struct Epoch {
  io::Date date;                 ///< the UTC day of the epoch
  std::optional<double> time_s;  ///< acquisition instant, seconds since 1970-01-01 UTC, when known

  /// An epoch at the instant `time_s` (its date is the UTC day of that instant).
  static Epoch at(double time_s);
  /// Parses what iso() writes: "YYYY-MM-DD" (a date) or "YYYY-MM-DDTHH:MM:SS[.fff]Z" (an instant).
  /// Throws InvalidArgument quoting the text.
  static Epoch parse(const std::string& text);

  /// Days since 1970-01-01 00:00 UTC: with the fraction of the day when the time is known, whole for a
  /// date.
  double days_since_epoch() const {
    return time_s ? *time_s / 86400.0 : static_cast<double>(date.days_since_epoch());
  }
  /// ISO 8601 text: "2016-07-18" for a date, "2016-10-05T10:18:35Z" for an instant (to the second,
  /// truncated). Band descriptions of the series products and the dates of summaries.
  std::string iso() const;
};

/// Signed days from `from` to `to`, fractions included.
inline double days_between(const Epoch& from, const Epoch& to) {
  return to.days_since_epoch() - from.days_since_epoch();
}

}  // namespace deforma::timeseries
