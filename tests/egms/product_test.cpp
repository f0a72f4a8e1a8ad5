#include <filesystem>
#include <fstream>

#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogrsf_frmts.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/processing.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/files.hpp"
#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {

using deforma::test::TempDir;

template <typename E>
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(EgmsProduct, DatesRoundTrip) {
  EXPECT_EQ(parse_yyyymmdd("20140403").value(), 16163);
  EXPECT_EQ(format_yyyymmdd(16163), "20140403");
  EXPECT_EQ(format_yyyymmdd(*parse_yyyymmdd("20240229")), "20240229");
  EXPECT_FALSE(parse_yyyymmdd("20230229"));
  EXPECT_FALSE(parse_yyyymmdd("2023011"));
}

TEST(EgmsProduct, ReadsBothNamingsAndSeparators) {
  TempDir tmp;
  // Product Description Document naming, ';' separators, an empty cell (missing value).
  write_text(tmp.file("pdd.csv"),
             "pid;easting;northing;height;height_wgs84;rmse;mean_velocity;20200101;20200107;20200113\n"
             "1A;4598000.5;1740000.25;10.5;55.1;1.2;-2.5;0.0;-1.5;\n"
             "1B;4598010.5;1740010.25;11.5;56.1;1.1;-1.5;0.0;;-2.0\n");
  auto reader = ProductReader::open(tmp.file("pdd.csv"));
  const auto& layout = reader.layout();
  EXPECT_EQ(layout.separator, ';');
  EXPECT_GE(layout.find(column::kHeightOrtho), 0);
  EXPECT_GE(layout.find(column::kHeightEllipse), 0);
  EXPECT_GE(layout.find(column::kRmse), 0);
  EXPECT_EQ(layout.scalar_names[layout.find(column::kRmse)], "rmse");
  ASSERT_EQ(layout.date_count(), 3u);
  PointChunk chunk;
  ASSERT_TRUE(reader.read(chunk, 1));
  EXPECT_EQ(chunk.size(), 1u);
  EXPECT_EQ(chunk.pid[0], "1A");
  EXPECT_DOUBLE_EQ(chunk.scalar(0, layout.find(column::kEasting)), 4598000.5);
  EXPECT_TRUE(std::isnan(chunk.series_of(0)[2]));
  ASSERT_TRUE(reader.read(chunk, 10));
  EXPECT_EQ(chunk.pid[0], "1B");
  EXPECT_FALSE(reader.read(chunk, 10));
  reader.rewind();
  ASSERT_TRUE(reader.read(chunk, 10));
  EXPECT_EQ(chunk.size(), 2u);
}

TEST(EgmsProduct, RealZipStreamsInChunksWithMetadata) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  auto reader = ProductReader::open((dir / test::kDescending).string());
  EXPECT_EQ(reader.metadata().level, "L2b");
  EXPECT_EQ(reader.metadata().track, 22);
  EXPECT_EQ(reader.metadata().burst_id, 845);
  EXPECT_EQ(reader.metadata().sub_swath, 2);
  EXPECT_EQ(reader.layout().date_count(), 210u);
  EXPECT_EQ(format_yyyymmdd(reader.layout().dates.front()), "20200103");
  EXPECT_GE(reader.layout().find(column::kRmse), 0);  // rmse_ts in this release
  PointChunk chunk;
  std::size_t total = 0, chunks = 0;
  while (reader.read(chunk, 1000)) {
    EXPECT_LE(chunk.size(), 1000u);
    total += chunk.size();
    ++chunks;
  }
  EXPECT_EQ(total, 11590u);
  EXPECT_EQ(chunks, 12u);
  EXPECT_EQ(reader.bytes_read(), reader.total_bytes());
}

TEST(EgmsProduct, WritesCsvZipAndGeoPackageThatReadBack) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const auto original = test::load((dir / test::kAscending).string());
  RunContext context;
  io::Provenance provenance;
  provenance.command_line = "deforma egms fit (test)";
  const auto summary =
      run_fit((dir / test::kAscending).string(),
              ProductOutputs{tmp.file("refit.zip"), tmp.file("refit.gpkg")}, {}, context, provenance);
  ASSERT_EQ(summary.outputs.size(), 2u);
  const auto back = test::load(tmp.file("refit.zip"));
  ASSERT_EQ(back.points.size(), original.points.size());
  EXPECT_EQ(back.layout.scalar_names, original.layout.scalar_names);
  EXPECT_EQ(back.layout.dates, original.layout.dates);
  EXPECT_EQ(back.metadata.track, 117);
  EXPECT_NE(back.metadata.xml.find("<deforma>"), std::string::npos);
  EXPECT_NE(back.metadata.xml.find("deforma egms fit (test)"), std::string::npos);
  const int v = back.layout.find(column::kMeanVelocity);
  for (std::size_t p = 0; p < back.points.size(); p += 97) {
    EXPECT_EQ(back.points.pid[p], original.points.pid[p]);
    EXPECT_NEAR(back.points.scalar(p, v), original.points.scalar(p, v), 0.11);
    EXPECT_NEAR(back.points.series_of(p)[50], original.points.series_of(p)[50], 1e-4);
  }
  GDALAllRegister();
  GDALDatasetUniquePtr gpkg(GDALDataset::Open(tmp.file("refit.gpkg").c_str(), GDAL_OF_VECTOR));
  ASSERT_TRUE(gpkg);
  OGRLayer* layer = gpkg->GetLayer(0);
  EXPECT_EQ(layer->GetFeatureCount(), static_cast<GIntBig>(original.points.size()));
  EXPECT_GE(layer->GetLayerDefn()->GetFieldIndex("series_mm"), 0);
  EXPECT_EQ(gpkg->GetLayerByName("points_dates")->GetFeatureCount(),
            static_cast<GIntBig>(original.layout.date_count()));
  // Plain CSV output gets its XML beside it.
  run_fit((dir / test::kAscending).string(), ProductOutputs{tmp.file("refit.csv"), ""}, {}, context,
          provenance);
  EXPECT_TRUE(std::filesystem::exists(tmp.file("refit.xml")));
  EXPECT_EQ(test::load(tmp.file("refit.csv")).metadata.burst_id, 227);
}

