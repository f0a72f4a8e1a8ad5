// The map routes inside `deforma serve`, over the real catalogue: items ingested from deforma's own output
// are drawn, and a user's private item is invisible (404) to other users and to callers without a key,
// in tiles, legends, point queries and the WMTS/WMS layer lists alike; assets inside a zip are drawn as
// XYZ/WMTS tiles and by WMS, and a member name climbing out of its archive is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>

#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <httplib.h>
#include <ogr_srs_api.h>
#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"
#include "maps/maps_fixtures.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

using json = nlohmann::json;

// `deforma serve` on a free loopback port over a catalogue in a temporary root: what every test here starts.
class MapService : public ::testing::Test {
 protected:
  void SetUp() override { GDALAllRegister(); }
  void TearDown() override {
    if (server_) server_->stop();
  }

  std::string add_user(const std::string& name) {
    service::Store store(root_.path());
    return store.add_user(name, false, {});
  }

  catalog::Catalog catalogue() { return catalog::Catalog(root_.path() / "service.db"); }

  // (Re)starts the server; `anonymous_read`: public items without a key, as the catalogue's own reads.
  void start(bool anonymous_read = true) {
    if (server_) server_->stop();
    service::ServerOptions o;
    o.root = root_.path();
    o.port = 0;
    o.anonymous_read = anonymous_read;
    server_ = std::make_unique<service::Server>(o);
    server_->start();
  }

  // GET with an optional API key: (status, body), status 0 when no answer came.
  std::pair<int, std::string> get(const std::string& path, const std::string& key = "") {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    auto r = c.Get(path.c_str(), h);
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  }

  static std::string path_of(const std::string& collection_slash_id) {
    const auto slash = collection_slash_id.find('/');
    return "/collections/" + collection_slash_id.substr(0, slash) + "/items/" +
           collection_slash_id.substr(slash + 1);
  }

  // The WebMercatorQuad tile (x, y) at `zoom` holding (lon, lat).
  static std::pair<int, int> web_tile(int zoom, double lon, double lat) {
    const int n = 1 << zoom;
    const double phi = lat * M_PI / 180;
    return {static_cast<int>((lon + 180) / 360 * n),
            static_cast<int>((1 - std::log(std::tan(phi) + 1 / std::cos(phi)) / M_PI) / 2 * n)};
  }

  test::TempDir root_;
  std::unique_ptr<service::Server> server_;
};

TEST_F(MapService, CatalogueItemsAreDrawnForThoseWhoMaySeeThem) {
  const auto cog = test::yahtse_velocity_cog();
  if (cog.empty()) GTEST_SKIP() << "sample data 'yahtse-l8' not found; skipping";
  const std::string key_alice = add_user("alice"), key_bob = add_user("bob");
  std::string public_item, private_item;
  {
    auto cat = catalogue();
    auto report = cat.ingest({cog}, {"velocity", "", true});
    ASSERT_EQ(report.item_ids.size(), 1u) << report.to_text();
    public_item = report.item_ids[0];
    report = cat.ingest({cog}, {"alice-results", "alice", false});
    ASSERT_EQ(report.item_ids.size(), 1u) << report.to_text();
    private_item = report.item_ids[0];
  }
  start();
  // Where the data are: the legend and a point from the public item, without a key.
  auto r = get(path_of(public_item) + "/legend.json?bidx=10");
  ASSERT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(json::parse(r.second)["units"], "m/yr");
  const auto fp = maps::footprint_lonlat(maps::map_item(test::raster_item("x", "y", "v", cog)));
  ASSERT_TRUE(fp);
  const double lon = (fp->min_x + fp->max_x) / 2, lat = (fp->min_y + fp->max_y) / 2;
  const int z = 10;
  const auto [x, y] = web_tile(z, lon, lat);
  const std::string tile = fmt::format("/tiles/WebMercatorQuad/{}/{}/{}.png", z, x, y);
  r = get(path_of(public_item) + tile);
  ASSERT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(r.second.substr(1, 3), "PNG");
  EXPECT_EQ(get(path_of(public_item) + tile, key_bob).first, 200);
  // Alice's private item.
  for (const std::string& suffix : {tile, std::string("/legend.json"), std::string("/legend.png"),
                                    fmt::format("/point/{},{}", lon, lat)}) {
    EXPECT_EQ(get(path_of(private_item) + suffix, key_alice).first, 200) << suffix;
    EXPECT_EQ(get(path_of(private_item) + suffix, key_bob).first, 404) << suffix;
    EXPECT_EQ(get(path_of(private_item) + suffix).first, 404) << suffix;
  }
  EXPECT_EQ(get("/collections/alice-results" + tile, key_alice).first, 200);
  EXPECT_EQ(get("/collections/alice-results" + tile, key_bob).first, 404);
  EXPECT_EQ(get(path_of(private_item) + tile, "not-a-key").first, 401);
  // The layer lists.
  const std::string private_layer =
      private_item.substr(0, private_item.find('/')) + ":" + private_item.substr(private_item.find('/') + 1);
  r = get("/wmts/1.0.0/WMTSCapabilities.xml", key_alice);
  ASSERT_EQ(r.first, 200);
  EXPECT_NE(r.second.find(private_layer), std::string::npos);
  EXPECT_EQ(get("/wmts/1.0.0/WMTSCapabilities.xml", key_bob).second.find(private_layer), std::string::npos);
  r = get("/wms?SERVICE=WMS&REQUEST=GetCapabilities");
  ASSERT_EQ(r.first, 200);
  EXPECT_EQ(r.second.find("alice-results"), std::string::npos);
  EXPECT_NE(r.second.find("<Name>velocity:"), std::string::npos) << r.second.substr(0, 3000);

  // A service without anonymous reads wants a key for the map too, as for the catalogue.
  start(false);
  EXPECT_EQ(get(path_of(public_item) + tile).first, 401);
  EXPECT_EQ(get(path_of(public_item) + tile, key_bob).first, 200);
}

