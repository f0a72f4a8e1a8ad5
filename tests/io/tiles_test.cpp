#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/io/tiles.hpp"

namespace deforma::io {
namespace {

TilePlanOptions options(int w, int h, int bw, int bh, int halo, std::size_t budget_bytes, int in_flight = 1) {
  TilePlanOptions o;
  o.raster_width = w;
  o.raster_height = h;
  o.block_width = bw;
  o.block_height = bh;
  o.halo_px = halo;
  o.bytes_per_pixel = 4;
  o.ram_budget_bytes = budget_bytes;
  o.tiles_in_flight = in_flight;
  return o;
}

// Every pixel belongs to exactly one tile core; cores start on block boundaries; halos are the core grown
// by the halo; every tile with its halo fits the per-tile budget.
void check_plan(const TilePlanOptions& o, const std::vector<Tile>& tiles) {
  std::vector<int> cover(static_cast<std::size_t>(o.raster_width) * o.raster_height, 0);
  const double per_tile = static_cast<double>(o.ram_budget_bytes) / o.tiles_in_flight;
  for (const auto& t : tiles) {
    EXPECT_EQ(t.core.col % o.block_width, 0);
    EXPECT_EQ(t.core.row % o.block_height, 0);
    EXPECT_EQ(t.with_halo.col, t.core.col - o.halo_px);
    EXPECT_EQ(t.with_halo.width, t.core.width + 2 * o.halo_px);
    EXPECT_LE(static_cast<double>(t.with_halo.pixel_count()) * o.bytes_per_pixel, per_tile);
    for (int r = t.core.row; r < t.core.row + t.core.height; ++r)
      for (int c = t.core.col; c < t.core.col + t.core.width; ++c) ++cover[static_cast<std::size_t>(r) * o.raster_width + c];
  }
  for (int v : cover) ASSERT_EQ(v, 1);
}

TEST(TilePlanner, FullWidthStripsWhenTheyFit) {
  const auto o = options(1000, 800, 1000, 8, 20, 2 << 20);
  const auto tiles = plan_tiles(o);
  check_plan(o, tiles);
  for (const auto& t : tiles) EXPECT_EQ(t.core.width, 1000);
  EXPECT_GT(tiles.size(), 1u);  // 840 rows x 1040 px x 4 B > 2 MB
}

TEST(TilePlanner, BlockAlignedRectanglesWhenAStripIsTooBig) {
  const auto o = options(10980, 10980, 256, 256, 48, 8 << 20);
  const auto tiles = plan_tiles(o);
  check_plan(o, tiles);
  EXPECT_LT(tiles.front().core.width, 10980);
}

TEST(TilePlanner, MemoryPerTileDoesNotGrowWithSceneSize) {
  const auto small = plan_tiles(options(2000, 2000, 256, 256, 32, 16 << 20));
  const auto large = plan_tiles(options(40000, 40000, 256, 256, 32, 16 << 20));
  auto biggest = [](const std::vector<Tile>& tiles) {
    long long m = 0;
    for (const auto& t : tiles) m = std::max(m, t.with_halo.pixel_count());
    return m;
  };
  EXPECT_LE(biggest(large), 16LL << 20);
  EXPECT_GT(large.size(), small.size());
  EXPECT_LE(biggest(large) * 4, 16LL << 20);
}

TEST(TilePlanner, SeveralTilesPerWorker) {
  const auto o = options(512, 512, 512, 16, 8, 256 << 20, 2);
  const auto tiles = plan_tiles(o);
  check_plan(o, tiles);
  EXPECT_GE(tiles.size(), 8u);
}

TEST(TilePlanner, RejectsABudgetBelowOneBlock) {
  try {
    plan_tiles(options(1000, 1000, 512, 512, 64, 1 << 20));
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--ram"), std::string::npos);
  }
  EXPECT_THROW(plan_tiles(options(0, 10, 8, 8, 0, 1 << 20)), InvalidArgument);
  EXPECT_THROW(plan_tiles(options(10, 10, 8, 8, -1, 1 << 20)), InvalidArgument);
}

}  // namespace
}  // namespace deforma::io

namespace deforma::io {
namespace {

TEST(TilePlanner, PlanOfABandTakesItsSizeBlocksAndBudget) {
  RasterInfo info;
  info.path = "scene.tif";
  info.width = 1000;
  info.height = 700;
  BandInfo band;
  band.block_width = 256;
  band.block_height = 128;
  info.bands = {band};
  const auto plan = TilePlanOptions::for_band(info, 1, 6.0, 64);
  EXPECT_EQ(plan.raster_width, 1000);
  EXPECT_EQ(plan.raster_height, 700);
  EXPECT_EQ(plan.block_width, 256);
  EXPECT_EQ(plan.block_height, 128);
  EXPECT_DOUBLE_EQ(plan.bytes_per_pixel, 6.0);
  EXPECT_EQ(plan.ram_budget_bytes, std::size_t{64} << 20);
  EXPECT_THROW(TilePlanOptions::for_band(info, 2, 6.0, 64), InvalidArgument);
}

}  // namespace
}  // namespace deforma::io
