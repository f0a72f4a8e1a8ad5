#include "deforma/pipeline/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/product.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/io/stream.hpp"
#include "deforma/pipeline/batch.hpp"
#include "deforma/pipeline/invert_units.hpp"
#include "deforma/pipeline/stac.hpp"
#include "deforma/pipeline/unit.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/map.hpp"
#include "deforma/timeseries/products.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

correlate::CorrelateOptions pipeline_correlation_defaults() {
  correlate::CorrelateOptions o;
  o.match.min_snr = 1.0;
  o.match.min_corr = 0.1;
  o.match.prefilter = correlate::Prefilter::kHighpass;
  return o;
}

filter::FilterOptions pipeline_filter_defaults() {
  filter::FilterOptions o;
  o.min_corr = kPipelineMinCorrelation;
  return o;
}

void PipelineOptions::validate() const {
  if (inputs.empty())
    throw InvalidArgument("parameter images: give the images (files, folders, patterns or a CSV)");
  if (output_dir.empty()) throw InvalidArgument("parameter --output: the output folder is missing");
  network.validate();
  correlation.validate();
  filter.validate();
  inversion.validate();
  if (!glaciers.outlines_path.empty()) glaciers.validate();
  if (!(max_velocity_per_yr >= 0)) {
    throw InvalidArgument(fmt::format("parameter --max-velocity: {} must be >= 0", max_velocity_per_yr));
  }
  if (per_pair_ram_mb < 16) throw InvalidArgument("per-pair memory budget: must be >= 16 MB");
  if (invert_block_rows < 0) {
    throw InvalidArgument(fmt::format("parameter --invert-block-rows: {} must be >= 0 (0 = from --pair-ram)",
                                      invert_block_rows));
  }
  if (executor != "local" && executor != "slurm") {
    throw InvalidArgument(fmt::format("parameter --executor: '{}' is not one of local, slurm", executor));
  }
  if (executor == "slurm") slurm.validate();
}

nlohmann::json Headline::to_json() const {
  nlohmann::json j = {{"unit", unit},
                      {"median_speed_stable", median_speed_stable},
                      {"stable_nodes", stable_nodes},
                      {"median_speed_moving", median_speed_moving},
                      {"moving_nodes", moving_nodes},
                      {"p95_speed", p95_speed},
                      {"valid_nodes", valid_nodes}};
  if (median_rmse >= 0) j["median_rmse"] = median_rmse;
  return j;
}

namespace {

int band_named(const io::RasterInfo& info, const std::string& name) {
  for (const auto& b : info.bands) {
    if (b.description == name) return b.index;
  }
  return 0;
}

// The first band whose description is one of `names`; 0 when none.
int band_named_any(const io::RasterInfo& info, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const int b = band_named(info, name)) return b;
  }
  return 0;
}

// The node rows the correlation will give (planned from the first image and the step: the last block is
// open-ended, so an estimate a little short is harmless) and the rows of one inversion unit: the option, or
// as many as the per-unit memory budget allows (the observations and results of a row of nodes, as
// timeseries::invert_pair_rasters counts them).
std::pair<int, int> inversion_block_rows(const io::RasterInfo& first, const PipelineOptions& options,
                                         std::size_t pairs, std::size_t dates) {
  const int step = std::max(1, options.correlation.step_px);
  const int height_px = options.correlation.roi ? options.correlation.roi->height : first.height;
  const int width_px = options.correlation.roi ? options.correlation.roi->width : first.width;
  const int rows = std::max(1, (height_px + step - 1) / step);
  const int cols = std::max(1, (width_px + step - 1) / step);
  if (options.invert_block_rows > 0) return {rows, options.invert_block_rows};
  const double per_row =
      static_cast<double>(cols) * (static_cast<double>(pairs) * 3.0 * 4.0 * 2.0 +
                                   static_cast<double>(dates) * 4.0 * 4.0 * 2.0 + 32.0 * 4.0);
  const double budget = static_cast<double>(options.per_pair_ram_mb) * 1024.0 * 1024.0 * 0.6;
  return {rows, std::clamp(static_cast<int>(budget / per_row), 1, rows)};
}

// What the correlation result of a pair records of its inputs (correlate::input_provenance: input kind,
// polarization, map grid and GCP transform), for the STAC items; null when it records nothing.
nlohmann::json correlation_input(const std::string& correlation_cog) {
  try {
    const auto info = io::describe(correlation_cog);
    const auto it = info.metadata.find("DEFORMA_PARAMETERS");
    if (it == info.metadata.end()) return nullptr;
    auto parameters = nlohmann::json::parse(it->second, nullptr, false);
    if (!parameters.is_object() || !parameters.contains("input")) return nullptr;
    auto input = parameters["input"];
    // The CRS is in the Item's proj:code; its WKT would only repeat it at length.
    if (input.contains("map_grid") && input["map_grid"].is_object()) input["map_grid"].erase("crs_wkt");
    return input;
  } catch (const Error&) {
    return nullptr;
  }
}

// The largest side of a quicklook's grid: larger grids are decimated while streaming (every k-th node), so
// that the figure costs the same whatever the scene.
constexpr int kQuicklookMaxNodes = 1024;

// A velocity field decimated while streaming, for the quicklook: every `every`-th node of each axis.
struct DecimatedField {
  int every = 1;
  GridF speed, east, north;

