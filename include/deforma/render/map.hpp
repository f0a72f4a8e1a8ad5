#pragma once
// Quicklooks of scalar maps: values coloured through a ColorScale, nodata in a neutral grey, an optional
// vector field drawn as arrows, and a colour bar with title, unit and tick labels beside the map.
#include <string>
#include <vector>

#include "deforma/core/grid.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"

namespace deforma::render {

/// Colours `values` where `valid` is non-zero; other pixels take `nodata_color`. Same size as `values`.
/// Throws InvalidArgument when `valid` is not the size of `values`.
RgbImage render_scalar_map(const GridF& values, const GridU8& valid, const ColorScale& scale,
                           Rgb nodata_color = colors::kNodata);

/// Whether valid values lie beyond the colour scale's limits: the colour bar then ends in a triangle on
/// that side (values there are clipped to the end colour).
struct ClipMarks {
  bool below = false;
  bool above = false;
};
ClipMarks clip_marks(const GridF& values, const GridU8& valid, const ColorScale& scale);

/// A vertical colour bar legend (`height` px tall) with title, unit and about five tick labels; a
/// triangle at each clipped end and, under the bar, the percentile the scale was clipped at.
RgbImage render_color_bar(const ColorScale& scale, int height, ClipMarks clipped = {});

/// Arrows of a vector field, subsampled every `step` pixels; arrows are drawn from each sample's centre,
/// scaled so that the p95 of the drawn magnitudes is `step` * 0.9 pixels long, outliers shortened to
/// `max_length_steps` * `step`. Only from valid samples, and never over invalid pixels.
struct ArrowOptions {
  int step = 32;
  Rgb color = colors::kBlack;
  int thickness = 1;
  double max_length_steps = 1.5;
  std::string unit;  ///< unit of the field for the arrow key; empty = the colour scale's
  void validate() const;
};
/// The arrow scale key: an arrow `length_px` long stands for `value` (a round number: 1, 2 or 5 times a
/// power of ten) in the field's unit. value 0: no arrow was drawn.
struct ArrowKey {
  double value = 0.0;
  double length_px = 0.0;
};
ArrowKey draw_vector_field(RgbImage& image, const GridF& east, const GridF& north, const GridU8& valid,
                           const ArrowOptions& options = {});

struct QuicklookOptions {
  int max_size_px = 1200;  ///< the map is downsampled (nearest) to fit this in its longer side
  int min_size_px = 720;   ///< small grids are enlarged (whole factor) until their longer side reaches this
  int min_width_px = 800;  ///< the figure is at least this wide, so that its text stays legible
  std::string title;       ///< printed above the map and stored as the PNG's Title; empty = none
  double cell_size_m = 0;  ///< ground size of a grid cell: a scale bar is drawn when > 0
  bool arrows = false;     ///< draw (east, north) arrows when both are given
  ArrowOptions arrow_options;
  void validate() const;
};

/// Where the parts of a figure went (pixels of the figure), for callers that annotate it and for tests.
struct FigureLayout {
  int map_left = 0, map_top = 0, map_width = 0, map_height = 0;
  int bar_left = 0;        ///< the colour bar image's left edge (its top is map_top)
  int map_scale = 1;       ///< figure pixels per grid cell (enlarged grids); 1 otherwise
  int arrow_key_top = -1;  ///< top of the arrow key's row under the map; -1 = no key
};

/// A finished figure: the (resampled) coloured map, optional arrows with their scale key under the map,
/// a title and the colour bar on the right (clipped ends marked). `east`/`north` may be null (no arrows).
/// Northing is up (north > 0 draws upwards).
RgbImage render_quicklook(const GridF& values, const GridU8& valid, const ColorScale& scale,
                          const QuicklookOptions& options = {}, const GridF* east = nullptr,
                          const GridF* north = nullptr, FigureLayout* layout = nullptr);

/// A figure title "product - what (unit) - first to last"; empty parts are left out. ASCII only, as the
/// figures' font has no other glyphs.
std::string figure_title(const std::string& product, const std::string& what, const std::string& unit,
                         const std::string& first_date = "", const std::string& last_date = "");

/// Nearest-neighbour downsampling by an integer factor (>= 1); a sample is valid when its source is.
void downsample_nearest(const GridF& values, const GridU8& valid, int factor, GridF& out_values,
                        GridU8& out_valid);

struct PointMapOptions {
  std::string title;        ///< printed above the map and stored as the PNG's Title
  int map_size_px = 800;    ///< the longer side of the map area
  int point_radius_px = 0;  ///< 0 = from the point density (1 to 4 px)
  void validate() const;
};

/// Points (x east, y north, in metres of a projected CRS) coloured by `values` (NaN: not drawn) on a map
/// of equal scale in x and y, the largest |value - scale centre| drawn last (on top), with a scale bar,
/// a colour bar and the title. Throws InvalidArgument when the sizes differ or no point has a value.
RgbImage render_point_map(const std::vector<double>& x_m, const std::vector<double>& y_m,
                          const std::vector<float>& values, const ColorScale& scale,
                          const PointMapOptions& options = {}, FigureLayout* layout = nullptr);

}  // namespace deforma::render
