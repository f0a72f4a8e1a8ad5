#include "deforma/filter/filter.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <spdlog/spdlog.h>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/stream.hpp"
#include "deforma/io/tiles.hpp"
#include "deforma/io/vector.hpp"

namespace deforma::filter {

const char* to_string(RampModel model) {
  switch (model) {
    case RampModel::kNone:
      return "none";
    case RampModel::kBias:
      return "bias";
    case RampModel::kPlane:
      return "plane";
    case RampModel::kQuadratic:
      return "quadratic";
  }
  return "none";
}

RampModel parse_ramp_model(const std::string& text, const std::string& parameter) {
  if (text == "none") return RampModel::kNone;
  if (text == "bias") return RampModel::kBias;
  if (text == "plane") return RampModel::kPlane;
  if (text == "quadratic") return RampModel::kQuadratic;
  throw InvalidArgument(
      fmt::format("parameter --{}: '{}' is not one of none, bias, plane, quadratic", parameter, text));
}

void FilterOptions::validate() const {
  if (!(min_snr >= 0)) throw InvalidArgument(fmt::format("parameter --min-snr: {} must be >= 0", min_snr));
  if (!(min_corr >= 0 && min_corr <= 1)) {
    throw InvalidArgument(fmt::format("parameter --min-corr: {} must be in [0, 1]", min_corr));
  }
  if (median_radius < 1 || median_radius > 10) {
    throw InvalidArgument(fmt::format("parameter --median-radius: {} must be in 1..10 nodes", median_radius));
  }
  if (!(median_threshold > 0)) {
    throw InvalidArgument(fmt::format("parameter --median-threshold: {} must be > 0", median_threshold));
  }
  if (!(median_epsilon_px >= 0)) {
    throw InvalidArgument(fmt::format("parameter --median-epsilon: {} px must be >= 0", median_epsilon_px));
  }
  const int max_neighbours = (2 * median_radius + 1) * (2 * median_radius + 1) - 1;
  if (median_min_neighbours < 1 || median_min_neighbours > max_neighbours) {
    throw InvalidArgument(fmt::format("parameter --median-min-neighbours: {} must be in 1..{} for radius {}",
                                      median_min_neighbours, max_neighbours, median_radius));
  }
  if (!(max_displacement_px >= 0)) {
    throw InvalidArgument(
        fmt::format("parameter --max-displacement: {} px must be >= 0", max_displacement_px));
  }
  if (!(max_displacement_m >= 0)) {
    throw InvalidArgument(fmt::format("parameter --max-velocity: {} m must be >= 0", max_displacement_m));
  }
  if (!(max_velocity_per_yr >= 0)) {
    throw InvalidArgument(fmt::format("parameter --max-velocity: {} must be >= 0", max_velocity_per_yr));
  }
  if (!(days >= 0)) throw InvalidArgument(fmt::format("parameter --days: {} must be > 0", days));
  if ((stable == StableSource::kPolygons || stable == StableSource::kMask) && stable_path.empty()) {
    throw InvalidArgument(
        "parameter --stable: a polygon or mask file is needed for this stable-ground source");
  }
  if (ramp != RampModel::kNone && stable == StableSource::kNone) {
    throw InvalidArgument(fmt::format(
        "parameter --ramp: '{}' needs stable ground (--stable FILE, --stable-mask FILE or --auto-stable)",
        to_string(ramp)));
  }
  if (!(auto_corr_quantile >= 0 && auto_corr_quantile < 1)) {
    throw InvalidArgument(
        fmt::format("parameter --auto-corr-quantile: {} must be in [0, 1)", auto_corr_quantile));
  }
  if (!(auto_fraction > 0 && auto_fraction <= 1)) {
    throw InvalidArgument(fmt::format("parameter --auto-fraction: {} must be in (0, 1]", auto_fraction));
  }
  if (robust_iterations < 1) throw InvalidArgument("parameter --robust-iterations: must be >= 1");
  if (!(robust_k > 0)) throw InvalidArgument("parameter --robust-k: must be > 0");
  if (max_stable_samples < 10) throw InvalidArgument("max_stable_samples: must be >= 10");
}

FilterCounts& FilterCounts::operator+=(const FilterCounts& o) {
  nodes += o.nodes;
  valid_in += o.valid_in;
  low_snr += o.low_snr;
  low_corr += o.low_corr;
  above_max += o.above_max;
  median_rejected += o.median_rejected;
  median_untested += o.median_untested;
  valid_out += o.valid_out;
  return *this;
}

namespace {

bool usable(float v) {
  return std::isfinite(v) && v != kNodata;
}

bool has(const GridF& g) {
  return !g.empty();
}

// A node with a displacement: flag 0, or 16 (valid, translation only: correlate --shape affine kept the
// translation there).
bool measured(float flag) {
  return io::product::is_measured(flag);
}

double median_of(std::vector<double>& v) {
  const std::size_t n = v.size();
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(v.begin(), mid, v.end());
  double m = *mid;
  if (n % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), mid));
  return m;
}

}  // namespace

bool is_valid_node(const FieldWindow& f, int col, int row) {
  return measured(f.flag(col, row)) && usable(f.dx_px(col, row)) && usable(f.dy_px(col, row));
}

