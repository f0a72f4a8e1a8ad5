#include "deforma/timeseries/decompose.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <tbb/parallel_for.h>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"
#include "deforma/core/operation.hpp"
#include "deforma/io/cog_writer.hpp"
#include "timeseries/decompose_detail.hpp"
#include "timeseries/netcdf_cube.hpp"

namespace deforma::timeseries {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr float kNodata = -9999.f;
// A direction whose singular value is below this fraction of the largest is absent altogether (the
// condition number is then undefined), not merely weak.
constexpr double kAbsentRatio = 1e-9;
// A component is unresolved when its share of a missing direction exceeds this (|v_j| > 0.001): motion
// along the missing direction would leak into it by more than 0.1 %. Ascending + descending looks with
// mirrored headings miss a direction with an east part of only ~0.006, which must not pass for resolved.
constexpr double kNullShare = 1e-6;
}  // namespace

std::array<double, 3> los_unit_vector(double incidence_deg, double heading_deg) {
  const double inc = incidence_deg * kPi / 180.0;
  const double head = heading_deg * kPi / 180.0;
  // Right-looking: the sensor looks at heading + 90 deg, so the ground-to-sensor vector points, on the
  // ground, at heading - 90 deg.
  return {-std::sin(inc) * std::cos(head), std::sin(inc) * std::sin(head), std::cos(inc)};
}

void DecomposeOptions::validate() const {
  if (!(max_condition >= 1.0) || !std::isfinite(max_condition)) {
    throw InvalidArgument(fmt::format("--max-condition {}: expected a number >= 1", max_condition));
  }
}

namespace detail {

GeometryBasis geometry_basis(const std::vector<std::array<double, 3>>& directions,
                             const DecomposeOptions& options) {
  using decompose_flag::kEastUnresolved, decompose_flag::kNorthUnresolved, decompose_flag::kUpUnresolved;
  GeometryBasis g;
  g.condition = kNaN;
  const int k = static_cast<int>(directions.size()) + (options.north_zero ? 1 : 0);
  Eigen::MatrixXd a(k, 3);
  for (int i = 0; i < static_cast<int>(directions.size()); ++i) {
    const auto d = project_direction(directions[i], options);
    for (int j = 0; j < 3; ++j) a(i, j) = d[j];
  }
  // North neglected: a fixed row north = 0, decoupled from the others (their north parts are zeroed).
  if (options.north_zero) a.row(k - 1) << 0, 1, 0;
  // The geometry alone decides what is resolvable (unit vectors, unweighted), so that a precise LOS does
  // not make a nearly parallel second one look independent.
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeFullV);
  Eigen::Vector3d sv = Eigen::Vector3d::Zero();
  for (int i = 0; i < svd.singularValues().size(); ++i) sv(i) = svd.singularValues()(i);
  const Eigen::Matrix3d v = svd.matrixV();
  if (sv(2) > kAbsentRatio * sv(0)) g.condition = sv(0) / sv(2);
  std::vector<int> kept, dropped;
  bool weak = false;
  for (int i = 0; i < 3; ++i) {
    if (sv(i) > sv(0) / options.max_condition) {
      kept.push_back(i);
    } else {
      dropped.push_back(i);
      if (sv(i) > kAbsentRatio * sv(0)) weak = true;
    }
  }
  if (weak) g.flags |= decompose_flag::kIllConditioned;
  for (int j = 0; j < 3; ++j) {
    double share = 0;
    for (const int c : dropped) share += v(j, c) * v(j, c);
    g.resolved[j] = share <= kNullShare;
  }
  // Neither measured nor resolved when neglected: assumed.
  if (options.north_zero) g.resolved[1] = false;
  if (!g.resolved[0]) g.flags |= kEastUnresolved;
  if (!g.resolved[1]) g.flags |= kNorthUnresolved;
  if (!g.resolved[2]) g.flags |= kUpUnresolved;
  g.basis = Eigen::MatrixXd(3, static_cast<int>(kept.size()));
  for (std::size_t c = 0; c < kept.size(); ++c) g.basis.col(static_cast<int>(c)) = v.col(kept[c]);
  return g;
}

std::array<double, 3> project_direction(const std::array<double, 3>& d, const DecomposeOptions& options) {
  return options.north_zero ? std::array<double, 3>{d[0], 0.0, d[2]} : d;
}

}  // namespace detail

CellSolution solve_cell(const std::vector<CellRow>& rows, const DecomposeOptions& options) {
  CellSolution s;
  s.enu = {kNaN, kNaN, kNaN};
  s.sigma = {kNaN, kNaN, kNaN};
  s.cov_en = {kNaN, kNaN, kNaN};
  s.condition = kNaN;
  std::vector<const CellRow*> usable;
  std::set<int> geometries;
  for (const auto& r : rows) {
    const double norm = std::hypot(r.direction[0], r.direction[1], r.direction[2]);
    if (!std::isfinite(r.value) || !(r.sigma > 0) || !std::isfinite(r.sigma) || !(norm > 0) ||
        !std::isfinite(norm)) {
      continue;
    }
    usable.push_back(&r);
    geometries.insert(r.geometry);
  }
  s.geometries = static_cast<int>(geometries.size());
  if (usable.empty()) {
    s.flags = decompose_flag::kNoData | decompose_flag::kEastUnresolved | decompose_flag::kNorthUnresolved |
              decompose_flag::kUpUnresolved;
    return s;
  }
  std::vector<std::array<double, 3>> directions;
  for (const auto* r : usable) directions.push_back(r->direction);
  const detail::GeometryBasis g = detail::geometry_basis(directions, options);
  s.condition = g.condition;
  s.flags = g.flags;
  const int r = static_cast<int>(g.basis.cols());
  if (r == 0) return s;
  // Weighted least squares in the span of the kept directions: x = Vr y.
  const int k = static_cast<int>(usable.size());
  // North neglected: the row north = 0 keeps the system regular in the direction no measurement sees.
  const int extra = options.north_zero ? 1 : 0;
  Eigen::MatrixXd m(k + extra, r);
  Eigen::VectorXd wb(k + extra);
  for (int i = 0; i < k; ++i) {
    const auto d = detail::project_direction(usable[i]->direction, options);
    const Eigen::Vector3d dv(d[0], d[1], d[2]);
    m.row(i) = (dv.transpose() * g.basis) / usable[i]->sigma;
    wb(i) = usable[i]->value / usable[i]->sigma;
  }
  if (extra) {
    m.row(k) = Eigen::Vector3d(0, 1, 0).transpose() * g.basis;
    wb(k) = 0;
  }
  const Eigen::MatrixXd normal = m.transpose() * m;
  Eigen::LDLT<Eigen::MatrixXd> ldlt(normal);
  if (ldlt.info() != Eigen::Success) return s;
  const Eigen::VectorXd y = ldlt.solve(m.transpose() * wb);
  const Eigen::MatrixXd cov_y = ldlt.solve(Eigen::MatrixXd::Identity(r, r));
  const Eigen::Vector3d x = g.basis * y;
  const Eigen::Matrix3d cov = g.basis * cov_y * g.basis.transpose();
  for (int j = 0; j < 3; ++j) {
    if (!g.resolved[j]) continue;
    s.enu[j] = x(j);
    s.sigma[j] = std::sqrt(std::max(0.0, cov(j, j)));
  }
  if (g.resolved[0] && g.resolved[1]) s.cov_en = {cov(0, 0), cov(0, 1), cov(1, 1)};
  return s;
}

