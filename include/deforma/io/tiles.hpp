#pragma once
// Tile planning for streamed processing (after Orfeo ToolBox / libvips): an operation declares the halo
// it needs around an output region; the planner cuts the raster into windows aligned on the GDAL block
// grid whose size (halo included) fits a RAM budget, so memory does not grow with the scene.
#include <cstddef>
#include <vector>

#include "deforma/io/raster.hpp"

namespace deforma::io {

struct TilePlanOptions {
  int raster_width = 0;
  int raster_height = 0;
  int block_width = 256;   ///< GDAL block size of the input (tiles align on it)
  int block_height = 256;
  int halo_px = 0;         ///< context needed on each side of a tile
  /// Bytes of working memory per pixel of a tile with its halo, all buffers of one tile together.
  double bytes_per_pixel = 8.0;
  std::size_t ram_budget_bytes = std::size_t{256} << 20;  ///< for all tiles in flight together
  int tiles_in_flight = 1;  ///< concurrent tiles (threads); the budget is shared among them

  /// Throws InvalidArgument naming the offending field.
  void validate() const;

  /// The plan of a band of `raster`: its size and GDAL block size, `bytes_per_pixel` of working memory and
  /// a budget of `ram_budget_mb`. Halo and tiles in flight keep their defaults for the caller to set.
  static TilePlanOptions for_band(const RasterInfo& raster, int band, double bytes_per_pixel,
                                  std::size_t ram_budget_mb);
};

struct Tile {
  int index = 0;
  Window core;       ///< the region this tile is responsible for (tiles partition the raster)
  Window with_halo;  ///< core grown by the halo; may extend past the raster edges
};

/// Full-width strips of whole block rows when they fit, otherwise block-aligned rectangles.
/// Throws InvalidArgument when not even one block with its halo fits the budget.
std::vector<Tile> plan_tiles(const TilePlanOptions& options);

}  // namespace deforma::io
