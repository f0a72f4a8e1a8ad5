#include "deforma/egms/processing.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <limits>
#include <numbers>
#include <unordered_map>

#include <fmt/format.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/io/vector.hpp"
#include "egms/stream.hpp"

namespace deforma::egms {

namespace detail {

void fit_chunk(const TimeSeriesModel& model, const PointChunk& chunk, std::vector<PointModel>& results) {
  results.resize(chunk.size());
  constexpr std::size_t kBlock = 512;
  const std::size_t blocks = (chunk.size() + kBlock - 1) / kBlock;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, blocks),
                    [&](const tbb::blocked_range<std::size_t>& range) {
                      for (std::size_t b = range.begin(); b != range.end(); ++b) {
                        const std::size_t first = b * kBlock;
                        const std::size_t count = std::min(kBlock, chunk.size() - first);
                        model.fit(chunk.series_of(first), count, results.data() + first);
                      }
                    });
}

void store_model(const ProductLayout& layout, PointChunk& chunk, const std::vector<PointModel>& results) {
  const struct {
    const char* name;
    double PointModel::*field;
  } columns[] = {{column::kMeanVelocity, &PointModel::mean_velocity},
                 {column::kMeanVelocityStd, &PointModel::mean_velocity_std},
                 {column::kAcceleration, &PointModel::acceleration},
                 {column::kAccelerationStd, &PointModel::acceleration_std},
                 {column::kSeasonality, &PointModel::seasonality},
                 {column::kSeasonalityStd, &PointModel::seasonality_std},
                 {column::kRmse, &PointModel::rmse},
                 {column::kTemporalCoherence, &PointModel::temporal_coherence}};
  for (const auto& c : columns) {
    const int index = layout.find(c.name);
    if (index < 0) continue;
    for (std::size_t p = 0; p < chunk.size(); ++p) chunk.scalar(p, index) = results[p].*(c.field);
  }
}

void AbsHistogram::add(double value) {
  if (std::isnan(value)) return;
  value = std::abs(value);
  const auto bin = static_cast<std::size_t>(std::min(value / kBin, static_cast<double>(kBins)));
  ++bins_[bin];
  ++count_;
  max_ = std::max(max_, value);
}

double AbsHistogram::quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  const auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b <= kBins; ++b) {
    seen += bins_[b];
    if (seen >= std::max<std::uint64_t>(target, 1))
      return b == kBins ? max_ : (static_cast<double>(b) + 0.5) * kBin;
  }
  return max_;
}

nlohmann::json AbsHistogram::to_json() const {
  return {{"points", count_},
          {"median_abs_diff", quantile(0.5)},
          {"p95_abs_diff", quantile(0.95)},
          {"max_abs_diff", max_}};
}

nlohmann::json AbsHistogram::to_bins_json() const {
  nlohmann::json bins = nlohmann::json::array();
  for (std::size_t b = 0; b <= kBins; ++b) {
    if (bins_[b] > 0) bins.push_back({b, bins_[b]});
  }
  return {{"count", count_}, {"max", max_}, {"bins", bins}};
}

void AbsHistogram::merge_bins_json(const nlohmann::json& j) {
  try {
    for (const auto& bin : j.at("bins")) {
      const auto b = bin.at(0).get<std::size_t>();
      if (b > kBins) throw FormatError(fmt::format("histogram bin {} is beyond {}", b, kBins));
      bins_[b] += bin.at(1).get<std::uint64_t>();
    }
    count_ += j.at("count").get<std::size_t>();
    max_ = std::max(max_, j.at("max").get<double>());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("not a histogram record: {}", e.what()));
  }
}

namespace {
const char* const kCompared[] = {
    column::kMeanVelocity, column::kMeanVelocityStd, column::kAcceleration, column::kAccelerationStd,
    column::kSeasonality,  column::kSeasonalityStd,  column::kRmse,         column::kTemporalCoherence};
}  // namespace

FitComparison::FitComparison(const ProductLayout& layout) : histograms_(std::size(kCompared)) {
  for (const char* name : kCompared) indices_.push_back(layout.find(name));
}

