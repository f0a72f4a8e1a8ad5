#pragma once
// `deforma pipeline IMAGES... -o OUTDIR`: from N images of one place to velocity maps and displacement time
// series in one command, each stage a library call:
//   image set (timeseries::load_image_set) -> pair network (timeseries::build_pair_network)
//   -> batch correlation (correlate::correlate_pair per pair, run_batch: parallel, resumable)
//   -> filtering and stable-ground correction per pair (filter::filter_result, run_batch)
//   -> inversion in blocks of node rows, each a work unit (pipeline/invert_units.hpp), and the products
//      assembled from the blocks (with a single pair, the velocity of that pair, same band names)
//   -> static STAC catalog of the output folder (write_stac_catalog).
// Output folder layout (docs/pipeline.md):
//   pairs.csv, network.png          the pair table (result_path = filtered result) and the network plot
//   correlation/<pair>.tif          raw correlation results (+ units/<pair>.json: completion records)
//   filtered/<pair>.tif             filtered and corrected results (+ units/)
//   inversion/blocks/<block>.bin    the inversion's row blocks (+ units/)
//   products/                       velocity.tif, time-series cubes (COG, NetCDF), quicklooks
//   pipeline.json                   the run summary (headline numbers)
//   glaciers/                       with glacier outlines: the regions matched and stable, glaciers.csv
//   catalog.json, <item>/<item>.json  the STAC catalog
// A rerun with the same parameters reuses every completed pair of both batch stages.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/filter/filter.hpp"
#include "deforma/filter/glaciers.hpp"
#include "deforma/pipeline/slurm.hpp"
#include "deforma/timeseries/image_set.hpp"
#include "deforma/timeseries/invert.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace deforma::pipeline {

/// The correlation settings of the pipeline: the correlation keeps every peak with a correlation of at least
/// 0.1 (SNR threshold 1, i.e. off) and a high-pass prefilter (robust to illumination changes between
/// dates); deciding which vectors are outliers is left to the filter stage (normalized median test, and
/// --min-snr/--min-corr when given), which sees the whole vector field rather than one chip.
correlate::CorrelateOptions pipeline_correlation_defaults();

/// The filter settings of the pipeline: the normalized median test, and a minimum correlation of 0.3
/// (kPipelineMinCorrelation). The median test alone cannot reject noise where every neighbour is noise too
/// (cloud, fresh snow, a featureless surface: the neighbours' own residual is large, so nothing stands
/// out); on the Perito Moreno series such matches (correlation 0.1-0.2, SNR 1-3) dragged the inverted
/// velocity of well-measured ice from ~80 to ~17 px/yr (docs/pipeline.md).
inline constexpr double kPipelineMinCorrelation = 0.3;
filter::FilterOptions pipeline_filter_defaults();

struct PipelineOptions {
  std::vector<std::string> inputs;  ///< image files, folders, glob patterns, or one CSV manifest
  std::string output_dir;
  timeseries::ImageSetOptions image_set;  ///< skip_bad: leave unreadable images out and report them
  timeseries::PairNetworkOptions network;
  /// Images cloudier than this over an aoi (their cloud masks) are left out before pairing; none = all kept.
  std::optional<timeseries::CloudSelection> clouds;
  correlate::CorrelateOptions correlation = pipeline_correlation_defaults();  ///< years_between set per pair
  filter::FilterOptions filter = pipeline_filter_defaults();  ///< max displacement per pair from max_velocity
  /// Largest plausible speed in result units per year (m/yr for georeferenced images, px/yr otherwise);
  /// each pair's nodes above it x its time span are rejected (flag 8). 0 = off.
  double max_velocity_per_yr = 0.0;
  timeseries::InversionOptions inversion;
  /// Glacier outlines (outlines_path empty = none): each pair matches only the ice plus the buffer, the ring
  /// outside the outlines is the filter's stable ground unless another is given, and glaciers/glaciers.csv
  /// holds the statistics per glacier of the velocity product (also in the velocity STAC Item).
  filter::GlacierOptions glaciers;
  /// Weight pairs per node by their correlation in the inversion.
  bool weight_by_correlation = true;
  bool quicklooks = true;
  std::size_t per_pair_ram_mb = 256;  ///< streaming budget of one pair (pairs in flight = --ram / this)
  /// Rows of nodes of one inversion unit (pipeline/invert_units.hpp); 0 = as many as per_pair_ram_mb
  /// allows.
  int invert_block_rows = 0;
  /// Where the pair stages run: "local" (threads of this process) or "slurm" (array jobs, docs/cluster.md).
  std::string executor = "local";
  SlurmOptions slurm;                 ///< with executor "slurm"
  std::string command_line;           ///< provenance
  nlohmann::json parameters = nlohmann::json::object();  ///< provenance

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

/// Runs every stage; returns the Summary (counts per stage, headline numbers in details, the outputs,
/// warnings such as skipped images or pairs). Throws the deforma::Error of the first stage that fails.
Summary run_pipeline(const PipelineOptions& options, RunContext& context);

/// Headline numbers of a velocity product: median speed on stable ground and on moving ground (by a mask
/// source as in filter::read_node_mask: `moving_path` inside = moving; `stable_path` inside = stable), the
/// 95th percentile of the speed, and the median residual RMSE when the product has an rmse_m/rmse_px band.
/// The speed band is velocity_magnitude_m_per_yr or velocity_magnitude_px_per_yr.
struct Headline {
  std::string unit;  ///< "m/yr" or "px/yr"
  double median_speed_stable = 0;
  std::int64_t stable_nodes = 0;
  double median_speed_moving = 0;
  std::int64_t moving_nodes = 0;
  double p95_speed = 0;
  double median_rmse = -1;  ///< -1 when absent
  std::int64_t valid_nodes = 0;
  nlohmann::json to_json() const;
};
/// Read window by window within `ram_budget_mb`; the medians and the 95th percentile come from bounded
/// samples of the nodes (core/statistics.hpp Reservoir: exact up to 262144 valid nodes, a fixed-seed
/// uniform sample beyond), the counts are exact.
Headline velocity_headline(const std::string& velocity_path, const std::string& moving_path,
                           const std::string& stable_path, std::size_t ram_budget_mb = 256);

}  // namespace deforma::pipeline
