// deforma's own outputs in the catalogue: a velocity COG carrying its provenance, and a pipeline's static
// STAC catalog (items through catalog.json, the processing extension from the COGs' provenance).
#include <filesystem>

#include <gtest/gtest.h>
#include <ogr_spatialref.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/pipeline/stac.hpp"
#include "deforma/render/image.hpp"
#include "test_support.hpp"

namespace deforma::catalog {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const Viewer kAdmin{"admin", true};

// A small velocity COG (UTM 7N) made from the Yahtse pair, as `deforma correlate` records it.
void write_velocity_cog(const std::string& path) {
  io::Provenance provenance;
  provenance.command_line =
      "deforma correlate LC80630182016200LGN00_B8_yahtse.TIF "
      "LC80630182016216LGN00_B8_yahtse.TIF -o velocity.tif";
  provenance.parameters = {{"chip", 32}};
  provenance.inputs = {"/data/LC80630182016200LGN00_B8_yahtse.TIF",
                       "/data/LC80630182016216LGN00_B8_yahtse.TIF"};
  io::GeoTransform gt;
  gt.c = {480000.0, 150.0, 0.0, 6700000.0, 0.0, -150.0};
  OGRSpatialReference utm;
  utm.importFromEPSG(32607);
  char* wkt = nullptr;
  utm.exportToWkt(&wkt);
  const std::string crs = wkt;
  CPLFree(wkt);
  io::CogWriter writer(path, 32, 24, {{"velocity_m_per_yr", "m/yr", -9999.0}}, gt, crs, provenance);
  GridF values(32, 24, 1.5f);
  writer.write(1, io::Window{0, 0, 32, 24}, values);
  writer.finish();
}

TEST(CatalogProducts, VelocityCogWithProcessingExtension) {
  test::TempDir tmp;
  write_velocity_cog(tmp.file("velocity.tif"));
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({tmp.path() / "velocity.tif"}, {});
  ASSERT_EQ(report.added, 1) << report.to_text();
  const auto item = catalog.item("deforma-products", "velocity", kAdmin);
  ASSERT_TRUE(item);
  const json& p = (*item)["properties"];
  // The time range of its input pair, from their names.
  EXPECT_TRUE(p["datetime"].is_null());
  EXPECT_EQ(p["start_datetime"], "2016-07-18T00:00:00Z");
  EXPECT_EQ(p["end_datetime"], "2016-08-03T23:59:59Z");
  EXPECT_EQ(p["deforma:operation"], "correlate");
  EXPECT_EQ(p["deforma:parameters"]["chip"], 32);
  EXPECT_TRUE(p["processing:software"]["deforma"].is_string());
  int derived = 0;
  for (const auto& l : (*item)["links"]) derived += l["rel"] == "derived_from";
  EXPECT_EQ(derived, 2);
  const json& a = (*item)["assets"]["data"];
  EXPECT_EQ(a["type"], "image/tiff; application=geotiff; profile=cloud-optimized");
  EXPECT_EQ(a["proj:epsg"], 32607);
  EXPECT_EQ(a["proj:shape"], json({24, 32}));
  EXPECT_EQ(a["raster:bands"][0]["unit"], "m/yr");
  EXPECT_EQ(a["raster:bands"][0]["nodata"], -9999.0);
  EXPECT_EQ(a["raster:bands"][0]["name"], "velocity_m_per_yr");
  EXPECT_EQ(p["proj:epsg"], 32607);
  // Footprint: 4.8 x 3.6 km near 60.5 N, 141 W.
  EXPECT_NEAR((*item)["bbox"][1].get<double>(), 60.4, 0.2);
}

// A service job's outputs: `output.tif` and its `quicklook.png` (no georeference). The picture joins the
// product's item as its thumbnail; it is not an item of its own, nor a failure.
TEST(CatalogProducts, JobQuicklookIsTheProductsThumbnail) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "outputs");
  write_velocity_cog(tmp.file("outputs/output.tif"));
  render::RgbImage picture(16, 8);
  render::write_png(tmp.file("outputs/quicklook.png"), picture);
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({tmp.path() / "outputs"}, {});
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  ASSERT_EQ(report.added, 1) << report.to_text();
  const auto item = catalog.item("deforma-products", "output", kAdmin);
  ASSERT_TRUE(item);
  ASSERT_TRUE((*item)["assets"].contains("thumbnail"));
  EXPECT_EQ((*item)["assets"]["thumbnail"]["type"], "image/png");
}

