// `deforma survey`: one velocity product over an area spanning several tiles and relative orbits
// (docs/survey.md). The scenes come from files or from the catalogue; the rest is pipeline::run_survey.
#include <ogr_geometry.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/error.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/pipeline/survey.hpp"
#include "ops/correlate_parameters.hpp"
#include "ops/executor_parameters.hpp"
#include "ops/filter_operations.hpp"
#include "ops/glacier_parameters.hpp"
#include "ops/registration.hpp"
#include "ops/timeseries_parameters.hpp"

namespace deforma::ops {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The aoi as the catalogue's search wants it: a bbox or a GeoJSON geometry (WKT converted by OGR).
std::pair<std::string, std::string> aoi_search_term(const std::string& aoi) {
  const auto first = aoi.find_first_not_of(" \t\n");
  if (first == std::string::npos) throw InvalidArgument("--aoi: empty");
  if (aoi[first] == '{') return {"intersects", aoi};
  if (aoi.find('(') == std::string::npos) return {"bbox", aoi};
  OGRGeometry* geometry = nullptr;
  const char* text = aoi.c_str();
  if (OGRGeometryFactory::createFromWkt(&text, nullptr, &geometry) != OGRERR_NONE || !geometry) {
    throw InvalidArgument(
        fmt::format("--aoi '{}': not a WKT polygon, a GeoJSON geometry or a bbox w,s,e,n", aoi));
  }
  char* geojson = geometry->exportToJson();
  std::string out = geojson ? geojson : "";
  CPLFree(geojson);
  OGRGeometryFactory::destroyGeometry(geometry);
  return {"intersects", out};
}

// The asset of an item that holds the band to correlate: the key itself, or KEY_<resolution> (B08 ->
// B08_10m), the finest first.
std::string asset_path(const json& item, const std::string& key) {
  if (!item.contains("assets") || !item["assets"].is_object()) return "";
  const auto& assets = item["assets"];
  if (assets.contains(key)) return assets[key].value("href", "");
  std::string best;
  int best_res = 1 << 30;
  for (auto it = assets.begin(); it != assets.end(); ++it) {
    const std::string& k = it.key();
    if (k.rfind(key + "_", 0) != 0) continue;
    const int res = std::atoi(k.c_str() + key.size() + 1);
    if (res > 0 && res < best_res) {
      best_res = res;
      best = it.value().value("href", "");
    }
  }
  return best;
}

// The scenes of the catalogue over the aoi: each item's band asset, its date, relative orbit and tile, and
// its cloud cover on the aoi from its cloud mask (catalog::cloud_cover_on).
std::vector<pipeline::SurveyScene> catalogue_scenes(const ParamValues& p, const std::string& aoi,
                                                    bool count_clouds, std::vector<std::string>& warnings) {
  const fs::path database = fs::path(p.get_string("catalog")) / "service.db";
  std::error_code ec;
  if (!fs::exists(database, ec)) {
    throw IoError(fmt::format("--catalog {}: no catalogue there ({} is missing)", p.get_string("catalog"),
                              database.string()));
  }
  if (aoi.empty()) throw InvalidArgument("--aoi: needed with --catalog (where the scenes are searched)");
  std::vector<std::pair<std::string, std::string>> query;
  query.push_back(aoi_search_term(aoi));
  for (const char* name : {"datetime", "collections"}) {
    if (p.has(name)) query.emplace_back(name, p.get_string(name));
  }
  query.emplace_back("limit", std::to_string(catalog::kMaxLimit));
  const auto request = catalog::parse_search_query(query);
  catalog::Catalog cat(database);
  const auto result = cat.search(request, catalog::Viewer{"", true});
  const std::string key = p.get_string("asset");
  json aoi_geojson = nullptr;
  if (query.front().first == "intersects") {
    aoi_geojson = json::parse(query.front().second, nullptr, false);
  } else {
    double w = 0, s = 0, e = 0, n = 0;
    if (std::sscanf(aoi.c_str(), "%lf,%lf,%lf,%lf", &w, &s, &e, &n) != 4) {
      throw InvalidArgument(fmt::format("--aoi '{}': not a bbox west,south,east,north", aoi));
    }
    aoi_geojson = {{"type", "Polygon"}, {"coordinates", {{{w, s}, {e, s}, {e, n}, {w, n}, {w, s}}}}};
  }
  std::vector<pipeline::SurveyScene> scenes;
  for (const auto& item : result.items) {
    const std::string id = item.value("id", "?");
    const std::string path = asset_path(item, key);
    if (path.empty()) {
      warnings.push_back(fmt::format("catalogue item {}: no asset {} (--asset), left out", id, key));
      continue;
    }
    const auto& props = item.value("properties", json::object());
    const std::string when = props.contains("datetime") && props["datetime"].is_string()
                                 ? props["datetime"].get<std::string>()
                                 : props.value("start_datetime", "");
    pipeline::SurveyScene scene;
    scene.image.path = path;
    try {
      scene.image.date = io::Date::parse(when.substr(0, 10));
    } catch (const Error&) {
      warnings.push_back(fmt::format("catalogue item {}: no date ('{}'), left out", id, when));
      continue;
    }
    scene.image.date_source = "catalogue";
    if (props.contains("sat:relative_orbit") && props["sat:relative_orbit"].is_number_integer()) {
      scene.image.orbit = fmt::format("R{:03d}", props["sat:relative_orbit"].get<int>());
    }
    if (props.contains("s2:mgrs_tile") && props["s2:mgrs_tile"].is_string()) {
      scene.image.tile = "T" + props["s2:mgrs_tile"].get<std::string>();
    }
    scene.image.sensor = props.value("platform", "");
    if (count_clouds) {
      scene.cloud_percent = catalog::cloud_cover_on(item, aoi_geojson);
      if (!scene.cloud_percent) {
        scene.problem = item["assets"].contains("cloud-mask") ? "its cloud mask has no valid pixel in the aoi"
                                                              : "it has no cloud mask in the catalogue";
      }
    }
    scenes.push_back(std::move(scene));
  }
  if (scenes.empty()) {
    throw InvalidArgument(fmt::format("--catalog: no scene with an asset {} over the aoi ({} items matched)",
                                      key, result.items.size()));
  }
  return scenes;
}

}  // namespace

