// Catalogue search benchmark: N synthetic items (1° x 1° footprints, about a Sentinel-2 tile, over
// longitudes -170..170 and latitudes -60..70; datetimes over 2019-2023; cloud cover 0..100; four
// collections), then Q searches of bbox (2° x 2°) + datetime (a 60-day window) + eo:cloud_cover < 20 +
// limit 100 as an anonymous reader: p50/p99 latency and queries per second on one connection. Also the
// ingest rate of the real sample scenes when ../shared/data is there.
//
// The peer, in the same run when PostgreSQL 15 + PostGIS 3 are installed (Debian postgresql-15-postgis-3,
// libpq-dev; the engine behind pgSTAC): a throw-away server started on 127.0.0.1 in a temporary folder
// (as the `postgres` user when run as root, since postgres refuses root), the same items in a table with a
// GiST index on the footprint and B-tree indexes on datetime and cloud cover, the same queries through
// libpq as one prepared statement returning each item's JSON, newest first as ours. The server is stopped
// by its pid at the end.
//
//   search_bench [ITEMS=1000000] [QUERIES=1000] [DATA_DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/io/dates.hpp"

#ifdef DEFORMA_BENCH_POSTGIS
#include <libpq-fe.h>
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char* kCollections[] = {"sentinel-2-l2a", "landsat-c2-l2", "sentinel-1-grd", "deforma-products"};

struct Synthetic {
  double lon, lat, t, cloud;
};
struct Query {
  double lon, lat, t;
};

struct Figures {
  double p50_ms = 0, p99_ms = 0, qps = 0, returned = 0;
};

json make_item(long k, const Synthetic& s, double t0) {
  json ring = {
      {s.lon, s.lat}, {s.lon + 1, s.lat}, {s.lon + 1, s.lat + 1}, {s.lon, s.lat + 1}, {s.lon, s.lat}};
  return {{"type", "Feature"},
          {"stac_version", "1.0.0"},
          {"id", fmt::format("item-{:07d}", k)},
          {"collection", kCollections[k % 4]},
          {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
          {"bbox", {s.lon, s.lat, s.lon + 1, s.lat + 1}},
          {"properties",
           {{"datetime", deforma::io::iso_utc(static_cast<std::time_t>(t0 + s.t))},
            {"eo:cloud_cover", s.cloud},
            {"platform", "synthetic"},
            {"title", fmt::format("synthetic scene {}", k)}}},
          {"links", json::array()},
          {"assets", {{"data", {{"href", fmt::format("/data/{}.tif", k)}, {"type", "image/tiff"}}}}}};
}

Figures summarise(std::vector<double> ms, double total_s, long returned) {
  std::sort(ms.begin(), ms.end());
  Figures f;
  f.p50_ms = ms[ms.size() / 2];
  f.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  f.qps = static_cast<double>(ms.size()) / total_s;
  f.returned = static_cast<double>(returned) / static_cast<double>(ms.size());
  return f;
}

#ifdef DEFORMA_BENCH_POSTGIS
// A command's exit status (through the shell: the arguments are ours, quoted).
int shell(const std::string& command) {
  const int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string pg_bin(const std::string& tool) {
  for (const char* dir : {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin"}) {
    const fs::path p = fs::path(dir) / tool;
    if (fs::exists(p)) return p.string();
  }
  return "";
}

// The throw-away server: initdb + pg_ctl start in `dir`, as `postgres` when we are root.
class PostgresServer {
 public:
  explicit PostgresServer(const fs::path& dir) : dir_(dir) {
    if (pg_bin("initdb").empty() || pg_bin("pg_ctl").empty())
      throw std::runtime_error("PostgreSQL 15 is not installed (Debian postgresql-15-postgis-3)");
    fs::create_directories(dir_);
    std::string as;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw)
        throw std::runtime_error("running as root and there is no 'postgres' user to start the server");
      if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
        throw std::runtime_error("cannot give the benchmark folder to the postgres user");
      as = "runuser -u postgres -- ";
    }
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    const std::string data = (dir_ / "data").string();
    if (shell(fmt::format("{}'{}' -D '{}' -A trust -U bench --no-sync -E UTF8 >'{}/initdb.log' 2>&1", as,
                          pg_bin("initdb"), data, dir_.string())) != 0)
      throw std::runtime_error("initdb failed: see " + (dir_ / "initdb.log").string());
    // Settings of a benchmark machine, not of a durable server: no fsync, a shared buffer that holds the
    // table, one connection.
    const std::string options = fmt::format(
        "-c listen_addresses=127.0.0.1 -p {} -k '{}' -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c shared_buffers=1GB -c work_mem=64MB -c maintenance_work_mem=1GB "
        "-c max_wal_size=8GB -c jit=off",
        port_, dir_.string());
    if (shell(fmt::format("{}'{}' -D '{}' -o \"{}\" -l '{}/server.log' -w -t 120 start >/dev/null", as,
                          pg_bin("pg_ctl"), data, options, dir_.string())) != 0)
      throw std::runtime_error("pg_ctl start failed: see " + (dir_ / "server.log").string());
    std::ifstream pidfile(fs::path(data) / "postmaster.pid");
    pidfile >> pid_;
    if (pid_ <= 0) throw std::runtime_error("no postmaster.pid after start");
  }
  ~PostgresServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGINT);  // fast shutdown of the server we started, by its pid
      for (int k = 0; k < 600 && ::kill(pid_, 0) == 0; ++k)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::string conninfo() const {
    return fmt::format("host=127.0.0.1 port={} user=bench dbname=postgres", port_);
  }
  pid_t pid() const { return pid_; }

 private:
  fs::path dir_;
  int port_ = 0;
  pid_t pid_ = 0;
};

