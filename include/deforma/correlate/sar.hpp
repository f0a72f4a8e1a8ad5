#pragma once
// SAR amplitude inputs of `deforma correlate`: product recognition (Sentinel-1 names, SAFE folders and
// zips, GCP-only float backscatter), acquisition times to the second, polarization checks, and the
// preparation of a pair for matching: both images warped with their GCPs onto one projected map grid over
// their overlap (io/gcp_grid.hpp), SAR amplitudes in decibels (speckle becomes additive and the highpass
// prefilter then sees textures of comparable contrast in dark and bright ice). docs/correlate.md, "SAR
// amplitude".
#include <optional>
#include <string>

#include "deforma/core/summary.hpp"
#include "deforma/correlate/matcher.hpp"
#include "deforma/io/gcp_grid.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::correlate {

struct CorrelateOptions;

enum class InputKind { kAuto, kOptical, kSar };
InputKind parse_input_kind(const std::string& text);  ///< "auto", "optical", "sar"
std::string to_string(InputKind kind);

/// Where the pair is matched: on REF's grid (SEC resampled onto it when needed), or on a common projected
/// map grid built from the GCPs of both.
struct GridOptions {
  InputKind input_kind = InputKind::kAuto;
  std::string crs;          ///< `--grid-crs`; empty = polar stereographic / UTM from the footprint
  double resolution_m = 0;  ///< `--grid-resolution`; 0 = the finer input's pixel spacing
  io::GcpTransform transform = io::GcpTransform::kPolynomial3;  ///< `--gcp-transform`
};

/// What a file says about itself as a SAR product.
struct SarProduct {
  std::string path;              ///< as given
  std::string raster_path;       ///< the measurement raster (the SAFE's tiff, or `path`)
  bool sar = false;              ///< recognised as SAR (name, SAFE, metadata)
  bool complex = false;          ///< complex samples (SLC)
  bool gcps_only = false;        ///< georeferenced by GCPs only
  std::string platform;          ///< "S1A", "S1B"... (name or annotation)
  std::string polarization;      ///< "HH", "HV", "VV", "VH"; empty when unknown
  std::string relative_orbit;    ///< SAFE manifest's relative orbit, when read
  std::optional<double> time_s;  ///< acquisition start, seconds since 1970-01-01 UTC
  std::string time_source;       ///< where time_s came from
};

/// Reads what `path` (a raster, a Sentinel-1 SAFE folder or zip, or its manifest.safe) says about itself.
/// `polarization` picks the measurement of a dual-polarization SAFE ("HV"; empty = the cross-polarized
/// one when present, else the first). Throws IoError / FormatError naming the file.
SarProduct inspect_product(const std::string& path, const std::string& polarization = "");

/// Acquisition time (seconds since 1970-01-01 UTC) of an image when it carries one: SAFE annotation
/// startTime, `time_coverage_start` metadata, ACQUISITION_START_TIME, or a Sentinel-1 name's
/// YYYYMMDDTHHMMSS. Empty when none is found.
std::optional<double> acquisition_time_s(const std::string& path);

/// The matching options for SAR amplitude: larger chips against speckle unless the caller chose a chip,
/// and thresholds suited to speckle (docs/correlate.md).
MatchOptions sar_match_options(MatchOptions options);

/// A pair ready for the matcher: the paths and bands to read. When the pair was warped onto a map grid,
/// the paths are VRTs in GDAL's in-memory file system, removed when this object goes away.
class PreparedPair {
 public:
  PreparedPair() = default;
  PreparedPair(const PreparedPair&) = delete;
  PreparedPair& operator=(const PreparedPair&) = delete;
  PreparedPair(PreparedPair&& other) noexcept;
  PreparedPair& operator=(PreparedPair&& other) noexcept;
  ~PreparedPair();

  std::string ref_path, sec_path;
  int ref_band = 1, sec_band = 1;
  InputKind kind = InputKind::kOptical;
  bool map_grid = false;  ///< warped onto a common grid (`grid` describes it)
  io::MapGrid grid;

 private:
  friend PreparedPair prepare_pair(const std::string&, const std::string&, const CorrelateOptions&, Summary*);
  std::string scratch_;  ///< /vsimem/ folder of the VRTs
};

/// Resolves the input kind of a pair (`auto`: SAR when either file is recognised as SAR by
/// inspect_product). Throws InvalidArgument when the two disagree under `auto`.
InputKind resolve_input_kind(InputKind requested, const SarProduct& ref, const SarProduct& sec);

/// Prepares REF and SEC for matching (see the header comment). Optical pairs with geotransforms are passed
/// through unchanged. Throws InvalidArgument, naming the file and what was expected, for complex (SLC)
/// data given as amplitude, rasters with neither a geotransform nor GCPs when a map grid is needed,
/// mismatched polarizations, and pairs that do not overlap. `summary` (may be null) receives warnings.
PreparedPair prepare_pair(const std::string& ref_path, const std::string& sec_path,
                          const CorrelateOptions& options, Summary* summary);

/// The grid the pair will be matched on, without warping anything: REF's own description, or the common
/// map grid of a GCP-georeferenced pair. For options given in metres or map coordinates (`--search 2km`,
/// `--roi`).
io::RasterInfo matching_grid(const std::string& ref_path, const std::string& sec_path,
                             const CorrelateOptions& options);

}  // namespace deforma::correlate
