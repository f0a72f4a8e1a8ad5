#pragma once
// Writing results as Cloud-Optimized GeoTIFF. Windows are written as they are computed into a tiled
// temporary GeoTIFF in the target folder (memory stays bounded); finish() converts it with GDAL's COG
// driver (tiled, overviews, DEFLATE or ZSTD with predictor) into another temporary name, then renames it
// to the final name. A run that fails or is abandoned never leaves a file under the final name.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "deforma/core/grid.hpp"
#include "deforma/io/provenance.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::io {

struct OutputBand {
  std::string description;  ///< e.g. "dx_px"
  std::string unit;         ///< e.g. "px", "m", "m/yr"
  double nodata = -9999.0;
};

struct CogOptions {
  std::string compression = "DEFLATE";  ///< DEFLATE or ZSTD (both with predictor), or NONE
  int block_size = 256;  ///< of the staging file; the COG's, smaller for many bands (cog_block_size)
  bool overviews = true;
  std::string overview_resampling = "AVERAGE";  ///< NEAREST for categorical bands (flags)
  std::string data_type = "Float32";            ///< GDAL name, the same for all bands of a GeoTIFF
  std::map<std::string, std::string> metadata;  ///< extra default-domain items
  /// Called with the fraction done of the final COG conversion; returning false cancels the write.
  std::function<bool(double)> conversion_progress;

  void validate() const;
};

/// The tile size of a COG of `bands` bands: `block_size`, halved (down to 64 px) while one tile of every band
/// exceeds 16 MiB, since the COG format of GDAL 3.6 interleaves the bands of a tile.
int cog_block_size(int block_size, std::size_t bands, int bytes_per_sample);

class CogWriter {
 public:
  /// Prepares `path` (the final name) for a width x height raster with `bands`. Checks at once that the
  /// folder exists and is writable (IoError naming it) and that the options are valid.
  CogWriter(std::string path, int width, int height, std::vector<OutputBand> bands,
            const GeoTransform& geotransform, std::string crs_wkt, Provenance provenance,
            CogOptions options = {});
  CogWriter(const CogWriter&) = delete;
  CogWriter& operator=(const CogWriter&) = delete;
  /// Removes the temporary files when finish() was not reached.
  ~CogWriter();

  /// Writes `values` (window.width x window.height) into band `band` (1-based). Thread-safe.
  void write(int band, const Window& window, const GridF& values);
  /// Converts to COG, then atomically renames to the final path. Throws IoError on failure, Cancelled when
  /// the progress callback said stop; the final name is never left half-written.
  void finish();
  /// Drops everything written so far (same as destruction without finish()).
  void abandon();

  const std::string& path() const { return path_; }
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  struct State;
  std::string path_;
  int width_;
  int height_;
  std::unique_ptr<State> state_;
};

/// Convenience for small results: writes whole grids (one per band) as a COG at once.
void write_cog(const std::string& path, const std::vector<const GridF*>& bands_values,
               const std::vector<OutputBand>& bands, const GeoTransform& geotransform,
               const std::string& crs_wkt, const Provenance& provenance, CogOptions options = {});

}  // namespace deforma::io
