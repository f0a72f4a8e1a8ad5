// Checks on input and output paths, and outputs committed together.
#include "deforma/io/files.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include "deforma/core/cancel.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/operation.hpp"
#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/staged_file.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

void write_text(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) { std::ofstream(tmp) << text; });
}

TEST(Files, NonRegularInputsAreRefusedWithoutOpening) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.file("fifo").c_str(), 0600), 0);
  EXPECT_THROW(check_input_path(tmp.file("fifo"), "--mask"), IoError);
  try {
    check_input_path(tmp.file("fifo"), "--mask");
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("--mask " + tmp.file("fifo") + ": is a FIFO"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(check_input_path(tmp.file("missing.tif")));
  EXPECT_NO_THROW(check_input_path(tmp.path().string()));
  EXPECT_NO_THROW(check_input_path("/vsizip/x.zip/a.csv"));
  // Readers go through the same check.
  EXPECT_THROW(Raster::open(tmp.file("fifo")), IoError);
}

TEST(Files, OutputTargetsMustBeRegularFiles) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo(tmp.file("fifo.tif").c_str(), 0600), 0);
  EXPECT_THROW(check_output_target(tmp.file("fifo.tif")), IoError);
  EXPECT_THROW(StagedFile{tmp.file("fifo.tif")}, IoError);
  EXPECT_THROW(write_text(tmp.file("fifo.tif"), "x"), IoError);
  struct stat st {};
  ASSERT_EQ(::lstat(tmp.file("fifo.tif").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  std::ofstream(tmp.file("file.txt")) << "old";
  EXPECT_NO_THROW(check_output_target(tmp.file("file.txt")));
  fs::create_symlink(tmp.file("file.txt"), tmp.file("link.txt"));
  EXPECT_THROW(check_output_target(tmp.file("link.txt")), IoError);
  EXPECT_NO_THROW(check_output_target(tmp.file("new.txt")));
}

TEST(Files, SameFileSeesThroughSpellingsAndLinks) {
  TempDir tmp;
  std::ofstream(tmp.file("a.txt")) << "a";
  fs::create_hard_link(tmp.file("a.txt"), tmp.file("b.txt"));
  fs::create_symlink(tmp.file("a.txt"), tmp.file("c.txt"));
  EXPECT_TRUE(same_file(tmp.file("a.txt"), tmp.path().string() + "/./a.txt"));
  EXPECT_TRUE(same_file(tmp.file("a.txt"), tmp.file("b.txt")));
  EXPECT_TRUE(same_file(tmp.file("a.txt"), tmp.file("c.txt")));
  EXPECT_FALSE(same_file(tmp.file("a.txt"), tmp.file("missing.txt")));
}

TEST(Files, CommitGroupRenamesAllOrNothing) {
  TempDir tmp;
  {
    OutputCommitGroup group({tmp.file("a.txt"), tmp.file("b.txt")});
    write_text(tmp.file("a.txt"), "a");
    write_text(tmp.file("c.txt"), "c");  // not in the group: in place at once
    EXPECT_FALSE(fs::exists(tmp.file("a.txt")));
    EXPECT_TRUE(fs::exists(tmp.file("c.txt")));
    // A later output fails: the group is left without commit().
  }
  EXPECT_FALSE(fs::exists(tmp.file("a.txt")));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator{}), 1);
  {
    OutputCommitGroup group({tmp.file("a.txt"), tmp.file("b.txt")});
    write_text(tmp.file("a.txt"), "a");
    write_text(tmp.file("b.txt"), "b");
    group.commit();
  }
  EXPECT_TRUE(fs::exists(tmp.file("a.txt")));
  EXPECT_TRUE(fs::exists(tmp.file("b.txt")));
}

TEST(Files, CommitGroupsOfConcurrentRunsAreIndependent) {
  TempDir tmp;
  OutputCommitGroup first({tmp.file("a.txt")});
  {
    OutputCommitGroup second({tmp.file("b.txt")});
    write_text(tmp.file("a.txt"), "a");
    write_text(tmp.file("b.txt"), "b");
    second.commit();
  }
  EXPECT_TRUE(fs::exists(tmp.file("b.txt")));
  EXPECT_FALSE(fs::exists(tmp.file("a.txt")));
  first.commit();
  EXPECT_TRUE(fs::exists(tmp.file("a.txt")));
}

