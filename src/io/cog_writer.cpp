#include "deforma/io/cog_writer.hpp"

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <spdlog/spdlog.h>
#include <tbb/task_arena.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/staged_file.hpp"
#include "staging.hpp"

namespace deforma::io {

int cog_block_size(int block_size, std::size_t bands, int bytes_per_sample) {
  // GDAL 3.6's COG driver interleaves the bands of a tile: a cube of hundreds of dates would hold every
  // date in each tile (79 MB for 256 px and 300 float dates) while it is converted and whenever one date is
  // read. Its tiles are made smaller, down to 64 px, to keep one within kMaxCogTileBytes.
  constexpr double kMaxCogTileBytes = 16.0 * (1 << 20);
  const auto tile_bytes = [&](int side) {
    return static_cast<double>(side) * side * static_cast<double>(bands) * std::max(1, bytes_per_sample);
  };
  while (block_size > 64 && tile_bytes(block_size) > kMaxCogTileBytes) block_size /= 2;
  return block_size;
}
namespace fs = std::filesystem;

namespace {

std::string with_gdal_reason(const std::string& message) {
  const std::string reason = last_gdal_error();
  return reason.empty() ? message : fmt::format("{} ({})", message, reason);
}

// A failed write, with GDAL's reason and, when the folder's disk has (almost) no room left, that cause in
// plain words: GDAL reports a full disk as "TIFFAppendToStrip: Write error". Called before the staged file
// is removed, while the disk is still full.
std::string write_failure(const std::string& path, const std::string& message) {
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  struct statvfs disk {};
  constexpr unsigned long long kAlmostFullBytes = 1ULL << 20;
  if (::statvfs(dir.c_str(), &disk) == 0 &&
      static_cast<unsigned long long>(disk.f_bavail) * disk.f_frsize < kAlmostFullBytes) {
    return with_gdal_reason(message) + fmt::format("; the disk holding {} is full", dir.string());
  }
  return with_gdal_reason(message);
}

}  // namespace

void CogOptions::validate() const {
  if (compression != "DEFLATE" && compression != "ZSTD" && compression != "NONE") {
    throw InvalidArgument(fmt::format("COG compression '{}': expected DEFLATE, ZSTD or NONE", compression));
  }
  if (block_size < 16 || block_size > 4096 || (block_size % 16) != 0) {
    throw InvalidArgument(fmt::format("COG block size {}: expected a multiple of 16 in 16..4096", block_size));
  }
  if (GDALGetDataTypeByName(data_type.c_str()) == GDT_Unknown) {
    throw InvalidArgument(fmt::format("COG data type '{}' is not a GDAL data type", data_type));
  }
}

struct CogWriter::State {
  std::vector<OutputBand> bands;
  GeoTransform geotransform;
  std::string crs_wkt;
  Provenance provenance;
  CogOptions options;
  std::string staging_path;  // tiled GeoTIFF receiving windows
  GDALDataset* staging = nullptr;
  std::mutex mutex;
  bool finished = false;

