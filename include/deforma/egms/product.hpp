#pragma once
// EGMS point products (Basic L2a, Calibrated L2b, Ortho L3) as CSV, plain or zipped with their XML
// metadata: streamed reading by chunks of points, and writing back in EGMS's own layout (CSV/zip) or as
// a GeoPackage of points for GIS users.
//
// Layout: one row per measurement point; scalar columns (pid, coordinates, heights, statistics, LOS
// vector...) then one YYYYMMDD column per acquisition holding the LOS displacement in mm. Two column
// namings exist: the Product Description Document's (`height`, `height_wgs84`, `rmse`) and the
// 2020-2024 release's (`height_ortho`, `height_ellipse`, `rmse_ts`); both are accepted and resolved to
// canonical names (the release's, except `rmse`), while the file's own names are kept for writing back.
// Separators `,` and `;` are detected from the header. Empty date cells are missing values (NaN).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/io/provenance.hpp"

namespace deforma::egms {

/// Canonical scalar column names deforma uses (aliases of either naming resolve to these).
namespace column {
inline constexpr const char* kPid = "pid";
inline constexpr const char* kLatitude = "latitude";
inline constexpr const char* kLongitude = "longitude";
inline constexpr const char* kEasting = "easting";
inline constexpr const char* kNorthing = "northing";
inline constexpr const char* kHeightOrtho = "height_ortho";      ///< PDD: `height`
inline constexpr const char* kHeightEllipse = "height_ellipse";  ///< PDD: `height_wgs84`
inline constexpr const char* kLine = "line";
inline constexpr const char* kPixel = "pixel";
inline constexpr const char* kRmse = "rmse";  ///< 2020-2024 release: `rmse_ts`
inline constexpr const char* kTemporalCoherence = "temporal_coherence";
inline constexpr const char* kIncidenceAngle = "incidence_angle";
inline constexpr const char* kTrackAngle = "track_angle";
inline constexpr const char* kLosEast = "los_east";
inline constexpr const char* kLosNorth = "los_north";
inline constexpr const char* kLosUp = "los_up";
inline constexpr const char* kMeanVelocity = "mean_velocity";
inline constexpr const char* kMeanVelocityStd = "mean_velocity_std";
inline constexpr const char* kAcceleration = "acceleration";
inline constexpr const char* kAccelerationStd = "acceleration_std";
inline constexpr const char* kSeasonality = "seasonality";
inline constexpr const char* kSeasonalityStd = "seasonality_std";
inline constexpr const char* kGnssVelocity = "gnss_velocity";
}  // namespace column

/// The canonical name of a file's column name (`rmse_ts` -> `rmse`, `height` -> `height_ortho`...); the
/// name itself (lower-cased) when it has no alias.
std::string canonical_column_name(const std::string& file_name);

/// Bounds on what a product may hold; values beyond them are refused by ProductReader (FormatError naming
/// the file, line and column). Acquisition dates: 1990-01-01 .. 2099-12-31 (day numbers).
inline constexpr int kFirstAcquisitionDay = 7305;
inline constexpr int kLastAcquisitionDay = 47481;
/// Largest |velocity| (mm/yr, also mm/yr² for accelerations) and |displacement| (mm) accepted.
inline constexpr double kMaxVelocity = 1e5;
inline constexpr double kMaxDisplacement = 1e6;

/// Days since 1970-01-01 of a YYYYMMDD text; nullopt when it is not a valid date.
std::optional<int> parse_yyyymmdd(std::string_view text);
/// YYYYMMDD text of a day number (days since 1970-01-01).
std::string format_yyyymmdd(int day_number);

/// What the XML metadata (or the file name) says about a product.
struct ProductMetadata {
  std::string level;  ///< "L2a", "L2b", "L3" or "" when unknown
  int track = -1;
  int burst_id = -1;
  int sub_swath = -1;
  int production_facility = -1;
  std::string production_date;
  std::string dem_version;
  std::string gnss_version;
  std::string xml;  ///< the XML text as read ("" when none)

  nlohmann::json to_json() const;
};

/// Columns of a product: scalar columns (file names and canonical names), the dates, the separator.
struct ProductLayout {
  std::string source;  ///< file the layout was read from (for messages)
  char separator = ',';
  std::vector<std::string> scalar_names;     ///< as in the file, file order, pid excluded
  std::vector<std::string> canonical_names;  ///< same order
  std::vector<int> scalar_decimals;          ///< decimals to write each scalar column with
  std::vector<int> dates;                    ///< day numbers, ascending
  int series_decimals = 2;                   ///< decimals of the written displacements

  /// Index in scalar_names of a canonical column, -1 when absent.
  int find(const std::string& canonical) const;
  /// Like find(), throwing FormatError naming the file, the column and `purpose` when absent.
  int require(const std::string& canonical, const std::string& purpose) const;
  /// Adds a scalar column at the end (no-op when present); returns its index.
  int add_column(const std::string& canonical, int decimals);
  std::size_t date_count() const { return dates.size(); }
  std::size_t scalar_count() const { return scalar_names.size(); }
};

/// A chunk of points, struct-of-arrays: scalars row-major (points x scalar columns), displacements
/// row-major (points x dates, mm, NaN = missing).
struct PointChunk {
  std::vector<std::string> pid;
  std::vector<double> scalars;
  std::vector<float> series;
  std::vector<std::int64_t> source_line;  ///< 1-based line number in the file (0 for computed points)
  std::size_t scalar_count = 0;
  std::size_t date_count = 0;

