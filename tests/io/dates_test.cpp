#include <filesystem>
#include <fstream>

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/io/dates.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Date, CalendarArithmetic) {
  const auto d = Date::from_ymd(2020, 3, 1);
  EXPECT_EQ(d.iso(), "2020-03-01");
  EXPECT_EQ(d.compact(), "20200301");
  EXPECT_EQ(d.day_of_year(), 61);  // leap year
  EXPECT_EQ(days_between(Date::from_ymd(2020, 2, 28), d), 2);
  EXPECT_EQ(Date::from_year_day(2016, 200), Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(Date::from_year_day(2016, 216), Date::from_ymd(2016, 8, 3));
  EXPECT_DOUBLE_EQ(Date::from_ymd(2021, 1, 1).decimal_year(), 2021.0);
  EXPECT_NEAR(Date::from_ymd(2020, 7, 2).decimal_year(), 2020.5, 1e-9);
  EXPECT_NEAR(years_between(Date::from_ymd(2020, 1, 1), Date::from_ymd(2021, 1, 1)), 366 / 365.25, 1e-12);
  EXPECT_EQ(Date::from_days_since_epoch(0).iso(), "1970-01-01");
  EXPECT_THROW(Date::from_ymd(2021, 2, 29), InvalidArgument);
  EXPECT_THROW(Date::from_year_day(2021, 366), InvalidArgument);
}

TEST(Date, ParsesIsoCompactAndDateTimes) {
  EXPECT_EQ(Date::parse("2016-07-18"), Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(Date::parse("20160718"), Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(Date::parse("2016-07-18T20:31:55.1Z"), Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(Date::parse("2016:07:18 10:00:00"), Date::from_ymd(2016, 7, 18));
  EXPECT_THROW(Date::parse("18/07/2016"), InvalidArgument);
  EXPECT_THROW(Date::parse("2016-13-01"), InvalidArgument);
}

// Found with dates_fuzz replaying long inputs: the regex matcher recursed once per character and a long
// text overflowed the stack (a crash, not an error).
TEST(Date, LongTextIsRefusedWithoutExhaustingTheStack) {
  const std::string long_text = "2020-01-01T" + std::string(2'000'000, 'a');
  const auto msg = message_of([&] { Date::parse(long_text); });
  EXPECT_NE(msg.find("2000011 characters"), std::string::npos) << msg.substr(0, 200);
  EXPECT_LT(msg.size(), 200u) << "the message quotes only the start of the text";
  EXPECT_THROW(Date::parse(std::string(100, ' ') + "2020-01-01"), InvalidArgument);
  EXPECT_EQ(Date::parse("2016-07-18T20:31:55.123456789+00:00"), Date::from_ymd(2016, 7, 18));

  test::TempDir dir;
  const auto mtl = dir.file("LC80630182016200LGN00_MTL.txt");
  std::ofstream(mtl) << "GROUP = L1_METADATA_FILE\n  DATE_ACQUIRED = " << std::string(2'000'000, ' ')
                     << "2016-07-18\nEND_GROUP = L1_METADATA_FILE\n";
  const auto mtl_msg = message_of([&] { read_mtl_date(mtl); });
  EXPECT_NE(mtl_msg.find("line 2: 2000028 characters long"), std::string::npos) << mtl_msg;
  // A long line that is not the field is skipped: the date on a later line is found.
  std::ofstream(mtl) << "COMMENT = " << std::string(2'000'000, 'x') << "\n  DATE_ACQUIRED = 2016-07-18\n";
  EXPECT_EQ(read_mtl_date(mtl), Date::from_ymd(2016, 7, 18));
}

TEST(ProductName, Sentinel2ProductAndTile) {
  const auto product =
      parse_product_name("S2A_MSIL1C_20200101T103431_N0208_R108_T32TLR_20200101T123456.SAFE");
  ASSERT_TRUE(product.recognised);
  ASSERT_EQ(product.dates.size(), 1u);
  EXPECT_EQ(product.dates[0].date, Date::from_ymd(2020, 1, 1));
  EXPECT_EQ(product.tile, "T32TLR");
  EXPECT_EQ(product.orbit, "R108");
  EXPECT_EQ(product.sensor, "S2A");
  const auto processed_later =
      parse_product_name("S2B_MSIL2A_20210305T103019_N0300_R108_T32TLR_20210306T090000.zip");
  ASSERT_EQ(processed_later.dates.size(), 1u);
  EXPECT_EQ(processed_later.dates[0].date, Date::from_ymd(2021, 3, 5));  // sensing, not processing
  const auto tile = parse_product_name("some/dir/T32TLR_20200101T103431_B08.jp2");
  ASSERT_TRUE(tile.recognised);
  EXPECT_EQ(tile.dates[0].date, Date::from_ymd(2020, 1, 1));
  EXPECT_EQ(tile.tile, "T32TLR");
}

TEST(ProductName, LandsatCollectionAndPreCollection) {
  const auto collection = parse_product_name("LC08_L1TP_063018_20160718_20200906_02_T1_B8.TIF");
  ASSERT_TRUE(collection.recognised);
  ASSERT_EQ(collection.dates.size(), 1u);
  EXPECT_EQ(collection.dates[0].date, Date::from_ymd(2016, 7, 18));  // 4th field, not the processing date
  EXPECT_EQ(collection.tile, "063018");
  EXPECT_EQ(collection.sensor, "LC08");
  const auto old = parse_product_name("LC80630182016200LGN00_B8_yahtse.TIF");
  ASSERT_TRUE(old.recognised);
  EXPECT_EQ(old.dates[0].date, Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(old.tile, "063018");
}

TEST(ProductName, GenericDatesInNames) {
  EXPECT_EQ(parse_product_name("20200328.jpg").dates.at(0).date, Date::from_ymd(2020, 3, 28));
  EXPECT_EQ(parse_product_name("glacier_2019-11-05_ortho.tif").dates.at(0).date, Date::from_ymd(2019, 11, 5));
  EXPECT_TRUE(parse_product_name("mask.jpg").dates.empty());
  EXPECT_TRUE(parse_product_name("orbit_123456789.tif").dates.empty());  // a longer run of digits is no date
  EXPECT_EQ(parse_product_name("a_20200101_20200201.tif").dates.size(), 2u);
}

TEST(AcquisitionDate, AmbiguousNamesAndMissingDatesNameTheFile) {
  test::TempDir dir;
  const auto two = dir.file("pair_20200101_20200201.tif");
  std::ofstream(two) << "x";
  const auto msg = message_of([&] { acquisition_date(two); });
  EXPECT_NE(msg.find("pair_20200101_20200201.tif"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ambiguous"), std::string::npos) << msg;
  const auto none = dir.file("scene.tif");
  std::ofstream(none) << "x";
  EXPECT_NE(message_of([&] { acquisition_date(none); }).find("scene.tif"), std::string::npos);
  EXPECT_THROW(acquisition_date(none), FormatError);
}

TEST(AcquisitionDate, MtlBesideAConflictingNameIsAnError) {
  test::TempDir dir;
  const auto raster = dir.file("LC80630182016200LGN00_B8_crop.TIF");
  test::write_test_geotiff(raster, GridF(4, 4, 1.0f));
  std::ofstream(dir.file("LC80630182016200LGN00_MTL.txt"))
      << "GROUP = L1_METADATA_FILE\n  DATE_ACQUIRED = 2016-07-18\n";
  EXPECT_EQ(acquisition_date(raster), Date::from_ymd(2016, 7, 18));
  std::ofstream(dir.file("LC80630182016200LGN00_B8_MTL.txt")) << "    DATE_ACQUIRED = 2016-07-19\n";
  const auto msg = message_of([&] { acquisition_date(raster); });
  EXPECT_NE(msg.find("2016-07-19 from MTL file LC80630182016200LGN00_B8_MTL.txt"), std::string::npos) << msg;
  std::ofstream(dir.file("bad_MTL.txt")) << "NOTHING = 1\n";
  EXPECT_THROW(read_mtl_date(dir.file("bad_MTL.txt")), FormatError);
  EXPECT_THROW(read_mtl_date(dir.file("missing_MTL.txt")), IoError);
}

TEST(AcquisitionDate, TiffTags) {
  test::TempDir dir;
  GDALAllRegister();
  auto write_with = [&](const std::string& path, const char* key, const char* value) {
    test::write_test_geotiff(path, GridF(4, 4, 1.0f));
    std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_UPDATE));
    ASSERT_TRUE(ds);
    ds->SetMetadataItem(key, value);
  };
  write_with(dir.file("a.tif"), "TIFFTAG_DATETIME", "2019:08:17 11:22:33");
  EXPECT_EQ(acquisition_date(dir.file("a.tif")), Date::from_ymd(2019, 8, 17));
  write_with(dir.file("b.tif"), "ACQUISITIONDATETIME", "2018-05-04T10:00:00Z");
  EXPECT_EQ(acquisition_date(dir.file("b.tif")), Date::from_ymd(2018, 5, 4));
  // A processing time in TIFFTAG_DATETIME does not contradict the date in the name.
  write_with(dir.file("c_20170101.tif"), "TIFFTAG_DATETIME", "2023:01:01 00:00:00");
  EXPECT_EQ(acquisition_date(dir.file("c_20170101.tif")), Date::from_ymd(2017, 1, 1));
  write_with(dir.file("d_20170101.tif"), "ACQUISITIONDATETIME", "2017-01-02");
  EXPECT_THROW(acquisition_date(dir.file("d_20170101.tif")), FormatError);
}

TEST(AcquisitionDate, RealYahtseMtlFiles) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", yahtse);
  EXPECT_EQ(read_mtl_date((yahtse / "LC80630182016200LGN00_MTL.txt").string()), Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(read_mtl_date((yahtse / "LC80630182016216LGN00_B8_MTL.txt").string()),
            Date::from_ymd(2016, 8, 3));
  const auto first = (yahtse / "LC80630182016200LGN00_B8_yahtse.TIF").string();
  const auto second = (yahtse / "LC80630182016216LGN00_B8_yahtse.TIF").string();
  EXPECT_EQ(find_mtl_beside(first).size(), 1u);
  EXPECT_EQ(find_mtl_beside(second).size(), 1u);
  // Name (year + day of year) and MTL agree.
  EXPECT_EQ(date_evidence(first).size(), 2u);
  EXPECT_EQ(acquisition_date(first), Date::from_ymd(2016, 7, 18));
  EXPECT_EQ(acquisition_date(second), Date::from_ymd(2016, 8, 3));
  EXPECT_EQ(acquisition_date((yahtse / "LC80630182016216LGN00_B8_MTL.txt").string()),
            Date::from_ymd(2016, 8, 3));
}

TEST(AcquisitionDate, RealPeritoMorenoNames) {
  DEFORMA_REQUIRE_DATA("perito-moreno", perito);
  EXPECT_EQ(acquisition_date((perito / "20200101.jpg").string()), Date::from_ymd(2020, 1, 1));
  EXPECT_EQ(acquisition_date((perito / "20200328.jpg").string()), Date::from_ymd(2020, 3, 28));
  EXPECT_THROW(acquisition_date((perito / "mask.jpg").string()), FormatError);
}

}  // namespace
}  // namespace deforma::io
