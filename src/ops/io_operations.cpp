#include <chrono>

#include "deforma/io/raster.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {

void register_io_operations(OperationRegistry& registry) {
  OperationDecl info;
  info.name = "info";
  info.summary = "Describe a raster: size, bands, data types, geotransform, CRS, nodata, blocks, pixel size";
  info.description =
      "Opens any raster GDAL reads (GeoTIFF, COG, Sentinel-2 JP2, VRT; JPEG/PNG in pixel units) and prints "
      "what deforma sees of it. With --json, the same as a JSON object.";
  info.params = {
      ParamDecl::argument("file", ParamType::kPath, "raster to describe"),
      ParamDecl::option("json", ParamType::kBool, "print JSON instead of text"),
  };
  info.examples = {"deforma info LC80630182016200LGN00_B8_yahtse.TIF",
                   "deforma info scene.tif --json"};
  info.run = [](const ParamValues& params, RunContext&) {
    const auto start = std::chrono::steady_clock::now();
    const auto raster_info = io::describe(params.get_string("file"));
    Summary summary;
    summary.operation = "info";
    summary.details = raster_info.to_json();
    summary.report = raster_info.to_text();
    summary.counts["bands"] = raster_info.band_count();
    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary;
  };
  registry.add(std::move(info));
}

}  // namespace deforma::ops
