#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/stream.hpp"
#include "deforma/io/tiles.hpp"
#include "ops/io_parameters.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {

// `cog`'s kernel: one band copied window by window, invalid pixels set to the output's nodata.
struct CopyBand {
  static constexpr int kHaloPx = 0;
  static constexpr double kBytesPerPixel = sizeof(float) + 1;  // values and validity, modified in place
  const io::Raster& raster;
  int band = 1;         // of the input
  int output_band = 1;  // of the COG
  io::CogWriter& writer;
  std::int64_t& valid;
  std::int64_t& invalid;

  using Input = io::BandWindow;
  struct Output {
    GridF values;
    std::int64_t valid = 0, invalid = 0;
  };
  struct Scratch {};

  Input read(const io::Tile& tile) const { return raster.read(band, tile.core); }
  Output compute(const io::Tile&, Input& window, Scratch&) const {
    Output out;
    for (std::size_t i = 0; i < window.values.size(); ++i) {
      if (window.valid.data()[i]) {
        ++out.valid;
      } else {
        window.values.data()[i] = -9999.f;
        ++out.invalid;
      }
    }
    out.values = std::move(window.values);
    return out;
  }
  void write(const io::Tile& tile, Output& out) const {
    writer.write(output_band, tile.core, out.values);
    valid += out.valid;
    invalid += out.invalid;
  }
};

// `stats`' kernel: the moments of a band, per window, merged in window order.
struct BandMoments {
  static constexpr double kBytesPerPixel = sizeof(float) + 1;
  struct Moments {
    std::int64_t n = 0, total = 0;
    double sum = 0, sum_sq = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
  };
  const io::Raster& raster;
  int band = 1;
  Moments total;

  using Input = io::BandWindow;
  using Output = Moments;
  struct Scratch {};

  Input read(const io::Tile& tile) const { return raster.read(band, tile.core); }
  Output compute(const io::Tile&, Input& window, Scratch&) const {
    Moments m;
    for (std::size_t i = 0; i < window.values.size(); ++i) {
      ++m.total;
      if (!window.valid.data()[i]) continue;
      const double v = window.values.data()[i];
      ++m.n, m.sum += v, m.sum_sq += v * v, m.lo = std::min(m.lo, v), m.hi = std::max(m.hi, v);
    }
    return m;
  }
  void write(const io::Tile&, Output& m) {
    total.n += m.n, total.total += m.total, total.sum += m.sum, total.sum_sq += m.sum_sq;
    total.lo = std::min(total.lo, m.lo), total.hi = std::max(total.hi, m.hi);
  }
};


OperationDecl info_operation() {
  OperationDecl op;
  op.name = "info";
  op.quick = true;
  op.summary = "Describe a raster: size, bands, data types, geotransform, CRS, nodata, blocks, pixel size";
  op.description =
      "Opens any raster GDAL reads (GeoTIFF, COG, Sentinel-2 JP2, VRT; JPEG/PNG in pixel units) and prints "
      "what deforma sees of it. With --json, the same as a JSON object.";
  op.params = {
      ParamDecl::argument("file", ParamType::kPath, "raster to describe").as_input(),
      ParamDecl::option("json", ParamType::kBool, "print JSON instead of text"),
  };
  op.examples = {"deforma info LC80630182016200LGN00_B8_yahtse.TIF", "deforma info scene.tif --json"};
  op.run = [](const ParamValues& params, RunContext&) {
    const auto start = std::chrono::steady_clock::now();
    const auto raster_info = io::describe(params.get_string("file"));
    Summary summary;
    summary.operation = "info";
    summary.details = raster_info.to_json();
    summary.report = raster_info.to_text();
    summary.counts["bands"] = raster_info.band_count();
    summary.seconds = seconds_since(start);
    return summary;
  };
  return op;
}

}  // namespace

// The COG writer's options a user chooses, bound to io::CogOptions (the block size, data type and overview
// resampling follow from the product, not from the user).
ParamGroup<io::CogOptions> cog_parameters() {
  ParamGroup<io::CogOptions> g;
  g.bind_choice([](io::CogOptions& o) -> std::string& { return o.compression; }, "compression",
                "COG compression", {"DEFLATE", "ZSTD", "NONE"}, [](const std::string& v) { return v; },
                [](const std::string& v) { return v; });
  return g;
}

