// The map server over real HTTP on loopback, with a stand-in catalogue: tiles, mosaics, legends, point
// queries, EGMS vector tiles and series, refused parameters, items hidden from other users, and the QGIS
// path — GDAL's WMTS and WMS drivers as clients, reading windows whose pixels must be the server's, and
// python3-owslib parsing both capabilities documents.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <httplib.h>
#include <ogr_srs_api.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/maps/tiles.hpp"
#include "maps/maps_fixtures.hpp"
#include "service/http.hpp"
#include "service/map_routes.hpp"
#include "service/request.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

using json = nlohmann::json;

struct Image {
  int width = 0, height = 0, bands = 0;
  std::vector<unsigned char> px;  // pixel-interleaved
};

Image read_image(GDALDatasetH ds, int col, int row, int width, int height) {
  Image img{width, height, GDALGetRasterCount(ds), {}};
  img.px.resize(static_cast<std::size_t>(width) * height * img.bands);
  EXPECT_EQ(GDALDatasetRasterIO(ds, GF_Read, col, row, width, height, img.px.data(), width, height, GDT_Byte,
                                img.bands, nullptr, img.bands, width * img.bands, 1),
            CE_None);
  return img;
}

Image decode(const std::string& bytes) {
  static int n = 0;
  const std::string name = "/vsimem/map_routes_test_" + std::to_string(n++) + ".png";
  VSIFCloseL(VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(bytes.data())),
                                  bytes.size(), FALSE));
  GDALDatasetH ds = GDALOpen(name.c_str(), GA_ReadOnly);
  Image img;
  if (ds) {
    img = read_image(ds, 0, 0, GDALGetRasterXSize(ds), GDALGetRasterYSize(ds));
    GDALClose(ds);
  } else {
    ADD_FAILURE() << "not an image";
  }
  VSIUnlink(name.c_str());
  return img;
}

// A one-band Float32 GeoTIFF in EPSG:4326 over `b` (lon/lat), every pixel `value`.
void write_constant_tif(const std::string& path, const maps::Bounds& b, float value) {
  GDALDriverH gtiff = GDALGetDriverByName("GTiff");
  GDALDatasetH ds = GDALCreate(gtiff, path.c_str(), 100, 100, 1, GDT_Float32, nullptr);
  ASSERT_NE(ds, nullptr);
  double gt[6] = {b.min_x, b.width() / 100, 0, b.max_y, 0, -b.height() / 100};
  GDALSetGeoTransform(ds, gt);
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(srs, 4326);
  GDALSetSpatialRef(ds, srs);
  OSRDestroySpatialReference(srs);
  std::vector<float> px(100 * 100, value);
  EXPECT_EQ(GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, 0, 100, 100, px.data(), 100, 100, GDT_Float32,
                         0, 0),
            CE_None);
  GDALClose(ds);
}

