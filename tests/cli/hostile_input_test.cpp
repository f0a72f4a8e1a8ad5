// Careless and hostile input at the command line: devices and FIFOs as outputs or inputs, an output that
// is an input, corrupt files, interrupts, misspelt commands. Each class: the exit code, the message, and
// nothing left behind.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <complex>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <nlohmann/json.hpp>

#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "test_support.hpp"

extern char** environ;

namespace deforma {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

bool is_char_device(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

bool is_fifo(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

// Files in `dir` other than `keep`.
std::vector<std::string> extra_files(const fs::path& dir, const std::vector<std::string>& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (std::find(keep.begin(), keep.end(), name) == keep.end()) out.push_back(name);
  }
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(HostileInput, DeviceOutputIsRefusedAndStaysADevice) {
  if (!is_char_device("/dev/full")) GTEST_SKIP() << "/dev/full is not available";
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(40, 30));
  auto r = run_cli("cog " + tmp.file("a.tif") + " -o /dev/full");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("/dev/full"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("character device"), std::string::npos) << r.err;
  EXPECT_TRUE(is_char_device("/dev/full"));

  // A FIFO as output: refused, still a FIFO, nothing staged beside it.
  ASSERT_EQ(::mkfifo(tmp.file("pipe.tif").c_str(), 0600), 0);
  r = run_cli("cog " + tmp.file("a.tif") + " -o " + tmp.file("pipe.tif"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  EXPECT_TRUE(is_fifo(tmp.file("pipe.tif")));
  EXPECT_TRUE(extra_files(tmp.path(), {"a.tif", "pipe.tif"}).empty());

  // A folder given where a file is written.
  fs::create_directory(tmp.file("folder.tif"));
  r = run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("a.tif") + " -o " + tmp.file("folder.tif"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("folder"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_directory(tmp.file("folder.tif")));
}

TEST(HostileInput, SymbolicLinkOutputIsRefusedAndKept) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(40, 30));
  std::ofstream(tmp.file("target.tif")) << "keep me";
  fs::create_symlink(tmp.file("target.tif"), tmp.file("link.tif"));
  const auto r = run_cli("cog " + tmp.file("a.tif") + " -o " + tmp.file("link.tif"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_symlink(tmp.file("link.tif")));
  EXPECT_EQ(read_bytes(tmp.file("target.tif")), "keep me");
}

TEST(HostileInput, OutputThatIsAnInputIsRefusedBeforeAnyWork) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(64, 64, 1));
  test::write_test_geotiff(tmp.file("b.tif"), test::make_texture(64, 64, 2));
  const std::string before = read_bytes(tmp.file("a.tif"));
  // The same file spelt with ./ and through a hard link.
  fs::create_hard_link(tmp.file("a.tif"), tmp.file("hard.tif"));
  for (const std::string& out : {tmp.path().string() + "/./a.tif", tmp.file("hard.tif")}) {
    const auto r =
        run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("b.tif") + " --step 8 -o " + out);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("is the input"), std::string::npos) << r.err;
    EXPECT_EQ(read_bytes(tmp.file("a.tif")), before);
  }
  // Two outputs naming the same file.
  auto r = run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("b.tif") + " --step 8 -o " +
                   tmp.file("v.tif") + " --quicklook " + tmp.path().string() + "/./v.tif");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("name the same file"), std::string::npos) << r.err;
  // A late output whose folder is missing: refused before the COG is computed, nothing left.
  r = run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("b.tif") + " --step 8 -o " +
              tmp.file("v2.tif") + " --quicklook " + tmp.file("nodir/v.png"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("nodir"), std::string::npos) << r.err;
  EXPECT_TRUE(extra_files(tmp.path(), {"a.tif", "b.tif", "hard.tif"}).empty());
}

TEST(HostileInput, FifoAndDeviceInputsAreRefusedAtOnce) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.file("in.tif").c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  auto r = run_cli("info " + tmp.file("in.tif"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0);
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find(tmp.file("in.tif")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  if (is_char_device("/dev/zero")) {
    r = run_cli("stats /dev/zero");
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find("character device"), std::string::npos) << r.err;
    r = run_cli("egms info /dev/zero");
    EXPECT_EQ(r.exit_code, 4) << r.err;
  }
  // A polygon file read through OGR goes through the same check.
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(64, 64, 1));
  r = run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("a.tif") + " --step 8 -o " +
              tmp.file("v.tif") + " --stable " + tmp.file("in.tif"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
}

