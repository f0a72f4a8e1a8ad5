#pragma once
// Correction and filtering of one correlation result (a displacement field on a node grid): quality
// thresholds, the normalized median test of Westerweel & Scarano (2005) on the vector field, a maximum
// plausible displacement, and a stable-ground correction that fits and removes a bias or a plane/quadratic
// ramp from ground that should not move.
//
// The kernels below work on in-memory grids (tests use them directly); filter_result() streams the same
// kernels over strips of a correlation COG with a halo, in two passes (flag and collect stable samples,
// then fit and write), so memory stays bounded by the strip size whatever the scene.
//
// Flag values (a "flag" band, 0 = valid) continue those of the correlation:
//   0 valid, 1 low SNR, 2 no texture, 3 masked, 4 peak on the search border, 5 outside the overlap,
//   6 no peak (set by the correlation; 1 is also set here by --min-snr),
//   7 rejected by the normalized median test, 8 above the maximum plausible displacement/velocity,
//   9 below the minimum correlation; 16 valid, translation only (`correlate --shape affine` kept the
//   translation at that node: its gradients are nodata). Nodes flagged 0 or 16 are valid.
// Rejected nodes keep their corr/snr values (diagnostics) and get nodata in the displacement bands and in
// the bands of the affine shape (dudx, dudy, dvdx, dvdy and the strain rates), which are otherwise carried
// unchanged (the ramp correction does not touch them).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/grid.hpp"
#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/io/product.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::filter {

/// Node flags; see the file comment. Stored as float in the results' "flag" band.
using NodeFlag = io::product::NodeFlag;

/// Nodata of the displacement bands, as written by the correlation.
inline constexpr float kNodata = io::product::kNodata;

/// Model of the stable-ground correction, in normalized node coordinates
/// x = 2 (col + 0.5) / width - 1 and y = 2 (row + 0.5) / height - 1 (both in [-1, 1]):
/// bias a0; plane a0 + a1 x + a2 y; quadratic adds a3 x^2 + a4 x y + a5 y^2.
enum class RampModel { kNone, kBias, kPlane, kQuadratic };

/// "none", "bias", "plane", "quadratic"; parse throws InvalidArgument naming `parameter`.
const char* to_string(RampModel model);
RampModel parse_ramp_model(const std::string& text, const std::string& parameter = "ramp");

/// Where the stable ground comes from.
enum class StableSource {
  kNone,      ///< no correction
  kPolygons,  ///< polygons (any OGR source): inside = stable
  kMask,      ///< a mask raster: inside (non-zero; > 127 for 8-bit images) = stable
  kAuto,      ///< least-moving, well-correlated nodes (see FilterOptions::auto_*)
};

struct FilterOptions {
  /// Nodes with SNR below this are flagged 1; 0 disables the test (the correlation's own threshold stays).
  double min_snr = 0.0;
  /// Nodes with correlation below this are flagged 9; 0 disables the test.
  double min_corr = 0.0;
  /// Normalized median test (Westerweel & Scarano 2005): on, with neighbourhood radius (1 = 3x3),
  /// threshold on the normalized residual, and epsilon (the acceptable fluctuation, px).
  bool median_test = true;
  int median_radius = 1;
  double median_threshold = 2.0;
  double median_epsilon_px = 0.1;
  /// A node needs at least this many valid neighbours to be tested; with fewer it is kept untested.
  int median_min_neighbours = 3;
  /// Nodes whose displacement magnitude exceeds these are flagged 8; 0 disables. The metric one uses the
  /// east_m/north_m bands (skipped when they are absent or nodata).
  double max_displacement_px = 0.0;
  double max_displacement_m = 0.0;
  /// Velocity threshold (flag 8), per year: m/yr on east_m/north_m for a georeferenced result, px/yr on
  /// dx_px/dy_px for one without georeferencing. filter_result() turns it into a displacement with the
  /// pair's time span: `days` when given, else the span the result records (recorded_time_span_years).
  /// 0 disables.
  double max_velocity_per_yr = 0.0;
  /// Time between the two images of the pair, days; 0 = the span the result records.
  double days = 0.0;

  /// Stable-ground correction.
  RampModel ramp = RampModel::kNone;
  StableSource stable = StableSource::kNone;
  std::string stable_path;   ///< polygons or mask file for kPolygons / kMask
  std::string exclude_path;  ///< optional mask or polygons of ground known to move (never stable)
  /// kAuto rule: among valid nodes (not excluded) whose correlation is at or above the
  /// `auto_corr_quantile` quantile of the valid nodes, the `auto_fraction` with the smallest displacement
  /// magnitude are taken as stable ground.
  double auto_corr_quantile = 0.5;
  double auto_fraction = 0.3;
  /// Robust fit: up to `robust_iterations` refits, each rejecting samples whose residual is more than
  /// `robust_k` NMADs from the median residual.
  int robust_iterations = 5;
  double robust_k = 3.0;
  /// At most this many stable samples are kept for the fit (a regular subsample beyond).
  std::size_t max_stable_samples = 400000;

