// Careless and hostile EGMS/GNSS inputs: each is refused with a message naming the file (and line,
// column) and the documented exit code, never turned into a silently wrong product.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include <cpl_vsi.h>
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {

using deforma::test::run_cli;
using deforma::test::TempDir;

// Eight dates: enough for the time-series model, so that commands get as far as reading the values.
const std::string kHeader =
    "pid,latitude,longitude,easting,northing,mean_velocity,20200103,20200109,20200115,20200121,20200127,"
    "20200202,20200208,20200214\n";
const std::string kDates = ",0.5,0.7,0.9,1.1,1.3\n";
const std::string kRowA = "A1,38.69,13.17,4598603.4,1739722.1,-2.1,0.0,-1.5,-2.0" + kDates;
const std::string kRowB = "B2,38.70,13.18,4598700.4,1739800.1,-1.1,0.0,-0.5,-1.0" + kDates;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string quoted(const std::string& path) {
  return "'" + path + "'";
}

// Writes a zip holding the given entries (name, content) through GDAL's /vsizip/.
void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries) {
  io::ensure_gdal_initialized();
  for (const auto& [name, content] : entries) {
    VSILFILE* f = VSIFOpenL(("/vsizip/" + path + "/" + name).c_str(), "wb");
    ASSERT_NE(f, nullptr) << name;
    ASSERT_EQ(VSIFWriteL(content.data(), 1, content.size(), f), content.size());
    VSIFCloseL(f);
  }
}

TEST(EgmsInput, NonFiniteAndOutOfRangeValuesAreRefused) {
  TempDir tmp;
  const struct {
    const char* name;
    std::string row;
    const char* expected;
  } cases[] = {
      {"inf.csv", "B2,38.70,13.18,4598700.4,1739800.1,-1.1,0.0,inf,-1.0" + kDates,
       "line 3, column '20200109': 'inf' is not a finite number"},
      {"big.csv", "B2,38.70,13.18,4598700.4,1739800.1,-1.1,0.0,1e308,-1.0" + kDates,
       "line 3, column '20200109': 1e308 is out of range (expected -1e+06..1e+06 mm)"},
      {"lat.csv", "B2,999,13.18,4598700.4,1739800.1,-1.1,0.0,-0.5,-1.0" + kDates,
       "line 3, column 'latitude': 999 is out of range (expected -90..90 degrees)"},
      {"east.csv", "B2,38.70,13.18,1e300,1739800.1,-1.1,0.0,-0.5,-1.0" + kDates,
       "line 3, column 'easting': 1e300 is out of range"},
      {"dup.csv", "A1,38.70,13.18,4598700.4,1739800.1,-1.1,0.0,-0.5,-1.0" + kDates,
       "line 3: pid 'A1' already appears on line 2"},
  };
  for (const auto& c : cases) {
    write_text(tmp.file(c.name), kHeader + kRowA + c.row);
    const auto r = run_cli("egms info " + quoted(tmp.file(c.name)));
    EXPECT_EQ(r.exit_code, 5) << c.name << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(std::string(c.name) + ": " + c.expected), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("extent"), std::string::npos) << r.out;  // no extent with 300 digits
  }
  // Empty coordinates are missing values: no extent, and no "inf" printed for it.
  write_text(tmp.file("nocoords.csv"), kHeader + "A1,,,,,-2.1,0.0,-1.5,-2.0" + kDates);
  auto empty = run_cli("egms info " + quoted(tmp.file("nocoords.csv")));
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out.find("inf"), std::string::npos) << empty.out;
  // An output that is the input is refused before it is touched.
  write_text(tmp.file("in.csv"), kHeader + kRowA + kRowB);
  empty = run_cli("egms fit " + quoted(tmp.file("in.csv")) + " -o " + quoted(tmp.file("./in.csv")));
  EXPECT_EQ(empty.exit_code, 3) << empty.err;
  EXPECT_NE(empty.err.find("is the input"), std::string::npos) << empty.err;
  EXPECT_EQ(std::filesystem::file_size(tmp.file("in.csv")), (kHeader + kRowA + kRowB).size());
  // Nothing is written when the input is refused.
  write_text(tmp.file("inf.csv"), kHeader + kRowA + cases[0].row);
  const auto r = run_cli("egms fit " + quoted(tmp.file("inf.csv")) + " -o " + quoted(tmp.file("out.zip")));
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out.zip")));
}

