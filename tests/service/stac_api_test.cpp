// The catalogue's STAC API through real HTTP on loopback: discovery, collections and items, search by GET
// and POST with paging to the end, refused searches, forwarded links, asset downloads, ingest by admins,
// isolation between users, and a finished job's outputs registered in its owner's collection.
#include <cpl_vsi.h>
#include <gdal_priv.h>
#include <gtest/gtest.h>

#include <cmath>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Answer {
  int status = 0;
  json body;
  std::string text;
  httplib::Headers headers;
};

class StacClient {
 public:
  StacClient(int port, std::string key) : http_("127.0.0.1", port), key_(std::move(key)) {
    http_.set_read_timeout(60, 0);
  }
  Answer get(const std::string& path, httplib::Headers extra = {}) {
    if (!key_.empty()) extra.emplace("Authorization", "Bearer " + key_);
    return wrap(http_.Get(path.c_str(), extra));
  }
  Answer post(const std::string& path, const std::string& body, httplib::Headers extra = {}) {
    if (!key_.empty()) extra.emplace("Authorization", "Bearer " + key_);
    return wrap(http_.Post(path.c_str(), extra, body, "application/json"));
  }
  Answer del(const std::string& path) {
    httplib::Headers extra;
    if (!key_.empty()) extra.emplace("Authorization", "Bearer " + key_);
    return wrap(http_.Delete(path.c_str(), extra));
  }
  Answer patch(const std::string& path, const std::string& body) {
    httplib::Headers extra;
    if (!key_.empty()) extra.emplace("Authorization", "Bearer " + key_);
    return wrap(http_.Patch(path.c_str(), extra, body, "application/json"));
  }
  // A link's href as a path on this server.
  static std::string path_of(const std::string& href) {
    const auto p = href.find("://");
    const auto slash = href.find('/', p == std::string::npos ? 0 : p + 3);
    return href.substr(slash);
  }

 private:
  static Answer wrap(const httplib::Result& r) {
    Answer out;
    if (!r) return out;
    out.status = r->status;
    out.text = r->body;
    out.headers = r->headers;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }
  httplib::Client http_;
  std::string key_;
};

json square_item(const std::string& collection, const std::string& id, double lon, double lat,
                 const std::string& datetime, double cloud, const std::string& href) {
  json ring = {{lon, lat}, {lon + 1, lat}, {lon + 1, lat + 1}, {lon, lat + 1}, {lon, lat}};
  return {{"type", "Feature"},
          {"stac_version", "1.0.0"},
          {"id", id},
          {"collection", collection},
          {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
          {"bbox", {lon, lat, lon + 1, lat + 1}},
          {"properties", {{"datetime", datetime}, {"eo:cloud_cover", cloud}}},
          {"links", json::array()},
          {"assets", {{"data", {{"href", href}, {"type", "image/tiff"}, {"roles", {"data"}}}}}}};
}

class StacApi : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_test_geotiff(data_.file("small.tif"), test::make_texture(64, 48, 3));
    {
      service::Store store(root_.path());
      key_admin_ = store.add_user("root", true, {});
      key_alice_ = store.add_user("alice", false, {});
      key_bob_ = store.add_user("bob", false, {});
    }
    {
      catalog::Catalog c(root_.path() / "service.db");
      c.in_transaction([&] {
        for (int k = 0; k < 25; ++k) {
          c.put_item(
              square_item("scenes", fmt::format("s{:02d}", k), k, 10,
                          fmt::format("2022-03-{:02d}T08:00:00Z", k + 1), 4.0 * k, data_.file("small.tif")),
              {});
        }
      });
      c.put_item(
          square_item("user-alice", "private", 100, 10, "2022-05-01T00:00:00Z", 1, data_.file("small.tif")),
          {"", "alice", false});
    }
    start(false);
  }
  void start(bool anonymous) {
    server_.reset();
    service::ServerOptions o;
    o.root = root_.path();
    o.data_roots = {data_.path()};
    o.port = 0;
    o.workers = 1;
    o.executable = DEFORMA_CLI_PATH;
    o.job_threads = 1;
    o.anonymous_read = anonymous;
    server_ = std::make_unique<service::Server>(o);
    server_->start();
  }
  StacClient client(const std::string& key) const { return StacClient(server_->port(), key); }

  test::TempDir data_, root_;
  std::string key_admin_, key_alice_, key_bob_;
  std::unique_ptr<service::Server> server_;
};