// A stand-in for the catalogue: collection "yahtse" with a public item, collection "private" with an item
// only alice sees, collection "egms" with the Ustica product's points.
class MapServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GDALAllRegister();
    // GDAL's WMS/WMTS drivers cache tiles in ./gdalwmscache unless told otherwise.
    CPLSetConfigOption("GDAL_DEFAULT_WMS_CACHE_PATH", cache_.file("gdalwmscache").c_str());
    cog_ = test::yahtse_velocity_cog();
    if (cog_.empty()) GTEST_SKIP() << "sample data 'yahtse-l8' not found; skipping";
    items_.push_back({"", test::raster_item("yahtse", "pair-2016", "velocity", cog_)});
    items_.push_back({"alice", test::raster_item("private", "mine", "velocity", cog_)});
    if (!test::data_dir().empty()) {
      const auto product = test::data_dir() / "egms-ustica" / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip";
      if (std::filesystem::exists(product)) {
        json egms{{"type", "Feature"},
                  {"id", "EGMS_L2b_022_0845"},
                  {"collection", "egms"},
                  {"properties", {{"datetime", "2024-12-31T00:00:00Z"}, {"egms:level", "L2b"}}},
                  {"assets", {{"points", {{"href", product.string()}, {"type", "application/zip"}}}}}};
        items_.push_back({"", egms});
      }
    }
    service::MapCatalog catalog;
    catalog.item = [this](const std::string& c, const std::string& i,
                          const service::MapViewer& v) -> std::optional<json> {
      for (const auto& [owner, item] : items_) {
        if (item["collection"] == c && item["id"] == i && (owner.empty() || owner == v.user)) return item;
      }
      return std::nullopt;
    };
    catalog.items = [this](const std::string& c, const std::optional<std::array<double, 4>>&, int,
                           const service::MapViewer& v) {
      std::vector<json> out;
      for (const auto& [owner, item] : items_) {
        if (item["collection"] == c && (owner.empty() || owner == v.user)) out.push_back(item);
      }
      return out;
    };
    catalog.collections = [this](const service::MapViewer& v) {
      std::vector<std::string> out;
      for (const auto& [owner, item] : items_) {
        const std::string c = item["collection"];
        if ((owner.empty() || owner == v.user) && std::find(out.begin(), out.end(), c) == out.end())
          out.push_back(c);
      }
      return out;
    };
    routes_ = std::make_unique<service::MapRoutes>(catalog);
    service::HttpOptions options;
    options.port = 0;
    options.threads = 4;
    http_ = std::make_unique<service::HttpServer>(
        options, [this](service::HttpRequest req, service::Reply reply) {
          // The viewer comes from a test header here; the service takes it from the API key.
          const service::MapViewer viewer{req.header("x-test-user"), false};
          const auto parts = service::split(req.path, '/');
          service::HttpResponse res;
          try {
            if (!service::MapRoutes::is_map_path(parts)) service::fail(404, "Not Found", "not a map path");
            return routes_->handle(req, parts, viewer, "http://127.0.0.1:" + std::to_string(http_->port()),
                                   reply);
          } catch (const service::ApiError& e) {
            res.status = e.status;
            res.body = json{{"status", e.status}, {"detail", e.detail}}.dump();
          } catch (const InvalidArgument& e) {
            res.status = 400;
            res.body = json{{"status", 400}, {"detail", e.what()}}.dump();
          } catch (const std::exception& e) {
            res.status = 500;
            res.body = json{{"status", 500}, {"detail", e.what()}}.dump();
          }
          reply(std::move(res));
        });
    http_->start();
    base_ = "http://127.0.0.1:" + std::to_string(http_->port());
    item_ = maps::map_item(items_[0].second);
    const auto fp = maps::footprint_lonlat(item_);
    ASSERT_TRUE(fp);
    lon_ = (fp->min_x + fp->max_x) / 2;
    lat_ = (fp->min_y + fp->max_y) / 2;
  }
  void TearDown() override {
    if (http_) http_->stop();
    CPLSetConfigOption("GDAL_DEFAULT_WMS_CACHE_PATH", nullptr);
  }

  httplib::Result get(const std::string& path, const std::string& user = "") {
    httplib::Client c("127.0.0.1", http_->port());
    c.set_read_timeout(60, 0);
    httplib::Headers h;
    if (!user.empty()) h.emplace("X-Test-User", user);
    return c.Get(path.c_str(), h);
  }

  std::pair<int, int> web_tile(int zoom) const {
    const double n = std::ldexp(1.0, zoom);
    const double lat = lat_ * M_PI / 180;
    return {static_cast<int>((lon_ + 180) / 360 * n),
            static_cast<int>((1 - std::log(std::tan(lat) + 1 / std::cos(lat)) / M_PI) / 2 * n)};
  }

  test::TempDir cache_;
  std::filesystem::path cog_;
  std::vector<std::pair<std::string, json>> items_;  // owner ("" = public), item
  std::unique_ptr<service::MapRoutes> routes_;
  std::unique_ptr<service::HttpServer> http_;
  std::string base_;
  maps::MapItem item_;
  double lon_ = 0, lat_ = 0;
};

