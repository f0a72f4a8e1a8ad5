#include "deforma/service/store.hpp"

#include <sqlite3.h>

#include <openssl/sha.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/dates.hpp"

namespace deforma::service {
namespace {

// One prepared statement, finalized on scope exit; binds text and integers by position.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
      throw IoError(fmt::format("service store: cannot prepare '{}': {}", sql, sqlite3_errmsg(db)));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.c_str(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, std::int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  /// Steps once; true while rows come.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw IoError(fmt::format("service store: {}", sqlite3_errmsg(db_)));
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  Statement& bind_real(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
    return *this;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::string sha256_hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  for (unsigned char c : digest) hex += fmt::format("{:02x}", c);
  return hex;
}

// Constant-time comparison, so a timing difference does not reveal how much of a hash matched.
bool same(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

constexpr const char* kJobColumns =
    "id, user, process, inputs, status, progress, message, created, started, finished, updated, attempts, "
    "expires, seq, cpu_seconds, public, priority";

Job read_job(const Statement& s) {
  Job j;
  j.id = s.text(0);
  j.user = s.text(1);
  j.process = s.text(2);
  j.inputs = nlohmann::json::parse(s.text(3), nullptr, false);
  j.status = s.text(4);
  j.progress = static_cast<int>(s.integer(5));
  j.message = s.text(6);
  j.created = s.text(7);
  j.started = s.text(8);
  j.finished = s.text(9);
  j.updated = s.text(10);
  j.attempts = static_cast<int>(s.integer(11));
  j.expires = s.text(12);
  j.seq = s.integer(13);
  j.cpu_seconds = s.real(14);
  j.is_public = s.integer(15) != 0;
  j.priority = static_cast<int>(s.integer(16));
  return j;
}

User read_user(const Statement& s) {
  User u;
  u.name = s.text(0);
  u.admin = s.integer(1) != 0;
  u.quotas.running = s.integer(2);
  u.quotas.queued = s.integer(3);
  u.quotas.storage_bytes = s.integer(4);
  u.created = s.text(5);
  u.quotas.cpu_seconds_per_month = s.real(6);
  return u;
}

constexpr const char* kUserColumns =
    "name, admin, max_running, max_queued, max_storage_bytes, created, max_cpu_seconds_month";

// "2026-01" for the current UTC month: the period of the CPU quota.
std::string current_month() {
  return now_rfc3339().substr(0, 7);
}

}  // namespace

std::string now_rfc3339() { return io::iso_utc(std::time(nullptr)); }

std::string random_hex(std::size_t bytes) {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  if (!urandom.read(raw.data(), static_cast<std::streamsize>(bytes))) {
    throw IoError("/dev/urandom: cannot read random bytes for keys and ids");
  }
  std::string hex;
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
}

Store::Store(const std::filesystem::path& root) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  const auto path = (root / "service.db").string();
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw IoError(fmt::format("{}: cannot open the service store: {}", path, why));
  }
  // Another process (`deforma users`) may write at the same time: wait for its lock instead of failing.
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");
  exec(
      "CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, key_id TEXT UNIQUE NOT NULL, salt TEXT NOT "
      "NULL, "
      "key_hash TEXT NOT NULL, admin INTEGER NOT NULL DEFAULT 0, max_running INTEGER NOT NULL, "
      "max_queued INTEGER NOT NULL, max_storage_bytes INTEGER NOT NULL, created TEXT NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, "
      "user TEXT NOT NULL, process TEXT NOT NULL, inputs TEXT NOT NULL, status TEXT NOT NULL, "
      "progress INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', created TEXT NOT NULL, "
      "started TEXT NOT NULL DEFAULT '', finished TEXT NOT NULL DEFAULT '', updated TEXT NOT NULL, "
      "attempts INTEGER NOT NULL DEFAULT 0, expires TEXT NOT NULL DEFAULT '')");
  exec("CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user, status)");
  // Columns added after the first release: a store created before gets them here.
  add_column("users", "max_cpu_seconds_month", "REAL NOT NULL DEFAULT 360000");
  add_column("jobs", "cpu_seconds", "REAL NOT NULL DEFAULT 0");
  add_column("jobs", "public", "INTEGER NOT NULL DEFAULT 0");
  add_column("jobs", "priority", "INTEGER NOT NULL DEFAULT 0");
  // Monthly CPU use outlives the jobs (the janitor removes expired ones).
  exec(
      "CREATE TABLE IF NOT EXISTS cpu_usage(user TEXT NOT NULL, month TEXT NOT NULL, cpu_seconds REAL NOT "
      "NULL, PRIMARY KEY(user, month))");
  exec("CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS uploads(user TEXT NOT NULL, name TEXT NOT NULL, size_bytes INTEGER NOT "
      "NULL, "
      "created TEXT NOT NULL, PRIMARY KEY(user, name))");
}

Store::~Store() {
  sqlite3_close(db_);
}

void Store::add_column(const std::string& table, const std::string& column, const std::string& type) {
  Statement s(db_, fmt::format("SELECT 1 FROM pragma_table_info('{}') WHERE name = ?", table));
  s.bind(1, column);
  if (!s.step()) exec(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", table, column, type));
}

void Store::exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error ? error : "unknown error";
    sqlite3_free(error);
    throw IoError(fmt::format("service store: {}", why));
  }
}

