#pragma once
// Glacier outlines (GLIMS or RGI) for correlation focused on ice, `--glaciers OUTLINES` of `correlate` and
// `pipeline` (docs/glaciers.md):
//   - the ground to match is the ice plus a buffer; everything else is given to the correlation as its mask,
//     so that nodes on rock and sea far from any glacier are not matched (time saved);
//   - stable ground for the bias correction is the matched ring outside the outlines, past a margin (outlines
//     are uncertain by tens of metres and the ice edge itself moves);
//   - statistics per glacier of a displacement or velocity product: outline area, nodes inside, valid
//     fraction, measured area, median and 95th percentile of the speed, and the speed along centrelines when
//     a centreline layer is given.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/io/provenance.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::filter {

struct GlacierOptions {
  std::string outlines_path;     ///< GLIMS or RGI polygons (any OGR source)
  double buffer_m = 1000.0;      ///< matching is restricted to the outlines grown by this
  double margin_m = 200.0;       ///< stable ground starts this far outside the outlines (< buffer_m)
  std::string centrelines_path;  ///< optional lines; each belongs to the glacier holding its midpoint

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

/// One outline and what its attributes say about it.
struct Glacier {
  std::string id;    ///< GLIMS glac_id, RGI RGIId / rgi_id; else the feature id
  std::string name;  ///< GLIMS glac_name, RGI Name / glac_name; "" when absent or "None"
  /// Area of the outline in km², measured on the polygon (in the UTM zone of its centroid), not read from
  /// the attributes.
  double outline_area_km2 = 0;
};

/// Outlines read from a file, their geometries in one CRS.
class GlacierSet {
 public:
  GlacierSet();
  GlacierSet(GlacierSet&&) noexcept;
  GlacierSet& operator=(GlacierSet&&) noexcept;
  ~GlacierSet();

  const std::vector<Glacier>& glaciers() const;
  std::size_t size() const { return glaciers().size(); }
  const std::string& path() const;
  const std::string& crs_wkt() const;
  /// OGRGeometry* of glacier i (valid polygons: invalid source rings are repaired), valid while the set
  /// lives.
  void* geometry(std::size_t i) const;

 private:
  friend GlacierSet read_glaciers(const std::string&, const std::string&);
  struct State;
  std::unique_ptr<State> state_;
};

/// Reads every polygon feature of `path` with its GLIMS/RGI attributes, reprojected to `target_crs_wkt` when
/// given (the source keeps its CRS otherwise). Invalid polygons (self-intersecting rings) are repaired.
/// Throws IoError/FormatError naming the file; InvalidArgument when it holds no polygon.
GlacierSet read_glaciers(const std::string& path, const std::string& target_crs_wkt = "");

/// The two polygon files the correlation uses, written as FlatGeobuf in `dir` in the CRS of `grid`:
///   skip_path    the grid's extent minus the outlines grown by buffer_m (the correlation's mask)
///   stable_path  the outlines grown by buffer_m minus the outlines grown by margin_m
/// An empty region has no file (its path is ""). A file whose content would not change is left untouched (its
/// date too, so that the pipeline's work units that read it stay valid). `grid` must be in a projected CRS in
/// metres.
struct GlacierRegions {
  std::string skip_path;
  std::string stable_path;
  double matched_area_km2 = 0;  ///< area of the outlines grown by the buffer, inside the grid
  double grid_area_km2 = 0;
};
GlacierRegions write_glacier_regions(const GlacierSet& glaciers, const io::RasterInfo& grid,
                                     const GlacierOptions& options, const std::string& dir);

struct GlacierStatistics {
  Glacier glacier;
  long long nodes = 0;           ///< nodes of the product whose centre is inside the outline
  long long valid_nodes = 0;     ///< of which with a valid speed
  double valid_fraction = 0;     ///< valid_nodes / nodes (0 when no node)
  double measured_area_km2 = 0;  ///< valid nodes x the area of a node's cell
  std::optional<double> median_speed, p95_speed;
  long long centreline_samples = 0;        ///< samples along the glacier's centrelines
  long long centreline_valid_samples = 0;  ///< of which on a valid node
  std::optional<double> centreline_median_speed;
};

/// A sample of the speed along a centreline, every node spacing.
struct CentrelineSample {
  std::string glacier_id;
  int line = 0;  ///< 0-based feature index in the centreline file
  double distance_m = 0;
  double x = 0, y = 0;  ///< in the product's CRS
  std::optional<double> speed;
};

struct GlacierReport {
  std::string product;
  std::string quantity;  ///< "speed" (velocity product) or "displacement"
  std::string unit;      ///< "m/yr" or "m"
  /// Median east/north over the valid nodes of the stable ground, subtracted before the speed is taken;
  /// empty without stable ground or with fewer than 3 valid nodes there.
  std::optional<double> bias_east, bias_north;
  long long stable_valid_nodes = 0;
  std::vector<GlacierStatistics> glaciers;
  std::vector<CentrelineSample> centreline;
  std::vector<std::string> warnings;

  nlohmann::json to_json() const;
};

/// Statistics per glacier of `product_path`: a correlation result (east_m_per_yr/north_m_per_yr, else
/// east_m/north_m) or a velocity product (velocity_east_m_per_yr/velocity_north_m_per_yr). With
/// `stable_path` (polygons or raster, inside = stable) the median east/north there is removed first.
/// Throws InvalidArgument when the product has none of those bands or no CRS.
GlacierReport glacier_statistics(const GlacierSet& glaciers, const std::string& product_path,
                                 const GlacierOptions& options, const std::string& stable_path = "");

/// The per-glacier table (CSV, one row per glacier); when the report has centreline samples,
/// `<stem>_centrelines.csv` beside it; and `<stem>.json`: the report with the provenance of the run (command,
/// parameters, inputs). Returns the files written.
std::vector<std::string> write_glacier_tables(const std::string& csv_path, const GlacierReport& report,
                                              const io::Provenance& provenance);

}  // namespace deforma::filter
