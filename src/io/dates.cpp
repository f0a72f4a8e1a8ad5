#include "deforma/io/dates.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <gdal_priv.h>

#include "deforma/core/error.hpp"

namespace deforma::io {
namespace fs = std::filesystem;
namespace chr = std::chrono;

namespace {

chr::year_month_day ymd_of(long long days) {
  return chr::year_month_day{chr::sys_days{chr::days{days}}};
}

bool valid_ymd(int y, int m, int d) {
  return chr::year_month_day{chr::year{y}, chr::month{static_cast<unsigned>(m)},
                             chr::day{static_cast<unsigned>(d)}}
      .ok();
}

// A date token in a name is plausible when its year is in the era of Earth observation; this keeps
// numbers such as orbit counters or path/rows from passing as dates.
bool plausible_year(int y) {
  return y >= 1970 && y <= 2100;
}

std::optional<Date> date_from_digits(const std::string& digits8) {
  const int y = std::stoi(digits8.substr(0, 4));
  const int m = std::stoi(digits8.substr(4, 2));
  const int d = std::stoi(digits8.substr(6, 2));
  if (!plausible_year(y) || m < 1 || m > 12 || d < 1 || d > 31 || !valid_ymd(y, m, d)) return std::nullopt;
  return Date::from_ymd(y, m, d);
}

void add_evidence(std::vector<DateEvidence>& out, const Date& date, const std::string& source) {
  out.push_back({date, source});
}

}  // namespace

Date Date::from_ymd(int year, int month, int day) {
  if (month < 1 || month > 12 || day < 1 || day > 31 || !valid_ymd(year, month, day)) {
    throw InvalidArgument(fmt::format("date {:04d}-{:02d}-{:02d} does not exist", year, month, day));
  }
  const chr::sys_days days{chr::year{year} / chr::month{static_cast<unsigned>(month)} /
                           chr::day{static_cast<unsigned>(day)}};
  return Date(days.time_since_epoch().count());
}

Date Date::from_year_day(int year, int day_of_year) {
  const bool leap = chr::year{year}.is_leap();
  if (day_of_year < 1 || day_of_year > (leap ? 366 : 365)) {
    throw InvalidArgument(
        fmt::format("day of year {} of {}: expected 1..{}", day_of_year, year, leap ? 366 : 365));
  }
  return Date(from_ymd(year, 1, 1).days_ + day_of_year - 1);
}

Date Date::from_days_since_epoch(long long days) {
  return Date(days);
}

Date Date::parse(const std::string& text) {
  // libstdc++'s regex matcher recurses once per character: a long cell in a hostile table would overflow
  // the stack. No date text is longer than an ISO date-time with nanoseconds and a time-zone offset.
  constexpr std::size_t kMaxDateChars = 64;
  if (text.size() > kMaxDateChars) {
    throw InvalidArgument(
        fmt::format("'{}...' ({} characters) is not a date: expected YYYY-MM-DD or YYYYMMDD",
                    text.substr(0, 32), text.size()));
  }
  static const std::regex iso(R"(^\s*(\d{4})-(\d{2})-(\d{2})([T ].*)?\s*$)");
  static const std::regex compact(R"(^\s*(\d{4})(\d{2})(\d{2})(T.*)?\s*$)");
  static const std::regex colon(R"(^\s*(\d{4}):(\d{2}):(\d{2})( .*)?\s*$)");  // TIFF DateTime
  std::smatch m;
  if (std::regex_match(text, m, iso) || std::regex_match(text, m, compact) ||
      std::regex_match(text, m, colon)) {
    try {
      return from_ymd(std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3]));
    } catch (const InvalidArgument&) {
      throw InvalidArgument(fmt::format("'{}' is not a valid date", text));
    }
  }
  throw InvalidArgument(fmt::format("'{}' is not a date: expected YYYY-MM-DD or YYYYMMDD", text));
}

int Date::year() const {
  return static_cast<int>(ymd_of(days_).year());
}
int Date::month() const {
  return static_cast<int>(static_cast<unsigned>(ymd_of(days_).month()));
}
int Date::day() const {
  return static_cast<int>(static_cast<unsigned>(ymd_of(days_).day()));
}
int Date::day_of_year() const {
  return static_cast<int>(days_ - from_ymd(year(), 1, 1).days_) + 1;
}

