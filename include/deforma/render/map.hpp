#pragma once
// Quicklooks of scalar maps: values coloured through a ColorScale, nodata in a neutral grey, an optional
// vector field drawn as arrows, and a colour bar with title, unit and tick labels beside the map.
#include <string>

#include "deforma/core/grid.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"

namespace deforma::render {

/// Colours `values` where `valid` is non-zero; other pixels take `nodata_color`. Same size as `values`.
/// Throws InvalidArgument when `valid` is not the size of `values`.
RgbImage render_scalar_map(const GridF& values, const GridU8& valid, const ColorScale& scale,
                           Rgb nodata_color = colors::kNodata);

/// A vertical colour bar legend (`height` px tall) with title, unit and about five tick labels.
RgbImage render_color_bar(const ColorScale& scale, int height);

/// Arrows of a vector field, subsampled every `step` pixels; arrows are drawn from each sample's centre,
/// scaled so that the p95 of the drawn magnitudes is `step` * 0.9 pixels long. Only where valid.
struct ArrowOptions {
  int step = 32;
  Rgb color = colors::kBlack;
  int thickness = 1;
  void validate() const;
};
void draw_vector_field(RgbImage& image, const GridF& east, const GridF& north, const GridU8& valid,
                       const ArrowOptions& options = {});

struct QuicklookOptions {
  int max_size_px = 1200;  ///< the map is downsampled (nearest) to fit this in its longer side
  std::string title;       ///< printed above the map; empty = none
  bool arrows = false;     ///< draw (east, north) arrows when both are given
  ArrowOptions arrow_options;
  void validate() const;
};

/// A finished figure: the (possibly downsampled) coloured map, optional arrows, a title and the colour
/// bar on the right. `east`/`north` may be null (no arrows). Northing is up (north > 0 draws upwards).
RgbImage render_quicklook(const GridF& values, const GridU8& valid, const ColorScale& scale,
                          const QuicklookOptions& options = {}, const GridF* east = nullptr,
                          const GridF* north = nullptr);

/// Nearest-neighbour downsampling by an integer factor (>= 1); a sample is valid when its source is.
void downsample_nearest(const GridF& values, const GridU8& valid, int factor, GridF& out_values,
                        GridU8& out_valid);

}  // namespace deforma::render