DecomposedWindow decompose(const std::vector<Observation>& observations, const Slope& slope,
                           const DecomposeOptions& options) {
  options.validate();
  if (observations.empty()) throw InvalidArgument("decompose: no observation given");
  const int width = observations.front().value.width();
  const int height = observations.front().value.height();
  for (const auto& o : observations) {
    for (const GridF* g : {&o.value, &o.sigma, &o.east, &o.north, &o.up}) {
      if (g->width() != width || g->height() != height) {
        throw InvalidArgument(
            fmt::format("decompose: observation '{}' is not {} x {} cells", o.label, width, height));
      }
    }
    if (o.valid.width() != width || o.valid.height() != height) {
      throw InvalidArgument(
          fmt::format("decompose: observation '{}' has a validity mask of another size", o.label));
    }
  }
  const bool use_slope = !slope.dz_dx.empty();
  if (use_slope &&
      (slope.dz_dx.width() != width || slope.dz_dx.height() != height || slope.dz_dy.width() != width ||
       slope.dz_dy.height() != height || slope.valid.width() != width || slope.valid.height() != height)) {
    throw InvalidArgument("decompose: the slope grids do not match the observations");
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  DecomposedWindow out{GridF(width, height, nan), GridF(width, height, nan), GridF(width, height, nan),
                       GridF(width, height, nan), GridF(width, height, nan), GridF(width, height, nan),
                       GridF(width, height, 0.f), GridF(width, height, nan), GridU8(width, height, 0)};
  std::vector<CellRow> rows;
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      rows.clear();
      for (const auto& o : observations) {
        if (!o.valid(c, r)) continue;
        rows.push_back(
            CellRow{{o.east(c, r), o.north(c, r), o.up(c, r)}, o.value(c, r), o.sigma(c, r), o.geometry});
      }
      CellSolution s = solve_cell(rows, options);
      if (use_slope && (s.flags & decompose_flag::kUpUnresolved) && std::isfinite(s.enu[0]) &&
          std::isfinite(s.enu[1]) && slope.valid(c, r)) {
        const double sx = slope.dz_dx(c, r);
        const double sy = slope.dz_dy(c, r);
        s.enu[2] = s.enu[0] * sx + s.enu[1] * sy;
        s.sigma[2] = std::sqrt(
            std::max(0.0, sx * sx * s.cov_en[0] + 2 * sx * sy * s.cov_en[1] + sy * sy * s.cov_en[2]));
        s.flags = static_cast<std::uint8_t>((s.flags & ~decompose_flag::kUpUnresolved) |
                                            decompose_flag::kUpFromSlope);
      }
      out.east(c, r) = static_cast<float>(s.enu[0]);
      out.north(c, r) = static_cast<float>(s.enu[1]);
      out.up(c, r) = static_cast<float>(s.enu[2]);
      out.sigma_east(c, r) = static_cast<float>(s.sigma[0]);
      out.sigma_north(c, r) = static_cast<float>(s.sigma[1]);
      out.sigma_up(c, r) = static_cast<float>(s.sigma[2]);
      out.geometries(c, r) = static_cast<float>(s.geometries);
      out.condition(c, r) = static_cast<float>(s.condition);
      out.flags(c, r) = s.flags;
    }
  }
  return out;
}

Slope slope_from_dem(const GridF& dem, const GridU8& valid, double dx_m, double dy_m) {
  if (!(dx_m > 0) || !(dy_m > 0)) throw InvalidArgument("slope_from_dem: cell size must be positive");
  const int width = dem.width() - 2;
  const int height = dem.height() - 2;
  if (width < 1 || height < 1)
    throw InvalidArgument("slope_from_dem: the DEM window needs a one-cell margin");
  Slope s{GridF(width, height, 0.f), GridF(width, height, 0.f), GridU8(width, height, 0)};
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      const int dc = c + 1;
      const int dr = r + 1;
      if (!valid(dc - 1, dr) || !valid(dc + 1, dr) || !valid(dc, dr - 1) || !valid(dc, dr + 1)) continue;
      s.dz_dx(c, r) = static_cast<float>((dem(dc + 1, dr) - dem(dc - 1, dr)) / (2 * dx_m));
      // Rows run southwards on a north-up grid.
      s.dz_dy(c, r) = static_cast<float>((dem(dc, dr - 1) - dem(dc, dr + 1)) / (2 * dy_m));
      s.valid(c, r) = 1;
    }
  }
  return s;
}

// ---- Files ----

