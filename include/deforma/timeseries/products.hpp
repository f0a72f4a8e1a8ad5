#pragma once
// The streamed inversion of per-pair displacement rasters and its products (docs/timeseries.md):
//   <out>/<prefix>timeseries_<c>.tif        COG, one band per date named by its ISO date, per component c
//   <out>/<prefix>timeseries_<c>_sigma.tif  COG, 1-sigma per date
//   <out>/<prefix>timeseries.nc             NetCDF-4, CF-1.8: time axis (days since 1970-01-01), x/y,
//                                           the series and sigmas, the velocity maps, grid mapping
//   <out>/<prefix>velocity.tif              COG: velocity_<c>, velocity_magnitude, their std, rmse,
//                                           valid_pairs, consistency, flags
//   <out>/<prefix>velocity_*.png, rmse.png  quicklooks with colour bar
// Components are "east"/"north" for rasters in metres (bands east_m, north_m) and "dx"/"dy" in pixels
// (bands dx_px, dy_px). Nodes are read, inverted and written in windows sized by RunContext::ram_budget_mb
// (io::for_each_window).
#include <functional>
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/timeseries/invert.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace deforma::timeseries {

struct InvertRastersOptions {
  std::string output_dir;   ///< created if missing
  std::string prefix;       ///< prepended to every output name
  std::string units = "m";  ///< "m": bands east_m/north_m; "px": bands dx_px/dy_px
  std::string east_band;    ///< override: band name (description) or 1-based index
  std::string north_band;   ///< override: band name (description) or 1-based index
  std::string weight_band;  ///< optional per-node quality band (e.g. "corr"), values clipped to [0, 1]
  int block_rows = 0;       ///< rows of nodes per block; 0 = as many as the RAM budget allows
  bool netcdf = true;
  bool quicklooks = true;
  InversionOptions inversion;
  nlohmann::json parameters = nlohmann::json::object();  ///< recorded in provenance

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

/// Inverts the pairs (each with a result_path) into the products above; returns the Summary with counts
/// (nodes, valid, nodata, reweighted, bridged), details (dates, pairs, components, median velocity,
/// median rmse, output paths) and a report. Throws InvalidArgument when a pair has no result_path or the
/// rasters do not share one grid (naming the files), FormatError when a band is missing.
Summary invert_pair_rasters(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                            RunContext& context);

/// Rows [row0, row0 + rows) of the node grid: the part of an inversion one process computes.
struct RowBlock {
  int row0 = 0;
  int rows = 0;
  bool operator==(const RowBlock&) const = default;
};

/// The row blocks invert_pair_rasters uses for `pairs`: options.block_rows rows each, or as many as
/// `ram_budget_mb` allows. Opens the rasters' headers (same errors as invert_pair_rasters).
std::vector<RowBlock> inversion_row_blocks(const std::vector<Pair>& pairs,
                                           const InvertRastersOptions& options, std::size_t ram_budget_mb);

/// Inverts the nodes of one row block (reading only its rows of every pair raster): what
/// invert_pair_rasters computes for those rows, value for value (each node is solved on its own). `stats`,
/// when given, receives the block's counters. Used by the pipeline's inversion work units.
InversionResult invert_pair_block(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                                  const RowBlock& block, RunContext& context,
                                  InversionStats* stats = nullptr);

/// The result of one block, computed elsewhere (another process, another machine) and read back.
using InversionBlockSource = std::function<InversionResult(const RowBlock& block, InversionStats& stats)>;

/// Writes the products of invert_pair_rasters from results computed block by block elsewhere: `blocks`
/// must cover the grid's rows in order; `source` is called once per block, in order. The products are
/// those of invert_pair_rasters value for value; counts["patterns"] is the sum over blocks.
Summary assemble_inversion_products(const std::vector<Pair>& pairs, const InvertRastersOptions& options,
                                    const std::vector<RowBlock>& blocks, const InversionBlockSource& source,
                                    RunContext& context);

/// One node's series read back from the products.
struct NodeSeries {
  std::vector<Epoch> dates;                 ///< from the cubes' band names: dates, or instants of SAR series
  std::vector<std::string> components;      ///< "east", "north" (or "dx", "dy")
  std::vector<std::vector<double>> values;  ///< [component][date], NaN = nodata
  std::vector<std::vector<double>> sigmas;  ///< [component][date], NaN = unknown
  std::string unit;                         ///< "m" or "px"
  int col = 0;                              ///< node column and row of the product grid
  int row = 0;
  std::string products_dir;    ///< where the products were found
  bool georeferenced = false;  ///< false: the grid's map coordinates are the images' pixel coordinates
};

/// What the coordinates given to read_series_at mean.
enum class PointKind {
  kMap,         ///< map coordinates of the product grid (image pixels for images without georeferencing)
  kImagePixel,  ///< image pixel column and row: products without georeferencing only
  kNode,        ///< node column and row of the product grid
};

/// Reads the series at (x, y) from the products in `folder` (with `prefix`), or in its products/
/// subfolder (a pipeline's output folder). For images without georeferencing the grid's map coordinates
/// are the images' pixel coordinates (as the NetCDF's x/y), so kMap and kImagePixel agree there; kImagePixel
/// on georeferenced products is an InvalidArgument (they do not carry the images' own pixel grid). Throws
/// InvalidArgument when the point is outside the grid, IoError when the products are missing.
NodeSeries read_series_at(const std::string& folder, const std::string& prefix, double x, double y,
                          PointKind kind);

/// The CSV text of a series: date,<c>,<c>_sigma,... (the date column holds Epoch::iso(): a date, or an
/// instant to the second)
std::string series_to_csv(const NodeSeries& series);

}  // namespace deforma::timeseries