TEST_F(MapServerTest, TilesLegendsAndPointsOverHttp) {
  const auto [x, y] = web_tile(11);
  const std::string query = "?bidx=10&rescale=0,3000";
  auto r = get(
      fmt::format("/collections/yahtse/items/pair-2016/tiles/WebMercatorQuad/11/{}/{}.png{}", x, y, query));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  const auto expected = maps::render_tile(item_, maps::parse_style({{"bidx", "10"}, {"rescale", "0,3000"}}),
                                          maps::tile_matrix_set("WebMercatorQuad"), 11, x, y);
  EXPECT_EQ(decode(r->body).px, decode(expected).px);
  r = get(fmt::format("/collections/yahtse/items/pair-2016/tiles/WebMercatorQuad/11/{}/{}.webp?tilesize=512",
                      x, y));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/webp");
  // The collection as a mosaic.
  r = get(fmt::format("/collections/yahtse/tiles/WebMercatorQuad/11/{}/{}.png{}", x, y, query));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(decode(r->body).px, decode(expected).px);

  r = get("/collections/yahtse/items/pair-2016/legend.json?bidx=10&rescale=0,3000");
  ASSERT_EQ(r->status, 200) << r->body;
  const json legend = json::parse(r->body);
  EXPECT_EQ(legend["units"], "m/yr");
  EXPECT_EQ(legend["max"], 3000.0);
  r = get("/collections/yahtse/items/pair-2016/legend.png?expression=hypot(b8,b9)");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.substr(1, 3), "PNG");

  r = get(fmt::format("/collections/yahtse/items/pair-2016/point/{},{}", lon_, lat_));
  ASSERT_EQ(r->status, 200) << r->body;
  const json point = json::parse(r->body);
  // Every band of `correlate --velocity` with the affine shape: base, velocity, gradients, strain rates.
  EXPECT_EQ(point["values"].size(), 18u);
  EXPECT_DOUBLE_EQ(point["lon"].get<double>(), lon_);
  r = get(fmt::format("/collections/yahtse/items/pair-2016/point/{},{}?f=csv", lon_, lat_));
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/csv");
  EXPECT_EQ(r->body.rfind("asset,band,name,units,value", 0), 0u);
}

TEST_F(MapServerTest, BadRequestsAndHiddenItems) {
  const auto [x, y] = web_tile(11);
  const std::string tile = fmt::format("/WebMercatorQuad/11/{}/{}.png", x, y);
  auto r = get("/collections/yahtse/items/pair-2016/tiles" + tile + "?rescale=9,1");
  ASSERT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("rescale"), std::string::npos) << r->body;
  r = get("/collections/yahtse/items/pair-2016/tiles" + tile + "?bidx=42");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("bidx"), std::string::npos) << r->body;
  r = get("/collections/yahtse/items/pair-2016/tiles/NoSuchSet/11/0/0.png");
  EXPECT_EQ(r->status, 400);
  r = get("/collections/yahtse/items/pair-2016/tiles/WebMercatorQuad/3/9/0.png");
  EXPECT_EQ(r->status, 400);
  r = get("/collections/yahtse/items/pair-2016/tiles/WebMercatorQuad/3/1/x.png");
  EXPECT_EQ(r->status, 400);
  r = get("/collections/yahtse/items/pair-2016/point/abc");
  EXPECT_EQ(r->status, 400);
  r = get("/collections/yahtse/items/nope/tiles" + tile);
  EXPECT_EQ(r->status, 404);
  // Alice's private item: hers to see, absent for anyone else (404 as if it did not exist).
  for (const std::string& path : {"/collections/private/items/mine/tiles" + tile,
                                  std::string("/collections/private/items/mine/legend.json"),
                                  fmt::format("/collections/private/items/mine/point/{},{}", lon_, lat_),
                                  "/collections/private/tiles" + tile}) {
    EXPECT_EQ(get(path, "alice")->status, 200) << path;
    EXPECT_EQ(get(path, "bob")->status, 404) << path;
    EXPECT_EQ(get(path)->status, 404) << path;
  }
  // Nor is it among the layers.
  EXPECT_NE(get("/wmts/1.0.0/WMTSCapabilities.xml", "alice")->body.find("private:mine"), std::string::npos);
  EXPECT_EQ(get("/wmts/1.0.0/WMTSCapabilities.xml", "bob")->body.find("private:mine"), std::string::npos);
  EXPECT_EQ(get("/wms?SERVICE=WMS&REQUEST=GetCapabilities")->body.find("private"), std::string::npos);
  r =
      get("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=private:mine&CRS=EPSG:3857&BBOX=0,0,1,1&"
          "WIDTH=8&HEIGHT=8&FORMAT=image/png");
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("LayerNotDefined"), std::string::npos);
  r =
      get("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=yahtse:pair-2016&CRS=EPSG:3857&BBOX=0,0,1&"
          "WIDTH=8&HEIGHT=8");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("BBOX"), std::string::npos);
  r = get("/wms?SERVICE=WMS&REQUEST=DescribeLayer");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("OperationNotSupported"), std::string::npos);
}

