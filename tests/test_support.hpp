#pragma once
// Shared helpers of the test suite: the sample-data folder, temporary folders, small synthetic rasters
// and running the CLI binary.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>

#include "deforma/core/grid.hpp"
#include "deforma/core/progress.hpp"

namespace deforma::test {

/// The real sample data (DEFORMA_DATA or ../shared/data beside the project); empty path when absent.
std::filesystem::path data_dir();

/// Skips the current test with a clear message when the sample data set `name` (a sub-folder) is absent.
#define DEFORMA_REQUIRE_DATA(name, var)                                                          \
  const std::filesystem::path var = ::deforma::test::data_dir() / (name);                        \
  if (::deforma::test::data_dir().empty() || !std::filesystem::exists(var))                      \
  GTEST_SKIP() << "sample data '" << (name) << "' not found (set DEFORMA_DATA or provide "        \
               << "../shared/data beside the project); skipping"

/// A fresh empty folder under the system temporary folder, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;  ///< standard output
  std::string err;  ///< standard error
};

/// Runs the deforma binary with `args` (shell-quoted by the caller where needed).
CliResult run_cli(const std::string& args);

/// Writes a georeferenced single-band GeoTIFF (UTM 7N, 15 m pixels) from `values`.
void write_test_geotiff(const std::string& path, const GridF& values, const std::string& data_type = "Float32",
                        double nodata = -9999.0, bool set_nodata = false, int epsg = 32607,
                        double pixel_size_m = 15.0);

/// A Progress that asks to stop once `after` units were advanced, as a user pressing Ctrl-C midway would.
class CancelAfter final : public Progress {
 public:
  explicit CancelAfter(std::uint64_t after) : after_(after) {}
  void start(const std::string&, std::uint64_t) override {}
  void advance(std::uint64_t units) override { done_ += units; }
  void finish() override {}
  bool cancelled() const override { return done_.load() >= after_; }

 private:
  std::uint64_t after_;
  std::atomic<std::uint64_t> done_{0};
};

/// A smooth random texture (sum of Gaussian blobs), deterministic for a seed.
GridF make_texture(int width, int height, unsigned seed = 1);

}  // namespace deforma::test
