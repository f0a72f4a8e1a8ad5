#include "deforma/egms/product.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_map>

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/text.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/staged_file.hpp"
#include "egms/line_reader.hpp"

namespace deforma::egms {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Fields and header names lose their spaces, tabs, quotes and a line's trailing carriage return.
std::string_view trim(std::string_view s) {
  return deforma::trim(s, " \t\r\"");
}

std::string xml_tag(const std::string& xml, const std::string& tag) {
  const std::string open = "<" + tag + ">";
  const auto start = xml.find(open);
  if (start == std::string::npos) return {};
  const auto end = xml.find("</" + tag + ">", start);
  if (end == std::string::npos) return {};
  return std::string(trim(std::string_view(xml).substr(start + open.size(), end - start - open.size())));
}

int to_int_or(const std::string& text, int fallback) {
  int value = fallback;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  return r.ec == std::errc() ? value : fallback;
}

int decimals_of(std::string_view field) {
  const auto dot = field.find('.');
  if (dot == std::string_view::npos) return 0;
  int n = 0;
  for (std::size_t i = dot + 1; i < field.size() && std::isdigit(static_cast<unsigned char>(field[i])); ++i)
    ++n;
  return n;
}

// Parses a number; empty fields are NaN. Returns false on text that is not a number.
bool parse_number(std::string_view field, double& value) {
  field = trim(field);
  if (field.empty() || field == "nan" || field == "NaN" || field == "NA") {
    value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (field.front() == '+') field.remove_prefix(1);
  const auto r = std::from_chars(field.data(), field.data() + field.size(), value);
  return r.ec == std::errc() && r.ptr == field.data() + field.size();
}



// True when `text` is well-formed UTF-8 without control characters other than tab: what a CSV header
// of column names is, and what a raster, an archive or random bytes almost never are.
bool plausible_header(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
      ++i;
      continue;
    }
    const std::size_t length = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (length == 0 || (length == 2 && c < 0xc2) || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

// Remembers every pid of a product exactly, in a few tens of bytes per point: EGMS identifiers (up to
// 10 base-62 digits, below 2^60) as their number tagged with their length, any other identifier as text.
class PidRegistry {
 public:
  // The line of an earlier occurrence of `pid`, or 0 when it is new (it is then remembered at `line`).
  std::int64_t add(std::string_view pid, std::int64_t line) {
    std::uint64_t code = 0;
    if (encode(pid, code)) {
      const auto [it, inserted] = numbers_.emplace(code, line);
      return inserted ? 0 : it->second;
    }
    const auto [it, inserted] = texts_.emplace(std::string(pid), line);
    return inserted ? 0 : it->second;
  }

 private:
  static bool encode(std::string_view pid, std::uint64_t& code) {
    if (pid.empty() || pid.size() > 10) return false;
    code = 0;
    for (const char c : pid) {
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'A' && c <= 'Z') {
        digit = c - 'A' + 10;
      } else if (c >= 'a' && c <= 'z') {
        digit = c - 'a' + 36;
      } else {
        return false;
      }
      code = code * 62 + static_cast<std::uint64_t>(digit);
    }
    // "01" and "1" have the same value: the length in the top bits tells them apart.
    code |= static_cast<std::uint64_t>(pid.size()) << 60;
    return true;
  }
  std::unordered_map<std::uint64_t, std::int64_t> numbers_;
  std::unordered_map<std::string, std::int64_t> texts_;
};

// The values a known column may hold; anything outside is a damaged or foreign file, refused with the
// column and the range in the message rather than carried into results (an extent printed with 300
// digits, an infinite velocity).
struct ValueDomain {
  double min = -std::numeric_limits<double>::max();
  double max = std::numeric_limits<double>::max();
  const char* unit = "";
};

ValueDomain domain_of(const std::string& canonical) {
  static const std::map<std::string, ValueDomain> domains = {
      {column::kLatitude, {-90, 90, "degrees"}},
      {column::kLongitude, {-180, 360, "degrees"}},
      // EPSG:3035 coordinates: anything beyond half the Earth's circumference is not a place.
      {column::kEasting, {-2e7, 2e7, "m"}},
      {column::kNorthing, {-2e7, 2e7, "m"}},
      {column::kHeightOrtho, {-1e5, 1e5, "m"}},
      {column::kHeightEllipse, {-1e5, 1e5, "m"}},
      {column::kIncidenceAngle, {0, 90, "degrees"}},
      {column::kTrackAngle, {-360, 360, "degrees"}},
      {column::kLosEast, {-1.001, 1.001, ""}},
      {column::kLosNorth, {-1.001, 1.001, ""}},
      {column::kLosUp, {-1.001, 1.001, ""}},
      {column::kTemporalCoherence, {0, 1.001, ""}},
      {column::kMeanVelocity, {-kMaxVelocity, kMaxVelocity, "mm/yr"}},
      {column::kMeanVelocityStd, {0, kMaxVelocity, "mm/yr"}},
      {column::kAcceleration, {-kMaxVelocity, kMaxVelocity, "mm/yr^2"}},
      {column::kAccelerationStd, {0, kMaxVelocity, "mm/yr^2"}},
      {column::kSeasonality, {-kMaxDisplacement, kMaxDisplacement, "mm"}},
      {column::kSeasonalityStd, {0, kMaxDisplacement, "mm"}},
      {column::kRmse, {0, kMaxDisplacement, "mm"}},
      {column::kGnssVelocity, {-kMaxVelocity, kMaxVelocity, "mm/yr"}},
  };
  const auto it = domains.find(canonical);
  return it == domains.end() ? ValueDomain{} : it->second;
}

std::string range_text(const ValueDomain& d) {
  return fmt::format("{:g}..{:g}{}{}", d.min, d.max, *d.unit ? " " : "", d.unit);
}

// A header column that names a date: YYYYMMDD, or YYYY-MM-DD as some tools write it. nullopt when the
// name is not date-shaped; throws FormatError (file, column) for a date-shaped name that is not a valid
// acquisition date.
std::optional<int> date_column(const std::string& name, std::size_t field, const std::string& path) {
  std::string digits = name;
  const bool iso = name.size() == 10 && name[4] == '-' && name[7] == '-';
  if (iso) digits = name.substr(0, 4) + name.substr(5, 2) + name.substr(8, 2);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const auto day = parse_yyyymmdd(digits);
  if (!day) {
    throw FormatError(fmt::format("{}: header column {} '{}' looks like a date but is not a valid {}", path,
                                  field + 1, name, iso ? "YYYY-MM-DD" : "YYYYMMDD"));
  }
  if (*day < kFirstAcquisitionDay || *day > kLastAcquisitionDay) {
    throw FormatError(fmt::format("{}: header column {} '{}': an acquisition date must lie between {} and {}",
                                  path, field + 1, name, format_yyyymmdd(kFirstAcquisitionDay),
                                  format_yyyymmdd(kLastAcquisitionDay)));
  }
  return day;
}

}  // namespace

std::string canonical_column_name(const std::string& file_name) {
  static const std::map<std::string, std::string> aliases = {
      {"height", column::kHeightOrtho}, {"height_wgs84", column::kHeightEllipse},
      {"rmse_ts", column::kRmse},       {"lat", column::kLatitude},
      {"lon", column::kLongitude},      {"x", column::kEasting},
      {"y", column::kNorthing}};
  const std::string name = lower(std::string(trim(file_name)));
  const auto it = aliases.find(name);
  return it == aliases.end() ? name : it->second;
}

std::optional<int> parse_yyyymmdd(std::string_view text) {
  text = trim(text);
  if (text.size() != 8 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int y = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
  const int m = (text[4] - '0') * 10 + (text[5] - '0');
  const int d = (text[6] - '0') * 10 + (text[7] - '0');
  if (y < 1900 || m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
  try {
    return static_cast<int>(io::Date::from_ymd(y, m, d).days_since_epoch());
  } catch (const InvalidArgument&) {
    return std::nullopt;  // 20210230 and the like
  }
}

std::string format_yyyymmdd(int z) {
  return io::Date::from_days_since_epoch(z).compact();
}

nlohmann::json ProductMetadata::to_json() const {
  return {{"level", level},
          {"track", track},
          {"burst_id", burst_id},
          {"sub_swath", sub_swath},
          {"production_facility", production_facility},
          {"production_date", production_date},
          {"dem_version", dem_version},
          {"gnss_version", gnss_version}};
}

int ProductLayout::find(const std::string& canonical) const {
  for (std::size_t i = 0; i < canonical_names.size(); ++i) {
    if (canonical_names[i] == canonical) return static_cast<int>(i);
  }
  return -1;
}

int ProductLayout::require(const std::string& canonical, const std::string& purpose) const {
  const int index = find(canonical);
  if (index < 0) {
    throw FormatError(fmt::format("{}: column '{}' is missing (needed for {}); columns present: {}", source,
                                  canonical, purpose, fmt::join(scalar_names, ", ")));
  }
  return index;
}

int ProductLayout::add_column(const std::string& canonical, int decimals) {
  if (const int i = find(canonical); i >= 0) return i;
  scalar_names.push_back(canonical);
  canonical_names.push_back(canonical);
  scalar_decimals.push_back(decimals);
  return static_cast<int>(scalar_names.size()) - 1;
}

void PointChunk::clear() {
  pid.clear();
  scalars.clear();
  series.clear();
  source_line.clear();
}

void PointChunk::reset(std::size_t scalars_per_point, std::size_t dates_per_point) {
  clear();
  scalar_count = scalars_per_point;
  date_count = dates_per_point;
}

std::size_t PointChunk::add_point(std::string point_id, std::int64_t line) {
  pid.push_back(std::move(point_id));
  source_line.push_back(line);
  scalars.resize(scalars.size() + scalar_count, std::numeric_limits<double>::quiet_NaN());
  series.resize(series.size() + date_count, std::numeric_limits<float>::quiet_NaN());
  return pid.size() - 1;
}

void PointChunk::append_scalar_column() {
  std::vector<double> grown((scalar_count + 1) * size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t p = 0; p < size(); ++p) {
    std::copy_n(scalars.data() + p * scalar_count, scalar_count, grown.data() + p * (scalar_count + 1));
  }
  scalars = std::move(grown);
  ++scalar_count;
}

// ---------------------------------------------------------------------------------------------------
// Reader

struct ProductReader::State {
  std::string path;     // as given
  std::string csv_vsi;  // the CSV as a GDAL virtual path
  std::unique_ptr<detail::LineReader> lines;
  ProductLayout layout;
  ProductMetadata metadata;
  std::uint64_t total = 0;
  std::int64_t header_lines = 0;
  bool decimals_learned = false;  // decimals are learnt from the first chunk
  // Per column: -1 = pid, >= 0 scalar index, <= -2 date index (-2 - i).
  std::vector<int> field_target;
  std::vector<std::string_view> fields;
  // Checks made during the first pass only (later passes read the same bytes).
  bool first_pass = true;
  PidRegistry pids;
  std::vector<ValueDomain> scalar_domains;
  std::uint64_t header_end = 0;  // bytes up to the end of the header
  // restrict_to(): lines starting at or after this byte are not read.
  std::uint64_t end_byte = std::numeric_limits<std::uint64_t>::max();

  void open_stream() {
    if (!lines) lines = std::make_unique<detail::LineReader>(csv_vsi, path, total);
    lines->open();
  }

  // Next line without its end-of-line; false at end of file.
  bool next_line(std::string_view& line) { return lines->next(line); }
  std::int64_t line_number() const { return lines->line_number(); }

  void split(std::string_view line) {
    fields.clear();
    std::size_t start = 0;
    while (true) {
      const auto sep = line.find(layout.separator, start);
      if (sep == std::string_view::npos) {
        fields.push_back(line.substr(start));
        return;
      }
      fields.push_back(line.substr(start, sep - start));
      start = sep + 1;
    }
  }
};

ProductReader::ProductReader() : state_(std::make_unique<State>()) {}
ProductReader::ProductReader(ProductReader&&) noexcept = default;
ProductReader& ProductReader::operator=(ProductReader&&) noexcept = default;
ProductReader::~ProductReader() = default;

const std::string& ProductReader::path() const {
  return state_->path;
}
const ProductLayout& ProductReader::layout() const {
  return state_->layout;
}
const ProductMetadata& ProductReader::metadata() const {
  return state_->metadata;
}
std::uint64_t ProductReader::total_bytes() const {
  return state_->total;
}
std::uint64_t ProductReader::bytes_read() const {
  return state_->lines ? state_->lines->consumed() : 0;
}

namespace {

// The XML metadata of a product (about 100 kB for a real burst), read whole but bounded: a damaged or
// hostile archive cannot make the reader allocate more than this.
constexpr std::size_t kMaxMetadataBytes = std::size_t{16} << 20;

std::string read_small_file(const std::string& vsi_path, const std::string& display_name) {
  VSILFILE* f = VSIFOpenL(vsi_path.c_str(), "rb");
  if (!f) return {};
  std::string text;
  char block[65536];
  std::size_t got = 0;
  while ((got = VSIFReadL(block, 1, sizeof block, f)) > 0) {
    if (text.size() + got > kMaxMetadataBytes) {
      VSIFCloseL(f);
      throw FormatError(fmt::format("{}: the XML metadata is larger than {} MiB; expected EGMS metadata of a few "
                                    "hundred kB",
                                    display_name, kMaxMetadataBytes >> 20));
    }
    text.append(block, got);
  }
  VSIFCloseL(f);
  return text;
}

ProductMetadata parse_metadata(const std::string& xml, const std::string& file_name) {
  ProductMetadata m;
  m.xml = xml;
  if (!xml.empty()) {
    m.level = xml_tag(xml, "product_level");
    m.track = to_int_or(xml_tag(xml, "track"), -1);
    m.burst_id = to_int_or(xml_tag(xml, "burst_id"), -1);
    m.sub_swath = to_int_or(xml_tag(xml, "sub_swath"), -1);
    m.production_facility = to_int_or(xml_tag(xml, "production_facility"), -1);
    m.production_date = xml_tag(xml, "production_date");
    const auto dem = xml.find("<dem>");
    if (dem != std::string::npos) m.dem_version = xml_tag(xml.substr(dem), "version");
    const auto gnss = xml.find("<gnss>");
    if (gnss != std::string::npos) m.gnss_version = xml_tag(xml.substr(gnss), "version");
  }
  // The file name EGMS_<level>_<track>_<burst>_... fills what the XML did not give.
  const std::string stem = fs::path(file_name).stem().string();
  if (stem.rfind("EGMS_", 0) == 0) {
    const auto parts = CPLStringList(CSLTokenizeString2(stem.c_str(), "_", 0));
    if (parts.size() >= 4) {
      if (m.level.empty()) m.level = parts[1];
      if (m.level != "L3") {
        if (m.track < 0) m.track = to_int_or(parts[2], -1);
        if (m.burst_id < 0) m.burst_id = to_int_or(parts[3], -1);
      }
    }
  }
  return m;
}

}  // namespace

ProductReader ProductReader::open(const std::string& path) {
  io::ensure_gdal_initialized();
  ProductReader reader;
  State& s = *reader.state_;
  s.path = path;
  VSIStatBufL stat;
  if (VSIStatL(path.c_str(), &stat) != 0) throw IoError(fmt::format("{}: no such file", path));
  if (VSI_ISDIR(stat.st_mode))
    throw IoError(fmt::format("{}: is a folder, expected an EGMS CSV or zip", path));

  std::string xml;
  if (lower(fs::path(path).extension().string()) == ".zip") {
    const std::string root = "/vsizip/" + path;
    io::clear_gdal_error();
    const CPLStringList entries(VSIReadDirRecursive(root.c_str()));
    if (entries.empty()) {
      // Tell an empty archive (only the end-of-central-directory record) and a file that is not a zip
      // at all from a damaged one.
      char magic[4] = {0, 0, 0, 0};
      if (VSILFILE* f = VSIFOpenL(path.c_str(), "rb")) {
        VSIFReadL(magic, 1, sizeof magic, f);
        VSIFCloseL(f);
      }
      if (std::memcmp(magic, "PK\x05\x06", 4) == 0) {
        throw FormatError(fmt::format("{}: the zip is empty; expected an EGMS product (a .csv inside)", path));
      }
      if (std::memcmp(magic, "PK", 2) != 0) {
        throw FormatError(fmt::format("{}: not a zip file; expected an EGMS product (.zip or .csv)", path));
      }
      throw IoError(fmt::format("{}: cannot list the zip (truncated or damaged){}", path,
                                io::last_gdal_error().empty() ? "" : ": " + io::last_gdal_error()));
    }
    std::vector<std::string> csv_entries, xml_entries;
    for (int i = 0; i < entries.size(); ++i) {
      const std::string entry = entries[i];
      const std::string ext = lower(fs::path(entry).extension().string());
      if (ext == ".csv") csv_entries.push_back(entry);
      if (ext == ".xml") xml_entries.push_back(entry);
    }
    if (csv_entries.empty()) throw FormatError(fmt::format("{}: the zip holds no .csv file", path));
    if (csv_entries.size() > 1) {
      throw FormatError(fmt::format("{}: the zip holds {} CSV files ({}): which one is the product is "
                                    "ambiguous; extract it and give the CSV",
                                    path, csv_entries.size(), fmt::join(csv_entries, ", ")));
    }
    const std::string& csv_entry = csv_entries.front();
    // The metadata of the CSV: the XML of the same name, else the only one.
    std::string xml_entry;
    for (const auto& entry : xml_entries) {
      if (fs::path(entry).stem() == fs::path(csv_entry).stem()) xml_entry = entry;
    }
    if (xml_entry.empty() && xml_entries.size() == 1) xml_entry = xml_entries.front();
    s.csv_vsi = root + "/" + csv_entry;
    if (!xml_entry.empty()) xml = read_small_file(root + "/" + xml_entry, path + " (" + xml_entry + ")");
  } else {
    s.csv_vsi = path;
    const std::string sidecar = (fs::path(path).replace_extension(".xml")).string();
    if (VSIStatL(sidecar.c_str(), &stat) == 0) xml = read_small_file(sidecar, sidecar);
  }
  if (VSIStatL(s.csv_vsi.c_str(), &stat) == 0) s.total = static_cast<std::uint64_t>(stat.st_size);
  s.metadata = parse_metadata(xml, path);
  s.layout.source = path;
  s.open_stream();

  const std::string not_egms = fmt::format(
      "{}: not an EGMS product (no CSV header): expected a line of column names (pid, ..., YYYYMMDD)", path);
  std::string_view header;
  bool has_header = false;
  try {
    has_header = s.next_line(header);
  } catch (const FormatError&) {
    throw FormatError(not_egms);  // the first line is endless: binary data
  }
  if (!has_header) throw FormatError(fmt::format("{}: empty file, no header", path));
  // A UTF-8 byte-order mark (spreadsheets write one) is not part of the first column's name.
  if (header.substr(0, 3) == "\xEF\xBB\xBF") header.remove_prefix(3);
  if (trim(header).empty()) throw FormatError(fmt::format("{}: empty first line, no header", path));
  if (!plausible_header(header)) throw FormatError(not_egms);
  const std::string header_text(header);
  const auto commas = std::count(header_text.begin(), header_text.end(), ',');
  const auto semicolons = std::count(header_text.begin(), header_text.end(), ';');
  s.layout.separator = semicolons > commas ? ';' : ',';
  s.split(header_text);
  int pid_column = -1;
  std::vector<std::pair<int, int>> date_columns;  // (day, field)
  std::vector<bool> is_date(s.fields.size(), false);
  std::map<std::string, int> seen;
  for (std::size_t f = 0; f < s.fields.size(); ++f) {
    const std::string name(trim(s.fields[f]));
    if (name.empty()) throw FormatError(fmt::format("{}: header column {} has no name", path, f + 1));
    if (const auto day = date_column(name, f, path)) {
      date_columns.emplace_back(*day, static_cast<int>(f));
      is_date[f] = true;
      continue;
    }
    const std::string canonical = canonical_column_name(name);
    if (!seen.emplace(canonical, static_cast<int>(f)).second) {
      throw FormatError(fmt::format("{}: column '{}' appears twice in the header", path, name));
    }
    if (canonical == column::kPid) {
      pid_column = static_cast<int>(f);
      continue;
    }
    s.layout.scalar_names.push_back(name);
    s.layout.canonical_names.push_back(canonical);
    s.scalar_domains.push_back(domain_of(canonical));
  }
  if (pid_column < 0) throw FormatError(fmt::format("{}: column 'pid' is missing from the header", path));
  if (date_columns.empty()) {
    throw FormatError(fmt::format("{}: no YYYYMMDD displacement column in the header", path));
  }
  if (!std::is_sorted(date_columns.begin(), date_columns.end())) {
    std::stable_sort(date_columns.begin(), date_columns.end());
  }
  for (std::size_t i = 1; i < date_columns.size(); ++i) {
    if (date_columns[i].first == date_columns[i - 1].first) {
      throw FormatError(
          fmt::format("{}: date column {} appears twice", path, format_yyyymmdd(date_columns[i].first)));
    }
  }
  s.field_target.assign(s.fields.size(), 0);
  int scalar_index = 0;
  for (std::size_t f = 0; f < s.fields.size(); ++f) {
    if (static_cast<int>(f) == pid_column) {
      s.field_target[f] = -1;
    } else if (!is_date[f]) {
      s.field_target[f] = scalar_index++;
    }
  }
  for (std::size_t i = 0; i < date_columns.size(); ++i) {
    s.layout.dates.push_back(date_columns[i].first);
    s.field_target[date_columns[i].second] = -2 - static_cast<int>(i);
  }
  s.layout.scalar_decimals.assign(s.layout.scalar_names.size(), -1);
  s.layout.series_decimals = -1;
  s.header_lines = s.line_number();
  s.header_end = s.lines->consumed();
  return reader;
}

std::uint64_t ProductReader::header_bytes() const {
  return state_->header_end;
}

void ProductReader::restrict_to(std::uint64_t first_byte, std::uint64_t end_byte) {
  State& s = *state_;
  first_byte = std::max(first_byte, s.header_end);
  s.end_byte = end_byte;
  s.lines->set_display_path(fmt::format("{} (part from byte {}, lines counted from there)", s.path, first_byte));
  s.path = fmt::format("{} (part from byte {}, lines counted from there)", s.path, first_byte);
  if (first_byte == s.header_end) {
    s.lines->seek(first_byte);
    return;
  }
  // The line holding byte first_byte - 1 belongs to the range before (it starts earlier, or ends there):
  // skip it, so that the next line starts at first_byte or later.
  s.lines->seek(first_byte - 1);
  std::string_view skipped;
  s.next_line(skipped);
}

void ProductReader::use_decimals(const std::vector<int>& scalar_decimals, int series_decimals) {
  State& s = *state_;
  if (scalar_decimals.size() != s.layout.scalar_count()) {
    throw InvalidArgument(fmt::format("{}: {} column decimals given for {} scalar columns", s.path,
                                      scalar_decimals.size(), s.layout.scalar_count()));
  }
  s.layout.scalar_decimals = scalar_decimals;
  s.layout.series_decimals = series_decimals;
  s.decimals_learned = true;
}

void ProductReader::rewind() {
  State& s = *state_;
  // A pass left before its end checked only part of the file: the next one checks it all again.
  if (s.first_pass) s.pids = PidRegistry();
  s.open_stream();
  std::string_view header;
  s.next_line(header);
}

bool ProductReader::read(PointChunk& chunk, std::size_t max_points) {
  State& s = *state_;
  ProductLayout& layout = s.layout;
  chunk.reset(layout.scalar_count(), layout.date_count());
  const std::size_t expected = s.field_target.size();
  std::string_view line;
  while (chunk.size() < max_points && s.lines->consumed() < s.end_byte && s.next_line(line)) {
    if (trim(line).empty()) continue;
    s.split(line);
    if (s.fields.size() != expected) {
      throw FormatError(fmt::format("{}: line {} has {} fields, expected {} as in the header{}", s.path,
                                    s.line_number(), s.fields.size(), expected,
                                    s.fields.size() < expected ? " (truncated line?)" : ""));
    }
    const std::int64_t line_number = s.line_number();
    const std::size_t p = chunk.add_point({}, line_number);
    float* series = chunk.series_of(p);
    const bool learn_decimals = !s.decimals_learned;
    for (std::size_t f = 0; f < expected; ++f) {
      const int target = s.field_target[f];
      if (target == -1) {
        chunk.pid[p] = std::string(trim(s.fields[f]));
        continue;
      }
      double value = 0;
      const auto column_name = [&] {
        return target >= 0 ? layout.scalar_names[target] : format_yyyymmdd(layout.dates[-2 - target]);
      };
      if (!parse_number(s.fields[f], value)) {
        throw FormatError(fmt::format("{}: line {}, column '{}': '{}' is not a number", s.path, line_number,
                                      column_name(), trim(s.fields[f])));
      }
      if (std::isinf(value)) {
        throw FormatError(fmt::format("{}: line {}, column '{}': '{}' is not a finite number", s.path,
                                      line_number, column_name(), trim(s.fields[f])));
      }
      if (!std::isnan(value)) {
        const ValueDomain domain =
            target >= 0 ? s.scalar_domains[target] : ValueDomain{-kMaxDisplacement, kMaxDisplacement, "mm"};
        if (!(value >= domain.min && value <= domain.max)) {
          throw FormatError(fmt::format("{}: line {}, column '{}': {} is out of range (expected {})", s.path,
                                        line_number, column_name(), trim(s.fields[f]), range_text(domain)));
        }
      }
      if (target >= 0) {
        chunk.scalar(p, target) = value;
        if (learn_decimals && !std::isnan(value)) {
          auto& d = layout.scalar_decimals[target];
          d = std::max(d, decimals_of(s.fields[f]));
        }
      } else {
        series[-2 - target] = static_cast<float>(value);
        if (learn_decimals && !std::isnan(value)) {
          layout.series_decimals = std::max(layout.series_decimals, decimals_of(s.fields[f]));
        }
      }
    }
    if (chunk.pid[p].empty()) {
      throw FormatError(fmt::format("{}: line {}, column 'pid': empty point identifier", s.path, line_number));
    }
    if (s.first_pass) {
      if (const std::int64_t earlier = s.pids.add(chunk.pid[p], line_number)) {
        throw FormatError(fmt::format("{}: line {}: pid '{}' already appears on line {} (duplicated point)",
                                      s.path, line_number, chunk.pid[p], earlier));
      }
    }
  }
  if (chunk.pid.empty() && s.first_pass) {
    s.first_pass = false;
    s.pids = PidRegistry();  // the whole file was checked: free the identifiers
  }
  // Computed columns (velocities, series) are written with at least two decimals so that re-referenced
  // or calibrated values keep sub-0.1 mm precision; integer columns stay integers.
  for (auto& d : layout.scalar_decimals) {
    if (d > 0 && d < 2) d = 2;
  }
  if (layout.series_decimals >= 0 && layout.series_decimals < 2) layout.series_decimals = 2;
  s.decimals_learned = true;
  return !chunk.pid.empty();
}

// ---------------------------------------------------------------------------------------------------
// Writer

namespace {

// Text made safe for an XML element by GDAL's escaper (quotes stay: they need no escape in element text,
// and the JSON record stays readable).
std::string escape_xml(const std::string& text) {
  char* escaped = CPLEscapeString(text.c_str(), static_cast<int>(text.size()), CPLES_XML_BUT_QUOTES);
  std::string out = escaped;
  CPLFree(escaped);
  return out;
}

std::string metadata_xml(const ProductMetadata& m, const io::Provenance& provenance,
                         const nlohmann::json& extra) {
  std::string body;
  const bool l3 = m.level == "L3";
  body += fmt::format("<?xml version='1.0' encoding='UTF-8'?>\n<{}>\n", l3 ? "TILE" : "BURST");
  body += fmt::format("  <product_level>{}</product_level>\n", escape_xml(m.level));
  if (m.track >= 0) body += fmt::format("  <track>{:03d}</track>\n", m.track);
  if (m.burst_id >= 0) body += fmt::format("  <burst_id>{:04d}</burst_id>\n", m.burst_id);
  if (m.sub_swath >= 0) body += fmt::format("  <sub_swath>{}</sub_swath>\n", m.sub_swath);
  if (m.production_facility >= 0) {
    body += fmt::format("  <production_facility>{}</production_facility>\n", m.production_facility);
  }
  if (!m.production_date.empty()) {
    body += fmt::format("  <production_date>{}</production_date>\n", escape_xml(m.production_date));
  }
  if (!m.dem_version.empty())
    body += fmt::format("  <dem>\n    <version>{}</version>\n  </dem>\n", m.dem_version);
  if (!m.gnss_version.empty()) {
    body += fmt::format("  <gnss>\n    <version>{}</version>\n  </gnss>\n", m.gnss_version);
  }
  nlohmann::json record = provenance.to_json();
  record["processing"] = extra;
  body += fmt::format("  <deforma>{}</deforma>\n", escape_xml(record.dump()));
  body += fmt::format("</{}>\n", l3 ? "TILE" : "BURST");
  return body;
}

void write_all(VSILFILE* f, const std::string& text, const std::string& what) {
  if (VSIFWriteL(text.data(), 1, text.size(), f) != text.size()) {
    throw IoError(fmt::format("{}: write failed (disk full?)", what));
  }
}

void append_value(std::string& out, double value, int decimals) {
  if (std::isnan(value)) return;
  if (decimals <= 0) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<long long>(std::llround(value)));
  } else {
    fmt::format_to(std::back_inserter(out), "{:.{}f}", value, decimals);
  }
}

}  // namespace

struct ProductWriter::State {
  std::string final_path;
  std::unique_ptr<io::StagedFile> staged;      // the zip, or the CSV
  std::unique_ptr<io::StagedFile> staged_xml;  // sidecar (CSV output)
  bool zip = false;
  VSILFILE* csv = nullptr;
  ProductLayout layout;
  ProductMetadata metadata;
  std::string xml_text;
  std::string entry_stem;
  bool closed = false;
  std::string line;

