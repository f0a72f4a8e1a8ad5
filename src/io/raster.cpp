#include "deforma/io/raster.hpp"

#include <strings.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <filesystem>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <gdal_utils.h>
#include <gdalwarper.h>
#include <ogr_spatialref.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_error_trap.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::io {

Window Window::intersect(const Window& other) const {
  const int c0 = std::max(col, other.col), r0 = std::max(row, other.row);
  const int c1 = std::min(col + width, other.col + other.width);
  const int r1 = std::min(row + height, other.row + other.height);
  if (c1 <= c0 || r1 <= r0) return Window{c0, r0, 0, 0};
  return Window{c0, r0, c1 - c0, r1 - r0};
}

void GeoTransform::pixel_to_map(double col, double row, double& x, double& y) const {
  x = c[0] + col * c[1] + row * c[2];
  y = c[3] + col * c[4] + row * c[5];
}

void GeoTransform::map_to_pixel(double x, double y, double& col, double& row) const {
  const double det = c[1] * c[5] - c[2] * c[4];
  if (det == 0.0 || !std::isfinite(det)) throw NumericalError("geotransform is not invertible");
  const double dx = x - c[0], dy = y - c[3];
  col = (c[5] * dx - c[2] * dy) / det;
  row = (-c[4] * dx + c[1] * dy) / det;
}

void GeoTransform::pixel_delta_to_map(double dcol, double drow, double& dx, double& dy) const {
  dx = dcol * c[1] + drow * c[2];
  dy = dcol * c[4] + drow * c[5];
}

GeoTransform GeoTransform::node_grid(double first_col, double first_row, double step) const {
  // The node (i, j) sits at pixel centre (first_col + 0.5 + i*step, first_row + 0.5 + j*step); the node
  // grid's pixel (i, j) must have that point as its centre, so its top-left corner is half a step before.
  const double origin_col = first_col + 0.5 - step / 2.0;
  const double origin_row = first_row + 0.5 - step / 2.0;
  GeoTransform g;
  pixel_to_map(origin_col, origin_row, g.c[0], g.c[3]);
  g.c[1] = c[1] * step;
  g.c[2] = c[2] * step;
  g.c[4] = c[4] * step;
  g.c[5] = c[5] * step;
  return g;
}

