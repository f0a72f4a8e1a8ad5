// Tile throughput of the map server against MapServer 8, on loopback only and bounded in count.
// `deforma serve` with two rasters in its catalogue: the Yahtse velocity COG (`deforma correlate
// --velocity`, speed band) and a generated 10980 x 10980 Float32 COG (a Sentinel-2 tile's size, a smooth
// speed field in UTM 33N). For each, N random 256 px WebMercatorQuad tiles (zooms 8-14, centred in the
// data) with a fixed colour scale (0-3000, sequential) are requested by C concurrent keep-alive clients;
// then the same extents as WMS 1.3.0 GetMap from MapServer 8 (Debian's cgi-mapserver as FastCGI
// processes behind lighttpd, bound to 127.0.0.1 on a free port, stopped by pid), with a mapfile written here
// whose colour classes are the same ramp (one class per step of the legend's 11 stops, COLORRANGE over
// DATARANGE). Prints tiles/s, p50/p99, CPU time per tile and the load average around each run: other work
// on the machine shows there. MapServer is skipped (and said so) when mapserv or lighttpd is missing.
//
//   deforma_bench_maps [--tiles 2000] [--clients 16] [--io-threads 4] [--mapserver-procs 4] [--data DIR]
//                      [--big-size 10980] [--mapserver no]
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

#include <cctype>
#include <fstream>
#include <optional>
#include <sstream>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gdal.h>
#include <ogr_srs_api.h>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/maps/tiles.hpp"
#include "deforma/render/colormap.hpp"
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

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five;
  in >> one >> five;
  return one + " / " + five;
}

struct RunResult {
  double tiles_per_s = 0, p50_ms = 0, p99_ms = 0, cpu_ms_per_tile = 0, mean_kib = 0;
  int errors = 0, with_data = 0;
  std::string load_before, load_after;
  std::string first_error;
};

