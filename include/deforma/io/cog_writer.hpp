#pragma once
// Writing results as Cloud-Optimized GeoTIFF. Windows are written as they are computed into a tiled
// temporary GeoTIFF in the target folder (memory stays bounded); finish() converts it with GDAL's COG
// driver (tiled, overviews, DEFLATE or ZSTD with predictor) into another temporary name, then renames it
// to the final name. A run that fails or is abandoned never leaves a file under the final name.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/grid.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::io {

/// Where an output came from, written into its metadata.
struct Provenance {
  std::string command_line;
  nlohmann::json parameters = nlohmann::json::object();
  std::vector<std::string> inputs;  ///< paths; size and modification time are added when written

  /// {"software": "deforma", "version": ..., "command": ..., "parameters": ..., "inputs": [...]}
  nlohmann::json to_json() const;
};

/// Adds provenance as metadata items DEFORMA_VERSION, DEFORMA_COMMAND, DEFORMA_PARAMETERS (JSON) and
/// DEFORMA_INPUTS (JSON with size and mtime) on an open GDALDataset*.
void write_provenance_metadata(void* gdal_dataset, const Provenance& provenance);

struct OutputBand {
  std::string description;  ///< e.g. "dx_px"
  std::string unit;         ///< e.g. "px", "m", "m/yr"
  double nodata = -9999.0;
};

struct CogOptions {
  std::string compression = "DEFLATE";  ///< DEFLATE or ZSTD (both with predictor), or NONE
  int block_size = 256;
  bool overviews = true;
  std::string overview_resampling = "AVERAGE";  ///< NEAREST for categorical bands (flags)
  std::string data_type = "Float32";            ///< GDAL name, the same for all bands of a GeoTIFF
  std::map<std::string, std::string> metadata;  ///< extra default-domain items
  /// Called with the fraction done of the final COG conversion; returning false cancels the write.
  std::function<bool(double)> conversion_progress;

  void validate() const;
};

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

/// A file written under a hidden temporary name beside its final name (same folder, so that the rename is
/// atomic) and moved into place by commit(); a StagedFile destroyed before commit() removes its temporary
/// file. The building block of every output that must never be found half-written under its final name.
class StagedFile {
 public:
  /// Checks that the parent folder of `final_path` exists and is writable (IoError naming it).
  explicit StagedFile(std::string final_path, const char* tag = "partial");
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  /// Renames the temporary file to the final name (replacing an older file). IoError on failure, after
  /// which the temporary file is removed.
  void commit();
  /// Removes the temporary file now.
  void discard();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool done_ = false;
};

/// Writes to `final_path` through a temporary name in the same folder: `writer` receives the temporary
/// path; after it returns, the file is renamed; on exception it is removed. For any output format.
void write_atomically(const std::string& final_path, const std::function<void(const std::string&)>& writer);

/// Writes `text` to `path` through a temporary name in the same folder and a rename, so a reader never sees
/// half of it. Made for small records written often: no scan for stale temporaries. Throws IoError naming
/// the file when it cannot be written (disk full, folder missing or not writable).
void write_text_atomically(const std::string& path, const std::string& text);

/// The JSON document in `path`; null when the file is missing or not (yet) valid JSON.
nlohmann::json read_json_file(const std::string& path);

/// Throws IoError naming the folder when the parent folder of `path` is missing or not writable.
void check_writable_parent(const std::string& path, const std::string& what = "output");

}  // namespace deforma::io
