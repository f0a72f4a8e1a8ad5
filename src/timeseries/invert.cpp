#include "deforma/timeseries/invert.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <Eigen/Cholesky>
#include <Eigen/Dense>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"

namespace deforma::timeseries {

RobustLoss parse_robust_loss(const std::string& text, const std::string& parameter) {
  if (text == "none") return RobustLoss::kNone;
  if (text == "tukey") return RobustLoss::kTukey;
  if (text == "huber") return RobustLoss::kHuber;
  throw InvalidArgument(fmt::format("--{} '{}': expected none, tukey or huber", parameter, text));
}

void InversionOptions::validate() const {
  if (!std::isfinite(regularization) || regularization < 0.0 || regularization > 100.0) {
    throw InvalidArgument(fmt::format("--regularization {}: expected a value in 0..100", regularization));
  }
  if (!std::isfinite(outlier_threshold) || outlier_threshold < 1.0) {
    throw InvalidArgument(
        fmt::format("--outlier-threshold {}: expected at least 1 (robust sigmas)", outlier_threshold));
  }
  if (max_irls_iterations < 1 || max_irls_iterations > 100) {
    throw InvalidArgument(fmt::format("--irls-iterations {}: expected 1..100", max_irls_iterations));
  }
  if (!std::isfinite(min_sigma) || min_sigma <= 0.0) {
    throw InvalidArgument(fmt::format("--min-sigma {}: expected a positive value", min_sigma));
  }
  if (min_valid_pairs < 1) {
    throw InvalidArgument(fmt::format("--min-pairs {}: expected at least 1", min_valid_pairs));
  }
}

void InversionResult::resize(int nodes, int dates) {
  node_count = nodes;
  date_count = dates;
  const auto series = static_cast<std::size_t>(nodes) * static_cast<std::size_t>(dates);
  const auto n = static_cast<std::size_t>(nodes);
  for (auto* v : {&east, &north, &east_sigma, &north_sigma}) v->assign(series, std::nanf(""));
  for (auto* v : {&velocity_east, &velocity_north, &velocity_magnitude, &velocity_east_std,
                  &velocity_north_std, &velocity_magnitude_std, &rmse, &valid_pairs, &consistency}) {
    v->assign(n, std::nanf(""));
  }
  flags.assign(n, kNodeOk);
}

namespace {

constexpr int kChunkNodes = 2048;  // fixed: results do not depend on the thread count

using MatrixD = Eigen::MatrixXd;
using VectorD = Eigen::VectorXd;
using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;

// Everything a node with a given set of valid pairs (and weights) needs: u = S d, velocity = v d, and the
// unit-variance uncertainties.
struct PatternSolver {
  std::vector<int> pairs;          // valid pair indices
  MatrixF solve;                   // (dates-1) x pairs.size()
  Eigen::RowVectorXf velocity;     // 1 x pairs.size()
  std::vector<double> sigma_unit;  // per date, sqrt(diag(N^-1)) (0 at the first date)
  double velocity_sigma_unit = 0;
  int rank = 0;  // rank of the data part (dates linked by pairs minus components)
  bool bridged = false;
  bool ok = false;
};

struct NodeOutcome {
  double rss_east = 0, rss_north = 0;  // weighted
  double sum_sq_weighted = 0;          // weighted sum of d^2 (both), pair weights only
  double rss_all = 0;                  // weighted RSS over every valid pair, pair weights only
  double rss_plain = 0;                // unweighted, used pairs
  int used = 0;
  double weight_sum = 0;
};

}  // namespace

struct NetworkInverter::Impl {
  int date_count = 0;
  std::vector<double> t_years;      // from the first date
  std::vector<double> slope_coeff;  // OLS slope weights over dates (years)
  MatrixD regularization_normal;    // lambda^2 R^T R over unknowns 1..N-1
  std::vector<NetworkPair> pairs;
  InversionOptions options;

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::shared_ptr<const PatternSolver>> cache;
  mutable std::size_t cache_bytes = 0;

  mutable std::atomic<std::int64_t> nodes{0}, nodata{0}, reweighted{0}, bridged{0}, patterns{0};