std::string Store::add_user(const std::string& name, bool admin, const Quotas& quotas) {
  if (name.empty() || name.find_first_of(" /\\.:\"'") != std::string::npos) {
    throw InvalidArgument(
        fmt::format("user name '{}': expected a non-empty name without spaces, slashes, dots, "
                    "colons or quotes",
                    name));
  }
  const std::string key_id = random_hex(6);
  const std::string key = key_id + "." + random_hex(24);
  const std::string salt = random_hex(16);
  std::lock_guard lock(mutex_);
  {
    Statement exists(db_, "SELECT 1 FROM users WHERE name = ?");
    exists.bind(1, name);
    if (exists.step()) throw InvalidArgument(fmt::format("user '{}' already exists", name));
  }
  Statement s(
      db_,
      "INSERT INTO users(name, key_id, salt, key_hash, admin, max_running, max_queued, max_storage_bytes, "
      "created, max_cpu_seconds_month) VALUES(?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, name).bind(2, key_id).bind(3, salt).bind(4, sha256_hex(salt + key));
  s.bind(5, std::int64_t{admin ? 1 : 0}).bind(6, quotas.running).bind(7, quotas.queued);
  s.bind(8, quotas.storage_bytes).bind(9, now_rfc3339()).bind_real(10, quotas.cpu_seconds_per_month);
  s.step();
  return key;
}

bool Store::remove_user(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "DELETE FROM users WHERE name = ?");
  s.bind(1, name).step();
  return sqlite3_changes(db_) > 0;
}

bool Store::set_quotas(const std::string& name, const Quotas& quotas) {
  std::lock_guard lock(mutex_);
  Statement s(
      db_,
      "UPDATE users SET max_running = ?, max_queued = ?, max_storage_bytes = ?, max_cpu_seconds_month = ? "
      "WHERE name = ?");
  s.bind(1, quotas.running).bind(2, quotas.queued).bind(3, quotas.storage_bytes);
  s.bind_real(4, quotas.cpu_seconds_per_month).bind(5, name).step();
  return sqlite3_changes(db_) > 0;
}

std::vector<User> Store::users() {
  std::lock_guard lock(mutex_);
  Statement s(db_, fmt::format("SELECT {} FROM users ORDER BY name", kUserColumns));
  std::vector<User> out;
  while (s.step()) out.push_back(read_user(s));
  return out;
}

std::optional<User> Store::user(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement s(db_, fmt::format("SELECT {} FROM users WHERE name = ?", kUserColumns));
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return read_user(s);
}

std::optional<User> Store::authenticate(const std::string& key) {
  const auto dot = key.find('.');
  if (dot == std::string::npos || key.size() > 200) return std::nullopt;
  std::lock_guard lock(mutex_);
  Statement s(db_, fmt::format("SELECT {}, salt, key_hash FROM users WHERE key_id = ?", kUserColumns));
  s.bind(1, key.substr(0, dot));
  if (!s.step()) return std::nullopt;
  if (!same(sha256_hex(s.text(7) + key), s.text(8))) return std::nullopt;
  return read_user(s);
}