// A striped, uncompressed GeoTIFF whose later strips point past the end of the file.
void write_truncated_geotiff(const std::string& path) {
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  const int w = 128, h = 128;
  GDALDataset* ds = driver->Create(path.c_str(), w, h, 1, GDT_UInt16, nullptr);
  std::vector<std::uint16_t> values(w * h);
  for (int i = 0; i < w * h; ++i) values[i] = static_cast<std::uint16_t>(6888 + i % 4000);
  ASSERT_EQ(
      ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, w, h, values.data(), w, h, GDT_UInt16, 0, 0, nullptr),
      CE_None);
  GDALClose(ds);
  ds = static_cast<GDALDataset*>(GDALOpen(path.c_str(), GA_ReadOnly));
  const char* first = ds->GetRasterBand(1)->GetMetadataItem("BLOCK_OFFSET_0_0", "TIFF");
  int bw = 0, bh = 0;
  ds->GetRasterBand(1)->GetBlockSize(&bw, &bh);
  const std::string middle_key = "BLOCK_OFFSET_0_" + std::to_string(h / bh / 2);
  const char* middle = ds->GetRasterBand(1)->GetMetadataItem(middle_key.c_str(), "TIFF");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(middle, nullptr);
  const long long first_offset = std::atoll(first), middle_offset = std::atoll(middle);
  GDALClose(ds);
  // The directory must come before the pixel data for the cut to leave a file that still opens.
  ASSERT_GT(first_offset, 0);
  ASSERT_EQ(::truncate(path.c_str(), middle_offset), 0);
}

TEST(HostileInput, ReadErrorsFailTheOperationWithGdalsFirstError) {
  TempDir tmp;
  write_truncated_geotiff(tmp.file("cut.tif"));
  auto r = run_cli("stats " + tmp.file("cut.tif"));
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find(tmp.file("cut.tif")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("failed: "), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("min"), std::string::npos) << r.out;

  // A truncated JPEG: stats and correlate fail, correlate leaves no output.
  io::ensure_gdal_initialized();
  {
    const auto texture = test::make_texture(256, 256, 3);
    auto* mem = GetGDALDriverManager()->GetDriverByName("MEM");
    std::unique_ptr<GDALDataset> src(mem->Create("", 256, 256, 1, GDT_Byte, nullptr));
    std::vector<std::uint8_t> bytes(texture.size());
    for (std::size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = static_cast<std::uint8_t>(texture.data()[i] * 255.f);
    ASSERT_EQ(src->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, 256, 256, bytes.data(), 256, 256, GDT_Byte, 0,
                                              0, nullptr),
              CE_None);
    auto* jpeg = GetGDALDriverManager()->GetDriverByName("JPEG");
    for (const char* name : {"a.jpg", "b.jpg"}) {
      GDALClose(jpeg->CreateCopy(tmp.file(name).c_str(), src.get(), FALSE, nullptr, nullptr, nullptr));
    }
  }
  fs::resize_file(tmp.file("b.jpg"), fs::file_size(tmp.file("b.jpg")) / 2);
  fs::remove(tmp.file("a.jpg.aux.xml"));
  fs::remove(tmp.file("b.jpg.aux.xml"));
  r = run_cli("stats " + tmp.file("b.jpg"));
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("b.jpg"), std::string::npos) << r.err;
  r = run_cli("correlate " + tmp.file("a.jpg") + " " + tmp.file("b.jpg") + " --step 16 -o " +
              tmp.file("d.tif"));
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("d.tif")));
}

TEST(HostileInput, ComplexBandsAreReadAsAmplitudeWithAWarning) {
  TempDir tmp;
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  GDALDataset* ds = driver->Create(tmp.file("slc.tif").c_str(), 16, 8, 1, GDT_CFloat32, nullptr);
  std::vector<std::complex<float>> values(16 * 8, {3.f, -4.f});
  ASSERT_EQ(ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, 16, 8, values.data(), 16, 8, GDT_CFloat32, 0, 0,
                                           nullptr),
            CE_None);
  GDALClose(ds);
  const auto r = run_cli("stats --json " + tmp.file("slc.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["mean"].get<double>(), 5.0, 1e-6);
  EXPECT_NEAR(j["min"].get<double>(), 5.0, 1e-6);
  EXPECT_NE(r.err.find("complex"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("amplitude"), std::string::npos) << r.err;
}

// Starts the CLI with `args` (stderr to `err_path`) and returns its pid.
pid_t spawn_cli(const std::string& args, const std::string& err_path) {
  const std::string command =
      std::string("exec ") + DEFORMA_CLI_PATH + " " + args + " >/dev/null 2>" + err_path;
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) return -1;
  return pid;
}

TEST(HostileInput, TerminationCancelsRemovesStagedFilesAndExits7) {
  TempDir tmp;
  std::string ref, sec;
  const fs::path yahtse = test::data_dir().empty() ? fs::path() : test::data_dir() / "yahtse-l8";
  if (!yahtse.empty() && fs::exists(yahtse / "LC80630182016200LGN00_B8_yahtse.TIF")) {
    ref = (yahtse / "LC80630182016200LGN00_B8_yahtse.TIF").string();
    sec = (yahtse / "LC80630182016216LGN00_B8_yahtse.TIF").string();
  } else {
    test::write_test_geotiff(tmp.file("ref.tif"), test::make_texture(1500, 1500, 4));
    test::write_test_geotiff(tmp.file("sec.tif"), test::make_texture(1500, 1500, 4));
    ref = tmp.file("ref.tif");
    sec = tmp.file("sec.tif");
  }
  fs::create_directory(tmp.file("out"));
  // A staging file of a run killed earlier (its process is gone): the next run removes it.
  std::ofstream(tmp.file("out/.v.staging-2147480000-0.tif")) << "stale";
  const std::string err = tmp.file("err.txt");
  const pid_t pid = spawn_cli("correlate " + ref + " " + sec + " --step 1 --ram 60 --threads 2 -o " +
                                  tmp.file("out/v.tif") + " --quicklook " + tmp.file("out/v.png"),
                              err);
  ASSERT_GT(pid, 0);
  // Terminated once the run is writing (its own staging file exists), not after a fixed delay: on a busy
  // machine a fixed delay can end the process before it has started, which tests nothing.
  const auto spawned = std::chrono::steady_clock::now();
  auto writing = [&] {
    for (const auto& entry : fs::directory_iterator(tmp.file("out"))) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(".v.staging-", 0) == 0 && name.find("2147480000") == std::string::npos) return true;
    }
    return false;
  };
  while (!writing() && std::chrono::steady_clock::now() - spawned < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(writing()) << "the run wrote no staging file within 60 s: " << read_bytes(err);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string message = read_bytes(err);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << ": " << message;
  EXPECT_EQ(WEXITSTATUS(status), 7) << message;
  EXPECT_NE(message.find("deforma correlate: cancelled"), std::string::npos) << message;
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(extra_files(tmp.file("out"), {}).empty())
      << fmt::format("{}", fmt::join(extra_files(tmp.file("out"), {}), " "));
}

