// The streamed pair correlation: the inputs brought onto one grid, the node grid and its strips, then the
// strips read, matched (node_matching.hpp), assembled into the product (pair_product.hpp) and summarized
// (pair_statistics.hpp) in a pipeline under --ram.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/parallel_pipeline.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/io/cog_writer.hpp"
#include "node_matching.hpp"
#include "pair_product.hpp"
#include "pair_statistics.hpp"

namespace deforma::correlate {

Summary correlate_pair(const std::string& ref_path, const std::string& sec_path, const std::string& output,
                       const CorrelateOptions& options, RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  Summary summary;
  summary.operation = "correlate";

  // Inputs: GCP-georeferenced pairs on a common map grid, SAR in decibels (sar.hpp); then SEC is brought
  // onto REF's grid when they differ.
  const PreparedPair prepared = prepare_pair(ref_path, sec_path, options, &summary);
  io::Raster ref = io::Raster::open(prepared.ref_path);
  ref.check_band(prepared.ref_band, "band");
  const auto& ref_info = ref.info();
  io::Raster sec = io::Raster::open(prepared.sec_path);
  sec.check_band(prepared.sec_band, "sec-band");
  const io::RasterInfo sec_original = sec.info();
  io::Window sec_footprint{0, 0, ref_info.width, ref_info.height};
  if (!io::same_grid(ref_info, sec_original)) {
    if (!ref_info.georeferenced || !sec_original.georeferenced) {
      if (ref_info.width != sec_original.width || ref_info.height != sec_original.height) {
        throw InvalidArgument(fmt::format(
            "{} ({}x{}) and {} ({}x{}) differ in size and at least one has no "
            "georeferencing to align them",
            ref_path, ref_info.width, ref_info.height, sec_path, sec_original.width, sec_original.height));
      }
    } else {
      sec_footprint = io::overlap_window(ref_info, sec_original);
      if (sec_footprint.empty()) {
        throw InvalidArgument(
            fmt::format("{} and {} do not overlap: nothing to correlate", ref_path, sec_path));
      }
      sec = io::resample_to_grid(sec_path, ref_info, io::Resampling::kCubic);
      summary.warnings.push_back(
          fmt::format("{} is on another grid or CRS; it was resampled (cubic) onto the grid "
                      "of {}",
                      sec_path, ref_path));
      run_log()->warn("{}", summary.warnings.back());
    }
  }
  const int sec_band = sec.info().band_count() == 1 ? 1 : prepared.sec_band;
  if (ref_info.bands[prepared.ref_band - 1].data_type !=
      sec_original.bands[prepared.sec_band - 1].data_type) {
    summary.warnings.push_back(fmt::format("data types differ ({} vs {}); both are matched as float32",
                                           ref_info.bands[prepared.ref_band - 1].data_type,
                                           sec_original.bands[prepared.sec_band - 1].data_type));
  }

  // Node grid over the region of interest.
  const io::Window roi = options.roi
                             ? options.roi->intersect(io::Window{0, 0, ref_info.width, ref_info.height})
                             : io::Window{0, 0, ref_info.width, ref_info.height};
  check_fits_image(options, ref_info);
  const int offset = options.step_px / 2;
  NodeGrid all_nodes;
  all_nodes.step_px = options.step_px;
  all_nodes.first_col = roi.col + std::min(offset, roi.width - 1);
  all_nodes.first_row = roi.row + std::min(offset, roi.height - 1);
  all_nodes.cols = (roi.col + roi.width - all_nodes.first_col + options.step_px - 1) / options.step_px;
  all_nodes.rows = (roi.row + roi.height - all_nodes.first_row + options.step_px - 1) / options.step_px;
  const io::GeoTransform node_gt =
      ref_info.geotransform.node_grid(all_nodes.first_col, all_nodes.first_row, options.step_px);

  std::optional<detail::GuessField> guess;
  double guess_halo = 0;
  if (!options.guess_path.empty()) {
    guess.emplace(options.guess_path, ref_info);
    guess_halo = std::ceil(guess->max_abs_px(context.ram_budget_mb));
  }

  // Strip height (node rows) under the RAM budget: two strips in flight (one read ahead while one computes).
  // correlate_grid's context (the prefilter and its hole filling at each level, coarse-to-fine looking beyond
  // the nodes): with it, strips agree with a whole-image run.
  const int halo = grid_halo_px(options.match, options.step_px);
  const int sec_halo = halo + static_cast<int>(guess_halo);
  const double bytes_per_px = 2 * (sizeof(float) + 1) + 2 * sizeof(float);  // values+valid x2, filter scratch
  const double row_px = roi.width + 2.0 * sec_halo;
  // The strips keep the whole of --ram as their share (GDAL's block cache, a quarter of it, comes on top as
  // it fills): a smaller share would refuse budgets that one strip of a small image fits today.
  const std::size_t budget = context.ram_budget_mb << 20;
  constexpr int kTokens = 2;
  int strip_rows = 1;
  // Per node of a strip: the kernel's result (dx, dy, corr, snr, four gradients: 32 bytes, flag and
  // translation-only: 2), the guess (8), the mask and stable flags (2) and the output bands (4 each). At
  // --step 1 this is as much as the pixels.
  const bool with_gradients = options.match.shape == Shape::kAffine && options.match.method != Method::kFlow;
  const int output_bands = 7 + (options.years_between ? 3 : 0) + (with_gradients ? 4 : 0) +
                           (with_gradients && options.years_between ? 4 : 0);
  const double node_bytes = 32 + 2 + 8 + 2 + 4.0 * output_bands;
  auto strip_bytes = [&](int node_rows) {
    return row_px * ((node_rows - 1.0) * options.step_px + 1 + 2.0 * sec_halo) * bytes_per_px *
               1.4 +  // + pyramid
           static_cast<double>(node_rows) * all_nodes.cols * node_bytes;
  };
  if (strip_bytes(strip_rows) * kTokens > static_cast<double>(budget)) {
    throw InvalidArgument(
        fmt::format("--ram {} MB is too small for one strip of nodes ({:.0f} MB needed); raise "
                    "--ram or lower --search/--chip",
                    context.ram_budget_mb, strip_bytes(strip_rows) * kTokens / (1 << 20)));
  }
  while (strip_rows < all_nodes.rows &&
         strip_bytes(strip_rows * 2) * kTokens <= static_cast<double>(budget) &&
         strip_rows * 2 * options.step_px <= std::max(1024, 8 * halo)) {
    strip_rows *= 2;
  }
  const int strip_count = (all_nodes.rows + strip_rows - 1) / strip_rows;

  // What the strips are read from.
  detail::StripSource source(ref, prepared.ref_band, sec, sec_band, sec_footprint, all_nodes, halo, sec_halo,
                             options, output, guess ? &*guess : nullptr);

  // Output.
  const detail::PairProduct product(ref_info, options);
  io::CogWriter writer(output, all_nodes.cols, all_nodes.rows, product.bands(), node_gt, ref_info.crs_wkt,
                       product.provenance(ref_path, sec_path, context, roi), product.cog_options());
  detail::PairStatistics statistics(all_nodes, !options.quicklook_path.empty());

  auto& progress = progress_or_null(context.progress);
  progress.start("correlate", static_cast<std::uint64_t>(all_nodes.cols) * all_nodes.rows);
  int next_strip = 0;
  std::atomic<bool> cancelled{false};
  tbb::parallel_pipeline(
      kTokens, tbb::make_filter<void, std::shared_ptr<detail::NodeStrip>>(
                   tbb::filter_mode::serial_in_order,
                   [&](tbb::flow_control& fc) -> std::shared_ptr<detail::NodeStrip> {
                     if (next_strip >= strip_count || progress.cancelled()) {
                       if (progress.cancelled()) cancelled = true;
                       fc.stop();
                       return nullptr;
                     }
                     const int first_node_row = next_strip++ * strip_rows;
                     return std::make_shared<detail::NodeStrip>(
                         source.read(first_node_row, std::min(strip_rows, all_nodes.rows - first_node_row)));
                   }) &
                   tbb::make_filter<std::shared_ptr<detail::NodeStrip>, std::shared_ptr<detail::NodeStrip>>(
                       tbb::filter_mode::parallel,
                       [&](std::shared_ptr<detail::NodeStrip> s) {
                         source.match(*s);
                         return s;
                       }) &
                   tbb::make_filter<std::shared_ptr<detail::NodeStrip>, void>(
                       tbb::filter_mode::serial_in_order, [&](std::shared_ptr<detail::NodeStrip> s) {
                         const auto out = product.assemble(s->result, s->first_node_row, s->node_rows,
                                                           s->node_stable, statistics);
                         const io::Window window{0, s->first_node_row, all_nodes.cols, s->node_rows};
                         for (std::size_t b = 0; b < out.size(); ++b)
                           writer.write(static_cast<int>(b) + 1, window, out[b]);
                         progress.advance(static_cast<std::uint64_t>(all_nodes.cols) * s->node_rows);
                       }));
  progress.finish();
  if (cancelled) {
    writer.abandon();
    throw Cancelled(fmt::format("{}: correlation cancelled; no output written", output));
  }
  writer.finish();
  summary.outputs.push_back(output);

  statistics.summarize(summary, options, product.to_m(), product.affine(), source.stable_node_count(),
                       strip_count);
  if (!options.quicklook_path.empty()) {
    statistics.write_quicklook(ref_path, sec_path, output, options, product.to_m(), ref_info.pixel_size_x_m);
    summary.outputs.push_back(options.quicklook_path);
  }
  summary.seconds = seconds_since(start);
  summary.report = statistics.report(summary, options, product.affine());
  return summary;
}

}  // namespace deforma::correlate
