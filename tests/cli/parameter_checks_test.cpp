// Parameters are checked before an operation writes anything: a value that a pair's correlation would
// refuse must not leave a half-made output folder (network.png, unit records) behind.
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;

// Three small dated images (the date is read from the file name).
std::string write_series(const test::TempDir& tmp) {
  std::string list;
  for (const char* name : {"20200101.tif", "20200111.tif", "20200121.tif"}) {
    GridF g(64, 64);
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 64; ++c) g(r, c) = static_cast<float>((r * 7 + c * 13) % 31);
    test::write_test_geotiff(tmp.file(name), g);
    list += fmt::format(" {}", tmp.file(name));
  }
  return list;
}

TEST(ParameterChecks, PipelineRefusesASearchLargerThanTheImagesBeforeWriting) {
  test::TempDir tmp;
  const std::string images = write_series(tmp);
  const std::string out = tmp.file("out");
  const auto r = test::run_cli(fmt::format("pipeline{} -o {} --search 2048", images, out));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("--search 2048 px is larger than the image"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "the output folder was created before the parameters were checked";
}

TEST(ParameterChecks, SearchOutsideItsBoundsIsRefusedAlikeByCorrelateAndPipeline) {
  test::TempDir tmp;
  const std::string images = write_series(tmp);
  const auto p = test::run_cli(fmt::format("pipeline{} -o {} --search 4096", images, tmp.file("out")));
  EXPECT_EQ(p.exit_code, 3) << p.err;
  EXPECT_NE(p.err.find("expected 2 to 2048 px"), std::string::npos) << p.err;
  EXPECT_FALSE(fs::exists(tmp.file("out")));
  const auto c = test::run_cli(fmt::format("correlate {} {} -o {} --search 4096", tmp.file("20200101.tif"),
                                           tmp.file("20200111.tif"), tmp.file("c.tif")));
  EXPECT_EQ(c.exit_code, 3) << c.err;
  EXPECT_NE(c.err.find("expected 2 to 2048 px"), std::string::npos) << c.err;
  EXPECT_FALSE(fs::exists(tmp.file("c.tif")));
}

TEST(ParameterChecks, PipelineAcceptsASearchInMetresLikeCorrelate) {
  test::TempDir tmp;
  const std::string images = write_series(tmp);
  // 15 m pixels: 2 km is 134 px, more than the 64 px images; refused before writing, as in px.
  const auto r = test::run_cli(fmt::format("pipeline{} -o {} --search 2km", images, tmp.file("out")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("--search 134 px is larger than the image"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("out")));
}

}  // namespace
}  // namespace deforma