// GETs every url with `clients` concurrent keep-alive clients against 127.0.0.1:port.
RunResult run_load(const std::vector<std::string>& urls, int port, int clients) {
  RunResult out;
  out.load_before = load_average();
  std::atomic<int> next{0}, errors{0}, with_data{0};
  std::mutex mutex;
  std::vector<double> latencies;
  std::size_t bytes = 0;
  const int tiles = static_cast<int>(urls.size());
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_read_timeout(60, 0);
      std::vector<double> mine;
      std::size_t my_bytes = 0;
      for (int i = next++; i < tiles; i = next++) {
        const auto t0 = Clock::now();
        auto r = client.Get(urls[static_cast<std::size_t>(i)].c_str());
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        const bool image =
            r && r->status == 200 && r->get_header_value("Content-Type").rfind("image/", 0) == 0;
        if (!image) {
          ++errors;
          std::lock_guard lock(mutex);
          if (out.first_error.empty())
            out.first_error = r ? fmt::format("{}: {}", r->status, r->body.substr(0, 300)) : "no answer";
        } else {
          my_bytes += r->body.size();
          // An empty 256 px PNG is well under 1 KiB with either server: larger ones hold data.
          with_data += r->body.size() > 1024;
        }
      }
      std::lock_guard lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      bytes += my_bytes;
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // CPU time of this process per tile (deforma: server and clients together; MapServer: the clients only,
  // its processes are counted when they have exited): the figure that holds on a machine shared with
  // other work.
  out.cpu_ms_per_tile = (cpu_seconds() - cpu_start) * 1000 / std::max(1, tiles);
  out.tiles_per_s = tiles / seconds;
  out.p50_ms = percentile(latencies, 0.5);
  out.p99_ms = percentile(latencies, 0.99);
  out.errors = errors.load();
  out.with_data = with_data.load();
  out.mean_kib = static_cast<double>(bytes) / 1024.0 / std::max(1, tiles);
  out.load_after = load_average();
  return out;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// A smooth speed field (0-3000 m/yr) over a `size` x `size` grid of 10 m pixels in UTM 33N, as a COG.
bool write_big_cog(const fs::path& path, int size) {
  GDALAllRegister();
  const fs::path tmp = path.string() + ".tmp.tif";
  GDALDatasetH mem =
      GDALCreate(GDALGetDriverByName("GTiff"), tmp.c_str(), size, size, 1, GDT_Float32, nullptr);
  if (!mem) return false;
  double gt[6] = {300000, 10, 0, 5000040, 0, -10};
  GDALSetGeoTransform(mem, gt);
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(srs, 32633);
  GDALSetSpatialRef(mem, srs);
  OSRDestroySpatialReference(srs);
  GDALRasterBandH band = GDALGetRasterBand(mem, 1);
  GDALSetRasterNoDataValue(band, -9999);
  std::vector<float> row(static_cast<std::size_t>(size));
  bool ok = true;
  for (int r = 0; r < size && ok; ++r) {
    for (int c = 0; c < size; ++c) {
      const double u = static_cast<double>(c) / size, v = static_cast<double>(r) / size;
      row[static_cast<std::size_t>(c)] = static_cast<float>(
          1500 + 1400 * std::sin(6.0 * u + 2.0 * std::cos(5.0 * v)) * std::cos(4.0 * v + 1.5 * u));
    }
    ok = GDALRasterIO(band, GF_Write, 0, r, size, 1, row.data(), size, 1, GDT_Float32, 0, 0) == CE_None;
  }
  const char* cog_options[] = {"COMPRESS=DEFLATE", "LEVEL=1", "PREDICTOR=YES", "NUM_THREADS=2", nullptr};
  GDALDatasetH cog = ok ? GDALCreateCopy(GDALGetDriverByName("COG"), path.c_str(), mem, FALSE,
                                         const_cast<char**>(cog_options), nullptr, nullptr)
                        : nullptr;
  GDALClose(mem);
  std::error_code ec;
  fs::remove(tmp, ec);
  if (!cog) return false;
  GDALClose(cog);
  return true;
}

// The colour classes of the sequential ramp over [lo, hi]: one class per step between the legend's stops,
// its colour interpolated across the step, and the ends clamped as deforma's scale clamps them.
std::string mapserver_classes(double lo, double hi) {
  const auto& map = deforma::render::Colormap::of(deforma::render::ColormapKind::kSequential);
  constexpr int kStops = 11;
  std::string out;
  auto rgb = [&](double t) {
    const auto c = map.at(t);
    return fmt::format("{} {} {}", c.r, c.g, c.b);
  };
  out += fmt::format("    CLASS EXPRESSION ([pixel] < {}) STYLE COLOR {} END END\n", lo, rgb(0));
  for (int i = 0; i + 1 < kStops; ++i) {
    const double t0 = static_cast<double>(i) / (kStops - 1), t1 = static_cast<double>(i + 1) / (kStops - 1);
    const double v0 = lo + t0 * (hi - lo), v1 = lo + t1 * (hi - lo);
    out += fmt::format(
        "    CLASS EXPRESSION ([pixel] >= {} AND [pixel] < {}) STYLE COLORRANGE {} {} DATARANGE {} {} "
        "RANGEITEM \"pixel\" END END\n",
        v0, v1, rgb(t0), rgb(t1), v0, v1);
  }
  out += fmt::format("    CLASS EXPRESSION ([pixel] >= {}) STYLE COLOR {} END END\n", hi, rgb(1));
  return out;
}

std::string mapserver_layer(const std::string& name, const fs::path& data, int band) {
  return fmt::format(R"(  LAYER
    NAME "{}"
    TYPE RASTER
    STATUS ON
    DATA "{}"
    PROJECTION AUTO END
    PROCESSING "BANDS={}"
    PROCESSING "RESAMPLE=NEAREST"
    METADATA "wms_title" "{}" "wms_srs" "EPSG:3857" END
{}  END
)",
                     name, data.string(), band, name, mapserver_classes(0, 3000));
}

struct Lighttpd {
  pid_t pid = -1;
  int port = 0;
};

