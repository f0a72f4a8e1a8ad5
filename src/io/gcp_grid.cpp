#include "deforma/io/gcp_grid.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <gdal_utils.h>
#include <gdal_vrt.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>

#include "deforma/core/error.hpp"
#include "deforma/io/gdal_error_trap.hpp"

namespace deforma::io {
namespace {

constexpr double kEarthRadiusM = 6371000.0;
constexpr double kPi = 3.14159265358979323846;

struct DatasetCloser {
  void operator()(GDALDataset* ds) const { GDALClose(ds); }
};
using DatasetPtr = std::unique_ptr<GDALDataset, DatasetCloser>;

DatasetPtr open_dataset(const std::string& path) {
  GDALAllRegister();
  GdalErrorTrap trap;
  DatasetPtr ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  if (!ds)
    throw IoError(fmt::format("{}: cannot open as a raster{}", path,
                              trap.failed() ? " (" + trap.describe() + ")" : ""));
  return ds;
}

bool has_geotransform(GDALDataset& ds) {
  double gt[6];
  return ds.GetGeoTransform(gt) == CE_None && ds.GetSpatialRef() && !ds.GetSpatialRef()->IsEmpty();
}

bool has_gcps(GDALDataset& ds) {
  return ds.GetGCPCount() >= 3 && ds.GetGCPSpatialRef() != nullptr;
}

std::string crs_to_wkt(const std::string& crs, const std::string& parameter) {
  OGRSpatialReference srs;
  if (srs.SetFromUserInput(crs.c_str()) != OGRERR_NONE) {
    throw InvalidArgument(
        fmt::format("--{} '{}': not a CRS GDAL understands (expected e.g. EPSG:3413)", parameter, crs));
  }
  if (!srs.IsProjected()) {
    throw InvalidArgument(
        fmt::format("--{} '{}': expected a projected CRS in metres (the offsets are measured "
                    "in metres on its grid), got a geographic one",
                    parameter, crs));
  }
  char* wkt = nullptr;
  const char* options[] = {"FORMAT=WKT2_2019", nullptr};
  srs.exportToWkt(&wkt, options);
  std::string out = wkt ? wkt : "";
  CPLFree(wkt);
  return out;
}

// GDAL's transformer from a raster's pixels to `dst_wkt` through its GCPs (or its geotransform).
struct Transformer {
  void* arg = nullptr;
  Transformer(GDALDataset& ds, const std::string& dst_wkt, GcpTransform transform, const std::string& path) {
    CPLStringList options;
    options.SetNameValue("DST_SRS", dst_wkt.c_str());
    if (!has_geotransform(ds)) {
      if (transform == GcpTransform::kTps) {
        options.SetNameValue("METHOD", "GCP_TPS");
      } else {
        options.SetNameValue("METHOD", "GCP_POLYNOMIAL");
        options.SetNameValue("MAX_GCP_ORDER", transform == GcpTransform::kPolynomial1   ? "1"
                                              : transform == GcpTransform::kPolynomial2 ? "2"
                                                                                        : "3");
      }
    }
    GdalErrorTrap trap;
    arg = GDALCreateGenImgProjTransformer2(GDALDataset::ToHandle(&ds), nullptr, options.List());
    if (!arg) {
      throw InvalidArgument(fmt::format("{}: its GCPs do not define a {} transform ({})", path,
                                        to_string(transform), trap.describe()));
    }
  }
  ~Transformer() {
    if (arg) GDALDestroyGenImgProjTransformer(arg);
  }
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  // Pixel positions (col, row) to map coordinates in place; false when a point fails.
  bool to_map(std::vector<double>& x, std::vector<double>& y) const {
    std::vector<double> z(x.size(), 0.0);
    std::vector<int> ok(x.size(), 0);
    GDALGenImgProjTransform(arg, FALSE, static_cast<int>(x.size()), x.data(), y.data(), z.data(), ok.data());
    return std::all_of(ok.begin(), ok.end(), [](int v) { return v != 0; });
  }
};

// The raster's outline (pixel edges, 32 points per side) in map coordinates.
OGRPolygon footprint(GDALDataset& ds, const Transformer& t, const std::string& path) {
  const int w = ds.GetRasterXSize(), h = ds.GetRasterYSize();
  constexpr int kPerSide = 32;
  std::vector<double> x, y;
  for (int side = 0; side < 4; ++side) {
    for (int k = 0; k < kPerSide; ++k) {
      const double f = static_cast<double>(k) / kPerSide;
      switch (side) {
        case 0:
          x.push_back(f * w), y.push_back(0);
          break;
        case 1:
          x.push_back(w), y.push_back(f * h);
          break;
        case 2:
          x.push_back((1 - f) * w), y.push_back(h);
          break;
        default:
          x.push_back(0), y.push_back((1 - f) * h);
          break;
      }
    }
  }
  if (!t.to_map(x, y))
    throw InvalidArgument(fmt::format("{}: its outline cannot be mapped to the grid's CRS", path));
  OGRLinearRing ring;
  for (std::size_t k = 0; k < x.size(); ++k) ring.addPoint(x[k], y[k]);
  ring.closeRings();
  OGRPolygon polygon;
  polygon.addRing(&ring);
  return polygon;
}

// Ground spacing of one pixel at the raster's centre (square root of the mapped pixel's area).
double pixel_spacing(GDALDataset& ds, const Transformer& t) {
  const double c = ds.GetRasterXSize() / 2.0, r = ds.GetRasterYSize() / 2.0;
  std::vector<double> x = {c, c + 1, c}, y = {r, r, r + 1};
  if (!t.to_map(x, y)) return 0;
  const double det = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0]);
  return std::sqrt(std::abs(det));
}