  std::size_t size() const { return pid.size(); }
  void clear();
  void reset(std::size_t scalars_per_point, std::size_t dates_per_point);
  /// Appends a point with NaN scalars and series; returns its index.
  std::size_t add_point(std::string point_id, std::int64_t line = 0);
  double& scalar(std::size_t point, int column) { return scalars[point * scalar_count + column]; }
  double scalar(std::size_t point, int column) const { return scalars[point * scalar_count + column]; }
  float* series_of(std::size_t point) { return series.data() + point * date_count; }
  const float* series_of(std::size_t point) const { return series.data() + point * date_count; }
  /// Adds a NaN scalar column at the end of every point (to match ProductLayout::add_column).
  void append_scalar_column();
};

/// Streams a product: plain CSV, or a zip holding one CSV (and its XML), read through GDAL's virtual
/// file systems without loading the file. Not thread-safe; one reader per thread.
class ProductReader {
 public:
  /// Opens `path` and reads the header (and the XML metadata: inside the zip, or `<name>.xml` beside a
  /// CSV). A UTF-8 byte-order mark is skipped; date columns are YYYYMMDD or YYYY-MM-DD. Throws IoError
  /// (missing, unreadable, truncated zip) or FormatError (not a CSV at all, an empty zip, a zip holding
  /// several CSVs, no pid column, no date column, bad or implausible date column, duplicate column)
  /// naming the file.
  static ProductReader open(const std::string& path);

  ProductReader(ProductReader&&) noexcept;
  ProductReader& operator=(ProductReader&&) noexcept;
  ~ProductReader();

  const std::string& path() const;
  const ProductLayout& layout() const;
  const ProductMetadata& metadata() const;
  /// Uncompressed size of the CSV in bytes, and how many have been consumed (for progress).
  std::uint64_t total_bytes() const;
  std::uint64_t bytes_read() const;

  /// Reads up to `max_points` points into `chunk` (cleared first); false when none were left.
  /// Throws FormatError naming the file, line and column for a wrong field count, a non-numeric or
  /// non-finite value, a value outside its column's domain (latitude -90..90, EPSG:3035 coordinates
  /// within ±2e7 m, LOS components within ±1, velocities within ±kMaxVelocity, displacements within
  /// ±kMaxDisplacement...), a line longer than 1 MiB, or a pid already seen (with both lines); IoError
  /// when the stream fails.
  bool read(PointChunk& chunk, std::size_t max_points);
  /// Goes back to the first point (for operations that need several passes).
  void rewind();

  /// Bytes of the CSV up to the end of its header: where the first point's line starts.
  std::uint64_t header_bytes() const;
  /// Limits reading to the lines that start at a byte in [first_byte, end_byte) of the CSV: a part of the
  /// product read on its own (a work unit). Consecutive ranges cover every line once, whatever the line
  /// lengths; first_byte is clamped to header_bytes(). Duplicate pids are then only found within the
  /// range; messages name the range and count lines from its start. Throws IoError.
  void restrict_to(std::uint64_t first_byte, std::uint64_t end_byte);
  /// The decimals to write each scalar column and the series with (ProductLayout::scalar_decimals,
  /// series_decimals) instead of learning them from the first chunk: the parts of a product read
  /// separately then write their values as the whole product would. InvalidArgument when the count of
  /// scalar columns differs.
  void use_decimals(const std::vector<int>& scalar_decimals, int series_decimals);

 private:
  ProductReader();
  struct State;
  std::unique_ptr<State> state_;
};

/// Writes a product in EGMS's layout: a CSV (`.csv`, XML metadata beside it as `<name>.xml`) or a zip
/// (`.zip`, holding `<name>.csv` and `<name>.xml`). Chunks are appended as they come; nothing appears
/// under the final name(s) until close() succeeds. The XML carries the metadata plus a <deforma> element
/// with the provenance and `extra` (e.g. the reference or calibration applied).
class ProductWriter {
 public:
  ProductWriter(const std::string& path, ProductLayout layout, ProductMetadata metadata,
                io::Provenance provenance, nlohmann::json extra = nlohmann::json::object());
  ProductWriter(const ProductWriter&) = delete;
  ProductWriter& operator=(const ProductWriter&) = delete;
  ~ProductWriter();

  void write(const PointChunk& chunk);
  /// Appends rows already formatted by format_product_rows (a part of the product written elsewhere),
  /// copied from the file `rows_path`. IoError naming the file when it cannot be read.
  void append_rows(const std::string& rows_path);
  /// Finishes the file(s) and renames them into place; returns the final paths.
  std::vector<std::string> close();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// The CSV rows of `chunk` as ProductWriter writes them (pid, scalar columns, series; one line a point),
/// appended to `out`.
void format_product_rows(const ProductLayout& layout, const PointChunk& chunk, std::string& out);

/// Writes points as a GeoPackage layer (EPSG:3035 points from easting/northing, all scalar columns, and
/// the displacement series as one JSON array field `series_mm`, null for a missing value), plus a table
/// `<layer>_dates` (date_index, date) giving the date of each array element. Units and meanings go to
/// gpkg_data_columns (title "name [unit]", description). Streamed by chunks in transactions, provenance
/// in the metadata.
class GeoPackageWriter {
 public:
  GeoPackageWriter(const std::string& path, const ProductLayout& layout, const io::Provenance& provenance,
                   const std::string& layer_name = "points");
  GeoPackageWriter(const GeoPackageWriter&) = delete;
  GeoPackageWriter& operator=(const GeoPackageWriter&) = delete;
  ~GeoPackageWriter();

  void write(const PointChunk& chunk);
  std::string close();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace deforma::egms