TEST_F(MapServerTest, EgmsPointsAsVectorTilesFeaturesAndSeries) {
  if (items_.size() < 3) GTEST_SKIP() << "sample data 'egms-ustica' not found; skipping";
  auto r = get("/collections/egms/items/EGMS_L2b_022_0845/points?limit=3");
  ASSERT_EQ(r->status, 200) << r->body;
  const json fc = json::parse(r->body);
  ASSERT_EQ(fc["features"].size(), 3u);
  EXPECT_GT(fc["numberMatched"].get<int>(), 3);
  bool next = false;
  for (const auto& l : fc["links"])
    next = next || (l["rel"] == "next" && l["href"].get<std::string>().find("offset=3") != std::string::npos);
  EXPECT_TRUE(next) << fc["links"].dump();
  const std::string pid = fc["features"][0]["properties"]["pid"];
  const auto coords = fc["features"][0]["geometry"]["coordinates"];
  r = get("/collections/egms/items/EGMS_L2b_022_0845/points/" + pid);
  ASSERT_EQ(r->status, 200) << r->body;
  const json series = json::parse(r->body);
  EXPECT_EQ(series["pid"], pid);
  EXPECT_EQ(series["dates"].size(), series["values"].size());
  EXPECT_EQ(get("/collections/egms/items/EGMS_L2b_022_0845/points/nope")->status, 404);
  // The point query on the EGMS item: the nearest point's series.
  r = get(fmt::format("/collections/egms/items/EGMS_L2b_022_0845/point/{},{}", coords[0].get<double>(),
                      coords[1].get<double>()));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["series"]["pid"], pid);
  // The vector tile holding that point: at zoom 15 a few hundred points, each with its pid; at zoom 8 the
  // whole burst, more than a tile's budget, aggregated into cells without pids.
  const double lon = coords[0].get<double>(), lat = coords[1].get<double>() * M_PI / 180;
  auto tile_url = [&](int z) {
    const int n = 1 << z;
    const int x = static_cast<int>((lon + 180) / 360 * n);
    const int y = static_cast<int>((1 - std::log(std::tan(lat) + 1 / std::cos(lat)) / M_PI) / 2 * n);
    return fmt::format("/collections/egms/items/EGMS_L2b_022_0845/vector-tiles/WebMercatorQuad/{}/{}/{}.mvt",
                       z, x, y);
  };
  r = get(tile_url(15));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/vnd.mapbox-vector-tile");
  EXPECT_NE(r->body.find(pid), std::string::npos);  // strings are stored as they are in MVT
  EXPECT_NE(r->body.find("velocity_mm_per_yr"), std::string::npos);
  EXPECT_EQ(r->body.find("aggregated"), std::string::npos);
  r = get(tile_url(8));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.find(pid), std::string::npos);
  EXPECT_NE(r->body.find("aggregated"), std::string::npos);
  EXPECT_NE(r->body.find("count"), std::string::npos);
  EXPECT_EQ(get("/collections/yahtse/items/pair-2016/vector-tiles/WebMercatorQuad/1/0/0.mvt")->status, 404);
}

TEST_F(MapServerTest, GdalWmtsDriverReadsTheServersTiles) {
  const auto [x, y] = web_tile(11);
  const std::string connection = fmt::format(
      "WMTS:{}/wmts/1.0.0/"
      "WMTSCapabilities.xml,layer=yahtse:pair-2016,tilematrixset=WebMercatorQuad,zoom_level=11",
      base_);
  GDALDatasetH ds = GDALOpen(connection.c_str(), GA_ReadOnly);
  ASSERT_NE(ds, nullptr) << CPLGetLastErrorMsg();
  ASSERT_EQ(GDALGetRasterCount(ds), 4);
  double gt[6];
  ASSERT_EQ(GDALGetGeoTransform(ds, gt), CE_None);
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  const auto b = web.tile_bounds(11, x, y);
  EXPECT_NEAR(gt[1], b.width() / 256, 1e-6);
  // The tile's window in the dataset (the dataset is cut to the layer's extent).
  const int col0 = static_cast<int>(std::lround((b.min_x - gt[0]) / gt[1]));
  const int row0 = static_cast<int>(std::lround((b.max_y - gt[3]) / gt[5]));
  const int c0 = std::max(0, col0), r0 = std::max(0, row0);
  const int c1 = std::min(GDALGetRasterXSize(ds), col0 + 256),
            r1 = std::min(GDALGetRasterYSize(ds), row0 + 256);
  ASSERT_GT(c1 - c0, 16);
  ASSERT_GT(r1 - r0, 16);
  const Image window = read_image(ds, c0, r0, c1 - c0, r1 - r0);
  GDALClose(ds);
  const Image tile = decode(maps::render_tile(item_, {}, web, 11, x, y));
  int differ = 0, opaque = 0;
  for (int r = r0; r < r1; ++r) {
    for (int c = c0; c < c1; ++c) {
      const unsigned char* a = &window.px[((r - r0) * window.width + (c - c0)) * 4];
      const unsigned char* t = &tile.px[((r - row0) * 256 + (c - col0)) * 4];
      opaque += t[3] == 255;
      differ += !std::equal(a, a + 4, t);
    }
  }
  EXPECT_GT(opaque, 100);
  EXPECT_EQ(differ, 0);
}

