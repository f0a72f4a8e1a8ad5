// Field workflows built on the engine: 3-D displacement from several geometries (`decompose`) and
// co-seismic offsets along a fault trace (`fault-profile`).
#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/filter/fault_profile.hpp"
#include "deforma/timeseries/decompose.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {

// The i-th of a per-product list, or its only value for every product.
std::string per_product(const std::vector<std::string>& values, std::size_t i, std::size_t products,
                        const std::string& parameter) {
  if (values.size() == 1) return values.front();
  if (values.size() != products) {
    throw InvalidArgument(fmt::format("--{}: {} values for {} products; give one for all or one per product",
                                      parameter, values.size(), products));
  }
  return values[i];
}

std::vector<std::string> list_or_empty(const ParamValues& p, const std::string& name) {
  return p.has(name) ? p.get_list(name) : std::vector<std::string>{};
}

void register_decompose(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "decompose";
  op.summary = "Combine optical and line-of-sight products into east, north and up with their uncertainties";
  op.description =
      "Resamples every product onto a common grid (the first product's, --grid's, or that extent at "
      "--resolution) and solves, per cell, the weighted least-squares system whose rows are the measurements "
      "(an optical product gives east and north; a line-of-sight product its projection on the ground-to-"
      "sensor unit vector) weighted by their standard deviations. Writes one COG with bands east, north, up, "
      "sigma_east, sigma_north, sigma_up (from the covariance), n_geometries, condition (of the viewing "
      "geometry) and flags: a component the geometries present cannot see is nodata, and the flags say why "
      "(1 no measurement, 2/4/8 east/north/up unresolved, 16 ill-conditioned, 32 up from the surface-parallel "
      "flow assumption with --dem). All products must be in the same unit (m, or m/yr).";
  op.params = {
      ParamDecl::option("optical", ParamType::kList,
                        "optical displacement or velocity products (deforma correlate COGs), east and north bands")
          .as_input(),
      ParamDecl::option("optical-bands", ParamType::kString,
                        "east and north bands of the optical products (descriptions or indices)")
          .defaults_to("east_m,north_m"),
      ParamDecl::option("optical-sigma", ParamType::kList,
                        "standard deviation of the optical components: a number or a band; one for all or one per "
                        "product")
          .defaults_to("0.5"),
      ParamDecl::option("los", ParamType::kList, "line-of-sight products (InSAR, SAR offsets), positive towards the sensor")
          .as_input(),
      ParamDecl::option("los-band", ParamType::kString, "band of the line-of-sight value (description or index)")
          .defaults_to("1"),
      ParamDecl::option("los-geometry", ParamType::kList,
                        "unit vector ground to sensor: 'bands' (los_east, los_north, los_up), 'angles' "
                        "(incidence_deg, heading_deg bands), E,N,U or INCIDENCE/HEADING (degrees); one for all "
                        "or one per product")
          .defaults_to("bands"),
      ParamDecl::option("los-sigma", ParamType::kList,
                        "standard deviation of the line-of-sight values: a number or a band; one for all or one per "
                        "product")
          .defaults_to("0.005"),
      ParamDecl::option("dem", ParamType::kPath,
                        "DEM for the surface-parallel flow assumption: up = east dz/dx + north dz/dy where only "
                        "horizontal motion is measured")
          .as_input(),
      ParamDecl::option("grid", ParamType::kPath, "raster whose grid the output takes (default: the first product)")
          .as_input(),
      ParamDecl::option("resolution", ParamType::kDouble,
                        "cell size of the output over the grid's extent (default: the grid's own)")
          .in_unit("CRS units")
          .at_least(0),
      ParamDecl::option("max-condition", ParamType::kDouble,
                        "directions weaker than the strongest over this ratio are taken as missing")
          .defaults_to("50")
          .between(1, 1e6),
      ParamDecl::option("output", ParamType::kPath, "3-D displacement (COG)").alias("o").mandatory().as_output(kCogMediaType),
  };
  op.examples = {
      "deforma decompose --optical pair.tif --los asc.tif desc.tif --los-geometry 39/-10.5 41/190.2 "
      "--los-sigma 0.004 -o enu.tif",
      "deforma decompose --optical yahtse_pair.tif --dem yahtse_srtm_dem.tif -o yahtse_enu.tif"};
  op.run = [](const ParamValues& p, RunContext& context) {
    timeseries::DecomposeRun run;
    const auto optical = list_or_empty(p, "optical");
    const auto los = list_or_empty(p, "los");
    const std::string bands = p.get_string("optical-bands");
    const auto comma = bands.find(',');
    if (comma == std::string::npos || comma == 0 || comma + 1 == bands.size()) {
      throw InvalidArgument(fmt::format("--optical-bands '{}': expected EAST,NORTH (descriptions or indices)", bands));
    }
    for (std::size_t i = 0; i < optical.size(); ++i) {
      timeseries::OpticalInput in;
      in.path = optical[i];
      in.east_band = bands.substr(0, comma);
      in.north_band = bands.substr(comma + 1);
      in.sigma = per_product(p.get_list("optical-sigma"), i, optical.size(), "optical-sigma");
      run.optical.push_back(in);
    }
    for (std::size_t i = 0; i < los.size(); ++i) {
      timeseries::LosInput in;
      in.path = los[i];
      in.band = p.get_string("los-band");
      in.geometry = per_product(p.get_list("los-geometry"), i, los.size(), "los-geometry");
      in.sigma = per_product(p.get_list("los-sigma"), i, los.size(), "los-sigma");
      run.los.push_back(in);
    }
    run.dem_path = p.get_string_or("dem", "");
    run.grid_path = p.get_string_or("grid", "");
    run.resolution = p.has("resolution") ? p.get_double("resolution") : 0.0;
    run.options.max_condition = p.get_double("max-condition");
    run.output = p.get_string("output");
    run.command_line = context.command_line;
    run.parameters = p.to_json();
    return timeseries::decompose_rasters(run, context);
  };
  registry.add(std::move(op));
}

