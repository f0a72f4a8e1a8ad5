// A pipeline's output folder hard-linked into another folder (what the service's `update_of` does) keeps
// the keys of both batch stages: the filter units read the correlation results inside the folder, and are
// keyed by their path in it rather than by an absolute path that changed.
#include <filesystem>

#include <gtest/gtest.h>

#include "deforma/pipeline/pipeline.hpp"
#include "test_support.hpp"

namespace deforma::pipeline {
namespace {

namespace fs = std::filesystem;

std::int64_t stage_count(const Summary& s, const std::string& stage, const std::string& what) {
  return s.details["stages"][stage]["counts"][what].get<std::int64_t>();
}

TEST(PipelineUnitsRelocated, LinkedRunFolderReusesCorrelationAndFilterUnits) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  test::TempDir tmp;
  PipelineOptions o;
  for (const char* date : {"20200101", "20200106", "20200108"})
    o.inputs.push_back((dir / (std::string(date) + ".jpg")).string());
  o.output_dir = tmp.file("first");
  o.correlation.step_px = 64;
  o.correlation.match.search_px = 8;
  o.max_velocity_per_yr = 300;
  o.quicklooks = false;
  RunContext context;
  const Summary first = run_pipeline(o, context);
  const auto pairs = stage_count(first, "correlate", "pairs");
  ASSERT_EQ(pairs, 3);
  ASSERT_EQ(stage_count(first, "filter", "computed"), pairs);

  fs::copy(tmp.path() / "first", tmp.path() / "second",
           fs::copy_options::recursive | fs::copy_options::create_hard_links);
  o.output_dir = tmp.file("second");
  const Summary second = run_pipeline(o, context);
  EXPECT_EQ(stage_count(second, "correlate", "computed"), 0);
  EXPECT_EQ(stage_count(second, "correlate", "reused"), pairs);
  EXPECT_EQ(stage_count(second, "filter", "computed"), 0);
  EXPECT_EQ(stage_count(second, "filter", "reused"), pairs);
  EXPECT_EQ(second.counts.at("pairs_inverted"), pairs);

  // A correlation result replaced in the new folder still redoes its filter unit (its size or date
  // changed), and only that one.
  const fs::path victim = tmp.path() / "second" / "correlation" / "20200101_20200106.tif";
  fs::remove(victim);
  fs::remove(tmp.path() / "second" / "correlation" / "units" / "20200101_20200106.json");
  const Summary third = run_pipeline(o, context);
  EXPECT_EQ(stage_count(third, "correlate", "computed"), 1);
  EXPECT_EQ(stage_count(third, "filter", "computed"), 1);
  EXPECT_EQ(stage_count(third, "filter", "reused"), pairs - 1);
}

}  // namespace
}  // namespace deforma::pipeline