void FitComparison::add(const PointChunk& chunk, const std::vector<PointModel>& results) {
  for (std::size_t p = 0; p < chunk.size(); ++p) {
    ++points_;
    if (std::isnan(results[p].mean_velocity)) {
      ++failed_;
      continue;
    }
    const double values[] = {results[p].mean_velocity, results[p].mean_velocity_std,
                             results[p].acceleration,  results[p].acceleration_std,
                             results[p].seasonality,   results[p].seasonality_std,
                             results[p].rmse,          results[p].temporal_coherence};
    for (std::size_t c = 0; c < indices_.size(); ++c) {
      if (indices_[c] >= 0) histograms_[c].add(values[c] - chunk.scalar(p, indices_[c]));
    }
  }
}

nlohmann::json FitComparison::to_json() const {
  nlohmann::json histograms = nlohmann::json::object();
  for (std::size_t c = 0; c < indices_.size(); ++c) {
    if (indices_[c] >= 0) histograms[kCompared[c]] = histograms_[c].to_bins_json();
  }
  return {{"points", points_}, {"failed", failed_}, {"histograms", histograms}};
}

void FitComparison::merge_json(const nlohmann::json& j) {
  try {
    points_ += j.at("points").get<std::int64_t>();
    failed_ += j.at("failed").get<std::int64_t>();
    const auto& histograms = j.at("histograms");
    for (std::size_t c = 0; c < indices_.size(); ++c) {
      if (indices_[c] < 0) continue;
      if (!histograms.contains(kCompared[c])) {
        throw FormatError(fmt::format("the histogram of {} is missing", kCompared[c]));
      }
      histograms_[c].merge_bins_json(histograms.at(kCompared[c]));
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("not a fit record: {}", e.what()));
  }
}

void FitComparison::fill(Summary& summary, const std::string& input, const ProductLayout& layout,
                         const StreamOptions& options) const {
  summary.counts["points"] = points_;
  summary.counts["failed"] = failed_;
  summary.counts["dates"] = static_cast<std::int64_t>(layout.date_count());
  summary.report = fmt::format("{}: {} points x {} dates refitted ({} without enough valid dates)\n", input,
                               points_, layout.date_count(), failed_);
  summary.report += fmt::format("  recomputed - file:  {:<20} {:>8} {:>12} {:>12} {:>12}\n", "", "points",
                                "median|d|", "p95|d|", "max|d|");
  for (std::size_t c = 0; c < indices_.size(); ++c) {
    if (indices_[c] < 0) continue;
    const AbsHistogram& h = histograms_[c];
    summary.details["comparison"][kCompared[c]] = h.to_json();
    summary.report += fmt::format("  {:<20} {:>8} {:>12.4f} {:>12.4f} {:>12.4f}\n", kCompared[c], h.count(),
                                  h.quantile(0.5), h.quantile(0.95), h.max());
  }
  summary.details["days_per_year"] = options.model.days_per_year;
  summary.details["wavelength_mm"] = options.model.wavelength_mm;
  if (failed_ > 0)
    summary.warnings.push_back(
        fmt::format("{} points have too few valid dates: model columns left empty", failed_));
}

nlohmann::json fit_record(const StreamOptions& options) {
  return {{"operation", "egms fit"}, {"days_per_year", options.model.days_per_year}};
}

OutputSinks::OutputSinks(const ProductOutputs& outputs, const ProductLayout& layout,
                         const ProductMetadata& metadata, const io::Provenance& provenance,
                         const nlohmann::json& extra) {
  if (!outputs.product.empty()) {
    product_ = std::make_unique<ProductWriter>(outputs.product, layout, metadata, provenance, extra);
  }
  if (!outputs.gpkg.empty()) gpkg_ = std::make_unique<GeoPackageWriter>(outputs.gpkg, layout, provenance);
}

void OutputSinks::write(const PointChunk& chunk) {
  if (product_) product_->write(chunk);
  if (gpkg_) gpkg_->write(chunk);
}