// A one-band Float32 GeoTIFF in EPSG:4326 over lon [west, east] x lat [45, 46], every pixel `value`, and its
// STAC item (collection "mosaic").
json constant_product(const test::TempDir& dir, const std::string& id, double west, double east, float value,
                      const std::string& datetime, double cloud_cover) {
  const std::string path = dir.file(id + ".tif");
  GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path.c_str(), 100, 50, 1, GDT_Float32, nullptr);
  EXPECT_NE(ds, nullptr);
  double gt[6] = {west, (east - west) / 100, 0, 46, 0, -1.0 / 50};
  GDALSetGeoTransform(ds, gt);
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(srs, 4326);
  GDALSetSpatialRef(ds, srs);
  OSRDestroySpatialReference(srs);
  std::vector<float> px(100 * 50, value);
  EXPECT_EQ(
      GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 100, 50, px.data(), 100, 50, GDT_Float32, 0, 0),
      CE_None);
  GDALClose(ds);
  return {{"type", "Feature"},
          {"stac_version", "1.0.0"},
          {"id", id},
          {"collection", "mosaic"},
          {"bbox", {west, 45, east, 46}},
          {"geometry",
           {{"type", "Polygon"},
            {"coordinates", {{{west, 45}, {east, 45}, {east, 46}, {west, 46}, {west, 45}}}}}},
          {"properties", {{"datetime", datetime}, {"eo:cloud_cover", cloud_cover}}},
          {"links", json::array()},
          {"assets",
           {{"speed",
             {{"href", path},
              {"type", "image/tiff; application=geotiff"},
              {"roles", {"data"}},
              {"raster:bands", {{{"unit", "m/yr"}}}}}}}}};
}

// The RGBA pixel (col, row) of a PNG.
std::vector<unsigned char> pixel_of(const std::string& png, int col, int row) {
  const std::string name = "/vsimem/map_service_test.png";
  VSIFCloseL(VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(png.data())),
                                  png.size(), FALSE));
  std::vector<unsigned char> v(4, 0);
  GDALDatasetH ds = GDALOpen(name.c_str(), GA_ReadOnly);
  EXPECT_NE(ds, nullptr);
  if (ds) {
    EXPECT_EQ(GDALDatasetRasterIO(ds, GF_Read, col, row, 1, 1, v.data(), 1, 1, GDT_Byte, 4, nullptr, 4, 4, 1),
              CE_None);
    GDALClose(ds);
  }
  VSIUnlink(name.c_str());
  return v;
}

