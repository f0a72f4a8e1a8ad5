#include "deforma/egms/gridded_series.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <ogr_spatialref.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/product.hpp"

namespace deforma::egms {

namespace {

constexpr std::size_t kChunkPoints = 16384;

// An Ortho product's component from its file name: a field `U` or `E` between underscores
// (EGMS_L3_E32N17_100km_U_2018_2022_1.csv, ustica_E.csv); nullopt when none or both.
std::optional<std::array<double, 3>> ortho_component(const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  stem = stem.substr(0, stem.find('.'));
  bool up = false, east = false;
  std::size_t start = 0;
  while (start <= stem.size()) {
    const auto end = std::min(stem.find('_', start), stem.size());
    const std::string field = stem.substr(start, end - start);
    up = up || field == "U";
    east = east || field == "E";
    start = end + 1;
  }
  if (up == east) return std::nullopt;
  return up ? std::array<double, 3>{0, 0, 1} : std::array<double, 3>{1, 0, 0};
}

}  // namespace

struct PointSeriesSource::State {
  std::string path;
  ProductReader reader;
  std::vector<io::Date> dates;
  PointExtent extent;
  int easting = -1, northing = -1, los_east = -1, los_north = -1, los_up = -1, sigma = -1;
  std::array<double, 3> constant_direction{};  // L3: the component's axis
  double constant_sigma_mm = 0;                // > 0: instead of a column
};

PointSeriesSource::PointSeriesSource(const std::string& path, const std::string& sigma)
    : state_(std::make_unique<State>(State{path, ProductReader::open(path), {}, {}})) {
  State& s = *state_;
  const ProductLayout& layout = s.reader.layout();
  const std::string purpose = "decompose-series (--egms)";
  if (layout.date_count() < 2) {
    throw FormatError(
        fmt::format("{}: {} date column(s); a series needs at least two", path, layout.date_count()));
  }
  for (const int day : layout.dates) s.dates.push_back(io::Date::from_days_since_epoch(day));
  s.easting = layout.require(column::kEasting, purpose);
  s.northing = layout.require(column::kNorthing, purpose);
  const bool has_los = layout.find(column::kLosEast) >= 0 || layout.find(column::kLosNorth) >= 0 ||
                       layout.find(column::kLosUp) >= 0;
  if (!has_los && s.reader.metadata().level == "L3") {
    const auto axis = ortho_component(path);
    if (!axis) {
      throw FormatError(fmt::format(
          "{}: an Ortho (L3) product without los_* columns whose name does not say whether it holds the "
          "vertical (a field _U_) or the east-west (_E_) component",
          path));
    }
    s.constant_direction = *axis;
  } else {
    s.los_east = layout.require(column::kLosEast, purpose);
    s.los_north = layout.require(column::kLosNorth, purpose);
    s.los_up = layout.require(column::kLosUp, purpose);
  }
  char* end = nullptr;
  const double constant = std::strtod(sigma.c_str(), &end);
  if (!sigma.empty() && end != sigma.c_str() && *end == '\0') {
    if (!(constant > 0) || !std::isfinite(constant)) {
      throw InvalidArgument(
          fmt::format("--egms-sigma {} for {}: expected a positive number (mm) or a column", sigma, path));
    }
    s.constant_sigma_mm = constant;
  } else {
    s.sigma = layout.require(canonical_column_name(sigma), "the series' standard deviation (--egms-sigma)");
  }
  // One pass for the extent (a grid over the points) and so that a malformed line fails before any output.
  PointChunk chunk;
  std::size_t points = 0;
  s.extent = {std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
              std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest()};
  while (s.reader.read(chunk, kChunkPoints)) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      const double x = chunk.scalar(i, s.easting), y = chunk.scalar(i, s.northing);
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      ++points;
      s.extent.min_easting = std::min(s.extent.min_easting, x);
      s.extent.max_easting = std::max(s.extent.max_easting, x);
      s.extent.min_northing = std::min(s.extent.min_northing, y);
      s.extent.max_northing = std::max(s.extent.max_northing, y);
    }
  }
  if (points == 0) throw FormatError(fmt::format("{}: no point with easting and northing", path));
}

PointSeriesSource::~PointSeriesSource() = default;

std::string PointSeriesSource::path() const {
  return state_->path;
}
const std::vector<io::Date>& PointSeriesSource::dates() const {
  return state_->dates;
}
const PointExtent& PointSeriesSource::extent() const {
  return state_->extent;
}

