// Tile throughput of the map server, on loopback only and bounded in count: `deforma serve` with the
// Yahtse velocity COG in its catalogue answers N random 256 px WebMercatorQuad tiles (zooms 8-14 over the
// COG's footprint, speed band, a fixed colour scale) requested by C concurrent keep-alive clients.
// Prints tiles/s, p50/p99 latency, errors and how many tiles held data.
//
//   deforma_bench_maps [--tiles 2000] [--clients 16] [--io-threads 4] [--data DIR]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/service/server.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int tiles = 2000, clients = 16, io_threads = 4;
  fs::path data = fs::path(DEFORMA_SOURCE_DIR) / ".." / "shared" / "data" / "yahtse-l8";
  if (const char* env = std::getenv("DEFORMA_DATA")) data = fs::path(env) / "yahtse-l8";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--tiles") tiles = std::clamp(std::atoi(argv[i + 1]), 1, 100000);
    if (a == "--clients") clients = std::clamp(std::atoi(argv[i + 1]), 1, 256);
    if (a == "--io-threads") io_threads = std::clamp(std::atoi(argv[i + 1]), 1, 64);
    if (a == "--data") data = argv[i + 1];
  }
  if (!fs::exists(data / "LC80630182016200LGN00_B8_yahtse.TIF")) {
    std::fprintf(stderr, "deforma_bench_maps: the Yahtse pair is not in %s (--data DIR)\n", data.c_str());
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const fs::path work = fs::temp_directory_path() / fmt::format("deforma_bench_maps_{}", ::getpid());
  fs::create_directories(work);
  const fs::path cog = work / "yahtse_velocity.tif";
  const std::string cmd =
      fmt::format("'{}' --quiet correlate '{}' '{}' -o '{}' --search 24 --step 8 --velocity",
                  DEFORMA_CLI_PATH, (data / "LC80630182016200LGN00_B8_yahtse.TIF").string(),
                  (data / "LC80630182016216LGN00_B8_yahtse.TIF").string(), cog.string());
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "deforma_bench_maps: the correlation failed: %s\n", cmd.c_str());
    return 1;
  }
  std::string item_path;
  {
    deforma::catalog::Catalog cat(work / "root" / "service.db");
    const auto report = cat.ingest({cog}, {"velocity", "", true});
    if (report.item_ids.size() != 1) {
      std::fprintf(stderr, "deforma_bench_maps: ingest failed: %s\n", report.to_text().c_str());
      return 1;
    }
    const std::string& id = report.item_ids[0];
    item_path = "/collections/" + id.substr(0, id.find('/')) + "/items/" + id.substr(id.find('/') + 1);
  }
  const auto fp = deforma::maps::footprint_lonlat(deforma::maps::map_item(
      {{"id", "x"}, {"assets", {{"v", {{"href", cog.string()}, {"type", "image/tiff"}}}}}}));
  deforma::service::ServerOptions o;
  o.root = work / "root";
  o.port = 0;
  o.io_threads = io_threads;
  deforma::service::Server server(o);
  server.start();

  // Random tiles whose centre is inside the footprint.
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> ulon(fp->min_x, fp->max_x), ulat(fp->min_y, fp->max_y);
  std::uniform_int_distribution<int> uzoom(8, 14);
  std::vector<std::string> urls;
  for (int i = 0; i < tiles; ++i) {
    const int z = uzoom(rng), n = 1 << z;
    const double lon = ulon(rng), lat = ulat(rng) * M_PI / 180;
    const int x = static_cast<int>((lon + 180) / 360 * n);
    const int y = static_cast<int>((1 - std::log(std::tan(lat) + 1 / std::cos(lat)) / M_PI) / 2 * n);
    urls.push_back(fmt::format("{}/tiles/WebMercatorQuad/{}/{}/{}.png?bidx=10&rescale=0,3000&colormap=speed",
                               item_path, z, x, y));
  }
  std::atomic<int> next{0}, errors{0};
  std::mutex mutex;
  std::vector<double> latencies;
  std::size_t bytes = 0;
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", server.port());
      client.set_keep_alive(true);
      client.set_read_timeout(60, 0);
      std::vector<double> mine;
      std::size_t my_bytes = 0;
      for (int i = next++; i < tiles; i = next++) {
        const auto t0 = Clock::now();
        auto r = client.Get(urls[static_cast<std::size_t>(i)].c_str());
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!r || r->status != 200)
          ++errors;
        else
          my_bytes += r->body.size();
      }
      std::lock_guard lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      bytes += my_bytes;
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // CPU time per tile (server and clients together): the figure that holds on a machine shared with other
  // work, where wall-clock rates say more about the neighbours.
  const double cpu_ms_per_tile = (cpu_seconds() - cpu_start) * 1000 / tiles;
  server.stop();
  std::error_code ec;
  fs::remove_all(work, ec);
  std::printf(
      "| tiles | clients | io threads | tiles/s | p50 ms | p99 ms | CPU ms/tile | errors | mean KiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %d | %.1f |\n", tiles, clients, io_threads,
              tiles / seconds, percentile(latencies, 0.5), percentile(latencies, 0.99), cpu_ms_per_tile,
              errors.load(), static_cast<double>(bytes) / 1024.0 / std::max(1, tiles));
  return errors.load() == 0 ? 0 : 1;
}
