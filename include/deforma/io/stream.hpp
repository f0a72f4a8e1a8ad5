#pragma once
// The streaming executor: one loop for every operation that turns rasters into a raster (or into
// statistics) window by window under the run's --ram budget.
//
// A kernel declares what one window costs; the executor plans block-aligned windows so that all the windows
// in flight together fit the budget, then runs a three-stage pipeline: windows are read in order (one
// reader: GDAL datasets are not thread-safe), computed in parallel, and written in order (so results and
// their merge order do not depend on the thread count). At most `in_flight` windows exist at once, each
// thread gets its scratch once, progress advances per window written and a cancelled progress stops the
// reading.
//
// Kernel contract (duck-typed):
//   int halo_px() const;            context needed on each side of an output window, in output pixels
//   double bytes_per_pixel() const; memory one window in flight holds (inputs, scratch share, outputs) per
//                                   pixel of the window grown by its halo
//   using Input, Output, Scratch;   Scratch is default-constructible; one per worker thread, made once
//   Input read(const Tile&);                          serial, windows in order
//   Output compute(const Tile&, Input&, Scratch&);    parallel; must be thread-safe
//   void write(const Tile&, Output&);                 serial, windows in order
#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_pipeline.h>

#include "deforma/core/progress.hpp"
#include "deforma/io/tiles.hpp"

namespace deforma::io {

struct StreamOptions {
  int width = 0;  ///< the output grid
  int height = 0;
  int block_width = 256;  ///< windows align on the output's (or input's) GDAL blocks
  int block_height = 256;
  /// The run's --ram. A quarter of it is GDAL's block cache (io::run_operation sets it); the windows in
  /// flight share the rest.
  std::size_t ram_budget_mb = 1024;
  int threads = 0;  ///< windows computed at once; 0 = the slots of the current oneTBB task arena
  Progress* progress = nullptr;  ///< advanced by one per window written; cancelled() stops the reading
};

struct StreamPlan {
  std::vector<Tile> windows;
  int in_flight = 1;  ///< windows read but not yet written, at most
};

/// The windows of a kernel with `halo_px` and `bytes_per_pixel` under `options`. Throws InvalidArgument
/// (naming --ram) when not even one block with its halo fits the share of one window.
StreamPlan plan_stream(const StreamOptions& options, int halo_px, double bytes_per_pixel);

/// The share of --ram left to the windows in flight once GDAL's block cache has its quarter.
std::size_t window_budget_bytes(std::size_t ram_budget_mb);

/// Runs `kernel` over `plan`. Returns false when the progress asked to stop (windows read before the
/// request are still computed and written); exceptions of the kernel propagate after the pipeline stopped.
template <class Kernel>
bool for_each_window(const StreamPlan& plan, Kernel& kernel, Progress* progress = nullptr) {
  Progress& p = progress_or_null(progress);
  tbb::enumerable_thread_specific<typename Kernel::Scratch> scratch;
  struct Item {
    const Tile* tile = nullptr;
    std::optional<typename Kernel::Input> input;
    std::optional<typename Kernel::Output> output;
  };
  std::size_t next = 0;
  bool cancelled = false;
  tbb::parallel_pipeline(
      static_cast<std::size_t>(std::max(1, plan.in_flight)),
      tbb::make_filter<void, std::shared_ptr<Item>>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) -> std::shared_ptr<Item> {
            if (next >= plan.windows.size() || p.cancelled()) {
              cancelled = next < plan.windows.size();
              fc.stop();
              return nullptr;
            }
            auto item = std::make_shared<Item>();
            item->tile = &plan.windows[next++];
            item->input.emplace(kernel.read(*item->tile));
            return item;
          }) &
          tbb::make_filter<std::shared_ptr<Item>, std::shared_ptr<Item>>(
              tbb::filter_mode::parallel,
              [&](std::shared_ptr<Item> item) {
                item->output.emplace(kernel.compute(*item->tile, *item->input, scratch.local()));
                item->input.reset();  // the window's inputs go as soon as its output exists
                return item;
              }) &
          tbb::make_filter<std::shared_ptr<Item>, void>(tbb::filter_mode::serial_in_order,
                                                        [&](std::shared_ptr<Item> item) {
                                                          kernel.write(*item->tile, *item->output);
                                                          item->output.reset();
                                                          p.advance();
                                                        }));
  return !cancelled;
}

/// Plans and runs in one call.
template <class Kernel>
bool for_each_window(const StreamOptions& options, Kernel& kernel) {
  const StreamPlan plan = plan_stream(options, kernel.halo_px(), kernel.bytes_per_pixel());
  return for_each_window(plan, kernel, options.progress);
}

}  // namespace deforma::io