  // Work space of one worker thread, made on its first chunk and reused for every later chunk and node, so
  // that solving a node allocates no vector.
  struct Scratch {
    std::vector<double> chunk_weights, chunk_east, chunk_north, ones;  // run_chunk
    std::vector<double> weights, robust, next, kept, east, north;      // solve_single
    std::vector<double> sigma_unit, slope, column;                     // its uncertainties
    std::vector<float> abs_east, abs_north, abs_residual;              // robust scales
    std::vector<int> parent;                                           // connectivity
  };
  mutable tbb::enumerable_thread_specific<Scratch> scratch;

  // Builds N = A^T W A + lambda^2 R^T R for weights w (0 = unused pair).
  MatrixD normal_matrix(const std::vector<double>& w) const {
    MatrixD n = regularization_normal;
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      if (w[k] <= 0.0) continue;
      const int i = pairs[k].ref - 1;
      const int j = pairs[k].sec - 1;
      if (i >= 0) n(i, i) += w[k];
      if (j >= 0) n(j, j) += w[k];
      if (i >= 0 && j >= 0) {
        n(i, j) -= w[k];
        n(j, i) -= w[k];
      }
    }
    return n;
  }

  // Rank of the data part and whether the regularization must bridge dates (split network, unreached date).
  void connectivity(const std::vector<double>& w, int& rank, bool& is_bridged,
                    std::vector<int>& parent) const {
    parent.resize(date_count);
    std::iota(parent.begin(), parent.end(), 0);
    auto find = [&](int x) {
      while (parent[x] != x) x = parent[x] = parent[parent[x]];
      return x;
    };
    int components = date_count;
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      if (w[k] <= 0.0) continue;
      const int a = find(pairs[k].ref);
      const int b = find(pairs[k].sec);
      if (a != b) {
        parent[a] = b;
        --components;
      }
    }
    rank = date_count - components;
    is_bridged = components > 1;
  }

  std::shared_ptr<const PatternSolver> build_solver(const std::vector<double>& w) const {
    auto solver = std::make_shared<PatternSolver>();
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      if (w[k] > 0.0) solver->pairs.push_back(static_cast<int>(k));
    }
    std::vector<int> parent;
    connectivity(w, solver->rank, solver->bridged, parent);
    const int unknowns = date_count - 1;
    const MatrixD n = normal_matrix(w);
    Eigen::LLT<MatrixD> llt(n);
    if (llt.info() != Eigen::Success) return solver;  // ok = false: nodes become nodata
    // A^T W restricted to the valid pairs: column c has +w at sec, -w at ref.
    const int m = static_cast<int>(solver->pairs.size());
    MatrixD atw = MatrixD::Zero(unknowns, m);
    for (int c = 0; c < m; ++c) {
      const auto& p = pairs[solver->pairs[c]];
      const double wk = w[solver->pairs[c]];
      if (p.sec > 0) atw(p.sec - 1, c) += wk;
      if (p.ref > 0) atw(p.ref - 1, c) -= wk;
    }
    const MatrixD s = llt.solve(atw);
    const MatrixD n_inv = llt.solve(MatrixD::Identity(unknowns, unknowns));
    VectorD c(unknowns);
    for (int k = 1; k < date_count; ++k) c(k - 1) = slope_coeff[k];
    solver->solve = s.cast<float>();
    solver->velocity = (c.transpose() * s).cast<float>();
    solver->sigma_unit.assign(date_count, 0.0);
    for (int k = 1; k < date_count; ++k)
      solver->sigma_unit[k] = std::sqrt(std::max(0.0, n_inv(k - 1, k - 1)));
    solver->velocity_sigma_unit = std::sqrt(std::max(0.0, static_cast<double>(c.transpose() * n_inv * c)));
    solver->ok = true;
    return solver;
  }

  std::shared_ptr<const PatternSolver> cached_solver(const std::string& key,
                                                     const std::vector<double>& w) const {
    {
      std::shared_lock lock(cache_mutex);
      const auto it = cache.find(key);
      if (it != cache.end()) return it->second;
    }
    auto solver = build_solver(w);
    patterns.fetch_add(1);
    const std::size_t bytes =
        static_cast<std::size_t>(solver->solve.size()) * sizeof(float) + key.size() + 256;
    std::unique_lock lock(cache_mutex);
    const auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    if (cache_bytes + bytes <= options.pattern_cache_bytes) {
      cache.emplace(key, solver);
      cache_bytes += bytes;
    }
    return solver;
  }

  double robust_weight(double z, RobustLoss loss) const {
    switch (loss) {
      case RobustLoss::kNone:
        return 1.0;
      case RobustLoss::kTukey: {
        const double c = 4.685;
        if (z >= c) return 0.0;
        const double q = 1.0 - (z / c) * (z / c);
        return q * q;
      }
      case RobustLoss::kHuber: {
        const double c = 1.345;
        return z <= c ? 1.0 : c / z;
      }
    }
    return 1.0;
  }

  // Writes one node's outputs from its series (u for every date, u[0] = 0) and the weights used.
  void finish_node(int node, const float* east, const float* north, const std::vector<double>& u_east,
                   const std::vector<double>& u_north, const std::vector<double>& w,
                   const std::vector<double>& robust, const std::vector<double>& sigma_unit,
                   double velocity_sigma_unit, double velocity_east, double velocity_north, int rank,
                   bool is_bridged, bool was_reweighted, InversionResult& out) const {
    NodeOutcome o;
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      if (w[k] <= 0.0) continue;
      const double re = east[k] - (u_east[pairs[k].sec] - u_east[pairs[k].ref]);
      const double rn = north[k] - (u_north[pairs[k].sec] - u_north[pairs[k].ref]);
      const double wk = w[k] * robust[k];
      o.rss_east += wk * re * re;
      o.rss_north += wk * rn * rn;
      // Consistency counts every valid pair at its own weight: pairs the robust pass rejected are exactly
      // the ones the series does not explain, and leaving them out would call any node consistent.
      o.sum_sq_weighted +=
          w[k] * (static_cast<double>(east[k]) * east[k] + static_cast<double>(north[k]) * north[k]);
      o.rss_all += w[k] * (re * re + rn * rn);
      if (robust[k] > 0.5) {
        o.rss_plain += re * re + rn * rn;
        ++o.used;
      }
      o.weight_sum += robust[k];
    }
    const std::size_t base = static_cast<std::size_t>(node) * date_count;
    const int dof = o.used - rank;
    std::uint8_t flag = kNodeOk;
    if (is_bridged) flag |= kNodeBridged;
    if (was_reweighted) flag |= kNodeReweighted;
    double sigma0_east = std::numeric_limits<double>::quiet_NaN();
    double sigma0_north = sigma0_east;
    if (dof > 0) {
      // The weighted residual sum over the effective degrees of freedom; weights are relative, so the
      // scale is estimated from the data (a posteriori variance factor).
      const double scale = static_cast<double>(o.used) / std::max(o.weight_sum, 1e-12);
      sigma0_east = std::sqrt(o.rss_east * scale / dof);
      sigma0_north = std::sqrt(o.rss_north * scale / dof);
    } else {
      flag |= kNodeNoRedundancy;
    }
    for (int k = 0; k < date_count; ++k) {
      out.east[base + k] = static_cast<float>(u_east[k]);
      out.north[base + k] = static_cast<float>(u_north[k]);
      out.east_sigma[base + k] = static_cast<float>(sigma0_east * sigma_unit[k]);
      out.north_sigma[base + k] = static_cast<float>(sigma0_north * sigma_unit[k]);
    }
    out.velocity_east[node] = static_cast<float>(velocity_east);
    out.velocity_north[node] = static_cast<float>(velocity_north);
    const double magnitude = std::hypot(velocity_east, velocity_north);
    out.velocity_magnitude[node] = static_cast<float>(magnitude);
    const double ve_std = sigma0_east * velocity_sigma_unit;
    const double vn_std = sigma0_north * velocity_sigma_unit;
    out.velocity_east_std[node] = static_cast<float>(ve_std);
    out.velocity_north_std[node] = static_cast<float>(vn_std);
    out.velocity_magnitude_std[node] =
        static_cast<float>(magnitude > 0 ? std::sqrt(velocity_east * velocity_east * ve_std * ve_std +
                                                     velocity_north * velocity_north * vn_std * vn_std) /
                                               magnitude
                                         : std::sqrt(0.5 * (ve_std * ve_std + vn_std * vn_std)));
    out.rmse[node] = static_cast<float>(o.used > 0 ? std::sqrt(o.rss_plain / o.used) : 0.0);
    out.valid_pairs[node] = static_cast<float>(o.used);
    out.consistency[node] = static_cast<float>(
        o.sum_sq_weighted > 0 ? std::clamp(1.0 - o.rss_all / o.sum_sq_weighted, 0.0, 1.0) : 1.0);
    out.flags[node] = flag;
    if (is_bridged) bridged.fetch_add(1);
    if (was_reweighted) reweighted.fetch_add(1);
  }

  // Largest residual in robust sigmas, per component scale; cheap screen for outlier pairs.
  bool needs_reweighting(const float* east, const float* north, const std::vector<double>& ue,
                         const std::vector<double>& un, const std::vector<double>& w, int rank,
                         Scratch& scratch) const {
    if (options.robust == RobustLoss::kNone) return false;
    int used = 0;
    double rss_e = 0;
    double rss_n = 0;
    double max_e = 0;
    double max_n = 0;
    std::vector<float>& abs_e = scratch.abs_east;
    std::vector<float>& abs_n = scratch.abs_north;
    abs_e.clear();
    abs_n.clear();
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      if (w[k] <= 0.0) continue;
      const double re = std::abs(east[k] - (ue[pairs[k].sec] - ue[pairs[k].ref]));
      const double rn = std::abs(north[k] - (un[pairs[k].sec] - un[pairs[k].ref]));
      rss_e += re * re;
      rss_n += rn * rn;
      max_e = std::max(max_e, re);
      max_n = std::max(max_n, rn);
      abs_e.push_back(static_cast<float>(re));
      abs_n.push_back(static_cast<float>(rn));
      ++used;
    }
    const int dof = used - rank;
    if (dof < 2) return false;  // outliers cannot be told from signal without redundancy
    const double k = options.outlier_threshold;
    const double floor = options.min_sigma;
    // Residual RMS corrected for the parameters fitted catches a lone outlier cheaply; several outliers
    // inflate the RMS and hide each other, so a median-based scale (which they cannot inflate) decides.
    const double rms_e = std::max(floor, std::sqrt(rss_e / dof));
    const double rms_n = std::max(floor, std::sqrt(rss_n / dof));
    if (max_e > k * rms_e || max_n > k * rms_n) return true;
    if (max_e <= k * floor && max_n <= k * floor) return false;
    // max > k * 1.4826 * inflate * median(|r|) holds exactly when more than half of the |r| lie below
    // max / (k * 1.4826 * inflate): a counting pass instead of a selection.
    const double inflate = std::sqrt(static_cast<double>(used) / dof);
    auto beyond_median_scale = [&](const std::vector<float>& v, double max_abs) {
      if (max_abs <= k * floor) return false;
      const auto below = static_cast<float>(max_abs / (k * 1.4826 * inflate));
      std::size_t count = 0;
      for (const float x : v) count += x < below ? 1 : 0;
      return count >= v.size() / 2 + 1;
    };
    return beyond_median_scale(abs_e, max_e) || beyond_median_scale(abs_n, max_n);
  }

  // From N = L L^T: sigma_unit[k] = sqrt((N^-1)_{k-1,k-1}) (column norms of L^-1, by forward substitution
  // that skips the known zeros: n^3/6 flops instead of a full inverse) and c^T N^-1 c = |L^-1 c|^2.
  static void inverse_diagonal(const Eigen::LLT<MatrixD>& llt, const std::vector<double>& c,
                               std::vector<double>& sigma_unit, double& quadratic, std::vector<double>& x) {
    const MatrixD& l = llt.matrixLLT();  // lower triangle holds L
    const int n = static_cast<int>(l.rows());
    x.assign(n, 0.0);
    for (int j = 0; j < n; ++j) {
      double norm2 = 0.0;
      x[j] = 1.0 / l(j, j);
      norm2 += x[j] * x[j];
      for (int i = j + 1; i < n; ++i) {
        double sum = 0.0;
        for (int k = j; k < i; ++k) sum += l(i, k) * x[k];
        x[i] = -sum / l(i, i);
        norm2 += x[i] * x[i];
      }
      sigma_unit[j + 1] = std::sqrt(norm2);
    }
    for (int i = 0; i < n; ++i) {
      double sum = c[i];
      for (int k = 0; k < i; ++k) sum -= l(i, k) * x[k];
      x[i] = sum / l(i, i);
    }
    quadratic = 0.0;
    for (int i = 0; i < n; ++i) quadratic += x[i] * x[i];
  }

  // Solves one node on its own (IRLS when `robust_pass`), from scratch.
  // With `screen_first`, the first solve decides (needs_reweighting) whether IRLS follows.
  void solve_single(int node, const float* east, const float* north, const std::vector<double>& base_weights,
                    bool robust_pass, bool screen_first, Scratch& scratch, InversionResult& out) const {
    const int unknowns = date_count - 1;
    std::vector<double>& robust = scratch.robust;
    std::vector<double>& ue = scratch.east;
    std::vector<double>& un = scratch.north;
    std::vector<double>& w = scratch.weights;
    robust.assign(pairs.size(), 1.0);
    ue.assign(date_count, 0.0);
    un.assign(date_count, 0.0);
    w.resize(pairs.size());
    std::optional<Eigen::LLT<MatrixD>> last;
    int rank = 0;
    bool is_bridged = false;
    int iterations = robust_pass ? options.max_irls_iterations : 1;
    RobustLoss loss = options.robust;
    bool final_pass = false;
    std::vector<float>& abs_r = scratch.abs_residual;
    for (int it = 0; it < iterations; ++it) {
      for (std::size_t k = 0; k < pairs.size(); ++k) w[k] = base_weights[k] * robust[k];
      connectivity(w, rank, is_bridged, scratch.parent);
      last.emplace(normal_matrix(w));
      const auto& llt = *last;
      if (llt.info() != Eigen::Success) {
        out.flags[node] = kNodeNoData;
        nodata.fetch_add(1);
        return;
      }
      VectorD be = VectorD::Zero(unknowns);
      VectorD bn = VectorD::Zero(unknowns);
      for (std::size_t k = 0; k < pairs.size(); ++k) {
        if (w[k] <= 0.0) continue;
        if (pairs[k].sec > 0) {
          be(pairs[k].sec - 1) += w[k] * east[k];
          bn(pairs[k].sec - 1) += w[k] * north[k];
        }
        if (pairs[k].ref > 0) {
          be(pairs[k].ref - 1) -= w[k] * east[k];
          bn(pairs[k].ref - 1) -= w[k] * north[k];
        }
      }
      const VectorD xe = llt.solve(be);
      const VectorD xn = llt.solve(bn);
      for (int k = 1; k < date_count; ++k) {
        ue[k] = xe(k - 1);
        un[k] = xn(k - 1);
      }
      if (it == 0 && screen_first) {
        robust_pass = needs_reweighting(east, north, ue, un, w, rank, scratch);
        iterations = robust_pass ? options.max_irls_iterations : 1;
      }
      if (!robust_pass || final_pass || it + 1 == iterations) break;
      // New robust weights from normalised residuals (median absolute residual per component).
      auto scale_of = [&](bool east_component) {
        abs_r.clear();
        for (std::size_t k = 0; k < pairs.size(); ++k) {
          if (base_weights[k] <= 0.0) continue;
          const float* d = east_component ? east : north;
          const auto& u = east_component ? ue : un;
          abs_r.push_back(static_cast<float>(std::abs(d[k] - (u[pairs[k].sec] - u[pairs[k].ref]))));
        }
        const double median_abs_r = upper_median_in_place(abs_r);
        // Residuals are smaller than the noise by the fraction of freedom the fit used up.
        const double inflate =
            std::sqrt(static_cast<double>(abs_r.size()) / std::max(1, static_cast<int>(abs_r.size()) - rank));
        return std::max(options.min_sigma, 1.4826 * inflate * median_abs_r);
      };
      const double se = scale_of(true);
      const double sn = scale_of(false);
      std::vector<double>& next = scratch.next;
      next.assign(pairs.size(), 1.0);
      auto reweight = [&](RobustLoss l) {
        for (std::size_t k = 0; k < pairs.size(); ++k) {
          if (base_weights[k] <= 0.0) continue;
          const double z = std::max(std::abs(east[k] - (ue[pairs[k].sec] - ue[pairs[k].ref])) / se,
                                    std::abs(north[k] - (un[pairs[k].sec] - un[pairs[k].ref])) / sn);
          next[k] = robust_weight(z, l);
        }
      };
      reweight(loss);
      if (loss == RobustLoss::kTukey) {
        // Rejecting pairs must leave some redundancy, or nothing could tell an outlier from the signal
        // any more (a thin, cloudy network): then this node falls back to Huber, which never rejects.
        std::vector<double>& kept = scratch.kept;
        kept.assign(pairs.size(), 0.0);
        int used = 0;
        for (std::size_t k = 0; k < pairs.size(); ++k) {
          if (base_weights[k] > 0.0 && next[k] > 0.5) {
            kept[k] = 1.0;
            ++used;
          }
        }
        int kept_rank = 0;
        bool kept_bridged = false;
        connectivity(kept, kept_rank, kept_bridged, scratch.parent);
        if (used - kept_rank < 1) {
          loss = RobustLoss::kHuber;
          reweight(loss);
        }
      }
      double change = 0.0;
      for (std::size_t k = 0; k < pairs.size(); ++k) {
        if (base_weights[k] <= 0.0) continue;
        change = std::max(change, std::abs(next[k] - robust[k]));
        robust[k] = next[k];
      }
      // Weights settled: one more solve with them, then stop.
      if (change < 1e-3) final_pass = true;
    }
    // The inverse normal matrix only for the final weights (it gives the uncertainties).
    std::vector<double>& sigma_unit = scratch.sigma_unit;
    std::vector<double>& c = scratch.slope;
    sigma_unit.assign(date_count, 0.0);
    c.resize(unknowns);
    for (int k = 1; k < date_count; ++k) c[k - 1] = slope_coeff[k];
    double v_var = 0.0;
    inverse_diagonal(*last, c, sigma_unit, v_var, scratch.column);
    double ve = 0;
    double vn = 0;
    for (int k = 1; k < date_count; ++k) {
      ve += slope_coeff[k] * ue[k];
      vn += slope_coeff[k] * un[k];
    }
    const double v_sigma = std::sqrt(std::max(0.0, v_var));
    finish_node(node, east, north, ue, un, base_weights, robust, sigma_unit, v_sigma, ve, vn, rank,
                is_bridged, robust_pass, out);
  }

  void run_chunk(const PairObservations& obs, int first, int last, InversionResult& out) const {
    Scratch& mine = scratch.local();
    const int m = obs.pair_count;
    const int words = (m + 63) / 64;
    std::map<std::string, std::vector<int>> groups;  // ordered: deterministic processing order
    std::vector<double>& w = mine.chunk_weights;
    w.resize(m);
    std::string key(static_cast<std::size_t>(words) * 8, '\0');
    for (int node = first; node < last; ++node) {
      const float* e = obs.east + static_cast<std::size_t>(node) * m;
      const float* n = obs.north + static_cast<std::size_t>(node) * m;
      std::fill(key.begin(), key.end(), '\0');
      int valid = 0;
      for (int k = 0; k < m; ++k) {
        if (std::isfinite(e[k]) && std::isfinite(n[k])) {
          key[k / 8] = static_cast<char>(key[k / 8] | (1 << (k % 8)));
          ++valid;
        }
      }
      if (valid < options.min_valid_pairs) {
        out.flags[node] = kNodeNoData;
        nodata.fetch_add(1);
        continue;
      }
      if (obs.node_weight != nullptr) {
        const float* q = obs.node_weight + static_cast<std::size_t>(node) * m;
        for (int k = 0; k < m; ++k) {
          const bool ok = std::isfinite(e[k]) && std::isfinite(n[k]) && std::isfinite(q[k]) && q[k] > 0.0f;
          w[k] = ok ? pairs[k].weight * std::clamp(static_cast<double>(q[k]), 1e-3, 1.0) : 0.0;
        }
        solve_single(node, e, n, w, false, true, mine, out);
        continue;
      }
      groups[key].push_back(node);
    }
    std::vector<double>& ue = mine.chunk_east;
    std::vector<double>& un = mine.chunk_north;
    std::vector<double>& ones = mine.ones;
    ue.assign(date_count, 0.0);
    un.assign(date_count, 0.0);
    ones.assign(m, 1.0);
    for (const auto& [pattern, members] : groups) {
      for (int k = 0; k < m; ++k) w[k] = (pattern[k / 8] >> (k % 8)) & 1 ? pairs[k].weight : 0.0;
      const auto solver = cached_solver(pattern, w);
      if (!solver->ok) {
        for (const int node : members) out.flags[node] = kNodeNoData;
        nodata.fetch_add(static_cast<std::int64_t>(members.size()));
        continue;
      }
      const int nv = static_cast<int>(solver->pairs.size());
      // Node by node (a matrix-vector product each) rather than one product over the pattern's nodes: a
      // matrix product's blocking and vector lanes depend on how many nodes share the pattern, which
      // depends on the windows the nodes were read in, and would change the last bits of the results.
      Eigen::VectorXf de(nv);
      Eigen::VectorXf dn(nv);
      Eigen::VectorXf u_east(date_count - 1);
      Eigen::VectorXf u_north(date_count - 1);
      for (const int node : members) {
        const float* e = obs.east + static_cast<std::size_t>(node) * m;
        const float* n = obs.north + static_cast<std::size_t>(node) * m;
        for (int r = 0; r < nv; ++r) {
          de(r) = e[solver->pairs[r]];
          dn(r) = n[solver->pairs[r]];
        }
        u_east.noalias() = solver->solve * de;
        u_north.noalias() = solver->solve * dn;
        const float v_east = solver->velocity.dot(de);
        const float v_north = solver->velocity.dot(dn);
        for (int k = 1; k < date_count; ++k) {
          ue[k] = u_east(k - 1);
          un[k] = u_north(k - 1);
        }
        if (needs_reweighting(e, n, ue, un, w, solver->rank, mine)) {
          solve_single(node, e, n, w, true, false, mine, out);
          continue;
        }
        finish_node(node, e, n, ue, un, w, ones, solver->sigma_unit, solver->velocity_sigma_unit, v_east,
                    v_north, solver->rank, solver->bridged, false, out);
      }
    }
  }
};