TEST_F(MapServerTest, GdalWmsDriverReadsGetMap) {
  // The capabilities list the layer as a subdataset...
  const std::string caps = fmt::format("WMS:{}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities", base_);
  GDALDatasetH ds = GDALOpen(caps.c_str(), GA_ReadOnly);
  ASSERT_NE(ds, nullptr) << CPLGetLastErrorMsg();
  char** subs = GDALGetMetadata(ds, "SUBDATASETS");
  std::string listed;
  for (char** s = subs; s && *s; ++s) listed += std::string(*s) + "\n";
  GDALClose(ds);
  EXPECT_NE(listed.find("LAYERS=yahtse%3Apair-2016&CRS=EPSG:4326"), std::string::npos) << listed;
  // ...and a window read through GetMap (EPSG:4326, latitude first in 1.3.0: GDAL is told so, as it sends
  // longitude first otherwise) has the server's pixels.
  const double half = 0.05;
  const maps::Bounds b{lon_ - 2 * half, lat_ - half, lon_ + 2 * half, lat_ + half};
  const std::string xml = fmt::format(R"(<GDAL_WMS><Service name="WMS"><Version>1.3.0</Version>
<ServerUrl>{}/wms?</ServerUrl><CRS>EPSG:4326</CRS><BBoxOrder>yxYX</BBoxOrder><ImageFormat>image/png</ImageFormat><Layers>yahtse:pair-2016</Layers>
</Service><DataWindow><UpperLeftX>{}</UpperLeftX><UpperLeftY>{}</UpperLeftY><LowerRightX>{}</LowerRightX>
<LowerRightY>{}</LowerRightY><SizeX>256</SizeX><SizeY>128</SizeY></DataWindow><BandsCount>4</BandsCount>
<BlockSizeX>256</BlockSizeX><BlockSizeY>128</BlockSizeY><Cache/></GDAL_WMS>)",
                                      base_, b.min_x, b.max_y, b.max_x, b.min_y);
  ds = GDALOpen(xml.c_str(), GA_ReadOnly);
  ASSERT_NE(ds, nullptr) << CPLGetLastErrorMsg();
  const Image window = read_image(ds, 0, 0, 256, 128);
  GDALClose(ds);
  const Image expected = decode(maps::render_map({item_}, {}, "EPSG:4326", b, 256, 128));
  int opaque = 0;
  for (std::size_t i = 3; i < expected.px.size(); i += 4) opaque += expected.px[i] == 255;
  EXPECT_GT(opaque, 100);
  EXPECT_EQ(window.px, expected.px);
  // GetFeatureInfo at the centre pixel: the values of the bands there.
  auto r = get(
      fmt::format("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetFeatureInfo&QUERY_LAYERS=yahtse:pair-2016&"
                  "LAYERS=yahtse:pair-2016&CRS=EPSG:4326&BBOX={},{},{},{}&WIDTH=256&HEIGHT=128&I=128&J=64&"
                  "INFO_FORMAT=application/json",
                  b.min_y, b.min_x, b.max_y, b.max_x));
  ASSERT_EQ(r->status, 200) << r->body;
  const json info = json::parse(r->body);
  ASSERT_EQ(info["features"].size(), 1u);
  EXPECT_EQ(info["features"][0]["properties"]["values"].size(), 18u);
  r = get("/wms?SERVICE=WMS&REQUEST=GetLegendGraphic&LAYER=yahtse:pair-2016&FORMAT=application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(json::parse(r->body).contains("stops"));
}

