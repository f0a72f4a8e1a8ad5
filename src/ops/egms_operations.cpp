// CLI/service operations of the egms module: deforma egms info|fit|reference|calibrate|ortho.
#include <fmt/format.h>

#include "deforma/egms/ortho.hpp"
#include "deforma/egms/processing.hpp"
#include "deforma/egms/quicklook.hpp"
#include "deforma/egms/units.hpp"
#include "deforma/pipeline/unit_registry.hpp"
#include "ops/egms_parameters.hpp"
#include "ops/executor_parameters.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {

using egms::StreamOptions;

// The streaming and time-series model parameters, bound to StreamOptions.
ParamGroup<StreamOptions> egms_stream_parameters() {
  ParamGroup<StreamOptions> g;
  g.bind(&StreamOptions::chunk_points, "chunk-points", "points read, fitted and written per chunk (bounds memory)")
      .between(1, 10000000);
  g.bind([](StreamOptions& o) -> double& { return o.model.days_per_year; }, "days-per-year",
         "t = days since the first date / this; 365 reproduces the EGMS 2020-2024 columns")
      .in_unit("days")
      .between(300, 400);
  g.bind([](StreamOptions& o) -> double& { return o.model.wavelength_mm; }, "wavelength-mm",
         "radar wavelength for the temporal coherence")
      .in_unit("mm")
      .at_least(1);
  g.bind([](StreamOptions& o) -> int& { return o.model.min_dates; }, "min-dates",
         "fewest valid dates to fit a point (fewer: model columns empty)")
      .between(6, 100000);
  return g;
}

ParamGroup<egms::ReferenceOptions> egms_reference_parameters() {
  using egms::ReferenceOptions;
  const ReferenceOptions defaults;
  ParamGroup<ReferenceOptions> g(defaults);
  g.declare(ParamDecl::option("method", ParamType::kChoice,
                              "how the reference is chosen (default: from the parameters given, else auto)")
                .one_of({"auto", "pid", "area", "polygon"}));
  g.bind(&ReferenceOptions::pid, "pid", "reference point (method pid)");
  // The centre and radius have no default: giving one of them selects the area method.
  g.bind(&ReferenceOptions::centre_easting_m, "centre-easting", "area centre, EPSG:3035 (method area)")
      .in_unit("m")
      .defaults_to("");
  g.bind(&ReferenceOptions::centre_northing_m, "centre-northing", "area centre, EPSG:3035 (method area)")
      .in_unit("m")
      .defaults_to("");
  g.declare(ParamDecl::option("centre-lon", ParamType::kDouble, "area centre, WGS84 longitude (method area)")
                .in_unit("degrees")
                .between(-180, 180));
  g.declare(ParamDecl::option("centre-lat", ParamType::kDouble, "area centre, WGS84 latitude (method area)")
                .in_unit("degrees")
                .between(-90, 90));
  g.bind(&ReferenceOptions::radius_m, "radius-m", fmt::format("area radius (method area; default {})", defaults.radius_m))
      .in_unit("m")
      .at_least(0.001)
      .defaults_to("");
  auto& polygon = g.bind(&ReferenceOptions::polygon_path, "polygon", "polygon file, any OGR format (method polygon)");
  polygon.type = ParamType::kPath;
  polygon.as_input();
  g.bind(&ReferenceOptions::auto_cell_m, "auto-cell-m", "cell size searched for a stable area (method auto)")
      .in_unit("m")
      .at_least(1);
  g.bind(&ReferenceOptions::min_points, "min-points", "fewest points making a reference area").at_least(1);
  g.bind(&ReferenceOptions::min_coherence, "min-coherence", "points below are ignored (method auto)").between(0, 1);
  return g;
}

ParamGroup<egms::CalibrateOptions> egms_calibrate_parameters() {
  using egms::CalibrateOptions;
  ParamGroup<CalibrateOptions> g;
  auto& gnss = g.bind(&CalibrateOptions::gnss_path, "gnss",
                      "GNSS station velocities or A-EPND grid (CSV); default: the gnss_velocity column");
  gnss.type = ParamType::kPath;
  gnss.as_input();
  g.bind(&CalibrateOptions::polynomial_order, "polynomial-order", "order of the correction surface").between(0, 2);
  g.bind(&CalibrateOptions::smoothing_wavelength_m, "smoothing-wavelength-m",
         "wavelength of the smoothed remainder; 0 = polynomial only")
      .in_unit("m")
      .at_least(0);
  g.bind(&CalibrateOptions::station_radius_m, "station-radius-m", "points averaged around each station")
      .in_unit("m")
      .at_least(1);
  g.bind(&CalibrateOptions::min_station_points, "min-station-points", "fewest points around a station to use it")
      .at_least(1);
  return g;
}

