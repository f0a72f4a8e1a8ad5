// Node masks (stable ground, exclusions) from polygons or mask rasters, on the node grid of a result.
#include <cmath>
#include <filesystem>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gdal_priv.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/filter/filter.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/tiles.hpp"
#include "deforma/io/vector.hpp"

namespace deforma::filter {

namespace {

bool opens_as_raster(const std::string& path) {
  io::ensure_gdal_initialized();
  CPLPushErrorHandler(CPLQuietErrorHandler);
  GDALDatasetH h = GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  CPLPopErrorHandler();
  if (h) GDALClose(h);
  return h != nullptr;
}

bool inside_value(float v, bool byte_image) {
  return byte_image ? v > 127.0f : v != 0.0f;
}

}  // namespace

GridU8 read_node_mask(const std::string& path, const io::RasterInfo& grid, const io::Window& window,
                      const std::string& parameter) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw IoError(fmt::format("--{} {}: no such file", parameter, path));
  if (!opens_as_raster(path)) return io::rasterize(io::read_polygons(path, grid.crs_wkt), grid, window);
  io::Raster mask = io::Raster::open(path);
  const bool byte_image = mask.info().bands.front().data_type == "Byte";
  GridU8 out(window.width, window.height, 0);
  if (io::same_grid(mask.info(), grid)) {
    const auto w = mask.read(1, window);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out.data()[i] = (w.valid.data()[i] && inside_value(w.values.data()[i], byte_image)) ? 1 : 0;
    }
    return out;
  }
  if (mask.info().georeferenced && grid.georeferenced) {
    io::Raster warped = io::resample_to_grid(path, grid, io::Resampling::kNearest);
    const auto w = warped.read(1, window);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out.data()[i] = (w.valid.data()[i] && inside_value(w.values.data()[i], byte_image)) ? 1 : 0;
    }
    return out;
  }
  if (mask.info().georeferenced != grid.georeferenced) {
    throw InvalidArgument(
        fmt::format("--{} {}: one of the mask and the result {} is georeferenced and the other "
                    "is not; expected both in the same coordinates",
                    parameter, path, grid.path));
  }
  // Both in pixel units: node centres map to image pixels through the result's geotransform.
  std::vector<std::pair<int, int>> at(out.size());
  int min_c = mask.info().width, min_r = mask.info().height, max_c = -1, max_r = -1;
  for (int r = 0; r < window.height; ++r) {
    for (int c = 0; c < window.width; ++c) {
      double x = 0, y = 0, mc = 0, mr = 0;
      grid.geotransform.pixel_to_map(window.col + c + 0.5, window.row + r + 0.5, x, y);
      mask.info().geotransform.map_to_pixel(x, y, mc, mr);
      const int ic = static_cast<int>(std::floor(mc)), ir = static_cast<int>(std::floor(mr));
      at[static_cast<std::size_t>(r) * window.width + c] = {ic, ir};
      if (ic < 0 || ir < 0 || ic >= mask.info().width || ir >= mask.info().height) continue;
      min_c = std::min(min_c, ic);
      min_r = std::min(min_r, ir);
      max_c = std::max(max_c, ic);
      max_r = std::max(max_r, ir);
    }
  }
  if (max_c < 0) return out;
  const auto w = mask.read(1, io::Window{min_c, min_r, max_c - min_c + 1, max_r - min_r + 1});
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto [ic, ir] = at[i];
    const int lc = ic - min_c, lr = ir - min_r;
    if (!w.values.contains(lc, lr)) continue;
    out.data()[i] = (w.valid(lc, lr) && inside_value(w.values(lc, lr), byte_image)) ? 1 : 0;
  }
  return out;
}

}  // namespace deforma::filter
