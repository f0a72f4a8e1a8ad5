// GNSS models and the Calibrated level (egms calibrate).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <numbers>
#include <unordered_map>

#include <fmt/format.h>
#include <ogr_spatialref.h>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/egms/processing.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "egms/line_reader.hpp"
#include "egms/stream.hpp"

namespace deforma::egms {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::vector<std::string> split_line(std::string_view line, char sep) {
  std::vector<std::string> out;
  std::string field;
  for (const char c : line) {
    if (c == sep) {
      out.push_back(field);
      field.clear();
    } else if (c != '\r' && c != '"') {
      field += c;
    }
  }
  out.push_back(field);
  for (auto& f : out) {
    while (!f.empty() && f.front() == ' ') f.erase(f.begin());
    while (!f.empty() && f.back() == ' ') f.pop_back();
  }
  return out;
}

int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (lower(header[i]) == name) return static_cast<int>(i);
    }
  }
  return -1;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A low-order polynomial surface in easting/northing (coordinates centred and scaled to 100 km units to
// keep the normal equations well conditioned).
struct Polynomial {
  int order = 1;
  double e0 = 0, n0 = 0;
  Eigen::VectorXd coefficients;

  static int terms(int order) { return (order + 1) * (order + 2) / 2; }
  void basis(double e, double n, double* out) const {
    const double u = (e - e0) / 1e5, w = (n - n0) / 1e5;
    out[0] = 1;
    if (order >= 1) {
      out[1] = u;
      out[2] = w;
    }
    if (order >= 2) {
      out[3] = u * u;
      out[4] = u * w;
      out[5] = w * w;
    }
  }
  double eval(double e, double n) const {
    double b[6];
    basis(e, n, b);
    double s = 0;
    for (int i = 0; i < terms(order); ++i) s += coefficients(i) * b[i];
    return s;
  }
};

struct NormalEquations {
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(6, 6);
  Eigen::VectorXd b = Eigen::VectorXd::Zero(6);
  std::int64_t samples = 0;
  void add(const Polynomial& shape, double e, double n, double r) {
    double x[6];
    shape.basis(e, n, x);
    const int k = Polynomial::terms(shape.order);
    for (int i = 0; i < k; ++i) {
      b(i) += x[i] * r;
      for (int j = 0; j < k; ++j) a(i, j) += x[i] * x[j];
    }
    ++samples;
  }
};

// Solves for the polynomial, lowering the order while the system is singular (too few or aligned
// samples). Returns the order used.
int solve_polynomial(Polynomial& poly, const NormalEquations& eq) {
  for (int order = poly.order; order >= 0; --order) {
    const int k = Polynomial::terms(order);
    if (eq.samples < k) continue;
    const Eigen::MatrixXd a = eq.a.topLeftCorner(k, k);
    Eigen::FullPivLU<Eigen::MatrixXd> lu(a);
    if (lu.rank() < k) continue;
    poly.order = order;
    poly.coefficients = lu.solve(eq.b.head(k));
    return order;
  }
  throw NumericalError("calibration: no residual sample to fit the correction surface");
}

// Gaussian kernel smoothing of scattered samples (position, weight, value), evaluated lazily on a lattice
// and interpolated bilinearly between lattice nodes.
class Smoother {
 public:
  Smoother(double wavelength_m) : wavelength_(wavelength_m) {
    // The Gaussian whose transfer function is 1/2 at the wavelength: sigma = sqrt(2 ln 2) / (2π) · λ.
    sigma_ = std::sqrt(2.0 * std::log(2.0)) / (2.0 * std::numbers::pi) * wavelength_m;
    lattice_ = wavelength_m / 8.0;
  }
  bool enabled() const { return wavelength_ > 0; }
  void add(double e, double n, double weight, double value) { samples_.push_back({e, n, weight, value}); }
  void build_index() {
    for (std::size_t i = 0; i < samples_.size(); ++i)
      index_[key(samples_[i].e, samples_[i].n, sigma_)].push_back(i);
  }
  double at(double e, double n) {
    if (!enabled() || samples_.empty()) return 0.0;
    const double fx = e / lattice_ - 0.5, fy = n / lattice_ - 0.5;
    const auto x0 = static_cast<std::int64_t>(std::floor(fx)), y0 = static_cast<std::int64_t>(std::floor(fy));
    const double ax = fx - static_cast<double>(x0), ay = fy - static_cast<double>(y0);
    return (1 - ax) * (1 - ay) * node(x0, y0) + ax * (1 - ay) * node(x0 + 1, y0) +
           (1 - ax) * ay * node(x0, y0 + 1) + ax * ay * node(x0 + 1, y0 + 1);
  }

 private:
  struct Sample {
    double e, n, weight, value;
  };
  static std::pair<std::int64_t, std::int64_t> key(double e, double n, double size) {
    return {static_cast<std::int64_t>(std::floor(e / size)), static_cast<std::int64_t>(std::floor(n / size))};
  }
  double node(std::int64_t x, std::int64_t y) {
    const auto k = std::make_pair(x, y);
    if (const auto it = cache_.find(k); it != cache_.end()) return it->second;
    const double e = (static_cast<double>(x) + 0.5) * lattice_, n = (static_cast<double>(y) + 0.5) * lattice_;
    const auto [cx, cy] = key(e, n, sigma_);
    double sw = 0, swv = 0;
    for (std::int64_t dy = -3; dy <= 3; ++dy) {
      for (std::int64_t dx = -3; dx <= 3; ++dx) {
        const auto it = index_.find({cx + dx, cy + dy});
        if (it == index_.end()) continue;
        for (const std::size_t i : it->second) {
          const auto& s = samples_[i];
          const double d2 = (s.e - e) * (s.e - e) + (s.n - n) * (s.n - n);
          const double w = s.weight * std::exp(-0.5 * d2 / (sigma_ * sigma_));
          sw += w;
          swv += w * s.value;
        }
      }
    }
    // Far from every sample the remainder is unknown: no correction beyond the polynomial.
    const double value = sw > 1e-9 ? swv / sw : 0.0;
    cache_.emplace(k, value);
    return value;
  }
  double wavelength_, sigma_ = 0, lattice_ = 1;
  std::vector<Sample> samples_;
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::size_t>> index_;
  std::map<std::pair<std::int64_t, std::int64_t>, double> cache_;
};

struct RunningStats {
  std::int64_t n = 0;
  double sum = 0, sum2 = 0;
  void add(double v) {
    if (std::isnan(v)) return;
    ++n;
    sum += v;
    sum2 += v * v;
  }
  nlohmann::json to_json() const {
    const double mean = n ? sum / n : kNaN;
    return {{"samples", n},
            {"mean_mm_per_yr", mean},
            {"std_mm_per_yr", n ? std::sqrt(std::max(0.0, sum2 / n - mean * mean)) : kNaN},
            {"rms_mm_per_yr", n ? std::sqrt(sum2 / n) : kNaN}};
  }
};

}  // namespace