  void drop() {
    if (staging) {
      GDALClose(staging);
      staging = nullptr;
    }
    remove_quietly(staging_path);
    remove_quietly(staging_path + ".aux.xml");
  }
};

CogWriter::CogWriter(std::string path, int width, int height, std::vector<OutputBand> bands,
                     const GeoTransform& geotransform, std::string crs_wkt, Provenance provenance, CogOptions options)
    : path_(std::move(path)), width_(width), height_(height), state_(std::make_unique<State>()) {
  ensure_gdal_initialized();
  options.validate();
  if (width <= 0 || height <= 0) {
    throw InvalidArgument(fmt::format("{}: output size {}x{} must be positive", path_, width, height));
  }
  if (bands.empty()) throw InvalidArgument(fmt::format("{}: an output needs at least one band", path_));
  check_writable_parent(path_);
  remove_stale_temporaries(path_);
  state_->bands = std::move(bands);
  state_->geotransform = geotransform;
  state_->crs_wkt = std::move(crs_wkt);
  state_->provenance = std::move(provenance);
  state_->options = std::move(options);
  state_->staging_path = temporary_name(path_, "staging");

  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  char** co = nullptr;
  const std::string block = std::to_string(state_->options.block_size);
  co = CSLSetNameValue(co, "TILED", "YES");
  co = CSLSetNameValue(co, "BLOCKXSIZE", block.c_str());
  co = CSLSetNameValue(co, "BLOCKYSIZE", block.c_str());
  co = CSLSetNameValue(co, "COMPRESS", "LZW");  // staging only: fast and keeps the disk footprint modest
  co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
  co = CSLSetNameValue(co, "SPARSE_OK", "TRUE");
  // One band per block: a pixel-interleaved tile of a cube holds every date (a 256 px tile of 300 float
  // dates is 79 MB), which GDAL's block cache then loads whole for a write to any one band.
  co = CSLSetNameValue(co, "INTERLEAVE", "BAND");
  const GDALDataType type = GDALGetDataTypeByName(state_->options.data_type.c_str());
  clear_gdal_error();
  state_->staging = driver->Create(state_->staging_path.c_str(), width, height,
                                   static_cast<int>(state_->bands.size()), type, co);
  CSLDestroy(co);
  if (!state_->staging) {
    remove_quietly(state_->staging_path);
    throw IoError(with_gdal_reason(fmt::format("{}: cannot create the output", path_)));
  }
  auto* ds = state_->staging;
  ds->SetGeoTransform(const_cast<double*>(state_->geotransform.c.data()));
  if (!state_->crs_wkt.empty()) {
    OGRSpatialReference srs;
    if (srs.importFromWkt(state_->crs_wkt.c_str()) == OGRERR_NONE) ds->SetSpatialRef(&srs);
  }
  for (std::size_t b = 0; b < state_->bands.size(); ++b) {
    auto* band = ds->GetRasterBand(static_cast<int>(b) + 1);
    const auto& ob = state_->bands[b];
    band->SetDescription(ob.description.c_str());
    band->SetUnitType(ob.unit.c_str());
    band->SetNoDataValue(ob.nodata);
    // Unwritten areas read as nodata, never as zeros that look like measurements.
    band->Fill(ob.nodata);
  }
}

CogWriter::~CogWriter() {
  if (state_ && !state_->finished) state_->drop();
}

void CogWriter::abandon() {
  std::lock_guard lock(state_->mutex);
  state_->drop();
  state_->finished = true;
}

void CogWriter::write(int band, const Window& window, const GridF& values) {
  std::lock_guard lock(state_->mutex);
  if (!state_->staging) throw IoError(fmt::format("{}: write after finish or abandon", path_));
  if (band < 1 || band > static_cast<int>(state_->bands.size())) {
    throw InvalidArgument(fmt::format("{}: band {} out of range 1..{}", path_, band, state_->bands.size()));
  }
  if (values.width() != window.width || values.height() != window.height) {
    throw InvalidArgument(fmt::format("{}: window {}x{} and values {}x{} differ", path_, window.width, window.height,
                                      values.width(), values.height()));
  }
  if (window.col < 0 || window.row < 0 || window.col + window.width > width_ || window.row + window.height > height_) {
    throw InvalidArgument(fmt::format("{}: window col {} row {} size {}x{} outside the {}x{} output", path_,
                                      window.col, window.row, window.width, window.height, width_, height_));
  }
  clear_gdal_error();
  if (state_->staging->GetRasterBand(band)->RasterIO(GF_Write, window.col, window.row, window.width, window.height,
                                                     const_cast<float*>(values.data()), window.width, window.height,
                                                     GDT_Float32, 0, 0, nullptr) != CE_None) {
    throw IoError(write_failure(path_, fmt::format("{}: writing band {} failed", path_, band)));
  }
}

namespace {
int CPL_STDCALL conversion_progress_trampoline(double fraction, const char*, void* user) {
  auto* fn = static_cast<std::function<bool(double)>*>(user);
  return (*fn)(fraction) ? TRUE : FALSE;
}
}  // namespace

void CogWriter::finish() {
  std::lock_guard lock(state_->mutex);
  if (!state_->staging) throw IoError(fmt::format("{}: finish called twice or after abandon", path_));
  auto* ds = state_->staging;
  write_provenance_metadata(ds, state_->provenance);
  for (const auto& [key, value] : state_->options.metadata) ds->SetMetadataItem(key.c_str(), value.c_str());
  clear_gdal_error();
  ds->FlushCache();
  if (!last_gdal_error().empty()) {
    const std::string message = write_failure(path_, fmt::format("{}: writing the output failed", path_));
    state_->drop();
    state_->finished = true;
    throw IoError(message);
  }

  const std::string partial = temporary_name(path_, "partial");
  const auto& o = state_->options;
  char** co = nullptr;
  co = CSLSetNameValue(co, "COMPRESS", o.compression.c_str());
  if (o.compression != "NONE") co = CSLSetNameValue(co, "PREDICTOR", "YES");
  co = CSLSetNameValue(
      co, "BLOCKSIZE",
      std::to_string(cog_block_size(o.block_size, state_->bands.size(),
                                    GDALGetDataTypeSizeBytes(GDALGetDataTypeByName(o.data_type.c_str()))))
          .c_str());
  co = CSLSetNameValue(co, "OVERVIEWS", o.overviews ? "AUTO" : "NONE");
  co = CSLSetNameValue(co, "RESAMPLING", o.overview_resampling.c_str());
  co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
  // The run's threads (the oneTBB arena io::run_operation runs it in), not every core of the machine: each
  // compression thread holds its own buffers, and a service runs several operations side by side.
  co = CSLSetNameValue(co, "NUM_THREADS",
                       std::to_string(std::max(1, tbb::this_task_arena::max_concurrency())).c_str());
  auto* cog = GetGDALDriverManager()->GetDriverByName("COG");
  // Without a callback of the caller's, an interrupt (SIGINT/SIGTERM in the CLI) still stops the conversion.
  std::function<bool(double)> progress =
      o.conversion_progress ? o.conversion_progress : [](double) { return !cancellation_requested(); };
  GDALDataset* out = cog->CreateCopy(partial.c_str(), ds, FALSE, co, conversion_progress_trampoline, &progress);
  CSLDestroy(co);
  bool ok = out != nullptr;
  if (out) {
    clear_gdal_error();
    GDALClose(out);
    if (!last_gdal_error().empty()) ok = false;
  }
  if (!ok) {
    const bool cancelled = cancellation_requested() ||
                           last_gdal_error().find("nterrupt") != std::string::npos ||
                           last_gdal_error().find("ancel") != std::string::npos;
    const std::string message =
        write_failure(partial, fmt::format("{}: writing the Cloud-Optimized GeoTIFF failed", path_));
    remove_quietly(partial);
    state_->drop();
    state_->finished = true;
    if (cancelled) throw Cancelled(fmt::format("{}: writing cancelled; no output written", path_));
    throw IoError(message);
  }
  state_->drop();
  state_->finished = true;
  // Per-band nodata values that a GeoTIFF cannot hold go to a sidecar (.aux.xml): it follows the file.
  std::error_code ec;
  const std::string sidecar = partial + ".aux.xml";
  if (std::filesystem::exists(sidecar, ec)) {
    if (!OutputCommitGroup::hold(sidecar, path_ + ".aux.xml")) {
      std::filesystem::rename(sidecar, path_ + ".aux.xml", ec);
      if (ec) remove_quietly(sidecar);
    }
  } else {
    remove_quietly(path_ + ".aux.xml");  // a stale sidecar of an earlier run would override this file's
  }
  rename_into_place(partial, path_);
}

void write_cog(const std::string& path, const std::vector<const GridF*>& bands_values,
               const std::vector<OutputBand>& bands, const GeoTransform& geotransform, const std::string& crs_wkt,
               const Provenance& provenance, CogOptions options) {
  if (bands_values.size() != bands.size() || bands.empty()) {
    throw InvalidArgument(fmt::format("{}: {} value grids for {} bands", path, bands_values.size(), bands.size()));
  }
  const int w = bands_values.front()->width(), h = bands_values.front()->height();
  CogWriter writer(path, w, h, bands, geotransform, crs_wkt, provenance, std::move(options));
  for (std::size_t b = 0; b < bands.size(); ++b) {
    writer.write(static_cast<int>(b) + 1, Window{0, 0, w, h}, *bands_values[b]);
  }
  writer.finish();
}

}  // namespace deforma::io
