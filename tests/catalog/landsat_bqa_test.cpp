// Landsat Collection 1 scenes: their BQA band is the cloud mask (bit 4 cloud, bits 5-6 cloud confidence,
// 7-8 cloud shadow confidence, 11-12 cirrus confidence, bit 0 fill), for the catalogue's cloud cover on an
// aoi and for the pair selection's mask lookup, on a synthetic scene whose bits are known.
#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/cloud_mask.hpp"
#include "io/lonlat_test_grid.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::write_lonlat_test_grid;

constexpr unsigned kFill = 1u << 0;
constexpr unsigned kCloud = 1u << 4;
constexpr unsigned kCloudHigh = 3u << 5, kCloudMedium = 2u << 5, kCloudLow = 1u << 5;
constexpr unsigned kShadowHigh = 3u << 7, kShadowLow = 1u << 7;
constexpr unsigned kCirrusHigh = 3u << 11;

// Row 0 is fill. Columns 0-9: cloud (bit and high confidence); 10-19: high-confidence shadow; 20-24:
// medium cloud confidence only (not counted); 25-29: high-confidence cirrus; 30-39: clear, low confidences.
// Over the 39 valid rows: 25 of 40 columns are cloud, 62.5 %; west half 100 %, east half 5 of 20, 25 %.
unsigned bqa_value(int x, int y) {
  if (y == 0) return kFill;
  if (x < 10) return kCloud | kCloudHigh;
  if (x < 20) return kShadowHigh | kCloudLow;
  if (x < 25) return kCloudMedium;
  if (x < 30) return kCirrusHigh | kCloudLow;
  return kCloudLow | kShadowLow;
}

const std::string kScene = "LC08_L1TP_195028_20170117_20170311_01_T1";

void write_collection1_scene(const test::TempDir& dir) {
  std::ofstream mtl(dir.file(kScene + "_MTL.txt"));
  mtl << "GROUP = L1_METADATA_FILE\n"
         "  GROUP = METADATA_FILE_INFO\n"
         "    LANDSAT_SCENE_ID = \"LC81950282017017LGN00\"\n"
         "    LANDSAT_PRODUCT_ID = \""
      << kScene
      << "\"\n"
         "    COLLECTION_NUMBER = 01\n"
         "  END_GROUP = METADATA_FILE_INFO\n"
         "  GROUP = PRODUCT_METADATA\n"
         "    DATA_TYPE = \"L1TP\"\n"
         "    COLLECTION_CATEGORY = \"T1\"\n"
         "    SPACECRAFT_ID = \"LANDSAT_8\"\n"
         "    SENSOR_ID = \"OLI_TIRS\"\n"
         "    WRS_PATH = 195\n"
         "    WRS_ROW = 28\n"
         "    DATE_ACQUIRED = 2017-01-17\n"
         "    SCENE_CENTER_TIME = \"10:05:12.0000000Z\"\n"
         "  END_GROUP = PRODUCT_METADATA\n"
         "  GROUP = IMAGE_ATTRIBUTES\n"
         "    CLOUD_COVER = 61.00\n"
         "  END_GROUP = IMAGE_ATTRIBUTES\n"
         "END_GROUP = L1_METADATA_FILE\n"
         "END\n";
  mtl.close();
  write_lonlat_test_grid(dir.file(kScene + "_B8.TIF"), GDT_UInt16,
                         [](int x, int y) { return 7000 + 11 * x + 5 * y; });
  write_lonlat_test_grid(dir.file(kScene + "_BQA.TIF"), GDT_UInt16,
                         [](int x, int y) { return bqa_value(x, y); });
}

TEST(LandsatBqa, BitRuleFollowsCollection1Layout) {
  EXPECT_TRUE(io::bqa_is_cloud(kCloud));
  EXPECT_TRUE(io::bqa_is_cloud(kCloudHigh));
  EXPECT_TRUE(io::bqa_is_cloud(kShadowHigh));
  EXPECT_TRUE(io::bqa_is_cloud(kCirrusHigh));
  EXPECT_FALSE(io::bqa_is_cloud(kCloudMedium | kShadowLow));
  EXPECT_FALSE(io::bqa_is_cloud(kCloudLow | kShadowLow));
  EXPECT_FALSE(io::bqa_is_cloud(2u << 7));            // medium shadow confidence
  EXPECT_FALSE(io::bqa_is_cloud(3u << 9));            // high snow/ice confidence is not cloud
  EXPECT_FALSE(io::bqa_is_cloud(1u << 1 | 3u << 2));  // terrain occlusion, saturation
  // A typical Landsat 8 Collection 1 value: 2720 is clear land (low cloud, shadow, snow, cirrus confidence).
  EXPECT_FALSE(io::bqa_is_cloud(2720));
  EXPECT_TRUE(io::bqa_is_cloud(2800));  // cloud bit with high cloud confidence
}

