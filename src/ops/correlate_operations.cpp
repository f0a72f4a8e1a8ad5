#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/filter/glaciers.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/provenance.hpp"
#include "deforma/io/staged_file.hpp"
#include "ops/correlate_parameters.hpp"
#include "ops/glacier_parameters.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {

// The acquisition dates, from --dates or from the files themselves. Without `required` (no --velocity),
// files that carry no date give none: the result is then simply undated.
std::optional<std::pair<io::Date, io::Date>> acquisition_dates(const ParamValues& params,
                                                               const std::string& ref, const std::string& sec,
                                                               bool required) {
  io::Date ref_date, sec_date;
  if (params.has("dates")) {
    const std::string text = params.get_string("dates");
    const auto comma = text.find(',');
    if (comma == std::string::npos) {
      throw InvalidArgument(fmt::format("--dates '{}': expected REF_DATE,SEC_DATE (YYYY-MM-DD or YYYYMMDD)", text));
    }
    try {
      ref_date = io::Date::parse(text.substr(0, comma));
      sec_date = io::Date::parse(text.substr(comma + 1));
    } catch (const Error& e) {
      throw InvalidArgument(fmt::format("--dates '{}': {}", text, e.what()));
    }
  } else {
    try {
      ref_date = io::acquisition_date(ref);
      sec_date = io::acquisition_date(sec);
    } catch (const Error& e) {
      if (!required) return std::nullopt;
      throw InvalidArgument(fmt::format("--velocity needs the acquisition dates: {} (give them with --dates "
                                        "REF_DATE,SEC_DATE)",
                                        e.what()));
    }
  }
  return std::pair{ref_date, sec_date};
}

// Removes a folder of intermediate files when the run ends, whichever way.
struct ScratchFolder {
  std::string path;
  ~ScratchFolder() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// Working folders of earlier runs for the same output whose process is gone (killed before its cleanup
// could run): `.<output name>.glaciers.<pid>.<n>`, or `.<output name>.glaciers.<n>` as older versions
// named them. A folder of a run still going (same output, another process) is left alone.
void remove_stale_glacier_folders(const std::filesystem::path& out_dir, const std::string& output_name) {
  namespace fs = std::filesystem;
  const std::string prefix = "." + output_name + ".glaciers.";
  std::error_code ec;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !it->is_directory(ec)) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot != std::string::npos) {
      const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
      if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) continue;
    }
    std::error_code removed;
    fs::remove_all(it->path(), removed);
  }
}