TEST(EgmsInput, HeadersWithBomIsoDatesAndBadDates) {
  TempDir tmp;
  write_text(tmp.file("bom.csv"), "\xEF\xBB\xBF" + kHeader + kRowA + kRowB);
  auto r = run_cli("egms info " + quoted(tmp.file("bom.csv")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 points x 8 dates"), std::string::npos) << r.out;

  write_text(tmp.file("iso.csv"),
             "pid,easting,northing,2020-01-03,2020-01-09,2020-01-15\nA1,4598603.4,1739722.1,0.0,-1.5,-2.0\n");
  r = run_cli("--summary-json egms info " + quoted(tmp.file("iso.csv")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"dates\": 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"first_date\": \"20200103\""), std::string::npos) << r.out;

  write_text(tmp.file("bad_iso.csv"), "pid,easting,northing,2020-01-03,2020-02-30\nA1,1,2,0.0,-1.5\n");
  r = run_cli("egms info " + quoted(tmp.file("bad_iso.csv")));
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.err.find("header column 5 '2020-02-30' looks like a date but is not a valid YYYY-MM-DD"),
            std::string::npos)
      << r.err;

  // A typo'd year is named with its file and column, not left to become a singular design matrix.
  write_text(tmp.file("year.csv"),
             "pid,easting,northing,20200103,20200109,30210115,20200121,20200127,20200202,20200208,20200214\n"
             "A1,4598603.4,1739722.1,0,1,2,3,4,5,6,7\n");
  r = run_cli("egms fit " + quoted(tmp.file("year.csv")));
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.err.find("year.csv: header column 6 '30210115': an acquisition date must lie between 19900101 "
                       "and 20991231"),
            std::string::npos)
      << r.err;
}

// Runs the CLI as a child process, killed after `limit_s` seconds (SIGALRM survives exec); returns its
// exit code (128 + signal when killed) and its own peak resident memory (kB).
std::pair<int, long> run_cli_measured(const std::vector<std::string>& args, std::string& err_text,
                                      unsigned limit_s = 120) {
  TempDir tmp;
  const std::string err_path = tmp.file("err.txt");
  std::vector<std::string> storage = {DEFORMA_CLI_PATH};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int null = ::open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(err, 2);
    alarm(limit_s);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  std::ifstream in(err_path);
  err_text.assign(std::istreambuf_iterator<char>(in), {});
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), usage.ru_maxrss};
}

TEST(EgmsInput, ForeignFilesAndContainersAreNamedForWhatTheyAre) {
  TempDir tmp;
  const std::string not_egms = "not an EGMS product (no CSV header)";
  deforma::test::write_test_geotiff(tmp.file("image.tif"), deforma::test::make_texture(64, 64));
  auto r = run_cli("egms info " + quoted(tmp.file("image.tif")));
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.err.find(not_egms), std::string::npos) << r.err;

  std::mt19937 rng(7);
  std::string noise(100000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng() & 0xff);
  write_text(tmp.file("noise.csv"), noise);
  r = run_cli("egms info " + quoted(tmp.file("noise.csv")));
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.err.find(not_egms), std::string::npos) << r.err;

  // An empty zip is a valid zip with nothing in it, not a truncated one.
  write_text(tmp.file("empty.zip"), std::string("PK\x05\x06", 4) + std::string(18, '\0'));
  r = run_cli("egms info " + quoted(tmp.file("empty.zip")));
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.err.find("empty.zip: the zip is empty"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("truncated"), std::string::npos) << r.err;

  // Two CSVs: which is the product is ambiguous, both are named.
  write_zip(tmp.file("two.zip"), {{"first.csv", kHeader + kRowA}, {"second.csv", kHeader + kRowB}});
  r = run_cli("egms info " + quoted(tmp.file("two.zip")));
  EXPECT_EQ(r.exit_code, 5) << r.out;
  EXPECT_NE(r.err.find("holds 2 CSV files (first.csv, second.csv)"), std::string::npos) << r.err;

  // An endless input ends quickly with an error, not an ever-growing buffer.
  const auto start = std::chrono::steady_clock::now();
  std::string err;
  const auto [code, peak_kb] = run_cli_measured({"egms", "info", "/dev/zero"}, err, 20);
  EXPECT_GE(code, 3) << err;
  EXPECT_LE(code, 5) << err;  // refused (by the reader, or before it as a device), not killed
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  EXPECT_NE(err.find("/dev/zero"), std::string::npos) << err;
  EXPECT_LT(peak_kb, 150 * 1024);
}

