// The streamed pair correlation: the inputs brought onto one grid, the node grid and its strips, then the
// strips read, matched (node_matching.hpp), assembled into the product (pair_product.hpp) and summarized
// (pair_statistics.hpp) on the streaming executor (io::for_each_window) under --ram.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/stream.hpp"
#include "node_matching.hpp"
#include "pair_product.hpp"
#include "pair_statistics.hpp"

namespace deforma::correlate {

namespace {

// The node strips as a kernel of io::for_each_window (io/stream.hpp): the output grid is the node grid,
// windows are strips of whole node rows, read and matched by the StripSource, assembled into the product
// and fed to the statistics in node order.
class NodeStripKernel {
 public:
  // Strips in flight: one read while one is matched (correlate_grid matches a strip with all the threads).
  static constexpr int kInFlight = 2;
  using Input = detail::NodeStrip;
  using Output = detail::NodeStrip;
  // The matchers are the scratch of this kernel, but correlate_grid matches a strip with all the threads
  // (nested in the pipeline's compute stage), not only the one that computes it: they live in the kernel's
  // MatcherPool, one per thread and per options set for the whole run, rather than in a per-thread Scratch.
  struct Scratch {};

  NodeStripKernel(detail::StripSource& source, const detail::PairProduct& product,
                  detail::PairStatistics& statistics, io::CogWriter& writer, const CorrelateOptions& options,
                  const NodeGrid& all_nodes, int roi_width_px, int halo_px, int sec_halo_px)
      : source_(source),
        product_(product),
        statistics_(statistics),
        writer_(writer),
        all_nodes_(all_nodes),
        step_px_(options.step_px),
        halo_px_(halo_px),
        sec_halo_px_(sec_halo_px),
        row_px_(roi_width_px + 2.0 * sec_halo_px),
        image_bytes_px_(image_bytes_per_px(options.oversample)),
        oversample_(options.oversample) {
    // Per node: the kernel's result (dx, dy, corr, snr, four gradients: 32 bytes, flag and translation-only:
    // 2), the guess (8), the mask and stable flags (2) and the output bands (4 each). At --step 1 this is as
    // much as the pixels.
    node_bytes_ = 32 + 2 + 8 + 2 + 4.0 * static_cast<double>(product.bands().size());
  }

  /// Context around a strip, in node spacings (the SEC halo: grid_halo_px plus the largest guess).
  int halo_px() const { return (sec_halo_px_ + step_px_ - 1) / step_px_; }
  /// Per node of a strip, its halo rows included: the step x step image pixels it covers (values and
  /// validity of both images, the filter's scratch, 40 % more for the coarse level) and its own data.
  double bytes_per_pixel() const { return image_bytes_px_ * step_px_ * step_px_ + node_bytes_; }

  /// The bytes of one strip of `node_rows` rows: pixels with the halo in image pixels (exact where the
  /// per-node figure rounds the halo up to whole node spacings), node data on the strip's own rows.
  double strip_bytes(int node_rows) const {
    return row_px_ * ((node_rows - 1.0) * step_px_ + 1 + 2.0 * sec_halo_px_) * image_bytes_px_ +
           static_cast<double>(node_rows) * all_nodes_.cols * node_bytes_;
  }

  /// Strips of whole node rows spanning the node grid (each node keeps the context a whole-image run gives
  /// it): as tall as kInFlight of them fit --ram, doubled from one row, and at most max(1024 px, 8 halos)
  /// so that progress and cancellation come often. The strips keep the whole of --ram (GDAL's block cache,
  /// a quarter of it, comes on top as it fills): a smaller share would refuse budgets that one strip of a
  /// small image fits.
  io::StreamPlan plan(std::size_t ram_budget_mb) const {
    const auto budget = static_cast<double>(ram_budget_mb << 20);
    int strip_rows = 1;
    if (strip_bytes(strip_rows) * kInFlight > budget) {
      throw InvalidArgument(
          fmt::format("--ram {} MB is too small for one strip of nodes ({:.0f} MB needed{}); raise "
                      "--ram or lower --search/--chip",
                      ram_budget_mb, strip_bytes(strip_rows) * kInFlight / (1 << 20),
                      oversample_ > 1 ? fmt::format(" with --oversample {}", oversample_) : ""));
    }
    while (strip_rows < all_nodes_.rows && strip_bytes(strip_rows * 2) * kInFlight <= budget &&
           strip_rows * 2 * step_px_ <= std::max(1024, 8 * halo_px_)) {
      strip_rows *= 2;
    }
    io::StreamPlan plan;
    plan.in_flight = kInFlight;
    const int halo = halo_px();
    for (int row = 0; row < all_nodes_.rows; row += strip_rows) {
      io::Tile t;
      t.index = static_cast<int>(plan.windows.size());
      t.core = io::Window{0, row, all_nodes_.cols, std::min(strip_rows, all_nodes_.rows - row)};
      t.with_halo = io::Window{-halo, row - halo, t.core.width + 2 * halo, t.core.height + 2 * halo};
      plan.windows.push_back(t);
    }
    return plan;
  }