// Mean GCP position (lon, lat) of a raster, or its geotransformed centre in WGS 84.
void centre_lon_lat(GDALDataset& ds, const std::string& path, double& lon, double& lat) {
  OGRSpatialReference wgs84;
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  char* wkt = nullptr;
  wgs84.exportToWkt(&wkt);
  const std::string wgs84_wkt = wkt;
  CPLFree(wkt);
  CPLStringList options;
  options.SetNameValue("DST_SRS", wgs84_wkt.c_str());
  if (!has_geotransform(ds)) options.SetNameValue("METHOD", "GCP_POLYNOMIAL");
  void* arg = GDALCreateGenImgProjTransformer2(GDALDataset::ToHandle(&ds), nullptr, options.List());
  if (!arg) throw InvalidArgument(fmt::format("{}: cannot locate its centre on the ground", path));
  double x = ds.GetRasterXSize() / 2.0, y = ds.GetRasterYSize() / 2.0, z = 0;
  int ok = 0;
  GDALGenImgProjTransform(arg, FALSE, 1, &x, &y, &z, &ok);
  GDALDestroyGenImgProjTransformer(arg);
  if (!ok) throw InvalidArgument(fmt::format("{}: cannot locate its centre on the ground", path));
  lon = x, lat = y;
}

// 10 log10 of the first source, NaN where it is not positive (GDAL derived-band pixel function).
CPLErr decibel_pixels(void** sources, int source_count, void* out, int width, int height,
                      GDALDataType source_type, GDALDataType out_type, int pixel_space, int line_space) {
  if (source_count != 1 || source_type != GDT_Float32) return CE_Failure;
  const float* in = static_cast<const float*>(sources[0]);
  std::vector<float> line(static_cast<std::size_t>(width));
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const float v = in[static_cast<std::size_t>(r) * width + c];
      line[static_cast<std::size_t>(c)] =
          v > 0 ? 10.f * std::log10(v) : std::numeric_limits<float>::quiet_NaN();
    }
    GDALCopyWords(line.data(), GDT_Float32, sizeof(float),
                  static_cast<GByte*>(out) + static_cast<std::ptrdiff_t>(line_space) * r, out_type,
                  pixel_space, width);
  }
  return CE_None;
}

constexpr const char* kDecibelFunction = "deforma_decibel";