namespace {

std::optional<double> as_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

// A band by 1-based index or description (case-insensitive); 0 when `optional` and absent.
int band_of(const io::RasterInfo& info, const std::string& name, const std::string& what,
            bool optional = false) {
  if (const int band = io::find_band(info, name, what)) return band;
  if (optional) return 0;
  throw FormatError(fmt::format("{}: no band described '{}' for the {} (bands: {})", info.path, name, what,
                                io::band_names(info)));
}

// What to read for one observation: a band of an opened (resampled) raster or a constant.
struct Source {
  int band = 0;  // 0 = constant
  double constant = 0;
};

Source number_or_band(const io::RasterInfo& info, const std::string& text, const std::string& what) {
  if (const auto v = as_number(text)) return Source{0, *v};
  return Source{band_of(info, text, what), 0};
}

struct Input {
  Input(std::string l, io::Raster r) : label(std::move(l)), raster(std::move(r)) {}
  std::string label;
  io::Raster raster;  // resampled onto the common grid
  int geometry = 0;
  int value_band = 0;
  std::array<double, 3> direction{};  // optical components: fixed
  Source sigma;
  // Line of sight: unit vector bands, or incidence/heading bands, or constants in `direction`.
  int east_band = 0, north_band = 0, up_band = 0, incidence_band = 0, heading_band = 0;
};

GridF read_source(const Input& in, const Source& s, const io::Window& w, GridU8* valid) {
  if (s.band == 0) return GridF(w.width, w.height, static_cast<float>(s.constant));
  io::BandWindow bw = in.raster.read(s.band, w);
  if (valid) {
    for (std::size_t i = 0; i < bw.valid.size(); ++i) valid->data()[i] &= bw.valid.data()[i];
  }
  return std::move(bw.values);
}

Observation read_observation(const Input& in, const io::Window& w) {
  Observation o;
  o.label = in.label;
  o.geometry = in.geometry;
  io::BandWindow v = in.raster.read(in.value_band, w);
  o.value = std::move(v.values);
  o.valid = std::move(v.valid);
  o.sigma = read_source(in, in.sigma, w, &o.valid);
  if (in.east_band > 0) {
    o.east = read_source(in, Source{in.east_band, 0}, w, &o.valid);
    o.north = read_source(in, Source{in.north_band, 0}, w, &o.valid);
    o.up = read_source(in, Source{in.up_band, 0}, w, &o.valid);
  } else if (in.incidence_band > 0) {
    const GridF inc = read_source(in, Source{in.incidence_band, 0}, w, &o.valid);
    const GridF head = read_source(in, Source{in.heading_band, 0}, w, &o.valid);
    o.east = GridF(w.width, w.height);
    o.north = GridF(w.width, w.height);
    o.up = GridF(w.width, w.height);
    for (std::size_t i = 0; i < inc.size(); ++i) {
      const auto d = los_unit_vector(inc.data()[i], head.data()[i]);
      o.east.data()[i] = static_cast<float>(d[0]);
      o.north.data()[i] = static_cast<float>(d[1]);
      o.up.data()[i] = static_cast<float>(d[2]);
    }
  } else {
    o.east = GridF(w.width, w.height, static_cast<float>(in.direction[0]));
    o.north = GridF(w.width, w.height, static_cast<float>(in.direction[1]));
    o.up = GridF(w.width, w.height, static_cast<float>(in.direction[2]));
  }
  return o;
}

template <class T>
Grid<T> rows_of(const Grid<T>& g, int row, int height) {
  Grid<T> out(g.width(), height);
  std::copy(g.row(row), g.row(row) + static_cast<std::size_t>(g.width()) * height, out.data());
  return out;
}

Observation crop_rows(const Observation& o, int row, int height) {
  Observation c;
  c.label = o.label;
  c.value = rows_of(o.value, row, height);
  c.valid = rows_of(o.valid, row, height);
  c.sigma = rows_of(o.sigma, row, height);
  c.east = rows_of(o.east, row, height);
  c.north = rows_of(o.north, row, height);
  c.up = rows_of(o.up, row, height);
  return c;
}

// "E,N,U" or "INCIDENCE/HEADING" constants; nullopt for the band keywords.
std::optional<std::array<double, 3>> constant_geometry(const std::string& text, const std::string& path) {
  if (text == "bands" || text == "angles") return std::nullopt;
  auto parts = [](const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
      const auto p = s.find(sep, start);
      out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
      if (p == std::string::npos) break;
      start = p + 1;
    }
    return out;
  };
  const auto bad = [&] {
    return InvalidArgument(fmt::format(
        "--los-geometry '{}' for {}: expected 'bands', 'angles', E,N,U (a unit vector ground to sensor) or "
        "INCIDENCE/HEADING in degrees",
        text, path));
  };
  if (text.find('/') != std::string::npos) {
    const auto p = parts(text, '/');
    if (p.size() != 2) throw bad();
    const auto inc = as_number(p[0]);
    const auto head = as_number(p[1]);
    if (!inc || !head || *inc < 0 || *inc >= 90) throw bad();
    return los_unit_vector(*inc, *head);
  }
  const auto p = parts(text, ',');
  if (p.size() != 3) throw bad();
  std::array<double, 3> d{};
  for (int i = 0; i < 3; ++i) {
    const auto x = as_number(p[i]);
    if (!x) throw bad();
    d[i] = *x;
  }
  const double norm = std::hypot(d[0], d[1], d[2]);
  if (std::abs(norm - 1.0) > 0.01) {
    throw InvalidArgument(fmt::format("--los-geometry '{}' for {}: the vector's length is {:.3f}, expected 1",
                                      text, path, norm));
  }
  return d;
}

}  // namespace

