#include "deforma/io/band_statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/stream.hpp"

namespace deforma::io {
namespace {

// The moments of a band, per window, merged in window order.
struct BandMoments {
  static constexpr double kBytesPerPixel = sizeof(float) + 1;
  struct Moments {
    std::int64_t n = 0, total = 0;
    double sum = 0, sum_sq = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
  };
  const Raster& raster;
  int band = 1;
  Moments total;

  using Input = BandWindow;
  using Output = Moments;
  struct Scratch {};

  Input read(const Tile& tile) const { return raster.read(band, tile.core); }
  Output compute(const Tile&, Input& window, Scratch&) const {
    Moments m;
    for (std::size_t i = 0; i < window.values.size(); ++i) {
      ++m.total;
      if (!window.valid.data()[i]) continue;
      const double v = window.values.data()[i];
      ++m.n, m.sum += v, m.sum_sq += v * v, m.lo = std::min(m.lo, v), m.hi = std::max(m.hi, v);
    }
    return m;
  }
  void write(const Tile&, Output& m) {
    total.n += m.n, total.total += m.total, total.sum += m.sum, total.sum_sq += m.sum_sq;
    total.lo = std::min(total.lo, m.lo), total.hi = std::max(total.hi, m.hi);
  }
};

}  // namespace

BandStatistics band_statistics(const BandStatisticsOptions& options) {
  const Raster raster = Raster::open(options.path);
  const int band = options.band;
  raster.check_band(band);
  const auto& info = raster.info();
  StreamOptions stream;
  stream.width = info.width;
  stream.height = info.height;
  stream.block_width = info.bands[band - 1].block_width;
  stream.block_height = info.bands[band - 1].block_height;
  stream.ram_budget_mb = options.ram_budget_mb;
  stream.threads = options.threads;
  const StreamPlan plan = plan_stream(stream, 0, BandMoments::kBytesPerPixel);
  auto& progress = progress_or_null(options.progress);
  progress.start("stats", plan.windows.size());
  BandMoments moments{raster, band, {}};
  if (!for_each_window(plan, moments, &progress)) {
    throw Cancelled(fmt::format("stats {}: cancelled", options.path));
  }
  progress.finish();
  const auto& m = moments.total;
  BandStatistics stats;
  stats.pixels = m.total;
  stats.valid = m.n;
  stats.min = m.lo;
  stats.max = m.hi;
  stats.mean = m.n ? m.sum / m.n : std::nan("");
  stats.stddev = m.n ? std::sqrt(std::max(0.0, m.sum_sq / m.n - stats.mean * stats.mean)) : std::nan("");
  return stats;
}

}  // namespace deforma::io
