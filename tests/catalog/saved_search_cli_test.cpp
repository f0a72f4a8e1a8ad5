// `deforma catalog search --save NAME`: the search kept in the catalogue under that id, as the service's
// POST /searches keeps one, and run again from there.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deforma/catalog/catalog.hpp"
#include "test_support.hpp"

namespace deforma::catalog {
namespace {

using json = nlohmann::json;

TEST(CatalogCli, SearchSavedUnderANameIsKeptAndRunAgain) {
  test::TempDir data, tmp;
  test::write_test_geotiff(data.file("scene_20200101.tif"), test::make_texture(32, 32, 1));
  test::write_test_geotiff(data.file("scene_20200301.tif"), test::make_texture(32, 32, 2));
  const std::string root = tmp.path().string();
  const auto added = test::run_cli(fmt::format("catalog add --root {} {}", root, data.path().string()));
  ASSERT_EQ(added.exit_code, 0) << added.err;
  const auto saved = test::run_cli(fmt::format(
      "catalog search --root {} --collections images --datetime 2020-02-01/.. --save late", root));
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  const json page = json::parse(saved.out);
  EXPECT_EQ(page["saved_search"], "late");
  ASSERT_EQ(page["features"].size(), 1u);
  {
    Catalog catalog(tmp.path() / "service.db");
    // Without --owner: catalogue-wide, readable by anyone; run again, it finds what the command printed.
    const auto kept = catalog.saved_search("late", Viewer{});
    ASSERT_TRUE(kept);
    EXPECT_TRUE(kept->is_public);
    EXPECT_EQ(kept->body["datetime"], "2020-02-01/..");
    const auto again = catalog.search(parse_search_json(kept->body), Viewer{});
    ASSERT_EQ(again.items.size(), 1u);
    EXPECT_EQ(again.items[0]["id"], page["features"][0]["id"]);
  }
  // Saved again with an owner: replaced, now private to that user.
  const auto mine = test::run_cli(
      fmt::format("catalog search --root {} --collections images --save late --owner alice", root));
  ASSERT_EQ(mine.exit_code, 0) << mine.err;
  {
    Catalog catalog(tmp.path() / "service.db");
    EXPECT_FALSE(catalog.saved_search("late", Viewer{"bob", false}));
    const auto kept = catalog.saved_search("late", Viewer{"alice", false});
    ASSERT_TRUE(kept);
    EXPECT_FALSE(kept->body.contains("datetime"));
  }
  const auto bad_id = test::run_cli(fmt::format("catalog search --root {} --save 'no spaces'", root));
  EXPECT_EQ(bad_id.exit_code, 3);
  EXPECT_NE(bad_id.err.find("no spaces"), std::string::npos) << bad_id.err;
  const auto owner_alone = test::run_cli(fmt::format("catalog search --root {} --owner alice", root));
  EXPECT_EQ(owner_alone.exit_code, 3);
  EXPECT_NE(owner_alone.err.find("--owner"), std::string::npos) << owner_alone.err;
}

}  // namespace
}  // namespace deforma::catalog
