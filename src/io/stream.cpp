#include "deforma/io/stream.hpp"

#include <algorithm>

#include <tbb/task_arena.h>

namespace deforma::io {

std::size_t window_budget_bytes(std::size_t ram_budget_mb) {
  const std::size_t budget = std::max<std::size_t>(ram_budget_mb, 1) << 20;
  return budget - budget / 4;
}

StreamPlan plan_stream(const StreamOptions& options, int halo_px, double bytes_per_pixel) {
  StreamPlan plan;
  // As many windows in flight as workers computing: the reader and the writer stages hold one each only
  // while a worker waits, and a token is what bounds them all.
  const int threads = options.threads > 0 ? options.threads : tbb::this_task_arena::max_concurrency();
  plan.in_flight = std::max(1, threads);
  TilePlanOptions tiles;
  tiles.raster_width = options.width;
  tiles.raster_height = options.height;
  tiles.block_width = std::max(1, options.block_width);
  tiles.block_height = std::max(1, options.block_height);
  tiles.halo_px = halo_px;
  tiles.bytes_per_pixel = bytes_per_pixel;
  tiles.ram_budget_bytes = window_budget_bytes(options.ram_budget_mb);
  tiles.tiles_in_flight = plan.in_flight;
  plan.windows = plan_tiles(tiles);
  return plan;
}

}  // namespace deforma::io
