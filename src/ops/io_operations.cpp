#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/tiles.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {


OperationDecl info_operation() {
  OperationDecl op;
  op.name = "info";
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
      ParamDecl::option("compression", ParamType::kChoice, "COG compression").defaults_to("DEFLATE")
          .one_of({"DEFLATE", "ZSTD", "NONE"}),
  };
  op.examples = {"deforma cog scene.jp2 -o scene.tif", "deforma cog stack.tif --band 2 -o band2.tif --ram 256"};
  op.run = [](const ParamValues& params, RunContext& context) {
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
    io::CogOptions cog_options;
    cog_options.compression = params.get_string("compression");
    io::CogWriter writer(output, info.width, info.height, out_bands, info.geotransform, info.crs_wkt, provenance,
                         cog_options);

    // Working memory per pixel: values, output copy, validity.
    const auto tiles = io::plan_tiles(
        io::TilePlanOptions::for_band(info, bands.front(), 2 * sizeof(float) + 1, context.ram_budget_mb));

    auto& progress = progress_or_null(context.progress);
    progress.start("cog", tiles.size() * bands.size());
    std::int64_t valid = 0, invalid = 0;
    for (std::size_t k = 0; k < bands.size(); ++k) {
      for (const auto& tile : tiles) {
        if (progress.cancelled()) throw Cancelled(fmt::format("{}: cancelled; no output written", output));
        auto window = raster.read(bands[k], tile.core);
        for (std::size_t i = 0; i < window.values.size(); ++i) {
          if (window.valid.data()[i]) {
            ++valid;
          } else {
            window.values.data()[i] = -9999.f;
            ++invalid;
          }
        }
        writer.write(static_cast<int>(k) + 1, tile.core, window.values);
        progress.advance();
      }
    }
    progress.finish();
    writer.finish();
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
    const auto tiles =
        io::plan_tiles(io::TilePlanOptions::for_band(info, band, sizeof(float) + 1, context.ram_budget_mb));
    auto& progress = progress_or_null(context.progress);
    progress.start("stats", tiles.size());
    std::int64_t n = 0, total = 0;
    double sum = 0, sum_sq = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& tile : tiles) {
      const auto window = raster.read(band, tile.core);
      for (std::size_t i = 0; i < window.values.size(); ++i) {
        ++total;
        if (!window.valid.data()[i]) continue;
        const double v = window.values.data()[i];
        ++n, sum += v, sum_sq += v * v, lo = std::min(lo, v), hi = std::max(hi, v);
      }
      progress.advance();
    }
    progress.finish();
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
