#pragma once
// Minimal CSV reading for the module's tables (manifests, pair tables): a header row, comma separated,
// fields optionally in double quotes (with "" for a quote). Internal header.
#include <map>
#include <string>
#include <vector>

namespace deforma::timeseries::detail {

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int> line_numbers;  ///< source line of each row (1-based)

  /// Column index of `name` (case-insensitive), -1 when absent.
  int column(const std::string& name) const;
  /// Column index of `name`; throws FormatError naming the file and listing the header when absent.
  int require_column(const std::string& name) const;
};

/// Reads a CSV file; blank lines and lines starting with '#' are ignored. Throws IoError/FormatError.
CsvTable read_csv(const std::string& path);

/// Quotes a field when it contains a comma, quote or newline.
std::string csv_field(const std::string& text);

/// `path` as written in a table, resolved against the table's folder when relative.
std::string resolve_relative(const std::string& table_path, const std::string& path);

}  // namespace deforma::timeseries::detail
