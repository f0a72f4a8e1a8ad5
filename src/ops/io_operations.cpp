#include <chrono>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/band_statistics.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/copy_to_cog.hpp"
#include "deforma/io/raster.hpp"
#include "ops/io_parameters.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {

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
    io::CopyToCogOptions copy;
    copy.input = input;
    copy.output = output;
    if (params.has("band")) copy.band = static_cast<int>(params.get_int("band"));
    copy.provenance.command_line = context.command_line;
    copy.provenance.parameters = params.to_json();
    copy.provenance.inputs = {input};
    copy.cog = cog.defaults();
    cog.apply(params, copy.cog);
    copy.ram_budget_mb = context.ram_budget_mb;
    copy.threads = context.threads;
    copy.progress = context.progress;
    const io::CopyToCogSummary copied = io::copy_to_cog(copy);
    Summary summary;
    summary.operation = "cog";
    summary.counts["bands"] = copied.bands;
    summary.counts["tiles"] = static_cast<std::int64_t>(copied.windows);
    summary.counts["valid_pixels"] = copied.valid_pixels;
    summary.counts["nodata_pixels"] = copied.nodata_pixels;
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
    io::BandStatisticsOptions options;
    options.path = path;
    options.band = static_cast<int>(params.get_int("band"));
    options.ram_budget_mb = context.ram_budget_mb;
    options.threads = context.threads;
    options.progress = context.progress;
    const int band = options.band;
    const io::BandStatistics stats = io::band_statistics(options);
    const std::int64_t n = stats.valid, total = stats.pixels;
    const double lo = stats.min, hi = stats.max, mean = stats.mean, stddev = stats.stddev;
    Summary summary;
    summary.operation = "stats";
    summary.counts["pixels"] = total;
    summary.counts["valid_pixels"] = n;
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