  DecimatedField(int width, int height) {
    every = (std::max(width, height) + kQuicklookMaxNodes - 1) / kQuicklookMaxNodes;
    const int cols = (width + every - 1) / every, rows = (height + every - 1) / every;
    speed = GridF(cols, rows, filter::kNodata);
    east = speed, north = speed;
  }
  void set(int col, int row, float s, float e, float n) {
    if (col % every || row % every) return;
    speed(col / every, row / every) = s;
    east(col / every, row / every) = e;
    north(col / every, row / every) = n;
  }
};

// The velocity of a single pair (N = 2: no inversion) on the streaming executor: displacement / time span,
// window by window, written in order with the quicklook's decimated field.
class PairVelocityKernel {
 public:
  struct Input {
    io::BandWindow east, north;
  };
  struct Output {
    GridF east, north, magnitude, count;
  };
  struct Scratch {};

  PairVelocityKernel(const io::Raster& raster, int east_band, int north_band, double sign, double years,
                     io::CogWriter& writer, DecimatedField* quicklook)
      : raster_(raster),
        east_band_(east_band),
        north_band_(north_band),
        sign_(sign),
        years_(years),
        writer_(writer),
        quicklook_(quicklook) {}

  int halo_px() const { return 0; }
  /// Two bands in (values and validity: 5 bytes each) and four out (4 bytes each), with slack.
  double bytes_per_pixel() const { return 40; }

  Input read(const io::Tile& tile) const {
    auto both = raster_.read(std::vector<int>{east_band_, north_band_}, tile.core);
    return {std::move(both[0]), std::move(both[1])};
  }
  Output compute(const io::Tile& tile, Input& in, Scratch&) const {
    Output out;
    out.east = GridF(tile.core.width, tile.core.height, filter::kNodata);
    out.north = out.magnitude = out.count = out.east;
    for (int r = 0; r < tile.core.height; ++r) {
      for (int c = 0; c < tile.core.width; ++c) {
        const bool ok = in.east.valid(c, r) && in.north.valid(c, r);
        out.count(c, r) = ok ? 1.f : 0.f;
        if (!ok) continue;
        out.east(c, r) = static_cast<float>(sign_ * in.east.values(c, r) / years_);
        out.north(c, r) = static_cast<float>(sign_ * in.north.values(c, r) / years_);
        out.magnitude(c, r) = std::hypot(out.east(c, r), out.north(c, r));
      }
    }
    return out;
  }
  void write(const io::Tile& tile, Output& out) {
    writer_.write(1, tile.core, out.east);
    writer_.write(2, tile.core, out.north);
    writer_.write(3, tile.core, out.magnitude);
    writer_.write(4, tile.core, out.count);
    if (!quicklook_) return;
    for (int r = 0; r < tile.core.height; ++r) {
      for (int c = 0; c < tile.core.width; ++c) {
        quicklook_->set(tile.core.col + c, tile.core.row + r, out.magnitude(c, r), out.east(c, r),
                        out.north(c, r));
      }
    }
  }

 private:
  const io::Raster& raster_;
  int east_band_, north_band_;
  double sign_, years_;
  io::CogWriter& writer_;
  DecimatedField* quicklook_;
};

// The velocity of a single pair (N = 2: no inversion): displacement / time span, streamed by windows.
std::string write_single_pair_velocity(const timeseries::Pair& pair, const std::string& units,
                                       const std::string& products_dir, const PipelineOptions& options,
                                       RunContext& context, std::vector<std::string>& outputs) {
  const io::Raster raster = io::Raster::open(pair.result_path);
  const auto& info = raster.info();
  const std::string east_name = units == "m" ? io::product::band::kEast : io::product::band::kDx;
  const std::string north_name = units == "m" ? io::product::band::kNorth : io::product::band::kDy;
  const std::string c1 = units == "m" ? "east" : "dx", c2 = units == "m" ? "north" : "dy";
  io::product::check_bands(info, {east_name, north_name});
  const int be = band_named(info, east_name), bn = band_named(info, north_name);
  // To the second when both images carry their time (SAR passes hours apart on one day).
  const double years = std::abs(pair.span_years());
  if (!(years > 0))
    throw InvalidArgument(fmt::format("pair {}: both images have the same acquisition time", pair.id));
  // Forward in time: a backward pair measures the opposite displacement.
  const double sign = pair.span_days() > 0 ? 1.0 : -1.0;
  const std::string unit = units + "/yr";
  // Band names as in the inversion's velocity product (timeseries/products.hpp): units in the names.
  const std::string suffix = units == "m" ? "_m_per_yr" : "_px_per_yr";
  const std::string path = (fs::path(products_dir) / "velocity.tif").string();
  io::Provenance provenance;
  provenance.command_line = options.command_line;
  provenance.parameters = options.parameters;
  provenance.inputs = {pair.result_path};
  io::CogOptions cog;
  cog.metadata["DEFORMA_PRODUCT"] = "velocity of a single pair (no inversion)";
  cog.metadata["DEFORMA_START_DATE"] = std::min(pair.ref_date, pair.sec_date).iso();
  cog.metadata["DEFORMA_END_DATE"] = std::max(pair.ref_date, pair.sec_date).iso();
  io::CogWriter writer(path, info.width, info.height,
                       {{"velocity_" + c1 + suffix, unit},
                        {"velocity_" + c2 + suffix, unit},
                        {"velocity_magnitude" + suffix, unit},
                        {"valid_pairs", "count"}},
                       info.geotransform, info.crs_wkt, provenance, cog);
  std::optional<DecimatedField> quick;
  if (options.quicklooks) quick.emplace(info.width, info.height);
  PairVelocityKernel kernel(raster, be, bn, sign, years, writer, quick ? &*quick : nullptr);
  io::StreamOptions stream;
  stream.width = info.width;
  stream.height = info.height;
  stream.block_width = info.bands[static_cast<std::size_t>(be - 1)].block_width;
  stream.block_height = info.bands[static_cast<std::size_t>(be - 1)].block_height;
  stream.ram_budget_mb = std::max<std::size_t>(context.ram_budget_mb, 16);
  stream.threads = context.threads;
  if (!io::for_each_window(stream, kernel)) {
    writer.abandon();
    throw Cancelled(fmt::format("{}: cancelled; no velocity written", path));
  }
  writer.finish();
  outputs.push_back(path);
  if (quick) {
    GridU8 valid(quick->speed.width(), quick->speed.height(), 0);
    for (std::size_t i = 0; i < valid.size(); ++i) {
      valid.data()[i] = quick->speed.data()[i] != filter::kNodata;
    }
    const auto scale = render::ColorScale::robust_sequential(quick->speed, valid, "velocity magnitude", unit);
    render::QuicklookOptions q;
    q.title = render::figure_title(fs::path(products_dir).parent_path().filename().string(),
                                   "velocity magnitude", unit, std::min(pair.ref_date, pair.sec_date).iso(),
                                   std::max(pair.ref_date, pair.sec_date).iso());
    q.cell_size_m = info.pixel_size_x_m * quick->every;  // 0 (no scale bar) when unknown
    q.arrows = true;
    // Pixel rows grow downwards: the arrows' "north" is -dy.
    GridF north_up = quick->north;
    if (units == "px") {
      for (auto& v : north_up.values()) v = v == filter::kNodata ? v : -v;
    }
    const std::string png = (fs::path(products_dir) / "velocity_magnitude.png").string();
    io::write_atomically(png, [&](const std::string& tmp) {
      render::write_png(tmp,
                        render::render_quicklook(quick->speed, valid, scale, q, &quick->east, &north_up));
    });
    outputs.push_back(png);
  }
  return path;
}

