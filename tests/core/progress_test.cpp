#include <gtest/gtest.h>

#include <thread>

#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"

namespace deforma {
namespace {

TEST(ProgressCounter, CountsRateAndEta) {
  ProgressCounter counter;
  counter.reset(100);
  EXPECT_LT(counter.eta_s(), 0);  // unknown before the first unit
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  counter.add(50);
  EXPECT_EQ(counter.done(), 50u);
  EXPECT_GT(counter.rate_per_s(), 0);
  EXPECT_GT(counter.eta_s(), 0);
  counter.add(50);
  EXPECT_EQ(counter.eta_s(), 0);
}

TEST(FormatDuration, HumanReadable) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  EXPECT_EQ(format_duration(-1), "--");
}

TEST(TerminalProgress, LinesModeIsThreadSafe) {
  auto progress = make_terminal_progress(ProgressStyle::kLines, 0.0);
  progress->start("test", 4000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) progress->advance();
    });
  }
  for (auto& t : threads) t.join();
  progress->finish();
  SUCCEED();
}

TEST(Summary, TextAndJson) {
  Summary s;
  s.operation = "demo";
  s.counts["nodes"] = 10;
  s.outputs = {"a.tif"};
  s.warnings = {"something"};
  const auto text = s.to_text();
  EXPECT_NE(text.find("nodes"), std::string::npos);
  EXPECT_NE(text.find("wrote a.tif"), std::string::npos);
  EXPECT_NE(text.find("warning: something"), std::string::npos);
  EXPECT_EQ(s.to_json()["counts"]["nodes"], 10);
}

}  // namespace
}  // namespace deforma