io::RasterInfo decompose_grid(const DecomposeRun& run) {
  if (run.grid) return *run.grid;
  std::string path = run.grid_path;
  if (path.empty() && !run.optical.empty()) path = run.optical.front().path;
  if (path.empty() && !run.los.empty()) path = run.los.front().path;
  if (path.empty()) {
    throw InvalidArgument("--grid: no raster product to take the grid from; give --grid (or --resolution)");
  }
  io::RasterInfo grid = io::describe(path);
  if (run.resolution > 0) {
    if (grid.geotransform.has_rotation()) {
      throw InvalidArgument(
          fmt::format("--resolution: the grid of {} is rotated; give --grid instead", path));
    }
    auto& c = grid.geotransform.c;
    const double extent_x = grid.width * std::abs(c[1]);
    const double extent_y = grid.height * std::abs(c[5]);
    grid.width = std::max(1, static_cast<int>(std::ceil(extent_x / run.resolution - 1e-9)));
    grid.height = std::max(1, static_cast<int>(std::ceil(extent_y / run.resolution - 1e-9)));
    grid.pixel_size_x_m *= run.resolution / std::abs(c[1]);
    grid.pixel_size_y_m *= run.resolution / std::abs(c[5]);
    c[1] = std::copysign(run.resolution, c[1]);
    c[5] = std::copysign(run.resolution, c[5]);
  }
  return grid;
}

namespace {

io::Raster on_grid(const std::string& path, const io::RasterInfo& grid) {
  const io::RasterInfo info = io::describe(path);
  if (info.crs_wkt.empty() != grid.crs_wkt.empty()) {
    throw InvalidArgument(fmt::format("{}: {} while the common grid ({}) {}: cannot place it (CRS mismatch)",
                                      path, info.crs_wkt.empty() ? "has no CRS" : "has a CRS", grid.path,
                                      grid.crs_wkt.empty() ? "has none" : "has one"));
  }
  if (io::same_grid(info, grid)) return io::Raster::open(path);
  return io::resample_to_grid(path, grid, io::Resampling::kBilinear);
}

}  // namespace

