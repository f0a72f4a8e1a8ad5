#pragma once
// The service's durable state: users, jobs and uploads in one SQLite database (WAL mode) under the
// service root. Every method is one short transaction; the store is shared by the HTTP threads, the job
// scheduler and the `deforma users` commands (another process), so nothing is cached in memory.
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace deforma::service {

struct Quotas {
  std::int64_t running = 2;                             ///< jobs running at once
  std::int64_t queued = 20;                             ///< jobs waiting to run
  std::int64_t storage_bytes = std::int64_t{10} << 30;  ///< job folders and uploads together
  double cpu_seconds_per_month = 360000;                ///< CPU time of the user's jobs in a UTC month
};

struct User {
  std::string name;
  bool admin = false;
  Quotas quotas;
  std::string created;
};

/// A job's record. Times are RFC 3339 UTC text; empty when not reached yet.
struct Job {
  std::string id;
  std::string user;
  std::string process;
  nlohmann::json inputs;  ///< the request's inputs and selected outputs, as received
  std::string status;     ///< accepted | running | successful | failed | dismissed
  int progress = 0;       ///< 0-100
  std::string message;
  std::string created, started, finished, updated, expires;
  int attempts = 0;
  std::int64_t seq = 0;    ///< submission order
  double cpu_seconds = 0;  ///< CPU time its processes used (user + system), over all attempts
  bool is_public = false;  ///< readable without a key when the service allows anonymous reads
  /// Queue order: higher first, then fairness between users, then submission order. Synchronous executions
  /// (a client is waiting on the connection) get kInteractivePriority; jobs, 0.
  int priority = 0;
};

constexpr int kInteractivePriority = 1;

struct JobFilter {
  std::string user;  ///< empty = all users (admins)
  std::vector<std::string> statuses;
  std::vector<std::string> processes;
  std::int64_t after_seq = 0;  ///< paging: jobs submitted after this one
  std::string created_from,
      created_to;  ///< RFC 3339 UTC bounds (inclusive) of the creation time; empty = open
  int limit = 100;
};

/// Current UTC time as RFC 3339 ("2026-01-31T12:00:00Z").
std::string now_rfc3339();

/// `bytes` random bytes from the system's entropy source, as lowercase hex.
std::string random_hex(std::size_t bytes);

class Store {
 public:
  /// Opens or creates ROOT/service.db (ROOT is created when missing).
  explicit Store(const std::filesystem::path& root);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Users. An API key is "<key id>.<secret>"; only a salted SHA-256 hash of it is stored.
  /// Creates a user and returns its API key (shown once). Throws InvalidArgument when the name is taken.
  std::string add_user(const std::string& name, bool admin, const Quotas& quotas);
  bool remove_user(const std::string& name);
  bool set_quotas(const std::string& name, const Quotas& quotas);
  std::vector<User> users();
  std::optional<User> user(const std::string& name);
  /// The user holding `key`; nullopt for an unknown or wrong key.
  std::optional<User> authenticate(const std::string& key);

  // Jobs.
  void insert_job(Job& job);  ///< sets seq
  std::optional<Job> job(const std::string& id);
  std::vector<Job> jobs(const JobFilter& filter);
  /// Jobs in a status, highest priority first, then oldest first.
  std::vector<Job> jobs_in(const std::string& status);
  std::int64_t count_jobs(const std::string& user, const std::string& status);
  /// Moves a job from `from` to `to` status atomically; false when it was not in `from` any more.
  bool transition(const std::string& id, const std::string& from, const std::string& to,
                  const std::string& message = "");
  void set_progress(const std::string& id, int progress, const std::string& message);
  /// Final state of a job that ran: status, message, finished and expiry times.
  void finish(const std::string& id, const std::string& status, const std::string& message,
              const std::string& expires);
  void remove_job(const std::string& id);
  /// Jobs left `running` by a service that stopped: re-queued (attempts below `max_attempts`) or failed.
  /// Returns how many were re-queued and failed.
  std::pair<int, int> recover(int max_attempts);

  /// Adds the CPU time of one run of a job to the job and to its user's use in the current UTC month.
  void add_cpu_seconds(const std::string& id, double seconds);
  /// CPU seconds a user's jobs used in the current UTC month (kept after the jobs expire).
  double cpu_seconds_this_month(const std::string& user);
  void set_public(const std::string& id, bool is_public);

  /// Quotas of users created without explicit ones (the service's configuration writes them).
  Quotas default_quotas();
  void set_default_quotas(const Quotas& quotas);

  // Uploads.
  void record_upload(const std::string& user, const std::string& name, std::int64_t size_bytes);
  nlohmann::json uploads(const std::string& user);

 private:
  void exec(const std::string& sql);
  void add_column(const std::string& table, const std::string& column, const std::string& type);
  sqlite3* db_ = nullptr;
  std::mutex mutex_;
};

}  // namespace deforma::service
