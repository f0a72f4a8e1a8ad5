#pragma once
// The pair correlation's statistics (internal to the correlate module): flag counts, the summary's
// percentiles and the stable ground's bias and NMAD from bounded samples, and the quicklook from a node
// grid decimated while streaming. Fed node by node in node order by the product assembly
// (pair_product.hpp), so that they do not depend on the thread count or on how the nodes were cut.
#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "deforma/core/operation.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/correlate/correlate.hpp"

namespace deforma::correlate::detail {

class PairStatistics {
 public:
  /// `with_quicklook`: keep the decimated grid the quicklook is drawn from.
  PairStatistics(const NodeGrid& all_nodes, bool with_quicklook);

  void count_flag(unsigned char flag) { ++flag_counts_[static_cast<std::size_t>(flag) % 7]; }
  void count_translation_only() { ++translation_only_; }
  /// A valid node at (node_col, node_row) of the whole node grid; `speed_m` is 0 without georeferencing.
  void add_valid(int node_col, int node_row, float dx_px, float dy_px, float speed_m, bool on_stable_ground);

  /// Counts, percentiles and stable-ground figures into `summary` (counts, details, warnings).
  void summarize(Summary& summary, const CorrelateOptions& options, double to_m, bool affine,
                 long long stable_node_count, int strip_count) const;

  /// Draws options.quicklook_path (magnitude with flow arrows) from the decimated grid.
  void write_quicklook(const std::string& ref_path, const std::string& sec_path, const std::string& output,
                       const CorrelateOptions& options, double to_m, double pixel_size_x_m) const;

  /// The run's report lines, from the summary summarize() filled.
  std::string report(const Summary& summary, const CorrelateOptions& options, bool affine) const;

 private:
  struct ValidNode {
    float dx_px = 0, dy_px = 0, speed_m = 0;
  };
  NodeGrid all_nodes_;
  std::array<long long, 7> flag_counts_{};
  long long translation_only_ = 0;
  Reservoir<ValidNode> valid_sample_;                 ///< in node order
  Reservoir<std::pair<float, float>> stable_sample_;  ///< dx_px, dy_px of valid stable nodes
  int quick_every_ = 1;
  GridF quick_dx_, quick_dy_;
};

}  // namespace deforma::correlate::detail