Summary decompose_rasters(const DecomposeRun& run, RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  run.options.validate();
  if (run.optical.empty() && run.los.empty() && run.gridded.empty()) {
    throw InvalidArgument("--optical, --los, --egms: give at least one input product");
  }
  if (run.resolution < 0 || !std::isfinite(run.resolution)) {
    throw InvalidArgument(fmt::format("--resolution {}: expected a positive cell size", run.resolution));
  }
  const io::RasterInfo grid = decompose_grid(run);
  std::vector<Input> inputs;
  std::vector<std::string> input_paths;
  int geometry = 0;
  for (const auto& opt : run.optical) {
    const io::RasterInfo info = io::describe(opt.path);
    const int east = band_of(info, opt.east_band, "east component (--optical-bands)");
    const int north = band_of(info, opt.north_band, "north component (--optical-bands)");
    const Source sigma = number_or_band(info, opt.sigma, "standard deviation (--optical-sigma)");
    if (sigma.band == 0 && !(sigma.constant > 0)) {
      throw InvalidArgument(fmt::format("--optical-sigma {} for {}: expected a positive number or a band",
                                        opt.sigma, opt.path));
    }
    for (int component = 0; component < 2; ++component) {
      Input in{fmt::format("{} ({})", opt.path, component == 0 ? "east" : "north"), on_grid(opt.path, grid)};
      in.geometry = geometry;
      in.value_band = component == 0 ? east : north;
      in.direction = component == 0 ? std::array<double, 3>{1, 0, 0} : std::array<double, 3>{0, 1, 0};
      in.sigma = sigma;
      inputs.push_back(std::move(in));
    }
    input_paths.push_back(opt.path);
    ++geometry;
  }
  for (const auto& los : run.los) {
    const io::RasterInfo info = io::describe(los.path);
    Input in{los.path + " (line of sight)", on_grid(los.path, grid)};
    in.geometry = geometry++;
    in.value_band = band_of(info, los.band, "line-of-sight value (--los-band)");
    in.sigma = number_or_band(info, los.sigma, "standard deviation (--los-sigma)");
    if (in.sigma.band == 0 && !(in.sigma.constant > 0)) {
      throw InvalidArgument(
          fmt::format("--los-sigma {} for {}: expected a positive number or a band", los.sigma, los.path));
    }
    if (const auto d = constant_geometry(los.geometry, los.path)) {
      in.direction = *d;
    } else if (los.geometry == "bands") {
      in.east_band = band_of(info, "los_east", "unit vector (--los-geometry bands)");
      in.north_band = band_of(info, "los_north", "unit vector (--los-geometry bands)");
      in.up_band = band_of(info, "los_up", "unit vector (--los-geometry bands)");
    } else {
      in.incidence_band = band_of(info, "incidence_deg", "incidence angle", true);
      if (in.incidence_band == 0)
        in.incidence_band = band_of(info, "incidence", "incidence angle (--los-geometry angles)");
      in.heading_band = band_of(info, "heading_deg", "heading", true);
      if (in.heading_band == 0) in.heading_band = band_of(info, "heading", "heading (--los-geometry angles)");
    }
    inputs.push_back(std::move(in));
    input_paths.push_back(los.path);
  }
  for (const auto& g : run.gridded) {
    if (g.value.width() != grid.width || g.value.height() != grid.height) {
      throw InvalidArgument(
          fmt::format("decompose: '{}' is not on the {} x {} common grid", g.label, grid.width, grid.height));
    }
  }
  const int first_gridded = geometry;
  geometry += static_cast<int>(run.gridded.size());
  for (const auto& p : run.gridded_paths) input_paths.push_back(p);
  std::optional<io::Raster> dem;
  double dx_m = 0, dy_m = 0;
  if (!run.dem_path.empty()) {
    if (grid.geotransform.has_rotation()) {
      throw InvalidArgument(
          fmt::format("--dem: the common grid ({}) is rotated; the slope needs a north-up grid", grid.path));
    }
    dem.emplace(on_grid(run.dem_path, grid));
    dx_m = grid.pixel_size_x_m > 0 ? grid.pixel_size_x_m : std::abs(grid.geotransform.c[1]);
    dy_m = grid.pixel_size_y_m > 0 ? grid.pixel_size_y_m : std::abs(grid.geotransform.c[5]);
    input_paths.push_back(run.dem_path);
  }

  // Units: the first product's value band, so that metres stay metres and velocities velocities.
  std::string unit;
  if (!inputs.empty()) {
    const auto& first = inputs.front();
    const io::RasterInfo info =
        io::describe(!run.optical.empty() ? run.optical.front().path : run.los.front().path);
    if (first.value_band >= 1 && first.value_band <= info.band_count())
      unit = info.bands[first.value_band - 1].unit;
  } else {
    unit = "m/yr";  // EGMS mean velocities, converted by the caller
  }
  std::vector<io::OutputBand> bands = {
      {"east", unit, kNodata},       {"north", unit, kNodata},       {"up", unit, kNodata},
      {"sigma_east", unit, kNodata}, {"sigma_north", unit, kNodata}, {"sigma_up", unit, kNodata},
      {"n_geometries", "", kNodata}, {"condition", "", kNodata},     {"flags", "", kNodata}};
  io::Provenance provenance{run.command_line, run.parameters, input_paths};
  io::CogOptions cog;
  // Flags and counts must not be averaged into overviews.
  cog.overview_resampling = "NEAREST";
  cog.metadata["DEFORMA_DECOMPOSE_FLAGS"] =
      "1 no measurement; 2 east unresolved; 4 north unresolved; 8 up unresolved; 16 ill-conditioned geometry "
      "(weakest direction dropped); 32 up from the surface-parallel flow assumption";
  io::CogWriter writer(run.output, grid.width, grid.height, bands, grid.geotransform, grid.crs_wkt,
                       provenance, cog);

  Progress* progress = context.progress;
  NullProgress silent;
  if (!progress) progress = &silent;
  constexpr int kStripRows = 256;
  const int strips = (grid.height + kStripRows - 1) / kStripRows;
  progress->start("decompose", static_cast<std::uint64_t>(strips));
  std::int64_t cells = 0, resolved = 0, from_slope = 0, east_up = 0, partial = 0, no_data = 0;
  for (int s = 0; s < strips; ++s) {
    if (progress->cancelled()) throw Cancelled("decompose: cancelled");
    const io::Window w{0, s * kStripRows, grid.width, std::min(kStripRows, grid.height - s * kStripRows)};
    std::vector<Observation> observations;
    for (const auto& in : inputs) observations.push_back(read_observation(in, w));
    for (std::size_t g = 0; g < run.gridded.size(); ++g) {
      observations.push_back(crop_rows(run.gridded[g], w.row, w.height));
      observations.back().geometry = first_gridded + static_cast<int>(g);
    }
    Slope slope;
    if (dem) {
      const io::BandWindow z = dem->read(1, io::Window{w.col - 1, w.row - 1, w.width + 2, w.height + 2});
      slope = slope_from_dem(z.values, z.valid, dx_m, dy_m);
    }
    DecomposedWindow d = decompose(observations, slope, run.options);
    GridF flags(w.width, w.height);
    for (std::size_t i = 0; i < flags.size(); ++i) {
      const auto f = d.flags.data()[i];
      flags.data()[i] = f;
      ++cells;
      if (f & decompose_flag::kNoData) {
        ++no_data;
      } else if (f & decompose_flag::kUpFromSlope) {
        ++from_slope;
      } else if (run.options.north_zero && f == decompose_flag::kNorthUnresolved) {
        ++east_up;
      } else if (f & (decompose_flag::kEastUnresolved | decompose_flag::kNorthUnresolved |
                      decompose_flag::kUpUnresolved)) {
        ++partial;
      } else {
        ++resolved;
      }
    }
    int band = 1;
    for (GridF* g : {&d.east, &d.north, &d.up, &d.sigma_east, &d.sigma_north, &d.sigma_up, &d.geometries,
                     &d.condition, &flags}) {
      for (auto& x : g->values()) {
        if (!std::isfinite(x)) x = kNodata;
      }
      writer.write(band++, w, *g);
    }
    progress->advance(1);
  }
  progress->finish();
  writer.finish();

  Summary summary;
  summary.operation = "decompose";
  summary.counts = {{"cells", cells},
                    {"resolved_3d", resolved},
                    {"up_from_slope", from_slope},
                    {"east_up_north_neglected", east_up},
                    {"unresolved", partial},
                    {"no_data", no_data}};
  summary.outputs = {run.output};
  summary.details["geometries"] = geometry;
  summary.details["grid"] = {{"width", grid.width}, {"height", grid.height}, {"from", grid.path}};
  summary.details["unit"] = unit;
  if (resolved == 0 && from_slope == 0 && east_up == 0) {
    summary.warnings.push_back(
        "no cell has all three components: the geometries present cannot separate east, north and up (see "
        "the "
        "flags band)");
  }
  summary.seconds = seconds_since(start);
  summary.report = fmt::format(
      "decompose: {} x {} cells from {} geometries: {} resolved in 3-D, {} with up from the DEM slope, {} "
      "with "
      "east and up (north neglected), {} with unresolved components, {} without data\n",
      grid.width, grid.height, geometry, resolved, from_slope, east_up, partial, no_data);
  return summary;
}

}  // namespace deforma::timeseries

// ---- Per date (4-D) over files ----

namespace deforma::timeseries {

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (const char ch : line) {
    if (ch == '"') {
      quoted = !quoted;
    } else if (ch == ',' && !quoted) {
      out.push_back(cell);
      cell.clear();
    } else if (ch != '\r') {
      cell += ch;
    }
  }
  out.push_back(cell);
  return out;
}

}  // namespace

