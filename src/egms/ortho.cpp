#include "deforma/egms/ortho.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <filesystem>
#include <map>
#include <numbers>
#include <optional>

#include <fmt/format.h>
#include <ogr_spatialref.h>
#include <tbb/parallel_for.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/egms/pid.hpp"
#include "deforma/egms/quicklook.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/staged_file.hpp"
#include "egms/stream.hpp"

namespace deforma::egms {
namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Per-date normal equations of one cell: sums over the points of both geometries.
struct DateSums {
  double aa = 0, ab = 0, bb = 0;  // Σ le², Σ le·lu, Σ lu²
  double ad = 0, bd = 0;          // Σ le·d, Σ lu·d
  std::uint32_t count[2] = {0, 0};
};

struct Cell {
  std::vector<DateSums> dates;
  std::uint32_t points[2] = {0, 0};
  double aa = 0, ab = 0, bb = 0, av = 0, bv = 0, vv = 0, var_sum = 0;  // velocity least squares
};

struct CellResult {
  std::int64_t column = 0, row = 0;
  std::vector<float> up, east;
  double std_up = kNaN, std_east = kNaN;
  PointModel model_up, model_east;
  std::uint32_t points[2] = {0, 0};
};

// The viewing geometry of a product from its first points: mean heading (track_angle, degrees) and
// mean los_east; each nullopt when its column is absent or empty.
struct Geometry {
  std::optional<double> heading_deg, los_east;
};

Geometry sample_geometry(ProductReader& reader) {
  const int track = reader.layout().find(column::kTrackAngle);
  const int le = reader.layout().find(column::kLosEast);
  PointChunk chunk;
  reader.read(chunk, 2000);
  reader.rewind();
  double c = 0, s = 0, sum_le = 0;
  std::int64_t headings = 0, los = 0;
  for (std::size_t p = 0; p < chunk.size(); ++p) {
    const double h = track >= 0 ? chunk.scalar(p, track) * std::numbers::pi / 180.0 : kNaN;
    if (!std::isnan(h)) {
      c += std::cos(h);
      s += std::sin(h);
      ++headings;
    }
    if (le >= 0 && !std::isnan(chunk.scalar(p, le))) {
      sum_le += chunk.scalar(p, le);
      ++los;
    }
  }
  Geometry g;
  if (headings > 0 && (c != 0 || s != 0)) g.heading_deg = std::atan2(s, c) * 180.0 / std::numbers::pi;
  if (los > 0) g.los_east = sum_le / static_cast<double>(los);
  return g;
}

// Ortho solves two unknowns from two viewing geometries: the same geometry twice (the same file, the
// same track, or two headings within 90 degrees) leaves the system near-singular and the result
// meaningless (thousands of mm/yr), so it is refused before any work.
void refuse_same_geometry(ProductReader (&readers)[2], const std::string (&names)[2]) {
  std::error_code ec;
  if (std::filesystem::equivalent(names[0], names[1], ec)) {
    throw InvalidArgument(fmt::format("products: {} is given twice; expected an ascending and a descending "
                                      "product",
                                      names[0]));
  }
  const auto& m0 = readers[0].metadata();
  const auto& m1 = readers[1].metadata();
  if (m0.track >= 0 && m0.track == m1.track) {
    throw InvalidArgument(fmt::format("products: {} and {} are both from track {} (the same viewing geometry); "
                                      "expected an ascending and a descending product",
                                      names[0], names[1], m0.track));
  }
  const Geometry g0 = sample_geometry(readers[0]), g1 = sample_geometry(readers[1]);
  if (g0.heading_deg && g1.heading_deg) {
    const double difference = std::abs(std::remainder(*g0.heading_deg - *g1.heading_deg, 360.0));
    if (difference < 90.0) {
      throw InvalidArgument(fmt::format(
          "products: {} (heading {:.1f} degrees) and {} (heading {:.1f} degrees) have the same viewing "
          "geometry; expected an ascending and a descending product",
          names[0], *g0.heading_deg, names[1], *g1.heading_deg));
    }
  } else if (g0.los_east && g1.los_east && (*g0.los_east < 0) == (*g1.los_east < 0)) {
    throw InvalidArgument(fmt::format(
        "products: {} (mean los_east {:.3f}) and {} (mean los_east {:.3f}) look the same way, the same "
        "viewing geometry; expected an ascending and a descending product",
        names[0], *g0.los_east, names[1], *g1.los_east));
  }
}

// The prefix names files (PREFIX_U.tif...): checked before any work so that a typo costs nothing.
void check_output_prefix(const std::string& prefix) {
  const auto example = "e.g. out/ustica writes out/ustica_U.tif, out/ustica_E.tif, out/ustica_U.csv...";
  if (prefix.empty()) throw InvalidArgument(fmt::format("output: an output prefix is required ({})", example));
  std::error_code ec;
  if (prefix.back() == '/' || std::filesystem::is_directory(prefix, ec)) {
    throw InvalidArgument(
        fmt::format("output: '{}' is a folder; the prefix begins the file names ({})", prefix, example));
  }
  const std::filesystem::path path(prefix);
  const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : ".";
  if (!std::filesystem::is_directory(folder, ec)) {
    throw InvalidArgument(fmt::format("output: '{}': folder {} does not exist ({})", prefix, folder.string(), example));
  }
  for (const char* suffix : {"_U.tif", "_E.tif", "_U.csv", "_E.csv"}) io::check_writable_parent(prefix + suffix);
}

std::string range_or_none(float lo, float hi, double sum, std::int64_t count) {
  if (count == 0) return "no value";
  return fmt::format("{:.2f} .. {:.2f} mm/yr (mean {:.2f})", lo, hi, sum / static_cast<double>(count));
}

}  // namespace