void median_nmad(std::vector<double> values, double& median, double& nmad) {
  median = 0;
  nmad = 0;
  if (values.empty()) return;
  median = median_of(values);
  for (auto& v : values) v = std::abs(v - median);
  nmad = 1.4826 * median_of(values);
}

GridF flag_outliers(const FieldWindow& f, const io::Window& core, const FilterOptions& o,
                    FilterCounts& counts) {
  const int w = f.dx_px.width(), h = f.dx_px.height();
  GridF flags = f.flag;
  // Thresholds first, over the whole window: the median test's neighbours are the nodes that pass them.
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const bool in_core =
          c >= core.col && c < core.col + core.width && r >= core.row && r < core.row + core.height;
      if (in_core) ++counts.nodes;
      if (!is_valid_node(f, c, r)) continue;
      if (in_core) ++counts.valid_in;
      NodeFlag verdict = NodeFlag::kValid;
      if (o.min_snr > 0 && has(f.snr) && !(f.snr(c, r) >= o.min_snr)) {
        verdict = NodeFlag::kLowSnr;
      } else if (o.min_corr > 0 && has(f.corr) && !(f.corr(c, r) >= o.min_corr)) {
        verdict = NodeFlag::kLowCorrelation;
      } else if (o.max_displacement_px > 0 &&
                 std::hypot(f.dx_px(c, r), f.dy_px(c, r)) > o.max_displacement_px) {
        verdict = NodeFlag::kAboveMaxDisplacement;
      } else if (o.max_displacement_m > 0 && has(f.east_m) && has(f.north_m) && usable(f.east_m(c, r)) &&
                 usable(f.north_m(c, r)) &&
                 std::hypot(f.east_m(c, r), f.north_m(c, r)) > o.max_displacement_m) {
        verdict = NodeFlag::kAboveMaxDisplacement;
      }
      if (verdict == NodeFlag::kValid) continue;
      flags(c, r) = static_cast<float>(verdict);
      if (!in_core) continue;
      if (verdict == NodeFlag::kLowSnr) ++counts.low_snr;
      if (verdict == NodeFlag::kLowCorrelation) ++counts.low_corr;
      if (verdict == NodeFlag::kAboveMaxDisplacement) ++counts.above_max;
    }
  }
  auto passes = [&](int c, int r) {
    return measured(flags(c, r)) && usable(f.dx_px(c, r)) && usable(f.dy_px(c, r));
  };
  // The median test reads the thresholded flags and writes its verdicts apart, so that a rejection does
  // not change its neighbours' tests (the result does not depend on the visiting order).
  GridF result = flags;
  std::vector<double> nx, ny;
  const int rad = o.median_radius;
  nx.reserve(static_cast<std::size_t>((2 * rad + 1) * (2 * rad + 1)));
  ny.reserve(nx.capacity());
  for (int r = core.row; r < core.row + core.height; ++r) {
    for (int c = core.col; c < core.col + core.width; ++c) {
      if (!passes(c, r)) continue;
      if (o.median_test) {
        nx.clear();
        ny.clear();
        for (int rr = std::max(0, r - rad); rr <= std::min(h - 1, r + rad); ++rr) {
          for (int cc = std::max(0, c - rad); cc <= std::min(w - 1, c + rad); ++cc) {
            if ((cc == c && rr == r) || !passes(cc, rr)) continue;
            nx.push_back(f.dx_px(cc, rr));
            ny.push_back(f.dy_px(cc, rr));
          }
        }
        if (static_cast<int>(nx.size()) < o.median_min_neighbours) {
          ++counts.median_untested;
        } else {
          // Westerweel & Scarano (2005): the residual of the centre vector to the neighbours' median,
          // normalized by the neighbours' own median residual plus epsilon (the measurement noise level),
          // per component; a vector is rejected when the norm of the two normalized residuals exceeds the
          // threshold.
          auto normalized_residual = [&](std::vector<double>& values, double centre) {
            const double med = median_of(values);
            for (auto& v : values) v = std::abs(v - med);
            const double residual_median = median_of(values);
            return std::abs(centre - med) / (residual_median + o.median_epsilon_px);
          };
          const double rx = normalized_residual(nx, f.dx_px(c, r));
          const double ry = normalized_residual(ny, f.dy_px(c, r));
          if (std::hypot(rx, ry) > o.median_threshold) {
            result(c, r) = static_cast<float>(NodeFlag::kMedianTest);
            ++counts.median_rejected;
            continue;
          }
        }
      }
      ++counts.valid_out;
    }
  }
  return result;
}

double RampFit::evaluate(double x, double y) const {
  if (coefficients.empty()) return 0.0;
  double v = coefficients[0];
  if (coefficients.size() >= 3) v += coefficients[1] * x + coefficients[2] * y;
  if (coefficients.size() >= 6)
    v += coefficients[3] * x * x + coefficients[4] * x * y + coefficients[5] * y * y;
  return v;
}

