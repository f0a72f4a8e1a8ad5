#pragma once
// Raster access on GDAL: open any raster GDAL reads (GeoTIFF, COG, Sentinel-2 JP2, VRT, and JPEG/PNG
// without georeferencing, accepted in pixel units), describe it, and read windows of a band as float32
// with a validity mask. Windows may extend past the raster edges (halos): the outside is invalid.
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/grid.hpp"

namespace deforma::io {

/// A rectangle of pixels: columns [col, col + width), rows [row, row + height).
struct Window {
  int col = 0;
  int row = 0;
  int width = 0;
  int height = 0;

  long long pixel_count() const { return static_cast<long long>(width) * height; }
  bool empty() const { return width <= 0 || height <= 0; }
  Window intersect(const Window& other) const;
  bool operator==(const Window&) const = default;
};

/// GDAL's affine geotransform: x = c0 + col*c1 + row*c2, y = c3 + col*c4 + row*c5, where (col, row) is
/// a position in pixel coordinates (the top-left corner of pixel (0,0) is (0,0); its centre (0.5,0.5)).
struct GeoTransform {
  std::array<double, 6> c{0.0, 1.0, 0.0, 0.0, 0.0, 1.0};

  void pixel_to_map(double col, double row, double& x, double& y) const;
  /// Throws NumericalError when the transform is not invertible.
  void map_to_pixel(double x, double y, double& col, double& row) const;
  /// Map-space displacement of a pixel-space displacement (rotation terms included, no translation).
  void pixel_delta_to_map(double dcol, double drow, double& dx, double& dy) const;
  bool has_rotation() const { return c[2] != 0.0 || c[4] != 0.0; }
  /// Geotransform of a grid sampling this one every `step` pixels, first sample centred at
  /// (first_col + 0.5, first_row + 0.5) of this grid; each new pixel is `step` pixels wide.
  GeoTransform node_grid(double first_col, double first_row, double step) const;
};

struct BandInfo {
  int index = 1;                 ///< 1-based, as in GDAL
  std::string data_type;         ///< GDAL name: "UInt16", "Float32"...
  std::optional<double> nodata;  ///< declared nodata value
  int block_width = 0;
  int block_height = 0;
  std::string description;
  std::string unit;
  bool has_mask_band = false;  ///< a per-dataset or per-band GDAL mask (not just nodata/alpha)
};

struct RasterInfo {
  std::string path;
  std::string driver;  ///< GDAL short name
  int width = 0;
  int height = 0;
  std::vector<BandInfo> bands;
  bool georeferenced = false;  ///< false: pixel units (identity geotransform)
  GeoTransform geotransform;
  std::string crs_wkt;       ///< empty when unknown
  std::optional<int> epsg;   ///< when the CRS has an EPSG code
  std::string crs_name;      ///< e.g. "WGS 84 / UTM zone 7N"
  double pixel_size_x_m = 0; ///< ground size of a pixel along a row, metres (0 when unknown)
  double pixel_size_y_m = 0; ///< ground size of a pixel along a column, metres (0 when unknown)
  std::map<std::string, std::string> metadata;  ///< default-domain metadata (TIFF tags such as DATETIME)

  int band_count() const { return static_cast<int>(bands.size()); }
  nlohmann::json to_json() const;
  std::string to_text() const;
};

/// A window of one band: values as float32 and a mask (1 = valid, 0 = nodata/NaN/masked/outside).
struct BandWindow {
  Window window;
  GridF values;
  GridU8 valid;
};

enum class Resampling { kNearest, kBilinear, kCubic, kLanczos, kAverage };

/// An open raster dataset. Not thread-safe: open one Raster per thread (cheap; GDAL caches blocks).
class Raster {
 public:
  /// Opens `path` read-only. Throws IoError (missing, unreadable, a folder) or FormatError (not a raster,
  /// truncated). Rasters without georeferencing open in pixel units with a warning logged.
  static Raster open(const std::string& path);
  /// Wraps an open GDALDataset* (takes ownership); `label` names it in messages.
  static Raster adopt(void* gdal_dataset, const std::string& label);

  Raster(Raster&&) noexcept;
  Raster& operator=(Raster&&) noexcept;
  ~Raster();

  const RasterInfo& info() const { return info_; }
  const std::string& path() const { return info_.path; }

  /// Reads `window` of `band` (1-based) as float32 plus validity. Parts outside the raster are invalid.
  /// Throws InvalidArgument for a band out of range, IoError when GDAL fails to read (names file, band).
  BandWindow read(int band, const Window& window) const;
  /// Reads `window` of several bands at once, in the order given. Prefer it to one read per band: the
  /// window is read block by block with every band of a block together, so a file whose bands share each
  /// block (a pixel-interleaved COG, as deforma writes its products) is decompressed once, not once per
  /// band (which, when the window outgrows GDAL's block cache, costs each block again per band).
  std::vector<BandWindow> read(const std::vector<int>& bands, const Window& window) const;
  /// Convenience: the whole band.
  BandWindow read_all(int band) const;
  /// Throws InvalidArgument naming the file when `band` is not in [1, band_count].
  void check_band(int band, const std::string& parameter = "band") const;

  /// The underlying GDALDataset* (for other io functions).
  void* gdal_handle() const { return dataset_; }

 private:
  friend Raster resample_to_grid(const std::string&, const RasterInfo&, Resampling);
  Raster() = default;
  void* dataset_ = nullptr;
  void* source_dataset_ = nullptr;  ///< kept open for a warped VRT that reads from it
  RasterInfo info_;
};

/// Describes a raster without keeping it open.
RasterInfo describe(const std::string& path);

/// The band `name` designates in `info`: a number is a 1-based index, anything else a band description
/// compared case-insensitively. Returns 0 when no band has that description (the caller says what it
/// wanted); throws FormatError naming the file, `what` (the parameter or role) and the band count for an
/// index that is not a band.
int find_band(const RasterInfo& info, const std::string& name, const std::string& what);

/// The bands' descriptions ("#N" for a band without one), comma-separated: what a message offers instead.
std::string band_names(const RasterInfo& info);

/// Resamples `source` onto the grid of `reference` (size, geotransform, CRS) as a warped VRT: nothing is
/// computed until windows are read, so it streams. Throws InvalidArgument when the two do not overlap.
Raster resample_to_grid(const std::string& source, const RasterInfo& reference,
                        Resampling resampling = Resampling::kBilinear);

/// True when the two rasters share size, geotransform (to 1e-9 of a pixel) and CRS.
bool same_grid(const RasterInfo& a, const RasterInfo& b);

/// The overlap of `b` in `a`'s pixel coordinates (empty window when none); `b`'s footprint is
/// reprojected into `a`'s CRS when both have one.
Window overlap_window(const RasterInfo& a, const RasterInfo& b);

}  // namespace deforma::io
