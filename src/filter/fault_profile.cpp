#include "deforma/filter/fault_profile.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"
#include "deforma/core/operation.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/io/provenance.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/render/plot.hpp"

namespace deforma::filter {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPi = 3.14159265358979323846;

struct LineFit {
  double intercept = kNaN;
  double sigma = kNaN;
  int points = 0;
};

// value = a + b d by least squares, refitted without residuals beyond k NMADs of the median residual;
// sigma of the intercept from the NMAD of the kept residuals (a robust scatter, so that the outliers
// rejected do not inflate it).
LineFit robust_line(const std::vector<double>& d, const std::vector<double>& v,
                    const FaultProfileOptions& o) {
  LineFit fit;
  std::vector<char> keep(d.size(), 1);
  for (int iteration = 0; iteration <= o.robust_iterations; ++iteration) {
    Eigen::Matrix2d n = Eigen::Matrix2d::Zero();
    Eigen::Vector2d rhs = Eigen::Vector2d::Zero();
    int count = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (!keep[i]) continue;
      n(0, 0) += 1;
      n(0, 1) += d[i];
      n(1, 1) += d[i] * d[i];
      rhs(0) += v[i];
      rhs(1) += d[i] * v[i];
      ++count;
    }
    n(1, 0) = n(0, 1);
    if (count < 3 || std::abs(n.determinant()) < 1e-12 * std::max(1.0, n(1, 1) * n(0, 0))) return LineFit{};
    const Eigen::Vector2d ab = n.ldlt().solve(rhs);
    std::vector<double> residuals;
    residuals.reserve(d.size());
    for (std::size_t i = 0; i < d.size(); ++i) residuals.push_back(v[i] - ab(0) - ab(1) * d[i]);
    std::vector<double> kept_residuals;
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (keep[i]) kept_residuals.push_back(residuals[i]);
    }
    const double med = median_of(kept_residuals);
    std::vector<double> dev;
    for (const double r : kept_residuals) dev.push_back(std::abs(r - med));
    const double nmad = 1.4826 * median_of(dev);
    fit.intercept = ab(0);
    fit.points = count;
    const Eigen::Matrix2d inv = n.inverse();
    fit.sigma = nmad * std::sqrt(std::max(0.0, inv(0, 0)));
    if (iteration == o.robust_iterations || !(nmad > 0)) break;
    bool changed = false;
    for (std::size_t i = 0; i < d.size(); ++i) {
      const bool k = std::abs(residuals[i] - med) <= o.robust_k * nmad;
      if (k != static_cast<bool>(keep[i])) changed = true;
      keep[i] = k;
    }
    if (!changed) break;
  }
  return fit;
}

// A point at arc length s along the polyline, and the unit direction between s - half and s + half.
struct TraceGeometry {
  std::vector<std::array<double, 2>> v;
  std::vector<double> cumulative;

  explicit TraceGeometry(const std::vector<std::array<double, 2>>& vertices) {
    for (const auto& p : vertices) {
      if (!v.empty() && std::hypot(p[0] - v.back()[0], p[1] - v.back()[1]) < 1e-9) continue;
      v.push_back(p);
    }
    if (v.size() < 2) throw InvalidArgument("fault trace: needs at least two distinct vertices");
    cumulative.push_back(0);
    for (std::size_t i = 1; i < v.size(); ++i) {
      cumulative.push_back(cumulative.back() + std::hypot(v[i][0] - v[i - 1][0], v[i][1] - v[i - 1][1]));
    }
  }
  double length() const { return cumulative.back(); }
  std::array<double, 2> at(double s) const {
    s = std::clamp(s, 0.0, length());
    const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), s);
    std::size_t i = std::min<std::size_t>(static_cast<std::size_t>(it - cumulative.begin()), v.size() - 1);
    if (i == 0) i = 1;
    const double seg = cumulative[i] - cumulative[i - 1];
    const double f = seg > 0 ? (s - cumulative[i - 1]) / seg : 0.0;
    return {v[i - 1][0] + f * (v[i][0] - v[i - 1][0]), v[i - 1][1] + f * (v[i][1] - v[i - 1][1])};
  }
};

}  // namespace

void FaultProfileOptions::validate() const {
  auto positive = [](double v, const char* name, const char* unit) {
    if (!(v > 0) || !std::isfinite(v)) {
      throw InvalidArgument(fmt::format("--{} {}: expected a positive length in {}", name, v, unit));
    }
  };
  positive(spacing_m, "spacing", "metres");
  positive(width_m, "width", "metres");
  positive(length_m, "length", "metres");
  if (!(near_fault_m >= 0) || !std::isfinite(near_fault_m)) {
    throw InvalidArgument(fmt::format("--near-fault {}: expected a length >= 0 in metres", near_fault_m));
  }
  if (!(length_m / 2 > near_fault_m * 1.5)) {
    throw InvalidArgument(fmt::format(
        "--length {} m with --near-fault {} m: each half of the profile must extend at least 1.5 times the "
        "near-fault zone, so that something is left to fit (length > {} m)",
        length_m, near_fault_m, near_fault_m * 3));
  }
  if (min_points < 3) throw InvalidArgument(fmt::format("--min-points {}: expected >= 3", min_points));
  if (!(robust_k >= 0.5)) throw InvalidArgument(fmt::format("--robust-k {}: expected >= 0.5", robust_k));
  if (robust_iterations < 0 || robust_iterations > 50) {
    throw InvalidArgument(fmt::format("--robust-iterations {}: expected 0..50", robust_iterations));
  }
}

