#include "deforma/timeseries/products.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/product.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/stream.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/map.hpp"
#include "timeseries/netcdf_cube.hpp"

namespace deforma::timeseries {
namespace fs = std::filesystem;

void InvertRastersOptions::validate() const {
  if (output_dir.empty()) throw InvalidArgument("--output: an output folder is required");
  if (block_rows < 0)
    throw InvalidArgument(fmt::format("block rows {}: expected 0 (automatic) or more", block_rows));
  if (units != "m" && units != "px")
    throw InvalidArgument(fmt::format("--units '{}': expected m or px", units));
  if (prefix.find('/') != std::string::npos) {
    throw InvalidArgument(fmt::format("--prefix '{}': a name prefix, not a path", prefix));
  }
  inversion.validate();
}

namespace {

constexpr float kNodata = -9999.0f;

struct Components {
  std::string first;   // "east" / "dx"
  std::string second;  // "north" / "dy"
  std::string unit;    // "m" / "px"
  std::string first_band;
  std::string second_band;
};

Components components_for(const InvertRastersOptions& options) {
  Components c;
  if (options.units == "px") {
    c = {"dx", "dy", "px", "dx_px", "dy_px"};
  } else {
    c = {"east", "north", "m", "east_m", "north_m"};
  }
  if (!options.east_band.empty()) c.first_band = options.east_band;
  if (!options.north_band.empty()) c.second_band = options.north_band;
  return c;
}

// A band by description (case-insensitive) or 1-based index.
int component_band(const io::RasterInfo& info, const std::string& name, const std::string& parameter) {
  if (const int band = io::find_band(info, name, "--" + parameter)) return band;
  throw FormatError(fmt::format("{}: no band named '{}' (bands: {}); choose --units or --{}", info.path, name,
                                io::band_names(info), parameter));
}

std::string product_path(const InvertRastersOptions& o, const std::string& name) {
  return (fs::path(o.output_dir) / (o.prefix + name)).string();
}

// Quicklook grids: the products sampled every `factor` nodes, kept whole (small) while blocks stream.
struct Sampled {
  int factor = 1;
  GridF magnitude, first, second, rmse;
  GridU8 valid;
};

}  // namespace

namespace {

void check_pair_table(const std::vector<Pair>& pairs) {
  if (pairs.empty()) throw InvalidArgument("invert: the pair table has no pair");
  for (const auto& p : pairs) {
    if (p.result_path.empty()) {
      throw InvalidArgument(
          fmt::format("invert: pair '{}' has no result_path (correlate the pairs first)", p.id));
    }
  }
}

// The pair rasters of one inversion, checked to share one grid, with the bands to read.
struct PairStack {
  bool keep_open = true;
  std::vector<std::optional<io::Raster>> rasters;
  std::vector<int> band_first;
  std::vector<int> band_second;
  std::vector<int> band_weight;
  io::RasterInfo grid;
  std::vector<Epoch> dates;                  // the time axis: instants or dates (network_epochs)
  std::vector<std::pair<int, int>> indices;  // date indices of each pair
};

PairStack open_pair_stack(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                          const Components& comp) {
  check_pair_table(pairs);
  // Every pair raster must be on one grid. They stay open between blocks unless there are so many that
  // file handles would run short; then each block reopens them (a COG header is cheap to read).
  constexpr std::size_t kMaxOpenRasters = 256;
  PairStack stack;
  stack.keep_open = pairs.size() <= kMaxOpenRasters;
  stack.rasters.resize(pairs.size());
  std::optional<io::RasterInfo> first_info;
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    auto raster = io::Raster::open(pairs[k].result_path);
    const auto& info = raster.info();
    if (first_info && !io::same_grid(*first_info, info)) {
      throw InvalidArgument(fmt::format(
          "invert: {} ({}x{}) is not on the grid of {} ({}x{}); all pair results must "
          "share one grid",
          info.path, info.width, info.height, first_info->path, first_info->width, first_info->height));
    }
    if (!first_info) first_info = info;
    if (options.east_band.empty() && options.north_band.empty()) {
      // The default bands: checked against the correlation product's schema, every missing band named.
      try {
        io::product::check_bands(info, {comp.first_band, comp.second_band});
      } catch (const FormatError& e) {
        throw FormatError(fmt::format("{}; choose --units, or --east-band and --north-band", e.what()));
      }
    }
    stack.band_first.push_back(component_band(info, comp.first_band, "east-band"));
    stack.band_second.push_back(component_band(info, comp.second_band, "north-band"));
    stack.band_weight.push_back(
        options.weight_band.empty() ? 0 : component_band(info, options.weight_band, "weight-band"));
    if (stack.keep_open) stack.rasters[k].emplace(std::move(raster));
  }
  stack.grid = *first_info;
  stack.dates = network_epochs(pairs, &stack.indices);
  return stack;
}

std::vector<NetworkPair> network_of(const std::vector<Pair>& pairs, const PairStack& stack) {
  std::vector<NetworkPair> network;
  for (std::size_t k = 0; k < pairs.size(); ++k)
    network.push_back({stack.indices[k].first, stack.indices[k].second, pairs[k].weight});
  return network;
}

// Bytes of memory the streamed inversion of `rows` needs per row of nodes.
double bytes_per_row(const PairStack& stack, const InvertRastersOptions& options, std::size_t pairs) {
  const double m = static_cast<double>(pairs);
  const double date_count = static_cast<double>(stack.dates.size());
  // Observations (2-3 floats per pair and node, plus the read window), results (4 series per date and
  // node) and the writers' staging, per row of nodes.
  return static_cast<double>(stack.grid.width) * (m * (options.weight_band.empty() ? 2.0 : 3.0) * 4.0 * 2.0 +
                                                  date_count * 4.0 * 4.0 * 2.0 + 32.0 * 4.0);
}

double ram_budget_bytes(std::size_t ram_budget_mb) {
  return static_cast<double>(std::max<std::size_t>(ram_budget_mb, 16)) * 1024.0 * 1024.0 * 0.6;
}

int rows_per_block_for(const PairStack& stack, const InvertRastersOptions& options, std::size_t pairs,
                       std::size_t ram_budget_mb) {
  const double budget = ram_budget_bytes(ram_budget_mb);
  return std::clamp(options.block_rows > 0 ? options.block_rows
                                           : static_cast<int>(budget / bytes_per_row(stack, options, pairs)),
                    1, stack.grid.height);
}

std::vector<RowBlock> blocks_of(int height, int rows_per_block) {
  std::vector<RowBlock> blocks;
  for (int row0 = 0; row0 < height; row0 += rows_per_block)
    blocks.push_back({row0, std::min(rows_per_block, height - row0)});
  return blocks;
}

// The observations of one window of nodes, node-major (see PairObservations).
struct Observations {
  int nodes = 0;
  std::vector<float> east, north, weight;
};

// Reads the observations of `window` from every pair raster.
Observations read_observations(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                               const PairStack& stack, const io::Window& window) {
  const int m = static_cast<int>(pairs.size());
  Observations o;
  o.nodes = window.width * window.height;
  const int nodes = o.nodes;
  o.east.assign(static_cast<std::size_t>(nodes) * m, 0.0f);
  o.north.assign(o.east.size(), 0.0f);
  if (!options.weight_band.empty()) o.weight.assign(o.east.size(), 0.0f);
  // Each pair raster is its own GDAL dataset, so pairs can be read concurrently.
  tbb::parallel_for(0, m, [&](int p) {
    std::optional<io::Raster> reopened;
    const io::Raster& raster =
        stack.keep_open ? *stack.rasters[p] : reopened.emplace(io::Raster::open(pairs[p].result_path));
    // Both components (and the weight) in one read: each block of a pair's product decompressed once.
    std::vector<int> wanted = {stack.band_first[p], stack.band_second[p]};
    if (stack.band_weight[p] > 0) wanted.push_back(stack.band_weight[p]);
    auto read = raster.read(wanted, window);
    const io::BandWindow& a = read[0];
    const io::BandWindow& b = read[1];
    const io::BandWindow* q = read.size() > 2 ? &read[2] : nullptr;
    for (int i = 0; i < nodes; ++i) {
      const bool ok = a.valid.data()[i] != 0 && b.valid.data()[i] != 0 && (!q || q->valid.data()[i] != 0);
      const std::size_t at = static_cast<std::size_t>(i) * m + p;
      o.east[at] = ok ? a.values.data()[i] : std::nanf("");
      o.north[at] = ok ? b.values.data()[i] : std::nanf("");
      if (q) o.weight[at] = ok ? q->values.data()[i] : 0.0f;
    }
  });
  return o;
}

InversionResult invert_observations(const NetworkInverter& inverter, const Observations& o, Progress* progress) {
  const int m = static_cast<int>(inverter.pairs().size());
  PairObservations obs{o.nodes, m, o.east.data(), o.north.data(), o.weight.empty() ? nullptr : o.weight.data()};
  InversionResult result;
  inverter.invert(obs, result, progress);
  return result;
}

// Memory of one window in flight per node: its observations (2 or 3 floats per pair), the band windows
// being read (value and validity of 2 or 3 bands, for as many pairs as threads read at once), its results
// (4 series per date, 9 maps, the flags) and the plane the writer converts them through.
double bytes_per_node(const PairStack& stack, const InvertRastersOptions& options, std::size_t pairs,
                      int threads) {
  const double m = static_cast<double>(pairs);
  const double bands = options.weight_band.empty() ? 2.0 : 3.0;
  const double date_count = static_cast<double>(stack.dates.size());
  const double reading = bands * 5.0 * std::min(m, static_cast<double>(std::max(1, threads)));
  return m * bands * 4.0 + reading + date_count * 4.0 * 4.0 + 9.0 * 4.0 + 1.0 + 4.0;
}

// The factorizations the inverter caches take this share of the windows' part of --ram.
constexpr std::size_t kPatternCacheShare = 8;

// The inversion options of a run under `ram_budget_mb`: the cache of factorizations within its share.
InversionOptions inversion_within(const InvertRastersOptions& options, std::size_t ram_budget_mb) {
  InversionOptions inversion = options.inversion;
  inversion.pattern_cache_bytes =
      std::min(inversion.pattern_cache_bytes, io::window_budget_bytes(ram_budget_mb) / kPatternCacheShare);
  return inversion;
}

// Reads the observations of `block` and inverts them into `result`.
void invert_block(const std::vector<Pair>& pairs, const InvertRastersOptions& options, const PairStack& stack,
                  const NetworkInverter& inverter, const RowBlock& block, InversionResult& result,
                  Progress* progress) {
  const io::Window window{0, block.row0, stack.grid.width, block.rows};
  result = invert_observations(inverter, read_observations(pairs, options, stack, window), progress);
}

// Receives the results of one window of nodes; windows come in order and partition the grid.
using WindowSink = std::function<void(const io::Window&, const InversionResult&)>;

// The inversion as a kernel of the streaming executor (io::for_each_window): windows of nodes without halo,
// read from every pair raster in order, inverted in parallel (each node on its own: results do not depend
// on the windows), handed to the product writers in order.
class InversionKernel {
 public:
  using Input = Observations;
  using Output = InversionResult;
  // Empty: compute() hands the window to NetworkInverter::invert, whose chunks of nodes run on the worker
  // threads in parallel, each thread with the solver's work space it made on its first chunk.
  struct Scratch {};

