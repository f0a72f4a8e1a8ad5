// egms fit and egms reference split into work units (--unit-points, the local executor): the same product,
// row for row, as one pass; parts complete from an earlier run reused; ranges of the CSV covering every
// point once. The same
// on a Slurm cluster: tests/pipeline/slurm_test.cpp.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/command_line.hpp"
#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {
namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

nlohmann::json summary_of(const deforma::test::CliResult& r) {
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

TEST(EgmsUnits, RangesOfTheCsvCoverEveryPointOnce) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  const std::string zip = (dir / test::kDescending).string();
  const auto whole = test::load(zip);
  auto reader = ProductReader::open(zip);
  const std::uint64_t total = reader.total_bytes();
  // Ranges cutting lines anywhere (a prime length), each read by a reader of its own.
  std::vector<std::string> pids;
  const std::uint64_t length = 1000003;
  for (std::uint64_t first = 0; first < total; first += length) {
    auto part = ProductReader::open(zip);
    part.restrict_to(first, first + length);
    PointChunk chunk;
    while (part.read(chunk, 1000)) pids.insert(pids.end(), chunk.pid.begin(), chunk.pid.end());
  }
  EXPECT_GT(total / length, 10u);
  ASSERT_EQ(pids.size(), whole.points.pid.size());
  EXPECT_EQ(pids, whole.points.pid);
}

TEST(EgmsUnits, SplitFitWritesTheSingleRunsProductAndResumesFinishedParts) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  deforma::test::TempDir tmp;
  const std::string zip = shell_quote((dir / test::kDescending).string());
  const fs::path single = tmp.file("single.csv"), split = tmp.file("split.csv");
  auto r =
      deforma::test::run_cli("-q --summary-json egms fit " + zip + " -o " + shell_quote(single.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto one = summary_of(r);
  const std::string command =
      "-q --summary-json egms fit " + zip + " -o " + shell_quote(split.string()) + " --unit-points 997";
  r = deforma::test::run_cli(command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto parts = summary_of(r);
  const std::string expected = slurp(single);
  ASSERT_GT(expected.size(), 1000000u);
  EXPECT_TRUE(slurp(split) == expected) << "the assembled product differs from the single run's";
  EXPECT_EQ(parts["counts"], one["counts"]);
  EXPECT_EQ(parts["details"]["comparison"], one["details"]["comparison"]);
  const int units = parts["details"]["units"]["units"].get<int>();
  EXPECT_GE(units, 10);
  EXPECT_EQ(parts["details"]["units"]["computed"], units);
  EXPECT_EQ(parts["details"]["units"]["executor"], "local");

  // A rerun reuses every part; a part lost (its record and rows) is the only one redone.
  const fs::path work = tmp.file("split.csv.units");
  fs::remove(work / "parts" / "part_000003.json");
  fs::remove(work / "parts" / "part_000003.rows.csv");
  r = deforma::test::run_cli(command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto again = summary_of(r);
  EXPECT_EQ(again["details"]["units"]["computed"], 1);
  EXPECT_EQ(again["details"]["units"]["reused"], units - 1);
  EXPECT_TRUE(slurp(split) == expected);

  // Another model parameter is another key for every part.
  r = deforma::test::run_cli(command + " --min-dates 12");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(summary_of(r)["details"]["units"]["computed"], units);
}

// The reference series is the global step, computed once by the submitting process and given to every
// unit: the parts re-referenced apart make the single run's product.
TEST(EgmsUnits, SplitReferenceWritesTheSingleRunsProduct) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  deforma::test::TempDir tmp;
  const std::string zip = shell_quote((dir / test::kDescending).string());
  const fs::path single = tmp.file("single.csv"), split = tmp.file("split.csv");
  // The automatic reference: a pass searching the stable area, then the reference series.
  auto r = deforma::test::run_cli("-q --summary-json egms reference " + zip + " -o " +
                                  shell_quote(single.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto one = summary_of(r);
  r = deforma::test::run_cli("-q --summary-json egms reference " + zip + " -o " +
                             shell_quote(split.string()) + " --unit-points 2500");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto parts = summary_of(r);
  const std::string expected = slurp(single);
  ASSERT_GT(expected.size(), 1000000u);
  EXPECT_TRUE(slurp(split) == expected) << "the assembled product differs from the single run's";
  EXPECT_EQ(parts["counts"], one["counts"]);
  EXPECT_EQ(parts["details"]["reference"], one["details"]["reference"]);
  EXPECT_GE(parts["details"]["units"]["units"].get<int>(), 4);
  // The same Basic-level metadata beside both.
  EXPECT_NE(slurp(tmp.file("split.xml")).find("<product_level>L2a</product_level>"), std::string::npos);
}

TEST(EgmsUnits, SplitFitRefusesWhatItCannotAssemble) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  deforma::test::TempDir tmp;
  const std::string zip = shell_quote((dir / test::kDescending).string());
  auto r = deforma::test::run_cli("egms fit " + zip + " --unit-points 5000 --gpkg " +
                                  shell_quote(tmp.file("x.gpkg")) + " -o " + shell_quote(tmp.file("x.csv")));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("gpkg"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("x.csv")));
  r = deforma::test::run_cli("egms fit " + zip + " --unit-points 5000");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("output"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace deforma::egms