std::vector<SeriesPairInput> read_series_table(const std::string& csv_path) {
  std::ifstream f(csv_path);
  if (!f) throw IoError(fmt::format("{}: cannot read the pair table", csv_path));
  std::string line;
  if (!std::getline(f, line)) throw FormatError(fmt::format("{}: empty pair table", csv_path));
  const auto header = split_csv_line(line);
  std::map<std::string, int> column;
  for (std::size_t i = 0; i < header.size(); ++i) column[header[i]] = static_cast<int>(i);
  for (const char* required : {"ref_date", "sec_date", "path", "kind", "geometry"}) {
    if (!column.count(required)) {
      throw FormatError(
          fmt::format("{}: no column '{}' (expected ref_date,sec_date,path,kind,geometry,look,band,sigma)",
                      csv_path, required));
    }
  }
  const std::filesystem::path folder = std::filesystem::path(csv_path).parent_path();
  std::vector<SeriesPairInput> pairs;
  int line_number = 1;
  while (std::getline(f, line)) {
    ++line_number;
    if (line.empty() || line == "\r") continue;
    const auto cells = split_csv_line(line);
    auto get = [&](const char* name) -> std::string {
      const auto it = column.find(name);
      return it != column.end() && it->second < static_cast<int>(cells.size()) ? cells[it->second] : "";
    };
    SeriesPairInput p;
    try {
      p.ref_date = io::Date::parse(get("ref_date"));
      p.sec_date = io::Date::parse(get("sec_date"));
    } catch (const InvalidArgument& e) {
      throw FormatError(fmt::format("{} line {}: {}", csv_path, line_number, e.what()));
    }
    if (p.ref_date == p.sec_date) {
      throw FormatError(
          fmt::format("{} line {}: ref_date and sec_date are the same day", csv_path, line_number));
    }
    p.path = get("path");
    if (p.path.empty()) throw FormatError(fmt::format("{} line {}: empty path", csv_path, line_number));
    if (std::filesystem::path(p.path).is_relative()) p.path = (folder / p.path).string();
    p.kind = get("kind");
    if (p.kind != "los" && p.kind != "optical") {
      throw FormatError(
          fmt::format("{} line {}: kind '{}': expected los or optical", csv_path, line_number, p.kind));
    }
    p.geometry = get("geometry");
    if (p.geometry.empty())
      throw FormatError(fmt::format("{} line {}: empty geometry", csv_path, line_number));
    p.look = get("look");
    if (p.look.empty()) p.look = "bands";
    p.band = get("band");
    if (p.band.empty()) p.band = p.kind == "los" ? "1" : "east_m,north_m";
    p.sigma = get("sigma");
    if (p.sigma.empty()) p.sigma = p.kind == "los" ? "0.005" : "0.5";
    pairs.push_back(p);
  }
  if (pairs.empty()) throw FormatError(fmt::format("{}: no pair", csv_path));
  return pairs;
}

