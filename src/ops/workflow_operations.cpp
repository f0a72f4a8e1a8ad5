// Field workflows built on the engine: 3-D displacement from several geometries (`decompose`) and
// co-seismic offsets along a fault trace (`fault-profile`).
#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/format.h>
#include <ogr_spatialref.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/gridded_series.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/filter/fault_profile.hpp"
#include "deforma/timeseries/decompose.hpp"
#include "ops/registration.hpp"
#include "ops/workflow_parameters.hpp"

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

// The points of an EGMS L2a/L2b product that decompose needs, positions in EPSG:3035 metres, velocities
// and sigmas in m/yr.
struct EgmsPoints {
  std::string path;
  std::vector<double> x, y, east, north, up, velocity, sigma;
};

EgmsPoints read_egms_points(const std::string& path, const std::string& sigma) {
  EgmsPoints p;
  p.path = path;
  auto reader = egms::ProductReader::open(path);
  const auto& layout = reader.layout();
  const std::string purpose = "decompose (--egms)";
  const int cx = layout.require(egms::column::kEasting, purpose);
  const int cy = layout.require(egms::column::kNorthing, purpose);
  const int ce = layout.require(egms::column::kLosEast, purpose);
  const int cn = layout.require(egms::column::kLosNorth, purpose);
  const int cu = layout.require(egms::column::kLosUp, purpose);
  const int cv = layout.require(egms::column::kMeanVelocity, purpose);
  char* end = nullptr;
  const double constant = std::strtod(sigma.c_str(), &end);
  const bool is_constant = end != sigma.c_str() && *end == '\0';
  if (is_constant && !(constant > 0)) {
    throw InvalidArgument(
        fmt::format("--egms-sigma {} for {}: expected a positive number (mm/yr) or a column", sigma, path));
  }
  const int cs = is_constant ? -1 : layout.require(egms::canonical_column_name(sigma), "--egms-sigma");
  egms::PointChunk chunk;
  while (reader.read(chunk, 65536)) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      p.x.push_back(chunk.scalar(i, cx));
      p.y.push_back(chunk.scalar(i, cy));
      p.east.push_back(chunk.scalar(i, ce));
      p.north.push_back(chunk.scalar(i, cn));
      p.up.push_back(chunk.scalar(i, cu));
      // EGMS velocities are mm/yr; decompose works in m/yr so that optical velocities combine with them.
      p.velocity.push_back(chunk.scalar(i, cv) * 1e-3);
      p.sigma.push_back((is_constant ? constant : chunk.scalar(i, cs)) * 1e-3);
    }
  }
  if (p.x.empty()) throw FormatError(fmt::format("{}: no point", path));
  return p;
}

// A grid in EPSG:3035 over the points' extent, cells aligned on multiples of the resolution.
io::RasterInfo grid_over_points(const std::vector<EgmsPoints>& products, double resolution) {
  std::vector<egms::PointExtent> extents;
  for (const auto& p : products) {
    egms::PointExtent e{p.x.front(), p.x.front(), p.y.front(), p.y.front()};
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      e.min_easting = std::min(e.min_easting, p.x[i]), e.max_easting = std::max(e.max_easting, p.x[i]);
      e.min_northing = std::min(e.min_northing, p.y[i]), e.max_northing = std::max(e.max_northing, p.y[i]);
    }
    extents.push_back(e);
  }
  return egms::grid_over_extent(extents, resolution);
}