void register_pixel_functions() {
  static std::once_flag once;
  std::call_once(once, [] { GDALAddDerivedBandPixelFunc(kDecibelFunction, decibel_pixels); });
}

double haversine_m(double lon1, double lat1, double lon2, double lat2) {
  const double d2r = kPi / 180;
  const double dlat = (lat2 - lat1) * d2r, dlon = (lon2 - lon1) * d2r;
  const double a = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(lat1 * d2r) * std::cos(lat2 * d2r) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusM * std::asin(std::min(1.0, std::sqrt(a)));
}

}  // namespace

GcpTransform parse_gcp_transform(const std::string& text) {
  if (text == "tps") return GcpTransform::kTps;
  if (text == "poly1") return GcpTransform::kPolynomial1;
  if (text == "poly2") return GcpTransform::kPolynomial2;
  if (text == "poly3") return GcpTransform::kPolynomial3;
  throw InvalidArgument(fmt::format("--gcp-transform '{}': expected tps, poly1, poly2 or poly3", text));
}

std::string to_string(GcpTransform transform) {
  switch (transform) {
    case GcpTransform::kTps:
      return "tps";
    case GcpTransform::kPolynomial1:
      return "poly1";
    case GcpTransform::kPolynomial2:
      return "poly2";
    case GcpTransform::kPolynomial3:
      return "poly3";
  }
  return "tps";
}

bool georeferenced_by_gcps(const std::string& path) {
  GDALAllRegister();
  CPLPushErrorHandler(CPLQuietErrorHandler);
  DatasetPtr ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  CPLPopErrorHandler();
  return ds && !has_geotransform(*ds) && has_gcps(*ds);
}

RasterInfo MapGrid::as_info(const std::string& label) const {
  RasterInfo info;
  info.path = label;
  info.width = width;
  info.height = height;
  info.georeferenced = true;
  info.geotransform = geotransform;
  info.crs_wkt = crs_wkt;
  info.pixel_size_x_m = info.pixel_size_y_m = resolution_m;
  return info;
}

std::string default_grid_crs(double lon_deg, double lat_deg) {
  if (lat_deg >= 60) return "EPSG:3413";
  if (lat_deg <= -60) return "EPSG:3031";
  const int zone = std::clamp(static_cast<int>(std::floor((lon_deg + 180) / 6)) + 1, 1, 60);
  return fmt::format("EPSG:{}", (lat_deg >= 0 ? 32600 : 32700) + zone);
}

MapGrid common_map_grid(const std::vector<std::string>& paths, const MapGridOptions& options) {
  if (paths.empty()) throw InvalidArgument("common_map_grid: no input");
  std::vector<DatasetPtr> datasets;
  for (const auto& path : paths) {
    datasets.push_back(open_dataset(path));
    if (!has_geotransform(*datasets.back()) && !has_gcps(*datasets.back())) {
      throw InvalidArgument(fmt::format(
          "{}: no georeferencing: expected a geotransform with a CRS, or ground control points (GCPs) with "
          "their CRS, to place it on a map grid",
          path));
    }
  }
  MapGrid grid;
  if (options.crs.empty()) {
    double lon = 0, lat = 0;
    centre_lon_lat(*datasets.front(), paths.front(), lon, lat);
    grid.crs = default_grid_crs(lon, lat);
  } else {
    grid.crs = options.crs;
  }
  grid.crs_wkt = crs_to_wkt(grid.crs, "grid-crs");

  std::unique_ptr<OGRGeometry> overlap;
  double finest_m = 0;
  for (std::size_t k = 0; k < paths.size(); ++k) {
    const Transformer t(*datasets[k], grid.crs_wkt, options.transform, paths[k]);
    OGRPolygon outline = footprint(*datasets[k], t, paths[k]);
    const double spacing = pixel_spacing(*datasets[k], t);
    if (spacing > 0) finest_m = finest_m > 0 ? std::min(finest_m, spacing) : spacing;
    if (!overlap) {
      overlap.reset(outline.clone());
    } else {
      std::unique_ptr<OGRGeometry> next(overlap->Intersection(&outline));
      if (!next || next->IsEmpty()) {
        throw InvalidArgument(fmt::format("{} and {} do not overlap on the ground: nothing to correlate",
                                          paths.front(), paths[k]));
      }
      overlap = std::move(next);
    }
  }
  if (options.resolution_m > 0) {
    grid.resolution_m = options.resolution_m;
  } else {
    // Whole metres (the finest input's spacing), so that a pair and its reverse get the same grid.
    grid.resolution_m = std::max(1.0, std::round(finest_m));
  }
  OGREnvelope env;
  overlap->getEnvelope(&env);
  const double res = grid.resolution_m;
  const double xmin = std::floor(env.MinX / res) * res, xmax = std::ceil(env.MaxX / res) * res;
  const double ymin = std::floor(env.MinY / res) * res, ymax = std::ceil(env.MaxY / res) * res;
  grid.width = static_cast<int>(std::lround((xmax - xmin) / res));
  grid.height = static_cast<int>(std::lround((ymax - ymin) / res));
  if (grid.width < 1 || grid.height < 1 || static_cast<double>(grid.width) * grid.height > 4e9) {
    throw InvalidArgument(
        fmt::format("--grid-resolution {} m gives a {} x {} px grid over the overlap of {} "
                    "and {}: expected a resolution near the pixel spacing ({:.1f} m)",
                    res, grid.width, grid.height, paths.front(), paths.back(), finest_m));
  }
  grid.geotransform.c = {xmin, res, 0.0, ymax, 0.0, -res};
  return grid;
}