TEST(CatalogProducts, PipelineCatalogThroughItsLinks) {
  test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  fs::create_directories(out / "products");
  write_velocity_cog((out / "products" / "velocity.tif").string());
  pipeline::StacCatalog c;
  c.id = "run";
  c.title = "a run";
  c.description = "products of a pipeline run";
  pipeline::StacItem item;
  item.id = "velocity-2016";
  item.title = "mean velocity";
  item.start = io::Date::from_ymd(2016, 7, 18);
  item.end = io::Date::from_ymd(2016, 8, 3);
  item.footprint_raster = (out / "products" / "velocity.tif").string();
  item.assets.push_back({"velocity", (out / "products" / "velocity.tif").string(), "velocity", "", {"data"}});
  c.items.push_back(item);
  pipeline::write_stac_catalog(out.string(), c);
  Catalog catalog(tmp.path() / "service.db");
  // The folder: its catalog.json describes it, the COG is not a second item.
  const auto report = catalog.ingest({out}, {"runs", "", true});
  ASSERT_EQ(report.added, 1) << report.to_text();
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto got = catalog.item("runs", "velocity-2016", kAdmin);
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)["properties"]["start_datetime"], "2016-07-18T00:00:00Z");
  EXPECT_EQ((*got)["properties"]["deforma:operation"], "correlate");
  EXPECT_EQ((*got)["properties"]["proj:epsg"], 32607);
  const std::string href = (*got)["assets"]["velocity"]["href"];
  EXPECT_EQ(fs::path(href), fs::weakly_canonical(out / "products" / "velocity.tif"));
  EXPECT_EQ((*got)["assets"]["velocity"]["raster:bands"][0]["unit"], "m/yr");
  EXPECT_EQ(catalog.ingest({out}, {"runs", "", true}).unchanged, 1);
}

// `deforma egms ortho` writes U/E COGs (deforma products) and U/E CSVs in EGMS's L3 layout (points by
// EPSG:3035 easting/northing): four items, none failed, dated by the input products.
TEST(CatalogProducts, EgmsOrthoOutputs) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  const auto run = test::run_cli("egms ortho " + (dir / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip").string() +
                                 " " + (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string() + " -o " +
                                 tmp.file("ustica"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({tmp.path()}, {});
  EXPECT_EQ(report.added, 4) << report.to_text();
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto cog = catalog.item("deforma-products", "ustica_U", kAdmin);
  ASSERT_TRUE(cog);
  EXPECT_EQ((*cog)["properties"]["deforma:operation"], "egms ortho");
  EXPECT_EQ((*cog)["properties"]["start_datetime"], "2020-01-03T00:00:00Z");
  EXPECT_EQ((*cog)["assets"]["data"]["proj:epsg"], 3035);
  const auto points = catalog.item("egms-l3", "ustica_U", kAdmin);
  ASSERT_TRUE(points);
  const json& b = (*points)["bbox"];
  EXPECT_NEAR(b[0].get<double>(), 13.17, 0.05);  // Ustica
  EXPECT_NEAR(b[1].get<double>(), 38.70, 0.05);
}

TEST(CatalogProducts, AoiCloudCoverSearch) {
  DEFORMA_REQUIRE_DATA("s2-l2a-safe", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  ASSERT_EQ(catalog.ingest({dir}, {}).added, 1);
  const auto item =
      *catalog.item("sentinel-2-l2a", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454", kAdmin);
  const json aoi = {
      {"type", "Polygon"},
      {"coordinates", {{{-8.9, 52.3}, {-8.6, 52.3}, {-8.6, 52.5}, {-8.9, 52.5}, {-8.9, 52.3}}}}};
  const double cover = *cloud_cover_on(item, aoi);
  auto r = parse_search_json({{"intersects", aoi}, {"aoi_cloud_cover", cover + 0.5}});
  EXPECT_EQ(catalog.search(r, kAdmin).items.size(), 1u) << cover;
  r = parse_search_json({{"intersects", aoi}, {"aoi_cloud_cover", cover - 0.5}});
  EXPECT_TRUE(catalog.search(r, kAdmin).items.empty()) << cover;
  EXPECT_THROW(parse_search_json({{"aoi_cloud_cover", 10}}), InvalidArgument);
}

}  // namespace
}  // namespace deforma::catalog