TEST(Files, CommitGroupHoldsTheFilesOfAPrefix) {
  TempDir tmp;
  {
    OutputCommitGroup group({}, {tmp.file("run")});
    write_text(tmp.file("run_U.csv"), "u");
    write_text(tmp.file("run_U.xml"), "u");
    write_text(tmp.file("other_U.csv"), "o");
    EXPECT_FALSE(fs::exists(tmp.file("run_U.csv")));
    EXPECT_TRUE(fs::exists(tmp.file("other_U.csv")));
  }
  EXPECT_FALSE(fs::exists(tmp.file("run_U.csv")));
  EXPECT_FALSE(fs::exists(tmp.file("run_U.xml")));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator{}), 1);
}

TEST(Files, StaleTemporariesOfDeadProcessesOnly) {
  TempDir tmp;
  const std::string live = fmt::format(".v.staging-{}-0.tif", ::getpid());
  for (const std::string name :
       {".v.staging-2147480000-0.tif", ".v.partial-2147480000.tif", ".v.partial-2147480000-2.tif.aux.xml",
        ".w.staging-2147480000-0.tif", ".v.staging-2147480000-0.png", live.c_str()}) {
    std::ofstream(tmp.file(name)) << "x";
  }
  EXPECT_EQ(remove_stale_temporaries(tmp.file("v.tif")), 3);
  EXPECT_TRUE(fs::exists(tmp.file(".w.staging-2147480000-0.tif")));
  EXPECT_TRUE(fs::exists(tmp.file(".v.staging-2147480000-0.png")));
  EXPECT_TRUE(fs::exists(tmp.file(live)));
}

TEST(Files, OperationPathsAreCheckedByRole) {
  TempDir tmp;
  OperationDecl op;
  op.name = "demo";
  op.params = {ParamDecl::argument("input", ParamType::kPath, "in").as_input(),
               ParamDecl::option("output", ParamType::kPath, "out").as_output("image/tiff"),
               ParamDecl::option("plot", ParamType::kPath, "plot").as_output("image/png"),
               ParamDecl::option("folder", ParamType::kPath, "folder").as_output("inode/directory")};
  std::ofstream(tmp.file("in.tif")) << "x";
  auto values = [&](std::map<std::string, std::vector<std::string>> raw) {
    return ParamValues::parse(op.params, raw);
  };
  EXPECT_NO_THROW(
      check_operation_paths(op, values({{"input", {tmp.file("in.tif")}}, {"output", {tmp.file("o.tif")}}})));
  EXPECT_THROW(
      check_operation_paths(op, values({{"input", {tmp.file("in.tif")}}, {"output", {tmp.file("in.tif")}}})),
      InvalidArgument);
  EXPECT_THROW(check_operation_paths(op, values({{"input", {tmp.file("in.tif")}},
                                                 {"output", {tmp.file("o.tif")}},
                                                 {"plot", {tmp.file("o.tif")}}})),
               InvalidArgument);
  EXPECT_THROW(
      check_operation_paths(op, values({{"input", {tmp.file("in.tif")}}, {"plot", {tmp.file("no/p.png")}}})),
      IoError);
  EXPECT_NO_THROW(
      check_operation_paths(op, values({{"input", {tmp.file("in.tif")}}, {"folder", {tmp.file("x/y")}}})));
  EXPECT_THROW(
      check_operation_paths(op, values({{"input", {tmp.file("in.tif")}}, {"folder", {tmp.file("in.tif")}}})),
      IoError);
  const auto outputs = declared_file_outputs(op, values({{"input", {tmp.file("in.tif")}},
                                                         {"output", {tmp.file("o.tif")}},
                                                         {"folder", {tmp.file("f")}}}));
  EXPECT_EQ(outputs, std::vector<std::string>{tmp.file("o.tif")});
}