std::vector<std::string> OutputSinks::close() {
  std::vector<std::string> written;
  if (product_) {
    for (auto& p : product_->close()) written.push_back(p);
  }
  if (gpkg_) written.push_back(gpkg_->close());
  return written;
}

std::size_t chunk_points_for(const StreamOptions& options, const ProductLayout& layout,
                             const RunContext& context) {
  const double bytes_per_point = 3.0 * (4.0 * static_cast<double>(layout.date_count()) +
                                        8.0 * static_cast<double>(layout.scalar_count()) + 160.0);
  const double budget = static_cast<double>(context.ram_budget_mb) * 1048576.0;
  const auto fitting = static_cast<std::size_t>(std::max(1.0, budget / bytes_per_point));
  return std::max<std::size_t>(1, std::min(options.chunk_points, fitting));
}

std::int64_t count_los_mismatches(const ProductLayout& layout, const PointChunk& chunk) {
  const int le = layout.find(column::kLosEast), ln = layout.find(column::kLosNorth),
            lu = layout.find(column::kLosUp);
  const int inc = layout.find(column::kIncidenceAngle), trk = layout.find(column::kTrackAngle);
  if (le < 0 || ln < 0 || lu < 0 || inc < 0 || trk < 0) return 0;
  std::int64_t mismatches = 0;
  for (std::size_t p = 0; p < chunk.size(); ++p) {
    double x, y, z;
    los_from_angles(chunk.scalar(p, inc), chunk.scalar(p, trk), x, y, z);
    const double diff = std::max({std::abs(x - chunk.scalar(p, le)), std::abs(y - chunk.scalar(p, ln)),
                                  std::abs(z - chunk.scalar(p, lu))});
    if (diff > 0.01) ++mismatches;
  }
  return mismatches;
}

void check_outputs(const std::string& input, const ProductOutputs& outputs) {
  std::error_code ec;
  for (const std::string* output : {&outputs.product, &outputs.gpkg}) {
    if (output->empty()) continue;
    if (std::filesystem::equivalent(*output, input, ec)) {
      throw InvalidArgument(fmt::format("output: {} is the input; writing it would replace the product being "
                                        "read (choose another name)",
                                        *output));
    }
    io::check_writable_parent(*output);
  }
  if (!outputs.product.empty() && outputs.product == outputs.gpkg) {
    throw InvalidArgument(fmt::format("output, gpkg: both name {}; give two files", outputs.product));
  }
}

io::Provenance with_input(io::Provenance provenance, const std::string& input) {
  provenance.inputs.push_back(input);
  return provenance;
}

void check_cancelled(Progress& progress) {
  if (progress.cancelled()) throw Cancelled("cancelled");
}

}  // namespace detail

using detail::AbsHistogram;

namespace {


// Streams every chunk of a reader through `fn`, with progress in points (estimated from bytes).
template <typename Fn>
void for_each_chunk(ProductReader& reader, const StreamOptions& options, const RunContext& context,
                    const std::string& label, Fn&& fn) {
  Progress& progress = progress_or_null(context.progress);
  const std::size_t chunk_points = detail::chunk_points_for(options, reader.layout(), context);
  progress.start(label, std::max<std::uint64_t>(reader.total_bytes(), 1));
  PointChunk chunk;
  std::uint64_t reported = 0;
  while (reader.read(chunk, chunk_points)) {
    detail::check_cancelled(progress);
    fn(chunk);
    const std::uint64_t now = reader.bytes_read();
    if (now > reported) progress.advance(now - reported);
    reported = now;
  }
  progress.finish();
}


}  // namespace

void StreamOptions::validate() const {
  model.validate();
  if (chunk_points < 1 || chunk_points > 10'000'000) {
    throw InvalidArgument(fmt::format("chunk-points = {}: expected 1..10000000", chunk_points));
  }
}

