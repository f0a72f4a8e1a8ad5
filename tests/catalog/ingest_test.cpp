// Ingest of the real sample data sets: counts, datetimes, footprints and cloud cover checked against the
// files (see ../shared/data/README.md for the figures quoted).
#include <cpl_vsi.h>
#include <gdal_priv.h>
#include <ogr_api.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/maps/tms.hpp"
#include "test_support.hpp"

namespace deforma::catalog {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const Viewer kAdmin{"admin", true};

std::unique_ptr<OGRGeometry> geometry_of(const json& item) {
  OGRGeometryH g = OGR_G_CreateGeometryFromJson(item["geometry"].dump().c_str());
  return std::unique_ptr<OGRGeometry>(OGRGeometry::FromHandle(g));
}

// Area of a lon/lat geometry in km², in the given projected CRS.
double area_km2(const json& item, int epsg) {
  auto g = geometry_of(item);
  OGRSpatialReference wgs84, utm;
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  utm.importFromEPSG(epsg);
  utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  g->assignSpatialReference(&wgs84);
  EXPECT_EQ(g->transformTo(&utm), OGRERR_NONE);
  return g->toPolygon()->get_Area() / 1e6;
}

TEST(CatalogIngest, Sentinel2SafeAllFieldsFootprintAndCloudMask) {
  DEFORMA_REQUIRE_DATA("s2-l2a-safe", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({dir}, {});
  ASSERT_TRUE(report.failed.empty()) << report.to_text();
  ASSERT_EQ(report.added, 1);
  const auto item =
      catalog.item("sentinel-2-l2a", "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454", kAdmin);
  ASSERT_TRUE(item);
  const json& p = (*item)["properties"];
  EXPECT_EQ(p["datetime"], "2022-10-05T11:54:11Z");
  EXPECT_EQ(p["platform"], "sentinel-2a");
  EXPECT_EQ(p["s2:mgrs_tile"], "29UNU");
  EXPECT_EQ(p["sat:relative_orbit"], 23);
  EXPECT_EQ(p["sat:orbit_state"], "descending");
  EXPECT_EQ(p["s2:processing_baseline"], "04.00");
  EXPECT_NEAR(p["eo:cloud_cover"].get<double>(), 59.769726, 1e-6);
  // The data footprint, not the whole 109.8 km tile: 40.4 % of the tile is no-data.
  const double tile_km2 = 109.8 * 109.8;
  const double share = area_km2(*item, 32629) / tile_km2;
  EXPECT_NEAR(share, 0.596, 0.02) << "footprint area share of the tile";
  const json& assets = (*item)["assets"];
  ASSERT_TRUE(assets.contains("B04_60m"));
  EXPECT_EQ(assets["B04_60m"]["eo:bands"][0]["common_name"], "red");
  EXPECT_EQ(assets["B04_60m"]["proj:epsg"], 32629);
  EXPECT_EQ(assets["B04_60m"]["proj:shape"], json({1830, 1830}));
  EXPECT_EQ(assets["B04_60m"]["proj:transform"][2], 499980.0);
  EXPECT_EQ(assets["B04_60m"]["raster:bands"][0]["data_type"], "uint16");
  EXPECT_EQ(assets["B04_60m"]["raster:bands"][0]["nodata"], 0);
  ASSERT_TRUE(assets.contains("cloud-mask"));
  EXPECT_NE(assets["cloud-mask"]["href"].get<std::string>().find("SCL_20m.jp2"), std::string::npos);
  EXPECT_TRUE(fs::path(assets["B04_60m"]["href"].get<std::string>()).is_absolute());

  // The oracle of the data's README: SCL_20m classes 8 + 9 + 10 are 59.770 % of the non-zero pixels.
  const auto whole = cloud_cover_on(*item, nullptr, {8, 9, 10});
  ASSERT_TRUE(whole);
  EXPECT_NEAR(*whole, 59.770, 0.001);
  // Over an aoi: the shadows (class 3) count too, and a box outside the data has no cover at all.
  const json aoi = {
      {"type", "Polygon"},
      {"coordinates", {{{-8.9, 52.3}, {-8.5, 52.3}, {-8.5, 52.6}, {-8.9, 52.6}, {-8.9, 52.3}}}}};
  const auto part = cloud_cover_on(*item, aoi);
  ASSERT_TRUE(part);
  EXPECT_GE(*part, 0.0);
  EXPECT_LE(*part, 100.0);
  const json sea = {
      {"type", "Polygon"},
      {"coordinates", {{{20.0, 40.0}, {20.1, 40.0}, {20.1, 40.1}, {20.0, 40.1}, {20.0, 40.0}}}}};
  EXPECT_FALSE(cloud_cover_on(*item, sea));
}

// A SAFE inside a zip, written through GDAL's /vsizip/ (three of its files are enough).
TEST(CatalogIngest, Sentinel2SafeZip) {
  DEFORMA_REQUIRE_DATA("s2-l2a-safe", dir);
  test::TempDir tmp;
  const std::string safe = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE";
  const std::string granule = "GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA/R60m/";
  const std::string zip = tmp.file("S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.zip");
  for (const std::string& rel :
       {std::string("MTD_MSIL2A.xml"), granule + "T29UNU_20221005T115411_SCL_60m.jp2",
        granule + "T29UNU_20221005T115411_B04_60m.jp2"}) {
    std::ifstream in(dir / safe / rel, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    VSILFILE* f = VSIFOpenL(("/vsizip/" + zip + "/" + safe + "/" + rel).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(VSIFWriteL(bytes.data(), 1, bytes.size(), f), bytes.size());
    VSIFCloseL(f);
  }
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({tmp.path()}, {});
  ASSERT_EQ(report.added, 1) << report.to_text();
  const auto item = catalog.item("sentinel-2-l2a", safe.substr(0, safe.size() - 5), kAdmin);
  ASSERT_TRUE(item);
  EXPECT_EQ((*item)["properties"]["datetime"], "2022-10-05T11:54:11Z");
  EXPECT_EQ((*item)["assets"]["product"]["href"], zip);
  EXPECT_EQ((*item)["assets"]["B04_60m"]["proj:shape"], json({1830, 1830}));
  // The 60 m SCL is the cloud mask here: the README gives 59.753 % for classes 8 + 9 + 10.
  EXPECT_NEAR(*cloud_cover_on(*item, nullptr, {8, 9, 10}), 59.753, 0.001);

  // The map server draws a band from inside the zip as it draws the plain file: same tile, same bytes.
  const std::string href = (*item)["assets"]["B04_60m"]["href"];
  EXPECT_EQ(href.rfind("/vsizip/", 0), 0u) << href;
  json plain = *item;
  plain["assets"]["B04_60m"]["href"] = (dir / safe / granule / "T29UNU_20221005T115411_B04_60m.jp2").string();
  const auto style = maps::parse_style({{"assets", "B04_60m"}, {"rescale", "0,3000"}});
  const auto& tms = maps::tile_matrix_set("WebMercatorQuad");
  // Zoom 9 tile over (-8.7 E, 52.5 N), inside the data.
  const double n = 512, lat = 52.5 * M_PI / 180;
  const int x = static_cast<int>((-8.7 + 180) / 360 * n);
  const int y = static_cast<int>((1 - std::log(std::tan(lat) + 1 / std::cos(lat)) / M_PI) / 2 * n);
  const std::string zipped = maps::render_tile(maps::map_item(*item), style, tms, 9, x, y);
  EXPECT_EQ(zipped, maps::render_tile(maps::map_item(plain), style, tms, 9, x, y));
  EXPECT_NE(zipped, maps::empty_image(256, 256, "png")) << "the tile holds data";
}

// The fingerprint covers every file of a SAFE: a replaced SCL is read again although the metadata file
// did not change (it used to be the only file looked at).
TEST(CatalogIngest, ChangedSclOfASafeIsReadAgain) {
  DEFORMA_REQUIRE_DATA("s2-l2a-safe", dir);
  test::TempDir tmp;
  const std::string safe = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE";
  const std::string granule = "GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA/";
  const fs::path copy = tmp.path() / "data" / safe;
  fs::create_directories(copy / granule / "R60m");
  fs::copy_file(dir / safe / "MTD_MSIL2A.xml", copy / "MTD_MSIL2A.xml");
  const fs::path scl = copy / granule / "R60m/T29UNU_20221005T115411_SCL_60m.jp2";
  fs::copy_file(dir / safe / granule / "R60m/T29UNU_20221005T115411_SCL_60m.jp2", scl);
  Catalog catalog(tmp.path() / "service.db");
  const std::string id = safe.substr(0, safe.size() - 5);
  ASSERT_EQ(catalog.ingest({tmp.path() / "data"}, {}).added, 1);
  EXPECT_EQ((*catalog.item("sentinel-2-l2a", id, kAdmin))["assets"]["cloud-mask"]["proj:shape"],
            json({1830, 1830}));
  EXPECT_EQ(catalog.ingest({tmp.path() / "data"}, {}).unchanged, 1);
  // The 60 m SCL replaced by the 20 m one's bytes (a reprocessed mask): the item follows.
  fs::copy_file(dir / safe / granule / "R20m/T29UNU_20221005T115411_SCL_20m.jp2", scl,
                fs::copy_options::overwrite_existing);
  const auto again = catalog.ingest({tmp.path() / "data"}, {});
  EXPECT_EQ(again.updated, 1) << again.to_text();
  EXPECT_EQ((*catalog.item("sentinel-2-l2a", id, kAdmin))["assets"]["cloud-mask"]["proj:shape"],
            json({5490, 5490}));
  EXPECT_EQ(catalog.ingest({tmp.path() / "data"}, {}).unchanged, 1);
}

TEST(CatalogIngest, LandsatSceneFromMtlWithItsBand) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({dir}, {});
  // Two scenes (their bands are assets, not items of their own) and the DEM (see UndatedRasters...).
  EXPECT_EQ(report.added, 3) << report.to_text();
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto item = catalog.item("landsat", "LC80630182016200LGN00", kAdmin);
  ASSERT_TRUE(item);
  EXPECT_EQ((*item)["properties"]["datetime"], "2016-07-18T20:37:06Z");
  EXPECT_EQ((*item)["properties"]["platform"], "landsat-8");
  EXPECT_NEAR((*item)["properties"]["eo:cloud_cover"].get<double>(), 44.14, 1e-9);
  ASSERT_TRUE((*item)["assets"].contains("B8"));
  EXPECT_EQ((*item)["assets"]["B8"]["proj:epsg"], 32607);
  // The footprint is the crop's (1698 x 1087 px of 15 m), not the full scene's corners.
  EXPECT_NEAR(area_km2(*item, 32607), 1698 * 15.0 * 1087 * 15.0 / 1e6, 1.0);
  const auto second = catalog.item("landsat", "LC80630182016216LGN00", kAdmin);
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)["properties"]["datetime"], "2016-08-03T20:37:09Z");
}

// Rasters with no acquisition date: the SRTM DEM spans the mission's flight; the Izmit offset grids carry no
// date at all (neither name nor metadata) and are catalogued undated: found by place, never by time, last
// when sorted by datetime.
TEST(CatalogIngest, UndatedRastersFoundByPlaceNotByTime) {
  DEFORMA_REQUIRE_DATA("izmit-coseismic", izmit);
  DEFORMA_REQUIRE_DATA("yahtse-l8", yahtse);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  auto report = catalog.ingest({izmit, yahtse / "yahtse_srtm_dem.tif"}, {"ground", "", true});
  ASSERT_TRUE(report.failed.empty()) << report.to_text();
  ASSERT_EQ(report.added, 3) << report.to_text();  // the two GeoTIFFs and the DEM; the .grd are not items
  const auto dem = catalog.item("ground", "yahtse_srtm_dem", kAdmin);
  ASSERT_TRUE(dem);
  EXPECT_TRUE((*dem)["properties"]["datetime"].is_null());
  EXPECT_EQ((*dem)["properties"]["start_datetime"], "2000-02-11T00:00:00Z");
  EXPECT_EQ((*dem)["properties"]["end_datetime"], "2000-02-22T23:59:59Z");
  EXPECT_EQ(stac_item_problem(*dem), "");
  const auto izmit_item = catalog.item("ground", "EW_Izmit", kAdmin);
  ASSERT_TRUE(izmit_item);
  const json& p = (*izmit_item)["properties"];
  EXPECT_TRUE(p["datetime"].is_null());
  EXPECT_FALSE(p.contains("start_datetime"));
  EXPECT_EQ(p["deforma:undated"], true);
  EXPECT_EQ(stac_item_problem(*izmit_item), "");
  // Footprint: 29.675 .. 30.011 E, 40.600 .. 40.859 N (README).
  const json& b = (*izmit_item)["bbox"];
  EXPECT_NEAR(b[0].get<double>(), 29.675, 0.002);
  EXPECT_NEAR(b[1].get<double>(), 40.600, 0.002);
  EXPECT_NEAR(b[2].get<double>(), 30.011, 0.002);
  EXPECT_NEAR(b[3].get<double>(), 40.859, 0.002);

  // A point in the Izmit grid only (west of Adapazari's 29.941 E): found by place.
  SearchRequest r;
  r.limit = 100;
  r.bbox = std::array<double, 4>{29.70, 40.70, 29.71, 40.71};
  auto found = catalog.search(r, kAdmin);
  ASSERT_EQ(found.items.size(), 1u);
  EXPECT_EQ(found.items[0]["id"], "EW_Izmit");
  // Any datetime filter leaves undated items out, open intervals included.
  r.start_s = parse_rfc3339("1900-01-01T00:00:00Z");
  EXPECT_TRUE(catalog.search(r, kAdmin).items.empty());
  r.bbox.reset();
  found = catalog.search(r, kAdmin);
  ASSERT_EQ(found.items.size(), 1u);
  EXPECT_EQ(found.items[0]["id"], "yahtse_srtm_dem");
  r.start_s.reset();
  r.end_s = parse_rfc3339("2000-02-15T00:00:00Z");
  EXPECT_EQ(catalog.search(r, kAdmin).items.size(), 1u);
  // Sorting by datetime puts the undated items last, in both directions.
  r.end_s.reset();
  for (bool ascending : {true, false}) {
    r.sortby = {{"datetime", ascending}};
    found = catalog.search(r, kAdmin);
    ASSERT_EQ(found.items.size(), 3u);
    EXPECT_EQ(found.items[0]["id"], "yahtse_srtm_dem") << (ascending ? "ascending" : "descending");
    EXPECT_TRUE(found.items[1]["properties"]["datetime"].is_null());
    EXPECT_TRUE(found.items[2]["properties"].contains("deforma:undated"));
  }
  // Re-ingest is idempotent for undated items too.
  report = catalog.ingest({izmit}, {"ground", "", true});
  EXPECT_EQ(report.unchanged, 2) << report.to_text();
}

TEST(CatalogIngest, JpegsWithoutGeoreferencingHaveNullGeometry) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({dir}, {"glacier", "", true});
  EXPECT_EQ(report.added, 23) << report.to_text();  // mask.jpg is not a scene
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto item = catalog.item("glacier", "20200205", kAdmin);
  ASSERT_TRUE(item);
  EXPECT_TRUE((*item)["geometry"].is_null());
  EXPECT_FALSE(item->contains("bbox"));
  EXPECT_EQ((*item)["properties"]["datetime"], "2020-02-05T00:00:00Z");
  EXPECT_EQ((*item)["assets"]["data"]["proj:shape"], json({1231, 1731}));
  // Found by time, not by place.
  SearchRequest r;
  r.start_s = parse_rfc3339("2020-03-01T00:00:00Z");
  r.limit = 100;
  EXPECT_EQ(catalog.search(r, kAdmin).items.size(), 6u);  // 03-01, 03-11, 03-13, 03-16, 03-18, 03-28
  r.bbox = std::array<double, 4>{-74, -51, -73, -50};
  EXPECT_TRUE(catalog.search(r, kAdmin).items.empty());
}

