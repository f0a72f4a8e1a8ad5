// Searches over a small synthetic catalogue whose answers are known by construction.
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/error.hpp"
#include "test_support.hpp"

namespace deforma::catalog {
namespace {

using json = nlohmann::json;

const Viewer kAdmin{"admin", true};
const Viewer kAnonymous{};

// A 1° x 1° footprint whose south-west corner is (lon, lat).
json make_item(const std::string& collection, const std::string& id, double lon, double lat,
               const std::string& datetime, double cloud, const std::string& title = "") {
  json ring = {{lon, lat}, {lon + 1, lat}, {lon + 1, lat + 1}, {lon, lat + 1}, {lon, lat}};
  json item{{"type", "Feature"},
            {"stac_version", "1.0.0"},
            {"id", id},
            {"collection", collection},
            {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
            {"bbox", {lon, lat, lon + 1, lat + 1}},
            {"properties", {{"datetime", datetime}, {"eo:cloud_cover", cloud}, {"platform", "sentinel-2a"}}},
            {"links", json::array()},
            {"assets", {{"data", {{"href", "/data/" + id + ".tif"}, {"type", "image/tiff"}}}}}};
  if (!title.empty()) item["properties"]["title"] = title;
  return item;
}

std::set<std::string> ids_of(const SearchResult& r) {
  std::set<std::string> out;
  for (const auto& i : r.items) out.insert(i["id"].get<std::string>());
  return out;
}

class CatalogSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog = std::make_unique<Catalog>(tmp.path() / "service.db");
    // 20 items on a line of longitudes 0..19 at latitude 45, one per day of January 2021, cloud = 5 * k.
    catalog->in_transaction([&] {
      for (int k = 0; k < 20; ++k) {
        const std::string collection = k % 2 ? "odd" : "even";
        catalog->put_item(make_item(collection, fmt::format("item-{:02d}", k), k, 45,
                                    fmt::format("2021-01-{:02d}T10:00:00Z", k + 1), 5.0 * k,
                                    k == 7 ? "Glacier surge over the Alps" : fmt::format("scene {}", k)),
                          {});
      }
    });
  }
  test::TempDir tmp;
  std::unique_ptr<Catalog> catalog;
};

TEST_F(CatalogSearch, BboxFindsTheItemsItTouches) {
  SearchRequest r;
  r.bbox = std::array<double, 4>{2.5, 45.2, 4.5, 45.8};
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-02", "item-03", "item-04"}));
}

TEST_F(CatalogSearch, IntersectsIsExactNotByBoundingBox) {
  // A thin diagonal triangle whose bbox covers items 0..3 but whose surface touches only 0, 1 and 2... and
  // not item-03's square (the triangle stays below the line lat = 45 + (lon - 0) / 4 * 0.9).
  SearchRequest r;
  r.intersects = {{"type", "Polygon"},
                  {"coordinates", {{{0.5, 44.0}, {3.5, 44.0}, {0.5, 46.5}, {0.5, 44.0}}}}};
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-00", "item-01", "item-02"}));
  r.intersects = {{"type", "Point"}, {"coordinates", {10.5, 45.5}}};
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-10"}));
}

TEST_F(CatalogSearch, DatetimeInstantsAndOpenIntervals) {
  SearchRequest r;
  r.limit = 100;
  std::tie(r.start_s, r.end_s) = parse_datetime_interval("2021-01-18T00:00:00Z/..");
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-17", "item-18", "item-19"}));
  std::tie(r.start_s, r.end_s) = parse_datetime_interval("../2021-01-02");
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-00", "item-01"}));
  std::tie(r.start_s, r.end_s) = parse_datetime_interval("2021-01-05T10:00:00Z");
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-04"}));
  EXPECT_THROW(parse_datetime_interval("../.."), InvalidArgument);
  EXPECT_THROW(parse_datetime_interval("2021-13-45"), InvalidArgument);
  EXPECT_THROW(parse_datetime_interval("2021-02-01/2021-01-01"), InvalidArgument);
  EXPECT_THROW(parse_search_json({{"datetime", "yesterday"}}), InvalidArgument);
}

TEST_F(CatalogSearch, CollectionsIdsAndSortby) {
  SearchRequest r;
  r.collections = {"odd"};
  r.limit = 100;
  EXPECT_EQ(catalog->search(r, kAdmin).items.size(), 10u);
  r.collections = {};
  r.ids = {"item-03", "item-11", "nothing"};
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-03", "item-11"}));
  r.ids = {};
  r.sortby = {{"eo:cloud_cover", false}};
  r.limit = 3;
  auto res = catalog->search(r, kAdmin);
  ASSERT_EQ(res.items.size(), 3u);
  EXPECT_EQ(res.items[0]["id"], "item-19");
  EXPECT_EQ(res.items[2]["id"], "item-17");
  r.sortby = {{"datetime", true}};
  res = catalog->search(r, kAdmin);
  EXPECT_EQ(res.items[0]["id"], "item-00");
  // Default: newest first.
  r.sortby = {};
  EXPECT_EQ(catalog->search(r, kAdmin).items[0]["id"], "item-19");
  // A property without a column (json_extract) sorts too.
  r.sortby = parse_search_json({{"sortby", "-title"}}).sortby;
  EXPECT_EQ(catalog->search(r, kAdmin).items[0]["properties"]["title"], "scene 9");
}

TEST_F(CatalogSearch, FieldsIncludeAndExclude) {
  auto r = parse_search_query({{"ids", "item-04"}, {"fields", "properties.eo:cloud_cover,-assets"}});
  auto res = catalog->search(r, kAdmin);
  ASSERT_EQ(res.items.size(), 1u);
  const json& item = res.items[0];
  EXPECT_EQ(item["properties"], json({{"eo:cloud_cover", 20.0}}));
  EXPECT_FALSE(item.contains("assets"));
  EXPECT_FALSE(item.contains("geometry"));
  EXPECT_EQ(item["id"], "item-04");
  r = parse_search_json(
      {{"ids", {"item-04"}}, {"fields", {{"exclude", {"geometry", "properties.platform"}}}}});
  res = catalog->search(r, kAdmin);
  EXPECT_FALSE(res.items[0].contains("geometry"));
  EXPECT_FALSE(res.items[0]["properties"].contains("platform"));
  EXPECT_TRUE(res.items[0].contains("assets"));
}

TEST_F(CatalogSearch, Cql2TextAndJsonFilters) {
  auto text = [&](const std::string& f) {
    auto r = parse_search_query({{"filter", f}, {"limit", "100"}});
    return ids_of(catalog->search(r, kAdmin));
  };
  EXPECT_EQ(text("eo:cloud_cover < 10"), (std::set<std::string>{"item-00", "item-01"}));
  EXPECT_EQ(text("eo:cloud_cover BETWEEN 40 AND 50 AND collection = 'even'"),
            (std::set<std::string>{"item-08", "item-10"}));
  EXPECT_EQ(text("id IN ('item-01', 'item-02') OR eo:cloud_cover >= 95"),
            (std::set<std::string>{"item-01", "item-02", "item-19"}));
  EXPECT_EQ(text("NOT (eo:cloud_cover > 5) AND platform = 'sentinel-2a'"),
            (std::set<std::string>{"item-00", "item-01"}));
  EXPECT_EQ(text("S_INTERSECTS(geometry, POINT(5.5 45.5))"), (std::set<std::string>{"item-05"}));
  EXPECT_EQ(text("T_INTERSECTS(datetime, INTERVAL('2021-01-10T00:00:00Z', '2021-01-11T23:00:00Z'))"),
            (std::set<std::string>{"item-09", "item-10"}));
  EXPECT_EQ(text("datetime > TIMESTAMP('2021-01-19T00:00:00Z')"),
            (std::set<std::string>{"item-18", "item-19"}));
  EXPECT_EQ(text("title LIKE 'Glacier%'"), (std::set<std::string>{"item-07"}));
  const json filter = json::parse(R"({"op": "and", "args": [
      {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]},
      {"op": "s_intersects", "args": [{"property": "geometry"},
          {"type": "Polygon", "coordinates": [[[1.5, 45.5], [2.5, 45.5], [2.5, 45.6], [1.5, 45.5]]]}]}]})");
  auto r = parse_search_json({{"filter", filter}, {"filter-lang", "cql2-json"}});
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-01", "item-02"}));
  EXPECT_THROW(parse_search_query({{"filter", "eo:cloud_cover <<< 3"}}), InvalidArgument);
  EXPECT_THROW(parse_search_json({{"filter", {{"op", "frobnicate"}, {"args", json::array()}}}}),
               InvalidArgument);
}