// The headline's figures over a velocity product, window by window: bounded samples (exact up to their
// capacity) of the speed on all, stable and moving nodes, and of the RMSE.
class HeadlineKernel {
 public:
  struct Input {
    io::BandWindow speed, rmse;
    GridU8 moving, stable;
  };
  using Output = Input;
  struct Scratch {};

  HeadlineKernel(const io::Raster& raster, int speed_band, int rmse_band, const std::string& moving_path,
                 const std::string& stable_path)
      : raster_(raster),
        speed_band_(speed_band),
        rmse_band_(rmse_band),
        moving_path_(moving_path),
        stable_path_(stable_path) {}

  int halo_px() const { return 0; }
  /// Speed and RMSE (values and validity: 5 bytes each) and two masks.
  double bytes_per_pixel() const { return 12; }

  Input read(const io::Tile& tile) const {
    const auto& info = raster_.info();
    Input in;
    std::vector<int> bands = {speed_band_};
    if (rmse_band_) bands.push_back(rmse_band_);
    auto read = raster_.read(bands, tile.core);
    in.speed = std::move(read[0]);
    if (rmse_band_) in.rmse = std::move(read[1]);
    if (!moving_path_.empty()) in.moving = filter::read_node_mask(moving_path_, info, tile.core, "exclude");
    if (!stable_path_.empty()) in.stable = filter::read_node_mask(stable_path_, info, tile.core, "stable");
    return in;
  }
  Output compute(const io::Tile&, Input& in, Scratch&) const { return std::move(in); }
  void write(const io::Tile& tile, Output& in) {
    for (int r = 0; r < tile.core.height; ++r) {
      for (int c = 0; c < tile.core.width; ++c) {
        if (!in.speed.valid(c, r) || !std::isfinite(in.speed.values(c, r))) continue;
        const float v = in.speed.values(c, r);
        all.add(v);
        const bool is_moving = !in.moving.empty() && in.moving(c, r);
        const bool is_stable = in.stable.empty() ? (!in.moving.empty() && !is_moving) : in.stable(c, r) != 0;
        if (is_stable) stable.add(v);
        if (is_moving) moving.add(v);
      }
    }
    if (!rmse_band_) return;
    for (std::size_t i = 0; i < in.rmse.values.size(); ++i) {
      if (in.rmse.valid.data()[i] && std::isfinite(in.rmse.values.data()[i])) {
        rmse.add(in.rmse.values.data()[i]);
      }
    }
  }

  Reservoir<float> all, stable, moving, rmse;

 private:
  const io::Raster& raster_;
  int speed_band_, rmse_band_;
  const std::string& moving_path_;
  const std::string& stable_path_;
};

}  // namespace

