#pragma once
// Rasters georeferenced only by ground control points (Sentinel-1 GRD measurement files, many L1 SAR and
// scanned products): a common projected map grid over the overlap of several such rasters, and warped VRTs
// of each onto it through GDAL's GCP transformer (thin-plate spline or polynomial). Nothing is computed
// until windows are read, so the warped inputs stream like any raster.
#include <optional>
#include <string>
#include <vector>

#include "deforma/io/raster.hpp"

namespace deforma::io {

/// How pixel positions are mapped to the ground from the GCPs.
enum class GcpTransform {
  kTps,          ///< thin-plate spline through every GCP (exact at the GCPs)
  kPolynomial1,  ///< least-squares polynomials of order 1, 2, 3
  kPolynomial2,
  kPolynomial3,
};
GcpTransform parse_gcp_transform(const std::string& text);  ///< "tps", "poly1", "poly2", "poly3"
std::string to_string(GcpTransform transform);

/// True when `path` opens as a raster with GCPs and no geotransform.
bool georeferenced_by_gcps(const std::string& path);

/// A north-up map grid.
struct MapGrid {
  std::string crs;  ///< as the user or the default gave it ("EPSG:3413"), or WKT
  std::string crs_wkt;
  GeoTransform geotransform;
  int width = 0;
  int height = 0;
  double resolution_m = 0;

  /// The grid as a RasterInfo (no bands), for options that parse lengths or windows against it.
  RasterInfo as_info(const std::string& label) const;
};

/// The default projected CRS for a footprint centred at (lon, lat): NSIDC polar stereographic north
/// (EPSG:3413) north of 60 N, Antarctic polar stereographic (EPSG:3031) south of 60 S, else the UTM zone of
/// the centre (WGS 84).
std::string default_grid_crs(double lon_deg, double lat_deg);

/// Options of the common grid: empty CRS and zero resolution are chosen from the inputs.
struct MapGridOptions {
  std::string crs;          ///< any CRS GDAL understands ("EPSG:3413", WKT, PROJ string)
  double resolution_m = 0;  ///< grid spacing in CRS units (metres); 0 = the finest input's pixel spacing
  GcpTransform transform = GcpTransform::kPolynomial3;
};

/// The grid covering the overlap of the footprints of `paths` (each georeferenced by GCPs or by a
/// geotransform), snapped to multiples of the resolution so that the order of the inputs does not change
/// it. Throws InvalidArgument when a raster has neither GCPs nor a geotransform (naming it and what was
/// expected), or when the footprints do not overlap.
MapGrid common_map_grid(const std::vector<std::string>& paths, const MapGridOptions& options);

/// How the band of `source` is read before warping.
enum class BandTransform {
  kNone,
  kDecibel,  ///< 10 log10(value) of a linear backscatter or intensity; values <= 0 become invalid (NaN)
};

/// Writes a one-band VRT of band `band` of `source` (float32, `band_transform` applied) at `vrt_path`,
/// keeping the source's geotransform or GCPs. Throws InvalidArgument for a band out of range.
void write_band_vrt(const std::string& source, int band, BandTransform band_transform,
                    const std::string& vrt_path);

/// Writes a warped VRT of band `band` of `source` on `grid` at `vrt_path` (a /vsimem/ path or a file):
/// cubic resampling, float32, NaN outside the source. The VRT refers to `source` by path, so it stays
/// valid as long as `source` exists. Throws IoError naming `source` when GDAL cannot warp it.
void write_warped_vrt(const std::string& source, int band, const MapGrid& grid, GcpTransform transform,
                      BandTransform band_transform, const std::string& vrt_path);

/// Leave-one-out accuracy of a GCP transform on the GCPs of `path`: each GCP is predicted by the
/// transform fitted to the others; the ground distances (metres, on the WGS 84 sphere of radius 6371 km)
/// of the predictions from the GCP. Points on the hull are predicted by extrapolation, a pessimistic
/// figure there. Throws InvalidArgument when `path` has fewer than 10 GCPs.
struct GcpCheck {
  int points = 0;
  double median_m = 0;
  double p90_m = 0;
  double max_m = 0;
};
GcpCheck check_gcp_transform(const std::string& path, GcpTransform transform);

}  // namespace deforma::io
