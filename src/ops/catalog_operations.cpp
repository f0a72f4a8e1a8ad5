// `deforma catalog add` and `deforma catalog search`: the service's catalogue from the command line (not
// servable: the service has its own routes for both).
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/error.hpp"
#include "ops/catalog_parameters.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {

ParamGroup<catalog::IngestOptions> ingest_parameters() {
  ParamGroup<catalog::IngestOptions> g;
  g.bind(&catalog::IngestOptions::collection, "collection",
         "put every item in this collection (default: one per kind, e.g. sentinel-2-l2a)");
  g.bind(&catalog::IngestOptions::owner, "owner",
         "a user of the service who owns the items (default: catalogue-wide, public)");
  // Read by the operation: without an owner the items are public whatever is given.
  g.declare(ParamDecl::option("public", ParamType::kBool, "with --owner: the items are readable by everyone"));
  return g;
}
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

ParamDecl root_param(bool writes) {
  ParamDecl p =
      ParamDecl::option("root", ParamType::kPath,
                        "the service's root folder; the catalogue is ROOT/service.db (created when missing)")
          .defaults_to(".");
  // add writes the database (the folder is created when missing); search only reads it.
  return writes ? p.as_output("inode/directory") : p.as_input();
}

}  // namespace

void register_catalog_operations(OperationRegistry& registry) {
  registry.describe_group("catalog",
                          "the catalogue of scenes and products (STAC items in the service's database): add "
                          "files and folders, search by place, time, theme and cloud cover; docs/catalog.md");
  {
    OperationDecl op;
    op.name = "catalog add";
    op.servable = false;
    op.summary = "Add scenes, products and STAC documents to the catalogue, recursively and idempotently";
    op.description =
        "Walks files and folders and makes one STAC item per scene or product: Sentinel-2 SAFE folders or "
        "zips, "
        "Landsat MTL scenes, GeoTIFF/COG/JPEG/JP2 rasters (dates from names or metadata) and zips of them "
        "(read in place), Sentinel-1 GRD "
        "GeoTIFFs with GCPs, deforma's outputs (processing extension from their provenance), EGMS point "
        "products (zip/CSV), and STAC JSON (Item, array, ItemCollection, Collection, Catalog). A file seen "
        "before with the same size and time is not read again; a changed one updates its items. Reports "
        "added, updated, unchanged and failed (with the reason) and exits with status 5 when something "
        "failed.";
    op.params = {
        ParamDecl::argument("paths", ParamType::kList, "files and folders to add").as_input(),
        root_param(true),
    };
    const auto ingest = ingest_parameters();
    for (auto& d : ingest.decls()) op.params.push_back(std::move(d));
    op.examples = {"deforma catalog add --root out/serve ../shared/data",
                   "deforma catalog add --root out/serve --collection glacier ../shared/data/perito-moreno"};
    op.run = [ingest](const ParamValues& p, RunContext&) {
      const auto start = std::chrono::steady_clock::now();
      catalog::Catalog catalog(fs::path(p.get_string("root")) / "service.db");
      catalog::IngestOptions options = ingest.defaults();
      ingest.apply(p, options);
      options.is_public = options.owner.empty() || p.get_bool("public");
      std::vector<fs::path> paths;
      for (const auto& s : p.get_list("paths")) paths.emplace_back(s);
      const auto report = catalog.ingest(paths, options);
      Summary summary;
      summary.operation = "catalog add";
      summary.counts["added"] = report.added;
      summary.counts["updated"] = report.updated;
      summary.counts["unchanged"] = report.unchanged;
      summary.counts["failed"] = static_cast<std::int64_t>(report.failed.size());
      summary.details = report.to_json();
      summary.seconds = seconds_since(start);
      const int items = report.added + report.updated + report.unchanged;
      summary.report = report.to_text() +
                       fmt::format("{:.1f} items/s\n", summary.seconds > 0 ? items / summary.seconds : 0.0);
      if (!report.failed.empty() && items == 0) {
        throw FormatError(
            fmt::format("nothing added; {}: {}", report.failed.front().first, report.failed.front().second));
      }
      for (const auto& [what, why] : report.failed) summary.warnings.push_back(what + ": " + why);
      return summary;
    };
    registry.add(std::move(op));
  }
  {
    OperationDecl op;
    op.name = "catalog search";
    op.servable = false;
    op.quick = true;
    op.summary = "Search the catalogue (STAC item search) and print the matching items as GeoJSON";
    op.description =
        "The same search as the service's /search: a place (--bbox or --intersects), a time (--datetime, "
        "instants or intervals with open ends), collections, ids, free text (--q), a CQL2 text filter, sort "
        "keys and a limit. Prints a STAC ItemCollection; asset hrefs are the local files.";
    op.params = {
        root_param(false),
        ParamDecl::option("bbox", ParamType::kString, "west,south,east,north in degrees (WGS84)"),
        ParamDecl::option("intersects", ParamType::kString, "a GeoJSON geometry (WGS84)"),
        ParamDecl::option("datetime", ParamType::kString,
                          "an instant or an interval: 2020-01-01/.., ../2021-01-01, A/B"),
        ParamDecl::option("collections", ParamType::kString, "comma-separated collection ids"),
        ParamDecl::option("ids", ParamType::kString, "comma-separated item ids"),
        ParamDecl::option("q", ParamType::kString,
                          "free text over titles, descriptions, keywords and themes"),
        ParamDecl::option("filter", ParamType::kString, "CQL2 text filter, e.g. \"eo:cloud_cover < 20\""),
        ParamDecl::option("sortby", ParamType::kString, "sort keys, e.g. -datetime,+eo:cloud_cover"),
        ParamDecl::option("aoi-cloud-cover", ParamType::kDouble,
                          "largest cloud cover over the bbox/intersects area, from the scenes' cloud masks")
            .in_unit("%")
            .between(0, 100),
        ParamDecl::option("limit", ParamType::kInt, "most items printed").defaults_to("10").between(1, 10000),
        ParamDecl::option("save", ParamType::kString,
                          "also keep the search under this id (letters, digits, '-', '_'): the service's "
                          "/searches/ID, its items at /searches/ID/items; saving again replaces it"),
        ParamDecl::option("owner", ParamType::kString,
                          "with --save: the user who owns the saved search, private to them (default: "
                          "catalogue-wide, public)"),
    };
    op.examples = {
        "deforma catalog search --root out/serve --bbox -9,52,-8,53 --datetime 2022-10-01/..",
        "deforma catalog search --root out/serve --filter \"eo:cloud_cover < 20\" --sortby -datetime",
        "deforma catalog search --root out/serve --collections landsat --bbox -142,60,-141,61 --save yahtse"};
    op.run = [](const ParamValues& p, RunContext&) {
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::pair<std::string, std::string>> query;
      for (const char* name :
           {"bbox", "intersects", "datetime", "collections", "ids", "q", "filter", "sortby"}) {
        if (p.has(name)) query.emplace_back(name, p.get_string(name));
      }
      if (p.has("aoi-cloud-cover"))
        query.emplace_back("aoi_cloud_cover", fmt::format("{}", p.get_double("aoi-cloud-cover")));
      query.emplace_back("limit", std::to_string(p.get_int("limit")));
      if (p.has("owner") && !p.has("save")) throw InvalidArgument("--owner: only with --save");
      const auto request = catalog::parse_search_query(query);
      const fs::path database = fs::path(p.get_string("root")) / "service.db";
      std::error_code ec;
      if (!fs::exists(database, ec)) {
        throw IoError(fmt::format("--root {}: no catalogue there ({} is missing)", p.get_string("root"),
                                  database.string()));
      }
      catalog::Catalog catalog(database);
      const auto result = catalog.search(request, catalog::Viewer{"", true});
      json features = json::array();
      for (const auto& item : result.items) features.push_back(item);
      json collection{
          {"type", "FeatureCollection"}, {"features", features}, {"numberReturned", features.size()}};
      if (result.matched >= 0) collection["numberMatched"] = result.matched;
      if (p.has("save")) {
        const std::string owner = p.has("owner") ? p.get_string("owner") : std::string();
        collection["saved_search"] =
            catalog.save_search(catalog::search_query_body(query), owner, p.get_string("save"));
      }
      Summary summary;
      summary.operation = "catalog search";
      summary.counts["items"] = static_cast<std::int64_t>(features.size());
      summary.details = collection;
      summary.report = collection.dump(2) + "\n";
      summary.seconds = seconds_since(start);
      return summary;
    };
    registry.add(std::move(op));
  }
}

}  // namespace deforma::ops