TEST(CatalogIngest, Sentinel1GrdFootprintFromGcps) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({dir}, {});
  ASSERT_EQ(report.added, 2) << report.to_text();
  const auto item = catalog.item("sentinel-1-grd", "S1B_EW_GRDM_1SDH_20161005T101835", kAdmin);
  ASSERT_TRUE(item);
  const json& p = (*item)["properties"];
  EXPECT_EQ(p["datetime"], "2016-10-05T10:18:35Z");  // time_coverage_start, not TIFFTAG_DATETIME
  EXPECT_EQ(p["platform"], "sentinel-1b");           // the file name, not the image description
  EXPECT_EQ(p["sat:orbit_state"], "ascending");
  EXPECT_EQ(p["sar:instrument_mode"], "EW");
  EXPECT_EQ(p["sar:polarizations"], json({"HH", "HV"}));
  const json& b = (*item)["bbox"];
  // lat 86.33 .. 86.86 N, lon 6.0 W .. 3.4 E for both files together (README).
  EXPECT_GT(b[1].get<double>(), 86.2);
  EXPECT_LT(b[3].get<double>(), 86.95);
  EXPECT_GT(b[0].get<double>(), -6.5);
  EXPECT_LT(b[2].get<double>(), 3.9);
  // ~40 x 40 km.
  const double km2 = area_km2(*item, 3413);
  EXPECT_GT(km2, 1200);
  EXPECT_LT(km2, 2000);
}