  InversionKernel(const std::vector<Pair>& pairs, const InvertRastersOptions& options, const PairStack& stack,
                  const NetworkInverter& inverter, Progress& progress, const WindowSink& sink,
                  double bytes_per_node)
      : pairs_(pairs),
        options_(options),
        stack_(stack),
        inverter_(inverter),
        progress_(progress),
        sink_(sink),
        bytes_per_node_(bytes_per_node) {}

  int halo_px() const { return 0; }
  double bytes_per_pixel() const { return bytes_per_node_; }
  Input read(const io::Tile& tile) {
    if (progress_.cancelled()) throw Cancelled("invert cancelled");
    return read_observations(pairs_, options_, stack_, tile.core);
  }
  Output compute(const io::Tile&, Input& input, Scratch&) {
    return invert_observations(inverter_, input, &progress_);
  }
  void write(const io::Tile& tile, Output& output) { sink_(tile.core, output); }

 private:
  const std::vector<Pair>& pairs_;
  const InvertRastersOptions& options_;
  const PairStack& stack_;
  const NetworkInverter& inverter_;
  Progress& progress_;
  const WindowSink& sink_;
  double bytes_per_node_;
};

// Writes the products from the results that `drive` hands to its sink, window by window in order (covering
// every node), then finishes them one at a time.
Summary write_products(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                       RunContext& context, const PairStack& stack,
                       const std::function<int(const WindowSink&)>& drive,
                       const std::function<InversionStats()>& stats_of_run,
                       std::chrono::steady_clock::time_point start_time) {
  const Components comp = components_for(options);
  const io::RasterInfo& grid = stack.grid;
  const int width = grid.width;
  const int height = grid.height;
  const auto& dates = stack.dates;
  const int date_count = static_cast<int>(dates.size());
  const int m = static_cast<int>(pairs.size());
  const int components = count_components(date_count, stack.indices);
  io::Provenance provenance;
  provenance.command_line = context.command_line;
  provenance.parameters = options.parameters;
  for (const auto& p : pairs) provenance.inputs.push_back(p.result_path);

  const std::string velocity_unit = comp.unit + "/yr";
  const std::string unit_suffix = comp.unit == "m" ? "_m_per_yr" : "_px_per_yr";
  std::vector<io::OutputBand> date_bands;
  for (const auto& d : dates) date_bands.push_back({d.iso(), comp.unit, kNodata});
  const std::vector<std::string> cube_names = {
      "timeseries_" + comp.first + ".tif", "timeseries_" + comp.second + ".tif",
      "timeseries_" + comp.first + "_sigma.tif", "timeseries_" + comp.second + "_sigma.tif"};
  std::vector<std::unique_ptr<io::CogWriter>> cubes;
  for (const auto& name : cube_names) {
    cubes.push_back(std::make_unique<io::CogWriter>(product_path(options, name), width, height, date_bands,
                                                    grid.geotransform, grid.crs_wkt, provenance));
  }
  const std::vector<io::OutputBand> velocity_bands = {
      {"velocity_" + comp.first + unit_suffix, velocity_unit, kNodata},
      {"velocity_" + comp.second + unit_suffix, velocity_unit, kNodata},
      {"velocity_magnitude" + unit_suffix, velocity_unit, kNodata},
      {"velocity_" + comp.first + "_std" + unit_suffix, velocity_unit, kNodata},
      {"velocity_" + comp.second + "_std" + unit_suffix, velocity_unit, kNodata},
      {"velocity_magnitude_std" + unit_suffix, velocity_unit, kNodata},
      {"rmse_" + comp.unit, comp.unit, kNodata},
      {"valid_pairs", "count", kNodata},
      {"consistency", "1", kNodata},
      {"flags", "bits", kNodata},  // GeoTIFF has one nodata value for all bands
  };
  io::CogWriter velocity_writer(product_path(options, "velocity.tif"), width, height, velocity_bands,
                                grid.geotransform, grid.crs_wkt, provenance);

  Sampled sampled;
  sampled.factor = std::max(1, (std::max(width, height) + 1199) / 1200);
  const int sw = (width + sampled.factor - 1) / sampled.factor;
  const int sh = (height + sampled.factor - 1) / sampled.factor;
  for (auto* g : {&sampled.magnitude, &sampled.first, &sampled.second, &sampled.rmse})
    *g = GridF(sw, sh, 0.0f);
  sampled.valid = GridU8(sw, sh, 0);

  Progress& progress = progress_or_null(context.progress);
  progress.start("inverting nodes", static_cast<std::uint64_t>(width) * height);
  GridF plane;
  const auto sink = [&](const io::Window& window, const InversionResult& result) {
    const int nodes = window.width * window.height;
    if (result.node_count != nodes || result.date_count != date_count) {
      throw Error(fmt::format("invert: the results of window col {} row {} size {}x{} hold {} nodes and {} "
                              "dates, expected {} and {}",
                              window.col, window.row, window.width, window.height, result.node_count,
                              result.date_count, nodes, date_count),
                  ExitCode::kInternal);
    }
    // Series cubes: band k of each cube is date k.
    if (plane.width() != window.width || plane.height() != window.height) plane = GridF(window.width, window.height);
    auto put = [&](float v) { return std::isfinite(v) ? v : kNodata; };
    const std::vector<const std::vector<float>*> series = {&result.east, &result.north, &result.east_sigma,
                                                           &result.north_sigma};
    for (std::size_t c = 0; c < series.size(); ++c) {
      for (int k = 0; k < date_count; ++k) {
        for (int i = 0; i < nodes; ++i)
          plane.data()[i] = put((*series[c])[static_cast<std::size_t>(i) * date_count + k]);
        cubes[c]->write(k + 1, window, plane);
      }
    }
    const std::vector<const std::vector<float>*> maps = {&result.velocity_east,
                                                         &result.velocity_north,
                                                         &result.velocity_magnitude,
                                                         &result.velocity_east_std,
                                                         &result.velocity_north_std,
                                                         &result.velocity_magnitude_std,
                                                         &result.rmse,
                                                         &result.valid_pairs,
                                                         &result.consistency};
    for (std::size_t b = 0; b < maps.size(); ++b) {
      for (int i = 0; i < nodes; ++i) plane.data()[i] = put((*maps[b])[i]);
      velocity_writer.write(static_cast<int>(b) + 1, window, plane);
    }
    for (int i = 0; i < nodes; ++i) plane.data()[i] = result.flags[i];
    velocity_writer.write(10, window, plane);

    for (int r = 0; r < window.height; ++r) {
      const int row = window.row + r;
      if (row % sampled.factor != 0) continue;
      const int first_col = (window.col + sampled.factor - 1) / sampled.factor * sampled.factor;
      for (int col = first_col; col < window.col + window.width; col += sampled.factor) {
        const int i = r * window.width + (col - window.col);
        const int sc = col / sampled.factor;
        const int sr = row / sampled.factor;
        const bool ok = std::isfinite(result.velocity_magnitude[i]);
        sampled.valid(sc, sr) = ok ? 1 : 0;
        sampled.magnitude(sc, sr) = ok ? result.velocity_magnitude[i] : 0.0f;
        sampled.first(sc, sr) = ok ? result.velocity_east[i] : 0.0f;
        sampled.second(sc, sr) = ok ? result.velocity_north[i] : 0.0f;
        sampled.rmse(sc, sr) = ok ? result.rmse[i] : 0.0f;
      }
    }
  };
  const int rows_per_block = drive(sink);
  progress.finish();

  Summary summary;
  summary.operation = "invert";
  for (auto& writer : cubes) {
    writer->finish();
    summary.outputs.push_back(writer->path());
  }
  velocity_writer.finish();
  summary.outputs.push_back(velocity_writer.path());

  if (options.netcdf) {
    std::vector<detail::CubeVariable> vars = {
        {comp.first, cubes[0]->path(), 0, comp.unit, comp.first + " displacement since the first date"},
        {comp.second, cubes[1]->path(), 0, comp.unit, comp.second + " displacement since the first date"},
        {comp.first + "_sigma", cubes[2]->path(), 0, comp.unit, "1-sigma uncertainty of " + comp.first},
        {comp.second + "_sigma", cubes[3]->path(), 0, comp.unit, "1-sigma uncertainty of " + comp.second},
        {"velocity_" + comp.first, velocity_writer.path(), 1, velocity_unit, "mean velocity " + comp.first},
        {"velocity_" + comp.second, velocity_writer.path(), 2, velocity_unit, "mean velocity " + comp.second},
        {"velocity_magnitude", velocity_writer.path(), 3, velocity_unit, "mean velocity magnitude"},
        {"velocity_" + comp.first + "_std", velocity_writer.path(), 4, velocity_unit,
         "1-sigma of the mean velocity " + comp.first},
        {"velocity_" + comp.second + "_std", velocity_writer.path(), 5, velocity_unit,
         "1-sigma of the mean velocity " + comp.second},
        {"velocity_magnitude_std", velocity_writer.path(), 6, velocity_unit,
         "1-sigma of the mean velocity magnitude"},
        {"rmse", velocity_writer.path(), 7, comp.unit, "residual RMS of the pair network"},
        {"valid_pairs", velocity_writer.path(), 8, "1", "number of valid pairs", true},
        {"consistency", velocity_writer.path(), 9, "1", "temporal consistency index"},
        {"flags",
         velocity_writer.path(),
         10,
         "1",
         "node status bits (docs/timeseries.md)",
         true,
         {1, 2, 4, 8},
         "too_few_pairs outlier_pairs_downweighted no_redundancy dates_bridged"},
    };
    const std::string nc_path = product_path(options, "timeseries.nc");
    // The copy into NetCDF holds one block of rows of one band at a time. Larger blocks do not make it
    // faster (HDF5 compresses chunk by chunk), so they take an eighth of the windows' share of --ram: one
    // row of chunks on most grids. GDAL's block cache, which the copy reads through, has its own quarter.
    const int nc_rows =
        detail::netcdf_rows_per_block(width, height, io::window_budget_bytes(context.ram_budget_mb) / 8);
    detail::write_netcdf_cube(nc_path, dates, grid, vars, provenance, nc_rows);
    summary.outputs.push_back(nc_path);
  }

  const auto stats = stats_of_run();
  std::vector<float> mags;
  std::vector<float> rmses;
  for (std::size_t i = 0; i < sampled.valid.size(); ++i) {
    if (sampled.valid.data()[i] != 0) {
      mags.push_back(sampled.magnitude.data()[i]);
      rmses.push_back(sampled.rmse.data()[i]);
    }
  }
  const double median_velocity = upper_median_of(mags);
  const double median_rmse = upper_median_of(rmses);

  if (options.quicklooks && !mags.empty()) {
    // Titles name the place (the run's folder; not "products" itself) and the span of the series.
    fs::path place = fs::path(options.output_dir).lexically_normal();
    if (place.filename().empty()) place = place.parent_path();
    if (place.filename() == "products" && place.has_parent_path()) place = place.parent_path();
    const std::string product = place.filename().string() + options.prefix;
    const std::string first_date = dates.front().iso(), last_date = dates.back().iso();
    const double cell_size_m = grid.pixel_size_x_m * sampled.factor;  // 0 (no scale bar) when unknown
    render::QuicklookOptions q;
    q.title = render::figure_title(product, "mean velocity magnitude", velocity_unit, first_date, last_date);
    q.cell_size_m = cell_size_m;
    q.arrows = true;
    const auto mag_scale =
        render::ColorScale::robust_sequential(sampled.magnitude, sampled.valid, "velocity", velocity_unit);
    const std::string png_mag = product_path(options, "velocity_magnitude.png");
    // Arrows take a northward component; in pixel units the second component (dy) grows downwards.
    GridF arrow_north = sampled.second;
    if (comp.unit == "px") {
      for (auto& v : arrow_north.values()) v = -v;
    }
    render::write_png(png_mag, render::render_quicklook(sampled.magnitude, sampled.valid, mag_scale, q,
                                                        &sampled.first, &arrow_north));
    summary.outputs.push_back(png_mag);
    for (const auto& [name, g] : {std::pair<std::string, const GridF*>{comp.first, &sampled.first},
                                  std::pair<std::string, const GridF*>{comp.second, &sampled.second}}) {
      render::QuicklookOptions qc;
      qc.title = render::figure_title(product, "mean velocity " + name, velocity_unit, first_date, last_date);
      qc.cell_size_m = cell_size_m;
      const auto scale =
          render::ColorScale::robust_diverging(*g, sampled.valid, "velocity " + name, velocity_unit);
      const std::string png = product_path(options, "velocity_" + name + ".png");
      render::write_png(png, render::render_quicklook(*g, sampled.valid, scale, qc));
      summary.outputs.push_back(png);
    }
    render::QuicklookOptions qr;
    qr.title = render::figure_title(product, "residual RMS of the pair network", comp.unit, first_date, last_date);
    qr.cell_size_m = cell_size_m;
    const auto rmse_scale =
        render::ColorScale::robust_sequential(sampled.rmse, sampled.valid, "rmse", comp.unit);
    const std::string png_rmse = product_path(options, "rmse.png");
    render::write_png(png_rmse, render::render_quicklook(sampled.rmse, sampled.valid, rmse_scale, qr));
    summary.outputs.push_back(png_rmse);
  }

  summary.counts["dates"] = date_count;
  summary.counts["pairs"] = m;
  summary.counts["nodes"] = static_cast<std::int64_t>(width) * height;
  summary.counts["nodata"] = stats.nodes_nodata;
  summary.counts["valid"] = stats.nodes - stats.nodes_nodata;
  summary.counts["reweighted"] = stats.nodes_reweighted;
  summary.counts["bridged"] = stats.nodes_bridged;
  summary.counts["patterns"] = stats.patterns;
  nlohmann::json date_list = nlohmann::json::array();
  for (const auto& d : dates) date_list.push_back(d.iso());
  summary.details = {{"dates", date_list},
                     {"components", {comp.first, comp.second}},
                     {"unit", comp.unit},
                     {"network_components", components},
                     {"rows_per_block", rows_per_block},
                     {"median_velocity_magnitude", median_velocity},
                     {"median_rmse", median_rmse},
                     {"velocity_unit", velocity_unit}};
  if (components > 1) {
    summary.warnings.push_back(
        fmt::format("the pair network has {} disconnected parts: dates between them are bridged by the "
                    "temporal regularization "
                    "(flag 8), with larger uncertainties",
                    components));
  }
  if (stats.nodes_nodata == stats.nodes)
    summary.warnings.push_back("no node had a valid pair: every output is nodata");
  summary.seconds = seconds_since(start_time);
  summary.report = fmt::format(
      "time-series inversion: {} dates, {} pairs ({} network part{}), {} x {} nodes\n"
      "  valid nodes {} ({} nodata), robustly reweighted {}, bridged by regularization {}, factorizations "
      "{}\n"
      "  median velocity magnitude {:.4g} {}, median residual RMSE {:.4g} {} (quicklook sample)\n"
      "  {:.1f} s",
      date_count, m, components, components == 1 ? "" : "s", width, height, stats.nodes - stats.nodes_nodata,
      stats.nodes_nodata, stats.nodes_reweighted, stats.nodes_bridged, stats.patterns, median_velocity,
      velocity_unit, median_rmse, comp.unit, summary.seconds);
  return summary;
}

void prepare_output_dir(const InvertRastersOptions& options) {
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (!fs::is_directory(options.output_dir)) {
    throw IoError(fmt::format("--output {}: cannot create the folder{}", options.output_dir,
                              ec ? ": " + ec.message() : ""));
  }
}

}  // namespace

