#pragma once
// Correlation of an image pair, streamed: the driver behind `deforma correlate`. It reads the two images
// by strips of node rows plus a halo (io::plan_tiles under the RAM budget), runs the in-memory kernels of
// matcher.hpp on each strip, and writes one Cloud-Optimized GeoTIFF on the node grid with the bands
//   dx_px, dy_px      displacement from REF to SEC in pixels (+x = +column, +y = +row)
//   east_m, north_m   the same displacement in map units through REF's geotransform (rotation included);
//                     nodata when REF has no georeferencing
//   corr, snr, flag   peak correlation, signal-to-noise ratio, NodeFlag (docs/correlate.md)
// and, with a time span (velocity), east_m_per_yr, north_m_per_yr, speed_m_per_yr (pixel units:
// vx_px_per_yr, vy_px_per_yr, speed_px_per_yr); then, with the affine shape (`--shape affine`), the
// displacement gradients dudx, dudy, dvdx, dvdy (px/px) and, with a time span, the strain rates exx, eyy, exy
// and effective_strain_rate (1/yr, map axes). Invalid nodes are nodata (-9999) with their flag set.
//
// A pair is a work unit described by data (CorrelatePair + CorrelateOptions): it can be run here, in a
// batch, or on a cluster node, with the same result.
#include <optional>
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/correlate/matcher.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::correlate {

/// Nodata value of every band of a correlation result.
inline constexpr float kResultNodata = io::product::kNodata;

/// Band names of a correlation result, in order (velocity bands follow when a time span is given).
const std::vector<std::string>& result_band_names();
/// Bands of the affine shape, after those (and after the velocity bands): the displacement gradients, and
/// with a time span the strain rates.
const std::vector<std::string>& gradient_band_names();
const std::vector<std::string>& strain_rate_band_names();

/// Matching options of a pair correlation by default: the kernel's, with the quality thresholds tuned on
/// real pairs (peak-to-second-peak SNR >= 1.5, correlation >= 0.2; docs/correlate.md) and the highpass
/// prefilter. The defaults of `deforma correlate`.
MatchOptions default_pair_match_options();

struct CorrelateOptions {
  MatchOptions match = default_pair_match_options();  ///< method, chip, search, prefilter, SNR threshold...
  int ref_band = 1;                                   ///< 1-based band of REF (`--band`, or `--ref-band`)
  int sec_band = 1;                                   ///< 1-based band of SEC (`--sec-band`)
  int step_px = 16;                                   ///< node spacing (`--step`)
  std::optional<io::Window> roi;  ///< pixel window of REF to process (`--roi`); whole image when empty
  std::string guess_path;  ///< a-priori displacement raster (dx_px/dy_px bands), any grid of the same CRS
  std::string mask_path;   ///< raster (non-zero = skip) or polygons of areas to skip
  /// Time between the acquisitions in years; when set, velocity bands are added.
  std::optional<double> years_between;
  /// Acquisition dates of REF and SEC, when known: stored in the result (DEFORMA_START_DATE and
  /// DEFORMA_END_DATE metadata, ref_date/sec_date in its parameters) so that filter, invert and a
  /// catalogue can use them, and printed in the report.
  std::optional<io::Date> ref_date, sec_date;
  /// Stable ground (polygons, or a raster where non-zero = stable): the median (co-registration bias) and the
  /// NMAD (1.4826 x median absolute deviation) of dx/dy over the valid nodes there are reported in the
  /// Summary.
  std::string stable_path;
  std::string quicklook_path;  ///< PNG of the displacement (or velocity) magnitude; empty = none
  bool quicklook_arrows = true;
  /// Input kind (`--input-kind`) and the common map grid of GCP-georeferenced pairs (`--grid-crs`,
  /// `--grid-resolution`, `--gcp-transform`): correlate/sar.hpp.
  GridOptions grid;
  /// `--oversample`: 2 interpolates both images by 2 in the frequency domain before matching (ampcor's chip
  /// oversampling; correlate/oversample.hpp), 1 = off.
  int oversample = 1;

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

/// Throws InvalidArgument when the chip or the search does not fit REF (or its region of interest): checked
/// by correlate_pair, and by callers that must refuse such options before they write anything.
void check_fits_image(const CorrelateOptions& options, const io::RasterInfo& ref_info);

/// Correlates REF and SEC into `output` (a COG). Pairs georeferenced by GCPs (Sentinel-1 GRD, SAFE) are
/// first warped onto a common projected map grid, SAR amplitudes in decibels (prepare_pair, sar.hpp); the
/// result is then on that grid. Otherwise SEC is resampled onto REF's grid when their grids or CRS
/// differ (a warning in the Summary says so); pairs that do not overlap are refused. Reports progress over
/// strips, honours cancellation, and never leaves a partial file under `output`.
/// Summary counts: nodes, valid, low_snr, no_texture, masked, search_border, outside_overlap, no_peak;
/// details: statistics of the valid displacements (median, max magnitude in px, m and m/yr) and, with a
/// stable-ground description, stable_nodes, stable_median_dx_px/dy_px and stable_nmad_dx_px/dy_px.
Summary correlate_pair(const std::string& ref_path, const std::string& sec_path, const std::string& output,
                       const CorrelateOptions& options, RunContext& context);

/// Parses a length given in pixels ("20", "20px") or in metres ("300m", "1.5km") into pixels with the
/// pixel size of `grid`. `parameter` names the option in messages.
int parse_length_px(const std::string& text, const io::RasterInfo& grid, const std::string& parameter);

/// Parses `--roi`: "px:COL,ROW,WIDTH,HEIGHT" (pixels of REF) or "XMIN,YMIN,XMAX,YMAX" (in REF's CRS).
/// The result is clipped to REF; an empty intersection is an InvalidArgument.
io::Window parse_roi(const std::string& text, const io::RasterInfo& grid);

}  // namespace deforma::correlate