TEST_F(CatalogSearch, FreeTextOverTitles) {
  auto r = parse_search_query({{"q", "glacier"}});
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-07"}));
  r = parse_search_query({{"q", "alps,\"scene 3\""}});
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"item-07", "item-03"}));
  r = parse_search_query({{"q", "glacier AND desert"}});
  EXPECT_TRUE(catalog->search(r, kAdmin).items.empty());
}

TEST_F(CatalogSearch, PagingVisitsEveryItemOnceAndStops) {
  SearchRequest r;
  r.limit = 7;
  std::set<std::string> seen;
  int pages = 0;
  while (true) {
    const auto res = catalog->search(r, kAdmin);
    ++pages;
    EXPECT_EQ(res.matched, 20) << "page " << pages;
    for (const auto& i : res.items) EXPECT_TRUE(seen.insert(i["id"].get<std::string>()).second);
    if (!res.has_next) break;
    r.offset = res.next_offset;
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen.size(), 20u);
}

// numberMatched counts the same conditions as the page, on every page, and past the end too.
TEST_F(CatalogSearch, MatchedCountsEveryPageOfAFilteredSearch) {
  auto r = parse_search_query({{"filter", "eo:cloud_cover < 33"}, {"bbox", "2.5,44,30,46"}, {"limit", "2"}});
  auto res = catalog->search(r, kAdmin);
  EXPECT_EQ(res.items.size(), 2u);
  EXPECT_TRUE(res.has_next);
  EXPECT_EQ(res.matched, 5);  // items 2..6 (cloud 10..30); item 1's box ends at 2
  r.offset = 4;
  res = catalog->search(r, kAdmin);
  EXPECT_EQ(res.items.size(), 1u);
  EXPECT_FALSE(res.has_next);
  EXPECT_EQ(res.matched, 5);
  r.offset = 50;
  res = catalog->search(r, kAdmin);
  EXPECT_TRUE(res.items.empty());
  EXPECT_EQ(res.matched, 5);
  // Nothing at all: zero, not unknown.
  r = parse_search_query({{"ids", "nope"}});
  EXPECT_EQ(catalog->search(r, kAdmin).matched, 0);
}

