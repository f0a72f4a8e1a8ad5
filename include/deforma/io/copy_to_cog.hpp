#pragma once
// Copying bands of any raster GDAL reads into a Cloud-Optimized GeoTIFF (float32, nodata -9999), streamed
// window by window within the memory budget: the library side of `deforma cog`.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "deforma/core/progress.hpp"
#include "deforma/io/cog_writer.hpp"

namespace deforma::io {

struct CopyToCogOptions {
  std::string input;
  std::string output;
  std::optional<int> band;  ///< 1-based; every band when absent
  CogOptions cog;
  Provenance provenance;
  std::size_t ram_budget_mb = 1024;  ///< --ram
  int threads = 0;                   ///< windows computed at once; 0 = the current task arena's slots
  Progress* progress = nullptr;      ///< null = silent; a stop request cancels the copy
};

struct CopyToCogSummary {
  int bands = 0;
  std::size_t windows = 0;  ///< per band
  std::int64_t valid_pixels = 0;
  std::int64_t nodata_pixels = 0;  ///< pixels invalid in the input (nodata, NaN, masked), all bands
};

/// Copies the band(s) into `output`, invalid pixels as nodata -9999, with provenance metadata. Throws
/// InvalidArgument for a band the input lacks, IoError/FormatError for unreadable input or unwritable
/// output, Cancelled when stopped (no output is left).
CopyToCogSummary copy_to_cog(const CopyToCogOptions& options);

}  // namespace deforma::io