Headline velocity_headline(const std::string& velocity_path, const std::string& moving_path,
                           const std::string& stable_path, std::size_t ram_budget_mb) {
  const io::Raster raster = io::Raster::open(velocity_path);
  const auto& info = raster.info();
  const int speed_band = band_named_any(
      info, {"velocity_magnitude_m_per_yr", "velocity_magnitude_px_per_yr", "velocity_magnitude"});
  if (!speed_band) {
    throw FormatError(
        fmt::format("{}: no velocity magnitude band (velocity_magnitude_m_per_yr or "
                    "velocity_magnitude_px_per_yr)",
                    velocity_path));
  }
  Headline h;
  h.unit = info.bands[static_cast<std::size_t>(speed_band - 1)].unit;
  const int rmse_band = band_named_any(info, {"rmse_m", "rmse_px", "rmse"});
  HeadlineKernel kernel(raster, speed_band, rmse_band, moving_path, stable_path);
  io::StreamOptions stream;
  stream.width = info.width;
  stream.height = info.height;
  stream.block_width = info.bands[static_cast<std::size_t>(speed_band - 1)].block_width;
  stream.block_height = info.bands[static_cast<std::size_t>(speed_band - 1)].block_height;
  stream.ram_budget_mb = std::max<std::size_t>(ram_budget_mb, 16);
  io::for_each_window(stream, kernel);
  h.valid_nodes = static_cast<std::int64_t>(kernel.all.seen());
  h.stable_nodes = static_cast<std::int64_t>(kernel.stable.seen());
  h.moving_nodes = static_cast<std::int64_t>(kernel.moving.seen());
  auto sample = [](const Reservoir<float>& r) { return r.records(); };
  std::vector<float> s_stable = sample(kernel.stable), s_moving = sample(kernel.moving);
  // Upper medians and a floor-rank percentile: the headline has always reported sample values.
  h.median_speed_stable = upper_median_in_place(s_stable);
  h.median_speed_moving = upper_median_in_place(s_moving);
  std::vector<float> s_all = sample(kernel.all);
  if (!s_all.empty()) h.p95_speed = percentile_in_place(s_all, 0.95);
  std::vector<float> s_rmse = sample(kernel.rmse);
  if (!s_rmse.empty()) h.median_rmse = upper_median_in_place(s_rmse);
  return h;
}

