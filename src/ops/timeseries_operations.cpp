#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/plot.hpp"
#include "deforma/timeseries/image_set.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "deforma/timeseries/products.hpp"
#include "ops/registration.hpp"
#include "ops/timeseries_parameters.hpp"

namespace deforma::ops {
namespace fs = std::filesystem;

namespace {


void register_pairs(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "pairs";
  op.summary = "Form the pair network of an image series: pair table (CSV) and network plot (PNG)";
  op.description =
      "Reads the images (files, folders, glob patterns, or one CSV manifest with columns "
      "path,date[,orbit,tile,"
      "sensor]), finds each acquisition date (Sentinel-2/Landsat names, Landsat MTL files, date metadata, "
      "YYYYMMDD in the name), and forms the pairs allowed by the matching rules. Writes pairs.csv (columns "
      "id, "
      "ref_path, sec_path, ref_date, sec_date, result_path, weight, days) and pairs.png (one arc per pair).";
  op.params = {
      ParamDecl::argument("images", ParamType::kList,
                          "image files, folders, glob patterns or one CSV manifest").as_input(),
      ParamDecl::option("output", ParamType::kPath, "output folder (created if missing)")
          .alias("o")
          .mandatory().as_output("inode/directory"),
      ParamDecl::option("skip-bad", ParamType::kBool, "leave out unreadable images (listed as warnings)"),
  };
  const auto network = pair_network_parameters();
  for (auto& p : network.decls()) op.params.push_back(std::move(p));
  for (auto& p : cloud_selection_parameters()) op.params.push_back(std::move(p));
  op.examples = {"deforma pairs data/perito-moreno -o out/pairs --max-step 3",
                 "deforma pairs 'LC08_*_SR_B4.TIF' -o out/pairs --max-cloud 20 --aoi -141.6,60.1,-141.2,60.3",
                 "deforma pairs manifest.csv -o out/pairs --min-days 5 --max-days 60 --direction both"};
  op.run = [network](const ParamValues& params, RunContext&) {
    const auto start = std::chrono::steady_clock::now();
    timeseries::ImageSetOptions set_options;
    set_options.skip_bad = params.get_bool("skip-bad");
    auto images = timeseries::load_image_set(params.get_list("images"), set_options);
    std::int64_t cloudy = 0;
    if (const auto clouds = cloud_selection_from(params)) {
      const auto dropped = timeseries::drop_cloudy_images(images, *clouds);
      cloudy = static_cast<std::int64_t>(dropped.size());
    }
    timeseries::PairNetworkOptions network_options = network.defaults();
    network.apply(params, network_options);
    const auto pairs = timeseries::build_pair_network(images, network_options);
    const fs::path out = params.get_string("output");
    std::error_code ec;
    fs::create_directories(out, ec);
    const std::string csv = (out / "pairs.csv").string();
    const std::string png = (out / "pairs.png").string();
    timeseries::write_pair_table(csv, pairs);
    timeseries::write_pair_network_png(png, pairs);
    std::vector<std::pair<int, int>> indices;
    const auto dates = timeseries::network_dates(pairs, &indices);
    const int parts = timeseries::count_components(static_cast<int>(dates.size()), indices);
    Summary s;
    s.operation = "pairs";
    s.counts["images"] = static_cast<std::int64_t>(images.size());
    s.counts["pairs"] = static_cast<std::int64_t>(pairs.size());
    s.counts["skipped"] = static_cast<std::int64_t>(images.skipped.size());
    s.counts["cloudy"] = cloudy;
    s.counts["network_parts"] = parts;
    s.outputs = {csv, png};
    s.warnings = images.skipped;
    if (parts > 1) s.warnings.push_back(fmt::format("the network has {} disconnected parts", parts));
    s.details = {{"first_date", dates.front().iso()}, {"last_date", dates.back().iso()}};
    s.report =
        fmt::format("pair network: {} images ({} .. {}), {} pairs, {} part{}", images.size(),
                    dates.front().iso(), dates.back().iso(), pairs.size(), parts, parts == 1 ? "" : "s");
    s.seconds = seconds_since(start);
    return s;
  };
  registry.add(std::move(op));
}

void register_invert(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "invert";
  op.summary = "Invert per-pair displacements into time series, velocities and their uncertainties";
  op.description =
      "Reads a pair table CSV (id, ref_path, sec_path, ref_date, sec_date, result_path[, weight]) whose "
      "result_path rasters hold the pair displacements (bands east_m/north_m, or dx_px/dy_px with --units "
      "px), "
      "and inverts the network per node: weighted, robust (IRLS), with a weak temporal regularization that "
      "bridges gaps and disconnected networks. Writes the series cubes (one COG per component, one band per "
      "date), the CF NetCDF cube, velocity.tif (velocities, std, rmse, valid pairs, consistency, flags) and "
      "quicklooks. Streams by blocks of rows within --ram.";
  op.params = {
      ParamDecl::argument("pairs", ParamType::kPath, "pair table CSV, or a folder holding pairs.csv").as_input(),
      ParamDecl::option("output", ParamType::kPath, "output folder (created if missing)")
          .alias("o")
          .mandatory().as_output("inode/directory"),
      ParamDecl::option("units", ParamType::kChoice, "read bands east_m/north_m (m) or dx_px/dy_px (px)")
          .one_of({"m", "px"})
          .defaults_to("m"),
      ParamDecl::option("east-band", ParamType::kString,
                        "override the first component's band (name or index)"),
      ParamDecl::option("north-band", ParamType::kString,
                        "override the second component's band (name or index)"),
      ParamDecl::option("weight-band", ParamType::kString,
                        "per-node quality band in [0, 1] multiplying the pair weights (e.g. corr); slower"),
      ParamDecl::option("prefix", ParamType::kString, "prefix of the output file names"),
      ParamDecl::option("no-netcdf", ParamType::kBool, "do not write the NetCDF cube"),
      ParamDecl::option("no-quicklooks", ParamType::kBool, "do not write PNG quicklooks"),
  };
  const auto inversion = inversion_parameters();
  for (auto& p : inversion.decls()) op.params.push_back(std::move(p));
  op.examples = {"deforma invert out/pairs/pairs.csv -o out/series",
                 "deforma invert pairs.csv -o out/series --units px --robust huber --ram 512"};
  op.run = [inversion](const ParamValues& params, RunContext& context) {
    timeseries::InvertRastersOptions o;
    o.output_dir = params.get_string("output");
    o.units = params.get_string("units");
    o.east_band = params.get_string_or("east-band", "");
    o.north_band = params.get_string_or("north-band", "");
    o.weight_band = params.get_string_or("weight-band", "");
    o.prefix = params.get_string_or("prefix", "");
    o.netcdf = !params.get_bool("no-netcdf");
    o.quicklooks = !params.get_bool("no-quicklooks");
    inversion.apply(params, o.inversion);
    o.parameters = params.to_json();
    // A folder written by the batch or the pipeline holds its pair table as pairs.csv.
    std::string table = params.get_string("pairs");
    if (fs::is_directory(table)) table = (fs::path(table) / "pairs.csv").string();
    const auto pairs = timeseries::read_pair_table(table);
    return timeseries::invert_pair_rasters(pairs, o, context);
  };
  registry.add(std::move(op));
}

void register_series_at(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "series-at";
  op.summary = "Print the displacement time series at a point as CSV and plot it with error bars";
  op.description =
      "Reads the products of `deforma invert` (or of `deforma pipeline`: its output folder or its products/ "
      "folder) at X Y: map coordinates of the product grid (for images without georeferencing these are "
      "image pixel coordinates, as the NetCDF's x/y), image pixel coordinates with --pixel, or node column "
      "and row with --node. Prints date, each component and its 1-sigma as CSV on standard output, and "
      "writes a PNG plot with error bars (series_<col>_<row>.png in the products folder, or --plot).";
  op.params = {
      ParamDecl::argument(
          "point", ParamType::kList,
          "X Y: map coordinates (easting, northing), image pixel column and row with --pixel, "
          "or node column and row with --node"),
      ParamDecl::option("products", ParamType::kPath,
                        "folder written by deforma invert, or the output folder of deforma pipeline")
          .alias("p")
          .mandatory()
          .as_input(),
      ParamDecl::option("pixel", ParamType::kBool,
                        "X Y are column and row of the images (products without georeferencing)"),
      ParamDecl::option("node", ParamType::kBool, "X Y are column and row of the product's node grid"),
      ParamDecl::option("prefix", ParamType::kString, "prefix of the product file names"),
      ParamDecl::option("plot", ParamType::kPath, "PNG to write (default: in the products folder)")
          .as_output("image/png"),
  };
  op.examples = {"deforma series-at 900 650 --pixel -p perito",
                 "deforma series-at 37 27 --node -p out/series",
                 "deforma series-at 552300 6660150 -p out/series --plot yahtse_point.png"};
  op.run = [](const ParamValues& params, RunContext&) {
    const auto start = std::chrono::steady_clock::now();
    const std::string dir = params.get_string("products");
    const auto point = params.get_list("point");
    double xy[2] = {0, 0};
    if (point.size() != 2) {
      throw InvalidArgument(fmt::format("series-at: expected two coordinates X Y, got {}", point.size()));
    }
    for (int i = 0; i < 2; ++i) {
      try {
        std::size_t used = 0;
        xy[i] = std::stod(point[i], &used);
        if (used != point[i].size() || !std::isfinite(xy[i])) throw std::invalid_argument("not a number");
      } catch (const std::exception&) {
        throw InvalidArgument(fmt::format("series-at: coordinate '{}' is not a number", point[i]));
      }
    }
    const bool node = params.get_bool("node");
    const bool pixel = params.get_bool("pixel");
    if (node && pixel) {
      throw InvalidArgument("parameters --pixel, --node: give one: image pixel or node column and row");
    }
    const auto series = timeseries::read_series_at(
        dir, params.get_string_or("prefix", ""), xy[0], xy[1],
        node ? timeseries::PointKind::kNode
             : (pixel ? timeseries::PointKind::kImagePixel : timeseries::PointKind::kMap));
    const std::string plot = params.get_string_or(
        "plot",
        (fs::path(series.products_dir) / fmt::format("series_{}_{}.png", series.col, series.row)).string());
    std::vector<render::PlotSeries> lines;
    const render::Rgb palette[2] = {render::colors::kBlue, render::colors::kRed};
    for (std::size_t c = 0; c < series.components.size(); ++c) {
      render::PlotSeries ps;
      ps.label = series.components[c];
      ps.values = series.values[c];
      ps.errors = series.sigmas[c];
      ps.color = palette[c % 2];
      lines.push_back(std::move(ps));
    }
    // The plot's axis counts days: epochs of one day (SAR passes hours apart) share their day there.
    std::vector<io::Date> days;
    for (const auto& e : series.dates) days.push_back(e.date);
    render::write_png(
        plot, render::plot_time_series(days, lines,
                                       fmt::format("displacement at node ({}, {})", series.col, series.row),
                                       fmt::format("displacement ({})", series.unit)));
    run_log()->info("wrote {}", plot);
    Summary s;
    s.operation = "series-at";
    s.counts["dates"] = static_cast<std::int64_t>(series.dates.size());
    // Standard output carries only the CSV, so the plot's path goes to the details and the log.
    s.details = {{"plot", plot}, {"col", series.col}, {"row", series.row}, {"unit", series.unit}};
    s.report = timeseries::series_to_csv(series);
    s.seconds = seconds_since(start);
    return s;
  };
  registry.add(std::move(op));
}

}  // namespace

void register_timeseries_operations(OperationRegistry& registry) {
  register_pairs(registry);
  register_invert(registry);
  register_series_at(registry);
}

}  // namespace deforma::ops