// Two runs in one process, side by side: each keeps its own thread limit, and stopping one leaves the
// other running to its end.
TEST(Files, RunsKeepTheirOwnRuntime) {
  reset_cancellation();
  OperationDecl op;
  op.name = "probe";
  op.params = {ParamDecl::option("wait", ParamType::kBool, "wait for a stop")};
  std::atomic<int> waiting{0};
  op.run = [&](const ParamValues& values, RunContext& context) {
    Summary summary;
    summary.details["concurrency"] = tbb::this_task_arena::max_concurrency();
    summary.details["threads"] = context.threads;
    if (values.get_bool("wait")) {
      ++waiting;
      Progress& progress = progress_or_null(context.progress);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (!progress.cancelled() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (progress.cancelled()) throw Cancelled("probe stopped");
    }
    return summary;
  };
  const auto waits = ParamValues::parse(op.params, {{"wait", {"true"}}});
  const auto plain = ParamValues::parse(op.params, {});

  RunContext stopped;
  stopped.threads = 1;
  stopped.stop = std::make_shared<std::atomic<bool>>(false);
  bool was_cancelled = false;
  std::thread first([&] {
    try {
      run_operation(op, waits, stopped);
    } catch (const Cancelled&) {
      was_cancelled = true;
    }
  });
  while (waiting.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  RunContext other;
  other.threads = 3;
  const auto summary = run_operation(op, plain, other);  // while the first one runs with 1 thread
  EXPECT_EQ(summary.details["concurrency"], 3);
  EXPECT_EQ(summary.details["threads"], 3);
  stopped.stop->store(true);
  first.join();
  EXPECT_TRUE(was_cancelled);
  EXPECT_FALSE(cancellation_requested());  // the stop was the first run's own

  RunContext single;
  single.threads = 1;
  EXPECT_EQ(run_operation(op, plain, single).details["concurrency"], 1);
  RunContext all;
  EXPECT_EQ(run_operation(op, plain, all).details["threads"], tbb::info::default_concurrency());
  RunContext negative;
  negative.threads = -1;
  EXPECT_THROW(run_operation(op, plain, negative), InvalidArgument);
}

// Two runs at once, each with its own logger: each sink gets its own run's messages only, at its own
// level, including those logged by the TBB worker threads of the run's parallel loops.
TEST(Files, RunsLogToTheirOwnLogger) {
  reset_cancellation();
  OperationDecl op;
  op.name = "probe";
  op.params = {ParamDecl::option("tag", ParamType::kString, "run name")};
  std::atomic<int> started{0}, logged{0};
  constexpr int kItems = 64;
  auto wait_for = [](std::atomic<int>& count, int n) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (count.load() < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  op.run = [&](const ParamValues& values, RunContext&) {
    const std::string tag = values.get_string("tag");
    ++started;
    wait_for(started, 2);  // both runs are under way
    run_log()->info("note of run {}", tag);
    run_log()->warn("warning of run {}", tag);
    tbb::parallel_for(0, kItems, 1, [&](int i) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      run_log()->warn("item {} of run {}", i, tag);
    });
    ++logged;
    wait_for(logged, 2);
    return Summary{};
  };
  struct Run {
    std::ostringstream text;
    RunContext context;
  };
  auto make_run = [](Run& run, spdlog::level::level_enum level) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(run.text);
    sink->set_pattern("%l %v");
    run.context.logger = std::make_shared<spdlog::logger>("probe", sink);
    run.context.logger->set_level(level);
    run.context.threads = 3;
  };
  Run a, b;
  make_run(a, spdlog::level::info);
  make_run(b, spdlog::level::warn);
  std::thread first([&] { run_operation(op, ParamValues::parse(op.params, {{"tag", {"A"}}}), a.context); });
  run_operation(op, ParamValues::parse(op.params, {{"tag", {"B"}}}), b.context);
  first.join();

  auto count = [](const std::string& text, const std::string& what) {
    int n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  const std::string text_a = a.text.str(), text_b = b.text.str();
  EXPECT_EQ(count(text_a, "info note of run A"), 1);
  EXPECT_EQ(count(text_a, "warning warning of run A"), 1);
  EXPECT_EQ(count(text_a, " of run A\n"), kItems + 2);
  EXPECT_EQ(count(text_a, "run B"), 0);
  EXPECT_EQ(count(text_b, "note of run B"), 0);  // below this run's level
  EXPECT_EQ(count(text_b, "warning warning of run B"), 1);
  EXPECT_EQ(count(text_b, " of run B\n"), kItems + 1);
  EXPECT_EQ(count(text_b, "run A"), 0);
  // Outside a run, and once the runs are over, the process's logger again.
  EXPECT_EQ(run_log(), spdlog::default_logger());
  std::atomic<int> stray{0};
  tbb::parallel_for(0, kItems, 1, [&](int) {
    if (run_log() != spdlog::default_logger()) ++stray;
  });
  EXPECT_EQ(stray.load(), 0);
}

TEST(Files, CancellationRequestReachesEveryProgress) {
  reset_cancellation();
  for (const auto style : {ProgressStyle::kQuiet, ProgressStyle::kLines}) {
    auto progress = make_terminal_progress(style);
    EXPECT_FALSE(progress->cancelled());
    request_cancellation();
    EXPECT_TRUE(progress->cancelled());
    reset_cancellation();
    EXPECT_FALSE(progress->cancelled());
  }
}

}  // namespace
}  // namespace deforma::io
