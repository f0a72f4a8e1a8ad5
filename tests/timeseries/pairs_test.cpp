#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/render/image.hpp"
#include "deforma/timeseries/image_set.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "test_support.hpp"

namespace deforma::timeseries {
namespace {

ImageSet synthetic_set(const std::vector<int>& day_offsets, const std::vector<std::string>& tracks = {}) {
  ImageSet set;
  for (std::size_t i = 0; i < day_offsets.size(); ++i) {
    Image im;
    im.date =
        io::Date::from_days_since_epoch(io::Date::from_ymd(2020, 1, 1).days_since_epoch() + day_offsets[i]);
    im.path = "img_" + im.date.compact() + ".tif";
    if (!tracks.empty()) im.tile = tracks[i];
    set.images.push_back(im);
  }
  return set;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PairNetwork, StepRangeAndDirection) {
  const auto set = synthetic_set({0, 5, 10, 20, 40});
  PairNetworkOptions o;
  o.min_step = 1;
  o.max_step = 2;
  auto pairs = build_pair_network(set, o);
  ASSERT_EQ(pairs.size(), 4u + 3u);
  EXPECT_EQ(pairs[0].id, "20200101_20200106");
  for (const auto& p : pairs) {
    EXPECT_GT(p.days(), 0);
    EXPECT_LE(p.days(), 30);
  }
  o.min_step = 2;
  o.max_step = 0;  // unlimited
  EXPECT_EQ(build_pair_network(set, o).size(), 3u + 2u + 1u);
  o = {};
  o.direction = PairDirection::kBackward;
  pairs = build_pair_network(set, o);
  for (const auto& p : pairs) EXPECT_LT(p.days(), 0);
  o.direction = PairDirection::kBoth;
  EXPECT_EQ(build_pair_network(set, o).size(), 2 * pairs.size());
}

TEST(PairNetwork, DayRangeAndCapPerImage) {
  const auto set = synthetic_set({0, 5, 10, 20, 40, 41});
  PairNetworkOptions o;
  o.max_step = 0;
  o.min_days = 6;
  o.max_days = 20;
  for (const auto& p : build_pair_network(set, o)) {
    EXPECT_GE(p.days(), 6);
    EXPECT_LE(p.days(), 20);
  }
  o = {};
  o.max_step = 0;
  o.max_pairs_per_image = 2;
  const auto capped = build_pair_network(set, o);
  std::map<std::string, int> count;
  for (const auto& p : capped) {
    ++count[p.ref_path];
    ++count[p.sec_path];
  }
  for (const auto& [path, n] : count) EXPECT_LE(n, 2) << path;
  // The shortest interval (40 -> 41) is kept first.
  EXPECT_TRUE(std::any_of(capped.begin(), capped.end(), [](const Pair& p) { return p.days() == 1; }));
}

TEST(PairNetwork, SameTrackOnlyWhenMetadataSaySo) {
  const auto set = synthetic_set({0, 1, 10, 11, 20, 21}, {"A", "B", "A", "B", "A", "B"});
  PairNetworkOptions o;
  o.max_step = 1;
  const auto pairs = build_pair_network(set, o);
  ASSERT_EQ(pairs.size(), 4u);  // A: 0-10, 10-20; B: 1-11, 11-21
  for (const auto& p : pairs) EXPECT_EQ(p.days(), 10);
  o.same_track_only = false;
  EXPECT_EQ(build_pair_network(set, o).size(), 5u);
}

TEST(PairNetwork, RejectsSingleImagesAndImpossibleRules) {
  const auto one = synthetic_set({0});
  const auto msg = message_of([&] { build_pair_network(one, {}); });
  EXPECT_NE(msg.find("at least 2 images"), std::string::npos);
  EXPECT_NE(msg.find("img_20200101.tif"), std::string::npos);
  PairNetworkOptions o;
  o.min_days = 100;
  EXPECT_THROW(build_pair_network(synthetic_set({0, 5}), o), InvalidArgument);
  o = {};
  o.max_step = 1;
  o.min_step = 2;
  EXPECT_NE(message_of([&] { o.validate(); }).find("--max-step"), std::string::npos);
  EXPECT_THROW(parse_pair_direction("sideways"), InvalidArgument);
}

TEST(PairTable, RoundTripWithRelativePaths) {
  test::TempDir dir;
  auto pairs = build_pair_network(synthetic_set({0, 12, 24}), {});
  pairs[0].result_path = "results/a.tif";
  pairs[1].weight = 0.5;
  write_pair_table(dir.file("pairs.csv"), pairs);
  const auto back = read_pair_table(dir.file("pairs.csv"));
  ASSERT_EQ(back.size(), pairs.size());
  EXPECT_EQ(back[0].id, pairs[0].id);
  EXPECT_EQ(back[0].ref_date, pairs[0].ref_date);
  EXPECT_EQ(back[0].result_path, (dir.path() / "results/a.tif").string());
  EXPECT_DOUBLE_EQ(back[1].weight, 0.5);
  std::ofstream(dir.file("bad.csv"))
      << "id,ref_path,sec_path,ref_date,sec_date\nx,a,b,2020-01-01,2020-02-30\n";
  const auto msg = message_of([&] { read_pair_table(dir.file("bad.csv")); });
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sec_date"), std::string::npos) << msg;
  std::ofstream(dir.file("nocol.csv")) << "id,ref_path\nx,a\n";
  EXPECT_THROW(read_pair_table(dir.file("nocol.csv")), FormatError);
}

// Found with pair_table_fuzz replaying long inputs: a long date cell crashed the reader (stack overflow in
// the date parser).
TEST(PairTable, LongDateCellIsAFormatErrorNamingLineAndColumn) {
  test::TempDir dir;
  std::ofstream(dir.file("long.csv")) << "id,ref_path,sec_path,ref_date,sec_date\nx,a.tif,b.tif,2020-01-01T"
                                      << std::string(300'000, '0') << ",2020-01-05\n";
  const auto msg = message_of([&] { read_pair_table(dir.file("long.csv")); });
  EXPECT_NE(msg.find("line 2, column ref_date"), std::string::npos) << msg.substr(0, 300);
  EXPECT_THROW(read_pair_table(dir.file("long.csv")), FormatError);
}

TEST(PairTable, NetworkDatesAndComponents) {
  auto pairs = build_pair_network(synthetic_set({0, 12, 24, 36}), {});
  std::vector<std::pair<int, int>> idx;
  const auto dates = network_dates(pairs, &idx);
  EXPECT_EQ(dates.size(), 4u);
  EXPECT_EQ(count_components(4, idx), 1);
  EXPECT_EQ(count_components(4, {{0, 1}, {2, 3}}), 2);
  test::TempDir dir;
  write_pair_network_png(dir.file("net.png"), pairs);
  EXPECT_EQ(render::read_rgb(dir.file("net.png")).width(), 900);
}

class ImageSetFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"s_20200101.tif", "s_20200113.tif", "s_20200125.tif"}) {
      test::write_test_geotiff(dir.file(name), test::make_texture(32, 24));
    }
  }
  test::TempDir dir;
};