// The points of one product averaged per cell of the grid: velocity and unit vector by their mean, sigma by
// the RMS of the points' sigmas (points of one cell share most of their errors, so n points are not n
// independent measurements).
timeseries::Observation grid_egms_points(const EgmsPoints& p, const io::RasterInfo& grid) {
  if (grid.crs_wkt.empty()) {
    throw InvalidArgument(fmt::format(
        "--egms {}: the common grid ({}) has no CRS to place EPSG:3035 points on", p.path, grid.path));
  }
  std::vector<double> x = p.x, y = p.y;
  OGRSpatialReference from, to;
  from.importFromEPSG(3035);
  from.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  to.importFromWkt(grid.crs_wkt.c_str());
  to.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  if (!from.IsSame(&to)) {
    std::unique_ptr<OGRCoordinateTransformation> t(OGRCreateCoordinateTransformation(&from, &to));
    if (!t || !t->Transform(x.size(), x.data(), y.data())) {
      throw InvalidArgument(fmt::format(
          "--egms {}: cannot transform its EPSG:3035 positions to the CRS of {}", p.path, grid.path));
    }
  }
  const int w = grid.width, h = grid.height;
  timeseries::Observation o;
  o.label = p.path + " (EGMS)";
  o.value = GridF(w, h, 0.f);
  o.valid = GridU8(w, h, 0);
  o.sigma = GridF(w, h, 0.f);
  o.east = GridF(w, h, 0.f);
  o.north = GridF(w, h, 0.f);
  o.up = GridF(w, h, 0.f);
  Grid<int> count(w, h, 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    double col = 0, row = 0;
    grid.geotransform.map_to_pixel(x[i], y[i], col, row);
    const int c = static_cast<int>(std::floor(col));
    const int r = static_cast<int>(std::floor(row));
    if (!count.contains(c, r) || !std::isfinite(p.velocity[i]) || !(p.sigma[i] > 0)) continue;
    ++count(c, r);
    o.value(c, r) += static_cast<float>(p.velocity[i]);
    o.sigma(c, r) += static_cast<float>(p.sigma[i] * p.sigma[i]);
    o.east(c, r) += static_cast<float>(p.east[i]);
    o.north(c, r) += static_cast<float>(p.north[i]);
    o.up(c, r) += static_cast<float>(p.up[i]);
  }
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const int n = count(c, r);
      if (n == 0) continue;
      const double norm = std::hypot(o.east(c, r), o.north(c, r), o.up(c, r));
      if (!(norm > 0)) continue;
      o.value(c, r) /= static_cast<float>(n);
      o.sigma(c, r) = std::sqrt(o.sigma(c, r) / static_cast<float>(n));
      o.east(c, r) = static_cast<float>(o.east(c, r) / norm);
      o.north(c, r) = static_cast<float>(o.north(c, r) / norm);
      o.up(c, r) = static_cast<float>(o.up(c, r) / norm);
      o.valid(c, r) = 1;
    }
  }
  return o;
}

}  // namespace

ParamGroup<timeseries::DecomposeOptions> decompose_parameters() {
  using timeseries::DecomposeOptions;
  ParamGroup<DecomposeOptions> g;
  g.bind(&DecomposeOptions::max_condition, "max-condition",
         "directions weaker than the strongest over this ratio are taken as missing")
      .between(1, 1e6);
  g.bind_flag([](DecomposeOptions& o) -> bool& { return o.north_zero; }, "north-zero",
              "neglect north (as EGMS Ortho): east and up from geometries that cannot see north, north left "
              "nodata");
  return g;
}

ParamGroup<timeseries::SeriesOptions> decompose_series_parameters() {
  using timeseries::SeriesOptions;
  ParamGroup<SeriesOptions> g;
  g.bind(&SeriesOptions::regularization, "regularization",
         "weight of the velocity-change penalty relative to a pair of the cell's median sigma")
      .between(0, 100);
  g.bind([](SeriesOptions& o) -> double& { return o.geometry.max_condition; }, "max-condition",
         "directions weaker than the strongest over this ratio are taken as missing")
      .between(1, 1e6);
  g.bind_flag([](SeriesOptions& o) -> bool& { return o.geometry.north_zero; }, "north-zero",
              "neglect north (east and up from looks that cannot see it)");
  g.bind_choice([](SeriesOptions& o) -> timeseries::RobustLoss& { return o.robust; }, "robust",
                "outlier pairs: iteratively reweighted least squares with Tukey's (gross outliers get zero "
                "weight) or Huber's weights (downweighted), or none",
                {"none", "tukey", "huber"},
                [](const std::string& text) { return timeseries::parse_robust_loss(text); },
                [](timeseries::RobustLoss r) {
                  return std::string(r == timeseries::RobustLoss::kTukey   ? "tukey"
                                     : r == timeseries::RobustLoss::kHuber ? "huber"
                                                                           : "none");
                });
  return g;
}

ParamGroup<filter::FaultProfileOptions> fault_profile_parameters() {
  using filter::FaultProfileOptions;
  ParamGroup<FaultProfileOptions> g;
  g.bind(&FaultProfileOptions::spacing_m, "spacing", "distance between profiles along the trace (S)")
      .in_unit("m")
      .between(1, 1e6);
  g.bind(&FaultProfileOptions::width_m, "width",
         "width of each profile along strike, over which cells are stacked (W)")
      .in_unit("m")
      .between(1, 1e6);
  g.bind(&FaultProfileOptions::length_m, "length",
         "length of each profile across the trace, centred on it (L)")
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
  g.bind(&FaultProfileOptions::robust_iterations, "robust-iterations", "line fits: most refits")
      .between(0, 50);
  return g;
}