GnssModel GnssModel::read(const std::string& path) {
  io::ensure_gdal_initialized();
  VSIStatBufL stat;
  if (VSIStatL(path.c_str(), &stat) != 0) throw IoError(fmt::format("{}: no such GNSS file", path));
  if (VSI_ISDIR(stat.st_mode)) throw IoError(fmt::format("{}: is a folder, expected a GNSS CSV", path));
  // Bounded lines: a damaged or endless file is an error, never an unbounded allocation.
  detail::LineReader in(path, path);
  in.open();
  std::string_view line_view;
  if (!in.next(line_view)) throw FormatError(fmt::format("{}: empty GNSS file", path));
  if (line_view.substr(0, 3) == "\xEF\xBB\xBF") line_view.remove_prefix(3);
  std::string line(line_view);
  const char sep =
      std::count(line.begin(), line.end(), ';') > std::count(line.begin(), line.end(), ',') ? ';' : ',';
  const auto header = split_line(line, sep);
  GnssModel model;
  model.source = path;
  const int lat = find_column(header, {"latitude", "lat"});
  const int lon = find_column(header, {"longitude", "lon"});
  const int grid_e = find_column(header, {"easting"}), grid_n = find_column(header, {"northing"});
  const int grid_up = find_column(header, {"up"});
  const bool grid = grid_up >= 0 && find_column(header, {"e"}) >= 0 && find_column(header, {"n"}) >= 0;
  model.kind = grid ? GnssKind::kGrid : GnssKind::kStations;
  int ve, vn, vu, se, sn, su, name;
  if (grid) {
    ve = find_column(header, {"e"});
    vn = find_column(header, {"n"});
    vu = grid_up;
    se = find_column(header, {"sigmae"});
    sn = find_column(header, {"sigman"});
    su = find_column(header, {"sigmaup", "sigmau"});
    name = -1;
  } else {
    ve = find_column(header, {"velocity_east_mmyr", "ve", "v_east", "vel_e", "east"});
    vn = find_column(header, {"velocity_north_mmyr", "vn", "v_north", "vel_n", "north"});
    vu = find_column(header, {"velocity_up_mmyr", "vu", "v_up", "vel_u", "up"});
    se = find_column(header, {"velocity_east_error_mmyr", "se", "sigma_east", "sigmae"});
    sn = find_column(header, {"velocity_north_error_mmyr", "sn", "sigma_north", "sigman"});
    su = find_column(header, {"velocity_up_error_mmyr", "su", "sigma_up", "sigmaup"});
    name = find_column(header, {"station_id", "station", "name", "id"});
  }
  const auto need = [&](int index, const char* what) {
    if (index < 0) {
      throw FormatError(
          fmt::format("{}: no {} column (header: {}); expected station velocities (longitude, "
                      "latitude, velocity_east_mmyr, velocity_north_mmyr, velocity_up_mmyr) or EGMS's "
                      "A-EPND grid (Latitude, Longitude, N, E, Up, SigmaN, SigmaE, SigmaUP, easting, "
                      "northing)",
                      path, what, line));
    }
  };
  need(lat, "latitude");
  need(lon, "longitude");
  need(ve, "east velocity");
  need(vn, "north velocity");
  need(vu, "up velocity");
  std::int64_t line_number = 1;
  while (in.next(line_view)) {
    line_number = in.line_number();
    line.assign(line_view);
    if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
    const auto fields = split_line(line, sep);
    if (fields.size() != header.size()) {
      throw FormatError(fmt::format("{}: line {} has {} fields, expected {}", path, line_number,
                                    fields.size(), header.size()));
    }
    const auto number = [&](int index, bool required) {
      if (index < 0) return 0.0;
      const std::string& f = fields[static_cast<std::size_t>(index)];
      char* end = nullptr;
      const double v = std::strtod(f.c_str(), &end);
      if (f.empty() || end != f.c_str() + f.size()) {
        if (!required && f.empty()) return 0.0;
        throw FormatError(fmt::format("{}: line {}, column '{}': '{}' is not a number", path, line_number,
                                      header[static_cast<std::size_t>(index)], f));
      }
      // One NaN velocity would make the whole correction surface NaN: refuse it where it is.
      if (!std::isfinite(v)) {
        throw FormatError(fmt::format("{}: line {}, column '{}': '{}' is not a finite number", path,
                                      line_number, header[static_cast<std::size_t>(index)], f));
      }
      return v;
    };
    const auto bounded = [&](int index, double value, double lo, double hi, const char* unit) {
      if (index >= 0 && !(value >= lo && value <= hi)) {
        throw FormatError(fmt::format("{}: line {}, column '{}': {} is out of range (expected {:g}..{:g} {})",
                                      path, line_number, header[static_cast<std::size_t>(index)],
                                      fields[static_cast<std::size_t>(index)], lo, hi, unit));
      }
      return value;
    };
    GnssSite s;
    s.name = name >= 0 ? fields[static_cast<std::size_t>(name)] : fmt::format("node{}", line_number - 1);
    s.latitude = bounded(lat, number(lat, true), -90, 90, "degrees");
    s.longitude = bounded(lon, number(lon, true), -180, 360, "degrees");
    s.east = bounded(ve, number(ve, true), -kMaxVelocity, kMaxVelocity, "mm/yr");
    s.north = bounded(vn, number(vn, true), -kMaxVelocity, kMaxVelocity, "mm/yr");
    s.up = bounded(vu, number(vu, true), -kMaxVelocity, kMaxVelocity, "mm/yr");
    s.sigma_east = bounded(se, number(se, false), 0, kMaxVelocity, "mm/yr");
    s.sigma_north = bounded(sn, number(sn, false), 0, kMaxVelocity, "mm/yr");
    s.sigma_up = bounded(su, number(su, false), 0, kMaxVelocity, "mm/yr");
    if (grid && grid_e >= 0 && grid_n >= 0) {
      s.easting_m = bounded(grid_e, number(grid_e, true), -2e7, 2e7, "m");
      s.northing_m = bounded(grid_n, number(grid_n, true), -2e7, 2e7, "m");
    } else {
      s.easting_m = kNaN;
    }
    model.sites.push_back(std::move(s));
  }
  if (model.sites.empty()) throw FormatError(fmt::format("{}: no GNSS velocity in the file", path));
  // Positions in EPSG:3035 where the file gives only longitude/latitude.
  if (std::any_of(model.sites.begin(), model.sites.end(),
                  [](const GnssSite& s) { return std::isnan(s.easting_m); })) {
    const auto transform = detail::lonlat_to_epsg3035_transform();
    if (!transform) throw IoError("cannot build the WGS84 -> EPSG:3035 transformation");
    for (auto& s : model.sites) {
      double x = s.longitude, y = s.latitude;
      if (!transform->Transform(1, &x, &y)) {
        throw FormatError(fmt::format("{}: station {} at lon {} lat {} cannot be projected to EPSG:3035",
                                      path, s.name, s.longitude, s.latitude));
      }
      s.easting_m = x;
      s.northing_m = y;
    }
  }
  if (model.kind == GnssKind::kGrid) {
    std::vector<double> xs;
    for (const auto& s : model.sites) xs.push_back(s.easting_m);
    std::sort(xs.begin(), xs.end());
    double spacing = INFINITY;
    for (std::size_t i = 1; i < xs.size(); ++i) {
      if (xs[i] - xs[i - 1] > 1.0) spacing = std::min(spacing, xs[i] - xs[i - 1]);
    }
    model.grid_spacing_m = std::isfinite(spacing) ? spacing : 50000.0;
  }
  return model;
}