TEST(LandsatBqa, MaskFoundBesideACollection1BandAndCounted) {
  test::TempDir dir;
  write_collection1_scene(dir);
  const auto mask = io::find_cloud_mask(dir.file(kScene + "_B8.TIF"));
  ASSERT_TRUE(mask);
  EXPECT_EQ(mask->kind, io::CloudMaskKind::kLandsatBqa);
  EXPECT_EQ(fs::path(mask->path).filename(), kScene + "_BQA.TIF");
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, ""), 62.5, 1e-9);
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, "10.0,45.7,10.2,46.0"), 100.0, 1e-9);
  EXPECT_NEAR(*io::cloud_cover_percent(*mask, "10.2,45.7,10.4,46.0"), 25.0, 1e-9);
  // A pre-collection band (its BQA has another layout) gets no mask.
  write_lonlat_test_grid(dir.file("LC81950282017017LGN00_B8.TIF"), GDT_UInt16, [](int, int) { return 1; });
  write_lonlat_test_grid(dir.file("LC81950282017017LGN00_BQA.TIF"), GDT_UInt16, [](int, int) { return 1; });
  EXPECT_FALSE(io::find_cloud_mask(dir.file("LC81950282017017LGN00_B8.TIF")));
}

TEST(LandsatBqa, CatalogueItemCloudCoverOnAnAoi) {
  test::TempDir dir, root;
  write_collection1_scene(dir);
  catalog::Catalog catalog(root.path() / "service.db");
  const auto report = catalog.ingest({dir.path()}, {});
  EXPECT_EQ(report.added, 1) << report.to_text();
  EXPECT_TRUE(report.failed.empty()) << report.to_text();
  const auto item = catalog.item("landsat", kScene, {"admin", true});
  ASSERT_TRUE(item) << report.to_text();
  EXPECT_EQ((*item)["properties"]["datetime"], "2017-01-17T10:05:12Z");
  ASSERT_TRUE((*item)["assets"].contains("cloud-mask")) << (*item)["assets"].dump();
  EXPECT_EQ(fs::path((*item)["assets"]["cloud-mask"]["href"].get<std::string>()).filename(),
            kScene + "_BQA.TIF");
  EXPECT_NEAR(*catalog::cloud_cover_on(*item, nullptr), 62.5, 1e-9);
  const json west = {
      {"type", "Polygon"},
      {"coordinates", {{{10.0, 45.7}, {10.2, 45.7}, {10.2, 46.0}, {10.0, 46.0}, {10.0, 45.7}}}}};
  const json east = {
      {"type", "Polygon"},
      {"coordinates", {{{10.2, 45.7}, {10.4, 45.7}, {10.4, 46.0}, {10.2, 46.0}, {10.2, 45.7}}}}};
  EXPECT_NEAR(*catalog::cloud_cover_on(*item, west), 100.0, 1e-9);
  EXPECT_NEAR(*catalog::cloud_cover_on(*item, east), 25.0, 1e-9);
  // The search's aoi_cloud_cover reads the same mask.
  catalog::SearchRequest clear_east;
  clear_east.bbox = std::array<double, 4>{10.2, 45.7, 10.4, 46.0};
  clear_east.aoi_cloud_cover_max = 30;
  EXPECT_EQ(catalog.search(clear_east, {"admin", true}).items.size(), 1u);
  catalog::SearchRequest clear_west = clear_east;
  clear_west.bbox = std::array<double, 4>{10.0, 45.7, 10.2, 46.0};
  EXPECT_TRUE(catalog.search(clear_west, {"admin", true}).items.empty());
}

}  // namespace
}  // namespace deforma
