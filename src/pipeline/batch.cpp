#include "deforma/pipeline/batch.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>

#include "deforma/core/error.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

void BatchOptions::validate() const {
  if (output_dir.empty()) throw InvalidArgument("batch: the output folder (-o) is empty");
  if (stage.empty()) throw InvalidArgument("batch: empty stage name");
  if (per_pair_ram_mb == 0) throw InvalidArgument("--ram: the per-pair budget must be > 0 MB");
  if (ram_budget_mb < per_pair_ram_mb) {
    throw InvalidArgument(
        fmt::format("--ram: {} MB is less than the {} MB one pair needs", ram_budget_mb, per_pair_ram_mb));
  }
  if (threads < 0) throw InvalidArgument("--threads: must be >= 0");
}

std::string parameters_hash(const nlohmann::json& parameters) {
  const std::string text = parameters.dump();  // nlohmann::json objects are key-sorted: canonical
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

std::string pair_result_path(const std::string& output_dir, const timeseries::Pair& pair) {
  return (fs::path(output_dir) / (pair.id + ".tif")).string();
}

namespace {

// Size and modification time (ns) of a file; nullopt when it does not exist.
struct Fingerprint {
  long long size = -1;
  long long mtime_ns = -1;
  bool operator==(const Fingerprint&) const = default;
};

Fingerprint fingerprint(const std::string& path) {
  Fingerprint f;
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return f;
  f.size = static_cast<long long>(st.st_size);
  f.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return f;
}

// The completion records: one SQLite database per output folder, used from one thread at a time.
class CompletionStore {
 public:
  explicit CompletionStore(const std::string& path) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      const std::string reason = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw IoError(fmt::format("{}: cannot open the batch record database: {}", path, reason));
    }
    sqlite3_busy_timeout(db_, 10000);
    exec(
        "CREATE TABLE IF NOT EXISTS completed (stage TEXT NOT NULL, pair_id TEXT NOT NULL, "
        "params_hash TEXT NOT NULL, input_a TEXT, input_a_size INTEGER, input_a_mtime INTEGER, "
        "input_b TEXT, input_b_size INTEGER, input_b_mtime INTEGER, result TEXT NOT NULL, "
        "result_size INTEGER NOT NULL, result_mtime INTEGER NOT NULL, seconds REAL, completed_at TEXT, "
        "PRIMARY KEY (stage, pair_id))");
  }
  ~CompletionStore() { sqlite3_close(db_); }
  CompletionStore(const CompletionStore&) = delete;
  CompletionStore& operator=(const CompletionStore&) = delete;

  bool is_complete(const std::string& stage, const std::string& pair_id, const std::string& hash,
                   const std::string& a, const std::string& b, const std::string& result) {
    sqlite3_stmt* st = prepare(
        "SELECT params_hash, input_a, input_a_size, input_a_mtime, input_b, input_b_size, input_b_mtime, "
        "result, "
        "result_size, result_mtime FROM completed WHERE stage = ?1 AND pair_id = ?2");
    sqlite3_bind_text(st, 1, stage.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, pair_id.c_str(), -1, SQLITE_TRANSIENT);
    bool complete = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
      auto text = [&](int i) {
        const auto* t = sqlite3_column_text(st, i);
        return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
      };
      const Fingerprint fa{sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3)};
      const Fingerprint fb{sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6)};
      const Fingerprint fr{sqlite3_column_int64(st, 8), sqlite3_column_int64(st, 9)};
      complete = text(0) == hash && text(1) == a && text(4) == b && text(7) == result &&
                 fa == fingerprint(a) && fb == fingerprint(b) && fr.size >= 0 && fr == fingerprint(result);
    }
    sqlite3_finalize(st);
    return complete;
  }

  void forget(const std::string& stage, const std::string& pair_id) {
    sqlite3_stmt* st = prepare("DELETE FROM completed WHERE stage = ?1 AND pair_id = ?2");
    sqlite3_bind_text(st, 1, stage.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, pair_id.c_str(), -1, SQLITE_TRANSIENT);
    step_done(st);
  }

  void record(const std::string& stage, const std::string& pair_id, const std::string& hash,
              const std::string& a, const std::string& b, const std::string& result, double seconds) {
    const Fingerprint fa = fingerprint(a), fb = fingerprint(b), fr = fingerprint(result);
    if (fr.size < 0)
      throw IoError(fmt::format("{}: the result of pair {} is missing after its run", result, pair_id));
    sqlite3_stmt* st = prepare(
        "INSERT OR REPLACE INTO completed VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
        "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))");
    sqlite3_bind_text(st, 1, stage.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, pair_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, hash.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, a.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, fa.size);
    sqlite3_bind_int64(st, 6, fa.mtime_ns);
    sqlite3_bind_text(st, 7, b.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 8, fb.size);
    sqlite3_bind_int64(st, 9, fb.mtime_ns);
    sqlite3_bind_text(st, 10, result.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 11, fr.size);
    sqlite3_bind_int64(st, 12, fr.mtime_ns);
    sqlite3_bind_double(st, 13, seconds);
    step_done(st);
  }

 private:
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK) {
      throw IoError(fmt::format("{}: batch record database error: {}", path_, sqlite3_errmsg(db_)));
    }
    return st;
  }
  void step_done(sqlite3_stmt* st) {
    const int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      throw IoError(fmt::format("{}: cannot update the batch records: {}", path_, sqlite3_errmsg(db_)));
    }
  }
  void exec(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string reason = message ? message : "unknown";
      sqlite3_free(message);
      throw IoError(fmt::format("{}: batch record database error: {}", path_, reason));
    }
  }
  std::string path_;
  sqlite3* db_ = nullptr;
};