namespace {

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
      "(1 no measurement, 2/4/8 east/north/up unresolved, 16 ill-conditioned, 32 up from the "
      "surface-parallel "
      "flow assumption with --dem). All products must be in the same unit (m, or m/yr).";
  op.params = {
      ParamDecl::option(
          "optical", ParamType::kList,
          "optical displacement or velocity products (deforma correlate COGs), east and north bands")
          .as_input(),
      ParamDecl::option("optical-bands", ParamType::kString,
                        "east and north bands of the optical products (descriptions or indices)")
          .defaults_to("east_m,north_m"),
      ParamDecl::option(
          "optical-sigma", ParamType::kList,
          "standard deviation of the optical components: a number or a band; one for all or one per "
          "product")
          .defaults_to("0.5"),
      ParamDecl::option("los", ParamType::kList,
                        "line-of-sight products (InSAR, SAR offsets), positive towards the sensor")
          .as_input(),
      ParamDecl::option("los-band", ParamType::kString,
                        "band of the line-of-sight value (description or index)")
          .defaults_to("1"),
      ParamDecl::option(
          "los-geometry", ParamType::kList,
          "unit vector ground to sensor: 'bands' (los_east, los_north, los_up), 'angles' "
          "(incidence_deg, heading_deg bands), E,N,U or INCIDENCE/HEADING (degrees); one for all "
          "or one per product")
          .defaults_to("bands"),
      ParamDecl::option(
          "los-sigma", ParamType::kList,
          "standard deviation of the line-of-sight values: a number or a band; one for all or one per "
          "product")
          .defaults_to("0.005"),
      ParamDecl::option("egms", ParamType::kList,
                        "EGMS L2a/L2b products (CSV or zip): mean_velocity along los_east/los_north/los_up, "
                        "averaged per cell, in m/yr")
          .as_input(),
      ParamDecl::option(
          "egms-sigma", ParamType::kList,
          "standard deviation of the EGMS velocities: a column or a number in mm/yr; one for all or one "
          "per product")
          .defaults_to("mean_velocity_std"),
      ParamDecl::option(
          "dem", ParamType::kPath,
          "DEM for the surface-parallel flow assumption: up = east dz/dx + north dz/dy where only "
          "horizontal motion is measured")
          .as_input(),
      ParamDecl::option("grid", ParamType::kPath,
                        "raster whose grid the output takes (default: the first product)")
          .as_input(),
      ParamDecl::option("resolution", ParamType::kDouble,
                        "cell size of the output over the grid's extent (default: the grid's own)")
          .in_unit("CRS units")
          .at_least(0),
      ParamDecl::option("output", ParamType::kPath, "3-D displacement (COG)")
          .alias("o")
          .mandatory()
          .as_output(kCogMediaType),
  };
  {
    // north-zero and max-condition, in the places they had (after --egms-sigma; before --output).
    const auto bound = decompose_parameters().decls();
    const auto at = [&](const std::string& name) {
      return std::find_if(op.params.begin(), op.params.end(), [&](const ParamDecl& d) { return d.name == name; });
    };
    op.params.insert(at("output"), bound[0]);
    op.params.insert(at("dem"), bound[1]);
  }
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
      throw InvalidArgument(
          fmt::format("--optical-bands '{}': expected EAST,NORTH (descriptions or indices)", bands));
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
    const auto egms_paths = list_or_empty(p, "egms");
    std::vector<EgmsPoints> points;
    for (std::size_t i = 0; i < egms_paths.size(); ++i) {
      points.push_back(read_egms_points(
          egms_paths[i], per_product(p.get_list("egms-sigma"), i, egms_paths.size(), "egms-sigma")));
    }
    run.grid_path = p.get_string_or("grid", "");
    run.resolution = p.has("resolution") ? p.get_double("resolution") : 0.0;
    if (!points.empty()) {
      if (optical.empty() && los.empty() && run.grid_path.empty()) {
        if (!(run.resolution > 0)) {
          throw InvalidArgument(
              "--resolution: EGMS points alone need a cell size (metres of EPSG:3035) or --grid");
        }
        run.grid = grid_over_points(points, run.resolution);
      }
      const io::RasterInfo grid = timeseries::decompose_grid(run);
      for (const auto& pts : points) {
        run.gridded.push_back(grid_egms_points(pts, grid));
        run.gridded_paths.push_back(pts.path);
      }
    }
    decompose_parameters().apply(p, run.options);
    run.dem_path = p.get_string_or("dem", "");
    run.output = p.get_string("output");
    run.command_line = context.command_line;
    run.parameters = p.to_json();
    return timeseries::decompose_rasters(run, context);
  };
  registry.add(std::move(op));
}

