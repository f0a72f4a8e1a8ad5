// The streamed pair correlation: strips of node rows plus halo, read, matched and written in a pipeline.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/parallel_pipeline.h>
#include <Eigen/Core>
#include <Eigen/LU>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/correlate/oversample.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/stream.hpp"
#include "deforma/io/vector.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/map.hpp"

namespace deforma::correlate {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One strip of node rows: what is read, then what is computed.
struct Strip {
  int index = 0;
  int first_node_row = 0;
  int node_rows = 0;
  io::Window ref_window;
  io::Window sec_window;
  io::BandWindow ref;
  io::BandWindow sec;
  GridF guess_dx, guess_dy;
  bool has_guess = false;
  GridU8 node_masked;  // nodes whose centre pixel lies in --mask
  GridU8 node_stable;  // nodes on --stable ground; empty without it
  GridResult result;
};

// Displacement guess raster sampled at node positions (bilinear on valid samples).
class GuessField {
 public:
  GuessField(const std::string& path, const io::RasterInfo& ref_grid) : raster_(io::Raster::open(path)) {
    const auto& info = raster_.info();
    band_dx_ = band_dy_ = 0;
    for (const auto& b : info.bands) {
      if (b.description == io::product::band::kDx) band_dx_ = b.index;
      if (b.description == io::product::band::kDy) band_dy_ = b.index;
    }
    if (!band_dx_ || !band_dy_) {
      if (info.band_count() < 2) {
        throw InvalidArgument(fmt::format(
            "--guess {}: expected bands dx_px and dy_px (or two bands), found {}", path, info.band_count()));
      }
      band_dx_ = 1, band_dy_ = 2;
    }
    if (info.georeferenced != ref_grid.georeferenced) {
      throw InvalidArgument(fmt::format("--guess {}: georeferencing differs from {}", path, ref_grid.path));
    }
    ref_gt_ = ref_grid.geotransform;
  }

  // Samples the guess for the nodes of a strip; NaN where the guess is unknown.
  void sample(const NodeGrid& nodes, GridF& dx, GridF& dy) const {
    dx = GridF(nodes.cols, nodes.rows, kNaN);
    dy = GridF(nodes.cols, nodes.rows, kNaN);
    // Guess-raster pixel coordinates of every node, and their bounding window.
    std::vector<double> gc(static_cast<std::size_t>(nodes.cols) * nodes.rows), gr(gc.size());
    double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
    for (int j = 0; j < nodes.rows; ++j) {
      for (int i = 0; i < nodes.cols; ++i) {
        double x, y, c, r;
        ref_gt_.pixel_to_map(nodes.first_col + i * nodes.step_px + 0.5,
                             nodes.first_row + j * nodes.step_px + 0.5, x, y);
        raster_.info().geotransform.map_to_pixel(x, y, c, r);
        const std::size_t k = static_cast<std::size_t>(j) * nodes.cols + i;
        gc[k] = c - 0.5, gr[k] = r - 0.5;
        cmin = std::min(cmin, c), cmax = std::max(cmax, c), rmin = std::min(rmin, r),
        rmax = std::max(rmax, r);
      }
    }
    const io::Window window{static_cast<int>(std::floor(cmin)) - 2, static_cast<int>(std::floor(rmin)) - 2,
                            static_cast<int>(std::ceil(cmax) - std::floor(cmin)) + 5,
                            static_cast<int>(std::ceil(rmax) - std::floor(rmin)) + 5};
    const auto wx = raster_.read(band_dx_, window);
    const auto wy = raster_.read(band_dy_, window);
    for (std::size_t k = 0; k < gc.size(); ++k) {
      const double c = gc[k] - window.col, r = gr[k] - window.row;
      const int c0 = static_cast<int>(std::floor(c)), r0 = static_cast<int>(std::floor(r));
      const double fc = c - c0, fr = r - r0;
      double sx = 0, sy = 0, sw = 0;
      for (int dr = 0; dr <= 1; ++dr) {
        for (int dc = 0; dc <= 1; ++dc) {
          const int cc = c0 + dc, rr = r0 + dr;
          if (!wx.valid.contains(cc, rr) || !wx.valid(cc, rr) || !wy.valid(cc, rr)) continue;
          if (wx.values(cc, rr) == kResultNodata) continue;
          const double w = (dc ? fc : 1 - fc) * (dr ? fr : 1 - fr);
          sx += w * wx.values(cc, rr), sy += w * wy.values(cc, rr), sw += w;
        }
      }
      if (sw > 1e-6) dx.data()[k] = static_cast<float>(sx / sw), dy.data()[k] = static_cast<float>(sy / sw);
    }
  }

  // Largest |guess| over the raster, to size the secondary halo; read by block-aligned windows within
  // `ram_budget_mb`.
  double max_abs_px(std::size_t ram_budget_mb) const {
    double m = 0;
    for (int band : {band_dx_, band_dy_}) {
      // Values and validity of one window.
      const auto windows = io::plan_tiles(io::TilePlanOptions::for_band(
          raster_.info(), band, sizeof(float) + 1, std::max<std::size_t>(1, ram_budget_mb / 4)));
      for (const auto& window : windows) {
        const auto w = raster_.read(band, window.core);
        for (std::size_t i = 0; i < w.values.size(); ++i) {
          if (w.valid.data()[i] && w.values.data()[i] != kResultNodata)
            m = std::max(m, std::abs(double(w.values.data()[i])));
        }
      }
    }
    return m;
  }

