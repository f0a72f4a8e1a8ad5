#include "timeseries/csv.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/core/text.hpp"

namespace deforma::timeseries::detail {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Fields and lines lose their spaces, tabs and a line's trailing carriage return.
std::string trim(const std::string& s) {
  return std::string(deforma::trim(s, " \t\r"));
}

std::vector<std::string> split_line(const std::string& line, const std::string& path, int line_number) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      fields.push_back(was_quoted ? field : trim(field));
      field.clear();
      was_quoted = false;
    } else {
      field += c;
    }
  }
  if (quoted) throw FormatError(fmt::format("{} line {}: unterminated quoted field", path, line_number));
  fields.push_back(was_quoted ? field : trim(field));
  return fields;
}

}  // namespace

int CsvTable::column(const std::string& name) const {
  const std::string wanted = lower(name);
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (lower(header[i]) == wanted) return static_cast<int>(i);
  }
  return -1;
}

int CsvTable::require_column(const std::string& name) const {
  const int c = column(name);
  if (c < 0) {
    std::string list;
    for (const auto& h : header) list += (list.empty() ? "" : ", ") + h;
    throw FormatError(fmt::format("{}: no column '{}' (header: {})", path, name, list));
  }
  return c;
}

CsvTable read_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("cannot read CSV file {}", path));
  CsvTable table;
  table.path = path;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto fields = split_line(line, path, line_number);
    if (table.header.empty()) {
      table.header = std::move(fields);
      continue;
    }
    if (fields.size() != table.header.size()) {
      throw FormatError(fmt::format("{} line {}: {} fields, the header has {}", path, line_number,
                                    fields.size(), table.header.size()));
    }
    table.rows.push_back(std::move(fields));
    table.line_numbers.push_back(line_number);
  }
  if (table.header.empty())
    throw FormatError(fmt::format("{}: empty CSV file (a header row is required)", path));
  return table;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string resolve_relative(const std::string& table_path, const std::string& path) {
  if (path.empty()) return path;
  const std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(table_path).parent_path() / p).lexically_normal().string();
}

}  // namespace deforma::timeseries::detail