TEST_F(ImageSetFiles, FolderPatternAndManifest) {
  std::ofstream(dir.file("notes_MTL.txt")) << "x";
  test::write_test_geotiff(dir.file("mask.tif"), GridF(32, 24));
  const auto set = load_image_set({dir.path().string()});
  ASSERT_EQ(set.size(), 3u);
  EXPECT_EQ(set.images[0].date, io::Date::from_ymd(2020, 1, 1));
  ASSERT_EQ(set.skipped.size(), 1u);  // mask.tif: no date
  EXPECT_NE(set.skipped[0].find("mask.tif"), std::string::npos);
  EXPECT_EQ(load_image_set({dir.file("s_*.tif")}).size(), 3u);
  std::ofstream(dir.file("list.csv"))
      << "path,date,tile\ns_20200101.tif,2020-01-01,T1\nmask.tif,2020-01-07,T1\n";
  const auto manifest = load_image_set({dir.file("list.csv")});
  ASSERT_EQ(manifest.size(), 2u);
  EXPECT_EQ(manifest.images[1].path, dir.file("mask.tif"));
  EXPECT_EQ(manifest.images[1].tile, "T1");
  EXPECT_THROW(load_image_set({dir.file("nothing_*.tif")}), IoError);
  EXPECT_THROW(load_image_set({dir.file("mask.tif")}), FormatError);  // named explicitly without a date
}