namespace {

GDALDataset* as_dataset(void* handle) { return static_cast<GDALDataset*>(handle); }

std::string with_gdal_reason(const std::string& message) {
  const std::string reason = last_gdal_error();
  return reason.empty() ? message : fmt::format("{} ({})", message, reason);
}

// Turns a failed open into a message a user can act on: missing, a folder, empty, or not a raster.
[[noreturn]] void throw_open_failure(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path p(path);
  const bool is_virtual = path.rfind("/vsi", 0) == 0 || path.find(':') != std::string::npos;
  if (!is_virtual) {
    if (!std::filesystem::exists(p, ec)) throw IoError(fmt::format("{}: no such file", path));
    if (std::filesystem::is_directory(p, ec)) {
      throw IoError(fmt::format("{}: is a folder, expected a raster file", path));
    }
    if (::access(path.c_str(), R_OK) != 0) throw IoError(fmt::format("{}: permission denied", path));
    if (std::filesystem::file_size(p, ec) == 0) throw FormatError(fmt::format("{}: empty file, expected a raster", path));
  }
  throw FormatError(with_gdal_reason(fmt::format("{}: not a raster GDAL can read", path)));
}

double metres_per_unit(const OGRSpatialReference& srs, bool& known) {
  known = true;
  if (srs.IsProjected()) return srs.GetLinearUnits();
  if (srs.IsGeographic()) {
    known = false;  // degrees: depends on latitude, computed by the caller
    return 0;
  }
  known = false;
  return 0;
}

RasterInfo build_info(GDALDataset* ds, const std::string& path) {
  RasterInfo info;
  info.path = path;
  info.driver = ds->GetDriver() ? ds->GetDriver()->GetDescription() : "";
  info.width = ds->GetRasterXSize();
  info.height = ds->GetRasterYSize();
  double gt[6];
  const bool has_gt = ds->GetGeoTransform(gt) == CE_None;
  if (has_gt) std::copy(gt, gt + 6, info.geotransform.c.begin());
  const OGRSpatialReference* srs = ds->GetSpatialRef();
  if (srs && !srs->IsEmpty()) {
    char* wkt = nullptr;
    const char* options[] = {"FORMAT=WKT2_2019", nullptr};
    srs->exportToWkt(&wkt, options);
    info.crs_wkt = wkt ? wkt : "";
    CPLFree(wkt);
    info.crs_name = srs->GetName() ? srs->GetName() : "";
    OGRSpatialReference copy(*srs);
    if (copy.AutoIdentifyEPSG() == OGRERR_NONE || copy.GetAuthorityCode(nullptr)) {
      const char* auth = copy.GetAuthorityName(nullptr);
      const char* code = copy.GetAuthorityCode(nullptr);
      if (auth && code && std::string(auth) == "EPSG") info.epsg = std::atoi(code);
    }
  }
  info.georeferenced = has_gt && !info.crs_wkt.empty();
  if (!has_gt) info.geotransform = GeoTransform{};
  // Ground pixel size: lengths of the geotransform's column and row vectors, in metres.
  const double sx = std::hypot(info.geotransform.c[1], info.geotransform.c[4]);
  const double sy = std::hypot(info.geotransform.c[2], info.geotransform.c[5]);
  if (srs && !srs->IsEmpty()) {
    bool known = false;
    const double to_m = metres_per_unit(*srs, known);
    if (known) {
      info.pixel_size_x_m = sx * to_m;
      info.pixel_size_y_m = sy * to_m;
    } else if (srs->IsGeographic()) {
      // Degrees: use the latitude of the raster centre on a sphere of the ellipsoid's semi-major axis.
      double cx, cy;
      info.geotransform.pixel_to_map(info.width / 2.0, info.height / 2.0, cx, cy);
      const double a = srs->GetSemiMajor();
      const double deg = M_PI / 180.0 * a;
      info.pixel_size_x_m = sx * deg * std::cos(cy * M_PI / 180.0);
      info.pixel_size_y_m = sy * deg;
    }
  }
  for (int b = 1; b <= ds->GetRasterCount(); ++b) {
    GDALRasterBand* band = ds->GetRasterBand(b);
    BandInfo bi;
    bi.index = b;
    bi.data_type = GDALGetDataTypeName(band->GetRasterDataType());
    int has_nodata = 0;
    const double nodata = band->GetNoDataValue(&has_nodata);
    if (has_nodata) bi.nodata = nodata;
    band->GetBlockSize(&bi.block_width, &bi.block_height);
    bi.description = band->GetDescription() ? band->GetDescription() : "";
    bi.unit = band->GetUnitType() ? band->GetUnitType() : "";
    const int flags = band->GetMaskFlags();
    bi.has_mask_band = (flags & (GMF_ALL_VALID | GMF_NODATA)) == 0;
    info.bands.push_back(bi);
  }
  if (char** md = ds->GetMetadata(); md) {
    for (int i = 0; md[i]; ++i) {
      char* key = nullptr;
      const char* value = CPLParseNameValue(md[i], &key);
      if (key && value) info.metadata[key] = value;
      CPLFree(key);
    }
  }
  return info;
}

// Said for the first few files only: a series of JPEGs (or of the products made from them) would otherwise
// repeat the same line hundreds of times.
void warn_pixel_units(const std::string& label) {
  static std::mutex mutex;
  static std::set<std::string> reported;
  static bool silenced = false;
  constexpr std::size_t kMaxReported = 3;
  std::lock_guard lock(mutex);
  if (silenced || reported.count(label)) return;
  if (reported.size() == kMaxReported) {
    run_log()->warn("more rasters without georeferencing: working in pixel units (not reported further)");
    silenced = true;
    return;
  }
  reported.insert(label);
  run_log()->warn("{}: no georeferencing; working in pixel units", label);
}

// Complex bands (SAR SLCs: CInt16, CFloat32) are read as their amplitude: the real part alone is not
// what a correlation or a statistic is meant on. Said once per file and band.
void warn_complex_amplitude(const std::string& label, int band, const char* type) {
  static std::mutex mutex;
  static std::set<std::string> reported;
  std::lock_guard lock(mutex);
  if (!reported.insert(fmt::format("{}#{}", label, band)).second) return;
  run_log()->warn("{}: band {} is complex ({}); using its amplitude", label, band, type);
}

}  // namespace