void los_from_angles(double incidence_deg, double track_deg, double& east, double& north, double& up) {
  const double deg = std::numbers::pi / 180.0;
  const double azimuth = (track_deg - 90.0) * deg;  // towards the satellite, right-looking radar
  east = std::sin(incidence_deg * deg) * std::sin(azimuth);
  north = std::sin(incidence_deg * deg) * std::cos(azimuth);
  up = std::cos(incidence_deg * deg);
}

namespace detail {
std::unique_ptr<OGRCoordinateTransformation> lonlat_to_epsg3035_transform() {
  io::ensure_gdal_initialized();
  OGRSpatialReference wgs84, laea;
  wgs84.importFromEPSG(4326);
  laea.importFromEPSG(3035);
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  laea.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  return std::unique_ptr<OGRCoordinateTransformation>(OGRCreateCoordinateTransformation(&wgs84, &laea));
}
}  // namespace detail

void lonlat_to_epsg3035(double longitude_deg, double latitude_deg, double& easting_m, double& northing_m) {
  const auto transform = detail::lonlat_to_epsg3035_transform();
  double x = longitude_deg, y = latitude_deg;
  if (!transform || !transform->Transform(1, &x, &y) || !std::isfinite(x) || !std::isfinite(y)) {
    throw InvalidArgument(fmt::format("lon {} lat {}: cannot be projected to EPSG:3035", longitude_deg,
                                      latitude_deg));
  }
  easting_m = x;
  northing_m = y;
}

// ---------------------------------------------------------------------------------------------------

Summary describe_product(const std::string& path, const RunContext& context, const StreamOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  auto reader = ProductReader::open(path);
  const auto& layout = reader.layout();
  const int e = layout.find(column::kEasting), n = layout.find(column::kNorthing);
  const int v = layout.find(column::kMeanVelocity);
  std::int64_t points = 0, missing_values = 0, incomplete_points = 0, los_mismatch = 0;
  double min_e = INFINITY, max_e = -INFINITY, min_n = INFINITY, max_n = -INFINITY, min_v = INFINITY,
         max_v = -INFINITY, sum_v = 0;
  std::int64_t v_count = 0;
  for_each_chunk(reader, options, context, "reading points", [&](const PointChunk& chunk) {
    for (std::size_t p = 0; p < chunk.size(); ++p) {
      ++points;
      const float* s = chunk.series_of(p);
      std::int64_t missing = 0;
      for (std::size_t d = 0; d < chunk.date_count; ++d) missing += std::isnan(s[d]) ? 1 : 0;
      missing_values += missing;
      incomplete_points += missing > 0 ? 1 : 0;
      if (e >= 0 && n >= 0) {
        min_e = std::min(min_e, chunk.scalar(p, e));
        max_e = std::max(max_e, chunk.scalar(p, e));
        min_n = std::min(min_n, chunk.scalar(p, n));
        max_n = std::max(max_n, chunk.scalar(p, n));
      }
      if (v >= 0 && !std::isnan(chunk.scalar(p, v))) {
        min_v = std::min(min_v, chunk.scalar(p, v));
        max_v = std::max(max_v, chunk.scalar(p, v));
        sum_v += chunk.scalar(p, v);
        ++v_count;
      }
    }
    los_mismatch += detail::count_los_mismatches(layout, chunk);
  });
  Summary summary;
  summary.operation = "egms info";
  summary.counts["points"] = points;
  summary.counts["dates"] = static_cast<std::int64_t>(layout.date_count());
  summary.counts["missing_values"] = missing_values;
  summary.counts["incomplete_points"] = incomplete_points;
  summary.counts["los_inconsistent_points"] = los_mismatch;
  auto& d = summary.details;
  d["file"] = path;
  d["metadata"] = reader.metadata().to_json();
  d["separator"] = std::string(1, layout.separator);
  d["columns"] = layout.scalar_names;
  d["first_date"] = format_yyyymmdd(layout.dates.front());
  d["last_date"] = format_yyyymmdd(layout.dates.back());
  // Points without coordinates (empty cells) give no extent rather than "inf .. -inf".
  const bool has_extent = e >= 0 && n >= 0 && min_e <= max_e && min_n <= max_n;
  if (has_extent) d["extent_epsg3035"] = {min_e, min_n, max_e, max_n};
  if (v_count > 0) d["mean_velocity_mm_per_yr"] = {{"min", min_v}, {"max", max_v}, {"mean", sum_v / v_count}};
  if (los_mismatch > 0) {
    summary.warnings.push_back(fmt::format(
        "{} points have los_east/north/up differing by more than 0.01 from the incidence and track angles",
        los_mismatch));
  }
  const auto& m = reader.metadata();
  summary.report = fmt::format(
      "{}\n  level {}  track {}  burst {}  sub-swath {}  facility {}\n  {} points x {} dates ({} .. {}), "
      "separator '{}'\n  {} points with missing values ({} values)\n  columns: {}\n",
      path, m.level.empty() ? "?" : m.level, m.track, m.burst_id, m.sub_swath, m.production_facility, points,
      layout.date_count(), format_yyyymmdd(layout.dates.front()), format_yyyymmdd(layout.dates.back()),
      layout.separator, incomplete_points, missing_values, fmt::join(layout.scalar_names, ", "));
  if (has_extent) {
    summary.report +=
        fmt::format("  extent EPSG:3035: E {:.0f}..{:.0f}  N {:.0f}..{:.0f}\n", min_e, max_e, min_n, max_n);
  }
  if (v_count > 0) {
    summary.report +=
        fmt::format("  mean_velocity: {:.2f} .. {:.2f} mm/yr, mean {:.2f}\n", min_v, max_v, sum_v / v_count);
  }
  summary.seconds = seconds_since(start);
  return summary;
}