std::vector<ProfileOffset> profile_offsets(const std::vector<std::array<double, 2>>& trace_m,
                                           const FieldSamples& samples, const FaultProfileOptions& options) {
  options.validate();
  const TraceGeometry trace(trace_m);
  const bool has_north = !samples.north.empty();
  const std::size_t n = samples.x_m.size();
  if (samples.y_m.size() != n || samples.east.size() != n || (has_north && samples.north.size() != n)) {
    throw InvalidArgument("profile_offsets: sample arrays of different sizes");
  }
  // Samples binned in square buckets half a profile long, so that each profile looks only at the buckets
  // its box can reach (not at every sample of the raster).
  const double bucket_m = std::max(options.length_m, options.width_m) / 2;
  double bx0 = 1e300, by0 = 1e300, bx1 = -1e300, by1 = -1e300;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(samples.x_m[i]) || !std::isfinite(samples.y_m[i])) continue;
    bx0 = std::min(bx0, samples.x_m[i]), by0 = std::min(by0, samples.y_m[i]);
    bx1 = std::max(bx1, samples.x_m[i]), by1 = std::max(by1, samples.y_m[i]);
  }
  const int bcols = bx1 >= bx0 ? static_cast<int>((bx1 - bx0) / bucket_m) + 1 : 0;
  const int brows = by1 >= by0 ? static_cast<int>((by1 - by0) / bucket_m) + 1 : 0;
  std::vector<std::vector<std::size_t>> buckets(static_cast<std::size_t>(bcols) * brows);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(samples.x_m[i]) || !std::isfinite(samples.y_m[i])) continue;
    const int bc = static_cast<int>((samples.x_m[i] - bx0) / bucket_m);
    const int br = static_cast<int>((samples.y_m[i] - by0) / bucket_m);
    buckets[static_cast<std::size_t>(br) * bcols + bc].push_back(i);
  }
  const double reach = std::hypot(options.length_m / 2, options.width_m / 2);
  const int stations = std::max(1, static_cast<int>(std::floor(trace.length() / options.spacing_m)) + 1);
  const double first = (trace.length() - (stations - 1) * options.spacing_m) / 2;
  std::vector<ProfileOffset> out;
  std::vector<double> d_left, d_right, e_left, e_right, n_left, n_right;
  for (int k = 0; k < stations; ++k) {
    ProfileOffset p;
    p.index = k;
    p.distance_m = first + k * options.spacing_m;
    p.centre_m = trace.at(p.distance_m);
    // The strike over the stacking width, not a single segment's, so that a vertex does not tilt a profile.
    auto a = trace.at(p.distance_m - options.width_m / 2);
    auto b = trace.at(p.distance_m + options.width_m / 2);
    double tx = b[0] - a[0];
    double ty = b[1] - a[1];
    const double norm = std::hypot(tx, ty);
    tx /= norm;
    ty /= norm;
    p.strike_deg = std::fmod(std::atan2(tx, ty) * 180.0 / kPi + 360.0, 360.0);
    const double rx = ty;  // unit normal to the right of the trace direction
    const double ry = -tx;
    d_left.clear(), d_right.clear(), e_left.clear(), e_right.clear(), n_left.clear(), n_right.clear();
    std::vector<std::size_t> candidates;
    // Clamped as doubles first: a centre far from the data must not overflow the int conversion.
    auto bucket_index = [&](double v, double origin, int count) {
      return static_cast<int>(
          std::clamp(std::floor((v - origin) / bucket_m), -1.0, static_cast<double>(count)));
    };
    const int c0 = std::max(0, bucket_index(p.centre_m[0] - reach, bx0, bcols));
    const int c1 = std::min(bcols - 1, bucket_index(p.centre_m[0] + reach, bx0, bcols));
    const int r0 = std::max(0, bucket_index(p.centre_m[1] - reach, by0, brows));
    const int r1 = std::min(brows - 1, bucket_index(p.centre_m[1] + reach, by0, brows));
    for (int br = r0; br <= r1; ++br) {
      for (int bc = c0; bc <= c1; ++bc) {
        const auto& b = buckets[static_cast<std::size_t>(br) * bcols + bc];
        candidates.insert(candidates.end(), b.begin(), b.end());
      }
    }
    // In sample order, so that the fits do not depend on the bucketing.
    std::sort(candidates.begin(), candidates.end());
    for (const std::size_t i : candidates) {
      const double px = samples.x_m[i] - p.centre_m[0];
      const double py = samples.y_m[i] - p.centre_m[1];
      const double along = px * tx + py * ty;
      const double across = px * rx + py * ry;
      if (std::abs(along) > options.width_m / 2 || std::abs(across) > options.length_m / 2 ||
          std::abs(across) < options.near_fault_m) {
        continue;
      }
      if (!std::isfinite(samples.east[i]) || (has_north && !std::isfinite(samples.north[i]))) continue;
      auto& d = across < 0 ? d_left : d_right;
      d.push_back(across);
      (across < 0 ? e_left : e_right).push_back(samples.east[i]);
      if (has_north) (across < 0 ? n_left : n_right).push_back(samples.north[i]);
    }
    p.points_left = static_cast<int>(d_left.size());
    p.points_right = static_cast<int>(d_right.size());
    p.parallel = p.sigma_parallel = p.perpendicular = p.sigma_perpendicular = kNaN;
    p.east = p.sigma_east = p.north = p.sigma_north = kNaN;
    if (p.points_left < options.min_points || p.points_right < options.min_points) {
      p.status = fmt::format("too few points (left {}, right {}; --min-points {})", p.points_left,
                             p.points_right, options.min_points);
      out.push_back(p);
      continue;
    }
    const LineFit el = robust_line(d_left, e_left, options);
    const LineFit er = robust_line(d_right, e_right, options);
    p.east = el.intercept - er.intercept;
    p.sigma_east = std::hypot(el.sigma, er.sigma);
    if (has_north) {
      const LineFit nl = robust_line(d_left, n_left, options);
      const LineFit nr = robust_line(d_right, n_right, options);
      p.north = nl.intercept - nr.intercept;
      p.sigma_north = std::hypot(nl.sigma, nr.sigma);
      p.parallel = p.east * tx + p.north * ty;
      p.sigma_parallel = std::hypot(p.sigma_east * tx, p.sigma_north * ty);
      p.perpendicular = p.east * rx + p.north * ry;
      p.sigma_perpendicular = std::hypot(p.sigma_east * rx, p.sigma_north * ry);
    } else if (std::abs(tx) >= 0.3) {
      // Motion along the trace: its east part is the parallel offset times tx.
      p.parallel = p.east / tx;
      p.sigma_parallel = p.sigma_east / std::abs(tx);
    } else {
      p.status = "east only and the trace is within 17 degrees of north-south: no fault-parallel offset";
    }
    if (!std::isfinite(p.east)) p.status = "line fit failed (points aligned across the trace)";
    out.push_back(p);
  }
  return out;
}

