#include "deforma/io/copy_to_cog.hpp"

#include <vector>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/stream.hpp"

namespace deforma::io {
namespace {

// One band copied window by window, invalid pixels set to the output's nodata.
struct CopyBand {
  static constexpr int kHaloPx = 0;
  static constexpr double kBytesPerPixel = sizeof(float) + 1;  // values and validity, modified in place
  const Raster& raster;
  int band = 1;         // of the input
  int output_band = 1;  // of the COG
  CogWriter& writer;
  std::int64_t& valid;
  std::int64_t& invalid;

  using Input = BandWindow;
  struct Output {
    GridF values;
    std::int64_t valid = 0, invalid = 0;
  };
  struct Scratch {};

  Input read(const Tile& tile) const { return raster.read(band, tile.core); }
  Output compute(const Tile&, Input& window, Scratch&) const {
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
  void write(const Tile& tile, Output& out) const {
    writer.write(output_band, tile.core, out.values);
    valid += out.valid;
    invalid += out.invalid;
  }
};

}  // namespace

CopyToCogSummary copy_to_cog(const CopyToCogOptions& options) {
  const Raster raster = Raster::open(options.input);
  const auto& info = raster.info();
  std::vector<int> bands;
  if (options.band) {
    raster.check_band(*options.band);
    bands.push_back(*options.band);
  } else {
    for (int b = 1; b <= info.band_count(); ++b) bands.push_back(b);
  }
  std::vector<OutputBand> out_bands;
  for (int b : bands) {
    OutputBand ob;
    ob.description =
        info.bands[b - 1].description.empty() ? fmt::format("band_{}", b) : info.bands[b - 1].description;
    ob.unit = info.bands[b - 1].unit;
    ob.nodata = -9999.0;
    out_bands.push_back(ob);
  }
  options.cog.validate();
  CogWriter writer(options.output, info.width, info.height, out_bands, info.geotransform, info.crs_wkt,
                   options.provenance, options.cog);

  StreamOptions stream;
  stream.width = info.width;
  stream.height = info.height;
  stream.block_width = info.bands[bands.front() - 1].block_width;
  stream.block_height = info.bands[bands.front() - 1].block_height;
  stream.ram_budget_mb = options.ram_budget_mb;
  stream.threads = options.threads;
  const StreamPlan plan = plan_stream(stream, CopyBand::kHaloPx, CopyBand::kBytesPerPixel);

  auto& progress = progress_or_null(options.progress);
  progress.start("cog", plan.windows.size() * bands.size());
  CopyToCogSummary summary;
  for (std::size_t k = 0; k < bands.size(); ++k) {
    CopyBand copy{
        raster, bands[k], static_cast<int>(k) + 1, writer, summary.valid_pixels, summary.nodata_pixels};
    if (!for_each_window(plan, copy, &progress)) {
      throw Cancelled(fmt::format("{}: cancelled; no output written", options.output));
    }
  }
  progress.finish();
  writer.finish();
  summary.bands = static_cast<int>(bands.size());
  summary.windows = plan.windows.size();
  return summary;
}

}  // namespace deforma::io