TEST(EgmsProduct, BadInputsGiveClearErrors) {
  TempDir tmp;
  const std::string header =
      "pid,easting,northing,mean_velocity,20200101,20200107,20200113,20200119,20200125,20200131\n";
  write_text(tmp.file("nopid.csv"), "id,easting,northing,20200101\nA,1,2,0\n");
  EXPECT_NE(error_of<FormatError>([&] {
              ProductReader::open(tmp.file("nopid.csv"));
            }).find("column 'pid' is missing"),
            std::string::npos);
  write_text(tmp.file("nodate.csv"), "pid,easting,northing\nA,1,2\n");
  EXPECT_NE(error_of<FormatError>([&] { ProductReader::open(tmp.file("nodate.csv")); }).find("no YYYYMMDD"),
            std::string::npos);
  write_text(tmp.file("text.csv"), header + "A,1,2,0.5,0,1,2,3,4,5\nB,1,2,abc,0,1,2,3,4,5\n");
  const std::string text_error = error_of<FormatError>([&] {
    auto r = ProductReader::open(tmp.file("text.csv"));
    PointChunk c;
    r.read(c, 100);
  });
  EXPECT_NE(text_error.find("text.csv: line 3, column 'mean_velocity': 'abc' is not a number"),
            std::string::npos)
      << text_error;
  write_text(tmp.file("short.csv"), header + "A,1,2,0.5,0,1,2,3,4,5\nB,1,2,0.5,0,1\n");
  const std::string short_error = error_of<FormatError>([&] {
    auto r = ProductReader::open(tmp.file("short.csv"));
    PointChunk c;
    r.read(c, 100);
  });
  EXPECT_NE(short_error.find("line 3 has 6 fields, expected 10"), std::string::npos) << short_error;
  // Missing required columns for an operation: named with the purpose.
  write_text(tmp.file("nolos.csv"), header + "A,1,2,0.5,0,1,2,3,4,5\n");
  const std::string los_error = error_of<FormatError>([&] {
    auto r = ProductReader::open(tmp.file("nolos.csv"));
    r.layout().require(column::kLosEast, "the Ortho level");
  });
  EXPECT_NE(los_error.find("nolos.csv: column 'los_east' is missing (needed for the Ortho level)"),
            std::string::npos)
      << los_error;
  EXPECT_NE(error_of<IoError>([&] { ProductReader::open(tmp.file("absent.zip")); }).find("no such file"),
            std::string::npos);
}

TEST(EgmsProduct, TruncatedZipIsAnErrorNotAShortProduct) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string source = (dir / test::kDescending).string();
  for (const double fraction : {0.5, 0.999}) {
    const std::string cut = tmp.file(fmt::format("cut{}.zip", fraction));
    {
      std::ifstream in(source, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), {});
      bytes.resize(static_cast<std::size_t>(static_cast<double>(bytes.size()) * fraction));
      std::ofstream(cut, std::ios::binary) << bytes;
    }
    const std::string message = error_of<Error>([&] {
      auto reader = ProductReader::open(cut);
      PointChunk chunk;
      while (reader.read(chunk, 5000)) {
      }
    });
    EXPECT_NE(message.find(cut), std::string::npos) << message;
    EXPECT_EQ(message.find("no exception"), std::string::npos) << message;
  }
}

// A run whose outputs are committed together (the CLI's and the service's way) leaves nothing, GeoPackage
// included, when it ends before the commit: a late failure must not leave the first outputs in place.
TEST(EgmsProduct, GeoPackageWaitsForTheRunsCommit) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  RunContext context;
  io::Provenance provenance;
  {
    io::OutputCommitGroup outputs({tmp.file("refit.zip"), tmp.file("refit.gpkg")});
    run_fit((dir / test::kAscending).string(), ProductOutputs{tmp.file("refit.zip"), tmp.file("refit.gpkg")},
            {}, context, provenance);
    EXPECT_FALSE(std::filesystem::exists(tmp.file("refit.gpkg")));  // held until the commit
  }  // no commit: as when a later step of the run fails
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

}  // namespace
}  // namespace deforma::egms