TEST_F(MapServerTest, WmsGetMapDrawsSeveralLayersInOrder) {
  // A second layer over the western half of the Yahtse map, every pixel 1500 (m/yr).
  test::TempDir tmp;
  const std::string half = tmp.file("half.tif");
  write_constant_tif(half, {lon_ - 1, lat_ - 1, lon_, lat_ + 1}, 1500.0f);
  items_.push_back({"", test::raster_item("overlay", "west", "velocity", half)});
  const maps::Bounds b{lon_ - 0.1, lat_ - 0.05, lon_ + 0.1, lat_ + 0.05};
  auto getmap = [&](const std::string& layers, const std::string& extra) {
    return get(
        fmt::format("/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS={}&CRS=EPSG:4326&"
                    "BBOX={},{},{},{}&WIDTH=128&HEIGHT=64&FORMAT=image/png&rescale=0,3000{}",
                    layers, b.min_y, b.min_x, b.max_y, b.max_x, extra));
  };
  maps::StyleOptions o = maps::parse_style({{"rescale", "0,3000"}});
  const Image yahtse = decode(maps::render_map({item_}, o, "EPSG:4326", b, 128, 64));
  o.colormap = "sequential";
  const Image west =
      decode(maps::render_map({maps::map_item(items_.back().second)}, o, "EPSG:4326", b, 128, 64));
  const Image west_diverging = [&] {
    maps::StyleOptions d = o;
    d.colormap = "diverging";
    return decode(maps::render_map({maps::map_item(items_.back().second)}, d, "EPSG:4326", b, 128, 64));
  }();
  auto px = [](const Image& img, int col, int row) {
    return std::vector<unsigned char>(&img.px[(row * img.width + col) * 4],
                                      &img.px[(row * img.width + col) * 4 + 4]);
  };
  // Yahtse first, the overlay over it: the west half is the overlay's, the east half Yahtse's.
  auto r = getmap("yahtse:pair-2016,overlay:west", "&STYLES=,sequential");
  ASSERT_EQ(r->status, 200) << r->body;
  Image both = decode(r->body);
  int west_px = 0, east_px = 0;
  for (int row = 0; row < 64; ++row) {
    for (int col = 0; col < 128; ++col) {
      if (col < 63) {
        EXPECT_EQ(px(both, col, row), px(west, col, row)) << col << "," << row;
        west_px += px(west, col, row)[3] == 255;
      } else if (col > 64) {
        EXPECT_EQ(px(both, col, row), px(yahtse, col, row)) << col << "," << row;
        east_px += px(yahtse, col, row)[3] == 255;
      }
    }
  }
  EXPECT_GT(west_px, 1000);
  EXPECT_GT(east_px, 100);
  // The other order: Yahtse on top wherever it has data, the overlay (diverging style) only in its holes.
  r = getmap("overlay:west,yahtse:pair-2016", "&STYLES=diverging,");
  ASSERT_EQ(r->status, 200) << r->body;
  both = decode(r->body);
  for (int row = 0; row < 64; ++row) {
    for (int col = 0; col < 63; ++col) {
      const bool yahtse_here = px(yahtse, col, row)[3] == 255;
      EXPECT_EQ(px(both, col, row), yahtse_here ? px(yahtse, col, row) : px(west_diverging, col, row));
    }
  }
  // Opaque on a background colour when asked.
  r = getmap("overlay:west", "&STYLES=&TRANSPARENT=FALSE&BGCOLOR=0x102030");
  ASSERT_EQ(r->status, 200) << r->body;
  const Image opaque = decode(r->body);
  EXPECT_EQ(px(opaque, 127, 0), (std::vector<unsigned char>{0x10, 0x20, 0x30, 255}));
  EXPECT_EQ(px(opaque, 0, 0)[3], 255);
  r = getmap("overlay:west", "&TRANSPARENT=TRUE");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(px(decode(r->body), 127, 0)[3], 0);
  // Refusals, naming what is wrong.
  r = getmap("yahtse:pair-2016,nope:nothing", "&STYLES=,");
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("LayerNotDefined"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("nope:nothing"), std::string::npos) << r->body;
  r = getmap("yahtse:pair-2016,overlay:west", "&STYLES=,rainbow");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("StyleNotDefined"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("rainbow"), std::string::npos) << r->body;
  r = getmap("yahtse:pair-2016,overlay:west", "&STYLES=,,");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("STYLES"), std::string::npos) << r->body;
  r = getmap("overlay:west", "&TRANSPARENT=FALSE&BGCOLOR=red");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("BGCOLOR"), std::string::npos) << r->body;
  r = getmap("", "");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("LAYERS"), std::string::npos) << r->body;
}

