#include "deforma/pipeline/stac.hpp"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "test_support.hpp"

namespace deforma::pipeline {
namespace {
namespace fs = std::filesystem;

nlohmann::json load(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Structural checks of a static STAC catalog: required fields of the Catalog and Items (STAC 1.0.0), and
// every relative href resolving to an existing file. Returns the number of Items visited.
int check_catalog(const fs::path& catalog_path) {
  const auto c = load(catalog_path);
  EXPECT_EQ(c["type"], "Catalog");
  EXPECT_EQ(c["stac_version"], "1.0.0");
  EXPECT_TRUE(c["id"].is_string());
  EXPECT_TRUE(c["description"].is_string());
  int items = 0;
  for (const auto& link : c["links"]) {
    const std::string href = link["href"];
    EXPECT_EQ(href.rfind("./", 0), 0u) << href;  // relative
    const fs::path target = catalog_path.parent_path() / href;
    EXPECT_TRUE(fs::exists(target)) << href;
    if (link["rel"] != "item") continue;
    ++items;
    const auto item = load(target);
    EXPECT_EQ(item["type"], "Feature");
    EXPECT_EQ(item["stac_version"], "1.0.0");
    EXPECT_TRUE(item.contains("geometry"));
    if (!item["geometry"].is_null()) {
      EXPECT_EQ(item["bbox"].size(), 4u);
      EXPECT_EQ(item["geometry"]["type"], "Polygon");
    }
    const auto& props = item["properties"];
    EXPECT_TRUE(props.contains("datetime"));
    if (props["datetime"].is_null()) {
      EXPECT_TRUE(props["start_datetime"].is_string());
      EXPECT_TRUE(props["end_datetime"].is_string());
    }
    EXPECT_TRUE(props.contains("proj:code"));
    EXPECT_EQ(item["stac_extensions"][0], kStacProjectionSchema);
    for (const auto& l : item["links"]) {
      EXPECT_TRUE(fs::exists(target.parent_path() / l["href"].get<std::string>())) << l["href"];
    }
    EXPECT_FALSE(item["assets"].empty());
    for (const auto& [key, asset] : item["assets"].items()) {
      const std::string href = asset["href"];
      EXPECT_NE(href.front(), '/') << key;
      EXPECT_TRUE(fs::exists(target.parent_path() / href)) << key << " " << href;
      EXPECT_TRUE(asset["type"].is_string());
    }
  }
  return items;
}

TEST(Stac, WritesCatalogWithGeoreferencedAndPixelItems) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "products");
  GridF values(40, 30, 1.f);
  test::write_test_geotiff(tmp.file("products/velocity.tif"), values);  // UTM 7N, origin 500000 E 6700000 N
  test::write_test_geotiff(tmp.file("pixels.tif"), values, "Float32", -9999, false, 0);
  std::ofstream(tmp.file("products/table.csv")) << "a,b\n1,2\n";

  StacCatalog catalog;
  catalog.id = "demo";
  catalog.title = "demo run";
  StacItem velocity;
  velocity.id = "velocity";
  velocity.title = "Mean velocity";
  velocity.start = io::Date::from_ymd(2016, 7, 18);
  velocity.end = io::Date::from_ymd(2016, 8, 3);
  velocity.footprint_raster = tmp.file("products/velocity.tif");
  velocity.assets = {{"data", tmp.file("products/velocity.tif"), "velocity", "", {"data"}, {}},
                     {"table", tmp.file("products/table.csv"), "table", "", {"metadata"}, {}}};
  StacItem pixels;
  pixels.id = "pixels";
  pixels.start = pixels.end = io::Date::from_ymd(2020, 1, 1);
  pixels.footprint_raster = tmp.file("pixels.tif");
  pixels.assets = {{"data", tmp.file("pixels.tif"), "", "", {"data"}, {}}};
  catalog.items = {velocity, pixels};
  const auto written = write_stac_catalog(tmp.path().string(), catalog);
  EXPECT_EQ(written.size(), 3u);
  EXPECT_EQ(check_catalog(tmp.path() / "catalog.json"), 2);

  const auto item = load(tmp.path() / "velocity" / "velocity.json");
  EXPECT_EQ(item["properties"]["proj:code"], "EPSG:32607");
  EXPECT_EQ(item["properties"]["proj:shape"], nlohmann::json({30, 40}));
  EXPECT_EQ(item["properties"]["start_datetime"], "2016-07-18T00:00:00Z");
  EXPECT_EQ(item["assets"]["data"]["href"], "../products/velocity.tif");
  EXPECT_EQ(item["assets"]["data"]["type"], "image/tiff; application=geotiff; profile=cloud-optimized");
  // 500000 E in zone 7N is the central meridian, 141 W; 6700000 N is about 60.4 N.
  const auto& bbox = item["bbox"];
  EXPECT_NEAR(bbox[0].get<double>(), -141.0, 0.02);
  EXPECT_NEAR(bbox[3].get<double>(), 60.43, 0.05);
  EXPECT_LT(bbox[0].get<double>(), bbox[2].get<double>());
  EXPECT_LT(bbox[1].get<double>(), bbox[3].get<double>());

  const auto pixel_item = load(tmp.path() / "pixels" / "pixels.json");
  EXPECT_TRUE(pixel_item["geometry"].is_null());
  EXPECT_TRUE(pixel_item["properties"]["proj:code"].is_null());
  EXPECT_FALSE(pixel_item.contains("bbox"));
}

TEST(Stac, RejectsDuplicateIdsMissingAndOutsideAssets) {
  test::TempDir tmp, other;
  std::ofstream(tmp.file("a.csv")) << "x\n";
  std::ofstream(other.file("b.csv")) << "x\n";
  StacItem a;
  a.id = "a";
  a.assets = {{"t", tmp.file("a.csv"), "", "", {}, {}}};
  StacCatalog catalog;
  catalog.id = "c";
  catalog.items = {a, a};
  EXPECT_THROW(write_stac_catalog(tmp.path().string(), catalog), InvalidArgument);
  StacItem missing = a;
  missing.assets[0].path = tmp.file("nope.csv");
  catalog.items = {missing};
  EXPECT_THROW(write_stac_catalog(tmp.path().string(), catalog), IoError);
  StacItem outside = a;
  outside.assets[0].path = other.file("b.csv");
  catalog.items = {outside};
  EXPECT_THROW(write_stac_catalog(tmp.path().string(), catalog), InvalidArgument);
  EXPECT_FALSE(fs::exists(tmp.path() / "catalog.json"));
}

}  // namespace
}  // namespace deforma::pipeline