namespace {

// Streams the bands of a raster by tiles into a Cloud-Optimized GeoTIFF (float32, nodata -9999).
OperationDecl cog_operation() {
  OperationDecl op;
  op.name = "cog";
  op.summary = "Copy bands of a raster into a Cloud-Optimized GeoTIFF (float32), streamed by tiles";
  op.description =
      "Reads the raster tile by tile within the --ram budget and writes a COG with overviews, nodata -9999 "
      "where the input is invalid (nodata, NaN, masked), and provenance metadata.";
  op.params = {
      ParamDecl::argument("input", ParamType::kPath, "raster to convert").as_input(),
      ParamDecl::option("output", ParamType::kPath, "output COG file").alias("o").mandatory().as_output(kCogMediaType),
      ParamDecl::option("band", ParamType::kInt, "band to copy (default: all bands)").at_least(1),
  };
  const auto cog = cog_parameters();
  for (auto& p : cog.decls()) op.params.push_back(std::move(p));
  op.examples = {"deforma cog scene.jp2 -o scene.tif", "deforma cog stack.tif --band 2 -o band2.tif --ram 256"};
  op.run = [cog](const ParamValues& params, RunContext& context) {
    const auto start = std::chrono::steady_clock::now();
    const std::string input = params.get_string("input");
    const std::string output = params.get_string("output");
    const io::Raster raster = io::Raster::open(input);
    const auto& info = raster.info();
    std::vector<int> bands;
    if (params.has("band")) {
      const int band = static_cast<int>(params.get_int("band"));
      raster.check_band(band);
      bands.push_back(band);
    } else {
      for (int b = 1; b <= info.band_count(); ++b) bands.push_back(b);
    }
    std::vector<io::OutputBand> out_bands;
    for (int b : bands) {
      io::OutputBand ob;
      ob.description = info.bands[b - 1].description.empty() ? fmt::format("band_{}", b) : info.bands[b - 1].description;
      ob.unit = info.bands[b - 1].unit;
      ob.nodata = -9999.0;
      out_bands.push_back(ob);
    }
    io::Provenance provenance;
    provenance.command_line = context.command_line;
    provenance.parameters = params.to_json();
    provenance.inputs = {input};
    io::CogOptions cog_options = cog.defaults();
    cog.apply(params, cog_options);
    cog_options.validate();
    io::CogWriter writer(output, info.width, info.height, out_bands, info.geotransform, info.crs_wkt, provenance,
                         cog_options);

    io::StreamOptions stream;
    stream.width = info.width;
    stream.height = info.height;
    stream.block_width = info.bands[bands.front() - 1].block_width;
    stream.block_height = info.bands[bands.front() - 1].block_height;
    stream.ram_budget_mb = context.ram_budget_mb;
    stream.threads = context.threads;
    const io::StreamPlan plan = io::plan_stream(stream, CopyBand::kHaloPx, CopyBand::kBytesPerPixel);

    auto& progress = progress_or_null(context.progress);
    progress.start("cog", plan.windows.size() * bands.size());
    std::int64_t valid = 0, invalid = 0;
    for (std::size_t k = 0; k < bands.size(); ++k) {
      CopyBand copy{raster, bands[k], static_cast<int>(k) + 1, writer, valid, invalid};
      if (!io::for_each_window(plan, copy, &progress)) {
        throw Cancelled(fmt::format("{}: cancelled; no output written", output));
      }
    }
    progress.finish();
    writer.finish();
    const auto& tiles = plan.windows;
    Summary summary;
    summary.operation = "cog";
    summary.counts["bands"] = static_cast<std::int64_t>(bands.size());
    summary.counts["tiles"] = static_cast<std::int64_t>(tiles.size());
    summary.counts["valid_pixels"] = valid;
    summary.counts["nodata_pixels"] = invalid;
    summary.outputs = {output};
    summary.seconds = seconds_since(start);
    return summary;
  };
  return op;
}

// Per-band statistics streamed by tiles: a quick check of what a file holds and of the streaming path.
OperationDecl stats_operation() {
  OperationDecl op;
  op.name = "stats";
  op.quick = true;
  op.summary = "Statistics of a raster band (valid fraction, min, max, mean, std), streamed by tiles";
  op.params = {
      ParamDecl::argument("file", ParamType::kPath, "raster").as_input(),
      ParamDecl::option("band", ParamType::kInt, "band (1-based)").defaults_to("1").at_least(1),
      ParamDecl::option("json", ParamType::kBool, "print JSON instead of text"),
  };
  op.examples = {"deforma stats velocity.tif --band 3"};
  op.run = [](const ParamValues& params, RunContext& context) {
    const auto start = std::chrono::steady_clock::now();
    const std::string path = params.get_string("file");
    const io::Raster raster = io::Raster::open(path);
    const int band = static_cast<int>(params.get_int("band"));
    raster.check_band(band);
    const auto& info = raster.info();
    io::StreamOptions stream;
    stream.width = info.width;
    stream.height = info.height;
    stream.block_width = info.bands[band - 1].block_width;
    stream.block_height = info.bands[band - 1].block_height;
    stream.ram_budget_mb = context.ram_budget_mb;
    stream.threads = context.threads;
    const io::StreamPlan plan = io::plan_stream(stream, 0, BandMoments::kBytesPerPixel);
    auto& progress = progress_or_null(context.progress);
    progress.start("stats", plan.windows.size());
    BandMoments moments{raster, band, {}};
    if (!io::for_each_window(plan, moments, &progress)) {
      throw Cancelled(fmt::format("stats {}: cancelled", path));
    }
    progress.finish();
    const std::int64_t n = moments.total.n, total = moments.total.total;
    const double sum = moments.total.sum, sum_sq = moments.total.sum_sq, lo = moments.total.lo,
                 hi = moments.total.hi;
    Summary summary;
    summary.operation = "stats";
    summary.counts["pixels"] = total;
    summary.counts["valid_pixels"] = n;
    const double mean = n ? sum / n : std::nan("");
    const double stddev = n ? std::sqrt(std::max(0.0, sum_sq / n - mean * mean)) : std::nan("");
    // An empty band has no statistics: null, not a 0 that reads as a measurement.
    auto stat = [n](double v) { return n ? nlohmann::json(v) : nlohmann::json(nullptr); };
    summary.details = {{"file", path},    {"band", band},    {"valid_fraction", total ? double(n) / total : 0.0},
                       {"min", stat(lo)}, {"max", stat(hi)}, {"mean", stat(mean)},
                       {"std", stat(stddev)}};
    summary.report = n ? fmt::format("{} band {}: {} of {} pixels valid ({:.1f}%)\n  min {:.6g}  max {:.6g}  mean {:.6g}  std {:.6g}\n",
                                     path, band, n, total, 100.0 * n / total, lo, hi, mean, stddev)
                       : fmt::format("{} band {}: no valid pixel among {}\n", path, band, total);
    summary.seconds = seconds_since(start);
    return summary;
  };
  return op;
}

}  // namespace

void register_io_operations(OperationRegistry& registry) {
  registry.add(info_operation());
  registry.add(cog_operation());
  registry.add(stats_operation());
}

}  // namespace deforma::ops
