#pragma once
// Acquisition dates of images. A Date is a calendar day (UTC); time series work in days and decimal years.
// acquisition_date() finds the date of an image from its name (Sentinel-2 and Landsat product names,
// YYYYMMDD or YYYY-MM-DD in the file name), from a Landsat MTL file (the path itself, or an MTL beside a
// raster), and from raster metadata (ACQUISITIONDATETIME-like items, time_coverage_start, then
// TIFFTAG_DATETIME as a last resort). Two different dates from the trusted sources are an error naming the
// file: a wrong date would silently corrupt every velocity computed from it.
#include <compare>
#include <ctime>
#include <string>
#include <vector>

namespace deforma::io {

/// A calendar day in the proleptic Gregorian calendar, stored as days since 1970-01-01.
class Date {
 public:
  Date() = default;
  /// Throws InvalidArgument when the day does not exist (2021-02-29, month 13...).
  static Date from_ymd(int year, int month, int day);
  /// Day of year 1..365/366. Throws InvalidArgument when out of range for that year.
  static Date from_year_day(int year, int day_of_year);
  static Date from_days_since_epoch(long long days);
  /// Parses "YYYY-MM-DD", "YYYYMMDD" or an ISO date-time whose date part is one of those
  /// ("2016-07-18T20:31:55Z"). Throws InvalidArgument quoting the text.
  static Date parse(const std::string& text);

  int year() const;
  int month() const;
  int day() const;
  int day_of_year() const;
  long long days_since_epoch() const { return days_; }
  /// Year plus the fraction of the year elapsed at the start of this day (2020-07-02 -> 2020.5).
  double decimal_year() const;
  /// "YYYY-MM-DD".
  std::string iso() const;
  /// "YYYYMMDD".
  std::string compact() const;

  auto operator<=>(const Date&) const = default;

 private:
  explicit Date(long long days) : days_(days) {}
  long long days_ = 0;
};

/// Signed number of days from `from` to `to`.
inline long long days_between(const Date& from, const Date& to) {
  return to.days_since_epoch() - from.days_since_epoch();
}

/// Years (of 365.25 days) from `from` to `to`; the time unit of velocities (m/yr).
inline double years_between(const Date& from, const Date& to) {
  return static_cast<double>(days_between(from, to)) / 365.25;
}

/// One date found for an image and where it came from ("file name (Landsat collection)", "MTL file ...").
struct DateEvidence {
  Date date;
  std::string source;
};

/// Facts read from a product name, when it follows a known convention.
struct ProductNameInfo {
  bool recognised = false;          ///< a Sentinel-2 or Landsat name
  std::string sensor;               ///< "S2A", "LC08", "LC8"...
  std::string tile;                 ///< Sentinel-2 MGRS tile ("T32TLR") or Landsat path/row ("063018")
  std::string orbit;                ///< Sentinel-2 relative orbit ("R108"); empty for Landsat
  std::vector<DateEvidence> dates;  ///< acquisition date(s) the name carries (normally one)
};

/// Reads the date (and sensor/tile/orbit) carried by a file name (no file access). Recognises:
/// Sentinel-2 products "S2A_MSIL1C_20200101T103431_N0208_R108_T32TLR_20200101T123456" (the sensing date,
/// not the processing one), Sentinel-2 tile files "T32TLR_20200101T103431_B08.jp2", Landsat Collection
/// names "LC08_L1TP_063018_20160718_20200906_02_T1" (4th field; the 5th is the processing date),
/// pre-collection names "LC80630182016200LGN00" (year + day of year), and otherwise every YYYYMMDD or
/// YYYY-MM-DD token (not part of a longer run of digits) in the name.
ProductNameInfo parse_product_name(const std::string& file_name);

/// Reads DATE_ACQUIRED (or ACQUISITION_DATE) of a Landsat MTL text file. Throws IoError when it cannot be
/// read, FormatError naming the file when the field is absent or malformed.
Date read_mtl_date(const std::string& mtl_path);

/// The MTL files that may describe `raster_path`: files named like the raster's stem, shortened field by
/// field at '_' and ending in "_MTL.txt" (LC8..._B8_yahtse.TIF -> LC8..._B8_MTL.txt, LC8..._MTL.txt),
/// that exist beside it.
std::vector<std::string> find_mtl_beside(const std::string& raster_path);

/// Every date found for `path`, trusted sources only (name, MTL, acquisition metadata items), plus
/// TIFFTAG_DATETIME when nothing else was found (it is often the processing time, so it is a last resort).
std::vector<DateEvidence> date_evidence(const std::string& path);

/// The acquisition date of `path` (an image or an MTL file). Throws FormatError naming the file when no
/// date is found, or when sources disagree (listing each date and its source).
Date acquisition_date(const std::string& path);

/// A moment as ISO 8601 / RFC 3339 UTC text, "2026-03-01T12:00:00Z": provenance, history attributes, job
/// times.
std::string iso_utc(std::time_t t);

}  // namespace deforma::io