TEST(EgmsInput, AVeryLongLineIsAnErrorWithBoundedMemory) {
  TempDir tmp;
  // 256 MiB on one line, a few hundred kB once deflated: reading it whole would take that much memory.
  const std::string zip = tmp.file("long.zip");
  {
    io::ensure_gdal_initialized();
    VSILFILE* f = VSIFOpenL(("/vsizip/" + zip + "/long.csv").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    VSIFWriteL(kHeader.data(), 1, kHeader.size(), f);
    const std::string block(1 << 20, '7');
    for (int i = 0; i < 256; ++i) VSIFWriteL(block.data(), 1, block.size(), f);
    VSIFCloseL(f);
  }
  std::string err;
  const auto [code, peak_kb] = run_cli_measured({"egms", "info", zip}, err);
  EXPECT_EQ(code, 5) << err;
  EXPECT_NE(err.find("long.zip: line 2 is longer than 1048576 bytes"), std::string::npos) << err;
  EXPECT_LT(peak_kb, 150 * 1024) << "peak resident memory " << peak_kb << " kB";

  // The XML metadata inside the zip is bounded too.
  const std::string big_xml = tmp.file("xml.zip");
  {
    VSILFILE* f = VSIFOpenL(("/vsizip/" + big_xml + "/p.csv").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const std::string csv = kHeader + kRowA;
    VSIFWriteL(csv.data(), 1, csv.size(), f);
    VSIFCloseL(f);
    f = VSIFOpenL(("/vsizip/" + big_xml + "/p.xml").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const std::string block(1 << 20, ' ');
    for (int i = 0; i < 256; ++i) VSIFWriteL(block.data(), 1, block.size(), f);
    VSIFCloseL(f);
  }
  const auto [xml_code, xml_peak_kb] = run_cli_measured({"egms", "info", big_xml}, err);
  EXPECT_EQ(xml_code, 5) << err;
  EXPECT_NE(err.find("xml.zip (p.xml): the XML metadata is larger than 16 MiB"), std::string::npos) << err;
  EXPECT_LT(xml_peak_kb, 150 * 1024) << "peak resident memory " << xml_peak_kb << " kB";

  // The GNSS reader has the same bound.
  std::string gnss =
      "station_id,longitude,latitude,velocity_east_mmyr,velocity_north_mmyr,velocity_up_mmyr\n";
  gnss += std::string(2 << 20, '1') + "\n";
  write_text(tmp.file("gnss.csv"), gnss);
  write_text(tmp.file("p.csv"), kHeader + kRowA);
  const auto r = run_cli("egms calibrate " + quoted(tmp.file("p.csv")) + " --gnss " +
                         quoted(tmp.file("gnss.csv")) + " -o " + quoted(tmp.file("c.zip")));
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("gnss.csv: line 2 is longer than"), std::string::npos) << r.err;
}

// A station file with one NaN velocity, as a careless export writes it, near Ustica.
std::string station_file(const TempDir& tmp, const std::string& up_velocity) {
  const std::string path = tmp.file("stations.csv");
  write_text(path,
             "station_id,longitude,latitude,velocity_east_mmyr,velocity_north_mmyr,velocity_up_mmyr\n"
             "UST1,13.1711,38.6907,1.0,3.0,-1.0\n"
             "UST2,13.1800,38.7100,1.2,3.1," +
                 up_velocity + "\n");
  return path;
}

TEST(EgmsInputReal, NanGnssVelocityIsRefusedWhereItIs) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string gnss = station_file(tmp, "nan");
  auto r = run_cli("egms calibrate " + quoted((dir / test::kDescending).string()) + " --gnss " +
                   quoted(gnss) + " --station-radius-m 2000 -o " + quoted(tmp.file("cal.zip")));
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("stations.csv: line 3, column 'velocity_up_mmyr': 'nan' is not a finite number"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("cal.zip")));
  r = run_cli("egms ortho " + quoted((dir / test::kAscending).string()) + " " +
              quoted((dir / test::kDescending).string()) + " --gnss " + quoted(gnss) + " -o " +
              quoted(tmp.file("o")));
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_EQ(r.out.find("inf"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("o_U.tif")));
  // The same file with finite values calibrates every point.
  r = run_cli("--summary-json egms calibrate " + quoted((dir / test::kDescending).string()) + " --gnss " +
              quoted(station_file(tmp, "-0.5")) + " --station-radius-m 2000 -o " +
              quoted(tmp.file("cal.zip")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto back = test::load(tmp.file("cal.zip"));
  const int v = back.layout.find(column::kMeanVelocity);
  std::size_t finite = 0;
  for (std::size_t p = 0; p < back.points.size(); ++p)
    finite += std::isfinite(back.points.scalar(p, v)) ? 1 : 0;
  EXPECT_GT(finite, back.points.size() * 99 / 100);  // not emptied by one station
}

TEST(EgmsInputReal, OrthoRefusesTwoInputsOfTheSameGeometry) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string ascending = (dir / test::kAscending).string();
  auto r =
      run_cli("egms ortho " + quoted(ascending) + " " + quoted(ascending) + " -o " + quoted(tmp.file("o")));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("is given twice"), std::string::npos) << r.err;
  // A copy under another name: the same track.
  std::filesystem::copy_file(ascending, tmp.file("copy.zip"));
  r = run_cli("egms ortho " + quoted(ascending) + " " + quoted(tmp.file("copy.zip")) + " -o " +
              quoted(tmp.file("o")));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("same viewing geometry"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("o_U.tif")));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("o_U.csv")));
  // A prefix that names a folder, or a folder that does not exist, is a bad argument, said at once.
  const std::string pair = quoted(ascending) + " " + quoted((dir / test::kDescending).string());
  for (const std::string& prefix : {tmp.path().string() + "/", tmp.path().string()}) {
    r = run_cli("egms ortho " + pair + " -o " + quoted(prefix));
    EXPECT_EQ(r.exit_code, 3) << prefix << ": " << r.err;
    EXPECT_NE(r.err.find("output: '" + prefix + "'"), std::string::npos) << r.err;
  }
  // A prefix in a folder that does not exist is an I/O error of the output, found before any work.
  r = run_cli("egms ortho " + pair + " -o " + quoted(tmp.file("none/x")));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("--output " + tmp.file("none/x") + ": folder"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("_U.tif")));
}