Raster Raster::open(const std::string& path) {
  ensure_gdal_initialized();
  clear_gdal_error();
  if (path.empty()) throw InvalidArgument("raster path is empty");
  check_input_path(path);  // before GDAL opens it: a FIFO would block, a device never end
  auto* ds = static_cast<GDALDataset*>(GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
  if (!ds) throw_open_failure(path);
  if (ds->GetRasterCount() < 1) {
    GDALClose(ds);
    throw FormatError(fmt::format("{}: holds no raster band", path));
  }
  return adopt(ds, path);
}

Raster Raster::adopt(void* gdal_dataset, const std::string& label) {
  Raster r;
  r.dataset_ = gdal_dataset;
  r.info_ = build_info(as_dataset(gdal_dataset), label);
  if (!r.info_.georeferenced) warn_pixel_units(label);
  return r;
}

Raster::Raster(Raster&& other) noexcept
    : dataset_(other.dataset_), source_dataset_(other.source_dataset_), info_(std::move(other.info_)) {
  other.dataset_ = nullptr;
  other.source_dataset_ = nullptr;
}

Raster& Raster::operator=(Raster&& other) noexcept {
  if (this != &other) {
    if (dataset_) GDALClose(as_dataset(dataset_));
    if (source_dataset_) GDALClose(as_dataset(source_dataset_));
    dataset_ = other.dataset_;
    source_dataset_ = other.source_dataset_;
    info_ = std::move(other.info_);
    other.dataset_ = nullptr;
    other.source_dataset_ = nullptr;
  }
  return *this;
}

Raster::~Raster() {
  if (dataset_) GDALClose(as_dataset(dataset_));
  if (source_dataset_) GDALClose(as_dataset(source_dataset_));
}

void Raster::check_band(int band, const std::string& parameter) const {
  if (band < 1 || band > info_.band_count()) {
    throw InvalidArgument(fmt::format("{}: --{} {} is out of range, the file has {} band{} (expected 1..{})",
                                      info_.path, parameter, band, info_.band_count(),
                                      info_.band_count() == 1 ? "" : "s", info_.band_count()));
  }
}

BandWindow Raster::read(int band, const Window& window) const {
  return std::move(read(std::vector<int>{band}, window).front());
}

std::vector<BandWindow> Raster::read(const std::vector<int>& bands, const Window& window) const {
  for (int band : bands) check_band(band);
  if (window.width < 0 || window.height < 0) {
    throw InvalidArgument(fmt::format("{}: negative window size {}x{}", info_.path, window.width, window.height));
  }
  std::vector<BandWindow> out(bands.size());
  for (auto& w : out) {
    w.window = window;
    w.values = GridF(window.width, window.height, 0.f);
    w.valid = GridU8(window.width, window.height, 0);
  }
  const Window inside = window.intersect(Window{0, 0, info_.width, info_.height});
  if (inside.empty() || bands.empty()) return out;

  // How each band tells valid from invalid: NaN always; GDAL's mask (nodata, alpha or mask band) unless
  // every pixel is valid or the nodata value is NaN itself (then the NaN test is the mask).
  auto* dataset = as_dataset(dataset_);
  struct Source {
    GDALRasterBand* band = nullptr;
    bool complex = false;
    bool needs_mask = false;
  };
  std::vector<Source> sources(bands.size());
  for (std::size_t k = 0; k < bands.size(); ++k) {
    Source& s = sources[k];
    s.band = dataset->GetRasterBand(bands[k]);
    const GDALDataType type = s.band->GetRasterDataType();
    s.complex = GDALDataTypeIsComplex(type) != 0;
    if (s.complex) warn_complex_amplitude(info_.path, bands[k], GDALGetDataTypeName(type));
    const int flags = s.band->GetMaskFlags();
    int has_nodata = 0;
    const double nodata = s.band->GetNoDataValue(&has_nodata);
    const bool nan_nodata = flags == GMF_NODATA && has_nodata && std::isnan(nodata) &&
                            (type == GDT_Float32 || type == GDT_Float64);
    s.needs_mask = (flags & GMF_ALL_VALID) == 0 && !nan_nodata;
  }

  // The window is read chunk by chunk, each chunk one cell of the file's block grid (several block rows of a
  // file in strips), every band of a chunk before the next chunk. A file whose bands share each block (a
  // pixel-interleaved COG, as deforma writes) is then decompressed once per block for all the bands
  // asked, however small GDAL's block cache: band after band over a whole window would decompress each
  // block again per band once the window outgrows the cache. What the read needs besides the window (the
  // validity mask, complex samples, GDAL's own buffer for a nodata mask) is one chunk: a few MiB, so that
  // the streaming executor's budget counts the window only.
  const auto& first = info_.bands[static_cast<std::size_t>(bands.front() - 1)];
  const int block_width = std::clamp(first.block_width, 1, info_.width);
  const int block_height = std::clamp(first.block_height, 1, info_.height);
  constexpr std::size_t kChunkBytes = std::size_t{4} << 20;
  const std::size_t block_bytes = static_cast<std::size_t>(block_width) * block_height *
                                  static_cast<std::size_t>(std::max(1, info_.band_count())) * sizeof(double);
  const int chunk_height =
      block_height * static_cast<int>(std::max<std::size_t>(1, kChunkBytes / std::max<std::size_t>(block_bytes, 1)));
  const std::size_t chunk_pixels = static_cast<std::size_t>(block_width) * std::min(chunk_height, inside.height);
  std::vector<std::complex<float>> samples;
  std::vector<unsigned char> mask;
  clear_gdal_error();
  // A corrupt block may be reported as an error while RasterIO returns success with zeros in the buffer:
  // any error raised during the read fails it, quoting GDAL's first message.
  GdalErrorTrap trap;
  auto failed = [&](int band, const Window& chunk, CPLErr status, const char* what) {
    if (status == CE_None && !trap.failed()) return;
    throw FormatError(fmt::format("{}: band {}: reading {} of window col {} row {} size {}x{} failed: {} (in the "
                                  "part at col {} row {})",
                                  info_.path, band, what, inside.col, inside.row, inside.width, inside.height,
                                  trap.failed() ? trap.describe() : "GDAL gave no reason", chunk.col, chunk.row));
  };
  const int first_chunk_row = inside.row - inside.row % chunk_height;
  const int first_chunk_col = inside.col - inside.col % block_width;
  for (int chunk_row = first_chunk_row; chunk_row < inside.row + inside.height; chunk_row += chunk_height) {
    for (int chunk_col = first_chunk_col; chunk_col < inside.col + inside.width; chunk_col += block_width) {
      const Window chunk = Window{chunk_col, chunk_row, block_width, chunk_height}.intersect(inside);
      if (chunk.empty()) continue;
      const int dx = chunk.col - window.col, dy = chunk.row - window.row;
      for (std::size_t k = 0; k < bands.size(); ++k) {
        const Source& s = sources[k];
        BandWindow& w = out[k];
        float* target = w.values.data() + static_cast<std::size_t>(dy) * window.width + dx;
        if (s.complex) {
          samples.resize(chunk_pixels);
          failed(bands[k], chunk,
                 s.band->RasterIO(GF_Read, chunk.col, chunk.row, chunk.width, chunk.height, samples.data(),
                                  chunk.width, chunk.height, GDT_CFloat32, 0, 0, nullptr),
                 "values");
          for (int r = 0; r < chunk.height; ++r) {
            float* row = target + static_cast<std::size_t>(r) * window.width;
            const std::complex<float>* sample = samples.data() + static_cast<std::size_t>(r) * chunk.width;
            for (int c = 0; c < chunk.width; ++c) row[c] = std::abs(sample[c]);
          }
        } else {
          failed(bands[k], chunk,
                 s.band->RasterIO(GF_Read, chunk.col, chunk.row, chunk.width, chunk.height, target, chunk.width,
                                  chunk.height, GDT_Float32, sizeof(float),
                                  static_cast<GSpacing>(sizeof(float)) * window.width, nullptr),
                 "values");
        }
        if (s.needs_mask) {
          mask.resize(chunk_pixels);
          failed(bands[k], chunk,
                 s.band->GetMaskBand()->RasterIO(GF_Read, chunk.col, chunk.row, chunk.width, chunk.height,
                                                 mask.data(), chunk.width, chunk.height, GDT_Byte, 0, 0, nullptr),
                 "the validity mask");
        }
        for (int r = 0; r < chunk.height; ++r) {
          const float* values = w.values.row(dy + r) + dx;
          unsigned char* valid = w.valid.row(dy + r) + dx;
          if (s.needs_mask) {
            const unsigned char* m = mask.data() + static_cast<std::size_t>(r) * chunk.width;
            for (int c = 0; c < chunk.width; ++c) valid[c] = (m[c] != 0 && std::isfinite(values[c])) ? 1 : 0;
          } else {
            for (int c = 0; c < chunk.width; ++c) valid[c] = std::isfinite(values[c]) ? 1 : 0;
          }
        }
      }
    }
  }
  return out;
}

BandWindow Raster::read_all(int band) const { return read(band, Window{0, 0, info_.width, info_.height}); }

RasterInfo describe(const std::string& path) { return Raster::open(path).info(); }

int find_band(const RasterInfo& info, const std::string& name, const std::string& what) {
  if (!name.empty() &&
      std::all_of(name.begin(), name.end(), [](unsigned char ch) { return std::isdigit(ch); })) {
    const int index = std::stoi(name);
    if (index < 1 || index > info.band_count()) {
      throw FormatError(fmt::format("{}: {}: band {} does not exist (the file has {} band(s))", info.path,
                                    what, index, info.band_count()));
    }
    return index;
  }
  for (const auto& b : info.bands) {
    if (strcasecmp(b.description.c_str(), name.c_str()) == 0) return b.index;
  }
  return 0;
}

std::string band_names(const RasterInfo& info) {
  std::string names;
  for (const auto& b : info.bands) {
    names +=
        (names.empty() ? "" : ", ") + (b.description.empty() ? fmt::format("#{}", b.index) : b.description);
  }
  return names;
}

nlohmann::json RasterInfo::to_json() const {
  nlohmann::json bands_json = nlohmann::json::array();
  for (const auto& b : bands) {
    nlohmann::json j{{"index", b.index},
                     {"data_type", b.data_type},
                     {"block_size", {b.block_width, b.block_height}},
                     {"description", b.description},
                     {"unit", b.unit},
                     {"has_mask_band", b.has_mask_band}};
    j["nodata"] = b.nodata ? nlohmann::json(*b.nodata) : nlohmann::json(nullptr);
    bands_json.push_back(j);
  }
  nlohmann::json j{{"path", path},
                   {"driver", driver},
                   {"width", width},
                   {"height", height},
                   {"band_count", band_count()},
                   {"bands", bands_json},
                   {"georeferenced", georeferenced},
                   {"geotransform", geotransform.c},
                   {"crs_name", crs_name},
                   {"crs_wkt", crs_wkt},
                   {"pixel_size_m", {pixel_size_x_m, pixel_size_y_m}},
                   {"metadata", metadata}};
  j["epsg"] = epsg ? nlohmann::json(*epsg) : nlohmann::json(nullptr);
  return j;
}

std::string RasterInfo::to_text() const {
  std::string t = fmt::format("File:        {}\nDriver:      {}\nSize:        {} x {} px, {} band{}\n", path, driver,
                              width, height, band_count(), band_count() == 1 ? "" : "s");
  if (georeferenced) {
    t += fmt::format("CRS:         {}{}\n", crs_name.empty() ? "(unnamed)" : crs_name,
                     epsg ? fmt::format(" (EPSG:{})", *epsg) : "");
    const auto& c = geotransform.c;
    t += fmt::format("Geotransform: origin ({:.3f}, {:.3f}), pixel ({:.6g}, {:.6g}), rotation ({:.6g}, {:.6g})\n",
                     c[0], c[3], c[1], c[5], c[2], c[4]);
    if (pixel_size_x_m > 0) t += fmt::format("Pixel size:  {:.3f} x {:.3f} m\n", pixel_size_x_m, pixel_size_y_m);
  } else {
    t += "CRS:         none (pixel units)\n";
  }
  for (const auto& b : bands) {
    t += fmt::format("Band {}:      {}, blocks {}x{}, nodata {}{}{}\n", b.index, b.data_type, b.block_width,
                     b.block_height, b.nodata ? fmt::format("{}", *b.nodata) : "none",
                     b.description.empty() ? "" : ", \"" + b.description + "\"",
                     b.unit.empty() ? "" : ", unit " + b.unit);
  }
  return t;
}

bool same_grid(const RasterInfo& a, const RasterInfo& b) {
  if (a.width != b.width || a.height != b.height) return false;
  const double tol = 1e-9 * std::max(std::abs(a.geotransform.c[1]), 1e-12);
  for (int i = 0; i < 6; ++i) {
    const double scale = (i == 0 || i == 3) ? std::max(std::abs(a.geotransform.c[1]), 1.0) * 1e-6 : tol;
    if (std::abs(a.geotransform.c[i] - b.geotransform.c[i]) > scale) return false;
  }
  if (a.crs_wkt.empty() != b.crs_wkt.empty()) return false;
  if (a.crs_wkt.empty()) return true;
  OGRSpatialReference sa, sb;
  sa.importFromWkt(a.crs_wkt.c_str());
  sb.importFromWkt(b.crs_wkt.c_str());
  return sa.IsSame(&sb) != 0;
}

Window overlap_window(const RasterInfo& a, const RasterInfo& b) {
  // Sample b's outline densely, since edges bend under reprojection.
  constexpr int kSamples = 16;
  std::vector<double> xs, ys;
  for (int i = 0; i <= kSamples; ++i) {
    const double f = static_cast<double>(i) / kSamples;
    const double pts[4][2] = {{f * b.width, 0}, {f * b.width, static_cast<double>(b.height)},
                              {0, f * b.height}, {static_cast<double>(b.width), f * b.height}};
    for (const auto& pt : pts) {
      double x, y;
      b.geotransform.pixel_to_map(pt[0], pt[1], x, y);
      xs.push_back(x);
      ys.push_back(y);
    }
  }
  if (!a.crs_wkt.empty() && !b.crs_wkt.empty()) {
    OGRSpatialReference sa, sb;
    sa.importFromWkt(a.crs_wkt.c_str());
    sb.importFromWkt(b.crs_wkt.c_str());
    sa.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    sb.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    if (!sa.IsSame(&sb)) {
      std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&sb, &sa));
      if (!ct) throw InvalidArgument(fmt::format("{}: no transformation from its CRS to the CRS of {}", b.path, a.path));
      std::vector<int> ok(xs.size(), 0);
      ct->Transform(xs.size(), xs.data(), ys.data(), nullptr, ok.data());
      std::vector<double> kx, ky;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        if (ok[i]) kx.push_back(xs[i]), ky.push_back(ys[i]);
      }
      xs.swap(kx);
      ys.swap(ky);
    }
  }
  double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    double c, r;
    a.geotransform.map_to_pixel(xs[i], ys[i], c, r);
    cmin = std::min(cmin, c), cmax = std::max(cmax, c), rmin = std::min(rmin, r), rmax = std::max(rmax, r);
  }
  if (xs.empty()) return Window{0, 0, 0, 0};
  cmin = std::clamp(cmin, -1e9, 1e9), cmax = std::clamp(cmax, -1e9, 1e9);
  rmin = std::clamp(rmin, -1e9, 1e9), rmax = std::clamp(rmax, -1e9, 1e9);
  const Window footprint{static_cast<int>(std::floor(cmin + 1e-6)), static_cast<int>(std::floor(rmin + 1e-6)),
                         static_cast<int>(std::ceil(cmax - 1e-6) - std::floor(cmin + 1e-6)),
                         static_cast<int>(std::ceil(rmax - 1e-6) - std::floor(rmin + 1e-6))};
  return footprint.intersect(Window{0, 0, a.width, a.height});
}