 private:
  io::Raster raster_;
  int band_dx_ = 0, band_dy_ = 0;
  io::GeoTransform ref_gt_;
};

// One valid node, as the summary statistics sample it.
struct ValidNode {
  float dx_px = 0, dy_px = 0, speed_m = 0;
};

// One column of a sample of records.
template <class Record, class Field>
std::vector<float> column(const std::vector<Record>& records, Field field) {
  std::vector<float> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(field(r));
  return out;
}

// The largest side of the quicklook's node grid: larger grids are decimated while streaming (every k-th
// node), so that the figure costs the same whatever the scene.
constexpr int kQuicklookMaxNodes = 1024;

}  // namespace

MatchOptions default_pair_match_options() {
  MatchOptions options;
  options.min_snr = 1.5;
  options.min_corr = 0.2;
  options.prefilter = Prefilter::kHighpass;  // as autoRIFT: removes illumination gradients and boosts SNR
  // The affine shape (docs/correlate.md) is not the default: it takes four to five times the translation's
  // matching time, below the throughput targets of the pair driver.
  options.shape = Shape::kTranslation;
  return options;
}

namespace {
std::vector<std::string> names_of(const std::vector<io::product::BandSpec>& bands) {
  std::vector<std::string> names;
  for (const auto& b : bands) names.push_back(b.name);
  return names;
}
}  // namespace

const std::vector<std::string>& result_band_names() {
  static const std::vector<std::string> names = names_of(io::product::base_bands());
  return names;
}

const std::vector<std::string>& gradient_band_names() {
  static const std::vector<std::string> names = names_of(io::product::gradient_bands());
  return names;
}

const std::vector<std::string>& strain_rate_band_names() {
  static const std::vector<std::string> names = names_of(io::product::strain_rate_bands());
  return names;
}

void CorrelateOptions::validate() const {
  match.validate();
  if (step_px < 1) throw InvalidArgument(fmt::format("--step {}: expected >= 1 px", step_px));
  if (ref_band < 1) throw InvalidArgument(fmt::format("--band {}: expected >= 1", ref_band));
  if (sec_band < 1) throw InvalidArgument(fmt::format("--sec-band {}: expected >= 1", sec_band));
  if (years_between && !(*years_between > 0)) {
    throw InvalidArgument(
        fmt::format("--velocity: the time between acquisitions must be > 0 (got {:.4f} yr); "
                    "check the dates of the two images",
                    *years_between));
  }
  if (roi && roi->empty()) throw InvalidArgument("--roi: empty window");
  check_oversample(oversample);
}

int parse_length_px(const std::string& text, const io::RasterInfo& grid, const std::string& parameter) {
  std::string number = text;
  double scale_m = 0;  // 0 = pixels
  auto ends_with = [&](const std::string& suffix) {
    return number.size() > suffix.size() &&
           number.compare(number.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("px")) {
    number.resize(number.size() - 2);
  } else if (ends_with("km")) {
    number.resize(number.size() - 2), scale_m = 1000;
  } else if (ends_with("m")) {
    number.resize(number.size() - 1), scale_m = 1;
  }
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size() || !(value > 0)) {
    throw InvalidArgument(
        fmt::format("--{} '{}': expected a positive length in pixels (20, 20px) or metres "
                    "(300m, 1.5km)",
                    parameter, text));
  }
  // Checked before the conversion to int, which a huge value (1e308) would overflow into a negative length.
  constexpr double kLongestLengthPx = 1 << 20;
  auto whole_pixels = [&](double length_px) {
    if (!(length_px <= kLongestLengthPx)) {
      throw InvalidArgument(fmt::format("--{} '{}': {:.4g} px is longer than any image deforma reads "
                                        "(expected at most {:.0f} px)",
                                        parameter, text, length_px, kLongestLengthPx));
    }
    return static_cast<int>(std::ceil(length_px));
  };
  if (scale_m == 0) return whole_pixels(value);
  const double pixel_m = std::min(grid.pixel_size_x_m, grid.pixel_size_y_m);
  if (!(pixel_m > 0)) {
    throw InvalidArgument(
        fmt::format("--{} {}: a length in metres needs a georeferenced image; {} has none "
                    "(give pixels)",
                    parameter, text, grid.path));
  }
  return whole_pixels(value * scale_m / pixel_m);
}

io::Window parse_roi(const std::string& text, const io::RasterInfo& grid) {
  const bool pixels = text.rfind("px:", 0) == 0;
  std::vector<double> v;
  std::stringstream ss(pixels ? text.substr(3) : text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    double x = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), x);
    if (ec != std::errc() || ptr != item.data() + item.size()) {
      throw InvalidArgument(fmt::format("--roi '{}': '{}' is not a number", text, item));
    }
    v.push_back(x);
  }
  if (v.size() != 4) {
    throw InvalidArgument(
        fmt::format("--roi '{}': expected px:COL,ROW,WIDTH,HEIGHT or XMIN,YMIN,XMAX,YMAX", text));
  }
  io::Window w;
  if (pixels) {
    w = io::Window{static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]),
                   static_cast<int>(v[3])};
  } else {
    if (!grid.georeferenced) {
      throw InvalidArgument(
          fmt::format("--roi {}: map coordinates need a georeferenced image; {} has none "
                      "(use px:COL,ROW,WIDTH,HEIGHT)",
                      text, grid.path));
    }
    if (v[0] >= v[2] || v[1] >= v[3])
      throw InvalidArgument(fmt::format("--roi {}: expected XMIN < XMAX and YMIN < YMAX", text));
    double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
    for (double x : {v[0], v[2]}) {
      for (double y : {v[1], v[3]}) {
        double c, r;
        grid.geotransform.map_to_pixel(x, y, c, r);
        cmin = std::min(cmin, c), cmax = std::max(cmax, c), rmin = std::min(rmin, r),
        rmax = std::max(rmax, r);
      }
    }
    w = io::Window{static_cast<int>(std::floor(cmin)), static_cast<int>(std::floor(rmin)),
                   static_cast<int>(std::ceil(cmax) - std::floor(cmin)),
                   static_cast<int>(std::ceil(rmax) - std::floor(rmin))};
  }
  const auto clipped = w.intersect(io::Window{0, 0, grid.width, grid.height});
  if (clipped.empty())
    throw InvalidArgument(
        fmt::format("--roi {}: outside {} ({}x{} px)", text, grid.path, grid.width, grid.height));
  return clipped;
}