nlohmann::json RampFit::to_json() const {
  return {{"model", to_string(model)},
          {"coefficients", coefficients},
          {"coordinates", "x = 2 (col + 0.5) / width - 1, y = 2 (row + 0.5) / height - 1 (node grid)"},
          {"samples", samples},
          {"used", used},
          {"median_before", median_before},
          {"nmad_before", nmad_before},
          {"median_after", median_after},
          {"nmad_after", nmad_after}};
}

RampFit fit_ramp(const std::vector<StableSample>& samples, RampModel model, int robust_iterations,
                 double robust_k) {
  RampFit fit;
  fit.model = model;
  fit.samples = static_cast<std::int64_t>(samples.size());
  std::vector<double> raw;
  raw.reserve(samples.size());
  for (const auto& s : samples) raw.push_back(s.value);
  median_nmad(raw, fit.median_before, fit.nmad_before);
  if (model == RampModel::kNone) {
    fit.used = fit.samples;
    fit.median_after = fit.median_before;
    fit.nmad_after = fit.nmad_before;
    return fit;
  }
  const int terms = model == RampModel::kBias ? 1 : (model == RampModel::kPlane ? 3 : 6);
  if (static_cast<int>(samples.size()) < terms) {
    throw NumericalError(
        fmt::format("stable-ground correction: {} stable nodes for a {} fit with {} coefficients",
                    samples.size(), to_string(model), terms));
  }
  auto row_of = [&](const StableSample& s, double* out) {
    out[0] = 1.0;
    if (terms >= 3) {
      out[1] = s.x;
      out[2] = s.y;
    }
    if (terms >= 6) {
      out[3] = s.x * s.x;
      out[4] = s.x * s.y;
      out[5] = s.y * s.y;
    }
  };
  std::vector<char> keep(samples.size(), 1);
  Eigen::VectorXd coef = Eigen::VectorXd::Zero(terms);
  std::vector<double> residuals(samples.size());
  for (int iteration = 0; iteration < robust_iterations; ++iteration) {
    const auto kept = static_cast<Eigen::Index>(std::count(keep.begin(), keep.end(), 1));
    if (kept < terms) break;
    Eigen::MatrixXd a(kept, terms);
    Eigen::VectorXd b(kept);
    Eigen::Index k = 0;
    double terms_of_row[6];
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (!keep[i]) continue;
      row_of(samples[i], terms_of_row);
      for (int j = 0; j < terms; ++j) a(k, j) = terms_of_row[j];
      b(k) = samples[i].value;
      ++k;
    }
    coef = a.colPivHouseholderQr().solve(b);
    for (std::size_t i = 0; i < samples.size(); ++i) {
      row_of(samples[i], terms_of_row);
      double predicted = 0;
      for (int j = 0; j < terms; ++j) predicted += terms_of_row[j] * coef(j);
      residuals[i] = samples[i].value - predicted;
    }
    std::vector<double> kept_residuals;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (keep[i]) kept_residuals.push_back(residuals[i]);
    }
    double med = 0, nmad = 0;
    median_nmad(kept_residuals, med, nmad);
    if (nmad <= 0) break;
    std::vector<char> next(samples.size());
    for (std::size_t i = 0; i < samples.size(); ++i) {
      next[i] = std::abs(residuals[i] - med) <= robust_k * nmad ? 1 : 0;
    }
    if (next == keep || std::count(next.begin(), next.end(), 1) < terms) break;
    keep = std::move(next);
  }
  fit.coefficients.assign(coef.data(), coef.data() + terms);
  std::vector<double> after;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (keep[i]) after.push_back(samples[i].value - fit.evaluate(samples[i].x, samples[i].y));
  }
  fit.used = static_cast<std::int64_t>(after.size());
  median_nmad(after, fit.median_after, fit.nmad_after);
  return fit;
}

namespace {

bool opens_as_raster(const std::string& path) {
  ensure_gdal_initialized();
  CPLPushErrorHandler(CPLQuietErrorHandler);
  GDALDatasetH h = GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  CPLPopErrorHandler();
  if (h) GDALClose(h);
  return h != nullptr;
}

bool inside_value(float v, bool byte_image) {
  return byte_image ? v > 127.0f : v != 0.0f;
}

}  // namespace