TEST_F(MapServerTest, WmtsKvpGetTile) {
  const auto [x, y] = web_tile(11);
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  const std::string kvp = fmt::format(
      "/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=yahtse:pair-2016&STYLE=default&"
      "TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=11&TILEROW={}&TILECOL={}&FORMAT=image/png",
      y, x);
  auto r = get(kvp);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(decode(r->body).px, decode(maps::render_tile(item_, {}, web, 11, x, y)).px);
  // The collection's mosaic with its time dimension: before the item's date there is nothing to draw.
  r =
      get(fmt::format("/wmts?service=WMTS&request=GetTile&layer=yahtse&style=&tilematrixset=WebMercatorQuad&"
                      "tilematrix=11&tilerow={}&tilecol={}&format=image/png&TIME=2016-08-03",
                      y, x));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(decode(r->body).px, decode(maps::render_tile(item_, {}, web, 11, x, y)).px);
  r =
      get(fmt::format("/wmts?service=WMTS&request=GetTile&layer=yahtse&style=&tilematrixset=WebMercatorQuad&"
                      "tilematrix=11&tilerow={}&tilecol={}&format=image/png&TIME=2015-01-01",
                      y, x));
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, maps::empty_image(256, 256, "png"));
  // The KVP binding is advertised next to the REST one.
  r = get("/wmts?SERVICE=WMTS&REQUEST=GetCapabilities");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("<ows:Value>KVP</ows:Value>"), std::string::npos);
  EXPECT_NE(r->body.find("<ows:Value>RESTful</ows:Value>"), std::string::npos);
  // Errors are OWS exception reports naming the parameter.
  auto expect_error = [&](const std::string& query, int status, const std::string& code,
                          const std::string& locator) {
    auto e = get("/wmts?" + query);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, status) << query << "\n" << e->body;
    EXPECT_NE(e->body.find("exceptionCode=\"" + code + "\""), std::string::npos) << e->body;
    EXPECT_NE(e->body.find("locator=\"" + locator + "\""), std::string::npos) << e->body;
  };
  const std::string ok =
      "SERVICE=WMTS&REQUEST=GetTile&LAYER=yahtse:pair-2016&STYLE=default&FORMAT=image/png&"
      "TILEMATRIXSET=WebMercatorQuad";
  expect_error(ok + "&TILEMATRIX=11&TILEROW=1", 400, "MissingParameterValue", "TILECOL");
  expect_error(ok + "&TILEMATRIX=3&TILEROW=1&TILECOL=9", 400, "TileOutOfRange", "TILEROW");
  expect_error(ok + "&TILEMATRIX=a&TILEROW=1&TILECOL=1", 400, "InvalidParameterValue", "TILEMATRIX");
  expect_error(
      "SERVICE=WMTS&REQUEST=GetTile&LAYER=private:mine&STYLE=&FORMAT=image/png&"
      "TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=1&TILEROW=0&TILECOL=0",
      400, "InvalidParameterValue", "LAYER");
  expect_error(
      "SERVICE=WMTS&REQUEST=GetTile&LAYER=yahtse&STYLE=&FORMAT=image/jpeg&"
      "TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=1&TILEROW=0&TILECOL=0",
      400, "InvalidParameterValue", "FORMAT");
  expect_error(
      "SERVICE=WMTS&REQUEST=GetTile&LAYER=yahtse&STYLE=&FORMAT=image/png&"
      "TILEMATRIXSET=Nope&TILEMATRIX=1&TILEROW=0&TILECOL=0",
      400, "InvalidParameterValue", "TILEMATRIXSET");
  expect_error("SERVICE=WMTS&REQUEST=GetFeatureInfo", 501, "OperationNotSupported", "REQUEST");
  // Alice's private layer is hers through KVP too.
  EXPECT_EQ(get("/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=private:mine&STYLE=&FORMAT=image/png&"
                "TILEMATRIXSET=WebMercatorQuad&TILEMATRIX=1&TILEROW=0&TILECOL=0",
                "alice")
                ->status,
            200);

  // GDAL's WMTS driver takes the KVP binding when the capabilities offer no REST template.
  std::string caps = get("/wmts/1.0.0/WMTSCapabilities.xml")->body;
  std::string kvp_only;
  std::istringstream lines(caps);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("<ResourceURL") == std::string::npos) kvp_only += line + "\n";
  }
  test::TempDir tmp;
  std::ofstream(tmp.file("caps.xml")) << kvp_only;
  const std::string connection = fmt::format(
      "WMTS:{},layer=yahtse:pair-2016,tilematrixset=WebMercatorQuad,zoom_level=11", tmp.file("caps.xml"));
  GDALDatasetH ds = GDALOpen(connection.c_str(), GA_ReadOnly);
  ASSERT_NE(ds, nullptr) << CPLGetLastErrorMsg();
  double gt[6];
  ASSERT_EQ(GDALGetGeoTransform(ds, gt), CE_None);
  const auto b = web.tile_bounds(11, x, y);
  const int col0 = static_cast<int>(std::lround((b.min_x - gt[0]) / gt[1]));
  const int row0 = static_cast<int>(std::lround((b.max_y - gt[3]) / gt[5]));
  const int c0 = std::max(0, col0), r0 = std::max(0, row0);
  const int c1 = std::min(GDALGetRasterXSize(ds), col0 + 256),
            r1 = std::min(GDALGetRasterYSize(ds), row0 + 256);
  ASSERT_GT(c1 - c0, 16);
  ASSERT_GT(r1 - r0, 16);
  const Image window = read_image(ds, c0, r0, c1 - c0, r1 - r0);
  GDALClose(ds);
  const Image tile = decode(maps::render_tile(item_, {}, web, 11, x, y));
  int differ = 0, opaque = 0;
  for (int rr = r0; rr < r1; ++rr) {
    for (int c = c0; c < c1; ++c) {
      const unsigned char* a = &window.px[((rr - r0) * window.width + (c - c0)) * 4];
      const unsigned char* t = &tile.px[((rr - row0) * 256 + (c - col0)) * 4];
      opaque += t[3] == 255;
      differ += !std::equal(a, a + 4, t);
    }
  }
  EXPECT_GT(opaque, 100);
  EXPECT_EQ(differ, 0);
}

