#pragma once
// SAR amplitude inputs of `deforma correlate`: product recognition (Sentinel-1 names, SAFE folders and
// zips, GCP-only float backscatter), acquisition times to the second, polarization checks, and the
// preparation of a pair for matching: both images warped with their GCPs onto one projected map grid over
// their overlap (io/gcp_grid.hpp), SAR amplitudes in decibels (speckle becomes additive and the highpass
// prefilter then sees textures of comparable contrast in dark and bright ice). docs/correlate.md, "SAR
// amplitude".
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  /// A grid chosen by the caller for a whole series (the pipeline's series_map_grid): every pair of the
  /// series is warped onto it instead of onto its own overlap, so that all results share one node grid.
  std::optional<io::MapGrid> fixed;
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
  std::string relative_orbit;    ///< relative orbit (1..175): SAFE manifest, or from the absolute orbit
  int absolute_orbit = 0;        ///< from a full Sentinel-1 product name; 0 when unknown
  std::optional<double> time_s;  ///< acquisition start, seconds since 1970-01-01 UTC
  std::string time_source;       ///< where time_s came from
};

/// Reads what `path` (a raster, a Sentinel-1 SAFE folder or zip, or its manifest.safe) says about itself.
/// `polarization` picks the measurement of a dual-polarization SAFE ("HV"; empty = the cross-polarized
/// one when present, else the first). Throws IoError / FormatError naming the file.
SarProduct inspect_product(const std::string& path, const std::string& polarization = "");

/// Relative orbit (1..175) of a Sentinel-1 absolute orbit number: S1A mod(abs - 73, 175) + 1, S1B
/// mod(abs - 27, 175) + 1 (ESA Mission Performance Centre, given on the ESA STEP forum, "Sentinel 1
/// relative orbit from filename"). Empty for other platforms, whose offset is not known here.
std::optional<int> s1_relative_orbit(const std::string& platform, int absolute_orbit);

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
  io::GcpTransform gcp_transform = io::GcpTransform::kPolynomial3;  ///< used for the warp (map_grid)
  std::string polarization;                                         ///< of both images; empty when unknown

 private:
  friend PreparedPair prepare_pair(const std::string&, const std::string&, const CorrelateOptions&, Summary*);
  std::string scratch_;  ///< /vsimem/ folder of the VRTs
};

/// What a result says of its inputs: {"input_kind", "polarization", "map_grid": null or {"crs", "crs_wkt",
/// "resolution_m", "origin": [x, y] (the grid's top-left corner), "width_px", "height_px"},
/// "gcp_transform": null or "poly3"...}. Added to the result's provenance parameters (`input`) and, for
/// `gdalinfo` readers, as the metadata items DEFORMA_INPUT_KIND and DEFORMA_MAP_GRID (JSON; only on a map
/// grid) and DEFORMA_GCP_TRANSFORM.
nlohmann::json input_provenance(const PreparedPair& prepared);
void add_input_provenance(const PreparedPair& prepared, nlohmann::json& parameters,
                          std::map<std::string, std::string>& metadata);

/// Resolves the input kind of a pair (`auto`: SAR when either file is recognised as SAR by
/// inspect_product). Throws InvalidArgument when the two disagree under `auto`.
InputKind resolve_input_kind(InputKind requested, const SarProduct& ref, const SarProduct& sec);

/// Prepares REF and SEC for matching (see the header comment). Optical pairs with geotransforms are passed
/// through unchanged. Throws InvalidArgument, naming the file and what was expected, for complex (SLC)
/// data given as amplitude, rasters with neither a geotransform nor GCPs when a map grid is needed,
/// mismatched polarizations, and pairs that do not overlap. `summary` (may be null) receives warnings.
PreparedPair prepare_pair(const std::string& ref_path, const std::string& sec_path,
                          const CorrelateOptions& options, Summary* summary);

/// The common map grid of a whole series (`deforma pipeline`): the overlap of the footprints of every
/// image, when any of them is georeferenced by GCPs only or `options.crs` asks for a map grid; empty
/// otherwise (the images are matched on their own grid). Each path may be a raster or a SAFE product.
std::optional<io::MapGrid> series_map_grid(const std::vector<std::string>& paths, const GridOptions& options);

/// The grid the pair will be matched on, without warping anything: REF's own description, or the common
/// map grid of a GCP-georeferenced pair. For options given in metres or map coordinates (`--search 2km`,
/// `--roi`).
io::RasterInfo matching_grid(const std::string& ref_path, const std::string& sec_path,
                             const CorrelateOptions& options);

}  // namespace deforma::correlate
