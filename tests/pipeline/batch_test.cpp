#include "deforma/pipeline/batch.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/filter/filter.hpp"
#include "deforma/io/cog_writer.hpp"
#include "test_support.hpp"

namespace deforma::pipeline {
namespace {
namespace fs = std::filesystem;

using test::CancelAfter;

// Per-pair inputs of the filter stage: small synthetic correlation results with an outlier each.
std::vector<timeseries::Pair> make_inputs(const test::TempDir& tmp, int count) {
  std::vector<timeseries::Pair> pairs;
  for (int i = 0; i < count; ++i) {
    GridF dx(24, 20, 0.5f * i), dy(24, 20, -0.25f), flag(24, 20, 0.f);
    dx(5 + i, 7) = 30.f;
    const std::string path = tmp.file(fmt::format("in_{}.tif", i));
    io::write_cog(path, {&dx, &dy, &flag}, {{"dx_px", "px"}, {"dy_px", "px"}, {"flag", ""}},
                  io::GeoTransform{}, "", {});
    timeseries::Pair p;
    p.id = fmt::format("p{}", i);
    p.ref_date = io::Date::from_ymd(2020, 1, 1 + i);
    p.sec_date = io::Date::from_ymd(2020, 1, 5 + i);
    p.ref_path = path;
    pairs.push_back(p);
  }
  return pairs;
}

BatchOptions filter_stage(const std::string& out_dir) {
  BatchOptions o;
  o.stage = "filter";
  o.output_dir = out_dir;
  o.parameters = {{"median_threshold", 2.0}};
  o.ram_budget_mb = 64;
  o.per_pair_ram_mb = 16;
  o.threads = 2;
  o.inputs_of = [](const timeseries::Pair& p) { return std::pair<std::string, std::string>{p.ref_path, ""}; };
  return o;
}

PairWorker filter_worker(std::atomic<int>& calls) {
  return [&calls](const PairTask& task) {
    ++calls;
    filter::FilterRun run;
    run.input = task.input_a;
    run.output = task.output;
    run.ram_budget_mb = task.ram_budget_mb;
    run.progress = task.progress;
    return filter::filter_result(run);
  };
}

TEST(Batch, CancelledRunResumesWithoutRedoingCompletePairs) {
  test::TempDir tmp;
  const auto pairs = make_inputs(tmp, 8);
  const auto options = filter_stage(tmp.file("out"));
  std::atomic<int> calls{0};
  CancelAfter cancel(3);
  EXPECT_THROW(run_batch(pairs, options, filter_worker(calls), &cancel), Cancelled);
  const int first_calls = calls.load();
  EXPECT_GE(first_calls, 3);
  EXPECT_LT(first_calls, 8);
  // Only finished results exist under their final names; no temporary file is left behind.
  int finished = 0;
  for (const auto& entry : fs::directory_iterator(tmp.file("out"))) {
    const std::string name = entry.path().filename().string();
    EXPECT_NE(name.front(), '.') << name;
    if (entry.path().extension() == ".tif") ++finished;
  }
  // A pair in flight when the cancellation came may have been started without finishing.
  EXPECT_LE(finished, first_calls);
  EXPECT_GE(finished, 3);

  calls = 0;
  const BatchResult resumed = run_batch(pairs, options, filter_worker(calls));
  EXPECT_EQ(resumed.reused, finished);
  EXPECT_EQ(resumed.computed, 8 - finished);
  EXPECT_EQ(calls.load(), 8 - finished);
  ASSERT_EQ(resumed.pairs.size(), 8u);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(resumed.pairs[i].id, pairs[i].id);
    EXPECT_TRUE(fs::exists(resumed.pairs[i].result_path));
    const auto flags = io::Raster::open(resumed.pairs[i].result_path).read_all(3).values;
    EXPECT_EQ(flags(5 + static_cast<int>(i), 7), 7.f);  // the outlier was filtered in every pair
  }

  // A third run does nothing; a damaged result, a changed input or other parameters are redone.
  calls = 0;
  EXPECT_EQ(run_batch(pairs, options, filter_worker(calls)).reused, 8);
  EXPECT_EQ(calls.load(), 0);
  { std::ofstream(resumed.pairs[2].result_path, std::ios::app) << "garbage"; }
  fs::last_write_time(pairs[5].ref_path, fs::last_write_time(pairs[5].ref_path) + std::chrono::seconds(5));
  calls = 0;
  const auto repaired = run_batch(pairs, options, filter_worker(calls));
  EXPECT_EQ(repaired.computed, 2);
  EXPECT_EQ(calls.load(), 2);
  auto changed = options;
  changed.parameters["median_threshold"] = 3.0;
  calls = 0;
  EXPECT_EQ(run_batch(pairs, changed, filter_worker(calls)).computed, 8);
}

TEST(Batch, ResultWrittenButNotRecordedIsRedone) {
  // A kill between the rename of the result and its record: the file is there, the record is not.
  test::TempDir tmp;
  const auto pairs = make_inputs(tmp, 2);
  const auto options = filter_stage(tmp.file("out"));
  fs::create_directories(tmp.file("out"));
  GridF junk(4, 4, 0.f);
  io::write_cog(pair_result_path(options.output_dir, pairs[0]), {&junk}, {{"dx_px", "px"}},
                io::GeoTransform{}, "", {});
  std::atomic<int> calls{0};
  const auto r = run_batch(pairs, options, filter_worker(calls));
  EXPECT_EQ(r.computed, 2);
  EXPECT_EQ(io::describe(r.pairs[0].result_path).width, 24);
}

TEST(Batch, FailingPairStopsOrIsSkippedAndNamed) {
  test::TempDir tmp;
  auto pairs = make_inputs(tmp, 4);
  pairs[1].ref_path = tmp.file("missing.tif");
  auto options = filter_stage(tmp.file("out"));
  std::atomic<int> calls{0};
  try {
    run_batch(pairs, options, filter_worker(calls));
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("pair p1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing.tif"), std::string::npos) << e.what();
  }
  options.skip_bad = true;
  const auto r = run_batch(pairs, options, filter_worker(calls));
  EXPECT_EQ(r.pairs.size(), 3u);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.failed[0].rfind("p1:", 0), 0u);
  EXPECT_EQ(r.summary.counts.at("failed"), 1);
}

TEST(Batch, ParametersHashIsCanonical) {
  EXPECT_EQ(parameters_hash({{"a", 1}, {"b", 2}}), parameters_hash({{"b", 2}, {"a", 1}}));
  EXPECT_NE(parameters_hash({{"a", 1}}), parameters_hash({{"a", 2}}));
  EXPECT_EQ(parameters_hash({{"a", 1}}).size(), 64u);  // SHA-256
}

}  // namespace
}  // namespace deforma::pipeline