namespace {

std::vector<Epoch> epochs_of(const std::vector<io::Date>& dates) {
  std::vector<Epoch> epochs;
  for (const auto& d : dates) epochs.push_back({d, std::nullopt});
  return epochs;
}

}  // namespace

NetworkInverter::NetworkInverter(std::vector<io::Date> dates, std::vector<NetworkPair> pairs,
                                 InversionOptions options)
    : NetworkInverter(epochs_of(dates), std::move(pairs), options) {}

NetworkInverter::NetworkInverter(std::vector<Epoch> epochs, std::vector<NetworkPair> pairs,
                                 InversionOptions options)
    : epochs_(std::move(epochs)),
      pairs_(std::move(pairs)),
      options_(options),
      impl_(std::make_unique<Impl>()) {
  options_.validate();
  if (epochs_.size() < 2)
    throw InvalidArgument(fmt::format("inversion: needs at least 2 dates, got {}", epochs_.size()));
  for (std::size_t k = 1; k < epochs_.size(); ++k) {
    if (!(days_between(epochs_[k - 1], epochs_[k]) > 0.0)) {
      throw InvalidArgument(fmt::format("inversion: dates must increase strictly ({} then {})",
                                        epochs_[k - 1].iso(), epochs_[k].iso()));
    }
  }
  for (const auto& e : epochs_) dates_.push_back(e.date);
  if (pairs_.empty()) throw InvalidArgument("inversion: no pair");
  const int n = static_cast<int>(epochs_.size());
  for (std::size_t k = 0; k < pairs_.size(); ++k) {
    const auto& p = pairs_[k];
    if (p.ref < 0 || p.sec < 0 || p.ref >= n || p.sec >= n || p.ref == p.sec) {
      throw InvalidArgument(
          fmt::format("inversion: pair {} joins dates {} and {}; expected two distinct dates in 0..{}", k,
                      p.ref, p.sec, n - 1));
    }
    if (!(p.weight > 0.0) || !std::isfinite(p.weight)) {
      throw InvalidArgument(fmt::format("inversion: pair {} has weight {}; expected > 0", k, p.weight));
    }
  }
  auto& im = *impl_;
  im.date_count = n;
  im.pairs = pairs_;
  im.options = options_;
  im.t_years.resize(n);
  // Days with their fractions (instants hours apart), in years of 365.25 days like pair spans.
  for (int k = 0; k < n; ++k) im.t_years[k] = days_between(epochs_[0], epochs_[k]) / 365.25;
  const double mean_t = std::accumulate(im.t_years.begin(), im.t_years.end(), 0.0) / n;
  double sxx = 0;
  for (const double t : im.t_years) sxx += (t - mean_t) * (t - mean_t);
  im.slope_coeff.resize(n);
  for (int k = 0; k < n; ++k) im.slope_coeff[k] = (im.t_years[k] - mean_t) / sxx;
  // Velocity-change penalty rows, scaled by the median interval so that lambda is dimensionless.
  std::vector<double> dt(n - 1);
  for (int k = 0; k + 1 < n; ++k) dt[k] = im.t_years[k + 1] - im.t_years[k];
  const double tau = upper_median_of(dt);
  im.regularization_normal = MatrixD::Zero(n - 1, n - 1);
  const double lambda2 = options_.regularization * options_.regularization;
  for (int k = 1; k + 1 < n; ++k) {
    // Row over dates k-1, k, k+1; date 0 is fixed at zero and drops out.
    const double coeff[3] = {tau / dt[k - 1], -tau / dt[k - 1] - tau / dt[k], tau / dt[k]};
    const int idx[3] = {k - 2, k - 1, k};
    for (int a = 0; a < 3; ++a) {
      if (idx[a] < 0) continue;
      for (int b = 0; b < 3; ++b) {
        if (idx[b] < 0) continue;
        im.regularization_normal(idx[a], idx[b]) += lambda2 * coeff[a] * coeff[b];
      }
    }
  }
}