// The correlation restricted to glacier outlines: the ground farther than the buffer from any outline is the
// correlation's mask, the ring outside the outlines its stable ground (unless --stable is given), and the
// statistics per glacier are written as a table next to the output.
Summary correlate_glaciers(const std::string& ref, const std::string& sec, const std::string& output,
                           correlate::CorrelateOptions options, const filter::GlacierOptions& glacier_options,
                           const std::string& table_path, const ParamValues& params, RunContext& context) {
  namespace fs = std::filesystem;
  const fs::path out_dir = fs::absolute(output).parent_path();
  remove_stale_glacier_folders(out_dir, fs::path(output).filename().string());
  glacier_options.validate();
  if (!options.mask_path.empty()) {
    throw InvalidArgument(
        "--mask and --glaciers: give one (the glaciers' mask is the ground away from the ice)");
  }
  const auto ref_info = io::describe(ref);
  const auto glaciers = filter::read_glaciers(glacier_options.outlines_path, ref_info.crs_wkt);
  ScratchFolder scratch;
  // The process id in the name tells a later run whether this folder's run is still going.
  scratch.path = (out_dir / fmt::format(".{}.glaciers.{}.{}", fs::path(output).filename().string(), ::getpid(),
                                        std::chrono::steady_clock::now().time_since_epoch().count()))
                     .string();
  const auto regions = filter::write_glacier_regions(glaciers, ref_info, glacier_options, scratch.path);
  options.mask_path = regions.skip_path;  // "" when the buffer covers the whole image
  const bool own_stable = options.stable_path.empty();
  if (own_stable) options.stable_path = regions.stable_path;
  // The result is written in the scratch folder first: the statistics read it before it joins the run's
  // outputs, which are committed together when the run ends.
  const std::string scratch_result = (fs::path(scratch.path) / "correlation.tif").string();
  Summary summary = correlate::correlate_pair(ref, sec, scratch_result, options, context);

  // The bias is removed with the stable ground the run used: the ring, or the user's --stable.
  auto report = filter::glacier_statistics(glaciers, scratch_result, glacier_options, options.stable_path);
  report.product = output;
  io::write_atomically(output, [&](const std::string& temp) { fs::rename(scratch_result, temp); });
  std::replace(summary.outputs.begin(), summary.outputs.end(), scratch_result, output);
  io::Provenance provenance;
  provenance.command_line = context.command_line;
  provenance.parameters = params.to_json();
  provenance.inputs = {ref, sec, glacier_options.outlines_path};
  if (!glacier_options.centrelines_path.empty())
    provenance.inputs.push_back(glacier_options.centrelines_path);
  const auto tables = filter::write_glacier_tables(table_path, report, provenance);
  summary.outputs.insert(summary.outputs.end(), tables.begin(), tables.end());
  for (const auto& w : report.warnings) summary.warnings.push_back(w);
  const double matched_fraction =
      regions.grid_area_km2 > 0 ? regions.matched_area_km2 / regions.grid_area_km2 : 0;
  summary.details["glaciers"] = report.to_json();
  summary.details["glacier_regions"] = {
      {"matched_area_km2", regions.matched_area_km2},
      {"image_area_km2", regions.grid_area_km2},
      {"matched_fraction", matched_fraction},
      {"stable_ground", own_stable ? "ring outside the outlines" : "--stable"}};
  summary.counts["glaciers"] = static_cast<std::int64_t>(glaciers.size());
  // In the correlation's own counts, masked nodes are the ones skipped away from the ice.
  summary.report += fmt::format("  glaciers: {} outlines, {:.1f}% of the image matched (outlines + {} m); ",
                                glaciers.size(), 100 * matched_fraction, glacier_options.buffer_m);
  if (report.bias_east) {
    summary.report +=
        fmt::format("bias on stable ground east {:+.3f}, north {:+.3f} {} ({} nodes) removed\n",
                    *report.bias_east, *report.bias_north, report.unit, report.stable_valid_nodes);
  } else {
    summary.report += "no bias correction (too little stable ground)\n";
  }
  for (const auto& g : report.glaciers) {
    summary.report +=
        fmt::format("    {} {}: {:.2f} km2, valid {:.0f}%, median {} {}, p95 {} {}\n", g.glacier.id,
                    g.glacier.name.empty() ? "" : "(" + g.glacier.name + ")", g.glacier.outline_area_km2,
                    100 * g.valid_fraction, g.median_speed ? fmt::format("{:.1f}", *g.median_speed) : "-",
                    report.unit, g.p95_speed ? fmt::format("{:.1f}", *g.p95_speed) : "-", report.unit);
  }
  summary.report += fmt::format("  glacier table: {}\n", table_path);
  return summary;
}