TEST_F(CatalogSearch, BboxWithIntersectsAndBadInputAreRefused) {
  EXPECT_THROW(parse_search_json(
                   {{"bbox", {0, 0, 1, 1}}, {"intersects", {{"type", "Point"}, {"coordinates", {0, 0}}}}}),
               InvalidArgument);
  EXPECT_THROW(parse_search_query({{"bbox", "0,0,1"}}), InvalidArgument);
  EXPECT_THROW(parse_search_query({{"limit", "0"}}), InvalidArgument);
  EXPECT_EQ(parse_search_query({{"limit", "50000"}}).limit, kMaxLimit);
  EXPECT_THROW(parse_search_json({{"intersects", {{"type", "Polygon"}, {"coordinates", "nope"}}}}),
               InvalidArgument);
}

TEST_F(CatalogSearch, PrivateItemsAreVisibleToTheirOwnerOnly) {
  catalog->put_item(make_item("user-alice", "secret", 50, 10, "2021-06-01T00:00:00Z", 1),
                    {"", "alice", false});
  catalog->put_item(make_item("user-alice", "shared", 51, 10, "2021-06-01T00:00:00Z", 1),
                    {"", "alice", true});
  SearchRequest r;
  r.collections = {"user-alice"};
  EXPECT_EQ(ids_of(catalog->search(r, {"alice", false})), (std::set<std::string>{"secret", "shared"}));
  EXPECT_EQ(ids_of(catalog->search(r, {"bob", false})), (std::set<std::string>{"shared"}));
  EXPECT_EQ(ids_of(catalog->search(r, kAnonymous)), (std::set<std::string>{"shared"}));
  EXPECT_FALSE(catalog->item("user-alice", "secret", {"bob", false}));
  EXPECT_TRUE(catalog->item("user-alice", "secret", {"alice", false}));
  EXPECT_TRUE(catalog->item("user-alice", "secret", kAdmin));
  // The collection itself is seen by bob only through its public item.
  EXPECT_TRUE(catalog->collection("user-alice", {"bob", false}));
  catalog->remove_item("user-alice", "shared");
  EXPECT_FALSE(catalog->collection("user-alice", {"bob", false}));
  EXPECT_TRUE(catalog->collection("user-alice", {"alice", false}));
}

TEST_F(CatalogSearch, CollectionExtentFollowsItsItems) {
  const auto c = catalog->collection("even", kAnonymous);
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["extent"]["spatial"]["bbox"][0], json({0.0, 45.0, 19.0, 46.0}));
  EXPECT_EQ((*c)["extent"]["temporal"]["interval"][0],
            json({"2021-01-01T10:00:00Z", "2021-01-19T10:00:00Z"}));
  EXPECT_EQ(catalog->collections(kAnonymous).size(), 2u);
}

TEST_F(CatalogSearch, AntimeridianBbox) {
  catalog->put_item(make_item("edge", "east", 179.2, 0, "2021-01-01T00:00:00Z", 0), {});
  catalog->put_item(make_item("edge", "west", -180, 0, "2021-01-01T00:00:00Z", 0), {});
  catalog->put_item(make_item("edge", "middle", 0, 0, "2021-01-01T00:00:00Z", 0), {});
  SearchRequest r;
  r.bbox = std::array<double, 4>{179.5, 0.2, -179.5, 0.8};
  EXPECT_EQ(ids_of(catalog->search(r, kAdmin)), (std::set<std::string>{"east", "west"}));
}

}  // namespace
}  // namespace deforma::catalog