void OrthoOptions::validate() const {
  if (!(cell_size_m > 0)) throw InvalidArgument(fmt::format("cell-size-m = {}: expected > 0", cell_size_m));
  if (grid_step_days < 1)
    throw InvalidArgument(fmt::format("grid-step-days = {}: expected >= 1", grid_step_days));
  if (max_gap_days < 0) throw InvalidArgument(fmt::format("max-gap-days = {}: expected >= 0", max_gap_days));
  if (min_observations < 2) {
    throw InvalidArgument(
        fmt::format("min-observations = {}: expected >= 2 (two unknowns per date)", min_observations));
  }
}

std::vector<float> resample_series(const std::vector<int>& days, const float* values,
                                   const std::vector<int>& grid_days, int max_gap_days) {
  std::vector<float> out(grid_days.size(), kNaNf);
  // Valid samples only: a missing acquisition widens the gap around it.
  std::vector<std::size_t> valid;
  for (std::size_t i = 0; i < days.size(); ++i) {
    if (!std::isnan(values[i])) valid.push_back(i);
  }
  std::size_t j = 0;
  for (std::size_t g = 0; g < grid_days.size(); ++g) {
    const int day = grid_days[g];
    while (j + 1 < valid.size() && days[valid[j + 1]] <= day) ++j;
    if (valid.empty() || days[valid[j]] > day) continue;
    const std::size_t i0 = valid[j];
    if (days[i0] == day) {
      out[g] = values[i0];
      continue;
    }
    if (j + 1 >= valid.size()) continue;
    const std::size_t i1 = valid[j + 1];
    if (days[i1] - days[i0] > max_gap_days) continue;
    const double w = static_cast<double>(day - days[i0]) / static_cast<double>(days[i1] - days[i0]);
    out[g] = static_cast<float>((1.0 - w) * values[i0] + w * values[i1]);
  }
  return out;
}

std::vector<int> common_grid_days(const std::vector<int>& a, const std::vector<int>& b,
                                  const OrthoOptions& o) {
  std::vector<int> grid;
  if (a.empty() || b.empty()) return grid;
  const int first = std::max(a.front(), b.front());
  const int last = std::min(a.back(), b.back());
  if (first > last) return grid;
  const auto step = o.grid_step_days;
  // First grid date on or after `first`.
  const int offset = ((first - o.grid_origin_day) % step + step) % step;
  for (int day = offset == 0 ? first : first + (step - offset); day <= last; day += step) grid.push_back(day);
  return grid;
}

