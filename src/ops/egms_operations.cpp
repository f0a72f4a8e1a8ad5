// CLI/service operations of the egms module: deforma egms info|fit|reference|calibrate|ortho.
#include <fmt/format.h>

#include "deforma/egms/ortho.hpp"
#include "deforma/egms/processing.hpp"
#include "deforma/egms/quicklook.hpp"
#include "ops/egms_parameters.hpp"
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

template <typename... Lists>
std::vector<ParamDecl> concat(std::vector<ParamDecl> first, Lists... rest) {
  (first.insert(first.end(), rest.begin(), rest.end()), ...);
  return first;
}

}  // namespace

void register_egms_operations(OperationRegistry& registry) {
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
                                                  .as_output("image/png")});
    op.examples = {"deforma egms fit EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip",
                   "deforma egms fit burst.zip -o refit.zip --gpkg refit.gpkg --quicklook refit.png"};
    op.run = [](const ParamValues& p, RunContext& context) {
      auto summary = egms::run_fit(p.get_string("file"), product_outputs(p), stream_options(p), context,
                                   provenance_of(p, context));
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
        std::vector<ParamDecl>{
            ParamDecl::option("method", ParamType::kChoice,
                              "how the reference is chosen (default: from the parameters given, else auto)")
                .one_of({"auto", "pid", "area", "polygon"}),
            ParamDecl::option("pid", ParamType::kString, "reference point (method pid)"),
            ParamDecl::option("centre-easting", ParamType::kDouble, "area centre, EPSG:3035 (method area)")
                .in_unit("m"),
            ParamDecl::option("centre-northing", ParamType::kDouble, "area centre, EPSG:3035 (method area)")
                .in_unit("m"),
            ParamDecl::option("centre-lon", ParamType::kDouble, "area centre, WGS84 longitude (method area)")
                .in_unit("degrees")
                .between(-180, 180),
            ParamDecl::option("centre-lat", ParamType::kDouble, "area centre, WGS84 latitude (method area)")
                .in_unit("degrees")
                .between(-90, 90),
            ParamDecl::option("radius-m", ParamType::kDouble, "area radius (method area; default 100)")
                .in_unit("m")
                .at_least(0.001),
            ParamDecl::option("polygon", ParamType::kPath, "polygon file, any OGR format (method polygon)").as_input(),
            ParamDecl::option("auto-cell-m", ParamType::kDouble,
                              "cell size searched for a stable area (method auto)")
                .in_unit("m")
                .defaults_to("250")
                .at_least(1),
            ParamDecl::option("min-points", ParamType::kInt, "fewest points making a reference area")
                .defaults_to("10")
                .at_least(1),
            ParamDecl::option("min-coherence", ParamType::kDouble, "points below are ignored (method auto)")
                .defaults_to("0.8")
                .between(0, 1),
        },
        stream_params());
    op.examples = {
        "deforma egms reference burst.zip -o burst_ref.zip",
        "deforma egms reference burst.zip --method pid --pid 166ax5Ofja -o burst_ref.csv",
        "deforma egms reference burst.zip --centre-easting 4599000 --centre-northing 1740000 --radius-m 200 "
        "-o burst_ref.zip",
        "deforma egms reference burst.zip --centre-lon 13.18 --centre-lat 38.71 --radius-m 200 --gpkg "
        "burst_ref.gpkg"};
    op.run = [](const ParamValues& p, RunContext& context) {
      egms::ReferenceOptions r;
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
      r.pid = p.get_string_or("pid", "");
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
        } else {
          if (!p.has("centre-easting") || !p.has("centre-northing")) {
            throw InvalidArgument(
                "centre-easting, centre-northing: both are needed with method area (or give "
                "--centre-lon/--centre-lat)");
          }
          r.centre_easting_m = p.get_double("centre-easting");
          r.centre_northing_m = p.get_double("centre-northing");
        }
      }
      if (p.has("radius-m")) r.radius_m = p.get_double("radius-m");
      r.polygon_path = p.get_string_or("polygon", "");
      r.auto_cell_m = p.get_double("auto-cell-m");
      r.min_points = static_cast<int>(p.get_int("min-points"));
      r.min_coherence = p.get_double("min-coherence");
      require_some_output(product_outputs(p));
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
        std::vector<ParamDecl>{
            ParamDecl::option(
                "gnss", ParamType::kPath,
                "GNSS station velocities or A-EPND grid (CSV); default: the gnss_velocity column").as_input(),
            ParamDecl::option("polynomial-order", ParamType::kInt, "order of the correction surface")
                .defaults_to("1")
                .between(0, 2),
            ParamDecl::option("smoothing-wavelength-m", ParamType::kDouble,
                              "wavelength of the smoothed remainder; 0 = polynomial only")
                .in_unit("m")
                .defaults_to("50000")
                .at_least(0),
            ParamDecl::option("station-radius-m", ParamType::kDouble, "points averaged around each station")
                .in_unit("m")
                .defaults_to("500")
                .at_least(1),
            ParamDecl::option("min-station-points", ParamType::kInt,
                              "fewest points around a station to use it")
                .defaults_to("3")
                .at_least(1),
        },
        stream_params());
    op.examples = {
        "deforma egms calibrate burst_L2a.zip -o burst_L2b.zip",
        "deforma egms calibrate burst_L2a.zip --gnss stations.csv --polynomial-order 1 -o burst_L2b.zip"};
    op.run = [](const ParamValues& p, RunContext& context) {
      egms::CalibrateOptions c;
      if (p.has("gnss") && !p.get_string("gnss").empty()) {
        c.source = egms::GnssSource::kFile;
        c.gnss_path = p.get_string("gnss");
      }
      c.polynomial_order = static_cast<int>(p.get_int("polynomial-order"));
      c.smoothing_wavelength_m = p.get_double("smoothing-wavelength-m");
      c.station_radius_m = p.get_double("station-radius-m");
      c.min_station_points = static_cast<int>(p.get_int("min-station-points"));
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
                .mandatory(),
            ParamDecl::option("cell-size-m", ParamType::kDouble, "grid cell size")
                .in_unit("m")
                .defaults_to("100")
                .at_least(1),
            ParamDecl::option("max-gap-days", ParamType::kInt, "longest gap interpolated on the 6-day grid")
                .in_unit("days")
                .defaults_to("90")
                .at_least(0),
            ParamDecl::option("min-observations", ParamType::kInt, "fewest values per cell and date")
                .defaults_to("3")
                .at_least(2),
            ParamDecl::option("gnss", ParamType::kPath,
                              "GNSS model giving the north velocity (default: north neglected)").as_input(),
            ParamDecl::option("quicklook", ParamType::kBool,
                              "also draw the grids as PREFIX_U.png and PREFIX_E.png"),
        },
        stream_params());
    op.examples = {
        "deforma egms ortho EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip "
        "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip -o ustica"};
    op.run = [](const ParamValues& p, RunContext& context) {
      egms::OrthoOptions o;
      o.cell_size_m = p.get_double("cell-size-m");
      o.max_gap_days = static_cast<int>(p.get_int("max-gap-days"));
      o.min_observations = static_cast<int>(p.get_int("min-observations"));
      o.gnss_north_path = p.get_string_or("gnss", "");
      o.quicklook = p.get_bool("quicklook");
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
