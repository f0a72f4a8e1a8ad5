// Load driver of `deforma serve`, on loopback only and bounded in time: N keep-alive clients poll job
// status and list processes for D seconds while 4 correlation jobs of the Yahtse pair run; then the job
// overhead (submit of a trivial job -> successful) is measured. Prints requests/s, p50/p99 latency,
// errors, lost or duplicated jobs, and the overhead figures.
//
//   deforma_bench_service [--clients 200] [--seconds 30] [--jobs 4] [--data DIR]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 200;
  int jobs = 4;
  double seconds = 30;
  fs::path data = fs::path(DEFORMA_SOURCE_DIR) / ".." / "shared" / "data" / "yahtse-l8";
  if (const char* env = std::getenv("DEFORMA_DATA")) data = fs::path(env) / "yahtse-l8";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--clients") clients = std::clamp(std::atoi(argv[i + 1]), 1, 1000);
    if (a == "--seconds") seconds = std::clamp(std::atof(argv[i + 1]), 1.0, 120.0);
    if (a == "--data") data = argv[i + 1];
    if (a == "--jobs") jobs = std::clamp(std::atoi(argv[i + 1]), 0, 8);
  }
  if (!fs::exists(data / "LC80630182016200LGN00_B8_yahtse.TIF")) {
    std::fprintf(stderr, "load_bench: the Yahtse pair is not in %s (--data DIR)\n", data.c_str());
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  char tmpl[] = "/tmp/deforma-load-XXXXXX";
  const fs::path root = mkdtemp(tmpl);
  std::string key;
  {
    deforma::service::Store store(root);
    deforma::service::Quotas q;
    q.running = 4;
    key = store.add_user("load", false, q);
  }
  deforma::service::ServerOptions o;
  o.root = root;
  o.data_roots = {data};
  o.port = 0;
  o.workers = 4;
  o.io_threads = 2;
  o.executable = DEFORMA_CLI_PATH;
  o.job_threads = 1;
  o.job_ram_mb = 64;
  deforma::service::Server server(o);
  server.start();
  const int port = server.port();
  const httplib::Headers auth{{"Authorization", "Bearer " + key}};

  // Four real jobs run during the load.
  httplib::Client submit("127.0.0.1", port);
  std::vector<std::string> ids;
  const std::string body = json{
      {"inputs",
       {{"ref", {{"href", "LC80630182016200LGN00_B8_yahtse.TIF"}}},
        {"sec", {{"href", "LC80630182016216LGN00_B8_yahtse.TIF"}}},
        {"search", "24"},
        {"step", 4}}}}.dump();
  httplib::Headers async = auth;
  async.emplace("Prefer", "respond-async");
  submit.set_read_timeout(60, 0);
  for (int i = 0; i < jobs; ++i) {
    auto r = submit.Post("/processes/correlate/execution", async, body, "application/json");
    if (!r || r->status != 201) {
      std::fprintf(stderr, "load_bench: submit failed (%d)\n", r ? r->status : -1);
      return 1;
    }
    ids.push_back(json::parse(r->body)["jobID"]);
  }

  std::atomic<long> errors{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client http("127.0.0.1", port);
      http.set_keep_alive(true);
      http.set_read_timeout(30, 0);
      auto& mine = latencies[static_cast<std::size_t>(c)];
      for (long n = 0; Clock::now() < until; ++n) {
        const std::string path = n % 2 || ids.empty()
                                     ? "/processes"
                                     : "/jobs/" + ids[static_cast<std::size_t>(n + c) % ids.size()];
        const auto t = Clock::now();
        auto r = http.Get(path.c_str(), auth);
        mine.push_back(ms_since(t));
        if (!r || r->status != 200) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed_s = ms_since(start) / 1000;
  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());

  // No job lost or duplicated: the list holds exactly the jobs submitted. A new connection: the submitting
  // one sat idle through the load and the service may have closed it.
  httplib::Client check("127.0.0.1", port);
  check.set_read_timeout(60, 0);
  auto list = check.Get("/jobs?limit=1000", auth);
  std::set<std::string> listed;
  std::size_t rows = 0;
  if (list && list->status == 200) {
    const json listing = json::parse(list->body);
    for (const auto& j : listing["jobs"]) {
      listed.insert(j["jobID"].get<std::string>());
      ++rows;
    }
  }
  const bool jobs_ok = rows == ids.size() && listed == std::set<std::string>(ids.begin(), ids.end());
  std::string states;
  for (const auto& id : ids) {
    auto s = check.Get(("/jobs/" + id).c_str(), auth);
    if (s && s->status == 200) {
      const auto j = json::parse(s->body);
      states += fmt::format(" {}:{}%", j["status"].get<std::string>(), j["progress"].get<int>());
    }
    check.Delete(("/jobs/" + id).c_str(), auth);  // the overhead is measured on an idle service
  }
  std::printf("load: %d keep-alive clients, %.1f s, %d correlation jobs running (%s)\n", clients, elapsed_s,
              jobs, states.c_str());
  std::printf("  requests %zu, %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, errors %ld\n", all.size(),
              static_cast<double>(all.size()) / elapsed_s, percentile(all, 0.5), percentile(all, 0.99),
              percentile(all, 1.0), errors.load());
  std::printf("  jobs listed %zu of %zu submitted (HTTP %d), %s\n", rows, ids.size(),
              list ? list->status : -1, jobs_ok ? "none lost or duplicated" : "LOST OR DUPLICATED JOBS");

  // Job overhead: a trivial job (describe a small raster) from submit to successful, polled every 2 ms.
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the dismissed children are gone, a spare is ready
  const std::string trivial = json{{"inputs", {{"file", {{"href", "yahtse_srtm_dem.tif"}}}}}}.dump();
  std::vector<double> overhead, sync;
  httplib::Client& overhead_client = check;
  for (int i = 0; i < 10; ++i) {
    const auto t = Clock::now();
    auto r = overhead_client.Post("/processes/info/execution", async, trivial, "application/json");
    if (!r || r->status != 201) break;
    const std::string id = json::parse(r->body)["jobID"];
    while (ms_since(t) < 10000) {
      auto s = overhead_client.Get(("/jobs/" + id).c_str(), auth);
      if (s && json::parse(s->body)["status"] == "successful") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    overhead.push_back(ms_since(t));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a fresh spare process is ready
    const auto u = Clock::now();
    auto direct = overhead_client.Post("/processes/info/execution", auth, trivial, "application/json");
    if (direct && direct->status == 200) sync.push_back(ms_since(u));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  std::printf(
      "job overhead (info of a small raster, submit -> successful): median %.0f ms, min %.0f ms "
      "(async, %zu jobs); synchronous execution median %.0f ms\n",
      percentile(overhead, 0.5), percentile(overhead, 0.0), overhead.size(), percentile(sync, 0.5));
  server.stop();
  std::error_code ec;
  fs::remove_all(root, ec);
  return errors.load() == 0 && jobs_ok ? 0 : 1;
}
