// Benchmark of the time-series inversion (docs/timeseries.md): 1,000,000 nodes x 200 pairs x 40 dates,
// streamed in blocks of nodes that fit --ram, against a per-node SciPy lstsq baseline equivalent to
// MintPy's network inversion (bench/timeseries/invert_baseline.py) on the first --baseline-nodes nodes of
// the same data (a per-node Python loop over 1M nodes would take far too long; its throughput is
// extrapolated and the table says so).
//
// Data model (deterministic from --seed): every node moves linearly plus a seasonal term plus noise
// (2 cm); missing pairs are spatially coherent (a pair is missing over a whole tile of 4096 nodes with
// probability 5%, as clouds or decorrelation do); 1% of the nodes carry one gross outlier pair.
//
// --write-pairs DIR writes the same data for a --width x --height grid of nodes (node = row * width + col)
// as one displacement COG per pair (bands east_m, north_m; nodata -9999) with DIR/pairs.csv, the input of
// `deforma invert`, and measures nothing (bench/compare_versions.sh runs the CLI on it).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "deforma/io/cog_writer.hpp"
#include "deforma/timeseries/invert.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace {

using deforma::timeseries::InversionOptions;
using deforma::timeseries::InversionResult;
using deforma::timeseries::NetworkInverter;
using deforma::timeseries::NetworkPair;
using deforma::timeseries::PairObservations;
using deforma::timeseries::RobustLoss;

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
double uniform(std::uint64_t key) {
  return static_cast<double>(splitmix(key) >> 11) * 0x1.0p-53;
}
double gaussian(std::uint64_t key) {
  const double u1 = std::max(uniform(key), 1e-300);
  const double u2 = uniform(key ^ 0x5555555555555555ull);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

struct Network {
  std::vector<deforma::io::Date> dates;
  std::vector<NetworkPair> pairs;
  std::vector<double> t_years;
};

Network make_network(int date_count, int pair_count) {
  Network net;
  const auto first = deforma::io::Date::from_ymd(2020, 1, 1).days_since_epoch();
  for (int k = 0; k < date_count; ++k) {
    net.dates.push_back(deforma::io::Date::from_days_since_epoch(first + 12 * k));
    net.t_years.push_back(12.0 * k / 365.25);
  }
  for (int step = 1; static_cast<int>(net.pairs.size()) < pair_count && step < date_count; ++step) {
    for (int i = 0; i + step < date_count && static_cast<int>(net.pairs.size()) < pair_count; ++i) {
      net.pairs.push_back({i, i + step, 1.0});
    }
  }
  return net;
}

// Observations of nodes [first, first + count), node-major.
void generate(const Network& net, std::uint64_t seed, std::int64_t first, int count, std::vector<float>& east,
              std::vector<float>& north, std::vector<float>* quality = nullptr) {
  const int m = static_cast<int>(net.pairs.size());
  east.resize(static_cast<std::size_t>(count) * m);
  north.resize(east.size());
  if (quality != nullptr) quality->resize(east.size());
  tbb::parallel_for(0, count, [&](int i) {
    const std::int64_t node = first + i;
    const std::uint64_t key = seed * 1000003ull + static_cast<std::uint64_t>(node) * 7919ull;
    const double ve = 5.0 * gaussian(key + 1);
    const double vn = 5.0 * gaussian(key + 2);
    const double amp = 0.3 * uniform(key + 3);
    const std::int64_t tile = node / 4096;
    const bool has_outlier = uniform(key + 4) < 0.01;
    const int outlier_pair = static_cast<int>(uniform(key + 5) * m);
    auto ue = [&](int k) { return ve * net.t_years[k] + amp * std::sin(2 * M_PI * net.t_years[k]); };
    auto un = [&](int k) { return vn * net.t_years[k]; };
    for (int p = 0; p < m; ++p) {
      const auto& pr = net.pairs[p];
      const std::size_t at = static_cast<std::size_t>(i) * m + p;
      const bool missing = uniform(seed * 31ull + static_cast<std::uint64_t>(tile) * 1009ull +
                                   static_cast<std::uint64_t>(p)) < 0.05;
      if (missing) {
        east[at] = north[at] = std::nanf("");
        continue;
      }
      east[at] = static_cast<float>(ue(pr.sec) - ue(pr.ref) + 0.02 * gaussian(key * 131ull + p * 2 + 11));
      north[at] = static_cast<float>(un(pr.sec) - un(pr.ref) + 0.02 * gaussian(key * 131ull + p * 2 + 12));
      if (has_outlier && p == outlier_pair) east[at] += 3.0f;
      // Correlation-like per-node quality in [0.4, 1] (the --weight-band path of deforma invert).
      if (quality != nullptr) (*quality)[at] = static_cast<float>(0.4 + 0.6 * uniform(key * 977ull + p));
    }
  });
}

// The data of nodes [0, width x height) as per-pair rasters and their pair table, in blocks of rows so that
// memory stays bounded.
void write_pairs(const Network& net, std::uint64_t seed, int width, int height, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const int m = static_cast<int>(net.pairs.size());
  deforma::io::GeoTransform gt;
  gt.c = {500000.0, 100.0, 0.0, 6700000.0, 0.0, -100.0};
  std::vector<deforma::timeseries::Pair> table;
  std::vector<std::unique_ptr<deforma::io::CogWriter>> writers;
  for (const auto& np : net.pairs) {
    deforma::timeseries::Pair p;
    p.ref_date = net.dates[np.ref];
    p.sec_date = net.dates[np.sec];
    p.id = p.ref_date.compact() + "_" + p.sec_date.compact();
    p.ref_path = "ref.tif";  // not read by the inversion
    p.sec_path = "sec.tif";
    p.result_path = (fs::path(dir) / (p.id + ".tif")).string();
    writers.push_back(std::make_unique<deforma::io::CogWriter>(
        p.result_path, width, height,
        std::vector<deforma::io::OutputBand>{{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}}, gt, "",
        deforma::io::Provenance{}));
    table.push_back(p);
  }
  const int block_rows = std::max(1, 262144 / width);
  std::vector<float> east;
  std::vector<float> north;
  for (int r0 = 0; r0 < height; r0 += block_rows) {
    const int rows = std::min(block_rows, height - r0);
    generate(net, seed, static_cast<std::int64_t>(r0) * width, rows * width, east, north);
    for (int p = 0; p < m; ++p) {
      deforma::GridF e(width, rows);
      deforma::GridF n(width, rows);
      for (int i = 0; i < rows * width; ++i) {
        const float ev = east[static_cast<std::size_t>(i) * m + p];
        const float nv = north[static_cast<std::size_t>(i) * m + p];
        e.data()[i] = std::isfinite(ev) ? ev : -9999.0f;
        n.data()[i] = std::isfinite(nv) ? nv : -9999.0f;
      }
      writers[p]->write(1, deforma::io::Window{0, r0, width, rows}, e);
      writers[p]->write(2, deforma::io::Window{0, r0, width, rows}, n);
    }
  }
  for (auto& w : writers) w->finish();
  deforma::timeseries::write_pair_table((fs::path(dir) / "pairs.csv").string(), table);
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("deforma time-series inversion benchmark");
  std::int64_t nodes = 1000000;
  int pair_count = 200;
  int date_count = 40;
  int baseline_nodes = 20000;
  int threads = 2;
  std::size_t ram_mb = 1024;
  std::uint64_t seed = 42;
  std::string work_dir = "bench-timeseries";
  std::string python = "/usr/bin/python3";
  std::string script = std::string(DEFORMA_SOURCE_DIR) + "/bench/timeseries/invert_baseline.py";
  bool node_weights = false;
  std::string pairs_dir;
  int width = 1000;
  int height = 1000;
  app.add_option("--nodes", nodes, "nodes to invert");
  app.add_option("--pairs", pair_count, "pairs in the network");
  app.add_option("--dates", date_count, "dates in the network");
  app.add_option("--baseline-nodes", baseline_nodes, "nodes given to the Python baseline (0 = skip it)");
  app.add_option("--threads", threads, "worker threads");
  app.add_option("--ram", ram_mb, "memory budget in MB for the streamed blocks of nodes");
  app.add_option("--seed", seed, "data seed");
  app.add_option("--work-dir", work_dir, "folder for the shared input and the baseline's output");
  app.add_option("--python", python, "Python interpreter with NumPy and SciPy");
  app.add_option("--script", script, "baseline script");
  app.add_flag(
      "--node-weights", node_weights,
      "also give per-node pair weights (every node is then factored on its own, as with --weight-band)");
  app.add_option("--write-pairs", pairs_dir,
                 "write the data of --width x --height nodes as pair rasters and pairs.csv here, then stop");
  app.add_option("--width", width, "with --write-pairs: nodes per row")->check(CLI::Range(1, 100000));
  app.add_option("--height", height, "with --write-pairs: rows of nodes")->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);

  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  const Network net = make_network(date_count, pair_count);
  pair_count = static_cast<int>(net.pairs.size());
  if (!pairs_dir.empty()) {
    write_pairs(net, seed, width, height, pairs_dir);
    return 0;
  }
  std::filesystem::create_directories(work_dir);

  // --- Ours: the whole set, streamed in blocks of nodes within the RAM budget. ---
  // Per node: observations 2 x pairs floats, results 4 x dates + 10 floats, plus the kernel's gathered copy.
  const double bytes_per_node = pair_count * 2.0 * 4.0 * 2.0 + (4.0 * date_count + 10.0) * 4.0;
  const int block =
      static_cast<int>(std::clamp(ram_mb * 1024.0 * 1024.0 * 0.5 / bytes_per_node, 4096.0, 4.0e6));
  NetworkInverter inverter(net.dates, net.pairs);
  std::vector<float> east;
  std::vector<float> north;
  std::vector<float> quality;
  InversionResult result;
  double invert_s = 0.0;
  double generate_s = 0.0;
  double velocity_error_sum = 0.0;
  std::int64_t velocity_count = 0;
  for (std::int64_t first = 0; first < nodes; first += block) {
    const int count = static_cast<int>(std::min<std::int64_t>(block, nodes - first));
    auto t0 = std::chrono::steady_clock::now();
    generate(net, seed, first, count, east, north, node_weights ? &quality : nullptr);
    auto t1 = std::chrono::steady_clock::now();
    inverter.invert(PairObservations{count, pair_count, east.data(), north.data(),
                                     node_weights ? quality.data() : nullptr},
                    result);
    auto t2 = std::chrono::steady_clock::now();
    generate_s += std::chrono::duration<double>(t1 - t0).count();
    invert_s += std::chrono::duration<double>(t2 - t1).count();
    for (int i = 0; i < count; i += 97) {  // accuracy check on a sample against the true velocity
      const std::uint64_t key = seed * 1000003ull + static_cast<std::uint64_t>(first + i) * 7919ull;
      velocity_error_sum += std::abs(result.velocity_north[i] - 5.0 * gaussian(key + 2));
      ++velocity_count;
    }
  }
  const double ours_rss = peak_rss_mb();
  const auto stats = inverter.stats();

  // --- Baseline: the first baseline_nodes nodes of the same data, per node in Python. ---
  nlohmann::json baseline;
  double max_diff = std::nan("");
  double subset_ours_s = 0.0;
  if (baseline_nodes > 0) {
    const int bn = static_cast<int>(std::min<std::int64_t>(baseline_nodes, nodes));
    generate(net, seed, 0, bn, east, north);
    const std::string input = (std::filesystem::path(work_dir) / "invert_input.bin").string();
    const std::string output = (std::filesystem::path(work_dir) / "invert_baseline_out.bin").string();
    {
      std::ofstream f(input, std::ios::binary);
      const std::int32_t header[3] = {bn, pair_count, date_count};
      f.write(reinterpret_cast<const char*>(header), sizeof header);
      for (const auto& p : net.pairs) f.write(reinterpret_cast<const char*>(&p.ref), 4);
      for (const auto& p : net.pairs) f.write(reinterpret_cast<const char*>(&p.sec), 4);
      f.write(reinterpret_cast<const char*>(east.data()), static_cast<std::streamsize>(east.size() * 4));
      f.write(reinterpret_cast<const char*>(north.data()), static_cast<std::streamsize>(north.size() * 4));
    }
    const std::string json_path = (std::filesystem::path(work_dir) / "invert_baseline.json").string();
    const std::string cmd = fmt::format("OPENBLAS_NUM_THREADS=1 '{}' '{}' '{}' '{}' > '{}'", python, script,
                                        input, output, json_path);
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "baseline failed: %s\n", cmd.c_str());
      return 1;
    }
    std::ifstream(json_path) >> baseline;
    // Same problem, same answer: plain least squares (no regularization, no robust pass) on the subset.
    InversionOptions plain;
    plain.regularization = 0.0;
    plain.robust = RobustLoss::kNone;
    NetworkInverter plain_inverter(net.dates, net.pairs, plain);
    InversionResult plain_result;
    const auto t0 = std::chrono::steady_clock::now();
    plain_inverter.invert(PairObservations{bn, pair_count, east.data(), north.data()}, plain_result);
    subset_ours_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<float> theirs(static_cast<std::size_t>(bn) * 2 * (date_count - 1));
    std::ifstream(output, std::ios::binary)
        .read(reinterpret_cast<char*>(theirs.data()), static_cast<std::streamsize>(theirs.size() * 4));
    max_diff = 0.0;
    for (int n = 0; n < bn; ++n) {
      for (int c = 0; c < 2; ++c) {
        for (int k = 1; k < date_count; ++k) {
          const float ours =
              (c == 0 ? plain_result.east : plain_result.north)[static_cast<std::size_t>(n) * date_count + k];
          const float other = theirs[(static_cast<std::size_t>(n) * 2 + c) * (date_count - 1) + (k - 1)];
          if (std::isfinite(ours) && std::isfinite(other))
            max_diff = std::max(max_diff, std::abs(double(ours) - other));
        }
      }
    }
    std::filesystem::remove(input);
    std::filesystem::remove(output);
  }

  const double ours_rate = nodes / invert_s;
  std::printf("\n## Time-series inversion: %lld nodes x %d pairs x %d dates, %d threads, --ram %zu MB%s\n\n",
              static_cast<long long>(nodes), pair_count, date_count, threads, ram_mb,
              node_weights ? ", per-node weights" : "");
  std::printf(
      "| measure | deforma (NetworkInverter) | NumPy/SciPy per-node lstsq (MintPy-style) | ratio |\n");
  std::printf("|---|---|---|---|\n");
  if (!baseline.is_null()) {
    const double base_rate = baseline["nodes_per_s"].get<double>();
    const double base_s = baseline["seconds"].get<double>();
    std::printf("| nodes timed | %lld | %d (subset; 1M extrapolated below) | |\n",
                static_cast<long long>(nodes), baseline["nodes"].get<int>());
    std::printf("| inversion time for %lld nodes | %.2f s | %.1f s (extrapolated from %.2f s) | %.1fx |\n",
                static_cast<long long>(nodes), invert_s, nodes / base_rate, base_s,
                (nodes / base_rate) / invert_s);
    std::printf("| throughput | %.0f nodes/s | %.0f nodes/s | **%.1fx** |\n", ours_rate, base_rate,
                ours_rate / base_rate);
    std::printf("| peak RSS | %.0f MB (budget %zu MB) | %.0f MB (%d nodes in memory) | |\n", ours_rss, ram_mb,
                baseline["peak_rss_mb"].get<double>(), baseline["nodes"].get<int>());
    std::printf("| same subset, plain LS | %.3f s | %.2f s | %.1fx |\n", subset_ours_s, base_s,
                base_s / subset_ours_s);
    std::printf("| max difference, plain LS vs lstsq | %.2g m | | |\n", max_diff);
  } else {
    std::printf(
        "| inversion time | %.2f s | (skipped) | |\n| throughput | %.0f nodes/s | | |\n| peak RSS | %.0f MB "
        "| | |\n",
        invert_s, ours_rate, ours_rss);
  }
  std::printf(
      "\nours: blocks of %d nodes; %lld validity patterns factored; %lld nodes robustly reweighted; "
      "data generation %.2f s (not timed); mean |velocity north error| %.4f m/yr\n",
      block, static_cast<long long>(stats.patterns), static_cast<long long>(stats.nodes_reweighted),
      generate_s, velocity_error_sum / std::max<std::int64_t>(1, velocity_count));
  return 0;
}
