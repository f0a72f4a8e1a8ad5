// Benchmark of the EGMS model fitting (deforma::egms::TimeSeriesModel) against a vectorised NumPy lstsq
// baseline (bench/egms/fit_baseline.py) on the same synthetic data: N points x T dates generated from
// the point and date indices by both programs, streamed in chunks (memory independent of N). Also times
// the Ortho level on the real Ustica pair when the sample data are present.
//
// Usage: egms_fit_bench [--points N] [--dates T] [--chunk C] [--python PATH] [--data DIR] [--out DIR]
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <nlohmann/json.hpp>

#include "deforma/egms/model.hpp"
#include "deforma/egms/ortho.hpp"
#include "egms/stream.hpp"

namespace {

double splitmix_unit(std::uint64_t x) {
  std::uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z = z ^ (z >> 31);
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

// Same formula as fit_baseline.py's generate().
void generate(deforma::egms::PointChunk& chunk, std::uint64_t first, std::size_t count,
              const std::vector<double>& t) {
  const std::size_t dates = t.size();
  chunk.reset(0, dates);
  chunk.pid.assign(count, {});
  chunk.source_line.assign(count, 0);
  chunk.series.resize(count * dates);
  std::vector<double> seasonal(dates);
  for (std::size_t k = 0; k < dates; ++k) seasonal[k] = std::sin(2 * std::numbers::pi * t[k]);
  tbb::parallel_for(std::size_t{0}, count, [&](std::size_t i) {
    const std::uint64_t p = first + i;
    const double velocity = static_cast<double>((p * 7919) % 2001) / 100.0 - 10.0;
    const double amplitude = static_cast<double>((p * 104729) % 301) / 100.0;
    float* row = chunk.series.data() + i * dates;
    for (std::size_t k = 0; k < dates; ++k) {
      const double noise = (splitmix_unit(p * dates + k) * 2.0 - 1.0) * 1.5;
      row[k] = static_cast<float>(velocity * t[k] + amplitude * seasonal[k] + noise);
    }
  });
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

std::string default_python() {
  if (const char* env = std::getenv("DEFORMA_PYTHON"); env && *env) return env;
  // Debian's interpreter carries python3-numpy; a python3 first on PATH may not.
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t points = 1000000, dates = 300, chunk_points = 20000;
  std::string python = default_python();
  std::string data_dir = std::string(DEFORMA_SOURCE_DIR) + "/../shared/data";
  std::string out_dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--points")
      points = std::stoull(value);
    else if (key == "--dates")
      dates = std::stoull(value);
    else if (key == "--chunk")
      chunk_points = std::stoull(value);
    else if (key == "--python")
      python = value;
    else if (key == "--data")
      data_dir = value;
    else if (key == "--out")
      out_dir = value;
  }
  std::vector<int> days(dates);
  for (std::size_t k = 0; k < dates; ++k) days[k] = 18000 + 6 * static_cast<int>(k);
  const deforma::egms::TimeSeriesModel model(days);
  const auto& t = model.times_years();

  deforma::egms::PointChunk chunk;
  std::vector<deforma::egms::PointModel> results;
  double generate_s = 0, fit_s = 0, checksum = 0;
  for (std::size_t first = 0; first < points; first += chunk_points) {
    const std::size_t count = std::min(chunk_points, points - first);
    const auto t0 = std::chrono::steady_clock::now();
    generate(chunk, first, count, t);
    const auto t1 = std::chrono::steady_clock::now();
    deforma::egms::detail::fit_chunk(model, chunk, results);
    const auto t2 = std::chrono::steady_clock::now();
    generate_s += std::chrono::duration<double>(t1 - t0).count();
    fit_s += std::chrono::duration<double>(t2 - t1).count();
    for (const auto& r : results) checksum += r.mean_velocity;
  }
  const double ours_rss = peak_rss_mb();

  // The NumPy peer on the same data, in the same run.
  const std::string script = std::string(DEFORMA_SOURCE_DIR) + "/bench/egms/fit_baseline.py";
  const std::string command =
      fmt::format("{} {} --points {} --dates {} --chunk {}", python, script, points, dates, chunk_points);
  nlohmann::json peer;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    std::string text;
    char buffer[4096];
    while (std::fgets(buffer, sizeof buffer, pipe)) text += buffer;
    const int status = pclose(pipe);
    if (status == 0 && !text.empty()) peer = nlohmann::json::parse(text, nullptr, false);
  }
  fmt::print("EGMS model fitting: {} points x {} dates, chunks of {}, {} threads\n", points, dates,
             chunk_points, tbb::info::default_concurrency());
  fmt::print(
      "(velocity, acceleration, seasonality, rmse, their std and temporal coherence per point; data\n"
      " generated identically by both programs; generation time excluded)\n\n");
  fmt::print("{:<28} {:>10} {:>14} {:>14} {:>16}\n", "", "fit s", "points/s", "peak RSS MB", "velocity sum");
  fmt::print("{:<28} {:>10.2f} {:>14.0f} {:>14.0f} {:>16.3f}\n", "deforma (Eigen, oneTBB)", fit_s,
             static_cast<double>(points) / fit_s, ours_rss, checksum);
  if (peer.is_object() && peer.contains("fit_s")) {
    const double peer_s = peer["fit_s"].get<double>();
    fmt::print("{:<28} {:>10.2f} {:>14.0f} {:>14.0f} {:>16.3f}\n",
               fmt::format("NumPy {} lstsq", peer["numpy"].get<std::string>()), peer_s,
               static_cast<double>(points) / peer_s, peer["peak_rss_mb"].get<double>(),
               peer["velocity_checksum"].get<double>());
    fmt::print("{:<28} {:>10.1f}x\n", "throughput ratio", peer_s / fit_s);
  } else {
    fmt::print("NumPy baseline unavailable ('{}' failed): install python3-numpy or set DEFORMA_PYTHON\n",
               command);
  }
  fmt::print("(generation: deforma {:.2f} s, NumPy {:.2f} s)\n\n", generate_s,
             peer.is_object() && peer.contains("generate_s") ? peer["generate_s"].get<double>() : NAN);

  // Ortho on the real pair.
  const std::filesystem::path dir = std::filesystem::path(data_dir) / "egms-ustica";
  const auto asc = dir / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip";
  const auto desc = dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip";
  if (std::filesystem::exists(asc) && std::filesystem::exists(desc)) {
    deforma::RunContext context;
    const auto prefix = (std::filesystem::path(out_dir) / "egms_bench_ustica").string();
    const auto start = std::chrono::steady_clock::now();
    const auto summary = deforma::egms::run_ortho(asc.string(), desc.string(), prefix, {}, {}, context, {});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print(
        "Ortho on the real Ustica pair (11,759 + 11,590 points, zipped CSV in, 2 COGs + 2 CSVs out): "
        "{:.2f} s, {} cells\n",
        seconds, summary.counts.at("cells"));
    for (const auto& output : summary.outputs) std::filesystem::remove(output);
  } else {
    fmt::print("Ortho timing skipped: {} not found\n", dir.string());
  }
  return 0;
}