TraceDirection parse_trace_direction(const std::string& text) {
  if (text == "auto") return TraceDirection::kAuto;
  if (text == "east-west") return TraceDirection::kEastWest;
  if (text == "north-south") return TraceDirection::kNorthSouth;
  throw InvalidArgument(fmt::format("--trace-direction {}: expected auto, east-west or north-south", text));
}

std::vector<std::array<double, 2>> ridge_trace(const GridF& values, const GridU8& valid, int step,
                                               int half_window, TraceDirection direction) {
  if (step < 1 || half_window < 2)
    throw InvalidArgument("ridge_trace: step >= 1 and half_window >= 2 expected");
  struct Candidate {
    std::vector<std::array<double, 2>> vertices;
    double sharpness = 0;
  };
  // along = the axis the trace runs along (bands across it), across = the axis the step is searched on.
  auto trace_along = [&](bool along_columns) {
    const int n_along = along_columns ? values.width() : values.height();
    const int n_across = along_columns ? values.height() : values.width();
    auto at = [&](int a, int b, bool& ok) {
      const int c = along_columns ? a : b, r = along_columns ? b : a;
      ok = valid(c, r) && std::isfinite(values(c, r));
      return static_cast<double>(values(c, r));
    };
    // Per band, the step score at every position across: the difference of the medians on either side
    // over their scatter (a sharp step in a quiet field, not the largest jump of a noisy one).
    std::vector<std::vector<double>> score;
    std::vector<double> centres;
    std::vector<double> profile(n_across), band;
    std::vector<char> has(n_across);
    std::vector<double> lo, hi, dev;
    for (int a0 = 0; a0 + step <= n_along; a0 += step) {
      for (int b = 0; b < n_across; ++b) {
        band.clear();
        for (int a = a0; a < a0 + step; ++a) {
          bool ok = false;
          const double v = at(a, b, ok);
          if (ok) band.push_back(v);
        }
        has[b] = !band.empty();
        profile[b] = has[b] ? median_of(band) : kNaN;
      }
      std::vector<double> row(n_across, 0.0);
      for (int b = half_window; b + half_window < n_across; ++b) {
        lo.clear(), hi.clear(), dev.clear();
        for (int k = b - half_window; k < b; ++k) {
          if (has[k]) lo.push_back(profile[k]);
        }
        for (int k = b + 1; k <= b + half_window; ++k) {
          if (has[k]) hi.push_back(profile[k]);
        }
        if (static_cast<int>(lo.size()) < half_window / 2 || static_cast<int>(hi.size()) < half_window / 2)
          continue;
        const double ml = median_of(lo), mh = median_of(hi);
        for (const double x : lo) dev.push_back(std::abs(x - ml));
        for (const double x : hi) dev.push_back(std::abs(x - mh));
        row[b] = std::abs(ml - mh) / (1.4826 * median_of(dev) + 1e-6);
      }
      score.push_back(std::move(row));
      centres.push_back(a0 + step / 2.0);
    }
    Candidate c;
    const int bands = static_cast<int>(score.size());
    if (bands < 2) return c;
    std::vector<double> band_max;
    for (const auto& row : score) band_max.push_back(*std::max_element(row.begin(), row.end()));
    const double typical = median_of(band_max);
    if (!(typical > 0)) return c;
    // The ridge as the best path through the bands (dynamic programming): the sum of the scores minus a
    // penalty per cell of jump between bands, so that a stripe or a lake crossed by one band cannot pull
    // the trace away. A jump of 10 cells costs a typical band's best score.
    const double penalty = typical / 10.0;
    std::vector<std::vector<int>> from(bands, std::vector<int>(n_across, 0));
    std::vector<double> best = score[0], reach(n_across);
    std::vector<int> arg(n_across);
    for (int i = 1; i < bands; ++i) {
      // reach[j] = max over k of best[k] - penalty |j - k| (two passes), arg = that k.
      for (int j = 0; j < n_across; ++j) reach[j] = best[j], arg[j] = j;
      for (int j = 1; j < n_across; ++j) {
        if (reach[j - 1] - penalty > reach[j]) reach[j] = reach[j - 1] - penalty, arg[j] = arg[j - 1];
      }
      for (int j = n_across - 2; j >= 0; --j) {
        if (reach[j + 1] - penalty > reach[j]) reach[j] = reach[j + 1] - penalty, arg[j] = arg[j + 1];
      }
      for (int j = 0; j < n_across; ++j) {
        best[j] = reach[j] + score[i][j];
        from[i][j] = arg[j];
      }
    }
    std::vector<int> path(bands);
    path[bands - 1] = static_cast<int>(std::max_element(best.begin(), best.end()) - best.begin());
    for (int i = bands - 1; i > 0; --i) path[i - 1] = from[i][path[i]];
    // Bands at either end where the path has no real step (beyond the data) are left out.
    int first = 0, last = bands - 1;
    while (first < last && score[first][path[first]] < 0.25 * typical) ++first;
    while (last > first && score[last][path[last]] < 0.25 * typical) --last;
    std::vector<double> kept_scores;
    for (int i = first; i <= last; ++i) {
      const double pos = path[i] + 0.5;
      c.vertices.push_back(along_columns ? std::array<double, 2>{centres[i], pos}
                                         : std::array<double, 2>{pos, centres[i]});
      kept_scores.push_back(score[i][path[i]]);
    }
    c.sharpness = median_of(kept_scores);
    return c;
  };
  if (direction == TraceDirection::kEastWest) return trace_along(true).vertices;
  if (direction == TraceDirection::kNorthSouth) return trace_along(false).vertices;
  Candidate ew = trace_along(true);
  Candidate ns = trace_along(false);
  return ew.sharpness >= ns.sharpness ? ew.vertices : ns.vertices;
}

