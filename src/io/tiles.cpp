#include "deforma/io/tiles.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::io {

void TilePlanOptions::validate() const {
  if (raster_width <= 0 || raster_height <= 0) {
    throw InvalidArgument(fmt::format("tile plan: raster size {}x{} must be positive", raster_width, raster_height));
  }
  if (block_width <= 0 || block_height <= 0) {
    throw InvalidArgument(fmt::format("tile plan: block size {}x{} must be positive", block_width, block_height));
  }
  if (halo_px < 0) throw InvalidArgument(fmt::format("tile plan: halo {} px must be >= 0", halo_px));
  if (!(bytes_per_pixel > 0)) throw InvalidArgument("tile plan: bytes per pixel must be > 0");
  if (tiles_in_flight < 1) throw InvalidArgument("tile plan: tiles in flight must be >= 1");
  if (ram_budget_bytes == 0) throw InvalidArgument("--ram: the memory budget must be > 0 MB");
}

TilePlanOptions TilePlanOptions::for_band(const RasterInfo& raster, int band, double bytes_per_pixel,
                                          std::size_t ram_budget_mb) {
  if (band < 1 || band > raster.band_count()) {
    throw InvalidArgument(fmt::format("{}: band {} out of range 1..{}", raster.path, band, raster.band_count()));
  }
  TilePlanOptions plan;
  plan.raster_width = raster.width;
  plan.raster_height = raster.height;
  plan.block_width = std::max(1, raster.bands[band - 1].block_width);
  plan.block_height = std::max(1, raster.bands[band - 1].block_height);
  plan.bytes_per_pixel = bytes_per_pixel;
  plan.ram_budget_bytes = ram_budget_mb << 20;
  return plan;
}

std::vector<Tile> plan_tiles(const TilePlanOptions& o) {
  o.validate();
  const double budget_per_tile = static_cast<double>(o.ram_budget_bytes) / o.tiles_in_flight;
  auto cost = [&](int w, int h) {
    return (static_cast<double>(w) + 2.0 * o.halo_px) * (static_cast<double>(h) + 2.0 * o.halo_px) * o.bytes_per_pixel;
  };
  const int block_w = std::min(o.block_width, o.raster_width);
  const int block_h = std::min(o.block_height, o.raster_height);
  if (cost(block_w, block_h) > budget_per_tile) {
    throw InvalidArgument(fmt::format(
        "--ram: {:.0f} MB is too small: one {}x{} block with a {} px halo needs {:.1f} MB per tile ({} in flight)",
        static_cast<double>(o.ram_budget_bytes) / (1 << 20), block_w, block_h, o.halo_px,
        cost(block_w, block_h) / (1 << 20), o.tiles_in_flight));
  }
  // Prefer full-width strips (sequential reads on striped and tiled files alike); fall back to
  // rectangles of whole blocks when a full-width strip of one block row is over budget.
  int tile_w = o.raster_width;
  if (cost(tile_w, block_h) > budget_per_tile) {
    const int blocks_across = std::max(1, static_cast<int>(std::floor(
        (budget_per_tile / (o.bytes_per_pixel * (block_h + 2.0 * o.halo_px)) - 2.0 * o.halo_px) / block_w)));
    tile_w = std::min(o.raster_width, blocks_across * block_w);
    while (tile_w > block_w && cost(tile_w, block_h) > budget_per_tile) tile_w -= block_w;
  }
  int rows_of_blocks = 1;
  while (rows_of_blocks * block_h < o.raster_height && cost(tile_w, (rows_of_blocks + 1) * block_h) <= budget_per_tile) {
    ++rows_of_blocks;
  }
  // With several workers, keep at least a few tiles per worker so that the load stays balanced.
  const int total_block_rows = (o.raster_height + block_h - 1) / block_h;
  const int columns = (o.raster_width + tile_w - 1) / tile_w;
  const int wanted_tiles = 4 * o.tiles_in_flight;
  if (o.tiles_in_flight > 1 && columns * ((total_block_rows + rows_of_blocks - 1) / rows_of_blocks) < wanted_tiles) {
    rows_of_blocks = std::max(1, std::min(rows_of_blocks, total_block_rows * columns / wanted_tiles));
  }
  const int tile_h = rows_of_blocks * block_h;
  std::vector<Tile> tiles;
  for (int row = 0; row < o.raster_height; row += tile_h) {
    for (int col = 0; col < o.raster_width; col += tile_w) {
      Tile t;
      t.index = static_cast<int>(tiles.size());
      t.core = Window{col, row, std::min(tile_w, o.raster_width - col), std::min(tile_h, o.raster_height - row)};
      t.with_halo = Window{t.core.col - o.halo_px, t.core.row - o.halo_px, t.core.width + 2 * o.halo_px,
                           t.core.height + 2 * o.halo_px};
      tiles.push_back(t);
    }
  }
  return tiles;
}

}  // namespace deforma::io