bool GnssModel::interpolate(double e, double n, double& east, double& north, double& up) const {
  // Inverse-distance weighting over the nodes within one spacing: on a regular grid this is close to
  // bilinear interpolation and degrades gracefully where nodes are missing (coasts, borders).
  const double h = grid_spacing_m > 0 ? grid_spacing_m : 50000.0;
  double sw = 0, se = 0, sn = 0, su = 0;
  for (const auto& s : sites) {
    const double dx = std::abs(s.easting_m - e), dy = std::abs(s.northing_m - n);
    if (dx >= h || dy >= h) continue;
    const double w = (1 - dx / h) * (1 - dy / h);  // bilinear weights on a full grid
    sw += w;
    se += w * s.east;
    sn += w * s.north;
    su += w * s.up;
  }
  if (sw <= 0) return false;
  east = se / sw;
  north = sn / sw;
  up = su / sw;
  return true;
}

void CalibrateOptions::validate() const {
  if (source == GnssSource::kFile && gnss_path.empty())
    throw InvalidArgument("gnss: a GNSS file is required");
  if (polynomial_order < 0 || polynomial_order > 2) {
    throw InvalidArgument(fmt::format("polynomial-order = {}: expected 0, 1 or 2", polynomial_order));
  }
  if (!(smoothing_wavelength_m >= 0)) {
    throw InvalidArgument(fmt::format("smoothing-wavelength-m = {}: expected >= 0", smoothing_wavelength_m));
  }
  if (!(station_radius_m > 0))
    throw InvalidArgument(fmt::format("station-radius-m = {}: expected > 0", station_radius_m));
  if (min_station_points < 1) {
    throw InvalidArgument(fmt::format("min-station-points = {}: expected >= 1", min_station_points));
  }
}