  ~State() {
    if (csv) VSIFCloseL(csv);  // before the StagedFiles remove what was not committed
  }
};

ProductWriter::ProductWriter(const std::string& path, ProductLayout layout, ProductMetadata metadata,
                             io::Provenance provenance, nlohmann::json extra)
    : state_(std::make_unique<State>()) {
  io::ensure_gdal_initialized();
  io::check_writable_parent(path);
  State& s = *state_;
  s.final_path = path;
  s.layout = std::move(layout);
  s.metadata = std::move(metadata);
  s.xml_text = metadata_xml(s.metadata, provenance, extra);
  s.staged = std::make_unique<io::StagedFile>(path);
  s.zip = lower(fs::path(path).extension().string()) == ".zip";
  s.entry_stem = fs::path(path).stem().string();
  std::string csv_target = s.staged->temp_path();
  if (s.zip) {
    csv_target = "/vsizip/" + s.staged->temp_path() + "/" + s.entry_stem + ".csv";
  } else {
    s.staged_xml = std::make_unique<io::StagedFile>(fs::path(path).replace_extension(".xml").string());
  }
  io::clear_gdal_error();
  s.csv = VSIFOpenL(csv_target.c_str(), "wb");
  if (!s.csv) throw IoError(fmt::format("{}: cannot create ({})", path, io::last_gdal_error()));
  std::string header = "pid";
  for (const auto& name : s.layout.scalar_names) header += s.layout.separator + name;
  for (const int day : s.layout.dates) header += s.layout.separator + format_yyyymmdd(day);
  header += '\n';
  write_all(s.csv, header, path);
}

ProductWriter::~ProductWriter() = default;

void ProductWriter::write(const PointChunk& chunk) {
  State& s = *state_;
  if (s.closed) throw InvalidArgument(fmt::format("{}: write after close", s.final_path));
  const auto& layout = s.layout;
  if (chunk.scalar_count != layout.scalar_count() || chunk.date_count != layout.date_count()) {
    throw InvalidArgument(fmt::format("{}: chunk has {} scalars/{} dates, layout {}/{}", s.final_path,
                                      chunk.scalar_count, chunk.date_count, layout.scalar_count(),
                                      layout.date_count()));
  }
  std::string& out = s.line;
  out.clear();
  format_product_rows(layout, chunk, out);
  write_all(s.csv, out, s.final_path);
}

void ProductWriter::append_rows(const std::string& rows_path) {
  State& s = *state_;
  if (s.closed) throw InvalidArgument(fmt::format("{}: write after close", s.final_path));
  std::FILE* in = std::fopen(rows_path.c_str(), "rb");
  if (!in) throw IoError(fmt::format("{}: cannot read ({})", rows_path, std::strerror(errno)));
  std::string block(std::size_t{4} << 20, '\0');
  std::size_t got = 0;
  while ((got = std::fread(block.data(), 1, block.size(), in)) > 0) {
    if (VSIFWriteL(block.data(), 1, got, s.csv) != got) {
      std::fclose(in);
      throw IoError(fmt::format("{}: write failed (disk full?)", s.final_path));
    }
  }
  const bool failed = std::ferror(in) != 0;
  std::fclose(in);
  if (failed) throw IoError(fmt::format("{}: read error", rows_path));
}

void format_product_rows(const ProductLayout& layout, const PointChunk& chunk, std::string& out) {
  const int series_decimals = std::max(layout.series_decimals, 1);
  for (std::size_t p = 0; p < chunk.size(); ++p) {
    out += chunk.pid[p];
    for (std::size_t c = 0; c < layout.scalar_count(); ++c) {
      out += layout.separator;
      const int decimals = layout.scalar_decimals[c] < 0 ? 3 : layout.scalar_decimals[c];
      append_value(out, chunk.scalar(p, static_cast<int>(c)), decimals);
    }
    const float* series = chunk.series_of(p);
    for (std::size_t d = 0; d < layout.date_count(); ++d) {
      out += layout.separator;
      append_value(out, series[d], series_decimals);
    }
    out += '\n';
  }
}

std::vector<std::string> ProductWriter::close() {
  State& s = *state_;
  if (VSIFCloseL(s.csv) != 0) {
    s.csv = nullptr;
    throw IoError(fmt::format("{}: cannot finish writing ({})", s.final_path, io::last_gdal_error()));
  }
  s.csv = nullptr;
  const std::string xml_target =
      s.zip ? "/vsizip/" + s.staged->temp_path() + "/" + s.entry_stem + ".xml" : s.staged_xml->temp_path();
  VSILFILE* xml = VSIFOpenL(xml_target.c_str(), "wb");
  if (!xml)
    throw IoError(fmt::format("{}: cannot write the XML metadata ({})", s.final_path, io::last_gdal_error()));
  const bool ok = VSIFWriteL(s.xml_text.data(), 1, s.xml_text.size(), xml) == s.xml_text.size();
  if (VSIFCloseL(xml) != 0 || !ok)
    throw IoError(fmt::format("{}: cannot write the XML metadata", s.final_path));
  std::vector<std::string> outputs;
  s.staged->commit();
  outputs.push_back(s.final_path);
  if (!s.zip) {
    s.staged_xml->commit();
    outputs.push_back(s.staged_xml->final_path());
  }
  s.closed = true;
  return outputs;
}

}  // namespace deforma::egms