void check_fits_image(const CorrelateOptions& options, const io::RasterInfo& ref_info) {
  const io::Window roi = options.roi
                             ? options.roi->intersect(io::Window{0, 0, ref_info.width, ref_info.height})
                             : io::Window{0, 0, ref_info.width, ref_info.height};
  const int chip = options.match.chip_px;
  if (chip > roi.width || chip > roi.height) {
    throw InvalidArgument(fmt::format("--chip {} px is larger than the {} ({}x{} px)", chip,
                                      options.roi ? "region of interest" : "image " + ref_info.path, roi.width,
                                      roi.height));
  }
  if (options.match.search_px >= std::max(ref_info.width, ref_info.height)) {
    throw InvalidArgument(fmt::format("--search {} px is larger than the image {} ({}x{} px)",
                                      options.match.search_px, ref_info.path, ref_info.width,
                                      ref_info.height));
  }
}

Summary correlate_pair(const std::string& ref_path, const std::string& sec_path, const std::string& output,
                       const CorrelateOptions& options, RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  Summary summary;
  summary.operation = "correlate";

  // Inputs: GCP-georeferenced pairs on a common map grid, SAR in decibels (sar.hpp); then SEC is brought
  // onto REF's grid when they differ.
  const PreparedPair prepared = prepare_pair(ref_path, sec_path, options, &summary);
  io::Raster ref = io::Raster::open(prepared.ref_path);
  ref.check_band(prepared.ref_band, "band");
  const auto& ref_info = ref.info();
  io::Raster sec = io::Raster::open(prepared.sec_path);
  sec.check_band(prepared.sec_band, "sec-band");
  const io::RasterInfo sec_original = sec.info();
  io::Window sec_footprint{0, 0, ref_info.width, ref_info.height};
  if (!io::same_grid(ref_info, sec_original)) {
    if (!ref_info.georeferenced || !sec_original.georeferenced) {
      if (ref_info.width != sec_original.width || ref_info.height != sec_original.height) {
        throw InvalidArgument(fmt::format(
            "{} ({}x{}) and {} ({}x{}) differ in size and at least one has no "
            "georeferencing to align them",
            ref_path, ref_info.width, ref_info.height, sec_path, sec_original.width, sec_original.height));
      }
    } else {
      sec_footprint = io::overlap_window(ref_info, sec_original);
      if (sec_footprint.empty()) {
        throw InvalidArgument(
            fmt::format("{} and {} do not overlap: nothing to correlate", ref_path, sec_path));
      }
      sec = io::resample_to_grid(sec_path, ref_info, io::Resampling::kCubic);
      summary.warnings.push_back(
          fmt::format("{} is on another grid or CRS; it was resampled (cubic) onto the grid "
                      "of {}",
                      sec_path, ref_path));
      run_log()->warn("{}", summary.warnings.back());
    }
  }
  const int sec_band = sec.info().band_count() == 1 ? 1 : prepared.sec_band;
  if (ref_info.bands[prepared.ref_band - 1].data_type !=
      sec_original.bands[prepared.sec_band - 1].data_type) {
    summary.warnings.push_back(fmt::format("data types differ ({} vs {}); both are matched as float32",
                                           ref_info.bands[prepared.ref_band - 1].data_type,
                                           sec_original.bands[prepared.sec_band - 1].data_type));
  }

  // Node grid over the region of interest.
  const io::Window roi = options.roi
                             ? options.roi->intersect(io::Window{0, 0, ref_info.width, ref_info.height})
                             : io::Window{0, 0, ref_info.width, ref_info.height};
  check_fits_image(options, ref_info);
  const int chip = options.match.chip_px;
  const int offset = options.step_px / 2;
  NodeGrid all_nodes;
  all_nodes.step_px = options.step_px;
  all_nodes.first_col = roi.col + std::min(offset, roi.width - 1);
  all_nodes.first_row = roi.row + std::min(offset, roi.height - 1);
  all_nodes.cols = (roi.col + roi.width - all_nodes.first_col + options.step_px - 1) / options.step_px;
  all_nodes.rows = (roi.row + roi.height - all_nodes.first_row + options.step_px - 1) / options.step_px;
  const io::GeoTransform node_gt =
      ref_info.geotransform.node_grid(all_nodes.first_col, all_nodes.first_row, options.step_px);

  std::optional<GuessField> guess;
  double guess_halo = 0;
  if (!options.guess_path.empty()) {
    guess.emplace(options.guess_path, ref_info);
    guess_halo = std::ceil(guess->max_abs_px(context.ram_budget_mb));
  }
  std::optional<io::PolygonSet> mask_polygons;
  bool mask_is_raster = false;
  if (!options.mask_path.empty()) {
    // Polygons are read once; rasters are read per strip by io::read_mask.
    try {
      io::Raster::open(options.mask_path);
      mask_is_raster = true;
    } catch (const FormatError&) {
      mask_polygons = io::read_polygons(options.mask_path, ref_info.crs_wkt);
    }
  }

  // Strip height (node rows) under the RAM budget: two strips in flight (one read ahead while one computes).
  // correlate_grid's context (the prefilter and its hole filling at each level, coarse-to-fine looking beyond
  // the nodes): with it, strips agree with a whole-image run.
  const int halo = grid_halo_px(options.match, options.step_px);
  const int sec_halo = halo + static_cast<int>(guess_halo);
  const double bytes_per_px = 2 * (sizeof(float) + 1) + 2 * sizeof(float);  // values+valid x2, filter scratch
  const double row_px = roi.width + 2.0 * sec_halo;
  // The strips keep the whole of --ram as their share (GDAL's block cache, a quarter of it, comes on top as
  // it fills): a smaller share would refuse budgets that one strip of a small image fits today.
  const std::size_t budget = context.ram_budget_mb << 20;
  constexpr int kTokens = 2;
  int strip_rows = 1;
  // Per node of a strip: the kernel's result (dx, dy, corr, snr, four gradients: 32 bytes, flag and
  // translation-only: 2), the guess (8), the mask and stable flags (2) and the output bands (4 each). At
  // --step 1 this is as much as the pixels.
  const bool with_gradients = options.match.shape == Shape::kAffine && options.match.method != Method::kFlow;
  const int output_bands = 7 + (options.years_between ? 3 : 0) + (with_gradients ? 4 : 0) +
                           (with_gradients && options.years_between ? 4 : 0);
  const double node_bytes = 32 + 2 + 8 + 2 + 4.0 * output_bands;
  auto strip_bytes = [&](int node_rows) {
    return row_px * ((node_rows - 1.0) * options.step_px + 1 + 2.0 * sec_halo) * bytes_per_px *
               1.4 +  // + pyramid
           static_cast<double>(node_rows) * all_nodes.cols * node_bytes;
  };
  if (strip_bytes(strip_rows) * kTokens > static_cast<double>(budget)) {
    throw InvalidArgument(
        fmt::format("--ram {} MB is too small for one strip of nodes ({:.0f} MB needed); raise "
                    "--ram or lower --search/--chip",
                    context.ram_budget_mb, strip_bytes(strip_rows) * kTokens / (1 << 20)));
  }
  while (strip_rows < all_nodes.rows &&
         strip_bytes(strip_rows * 2) * kTokens <= static_cast<double>(budget) &&
         strip_rows * 2 * options.step_px <= std::max(1024, 8 * halo)) {
    strip_rows *= 2;
  }
  const int strip_count = (all_nodes.rows + strip_rows - 1) / strip_rows;

  // Output.
  const bool georeferenced = ref_info.georeferenced;
  std::vector<io::OutputBand> bands;
  auto add_band = [&](const std::string& name, const std::string& unit) {
    io::OutputBand b;
    b.description = name;
    b.unit = unit;
    b.nodata = kResultNodata;
    bands.push_back(b);
  };
  for (const auto& b : io::product::base_bands()) add_band(b.name, b.unit);
  if (options.years_between) {
    for (const auto& b : io::product::velocity_bands(georeferenced)) add_band(b.name, b.unit);
  }
  // The affine shape's displacement gradients, and with a time span the strain rates they give.
  const bool affine = options.match.shape == Shape::kAffine && options.match.method != Method::kFlow;
  const int gradient_band = affine ? static_cast<int>(bands.size()) : -1;
  if (affine) {
    for (const auto& b : io::product::gradient_bands()) add_band(b.name, b.unit);
  }
  const int strain_band = affine && options.years_between ? static_cast<int>(bands.size()) : -1;
  if (strain_band >= 0) {
    for (const auto& b : io::product::strain_rate_bands()) add_band(b.name, b.unit);
  }
  io::Provenance provenance;
  provenance.command_line = context.command_line;
  provenance.inputs = {ref_path, sec_path};
  if (!options.guess_path.empty()) provenance.inputs.push_back(options.guess_path);
  if (!options.mask_path.empty()) provenance.inputs.push_back(options.mask_path);
  if (!options.stable_path.empty()) provenance.inputs.push_back(options.stable_path);
  provenance.parameters = {{"method", to_string(options.match.method)},
                           {"chip_px", chip},
                           {"search_px", options.match.search_px},
                           {"step_px", options.step_px},
                           {"prefilter", to_string(options.match.prefilter)},
                           {"shape", to_string(options.match.shape)},
                           {"min_snr", options.match.min_snr},
                           {"ref_band", options.ref_band},
                           {"sec_band", options.sec_band},
                           {"roi_px", {roi.col, roi.row, roi.width, roi.height}},
                           {"oversample", options.oversample}};
  if (options.years_between) provenance.parameters["years_between"] = *options.years_between;
  io::CogOptions cog;
  cog.overview_resampling = "NEAREST";  // keeps flags categorical and nodata out of averages
  if (options.ref_date && options.sec_date) {
    provenance.parameters["ref_date"] = options.ref_date->iso();
    provenance.parameters["sec_date"] = options.sec_date->iso();
    // The same keys as the pipeline's products: the time span of the data, whatever the direction.
    cog.metadata["DEFORMA_START_DATE"] = std::min(*options.ref_date, *options.sec_date).iso();
    cog.metadata["DEFORMA_END_DATE"] = std::max(*options.ref_date, *options.sec_date).iso();
  }
  cog.metadata["DEFORMA_DISPLACEMENT_CONVENTION"] =
      "dx_px,dy_px: displacement from REF to SEC, +x = +column, +y = +row";
  cog.metadata["DEFORMA_FLAGS"] = io::product::flags_description();
  add_input_provenance(prepared, provenance.parameters, cog.metadata);
  io::CogWriter writer(output, all_nodes.cols, all_nodes.rows, bands, node_gt, ref_info.crs_wkt, provenance,
                       cog);

  // Map scale of the pixel-space displacement: metres per map unit (projected CRS in metres: 1).
  const auto& gt = ref_info.geotransform;
  const double sx_map = std::hypot(gt.c[1], gt.c[4]);
  const double to_m =
      georeferenced && sx_map > 0 && ref_info.pixel_size_x_m > 0 ? ref_info.pixel_size_x_m / sx_map : 0.0;

  // Pixel gradients to map axes: L_map = A L_px A^-1 with A the linear part of the geotransform (x east,
  // y north for a north-up image, whose rows grow southwards); pixel axes without georeferencing.
  Eigen::Matrix2d to_map = Eigen::Matrix2d::Identity();
  if (georeferenced) to_map << gt.c[1], gt.c[2], gt.c[4], gt.c[5];
  const Eigen::Matrix2d from_map = to_map.inverse();
  long long translation_only = 0;

  // Stable ground on the node grid, read strip by strip: polygons are read once here, a raster is read (and
  // checked now, on its first node row) per strip.
  io::RasterInfo node_info = ref_info;
  node_info.width = all_nodes.cols;
  node_info.height = all_nodes.rows;
  node_info.geotransform = node_gt;
  node_info.path = output + " (node grid)";
  std::optional<io::PolygonSet> stable_polygons;
  if (!options.stable_path.empty()) {
    bool stable_is_raster = false;
    try {
      io::Raster::open(options.stable_path);
      stable_is_raster = true;
    } catch (const FormatError&) {
      stable_polygons = io::read_polygons(options.stable_path, ref_info.crs_wkt);
    }
    if (stable_is_raster) io::read_mask(options.stable_path, node_info, io::Window{0, 0, all_nodes.cols, 1});
  }
  auto stable_of_strip = [&](const io::Window& node_window) {
    return stable_polygons ? io::rasterize(*stable_polygons, node_info, node_window)
                           : io::read_mask(options.stable_path, node_info, node_window);
  };
  long long stable_node_count = 0;
  Reservoir<std::pair<float, float>> stable_sample;  // dx_px, dy_px of valid stable nodes

  auto& progress = progress_or_null(context.progress);
  progress.start("correlate", static_cast<std::uint64_t>(all_nodes.cols) * all_nodes.rows);
  std::array<long long, 7> flag_counts{};
  // The summary's statistics from a bounded sample of the valid nodes, taken in node order.
  Reservoir<ValidNode> valid_sample;
  // The quicklook's displacement on a node grid decimated to at most kQuicklookMaxNodes a side.
  const int quick_every =
      (std::max(all_nodes.cols, all_nodes.rows) + kQuicklookMaxNodes - 1) / kQuicklookMaxNodes;
  GridF quick_dx, quick_dy;
  if (!options.quicklook_path.empty()) {
    const int quick_cols = (all_nodes.cols + quick_every - 1) / quick_every;
    const int quick_rows = (all_nodes.rows + quick_every - 1) / quick_every;
    quick_dx = GridF(quick_cols, quick_rows, kNaN);
    quick_dy = GridF(quick_cols, quick_rows, kNaN);
  }
  int next_strip = 0;
  std::atomic<bool> cancelled{false};

  tbb::parallel_pipeline(
      kTokens,
      tbb::make_filter<void, std::shared_ptr<Strip>>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) -> std::shared_ptr<Strip> {
            if (next_strip >= strip_count || progress.cancelled()) {
              if (progress.cancelled()) cancelled = true;
              fc.stop();
              return nullptr;
            }
            auto s = std::make_shared<Strip>();
            s->index = next_strip++;
            s->first_node_row = s->index * strip_rows;
            s->node_rows = std::min(strip_rows, all_nodes.rows - s->first_node_row);
            const int first_row_px = all_nodes.first_row + s->first_node_row * options.step_px;
            const int last_row_px = first_row_px + (s->node_rows - 1) * options.step_px;
            const int first_col_px = all_nodes.first_col;
            const int last_col_px = first_col_px + (all_nodes.cols - 1) * options.step_px;
            // The strip plus its halo, clipped to the image (REF) and to SEC's own footprint: pixels beyond
            // them are outside for the kernels, whatever a resampler would produce there, and reading,
            // filtering and downsampling them would be wasted work.
            s->ref_window = io::Window{first_col_px - halo, first_row_px - halo,
                                       last_col_px - first_col_px + 1 + 2 * halo,
                                       last_row_px - first_row_px + 1 + 2 * halo}
                                .intersect(io::Window{0, 0, ref_info.width, ref_info.height});
            s->sec_window = io::Window{first_col_px - sec_halo, first_row_px - sec_halo,
                                       last_col_px - first_col_px + 1 + 2 * sec_halo,
                                       last_row_px - first_row_px + 1 + 2 * sec_halo}
                                .intersect(sec_footprint);
            s->ref = ref.read(prepared.ref_band, s->ref_window);
            if (!s->sec_window.empty()) s->sec = sec.read(sec_band, s->sec_window);
            NodeGrid nodes = all_nodes;
            nodes.first_row = first_row_px;
            nodes.rows = s->node_rows;
            s->node_masked = GridU8(nodes.cols, nodes.rows, 0);
            if (!options.mask_path.empty()) {
              const auto mask = mask_is_raster ? io::read_mask(options.mask_path, ref_info, s->ref_window)
                                               : io::rasterize(*mask_polygons, ref_info, s->ref_window);
              for (std::size_t i = 0; i < mask.size(); ++i) {
                if (mask.data()[i]) s->ref.valid.data()[i] = 0;
              }
              for (int j = 0; j < nodes.rows; ++j) {
                for (int i = 0; i < nodes.cols; ++i) {
                  const int c = nodes.first_col + i * nodes.step_px - s->ref_window.col;
                  const int r = nodes.first_row + j * nodes.step_px - s->ref_window.row;
                  s->node_masked(i, j) = mask(c, r);
                }
              }
            }
            if (!options.stable_path.empty()) {
              s->node_stable = stable_of_strip(io::Window{0, s->first_node_row, nodes.cols, nodes.rows});
              stable_node_count += std::count(s->node_stable.values().begin(), s->node_stable.values().end(), 1);
            }
            if (guess) {
              guess->sample(nodes, s->guess_dx, s->guess_dy);
              s->has_guess = true;
            }
            return s;
          }) &
          tbb::make_filter<
              std::shared_ptr<Strip>,
              std::shared_ptr<Strip>>(tbb::filter_mode::parallel,
                                      [&](std::shared_ptr<Strip> s) {
                                        NodeGrid nodes = all_nodes;
                                        nodes.first_row =
                                            all_nodes.first_row + s->first_node_row * options.step_px;
                                        nodes.rows = s->node_rows;
                                        // The raw pixels are not needed afterwards: correlate_grid filters
                                        // them in place.
                                        ImageBuffer ref_buffer{std::move(s->ref.values),
                                                               std::move(s->ref.valid), s->ref_window.col,
                                                               s->ref_window.row};
                                        ImageBuffer sec_buffer{std::move(s->sec.values),
                                                               std::move(s->sec.valid), s->sec_window.col,
                                                               s->sec_window.row};
                                        s->ref = {};
                                        s->sec = {};
                                        s->result =
                                            options.oversample > 1
                                                ? correlate_grid_oversampled(
                                                      ref_buffer.view(), sec_buffer.view(), options.match,
                                                      nodes, options.oversample,
                                                      s->has_guess ? &s->guess_dx : nullptr,
                                                      s->has_guess ? &s->guess_dy : nullptr)
                                                : correlate_grid_in_place(
                                                      ref_buffer, sec_buffer, options.match, nodes,
                                                      s->has_guess ? &s->guess_dx : nullptr,
                                                      s->has_guess ? &s->guess_dy : nullptr);
                                        // Node-level classifications that the driver knows better than the
                                        // kernel.
                                        for (int j = 0; j < nodes.rows; ++j) {
                                          for (int i = 0; i < nodes.cols; ++i) {
                                            auto set_flag = [&](NodeFlag f) {
                                              s->result.flag(i, j) = static_cast<unsigned char>(f);
                                              s->result.dx_px(i, j) = s->result.dy_px(i, j) = kNaN;
                                            };
                                            if (s->node_masked(i, j)) {
                                              set_flag(NodeFlag::kMasked);
                                              continue;
                                            }
                                            const int c = nodes.first_col + i * nodes.step_px,
                                                      r = nodes.first_row + j * nodes.step_px;
                                            if (sec_footprint.intersect(io::Window{c, r, 1, 1}).empty())
                                              set_flag(NodeFlag::kOutsideOverlap);
                                          }
                                        }
                                        return s;
                                      }) &
          tbb::make_filter<std::shared_ptr<Strip>, void>(
              tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Strip> s) {
                const auto& res = s->result;
                const int w = res.dx_px.width(), h = s->node_rows;
                std::vector<GridF> out(bands.size(), GridF(w, h, kResultNodata));
                for (int j = 0; j < h; ++j) {
                  for (int i = 0; i < w; ++i) {
                    const auto flag = static_cast<NodeFlag>(res.flag(i, j));
                    ++flag_counts[static_cast<std::size_t>(res.flag(i, j)) % 7];
                    out[6](i, j) = res.flag(i, j);
                    if (std::isfinite(res.corr(i, j))) out[4](i, j) = res.corr(i, j);
                    if (std::isfinite(res.snr(i, j))) out[5](i, j) = res.snr(i, j);
                    const float dx = res.dx_px(i, j), dy = res.dy_px(i, j);
                    if (flag != NodeFlag::kValid || !std::isfinite(dx) || !std::isfinite(dy)) continue;
                    out[0](i, j) = dx;
                    out[1](i, j) = dy;
                    if (affine && res.translation_only(i, j)) {
                      out[6](i, j) = static_cast<float>(res.flag(i, j) | kTranslationOnlyBit);
                      ++translation_only;
                    }
                    if (affine && std::isfinite(res.dudx(i, j))) {
                      Eigen::Matrix2d l;
                      l << res.dudx(i, j), res.dudy(i, j), res.dvdx(i, j), res.dvdy(i, j);
                      for (int k = 0; k < 4; ++k)
                        out[gradient_band + k](i, j) = static_cast<float>(l(k / 2, k % 2));
                      if (strain_band >= 0) {
                        const Eigen::Matrix2d m = to_map * l * from_map / *options.years_between;
                        const double exx = m(0, 0), eyy = m(1, 1), exy = 0.5 * (m(0, 1) + m(1, 0));
                        out[strain_band](i, j) = static_cast<float>(exx);
                        out[strain_band + 1](i, j) = static_cast<float>(eyy);
                        out[strain_band + 2](i, j) = static_cast<float>(exy);
                        // Effective strain rate, the glaciological convention for surface velocities: the
                        // second invariant of Glen's law (Cuffey & Paterson 2010) restricted to the
                        // horizontal components, as in Alley et al. (2018, J. Glaciol. 64).
                        out[strain_band + 3](i, j) =
                            static_cast<float>(std::sqrt(0.5 * (exx * exx + eyy * eyy) + exy * exy));
                      }
                    }
                    double east = 0, north = 0, speed_m = 0;
                    if (to_m > 0) {
                      gt.pixel_delta_to_map(dx, dy, east, north);
                      east *= to_m, north *= to_m;
                      out[2](i, j) = static_cast<float>(east);
                      out[3](i, j) = static_cast<float>(north);
                      speed_m = std::hypot(east, north);
                    }
                    if (options.years_between) {
                      const double years = *options.years_between;
                      if (georeferenced) {
                        out[7](i, j) = static_cast<float>(east / years);
                        out[8](i, j) = static_cast<float>(north / years);
                        out[9](i, j) = static_cast<float>(speed_m / years);
                      } else {
                        out[7](i, j) = static_cast<float>(dx / years);
                        out[8](i, j) = static_cast<float>(dy / years);
                        out[9](i, j) = static_cast<float>(std::hypot(dx, dy) / years);
                      }
                    }
                    valid_sample.add({dx, dy, static_cast<float>(speed_m)});
                    if (!s->node_stable.empty() && s->node_stable(i, j)) stable_sample.add({dx, dy});
                    const int node_row = s->first_node_row + j;
                    if (!quick_dx.empty() && i % quick_every == 0 && node_row % quick_every == 0) {
                      quick_dx(i / quick_every, node_row / quick_every) = dx;
                      quick_dy(i / quick_every, node_row / quick_every) = dy;
                    }
                  }
                }
                const io::Window window{0, s->first_node_row, w, h};
                for (std::size_t b = 0; b < bands.size(); ++b)
                  writer.write(static_cast<int>(b) + 1, window, out[b]);
                progress.advance(static_cast<std::uint64_t>(w) * h);
              }));
  progress.finish();
  if (cancelled) {
    writer.abandon();
    throw Cancelled(fmt::format("{}: correlation cancelled; no output written", output));
  }
  writer.finish();
  summary.outputs.push_back(output);

  // Summary.
  const long long nodes_total = static_cast<long long>(all_nodes.cols) * all_nodes.rows;
  summary.counts["nodes"] = nodes_total;
  static const char* kFlagNames[7] = {"valid",         "low_snr",         "no_texture", "masked",
                                      "search_border", "outside_overlap", "no_peak"};
  for (int f = 0; f < 7; ++f) summary.counts[kFlagNames[f]] = flag_counts[f];
  if (affine) summary.counts["translation_only"] = translation_only;
  const double valid_fraction = nodes_total ? static_cast<double>(flag_counts[0]) / nodes_total : 0.0;
  const auto& valid_nodes = valid_sample.records();
  std::vector<float> valid_dx = column(valid_nodes, [](const ValidNode& n) { return n.dx_px; });
  std::vector<float> valid_dy = column(valid_nodes, [](const ValidNode& n) { return n.dy_px; });
  std::vector<float> speed_px =
      column(valid_nodes, [](const ValidNode& n) { return std::hypot(n.dx_px, n.dy_px); });
  // Added to what the preparation of the inputs recorded (input kind, map grid).
  if (summary.details.is_null()) summary.details = nlohmann::json::object();
  summary.details.update(nlohmann::json{
      {"node_grid", {{"cols", all_nodes.cols}, {"rows", all_nodes.rows}, {"step_px", options.step_px}}},
      {"valid_fraction", valid_fraction},
      {"median_dx_px", percentile_in_place(valid_dx, 0.5)},
      {"median_dy_px", percentile_in_place(valid_dy, 0.5)},
      {"p99_displacement_px", percentile_in_place(speed_px, 0.99)},
      {"strips", strip_count}});
  if (!valid_nodes.empty() && to_m > 0) {
    std::vector<float> valid_speed_m = column(valid_nodes, [](const ValidNode& n) { return n.speed_m; });
    summary.details["p99_displacement_m"] = percentile_in_place(valid_speed_m, 0.99);
    if (options.years_between) {
      summary.details["p99_speed_m_per_yr"] =
          summary.details["p99_displacement_m"].get<double>() / *options.years_between;
      summary.details["years_between"] = *options.years_between;
    }
  }
  if (!options.stable_path.empty()) {
    summary.counts["stable_nodes"] = static_cast<std::int64_t>(stable_node_count);
    summary.counts["stable_valid"] = static_cast<std::int64_t>(stable_sample.seen());
    const auto& stable_nodes = stable_sample.records();
    const std::vector<float> stable_dx =
        column(stable_nodes, [](const std::pair<float, float>& n) { return n.first; });
    const std::vector<float> stable_dy =
        column(stable_nodes, [](const std::pair<float, float>& n) { return n.second; });
    if (stable_sample.seen() >= 3) {
      const double mx = percentile_of(stable_dx, 0.5), my = percentile_of(stable_dy, 0.5);
      summary.details["stable_median_dx_px"] = mx;
      summary.details["stable_median_dy_px"] = my;
      summary.details["stable_nmad_dx_px"] = nmad_of(stable_dx, mx);
      summary.details["stable_nmad_dy_px"] = nmad_of(stable_dy, my);
    } else {
      summary.warnings.push_back(
          fmt::format("only {} valid node(s) on the stable ground of {}: no statistics", stable_sample.seen(),
                      options.stable_path));
    }
  }
  if (flag_counts[0] == 0) {
    summary.warnings.push_back(
        "no node could be matched: check that the images overlap and have texture, or "
        "lower --min-snr");
  }

  if (!options.quicklook_path.empty()) {
    // Magnitude in the most meaningful unit available: m or m/yr when georeferenced, else px or px/yr.
    double scale = to_m > 0 ? ref_info.pixel_size_x_m : 1.0;
    std::string unit = to_m > 0 ? "m" : "px";
    if (options.years_between) scale /= *options.years_between, unit += "/yr";
    const int quick_cols = quick_dx.width(), quick_rows = quick_dx.height();
    GridF magnitude(quick_cols, quick_rows, 0.f), east(quick_cols, quick_rows, 0.f),
        north(quick_cols, quick_rows, 0.f);
    GridU8 valid(quick_cols, quick_rows, 0);
    for (std::size_t k = 0; k < magnitude.size(); ++k) {
      const float dx = quick_dx.data()[k], dy = quick_dy.data()[k];
      if (!std::isfinite(dx)) continue;
      valid.data()[k] = 1;
      magnitude.data()[k] = static_cast<float>(std::hypot(dx, dy) * scale);
      // In the magnitude's unit, so that the arrow key reads in the colour bar's unit.
      east.data()[k] = static_cast<float>(dx * scale);
      north.data()[k] = static_cast<float>(-dy * scale);  // rows grow downwards; arrows point the way the surface moved
    }
    // Node grids are small: enlarge them (nearest) so that the figure is readable.
    const int zoom = std::max(1, 720 / std::max(quick_cols, quick_rows));
    if (zoom > 1) {
      auto enlarge = [&](const auto& grid) {
        std::remove_cvref_t<decltype(grid)> out(grid.width() * zoom, grid.height() * zoom);
        for (int r = 0; r < out.height(); ++r)
          for (int c = 0; c < out.width(); ++c) out(c, r) = grid(c / zoom, r / zoom);
        return out;
      };
      magnitude = enlarge(magnitude), east = enlarge(east), north = enlarge(north), valid = enlarge(valid);
    }
    const std::string what = options.years_between ? "velocity" : "displacement";
    auto color_scale = render::ColorScale::robust_sequential(magnitude, valid, what + " magnitude", unit);
    render::QuicklookOptions q;
    std::string first_date, last_date;
    try {
      const auto a = io::acquisition_date(ref_path), b = io::acquisition_date(sec_path);
      first_date = std::min(a, b).iso(), last_date = std::max(a, b).iso();
    } catch (const Error&) {
      // Undated images: the title goes without dates.
    }
    q.title = render::figure_title(std::filesystem::path(output).stem().string(), what + " magnitude", unit,
                                   first_date, last_date);
    // Each figure cell is a node spacing divided by the enlargement above.
    if (to_m > 0) q.cell_size_m = options.step_px * quick_every * ref_info.pixel_size_x_m / zoom;
    q.arrows = options.quicklook_arrows;
    q.arrow_options.step = std::max(16, std::max(magnitude.width(), magnitude.height()) / 30);
    render::write_png(options.quicklook_path,
                      render::render_quicklook(magnitude, valid, color_scale, q, &east, &north));
    summary.outputs.push_back(options.quicklook_path);
  }

  summary.seconds = seconds_since(start);
  std::string report =
      fmt::format("correlated {} x {} nodes (step {} px, chip {} px, search {} px, method {}) in {:.1f} s\n",
                  all_nodes.cols, all_nodes.rows, options.step_px, chip, options.match.search_px,
                  to_string(options.match.method), summary.seconds);
  if (options.ref_date && options.sec_date) {
    summary.details["ref_date"] = options.ref_date->iso();
    summary.details["sec_date"] = options.sec_date->iso();
    report += fmt::format("  dates {} -> {} ({} days)\n", options.ref_date->iso(), options.sec_date->iso(),
                          io::days_between(*options.ref_date, *options.sec_date));
  }
  report += fmt::format("  valid {:.1f}% ({} nodes)", 100 * valid_fraction, flag_counts[0]);
  for (int f = 1; f < 7; ++f) {
    if (flag_counts[f]) report += fmt::format(", {} {}", kFlagNames[f], flag_counts[f]);
  }
  report += "\n";
  if (affine && flag_counts[0] > 0) {
    report += fmt::format("  affine shape: {} of the valid nodes kept the translation (flag 16)\n",
                          translation_only);
  }
  if (!valid_nodes.empty()) {
    report += fmt::format(
        "  median displacement dx {:+.3f} px, dy {:+.3f} px; 99th percentile of |d| {:.2f} px",
        summary.details["median_dx_px"].get<double>(), summary.details["median_dy_px"].get<double>(),
        summary.details["p99_displacement_px"].get<double>());
    if (summary.details.contains("p99_speed_m_per_yr")) {
      report += fmt::format(" ({:.1f} m/yr)", summary.details["p99_speed_m_per_yr"].get<double>());
    }
    report += "\n";
  }
  if (summary.details.contains("stable_nmad_dx_px")) {
    report += fmt::format(
        "  stable ground ({} valid nodes): bias dx {:+.3f} px, dy {:+.3f} px; NMAD dx {:.3f} px, dy {:.3f} "
        "px\n",
        stable_sample.seen(), summary.details["stable_median_dx_px"].get<double>(),
        summary.details["stable_median_dy_px"].get<double>(),
        summary.details["stable_nmad_dx_px"].get<double>(),
        summary.details["stable_nmad_dy_px"].get<double>());
  }
  summary.report = report;
  return summary;
}

}  // namespace deforma::correlate