// lighttpd in the foreground on 127.0.0.1:port, with mapserv as `procs` FastCGI processes.
std::optional<Lighttpd> start_mapserver(const fs::path& work, const fs::path& mapfile, int procs) {
  const char* mapserv = "/usr/lib/cgi-bin/mapserv";
  const char* lighttpd = "/usr/sbin/lighttpd";
  if (!fs::exists(mapserv) || !fs::exists(lighttpd)) return std::nullopt;
  Lighttpd l;
  l.port = free_port();
  // MapServer 8 reads its configuration file first; the mapfile is named there.
  const fs::path ms_conf = work / "mapserver.conf";
  std::ofstream(ms_conf) << fmt::format("CONFIG\n  ENV\n    MS_MAPFILE \"{}\"\n  END\nEND\n",
                                        mapfile.string());
  const fs::path conf = work / "lighttpd.conf";
  std::ofstream(conf) << fmt::format(R"(server.document-root = "{0}"
server.bind = "127.0.0.1"
server.port = {1}
server.pid-file = "{0}/lighttpd.pid"
server.errorlog = "{0}/lighttpd.log"
server.modules = ("mod_fastcgi")
server.max-keep-alive-requests = 100000
fastcgi.server = ("/mapserv" => ((
  "bin-path" => "{2}",
  "socket" => "{0}/mapserv.sock",
  "max-procs" => {3},
  "check-local" => "disable",
  "bin-environment" => ("MAPSERVER_CONFIG_FILE" => "{4}")
)))
)",
                                     work.string(), l.port, mapserv, procs, ms_conf.string());
  std::vector<std::string> args{lighttpd, "-D", "-f", conf.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Its own process group: lighttpd does not stop its FastCGI processes when it stops, the group is ended
  // as a whole.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const int spawned = posix_spawn(&l.pid, lighttpd, nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) return std::nullopt;
  // Ready when GetCapabilities answers (10 s at most).
  httplib::Client probe("127.0.0.1", l.port);
  probe.set_connection_timeout(1, 0);
  for (int i = 0; i < 100; ++i) {
    if (auto r = probe.Get("/mapserv?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0");
        r && r->status == 200)
      return l;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(-l.pid, SIGTERM);
  ::waitpid(l.pid, nullptr, 0);
  return std::nullopt;
}

void stop_mapserver(const Lighttpd& l) {
  ::kill(-l.pid, SIGTERM);  // the group made for lighttpd: it and its mapserv processes
  ::waitpid(l.pid, nullptr, 0);
}

// CPU seconds used so far by the processes of group `pgid` (lighttpd and its mapserv processes).
double group_cpu_seconds(pid_t pgid) {
  double ticks = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::vector<std::string> f;
    for (std::string v; fields >> v && f.size() < 13;) f.push_back(v);
    // After the command: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
    if (f.size() < 13 || std::stol(f[2]) != pgid) continue;
    ticks += std::stod(f[11]) + std::stod(f[12]);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Source {
  std::string name;
  std::string item_path;  // /collections/C/items/I
  int band = 1;
  deforma::maps::Bounds lonlat;
};

}  // namespace

int main(int argc, char** argv) {
  int tiles = 2000, clients = 16, io_threads = 4, mapserver_procs = 4, big_size = 10980;
  bool run_mapserver = true;
  fs::path data = fs::path(DEFORMA_SOURCE_DIR) / ".." / "shared" / "data" / "yahtse-l8";
  if (const char* env = std::getenv("DEFORMA_DATA")) data = fs::path(env) / "yahtse-l8";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--tiles") tiles = std::clamp(std::atoi(argv[i + 1]), 1, 100000);
    if (a == "--clients") clients = std::clamp(std::atoi(argv[i + 1]), 1, 256);
    if (a == "--io-threads") io_threads = std::clamp(std::atoi(argv[i + 1]), 1, 64);
    if (a == "--mapserver-procs") mapserver_procs = std::clamp(std::atoi(argv[i + 1]), 1, 64);
    if (a == "--big-size") big_size = std::clamp(std::atoi(argv[i + 1]), 256, 20000);
    if (a == "--data") data = argv[i + 1];
    if (a == "--mapserver") run_mapserver = std::string(argv[i + 1]) != "no";
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
    fs::remove_all(work);
    return 1;
  }
  // The date in the name is the acquisition date the catalogue reads.
  const fs::path big = work / fmt::format("synthetic_{}px_20200615.tif", big_size);
  if (!write_big_cog(big, big_size)) {
    std::fprintf(stderr, "deforma_bench_maps: cannot write the %d px COG in %s\n", big_size, work.c_str());
    fs::remove_all(work);
    return 1;
  }
  std::vector<Source> sources{{"yahtse", "", 10, {}}, {"synthetic", "", 1, {}}};
  {
    deforma::catalog::Catalog cat(work / "root" / "service.db");
    const std::vector<fs::path> files{cog, big};
    for (std::size_t k = 0; k < files.size(); ++k) {
      const auto report = cat.ingest({files[k]}, {sources[k].name, "", true});
      if (report.item_ids.size() != 1) {
        std::fprintf(stderr, "deforma_bench_maps: ingest failed: %s\n", report.to_text().c_str());
        std::error_code ec;
        fs::remove_all(work, ec);
        return 1;
      }
      const std::string& id = report.item_ids[0];
      sources[k].item_path =
          "/collections/" + id.substr(0, id.find('/')) + "/items/" + id.substr(id.find('/') + 1);
      const auto fp = deforma::maps::footprint_lonlat(deforma::maps::map_item(
          {{"id", "x"}, {"assets", {{"v", {{"href", files[k].string()}, {"type", "image/tiff"}}}}}}));
      sources[k].lonlat = *fp;
    }
  }
  // The mapfile: both rasters, the same colour classes, PNG with transparency.
  const fs::path mapfile = work / "bench.map";
  std::ofstream(mapfile) << fmt::format(R"(MAP
  NAME "bench"
  EXTENT -20037508 -20037508 20037508 20037508
  SIZE 256 256
  PROJECTION "init=epsg:3857" END
  OUTPUTFORMAT NAME "png" DRIVER AGG/PNG MIMETYPE "image/png" IMAGEMODE RGBA EXTENSION "png" TRANSPARENT ON END
  WEB METADATA "wms_title" "bench" "wms_srs" "EPSG:3857" "wms_enable_request" "*" END END
{}{}END
)",
                                        mapserver_layer("yahtse", cog, 10),
                                        mapserver_layer("synthetic", big, 1));

  // Random tiles whose centre is inside each footprint; the same extents for both servers.
  std::mt19937 rng(7);
  const auto& web = deforma::maps::tile_matrix_set("WebMercatorQuad");
  std::vector<std::vector<std::string>> deforma_urls(sources.size()), mapserver_urls(sources.size());
  for (std::size_t k = 0; k < sources.size(); ++k) {
    const auto& fp = sources[k].lonlat;
    std::uniform_real_distribution<double> ulon(fp.min_x, fp.max_x), ulat(fp.min_y, fp.max_y);
    std::uniform_int_distribution<int> uzoom(8, 14);
    for (int i = 0; i < tiles; ++i) {
      const int z = uzoom(rng), n = 1 << z;
      const double lon = ulon(rng), lat = ulat(rng) * M_PI / 180;
      const int x = static_cast<int>((lon + 180) / 360 * n);
      const int y = static_cast<int>((1 - std::log(std::tan(lat) + 1 / std::cos(lat)) / M_PI) / 2 * n);
      deforma_urls[k].push_back(
          fmt::format("{}/tiles/WebMercatorQuad/{}/{}/{}.png?bidx={}&rescale=0,3000&colormap=speed",
                      sources[k].item_path, z, x, y, sources[k].band));
      const auto b = web.tile_bounds(z, x, y);
      mapserver_urls[k].push_back(fmt::format(
          "/mapserv?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS={}&STYLES=&CRS=EPSG:3857&"
          "BBOX={:.6f},{:.6f},{:.6f},{:.6f}&WIDTH=256&HEIGHT=256&FORMAT=image/png&TRANSPARENT=TRUE",
          sources[k].name, b.min_x, b.min_y, b.max_x, b.max_y));
    }
  }

  std::vector<std::pair<std::string, RunResult>> results;
  // Each run as it ends (the table comes at the end): the MapServer runs take minutes.
  auto progress = [](const std::pair<std::string, RunResult>& r) {
    std::fprintf(stderr, "%s: %.1f tiles/s, p99 %.1f ms, %d errors, load %s\n", r.first.c_str(),
                 r.second.tiles_per_s, r.second.p99_ms, r.second.errors, r.second.load_after.c_str());
  };
  {
    deforma::service::ServerOptions o;
    o.root = work / "root";
    o.port = 0;
    o.io_threads = io_threads;
    o.anonymous_read = true;  // the tiles are public items, read without a key as a web map reads them
    deforma::service::Server server(o);
    server.start();
    for (std::size_t k = 0; k < sources.size(); ++k) {
      results.emplace_back("deforma serve | " + sources[k].name,
                           run_load(deforma_urls[k], server.port(), clients));
      progress(results.back());
    }
    server.stop();
  }
  std::string mapserver_note;
  std::vector<double> mapserver_cpu_ms(sources.size(), 0);
  std::optional<Lighttpd> ms;
  if (run_mapserver) ms = start_mapserver(work, mapfile, mapserver_procs);
  if (ms) {
    for (std::size_t k = 0; k < sources.size(); ++k) {
      const double before = group_cpu_seconds(ms->pid);
      results.emplace_back("MapServer 8 WMS | " + sources[k].name,
                           run_load(mapserver_urls[k], ms->port, clients));
      progress(results.back());
      mapserver_cpu_ms[k] = (group_cpu_seconds(ms->pid) - before) * 1000 / tiles;
    }
    stop_mapserver(*ms);
  } else {
    mapserver_note = !run_mapserver
                         ? "MapServer not run (--mapserver no)"
                         : "MapServer not run: /usr/lib/cgi-bin/mapserv (cgi-mapserver) or lighttpd is "
                           "missing, or it did not answer";
  }
  std::error_code ec;
  fs::remove_all(work, ec);
  std::printf(
      "%d random 256 px WebMercatorQuad tiles per source (zooms 8-14), %d clients, deforma io threads "
      "%d, MapServer FastCGI processes %d, %u hardware threads\n\n",
      tiles, clients, io_threads, mapserver_procs, std::thread::hardware_concurrency());
  std::printf(
      "| server | source | tiles/s | p50 ms | p99 ms | CPU ms/tile (deforma: server+clients) | errors | "
      "tiles with data | mean KiB | load avg 1/5 min before | after |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  int errors = 0;
  for (const auto& [name, r] : results) {
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %d | %d | %.1f | %s | %s |\n", name.c_str(),
                r.tiles_per_s, r.p50_ms, r.p99_ms, r.cpu_ms_per_tile, r.errors, r.with_data, r.mean_kib,
                r.load_before.c_str(), r.load_after.c_str());
    if (r.errors) std::printf("\nfirst error of %s: %s\n", name.c_str(), r.first_error.c_str());
    errors += r.errors;
  }
  if (!mapserver_note.empty()) {
    std::printf("\n%s\n", mapserver_note.c_str());
  } else {
    for (std::size_t k = 0; k < sources.size(); ++k)
      std::printf("\nMapServer's own CPU (lighttpd and mapserv), %s: %.1f ms/tile", sources[k].name.c_str(),
                  mapserver_cpu_ms[k]);
    std::printf("\n");
    std::printf("\n| source | deforma / MapServer tiles/s | p99 MapServer / deforma |\n|---|---|---|\n");
    for (std::size_t k = 0; k < sources.size(); ++k) {
      const auto& d = results[k].second;
      const auto& m = results[sources.size() + k].second;
      std::printf("| %s | %.2fx | %.2fx |\n", sources[k].name.c_str(), d.tiles_per_s / m.tiles_per_s,
                  m.p99_ms / d.p99_ms);
    }
  }
  return errors == 0 ? 0 : 1;
}