TEST(CatalogIngest, EgmsBurstsWithTrackDirectionAndDates) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({dir}, {});
  ASSERT_EQ(report.added, 2) << report.to_text();
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto desc = catalog.item("egms-l2b", "EGMS_L2b_022_0845_IW2_VV_2020_2024_1", kAdmin);
  ASSERT_TRUE(desc);
  EXPECT_EQ((*desc)["properties"]["sat:orbit_state"], "descending");
  EXPECT_EQ((*desc)["properties"]["sat:relative_orbit"], 22);
  EXPECT_EQ((*desc)["properties"]["egms:level"], "L2b");
  EXPECT_EQ((*desc)["properties"]["egms:points"], 11590);
  EXPECT_EQ((*desc)["properties"]["start_datetime"], "2020-01-03T00:00:00Z");
  EXPECT_EQ((*desc)["properties"]["end_datetime"], "2024-12-25T23:59:59Z");
  const auto asc = catalog.item("egms-l2b", "EGMS_L2b_117_0227_IW2_VV_2020_2024_1", kAdmin);
  ASSERT_TRUE(asc);
  EXPECT_EQ((*asc)["properties"]["sat:orbit_state"], "ascending");
  EXPECT_EQ((*asc)["properties"]["egms:points"], 11759);
  // Ustica: about 38.7 N, 13.18 E.
  const json& b = (*desc)["bbox"];
  EXPECT_LT(b[0].get<double>(), 13.18);
  EXPECT_GT(b[2].get<double>(), 13.15);
  EXPECT_LT(b[1].get<double>(), 38.70);
  EXPECT_GT(b[3].get<double>(), 38.70);
}