// Hands cancellation down to a pair's worker; the counts of its inner stages are not shown (the batch
// shows progress over pairs).
class ForwardingProgress final : public Progress {
 public:
  ForwardingProgress(Progress& parent, const std::atomic<bool>& stop) : parent_(parent), stop_(stop) {}
  void start(const std::string&, std::uint64_t) override {}
  void advance(std::uint64_t) override {}
  void finish() override {}
  bool cancelled() const override { return stop_.load() || parent_.cancelled(); }

 private:
  Progress& parent_;
  const std::atomic<bool>& stop_;
};

}  // namespace

BatchResult run_batch(const std::vector<timeseries::Pair>& pairs, const BatchOptions& options,
                      const PairWorker& worker, Progress* progress_in) {
  const auto started = std::chrono::steady_clock::now();
  options.validate();
  Progress& progress = progress_or_null(progress_in);
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (!fs::is_directory(options.output_dir, ec)) {
    throw IoError(fmt::format("-o {}: cannot create the output folder", options.output_dir));
  }
  auto inputs_of = options.inputs_of ? options.inputs_of : [](const timeseries::Pair& p) {
    return std::pair<std::string, std::string>{p.ref_path, p.sec_path};
  };
  CompletionStore store((fs::path(options.output_dir) / "batch.sqlite").string());
  const std::string hash = parameters_hash(options.parameters);

  BatchResult result;
  std::vector<std::size_t> todo;
  std::vector<char> done(pairs.size(), 0);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const auto [a, b] = inputs_of(pairs[i]);
    const std::string out = pair_result_path(options.output_dir, pairs[i]);
    if (store.is_complete(options.stage, pairs[i].id, hash, a, b, out)) {
      done[i] = 1;
      ++result.reused;
    } else {
      // A stale record must not survive a failed redo.
      store.forget(options.stage, pairs[i].id);
      todo.push_back(i);
    }
  }

  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  const auto by_ram =
      static_cast<int>(std::max<std::size_t>(1, options.ram_budget_mb / options.per_pair_ram_mb));
  const int in_flight =
      std::max(1, std::min({threads, by_ram, static_cast<int>(std::max<std::size_t>(todo.size(), 1))}));
  const std::size_t per_pair_mb = options.ram_budget_mb / static_cast<std::size_t>(in_flight);

  std::mutex mutex;  // guards the store, the failure list and the first error
  std::atomic<bool> stop{false};
  std::exception_ptr first_error;
  std::string first_error_pair;
  ForwardingProgress forward(progress, stop);
  progress.start(fmt::format("{}: pairs", options.stage), todo.size());
  std::size_t next = 0;
  tbb::parallel_pipeline(
      static_cast<std::size_t>(in_flight),
      tbb::make_filter<void, std::size_t>(tbb::filter_mode::serial_in_order,
                                          [&](tbb::flow_control& fc) -> std::size_t {
                                            if (next >= todo.size() || stop.load() || progress.cancelled()) {
                                              fc.stop();
                                              return 0;
                                            }
                                            return todo[next++];
                                          }) &
          tbb::make_filter<std::size_t, void>(tbb::filter_mode::parallel, [&](std::size_t i) {
            const auto& pair = pairs[i];
            const auto [a, b] = inputs_of(pair);
            PairTask task;
            task.pair = &pair;
            task.input_a = a;
            task.input_b = b;
            task.output = pair_result_path(options.output_dir, pair);
            task.ram_budget_mb = per_pair_mb;
            task.progress = &forward;
            const auto pair_started = std::chrono::steady_clock::now();
            try {
              worker(task);
              const double seconds =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - pair_started).count();
              std::lock_guard lock(mutex);
              store.record(options.stage, pair.id, hash, a, b, task.output, seconds);
              done[i] = 1;
              ++result.computed;
            } catch (const Cancelled&) {
              stop = true;
            } catch (const Error& e) {
              std::lock_guard lock(mutex);
              const bool data_problem = dynamic_cast<const IoError*>(&e) ||
                                        dynamic_cast<const FormatError*>(&e) ||
                                        dynamic_cast<const NumericalError*>(&e);
              if (options.skip_bad && data_problem) {
                result.failed.push_back(fmt::format("{}: {}", pair.id, e.what()));
                spdlog::warn("pair {} skipped: {}", pair.id, e.what());
              } else if (!first_error) {
                first_error = std::current_exception();
                first_error_pair = pair.id;
                stop = true;
              }
            } catch (...) {
              std::lock_guard lock(mutex);
              if (!first_error) {
                first_error = std::current_exception();
                first_error_pair = pair.id;
              }
              stop = true;
            }
            progress.advance();
          }));
  progress.finish();
  if (first_error) {
    try {
      std::rethrow_exception(first_error);
    } catch (const Error& e) {
      // Re-throw the same kind with the pair named (the exit code stays that of the cause).
      const std::string message = fmt::format("pair {}: {}", first_error_pair, e.what());
      switch (e.exit_code()) {
        case ExitCode::kInvalidArgument:
          throw InvalidArgument(message);
        case ExitCode::kIo:
          throw IoError(message);
        case ExitCode::kFormat:
          throw FormatError(message);
        case ExitCode::kNumerical:
          throw NumericalError(message);
        case ExitCode::kCancelled:
          throw Cancelled(message);
        default:
          throw Error(message, e.exit_code());
      }
    }
  }
  if (stop.load() || progress.cancelled()) {
    throw Cancelled(fmt::format("{}: cancelled after {} of {} pairs; rerun to complete the rest",
                                options.stage, result.reused + result.computed, pairs.size()));
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (!done[i]) continue;
    timeseries::Pair p = pairs[i];
    p.result_path = pair_result_path(options.output_dir, p);
    result.pairs.push_back(p);
    result.summary.outputs.push_back(p.result_path);
  }
  auto& s = result.summary;
  s.operation = options.stage;
  s.counts = {{"pairs", static_cast<std::int64_t>(pairs.size())},
              {"reused", result.reused},
              {"computed", result.computed},
              {"failed", static_cast<std::int64_t>(result.failed.size())},
              {"pairs_in_flight", in_flight}};
  s.warnings = result.failed;
  s.seconds = seconds_since(started);
  s.details = {{"parameters_hash", hash}, {"per_pair_ram_mb", per_pair_mb}};
  s.report = fmt::format("{}: {} pairs ({} reused from an earlier run, {} computed, {} failed) in {}\n",
                         options.stage, pairs.size(), result.reused, result.computed, result.failed.size(),
                         format_duration(s.seconds));
  return result;
}

}  // namespace deforma::pipeline
