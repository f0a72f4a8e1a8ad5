#include <chrono>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/filter/filter.hpp"
#include "ops/filter_operations.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {

ParamGroup<filter::FilterOptions> filter_parameter_group(const filter::FilterOptions& defaults) {
  using filter::FilterOptions;
  ParamGroup<FilterOptions> g(defaults);
  g.bind(&FilterOptions::min_snr, "min-snr", "reject nodes whose SNR is below this (flag 1); 0 = off").at_least(0);
  g.bind(&FilterOptions::min_corr, "min-corr", "reject nodes whose correlation is below this (flag 9); 0 = off")
      .between(0, 1);
  g.bind_flag([](FilterOptions& o) -> bool& { return o.median_test; }, "no-median-test",
              "skip the normalized median test (Westerweel & Scarano 2005)", false);
  g.bind(&FilterOptions::median_radius, "median-radius", "neighbourhood radius of the median test (1 = 3x3)")
      .in_unit("nodes")
      .between(1, 10);
  g.bind(&FilterOptions::median_threshold, "median-threshold",
         "reject a vector whose normalized median residual exceeds this (flag 7)")
      .at_least(0.01);
  g.bind(&FilterOptions::median_epsilon_px, "median-epsilon",
         "acceptable fluctuation added to the neighbours' median residual")
      .in_unit("px")
      .at_least(0);
  // 440 neighbours: the largest radius (10) has 21 x 21 - 1; validate() checks it against the radius given.
  g.bind(&FilterOptions::median_min_neighbours, "median-min-neighbours",
         "valid neighbours a node needs to be tested (fewer: kept untested)")
      .between(1, 440);
  g.bind(&FilterOptions::max_displacement_px, "max-displacement",
         "reject displacements larger than this (flag 8); 0 = off")
      .in_unit("px")
      .at_least(0);
  g.bind(&FilterOptions::max_velocity_per_yr, "max-velocity",
         "reject velocities (east_m/north_m, or dx_px/dy_px without georeferencing, over the pair's time span) "
         "larger than this (flag 8); 0 = off")
      .in_unit("m/yr, or px/yr without georeferencing")
      .at_least(0);
  // Not bound: its field's 0 means "the span the result records", which is no value to declare.
  g.declare(ParamDecl::option("days", ParamType::kDouble,
                              "time between the two images of the pair, for --max-velocity (default: the dates "
                              "the result records)")
                .in_unit("days")
                .at_least(0.001));
  // The stable-ground source is one of three exclusive parameters: read by filter_options_from().
  g.declare(ParamDecl::option("ramp", ParamType::kChoice,
                              "stable-ground correction model (default: bias when stable ground is given, else none)")
                .one_of({"none", "bias", "plane", "quadratic"}));
  g.declare(ParamDecl::option("stable", ParamType::kPath, "stable ground as polygons (any OGR format: GPKG, SHP, GMT...)")
                .as_input());
  g.declare(ParamDecl::option("stable-mask", ParamType::kPath, "stable ground as a mask raster (non-zero = stable)")
                .as_input());
  g.declare(ParamDecl::option("auto-stable", ParamType::kBool,
                              "find the stable ground automatically: the least-moving, well-correlated nodes"));
  g.declare(ParamDecl::option("exclude", ParamType::kPath, "ground known to move (mask raster or polygons), never taken as stable")
                .as_input());
  g.bind(&FilterOptions::auto_corr_quantile, "auto-corr-quantile",
         "--auto-stable: keep nodes whose correlation is at or above this quantile")
      .between(0, 0.99);
  g.bind(&FilterOptions::auto_fraction, "auto-fraction",
         "--auto-stable: fraction of those, smallest displacements first, taken as stable")
      .between(0.01, 1);
  g.bind(&FilterOptions::robust_k, "robust-k",
         "robust fit: reject stable nodes farther than this many NMADs from the median residual")
      .at_least(0.5);
  g.bind(&FilterOptions::robust_iterations, "robust-iterations", "robust fit: most refits").between(1, 50);
  return g;
}

std::vector<ParamDecl> filter_parameters(const filter::FilterOptions& defaults) {
  return filter_parameter_group(defaults).decls();
}