TEST(CatalogIngest, ExternalStacJsonOfEveryShape) {
  DEFORMA_REQUIRE_DATA("stac-items", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({dir}, {});
  // 4 single Items, 3 arrays of 4, a FeatureCollection of 10; the Collection is a collection.
  EXPECT_EQ(report.added, 4 + 12 + 10) << report.to_text();
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto c = catalog.collection("sentinel-2-l2a", kAdmin);
  ASSERT_TRUE(c);
  EXPECT_FALSE((*c)["description"].get<std::string>().empty());
  const auto item =
      catalog.item("sentinel-2-l2a", "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531", kAdmin);
  ASSERT_TRUE(item);
  EXPECT_NEAR((*item)["properties"]["eo:cloud_cover"].get<double>(), 0.314306, 1e-9);
  // Free text reaches the collection's themes (its keywords: "Copernicus", "Reflectance"...), whichever of
  // the collection and its items came first.
  SearchRequest q;
  q.q = "copernicus";
  q.limit = 100;
  const auto themed = catalog.search(q, kAdmin);
  EXPECT_EQ(themed.items.size(), 5u);
  for (const auto& i : themed.items) EXPECT_EQ(i["collection"], "sentinel-2-l2a");
  // Pre-1.0 item: its collection was inside properties.
  EXPECT_TRUE(catalog.item("landsat-c2l2-sr", "LC08_L2SR_081119_20200101_20200823_02_T2", kAdmin));
}

TEST(CatalogIngest, IdempotentAndUpdatedWhenChanged) {
  DEFORMA_REQUIRE_DATA("stac-items", dir);
  test::TempDir tmp;
  Catalog catalog(tmp.path() / "service.db");
  const auto first = catalog.ingest({dir / "sentinel-2-l2a-pc.json", dir / "landsat-c2-l2-pc.json"}, {});
  EXPECT_EQ(first.added, 8);
  const auto again = catalog.ingest({dir / "sentinel-2-l2a-pc.json", dir / "landsat-c2-l2-pc.json"}, {});
  EXPECT_EQ(again.added, 0);
  EXPECT_EQ(again.updated, 0);
  EXPECT_EQ(again.unchanged, 8);
  EXPECT_EQ(catalog.size(), 8);
  // A changed file: its items are updated, not duplicated.
  std::ifstream in(dir / "sentinel-2-l2a-pc.json");
  json items = json::parse(in);
  items[0]["properties"]["eo:cloud_cover"] = 42.0;
  std::ofstream(tmp.file("copy.json")) << items.dump();
  const auto copy = catalog.ingest({tmp.path() / "copy.json"}, {});
  EXPECT_EQ(copy.updated, 1) << copy.to_text();
  EXPECT_EQ(copy.unchanged, 3) << copy.to_text();
  EXPECT_EQ(catalog.size(), 8);
  const auto changed = catalog.item("sentinel-2-l2a", items[0]["id"].get<std::string>(), kAdmin);
  EXPECT_EQ((*changed)["properties"]["eo:cloud_cover"], 42.0);
}

TEST(CatalogIngest, CorruptFileAndInvalidItemReportedByNameRestIngested) {
  DEFORMA_REQUIRE_DATA("stac-items", dir);
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "in");
  fs::copy_file(dir / "landsat-c2-l2-pc.json", tmp.path() / "in" / "good.json");
  std::ifstream in(dir / "sentinel-2-l2a-pc.json");
  json items = json::parse(in);
  items[1]["properties"]["datetime"] = "yesterday";
  items[2].erase("assets");
  std::ofstream(tmp.path() / "in" / "mixed.json") << items.dump();
  std::ofstream(tmp.path() / "in" / "broken.tif") << "II*\0 this is not a TIFF";
  std::ofstream(tmp.path() / "in" / "truncated.json") << "{\"type\": \"Feature\", \"id\": ";
  Catalog catalog(tmp.path() / "service.db");
  const auto report = catalog.ingest({tmp.path() / "in"}, {});
  EXPECT_EQ(report.added, 4 + 2) << report.to_text();
  ASSERT_EQ(report.failed.size(), 4u) << report.to_text();
  const std::string text = report.to_text();
  EXPECT_NE(text.find("broken.tif"), std::string::npos) << text;
  EXPECT_NE(text.find("truncated.json: not valid JSON"), std::string::npos) << text;
  EXPECT_NE(text.find(items[1]["id"].get<std::string>()), std::string::npos) << text;
  EXPECT_NE(text.find("'properties.datetime' (\"yesterday\")"), std::string::npos) << text;
  EXPECT_NE(text.find(items[2]["id"].get<std::string>()), std::string::npos) << text;
  EXPECT_NE(text.find("'assets'"), std::string::npos) << text;
}

}  // namespace
}  // namespace deforma::catalog