void Store::insert_job(Job& job) {
  std::lock_guard lock(mutex_);
  Statement s(
      db_,
      "INSERT INTO jobs(id, user, process, inputs, status, progress, message, created, updated, attempts, "
      "priority) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, job.id).bind(2, job.user).bind(3, job.process).bind(4, job.inputs.dump()).bind(5, job.status);
  s.bind(6, std::int64_t{job.progress}).bind(7, job.message).bind(8, job.created).bind(9, job.updated);
  s.bind(10, std::int64_t{job.attempts}).bind(11, std::int64_t{job.priority});
  s.step();
  job.seq = sqlite3_last_insert_rowid(db_);
}

std::optional<Job> Store::job(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement s(db_, fmt::format("SELECT {} FROM jobs WHERE id = ?", kJobColumns));
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_job(s);
}

std::vector<Job> Store::jobs(const JobFilter& filter) {
  std::string sql = fmt::format("SELECT {} FROM jobs WHERE seq > ?", kJobColumns);
  if (!filter.user.empty()) sql += " AND user = ?";
  auto in_list = [&](const std::vector<std::string>& values, const char* column) {
    if (values.empty()) return;
    sql += fmt::format(" AND {} IN (", column);
    for (std::size_t i = 0; i < values.size(); ++i) sql += i ? ",?" : "?";
    sql += ")";
  };
  in_list(filter.statuses, "status");
  in_list(filter.processes, "process");
  if (!filter.created_from.empty()) sql += " AND created >= ?";
  if (!filter.created_to.empty()) sql += " AND created <= ?";
  sql += " ORDER BY seq LIMIT ?";
  std::lock_guard lock(mutex_);
  Statement s(db_, sql);
  int index = 1;
  s.bind(index++, filter.after_seq);
  if (!filter.user.empty()) s.bind(index++, filter.user);
  for (const auto& v : filter.statuses) s.bind(index++, v);
  for (const auto& v : filter.processes) s.bind(index++, v);
  if (!filter.created_from.empty()) s.bind(index++, filter.created_from);
  if (!filter.created_to.empty()) s.bind(index++, filter.created_to);
  s.bind(index, std::int64_t{filter.limit});
  std::vector<Job> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

std::vector<Job> Store::jobs_in(const std::string& status) {
  std::lock_guard lock(mutex_);
  Statement s(db_, fmt::format("SELECT {} FROM jobs WHERE status = ? ORDER BY priority DESC, seq", kJobColumns));
  s.bind(1, status);
  std::vector<Job> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

std::int64_t Store::count_jobs(const std::string& user, const std::string& status) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT COUNT(*) FROM jobs WHERE user = ? AND status = ?");
  s.bind(1, user).bind(2, status);
  s.step();
  return s.integer(0);
}

bool Store::transition(const std::string& id, const std::string& from, const std::string& to,
                       const std::string& message) {
  std::lock_guard lock(mutex_);
  const std::string now = now_rfc3339();
  std::string sql = "UPDATE jobs SET status = ?1, message = ?2, updated = ?3";
  if (to == "running") sql += ", started = ?4, attempts = attempts + 1";
  if (to == "dismissed" || to == "failed" || to == "successful") sql += ", finished = ?4";
  sql += " WHERE id = ?5 AND status = ?6";
  Statement s(db_, sql);
  s.bind(1, to).bind(2, message).bind(3, now).bind(4, now).bind(5, id).bind(6, from);
  s.step();
  return sqlite3_changes(db_) > 0;
}

void Store::set_progress(const std::string& id, int progress, const std::string& message) {
  std::lock_guard lock(mutex_);
  Statement s(db_,
              "UPDATE jobs SET progress = ?, message = ?, updated = ? WHERE id = ? AND status = 'running'");
  s.bind(1, std::int64_t{progress}).bind(2, message).bind(3, now_rfc3339()).bind(4, id).step();
}

void Store::finish(const std::string& id, const std::string& status, const std::string& message,
                   const std::string& expires) {
  std::lock_guard lock(mutex_);
  const std::string now = now_rfc3339();
  Statement s(
      db_,
      "UPDATE jobs SET status = ?, message = ?, updated = ?, finished = ?, expires = ?, "
      "progress = CASE WHEN ? = 'successful' THEN 100 ELSE progress END WHERE id = ? AND status = 'running'");
  s.bind(1, status).bind(2, message).bind(3, now).bind(4, now).bind(5, expires).bind(6, status).bind(7, id);
  s.step();
}

void Store::remove_job(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "DELETE FROM jobs WHERE id = ?");
  s.bind(1, id).step();
}

std::pair<int, int> Store::recover(int max_attempts) {
  std::lock_guard lock(mutex_);
  const std::string now = now_rfc3339();
  Statement requeue(db_,
                    "UPDATE jobs SET status = 'accepted', progress = 0, updated = ?, "
                    "message = 'the service stopped while the job ran; queued again' "
                    "WHERE status = 'running' AND attempts < ?");
  requeue.bind(1, now).bind(2, std::int64_t{max_attempts}).step();
  const int requeued = sqlite3_changes(db_);
  Statement fail(db_,
                 "UPDATE jobs SET status = 'failed', updated = ?1, finished = ?1, "
                 "message = 'the service stopped while the job ran, ' || attempts || ' times: given up' "
                 "WHERE status = 'running'");
  fail.bind(1, now).step();
  return {requeued, sqlite3_changes(db_)};
}

void Store::add_cpu_seconds(const std::string& id, double seconds) {
  std::lock_guard lock(mutex_);
  exec("BEGIN IMMEDIATE");
  try {
    Statement job(db_, "UPDATE jobs SET cpu_seconds = cpu_seconds + ? WHERE id = ?");
    job.bind_real(1, seconds).bind(2, id).step();
    Statement use(db_,
                  "INSERT INTO cpu_usage(user, month, cpu_seconds) SELECT user, ?, ? FROM jobs WHERE id = ? "
                  "ON CONFLICT(user, month) DO UPDATE SET cpu_seconds = cpu_seconds + excluded.cpu_seconds");
    use.bind(1, current_month()).bind_real(2, seconds).bind(3, id).step();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

double Store::cpu_seconds_this_month(const std::string& user) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT cpu_seconds FROM cpu_usage WHERE user = ? AND month = ?");
  s.bind(1, user).bind(2, current_month());
  return s.step() ? s.real(0) : 0.0;
}

void Store::set_public(const std::string& id, bool is_public) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "UPDATE jobs SET public = ? WHERE id = ?");
  s.bind(1, std::int64_t{is_public ? 1 : 0}).bind(2, id).step();
}