TEST_F(ImageSetFiles, DuplicateDatesAreAnErrorNamingBoth) {
  test::write_test_geotiff(dir.file("t_20200113.tif"), test::make_texture(32, 24));
  const auto msg = message_of([&] { load_image_set({dir.path().string()}); });
  EXPECT_NE(msg.find("s_20200113.tif"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t_20200113.tif"), std::string::npos) << msg;
  EXPECT_THROW(load_image_set({dir.path().string()}), InvalidArgument);
}

TEST_F(ImageSetFiles, UnreadableImageIsNamedOrSkipped) {
  std::ofstream(dir.file("s_20200206.tif")) << "not a tiff";
  const auto msg = message_of([&] { load_image_set({dir.path().string()}); });
  EXPECT_NE(msg.find("s_20200206.tif"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--skip-bad"), std::string::npos) << msg;
  ImageSetOptions o;
  o.skip_bad = true;
  const auto set = load_image_set({dir.path().string()}, o);
  EXPECT_EQ(set.size(), 3u);
  ASSERT_EQ(set.skipped.size(), 1u);
  EXPECT_NE(set.skipped[0].find("s_20200206.tif"), std::string::npos);
}

TEST(ImageSetNone, NoUsableImageSaysWhyForEachImage) {
  test::TempDir dir;
  test::write_test_geotiff(dir.file("undated_a.tif"), test::make_texture(32, 24));
  std::ofstream(dir.file("s_20200206.tif")) << "not a tiff";
  ImageSetOptions o;
  o.skip_bad = true;
  const auto msg = message_of([&] { load_image_set({dir.path().string()}, o); });
  EXPECT_NE(msg.find("no usable image"), std::string::npos) << msg;
  EXPECT_NE(msg.find("undated_a.tif: no acquisition date"), std::string::npos) << msg;
  EXPECT_NE(msg.find("s_20200206.tif: unreadable"), std::string::npos) << msg;
}

TEST_F(ImageSetFiles, DifferentSizesOrCrsAreRejected) {
  test::write_test_geotiff(dir.file("s_20200206.tif"), test::make_texture(40, 24));
  EXPECT_NE(message_of([&] { load_image_set({dir.path().string()}); }).find("40x24"), std::string::npos);
  std::filesystem::remove(dir.file("s_20200206.tif"));
  test::write_test_geotiff(dir.file("s_20200206.tif"), test::make_texture(32, 24), "Float32", -9999.0, false,
                           32606);
  EXPECT_THROW(load_image_set({dir.path().string()}), InvalidArgument);
}

TEST(ImageSetReal, YahtseLandsatPairWithMtlFiles) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", yahtse);
  const auto set = load_image_set({yahtse.string()});
  ASSERT_EQ(set.size(), 2u);  // the DEM has no date and is left out
  EXPECT_EQ(set.images[0].date, io::Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(set.images[1].date, io::Date::from_ymd(2016, 8, 3));
  EXPECT_EQ(set.images[0].tile, "063018");
  EXPECT_EQ(set.images[0].sensor, "LC8");
  ASSERT_EQ(set.skipped.size(), 1u);
  EXPECT_NE(set.skipped[0].find("yahtse_srtm_dem.tif"), std::string::npos);
  const auto pairs = build_pair_network(set, {});
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].id, "20160718_20160803");
  EXPECT_EQ(pairs[0].days(), 16);
}

TEST(PairsCommand, RealPeritoMorenoSeries) {
  DEFORMA_REQUIRE_DATA("perito-moreno", perito);
  test::TempDir dir;
  const auto r = test::run_cli("pairs " + perito.string() + " -o " + dir.file("net") + " --max-step 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto pairs = read_pair_table(dir.file("net/pairs.csv"));
  EXPECT_EQ(pairs.size(), 22u + 21u);
  EXPECT_EQ(pairs.front().ref_date, io::Date::from_ymd(2020, 1, 1));
  EXPECT_NE(r.out.find("mask.jpg"), std::string::npos);  // reported as not part of the series
  const auto single = test::run_cli("pairs " + (perito / "20200101.jpg").string() + " -o " + dir.file("one"));
  EXPECT_EQ(single.exit_code, 3);
  EXPECT_NE(single.err.find("at least 2 images"), std::string::npos);
}

}  // namespace
}  // namespace deforma::timeseries
