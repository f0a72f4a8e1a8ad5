#pragma once
// Helpers of the egms tests: the real Ustica products, reading a whole (small) product into memory, and
// writing synthetic products as CSV text.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "deforma/egms/product.hpp"
#include "test_support.hpp"

namespace deforma::egms::test {

inline const char* kDescending = "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip";
inline const char* kAscending = "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip";

/// A whole product in memory (the test files are small).
struct Loaded {
  ProductLayout layout;
  ProductMetadata metadata;
  PointChunk points;
};

inline Loaded load(const std::string& path) {
  auto reader = ProductReader::open(path);
  Loaded out;
  reader.read(out.points, 100000000);
  out.layout = reader.layout();
  out.metadata = reader.metadata();
  return out;
}

/// Writes `points` with `layout` as a plain CSV (no XML), `decimals` for every value.
inline void write_csv(const std::string& path, const ProductLayout& layout, const PointChunk& points,
                      char separator = ',', int decimals = 4) {
  std::ofstream out(path);
  out << "pid";
  for (const auto& name : layout.scalar_names) out << separator << name;
  for (const int day : layout.dates) out << separator << format_yyyymmdd(day);
  out << '\n';
  for (std::size_t p = 0; p < points.size(); ++p) {
    out << points.pid[p];
    for (std::size_t c = 0; c < layout.scalar_count(); ++c) {
      const double v = points.scalar(p, static_cast<int>(c));
      out << separator;
      if (!std::isnan(v)) out << fmt::format("{:.{}f}", v, decimals);
    }
    const float* s = points.series_of(p);
    for (std::size_t d = 0; d < layout.date_count(); ++d) {
      out << separator;
      if (!std::isnan(s[d])) out << fmt::format("{:.{}f}", s[d], decimals);
    }
    out << '\n';
  }
}

}  // namespace deforma::egms::test