Summary run_ortho(const std::string& ascending, const std::string& descending,
                  const std::string& output_prefix, const OrthoOptions& ortho, const StreamOptions& options,
                  const RunContext& context, const io::Provenance& provenance) {
  const auto start = std::chrono::steady_clock::now();
  ortho.validate();
  options.validate();
  check_output_prefix(output_prefix);
  ProductReader readers[2] = {ProductReader::open(ascending), ProductReader::open(descending)};
  const std::string names[2] = {ascending, descending};
  refuse_same_geometry(readers, names);
  for (auto& r : readers) {
    r.layout().require(column::kEasting, "the Ortho level");
    r.layout().require(column::kNorthing, "the Ortho level");
    r.layout().require(column::kLosEast, "the Ortho level");
    r.layout().require(column::kLosUp, "the Ortho level");
  }
  const std::vector<int> grid = common_grid_days(readers[0].layout().dates, readers[1].layout().dates, ortho);
  if (grid.empty()) {
    throw InvalidArgument(fmt::format(
        "no common dates between {} ({} .. {}) and {} ({} .. {}) on the {}-day grid", ascending,
        format_yyyymmdd(readers[0].layout().dates.front()), format_yyyymmdd(readers[0].layout().dates.back()),
        descending, format_yyyymmdd(readers[1].layout().dates.front()),
        format_yyyymmdd(readers[1].layout().dates.back()), ortho.grid_step_days));
  }
  std::optional<GnssModel> north_model;
  if (!ortho.gnss_north_path.empty()) north_model = GnssModel::read(ortho.gnss_north_path);
  const auto north_velocity = [&](double e, double n) {
    if (!north_model) return 0.0;
    double ve, vn, vu;
    if (north_model->kind == GnssKind::kGrid && north_model->interpolate(e, n, ve, vn, vu)) return vn;
    // Stations (or outside the grid): inverse-squared-distance mean of every site.
    double sw = 0, s = 0;
    for (const auto& site : north_model->sites) {
      const double d2 = std::max(
          1.0, (site.easting_m - e) * (site.easting_m - e) + (site.northing_m - n) * (site.northing_m - n));
      sw += 1.0 / d2;
      s += site.north / d2;
    }
    return sw > 0 ? s / sw : 0.0;
  };
  const double days_per_year = options.model.days_per_year;

  Progress& progress = progress_or_null(context.progress);
  std::map<std::pair<std::int64_t, std::int64_t>, Cell> cells;  // (row, column) -> sums
  std::int64_t points_read[2] = {0, 0}, points_skipped[2] = {0, 0};
  std::int64_t wrong_geometry = 0;
  for (int g = 0; g < 2; ++g) {
    ProductReader& reader = readers[g];
    const auto& layout = reader.layout();
    const int e = layout.find(column::kEasting), n = layout.find(column::kNorthing);
    const int le = layout.find(column::kLosEast), ln = layout.find(column::kLosNorth),
              lu = layout.find(column::kLosUp);
    const int v = layout.find(column::kMeanVelocity), vs = layout.find(column::kMeanVelocityStd);
    progress.start(fmt::format("binning {}", g == 0 ? "ascending" : "descending"),
                   std::max<std::uint64_t>(reader.total_bytes(), 1));
    PointChunk chunk;
    std::uint64_t reported = 0;
    std::vector<std::vector<float>> resampled;
    const std::size_t chunk_points = detail::chunk_points_for(options, layout, context);
    while (reader.read(chunk, chunk_points)) {
      detail::check_cancelled(progress);
      resampled.assign(chunk.size(), {});
      tbb::parallel_for(std::size_t{0}, chunk.size(), [&](std::size_t p) {
        resampled[p] = resample_series(layout.dates, chunk.series_of(p), grid, ortho.max_gap_days);
      });
      for (std::size_t p = 0; p < chunk.size(); ++p) {
        ++points_read[g];
        const double pe = chunk.scalar(p, e), pn = chunk.scalar(p, n);
        const double a = chunk.scalar(p, le), b = chunk.scalar(p, lu);
        if (std::isnan(pe) || std::isnan(pn) || std::isnan(a) || std::isnan(b)) {
          ++points_skipped[g];
          continue;
        }
        // Ascending passes look east (los_east < 0 towards the satellite), descending west.
        if ((g == 0) != (a < 0)) ++wrong_geometry;
        const auto key = std::make_pair(static_cast<std::int64_t>(std::floor(pn / ortho.cell_size_m)),
                                        static_cast<std::int64_t>(std::floor(pe / ortho.cell_size_m)));
        Cell& cell = cells[key];
        if (cell.dates.empty()) cell.dates.resize(grid.size());
        ++cell.points[g];
        std::vector<float>& d = resampled[p];
        const float zero = d[0];
        const double vn_los = ln >= 0 && north_model ? north_velocity(pe, pn) * chunk.scalar(p, ln) : 0.0;
        for (std::size_t k = 0; k < grid.size(); ++k) {
          if (std::isnan(d[k]) || std::isnan(zero)) continue;
          const double t = (grid[k] - grid[0]) / days_per_year;
          const double value = (d[k] - zero) - vn_los * t;
          DateSums& s = cell.dates[k];
          s.aa += a * a;
          s.ab += a * b;
          s.bb += b * b;
          s.ad += a * value;
          s.bd += b * value;
          ++s.count[g];
        }
        if (v >= 0 && !std::isnan(chunk.scalar(p, v))) {
          const double pv = chunk.scalar(p, v) - vn_los;
          cell.aa += a * a;
          cell.ab += a * b;
          cell.bb += b * b;
          cell.av += a * pv;
          cell.bv += b * pv;
          cell.vv += pv * pv;
          const double sd = vs >= 0 ? chunk.scalar(p, vs) : kNaN;
          cell.var_sum += std::isnan(sd) ? 0.0 : sd * sd;
        }
      }
      const std::uint64_t now = reader.bytes_read();
      if (now > reported) progress.advance(now - reported);
      reported = now;
    }
    progress.finish();
  }

  // Solve every cell.
  const TimeSeriesModel grid_model(grid, options.model);
  std::vector<CellResult> results;
  std::int64_t cells_single_geometry = 0, cells_too_few = 0;
  for (const auto& [key, cell] : cells) {
    if (cell.points[0] == 0 || cell.points[1] == 0) {
      ++cells_single_geometry;
      continue;
    }
    CellResult r;
    r.row = key.first;
    r.column = key.second;
    r.points[0] = cell.points[0];
    r.points[1] = cell.points[1];
    r.up.assign(grid.size(), kNaNf);
    r.east.assign(grid.size(), kNaNf);
    int solved = 0;
    for (std::size_t k = 0; k < grid.size(); ++k) {
      const DateSums& s = cell.dates[k];
      if (s.count[0] == 0 || s.count[1] == 0 ||
          static_cast<int>(s.count[0] + s.count[1]) < ortho.min_observations) {
        continue;
      }
      const double det = s.aa * s.bb - s.ab * s.ab;
      if (!(std::abs(det) > 1e-9 * std::max(1.0, s.aa * s.bb))) continue;
      r.east[k] = static_cast<float>((s.bb * s.ad - s.ab * s.bd) / det);
      r.up[k] = static_cast<float>((s.aa * s.bd - s.ab * s.ad) / det);
      ++solved;
    }
    if (solved == 0) {
      ++cells_too_few;
      continue;
    }
    r.model_up = grid_model.fit_one(r.up.data());
    r.model_east = grid_model.fit_one(r.east.data());
    const double n_points = static_cast<double>(cell.points[0] + cell.points[1]);
    const double det = cell.aa * cell.bb - cell.ab * cell.ab;
    if (det > 1e-12) {
      const double ve = (cell.bb * cell.av - cell.ab * cell.bv) / det;
      const double vu = (cell.aa * cell.bv - cell.ab * cell.av) / det;
      // RSS = Σv² - 2x·Aᵀv + xᵀAᵀAx with x the solution: Σv² - x·Aᵀv.
      const double rss = std::max(0.0, cell.vv - (ve * cell.av + vu * cell.bv));
      double sigma2 = cell.var_sum / n_points;
      if (n_points > 2) sigma2 = std::max(sigma2, rss / (n_points - 2));
      r.std_east = std::sqrt(sigma2 * cell.bb / det);
      r.std_up = std::sqrt(sigma2 * cell.aa / det);
    }
    results.push_back(std::move(r));
  }
  if (results.empty()) {
    throw NumericalError(
        fmt::format("{} and {}: no {} m cell holds points of both geometries with {} values on a common date",
                    ascending, descending, ortho.cell_size_m, ortho.min_observations));
  }

  // Outputs.
  io::Provenance prov = provenance;
  prov.inputs = {ascending, descending};
  if (!ortho.gnss_north_path.empty()) prov.inputs.push_back(ortho.gnss_north_path);
  std::int64_t min_col = results.front().column, max_col = min_col, min_row = results.front().row,
               max_row = min_row;
  for (const auto& r : results) {
    min_col = std::min(min_col, r.column);
    max_col = std::max(max_col, r.column);
    min_row = std::min(min_row, r.row);
    max_row = std::max(max_row, r.row);
  }
  const int width = static_cast<int>(max_col - min_col + 1), height = static_cast<int>(max_row - min_row + 1);
  GridF up(width, height, -9999.0f), east(width, height, -9999.0f);
  double sum_up = 0, sum_east = 0;
  std::int64_t valid_up = 0, valid_east = 0;
  float min_up = INFINITY, max_up = -INFINITY, min_east = INFINITY, max_east = -INFINITY;
  for (const auto& r : results) {
    const int x = static_cast<int>(r.column - min_col), y = static_cast<int>(max_row - r.row);
    if (!std::isnan(r.model_up.mean_velocity)) {
      up(x, y) = static_cast<float>(r.model_up.mean_velocity);
      sum_up += r.model_up.mean_velocity;
      ++valid_up;
      min_up = std::min(min_up, up(x, y));
      max_up = std::max(max_up, up(x, y));
    }
    if (!std::isnan(r.model_east.mean_velocity)) {
      east(x, y) = static_cast<float>(r.model_east.mean_velocity);
      sum_east += r.model_east.mean_velocity;
      ++valid_east;
      min_east = std::min(min_east, east(x, y));
      max_east = std::max(max_east, east(x, y));
    }
  }
  if (valid_up == 0 && valid_east == 0) {
    throw NumericalError(fmt::format("{} and {}: no cell has a fitted velocity (too few solvable dates per "
                                     "cell; lower --min-dates or --min-observations)",
                                     ascending, descending));
  }
  io::GeoTransform gt;
  gt.c = {static_cast<double>(min_col) * ortho.cell_size_m,
          ortho.cell_size_m,
          0.0,
          static_cast<double>(max_row + 1) * ortho.cell_size_m,
          0.0,
          -ortho.cell_size_m};
  OGRSpatialReference laea;
  laea.importFromEPSG(3035);
  char* wkt_raw = nullptr;
  laea.exportToWkt(&wkt_raw);
  const std::string wkt = wkt_raw;
  CPLFree(wkt_raw);
  Summary summary;
  summary.operation = "egms ortho";
  const std::string up_tif = output_prefix + "_U.tif", east_tif = output_prefix + "_E.tif";
  io::write_cog(up_tif, {&up}, {io::OutputBand{"vertical_mean_velocity_mm_per_yr", "mm/yr", -9999.0}}, gt,
                wkt, prov);
  io::write_cog(east_tif, {&east}, {io::OutputBand{"east_west_mean_velocity_mm_per_yr", "mm/yr", -9999.0}},
                gt, wkt, prov);
  summary.outputs = {up_tif, east_tif};
  if (ortho.quicklook) {
    for (auto& png : write_ortho_quicklooks(output_prefix, up, east, ortho.cell_size_m, grid))
      summary.outputs.push_back(png);
  }

  ProductLayout l3;
  l3.source = output_prefix;
  const std::pair<const char*, int> columns[] = {
      {column::kEasting, 0},         {column::kNorthing, 0},       {column::kMeanVelocity, 2},
      {column::kMeanVelocityStd, 2}, {column::kAcceleration, 2},   {column::kAccelerationStd, 2},
      {column::kSeasonality, 2},     {column::kSeasonalityStd, 2}, {column::kRmse, 2}};
  for (const auto& [name, decimals] : columns) l3.add_column(name, decimals);
  l3.dates = grid;
  l3.series_decimals = 2;
  ProductMetadata meta;
  meta.level = "L3";
  meta.gnss_version = readers[0].metadata().gnss_version;
  meta.dem_version = readers[0].metadata().dem_version;
  const nlohmann::json extra = {
      {"operation", "egms ortho"},
      {"ascending", readers[0].metadata().to_json()},
      {"descending", readers[1].metadata().to_json()},
      {"cell_size_m", ortho.cell_size_m},
      {"grid_origin", format_yyyymmdd(ortho.grid_origin_day)},
      {"grid_step_days", ortho.grid_step_days},
      {"max_gap_days", ortho.max_gap_days},
      {"min_observations", ortho.min_observations},
      {"north", ortho.gnss_north_path.empty() ? "neglected" : ortho.gnss_north_path}};
  for (int component = 0; component < 2; ++component) {
    const bool vertical = component == 0;
    ProductWriter writer(output_prefix + (vertical ? "_U.csv" : "_E.csv"), l3, meta, prov, extra);
    PointChunk chunk;
    chunk.reset(l3.scalar_count(), grid.size());
    for (const auto& r : results) {
      const double ce = (static_cast<double>(r.column) + 0.5) * ortho.cell_size_m;
      const double cn = (static_cast<double>(r.row) + 0.5) * ortho.cell_size_m;
      const std::size_t p = chunk.add_point(l3_pid_at(ce, cn));
      const PointModel& m = vertical ? r.model_up : r.model_east;
      const double values[] = {ce,
                               cn,
                               m.mean_velocity,
                               vertical ? r.std_up : r.std_east,
                               m.acceleration,
                               m.acceleration_std,
                               m.seasonality,
                               m.seasonality_std,
                               m.rmse};
      for (std::size_t c = 0; c < std::size(values); ++c) chunk.scalar(p, static_cast<int>(c)) = values[c];
      const auto& series = vertical ? r.up : r.east;
      std::copy(series.begin(), series.end(), chunk.series_of(p));
      if (chunk.size() >= options.chunk_points) {
        writer.write(chunk);
        chunk.reset(l3.scalar_count(), grid.size());
      }
    }
    writer.write(chunk);
    for (auto& path : writer.close()) summary.outputs.push_back(path);
  }

  summary.counts["cells"] = static_cast<std::int64_t>(results.size());
  summary.counts["cells_single_geometry"] = cells_single_geometry;
  summary.counts["cells_without_common_date"] = cells_too_few;
  summary.counts["points_ascending"] = points_read[0];
  summary.counts["points_descending"] = points_read[1];
  summary.counts["points_skipped"] = points_skipped[0] + points_skipped[1];
  summary.counts["grid_dates"] = static_cast<std::int64_t>(grid.size());
  auto& d = summary.details;
  d["first_date"] = format_yyyymmdd(grid.front());
  d["last_date"] = format_yyyymmdd(grid.back());
  d["grid_size"] = {width, height};
  d["origin_epsg3035"] = {gt.c[0], gt.c[3]};
  d["vertical_mm_per_yr"] = {{"min", min_up}, {"max", max_up}, {"mean", valid_up ? sum_up / valid_up : kNaN}};
  d["east_mm_per_yr"] = {
      {"min", min_east}, {"max", max_east}, {"mean", valid_east ? sum_east / valid_east : kNaN}};
  if (wrong_geometry > 0) {
    summary.warnings.push_back(fmt::format(
        "{} points have a los_east sign unexpected for their geometry: is the first input really ascending?",
        wrong_geometry));
  }
  summary.report = fmt::format(
      "Ortho: {} cells of {} m ({} x {}), {} grid dates {} .. {}\n  vertical: {}\n  east-west: {}\n"
      "  {} cells with one geometry only, {} without a solvable date\n",
      results.size(), ortho.cell_size_m, width, height, grid.size(), format_yyyymmdd(grid.front()),
      format_yyyymmdd(grid.back()), range_or_none(min_up, max_up, sum_up, valid_up),
      range_or_none(min_east, max_east, sum_east, valid_east), cells_single_geometry, cells_too_few);
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace deforma::egms