TEST_F(MapServerTest, OwslibParsesBothCapabilities) {
  // Debian's module is under /usr/bin/python3, which another python3 earlier on PATH may not see.
  std::string python;
  for (const std::string candidate : {"python3", "/usr/bin/python3"}) {
    if (python.empty() && std::system((candidate + " -c 'import owslib' >/dev/null 2>&1").c_str()) == 0)
      python = candidate;
  }
  if (python.empty())
    GTEST_SKIP() << "python3-owslib is not installed (Debian package python3-owslib); skipping";
  test::TempDir tmp;
  std::ofstream(tmp.file("check.py")) << fmt::format(R"(
from owslib.wms import WebMapService
from owslib.wmts import WebMapTileService
wms = WebMapService("{0}/wms", version="1.3.0")
assert "yahtse:pair-2016" in wms.contents, list(wms.contents)
layer = wms["yahtse:pair-2016"]
assert "EPSG:3857" in layer.crsOptions, layer.crsOptions
assert "GetMap" in [op.name for op in wms.operations]
img = wms.getmap(layers=["yahtse:pair-2016"], srs="EPSG:3857", bbox=(-15760000, 8380000, -15700000, 8440000),
                 size=(64, 64), format="image/png")
assert img.read()[1:4] == b"PNG"
wmts = WebMapTileService("{0}/wmts/1.0.0/WMTSCapabilities.xml")
assert "yahtse:pair-2016" in wmts.contents, list(wmts.contents)
assert "EuropeanETRS89_LAEAQuad" in wmts.tilematrixsets
assert wmts.tilematrixsets["EuropeanETRS89_LAEAQuad"].tilematrix["0"].topleftcorner == (5500000.0, 2000000.0)
# Several layers with a style each, transparent.
img = wms.getmap(layers=["yahtse:pair-2016", "yahtse"], styles=["", "diverging"], srs="EPSG:3857",
                 bbox=(-15760000, 8380000, -15700000, 8440000), size=(64, 64), format="image/png",
                 transparent=True)
assert img.read()[1:4] == b"PNG"
# The KVP binding of GetTile (owslib uses it when the capabilities list it).
tile = wmts.gettile(layer="yahtse:pair-2016", tilematrixset="WebMercatorQuad", tilematrix="11", row={2},
                    column={1}, format="image/png")
assert "SERVICE=WMTS" in tile.geturl() and "REQUEST=GetTile" in tile.geturl(), tile.geturl()
assert tile.read()[1:4] == b"PNG"
print("ok")
)",
                                                     base_, web_tile(11).first, web_tile(11).second);
  const std::string cmd = python + " " + tmp.file("check.py") + " > " + tmp.file("out.txt") + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(tmp.file("out.txt"));
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ok"), std::string::npos) << out;
}

}  // namespace
}  // namespace deforma