// ---------------------------------------------------------------------------------------------------

Summary run_fit(const std::string& input, const ProductOutputs& outputs, const StreamOptions& options,
                const RunContext& context, const io::Provenance& provenance) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  detail::check_outputs(input, outputs);
  auto reader = ProductReader::open(input);
  const ProductLayout& layout = reader.layout();
  const TimeSeriesModel model(layout.dates, options.model);
  detail::FitComparison comparison(layout);
  std::unique_ptr<detail::OutputSinks> sinks;
  std::vector<PointModel> results;
  const nlohmann::json extra = detail::fit_record(options);
  for_each_chunk(reader, options, context, "fitting", [&](PointChunk& chunk) {
    if (!sinks && outputs.any()) {
      sinks = std::make_unique<detail::OutputSinks>(outputs, reader.layout(), reader.metadata(),
                                                    detail::with_input(provenance, input), extra);
    }
    detail::fit_chunk(model, chunk, results);
    comparison.add(chunk, results);
    if (sinks) {
      detail::store_model(layout, chunk, results);
      sinks->write(chunk);
    }
  });
  Summary summary;
  summary.operation = "egms fit";
  comparison.fill(summary, input, layout, options);
  if (sinks) summary.outputs = sinks->close();
  summary.seconds = seconds_since(start);
  return summary;
}

// ---------------------------------------------------------------------------------------------------

void ReferenceOptions::validate() const {
  switch (method) {
    case ReferenceMethod::kPid:
      if (pid.empty()) throw InvalidArgument("pid: required with --method pid (--pid POINT_ID)");
      break;
    case ReferenceMethod::kArea:
      if (!(radius_m > 0)) throw InvalidArgument(fmt::format("radius-m = {}: expected > 0", radius_m));
      break;
    case ReferenceMethod::kPolygon:
      if (polygon_path.empty()) throw InvalidArgument("polygon: required with --method polygon");
      break;
    case ReferenceMethod::kAuto:
      if (!(auto_cell_m > 0))
        throw InvalidArgument(fmt::format("auto-cell-m = {}: expected > 0", auto_cell_m));
      break;
  }
  if (min_points < 1) throw InvalidArgument(fmt::format("min-points = {}: expected >= 1", min_points));
  if (!(min_coherence >= 0 && min_coherence <= 1)) {
    throw InvalidArgument(fmt::format("min-coherence = {}: expected 0..1", min_coherence));
  }
}