void write_band_vrt(const std::string& source, int band, BandTransform band_transform,
                    const std::string& vrt_path) {
  DatasetPtr src = open_dataset(source);
  if (band < 1 || band > src->GetRasterCount()) {
    throw InvalidArgument(fmt::format("{}: no band {} (it has {})", source, band, src->GetRasterCount()));
  }
  // One-band intermediate VRT (the chosen band, in decibels when asked), carrying the source's GCPs or
  // geotransform: the warper then reads only that band.
  register_pixel_functions();
  {
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("VRT");
    DatasetPtr vrt(driver->Create(vrt_path.c_str(), src->GetRasterXSize(), src->GetRasterYSize(), 0,
                                  GDT_Float32, nullptr));
    if (!vrt) throw IoError(fmt::format("{}: cannot make a VRT of band {}", source, band));
    double gt[6];
    if (has_geotransform(*src)) {
      src->GetGeoTransform(gt);
      vrt->SetGeoTransform(gt);
      vrt->SetSpatialRef(src->GetSpatialRef());
    } else {
      vrt->SetGCPs(src->GetGCPCount(), src->GetGCPs(), src->GetGCPSpatialRef());
    }
    CPLStringList band_options;
    if (band_transform == BandTransform::kDecibel) {
      band_options.SetNameValue("subclass", "VRTDerivedRasterBand");
      band_options.SetNameValue("PixelFunctionType", kDecibelFunction);
      band_options.SetNameValue("SourceTransferType", "Float32");
    }
    vrt->AddBand(GDT_Float32, band_options.List());
    GDALRasterBand* in = src->GetRasterBand(band);
    int has_nodata = 0;
    const double nodata = in->GetNoDataValue(&has_nodata);
    VRTAddSimpleSource(GDALRasterBand::ToHandle(vrt->GetRasterBand(1)), GDALRasterBand::ToHandle(in), 0, 0,
                       src->GetRasterXSize(), src->GetRasterYSize(), 0, 0, src->GetRasterXSize(),
                       src->GetRasterYSize(), "near", has_nodata ? nodata : VRT_NODATA_UNSET);
    if (has_nodata && band_transform == BandTransform::kNone) vrt->GetRasterBand(1)->SetNoDataValue(nodata);
  }
}

