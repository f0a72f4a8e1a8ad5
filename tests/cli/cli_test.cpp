// The CLI as a user meets it: exit codes, one-line messages, no partial outputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

void expect_clean_error(const test::CliResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  // One line, no stack trace, no raw GDAL noise.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.find("ERROR 4"), std::string::npos) << r.err;
}

TEST(Cli, VersionAndHelp) {
  auto r = run_cli("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("deforma "), std::string::npos);
  r = run_cli("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("info"), std::string::npos);
  r = run_cli("info --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Examples:"), std::string::npos);
  r = run_cli("");
  EXPECT_EQ(r.exit_code, 2);
  r = run_cli("info --no-such-option x");
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, InfoTextAndJson) {
  TempDir tmp;
  test::write_test_geotiff(tmp.file("a.tif"), test::make_texture(40, 30));
  auto r = run_cli("info " + tmp.file("a.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("40 x 30"), std::string::npos);
  r = run_cli("info --json " + tmp.file("a.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["width"], 40);
  EXPECT_EQ(j["epsg"], 32607);
  r = run_cli("--summary-json info " + tmp.file("a.tif"));
  EXPECT_EQ(nlohmann::json::parse(r.out)["operation"], "info");
}

TEST(Cli, BadInputsGiveClearErrorsAndExitCodes) {
  TempDir tmp;
  expect_clean_error(run_cli("info " + tmp.file("missing.tif")), 4, "missing.tif: no such file");
  expect_clean_error(run_cli("info " + tmp.path().string()), 4, "is a folder");
  { std::ofstream(tmp.file("empty.tif")); }
  expect_clean_error(run_cli("info " + tmp.file("empty.tif")), 5, "empty file");
  { std::ofstream(tmp.file("text.tif")) << "hello\n"; }
  expect_clean_error(run_cli("info " + tmp.file("text.tif")), 5, "not a raster");
  test::write_test_geotiff(tmp.file("full.tif"), test::make_texture(300, 300));
  {
    std::ifstream in(tmp.file("full.tif"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(tmp.file("truncated.tif"), std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  const auto r = run_cli("cog " + tmp.file("truncated.tif") + " -o " + tmp.file("t.tif"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("truncated.tif"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("t.tif")));
  expect_clean_error(run_cli("stats " + tmp.file("full.tif") + " --band 4"), 3, "--band 4 is out of range");
  expect_clean_error(run_cli("cog " + tmp.file("full.tif") + " -o " + tmp.file("nowhere/out.tif")), 4,
                     "does not exist");
  expect_clean_error(run_cli("cog " + tmp.file("full.tif")), 3, "--output is required");
}

TEST(Cli, CogAndStatsStreamWithinTheRamBudget) {
  TempDir tmp;
  const auto texture = test::make_texture(700, 500);
  test::write_test_geotiff(tmp.file("in.tif"), texture);
  auto r = run_cli("--ram 16 cog " + tmp.file("in.tif") + " -o " + tmp.file("out.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote"), std::string::npos);
  r = run_cli("--ram 16 stats --json " + tmp.file("out.tif"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  double lo = 1e30, hi = -1e30;
  for (float v : texture.values()) lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
  EXPECT_NEAR(j["min"].get<double>(), lo, 1e-3);
  EXPECT_NEAR(j["max"].get<double>(), hi, 1e-3);
  EXPECT_DOUBLE_EQ(j["valid_fraction"].get<double>(), 1.0);
}

TEST(Cli, InfoOnRealLandsat) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  const auto r = run_cli("info --json " + (dir / "LC80630182016200LGN00_B8_yahtse.TIF").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["width"], 1698);
  EXPECT_EQ(j["height"], 1087);
  EXPECT_EQ(j["epsg"], 32607);
}

}  // namespace
}  // namespace deforma