namespace {

struct CellKey {
  std::int64_t x, y;
  bool operator==(const CellKey&) const = default;
};
struct CellKeyHash {
  std::size_t operator()(const CellKey& k) const noexcept {
    return std::hash<std::int64_t>()(k.x * 73856093LL ^ k.y * 19349663LL);
  }
};

}  // namespace

namespace detail {

ReferencePlan plan_reference(ProductReader& reader, const std::string& input, const ReferenceOptions& reference,
                             const StreamOptions& options, const RunContext& context) {
  const ProductLayout& layout = reader.layout();
  const TimeSeriesModel model(layout.dates, options.model);
  const int e = layout.require(column::kEasting, "re-referencing");
  const int n = layout.require(column::kNorthing, "re-referencing");

  // Which points form the reference: a predicate on (pid, easting, northing).
  std::function<bool(const PointChunk&, std::size_t)> selected;
  nlohmann::json description = {{"method", ""}};
  io::PolygonSet polygons;
  std::vector<OGRGeometry*> polygon_geometries;
  switch (reference.method) {
    case ReferenceMethod::kPid:
      description = {{"method", "pid"}, {"pid", reference.pid}};
      selected = [&](const PointChunk& c, std::size_t p) { return c.pid[p] == reference.pid; };
      break;
    case ReferenceMethod::kArea:
      description = {{"method", "area"},
                     {"centre_easting_m", reference.centre_easting_m},
                     {"centre_northing_m", reference.centre_northing_m},
                     {"radius_m", reference.radius_m}};
      selected = [&](const PointChunk& c, std::size_t p) {
        return std::hypot(c.scalar(p, e) - reference.centre_easting_m,
                          c.scalar(p, n) - reference.centre_northing_m) <= reference.radius_m;
      };
      break;
    case ReferenceMethod::kPolygon: {
      OGRSpatialReference laea;
      laea.importFromEPSG(3035);
      char* wkt = nullptr;
      laea.exportToWkt(&wkt);
      polygons = io::read_polygons(reference.polygon_path, wkt);
      CPLFree(wkt);
      for (void* g : polygons.geometries()) polygon_geometries.push_back(static_cast<OGRGeometry*>(g));
      description = {{"method", "polygon"}, {"polygon", reference.polygon_path}};
      selected = [&](const PointChunk& c, std::size_t p) {
        const OGRPoint point(c.scalar(p, e), c.scalar(p, n));
        return std::any_of(polygon_geometries.begin(), polygon_geometries.end(),
                           [&](OGRGeometry* g) { return g->Contains(&point); });
      };
      break;
    }
    case ReferenceMethod::kAuto: {
      const int v = layout.require(column::kMeanVelocity, "automatic reference selection");
      const int coh = layout.find(column::kTemporalCoherence);
      struct Stats {
        std::int64_t count = 0;
        double sum = 0, sum2 = 0;
      };
      std::unordered_map<CellKey, Stats, CellKeyHash> cells;
      const auto key_of = [&](const PointChunk& c, std::size_t p) {
        return CellKey{static_cast<std::int64_t>(std::floor(c.scalar(p, e) / reference.auto_cell_m)),
                       static_cast<std::int64_t>(std::floor(c.scalar(p, n) / reference.auto_cell_m))};
      };
      for_each_chunk(reader, options, context, "searching a stable area", [&](const PointChunk& c) {
        for (std::size_t p = 0; p < c.size(); ++p) {
          const double vel = c.scalar(p, v);
          if (std::isnan(vel) || std::isnan(c.scalar(p, e)) || std::isnan(c.scalar(p, n))) continue;
          if (coh >= 0 && !(c.scalar(p, coh) >= reference.min_coherence)) continue;
          auto& s = cells[key_of(c, p)];
          ++s.count;
          s.sum += vel;
          s.sum2 += vel * vel;
        }
      });
      reader.rewind();
      std::optional<CellKey> best;
      double best_std = INFINITY;
      std::int64_t best_count = 0;
      // Deterministic choice: iterate cells in key order.
      std::vector<std::pair<CellKey, Stats>> ordered(cells.begin(), cells.end());
      std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
        return a.first.y != b.first.y ? a.first.y < b.first.y : a.first.x < b.first.x;
      });
      for (const auto& [key, s] : ordered) {
        if (s.count < reference.min_points) continue;
        const double mean = s.sum / s.count;
        const double sd = std::sqrt(std::max(0.0, s.sum2 / s.count - mean * mean));
        if (sd < best_std - 1e-12 || (std::abs(sd - best_std) <= 1e-12 && s.count > best_count)) {
          best = key;
          best_std = sd;
          best_count = s.count;
        }
      }
      if (!best) {
        throw NumericalError(
            fmt::format("{}: no {} m cell holds {} points of temporal coherence >= {}: lower --min-points or "
                        "--min-coherence, "
                        "or enlarge --auto-cell-m",
                        input, reference.auto_cell_m, reference.min_points, reference.min_coherence));
      }
      const CellKey chosen = *best;
      description = {{"method", "auto"},
                     {"cell_size_m", reference.auto_cell_m},
                     {"cell_min_easting_m", chosen.x * reference.auto_cell_m},
                     {"cell_min_northing_m", chosen.y * reference.auto_cell_m},
                     {"velocity_std_mm_per_yr", best_std},
                     {"min_coherence", reference.min_coherence}};
      selected = [key_of, chosen, coh, &reference](const PointChunk& c, std::size_t p) {
        if (coh >= 0 && !(c.scalar(p, coh) >= reference.min_coherence)) return false;
        return key_of(c, p) == chosen;
      };
      break;
    }
  }

  // Pass: the reference series, mean of the selected points per date.
  std::vector<double> sum(layout.date_count(), 0.0);
  std::vector<std::int64_t> count(layout.date_count(), 0);
  std::int64_t reference_points = 0;
  double sum_e = 0, sum_n = 0;
  // Where the points are, to tell a user whose reference caught none where to look.
  double min_e = INFINITY, max_e = -INFINITY, min_n = INFINITY, max_n = -INFINITY;
  for_each_chunk(reader, options, context, "reference series", [&](const PointChunk& c) {
    for (std::size_t p = 0; p < c.size(); ++p) {
      if (!std::isnan(c.scalar(p, e)) && !std::isnan(c.scalar(p, n))) {
        min_e = std::min(min_e, c.scalar(p, e));
        max_e = std::max(max_e, c.scalar(p, e));
        min_n = std::min(min_n, c.scalar(p, n));
        max_n = std::max(max_n, c.scalar(p, n));
      }
      if (!selected(c, p)) continue;
      ++reference_points;
      sum_e += c.scalar(p, e);
      sum_n += c.scalar(p, n);
      const float* s = c.series_of(p);
      for (std::size_t d = 0; d < c.date_count; ++d) {
        if (!std::isnan(s[d])) {
          sum[d] += s[d];
          ++count[d];
        }
      }
    }
  });
  reader.rewind();
  const std::int64_t needed = reference.method == ReferenceMethod::kPid ? 1 : reference.min_points;
  if (reference_points < needed) {
    std::string where;
    if (reference.method == ReferenceMethod::kPid) {
      where = fmt::format("pid '{}' is not in the product", reference.pid);
    } else if (min_e <= max_e) {
      where = fmt::format("the reference is read in EPSG:3035 (metres{}); the product's points lie within "
                          "E {:.0f}..{:.0f} N {:.0f}..{:.0f} (EPSG:3035)",
                          reference.method == ReferenceMethod::kArea
                              ? "; a longitude/latitude centre goes to --centre-lon/--centre-lat"
                              : ", polygons reprojected to it",
                          min_e, max_e, min_n, max_n);
    } else {
      where = "no point has easting/northing values";
    }
    throw InvalidArgument(fmt::format("{}: the reference ({}) holds {} points, at least {} needed: {}", input,
                                      description.dump(), reference_points, needed, where));
  }
  std::vector<float> reference_series(layout.date_count());
  std::int64_t missing_reference_dates = 0;
  for (std::size_t d = 0; d < sum.size(); ++d) {
    reference_series[d] =
        count[d] ? static_cast<float>(sum[d] / count[d]) : std::numeric_limits<float>::quiet_NaN();
    missing_reference_dates += count[d] ? 0 : 1;
  }
  const PointModel reference_model = model.fit_one(reference_series.data());
  description["points"] = reference_points;
  description["easting_m"] = sum_e / reference_points;
  description["northing_m"] = sum_n / reference_points;
  description["reference_velocity_mm_per_yr"] = reference_model.mean_velocity;
  ReferencePlan plan;
  plan.series = std::move(reference_series);
  plan.description = std::move(description);
  plan.reference_points = reference_points;
  plan.missing_dates = missing_reference_dates;
  plan.easting_m = sum_e / reference_points;
  plan.northing_m = sum_n / reference_points;
  plan.velocity_mm_per_yr = reference_model.mean_velocity;
  return plan;
}