GridU8 read_node_mask(const std::string& path, const io::RasterInfo& grid, const io::Window& window,
                      const std::string& parameter) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw IoError(fmt::format("--{} {}: no such file", parameter, path));
  if (!opens_as_raster(path)) return io::rasterize(io::read_polygons(path, grid.crs_wkt), grid, window);
  io::Raster mask = io::Raster::open(path);
  const bool byte_image = mask.info().bands.front().data_type == "Byte";
  GridU8 out(window.width, window.height, 0);
  if (io::same_grid(mask.info(), grid)) {
    const auto w = mask.read(1, window);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out.data()[i] = (w.valid.data()[i] && inside_value(w.values.data()[i], byte_image)) ? 1 : 0;
    }
    return out;
  }
  if (mask.info().georeferenced && grid.georeferenced) {
    io::Raster warped = io::resample_to_grid(path, grid, io::Resampling::kNearest);
    const auto w = warped.read(1, window);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out.data()[i] = (w.valid.data()[i] && inside_value(w.values.data()[i], byte_image)) ? 1 : 0;
    }
    return out;
  }
  if (mask.info().georeferenced != grid.georeferenced) {
    throw InvalidArgument(
        fmt::format("--{} {}: one of the mask and the result {} is georeferenced and the other "
                    "is not; expected both in the same coordinates",
                    parameter, path, grid.path));
  }
  // Both in pixel units: node centres map to image pixels through the result's geotransform.
  std::vector<std::pair<int, int>> at(out.size());
  int min_c = mask.info().width, min_r = mask.info().height, max_c = -1, max_r = -1;
  for (int r = 0; r < window.height; ++r) {
    for (int c = 0; c < window.width; ++c) {
      double x = 0, y = 0, mc = 0, mr = 0;
      grid.geotransform.pixel_to_map(window.col + c + 0.5, window.row + r + 0.5, x, y);
      mask.info().geotransform.map_to_pixel(x, y, mc, mr);
      const int ic = static_cast<int>(std::floor(mc)), ir = static_cast<int>(std::floor(mr));
      at[static_cast<std::size_t>(r) * window.width + c] = {ic, ir};
      if (ic < 0 || ir < 0 || ic >= mask.info().width || ir >= mask.info().height) continue;
      min_c = std::min(min_c, ic);
      min_r = std::min(min_r, ir);
      max_c = std::max(max_c, ic);
      max_r = std::max(max_r, ir);
    }
  }
  if (max_c < 0) return out;
  const auto w = mask.read(1, io::Window{min_c, min_r, max_c - min_c + 1, max_r - min_r + 1});
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto [ic, ir] = at[i];
    const int lc = ic - min_c, lr = ir - min_r;
    if (!w.values.contains(lc, lr)) continue;
    out.data()[i] = (w.valid(lc, lr) && inside_value(w.values(lc, lr), byte_image)) ? 1 : 0;
  }
  return out;
}

namespace {

// The bands of a correlation result, found by description.
struct BandLayout {
  int dx = 0, dy = 0, flag = 0, east = 0, north = 0, corr = 0, snr = 0;
  // Velocity bands of `correlate --velocity`, derived from the displacement: in m/yr from east_m/north_m
  // (georeferenced), in px/yr from dx_px/dy_px (no georeferencing).
  int v_east = 0, v_north = 0, v_speed = 0;
  bool velocity_in_m = true;
  bool has_velocity() const { return v_east || v_north || v_speed; }
  // Per-node measurements of `correlate --shape affine` (displacement gradients, strain rates): carried,
  // nodata where the node is rejected.
  std::vector<int> shape_bands;
};

BandLayout find_bands(const io::RasterInfo& info) {
  namespace band = io::product::band;
  io::product::check_bands(info, {band::kDx, band::kDy, band::kFlag});
  BandLayout b;
  for (const auto& spec : info.bands) {
    const auto& d = spec.description;
    const int index = spec.index;
    if (d == band::kDx) b.dx = index;
    if (d == band::kDy) b.dy = index;
    if (d == band::kFlag) b.flag = index;
    if (d == band::kEast) b.east = index;
    if (d == band::kNorth) b.north = index;
    if (d == band::kCorr) b.corr = index;
    if (d == band::kSnr) b.snr = index;
    if (d == band::kEastVelocity) b.v_east = index;
    if (d == band::kNorthVelocity) b.v_north = index;
    if (d == band::kSpeed) b.v_speed = index;
    if (d == band::kVxPixels || d == band::kVyPixels || d == band::kSpeedPixels) b.velocity_in_m = false;
    if (d == band::kVxPixels) b.v_east = index;
    if (d == band::kVyPixels) b.v_north = index;
    if (d == band::kSpeedPixels) b.v_speed = index;
    for (const auto* shape : {&io::product::gradient_bands(), &io::product::strain_rate_bands()}) {
      for (const auto& s : *shape)
        if (d == s.name) b.shape_bands.push_back(index);
    }
  }
  return b;
}

GridF read_band(const io::Raster& raster, int band, const io::Window& window) {
  if (band == 0) return {};
  auto w = raster.read(band, window);
  for (std::size_t i = 0; i < w.values.size(); ++i) {
    if (!w.valid.data()[i]) w.values.data()[i] = kNodata;
  }
  return std::move(w.values);
}

FieldWindow read_field(const io::Raster& raster, const BandLayout& b, const io::Window& window) {
  FieldWindow f;
  f.dx_px = read_band(raster, b.dx, window);
  f.dy_px = read_band(raster, b.dy, window);
  f.flag = read_band(raster, b.flag, window);
  // A node without a flag value (outside the raster, or nodata) is never valid.
  for (auto& v : f.flag.values()) {
    if (v == kNodata || !std::isfinite(v)) v = static_cast<float>(NodeFlag::kOutsideOverlap);
  }
  f.east_m = read_band(raster, b.east, window);
  f.north_m = read_band(raster, b.north, window);
  f.corr = read_band(raster, b.corr, window);
  f.snr = read_band(raster, b.snr, window);
  return f;
}

// A valid node offered to the stable-ground selection.
struct Candidate {
  int col = 0, row = 0;
  float corr = 0, magnitude_px = 0;
  float value[4] = {0, 0, 0, 0};  // dx_px, dy_px, east_m, north_m
};

constexpr const char* kComponentNames[4] = {io::product::band::kDx, io::product::band::kDy,
                                            io::product::band::kEast, io::product::band::kNorth};

// Pass 1 as a streamed kernel: a window's nodes are tested (thresholds, median test) and its stable-ground
// candidates picked; the writer stage merges counts and candidates in window order.
struct TestPass {
  const io::Raster& source;
  const io::RasterInfo& info;
  const BandLayout& layout;
  const FilterOptions& o;
  bool correcting;
  long long stride;
  FilterCounts& counts;
  std::vector<Candidate>& candidates;