Summary run_pipeline(const PipelineOptions& options, RunContext& context) {
  const auto started = std::chrono::steady_clock::now();
  options.validate();
  Progress& progress = progress_or_null(context.progress);
  const fs::path out(options.output_dir);
  Summary summary;
  summary.operation = "pipeline";
  nlohmann::json stages = nlohmann::json::object();

  // 1. Images and pairs.
  auto stage_start = std::chrono::steady_clock::now();
  timeseries::ImageSet images = timeseries::load_image_set(options.inputs, options.image_set);
  if (options.clouds) timeseries::drop_cloudy_images(images, *options.clouds);
  for (const auto& s : images.skipped) summary.warnings.push_back("image left out: " + s);
  if (images.size() < 2) {
    throw InvalidArgument(
        fmt::format("parameter images: a time series needs at least two images; {} usable{}", images.size(),
                    images.size() == 1 ? fmt::format(" ({})", images.images.front().path) : std::string()));
  }
  // Images georeferenced by GCPs only (SAR GRD) are all warped onto one map grid over the overlap of the
  // whole series, not each pair onto its own: every pair's result then has the same node grid, which the
  // inversion needs.
  std::vector<std::string> image_paths;
  for (const auto& im : images.images) image_paths.push_back(im.path);
  correlate::CorrelateOptions correlation = options.correlation;
  nlohmann::json series_grid = nullptr;
  if (const auto grid = correlate::series_map_grid(image_paths, correlation.grid)) {
    correlation.grid.fixed = *grid;
    series_grid = {{"crs", grid->crs},
                   {"resolution_m", grid->resolution_m},
                   {"width_px", grid->width},
                   {"height_px", grid->height},
                   {"origin", {grid->geotransform.c[0], grid->geotransform.c[3]}},
                   {"gcp_transform", io::to_string(correlation.grid.transform)}};
  }
  const auto& first_image = images.images.front();
  const io::RasterInfo first =
      correlation.grid.fixed ? correlation.grid.fixed->as_info(first_image.path + " (series map grid)")
      : first_image.sar      ? io::describe(correlate::inspect_product(first_image.path).raster_path)
                             : io::describe(first_image.path);
  const std::string units = first.georeferenced && !first.crs_wkt.empty() ? "m" : "px";
  const std::vector<timeseries::Pair> network = timeseries::build_pair_network(images, options.network);
  // The inversion's time axis is the images' instants when they carry their time to the second (SAR),
  // their dates otherwise. A series mixing both is refused before anything is written: a date's time of
  // day is unknown, and taking it as 00:00 would put up to a day's error into spans hours long.
  if (network.size() > 1) {
    const auto timed = std::find_if(images.images.begin(), images.images.end(),
                                    [](const timeseries::Image& im) { return im.time_s.has_value(); });
    const auto untimed = std::find_if(images.images.begin(), images.images.end(),
                                      [](const timeseries::Image& im) { return !im.time_s.has_value(); });
    if (timed != images.images.end() && untimed != images.images.end()) {
      throw InvalidArgument(fmt::format(
          "image {} carries no acquisition time (only its date, {}) while {} does ({}): the inversion of a "
          "series needs every image's time to the second, or none; run the two kinds apart",
          untimed->path, untimed->date.iso(), timed->path, timeseries::Epoch::at(*timed->time_s).iso()));
    }
  }
  // Options that cannot fit the images are refused before anything is written (not per pair, after
  // network.png and the unit records exist).
  correlate::check_fits_image(correlation, first);
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (!fs::is_directory(options.output_dir, ec)) {
    throw IoError(fmt::format("-o {}: cannot create the output folder", options.output_dir));
  }
  const std::string network_png = (out / "network.png").string();
  timeseries::write_pair_network_png(network_png, network,
                                     fmt::format("{} pairs of {} images", network.size(), images.size()));
  stages["pairs"] = {
      {"images", images.size()}, {"pairs", network.size()}, {"seconds", seconds_since(stage_start)}};
  run_log()->info("pipeline: {} images, {} pairs, units {}", images.size(), network.size(), units);

  // A run in a folder that holds an earlier one updates it: the pairs it completed are reused (their work
  // units are keyed by inputs and parameters), only the new ones are computed, and the whole network is
  // inverted again. What the earlier run covered is read from its summary before it is replaced.
  const nlohmann::json previous = io::read_json_file((out / "pipeline.json").string());
  std::optional<std::int64_t> previous_images;
  if (previous.is_object() && previous.contains("counts") && previous["counts"].is_object() &&
      previous["counts"].contains("images") && previous["counts"]["images"].is_number_integer()) {
    previous_images = previous["counts"]["images"].get<std::int64_t>();
  }

  const int threads = context.threads;
  // 2-3. Correlation, then filtering and stable-ground correction, of every pair: each pair of each stage is
  // a work unit (pipeline/unit.hpp) with every parameter its result depends on, run in threads here or as
  // Slurm array tasks, and resumable either way. A pair whose filtering fails on its data (no stable ground
  // left under clouds, say) is left out of the inversion and reported.
  stage_start = std::chrono::steady_clock::now();
  const std::string correlation_dir = (out / "correlation").string();
  const std::string filtered_dir = (out / "filtered").string();
  UnitList correlate_units;
  correlate_units.stage = "correlate";
  correlate_units.dir = correlation_dir;
  correlate_units.skip_bad = options.image_set.skip_bad;
  correlate_units.ram_mb = options.per_pair_ram_mb;
  correlate_units.command_line = options.command_line;
  UnitList filter_units = correlate_units;
  filter_units.stage = "filter";
  filter_units.dir = filtered_dir;
  filter_units.skip_bad = true;
  // Glacier outlines: the regions are written once (unchanged files keep their dates, so a rerun's work units
  // stay valid) and every pair reads them.
  std::optional<filter::GlacierSet> glaciers;
  filter::GlacierRegions glacier_regions;
  const std::string glacier_dir = (out / "glaciers").string();
  filter::FilterOptions pair_filter = options.filter;
  if (!options.glaciers.outlines_path.empty()) {
    glaciers = filter::read_glaciers(options.glaciers.outlines_path, first.crs_wkt);
    glacier_regions = filter::write_glacier_regions(*glaciers, first, options.glaciers, glacier_dir);
    if (pair_filter.stable == filter::StableSource::kNone && !glacier_regions.stable_path.empty()) {
      pair_filter.stable = filter::StableSource::kPolygons;
      pair_filter.stable_path = glacier_regions.stable_path;
    }
  }
  std::map<std::string, std::size_t> unit_index;
  for (const auto& pair : network) {
    correlate::CorrelateOptions c = correlation;
    c.years_between = pair.span_years();
    c.ref_date = pair.ref_date;
    c.sec_date = pair.sec_date;
    c.quicklook_path.clear();
    if (glaciers) c.mask_path = glacier_regions.skip_path;
    const std::string correlated_path = pair_result_path(correlation_dir, pair);
    correlate_units.units.push_back(correlate_unit(pair.id, pair.ref_path, pair.sec_path, correlated_path, c));
    filter::FilterOptions f = pair_filter;
    if (options.max_velocity_per_yr > 0) {
      const double max_displacement = options.max_velocity_per_yr * std::abs(pair.span_years());
      if (units == "m") {
        f.max_displacement_m = max_displacement;
      } else {
        f.max_displacement_px = max_displacement;
      }
    }
    filter_units.units.push_back(filter_unit(pair.id, correlated_path, pair_result_path(filtered_dir, pair), f));
    unit_index[pair.id] = unit_index.size();
  }

  // 4a. The inversion's units, planned before any pair is correlated so that a cluster can queue them
  // behind the filter stage: every pair of the network is a candidate, and each block inverts those that
  // filtering kept (pipeline/invert_units.hpp).
  timeseries::InvertRastersOptions inv;
  inv.output_dir = (out / "products").string();
  inv.units = units;
  inv.weight_band = options.weight_by_correlation ? "corr" : "";
  inv.quicklooks = options.quicklooks;
  inv.inversion = options.inversion;
  inv.parameters = options.parameters;
  UnitList invert_units = correlate_units;
  invert_units.units.clear();
  invert_units.stage = "invert";
  invert_units.dir = (out / "inversion").string();
  invert_units.skip_bad = false;
  invert_units.after_whole_stage = true;
  {
    std::vector<timeseries::Pair> candidates = network;
    for (std::size_t i = 0; i < candidates.size(); ++i)
      candidates[i].result_path = filter_units.units[i].output;
    const auto rows =
        inversion_block_rows(first, options, candidates.size(), timeseries::network_epochs(network).size());
    for (const auto& block : plan_row_blocks(rows.first, rows.second)) {
      const std::string id = fmt::format("rows_{:06d}", block.row0);
      invert_units.units.push_back(invert_block_unit(
          id, candidates, inv, block, (fs::path(invert_units.dir) / "blocks" / (id + ".bin")).string()));
    }
  }

  BatchResult correlated, filtered;
  StageOutcome inverted_on_slurm;
  if (options.executor == "slurm") {
    std::vector<UnitList> lists = {correlate_units, filter_units, invert_units};
    const auto outcomes = run_on_slurm(lists, options.slurm, progress);
    std::set<std::string> not_correlated;
    for (const auto& [i, reason] : outcomes[0].skipped) {
      correlated.failed.push_back(fmt::format("{}: {}", network[i].id, reason));
      not_correlated.insert(network[i].id);
    }
    for (const auto i : outcomes[0].completed) {
      timeseries::Pair p = network[i];
      p.result_path = correlate_units.units[i].output;
      correlated.pairs.push_back(p);
    }
    for (const auto& [i, reason] : outcomes[1].skipped) {
      if (!not_correlated.count(network[i].id)) filtered.failed.push_back(fmt::format("{}: {}", network[i].id, reason));
    }
    for (const auto i : outcomes[1].completed) {
      if (not_correlated.count(network[i].id)) continue;
      timeseries::Pair p = network[i];
      p.result_path = filter_units.units[i].output;
      filtered.pairs.push_back(p);
    }
    inverted_on_slurm = outcomes[2];
    invert_units = lists[2];  // absolute paths, as the tasks saw them
    BatchResult* results[] = {&correlated, &filtered};
    for (std::size_t s = 0; s < 2; ++s) {
      auto& r = *results[s];
      r.reused = outcomes[s].reused;
      r.computed = outcomes[s].computed;
      r.summary.operation = lists[s].stage;
      r.summary.counts = {{"pairs", static_cast<std::int64_t>(network.size())},
                          {"reused", r.reused},
                          {"computed", r.computed},
                          {"failed", static_cast<std::int64_t>(r.failed.size())},
                          {"retried", outcomes[s].retried}};
      r.summary.details = {{"executor", "slurm"}, {"slurm_jobs", outcomes[s].job_ids}};
      r.summary.warnings = r.failed;
    }
  } else {
    BatchOptions correlate_batch;
    correlate_batch.stage = "correlate";
    correlate_batch.output_dir = correlation_dir;
    correlate_batch.parameters = correlate_options_json(options.correlation);  // for the summary
    correlate_batch.ram_budget_mb = std::max(context.ram_budget_mb, options.per_pair_ram_mb);
    correlate_batch.per_pair_ram_mb = options.per_pair_ram_mb;
    correlate_batch.threads = threads;
    correlate_batch.skip_bad = options.image_set.skip_bad;
    correlate_batch.unit_of = [&](const timeseries::Pair& p) { return correlate_units.units.at(unit_index.at(p.id)); };
    auto run_unit_in_thread = [&](const UnitList& list) {
      return [&list, &options, &context, threads](const PairTask& task) {
        RunContext pair_context;
        pair_context.logger = context.logger;
        pair_context.progress = task.progress;
        pair_context.threads = threads;
        pair_context.ram_budget_mb = task.ram_budget_mb;
        pair_context.command_line = options.command_line;
        return execute_unit(list, *task.unit, pair_context);
      };
    };
    correlated = run_batch(network, correlate_batch, run_unit_in_thread(correlate_units), &progress);
    BatchOptions filter_batch = correlate_batch;
    filter_batch.stage = "filter";
    filter_batch.output_dir = filtered_dir;
    filter_batch.parameters = filter_options_json(options.filter);
    filter_batch.parameters["max-velocity"] = options.max_velocity_per_yr;  // applied per pair
    filter_batch.skip_bad = true;
    filter_batch.unit_of = [&](const timeseries::Pair& p) { return filter_units.units.at(unit_index.at(p.id)); };
    filtered = run_batch(correlated.pairs, filter_batch, run_unit_in_thread(filter_units), &progress);
    // A pair not correlated this time keeps no filter record from an earlier run: the inversion's blocks
    // take the recorded pairs.
    std::set<std::string> correlated_ids;
    for (const auto& p : correlated.pairs) correlated_ids.insert(p.id);
    for (const auto& u : filter_units.units) {
      if (!correlated_ids.count(u.id)) forget_unit(filtered_dir, u);
    }
  }
  for (const auto& w : correlated.failed) summary.warnings.push_back("pair not correlated: " + w);
  stages["correlate"] = correlated.summary.to_json();
  for (const auto& w : filtered.failed) summary.warnings.push_back("pair left out after filtering: " + w);
  stages["filter"] = filtered.summary.to_json();
  stages["correlate_and_filter_seconds"] = seconds_since(stage_start);
  if (filtered.pairs.empty()) {
    throw NumericalError(fmt::format("{}: no pair survived correlation and filtering; see the warnings above",
                                     options.output_dir));
  }

  // The pair table of the run: result_path = the filtered result, relative to the output folder.
  std::vector<timeseries::Pair> table = filtered.pairs;
  for (auto& p : table) p.result_path = fs::relative(p.result_path, out).generic_string();
  const std::string pairs_csv = (out / "pairs.csv").string();
  timeseries::write_pair_table(pairs_csv, table);

  // 4. Inversion and products (or the velocity of the single pair).
  stage_start = std::chrono::steady_clock::now();
  const std::string products_dir = (out / "products").string();
  fs::create_directories(products_dir, ec);
  std::vector<std::string> product_files;
  std::string velocity_path;
  // The time axis of the products: instants for images with times to the second, else dates.
  const std::vector<timeseries::Epoch> dates_used = timeseries::network_epochs(filtered.pairs);
  if (filtered.pairs.size() == 1) {
    velocity_path = write_single_pair_velocity(filtered.pairs.front(), units, products_dir, options, context,
                                               product_files);
    stages["products"] = {{"mode", "single pair velocity"}, {"seconds", seconds_since(stage_start)}};
  } else {
    nlohmann::json block_stage;
    if (options.executor == "slurm") {
      block_stage = {{"executor", "slurm"},
                     {"blocks", invert_units.units.size()},
                     {"reused", inverted_on_slurm.reused},
                     {"computed", inverted_on_slurm.computed},
                     {"retried", inverted_on_slurm.retried},
                     {"slurm_jobs", inverted_on_slurm.job_ids}};
    } else {
      // The blocks one after the other (each inverts its nodes on every thread); a rerun keeps the blocks
      // complete from an earlier run.
      const auto grid = io::describe(filtered.pairs.front().result_path);
      progress.start("inverting nodes", static_cast<std::uint64_t>(grid.width) * grid.height);
      int reused = 0;
      for (std::size_t i = 0; i < invert_units.units.size(); ++i) {
        if (progress.cancelled()) throw Cancelled("pipeline cancelled");
        if (run_unit(invert_units, i, context) == UnitOutcome::kReused) ++reused;
      }
      progress.finish();
      block_stage = {{"executor", "local"},
                     {"blocks", invert_units.units.size()},
                     {"reused", reused},
                     {"computed", static_cast<int>(invert_units.units.size()) - reused}};
    }
    block_stage["seconds"] = seconds_since(stage_start);
    const auto assembly_start = std::chrono::steady_clock::now();
    Summary inverted = assemble_invert_blocks(invert_units, filtered.pairs, inv, context);
    inverted.details["blocks"] = block_stage;
    inverted.details["assembly_seconds"] = seconds_since(assembly_start);
    for (const auto& w : inverted.warnings) summary.warnings.push_back(w);
    product_files = inverted.outputs;
    velocity_path = (fs::path(products_dir) / "velocity.tif").string();
    stages["invert"] = inverted.to_json();
  }

  // 5. Headline numbers.
  const std::string stable_source = options.filter.stable == filter::StableSource::kPolygons ||
                                            options.filter.stable == filter::StableSource::kMask
                                        ? options.filter.stable_path
                                        : std::string();
  const Headline headline =
      velocity_headline(velocity_path, options.filter.exclude_path, stable_source, context.ram_budget_mb);

  // 5b. Statistics per glacier: the pairs were corrected on stable ground already, so no bias is removed.
  std::optional<filter::GlacierReport> glacier_report;
  std::vector<std::string> glacier_files;
  if (glaciers) {
    glacier_report = filter::glacier_statistics(*glaciers, velocity_path, options.glaciers);
    io::Provenance provenance{options.command_line, options.parameters, {options.glaciers.outlines_path}};
    if (!options.glaciers.centrelines_path.empty())
      provenance.inputs.push_back(options.glaciers.centrelines_path);
    glacier_files = filter::write_glacier_tables((fs::path(glacier_dir) / "glaciers.csv").string(),
                                                 *glacier_report, provenance);
    for (const auto& w : glacier_report->warnings) summary.warnings.push_back(w);
  }

  // 6. The STAC catalog of the folder.
  StacCatalog catalog;
  catalog.id = fs::path(fs::absolute(out)).lexically_normal().filename().string();
  if (catalog.id.empty()) catalog.id = "deforma-pipeline";
  catalog.title = fmt::format("deforma pipeline: {} images {} .. {}", images.size(),
                              images.images.front().date.iso(), images.images.back().date.iso());
  catalog.description = fmt::format(
      "Offset tracking time series produced by deforma: {} pairs correlated, filtered and inverted into "
      "displacement time series and velocity ({}).",
      filtered.pairs.size(), headline.unit);
  const io::Date first_date = dates_used.front().date, last_date = dates_used.back().date;
  {
    StacItem velocity;
    velocity.id = "velocity";
    velocity.title = "Mean velocity";
    velocity.start = first_date;
    velocity.end = last_date;
    velocity.footprint_raster = velocity_path;
    velocity.properties["deforma:headline"] = headline.to_json();
    if (!filtered.pairs.empty()) {
      if (auto input = correlation_input(pair_result_path(correlation_dir, filtered.pairs.front()));
          !input.is_null())
        velocity.properties["deforma:input"] = std::move(input);
    }
    if (glacier_report) {
      velocity.properties["deforma:glaciers"] = glacier_report->to_json()["glaciers"];
      for (auto& asset : table_assets(glacier_files)) velocity.assets.push_back(std::move(asset));
    }
    StacItem series;
    series.id = "timeseries";
    series.title = "Displacement time series";
    series.start = first_date;
    series.end = last_date;
    series.footprint_raster = velocity_path;
    for (const auto& f : product_files) {
      const std::string name = fs::path(f).filename().string();
      std::string key = fs::path(f).stem().string();
      const bool overview = fs::path(f).extension() == ".png";
      StacAsset asset{key, f, name, "", {overview ? "overview" : "data"}, {}};
      if (name.rfind("timeseries", 0) == 0) {
        series.assets.push_back(asset);
      } else {
        velocity.assets.push_back(asset);
      }
    }
    if (std::none_of(velocity.assets.begin(), velocity.assets.end(),
                     [&](const StacAsset& a) { return a.path == velocity_path; })) {
      velocity.assets.push_back({"velocity", velocity_path, "velocity.tif", "", {"data"}, {}});
    }
    catalog.items.push_back(velocity);
    if (!series.assets.empty()) catalog.items.push_back(series);
    StacItem net;
    net.id = "pair-network";
    net.title = "Pair network";
    net.start = images.images.front().date;
    net.end = images.images.back().date;
    net.footprint_raster = velocity_path;
    net.assets = {{"pairs", pairs_csv, "pair table", "", {"metadata"}, {}},
                  {"network", network_png, "pair network plot", "", {"overview"}, {}}};
    catalog.items.push_back(net);
    for (const auto& p : filtered.pairs) {
      StacItem item;
      item.id = "pair-" + p.id;
      item.title = fmt::format("Displacement {} .. {}", p.ref_date.iso(), p.sec_date.iso());
      item.start = std::min(p.ref_date, p.sec_date);
      item.end = std::max(p.ref_date, p.sec_date);
      item.footprint_raster = p.result_path;
      item.properties["deforma:days"] = p.days();
      if (p.ref_time_s && p.sec_time_s) item.properties["deforma:span_hours"] = p.span_days() * 24.0;
      if (auto input = correlation_input(pair_result_path(correlation_dir, p)); !input.is_null())
        item.properties["deforma:input"] = std::move(input);
      item.assets = {{"filtered", p.result_path, "filtered displacement", "", {"data"}, {}},
                     {"correlation",
                      pair_result_path(correlation_dir, p),
                      "raw correlation",
                      "",
                      {"data"},
                      {}}};
      catalog.items.push_back(item);
    }
  }

  // The summary, also written as pipeline.json (the catalog points to it from the velocity Item).
  summary.counts = {{"images", static_cast<std::int64_t>(images.size())},
                    {"pairs", static_cast<std::int64_t>(network.size())},
                    {"pairs_reused", correlated.reused},
                    {"pairs_correlated", correlated.computed},
                    {"pairs_inverted", static_cast<std::int64_t>(filtered.pairs.size())},
                    {"dates", static_cast<std::int64_t>(dates_used.size())},
                    {"valid_nodes", headline.valid_nodes}};
  summary.details = {{"output_dir", options.output_dir}, {"units", units},
                     {"first_date", first_date.iso()},   {"last_date", last_date.iso()},
                     {"headline", headline.to_json()},   {"stages", stages}};
  nlohmann::json epoch_list = nlohmann::json::array();
  for (const auto& e : dates_used) epoch_list.push_back(e.iso());
  summary.details["epochs"] = epoch_list;
  if (!series_grid.is_null()) summary.details["series_grid"] = series_grid;
  if (previous_images) {
    summary.details["update"] = {{"previous_images", *previous_images},
                                 {"new_images", static_cast<std::int64_t>(images.size()) - *previous_images},
                                 {"pairs_reused", correlated.reused},
                                 {"pairs_computed", correlated.computed}};
  }
  if (glacier_report) {
    summary.details["glaciers"] = glacier_report->to_json();
    summary.details["glacier_regions"] = {
        {"matched_area_km2", glacier_regions.matched_area_km2},
        {"image_area_km2", glacier_regions.grid_area_km2},
        {"stable_ground",
         pair_filter.stable_path == glacier_regions.stable_path ? "ring outside the outlines" : "as given"}};
  }
  summary.seconds = seconds_since(started);
  summary.details["seconds"] = summary.seconds;
  const std::string summary_path = (out / "pipeline.json").string();
  io::write_atomically(summary_path, [&](const std::string& tmp) {
    std::ofstream f(tmp);
    f << summary.to_json().dump(2) << '\n';
    if (!f) throw IoError(fmt::format("{}: cannot write", summary_path));
  });
  catalog.items.front().assets.push_back({"summary", summary_path, "run summary", "", {"metadata"}, {}});
  const auto stac_files = write_stac_catalog(options.output_dir, catalog);

  summary.outputs = {velocity_path, pairs_csv, network_png, summary_path, stac_files.front()};
  for (const auto& f : product_files) {
    if (f != velocity_path) summary.outputs.push_back(f);
  }
  summary.outputs.insert(summary.outputs.end(), glacier_files.begin(), glacier_files.end());
  std::string report = fmt::format(
      "pipeline: {} images ({} .. {}), {} pairs ({} reused, {} correlated), {} pairs inverted over {} "
      "dates\n",
      images.size(), images.images.front().date.iso(), images.images.back().date.iso(), network.size(),
      correlated.reused, correlated.computed, filtered.pairs.size(), dates_used.size());
  if (previous_images) {
    report += fmt::format(
        "  update of the run in this folder ({} images before, {} now): {} pairs reused, {} computed, "
        "network inverted again\n",
        *previous_images, images.size(), correlated.reused, correlated.computed);
  }
  report += fmt::format(
      "  velocity ({}): median {:.3g} on stable ground ({} nodes), median {:.3g} on moving ground "
      "({} nodes), p95 {:.3g}\n",
      headline.unit, headline.median_speed_stable, headline.stable_nodes, headline.median_speed_moving,
      headline.moving_nodes, headline.p95_speed);
  if (headline.median_rmse >= 0) {
    report +=
        fmt::format("  residual RMSE of the inversion: median {:.3g} {}\n", headline.median_rmse, units);
  }
  if (glacier_report) {
    report += fmt::format("  glaciers: {} outlines; statistics in {}\n", glacier_report->glaciers.size(),
                          glacier_files.front());
  }
  report += fmt::format("  output folder: {} (STAC catalog: {})\n  total {}\n", options.output_dir,
                        stac_files.front(), format_duration(summary.seconds));
  summary.report = report;
  return summary;
}

}  // namespace deforma::pipeline
