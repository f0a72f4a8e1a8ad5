#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/service/server.hpp"

namespace deforma::service {
namespace {

using json = nlohmann::json;

// Reads key `key` of `obj` as T when present, refusing a value of another type by name.
class Reader {
 public:
  Reader(const std::string& file, const json& obj, std::string prefix)
      : file_(file), obj_(obj), prefix_(std::move(prefix)) {}

  void refuse_unknown(const std::set<std::string>& known) const {
    for (const auto& [key, value] : obj_.items()) {
      if (known.count(key)) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw InvalidArgument(
          fmt::format("--config {}: unknown key '{}{}' (expected one of {})", file_, prefix_, key, list));
    }
  }

  template <typename T>
  void integer(const char* key, T& out, long long min) const {
    if (!obj_.contains(key)) return;
    const json& v = obj_[key];
    if (!v.is_number_integer() || v.get<long long>() < min) {
      throw InvalidArgument(
          fmt::format("--config {}: key '{}{}': expected an integer >= {}", file_, prefix_, key, min));
    }
    out = static_cast<T>(v.get<long long>());
  }

  void number(const char* key, double& out, double min) const {
    if (!obj_.contains(key)) return;
    const json& v = obj_[key];
    if (!v.is_number() || v.get<double>() < min) {
      throw InvalidArgument(
          fmt::format("--config {}: key '{}{}': expected a number >= {}", file_, prefix_, key, min));
    }
    out = v.get<double>();
  }

  void boolean(const char* key, bool& out) const {
    if (!obj_.contains(key)) return;
    if (!obj_[key].is_boolean()) {
      throw InvalidArgument(
          fmt::format("--config {}: key '{}{}': expected true or false", file_, prefix_, key));
    }
    out = obj_[key].get<bool>();
  }

  const json* value(const char* key) const { return obj_.contains(key) ? &obj_[key] : nullptr; }

  std::string where(const char* key) const {
    return fmt::format("--config {}: key '{}{}'", file_, prefix_, key);
  }

 private:
  const std::string& file_;
  const json& obj_;
  std::string prefix_;
};

}  // namespace

void parse_listen(const std::string& text, const std::string& what, ServerOptions& options) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    throw InvalidArgument(fmt::format("{} '{}': expected HOST:PORT, e.g. 127.0.0.1:8080", what, text));
  }
  int port = 0;
  try {
    std::size_t used = 0;
    const std::string digits = text.substr(colon + 1);
    port = std::stoi(digits, &used);
    if (used != digits.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw InvalidArgument(fmt::format("{} '{}': the port is not a number", what, text));
  }
  if (port < 0 || port > 65535) {
    throw InvalidArgument(fmt::format("{} '{}': the port must be between 0 and 65535", what, text));
  }
  options.host = text.substr(0, colon);
  options.port = port;
}

void read_config_file(const std::filesystem::path& file, ServerOptions& options) {
  const std::string name = file.string();
  std::ifstream in(file);
  if (!in) throw IoError(fmt::format("--config {}: cannot read the file", name));
  std::stringstream text;
  text << in.rdbuf();
  const json doc = json::parse(text.str(), nullptr, false);
  if (doc.is_discarded()) throw FormatError(fmt::format("--config {}: not valid JSON", name));
  if (!doc.is_object())
    throw FormatError(fmt::format("--config {}: expected a JSON object of settings", name));
  const Reader r(name, doc, "");
  r.refuse_unknown({"listen", "workers", "io_threads", "job_threads", "job_ram_mb", "executor", "data", "retention_days",
                    "max_attempts", "body_limit_mb", "read_timeout_s", "anonymous_read", "default_quotas"});
  if (const json* v = r.value("listen")) {
    if (!v->is_string()) throw InvalidArgument(r.where("listen") + ": expected \"HOST:PORT\"");
    parse_listen(v->get<std::string>(), r.where("listen"), options);
  }
  r.integer("workers", options.workers, 1);
  r.integer("io_threads", options.io_threads, 1);
  r.integer("job_threads", options.job_threads, 0);
  r.integer("job_ram_mb", options.job_ram_mb, 16);
  if (const json* v = r.value("executor")) {
    if (!v->is_string() || (*v != "local" && *v != "slurm"))
      throw InvalidArgument(r.where("executor") + ": expected \"local\" or \"slurm\"");
    options.executor = v->get<std::string>();
  }
  r.integer("max_attempts", options.max_attempts, 1);
  r.integer("read_timeout_s", options.read_timeout_s, 1);
  std::size_t body_limit_mb = options.body_limit_bytes >> 20;
  r.integer("body_limit_mb", body_limit_mb, 1);
  options.body_limit_bytes = body_limit_mb << 20;
  r.number("retention_days", options.retention_days, 0);
  r.boolean("anonymous_read", options.anonymous_read);
  if (const json* v = r.value("data")) {
    if (!v->is_array()) throw InvalidArgument(r.where("data") + ": expected an array of folders");
    options.data_roots.clear();
    for (const auto& d : *v) {
      if (!d.is_string()) throw InvalidArgument(r.where("data") + ": expected an array of folders");
      options.data_roots.emplace_back(d.get<std::string>());
    }
  }
  if (const json* v = r.value("default_quotas")) {
    if (!v->is_object()) throw InvalidArgument(r.where("default_quotas") + ": expected an object");
    const Reader q(name, *v, "default_quotas.");
    q.refuse_unknown({"running", "queued", "storage_mb", "cpu_seconds_per_month"});
    Quotas quotas = options.default_quotas.value_or(Quotas{});
    q.integer("running", quotas.running, 0);
    q.integer("queued", quotas.queued, 0);
    std::int64_t storage_mb = quotas.storage_bytes >> 20;
    q.integer("storage_mb", storage_mb, 0);
    quotas.storage_bytes = storage_mb << 20;
    q.number("cpu_seconds_per_month", quotas.cpu_seconds_per_month, 0);
    options.default_quotas = quotas;
  }
}

}  // namespace deforma::service