namespace deforma::catalog {
namespace {

TEST(CatalogCli, ItemWithoutCollectionIsReportedNotAnInternalError) {
  test::TempDir tmp;
  const json item = {{"type", "Feature"},
                     {"stac_version", "1.0.0"},
                     {"id", "lonely"},
                     {"geometry", {{"type", "Point"}, {"coordinates", {6.5, 45.9}}}},
                     {"bbox", {6.5, 45.9, 6.5, 45.9}},
                     {"properties", {{"datetime", "2020-01-01T00:00:00Z"}}},
                     {"links", json::array()},
                     {"assets", json::object()}};
  std::ofstream(tmp.file("item.json")) << item.dump();
  const std::string root = (tmp.path() / "catalogue").string();
  const auto refused = test::run_cli(fmt::format("catalog add --root {} {}", root, tmp.file("item.json")));
  EXPECT_EQ(refused.out.find("internal error"), std::string::npos) << refused.out;
  EXPECT_EQ(refused.err.find("internal error"), std::string::npos) << refused.err;
  const std::string said = refused.out + refused.err;
  EXPECT_NE(said.find("item 'lonely': no collection (give one with --collection)"), std::string::npos) << said;
  EXPECT_NE(refused.exit_code, 1) << said;
  const auto taken = test::run_cli(
      fmt::format("catalog add --root {} --collection field-notes {}", root, tmp.file("item.json")));
  ASSERT_EQ(taken.exit_code, 0) << taken.err;
  EXPECT_NE(taken.out.find("1 added"), std::string::npos) << taken.out;
}

TEST(CatalogCli, AddTwiceThenSearch) {
  DEFORMA_REQUIRE_DATA("stac-items", dir);
  test::TempDir tmp;
  const std::string root = tmp.path().string();
  auto first = test::run_cli(fmt::format("catalog add --root {} {}", root, dir.string()));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("26 added, 0 updated, 0 unchanged, 0 failed"), std::string::npos) << first.out;
  auto again = test::run_cli(fmt::format("catalog add --root {} {}", root, dir.string()));
  EXPECT_NE(again.out.find("0 added, 0 updated, 26 unchanged, 0 failed"), std::string::npos) << again.out;
  auto found =
      test::run_cli(fmt::format("catalog search --root {} --collections landsat-c2-l2 --filter "
                                "\"eo:cloud_cover > 50\" --sortby +eo:cloud_cover",
                                root));
  ASSERT_EQ(found.exit_code, 0) << found.err;
  const json page = json::parse(found.out);
  ASSERT_GE(page["features"].size(), 1u);
  EXPECT_EQ(page["numberReturned"], page["features"].size());
  EXPECT_GE(page["numberMatched"].get<std::size_t>(), page["features"].size());
  double last = -1;
  for (const auto& f : page["features"]) {
    EXPECT_EQ(f["collection"], "landsat-c2-l2");
    EXPECT_GT(f["properties"]["eo:cloud_cover"].get<double>(), 50);
    EXPECT_GE(f["properties"]["eo:cloud_cover"].get<double>(), last);
    last = f["properties"]["eo:cloud_cover"].get<double>();
  }
  auto bad = test::run_cli(fmt::format("catalog search --root {} --bbox 1,2,3", root));
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("bbox"), std::string::npos);
  auto missing = test::run_cli(fmt::format("catalog add --root {} {}/nothing-here", root, root));
  EXPECT_EQ(missing.exit_code, 5);
  EXPECT_NE(missing.err.find("nothing-here: no such file or folder"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace deforma::catalog