TEST_F(MapService, MosaicOfASearchPutsTheNewerProductOnTop) {
  test::TempDir files;
  {
    auto cat = catalogue();
    // Two overlapping products: the older over lon 1..3 (100 m/yr), the newer over 2..4 (200 m/yr, cloudy).
    EXPECT_EQ(cat.put_item(constant_product(files, "older", 1, 3, 100, "2020-01-01T00:00:00Z", 5),
                           {"mosaic", "", true}),
              "added");
    EXPECT_EQ(cat.put_item(constant_product(files, "newer", 2, 4, 200, "2021-01-01T00:00:00Z", 50),
                           {"mosaic", "", true}),
              "added");
  }
  start();
  httplib::Client c("127.0.0.1", server_->port());
  c.set_read_timeout(60, 0);
  // Zoom 5, column 16 covers lon 0..11.25; the row holding lat 45.5.
  const int z = 5, n = 1 << z, x = 16;
  const double phi = 45.5 * M_PI / 180;
  const double y_exact = (1 - std::log(std::tan(phi) + 1 / std::cos(phi)) / M_PI) / 2 * n;
  const int y = static_cast<int>(y_exact);
  const int row = static_cast<int>((y_exact - y) * 256);
  auto column_of = [&](double lon) { return static_cast<int>(((lon + 180) / 360 * n - x) * 256); };
  const auto& ramp = render::Colormap::of(render::ColormapKind::kSequential);
  auto colour = [&](double value) {
    const render::Rgb rgb = ramp.at(value / 300);
    return std::vector<unsigned char>{rgb.r, rgb.g, rgb.b, 255};
  };
  const auto pixel = pixel_of;
  auto tile = [&](const std::string& query) {
    auto r = c.Get(fmt::format("/search/tiles/WebMercatorQuad/{}/{}/{}.png?collections=mosaic&rescale=0,300&"
                               "colormap=sequential{}",
                               z, x, y, query)
                       .c_str());
    EXPECT_TRUE(r);
    EXPECT_EQ(r ? r->status : 0, 200) << (r ? r->body : "");
    return r ? r->body : std::string();
  };
  // Most recent on top: the newer values where the two overlap, the older where only it has data.
  std::string png = tile("");
  EXPECT_EQ(pixel(png, column_of(1.5), row), colour(100));
  EXPECT_EQ(pixel(png, column_of(2.5), row), colour(200));
  EXPECT_EQ(pixel(png, column_of(3.5), row), colour(200));
  EXPECT_EQ(pixel(png, column_of(4.5), row)[3], 0);
  // A chosen date: what existed then.
  png = tile("&datetime=../2020-06-30");
  EXPECT_EQ(pixel(png, column_of(2.5), row), colour(100));
  EXPECT_EQ(pixel(png, column_of(3.5), row)[3], 0);
  // A filter of the search: the cloudy newer product is left out.
  png = tile("&filter=eo:cloud_cover%20%3C%2020");
  EXPECT_EQ(pixel(png, column_of(2.5), row), colour(100));
  // The search's own box chooses the items (whole, not clipped): here only the older one.
  png = tile("&bbox=1,45,1.8,46");
  EXPECT_EQ(pixel(png, column_of(2.5), row), colour(100));
  EXPECT_EQ(pixel(png, column_of(3.5), row)[3], 0);
  // Nothing found: a transparent tile.
  png = tile("&datetime=../2019-01-01");
  EXPECT_EQ(pixel(png, column_of(2.5), row)[3], 0);
  // The legend of the mosaic, and refusals.
  auto r = c.Get("/search/legend.json?collections=mosaic&rescale=0,300");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["max"], 300.0);
  r = c.Get(fmt::format("/search/tiles/WebMercatorQuad/{}/{}/{}.png?datetime=yesterday", z, x, y).c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("datetime"), std::string::npos) << r->body;
  r = c.Get(fmt::format("/search/tiles/WebMercatorQuad/{}/{}/{}.png?bbox=1,2,3", z, x, y).c_str());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("bbox"), std::string::npos) << r->body;
  // The catalogue's own search is still the catalogue's.
  r = c.Get("/search?collections=mosaic");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["features"].size(), 2u);
}