OperationDecl correlate_operation() {
  OperationDecl op;
  op.name = "correlate";
  op.summary = "Dense sub-pixel offset tracking of an image pair into a displacement COG";
  op.description =
      "Matches chips of REF inside SEC on a regular node grid (every --step pixels) and writes one "
      "Cloud-Optimized GeoTIFF with bands dx_px, dy_px (+x = +column, +y = +row), east_m, north_m, corr, snr "
      "and flag (0 valid, 1 low SNR, 2 no texture, 3 masked/nodata, 4 peak on search border, 5 outside "
      "overlap, 6 no peak); invalid nodes are nodata (-9999). With --velocity, east_m_per_yr, "
      "north_m_per_yr and speed_m_per_yr follow. With the affine shape (default), the displacement "
      "gradients dudx, dudy, dvdx, dvdy (px/px) follow, and with --velocity the strain rates exx, eyy, exy and "
      "effective_strain_rate (1/yr, map axes); a valid node whose affine fit was ill-conditioned keeps the "
      "translation with flag 16. SEC is resampled onto REF's grid when they differ. Images georeferenced "
      "only by GCPs (Sentinel-1 GRD, SAFE folders or zips) are both warped onto one projected map grid "
      "(--grid-crs, --grid-resolution, --gcp-transform) and the result is on that grid; SAR amplitudes are "
      "matched in decibels with thresholds for speckle (--input-kind), and acquisition times to the second "
      "give velocities of pairs hours apart. Streamed by strips of nodes within --ram; see "
      "docs/correlate.md.";
  const auto correlation = correlation_parameters(correlate::CorrelateOptions{});
  op.params = {
      ParamDecl::argument("ref", ParamType::kPath, "reference image (earlier date)").as_input(),
      ParamDecl::argument("sec", ParamType::kPath, "secondary image (later date)").as_input(),
      ParamDecl::option("output", ParamType::kPath, "output COG").alias("o").mandatory().as_output(kCogMediaType),
  };
  for (auto& p : correlation.decls()) op.params.push_back(std::move(p));
  const auto thresholds = correlation_thresholds(correlation.defaults());
  for (auto& p : thresholds.decls()) op.params.push_back(std::move(p));
  const auto grid = map_grid_parameters(correlation.defaults());
  for (auto& p : grid.decls()) op.params.push_back(std::move(p));
  const std::vector<ParamDecl> rest = {
      ParamDecl::option("sec-band", ParamType::kInt, "band of SEC (default: --band)").at_least(1),
      ParamDecl::option("roi", ParamType::kString,
                        "region of interest: XMIN,YMIN,XMAX,YMAX in REF's CRS, or px:COL,ROW,WIDTH,HEIGHT"),
      ParamDecl::option("guess", ParamType::kPath, "a-priori displacement raster (bands dx_px, dy_px), e.g. a previous result").as_input(),
      ParamDecl::option("mask", ParamType::kPath, "areas to skip: raster (non-zero = skip) or polygons").as_input(),
      ParamDecl::option("stable", ParamType::kPath,
                        "stable ground (polygons or raster): report the co-registration bias and NMAD there").as_input(),
      ParamDecl::option("velocity", ParamType::kBool, "also write velocities (m/yr) from the acquisition dates"),
      ParamDecl::option("dates", ParamType::kString, "acquisition dates REF_DATE,SEC_DATE when the files do not carry them"),
      ParamDecl::option("quicklook", ParamType::kPath, "write a PNG of the displacement/velocity magnitude").as_output("image/png"),
  };
  op.params.insert(op.params.end(), rest.begin(), rest.end());
  const auto glaciers = glacier_parameters();
  for (auto& p : glaciers.decls()) op.params.push_back(std::move(p));
  op.params.push_back(
      ParamDecl::option("glacier-table", ParamType::kPath,
                        "with --glaciers: the table of statistics per glacier (default: OUTPUT "
                        "with _glaciers.csv)")
          .as_output("text/csv"));
  op.examples = {
      "deforma correlate LC80630182016200LGN00_B8.TIF LC80630182016216LGN00_B8.TIF -o offsets.tif",
      "deforma correlate ref.tif sec.tif -o v.tif --chip 32 --search 300m --step 8 --velocity --quicklook "
      "v.png",
      "deforma correlate a.jpg b.jpg -o d.tif --method flow --dates 2020-01-01,2020-01-06",
      "deforma correlate ref.tif sec.tif -o v.tif --velocity --glaciers glims.geojson --glacier-buffer-m "
      "1500",
      "deforma correlate S1B_EW_GRDM_1SDH_20161005T101835.tif S1A_EW_GRDM_1SDH_20161005T142446.tif "
      "-o drift.tif --chip 64 --search 16 --velocity",
  };
  op.run = [correlation, thresholds, grid, glaciers](const ParamValues& params, RunContext& context) {
    const std::string ref = params.get_string("ref");
    const std::string sec = params.get_string("sec");
    correlate::CorrelateOptions options = correlation.defaults();
    correlation.apply(params, options);
    thresholds.apply(params, options);
    grid.apply(params, options);
    // Lengths and windows refer to the grid the pair is matched on: REF's, or the common map grid of a
    // GCP-georeferenced pair.
    const auto ref_info = correlate::matching_grid(ref, sec, options);
    const auto ref_product = correlate::inspect_product(ref), sec_product = correlate::inspect_product(sec);
    if (correlate::resolve_input_kind(options.grid.input_kind, ref_product, sec_product) ==
        correlate::InputKind::kSar) {
      // The optical defaults of the thresholds give way to those for speckle; values given otherwise stay.
      const auto sar = correlate::sar_match_options(options.match);
      const auto optical = correlation.defaults().match;
      if (options.match.min_snr == optical.min_snr) options.match.min_snr = sar.min_snr;
      if (options.match.min_corr == optical.min_corr) options.match.min_corr = sar.min_corr;
    }
    options.sec_band = params.has("sec-band") ? static_cast<int>(params.get_int("sec-band")) : options.ref_band;
    options.match.search_px = search_px(params, ref_info);
    if (params.has("roi")) options.roi = correlate::parse_roi(params.get_string("roi"), ref_info);
    options.guess_path = params.get_string_or("guess", "");
    options.mask_path = params.get_string_or("mask", "");
    options.stable_path = params.get_string_or("stable", "");
    options.quicklook_path = params.get_string_or("quicklook", "");
    const bool velocity = params.get_bool("velocity");
    // Acquisition times to the second (SAR products carry them): pairs hours apart get their velocity from
    // the elapsed time, not from whole days.
    const bool timed = !params.has("dates") && ref_product.time_s && sec_product.time_s;
    auto day_of = [](double time_s) {
      return io::Date::from_days_since_epoch(static_cast<long long>(std::floor(time_s / 86400)));
    };
    auto dates = timed ? std::optional(std::pair{day_of(*ref_product.time_s), day_of(*sec_product.time_s)})
                       : acquisition_dates(params, ref, sec, velocity);
    if (dates) {
      options.ref_date = dates->first;
      options.sec_date = dates->second;
      if (velocity) {
        const double years = timed ? (*sec_product.time_s - *ref_product.time_s) / (365.25 * 86400)
                                   : io::years_between(dates->first, dates->second);
        if (years == 0) {
          throw InvalidArgument(fmt::format(
              "--velocity: both images are dated {}; no time elapsed between them", dates->first.iso()));
        }
        options.years_between = years;
      }
    }
    filter::GlacierOptions glacier_options;
    glaciers.apply(params, glacier_options);
    const std::string output = params.get_string("output");
    Summary summary;
    if (glacier_options.outlines_path.empty()) {
      if (params.has("centrelines") || params.has("glacier-table")) {
        throw InvalidArgument("--centrelines and --glacier-table need --glaciers OUTLINES");
      }
      summary = correlate::correlate_pair(ref, sec, output, options, context);
    } else {
      std::filesystem::path table = output;
      table.replace_filename(table.stem().string() + "_glaciers.csv");
      summary = correlate_glaciers(ref, sec, output, options, glacier_options,
                                   params.get_string_or("glacier-table", table.string()), params, context);
    }
    if (summary.details.contains("grid")) {
      const auto& g = summary.details["grid"];
      summary.report += fmt::format("  matched on a {1} m grid in {0} ({2} x {3} px), both images warped with "
                                    "their GCPs ({4})\n",
                                    g["crs"].get<std::string>(), g["resolution_m"].get<double>(),
                                    g["width_px"].get<int>(), g["height_px"].get<int>(),
                                    g["gcp_transform"].get<std::string>());
    }
    if (timed) {
      const double seconds = *sec_product.time_s - *ref_product.time_s;
      summary.details["seconds_between"] = seconds;
      summary.report += fmt::format("  acquired {:.2f} h apart ({}, {})\n", seconds / 3600,
                                    ref_product.time_source, sec_product.time_source);
    }
    return summary;
  };
  return op;
}

}  // namespace

void register_correlate_operations(OperationRegistry& registry) { registry.add(correlate_operation()); }

}  // namespace deforma::ops