void register_decompose_series(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "decompose-series";
  op.summary =
      "Joint (MSBAS-style) inversion of pairs from several geometries into east/north/up time series";
  op.description =
      "Reads a pair table (CSV: ref_date, sec_date, path, kind, geometry, look, band, sigma; see "
      "docs/decompose.md) whose rows are pair measurements from several geometries and sensors: "
      "line-of-sight "
      "rasters (kind los, one value along the look vector) and optical offsets (kind optical, east and north "
      "bands), and/or EGMS point products (--egms) whose series, averaged per cell, enter as pairs from "
      "each product's first date to every other date. Each is the projection of the 3-D displacement between "
      "its dates; all are inverted together "
      "per "
      "cell for the velocities of the intervals between consecutive dates of the union of dates, with "
      "invert's "
      "weak penalty on velocity changes, in the directions the cell's geometries resolve (the others nodata, "
      "flagged as by decompose). Writes east.tif, north.tif, up.tif and their _sigma cubes (one band per "
      "date), "
      "velocity.tif and the CF NetCDF cube decompose_series.nc.";
  op.params = {
      ParamDecl::argument("pairs", ParamType::kPath, "pair table (CSV); optional with --egms")
          .optional()
          .as_input(),
      ParamDecl::option("egms", ParamType::kList,
                        "EGMS L2a/L2b products (CSV or zip; Ortho L3 U/E products too): per-date LOS "
                        "displacements, averaged per cell, in m")
          .as_input(),
      ParamDecl::option("egms-sigma", ParamType::kList,
                        "standard deviation of one date's EGMS displacement: a column or a number in mm; one "
                        "for all or one per product")
          .defaults_to("rmse"),
      ParamDecl::option("output", ParamType::kPath, "output folder (created if missing)")
          .alias("o")
          .mandatory()
          .as_output("inode/directory"),
      ParamDecl::option("grid", ParamType::kPath,
                        "raster whose grid the outputs take (default: the first pair's)")
          .as_input(),
      ParamDecl::option("resolution", ParamType::kDouble,
                        "with EGMS products and no pair table or --grid: cell size of an EPSG:3035 grid over "
                        "the points")
          .in_unit("m")
          .at_least(0),
  };
  for (auto& d : decompose_series_parameters().decls()) op.params.push_back(std::move(d));
  op.params.push_back(ParamDecl::option("no-netcdf", ParamType::kBool, "do not write the NetCDF cube"));
  op.examples = {"deforma decompose-series pairs_3d.csv -o out/series3d",
                 "deforma decompose-series --egms EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip "
                 "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip --north-zero --resolution 100 -o out/ustica",
                 "deforma decompose-series sar_pairs.csv -o out/eu --north-zero --regularization 0.1"};
  op.run = [](const ParamValues& p, RunContext& context) {
    timeseries::DecomposeSeriesRun run;
    const std::string table = p.get_string_or("pairs", "");
    const auto egms_paths = list_or_empty(p, "egms");
    if (table.empty() && egms_paths.empty()) {
      throw InvalidArgument("decompose-series: give a pair table, EGMS products (--egms), or both");
    }
    if (!table.empty()) {
      run.pairs = timeseries::read_series_table(table);
      run.extra_inputs = {table};
    }
    std::vector<egms::PointExtent> extents;
    for (std::size_t i = 0; i < egms_paths.size(); ++i) {
      auto source = std::make_shared<egms::PointSeriesSource>(
          egms_paths[i], per_product(p.get_list("egms-sigma"), i, egms_paths.size(), "egms-sigma"));
      extents.push_back(source->extent());
      run.series.push_back(std::move(source));
    }
    run.grid_path = p.get_string_or("grid", "");
    const double resolution = p.has("resolution") ? p.get_double("resolution") : 0.0;
    if (resolution > 0) {
      if (!run.pairs.empty() || !run.grid_path.empty() || extents.empty()) {
        throw InvalidArgument(
            "--resolution: only for EGMS products alone (a pair table or --grid gives the grid)");
      }
      run.grid = egms::grid_over_extent(extents, resolution);
    } else if (run.pairs.empty() && run.grid_path.empty()) {
      throw InvalidArgument(
          "--resolution: EGMS products alone need a cell size (metres of EPSG:3035) or --grid");
    }
    run.output_dir = p.get_string("output");
    decompose_series_parameters().apply(p, run.options);
    run.netcdf = !p.get_bool("no-netcdf");
    run.command_line = context.command_line;
    run.parameters = p.to_json();
    return timeseries::decompose_series_rasters(run, context);
  };
  registry.add(std::move(op));
}

