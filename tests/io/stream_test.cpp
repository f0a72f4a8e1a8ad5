#include "deforma/io/stream.hpp"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include "deforma/core/error.hpp"
#include "test_support.hpp"

namespace deforma::io {
namespace {

// Sums each window's row indices (a result that depends on the window, not on the thread), records the
// order of the writes and the largest number of windows in flight.
struct CountingKernel {
  std::vector<int> written;
  std::atomic<int> alive{0};
  int most_alive = 0;
  std::mutex mutex;
  std::atomic<int> scratch_made{0};

  struct Scratch {
    Scratch() = default;
  };
  struct Input {
    long long rows_sum = 0;
  };
  using Output = long long;

  Input read(const Tile& tile) {
    const int now = ++alive;
    {
      std::lock_guard lock(mutex);
      most_alive = std::max(most_alive, now);
    }
    Input in;
    for (int r = tile.core.row; r < tile.core.row + tile.core.height; ++r) in.rows_sum += r;
    return in;
  }
  Output compute(const Tile&, Input& in, Scratch&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return in.rows_sum;
  }
  void write(const Tile& tile, Output& sum) {
    written.push_back(tile.index);
    total += sum;
    --alive;
  }
  long long total = 0;
};

TEST(StreamExecutor, WindowsAreWrittenInOrderAndBoundedInFlight) {
  StreamOptions options;
  options.width = 1000;
  options.height = 3000;
  options.block_width = 100;
  options.block_height = 10;
  options.ram_budget_mb = 16;
  options.threads = 3;
  const StreamPlan plan = plan_stream(options, 2, 64.0);
  EXPECT_EQ(plan.in_flight, 3);
  ASSERT_GT(plan.windows.size(), 10u);
  // The windows in flight fit in three quarters of --ram, the rest being GDAL's cache.
  for (const auto& w : plan.windows) {
    EXPECT_LE(static_cast<double>(w.with_halo.width) * w.with_halo.height * 64.0 * plan.in_flight,
              12.0 * (1 << 20));
  }
  CountingKernel kernel;
  tbb::task_arena arena(3);
  bool completed = false;
  arena.execute([&] { completed = for_each_window(plan, kernel); });
  EXPECT_TRUE(completed);
  ASSERT_EQ(kernel.written.size(), plan.windows.size());
  for (std::size_t i = 0; i < kernel.written.size(); ++i) EXPECT_EQ(kernel.written[i], static_cast<int>(i));
  EXPECT_LE(kernel.most_alive, plan.in_flight);
  EXPECT_EQ(kernel.total, 3000LL * 2999 / 2 * (1000 / plan.windows.front().core.width));
}

TEST(StreamExecutor, CancellationStopsTheReading) {
  StreamOptions options;
  options.width = 512;
  options.height = 4096;
  options.block_width = 512;
  options.block_height = 16;
  options.ram_budget_mb = 1;
  options.threads = 1;
  const StreamPlan plan = plan_stream(options, 0, 8.0);
  ASSERT_GT(plan.windows.size(), 8u);
  test::CancelAfter progress(3);
  CountingKernel kernel;
  EXPECT_FALSE(for_each_window(plan, kernel, &progress));
  EXPECT_LT(kernel.written.size(), plan.windows.size());
  EXPECT_GE(kernel.written.size(), 3u);
}

TEST(StreamExecutor, BudgetTooSmallForOneBlockNamesRam) {
  StreamOptions options;
  options.width = 4096;
  options.height = 4096;
  options.block_width = 1024;
  options.block_height = 1024;
  options.ram_budget_mb = 16;
  options.threads = 2;
  try {
    plan_stream(options, 16, 64.0);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--ram"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace deforma::io