// A product whose asset is a member of a zip (as the bands of a zipped SAFE are catalogued) is drawn over
// HTTP like a plain file: XYZ tiles, WMTS (REST and KVP, listed in the capabilities) and WMS GetMap. A member
// name that climbs out of its archive, and a member the archive does not hold, are 404s naming the asset.
TEST_F(MapService, ZippedAssetsAsTilesWmtsAndWms) {
  test::TempDir files;
  json item = constant_product(files, "zipped", 1, 3, 100, "2020-01-01T00:00:00Z", 5);
  {
    std::ifstream in(files.file("zipped.tif"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 1000u);
    const std::string member = "/vsizip/" + files.file("scene.zip") + "/SCENE.SAFE/speed.tif";
    VSILFILE* f = VSIFOpenL(member.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(VSIFWriteL(bytes.data(), 1, bytes.size(), f), bytes.size());
    VSIFCloseL(f);
    std::filesystem::remove(files.file("zipped.tif"));  // only the zip holds the data now
    item["assets"]["speed"]["href"] = member;
    // A file beside the zip that a member name with '..' would reach through GDAL's path handling.
    constant_product(files, "outside", 1, 3, 250, "2020-01-01T00:00:00Z", 5);
  }
  auto variant = [&](const std::string& id, const std::string& href) {
    json v = item;
    v["id"] = id;
    v["assets"]["speed"]["href"] = href;
    return v;
  };
  {
    auto cat = catalogue();
    ASSERT_EQ(cat.put_item(item, {"zipped", "", true}), "added");
    const std::string zip = "/vsizip/" + files.file("scene.zip");
    ASSERT_EQ(
        cat.put_item(variant("climbing", zip + "/SCENE.SAFE/../../outside.tif"), {"traversal", "", true}),
        "added");
    ASSERT_EQ(cat.put_item(variant("climbing-root", zip + "/../outside.tif"), {"traversal", "", true}),
              "added");
    ASSERT_EQ(cat.put_item(variant("gone", zip + "/SCENE.SAFE/gone.tif"), {"traversal", "", true}), "added");
  }
  start();
  const int z = 5, x = 16;
  const auto [tx, y] = web_tile(z, 2, 45.5);
  ASSERT_EQ(tx, x);
  const int n = 1 << z;
  const double phi = 45.5 * M_PI / 180;
  const int row =
      static_cast<int>(((1 - std::log(std::tan(phi) + 1 / std::cos(phi)) / M_PI) / 2 * n - y) * 256);
  const int col = static_cast<int>(((1.5 + 180) / 360 * n - x) * 256);
  const render::Rgb rgb = render::Colormap::of(render::ColormapKind::kSequential).at(100.0 / 300);
  const std::vector<unsigned char> expected{rgb.r, rgb.g, rgb.b, 255};
  const std::string style = "rescale=0,300&colormap=sequential";

  // XYZ tile.
  const std::string xyz =
      fmt::format("/collections/zipped/items/zipped/tiles/WebMercatorQuad/{}/{}/{}.png?{}", z, x, y, style);
  auto r = get(xyz);
  ASSERT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(pixel_of(r.second, col, row), expected);
  const std::string rest_tile = r.second;
  // WMTS: listed, and the KVP tile is the REST one.
  r = get("/wmts/1.0.0/WMTSCapabilities.xml");
  ASSERT_EQ(r.first, 200);
  EXPECT_NE(r.second.find("<ows:Identifier>zipped:zipped</ows:Identifier>"), std::string::npos);
  EXPECT_EQ(r.second.find("traversal:climbing"), std::string::npos) << "an item the server cannot draw";
  r =
      get(fmt::format("/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=zipped:zipped&STYLE=default&"
                      "FORMAT=image/png&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX={}&TILEROW={}&TILECOL={}&{}",
                      z, y, x, style));
  ASSERT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(r.second, rest_tile);
  // WMS GetMap over the product (EPSG:4326, latitude first): its value everywhere.
  r =
      get("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=zipped:zipped&STYLES=&CRS=EPSG:4326&"
          "BBOX=45.2,1.2,45.8,2.8&WIDTH=64&HEIGHT=32&FORMAT=image/png&" +
          style);
  ASSERT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(pixel_of(r.second, 32, 16), expected);

  // Refused: a member name with '..' (whatever GDAL would make of it) and a member the zip does not hold.
  for (const std::string id : {"climbing", "climbing-root", "gone"}) {
    r = get(fmt::format("/collections/traversal/items/{}/tiles/WebMercatorQuad/{}/{}/{}.png?{}", id, z, x, y,
                        style));
    EXPECT_EQ(r.first, 404) << id << ": " << r.second;
    EXPECT_NE(r.second.find(fmt::format("asset 'speed' of item '{}'", id)), std::string::npos) << r.second;
    EXPECT_EQ(r.second.find(files.path().string()), std::string::npos) << "no server path to the client";
    r =
        get(fmt::format("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=traversal:{}&STYLES=&"
                        "CRS=EPSG:4326&BBOX=45.2,1.2,45.8,2.8&WIDTH=64&HEIGHT=32&FORMAT=image/png",
                        id));
    EXPECT_TRUE(r.first == 400 || r.first == 404) << id << ": " << r.first << " " << r.second;
    r =
        get(fmt::format("/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=traversal:{}&STYLE=default&"
                        "FORMAT=image/png&TILEMATRIXSET=WebMercatorQuad&TILEMATRIX={}&TILEROW={}&TILECOL={}",
                        id, z, y, x));
    EXPECT_TRUE(r.first == 400 || r.first == 404) << id << ": " << r.first << " " << r.second;
  }
  // The traversal collection as a mosaic has nothing it may draw.
  r = get(fmt::format("/collections/traversal/tiles/WebMercatorQuad/{}/{}/{}.png", z, x, y));
  EXPECT_TRUE(r.first == 404 || r.first == 200) << r.first << " " << r.second;
  EXPECT_NE(r.first, 500);
}

}  // namespace
}  // namespace deforma
