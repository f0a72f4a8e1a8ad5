#pragma once
// EGMS product processing, streamed by chunks of points (memory does not grow with the file):
//   describe_product   what a product holds (egms info)
//   run_fit            recompute the EGMS model columns and compare them with the file's (egms fit)
//   run_reference      Basic level: re-reference to a point, an area or a stable area (egms reference)
//   run_calibrate      Calibrated level: tie LOS velocities to GNSS (egms calibrate)
// Each returns a deforma::Summary; outputs are written under temporary names and renamed when complete.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/egms/model.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/provenance.hpp"

namespace deforma::egms {

/// Where results go: an EGMS-layout CSV or zip, and/or a GeoPackage. Both empty: report only.
struct ProductOutputs {
  std::string product;  ///< .csv (XML beside it) or .zip
  std::string gpkg;     ///< .gpkg
  bool any() const { return !product.empty() || !gpkg.empty(); }
};

/// Options shared by the streamed operations.
struct StreamOptions {
  std::size_t chunk_points = 20000;  ///< points per chunk (memory: chunk x (dates + columns) x 12 bytes)
  ModelOptions model;
  void validate() const;
};

/// Counts, dates, columns, extent and metadata of a product (reads it once).
Summary describe_product(const std::string& path, const RunContext& context,
                         const StreamOptions& options = {});

/// Recomputes mean_velocity(+_std), acceleration(+_std), seasonality(+_std), rmse and temporal_coherence
/// for every point; details["comparison"][column] holds the median, 95th percentile and maximum of
/// |recomputed - file| (streamed histograms, resolution 0.0005) for every column present in the file.
Summary run_fit(const std::string& input, const ProductOutputs& outputs, const StreamOptions& options,
                const RunContext& context, const io::Provenance& provenance);

enum class ReferenceMethod { kPid, kArea, kPolygon, kAuto };

struct ReferenceOptions {
  ReferenceMethod method = ReferenceMethod::kAuto;
  std::string pid;               ///< kPid
  double centre_easting_m = 0;   ///< kArea, EPSG:3035
  double centre_northing_m = 0;  ///< kArea
  double radius_m = 100;         ///< kArea
  std::string polygon_path;      ///< kPolygon: any OGR polygon file (reprojected to EPSG:3035)
  double auto_cell_m = 250;      ///< kAuto: side of the square cells searched for a stable area
  int min_points = 10;           ///< kAuto/kArea/kPolygon: fewest points making a reference
  double min_coherence = 0.8;    ///< kAuto: points below this temporal coherence are ignored
  void validate() const;
};

/// Re-references every series to the mean series of the reference points (per date, ignoring missing
/// values) and refits the model columns. kAuto picks the statistically most stable area: among square
/// cells of auto_cell_m holding at least min_points points of temporal coherence >= min_coherence, the
/// one whose points' mean velocities have the smallest standard deviation (ties: more points). The
/// reference (method, points, position, reference velocity) goes to details and to the output metadata.
Summary run_reference(const std::string& input, const ReferenceOptions& reference,
                      const ProductOutputs& outputs, const StreamOptions& options, const RunContext& context,
                      const io::Provenance& provenance);

/// One GNSS velocity: a station, or a node of a gridded model. Velocities mm/yr, positions EPSG:3035 m.
struct GnssSite {
  std::string name;
  double longitude = 0, latitude = 0;
  double easting_m = 0, northing_m = 0;
  double east = 0, north = 0, up = 0;
  double sigma_east = 0, sigma_north = 0, sigma_up = 0;
};

enum class GnssKind { kStations, kGrid };

/// GNSS velocities read from CSV. Stations: columns for longitude, latitude and east/north/up velocities
/// (e.g. `longitude, latitude, velocity_east_mmyr, velocity_north_mmyr, velocity_up_mmyr` and their
/// `_error_mmyr`). Grid: EGMS's A-EPND layout `Latitude, Longitude, N, E, Up, SigmaN, SigmaE, SigmaUP,
/// easting, northing` on a regular grid. The kind is recognised from the columns.
struct GnssModel {
  std::string source;
  GnssKind kind = GnssKind::kStations;
  std::vector<GnssSite> sites;
  double grid_spacing_m = 0;  ///< kGrid

  /// Throws IoError/FormatError naming the file, line and column.
  static GnssModel read(const std::string& path);
  /// kGrid: east/north/up interpolated bilinearly at a position (inverse-distance over the nodes present
  /// when some of the four are missing); false when no node lies within one grid spacing.
  bool interpolate(double easting_m, double northing_m, double& east, double& north, double& up) const;
};

enum class GnssSource {
  kColumn,  ///< the product's own gnss_velocity column (GNSS model already projected on the LOS)
  kFile,    ///< GnssModel from a file
};

struct CalibrateOptions {
  GnssSource source = GnssSource::kColumn;
  std::string gnss_path;                  ///< kFile
  int polynomial_order = 1;               ///< 0 (offset), 1 (plane) or 2 (quadratic) in easting/northing
  double smoothing_wavelength_m = 50000;  ///< Gaussian smoothing of what the polynomial leaves; 0 = off
  double station_radius_m = 500;          ///< stations: InSAR points averaged around each station
  int min_station_points = 3;             ///< stations: fewest points around a station to use it
  void validate() const;
};

/// Ties LOS velocities to GNSS: residual r = v_InSAR - v_GNSS·LOS (at points for kColumn and grids, at
/// stations for station files), modelled as polynomial + smoothed remainder (Gaussian kernel whose
/// response is one half at smoothing_wavelength_m), then removed from velocities (r) and series (r·t).
/// details["calibration"] reports residual statistics before and after (and per station).
Summary run_calibrate(const std::string& input, const CalibrateOptions& calibration,
                      const ProductOutputs& outputs, const StreamOptions& options, const RunContext& context,
                      const io::Provenance& provenance);

/// EPSG:3035 easting/northing (m) of a WGS84 longitude/latitude (degrees), through OGR/PROJ. Throws
/// InvalidArgument naming the position when it cannot be projected.
void lonlat_to_epsg3035(double longitude_deg, double latitude_deg, double& easting_m, double& northing_m);

/// The unit vector ground -> satellite of a right-looking SAR from its incidence and track (heading)
/// angles in degrees: (sin i · sin(h - 90°), sin i · cos(h - 90°), cos i). Used to check los_* columns.
void los_from_angles(double incidence_deg, double track_deg, double& east, double& north, double& up);

}  // namespace deforma::egms
