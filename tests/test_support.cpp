#include "test_support.hpp"
#include "measure_support.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::test {

std::filesystem::path data_dir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("DEFORMA_DATA"); env && *env) {
    dir = env;
  } else {
    dir = std::filesystem::path(DEFORMA_SOURCE_DIR) / ".." / "shared" / "data";
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return {};
  return std::filesystem::weakly_canonical(dir);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "deforma-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary folder");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

CliResult run_cli(const std::string& args) {
  TempDir tmp;
  const std::string out = tmp.file("out.txt");
  const std::string err = tmp.file("err.txt");
  const std::string command = std::string(DEFORMA_CLI_PATH) + " " + args + " >" + out + " 2>" + err + " </dev/null";
  const int status = std::system(command.c_str());
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(out);
  result.err = slurp(err);
  return result;
}

MeasuredCliResult run_cli_measured(const std::vector<std::string>& args) {
  TempDir tmp;
  const std::string out = tmp.file("out.txt");
  const std::string err = tmp.file("err.txt");
  // DEFORMA_TEST_CLI measures another build (a baseline) on the same generated inputs.
  const char* other = std::getenv("DEFORMA_TEST_CLI");
  std::vector<std::string> argv_text = {other && *other ? other : DEFORMA_CLI_PATH};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Directly exec'd (no shell between): ru_maxrss is then the operation's own peak.
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int in_fd = ::open("/dev/null", O_RDONLY);
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) ::_exit(126);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  if (::wait4(pid, &status, 0, &usage) != pid) throw std::runtime_error("wait4 failed");
  MeasuredCliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(out);
  result.err = slurp(err);
  result.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // kilobytes on Linux
  return result;
}

void write_test_geotiff(const std::string& path, const GridF& values, const std::string& data_type,
                        double nodata, bool set_nodata, int epsg, double pixel_size_m) {
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  const GDALDataType type = GDALGetDataTypeByName(data_type.c_str());
  char** options = nullptr;
  options = CSLSetNameValue(options, "TILED", "YES");
  options = CSLSetNameValue(options, "BLOCKXSIZE", "64");
  options = CSLSetNameValue(options, "BLOCKYSIZE", "64");
  GDALDataset* ds = driver->Create(path.c_str(), values.width(), values.height(), 1, type, options);
  CSLDestroy(options);
  if (!ds) throw std::runtime_error("cannot create test raster " + path);
  double gt[6] = {500000.0, pixel_size_m, 0.0, 6700000.0, 0.0, -pixel_size_m};
  ds->SetGeoTransform(gt);
  if (epsg > 0) {
    OGRSpatialReference srs;
    srs.importFromEPSG(epsg);
    ds->SetSpatialRef(&srs);
  }
  auto* band = ds->GetRasterBand(1);
  if (set_nodata) band->SetNoDataValue(nodata);
  const CPLErr err = band->RasterIO(GF_Write, 0, 0, values.width(), values.height(),
                                    const_cast<float*>(values.data()), values.width(), values.height(),
                                    GDT_Float32, 0, 0);
  GDALClose(ds);
  if (err != CE_None) throw std::runtime_error("cannot write test raster " + path);
}

GridF make_texture(int width, int height, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  GridF grid(width, height, 0.f);
  const int blobs = std::max(50, width * height / 60);
  for (int b = 0; b < blobs; ++b) {
    const float cx = uni(rng) * width, cy = uni(rng) * height;
    const float sigma = 1.5f + 4.f * uni(rng);
    const float amp = 200.f * (uni(rng) - 0.3f);
    const int r = static_cast<int>(3 * sigma) + 1;
    for (int y = std::max(0, static_cast<int>(cy) - r); y < std::min(height, static_cast<int>(cy) + r); ++y) {
      for (int x = std::max(0, static_cast<int>(cx) - r); x < std::min(width, static_cast<int>(cx) + r); ++x) {
        const float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
        grid(x, y) += amp * std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      }
    }
  }
  for (auto& v : grid.values()) v += 1000.f;
  return grid;
}

}  // namespace deforma::test