  /// Throws InvalidArgument naming the offending parameter (CLI name).
  void validate() const;
};

/// Counts of one filtering run (or one window).
struct FilterCounts {
  std::int64_t nodes = 0;
  std::int64_t valid_in = 0;  ///< valid (flag 0 with finite dx/dy) before filtering
  std::int64_t low_snr = 0;
  std::int64_t low_corr = 0;
  std::int64_t above_max = 0;
  std::int64_t median_rejected = 0;
  std::int64_t median_untested = 0;  ///< valid nodes with too few valid neighbours for the test
  std::int64_t valid_out = 0;

  FilterCounts& operator+=(const FilterCounts& o);
};

/// One window of a displacement field, all grids of the same size. Absent optional bands are empty grids.
struct FieldWindow {
  GridF dx_px, dy_px, flag;
  GridF east_m, north_m, corr, snr;  ///< optional
};

/// True when the node holds a usable measurement: flag 0 (or 16, translation only) and finite, non-nodata
/// dx/dy.
bool is_valid_node(const FieldWindow& field, int col, int row);

/// Applies the thresholds, then the normalized median test (on dx_px/dy_px, neighbours valid after the
/// thresholds), to the nodes of `core` (a rectangle in window coordinates; the rest is halo that only
/// serves as neighbours). Returns the new flag of every node of the window (halo nodes keep their
/// threshold-only flags). Deterministic and independent of how the field is cut into windows.
GridF flag_outliers(const FieldWindow& field, const io::Window& core, const FilterOptions& options,
                    FilterCounts& counts);

/// A measurement at a node for the ramp fit.
struct StableSample {
  double x = 0, y = 0;  ///< normalized node coordinates (RampModel)
  double value = 0;
};

/// The fitted correction of one component.
struct RampFit {
  RampModel model = RampModel::kNone;
  std::vector<double> coefficients;           ///< see RampModel; empty for kNone
  std::int64_t samples = 0;                   ///< stable samples offered
  std::int64_t used = 0;                      ///< kept by the robust fit
  double median_before = 0, nmad_before = 0;  ///< of the stable samples before correction
  double median_after = 0, nmad_after = 0;    ///< of the kept samples after correction

  /// The correction at normalized coordinates (0 for kNone).
  double evaluate(double x, double y) const;
  nlohmann::json to_json() const;
};

/// Fits `model` to the samples by least squares (Eigen), robustly: refits after rejecting samples more
/// than robust_k NMADs from the median residual, until nothing changes or robust_iterations is reached.
/// Throws NumericalError when there are fewer samples than coefficients.
RampFit fit_ramp(const std::vector<StableSample>& samples, RampModel model, int robust_iterations = 5,
                 double robust_k = 3.0);

/// Median and normalized median absolute deviation (1.4826 MAD) of `values` (copied); 0, 0 when empty.
void median_nmad(std::vector<double> values, double& median, double& nmad);

/// Normalized node coordinate (RampModel) of a column or row index in a grid of `size` nodes.
inline double normalized_coordinate(int index, int size) {
  return 2.0 * (index + 0.5) / size - 1.0;
}

/// The stable-ground mask (1 = stable candidate) of `window` of the result grid `grid` from a polygon file
/// or a mask raster. A raster on another grid is sampled at the node centres: through the CRS when both are
/// georeferenced, in image pixel coordinates when neither is (the correlation of non-georeferenced images
/// keeps the image pixel grid as its map coordinates). Values: 1 inside, 0 outside;
/// `parameter` names the option in error messages.
GridU8 read_node_mask(const std::string& path, const io::RasterInfo& grid, const io::Window& window,
                      const std::string& parameter);

/// The time between the two images of a correlation result, in years (of 365.25 days), as the result
/// records it: `years_between` in its (or its source's) DEFORMA_PARAMETERS (signed: negative for a
/// backward pair), else its DEFORMA_START_DATE/DEFORMA_END_DATE metadata. Empty when it records neither.
std::optional<double> recorded_time_span_years(const io::RasterInfo& info);

/// Filters and corrects the correlation result `input` (a COG with bands named dx_px, dy_px, flag and
/// optionally east_m, north_m, corr, snr — found by band description) into the COG `output`, streaming by
/// strips. The output has the same bands; what was removed is recorded in its metadata (DEFORMA_FILTER,
/// JSON) and in the Summary details. Velocity bands of `correlate --velocity` (east_m_per_yr,
/// north_m_per_yr, speed_m_per_yr, or vx/vy/speed_px_per_yr) are recomputed from the corrected
/// displacement over the recorded time span, so they are corrected and masked with it.
struct FilterRun {
  std::string input;
  std::string output;
  FilterOptions options;
  std::string command_line;                              ///< provenance
  nlohmann::json parameters = nlohmann::json::object();  ///< provenance
  std::size_t ram_budget_mb = 256;
  Progress* progress = nullptr;
};
Summary filter_result(const FilterRun& run);

}  // namespace deforma::filter