timeseries::GriddedSeries PointSeriesSource::read_strip(const io::RasterInfo& grid, int row, int height) {
  State& s = *state_;
  if (grid.crs_wkt.empty()) {
    throw InvalidArgument(fmt::format(
        "--egms {}: the common grid ({}) has no CRS to place EPSG:3035 points on", s.path, grid.path));
  }
  OGRSpatialReference from, to;
  from.importFromEPSG(3035);
  from.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  to.importFromWkt(grid.crs_wkt.c_str());
  to.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> transform;
  if (!from.IsSame(&to)) {
    transform.reset(OGRCreateCoordinateTransformation(&from, &to));
    if (!transform) {
      throw InvalidArgument(
          fmt::format("--egms {}: cannot transform EPSG:3035 positions to the CRS of {}", s.path, grid.path));
    }
  }
  const int width = grid.width;
  const std::size_t dates = s.dates.size();
  const std::size_t cells = static_cast<std::size_t>(width) * height;
  // Sums per cell: unit vector, squared sigma, point count; per date and cell: displacement and count.
  std::vector<double> east(cells, 0.0), north(cells, 0.0), up(cells, 0.0), variance(cells, 0.0);
  std::vector<int> points(cells, 0);
  std::vector<float> sum((dates - 1) * cells, 0.f);
  std::vector<std::uint32_t> count((dates - 1) * cells, 0);
  PointChunk chunk;
  std::vector<double> x, y;
  s.reader.rewind();
  while (s.reader.read(chunk, kChunkPoints)) {
    x.resize(chunk.size());
    y.resize(chunk.size());
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      x[i] = chunk.scalar(i, s.easting);
      y[i] = chunk.scalar(i, s.northing);
    }
    if (transform && !transform->Transform(x.size(), x.data(), y.data())) {
      throw InvalidArgument(fmt::format(
          "--egms {}: cannot transform its EPSG:3035 positions to the CRS of {}", s.path, grid.path));
    }
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
      double col_f = 0, row_f = 0;
      grid.geotransform.map_to_pixel(x[i], y[i], col_f, row_f);
      const double c = std::floor(col_f), r = std::floor(row_f) - row;
      if (!(c >= 0 && c < width && r >= 0 && r < height)) continue;
      const double sigma_mm = s.sigma >= 0 ? chunk.scalar(i, s.sigma) : s.constant_sigma_mm;
      std::array<double, 3> d = s.constant_direction;
      if (s.los_east >= 0)
        d = {chunk.scalar(i, s.los_east), chunk.scalar(i, s.los_north), chunk.scalar(i, s.los_up)};
      if (!(sigma_mm > 0) || !std::isfinite(d[0] + d[1] + d[2])) continue;
      const std::size_t cell = static_cast<std::size_t>(r) * width + static_cast<std::size_t>(c);
      ++points[cell];
      east[cell] += d[0];
      north[cell] += d[1];
      up[cell] += d[2];
      variance[cell] += sigma_mm * sigma_mm;
      // Displacements since the first date: EGMS series are 0 there; where a point has a value at the first
      // date it is taken off, where it has none its values are taken as given (relative to that date).
      const float* series = chunk.series_of(i);
      const float origin = std::isfinite(series[0]) ? series[0] : 0.f;
      for (std::size_t k = 1; k < dates; ++k) {
        if (!std::isfinite(series[k])) continue;
        sum[(k - 1) * cells + cell] += series[k] - origin;
        ++count[(k - 1) * cells + cell];
      }
    }
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  timeseries::GriddedSeries out{GridF(width, height, nan),
                                GridF(width, height, nan),
                                GridF(width, height, nan),
                                GridF(width, height, nan),
                                {}};
  out.values.assign(dates - 1, GridF(width, height, nan));
  for (std::size_t cell = 0; cell < cells; ++cell) {
    const int n = points[cell];
    const double norm = std::hypot(east[cell], north[cell], up[cell]);
    if (n == 0 || !(norm > 0)) continue;
    const int c = static_cast<int>(cell % width), r = static_cast<int>(cell / width);
    out.east(c, r) = static_cast<float>(east[cell] / norm);
    out.north(c, r) = static_cast<float>(north[cell] / norm);
    out.up(c, r) = static_cast<float>(up[cell] / norm);
    out.sigma(c, r) = static_cast<float>(std::sqrt(variance[cell] / n) * 1e-3);
    for (std::size_t k = 0; k + 1 < dates; ++k) {
      const std::uint32_t m = count[k * cells + cell];
      if (m > 0) out.values[k](c, r) = static_cast<float>(sum[k * cells + cell] / m * 1e-3);
    }
  }
  return out;
}

io::RasterInfo grid_over_extent(const std::vector<PointExtent>& extents, double resolution) {
  if (extents.empty() || !(resolution > 0) || !std::isfinite(resolution)) {
    throw InvalidArgument(
        fmt::format("--resolution {}: expected a positive cell size in metres", resolution));
  }
  double x0 = extents.front().min_easting, x1 = extents.front().max_easting;
  double y0 = extents.front().min_northing, y1 = extents.front().max_northing;
  for (const auto& e : extents) {
    x0 = std::min(x0, e.min_easting), x1 = std::max(x1, e.max_easting);
    y0 = std::min(y0, e.min_northing), y1 = std::max(y1, e.max_northing);
  }
  io::RasterInfo grid;
  grid.path = "the EGMS points' extent";
  x0 = std::floor(x0 / resolution) * resolution;
  y1 = std::ceil(y1 / resolution) * resolution;
  if (y1 == y0) y1 += resolution;
  const double columns = std::floor((x1 - x0) / resolution) + 1,
               rows = std::floor((y1 - y0) / resolution) + 1;
  if (columns * rows > 4e8) {
    throw InvalidArgument(fmt::format("--resolution {} m: a {} x {} grid over the points is too large",
                                      resolution, columns, rows));
  }
  grid.width = std::max(1, static_cast<int>(columns));
  grid.height = std::max(1, static_cast<int>(rows));
  grid.georeferenced = true;
  grid.geotransform.c = {x0, resolution, 0.0, y1, 0.0, -resolution};
  OGRSpatialReference srs;
  srs.importFromEPSG(3035);
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  grid.crs_wkt = wkt ? wkt : "";
  CPLFree(wkt);
  grid.epsg = 3035;
  grid.pixel_size_x_m = grid.pixel_size_y_m = resolution;
  return grid;
}

}  // namespace deforma::egms