double Date::decimal_year() const {
  const int y = year();
  const double length = chr::year{y}.is_leap() ? 366.0 : 365.0;
  return y + (day_of_year() - 1) / length;
}

std::string Date::iso() const {
  return fmt::format("{:04d}-{:02d}-{:02d}", year(), month(), day());
}
std::string Date::compact() const {
  return fmt::format("{:04d}{:02d}{:02d}", year(), month(), day());
}

ProductNameInfo parse_product_name(const std::string& file_name) {
  ProductNameInfo info;
  const std::string name = fs::path(file_name).filename().string();
  std::smatch m;
  // Sentinel-2 product: MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxxx_ROOO_Txxxxx_<product discriminator>
  static const std::regex s2_product(
      R"(^(S2[ABCD])_MSI\w{3}_(\d{8})T\d{6}_N\d{4}_(R\d{3})_(T\d{2}[A-Z]{3})_)");
  // Sentinel-2 granule/tile file: Txxxxx_YYYYMMDDTHHMMSS_Bxx.jp2 (and _TCI, _SCL...)
  static const std::regex s2_tile(R"(^(T\d{2}[A-Z]{3})_(\d{8})T\d{6}_)");
  // Landsat Collection: LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX (acquisition date is the 4th field).
  static const std::regex landsat_collection(R"(^(L[COTEM]0\d)_\w{4}_(\d{6})_(\d{8})_(\d{8})_\d{2}_\w{2})");
  // Landsat pre-collection: LXSPPPRRRYYYYDDDGSIVV (year + day of year).
  static const std::regex landsat_old(R"(^(L[COTEM]\d)(\d{6})(\d{4})(\d{3})[A-Z]{3}\d{2})");
  auto date_or_throw = [&](const std::string& digits) {
    auto d = date_from_digits(digits);
    if (!d)
      throw FormatError(fmt::format("{}: '{}' in the product name is not a valid date", file_name, digits));
    return *d;
  };
  if (std::regex_search(name, m, s2_product)) {
    info.recognised = true;
    info.sensor = m[1];
    info.orbit = m[3];
    info.tile = m[4];
    add_evidence(info.dates, date_or_throw(m[2]), "file name (Sentinel-2 product)");
    return info;
  }
  if (std::regex_search(name, m, s2_tile)) {
    info.recognised = true;
    info.sensor = "S2";
    info.tile = m[1];
    add_evidence(info.dates, date_or_throw(m[2]), "file name (Sentinel-2 tile)");
    return info;
  }
  if (std::regex_search(name, m, landsat_collection)) {
    info.recognised = true;
    info.sensor = m[1];
    info.tile = m[2];
    add_evidence(info.dates, date_or_throw(m[3]), "file name (Landsat Collection)");
    return info;
  }
  if (std::regex_search(name, m, landsat_old)) {
    info.recognised = true;
    info.sensor = m[1];
    info.tile = m[2];
    try {
      add_evidence(info.dates, Date::from_year_day(std::stoi(m[3]), std::stoi(m[4])),
                   "file name (Landsat year + day of year)");
    } catch (const InvalidArgument& e) {
      throw FormatError(fmt::format("{}: Landsat name with an invalid date: {}", file_name, e.what()));
    }
    return info;
  }
  // Generic: YYYYMMDD or YYYY-MM-DD (or YYYY_MM_DD) tokens not embedded in a longer run of digits.
  static const std::regex generic(R"((^|[^0-9])(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?=[^0-9]|$))");
  std::set<long long> seen;
  for (auto it = std::sregex_iterator(name.begin(), name.end(), generic); it != std::sregex_iterator();
       ++it) {
    const auto d = date_from_digits((*it)[2].str() + (*it)[3].str() + (*it)[4].str());
    if (d && seen.insert(d->days_since_epoch()).second) add_evidence(info.dates, *d, "file name");
  }
  return info;
}