Summary invert_pair_rasters(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                            RunContext& context) {
  const auto start_time = std::chrono::steady_clock::now();
  options.validate();
  check_pair_table(pairs);
  prepare_output_dir(options);
  const PairStack stack = open_pair_stack(pairs, options, components_for(options));
  const NetworkInverter inverter(stack.dates, network_of(pairs, stack),
                                 inversion_within(options, context.ram_budget_mb));
  Progress& progress = progress_or_null(context.progress);
  return write_products(
      pairs, options, context, stack,
      [&](const WindowSink& sink) {
        const int threads = context.threads > 0 ? context.threads : tbb::this_task_arena::max_concurrency();
        // The windows share what the cache of factorizations leaves.
        const double cache_scale = static_cast<double>(kPatternCacheShare) / (kPatternCacheShare - 1);
        InversionKernel kernel(pairs, options, stack, inverter, progress, sink,
                               bytes_per_node(stack, options, pairs.size(), threads) * cache_scale);
        io::StreamPlan plan;
        if (options.block_rows > 0) {
          // Blocks of rows asked for explicitly: full-width strips of that many rows.
          for (const auto& block : blocks_of(stack.grid.height, std::min(options.block_rows, stack.grid.height))) {
            io::Tile tile;
            tile.index = static_cast<int>(plan.windows.size());
            tile.core = tile.with_halo = io::Window{0, block.row0, stack.grid.width, block.rows};
            plan.windows.push_back(tile);
          }
          plan.in_flight = std::max(1, threads);
        } else {
          io::StreamOptions stream;
          stream.width = stack.grid.width;
          stream.height = stack.grid.height;
          // Windows follow the pair rasters' blocks: each is read once (GDAL's cache holds a block row).
          const auto& band = stack.grid.bands.at(static_cast<std::size_t>(stack.band_first.front()) - 1);
          stream.block_width = std::clamp(band.block_width, 1, stack.grid.width);
          stream.block_height = std::clamp(band.block_height, 1, stack.grid.height);
          // Many pairs and dates under a small --ram: windows of whole rows rather than whole blocks.
          const double window_share =
              static_cast<double>(io::window_budget_bytes(context.ram_budget_mb)) / std::max(1, threads);
          if (static_cast<double>(stream.block_width) * stream.block_height * kernel.bytes_per_pixel() >
              window_share)
            stream.block_height = 1;
          stream.ram_budget_mb = context.ram_budget_mb;
          stream.threads = threads;
          plan = io::plan_stream(stream, kernel.halo_px(), kernel.bytes_per_pixel());
        }
        // Cancellation: the inverter checks the progress between chunks of nodes and throws Cancelled.
        io::for_each_window(plan, kernel);
        return plan.windows.empty() ? 0 : plan.windows.front().core.height;
      },
      [&] { return inverter.stats(); }, start_time);
}