// ---- Files ----

namespace {

struct SrsDeleter {
  void operator()(OGRSpatialReference* s) const { s->Release(); }
};
using Srs = std::unique_ptr<OGRSpatialReference, SrsDeleter>;
struct TransformDeleter {
  void operator()(OGRCoordinateTransformation* t) const { OGRCoordinateTransformation::DestroyCT(t); }
};
using Transform = std::unique_ptr<OGRCoordinateTransformation, TransformDeleter>;

Srs srs_from(const std::string& wkt) {
  if (wkt.empty()) return nullptr;
  Srs s(new OGRSpatialReference());
  s->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  if (s->importFromWkt(wkt.c_str()) != OGRERR_NONE) return nullptr;
  return s;
}

// The longest line of the file (any OGR format), in its own CRS (WKT, empty when none).
std::vector<std::array<double, 2>> read_trace(const std::string& path, std::string& crs_wkt) {
  GDALAllRegister();
  std::unique_ptr<GDALDataset> ds(static_cast<GDALDataset*>(
      GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
  if (!ds)
    throw IoError(fmt::format("--trace {}: cannot open it as a vector file (GeoJSON, GPKG, SHP...)", path));
  std::vector<std::array<double, 2>> best;
  double best_length = -1;
  for (auto* layer : ds->GetLayers()) {
    for (auto& feature : layer) {
      const OGRGeometry* g = feature->GetGeometryRef();
      if (!g) continue;
      std::vector<const OGRLineString*> lines;
      const auto type = wkbFlatten(g->getGeometryType());
      if (type == wkbLineString) {
        lines.push_back(g->toLineString());
      } else if (type == wkbMultiLineString) {
        for (const auto* part : g->toMultiLineString()) lines.push_back(part);
      }
      for (const auto* line : lines) {
        if (line->get_Length() > best_length) {
          best_length = line->get_Length();
          best.clear();
          for (int i = 0; i < line->getNumPoints(); ++i) best.push_back({line->getX(i), line->getY(i)});
          const OGRSpatialReference* srs = layer->GetSpatialRef();
          crs_wkt.clear();
          if (srs) {
            char* wkt = nullptr;
            srs->exportToWkt(&wkt);
            crs_wkt = wkt ? wkt : "";
            CPLFree(wkt);
          }
        }
      }
    }
  }
  if (best.size() < 2) {
    throw InvalidArgument(
        fmt::format("--trace {}: no line with two vertices or more (expected a LineString)", path));
  }
  return best;
}

void transform_points(OGRCoordinateTransformation* t, std::vector<double>& x, std::vector<double>& y,
                      const std::string& what) {
  if (!t || x.empty()) return;
  std::vector<int> ok(x.size(), 0);
  if (!t->Transform(x.size(), x.data(), y.data(), nullptr, ok.data())) {
    // Per-point failures are reported through `ok`; a false return with all failed is an error.
    if (std::none_of(ok.begin(), ok.end(), [](int v) { return v != 0; })) {
      throw NumericalError(fmt::format("{}: coordinate transformation failed", what));
    }
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!ok[i]) x[i] = y[i] = kNaN;
  }
}

std::string csv_number(double v, int decimals) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : "";
}

}  // namespace