std::vector<ParamDecl> per_pair_filter_parameters(const filter::FilterOptions& defaults,
                                                  const std::string& velocity_unit) {
  std::vector<ParamDecl> decls;
  for (auto& p : filter_parameters(defaults)) {
    if (p.name == "days") continue;  // each pair's own time span is used
    if (p.name == "max-velocity") {
      p.help = "reject nodes faster than this over their pair's time span (flag 8); 0 = off";
      p.unit = velocity_unit;
    }
    decls.push_back(std::move(p));
  }
  return decls;
}

filter::FilterOptions filter_options_from(const ParamValues& p, bool read_max_velocity,
                                          const filter::FilterOptions& defaults) {
  filter::FilterOptions o = defaults;
  filter_parameter_group(defaults).apply(p, o);
  if (read_max_velocity) {
    // Turned into a displacement by filter_result with the pair's time span: --days, or the dates the
    // result records.
    if (p.has("days")) o.days = p.get_double("days");
  } else {
    o.max_velocity_per_yr = defaults.max_velocity_per_yr;
  }
  o.ramp = filter::parse_ramp_model(p.get_string_or("ramp", "none"));
  const int sources =
      (p.has("stable") ? 1 : 0) + (p.has("stable-mask") ? 1 : 0) + (p.get_bool("auto-stable") ? 1 : 0);
  if (sources > 1) {
    throw InvalidArgument(
        "parameters --stable, --stable-mask, --auto-stable: give only one stable-ground source");
  }
  if (p.has("stable")) {
    o.stable = filter::StableSource::kPolygons;
    o.stable_path = p.get_string("stable");
  } else if (p.has("stable-mask")) {
    o.stable = filter::StableSource::kMask;
    o.stable_path = p.get_string("stable-mask");
  } else if (p.get_bool("auto-stable")) {
    o.stable = filter::StableSource::kAuto;
  }
  // A stable-ground source without a model means "remove the bias": the least surprising choice.
  if (o.stable != filter::StableSource::kNone && o.ramp == filter::RampModel::kNone && !p.has("ramp")) {
    o.ramp = filter::RampModel::kBias;
  }
  if (p.has("exclude")) o.exclude_path = p.get_string("exclude");
  o.validate();
  return o;
}

void register_filter_operations(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "filter";
  op.summary =
      "Filter and correct a correlation result: thresholds, median test, max velocity, stable ground";
  op.description =
      "Reads a correlation result (bands dx_px, dy_px, flag and optionally east_m, north_m, corr, snr, found "
      "by "
      "their descriptions), rejects nodes below the SNR/correlation thresholds, vectors that fail the "
      "normalized "
      "median test of Westerweel & Scarano (2005) and displacements above the plausible maximum, then fits a "
      "bias or a plane/quadratic ramp on stable ground (polygons, a mask, or found automatically) and "
      "removes "
      "it. Rejected nodes get nodata and a flag (7 median test, 8 above maximum, 9 low correlation; see "
      "docs/filter.md). What was removed is recorded in the output's DEFORMA_FILTER metadata.";
  op.params = {
      ParamDecl::argument("input", ParamType::kPath, "correlation result (COG from deforma correlate)").as_input(),
      ParamDecl::option("output", ParamType::kPath, "filtered result (COG)").alias("o").mandatory().as_output(kCogMediaType),
  };
  for (auto& p : filter_parameters()) op.params.push_back(std::move(p));
  op.examples = {
      "deforma filter pair.tif -o pair_filtered.tif --min-corr 0.3 --max-displacement 30",
      "deforma filter pair.tif -o pair_filtered.tif --stable StEliasMtn_utm7v_rock.gmt --ramp plane",
      "deforma filter pair.tif -o pair_filtered.tif --auto-stable --exclude glacier_mask.tif"};
  op.run = [](const ParamValues& params, RunContext& context) {
    filter::FilterRun run;
    run.input = params.get_string("input");
    run.output = params.get_string("output");
    run.options = filter_options_from(params);
    run.command_line = context.command_line;
    run.parameters = params.to_json();
    run.ram_budget_mb = context.ram_budget_mb;
    run.progress = context.progress;
    return filter::filter_result(run);
  };
  registry.add(std::move(op));
}

}  // namespace deforma::ops