Date read_mtl_date(const std::string& mtl_path) {
  std::ifstream in(mtl_path);
  if (!in) throw IoError(fmt::format("cannot read Landsat MTL file {}", mtl_path));
  static const std::regex field(R"(^\s*(DATE_ACQUIRED|ACQUISITION_DATE)\s*=\s*\"?([0-9-]+)\"?\s*$)");
  std::string line;
  int line_number = 0;
  // Field lines are short; a long line must not reach the regex matcher, which recurses per character.
  constexpr std::size_t kMaxFieldLineChars = 256;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.size() > kMaxFieldLineChars) {
      if (line.find("DATE_ACQUIRED") != std::string::npos ||
          line.find("ACQUISITION_DATE") != std::string::npos) {
        throw FormatError(fmt::format("{} line {}: {} characters long; expected 'DATE_ACQUIRED = YYYY-MM-DD'",
                                      mtl_path, line_number, line.size()));
      }
      continue;
    }
    std::smatch m;
    if (std::regex_match(line, m, field)) {
      try {
        return Date::parse(m[2]);
      } catch (const InvalidArgument&) {
        throw FormatError(fmt::format("{} line {}: {} = '{}' is not a YYYY-MM-DD date", mtl_path, line_number,
                                      m[1].str(), m[2].str()));
      }
    }
  }
  throw FormatError(fmt::format("{}: no DATE_ACQUIRED field (not a Landsat MTL file?)", mtl_path));
}

std::vector<std::string> find_mtl_beside(const std::string& raster_path) {
  std::vector<std::string> found;
  const fs::path p(raster_path);
  std::string stem = p.stem().string();
  while (!stem.empty()) {
    const fs::path candidate = p.parent_path() / (stem + "_MTL.txt");
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && candidate != p) found.push_back(candidate.string());
    const auto cut = stem.rfind('_');
    if (cut == std::string::npos) break;
    stem.resize(cut);
  }
  return found;
}

namespace {
bool is_mtl_name(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  return name.size() > 8 && name.ends_with("_MTL.txt");
}
}  // namespace

std::vector<DateEvidence> date_evidence(const std::string& path) {
  std::vector<DateEvidence> evidence = parse_product_name(path).dates;
  if (is_mtl_name(path)) {
    add_evidence(evidence, read_mtl_date(path),
                 fmt::format("MTL file {}", fs::path(path).filename().string()));
    return evidence;
  }
  for (const auto& mtl : find_mtl_beside(path)) {
    add_evidence(evidence, read_mtl_date(mtl), fmt::format("MTL file {}", fs::path(mtl).filename().string()));
  }
  // Raster metadata: only when the file opens as a raster; unreadable files are reported by whoever reads
  // them.
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    GDALAllRegister();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
    CPLPopErrorHandler();
    if (ds) {
      std::optional<DateEvidence> tiff_datetime;
      for (const char* key :
           {"ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "ACQUISITION_DATE", "DATE_ACQUIRED",
            "SENSING_TIME", "DATATAKE_1_DATATAKE_SENSING_START", "time_coverage_start",
            "ACQUISITION_START_TIME", "TIFFTAG_DATETIME"}) {
        const char* value = ds->GetMetadataItem(key);
        if (value == nullptr) continue;
        try {
          const Date d = Date::parse(value);
          if (std::string(key) == "TIFFTAG_DATETIME") {
            tiff_datetime = DateEvidence{d, "TIFF tag DATETIME"};
          } else {
            add_evidence(evidence, d, fmt::format("metadata item {}", key));
          }
        } catch (const InvalidArgument&) {
          // A malformed optional tag is not a date source; other sources decide.
        }
      }
      if (evidence.empty() && tiff_datetime) evidence.push_back(*tiff_datetime);
    }
  }
  return evidence;
}

Date acquisition_date(const std::string& path) {
  const auto evidence = date_evidence(path);
  if (evidence.empty()) {
    throw FormatError(fmt::format(
        "{}: no acquisition date found (looked for a Sentinel-2/Landsat product name, YYYYMMDD or YYYY-MM-DD "
        "in "
        "the name, a Landsat MTL file beside it, and date metadata); give dates in a CSV manifest instead",
        path));
  }
  for (const auto& e : evidence) {
    if (e.date != evidence.front().date) {
      std::string list;
      for (const auto& x : evidence)
        list += fmt::format("{}{} from {}", list.empty() ? "" : ", ", x.date.iso(), x.source);
      throw FormatError(fmt::format("{}: ambiguous acquisition date: {}", path, list));
    }
  }
  return evidence.front().date;
}

std::string iso_utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace deforma::io