Summary fault_profile(const FaultProfileRun& run, RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  run.options.validate();
  io::Raster raster = io::Raster::open(run.input);
  const io::RasterInfo& info = raster.info();
  // Bands: east is required; north is optional (east-only data such as the Izmit offsets).
  int east = 0;
  if (!run.east_band.empty()) {
    east = io::find_band(info, run.east_band, "--east-band");
    if (east == 0) {
      throw FormatError(fmt::format("{}: --east-band {}: no such band (bands: {})", run.input, run.east_band,
                                    io::band_names(info)));
    }
  } else {
    east = io::find_band(info, "east_m", "--east-band");
    if (east == 0 && info.band_count() == 1) east = 1;
    if (east == 0) {
      throw FormatError(fmt::format("{}: no band described east_m and {} bands: give --east-band (bands: {})",
                                    run.input, info.band_count(), io::band_names(info)));
    }
  }
  int north = 0;
  if (run.north_band != "none") {
    if (!run.north_band.empty()) {
      north = io::find_band(info, run.north_band, "--north-band");
      if (north == 0) {
        throw FormatError(fmt::format("{}: --north-band {}: no such band (bands: {})", run.input,
                                      run.north_band, io::band_names(info)));
      }
    } else {
      north = io::find_band(info, "north_m", "--north-band");
    }
  }
  const std::string unit = info.bands[east - 1].unit.empty() ? "m" : info.bands[east - 1].unit;

  // The trace, in the raster's CRS: read, or traced on the east band.
  std::string trace_wkt;
  const std::string trace_label = run.trace.empty() ? "the automatic trace" : run.trace;
  std::vector<std::array<double, 2>> trace;
  std::vector<std::string> warnings;
  if (!run.trace.empty()) {
    trace = read_trace(run.trace, trace_wkt);
  } else {
    const double px = std::max(
        1e-9, std::min(info.pixel_size_x_m > 0 ? info.pixel_size_x_m : std::abs(info.geotransform.c[1]),
                       info.pixel_size_y_m > 0 ? info.pixel_size_y_m : std::abs(info.geotransform.c[5])));
    if (static_cast<long long>(info.width) * info.height > 60'000'000LL) {
      throw InvalidArgument(fmt::format("{}: too large for the automatic trace ({} x {} cells); give --trace",
                                        run.input, info.width, info.height));
    }
    const int step = std::max(1, static_cast<int>(std::lround(run.options.spacing_m / 2 / px)));
    const int half = std::max(3, static_cast<int>(std::lround(run.options.length_m / 4 / px)));
    const io::BandWindow all = raster.read_all(east);
    for (const auto& v : ridge_trace(all.values, all.valid, step, half, run.trace_direction)) {
      double x = 0, y = 0;
      info.geotransform.pixel_to_map(v[0], v[1], x, y);
      trace.push_back({x, y});
    }
    if (trace.size() < 2) {
      throw InvalidArgument(
          fmt::format("{}: no displacement step found for an automatic trace; give --trace", run.input));
    }
    trace_wkt = info.crs_wkt;
    warnings.push_back(
        fmt::format("automatic trace: {} vertices along the sharpest step of band {} (check it "
                    "in the GeoPackage's 'trace' layer)",
                    trace.size(), east));
  }
  const Srs raster_srs = srs_from(info.crs_wkt);
  Srs trace_srs = srs_from(trace_wkt);
  if (!raster_srs && trace_srs) {
    throw InvalidArgument(
        fmt::format("--trace {} has a CRS but {} has none: cannot place the trace on the data (CRS mismatch)",
                    trace_label, run.input));
  }
  if (!raster_srs && !info.georeferenced) {
    throw InvalidArgument(fmt::format("{}: no georeferencing; profiles need lengths in metres", run.input));
  }
  if (raster_srs && !trace_srs) {
    warnings.push_back(
        fmt::format("--trace {} declares no CRS: taken in the CRS of {}", trace_label, run.input));
  }
  if (raster_srs && trace_srs && !raster_srs->IsSame(trace_srs.get())) {
    Transform t(OGRCreateCoordinateTransformation(trace_srs.get(), raster_srs.get()));
    if (!t) {
      throw InvalidArgument(fmt::format(
          "--trace {}: its CRS cannot be transformed to that of {} (CRS mismatch)", trace_label, run.input));
    }
    std::vector<double> x, y;
    for (const auto& p : trace) x.push_back(p[0]), y.push_back(p[1]);
    transform_points(t.get(), x, y, "--trace " + trace_label);
    for (std::size_t i = 0; i < trace.size(); ++i) trace[i] = {x[i], y[i]};
  }
  // The trace must lie on the data: its box must meet the raster's; vertices beyond the edge (a trace
  // digitised longer than the data) only give profiles without data, and a warning.
  {
    double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
    int outside = 0;
    for (const auto& p : trace) {
      double col = 0, row = 0;
      if (!std::isfinite(p[0]) || !std::isfinite(p[1])) {
        throw InvalidArgument(fmt::format(
            "--trace {}: a vertex cannot be placed in the CRS of {} (CRS mismatch)", trace_label, run.input));
      }
      info.geotransform.map_to_pixel(p[0], p[1], col, row);
      cmin = std::min(cmin, col), cmax = std::max(cmax, col), rmin = std::min(rmin, row),
      rmax = std::max(rmax, row);
      if (col < 0 || row < 0 || col > info.width || row > info.height) ++outside;
    }
    if (cmax < 0 || rmax < 0 || cmin > info.width || rmin > info.height) {
      throw InvalidArgument(
          fmt::format("--trace {}: the trace (first vertex {:.6f}, {:.6f}) lies outside {} (expected it on "
                      "the data, in the "
                      "raster's CRS or in a CRS that transforms to it)",
                      trace_label, trace.front()[0], trace.front()[1], run.input));
    }
    if (outside > 0) {
      warnings.push_back(fmt::format("--trace {}: {} of {} vertices lie outside {}", trace_label, outside,
                                     trace.size(), run.input));
    }
  }

  // The local metric frame: an azimuthal equidistant projection at the trace's middle for geographic data
  // (distances true to well under 0.1 % over tens of kilometres), the CRS itself (in metres) otherwise.
  Transform to_metric;
  double linear_to_m = 1.0;
  Srs metric_srs;
  if (raster_srs && raster_srs->IsGeographic()) {
    double cx = 0, cy = 0;
    for (const auto& p : trace) cx += p[0], cy += p[1];
    cx /= static_cast<double>(trace.size());
    cy /= static_cast<double>(trace.size());
    metric_srs.reset(new OGRSpatialReference());
    metric_srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    metric_srs->SetWellKnownGeogCS("WGS84");
    metric_srs->SetAE(cy, cx, 0, 0);
    to_metric.reset(OGRCreateCoordinateTransformation(raster_srs.get(), metric_srs.get()));
    if (!to_metric) throw NumericalError(fmt::format("{}: cannot build a local metric frame", run.input));
  } else if (raster_srs) {
    linear_to_m = raster_srs->GetLinearUnits();
  }
  auto to_m = [&](std::vector<double>& x, std::vector<double>& y) {
    if (to_metric) {
      transform_points(to_metric.get(), x, y, run.input);
    } else {
      for (std::size_t i = 0; i < x.size(); ++i) x[i] *= linear_to_m, y[i] *= linear_to_m;
    }
  };
  std::vector<std::array<double, 2>> trace_m = trace;
  {
    std::vector<double> x, y;
    for (const auto& p : trace) x.push_back(p[0]), y.push_back(p[1]);
    to_m(x, y);
    for (std::size_t i = 0; i < trace.size(); ++i) trace_m[i] = {x[i], y[i]};
  }

  // Read only the window the profiles reach: the trace's box plus half a profile and a stacking width.
  double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
  for (const auto& p : trace) {
    double col = 0, row = 0;
    info.geotransform.map_to_pixel(p[0], p[1], col, row);
    cmin = std::min(cmin, col), cmax = std::max(cmax, col), rmin = std::min(rmin, row),
    rmax = std::max(rmax, row);
  }
  const double px_m = std::max(
      1e-9, std::min(info.pixel_size_x_m > 0 ? info.pixel_size_x_m : std::abs(info.geotransform.c[1]),
                     info.pixel_size_y_m > 0 ? info.pixel_size_y_m : std::abs(info.geotransform.c[5])));
  const double margin = (run.options.length_m / 2 + run.options.width_m) / px_m + 2;
  if (margin > 1e6) {
    throw InvalidArgument(
        fmt::format("--length {} m: far larger than {} ({} m cells)", run.options.length_m, run.input, px_m));
  }
  const io::Window want{static_cast<int>(std::floor(cmin - margin)),
                        static_cast<int>(std::floor(rmin - margin)),
                        static_cast<int>(std::ceil(cmax - cmin + 2 * margin)) + 1,
                        static_cast<int>(std::ceil(rmax - rmin + 2 * margin)) + 1};
  const io::Window w = want.intersect(io::Window{0, 0, info.width, info.height});
  // Samples are held in memory (four doubles each): refuse what would not fit rather than swap.
  constexpr long long kMaxCells = 60'000'000;
  if (w.pixel_count() > kMaxCells) {
    throw InvalidArgument(fmt::format(
        "--length {} m, --width {} m: the profiles reach {} cells of {} (at most {}); crop the raster to the "
        "fault zone or shorten the profiles",
        run.options.length_m, run.options.width_m, w.pixel_count(), run.input, kMaxCells));
  }
  Progress* progress = context.progress;
  NullProgress silent;
  if (!progress) progress = &silent;
  progress->start("fault-profile", 3);
  const io::BandWindow east_w = raster.read(east, w);
  std::optional<io::BandWindow> north_w;
  if (north > 0) north_w = raster.read(north, w);
  FieldSamples samples;
  for (int r = 0; r < w.height; ++r) {
    for (int c = 0; c < w.width; ++c) {
      if (!east_w.valid(c, r) || (north_w && !north_w->valid(c, r))) continue;
      double x = 0, y = 0;
      info.geotransform.pixel_to_map(w.col + c + 0.5, w.row + r + 0.5, x, y);
      samples.x_m.push_back(x);
      samples.y_m.push_back(y);
      samples.east.push_back(east_w.values(c, r));
      if (north_w) samples.north.push_back(north_w->values(c, r));
    }
  }
  to_m(samples.x_m, samples.y_m);
  progress->advance(1);
  if (progress->cancelled()) throw Cancelled("fault-profile: cancelled");
  const std::vector<ProfileOffset> profiles = profile_offsets(trace_m, samples, run.options);
  progress->advance(1);
  const auto measured = std::count_if(profiles.begin(), profiles.end(), [](const ProfileOffset& p) {
    return std::isfinite(p.parallel) || std::isfinite(p.east);
  });
  if (measured == 0) {
    throw InvalidArgument(
        fmt::format("--trace {}: no profile has {} valid cells on both sides of the trace in {} (is the "
                    "trace on the data? "
                    "try a larger --width or --length, or a smaller --min-points)",
                    trace_label, run.options.min_points, run.input));
  }

  // Profile ends and centres back in the raster's CRS.
  std::vector<double> ex, ey;
  for (const auto& p : profiles) {
    const double s = p.strike_deg * kPi / 180.0;
    const double tx = std::sin(s), ty = std::cos(s);
    const double rx = ty, ry = -tx;
    ex.push_back(p.centre_m[0] - rx * run.options.length_m / 2);
    ey.push_back(p.centre_m[1] - ry * run.options.length_m / 2);
    ex.push_back(p.centre_m[0] + rx * run.options.length_m / 2);
    ey.push_back(p.centre_m[1] + ry * run.options.length_m / 2);
    ex.push_back(p.centre_m[0]);
    ey.push_back(p.centre_m[1]);
  }
  if (to_metric) {
    Transform back(OGRCreateCoordinateTransformation(metric_srs.get(), raster_srs.get()));
    transform_points(back.get(), ex, ey, run.input);
  } else {
    for (std::size_t i = 0; i < ex.size(); ++i) ex[i] /= linear_to_m, ey[i] /= linear_to_m;
  }
  const std::string components = north > 0 ? "east+north" : "east";

  io::Provenance provenance{run.command_line, run.parameters, {run.input}};
  if (!run.trace.empty()) provenance.inputs.push_back(run.trace);
  io::write_atomically(run.output_csv, [&](const std::string& temp) {
    std::ofstream f(temp);
    f << "index,distance_m,x,y,strike_deg,offset_parallel,sigma_parallel,offset_perpendicular,"
         "sigma_perpendicular,offset_east,sigma_east,offset_north,sigma_north,points_left,points_right,"
         "status\n";
    for (std::size_t i = 0; i < profiles.size(); ++i) {
      const auto& p = profiles[i];
      f << fmt::format("{},{:.1f},{:.8g},{:.8g},{:.2f},{},{},{},{},{},{},{},{},{},{},\"{}\"\n", p.index,
                       p.distance_m, ex[3 * i + 2], ey[3 * i + 2], p.strike_deg, csv_number(p.parallel, 4),
                       csv_number(p.sigma_parallel, 4), csv_number(p.perpendicular, 4),
                       csv_number(p.sigma_perpendicular, 4), csv_number(p.east, 4),
                       csv_number(p.sigma_east, 4), csv_number(p.north, 4), csv_number(p.sigma_north, 4),
                       p.points_left, p.points_right, p.status);
    }
    f.flush();
    if (!f) throw IoError(fmt::format("{}: cannot write the profile table", run.output_csv));
  });
  std::vector<std::string> outputs = {run.output_csv};

  if (!run.output_gpkg.empty()) {
    io::write_atomically(run.output_gpkg, [&](const std::string& temp) {
      auto* driver = GetGDALDriverManager()->GetDriverByName("GPKG");
      if (!driver) throw IoError("GDAL has no GPKG driver");
      std::unique_ptr<GDALDataset> ds(driver->Create(temp.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
      if (!ds) throw IoError(fmt::format("{}: cannot create the GeoPackage", run.output_gpkg));
      OGRLayer* layer = ds->CreateLayer("profiles", raster_srs.get(), wkbLineString, nullptr);
      if (!layer) throw IoError(fmt::format("{}: cannot create layer 'profiles'", run.output_gpkg));
      OGRFieldDefn idx("index", OFTInteger);
      layer->CreateField(&idx);
      const char* real_fields[] = {
          "distance_m",          "strike_deg",  "offset_parallel", "sigma_parallel", "offset_perpendicular",
          "sigma_perpendicular", "offset_east", "sigma_east",      "offset_north",   "sigma_north"};
      for (const char* name : real_fields) {
        OGRFieldDefn f(name, OFTReal);
        layer->CreateField(&f);
      }
      for (const char* name : {"points_left", "points_right"}) {
        OGRFieldDefn f(name, OFTInteger);
        layer->CreateField(&f);
      }
      OGRFieldDefn status("status", OFTString);
      layer->CreateField(&status);
      ds->SetMetadataItem("DEFORMA_PROVENANCE", provenance.to_json().dump().c_str());
      ds->SetMetadataItem("DEFORMA_COMPONENTS", components.c_str());
      for (std::size_t i = 0; i < profiles.size(); ++i) {
        const auto& p = profiles[i];
        OGRFeature feature(layer->GetLayerDefn());
        feature.SetField("index", p.index);
        const double values[] = {p.distance_m,    p.strike_deg,          p.parallel, p.sigma_parallel,
                                 p.perpendicular, p.sigma_perpendicular, p.east,     p.sigma_east,
                                 p.north,         p.sigma_north};
        for (std::size_t k = 0; k < std::size(real_fields); ++k) {
          if (std::isfinite(values[k])) {
            feature.SetField(real_fields[k], values[k]);
          } else {
            feature.SetFieldNull(feature.GetFieldIndex(real_fields[k]));
          }
        }
        feature.SetField("points_left", p.points_left);
        feature.SetField("points_right", p.points_right);
        feature.SetField("status", p.status.c_str());
        OGRLineString line;
        line.addPoint(ex[3 * i], ey[3 * i]);
        line.addPoint(ex[3 * i + 1], ey[3 * i + 1]);
        feature.SetGeometry(&line);
        if (layer->CreateFeature(&feature) != OGRERR_NONE) {
          throw IoError(fmt::format("{}: cannot write profile {}", run.output_gpkg, p.index));
        }
      }
      // The trace used, so that an automatic one can be checked and edited.
      OGRLayer* trace_layer = ds->CreateLayer("trace", raster_srs.get(), wkbLineString, nullptr);
      if (!trace_layer) throw IoError(fmt::format("{}: cannot create layer 'trace'", run.output_gpkg));
      OGRFieldDefn source("source", OFTString);
      trace_layer->CreateField(&source);
      OGRFeature feature(trace_layer->GetLayerDefn());
      feature.SetField("source",
                       run.trace.empty() ? "automatic (ridge of the displacement step)" : run.trace.c_str());
      OGRLineString line;
      for (const auto& p : trace) line.addPoint(p[0], p[1]);
      feature.SetGeometry(&line);
      if (trace_layer->CreateFeature(&feature) != OGRERR_NONE) {
        throw IoError(fmt::format("{}: cannot write the trace", run.output_gpkg));
      }
      ds.reset();
    });
    outputs.push_back(run.output_gpkg);
  }

  if (!run.output_plot.empty()) {
    std::vector<double> x;
    render::PlotSeries parallel{
        north > 0 ? "fault-parallel" : "fault-parallel (from east)", {}, {}, render::colors::kBlue};
    render::PlotSeries perpendicular{"fault-perpendicular", {}, {}, render::colors::kRed};
    for (const auto& p : profiles) {
      x.push_back(p.distance_m / 1000.0);
      parallel.values.push_back(p.parallel);
      parallel.errors.push_back(p.sigma_parallel);
      perpendicular.values.push_back(p.perpendicular);
      perpendicular.errors.push_back(p.sigma_perpendicular);
    }
    std::vector<render::PlotSeries> series = {parallel};
    if (north > 0) series.push_back(perpendicular);
    render::RgbImage image =
        render::plot_xy(x, series,
                        fmt::format("offset along strike (> 0: right-lateral), {} m profiles every {} m",
                                    run.options.length_m, run.options.spacing_m),
                        "distance along the trace (km)", fmt::format("offset ({})", unit));
    image.text()["Title"] = "fault-profile: offset along strike";
    image.text()["Description"] = provenance.to_json().dump();
    render::write_png(run.output_plot, image);
    outputs.push_back(run.output_plot);
  }
  progress->advance(1);
  progress->finish();

  Summary summary;
  summary.operation = "fault-profile";
  summary.counts = {{"profiles", static_cast<std::int64_t>(profiles.size())}, {"measured", measured}};
  summary.outputs = outputs;
  summary.warnings = warnings;
  std::vector<double> par;
  for (const auto& p : profiles) {
    if (std::isfinite(p.parallel)) par.push_back(p.parallel);
  }
  const double med = median_of(par);
  summary.details["components"] = components;
  summary.details["unit"] = unit;
  summary.details["trace_length_m"] = TraceGeometry(trace_m).length();
  if (std::isfinite(med)) summary.details["median_parallel"] = med;
  if (north == 0) {
    summary.warnings.push_back(
        "east component only: the fault-parallel offset assumes motion along the trace; no perpendicular "
        "offset");
  }
  summary.seconds = seconds_since(start);
  summary.report = fmt::format(
      "fault-profile: {} profiles along {:.1f} km of trace, {} measured ({}); median fault-parallel offset "
      "{} {} "
      "(> 0: right-lateral)\n",
      profiles.size(), TraceGeometry(trace_m).length() / 1000.0, measured, components,
      std::isfinite(med) ? fmt::format("{:.3f}", med) : "n/a", unit);
  return summary;
}

}  // namespace deforma::filter
