#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/pipeline/pipeline.hpp"
#include "ops/correlate_parameters.hpp"
#include "ops/executor_parameters.hpp"
#include "ops/filter_operations.hpp"
#include "ops/glacier_parameters.hpp"
#include "ops/registration.hpp"
#include "ops/timeseries_parameters.hpp"

namespace deforma::ops {

void register_pipeline_operations(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "pipeline";
  op.summary =
      "Images to velocity and displacement time series in one run: pairs, correlation, filter, inversion";
  op.description =
      "Builds the image set (dates from product names, MTL files, metadata or YYYYMMDD in the name), the "
      "pair "
      "network, correlates every pair (parallel under --ram, resumable: a rerun keeps the completed pairs), "
      "filters and corrects each pair (thresholds, normalized median test, maximum velocity, stable ground "
      "from "
      "--stable polygons, --stable-mask or --auto-stable, --exclude for ground known to move), inverts the "
      "network into time series and velocity products (with two images: the velocity of the single pair), "
      "and "
      "writes the output folder as a static STAC catalog (catalog.json). Non-georeferenced images are "
      "processed "
      "in pixel units (px, px/yr). See docs/pipeline.md.";
  op.params = {
      ParamDecl::argument(
          "images", ParamType::kList,
          "images: files, folders, glob patterns, or one CSV manifest (path,date[,orbit,tile,sensor])").as_input(),
      ParamDecl::option("output", ParamType::kPath, "output folder (created; a rerun resumes in it)")
          .alias("o")
          .mandatory().as_output("inode/directory"),
      ParamDecl::option("skip-bad", ParamType::kBool,
                        "leave out unreadable images and failing pairs (reported) instead of stopping"),
      ParamDecl::option("no-corr-weights", ParamType::kBool,
                        "inversion: do not weight pairs per node by their correlation"),
      ParamDecl::option("no-quicklooks", ParamType::kBool, "skip the PNG quicklooks of the products"),
  };
  for (auto& p : pair_unit_parameters()) op.params.push_back(std::move(p));
  for (auto& p : executor_parameters()) op.params.push_back(std::move(p));
  const pipeline::PipelineOptions defaults;
  const auto network = pair_network_parameters(defaults.network, "pair network: ");
  for (auto& p : network.decls()) op.params.push_back(std::move(p));
  for (auto& p : cloud_selection_parameters("pair network: ")) op.params.push_back(std::move(p));
  const auto inversion = inversion_parameters(defaults.inversion, "inversion: ");
  for (auto& p : inversion.decls()) op.params.push_back(std::move(p));
  const auto correlation = correlation_parameters(pipeline::pipeline_correlation_defaults(), "correlation: ");
  for (auto& p : correlation.decls()) op.params.push_back(std::move(p));
  const auto grid = map_grid_parameters(pipeline::pipeline_correlation_defaults());
  for (auto& p : grid.decls()) op.params.push_back(std::move(p));
  // Noise matches in a neighbourhood of noise pass the median test: see pipeline_filter_defaults().
  for (auto& p : per_pair_filter_parameters(pipeline::pipeline_filter_defaults(), "m/yr, or px/yr without georeferencing"))
    op.params.push_back(std::move(p));
  const auto glaciers = glacier_parameters();
  for (auto& p : glaciers.decls()) op.params.push_back(std::move(p));
  op.examples = {
      "deforma pipeline perito-moreno/2020*.jpg -o perito --exclude perito-moreno/mask.jpg --auto-stable "
      "--search 8 --max-velocity 300",
      "deforma pipeline LC08*_B8.TIF -o yahtse --stable StEliasMtn_utm7v_rock.gmt --ramp plane "
      "--max-velocity 3000",
      "deforma --ram 4096 pipeline manifest.csv -o out --max-step 5 --max-days 60 --skip-bad"};
  op.run = [correlation, grid, network, inversion, glaciers](const ParamValues& p, RunContext& context) {
    pipeline::PipelineOptions o;
    o.inputs = p.get_list("images");
    o.output_dir = p.get_string("output");
    o.image_set.skip_bad = p.get_bool("skip-bad");
    network.apply(p, o.network);
    o.clouds = cloud_selection_from(p);
    o.correlation = correlation.defaults();
    correlation.apply(p, o.correlation);
    grid.apply(p, o.correlation);
    o.correlation.sec_band = o.correlation.ref_band;
    if (search_in_pixels(p)) {
      o.correlation.match.search_px = search_px(p, io::RasterInfo{});
    } else {
      // A length on the ground is converted with the pixel size of the first image of the set, or of the
      // series' map grid when the images are warped onto one (GCP-georeferenced SAR).
      const auto images = timeseries::load_image_set(o.inputs, o.image_set);
      if (images.size() == 0) throw InvalidArgument("parameter images: no usable image");
      std::vector<std::string> paths;
      for (const auto& im : images.images) paths.push_back(im.path);
      const auto series_grid = correlate::series_map_grid(paths, o.correlation.grid);
      o.correlation.match.search_px =
          search_px(p, series_grid ? series_grid->as_info("series map grid")
                                   : io::describe(images.images.front().path));
    }
    o.filter = filter_options_from(p, false, pipeline::pipeline_filter_defaults());
    o.max_velocity_per_yr = p.get_double("max-velocity");
    inversion.apply(p, o.inversion);
    glaciers.apply(p, o.glaciers);
    if (o.glaciers.outlines_path.empty() && p.has("centrelines")) {
      throw InvalidArgument("--centrelines needs --glaciers OUTLINES");
    }
    o.weight_by_correlation = !p.get_bool("no-corr-weights");
    o.quicklooks = !p.get_bool("no-quicklooks");
    o.per_pair_ram_mb = static_cast<std::size_t>(p.get_int("pair-ram"));
    o.invert_block_rows = static_cast<int>(p.get_int("invert-block-rows"));
    o.executor = executor_of(p);
    o.slurm = slurm_options_of(p);
    o.command_line = context.command_line;
    o.parameters = p.to_json();
    return pipeline::run_pipeline(o, context);
  };
  registry.add(std::move(op));
}

}  // namespace deforma::ops