TEST(EgmsInputReal, ReferenceAreaFollowsItsParameters) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const std::string zip = quoted((dir / test::kDescending).string());
  // An area's centre without --method selects the area, not the automatic search.
  auto r = run_cli("--summary-json egms reference " + zip +
                   " --centre-easting 4599000 --centre-northing 1740000 --radius-m 300 -o " +
                   quoted(tmp.file("a.zip")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"method\": \"area\""), std::string::npos) << r.out;
  const auto by_metres = nlohmann::json::parse(r.out)["details"]["reference"];
  // The same centre in longitude/latitude (PROJ) selects about the same points.
  double lon = 0, lat = 0;
  {
    OGRSpatialReference wgs84, laea;
    wgs84.importFromEPSG(4326);
    laea.importFromEPSG(3035);
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    laea.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> t(OGRCreateCoordinateTransformation(&laea, &wgs84));
    lon = 4599000;
    lat = 1740000;
    ASSERT_TRUE(t->Transform(1, &lon, &lat));
  }
  r = run_cli(
      fmt::format("--summary-json egms reference {} --centre-lon {:.8f} --centre-lat {:.8f} --radius-m 300 "
                  "--gpkg {}",
                  zip, lon, lat, quoted(tmp.file("b.gpkg"))));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto by_degrees = nlohmann::json::parse(r.out)["details"]["reference"];
  EXPECT_EQ(by_degrees["points"], by_metres["points"]);
  EXPECT_NEAR(by_degrees["centre_easting_m"].get<double>(), 4599000, 0.01);
  EXPECT_TRUE(std::filesystem::exists(tmp.file("b.gpkg")));  // --gpkg alone is enough
  // Conflicting parameters are refused before any work.
  for (const std::string& conflict :
       {std::string(" --method auto --centre-easting 4599000 --centre-northing 1740000"),
        std::string(" --pid 166ax5Ofja --centre-lon 13.17 --centre-lat 38.69"),
        std::string(
            " --centre-easting 4599000 --centre-northing 1740000 --centre-lon 13.17 --centre-lat 38.69"),
        std::string(" --centre-lon 13.17")}) {
    r = run_cli("egms reference " + zip + conflict + " -o " + quoted(tmp.file("c.zip")));
    EXPECT_EQ(r.exit_code, 3) << conflict << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp.file("c.zip")));
  }
  // A centre given in degrees where metres are expected: the message says which CRS and where the points are.
  r = run_cli("egms reference " + zip + " --centre-easting 13.17 --centre-northing 38.69 -o " +
              quoted(tmp.file("c.zip")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("holds 0 points"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("EPSG:3035"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--centre-lon/--centre-lat"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("points lie within E 459"), std::string::npos) << r.err;
}

TEST(EgmsInputReal, GeoPackageIsCompactWithUnits) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  TempDir tmp;
  const auto r = run_cli("egms fit " + quoted((dir / test::kDescending).string()) + " --gpkg " +
                         quoted(tmp.file("fit.gpkg")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  io::ensure_gdal_initialized();  // this test may run alone in its process (ctest)
  const auto size = std::filesystem::file_size(tmp.file("fit.gpkg"));
  EXPECT_LT(size, 20u << 20) << size;  // 48 MB with one field per date
  GDALDatasetUniquePtr gpkg(GDALDataset::Open(tmp.file("fit.gpkg").c_str(), GDAL_OF_VECTOR));
  ASSERT_TRUE(gpkg);
  OGRLayer* points = gpkg->GetLayerByName("points");
  ASSERT_NE(points, nullptr);
  EXPECT_EQ(points->GetFeatureCount(), 11590);
  std::unique_ptr<OGRFeature> first(points->GetNextFeature());
  const auto series = nlohmann::json::parse(first->GetFieldAsString("series_mm"));
  ASSERT_EQ(series.size(), 210u);
  OGRLayer* dates = gpkg->GetLayerByName("points_dates");
  ASSERT_NE(dates, nullptr);
  EXPECT_EQ(dates->GetFeatureCount(), 210);
  std::unique_ptr<OGRFeature> first_date(dates->GetNextFeature());
  EXPECT_STREQ(first_date->GetFieldAsString("date"), "2020/01/03");
  OGRLayer* units = gpkg->ExecuteSQL(
      "SELECT title, description FROM gpkg_data_columns WHERE table_name = 'points' AND column_name = "
      "'mean_velocity'",
      nullptr, nullptr);
  ASSERT_NE(units, nullptr);
  std::unique_ptr<OGRFeature> row(units->GetNextFeature());
  ASSERT_TRUE(row);
  EXPECT_STREQ(row->GetFieldAsString("title"), "mean_velocity [mm/yr]");
  gpkg->ReleaseResultSet(units);
}

TEST(EgmsInputReal, EgmsHelpDescribesTheCommands) {
  const auto r = run_cli("egms --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* text :
       {"European Ground Motion Service", "info", "fit", "reference", "calibrate", "ortho"}) {
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
  }
}

TEST(EgmsInput, MutatedProductsGiveErrorsNotCrashes) {
  // Random byte edits of a small valid product: every outcome is a product read or a deforma::Error,
  // never another exception or a crash.
  TempDir tmp;
  const std::string valid = kHeader + kRowA + kRowB;
  std::mt19937 rng(11);
  const char alphabet[] = {',', ';', '\n', '\r', '"', '-', '.', 'e', '0', '9', 'x', '\0', '\xEF', ' '};
  int errors = 0, read = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string text = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const std::size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[at] = alphabet[rng() % sizeof alphabet];
          break;
        case 1:
          text.erase(at, 1 + rng() % 8);
          break;
        default:
          text.insert(at, 1, alphabet[rng() % sizeof alphabet]);
      }
      if (text.empty()) text.push_back('x');
    }
    const std::string path = tmp.file("m.csv");
    write_text(path, text);
    try {
      auto reader = ProductReader::open(path);
      PointChunk chunk;
      while (reader.read(chunk, 1)) {
        for (const float v : chunk.series) EXPECT_FALSE(std::isinf(v)) << text;
      }
      ++read;
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a deforma::Error: " << e.what() << "\n" << text;
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(read, 0);
}

}  // namespace
}  // namespace deforma::egms