TEST_F(StacApi, LandingConformanceAndCollections) {
  auto c = client(key_alice_);
  const auto landing = c.get("/");
  ASSERT_EQ(landing.status, 200);
  std::set<std::string> rels;
  for (const auto& l : landing.body["links"]) rels.insert(l["rel"].get<std::string>());
  for (const char* r : {"data", "search", "conformance", "service-desc"}) EXPECT_TRUE(rels.count(r)) << r;
  const auto conf = c.get("/conformance").body["conformsTo"].dump();
  EXPECT_NE(conf.find("https://api.stacspec.org/v1.0.0/item-search"), std::string::npos);
  EXPECT_NE(conf.find("cql2-text"), std::string::npos);
  const auto collections = c.get("/collections");
  ASSERT_EQ(collections.status, 200);
  std::set<std::string> ids;
  for (const auto& col : collections.body["collections"]) ids.insert(col["id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"scenes", "user-alice"}));
  const auto scenes = c.get("/collections/scenes");
  EXPECT_EQ(scenes.status, 200);
  EXPECT_EQ(scenes.body["extent"]["spatial"]["bbox"][0], json({0.0, 10.0, 25.0, 11.0}));
  EXPECT_EQ(c.get("/collections/nothing").status, 404);
  EXPECT_EQ(c.get("/queryables").body["properties"]["eo:cloud_cover"]["type"], "number");
  // bob does not even see alice's collection.
  const auto bob = client(key_bob_).get("/collections");
  EXPECT_EQ(bob.body["collections"].size(), 1u);
  EXPECT_EQ(client(key_bob_).get("/collections/user-alice").status, 404);
  EXPECT_EQ(client("").get("/collections").status, 401);
}

TEST_F(StacApi, ItemsOfACollectionWithBboxDatetimeAndLimit) {
  auto c = client(key_bob_);
  const auto r =
      c.get("/collections/scenes/items?bbox=2.5,10.2,5.5,10.8&datetime=2022-03-04T00:00:00Z/..&limit=2");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["type"], "FeatureCollection");
  ASSERT_EQ(r.body["features"].size(), 2u);
  // Newest first: s05, s04 (s03 is before the interval; s02 touches only by its corner... not at all).
  EXPECT_EQ(r.body["features"][0]["id"], "s05");
  EXPECT_EQ(r.body["features"][1]["id"], "s04");
  const auto item = c.get("/collections/scenes/items/s04");
  ASSERT_EQ(item.status, 200);
  std::set<std::string> rels;
  for (const auto& l : item.body["links"]) rels.insert(l["rel"].get<std::string>());
  EXPECT_EQ(rels, (std::set<std::string>{"self", "parent", "collection", "root"}));
  const std::string href = item.body["assets"]["data"]["href"];
  EXPECT_NE(href.find("/collections/scenes/items/s04/assets/data"), std::string::npos);
  const auto file = c.get(StacClient::path_of(href));
  EXPECT_EQ(file.status, 200);
  std::ifstream in(data_.file("small.tif"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(file.text, bytes);
  EXPECT_EQ(c.get("/collections/scenes/items/nothing").status, 404);
  EXPECT_EQ(c.get("/collections/scenes/items/s04/assets/nothing").status, 404);
}

TEST_F(StacApi, SearchGetPagesToTheEndOnceEach) {
  auto c = client(key_bob_);
  std::string path = "/search?collections=scenes&limit=10&sortby=-eo:cloud_cover";
  std::set<std::string> seen;
  int pages = 0;
  double last_cloud = 1e9;
  while (true) {
    const auto r = c.get(path);
    ASSERT_EQ(r.status, 200) << r.text;
    ++pages;
    EXPECT_EQ(r.body["numberMatched"], 25) << "page " << pages;
    EXPECT_EQ(r.body["numberReturned"], r.body["features"].size());
    EXPECT_EQ(r.body["numberReturned"], pages < 3 ? 10 : 5);
    for (const auto& f : r.body["features"]) {
      EXPECT_TRUE(seen.insert(f["id"].get<std::string>()).second);
      EXPECT_LE(f["properties"]["eo:cloud_cover"].get<double>(), last_cloud);
      last_cloud = f["properties"]["eo:cloud_cover"].get<double>();
    }
    std::string next;
    for (const auto& l : r.body["links"]) {
      if (l["rel"] == "next") next = l["href"];
    }
    if (next.empty()) break;
    EXPECT_NE(next.find("sortby="), std::string::npos) << "the next link carries the query";
    path = StacClient::path_of(next);
    ASSERT_LT(pages, 5);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen.size(), 25u);
}

TEST_F(StacApi, SearchPostPagesWithMergedBody) {
  auto c = client(key_bob_);
  json body = {{"collections", {"scenes"}},
               {"limit", 7},
               {"filter", "eo:cloud_cover < 80"},
               {"filter-lang", "cql2-text"}};
  std::set<std::string> seen;
  for (int page = 0; page < 6; ++page) {
    const auto r = c.post("/search", body.dump());
    ASSERT_EQ(r.status, 200) << r.text;
    EXPECT_EQ(r.body["numberMatched"], 20);
    EXPECT_EQ(r.body["numberReturned"], r.body["features"].size());
    for (const auto& f : r.body["features"]) EXPECT_TRUE(seen.insert(f["id"].get<std::string>()).second);
    json next;
    for (const auto& l : r.body["links"]) {
      if (l["rel"] == "next") next = l;
    }
    if (next.is_null()) break;
    EXPECT_EQ(next["method"], "POST");
    EXPECT_EQ(next["merge"], true);
    body.merge_patch(next["body"]);
  }
  EXPECT_EQ(seen.size(), 20u);  // cloud 0, 4, ..., 76
}

TEST_F(StacApi, ClientMistakesAre400WithAnExceptionDocument) {
  auto c = client(key_bob_);
  const auto both = c.get(
      "/search?bbox=0,0,1,1&intersects=%7B%22type%22%3A%22Point%22%2C%22coordinates%22%3A%5B0%2C0%5D%7D");
  EXPECT_EQ(both.status, 400);
  EXPECT_NE(both.body["detail"].get<std::string>().find("bbox and intersects"), std::string::npos);
  const auto date = c.get("/search?datetime=not-a-date");
  EXPECT_EQ(date.status, 400);
  EXPECT_NE(date.body["detail"].get<std::string>().find("datetime"), std::string::npos);
  EXPECT_EQ(c.post("/search", "{not json").status, 400);
  EXPECT_EQ(c.post("/search", R"({"filter": {"op": "nope", "args": []}})").status, 400);
  EXPECT_EQ(c.get("/search?filter=eo%3Acloud_cover%20%3C%3C%203").status, 400);
  EXPECT_EQ(c.get("/search?limit=-3").status, 400);
  EXPECT_EQ(c.get("/search?bbox=1,2").status, 400);
}

TEST_F(StacApi, LinksFollowTheReverseProxy) {
  auto c = client(key_bob_);
  const auto r =
      c.get("/search?limit=1", {{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "maps.example.org"}});
  ASSERT_EQ(r.status, 200);
  for (const auto& l : r.body["links"])
    EXPECT_EQ(l["href"].get<std::string>().rfind("https://maps.example.org/", 0), 0u);
  EXPECT_EQ(r.body["features"][0]["assets"]["data"]["href"].get<std::string>().rfind(
                "https://maps.example.org/", 0),
            0u);
}

TEST_F(StacApi, PrivateItemsAre404ToOthersEverywhere) {
  auto bob = client(key_bob_);
  auto alice = client(key_alice_);
  EXPECT_EQ(bob.get("/collections/user-alice/items/private").status, 404);
  EXPECT_EQ(bob.get("/collections/user-alice/items/private/assets/data").status, 404);
  EXPECT_TRUE(bob.get("/search?ids=private").body["features"].empty());
  EXPECT_EQ(alice.get("/collections/user-alice/items/private").status, 200);
  EXPECT_EQ(alice.get("/collections/user-alice/items/private/assets/data").status, 200);
  EXPECT_EQ(alice.get("/search?ids=private").body["features"].size(), 1u);
  EXPECT_EQ(client(key_admin_).get("/collections/user-alice/items/private").status, 200);
  // Anonymous reads, when allowed, see public items only.
  start(true);
  auto anonymous = client("");
  EXPECT_EQ(anonymous.get("/collections/scenes/items/s01").status, 200);
  EXPECT_EQ(anonymous.get("/collections/user-alice/items/private").status, 404);
}

TEST_F(StacApi, AdminsIngestByPost) {
  const json item =
      square_item("ignored", "posted", 40, 40, "2023-01-01T00:00:00Z", 3, "https://example.org/x.tif");
  EXPECT_EQ(client(key_alice_).post("/collections/extra/items", item.dump()).status, 403);
  auto admin = client(key_admin_);
  const auto r = admin.post("/collections/extra/items", item.dump());
  ASSERT_EQ(r.status, 201) << r.text;
  EXPECT_EQ(r.body["added"], 1);
  EXPECT_EQ(admin.get("/collections/extra/items/posted").status, 200);
  json bad = item;
  bad["properties"]["datetime"] = "soon";
  const auto refused = admin.post("/collections/extra/items", bad.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.text.find("datetime"), std::string::npos);
  const auto files =
      admin.post("/collections/rasters/items", json({{"paths", {data_.file("small.tif")}}}).dump());
  // small.tif has no date: catalogued undated (docs/catalog.md), found by place but not by time.
  ASSERT_EQ(files.status, 201) << files.text;
  const auto undated = admin.get("/collections/rasters/items/small");
  ASSERT_EQ(undated.status, 200) << undated.text;
  EXPECT_TRUE(undated.body["properties"]["datetime"].is_null());
  EXPECT_EQ(undated.body["properties"]["deforma:undated"], true);
  EXPECT_EQ(admin.get("/search?collections=rasters&datetime=2000-01-01/..").body["numberMatched"], 0);
  EXPECT_EQ(admin.get("/search?collections=rasters").body["numberMatched"], 1);
  EXPECT_EQ(admin.post("/collections/rasters/items", R"({"paths": ["/etc/passwd"]})").status, 400);
}

// An asset inside a zip (a band of a zipped SAFE) is served from the archive, whole or by byte range.
TEST_F(StacApi, AssetsInsideZipsAreServed) {
  std::ifstream in(data_.file("small.tif"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  const std::string zip = data_.file("scene.zip");
  const std::string member = "/vsizip/" + zip + "/SCENE.SAFE/band.tif";
  VSILFILE* f = VSIFOpenL(member.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(VSIFWriteL(bytes.data(), 1, bytes.size(), f), bytes.size());
  VSIFCloseL(f);
  {
    catalog::Catalog c(root_.path() / "service.db");
    c.put_item(square_item("zipped", "z1", 5, 5, "2022-06-01T00:00:00Z", 1, member), {});
  }
  auto c = client(key_bob_);
  const auto item = c.get("/collections/zipped/items/z1");
  ASSERT_EQ(item.status, 200) << item.text;
  const std::string href = item.body["assets"]["data"]["href"];
  EXPECT_EQ(href.find("vsizip"), std::string::npos) << "a download URL, not the server's path: " << href;
  const auto whole = c.get(StacClient::path_of(href));
  ASSERT_EQ(whole.status, 200) << whole.text;
  EXPECT_EQ(whole.text, bytes);
  const auto part = c.get(StacClient::path_of(href), {{"Range", "bytes=10-29"}});
  ASSERT_EQ(part.status, 206);
  EXPECT_EQ(part.text, bytes.substr(10, 20));
  const auto tail = c.get(StacClient::path_of(href), {{"Range", "bytes=-8"}});
  ASSERT_EQ(tail.status, 206);
  EXPECT_EQ(tail.text, bytes.substr(bytes.size() - 8));
  EXPECT_EQ(c.get(StacClient::path_of(href), {{"Range", fmt::format("bytes={}-", bytes.size())}}).status,
            416);
  // A member the archive no longer holds is a 404 naming the asset, not a 500.
  {
    catalog::Catalog cat(root_.path() / "service.db");
    cat.put_item(square_item("zipped", "z2", 5, 5, "2022-06-01T00:00:00Z", 1,
                             "/vsizip/" + zip + "/SCENE.SAFE/gone.tif"),
                 {});
  }
  const auto gone = c.get("/collections/zipped/items/z2/assets/data");
  EXPECT_EQ(gone.status, 404) << gone.text;
  EXPECT_NE(gone.text.find("asset 'data' of item 'z2'"), std::string::npos) << gone.text;
}

// A process input may name a catalogue item's asset the user can see; another user's private item is
// refused like a file outside the roots.
TEST_F(StacApi, CatalogueAssetsServeAsJobInputs) {
  auto alice = client(key_alice_);
  const auto own = alice.post("/processes/info/execution",
                              R"({"inputs": {"file": {"href": "/collections/scenes/items/s03/assets/data"}}})");
  EXPECT_EQ(own.status, 200) << own.text;
  const auto private_own = alice.post(
      "/processes/info/execution", R"({"inputs": {"file": {"href": "collections/user-alice/items/private/assets/data"}}})");
  EXPECT_EQ(private_own.status, 200) << private_own.text;
  auto bob = client(key_bob_);
  const auto others = bob.post(
      "/processes/info/execution", R"({"inputs": {"file": {"href": "/collections/user-alice/items/private/assets/data"}}})");
  EXPECT_EQ(others.status, 400) << others.text;
  EXPECT_NE(others.text.find("no catalogue asset"), std::string::npos) << others.text;
  const auto missing_key = bob.post("/processes/info/execution",
                                    R"({"inputs": {"file": {"href": "/collections/scenes/items/s03/assets/nope"}}})");
  EXPECT_EQ(missing_key.status, 400) << missing_key.text;
  const auto malformed = bob.post("/processes/info/execution",
                                  R"({"inputs": {"file": {"href": "/collections/scenes/items/s03"}}})");
  EXPECT_EQ(malformed.status, 400) << malformed.text;
}

// Polls a job until it ends; its last statusInfo.
json wait_job(StacClient& c, const std::string& job) {
  json status;
  for (int k = 0; k < 1200; ++k) {
    status = c.get("/jobs/" + job).body;
    if (status["status"] == "successful" || status["status"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return status;
}

std::vector<float> band_values(const std::string& path) {
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  if (!ds) return {};
  std::vector<float> all;
  for (int b = 1; b <= ds->GetRasterCount(); ++b) {
    std::vector<float> v(static_cast<std::size_t>(ds->GetRasterXSize()) * ds->GetRasterYSize());
    if (ds->GetRasterBand(b)->RasterIO(GF_Read, 0, 0, ds->GetRasterXSize(), ds->GetRasterYSize(), v.data(),
                                       ds->GetRasterXSize(), ds->GetRasterYSize(), GDT_Float32, 0,
                                       0) != CE_None)
      return {};
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

// Rasters ingested from a zip of GeoTIFFs are job inputs by their catalogue references, read in place
// through /vsizip/: a correlation of the pair gives the very values it gives on the extracted files. A
// member leading out of its archive, or an archive outside the roots, is refused naming the input.
TEST_F(StacApi, ZippedCatalogueAssetsServeAsJobInputs) {
  // Two images of one texture, the second moved by 2 px east and 1 px south, as two files and as a zip.
  const GridF texture = test::make_texture(140, 140, 7);
  GridF ref(128, 128), sec(128, 128);
  for (int r = 0; r < 128; ++r) {
    for (int c = 0; c < 128; ++c) {
      ref(c, r) = texture(c + 4, r + 4);
      sec(c, r) = texture(c + 2, r + 3);
    }
  }
  test::write_test_geotiff(data_.file("pair_20200101.tif"), ref);
  test::write_test_geotiff(data_.file("pair_20200117.tif"), sec);
  const std::string zip = data_.file("pair.zip");
  for (const std::string name : {"pair_20200101.tif", "pair_20200117.tif"}) {
    std::ifstream in(data_.file(name), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    VSILFILE* f = VSIFOpenL(("/vsizip/" + zip + "/images/" + name).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(VSIFWriteL(bytes.data(), 1, bytes.size(), f), bytes.size());
    VSIFCloseL(f);
  }
  auto admin = client(key_admin_);
  const auto added = admin.post("/collections/zipped/items", json{{"paths", {zip}}}.dump());
  ASSERT_EQ(added.status, 201) << added.text;
  EXPECT_EQ(added.body["added"], 2) << added.text;
  auto alice = client(key_alice_);
  const auto item = alice.get("/collections/zipped/items/pair_20200101");
  ASSERT_EQ(item.status, 200) << item.text;
  EXPECT_EQ(item.body["properties"]["datetime"], "2020-01-01T00:00:00Z");

  auto run = [&](const json& inputs) {
    const auto r = alice.post("/processes/correlate/execution", json{{"inputs", inputs}}.dump(),
                              {{"Prefer", "respond-async"}});
    EXPECT_EQ(r.status, 201) << r.text;
    if (r.status != 201) return std::string();
    const std::string job = r.body["jobID"];
    const json status = wait_job(alice, job);
    EXPECT_EQ(status["status"], "successful") << status.dump();
    return (root_.path() / "jobs" / job / "outputs" / "output.tif").string();
  };
  const std::string from_zip =
      run({{"ref", {{"href", "/collections/zipped/items/pair_20200101/assets/data"}}},
           {"sec", {{"href", "collections/zipped/items/pair_20200117/assets/data"}}},
           {"search", "6"},
           {"step", 16}});
  const std::string from_files = run({{"ref", {{"href", "pair_20200101.tif"}}},
                                      {"sec", {{"href", "pair_20200117.tif"}}},
                                      {"search", "6"},
                                      {"step", 16}});
  const auto a = band_values(from_zip), b = band_values(from_files);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (std::isnan(a[k])) {
      EXPECT_TRUE(std::isnan(b[k])) << k;
    } else {
      ASSERT_EQ(a[k], b[k]) << k;
    }
  }

  // Items whose member leads out of the archive, is absolute, or whose archive is outside the roots.
  test::TempDir elsewhere;
  const std::string outside_zip = elsewhere.file("outside.zip");
  std::filesystem::copy_file(zip, outside_zip);
  {
    catalog::Catalog c(root_.path() / "service.db");
    c.put_item(square_item("zipped", "dotdot", 5, 5, "2022-06-01T00:00:00Z", 1,
                           "/vsizip/" + zip + "/images/../../pair_20200101.tif"),
               {});
    c.put_item(square_item("zipped", "absolute", 5, 5, "2022-06-01T00:00:00Z", 1,
                           "/vsizip/{" + zip + "}//etc/passwd"),
               {});
    c.put_item(square_item("zipped", "outside", 5, 5, "2022-06-01T00:00:00Z", 1,
                           "/vsizip/" + outside_zip + "/images/pair_20200101.tif"),
               {});
    c.put_item(square_item("zipped", "gone", 5, 5, "2022-06-01T00:00:00Z", 1,
                           "/vsizip/" + zip + "/images/missing.tif"),
               {});
  }
  for (const std::string id : {"dotdot", "absolute", "outside", "gone"}) {
    const auto r = alice.post(
        "/processes/info/execution",
        json{{"inputs", {{"file", {{"href", "/collections/zipped/items/" + id + "/assets/data"}}}}}}.dump());
    EXPECT_EQ(r.status, 400) << id << ": " << r.text;
    EXPECT_NE(r.text.find("input 'file'"), std::string::npos) << r.text;
  }
  const auto member_ok =
      alice.post("/processes/info/execution",
                 R"({"inputs": {"file": {"href": "/collections/zipped/items/pair_20200117/assets/data"}}})");
  EXPECT_EQ(member_ok.status, 200) << member_ok.text;
}

// A search saved under an id: its definition, its items paged as /search pages them, private to its owner
// until published, removed by its owner; a malformed body is refused naming the parameter.
TEST_F(StacApi, SavedSearchesRunPagedAndStayPrivateUntilPublished) {
  auto alice = client(key_alice_);
  auto bob = client(key_bob_);
  const auto saved = alice.post(
      "/searches",
      R"({"collections": ["scenes"], "bbox": [4.5, 9, 20.5, 12], "datetime": "2022-03-01/..", "limit": 4,
          "sortby": [{"field": "datetime", "direction": "asc"}], "token": "next:8"})");
  ASSERT_EQ(saved.status, 201) << saved.text;
  const std::string id = saved.body["id"];
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(saved.headers.count("Location"));
  EXPECT_FALSE(saved.body["search"].contains("token")) << "a paging token is not part of the search";
  EXPECT_EQ(saved.body["public"], false);
  const auto definition = alice.get("/searches/" + id);
  ASSERT_EQ(definition.status, 200) << definition.text;
  EXPECT_EQ(definition.body["search"]["collections"], json::array({"scenes"}));
  EXPECT_EQ(definition.body["owner"], "alice");

  // Items s04..s20 (footprints from 4..5 to 20..21 meet the box), oldest first, 4 a page, every one once.
  std::vector<std::string> seen;
  std::string next = "/searches/" + id + "/items";
  int pages = 0;
  while (!next.empty() && pages < 20) {
    const auto page = alice.get(next);
    ASSERT_EQ(page.status, 200) << page.text;
    EXPECT_LE(page.body["features"].size(), 4u);
    for (const auto& f : page.body["features"]) seen.push_back(f["id"]);
    next.clear();
    for (const auto& l : page.body["links"]) {
      if (l["rel"] == "next") next = StacClient::path_of(l["href"]);
    }
    ++pages;
  }
  std::vector<std::string> expected;
  for (int k = 4; k <= 20; ++k) expected.push_back(fmt::format("s{:02d}", k));
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(alice.get("/searches/" + id + "/items?limit=100").body["features"].size(), 17u);
  EXPECT_EQ(alice.get("/searches/" + id + "/items?bbox=1,2,3,4").status, 400);
  EXPECT_EQ(alice.get("/searches/" + id + "/items?limit=many").status, 400);
  const auto listed = alice.get("/searches");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.body["searches"].size(), 1u);
  EXPECT_EQ(listed.body["searches"][0]["id"], id);

  // Another user: 404 everywhere, as for an id that does not exist; nothing listed, nothing removed.
  EXPECT_EQ(bob.get("/searches/" + id).status, 404);
  EXPECT_EQ(bob.get("/searches/" + id + "/items").status, 404);
  EXPECT_EQ(bob.del("/searches/" + id).status, 404);
  EXPECT_EQ(bob.patch("/searches/" + id, R"({"public": true})").status, 404);
  EXPECT_TRUE(bob.get("/searches").body["searches"].empty());
  EXPECT_EQ(alice.get("/searches/0123456789abcdef").status, 404);
  EXPECT_EQ(client("").get("/searches/" + id).status, 401);
  // The map server draws a saved search as one mosaic layer, by its id, with the same visibility.
  const std::string tile = "/search/tiles/WebMercatorQuad/3/4/3.png?search_id=";
  const auto drawn = alice.get(tile + id);
  EXPECT_EQ(drawn.status, 200) << drawn.text;
  EXPECT_EQ(drawn.text.substr(1, 3), "PNG");
  EXPECT_EQ(bob.get(tile + id).status, 404);
  EXPECT_EQ(alice.get(tile + "0123456789abcdef").status, 404);

  // Published: others read and run it (with their own visibility), still cannot remove it.
  const auto published = alice.patch("/searches/" + id, R"({"public": true})");
  ASSERT_EQ(published.status, 200) << published.text;
  EXPECT_EQ(published.body["public"], true);
  EXPECT_EQ(bob.get("/searches/" + id).status, 200);
  EXPECT_EQ(bob.get("/searches/" + id + "/items?limit=100").body["features"].size(), 17u);
  EXPECT_EQ(bob.del("/searches/" + id).status, 404);
  EXPECT_EQ(alice.patch("/searches/" + id, R"({"public": "yes"})").status, 400);

  // A search over alice's private item finds it for her only.
  const auto mine = alice.post("/searches", R"({"collections": ["user-alice"]})");
  ASSERT_EQ(mine.status, 201) << mine.text;
  const std::string mine_id = mine.body["id"];
  ASSERT_EQ(alice.patch("/searches/" + mine_id, R"({"public": true})").status, 200);
  EXPECT_EQ(alice.get("/searches/" + mine_id + "/items").body["features"].size(), 1u);
  EXPECT_TRUE(bob.get("/searches/" + mine_id + "/items").body["features"].empty());

  // Bad bodies: 400 naming what is wrong, nothing saved.
  for (const auto& [body, names] : std::vector<std::pair<std::string, std::string>>{
           {R"({"bbox": [1, 2, 3]})", "bbox"},
           {R"({"datetime": "yesterday"})", "datetime"},
           {R"({"bbox": [0, 0, 1, 1], "intersects": {"type": "Point", "coordinates": [0, 0]}})",
            "intersects"},
           {R"([1, 2])", "body"},
           {R"({"limit": "ten"})", "limit"}}) {
    const auto r = alice.post("/searches", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.text;
    EXPECT_NE(r.text.find(names), std::string::npos) << body << ": " << r.text;
  }
  EXPECT_EQ(alice.get("/searches").body["searches"].size(), 2u);

  // Removed by its owner: gone for everyone.
  EXPECT_EQ(alice.del("/searches/" + id).status, 200);
  EXPECT_EQ(alice.get("/searches/" + id).status, 404);
  EXPECT_EQ(bob.get("/searches/" + id + "/items").status, 404);
  EXPECT_EQ(alice.del("/searches/" + id).status, 404);
}

TEST_F(StacApi, FinishedJobOutputsJoinTheOwnersCollection) {
  auto alice = client(key_alice_);
  const auto r = alice.post("/processes/cog/execution", R"({"inputs": {"input": {"href": "small.tif"}}})",
                            {{"Prefer", "respond-async"}});
  ASSERT_EQ(r.status, 201) << r.text;
  const std::string job = r.body["jobID"];
  json status;
  for (int k = 0; k < 600; ++k) {
    status = alice.get("/jobs/" + job).body;
    if (status["status"] == "successful" || status["status"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(status["status"], "successful") << status.dump();
  EXPECT_EQ(status["message"], "done");
  const auto mine = alice.get("/search?collections=user-alice&limit=100");
  ASSERT_EQ(mine.status, 200);
  json product;
  for (const auto& f : mine.body["features"]) {
    if (f["id"] != "private") product = f;
  }
  ASSERT_FALSE(product.is_null()) << mine.text;
  EXPECT_EQ(product["properties"]["processing:software"]["deforma"].is_string(), true);
  EXPECT_EQ(product["properties"]["deforma:operation"], "cog");
  EXPECT_EQ(product["assets"]["data"]["raster:bands"][0]["data_type"], "float32");
  EXPECT_TRUE(client(key_bob_).get("/search?collections=user-alice").body["features"].empty());
  const std::string item_path = "/collections/user-alice/items/" + product["id"].get<std::string>();
  EXPECT_EQ(client(key_bob_).get(item_path).status, 404);
  // Published: everyone sees it; dismissed: gone with its files.
  httplib::Client http("127.0.0.1", server_->port());
  auto patched = http.Patch(("/jobs/" + job).c_str(), {{"Authorization", "Bearer " + key_alice_}},
                            R"({"public": true})", "application/json");
  ASSERT_TRUE(patched);
  EXPECT_EQ(patched->status, 200);
  EXPECT_EQ(client(key_bob_).get(item_path).status, 200);
  auto deleted = http.Delete(("/jobs/" + job).c_str(), {{"Authorization", "Bearer " + key_alice_}});
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 200);
  EXPECT_EQ(alice.get(item_path).status, 404);
}

}  // namespace
}  // namespace deforma