void register_survey_operation(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "survey";
  op.summary = "One velocity product over an area spanning several tiles and relative orbits";
  op.description =
      "Scenes from files (folders, patterns, or a CSV manifest path,date,orbit,tile) or from the catalogue "
      "(--catalog, searched over --aoi); cloud cover on --aoi from each scene's mask, scenes above "
      "--max-cloud "
      "dropped (listed in scenes.csv and the warnings); pairs formed within each track (relative orbit and "
      "tile) by --pair-mode (consecutive, all, or range: --min-step/--max-step, --min-days/--max-days) and "
      "--direction; each track's network run through the pipeline into tracks/<track>/run; the tracks' "
      "velocity products mosaicked onto one grid (CRS and pixels of the first, overlaps combined by "
      "inverse-variance weighting) into velocity.tif (COG), with survey.json and a STAC catalog. With "
      "--glaciers, matching is restricted to the ice plus a buffer, the ring outside the outlines is each "
      "track's stable ground, and glaciers/glaciers.csv holds the statistics per glacier of the mosaic. "
      "--executor slurm runs the tracks' pairs and inversion blocks as Slurm array jobs. See docs/survey.md.";
  op.params = {
      ParamDecl::argument(
          "images", ParamType::kList,
          "images: files, folders, glob patterns, or one CSV manifest (path,date,orbit,tile); "
          "none with --catalog")
          .as_input()
          .optional(),
      ParamDecl::option("output", ParamType::kPath, "output folder (created; a rerun resumes in it)")
          .alias("o")
          .mandatory()
          .as_output("inode/directory"),
      ParamDecl::option("catalog", ParamType::kPath,
                        "take the scenes from the catalogue in this folder (its service.db) over --aoi")
          .as_input(),
      ParamDecl::option(
          "datetime", ParamType::kString,
          "with --catalog: the time of the scenes, an instant or an interval (A/B, A/.., ../B)"),
      ParamDecl::option("collections", ParamType::kString, "with --catalog: comma-separated collection ids"),
      ParamDecl::option("asset", ParamType::kString,
                        "with --catalog: the asset to correlate (B08 takes B08_10m, the finest of B08_*)")
          .defaults_to("B08"),
      ParamDecl::option(
          "max-cloud", ParamType::kDouble,
          "drop scenes whose cloud cover over --aoi is above this, from each scene's cloud mask "
          "(Sentinel-2 SCL classes 3, 8, 9, 10; Landsat QA_PIXEL cloud and shadow bits)")
          .in_unit("%")
          .between(0, 100),
      ParamDecl::option(
          "aoi", ParamType::kString,
          "area of interest, WGS84: WKT polygon, GeoJSON geometry or bbox west,south,east,north; "
          "where cloud cover is counted and the catalogue searched"),
      ParamDecl::option("pair-mode", ParamType::kChoice,
                        "pairs of each track: consecutive (each scene with the next), all (every pair within "
                        "--min-days/--max-days), range (--min-step to --max-step acquisitions apart)")
          .one_of({"consecutive", "all", "range"})
          .defaults_to("range"),
      ParamDecl::option("pixel-size", ParamType::kDouble,
                        "pixel size of the mosaic in the units of its CRS (0 = the finest of the tracks)")
          .defaults_to("0")
          .at_least(0),
      ParamDecl::option("skip-bad", ParamType::kBool,
                        "leave out unreadable images and failing pairs (reported) instead of stopping"),
      ParamDecl::option("no-quicklooks", ParamType::kBool, "skip the PNG quicklooks"),
  };
  for (auto& p : pair_unit_parameters()) op.params.push_back(std::move(p));
  // The tracks' pair stages and inversion blocks run where the pipeline's do (docs/cluster.md).
  for (auto& p : executor_parameters()) op.params.push_back(std::move(p));
  const pipeline::PipelineOptions defaults;
  const auto network = pair_network_parameters(defaults.network, "pairs: ");
  for (auto& p : network.decls()) {
    if (p.name == "any-track") continue;  // pairs never cross tracks in a survey
    op.params.push_back(std::move(p));
  }
  const auto inversion = inversion_parameters(defaults.inversion, "inversion: ");
  for (auto& p : inversion.decls()) op.params.push_back(std::move(p));
  const auto correlation = correlation_parameters(pipeline::pipeline_correlation_defaults(), "correlation: ");
  for (auto& p : correlation.decls()) op.params.push_back(std::move(p));
  for (auto& p : per_pair_filter_parameters(pipeline::pipeline_filter_defaults(), "m/yr"))
    op.params.push_back(std::move(p));
  const auto glaciers = glacier_parameters();
  for (auto& p : glaciers.decls()) op.params.push_back(std::move(p));
  op.examples = {
      "deforma survey scenes.csv -o survey --aoi -140.9,60.1,-140.5,60.3 --max-cloud 20 --pair-mode range "
      "--max-step 2 --max-days 60",
      "deforma survey --catalog out/serve --aoi -140.9,60.1,-140.5,60.3 --datetime 2022-06-01/2022-09-30 "
      "--asset B08 --max-cloud 30 -o survey --pair-mode all --min-days 10 --max-days 40",
      "deforma survey scenes.csv -o /shared/survey --glaciers rgi60_01.shp --executor slurm --max-parallel "
      "100"};
  op.run = [correlation, network, inversion, glaciers](const ParamValues& p, RunContext& context) {
    pipeline::SurveyOptions o;
    o.output_dir = p.get_string("output");
    o.aoi = p.get_string_or("aoi", "");
    if (p.has("max-cloud")) o.max_cloud_percent = p.get_double("max-cloud");
    const bool from_catalog = p.has("catalog");
    const auto images = p.has("images") ? p.get_list("images") : std::vector<std::string>{};
    if (from_catalog && !images.empty()) {
      throw InvalidArgument("parameter images: give images or --catalog, not both");
    }
    if (!from_catalog && images.empty()) {
      throw InvalidArgument(
          "parameter images: give the images (files, folders, patterns, a CSV manifest) or --catalog");
    }
    for (const char* name : {"datetime", "collections"}) {
      if (!from_catalog && p.has(name))
        throw InvalidArgument(fmt::format("--{}: only used with --catalog", name));
    }
    std::vector<std::string> warnings;
    if (from_catalog) {
      o.scenes = catalogue_scenes(p, o.aoi, o.max_cloud_percent.has_value(), warnings);
    } else {
      o.inputs = images;
    }
    pipeline::PipelineOptions& t = o.track;
    t.image_set.skip_bad = p.get_bool("skip-bad");
    network.apply(p, t.network);
    t.network.same_track_only = true;
    const std::string mode = p.get_string("pair-mode");
    if (mode == "consecutive") {
      if (p.has("min-step") || p.has("max-step")) {
        throw InvalidArgument(
            "--pair-mode consecutive: pairs neighbours; --min-step/--max-step go with range");
      }
      t.network.min_step = 1;
      t.network.max_step = 1;
    } else if (mode == "all") {
      if (p.has("min-step") || p.has("max-step")) {
        throw InvalidArgument(
            "--pair-mode all: pairs every scene of a track; --min-step/--max-step go with range");
      }
      t.network.min_step = 1;
      t.network.max_step = 0;
    }
    t.correlation = correlation.defaults();
    correlation.apply(p, t.correlation);
    t.correlation.sec_band = t.correlation.ref_band;
    if (!search_in_pixels(p)) {
      throw InvalidArgument(
          "--search: give it in pixels for a survey (its tracks may have different pixel sizes)");
    }
    t.correlation.match.search_px = search_px(p, io::RasterInfo{});
    t.filter = filter_options_from(p, false, pipeline::pipeline_filter_defaults());
    t.max_velocity_per_yr = p.get_double("max-velocity");
    inversion.apply(p, t.inversion);
    glaciers.apply(p, t.glaciers);
    if (t.glaciers.outlines_path.empty() && p.has("centrelines")) {
      throw InvalidArgument("--centrelines needs --glaciers OUTLINES");
    }
    t.per_pair_ram_mb = static_cast<std::size_t>(p.get_int("pair-ram"));
    t.invert_block_rows = static_cast<int>(p.get_int("invert-block-rows"));
    t.executor = executor_of(p);
    t.slurm = slurm_options_of(p);
    o.quicklooks = !p.get_bool("no-quicklooks");
    o.mosaic_pixel_size = p.get_double("pixel-size");
    o.command_line = context.command_line;
    o.parameters = p.to_json();
    Summary s = pipeline::run_survey(o, context);
    s.warnings.insert(s.warnings.begin(), warnings.begin(), warnings.end());
    return s;
  };
  registry.add(std::move(op));
}

}  // namespace deforma::ops