std::vector<RowBlock> inversion_row_blocks(const std::vector<Pair>& pairs,
                                           const InvertRastersOptions& options, std::size_t ram_budget_mb) {
  options.validate();
  const PairStack stack = open_pair_stack(pairs, options, components_for(options));
  return blocks_of(stack.grid.height, rows_per_block_for(stack, options, pairs.size(), ram_budget_mb));
}

InversionResult invert_pair_block(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                                  const RowBlock& block, RunContext& context, InversionStats* stats) {
  options.validate();
  const PairStack stack = open_pair_stack(pairs, options, components_for(options));
  if (block.row0 < 0 || block.rows < 1 || block.row0 + block.rows > stack.grid.height) {
    throw InvalidArgument(fmt::format("invert: rows {}+{} are outside the grid's {} rows", block.row0,
                                      block.rows, stack.grid.height));
  }
  const NetworkInverter inverter(stack.dates, network_of(pairs, stack),
                                 inversion_within(options, context.ram_budget_mb));
  InversionResult result;
  invert_block(pairs, options, stack, inverter, block, result, context.progress);
  if (stats) *stats = inverter.stats();
  return result;
}

Summary assemble_inversion_products(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                                    const std::vector<RowBlock>& blocks, const InversionBlockSource& source,
                                    RunContext& context) {
  const auto start_time = std::chrono::steady_clock::now();
  options.validate();
  check_pair_table(pairs);
  prepare_output_dir(options);
  const PairStack stack = open_pair_stack(pairs, options, components_for(options));
  {
    int next_row = 0;
    for (const auto& block : blocks) {
      if (block.row0 != next_row || block.rows < 1) {
        throw InvalidArgument(
            fmt::format("invert: row block {}+{} does not follow row {}", block.row0, block.rows, next_row));
      }
      next_row += block.rows;
    }
    if (next_row != stack.grid.height) {
      throw InvalidArgument(
          fmt::format("invert: the row blocks cover {} of the grid's {} rows", next_row, stack.grid.height));
    }
  }
  InversionStats stats;
  return write_products(
      pairs, options, context, stack,
      [&](const WindowSink& sink) {
        Progress& progress = progress_or_null(context.progress);
        for (const auto& block : blocks) {
          if (progress.cancelled()) throw Cancelled("invert cancelled");
          InversionStats block_stats;
          const InversionResult result = source(block, block_stats);
          stats.nodes += block_stats.nodes;
          stats.nodes_nodata += block_stats.nodes_nodata;
          stats.nodes_reweighted += block_stats.nodes_reweighted;
          stats.nodes_bridged += block_stats.nodes_bridged;
          stats.patterns += block_stats.patterns;
          sink(io::Window{0, block.row0, stack.grid.width, block.rows}, result);
          progress.advance(static_cast<std::uint64_t>(block.rows) * stack.grid.width);
        }
        return blocks.empty() ? 0 : blocks.front().rows;
      },
      [&] { return stats; }, start_time);
}

