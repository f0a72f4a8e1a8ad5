#pragma once
// Internal helpers of the egms module: parallel fitting of a chunk, writing model columns, output sinks,
// streamed histograms.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/core/progress.hpp"
#include "deforma/egms/model.hpp"
#include "deforma/egms/processing.hpp"
#include "deforma/egms/product.hpp"

class OGRCoordinateTransformation;

namespace deforma::egms::detail {

/// WGS84 longitude/latitude (in that axis order) to EPSG:3035 metres, the grid of EGMS products; null when
/// PROJ cannot build it. One transformation serves many points.
std::unique_ptr<OGRCoordinateTransformation> lonlat_to_epsg3035_transform();

/// Fits every point of `chunk` (parallel over fixed blocks: results do not depend on the thread count).
void fit_chunk(const TimeSeriesModel& model, const PointChunk& chunk, std::vector<PointModel>& results);

/// Writes the model figures into the columns of `layout` that exist (mean_velocity, ..., rmse,
/// temporal_coherence); NaN where the model failed.
void store_model(const ProductLayout& layout, PointChunk& chunk, const std::vector<PointModel>& results);

/// Histogram of |differences| (bins of 0.0005 up to 50, then one overflow bin) for medians and
/// percentiles in bounded memory.
class AbsHistogram {
 public:
  void add(double value);
  std::size_t count() const { return count_; }
  double quantile(double q) const;
  double max() const { return max_; }
  nlohmann::json to_json() const;
  /// The non-empty bins, count and maximum, exactly: histograms of parts of a product computed apart (work
  /// units) merge into the histogram of the whole.
  nlohmann::json to_bins_json() const;
  /// Adds a histogram written by to_bins_json(). Throws FormatError when it is not one.
  void merge_bins_json(const nlohmann::json& j);

 private:
  static constexpr double kBin = 0.0005;
  static constexpr std::size_t kBins = 100000;
  std::vector<std::uint64_t> bins_ = std::vector<std::uint64_t>(kBins + 1, 0);
  std::size_t count_ = 0;
  double max_ = 0;
};

/// What egms fit reports: points, points without a fit, and recomputed - file histograms of the model
/// columns the product has. Filled chunk by chunk, or merged from work units' records.
class FitComparison {
 public:
  explicit FitComparison(const ProductLayout& layout);
  void add(const PointChunk& chunk, const std::vector<PointModel>& results);
  /// Counts and histograms, exactly (a work unit's record).
  nlohmann::json to_json() const;
  /// Adds a record written by to_json(). Throws FormatError when it is not one.
  void merge_json(const nlohmann::json& j);
  /// The counts, details["comparison"], report and warnings of egms fit.
  void fill(Summary& summary, const std::string& input, const ProductLayout& layout,
            const StreamOptions& options) const;
  std::int64_t points() const { return points_; }

 private:
  std::vector<int> indices_;
  std::vector<AbsHistogram> histograms_;
  std::int64_t points_ = 0, failed_ = 0;
};

/// What egms fit records in the XML of the product it writes (the operation and the year length).
nlohmann::json fit_record(const StreamOptions& options);

/// The global step of egms reference, made once over the whole product: the reference series (mean of the
/// reference points per date) and what describes it.
struct ReferencePlan {
  std::vector<float> series;  ///< per date, NaN where no reference point has a value
  nlohmann::json description;
  std::int64_t reference_points = 0;
  std::int64_t missing_dates = 0;
  double easting_m = 0, northing_m = 0, velocity_mm_per_yr = 0;

  /// What goes into the XML of the output.
  nlohmann::json record() const;
  /// The output's metadata: Basic level (L2a) unless L3.
  static ProductMetadata metadata(ProductMetadata metadata);
  /// The counts, details, warnings and report of egms reference.
  void fill(Summary& summary, const std::string& input, std::int64_t points, std::int64_t failed) const;
};

/// Selects the reference points of `reference` (the auto method searching its cell first) and computes the
/// reference series, reading `reader` once or twice (rewound after each pass). Throws InvalidArgument when
/// the reference holds too few points, NumericalError when no cell qualifies (auto).
ReferencePlan plan_reference(ProductReader& reader, const std::string& input, const ReferenceOptions& reference,
                             const StreamOptions& options, const RunContext& context);

/// Subtracts the reference series from every series of `chunk` (a NaN reference date makes it missing).
void subtract_reference(PointChunk& chunk, const std::vector<float>& reference_series);

/// The optional product and GeoPackage writers of a run.
class OutputSinks {
 public:
  OutputSinks(const ProductOutputs& outputs, const ProductLayout& layout, const ProductMetadata& metadata,
              const io::Provenance& provenance, const nlohmann::json& extra);
  void write(const PointChunk& chunk);
  std::vector<std::string> close();

 private:
  std::unique_ptr<ProductWriter> product_;
  std::unique_ptr<GeoPackageWriter> gpkg_;
};

/// Points per chunk: options.chunk_points, lowered so that the buffers of one chunk (points, model
/// results, output formatting: about 3 copies of dates x 4 + columns x 8 bytes per point) fit in the
/// run's RAM budget (RunContext::ram_budget_mb).
std::size_t chunk_points_for(const StreamOptions& options, const ProductLayout& layout,
                             const RunContext& context);

/// Number of points of `chunk` whose los_east/north/up differ by more than 0.01 from the unit vector
/// given by incidence_angle and track_angle (0 when those columns are absent).
std::int64_t count_los_mismatches(const ProductLayout& layout, const PointChunk& chunk);

/// Checks, before any work, that the outputs can be written and would not replace `input` (nor each
/// other). Throws InvalidArgument (an output is the input, or both outputs are one file) or IoError.
void check_outputs(const std::string& input, const ProductOutputs& outputs);

/// Provenance with the input added.
io::Provenance with_input(io::Provenance provenance, const std::string& input);

/// Checks cancellation; throws Cancelled.
void check_cancelled(Progress& progress);

}  // namespace deforma::egms::detail
