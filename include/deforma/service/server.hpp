#pragma once
// `deforma serve`: an OGC API - Processes 1.0 service over the library's operations. One asynchronous
// HTTP server (Boost.Beast, a few io threads, keep-alive, body limit, read timeouts), one store (SQLite
// under the root folder), one job model: each job runs in a child process (`deforma job run JOBDIR`),
// a pool of `workers` jobs at a time, first come first served and fair between users.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deforma/service/store.hpp"

namespace deforma::service {

struct ServerOptions {
  std::filesystem::path root;                     ///< store, job folders, uploads, logs
  std::vector<std::filesystem::path> data_roots;  ///< read-only folders input hrefs may name
  std::string host = "127.0.0.1";
  int port = 8080;         ///< 0 = any free port (see Server::port())
  int workers = 2;         ///< jobs running at once
  int io_threads = 2;      ///< threads serving HTTP
  std::string executable;  ///< the deforma binary run as `job run`; default: this one
  std::size_t body_limit_bytes = std::size_t{256} << 20;  ///< largest request body (uploads)
  int read_timeout_s = 30;        ///< a client slower than this to send a request is dropped
  int max_attempts = 3;           ///< runs of a job interrupted by a service stop
  double retention_days = 14;     ///< results are deleted this long after the job ends
  int job_threads = 0;            ///< threads of one job; 0 = all cores
  /// Where the pair stages of pipeline jobs run: "local" (the job's process) or "slurm" (array jobs from
  /// the job's process, docs/cluster.md). The service decides; a client's own choice is replaced.
  std::string executor = "local";
  std::size_t job_ram_mb = 1024;  ///< memory budget of one job
  /// Jobs their owner marked public (PATCH /jobs/ID {"public": true}) are readable without a key: status,
  /// results and files. Nothing else is.
  bool anonymous_read = false;
  /// Quotas given to users created without explicit ones (`deforma users add`); stored at start.
  std::optional<Quotas> default_quotas;
  /// The web application (web/dist) served at `/` to browsers; empty = none (the API alone).
  std::filesystem::path web_dir;
  /// The viewer's basemap: an XYZ tile URL template ({z}/{x}/{y}), or "none" for a neutral background, so the
  /// page requests nothing but this server (`--offline`).
  std::string web_basemap = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
};

/// Sets `options.host` and `options.port` from "HOST:PORT". Throws InvalidArgument naming `what` (the
/// option or configuration key the text came from).
void parse_listen(const std::string& text, const std::string& what, ServerOptions& options);

/// Reads a configuration file (a JSON object) into `options`; keys absent from the file keep their value.
/// Keys: listen, workers, io_threads, job_threads, job_ram_mb, executor, data (array of folders), retention_days,
/// max_attempts, body_limit_mb, read_timeout_s, anonymous_read, default_quotas {running, queued,
/// storage_mb, cpu_seconds_per_month}. Throws InvalidArgument naming the file and the key for an unknown key
/// or a value of the wrong type, IoError when the file cannot be read, FormatError when it is not JSON.
void read_config_file(const std::filesystem::path& file, ServerOptions& options);

/// The folder `deforma serve` serves the viewer from when `--web` is not given: the first `web/dist` holding
/// an index.html in a folder above the running executable (a build tree: build/apps/deforma/deforma ->
/// web/dist) or an install's PREFIX/share/deforma/web (PREFIX/bin/deforma). Empty when there is none.
std::filesystem::path default_web_dir();

class Server {
 public:
  /// Opens the store under `options.root` (created when missing) and re-queues or fails the jobs a
  /// previous run left running. Throws deforma::Error naming what is wrong (root not writable...).
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the listening socket and starts the io threads and the job scheduler; returns at once.
  void start();
  /// The port actually bound (after start()).
  int port() const;
  /// Blocks until SIGINT or SIGTERM, then stops.
  void run_until_signal();
  /// Stops accepting, closes connections, stops the running jobs' children (they run again at the next
  /// start) and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deforma::service