Summary run_calibrate(const std::string& input, const CalibrateOptions& calibration,
                      const ProductOutputs& outputs, const StreamOptions& options, const RunContext& context,
                      const io::Provenance& provenance) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  calibration.validate();
  detail::check_outputs(input, outputs);
  auto reader = ProductReader::open(input);
  const ProductLayout& layout = reader.layout();
  const TimeSeriesModel model(layout.dates, options.model);
  const auto& t = model.times_years();
  Progress& progress = progress_or_null(context.progress);
  const int e = layout.require(column::kEasting, "calibration");
  const int n = layout.require(column::kNorthing, "calibration");
  const int v = layout.require(column::kMeanVelocity, "calibration");
  int gnss_column = -1, le = -1, ln = -1, lu = -1;
  GnssModel gnss;
  const bool from_file = calibration.source == GnssSource::kFile;
  if (from_file) {
    gnss = GnssModel::read(calibration.gnss_path);
    le = layout.require(column::kLosEast, "projecting GNSS on the line of sight");
    ln = layout.require(column::kLosNorth, "projecting GNSS on the line of sight");
    lu = layout.require(column::kLosUp, "projecting GNSS on the line of sight");
  } else {
    gnss_column = layout.require(column::kGnssVelocity, "calibration with the product's own GNSS values");
  }
  const bool at_stations = from_file && gnss.kind == GnssKind::kStations;
  const auto gnss_los = [&](const PointChunk& c, std::size_t p) {
    if (!from_file) return c.scalar(p, gnss_column);
    double ge, gn, gu;
    if (!gnss.interpolate(c.scalar(p, e), c.scalar(p, n), ge, gn, gu)) return kNaN;
    return ge * c.scalar(p, le) + gn * c.scalar(p, ln) + gu * c.scalar(p, lu);
  };

  Polynomial poly;
  poly.order = calibration.polynomial_order;
  NormalEquations equations;
  Smoother smoother(calibration.smoothing_wavelength_m);
  RunningStats before, after;
  struct StationSums {
    std::int64_t count = 0;
    double v = 0, le = 0, ln = 0, lu = 0, e = 0, n = 0;
  };
  std::vector<StationSums> station_sums(at_stations ? gnss.sites.size() : 0);
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::size_t>> station_index;
  if (at_stations) {
    for (std::size_t i = 0; i < gnss.sites.size(); ++i) {
      station_index
          [{static_cast<std::int64_t>(std::floor(gnss.sites[i].easting_m / calibration.station_radius_m)),
            static_cast<std::int64_t>(std::floor(gnss.sites[i].northing_m / calibration.station_radius_m))}]
              .push_back(i);
    }
  }
  // Smoothing bins for point residuals: (count, sum r, sum e, sum n).
  struct Bin {
    std::int64_t count = 0;
    double r = 0, e = 0, n = 0;
  };
  std::map<std::pair<std::int64_t, std::int64_t>, Bin> bins;
  const double bin_size =
      calibration.smoothing_wavelength_m > 0 ? calibration.smoothing_wavelength_m / 8.0 : 1.0;
  bool origin_set = false;
  std::int64_t points_without_gnss = 0;

  const std::size_t chunk_points = detail::chunk_points_for(options, layout, context);
  std::int64_t los_mismatches = 0;
  // Pass 1: residual samples.
  progress.start("calibration residuals", std::max<std::uint64_t>(reader.total_bytes(), 1));
  PointChunk chunk;
  std::uint64_t reported = 0;
  while (reader.read(chunk, chunk_points)) {
    detail::check_cancelled(progress);
    if (from_file) los_mismatches += detail::count_los_mismatches(layout, chunk);
    for (std::size_t p = 0; p < chunk.size(); ++p) {
      const double pe = chunk.scalar(p, e), pn = chunk.scalar(p, n), pv = chunk.scalar(p, v);
      if (std::isnan(pe) || std::isnan(pn) || std::isnan(pv)) continue;
      if (!origin_set) {
        poly.e0 = std::round(pe / 1000) * 1000;
        poly.n0 = std::round(pn / 1000) * 1000;
        origin_set = true;
      }
      if (at_stations) {
        // A point without its LOS vector cannot be compared with a station: left out of the mean.
        if (std::isnan(chunk.scalar(p, le)) || std::isnan(chunk.scalar(p, ln)) || std::isnan(chunk.scalar(p, lu))) {
          continue;
        }
        const auto cx = static_cast<std::int64_t>(std::floor(pe / calibration.station_radius_m));
        const auto cy = static_cast<std::int64_t>(std::floor(pn / calibration.station_radius_m));
        for (std::int64_t dy = -1; dy <= 1; ++dy) {
          for (std::int64_t dx = -1; dx <= 1; ++dx) {
            const auto it = station_index.find({cx + dx, cy + dy});
            if (it == station_index.end()) continue;
            for (const std::size_t s : it->second) {
              if (std::hypot(gnss.sites[s].easting_m - pe, gnss.sites[s].northing_m - pn) >
                  calibration.station_radius_m) {
                continue;
              }
              auto& sum = station_sums[s];
              ++sum.count;
              sum.v += pv;
              sum.le += chunk.scalar(p, le);
              sum.ln += chunk.scalar(p, ln);
              sum.lu += chunk.scalar(p, lu);
              sum.e += pe;
              sum.n += pn;
            }
          }
        }
        continue;
      }
      const double g = gnss_los(chunk, p);
      if (std::isnan(g)) {
        ++points_without_gnss;
        continue;
      }
      const double r = pv - g;
      equations.add(poly, pe, pn, r);
      before.add(r);
      if (smoother.enabled()) {
        auto& b = bins[{static_cast<std::int64_t>(std::floor(pe / bin_size)),
                        static_cast<std::int64_t>(std::floor(pn / bin_size))}];
        ++b.count;
        b.r += r;
        b.e += pe;
        b.n += pn;
      }
    }
    const std::uint64_t now = reader.bytes_read();
    if (now > reported) progress.advance(now - reported);
    reported = now;
  }
  progress.finish();
  reader.rewind();

  nlohmann::json stations_json = nlohmann::json::array();
  // A station's residual is sampled where its InSAR mean is representative: at the centroid of the
  // points averaged (exact for a linear field, whatever the shape of the coastline around the station).
  struct UsedStation {
    std::size_t site;
    double los_gnss, insar, residual;
    std::int64_t points;
    double e, n;
  };
  std::vector<UsedStation> used;
  if (at_stations) {
    for (std::size_t s = 0; s < station_sums.size(); ++s) {
      const auto& sum = station_sums[s];
      if (sum.count < calibration.min_station_points) continue;
      const double c = static_cast<double>(sum.count);
      const auto& site = gnss.sites[s];
      const double los = site.east * sum.le / c + site.north * sum.ln / c + site.up * sum.lu / c;
      used.push_back({s, los, sum.v / c, sum.v / c - los, sum.count, sum.e / c, sum.n / c});
    }
    if (used.empty()) {
      throw InvalidArgument(
          fmt::format("{}: none of the {} GNSS stations has {} or more measurement points of {} within {} m: "
                      "no station inside "
                      "the area (raise --station-radius-m or give a gridded model)",
                      calibration.gnss_path, gnss.sites.size(), calibration.min_station_points, input,
                      calibration.station_radius_m));
    }
    for (const auto& u : used) {
      equations.add(poly, u.e, u.n, u.residual);
      before.add(u.residual);
    }
  } else if (equations.samples == 0) {
    throw InvalidArgument(fmt::format("{}: no measurement point has a GNSS velocity ({}){}", input,
                                      from_file ? calibration.gnss_path : "column gnss_velocity",
                                      from_file ? ": the GNSS grid does not cover the area" : ""));
  }
  const int requested_order = poly.order;
  const int order = solve_polynomial(poly, equations);
  if (smoother.enabled()) {
    if (at_stations) {
      for (const auto& u : used) {
        smoother.add(u.e, u.n, 1.0, u.residual - poly.eval(u.e, u.n));
      }
    } else {
      for (const auto& [key, b] : bins) {
        const double ce = b.e / b.count, cn = b.n / b.count;
        smoother.add(ce, cn, static_cast<double>(b.count), b.r / b.count - poly.eval(ce, cn));
      }
    }
    smoother.build_index();
  }
  const auto surface = [&](double pe, double pn) { return poly.eval(pe, pn) + smoother.at(pe, pn); };

  nlohmann::json calibration_json = {
      {"gnss", from_file ? calibration.gnss_path : "gnss_velocity column"},
      {"mode", at_stations ? "stations" : "points"},
      {"polynomial_order", order},
      {"polynomial_origin_m", {poly.e0, poly.n0}},
      {"polynomial_coefficients_per_100km",
       std::vector<double>(poly.coefficients.data(), poly.coefficients.data() + poly.coefficients.size())},
      {"smoothing_wavelength_m", calibration.smoothing_wavelength_m}};
  if (at_stations) {
    for (const auto& u : used) {
      const auto& site = gnss.sites[u.site];
      const double corrected = u.residual - surface(u.e, u.n);
      after.add(corrected);
      stations_json.push_back({{"station", site.name},
                               {"points", u.points},
                               {"gnss_los_mm_per_yr", u.los_gnss},
                               {"insar_mm_per_yr", u.insar},
                               {"residual_before_mm_per_yr", u.residual},
                               {"residual_after_mm_per_yr", corrected}});
    }
    calibration_json["stations"] = stations_json;
  }

  // Pass 2: apply the correction surface to velocities and series, refit, write.
  std::unique_ptr<detail::OutputSinks> sinks;
  std::vector<PointModel> results;
  std::int64_t points = 0, failed = 0;
  RunningStats correction_stats;
  nlohmann::json extra = {{"operation", "egms calibrate"}, {"calibration", calibration_json}};
  ProductMetadata metadata = reader.metadata();
  if (metadata.level == "L2a" || metadata.level.empty()) metadata.level = "L2b";
  progress.start("calibrating", std::max<std::uint64_t>(reader.total_bytes(), 1));
  reported = 0;
  std::vector<double> corrections;
  while (reader.read(chunk, chunk_points)) {
    detail::check_cancelled(progress);
    if (!sinks && outputs.any()) {
      sinks = std::make_unique<detail::OutputSinks>(outputs, reader.layout(), metadata,
                                                    detail::with_input(provenance, input), extra);
    }
    corrections.assign(chunk.size(), 0.0);
    for (std::size_t p = 0; p < chunk.size(); ++p) {
      const double pe = chunk.scalar(p, e), pn = chunk.scalar(p, n);
      if (std::isnan(pe) || std::isnan(pn)) continue;
      const double s = surface(pe, pn);
      corrections[p] = s;
      correction_stats.add(s);
      float* series = chunk.series_of(p);
      for (std::size_t d = 0; d < chunk.date_count; ++d) series[d] -= static_cast<float>(s * t[d]);
    }
    detail::fit_chunk(model, chunk, results);
    for (std::size_t p = 0; p < chunk.size(); ++p) {
      failed += std::isnan(results[p].mean_velocity) ? 1 : 0;
      if (!at_stations) {
        const double g = gnss_los(chunk, p);
        const double pv = chunk.scalar(p, v);
        if (!std::isnan(g) && !std::isnan(pv)) after.add(pv - corrections[p] - g);
      }
    }
    // The velocity column follows the correction exactly (the refit of d - s·t gives v - s).
    detail::store_model(reader.layout(), chunk, results);
    points += static_cast<std::int64_t>(chunk.size());
    if (sinks) sinks->write(chunk);
    const std::uint64_t now = reader.bytes_read();
    if (now > reported) progress.advance(now - reported);
    reported = now;
  }
  progress.finish();

  Summary summary;
  summary.operation = "egms calibrate";
  summary.counts["points"] = points;
  summary.counts["failed"] = failed;
  summary.counts["points_without_gnss"] = points_without_gnss;
  if (at_stations) summary.counts["stations_used"] = static_cast<std::int64_t>(used.size());
  calibration_json["residual_before"] = before.to_json();
  calibration_json["residual_after"] = after.to_json();
  calibration_json["correction"] = correction_stats.to_json();
  summary.details["calibration"] = calibration_json;
  if (sinks) summary.outputs = sinks->close();
  if (los_mismatches > 0) {
    summary.warnings.push_back(fmt::format(
        "{} points have los_east/north/up inconsistent (> 0.01) with incidence_angle and track_angle: GNSS "
        "projected with the los_* columns as given",
        los_mismatches));
  }
  if (order < requested_order) {
    summary.warnings.push_back(fmt::format(
        "polynomial order lowered from {} to {}: too few or aligned GNSS samples", requested_order, order));
  }
  const auto before_j = before.to_json(), after_j = after.to_json();
  summary.report = fmt::format(
      "{}: {} points calibrated on {} ({}), polynomial order {}, smoothing wavelength {} m\n"
      "  InSAR - GNSS residual ({} samples): before mean {:.2f} std {:.2f} mm/yr; after mean {:.2f} std "
      "{:.2f} mm/yr\n"
      "  correction applied: mean {:.2f} mm/yr\n",
      input, points, from_file ? calibration.gnss_path : "the gnss_velocity column",
      at_stations ? fmt::format("{} stations", used.size()) : "per point", order,
      calibration.smoothing_wavelength_m, before.n, before_j["mean_mm_per_yr"].get<double>(),
      before_j["std_mm_per_yr"].get<double>(), after_j["mean_mm_per_yr"].get<double>(),
      after_j["std_mm_per_yr"].get<double>(),
      correction_stats.n ? correction_stats.sum / correction_stats.n : 0.0);
  if (at_stations) {
    for (const auto& s : stations_json) {
      summary.report += fmt::format("    {:<10} {:>5} points  residual {:>7.2f} -> {:>7.2f} mm/yr\n",
                                    s["station"].get<std::string>(), s["points"].get<std::int64_t>(),
                                    s["residual_before_mm_per_yr"].get<double>(),
                                    s["residual_after_mm_per_yr"].get<double>());
    }
  }
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace deforma::egms