  struct Input {
    FieldWindow field;
    GridU8 stable, excluded;  // on the window's core; empty when not used
  };
  struct Output {
    FilterCounts counts;
    std::vector<Candidate> candidates;
  };
  struct Scratch {};

  Input read(const io::Tile& tile) const {
    Input in;
    in.field = read_field(source, layout, tile.with_halo);
    if (correcting) {
      if (o.stable == StableSource::kPolygons || o.stable == StableSource::kMask) {
        in.stable = read_node_mask(o.stable_path, info, tile.core,
                                   o.stable == StableSource::kMask ? "stable-mask" : "stable");
      }
      if (!o.exclude_path.empty()) in.excluded = read_node_mask(o.exclude_path, info, tile.core, "exclude");
    }
    return in;
  }

  Output compute(const io::Tile& tile, Input& in, Scratch&) const {
    Output out;
    const FieldWindow& field = in.field;
    const io::Window core{o.median_radius, o.median_radius, tile.core.width, tile.core.height};
    const GridF flags = flag_outliers(field, core, o, out.counts);
    if (!correcting) return out;
    for (int r = 0; r < tile.core.height; ++r) {
      for (int c = 0; c < tile.core.width; ++c) {
        const int fc = c + core.col, fr = r + core.row;
        const long long node = static_cast<long long>(tile.core.row + r) * info.width + tile.core.col + c;
        if (node % stride != 0 || !measured(flags(fc, fr)) || !usable(field.dx_px(fc, fr)) ||
            !usable(field.dy_px(fc, fr))) {
          continue;
        }
        if (!in.stable.empty() && !in.stable(c, r)) continue;
        if (!in.excluded.empty() && in.excluded(c, r)) continue;
        Candidate k;
        k.col = tile.core.col + c;
        k.row = tile.core.row + r;
        k.corr = has(field.corr) ? field.corr(fc, fr) : 1.0f;
        k.value[0] = field.dx_px(fc, fr);
        k.value[1] = field.dy_px(fc, fr);
        k.value[2] = has(field.east_m) ? field.east_m(fc, fr) : kNodata;
        k.value[3] = has(field.north_m) ? field.north_m(fc, fr) : kNodata;
        k.magnitude_px = std::hypot(k.value[0], k.value[1]);
        out.candidates.push_back(k);
      }
    }
    return out;
  }

  void write(const io::Tile&, Output& out) const {
    counts += out.counts;
    candidates.insert(candidates.end(), out.candidates.begin(), out.candidates.end());
  }

