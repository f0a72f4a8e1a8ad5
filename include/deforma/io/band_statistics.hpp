#pragma once
// Statistics of one raster band (valid pixels, min, max, mean, standard deviation), streamed window by
// window within the memory budget: the library side of `deforma stats`.
#include <cstddef>
#include <cstdint>
#include <string>

#include "deforma/core/progress.hpp"

namespace deforma::io {

struct BandStatisticsOptions {
  std::string path;
  int band = 1;                      ///< 1-based
  std::size_t ram_budget_mb = 1024;  ///< --ram
  int threads = 0;                   ///< windows computed at once; 0 = the current task arena's slots
  Progress* progress = nullptr;      ///< null = silent; a stop request cancels the run
};

struct BandStatistics {
  std::int64_t pixels = 0;  ///< all pixels of the band
  std::int64_t valid = 0;   ///< pixels that are not nodata, NaN or masked
  /// Over the valid pixels; meaningless when `valid` is 0.
  double min = 0, max = 0, mean = 0, stddev = 0;
};

/// The statistics of `band` of `path`, merged in window order (the same for any thread count). Throws
/// InvalidArgument for a band the file lacks, IoError/FormatError for an unreadable file, Cancelled when
/// stopped.
BandStatistics band_statistics(const BandStatisticsOptions& options);

}  // namespace deforma::io