  Input read(const io::Tile& tile) { return source_.read(tile.core.row, tile.core.height); }
  Output compute(const io::Tile&, Input& strip, Scratch&) {
    source_.match(strip, matchers_);
    return std::move(strip);
  }
  void write(const io::Tile& tile, Output& strip) {
    const auto out = product_.assemble(strip.result, strip.first_node_row, strip.node_rows, strip.node_stable,
                                       statistics_);
    for (std::size_t b = 0; b < out.size(); ++b) writer_.write(static_cast<int>(b) + 1, tile.core, out[b]);
  }

 private:
  // Per image pixel of a strip (both images): their values and validity, the prefilter's scratch, and 40 %
  // more for the coarse level of coarse-to-fine.
  static constexpr double kInputBytesPerPx = 2 * (sizeof(float) + 1);
  static double image_bytes_per_px(int oversample) {
    if (oversample <= 1) return (kInputBytesPerPx + 2 * sizeof(float)) * 1.4;
    // --oversample f (correlate_grid_oversampled, oversample.cpp) matches both images on a grid f x f
    // finer. Its peak is the second image's transform while the first one's result is held: the inputs,
    // one finer image (values and validity), and the transform's buffers: the prefiltered copy, the FFT's
    // input and half spectrum at the original size, the zero-padded half spectrum, the inverse transform
    // and the result at the finer size. Then the matching holds both finer images and their coarse level.
    const double area = static_cast<double>(oversample) * oversample;
    const double finer_image = (sizeof(float) + 1) * area;
    const double transform = 3 * sizeof(float) + 3 * sizeof(float) * area;
    return std::max(kInputBytesPerPx + finer_image + transform, kInputBytesPerPx + 2 * finer_image * 1.4);
  }
  detail::StripSource& source_;
  const detail::PairProduct& product_;
  detail::PairStatistics& statistics_;
  io::CogWriter& writer_;
  MatcherPool matchers_;
  NodeGrid all_nodes_;
  int step_px_ = 1;
  int halo_px_ = 0, sec_halo_px_ = 0;
  double row_px_ = 0;
  double image_bytes_px_ = 0;
  int oversample_ = 1;
  double node_bytes_ = 0;
};

}  // namespace

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

  // correlate_grid's context (the prefilter and its hole filling at each level, coarse-to-fine looking beyond
  // the nodes): with it, strips agree with a whole-image run.
  const int halo = grid_halo_px(options.match, options.step_px);
  const int sec_halo = halo + static_cast<int>(guess_halo);

  // What the strips are read from.
  detail::StripSource source(ref, prepared.ref_band, sec, sec_band, sec_footprint, all_nodes, halo, sec_halo,
                             options, output, guess ? &*guess : nullptr);

  // Output.
  const detail::PairProduct product(ref_info, options);
  io::Provenance provenance = product.provenance(ref_path, sec_path, context, roi);
  io::CogOptions cog = product.cog_options();
  add_input_provenance(prepared, provenance.parameters, cog.metadata);
  io::CogWriter writer(output, all_nodes.cols, all_nodes.rows, product.bands(), node_gt, ref_info.crs_wkt,
                       provenance, cog);
  detail::PairStatistics statistics(all_nodes, !options.quicklook_path.empty());

  // Strips of node rows on the streaming executor: read in order, matched, assembled and written in order.
  NodeStripKernel kernel(source, product, statistics, writer, options, all_nodes, roi.width, halo, sec_halo);
  const io::StreamPlan plan = kernel.plan(context.ram_budget_mb);
  const int strip_count = static_cast<int>(plan.windows.size());

  auto& progress = progress_or_null(context.progress);
  progress.start("correlate", plan.windows.size());
  const bool completed = io::for_each_window(plan, kernel, &progress);
  progress.finish();
  if (!completed) {
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