void register_fault_profile(OperationRegistry& registry) {
  using filter::FaultProfileOptions;
  ParamGroup<FaultProfileOptions> g;
  g.bind(&FaultProfileOptions::spacing_m, "spacing", "distance between profiles along the trace (S)")
      .in_unit("m")
      .between(1, 1e6);
  g.bind(&FaultProfileOptions::width_m, "width", "width of each profile along strike, over which cells are stacked (W)")
      .in_unit("m")
      .between(1, 1e6);
  g.bind(&FaultProfileOptions::length_m, "length", "length of each profile across the trace, centred on it (L)")
      .in_unit("m")
      .between(10, 1e6);
  g.bind(&FaultProfileOptions::near_fault_m, "near-fault",
         "zone on each side of the trace left out of the line fits (damage zone, decorrelation)")
      .in_unit("m")
      .between(0, 1e5);
  g.bind(&FaultProfileOptions::min_points, "min-points", "valid cells needed on each side of a profile")
      .between(3, 1e7);
  g.bind(&FaultProfileOptions::robust_k, "robust-k", "line fits: reject residuals beyond this many NMADs")
      .between(0.5, 100);
  g.bind(&FaultProfileOptions::robust_iterations, "robust-iterations", "line fits: most refits").between(0, 50);

  OperationDecl op;
  op.name = "fault-profile";
  op.summary = "Offsets across a fault trace from stacked profiles: fault-parallel and perpendicular, with sigma";
  op.description =
      "Every --spacing metres along the trace (the longest line of --trace, any OGR format, reprojected to the "
      "raster's CRS), stacks the cells of a box --width metres along strike and --length metres across into "
      "one profile, fits a robust line on each side outside --near-fault metres, and takes the offset at the "
      "trace: left side minus right side looking along the trace, on the local strike (fault-parallel, > 0 "
      "right-lateral) and its normal (fault-perpendicular, > 0 shortening). Reads the east band (east_m, or "
      "band 1 of a one-band raster) and the north band when there is one; with east only, the fault-parallel "
      "offset assumes motion along the trace and the perpendicular one is not measured. Geographic rasters are "
      "profiled in a local azimuthal equidistant frame. Writes a CSV (one row per profile), optionally a "
      "GeoPackage of the profile lines with their offsets and a PNG of the offset along strike with error bars.";
  op.params = {
      ParamDecl::argument("input", ParamType::kPath, "displacement raster (COG from correlate or filter, any GDAL raster)")
          .as_input(),
      ParamDecl::option("trace", ParamType::kPath, "fault trace: a line in any OGR format (GeoJSON, GPKG, SHP...)")
          .mandatory()
          .as_input(),
      ParamDecl::option("east-band", ParamType::kString,
                        "band of the east displacement (description or index; default east_m, or band 1 of a "
                        "one-band raster)"),
      ParamDecl::option("north-band", ParamType::kString,
                        "band of the north displacement (default north_m when present; 'none' = east only)"),
      ParamDecl::option("output", ParamType::kPath, "profile table (CSV)").alias("o").mandatory().as_output("text/csv"),
      ParamDecl::option("gpkg", ParamType::kPath, "profile lines with their offsets (GeoPackage)")
          .as_output("application/geopackage+sqlite3"),
      ParamDecl::option("plot", ParamType::kPath, "offset along strike with error bars (PNG)").as_output("image/png"),
  };
  for (auto& p : g.decls()) op.params.push_back(std::move(p));
  op.examples = {
      "deforma fault-profile EW_Adapazari.tif --trace sapanca_trace.geojson -o offsets.csv --gpkg profiles.gpkg "
      "--plot offsets.png --spacing 2000 --length 10000",
      "deforma fault-profile pair_filtered.tif --trace trace.gpkg -o offsets.csv --width 500 --near-fault 300"};
  op.run = [g](const ParamValues& p, RunContext& context) {
    filter::FaultProfileRun run;
    run.input = p.get_string("input");
    run.trace = p.get_string("trace");
    run.east_band = p.get_string_or("east-band", "");
    run.north_band = p.get_string_or("north-band", "");
    run.output_csv = p.get_string("output");
    run.output_gpkg = p.get_string_or("gpkg", "");
    run.output_plot = p.get_string_or("plot", "");
    g.apply(p, run.options);
    run.options.validate();
    run.command_line = context.command_line;
    run.parameters = p.to_json();
    return filter::fault_profile(run, context);
  };
  registry.add(std::move(op));
}

}  // namespace

void register_workflow_operations(OperationRegistry& registry) {
  register_decompose(registry);
  register_fault_profile(registry);
}

}  // namespace deforma::ops
