#pragma once
// The streamed matching of a pair (internal to the correlate module): strips of node rows read from REF and
// SEC with the context correlate_grid needs, their --mask, --stable ground and --guess on the nodes, then
// matched. The driver (driver.cpp) plans the strips; product assembly and statistics are elsewhere
// (pair_product.hpp, pair_statistics.hpp).
#include <optional>
#include <string>

#include "deforma/correlate/correlate.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/vector.hpp"

namespace deforma::correlate::detail {

/// A displacement guess raster sampled at node positions (bilinear on valid samples).
class GuessField {
 public:
  GuessField(const std::string& path, const io::RasterInfo& ref_grid);

  /// Samples the guess for `nodes`; NaN where the guess is unknown.
  void sample(const NodeGrid& nodes, GridF& dx, GridF& dy) const;

  /// Largest |guess| over the raster, to size the secondary halo; read by block-aligned windows within
  /// `ram_budget_mb`.
  double max_abs_px(std::size_t ram_budget_mb) const;

 private:
  io::Raster raster_;
  int band_dx_ = 0, band_dy_ = 0;
  io::GeoTransform ref_gt_;
};

/// One strip of node rows: what is read, then what is matched.
struct NodeStrip {
  int first_node_row = 0;
  int node_rows = 0;
  io::Window ref_window;
  io::Window sec_window;
  io::BandWindow ref;
  io::BandWindow sec;
  GridF guess_dx, guess_dy;
  bool has_guess = false;
  GridU8 node_masked;  ///< nodes whose centre pixel lies in --mask
  GridU8 node_stable;  ///< nodes on --stable ground; empty without it
  GridResult result;
};

/// The inputs every strip is read from: the two images on one grid, the node grid and the context around
/// it, the mask and the stable ground.
class StripSource {
 public:
  /// `sec_footprint`: the part of REF's grid SEC covers. `halo_px` / `sec_halo_px`: the context read around
  /// the nodes in REF and SEC (grid_halo_px, plus the largest guess for SEC).
  StripSource(io::Raster& ref, int ref_band, io::Raster& sec, int sec_band, const io::Window& sec_footprint,
              const NodeGrid& all_nodes, int halo_px, int sec_halo_px, const CorrelateOptions& options,
              const std::string& output, const GuessField* guess);

  /// Reads the node rows [first_node_row, first_node_row + node_rows). Serial: GDAL datasets are not
  /// thread-safe.
  NodeStrip read(int first_node_row, int node_rows);

  /// Matches a strip read by read() with the run's matchers: fills strip.result and releases its pixels.
  /// Thread-safe.
  void match(NodeStrip& strip, MatcherPool& matchers) const;

  /// Nodes on --stable ground among the strips read so far.
  long long stable_node_count() const { return stable_node_count_; }

 private:
  io::Raster& ref_;
  int ref_band_;
  io::Raster& sec_;
  int sec_band_;
  io::Window sec_footprint_;
  NodeGrid all_nodes_;
  int halo_px_, sec_halo_px_;
  const CorrelateOptions& options_;
  const GuessField* guess_;
  std::optional<io::PolygonSet> mask_polygons_;
  bool mask_is_raster_ = false;
  io::RasterInfo node_info_;  ///< the output's node grid, where --stable is rasterized
  std::optional<io::PolygonSet> stable_polygons_;
  long long stable_node_count_ = 0;
};

}  // namespace deforma::correlate::detail
