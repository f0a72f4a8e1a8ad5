#pragma once
// Monthly cloud-free syntheses (`deforma composite`, docs/composite.md), after Theia's level-3A: for each
// month, the weighted mean of the clear observations of a series of surface-reflectance scenes within a
// window centred on the 15th, weights decreasing linearly with the distance to that date:
//   w = 1 - |date - centre| / (window_days / 2), scenes with |date - centre| < window_days / 2.
// A pixel is clear when its Sentinel-2 L2A scene classification (SCL) is not no data (0), saturated (1),
// cloud shadow (3), cloud (8, 9), cirrus (10) or, optionally, snow (11), and its band values are valid.
// Outputs per month (OUTDIR/composite_YYYY-MM.tif, a COG): one band per input band (the weighted mean, in
// the input's units), clear_count (clear observations) and date_offset_days (the weighted mean of the
// scenes' dates minus the central date). Streamed by windows under the RAM budget.
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/io/dates.hpp"

namespace deforma::timeseries {

/// One scene: its date, its classification raster and its band rasters (all on one grid).
struct CompositeScene {
  io::Date date;
  std::string scl_path;
  std::vector<std::string> band_paths;  ///< in the order of CompositeOptions::band_names
  std::string label;                    ///< the SAFE folder or manifest line, for messages
};

struct CompositeOptions {
  std::vector<std::string> band_names;  ///< e.g. B02, B03, B04
  double window_days = 45;
  bool mask_snow = false;  ///< snow and ice (SCL 11) counted as not clear
  /// Band value meaning no data besides the rasters' own nodata (Sentinel-2 stores it as 0); NaN = none.
  double band_nodata = 0;
  /// Months to synthesize (first days); empty = every month from the first scene's to the last's.
  std::vector<io::Date> months;
  std::string output_dir;
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();

  void validate() const;
};

/// The scenes of Sentinel-2 L2A SAFE folders at `resolution_m` (20 or 60: where SCL exists): the band files
/// `*_<BAND>_<res>m.jp2` and `*_SCL_<res>m.jp2` of the granule's IMG_DATA/R<res>m, the date from the name.
/// Throws InvalidArgument naming the folder and what is missing.
std::vector<CompositeScene> scenes_from_safe(const std::vector<std::string>& safe_dirs,
                                             const std::vector<std::string>& band_names, int resolution_m);

/// The scenes of a CSV manifest with columns date, scl, then one column per band (the header names the
/// bands); relative paths are resolved against the manifest's folder. Returns the band names in `bands`.
std::vector<CompositeScene> scenes_from_manifest(const std::string& csv_path,
                                                 std::vector<std::string>& bands);

/// Writes one composite per month; Summary counts: months, scenes, composites; details per month (scenes
/// used, clear pixels). Throws InvalidArgument when the scenes are not on one grid or no month has a scene.
Summary composite_scenes(const std::vector<CompositeScene>& scenes, const CompositeOptions& options,
                         RunContext& context);

}  // namespace deforma::timeseries