Raster resample_to_grid(const std::string& source, const RasterInfo& reference, Resampling resampling) {
  Raster src = Raster::open(source);
  const RasterInfo& si = src.info();
  if (reference.crs_wkt.empty() || si.crs_wkt.empty()) {
    throw InvalidArgument(fmt::format("{}: cannot resample onto the grid of {}: both need a CRS", source,
                                      reference.path));
  }
  const char* method = "bilinear";
  switch (resampling) {
    case Resampling::kNearest: method = "near"; break;
    case Resampling::kBilinear: method = "bilinear"; break;
    case Resampling::kCubic: method = "cubic"; break;
    case Resampling::kLanczos: method = "lanczos"; break;
    case Resampling::kAverage: method = "average"; break;
  }
  // Target extent from the reference geotransform (rotation-free grids are what gdalwarp targets; rotated
  // references are handled through their bounding box and a warning).
  const auto& g = reference.geotransform.c;
  if (reference.geotransform.has_rotation()) {
    throw InvalidArgument(fmt::format("{}: rotated reference grids cannot be a resampling target", reference.path));
  }
  const double xmin = g[0], xmax = g[0] + g[1] * reference.width;
  const double ymax = g[3], ymin = g[3] + g[5] * reference.height;
  std::vector<std::string> args = {"-of", "VRT", "-r", method, "-t_srs", reference.crs_wkt,
                                   "-te", fmt::format("{:.17g}", std::min(xmin, xmax)),
                                   fmt::format("{:.17g}", std::min(ymin, ymax)),
                                   fmt::format("{:.17g}", std::max(xmin, xmax)),
                                   fmt::format("{:.17g}", std::max(ymin, ymax)),
                                   "-ts", std::to_string(reference.width), std::to_string(reference.height),
                                   "-dstnodata", "nan", "-ot", "Float32"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (overlap_window(reference, si).empty()) {
    throw InvalidArgument(fmt::format("{} and {} do not overlap: nothing to compare", source, reference.path));
  }
  GDALWarpAppOptions* options = GDALWarpAppOptionsNew(argv.data(), nullptr);
  GDALDatasetH handle = src.gdal_handle();
  int usage_error = 0;
  clear_gdal_error();
  GDALDatasetH warped = GDALWarp("", nullptr, 1, &handle, options, &usage_error);
  GDALWarpAppOptionsFree(options);
  if (!warped) {
    throw IoError(with_gdal_reason(fmt::format("{}: resampling onto the grid of {} failed", source, reference.path)));
  }
  // The warped VRT reads from the source dataset, which must stay open as long as the VRT does.
  Raster out = Raster::adopt(warped, source + " (resampled onto " + reference.path + ")");
  out.source_dataset_ = src.dataset_;
  src.dataset_ = nullptr;
  return out;
}

}  // namespace deforma::io