Summary decompose_series_rasters(const DecomposeSeriesRun& run, RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  run.options.validate();
  if (run.pairs.empty() && run.series.empty()) {
    throw InvalidArgument("decompose-series: no input; give a pair table or point products (--egms)");
  }
  if (!run.grid && run.grid_path.empty() && run.pairs.empty()) {
    throw InvalidArgument("--grid: point products alone need a grid (--grid or --resolution)");
  }
  const io::RasterInfo grid =
      run.grid ? *run.grid : io::describe(run.grid_path.empty() ? run.pairs.front().path : run.grid_path);
  std::set<io::Date> date_set;
  for (const auto& p : run.pairs) date_set.insert(p.ref_date), date_set.insert(p.sec_date);
  for (const auto& source : run.series) {
    if (source->dates().size() < 2) {
      throw FormatError(fmt::format("{}: a series needs at least two dates", source->path()));
    }
    date_set.insert(source->dates().begin(), source->dates().end());
  }
  const std::vector<io::Date> dates(date_set.begin(), date_set.end());
  auto date_index = [&](const io::Date& d) {
    return static_cast<int>(std::lower_bound(dates.begin(), dates.end(), d) - dates.begin());
  };
  std::map<std::string, int> geometry_ids;
  std::vector<Input> inputs;
  std::vector<SeriesPair> series_pairs;
  std::vector<std::string> input_paths = run.extra_inputs;
  for (const auto& p : run.pairs) {
    const io::RasterInfo info = io::describe(p.path);
    const int geometry =
        geometry_ids.emplace(p.geometry, static_cast<int>(geometry_ids.size())).first->second;
    const Source sigma = number_or_band(info, p.sigma, "standard deviation (sigma column)");
    if (sigma.band == 0 && !(sigma.constant > 0)) {
      throw InvalidArgument(
          fmt::format("{}: sigma {}: expected a positive number or a band", p.path, p.sigma));
    }
    const SeriesPair sp{date_index(p.ref_date), date_index(p.sec_date)};
    if (p.kind == "optical") {
      const auto comma = p.band.find(',');
      if (comma == std::string::npos) {
        throw InvalidArgument(fmt::format("{}: band '{}': an optical pair needs EAST,NORTH", p.path, p.band));
      }
      for (int component = 0; component < 2; ++component) {
        Input in(fmt::format("{} ({})", p.path, component == 0 ? "east" : "north"), on_grid(p.path, grid));
        in.geometry = geometry;
        in.value_band = band_of(info, component == 0 ? p.band.substr(0, comma) : p.band.substr(comma + 1),
                                component == 0 ? "east component" : "north component");
        in.direction = component == 0 ? std::array<double, 3>{1, 0, 0} : std::array<double, 3>{0, 1, 0};
        in.sigma = sigma;
        inputs.push_back(std::move(in));
        series_pairs.push_back(sp);
      }
    } else {
      Input in(p.path + " (line of sight)", on_grid(p.path, grid));
      in.geometry = geometry;
      in.value_band = band_of(info, p.band, "line-of-sight value");
      in.sigma = sigma;
      if (const auto d = constant_geometry(p.look, p.path)) {
        in.direction = *d;
      } else if (p.look == "bands") {
        in.east_band = band_of(info, "los_east", "unit vector (look bands)");
        in.north_band = band_of(info, "los_north", "unit vector (look bands)");
        in.up_band = band_of(info, "los_up", "unit vector (look bands)");
      } else {
        in.incidence_band = band_of(info, "incidence_deg", "incidence angle (look angles)");
        in.heading_band = band_of(info, "heading_deg", "heading (look angles)");
      }
      inputs.push_back(std::move(in));
      series_pairs.push_back(sp);
    }
    input_paths.push_back(p.path);
  }
  // A point product's series are displacements since its first date, each date's value one measurement
  // with its own noise: they enter as the pairs (first date, date k). Consecutive differences would share
  // each date's noise between two pairs (correlated rows the inversion weights as independent) and need
  // missing dates bridged; the first dates of the products need not coincide (the pairs of each refer to its
  // own).
  const int raster_pairs = static_cast<int>(inputs.size());
  std::vector<int> series_first_pair;
  std::vector<int> series_geometry;
  for (const auto& source : run.series) {
    series_first_pair.push_back(static_cast<int>(series_pairs.size()));
    series_geometry.push_back(
        geometry_ids.emplace(source->path(), static_cast<int>(geometry_ids.size())).first->second);
    const auto& d = source->dates();
    for (std::size_t k = 1; k < d.size(); ++k)
      series_pairs.push_back({date_index(d.front()), date_index(d[k])});
    input_paths.push_back(source->path());
  }
  const SeriesDecomposer solver(dates, series_pairs, run.options);
  const int date_count = static_cast<int>(dates.size());
  const int pair_count = static_cast<int>(series_pairs.size());

  std::filesystem::create_directories(run.output_dir);
  auto out_path = [&](const std::string& name) {
    return (std::filesystem::path(run.output_dir) / name).string();
  };
  io::Provenance provenance{run.command_line, run.parameters, input_paths};
  std::vector<io::OutputBand> date_bands;
  for (const auto& d : dates) date_bands.push_back({d.iso(), "", kNodata});
  io::CogOptions cog;
  cog.overview_resampling = "NEAREST";
  const char* components[3] = {"east", "north", "up"};
  std::vector<std::unique_ptr<io::CogWriter>> cubes;
  for (int j = 0; j < 3; ++j) {
    cubes.push_back(std::make_unique<io::CogWriter>(out_path(std::string(components[j]) + ".tif"), grid.width,
                                                    grid.height, date_bands, grid.geotransform, grid.crs_wkt,
                                                    provenance, cog));
  }
  for (int j = 0; j < 3; ++j) {
    cubes.push_back(std::make_unique<io::CogWriter>(out_path(std::string(components[j]) + "_sigma.tif"),
                                                    grid.width, grid.height, date_bands, grid.geotransform,
                                                    grid.crs_wkt, provenance, cog));
  }
  const std::vector<io::OutputBand> velocity_bands = {{"velocity_east", "per year", kNodata},
                                                      {"velocity_north", "per year", kNodata},
                                                      {"velocity_up", "per year", kNodata},
                                                      {"velocity_east_std", "per year", kNodata},
                                                      {"velocity_north_std", "per year", kNodata},
                                                      {"velocity_up_std", "per year", kNodata},
                                                      {"valid_pairs", "", kNodata},
                                                      {"n_geometries", "", kNodata},
                                                      {"condition", "", kNodata},
                                                      {"flags", "", kNodata},
                                                      {"downweighted_pairs", "", kNodata}};
  io::CogOptions vcog = cog;
  vcog.metadata["DEFORMA_DECOMPOSE_FLAGS"] =
      "1 no pair; 2 east unresolved; 4 north unresolved; 8 up unresolved; 16 ill-conditioned geometry";
  io::CogWriter velocity(out_path("velocity.tif"), grid.width, grid.height, velocity_bands, grid.geotransform,
                         grid.crs_wkt, provenance, vcog);

  // Rows per strip within the RAM budget: the rasters' windows (6 grids each), the point products' (a
  // value and a point count per date, unit vector and sigma) and the outputs' (6 cubes).
  double series_cell_bytes = 0;
  for (const auto& source : run.series) series_cell_bytes += 8.0 * source->dates().size() + 16.0;
  const double row_bytes =
      static_cast<double>(grid.width) *
      (4.0 * (6.0 * raster_pairs + 6.0 * date_count + velocity_bands.size()) + series_cell_bytes);
  const int strip_rows = std::clamp(static_cast<int>(static_cast<double>(context.ram_budget_mb) * 1024.0 *
                                                     1024.0 / std::max(1.0, row_bytes)),
                                    1, 256);
  const int strips = (grid.height + strip_rows - 1) / strip_rows;
  Progress* progress = context.progress;
  NullProgress silent;
  if (!progress) progress = &silent;
  progress->start("decompose-series", static_cast<std::uint64_t>(strips));
  std::int64_t cells = 0, resolved = 0, no_data = 0, east_up = 0, downweighted = 0;
  for (int s = 0; s < strips; ++s) {
    if (progress->cancelled()) throw Cancelled("decompose-series: cancelled");
    const io::Window w{0, s * strip_rows, grid.width, std::min(strip_rows, grid.height - s * strip_rows)};
    std::vector<Observation> obs;
    for (const auto& in : inputs) obs.push_back(read_observation(in, w));
    std::vector<GriddedSeries> gridded;
    for (const auto& source : run.series) {
      gridded.push_back(source->read_strip(grid, w.row, w.height));
      if (gridded.back().values.size() + 1 != source->dates().size() ||
          gridded.back().sigma.width() != w.width || gridded.back().sigma.height() != w.height) {
        throw Error(fmt::format("{}: the gridded series do not match the strip", source->path()));
      }
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<GridF> cube(static_cast<std::size_t>(6) * date_count, GridF(w.width, w.height, nan));
    std::vector<GridF> vel(velocity_bands.size(), GridF(w.width, w.height, nan));
    std::vector<std::uint8_t> cell_flags(static_cast<std::size_t>(w.width) * w.height, 0);
    std::vector<int> cell_downweighted(static_cast<std::size_t>(w.width) * w.height, 0);
    tbb::parallel_for(0, w.height, [&](int r) {
      std::vector<double> values(pair_count), sigmas(pair_count);
      std::vector<std::array<double, 3>> directions(pair_count);
      std::vector<int> geometries(pair_count);
      for (int c = 0; c < w.width; ++c) {
        for (int p = 0; p < raster_pairs; ++p) {
          const Observation& o = obs[p];
          const bool ok = o.valid(c, r);
          values[p] = ok ? o.value(c, r) : kNaN;
          sigmas[p] = ok ? o.sigma(c, r) : kNaN;
          directions[p] = {o.east(c, r), o.north(c, r), o.up(c, r)};
          geometries[p] = inputs[p].geometry;
        }
        for (std::size_t g = 0; g < gridded.size(); ++g) {
          const GriddedSeries& gs = gridded[g];
          const std::array<double, 3> d{gs.east(c, r), gs.north(c, r), gs.up(c, r)};
          const double sigma = gs.sigma(c, r);
          for (std::size_t k = 0; k < gs.values.size(); ++k) {
            const int p = series_first_pair[g] + static_cast<int>(k);
            values[p] = gs.values[k](c, r);
            sigmas[p] = sigma;
            directions[p] = d;
            geometries[p] = series_geometry[g];
          }
        }
        const CellSeries cs = solver.solve(values, sigmas, directions, geometries);
        for (int j = 0; j < 3; ++j) {
          for (int m = 0; m < date_count; ++m) {
            cube[static_cast<std::size_t>(j) * date_count + m](c, r) =
                static_cast<float>(cs.displacement[j][m]);
            cube[static_cast<std::size_t>(j + 3) * date_count + m](c, r) = static_cast<float>(cs.sigma[j][m]);
          }
          vel[j](c, r) = static_cast<float>(cs.velocity_per_yr[j]);
          vel[j + 3](c, r) = static_cast<float>(cs.velocity_sigma_per_yr[j]);
        }
        // Valid pairs are those kept: with a robust loss, the downweighted ones have their own band.
        vel[6](c, r) = static_cast<float>(cs.pairs_used - cs.pairs_downweighted);
        vel[7](c, r) = static_cast<float>(cs.geometries);
        vel[8](c, r) = static_cast<float>(cs.condition);
        vel[9](c, r) = cs.flags;
        vel[10](c, r) = static_cast<float>(cs.pairs_downweighted);
        cell_flags[static_cast<std::size_t>(r) * w.width + c] = cs.flags;
        cell_downweighted[static_cast<std::size_t>(r) * w.width + c] = cs.pairs_downweighted;
      }
    });
    for (const auto f : cell_flags) {
      ++cells;
      if (f & decompose_flag::kNoData) {
        ++no_data;
      } else if (f == 0) {
        ++resolved;
      } else if (run.options.geometry.north_zero && f == decompose_flag::kNorthUnresolved) {
        ++east_up;
      }
    }
    for (const int n : cell_downweighted) downweighted += n;
    auto clean = [](GridF& g) {
      for (auto& x : g.values()) {
        if (!std::isfinite(x)) x = kNodata;
      }
    };
    for (int k = 0; k < 6; ++k) {
      for (int m = 0; m < date_count; ++m) {
        GridF& g = cube[static_cast<std::size_t>(k) * date_count + m];
        clean(g);
        cubes[k]->write(m + 1, w, g);
      }
    }
    for (std::size_t b = 0; b < vel.size(); ++b) {
      clean(vel[b]);
      velocity.write(static_cast<int>(b) + 1, w, vel[b]);
    }
    progress->advance(1);
  }
  progress->finish();
  Summary summary;
  summary.operation = "decompose-series";
  for (auto& c : cubes) {
    c->finish();
    summary.outputs.push_back(c->path());
  }
  velocity.finish();
  summary.outputs.push_back(velocity.path());
  if (run.netcdf) {
    std::vector<detail::CubeVariable> vars;
    for (int j = 0; j < 3; ++j) {
      vars.emplace_back(components[j], cubes[j]->path(), 0, "",
                        std::string(components[j]) + " displacement since the first date");
      vars.emplace_back(std::string(components[j]) + "_sigma", cubes[j + 3]->path(), 0, "",
                        std::string("1-sigma uncertainty of ") + components[j]);
    }
    for (int b = 0; b < 6; ++b) {
      vars.emplace_back(velocity_bands[b].description, velocity.path(), b + 1, "per year",
                        velocity_bands[b].description);
    }
    vars.emplace_back("valid_pairs", velocity.path(), 7, "1", "pairs kept (downweighted ones excluded)",
                      true);
    vars.emplace_back("n_geometries", velocity.path(), 8, "1", "geometries used", true);
    vars.emplace_back("condition", velocity.path(), 9, "1", "condition number of the viewing geometry");
    vars.emplace_back("flags", velocity.path(), 10, "1", "cell status bits (docs/decompose.md)", true,
                      std::vector<int>{1, 2, 4, 8, 16},
                      "no_pair east_unresolved north_unresolved up_unresolved ill_conditioned");
    vars.emplace_back("downweighted_pairs", velocity.path(), 11, "1",
                      "pairs whose robust weight ended below 0.5", true);
    const std::string nc = out_path("decompose_series.nc");
    detail::write_netcdf_cube(nc, dates, grid, vars, provenance, std::max(1, strip_rows));
    summary.outputs.push_back(nc);
  }
  summary.counts = {{"cells", cells},
                    {"pairs", static_cast<std::int64_t>(run.pairs.size())},
                    {"series_pairs", static_cast<std::int64_t>(pair_count - raster_pairs)},
                    {"dates", date_count},
                    {"resolved_3d", resolved},
                    {"east_up_north_neglected", east_up},
                    {"no_data", no_data},
                    {"pairs_downweighted", downweighted}};
  summary.details["point_products"] = static_cast<int>(run.series.size());
  summary.details["geometries"] = static_cast<int>(geometry_ids.size());
  summary.details["first_date"] = dates.front().iso();
  summary.details["last_date"] = dates.back().iso();
  summary.seconds = seconds_since(start);
  summary.report = fmt::format(
      "decompose-series: {} pairs from {} geometries over {} dates ({} .. {}), {} x {} cells: {} resolved in "
      "3-D, {} with east and up (north neglected), {} without data\n",
      pair_count, geometry_ids.size(), date_count, dates.front().iso(), dates.back().iso(), grid.width,
      grid.height, resolved, east_up, no_data);
  return summary;
}

}  // namespace deforma::timeseries