void register_fault_profile(OperationRegistry& registry) {
  const auto g = fault_profile_parameters();
  OperationDecl op;
  op.name = "fault-profile";
  op.summary =
      "Offsets across a fault trace from stacked profiles: fault-parallel and perpendicular, with sigma";
  op.description =
      "Every --spacing metres along the trace (the longest line of --trace, any OGR format, reprojected to "
      "the "
      "raster's CRS), stacks the cells of a box --width metres along strike and --length metres across into "
      "one profile (or along the trace found automatically with --auto-trace, the ridge of the displacement "
      "step), fits a robust line on each side outside --near-fault metres, and takes the offset at the "
      "trace: left side minus right side looking along the trace, on the local strike (fault-parallel, > 0 "
      "right-lateral) and its normal (fault-perpendicular, > 0 shortening). Reads the east band (east_m, or "
      "band 1 of a one-band raster) and the north band when there is one; with east only, the fault-parallel "
      "offset assumes motion along the trace and the perpendicular one is not measured. Geographic rasters "
      "are "
      "profiled in a local azimuthal equidistant frame. Writes a CSV (one row per profile), optionally a "
      "GeoPackage of the profile lines with their offsets and a PNG of the offset along strike with error "
      "bars.";
  op.params = {
      ParamDecl::argument("input", ParamType::kPath,
                          "displacement raster (COG from correlate or filter, any GDAL raster)")
          .as_input(),
      ParamDecl::option("trace", ParamType::kPath,
                        "fault trace: a line in any OGR format (GeoJSON, GPKG, SHP...)")
          .as_input(),
      ParamDecl::option(
          "auto-trace", ParamType::kBool,
          "trace the fault automatically as the ridge of the east displacement step (instead of --trace)"),
      ParamDecl::option("trace-direction", ParamType::kChoice,
                        "--auto-trace: the way the fault runs across the raster (auto: the sharper ridge)")
          .one_of({"auto", "east-west", "north-south"})
          .defaults_to("auto"),
      ParamDecl::option("east-band", ParamType::kString,
                        "band of the east displacement (description or index; default east_m, or band 1 of a "
                        "one-band raster)"),
      ParamDecl::option("north-band", ParamType::kString,
                        "band of the north displacement (default north_m when present; 'none' = east only)"),
      ParamDecl::option("output", ParamType::kPath, "profile table (CSV)")
          .alias("o")
          .mandatory()
          .as_output("text/csv"),
      ParamDecl::option("gpkg", ParamType::kPath, "profile lines with their offsets (GeoPackage)")
          .as_output("application/geopackage+sqlite3"),
      ParamDecl::option("plot", ParamType::kPath, "offset along strike with error bars (PNG)")
          .as_output("image/png"),
  };
  for (auto& p : g.decls()) op.params.push_back(std::move(p));
  op.examples = {
      "deforma fault-profile EW_Adapazari.tif --trace sapanca_trace.geojson -o offsets.csv --gpkg "
      "profiles.gpkg "
      "--plot offsets.png --spacing 2000 --length 10000",
      "deforma fault-profile pair_filtered.tif --trace trace.gpkg -o offsets.csv --width 500 --near-fault "
      "300"};
  op.run = [g](const ParamValues& p, RunContext& context) {
    filter::FaultProfileRun run;
    run.input = p.get_string("input");
    const bool automatic = p.get_bool("auto-trace");
    if (p.has("trace") == automatic) {
      throw InvalidArgument("--trace, --auto-trace: give one of them (a trace file, or the automatic trace)");
    }
    run.trace = p.get_string_or("trace", "");
    run.trace_direction = filter::parse_trace_direction(p.get_string("trace-direction"));
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
  register_decompose_series(registry);
  register_fault_profile(registry);
  register_composite_operation(registry);
  register_survey_operation(registry);
}

}  // namespace deforma::ops