void write_warped_vrt(const std::string& source, int band, const MapGrid& grid, GcpTransform transform,
                      BandTransform band_transform, const std::string& vrt_path) {
  const std::string band_vrt = vrt_path + ".band.vrt";
  write_band_vrt(source, band, band_transform, band_vrt);
  const auto& g = grid.geotransform.c;
  std::vector<std::string> args = {
      "-of", "VRT", "-r", "cubic", "-t_srs", grid.crs_wkt, "-te", fmt::format("{:.17g}", g[0]),
      fmt::format("{:.17g}", g[3] + g[5] * grid.height), fmt::format("{:.17g}", g[0] + g[1] * grid.width),
      fmt::format("{:.17g}", g[3]), "-ts", std::to_string(grid.width), std::to_string(grid.height),
      "-dstnodata", "nan", "-ot", "Float32",
      // The warper's piecewise-linear approximation of the transform errs by up to
      // 0.125 px by default: as much as the offsets' precision. 0.01 px costs
      // little with 100-point GCP transforms.
      "-et", "0.01"};
  switch (transform) {
    case GcpTransform::kTps:
      args.push_back("-tps");
      break;
    case GcpTransform::kPolynomial1:
      args.insert(args.end(), {"-order", "1"});
      break;
    case GcpTransform::kPolynomial2:
      args.insert(args.end(), {"-order", "2"});
      break;
    case GcpTransform::kPolynomial3:
      args.insert(args.end(), {"-order", "3"});
      break;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  DatasetPtr band_ds = open_dataset(band_vrt);
  GdalErrorTrap trap;
  GDALWarpAppOptions* warp_options = GDALWarpAppOptionsNew(argv.data(), nullptr);
  GDALDatasetH handle = GDALDataset::ToHandle(band_ds.get());
  int usage_error = 0;
  GDALDatasetH warped = GDALWarp(vrt_path.c_str(), nullptr, 1, &handle, warp_options, &usage_error);
  GDALWarpAppOptionsFree(warp_options);
  if (!warped) {
    throw IoError(fmt::format("{}: warping band {} onto the {} grid failed ({})", source, band, grid.crs,
                              trap.describe()));
  }
  GDALClose(warped);
}

GcpCheck check_gcp_transform(const std::string& path, GcpTransform transform) {
  DatasetPtr ds = open_dataset(path);
  const int n = ds->GetGCPCount();
  if (n < 10)
    throw InvalidArgument(fmt::format("{}: {} GCPs, expected at least 10 to check a transform", path, n));
  const GDAL_GCP* gcps = ds->GetGCPs();
  std::vector<double> errors;
  for (int k = 0; k < n; ++k) {
    std::vector<GDAL_GCP> others;
    for (int j = 0; j < n; ++j) {
      if (j != k) others.push_back(gcps[j]);
    }
    void* arg = transform == GcpTransform::kTps
                    ? GDALCreateTPSTransformer(n - 1, others.data(), FALSE)
                    : GDALCreateGCPTransformer(n - 1, others.data(),
                                               transform == GcpTransform::kPolynomial1   ? 1
                                               : transform == GcpTransform::kPolynomial2 ? 2
                                                                                         : 3,
                                               FALSE);
    if (!arg) continue;
    double x = gcps[k].dfGCPPixel, y = gcps[k].dfGCPLine, z = 0;
    int ok = 0;
    if (transform == GcpTransform::kTps) {
      GDALTPSTransform(arg, FALSE, 1, &x, &y, &z, &ok);
      GDALDestroyTPSTransformer(arg);
    } else {
      GDALGCPTransform(arg, FALSE, 1, &x, &y, &z, &ok);
      GDALDestroyGCPTransformer(arg);
    }
    // GCPs in geographic coordinates: x longitude, y latitude (GDAL's GCP order).
    if (ok) errors.push_back(haversine_m(x, y, gcps[k].dfGCPX, gcps[k].dfGCPY));
  }
  if (errors.empty())
    throw NumericalError(fmt::format("{}: no GCP could be predicted from the others", path));
  std::sort(errors.begin(), errors.end());
  GcpCheck check;
  check.points = static_cast<int>(errors.size());
  check.median_m = errors[errors.size() / 2];
  check.p90_m = errors[static_cast<std::size_t>(0.9 * (errors.size() - 1))];
  check.max_m = errors.back();
  return check;
}

}  // namespace deforma::io
