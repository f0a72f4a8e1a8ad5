// `deforma pipeline --executor slurm` on a real Slurm cluster (scripts/slurm-local.sh, which `./run test`
// starts): the same products as a local run, retries of failed tasks, a unit failing every time named
// with its log, resumption after a failure, and cancellation; `egms fit` in parts of points and `survey`
// (its tracks' pairs and blocks), the same products as a local run. Skipped, saying why, without a cluster.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/command_line.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/pipeline/slurm.hpp"
#include "pipeline/survey_series.hpp"
#include "test_support.hpp"

extern char** environ;

namespace deforma::pipeline {
namespace {
namespace fs = std::filesystem;

// Why the Slurm tests cannot run here; empty when a cluster answers.
std::string slurm_unavailable() {
  const char* conf = std::getenv("SLURM_CONF");
  if ((!conf || !*conf) && !fs::exists("/etc/slurm/slurm.conf")) {
    return "no Slurm cluster configured (SLURM_CONF unset, no /etc/slurm/slurm.conf): start one with "
           "scripts/slurm-local.sh start and export the SLURM_CONF it prints (./run test does both)";
  }
  std::string out;
  try {
    if (run_command({"sinfo", "--noheader", "--format=%t"}, out) != 0) return "sinfo fails: " + out;
  } catch (const std::exception& e) {
    return e.what();
  }
  if (out.find("idle") == std::string::npos && out.find("mix") == std::string::npos &&
      out.find("alloc") == std::string::npos) {
    return "the Slurm cluster has no usable node (sinfo: " + out + ")";
  }
  return "";
}

// Sets an environment variable for the CLI processes a test starts (and the Slurm tasks they submit).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

std::string images_args(const fs::path& dir, std::initializer_list<const char*> dates) {
  std::string args;
  for (const char* d : dates) {
    args += ' ';
    args += shell_quote((dir / (std::string(d) + ".jpg")).string());
  }
  return args;
}

std::string common_args(const fs::path& dir) {
  return " --step 48 --search 8 --max-step 2 --no-quicklooks --auto-stable --max-velocity 300 --exclude " +
         shell_quote((dir / "mask.jpg").string());
}

nlohmann::json pipeline_json(const fs::path& out) {
  std::ifstream in(out / "pipeline.json");
  return nlohmann::json::parse(in);
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every band of two rasters equal, value for value (NaN equal to NaN).
void expect_same_raster(const fs::path& a, const fs::path& b) {
  const auto ra = io::Raster::open(a.string()), rb = io::Raster::open(b.string());
  ASSERT_EQ(ra.info().band_count(), rb.info().band_count()) << a;
  ASSERT_EQ(ra.info().width, rb.info().width) << a;
  ASSERT_EQ(ra.info().height, rb.info().height) << a;
  for (int band = 1; band <= ra.info().band_count(); ++band) {
    const auto va = ra.read_all(band), vb = rb.read_all(band);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < va.values.size(); ++i) {
      const float x = va.values.data()[i], y = vb.values.data()[i];
      if (!(x == y || (std::isnan(x) && std::isnan(y)))) ++differing;
      if (va.valid.data()[i] != vb.valid.data()[i]) ++differing;
    }
    EXPECT_EQ(differing, 0u) << a.filename() << " band " << band;
  }
}

const char* kPollEnv = "DEFORMA_SLURM_POLL_SECONDS";

// The cluster tests: skipped, saying why, without a cluster; the cluster followed closely; a temporary
// output folder; and the run most of them make, the pipeline on three Perito Moreno images.
class SlurmPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = slurm_unavailable(); !why.empty()) GTEST_SKIP() << why;
  }

  // `deforma -q pipeline` on the first three images of `dir` with the common options and --executor slurm,
  // into out(), then `extra`.
  test::CliResult run_three_images(const fs::path& dir, const std::string& extra = "") const {
    return test::run_cli("-q pipeline" + images_args(dir, {"20200101", "20200106", "20200108"}) +
                         common_args(dir) + " -o " + shell_quote(out().string()) + " --executor slurm" + extra);
  }
  fs::path out() const { return tmp_.path() / "out"; }
  // The stages of the last run's summary.
  nlohmann::json stages() const { return pipeline_json(out())["details"]["stages"]; }
  // The three pairs of run_three_images correlated and filtered.
  static void expect_three_pairs_done(const nlohmann::json& stages) {
    EXPECT_EQ(stages["correlate"]["counts"]["computed"], 3);
    EXPECT_EQ(stages["filter"]["counts"]["computed"], 3);
  }

  ScopedEnv poll_{kPollEnv, "0.2"};
  test::TempDir tmp_;
};