Quotas Store::default_quotas() {
  Quotas q;
  std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT value FROM settings WHERE key = 'default_quotas'");
  if (!s.step()) return q;
  const auto j = nlohmann::json::parse(s.text(0), nullptr, false);
  if (!j.is_object()) return q;
  q.running = j.value("running", q.running);
  q.queued = j.value("queued", q.queued);
  q.storage_bytes = j.value("storage_bytes", q.storage_bytes);
  q.cpu_seconds_per_month = j.value("cpu_seconds_per_month", q.cpu_seconds_per_month);
  return q;
}

void Store::set_default_quotas(const Quotas& quotas) {
  const nlohmann::json j{{"running", quotas.running},
                         {"queued", quotas.queued},
                         {"storage_bytes", quotas.storage_bytes},
                         {"cpu_seconds_per_month", quotas.cpu_seconds_per_month}};
  std::lock_guard lock(mutex_);
  Statement s(db_, "INSERT OR REPLACE INTO settings(key, value) VALUES('default_quotas', ?)");
  s.bind(1, j.dump()).step();
}

void Store::record_upload(const std::string& user, const std::string& name, std::int64_t size_bytes) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "INSERT OR REPLACE INTO uploads(user, name, size_bytes, created) VALUES(?,?,?,?)");
  s.bind(1, user).bind(2, name).bind(3, size_bytes).bind(4, now_rfc3339()).step();
}

nlohmann::json Store::uploads(const std::string& user) {
  std::lock_guard lock(mutex_);
  Statement s(db_, "SELECT name, size_bytes, created FROM uploads WHERE user = ? ORDER BY name");
  s.bind(1, user);
  nlohmann::json out = nlohmann::json::array();
  while (s.step()) out.push_back({{"name", s.text(0)}, {"size_bytes", s.integer(1)}, {"created", s.text(2)}});
  return out;
}

}  // namespace deforma::service
