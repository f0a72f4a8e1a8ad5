#pragma once
// The map server's raster side, independent of HTTP: STAC items -> styled tiles (any tile matrix set,
// any source CRS, reprojected on the fly by GDAL's warper, which reads the source's overviews), mosaics of
// several items, legends and point queries. Every function here takes an item as STAC 1.0 JSON (assets
// with local `href`s, `raster:bands` with nodata/unit/name when known) and nothing else from the catalogue.
//
// GDAL datasets are opened once per thread and file and kept in a small per-thread cache (a tile costs no
// open), so these functions may be called from many threads at once.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/grid.hpp"
#include "deforma/maps/tms.hpp"
#include "deforma/render/colormap.hpp"

namespace deforma::maps {

struct AssetBand {
  int index = 1;  ///< 1-based
  std::string name;
  std::string unit;
  std::optional<double> nodata;
};

/// A raster asset of an item.
struct RasterAsset {
  std::string key;
  std::string href;  ///< local path, or a member of a local zip/tar (/vsizip/ARCHIVE/MEMBER, /vsitar/...)
  std::string title;
  std::vector<AssetBand> bands;  ///< from raster:bands, completed from the file when it is read
};

/// What the map server needs of a STAC item.
struct MapItem {
  std::string collection;
  std::string id;
  std::string title;
  std::string datetime;  ///< properties.datetime, or start_datetime; "" when none
  std::vector<RasterAsset> rasters;
  std::vector<std::pair<std::string, std::string>> point_assets;  ///< EGMS products: key, href
  /// Assets left out because their href is not one the server reads (key, why): another GDAL virtual file
  /// system than a local archive's (/vsicurl/, /vsimem/...), or an archive member whose name climbs out of
  /// its archive ("..").
  std::vector<std::pair<std::string, std::string>> refused_assets;
  nlohmann::json json;
};

/// Why the map server does not read `href` ("" when it does): a GDAL virtual path other than a member of a
/// local zip or tar (/vsizip/, /vsitar/), or one with a ".." component (a member name such as
/// "SCENE.SAFE/../../x.tif" that points outside its archive or at another file). The reason names no path:
/// it goes to clients.
std::string refused_href(const std::string& href);

/// Reads an item's raster assets (GeoTIFF/COG/NetCDF media types, or any asset with raster:bands or
/// proj:shape) and EGMS point products (CSV/zip assets of an item with egms properties or role "data");
/// assets whose href refused_href refuses go to refused_assets.
/// Throws FormatError naming the item when it is not a JSON object with an id.
MapItem map_item(const nlohmann::json& item);

/// What a request asks to draw (the query parameters of the tile, legend and WMS routes).
struct StyleOptions {
  std::vector<std::string> assets;  ///< asset keys; empty = the item's first raster asset
  int band = 0;                     ///< 1-based band of the first asset; 0 = its first band
  std::optional<std::pair<double, double>> rescale;
  std::string colormap;        ///< "" = by the data: diverging for signed values, sequential for magnitudes
  std::string expression;      ///< band arithmetic; variables b1.., ASSET_b1.., or band names
  std::string units;           ///< overrides the legend's units
  int tile_size = 256;         ///< 256 or 512
  std::string format = "png";  ///< "png" or "webp"
  std::string resampling = "nearest";  ///< nearest, bilinear, cubic, average
  /// Mosaics: items at or before this date (ISO), most recent on top. A cube (bands named by dates)
  /// without bidx: the band of the last date at or before it.
  std::string datetime;
};

/// Parses query parameters (assets, bidx, rescale, colormap, expression, units, tilesize, resampling,
/// datetime); unknown keys are ignored (clients add their own). Throws InvalidArgument naming the
/// parameter and what was expected.
StyleOptions parse_style(const std::multimap<std::string, std::string>& query);

/// The names of the colour maps `colormap=` accepts.
std::vector<std::string> colormap_names();

/// A style resolved against an item: which bands feed the value, its scale, title and units.
struct Style {
  StyleOptions options;
  struct Input {
    std::string variable;   ///< name in the expression ("" without one)
    std::size_t asset = 0;  ///< index in MapItem::rasters
    int band = 1;
  };
  std::vector<Input> inputs;
  std::string title;
  std::string units;
  std::string colormap;  ///< "sequential" or "diverging" (resolved name)
  render::ColorScale scale;
};

/// Resolves `options` against `item`: checks assets and bands exist (InvalidArgument naming them), and when
/// no rescale is given derives robust limits from the data (read once at overview resolution, cached).
Style resolve_style(const MapItem& item, const StyleOptions& options);

/// The style's values over a grid of `width` x `height` pixels covering `bounds` in `crs` (any CRS GDAL
/// understands; x/y in easting/longitude, northing/latitude order). NaN where there are no data.
GridF render_values(const MapItem& item, const Style& style, const std::string& crs, const Bounds& bounds,
                    int width, int height);

/// Colours `values` with the style's scale into an image (PNG or WebP bytes); NaN is transparent.
std::string encode_image(const GridF& values, const Style& style, const std::string& format);
/// A fully transparent image (tiles outside the data).
std::string empty_image(int width, int height, const std::string& format);

/// One tile of one item. Tiles outside the item's data (or across the antimeridian from it) are
/// transparent images, not errors.
std::string render_tile(const MapItem& item, const StyleOptions& options, const TileMatrixSet& tms, int zoom,
                        int x, int y);

/// A mosaic of `items` (each drawn with the same options), the most recent (datetime) on top; with
/// options.datetime, only items at or before that date. Each item's style is resolved from the first
/// item's so that colours agree across the mosaic.
std::string render_mosaic(const std::vector<MapItem>& items, const StyleOptions& options,
                          const TileMatrixSet& tms, int zoom, int x, int y);
/// Same over any CRS and bounds (WMS GetMap).
std::string render_map(const std::vector<MapItem>& items, const StyleOptions& options, const std::string& crs,
                       const Bounds& bounds, int width, int height);

/// One layer of a composed map: its items (a mosaic when several) and how to draw them.
struct MapLayer {
  std::vector<MapItem> items;
  StyleOptions options;
};

/// Several layers over one map (WMS GetMap with several LAYERS), drawn in the order given: the first at
/// the bottom, each later one over it where it has data. `background` fills what no layer covers (an
/// opaque image); without it that is transparent. `format` is "png" or "webp".
std::string render_layers(const std::vector<MapLayer>& layers, const std::string& crs, const Bounds& bounds,
                          int width, int height, const std::string& format,
                          const std::optional<render::Rgb>& background = std::nullopt);

/// {"title","units","min","max","colormap","stops":[{"value","color":"#rrggbb"}]}
nlohmann::json legend_json(const Style& style, int stop_count = 11);
/// A colour bar with title, units and ticks, as PNG bytes.
std::string legend_png(const Style& style);

/// All bands of all raster assets at (lon, lat) (WGS84), plus the series of a time-series cube
/// (`deforma invert`'s timeseries_<c>.tif with its _sigma file and velocity.tif beside it) or of the
/// nearest EGMS point within 100 m. Throws InvalidArgument when lon/lat are not valid; a point outside
/// the data has null values.
nlohmann::json point_query(const MapItem& item, double lon, double lat);
/// The point query as CSV: one section of band values, then the series rows when there is one.
std::string point_query_csv(const nlohmann::json& result);

/// `bounds` of `crs` as a lon/lat rectangle (edges densified); nullopt when they do not transform.
std::optional<Bounds> to_lonlat(const std::string& crs, const Bounds& bounds);

/// The ISO dates of an asset's bands when every band is named by one (a `deforma invert` cube); else empty.
std::vector<std::string> band_dates(const RasterAsset& asset);

/// The item's footprint in WGS84 longitude/latitude from its raster assets' extents; nullopt when it has
/// none. min_x > max_x when it crosses the antimeridian.
std::optional<Bounds> footprint_lonlat(const MapItem& item);

}  // namespace deforma::maps
