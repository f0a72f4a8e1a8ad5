// The map routes inside `deforma serve`, over the real catalogue: items ingested from deforma's own output
// are drawn, and a user's private item is invisible (404) to other users and to callers without a key,
// in tiles, legends, point queries and the WMTS/WMS layer lists alike.
#include <gtest/gtest.h>

#include <cmath>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"
#include "maps/maps_fixtures.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

using json = nlohmann::json;

TEST(MapService, CatalogueItemsAreDrawnForThoseWhoMaySeeThem) {
  const auto cog = test::yahtse_velocity_cog();
  if (cog.empty()) GTEST_SKIP() << "sample data 'yahtse-l8' not found; skipping";
  test::TempDir root;
  std::string key_alice, key_bob;
  std::string public_item, private_item;
  {
    service::Store store(root.path());
    key_alice = store.add_user("alice", false, {});
    key_bob = store.add_user("bob", false, {});
  }
  {
    catalog::Catalog cat(root.path() / "service.db");
    auto report = cat.ingest({cog}, {"velocity", "", true});
    ASSERT_EQ(report.item_ids.size(), 1u) << report.to_text();
    public_item = report.item_ids[0];
    report = cat.ingest({cog}, {"alice-results", "alice", false});
    ASSERT_EQ(report.item_ids.size(), 1u) << report.to_text();
    private_item = report.item_ids[0];
  }
  service::ServerOptions o;
  o.root = root.path();
  o.port = 0;
  o.anonymous_read = true;  // public items without a key, as the catalogue's own reads
  service::Server server(o);
  server.start();
  auto get = [&](const std::string& path, const std::string& key = "") {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    auto r = c.Get(path.c_str(), h);
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  };
  auto path_of = [](const std::string& collection_slash_id) {
    const auto slash = collection_slash_id.find('/');
    return "/collections/" + collection_slash_id.substr(0, slash) + "/items/" +
           collection_slash_id.substr(slash + 1);
  };
  // Where the data are: the legend and a point from the public item, without a key.
  auto r = get(path_of(public_item) + "/legend.json?bidx=10");
  ASSERT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(json::parse(r.second)["units"], "m/yr");
  const auto fp = maps::footprint_lonlat(maps::map_item(test::raster_item("x", "y", "v", cog)));
  ASSERT_TRUE(fp);
  const double lon = (fp->min_x + fp->max_x) / 2, lat = (fp->min_y + fp->max_y) / 2;
  const int z = 10, n = 1 << z;
  const int x = static_cast<int>((lon + 180) / 360 * n);
  const double phi = lat * M_PI / 180;
  const int y = static_cast<int>((1 - std::log(std::tan(phi) + 1 / std::cos(phi)) / M_PI) / 2 * n);
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
  server.stop();

  // A service without anonymous reads wants a key for the map too, as for the catalogue.
  o.anonymous_read = false;
  service::Server closed(o);
  closed.start();
  httplib::Client c("127.0.0.1", closed.port());
  c.set_read_timeout(60, 0);
  auto no_key = c.Get((path_of(public_item) + tile).c_str());
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  const httplib::Headers bob{{"Authorization", "Bearer " + key_bob}};
  auto with_key = c.Get((path_of(public_item) + tile).c_str(), bob);
  ASSERT_TRUE(with_key);
  EXPECT_EQ(with_key->status, 200);
  closed.stop();
}

}  // namespace
}  // namespace deforma