nlohmann::json ReferencePlan::record() const {
  return {{"operation", "egms reference"}, {"reference", description}};
}

ProductMetadata ReferencePlan::metadata(ProductMetadata metadata) {
  // Referenced to a local point or area, the product is relative again: Basic level.
  if (metadata.level != "L3") metadata.level = "L2a";
  return metadata;
}

void subtract_reference(PointChunk& chunk, const std::vector<float>& reference_series) {
  for (std::size_t p = 0; p < chunk.size(); ++p) {
    float* s = chunk.series_of(p);
    for (std::size_t d = 0; d < chunk.date_count; ++d) s[d] -= reference_series[d];  // NaN reference -> missing
  }
}

void ReferencePlan::fill(Summary& summary, const std::string& input, std::int64_t points,
                         std::int64_t failed) const {
  summary.operation = "egms reference";
  summary.counts["points"] = points;
  summary.counts["reference_points"] = reference_points;
  summary.counts["failed"] = failed;
  summary.details["reference"] = description;
  if (missing_dates > 0) {
    summary.warnings.push_back(
        fmt::format("the reference has no value on {} dates: those dates are left empty", missing_dates));
  }
  summary.report = fmt::format(
      "{}: {} points re-referenced to {} ({} reference points around E {:.0f} N {:.0f}; their velocity was "
      "{:.2f} "
      "mm/yr)\n",
      input, points, description["method"].get<std::string>(), reference_points, easting_m, northing_m,
      velocity_mm_per_yr);
}

}  // namespace detail