TEST(HostileInput, StaleStagingFilesOfAnOutputAreRemovedByARerun) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(40, 30));
  std::ofstream(tmp.file(".c.staging-2147480000-3.tif")) << "stale";
  std::ofstream(tmp.file(".c.partial-2147480001-0.tif.aux.xml")) << "stale";
  std::ofstream(tmp.file(".other.staging-2147480000-3.tif")) << "not ours";
  const auto r = run_cli("cog " + tmp.file("a.tif") + " -o " + tmp.file("c.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file(".c.staging-2147480000-3.tif")));
  EXPECT_FALSE(fs::exists(tmp.file(".c.partial-2147480001-0.tif.aux.xml")));
  EXPECT_TRUE(fs::exists(tmp.file(".other.staging-2147480000-3.tif")));
}

TEST(HostileInput, MisspeltCommandsAndOptionsGetASuggestion) {
  auto r = run_cli("corelate a.tif b.tif -o x.tif");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown command `corelate`; did you mean `correlate`?"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_cli("correlate a.tif b.tif -o x.tif --serch 20");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("did you mean `--search`?"), std::string::npos) << r.err;
  r = run_cli("egms infoo x.zip");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("did you mean `egms info`?"), std::string::npos) << r.err;
  r = run_cli("info -weird.tif");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("file name"), std::string::npos) << r.err;
  // Global options still work before and after the command.
  TempDir tmp;
  test::write_test_geotiff(tmp.file("-dash.tif"), test::make_texture(40, 30));
  r = run_cli("--threads 2 info -q -- " + tmp.file("-dash.tif"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(HostileInput, QuietKeepsTheAnswer) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(40, 30));
  auto r = run_cli("-q info " + tmp.file("a.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("40 x 30"), std::string::npos) << r.out;
  r = run_cli("stats -q " + tmp.file("a.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("min"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(HostileInput, OutOfRangeValuesAreRefusedWithBoundsInWords) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(40, 30));
  auto r = run_cli("--threads -1 info " + tmp.file("a.tif"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("--threads"), std::string::npos) << r.err;
  EXPECT_LT(r.err.size(), 200u) << r.err;
  r = run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("a.tif") + " -o " + tmp.file("v.tif") +
              " --step 99999999999999");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("between 1 and 4096"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("-2147483648"), std::string::npos) << r.err;
  for (const char* search : {"1e308", "1e308m", "99999999999px"}) {
    r = run_cli("correlate " + tmp.file("a.tif") + " " + tmp.file("a.tif") + " -o " + tmp.file("v.tif") +
                " --search " + search);
    EXPECT_EQ(r.exit_code, 3) << search << ": " << r.err;
    EXPECT_NE(r.err.find("expected at most"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("-2147483648"), std::string::npos) << r.err;
  }
  r = run_cli("stats " + tmp.file("a.tif") + " --band 0");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("at least 1"), std::string::npos) << r.err;
}

TEST(HostileInput, EmptyBandsGiveNullStatisticsAndAWarnedProduct) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("empty.tif"), GridF(64, 64, -9999.f), "Float32", -9999.0, true);
  auto r = run_cli("stats --json " + tmp.file("empty.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["min"].is_null()) << r.out;
  EXPECT_TRUE(j["mean"].is_null()) << r.out;
  r = run_cli("correlate " + tmp.file("empty.tif") + " " + tmp.file("empty.tif") + " --step 16 -o " +
              tmp.file("v.tif"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: no node could be matched"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace deforma