void exec_or_throw(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const auto status = PQresultStatus(r);
  const std::string error = PQresultErrorMessage(r);
  PQclear(r);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw std::runtime_error(fmt::format("{}: {}", sql.substr(0, 80), error));
}

// COPY text format: backslash, tab and newlines escaped.
std::string copy_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

Figures postgis_peer(const fs::path& dir, const std::vector<Synthetic>& items,
                     const std::vector<Query>& queries, double t0) {
  PostgresServer server(dir / "pg");
  std::printf("PostgreSQL started on 127.0.0.1 (pid %d)\n", static_cast<int>(server.pid()));
  PGconn* c = PQconnectdb(server.conninfo().c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    const std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot connect: " + e);
  }
  struct Closer {
    PGconn* c;
    ~Closer() { PQfinish(c); }
  } closer{c};
  exec_or_throw(c, "CREATE EXTENSION postgis");
  exec_or_throw(c,
                "CREATE TABLE items(id text PRIMARY KEY, collection text NOT NULL, datetime timestamptz, "
                "cloud double precision, geom geometry(Polygon, 4326), doc jsonb NOT NULL)");
  const auto load_start = Clock::now();
  {
    PGresult* r = PQexec(c, "COPY items FROM STDIN");
    const bool copying = PQresultStatus(r) == PGRES_COPY_IN;
    const std::string e = PQresultErrorMessage(r);
    PQclear(r);
    if (!copying) throw std::runtime_error("COPY items FROM STDIN: " + e);
  }
  std::string chunk;
  for (std::size_t k = 0; k < items.size(); ++k) {
    const auto& s = items[k];
    const json item = make_item(static_cast<long>(k), s, t0);
    chunk += fmt::format("item-{:07d}\t{}\t{}\t{}\tSRID=4326;POLYGON(({} {},{} {},{} {},{} {},{} {}))\t{}\n",
                         k, kCollections[k % 4], item["properties"]["datetime"].get<std::string>(), s.cloud,
                         s.lon, s.lat, s.lon + 1, s.lat, s.lon + 1, s.lat + 1, s.lon, s.lat + 1, s.lon, s.lat,
                         copy_escape(item.dump()));
    if (chunk.size() > (1u << 20) || k + 1 == items.size()) {
      if (PQputCopyData(c, chunk.data(), static_cast<int>(chunk.size())) != 1)
        throw std::runtime_error(std::string("COPY: ") + PQerrorMessage(c));
      chunk.clear();
    }
  }
  if (PQputCopyEnd(c, nullptr) != 1) throw std::runtime_error(std::string("COPY end: ") + PQerrorMessage(c));
  for (PGresult* r; (r = PQgetResult(c)) != nullptr;) {
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    const std::string e = PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) throw std::runtime_error("COPY: " + e);
  }
  exec_or_throw(c, "CREATE INDEX items_geom ON items USING gist(geom)");
  exec_or_throw(c, "CREATE INDEX items_datetime ON items(datetime)");
  exec_or_throw(c, "CREATE INDEX items_cloud ON items(cloud)");
  exec_or_throw(c, "VACUUM ANALYZE items");
  const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
  std::printf("PostGIS: loaded and indexed %zu items in %.1f s (%.0f items/s)\n", items.size(), load_s,
              static_cast<double>(items.size()) / load_s);
  PGresult* prepared =
      PQprepare(c, "search",
                "SELECT doc::text FROM items WHERE geom && ST_MakeEnvelope($1, $2, $3, $4, 4326) "
                "AND ST_Intersects(geom, ST_MakeEnvelope($1, $2, $3, $4, 4326)) "
                "AND datetime BETWEEN to_timestamp($5) AND to_timestamp($6) AND cloud < 20 "
                "ORDER BY datetime DESC, collection, id LIMIT 100",
                6, nullptr);
  const bool ok = PQresultStatus(prepared) == PGRES_COMMAND_OK;
  const std::string e = PQresultErrorMessage(prepared);
  PQclear(prepared);
  if (!ok) throw std::runtime_error("prepare: " + e);
  std::vector<double> ms;
  long returned = 0;
  const auto start = Clock::now();
  for (const auto& q : queries) {
    const std::string v[6] = {fmt::format("{}", q.lon),     fmt::format("{}", q.lat),
                              fmt::format("{}", q.lon + 2), fmt::format("{}", q.lat + 2),
                              fmt::format("{}", t0 + q.t),  fmt::format("{}", t0 + q.t + 60 * 86400.0)};
    const char* values[6];
    for (int k = 0; k < 6; ++k) values[k] = v[k].c_str();
    const auto a = Clock::now();
    PGresult* r = PQexecPrepared(c, "search", 6, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      const std::string error = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error("search: " + error);
    }
    // The items' JSON parsed, as our search hands out parsed items.
    for (int row = 0; row < PQntuples(r); ++row) {
      const json item = json::parse(PQgetvalue(r, row, 0));
      returned += item.is_object() ? 1 : 0;
    }
    PQclear(r);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
  }
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  return summarise(std::move(ms), total, returned);
}
#endif

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
  const long items = argc > 1 ? std::stol(argv[1]) : 1000000;
  const int queries = argc > 2 ? std::stoi(argv[2]) : 1000;
  const fs::path data =
      argc > 3 ? fs::path(argv[3]) : fs::path(DEFORMA_SOURCE_DIR) / ".." / "shared" / "data";
  const fs::path dir = fs::temp_directory_path() / fmt::format("deforma-catalog-bench-{}", ::getpid());
  fs::create_directories(dir);
  const double t0 = *deforma::catalog::parse_rfc3339("2019-01-01T00:00:00Z");
  const double span = 5 * 365.25 * 86400;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> lon(-170, 169), lat(-60, 69), when(0, span), cloud(0, 100);
  // The same items and queries for both engines.
  std::vector<Synthetic> synthetic(static_cast<std::size_t>(items));
  for (auto& s : synthetic) {
    s.lon = lon(rng);
    s.lat = lat(rng);
    s.t = when(rng);
    s.cloud = cloud(rng);
  }
  std::vector<Query> plan(static_cast<std::size_t>(queries));
  for (auto& q : plan) {
    q.lon = lon(rng);
    q.lat = lat(rng);
    q.t = when(rng);
  }
  std::printf("load average before: %s\n", loadavg().c_str());
  {
    deforma::catalog::Catalog catalog(dir / "service.db");
    const auto start = Clock::now();
    long done = 0;
    while (done < items) {
      catalog.in_transaction([&] {
        for (int k = 0; k < 10000 && done < items; ++k, ++done) {
          catalog.put_item(make_item(done, synthetic[static_cast<std::size_t>(done)], t0), {});
        }
      });
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("built %ld synthetic items in %.1f s (%.0f items/s)\n", items, s, items / s);
  }
  deforma::catalog::Catalog catalog(dir / "service.db");
  std::vector<double> ms;
  long returned = 0;
  const auto start = Clock::now();
  for (const auto& q : plan) {
    deforma::catalog::SearchRequest r;
    r.bbox = std::array<double, 4>{q.lon, q.lat, q.lon + 2, q.lat + 2};
    r.start_s = t0 + q.t;
    r.end_s = t0 + q.t + 60 * 86400.0;
    r.filter = {{"op", "<"}, {"args", {{{"property", "eo:cloud_cover"}}, 20}}};
    r.limit = 100;
    const auto a = Clock::now();
    returned += static_cast<long>(catalog.search(r, {}).items.size());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
  }
  const Figures ours =
      summarise(std::move(ms), std::chrono::duration<double>(Clock::now() - start).count(), returned);
  std::printf(
      "search bbox 2x2 deg + 60-day datetime + eo:cloud_cover < 20 + limit 100 over %ld items, %d queries:\n",
      items, queries);
  std::printf("  deforma: p50 %.2f ms  p99 %.2f ms  %.0f queries/s  (%.1f items returned on average)\n",
              ours.p50_ms, ours.p99_ms, ours.qps, ours.returned);
  std::printf("load average after ours: %s\n", loadavg().c_str());
#ifdef DEFORMA_BENCH_POSTGIS
  try {
    const Figures peer = postgis_peer(dir, synthetic, plan, t0);
    std::printf("  PostGIS: p50 %.2f ms  p99 %.2f ms  %.0f queries/s  (%.1f items returned on average)\n",
                peer.p50_ms, peer.p99_ms, peer.qps, peer.returned);
    std::printf("\n| engine | p50 (ms) | p99 (ms) | queries/s |\n|---|---|---|---|\n");
    std::printf("| deforma (SQLite R*Tree) | %.2f | %.2f | %.0f |\n", ours.p50_ms, ours.p99_ms, ours.qps);
    std::printf("| PostgreSQL 15 + PostGIS 3 | %.2f | %.2f | %.0f |\n", peer.p50_ms, peer.p99_ms, peer.qps);
    std::printf("| ratio deforma / PostGIS | %.2f | %.2f | %.2f x throughput |\n", ours.p50_ms / peer.p50_ms,
                ours.p99_ms / peer.p99_ms, ours.qps / peer.qps);
    if (static_cast<long>(ours.returned * queries + 0.5) != static_cast<long>(peer.returned * queries + 0.5))
      std::printf("warning: the engines returned different numbers of items\n");
    std::printf("load average after PostGIS: %s\n", loadavg().c_str());
  } catch (const std::exception& e) {
    std::printf("PostGIS peer not measured: %s\n", e.what());
  }
#else
  std::printf("PostGIS peer not built (libpq not found at configure time)\n");
#endif
  std::error_code ec;
  if (fs::is_directory(data, ec)) {
    deforma::catalog::Catalog real(dir / "real.db");
    const auto a = Clock::now();
    const auto report = real.ingest({data}, {});
    const double s = std::chrono::duration<double>(Clock::now() - a).count();
    const int n = report.added + report.updated + report.unchanged;
    std::printf("ingest of the sample data (%s): %d items in %.2f s (%.1f items/s), %zu failed\n",
                data.string().c_str(), n, s, n / s, report.failed.size());
  }
  fs::remove_all(dir, ec);
  return 0;
}