Summary run_reference(const std::string& input, const ReferenceOptions& reference,
                      const ProductOutputs& outputs, const StreamOptions& options, const RunContext& context,
                      const io::Provenance& provenance) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  reference.validate();
  detail::check_outputs(input, outputs);
  auto reader = ProductReader::open(input);
  const detail::ReferencePlan plan = detail::plan_reference(reader, input, reference, options, context);
  const TimeSeriesModel model(reader.layout().dates, options.model);

  // Pass: subtract, refit, write.
  std::unique_ptr<detail::OutputSinks> sinks;
  std::vector<PointModel> results;
  std::int64_t points = 0, failed = 0;
  const ProductMetadata metadata = detail::ReferencePlan::metadata(reader.metadata());
  for_each_chunk(reader, options, context, "re-referencing", [&](PointChunk& c) {
    if (!sinks && outputs.any()) {
      sinks = std::make_unique<detail::OutputSinks>(outputs, reader.layout(), metadata,
                                                    detail::with_input(provenance, input), plan.record());
    }
    detail::subtract_reference(c, plan.series);
    detail::fit_chunk(model, c, results);
    for (const auto& r : results) failed += std::isnan(r.mean_velocity) ? 1 : 0;
    points += static_cast<std::int64_t>(c.size());
    detail::store_model(reader.layout(), c, results);
    if (sinks) sinks->write(c);
  });
  Summary summary;
  plan.fill(summary, input, points, failed);
  if (sinks) summary.outputs = sinks->close();
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace deforma::egms