TEST_F(SlurmPipeline, PeritoMorenoGivesTheLocalProductsValueForValueAndAnUnchangedRerunSubmitsNothing) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  const std::string args =
      images_args(dir, {"20200101", "20200106", "20200108", "20200116"}) + common_args(dir);
  const fs::path local = tmp_.path() / "local", slurm = tmp_.path() / "slurm";
  auto r = test::run_cli("-q pipeline" + args + " -o " + shell_quote(local.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // On Slurm the inversion in blocks of 5 node rows, one array task each; locally in one block.
  const std::string blocks = " --invert-block-rows 5";
  r = test::run_cli("-q pipeline" + args + blocks + " -o " + shell_quote(slurm.string()) +
                    " --executor slurm");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = pipeline_json(slurm);
  const auto& stages = summary["details"]["stages"];
  EXPECT_EQ(stages["correlate"]["details"]["executor"], "slurm");
  EXPECT_EQ(stages["correlate"]["counts"]["computed"], 5);
  EXPECT_EQ(stages["correlate"]["details"]["slurm_jobs"].size(), 1u);  // one array for the stage
  EXPECT_EQ(stages["filter"]["details"]["slurm_jobs"].size(), 1u);
  // The inversion's blocks: one array too, after the filter array.
  EXPECT_EQ(stages["invert"]["details"]["blocks"]["executor"], "slurm");
  EXPECT_EQ(stages["invert"]["details"]["blocks"]["slurm_jobs"].size(), 1u);
  EXPECT_GT(stages["invert"]["details"]["blocks"]["computed"].get<int>(), 2);
  for (const char* product :
       {"velocity.tif", "timeseries_dx.tif", "timeseries_dy.tif", "timeseries_dx_sigma.tif"}) {
    expect_same_raster(local / "products" / product, slurm / "products" / product);
  }
  for (const auto& entry : fs::directory_iterator(local / "filtered")) {
    if (entry.path().extension() == ".tif")
      expect_same_raster(entry.path(), slurm / "filtered" / entry.path().filename());
  }
  EXPECT_EQ(slurp(local / "pairs.csv"), slurp(slurm / "pairs.csv"));
  EXPECT_TRUE(fs::exists(slurm / "correlation" / "logs" / "slurm-jobs.txt"));

  r = test::run_cli("pipeline" + args + blocks + " -o " + shell_quote(slurm.string()) + " --executor slurm");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing submitted"), std::string::npos) << r.err;
  const auto again = pipeline_json(slurm)["details"]["stages"];
  EXPECT_EQ(again["correlate"]["details"]["slurm_jobs"].size(), 0u);
  EXPECT_EQ(again["correlate"]["counts"]["computed"], 0);
  EXPECT_EQ(again["filter"]["counts"]["computed"], 0);
  EXPECT_EQ(again["invert"]["details"]["blocks"]["computed"], 0);

  // The same records serve both executors: the local run's folder finished on Slurm submits nothing.
  r = test::run_cli("pipeline" + args + " -o " + shell_quote(local.string()) + " --executor slurm");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing submitted"), std::string::npos) << r.err;
}

TEST_F(SlurmPipeline, TaskFailingOnceIsRetriedAndTheRunCompletes) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  ScopedEnv fail("DEFORMA_TEST_FAIL_UNIT", "20200101_20200106:once");
  const fs::path out = this->out();
  const auto r = run_three_images(dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stages = this->stages();
  EXPECT_EQ(stages["correlate"]["counts"]["retried"], 1);
  expect_three_pairs_done(stages);
  EXPECT_EQ(stages["correlate"]["details"]["slurm_jobs"].size(), 2u);  // the array, then the retry
  // The failed attempt's log is kept.
  bool found = false;
  for (const auto& entry : fs::directory_iterator(out / "correlation" / "logs")) {
    if (slurp(entry.path()).find("failure injected") != std::string::npos) found = true;
  }
  EXPECT_TRUE(found);
}

// Starts the CLI with `args` without waiting for it; returns its pid.
pid_t spawn_cli(std::vector<std::string> args) {
  args.insert(args.begin(), DEFORMA_CLI_PATH);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

TEST_F(SlurmPipeline, TaskScancelledMidwayIsRetriedAndTheRunCompletes) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  const fs::path out = this->out();
  std::vector<std::string> args = {"-q", "pipeline"};
  for (const char* d : {"20200101", "20200106", "20200108"})
    args.push_back((dir / (std::string(d) + ".jpg")).string());
  // A node every 16 px: seconds per pair, time enough to kill a running task.
  for (const char* a : {"--step", "16", "--search", "8", "--no-quicklooks", "--executor", "slurm",
                        "--max-parallel", "1", "-o"}) {
    args.push_back(a);
  }
  args.push_back(out.string());
  const pid_t pid = spawn_cli(args);
  ASSERT_GT(pid, 0);
  const fs::path jobs = out / "correlation" / "logs" / "slurm-jobs.txt";
  std::string running;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (running.empty() && std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(jobs);
    std::string id;
    if (in >> id) {
      std::string output;
      run_command({"squeue", "--noheader", "--array", "--jobs=" + id, "--states=RUNNING", "--format=%i"},
                  output);
      running = output.substr(0, output.find('\n'));
    }
    if (running.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(running.empty()) << "no task of the correlation array was seen running";
  std::string output;
  EXPECT_EQ(run_command({"scancel", running}, output), 0) << output;  // one array index, killed mid-way
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  const auto stages = this->stages();
  EXPECT_GE(stages["correlate"]["counts"]["retried"].get<int>(), 1);
  expect_three_pairs_done(stages);
}

TEST_F(SlurmPipeline, UnitFailingEveryTimeFailsTheRunNamedWithItsLogAndARerunRedoesOnlyIt) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  {
    ScopedEnv fail("DEFORMA_TEST_FAIL_UNIT", "20200106_20200108");
    const auto r = run_three_images(dir, " --retries 1");
    EXPECT_EQ(r.exit_code, 1) << r.err;  // the injected failure is an internal error
    EXPECT_NE(r.err.find("correlate unit 20200106_20200108 failed after 2 attempt(s)"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("last log"), std::string::npos) << r.err;
    // The message, then the log's own last lines quoting it.
    const auto first = r.err.find("failure injected");
    ASSERT_NE(first, std::string::npos) << r.err;
    EXPECT_NE(r.err.find("failure injected", first + 1), std::string::npos) << r.err;
  }
  const auto r = run_three_images(dir, " --retries 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stages = this->stages();
  EXPECT_EQ(stages["correlate"]["counts"]["computed"], 1);
  EXPECT_EQ(stages["correlate"]["counts"]["reused"], 2);
}

TEST_F(SlurmPipeline, CancelledRunScancelsItsArrays) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  const fs::path out = this->out();
  std::vector<std::string> args = {DEFORMA_CLI_PATH, "-q", "pipeline"};
  for (const char* d : {"20200101", "20200106", "20200108", "20200116", "20200118", "20200121"}) {
    args.push_back((dir / (std::string(d) + ".jpg")).string());
  }
  for (const char* a : {"--step", "32", "--search", "8", "--no-quicklooks", "--executor", "slurm",
                        "--max-parallel", "1", "-o"}) {
    args.push_back(a);
  }
  args.push_back(out.string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  // Cancel once the arrays are submitted and a first unit is done.
  const fs::path jobs = out / "correlation" / "logs" / "slurm-jobs.txt";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto first_done = [&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(out / "correlation" / "units", ec)) {
      if (e.path().extension() == ".json") return true;
    }
    return false;
  };
  while (!(fs::exists(jobs) && first_done()) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(fs::exists(jobs));
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);  // cancelled
  std::string ids;
  {
    std::ifstream in(jobs);
    std::string id, array;
    while (in >> id >> array) {
      if (!ids.empty()) ids += ',';
      ids += id;
    }
  }
  {
    std::ifstream in(out / "filtered" / "logs" / "slurm-jobs.txt");
    std::string id, array;
    while (in >> id >> array) {
      ids += ',';
      ids += id;
    }
  }
  // No task of the run's arrays is left pending or running (scancel may take a moment to reap them).
  std::string queued = "?";
  for (int i = 0; i < 50 && !queued.empty(); ++i) {
    std::string output;
    run_command({"squeue", "--noheader", "--array", "--jobs=" + ids, "--format=%i %T"}, output);
    queued = output;
    if (!queued.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(queued, "") << "jobs " << ids;
}

TEST_F(SlurmPipeline, StageBeyondMaxArraySizeIsSplitIntoSeveralArrays) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  ScopedEnv small("DEFORMA_SLURM_MAX_ARRAY_SIZE", "2");
  const auto r = run_three_images(dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto stages = this->stages();
  EXPECT_EQ(stages["correlate"]["details"]["slurm_jobs"].size(), 2u);  // units 0-1, then unit 2
  expect_three_pairs_done(stages);
}

// --max-parallel bounds the whole run: with one task at a time, a stage split into two arrays (the second
// waiting for the first) and a task failing once (its resubmission waiting for room) never have two tasks
// running together, where the 2-CPU cluster would otherwise run two. The inversion runs as a third array.
TEST_F(SlurmPipeline, MaxParallelBoundsTheWholeRun) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  ScopedEnv small("DEFORMA_SLURM_MAX_ARRAY_SIZE", "2");
  ScopedEnv fail("DEFORMA_TEST_FAIL_UNIT", "20200101_20200106:once");
  const fs::path out = this->out();
  std::atomic<bool> done{false};
  std::atomic<int> most_running{0}, samples{0};
  std::thread watch([&] {
    while (!done) {
      std::string listing;
      if (run_command({"squeue", "--noheader", "--array", "--states=RUNNING", "--format=%i"}, listing) == 0) {
        int running = 0;
        for (char c : listing) running += c == '\n';
        most_running = std::max(most_running.load(), running);
        ++samples;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const auto r = run_three_images(dir, " --max-parallel 1 --invert-block-rows 4");
  done = true;
  watch.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(samples.load(), 5);
  EXPECT_EQ(most_running.load(), 1);
  const auto stages = this->stages();
  EXPECT_EQ(stages["correlate"]["counts"]["retried"], 1);
  EXPECT_EQ(stages["invert"]["details"]["blocks"]["executor"], "slurm");
  const int blocks = stages["invert"]["details"]["blocks"]["blocks"].get<int>();
  EXPECT_GT(blocks, 2);
  EXPECT_EQ(stages["invert"]["details"]["blocks"]["computed"], blocks);
  // Split as the other stages are (MaxArraySize 2 here): one array per two blocks.
  EXPECT_EQ(stages["invert"]["details"]["blocks"]["slurm_jobs"].size(),
            static_cast<std::size_t>(blocks + 1) / 2);
  const std::string jobs = slurp(out / "correlation" / "logs" / "slurm-jobs.txt");
  EXPECT_NE(jobs.find("0-1%1 +0"), std::string::npos) << jobs;
  EXPECT_NE(jobs.find("0%1 +2"), std::string::npos) << jobs;
}

// egms fit cut into parts of points, one array task each (docs/cluster.md): the product of a single local
// pass, row for row, and the same report; an unchanged rerun submits nothing.
TEST_F(SlurmPipeline, EgmsFitInPartsGivesTheLocalProductRowForRow) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  const std::string zip = shell_quote((dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string());
  const fs::path local = tmp_.path() / "local.csv", slurm = tmp_.path() / "slurm.csv";
  auto r = test::run_cli("-q --summary-json egms fit " + zip + " -o " + shell_quote(local.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto one = nlohmann::json::parse(r.out);
  const std::string command = "-q --summary-json egms fit " + zip + " -o " + shell_quote(slurm.string()) +
                              " --executor slurm --unit-points 3000";
  r = test::run_cli(command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto parts = nlohmann::json::parse(r.out);
  const auto& units = parts["details"]["units"];
  EXPECT_EQ(units["executor"], "slurm");
  EXPECT_GE(units["units"].get<int>(), 3);
  EXPECT_EQ(units["computed"], units["units"]);
  EXPECT_EQ(units["slurm_jobs"].size(), 1u);  // one array for the parts
  EXPECT_EQ(parts["counts"], one["counts"]);
  EXPECT_EQ(parts["details"]["comparison"], one["details"]["comparison"]);
  const std::string expected = slurp(local);
  ASSERT_GT(expected.size(), 1000000u);
  EXPECT_TRUE(slurp(slurm) == expected) << "the product assembled from the Slurm tasks differs";

  r = test::run_cli(command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto again = nlohmann::json::parse(r.out)["details"]["units"];
  EXPECT_EQ(again["slurm_jobs"].size(), 0u);
  EXPECT_EQ(again["computed"], 0);
  EXPECT_TRUE(slurp(slurm) == expected);
}

// `deforma survey --executor slurm` on the two-tile, two-orbit series of the survey tests (cut from the
// Yahtse Landsat texture): each track's pairs and inversion blocks are array tasks, and the mosaic, the
// tracks' products and the scene table equal those of a local run value for value; an unchanged rerun
// submits nothing.
TEST_F(SlurmPipeline, SurveyGivesTheLocalMosaicValueForValue) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  const auto series = test::write_survey_series(tmp_.path().string(), dir.string());
  const fs::path local = tmp_.path() / "local", slurm = tmp_.path() / "slurm";
  const std::string args = "-q --summary-json survey " + shell_quote(series.manifest) + " --aoi=" + series.aoi +
                           " --max-cloud 20 --search 8 --max-step 3 --no-quicklooks";
  auto r = test::run_cli(args + " -o " + shell_quote(local.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string on_slurm = args + " -o " + shell_quote(slurm.string()) + " --executor slurm";
  r = test::run_cli(on_slurm);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["details"]["executor"], "slurm");
  EXPECT_EQ(summary["counts"]["tracks"], 2);
  const auto& tracks = summary["details"]["tracks"];
  ASSERT_EQ(tracks.size(), 2u);
  for (const auto& [track, s] : tracks.items()) {
    SCOPED_TRACE(track);
    const auto& stages = s["details"]["stages"];
    EXPECT_EQ(stages["correlate"]["details"]["executor"], "slurm");
    EXPECT_EQ(stages["correlate"]["counts"]["computed"], 3);
    EXPECT_EQ(stages["correlate"]["details"]["slurm_jobs"].size(), 1u);  // one array per stage and track
    EXPECT_EQ(stages["invert"]["details"]["blocks"]["executor"], "slurm");
  }
  expect_same_raster(local / "velocity.tif", slurm / "velocity.tif");
  for (const char* track : {"R001_T07AAA", "R002_T07BBB"}) {
    expect_same_raster(local / "tracks" / track / "run" / "products" / "velocity.tif",
                       slurm / "tracks" / track / "run" / "products" / "velocity.tif");
  }
  // The scene tables name the same scenes with the same cloud cover and decisions.
  EXPECT_EQ(slurp(local / "scenes.csv"), slurp(slurm / "scenes.csv"));

  r = test::run_cli(on_slurm);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& [track, s] : nlohmann::json::parse(r.out)["details"]["tracks"].items()) {
    SCOPED_TRACE(track);
    EXPECT_EQ(s["details"]["stages"]["correlate"]["details"]["slurm_jobs"].size(), 0u);
    EXPECT_EQ(s["details"]["stages"]["correlate"]["counts"]["computed"], 0);
  }
  expect_same_raster(local / "velocity.tif", slurm / "velocity.tif");
}

TEST(SlurmArray, ThrottleIsSharedByTheArraysOfAStage) {
  auto sum = [](const std::vector<ArrayThrottle>& shares) {
    int total = 0;
    for (const auto& s : shares) total += s.throttle;
    return total;
  };
  EXPECT_EQ(throttle_shares(0, 3)[2].throttle, 0);  // no limit
  const auto one = throttle_shares(7, 1);
  EXPECT_EQ(one[0].throttle, 7);
  const auto three = throttle_shares(8, 3);  // 3 + 3 + 2
  EXPECT_EQ(sum(three), 8);
  EXPECT_EQ(three[0].throttle, 3);
  EXPECT_EQ(three[2].throttle, 2);
  EXPECT_EQ(three[2].after, -1);
  const auto many = throttle_shares(2, 5);  // one task per array, two arrays at a time
  EXPECT_EQ(sum(many), 5);
  EXPECT_EQ(many[1].after, -1);
  EXPECT_EQ(many[2].after, 0);
  EXPECT_EQ(many[4].after, 2);
}

TEST(SlurmArray, RangesAreCompact) {
  EXPECT_EQ(array_ranges({0, 1, 2, 3, 7, 9, 10, 11, 12}), "0-3,7,9-12");
  EXPECT_EQ(array_ranges({5}), "5");
  EXPECT_EQ(array_ranges({}), "");
}

}  // namespace
}  // namespace deforma::pipeline