NetworkInverter::~NetworkInverter() = default;

void NetworkInverter::invert(const PairObservations& observations, InversionResult& result,
                             Progress* progress) const {
  if (observations.pair_count != static_cast<int>(pairs_.size())) {
    throw InvalidArgument(fmt::format("inversion: observations have {} pairs, the network {}",
                                      observations.pair_count, pairs_.size()));
  }
  if (observations.node_count < 0 ||
      (observations.node_count > 0 && (!observations.east || !observations.north))) {
    throw InvalidArgument("inversion: observations need east and north arrays");
  }
  result.resize(observations.node_count, static_cast<int>(epochs_.size()));
  const int chunks = (observations.node_count + kChunkNodes - 1) / kChunkNodes;
  std::atomic<bool> stop{false};
  tbb::parallel_for(
      tbb::blocked_range<int>(0, chunks, 1),
      [&](const tbb::blocked_range<int>& range) {
        for (int chunk = range.begin(); chunk < range.end(); ++chunk) {
          if (stop.load() || (progress != nullptr && progress->cancelled())) {
            stop.store(true);
            return;
          }
          const int first = chunk * kChunkNodes;
          const int last = std::min(observations.node_count, first + kChunkNodes);
          impl_->run_chunk(observations, first, last, result);
          if (progress != nullptr) progress->advance(static_cast<std::uint64_t>(last - first));
        }
      },
      tbb::simple_partitioner());
  if (stop.load()) throw Cancelled("inversion cancelled");
  impl_->nodes.fetch_add(observations.node_count);
}

InversionStats NetworkInverter::stats() const {
  InversionStats s;
  s.nodes = impl_->nodes.load();
  s.nodes_nodata = impl_->nodata.load();
  s.nodes_reweighted = impl_->reweighted.load();
  s.nodes_bridged = impl_->bridged.load();
  s.patterns = impl_->patterns.load();
  return s;
}

}  // namespace deforma::timeseries