NodeSeries read_series_at(const std::string& folder, const std::string& prefix, double x, double y,
                          PointKind kind) {
  NodeSeries s;
  std::string first;
  std::string second;
  std::string products_dir;
  // The products folder itself, or a pipeline's output folder (its products/ subfolder).
  for (const auto& dir : {fs::path(folder), fs::path(folder) / "products"}) {
    for (const auto& [a, b, unit] : {std::tuple<std::string, std::string, std::string>{"east", "north", "m"},
                                     std::tuple<std::string, std::string, std::string>{"dx", "dy", "px"}}) {
      if (first.empty() && fs::exists(dir / (prefix + "timeseries_" + a + ".tif"))) {
        first = a;
        second = b;
        s.unit = unit;
        products_dir = dir.string();
      }
    }
  }
  if (first.empty()) {
    throw IoError(fmt::format(
        "{}: no time-series products (timeseries_east.tif or timeseries_dx.tif{}) found there or in its "
        "products/ folder",
        folder, prefix.empty() ? "" : " with prefix " + prefix));
  }
  s.products_dir = products_dir;
  const bool pixel = kind == PointKind::kNode;
  s.components = {first, second};
  auto path_of = [&](const std::string& name) { return (fs::path(products_dir) / (prefix + name)).string(); };
  const auto cube = io::Raster::open(path_of("timeseries_" + first + ".tif"));
  const auto& info = cube.info();
  s.georeferenced = info.georeferenced;
  if (kind == PointKind::kImagePixel && s.georeferenced) {
    throw InvalidArgument(fmt::format(
        "parameter --pixel: the products in {} are georeferenced; give map coordinates in their CRS (the "
        "NetCDF's x/y) or node column and row with --node",
        products_dir));
  }
  double col = x;
  double row = y;
  if (!pixel) {
    info.geotransform.map_to_pixel(x, y, col, row);
  }
  s.col = static_cast<int>(std::floor(col));
  s.row = static_cast<int>(std::floor(row));
  if (s.col < 0 || s.row < 0 || s.col >= info.width || s.row >= info.height) {
    throw InvalidArgument(
        fmt::format("point ({}, {}) is {} ({}, {}) of the product grid, outside its {} x {} nodes", x, y,
                    pixel ? "node" : "at node", s.col, s.row, info.width, info.height));
  }
  for (const auto& b : info.bands) {
    try {
      s.dates.push_back(Epoch::parse(b.description));
    } catch (const InvalidArgument&) {
      throw FormatError(
          fmt::format("{}: band {} is named '{}', not an ISO date", info.path, b.index, b.description));
    }
  }
  const io::Window one{s.col, s.row, 1, 1};
  auto read_cube = [&](const std::string& path) {
    std::vector<double> v;
    if (!fs::exists(path)) return std::vector<double>(s.dates.size(), std::nan(""));
    const auto r = io::Raster::open(path);
    for (int band = 1; band <= r.info().band_count(); ++band) {
      const auto w = r.read(band, one);
      v.push_back(w.valid.data()[0] != 0 ? w.values.data()[0] : std::nan(""));
    }
    return v;
  };
  for (const auto& c : s.components) {
    s.values.push_back(read_cube(path_of("timeseries_" + c + ".tif")));
    s.sigmas.push_back(read_cube(path_of("timeseries_" + c + "_sigma.tif")));
  }
  return s;
}

std::string series_to_csv(const NodeSeries& series) {
  std::ostringstream out;
  out << "date";
  for (const auto& c : series.components)
    out << ',' << c << '_' << series.unit << ',' << c << "_sigma_" << series.unit;
  out << '\n';
  auto cell = [](double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(); };
  for (std::size_t k = 0; k < series.dates.size(); ++k) {
    out << series.dates[k].iso();
    for (std::size_t c = 0; c < series.components.size(); ++c) {
      out << ',' << cell(series.values[c][k]) << ',' << cell(series.sigmas[c][k]);
    }
    out << '\n';
  }
  return out.str();
}

}  // namespace deforma::timeseries