ParamGroup<egms::OrthoOptions> egms_ortho_parameters() {
  using egms::OrthoOptions;
  ParamGroup<OrthoOptions> g;
  g.bind(&OrthoOptions::cell_size_m, "cell-size-m", "grid cell size").in_unit("m").at_least(1);
  g.bind(&OrthoOptions::max_gap_days, "max-gap-days", "longest gap interpolated on the 6-day grid")
      .in_unit("days")
      .at_least(0);
  g.bind(&OrthoOptions::min_observations, "min-observations", "fewest values per cell and date").at_least(2);
  auto& gnss = g.bind(&OrthoOptions::gnss_north_path, "gnss",
                      "GNSS model giving the north velocity (default: north neglected)");
  gnss.type = ParamType::kPath;
  gnss.as_input();
  g.bind_flag([](OrthoOptions& o) -> bool& { return o.quicklook; }, "quicklook",
              "also draw the grids as PREFIX_U.png and PREFIX_E.png");
  return g;
}

namespace {

using egms::ProductOutputs;
using egms::StreamOptions;

std::vector<ParamDecl> stream_params() { return egms_stream_parameters().decls(); }

std::vector<ParamDecl> output_params() {
  return {ParamDecl::option("output", ParamType::kPath,
                            "product in EGMS layout: .csv (XML beside it) or .zip (CSV + XML)")
              .alias("o")
              .as_output("text/csv"),
          ParamDecl::option("gpkg", ParamType::kPath,
                            "write the points as a GeoPackage layer (attributes with units, series as a JSON "
                            "array), with or without --output")
              .as_output("application/geopackage+sqlite3")};
}

// Operations that exist to produce a product need somewhere to write it: -o, --gpkg or both.
void require_some_output(const ProductOutputs& outputs) {
  if (!outputs.any()) throw InvalidArgument("output: give --output (-o) FILE.zip|FILE.csv, --gpkg FILE.gpkg, or both");
}

StreamOptions stream_options(const ParamValues& p) {
  StreamOptions o;
  egms_stream_parameters().apply(p, o);
  o.validate();
  return o;
}

ProductOutputs product_outputs(const ParamValues& p) {
  return ProductOutputs{p.get_string_or("output", ""), p.get_string_or("gpkg", "")};
}

io::Provenance provenance_of(const ParamValues& p, const RunContext& context) {
  io::Provenance prov;
  prov.command_line = context.command_line;
  prov.parameters = p.to_json();
  return prov;
}

// With --executor slurm and no --unit-points: parts of this many points (about a minute of one CPU).
constexpr std::int64_t kSlurmUnitPoints = 200000;

std::vector<ParamDecl> unit_params() {
  std::vector<ParamDecl> params = {
      ParamDecl::option("unit-points", ParamType::kInt,
                        fmt::format("points of one work unit: the product is cut into parts of about this many "
                                    "points, each processed on its own (one after the other here, or as Slurm "
                                    "tasks with --executor slurm), then concatenated in order "
                                    "(docs/cluster.md); 0 = one pass in this process, or {} with --executor "
                                    "slurm",
                                    kSlurmUnitPoints))
          .defaults_to("0")
          .at_least(0)};
  for (auto& p : executor_parameters()) params.push_back(std::move(p));
  return params;
}

// The unit of a part of `egms fit`, run by `deforma unit run` or the local executor: its typed parameters
// rebuild the StreamOptions through the same declarations.
void register_egms_units() {
  pipeline::register_unit_operation(
      egms::kFitUnitOperation, [](const pipeline::UnitList&, const pipeline::WorkUnit& unit, RunContext& context) {
        if (unit.inputs.empty()) throw FormatError(fmt::format("unit {}: egms fit needs its input", unit.id));
        StreamOptions o;
        try {
          egms_stream_parameters().from_json(unit.parameters.at("stream"), o);
        } catch (const nlohmann::json::exception& e) {
          throw FormatError(fmt::format("unit {}: egms fit parameters: {}", unit.id, e.what()));
        }
        o.validate();
        const auto range = egms::PointRange::from_json(unit.parameters.value("range", nlohmann::json::object()));
        return egms::run_fit_part(unit.inputs.front(), range, o, egms::rows_path_of(unit.output), unit.output,
                                  context);
      });
  pipeline::register_unit_operation(
      egms::kReferenceUnitOperation,
      [](const pipeline::UnitList&, const pipeline::WorkUnit& unit, RunContext& context) {
        if (unit.inputs.empty()) throw FormatError(fmt::format("unit {}: egms reference needs its input", unit.id));
        StreamOptions o;
        try {
          egms_stream_parameters().from_json(unit.parameters.at("stream"), o);
        } catch (const nlohmann::json::exception& e) {
          throw FormatError(fmt::format("unit {}: egms reference parameters: {}", unit.id, e.what()));
        }
        o.validate();
        const auto range = egms::PointRange::from_json(unit.parameters.value("range", nlohmann::json::object()));
        const auto series =
            egms::reference_series_from_json(unit.parameters.value("reference_series", nlohmann::json()));
        return egms::run_reference_part(unit.inputs.front(), range, series, o, egms::rows_path_of(unit.output),
                                        unit.output, context);
      });
}

// How many points a unit takes: --unit-points, or the Slurm default; 0 = no units.
std::int64_t unit_points_of(const ParamValues& p) {
  const std::int64_t unit_points = p.get_int("unit-points");
  return unit_points == 0 && executor_of(p) == "slurm" ? kSlurmUnitPoints : unit_points;
}

egms::UnitExecution unit_execution(const ParamValues& p, const StreamOptions& o) {
  egms::UnitExecution execution;
  execution.unit_points = static_cast<std::size_t>(unit_points_of(p));
  execution.executor = executor_of(p);
  execution.slurm = slurm_options_of(p);
  execution.stream_parameters = egms_stream_parameters().to_json(o);
  return execution;
}

template <typename... Lists>
std::vector<ParamDecl> concat(std::vector<ParamDecl> first, Lists... rest) {
  (first.insert(first.end(), rest.begin(), rest.end()), ...);
  return first;
}

}  // namespace

