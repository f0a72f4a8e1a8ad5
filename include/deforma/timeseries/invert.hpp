#pragma once
// Time-series inversion of a redundant pair network, per node (docs/timeseries.md explains the choices).
//
// For one node, each valid pair k = (i, j) measures d_k = u(t_j) - u(t_i) + noise for each component
// (east, north). The unknowns are u(t_1..t_{N-1}); u(t_0) = 0 fixes the datum (the series is relative to
// the first date). The estimate minimises
//     sum_k w_k (u_j - u_i - d_k)^2 + lambda^2 * sum_k (tau * (v_{k+1/2} - v_{k-1/2}))^2
// where v_{k+1/2} = (u_{k+1} - u_k) / dt_k is the velocity between consecutive dates and tau the median
// interval: a weak penalty on changes of velocity (Tikhonov, second order in time, as in TIO/MSBAS). Where
// the pairs determine the series the penalty changes almost nothing (lambda is small); where they do not
// (a network split in two, a date no valid pair reaches) it bridges the gap with a constant-velocity
// continuation instead of leaving the system singular. The uncertainty of such dates grows accordingly.
//
// Robustness: after the first solve, a node whose largest normalised residual exceeds
// `outlier_threshold` robust sigmas is re-solved by iteratively reweighted least squares with Tukey's
// biweight; the other nodes keep the one-shot solution.
//
// Speed: the normal matrix depends only on which pairs are valid at a node (and the pair weights), so it
// is factored once per distinct validity pattern (cached) and each node of a pattern is solved by one
// matrix-vector product with it. Nodes are processed in fixed-size chunks in parallel (oneTBB); each node
// is solved on its own, so results do not depend on the number of threads nor on how nodes are blocked.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "deforma/core/progress.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/timeseries/epoch.hpp"

namespace deforma::timeseries {

/// One pair of the network by date indices (into the inverter's dates), with its quality weight.
struct NetworkPair {
  int ref = 0;
  int sec = 0;
  double weight = 1.0;  ///< > 0; relative inverse variance of the pair's measurement
};

enum class RobustLoss {
  kNone,   ///< plain weighted least squares
  kTukey,  ///< Tukey biweight, c = 4.685 robust sigmas: gross outlier pairs get zero weight
  kHuber,  ///< Huber, c = 1.345 robust sigmas: outliers are downweighted, never ignored
};

RobustLoss parse_robust_loss(const std::string& text, const std::string& parameter = "robust");

struct InversionOptions {
  double regularization = 0.05;  ///< lambda (dimensionless, relative to a unit-weight pair)
  RobustLoss robust = RobustLoss::kTukey;
  double outlier_threshold = 5.0;  ///< a node is reweighted when max |r| > this x robust sigma
  int max_irls_iterations = 8;
  double min_sigma = 1e-4;  ///< floor of the robust residual scale, in data units
  int min_valid_pairs = 1;  ///< nodes with fewer valid pairs are nodata
  /// Memory for the factorizations kept across chunks of nodes (one per validity pattern); patterns seen
  /// once the cache is full are factored for each chunk again. Results do not depend on it.
  std::size_t pattern_cache_bytes = std::size_t{256} << 20;

  /// Throws InvalidArgument naming the parameter (regularization, outlier-threshold...).
  void validate() const;
};

/// Node status bits (the `flags` band).
enum NodeFlag : std::uint8_t {
  kNodeOk = 0,
  kNodeNoData = 1,        ///< fewer than min_valid_pairs valid pairs: everything nodata
  kNodeReweighted = 2,    ///< outlier pairs were downweighted (IRLS)
  kNodeNoRedundancy = 4,  ///< as many unknowns as pairs: uncertainty unknown (sigma nodata)
  kNodeBridged = 8,       ///< some dates were reached only through the regularization (gap, split network)
};

/// Pair measurements of a block of nodes, node-major: value of pair p at node n is [n * pair_count + p].
/// A non-finite value marks the pair invalid at that node (for both components).
struct PairObservations {
  int node_count = 0;
  int pair_count = 0;
  const float* east = nullptr;
  const float* north = nullptr;
  /// Optional per node and pair quality in (0, 1] (for example correlation); multiplies the pair weight.
  /// Nodes with such weights are solved one by one (no pattern sharing). Null = pair weights only.
  const float* node_weight = nullptr;
};

/// Per-node results; series arrays are node-major [n * date_count + k]. Invalid values are NaN here; the
/// product writers turn them into nodata.
struct InversionResult {
  int node_count = 0;
  int date_count = 0;
  std::vector<float> east, north;              ///< displacement since the first date, data units
  std::vector<float> east_sigma, north_sigma;  ///< 1-sigma per date (0 at the first date)
  std::vector<float> velocity_east, velocity_north, velocity_magnitude;  ///< units per year
  std::vector<float> velocity_east_std, velocity_north_std, velocity_magnitude_std;
  std::vector<float> rmse;         ///< residual RMS of the pairs (vector residual), data units
  std::vector<float> valid_pairs;  ///< pairs used (after robust rejection: weights above 0.5 counted)
  std::vector<float> consistency;  ///< 1 - weighted RSS / weighted sum of d^2, in [0, 1]
  std::vector<std::uint8_t> flags;

  void resize(int nodes, int dates);
};

/// Counters of one or more invert() calls.
struct InversionStats {
  std::int64_t nodes = 0;
  std::int64_t nodes_nodata = 0;
  std::int64_t nodes_reweighted = 0;
  std::int64_t nodes_bridged = 0;
  std::int64_t patterns = 0;  ///< distinct validity patterns factored
};

/// The solver of one network (dates + pairs). Thread-safe: invert() may be called concurrently.
class NetworkInverter {
 public:
  /// Dates must be strictly increasing; pairs must refer to distinct dates in range. Throws
  /// InvalidArgument naming what is wrong (fewer than 2 dates, pair out of range, weight <= 0).
  NetworkInverter(std::vector<io::Date> dates, std::vector<NetworkPair> pairs, InversionOptions options = {});
  /// The same on a time axis of epochs (timeseries/epoch.hpp): instants to the second, or dates. Intervals
  /// are the epochs' days with their fractions, so a network of passes hours apart is inverted like one of
  /// whole days. Epochs must be strictly increasing in time.
  NetworkInverter(std::vector<Epoch> epochs, std::vector<NetworkPair> pairs, InversionOptions options = {});
  ~NetworkInverter();
  NetworkInverter(const NetworkInverter&) = delete;
  NetworkInverter& operator=(const NetworkInverter&) = delete;

  /// Inverts every node of `observations` into `result` (resized). Parallel over chunks of nodes.
  /// Checks `progress` for cancellation between chunks (throws Cancelled) and advances it by nodes.
  void invert(const PairObservations& observations, InversionResult& result,
              Progress* progress = nullptr) const;

  /// The day of each epoch (two epochs of one day share it).
  const std::vector<io::Date>& dates() const { return dates_; }
  const std::vector<Epoch>& epochs() const { return epochs_; }
  const std::vector<NetworkPair>& pairs() const { return pairs_; }
  const InversionOptions& options() const { return options_; }
  /// Totals since construction.
  InversionStats stats() const;

 private:
  struct Impl;
  std::vector<io::Date> dates_;
  std::vector<Epoch> epochs_;
  std::vector<NetworkPair> pairs_;
  InversionOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deforma::timeseries