  int halo_px() const { return o.median_radius; }
};

double quantile_of(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<std::size_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

std::optional<double> recorded_time_span_years(const io::RasterInfo& info) {
  // The correlation's own years_between first: it is signed (a backward pair has a negative span) and is
  // exactly what its velocity bands were divided by.
  for (const char* key : {"DEFORMA_PARAMETERS", "DEFORMA_SOURCE_PARAMETERS"}) {
    const auto it = info.metadata.find(key);
    if (it == info.metadata.end()) continue;
    const auto parameters = nlohmann::json::parse(it->second, nullptr, false);
    if (parameters.is_object() && parameters.contains("years_between") &&
        parameters["years_between"].is_number() && parameters["years_between"].get<double>() != 0) {
      return parameters["years_between"].get<double>();
    }
  }
  const auto start = info.metadata.find("DEFORMA_START_DATE");
  const auto end = info.metadata.find("DEFORMA_END_DATE");
  if (start != info.metadata.end() && end != info.metadata.end()) {
    try {
      const double years = io::years_between(io::Date::parse(start->second), io::Date::parse(end->second));
      if (years > 0) return years;
    } catch (const Error&) {
      // Unreadable dates: the result records no usable span.
    }
  }
  return std::nullopt;
}

Summary filter_result(const FilterRun& run) {
  const auto started = std::chrono::steady_clock::now();
  run.options.validate();
  FilterOptions resolved = run.options;
  const auto& o = resolved;
  io::check_writable_parent(run.output);
  if (std::filesystem::absolute(run.input) == std::filesystem::absolute(run.output)) {
    throw InvalidArgument(fmt::format("-o {}: the output must differ from the input", run.output));
  }
  const io::Raster source = io::Raster::open(run.input);
  const io::RasterInfo info = source.info();
  const BandLayout layout = find_bands(info);
  Progress& progress = progress_or_null(run.progress);

  // The pair's time span: given (--days), else as the result records it. The velocity bands were derived
  // from the displacement over the recorded span, so a different --days would contradict them.
  const std::optional<double> recorded_years = recorded_time_span_years(info);
  std::optional<double> span_years = recorded_years;
  if (o.days > 0) {
    if (recorded_years && std::abs(std::abs(*recorded_years) * 365.25 - o.days) > 0.5) {
      throw InvalidArgument(fmt::format(
          "parameter --days: {} days, but {} records {:.4g} days between its images; leave --days out",
          o.days, run.input, std::abs(*recorded_years) * 365.25));
    }
    span_years = o.days / 365.25;
  }
  const bool velocity_in_m = layout.has_velocity() ? layout.velocity_in_m : !info.crs_wkt.empty();
  if (layout.has_velocity()) {
    if (!span_years) {
      throw FormatError(fmt::format(
          "{}: has velocity bands but records no time span between its images (DEFORMA_START_DATE/"
          "DEFORMA_END_DATE or years_between); give --days",
          run.input));
    }
    if (layout.velocity_in_m && (layout.east == 0 || layout.north == 0)) {
      throw FormatError(fmt::format(
          "{}: has velocity bands in m/yr but no east_m/north_m bands to derive them from", run.input));
    }
  }
  if (o.max_velocity_per_yr > 0) {
    if (!span_years) {
      throw InvalidArgument(fmt::format(
          "parameter --max-velocity: {} records no time span between its images; give --days", run.input));
    }
    const double limit = o.max_velocity_per_yr * std::abs(*span_years);
    double& target = velocity_in_m ? resolved.max_displacement_m : resolved.max_displacement_px;
    target = target > 0 ? std::min(target, limit) : limit;
  }

  // Seven float bands in, a flag grid and two masks per node, and pass 2's output band and passthrough
  // band, with slack: what one window in flight holds per node of the window with its halo.
  constexpr double kBytesPerNode = 64.0;
  io::StreamOptions stream;
  stream.width = info.width;
  stream.height = info.height;
  stream.block_width = info.bands.front().block_width;
  stream.block_height = info.bands.front().block_height;
  stream.ram_budget_mb = run.ram_budget_mb;
  const io::StreamPlan plan = io::plan_stream(stream, o.median_radius, kBytesPerNode);
  const auto& tiles = plan.windows;

  // Samples kept for the fit: every `stride`-th node in raster order, so that huge grids stay bounded.
  const long long total_nodes = static_cast<long long>(info.width) * info.height;
  const long long stride =
      std::max<long long>(1, (total_nodes + static_cast<long long>(o.max_stable_samples) - 1) /
                                 static_cast<long long>(o.max_stable_samples));
  const bool correcting = o.ramp != RampModel::kNone && o.stable != StableSource::kNone;

  // Pass 1: flags, counts and stable candidates, window by window, merged in window order.
  progress.start("filter: testing nodes", tiles.size() * (correcting ? 2 : 1));
  FilterCounts counts;
  std::vector<Candidate> candidates;
  TestPass test_pass{source, info, layout, o, correcting, stride, counts, candidates};
  if (!io::for_each_window(plan, test_pass, &progress)) {
    progress.finish();
    throw Cancelled(fmt::format("filter {}: cancelled; no output written", run.input));
  }
  // Stable ground and the fit of each component.
  Summary summary;
  summary.operation = "filter";
  nlohmann::json corrections = nlohmann::json::object();
  std::vector<RampFit> fits(4);
  std::int64_t stable_nodes = 0;
  if (correcting) {
    if (o.stable == StableSource::kAuto) {
      std::vector<float> corrs;
      for (const auto& k : candidates) corrs.push_back(k.corr);
      const double corr_min = quantile_of(corrs, o.auto_corr_quantile);
      std::vector<Candidate> well;
      for (const auto& k : candidates) {
        if (k.corr >= corr_min) well.push_back(k);
      }
      std::vector<float> mags;
      for (const auto& k : well) mags.push_back(k.magnitude_px);
      const double mag_max = quantile_of(mags, o.auto_fraction);
      candidates.clear();
      for (const auto& k : well) {
        if (k.magnitude_px <= mag_max) candidates.push_back(k);
      }
      corrections["auto_rule"] = {{"corr_at_least", corr_min}, {"magnitude_px_at_most", mag_max}};
    }
    stable_nodes = static_cast<std::int64_t>(candidates.size());
    for (int comp = 0; comp < 4; ++comp) {
      std::vector<StableSample> samples;
      samples.reserve(candidates.size());
      for (const auto& k : candidates) {
        if (!usable(k.value[comp])) continue;
        samples.push_back({normalized_coordinate(k.col, info.width),
                           normalized_coordinate(k.row, info.height), k.value[comp]});
      }
      if (samples.empty()) continue;
      const int terms = o.ramp == RampModel::kBias ? 1 : (o.ramp == RampModel::kPlane ? 3 : 6);
      if (static_cast<int>(samples.size()) < std::max(terms, 5)) {
        throw NumericalError(
            fmt::format("{}: only {} stable nodes for the {} correction of {}; give more stable ground or a "
                        "simpler --ramp",
                        run.input, samples.size(), to_string(o.ramp), kComponentNames[comp]));
      }
      fits[comp] = fit_ramp(samples, o.ramp, o.robust_iterations, o.robust_k);
      corrections[kComponentNames[comp]] = fits[comp].to_json();
    }
    if (stable_nodes == 0) {
      throw NumericalError(fmt::format("{}: no valid node on the stable ground; nothing to fit a {} to",
                                       run.input, to_string(o.ramp)));
    }
  }
  candidates.clear();
  candidates.shrink_to_fit();

  nlohmann::json filter_record = {
      {"counts",
       {{"nodes", counts.nodes},
        {"valid_in", counts.valid_in},
        {"low_snr", counts.low_snr},
        {"low_corr", counts.low_corr},
        {"above_max_displacement", counts.above_max},
        {"median_rejected", counts.median_rejected},
        {"median_untested", counts.median_untested},
        {"valid_out", counts.valid_out}}},
      {"stable_ground",
       {{"source",
         o.stable == StableSource::kNone
             ? "none"
             : (o.stable == StableSource::kAuto ? "auto"
                                                : (o.stable == StableSource::kMask ? "mask" : "polygons"))},
        {"path", o.stable_path},
        {"exclude", o.exclude_path},
        {"nodes", stable_nodes},
        {"ramp", to_string(o.ramp)}}},
      {"removed", corrections},
      {"time_span_days", span_years ? nlohmann::json(*span_years * 365.25) : nlohmann::json(nullptr)},
      {"velocity_bands_recomputed", layout.has_velocity()},
      {"flags", io::product::flags_description()}};

  // Pass 2: the same flags again (deterministic), corrections applied, written strip by strip.
  io::Provenance provenance;
  provenance.command_line = run.command_line;
  provenance.parameters = run.parameters;
  provenance.inputs = {run.input};
  if (!o.stable_path.empty()) provenance.inputs.push_back(o.stable_path);
  if (!o.exclude_path.empty()) provenance.inputs.push_back(o.exclude_path);
  io::CogOptions cog;
  cog.overview_resampling = "NEAREST";
  for (const auto& [key, value] : info.metadata) {
    // The pair's dates describe the data, not the run that made it: they stay with it.
    if (key.rfind("DEFORMA_", 0) != 0 || key == "DEFORMA_START_DATE" || key == "DEFORMA_END_DATE") {
      cog.metadata[key] = value;
    }
  }
  if (auto it = info.metadata.find("DEFORMA_PARAMETERS"); it != info.metadata.end()) {
    cog.metadata["DEFORMA_SOURCE_PARAMETERS"] = it->second;
  }
  cog.metadata["DEFORMA_FILTER"] = filter_record.dump();
  std::vector<io::OutputBand> out_bands;
  for (const auto& band : info.bands) {
    out_bands.push_back({band.description, band.unit, band.nodata.value_or(kNodata)});
  }
  io::CogWriter writer(run.output, info.width, info.height, out_bands, info.geotransform, info.crs_wkt,
                       provenance, cog);
  if (!correcting) progress.finish();
  if (!correcting) progress.start("filter: writing", tiles.size());
  // Pass 2 as a streamed kernel: the same flags again (deterministic), corrections applied, every band of
  // a window computed in parallel with other windows and written in window order.
  struct CorrectPass {
    const io::Raster& source;
    const io::RasterInfo& info;
    const BandLayout& layout;
    const FilterOptions& o;
    const std::vector<RampFit>& fits;
    const std::optional<double>& span_years;
    io::CogWriter& writer;

    struct Input {
      FieldWindow field;
      std::vector<GridF> passthrough;  // per band of the input; empty for the bands recomputed here
    };
    using Output = std::vector<GridF>;  // per band of the input, on the window's core
    struct Scratch {};

    int halo_px() const { return o.median_radius; }

    bool recomputed(int band) const {
      const bool component = band == layout.dx || band == layout.dy || band == layout.east || band == layout.north;
      const bool velocity = layout.has_velocity() &&
                            (band == layout.v_east || band == layout.v_north || band == layout.v_speed);
      return component || velocity || band == layout.flag;
    }

    Input read(const io::Tile& tile) const {
      Input in;
      in.field = read_field(source, layout, tile.with_halo);
      in.passthrough.resize(info.bands.size());
      for (const auto& band : info.bands) {
        if (!recomputed(band.index)) in.passthrough[band.index - 1] = read_band(source, band.index, tile.core);
      }
      return in;
    }

    Output compute(const io::Tile& tile, Input& in, Scratch&) const {
      const FieldWindow& field = in.field;
      const io::Window core{o.median_radius, o.median_radius, tile.core.width, tile.core.height};
      FilterCounts ignored;
      const GridF flags = flag_outliers(field, core, o, ignored);
      const int component_band[4] = {layout.dx, layout.dy, layout.east, layout.north};
      // The corrected displacement of component `comp` at core node (c, r); NaN where the node is rejected.
      auto corrected = [&](int comp, int c, int r) {
        const int fc = c + core.col, fr = r + core.row;
        const GridF& g = comp == 0   ? field.dx_px
                         : comp == 1 ? field.dy_px
                         : comp == 2 ? field.east_m
                                     : field.north_m;
        if (g.empty()) return std::nan("");
        const float v = g(fc, fr);
        const bool keep = measured(flags(fc, fr)) && usable(v) && usable(field.dx_px(fc, fr)) &&
                          usable(field.dy_px(fc, fr));
        if (!keep) return std::nan("");
        return v - fits[comp].evaluate(normalized_coordinate(tile.core.col + c, info.width),
                                       normalized_coordinate(tile.core.row + r, info.height));
      };
      Output bands_out;
      for (const auto& band : info.bands) {
        GridF out(tile.core.width, tile.core.height);
        const int comp =
            static_cast<int>(std::find(std::begin(component_band), std::end(component_band), band.index) -
                             std::begin(component_band));
        const bool velocity_band =
            layout.has_velocity() &&
            (band.index == layout.v_east || band.index == layout.v_north || band.index == layout.v_speed);
        const GridF& passthrough = in.passthrough[band.index - 1];
        for (int r = 0; r < tile.core.height; ++r) {
          for (int c = 0; c < tile.core.width; ++c) {
            const int fc = c + core.col, fr = r + core.row;
            if (band.index == layout.flag) {
              out(c, r) = flags(fc, fr);
            } else if (comp < 4) {
              const double v = corrected(comp, c, r);
              out(c, r) = std::isnan(v) ? kNodata : static_cast<float>(v);
            } else if (velocity_band) {
              // Derived bands follow the corrected displacement: same mask, same correction.
              const int first = layout.velocity_in_m ? 2 : 0;
              const double e = corrected(first, c, r), n = corrected(first + 1, c, r);
              const double v = band.index == layout.v_east    ? e
                               : band.index == layout.v_north ? n
                                                              : std::hypot(e, n);
              out(c, r) = std::isnan(e) || std::isnan(n) ? kNodata : static_cast<float>(v / *span_years);
            } else if (std::find(layout.shape_bands.begin(), layout.shape_bands.end(), band.index) !=
                       layout.shape_bands.end()) {
              const bool kept =
                  measured(flags(fc, fr)) && usable(field.dx_px(fc, fr)) && usable(field.dy_px(fc, fr));
              out(c, r) = kept ? passthrough(c, r) : kNodata;
            } else {
              out(c, r) = passthrough(c, r);
            }
          }
        }
        // A passthrough band's input is no longer needed once its output exists.
        in.passthrough[band.index - 1] = GridF();
        bands_out.push_back(std::move(out));
      }
      return bands_out;
    }

    void write(const io::Tile& tile, Output& bands_out) const {
      for (std::size_t b = 0; b < bands_out.size(); ++b) {
        writer.write(static_cast<int>(b) + 1, tile.core, bands_out[b]);
      }
    }
  };
  CorrectPass correct_pass{source, info, layout, o, fits, span_years, writer};
  const bool completed = io::for_each_window(plan, correct_pass, &progress);
  progress.finish();
  if (!completed) throw Cancelled(fmt::format("filter {}: cancelled; no output written", run.input));
  writer.finish();

  summary.counts = {{"nodes", counts.nodes},
                    {"valid_in", counts.valid_in},
                    {"valid", counts.valid_out},
                    {"rejected_low_snr", counts.low_snr},
                    {"rejected_low_corr", counts.low_corr},
                    {"rejected_max_displacement", counts.above_max},
                    {"rejected_median_test", counts.median_rejected},
                    {"stable_nodes", stable_nodes}};
  summary.details = filter_record;
  summary.outputs = {run.output};
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (counts.valid_in > 0 && counts.valid_out < counts.valid_in / 2) {
    summary.warnings.push_back(fmt::format("more than half of the valid nodes were rejected ({} of {})",
                                           counts.valid_in - counts.valid_out, counts.valid_in));
  }
  std::string report = fmt::format(
      "filter {} -> {}\n  nodes {}: valid {} -> {} (low SNR {}, low corr {}, above max {}, median test {}, "
      "untested {})\n",
      run.input, run.output, counts.nodes, counts.valid_in, counts.valid_out, counts.low_snr, counts.low_corr,
      counts.above_max, counts.median_rejected, counts.median_untested);
  if (layout.has_velocity()) {
    report += fmt::format("  velocity bands recomputed from the corrected displacement over {:.4g} days\n",
                          *span_years * 365.25);
  }
  if (correcting) {
    report += fmt::format("  stable ground ({}): {} nodes, {} correction removed\n",
                          filter_record["stable_ground"]["source"].get<std::string>(), stable_nodes,
                          to_string(o.ramp));
    for (int comp = 0; comp < 4; ++comp) {
      if (fits[comp].coefficients.empty()) continue;
      report += fmt::format(
          "    {:8s} coefficients [{:.4g}] median {:.4g} -> {:.4g}, NMAD {:.4g} -> {:.4g}\n",
          kComponentNames[comp], fmt::join(fits[comp].coefficients, ", "), fits[comp].median_before,
          fits[comp].median_after, fits[comp].nmad_before, fits[comp].nmad_after);
    }
  }
  summary.report = report;
  return summary;
}

}  // namespace deforma::filter