void register_egms_operations(OperationRegistry& registry) {
  register_egms_units();
  registry.describe_group("egms",
                          "European Ground Motion Service (Copernicus) point products, CSV or zip: inspect, "
                          "refit, re-reference (Basic L2a), calibrate to GNSS (Calibrated L2b), combine "
                          "ascending + descending (Ortho L3); docs/egms.md");
  {
    OperationDecl op;
    op.name = "egms info";
    op.quick = true;
    op.summary = "Describe an EGMS point product: level, burst, points, dates, columns, extent";
    op.description =
        "Reads an EGMS product (CSV or zip, L2a/L2b/L3, either column naming) once, streamed, and reports "
        "its "
        "metadata, point and date counts, missing values, extent, velocity range, and whether the los_* "
        "vector "
        "agrees with incidence_angle and track_angle.";
    op.params = concat({ParamDecl::argument("file", ParamType::kPath, "EGMS product (.zip or .csv)").as_input()},
                       std::vector<ParamDecl>{stream_params()[0]});
    op.examples = {"deforma egms info EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip"};
    op.run = [](const ParamValues& p, RunContext& context) {
      StreamOptions o;
      egms_stream_parameters().apply(p, o);  // chunk-points only: the others are not declared here
      o.validate();
      return egms::describe_product(p.get_string("file"), context, o);
    };
    registry.add(std::move(op));
  }
  {
    OperationDecl op;
    op.name = "egms fit";
    op.summary = "Recompute the EGMS model columns (velocity, acceleration, seasonality, rmse, coherence)";
    op.description =
        "Fits the EGMS time-series models to every point and compares the results with the file's own "
        "columns "
        "(median, 95th percentile and maximum of |difference| per column). With --output/--gpkg, writes the "
        "product with the recomputed columns.";
    op.params = concat({ParamDecl::argument("file", ParamType::kPath, "EGMS product (.zip or .csv)").as_input()},
                       output_params(), stream_params(),
                       std::vector<ParamDecl>{ParamDecl::option("quicklook", ParamType::kPath,
                                                                "also draw a PNG map of the points coloured by "
                                                                "their mean velocity")
                                                  .as_output("image/png")},
                       unit_params());
    op.examples = {"deforma egms fit EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip",
                   "deforma egms fit burst.zip -o refit.zip --gpkg refit.gpkg --quicklook refit.png",
                   "deforma egms fit country.csv -o refit.csv --executor slurm --unit-points 500000 "
                   "--max-parallel 100"};
    op.run = [](const ParamValues& p, RunContext& context) {
      Summary summary;
      if (unit_points_of(p) > 0) {
        const StreamOptions o = stream_options(p);
        summary = egms::run_fit_units(p.get_string("file"), product_outputs(p), o, unit_execution(p, o), context,
                                      provenance_of(p, context));
      } else {
        summary = egms::run_fit(p.get_string("file"), product_outputs(p), stream_options(p), context,
                                provenance_of(p, context));
      }
      if (p.has("quicklook")) {
        // The input's mean_velocity: the refitted product is only committed once the run succeeds.
        egms::write_velocity_map(p.get_string("file"), p.get_string("quicklook"));
        summary.outputs.push_back(p.get_string("quicklook"));
      }
      return summary;
    };
    registry.add(std::move(op));
  }
  {
    OperationDecl op;
    op.name = "egms reference";
    op.summary = "Basic level: re-reference a product to a point, an area, a polygon or a stable area";
    op.description =
        "Subtracts from every series the mean series of the reference points and refits the model columns. "
        "The method follows from the parameters given (or --method): pid, one point (--pid); area, the "
        "points within --radius-m of a centre given in EPSG:3035 (--centre-easting/--centre-northing) or "
        "in WGS84 (--centre-lon/--centre-lat); polygon, the points inside --polygon; auto (no such "
        "parameter), the square cell of --auto-cell-m whose points (coherence >= --min-coherence, at least "
        "--min-points) have the most uniform mean velocity. Parameters of two methods are refused. The "
        "reference is recorded in the output metadata.";
    op.params = concat(
        {ParamDecl::argument("file", ParamType::kPath, "EGMS product (.zip or .csv)").as_input()}, output_params(),
        egms_reference_parameters().decls(),
        stream_params(), unit_params());
    op.examples = {
        "deforma egms reference burst.zip -o burst_ref.zip",
        "deforma egms reference burst.zip --method pid --pid 166ax5Ofja -o burst_ref.csv",
        "deforma egms reference burst.zip --centre-easting 4599000 --centre-northing 1740000 --radius-m 200 "
        "-o burst_ref.zip",
        "deforma egms reference burst.zip --centre-lon 13.18 --centre-lat 38.71 --radius-m 200 --gpkg "
        "burst_ref.gpkg"};
    op.run = [](const ParamValues& p, RunContext& context) {
      egms::ReferenceOptions r;
      egms_reference_parameters().apply(p, r);
      const bool centre_3035 = p.has("centre-easting") || p.has("centre-northing");
      const bool centre_lonlat = p.has("centre-lon") || p.has("centre-lat");
      // Which method the parameters given point to; a user who gives an area's centre means that area.
      std::vector<std::pair<std::string, std::string>> implied;  // (method, the options that imply it)
      if (centre_3035 || centre_lonlat || p.has("radius-m")) {
        implied.emplace_back("area", "--centre-*/--radius-m");
      }
      if (p.has("pid")) implied.emplace_back("pid", "--pid");
      if (p.has("polygon")) implied.emplace_back("polygon", "--polygon");
      if (implied.size() > 1) {
        throw InvalidArgument(fmt::format("method: {} and {} select different references ({} and {}); give "
                                          "the parameters of one method",
                                          implied[0].second, implied[1].second, implied[0].first,
                                          implied[1].first));
      }
      std::string method = p.get_string_or("method", "");
      if (method.empty()) {
        method = implied.empty() ? "auto" : implied.front().first;
      } else if (!implied.empty() && implied.front().first != method) {
        throw InvalidArgument(fmt::format("method: --method {} conflicts with {} (parameters of method {})",
                                          method, implied.front().second, implied.front().first));
      }
      r.method = method == "pid"       ? egms::ReferenceMethod::kPid
                 : method == "area"    ? egms::ReferenceMethod::kArea
                 : method == "polygon" ? egms::ReferenceMethod::kPolygon
                                       : egms::ReferenceMethod::kAuto;
      if (r.method == egms::ReferenceMethod::kArea) {
        if (centre_3035 && centre_lonlat) {
          throw InvalidArgument(
              "centre: give it either in EPSG:3035 (--centre-easting/--centre-northing) or in WGS84 "
              "(--centre-lon/--centre-lat), not both");
        }
        if (centre_lonlat) {
          if (!p.has("centre-lon") || !p.has("centre-lat")) {
            throw InvalidArgument("centre-lon, centre-lat: both are needed for an area centre in WGS84");
          }
          egms::lonlat_to_epsg3035(p.get_double("centre-lon"), p.get_double("centre-lat"), r.centre_easting_m,
                                   r.centre_northing_m);
        } else if (!p.has("centre-easting") || !p.has("centre-northing")) {
          throw InvalidArgument(
              "centre-easting, centre-northing: both are needed with method area (or give "
              "--centre-lon/--centre-lat)");
        }
      }
      require_some_output(product_outputs(p));
      if (unit_points_of(p) > 0) {
        const StreamOptions o = stream_options(p);
        return egms::run_reference_units(p.get_string("file"), r, product_outputs(p), o, unit_execution(p, o),
                                         context, provenance_of(p, context));
      }
      return egms::run_reference(p.get_string("file"), r, product_outputs(p), stream_options(p), context,
                                 provenance_of(p, context));
    };
    registry.add(std::move(op));
  }
  {
    OperationDecl op;
    op.name = "egms calibrate";
    op.summary = "Calibrated level: tie LOS velocities to GNSS (stations, A-EPND grid, or gnss_velocity)";
    op.description =
        "Projects GNSS velocities on each point's line of sight (los_east/north/up), models the InSAR - GNSS "
        "residual as a polynomial in easting/northing plus a Gaussian smoothing of what it leaves (response "
        "1/2 "
        "at --smoothing-wavelength-m), and removes it from velocities and series. Without --gnss the "
        "product's "
        "gnss_velocity column is used. Station files are compared with the mean of the points within "
        "--station-radius-m of each station; a gridded model is interpolated at every point. The report "
        "gives "
        "residuals before and after (per station for station files).";
    op.params = concat(
        {ParamDecl::argument("file", ParamType::kPath, "EGMS product (.zip or .csv)").as_input()}, output_params(),
        egms_calibrate_parameters().decls(),
        stream_params());
    op.examples = {
        "deforma egms calibrate burst_L2a.zip -o burst_L2b.zip",
        "deforma egms calibrate burst_L2a.zip --gnss stations.csv --polynomial-order 1 -o burst_L2b.zip"};
    op.run = [](const ParamValues& p, RunContext& context) {
      egms::CalibrateOptions c;
      egms_calibrate_parameters().apply(p, c);
      if (!c.gnss_path.empty()) c.source = egms::GnssSource::kFile;
      require_some_output(product_outputs(p));
      return egms::run_calibrate(p.get_string("file"), c, product_outputs(p), stream_options(p), context,
                                 provenance_of(p, context));
    };
    registry.add(std::move(op));
  }
  {
    OperationDecl op;
    op.name = "egms ortho";
    op.summary =
        "Ortho level: vertical and east-west motion on a 100 m EPSG:3035 grid from ascending + descending";
    op.description =
        "Resamples both datasets to EGMS's 6-day grid (origin 2014-04-03; gaps up to --max-gap-days "
        "interpolated), bins points into cells aligned on --cell-size-m, and solves d = e*los_east + "
        "u*los_up per "
        "cell and date where both geometries have values (at least --min-observations). Writes PREFIX_U.tif "
        "and "
        "PREFIX_E.tif (mean velocity COGs, nodata -9999) and PREFIX_U.csv / PREFIX_E.csv in the EGMS L3 "
        "layout.";
    op.params = concat(
        {ParamDecl::argument("products", ParamType::kList,
                             "the ascending then the descending EGMS product (.zip or .csv)").as_input()},
        std::vector<ParamDecl>{
            ParamDecl::option("output", ParamType::kPath, "output prefix (PREFIX_U.tif, PREFIX_E.csv, ...)")
                .alias("o")
                .as_output("application/x-deforma-prefix")
                .mandatory()},
        egms_ortho_parameters().decls(),
        stream_params());
    op.examples = {
        "deforma egms ortho EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip "
        "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip -o ustica"};
    op.run = [](const ParamValues& p, RunContext& context) {
      egms::OrthoOptions o;
      egms_ortho_parameters().apply(p, o);
      const auto products = p.get_list("products");
      if (products.size() != 2) {
        throw InvalidArgument(
            fmt::format("products: expected 2 files (ascending, descending), got {}", products.size()));
      }
      return egms::run_ortho(products[0], products[1], p.get_string("output"), o, stream_options(p), context,
                             provenance_of(p, context));
    };
    registry.add(std::move(op));
  }
}

}  // namespace deforma::ops
