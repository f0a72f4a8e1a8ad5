#include "deforma/pipeline/unit.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/pipeline/invert_units.hpp"
#include "deforma/pipeline/unit_registry.hpp"
#include "pipeline/unit_parameters.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

namespace {

constexpr const char* kListFormat = "deforma-units/1";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_atomically(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  io::write_text_atomically(path, text);
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

std::string now_utc() {
  return io::iso_utc(std::time(nullptr));
}

}  // namespace

nlohmann::json WorkUnit::to_json() const {
  return {{"id", id},
          {"operation", operation},
          {"parameters", parameters},
          {"inputs", inputs},
          {"output", output}};
}

WorkUnit WorkUnit::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw FormatError("work unit: not a JSON object");
  for (const char* key : {"id", "operation", "parameters", "inputs", "output"}) {
    if (!j.contains(key)) throw FormatError(fmt::format("work unit: '{}' is missing", key));
  }
  try {
    WorkUnit u;
    u.id = j.at("id").get<std::string>();
    u.operation = j.at("operation").get<std::string>();
    u.parameters = j.at("parameters");
    u.inputs = j.at("inputs").get<std::vector<std::string>>();
    u.output = j.at("output").get<std::string>();
    return u;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("work unit: {}", e.what()));
  }
}

nlohmann::json UnitList::to_json() const {
  nlohmann::json units_json = nlohmann::json::array();
  for (const auto& u : units) units_json.push_back(u.to_json());
  return {{"format", kListFormat}, {"stage", stage},   {"dir", dir},
          {"skip_bad", skip_bad},  {"ram_mb", ram_mb}, {"command_line", command_line},
          {"units", units_json}};
}

UnitList UnitList::from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("format", "") != kListFormat) {
    throw FormatError(fmt::format("not a deforma unit list (expected \"format\": \"{}\")", kListFormat));
  }
  try {
    UnitList l;
    l.stage = j.at("stage").get<std::string>();
    l.dir = j.at("dir").get<std::string>();
    l.skip_bad = j.value("skip_bad", false);
    l.ram_mb = j.value("ram_mb", std::size_t{256});
    l.command_line = j.value("command_line", "");
    for (const auto& u : j.at("units")) l.units.push_back(WorkUnit::from_json(u));
    return l;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("unit list: {}", e.what()));
  }
}

void UnitList::write(const std::string& path) const {
  write_text_atomically(path, to_json().dump(1) + "\n");
}

UnitList UnitList::read(const std::string& path) {
  const std::string text = read_text(path);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw FormatError(fmt::format("{}: not valid JSON", path));
  try {
    return from_json(j);
  } catch (const FormatError& e) {
    throw FormatError(fmt::format("{}: {}", path, e.what()));
  }
}

std::optional<std::size_t> UnitList::find(const std::string& id) const {
  for (std::size_t i = 0; i < units.size(); ++i) {
    if (units[i].id == id) return i;
  }
  return std::nullopt;
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw Error("SHA-256 failed (OpenSSL)", ExitCode::kInternal);
  }
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

FileFingerprint file_fingerprint(const std::string& path) {
  FileFingerprint f;
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return f;
  f.size = static_cast<long long>(st.st_size);
  f.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return f;
}

namespace {
// One spelling per file: a run from another folder, or a cluster task given absolute paths, finds the same
// key.
std::string absolute_path(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const auto p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}
}  // namespace

namespace {
// An input inside the run folder (another stage's result, the glacier regions) is named by its path in
// that folder, so that a run folder copied or hard-linked elsewhere as a whole (a service job updating an
// earlier one's) keeps the keys of every stage, not only of those reading files outside it. The run folder
// is the stage folder's parent; an inversion block writes one level deeper (<stage>/blocks/).
std::string input_key_path(const std::string& input, const WorkUnit& unit) {
  const std::string absolute = absolute_path(input);
  fs::path run = fs::path(absolute_path(unit.output)).parent_path().parent_path();
  if (unit.operation == kInvertBlockOperation) run = run.parent_path();
  if (run.empty() || run == run.root_path()) return absolute;
  const fs::path relative = fs::path(absolute).lexically_relative(run);
  if (relative.empty() || *relative.begin() == "..") return absolute;
  return "run:" + relative.generic_string();
}
}  // namespace

std::string unit_key(const WorkUnit& unit) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& path : unit.inputs) {
    const auto f = file_fingerprint(path);
    inputs.push_back({{"path", input_key_path(path, unit)}, {"size", f.size}, {"mtime_ns", f.mtime_ns}});
  }
  // nlohmann::json objects keep their keys sorted and dump() writes doubles to round-trip: canonical text.
  const nlohmann::json identity = {{"operation", unit.operation},
                                   {"parameters", unit.parameters},
                                   {"inputs", inputs},
                                   {"output", fs::path(unit.output).filename().string()}};
  return sha256_hex(identity.dump());
}

std::string unit_record_path(const std::string& dir, const std::string& unit_id) {
  return (fs::path(dir) / "units" / (unit_id + ".json")).string();
}

std::string unit_skip_path(const std::string& dir, const std::string& unit_id) {
  return (fs::path(dir) / "units" / (unit_id + ".skipped.json")).string();
}

std::string unit_error_path(const std::string& dir, const std::string& unit_id) {
  return (fs::path(dir) / "units" / (unit_id + ".error.json")).string();
}

bool unit_complete(const std::string& dir, const WorkUnit& unit, const std::string& key_in) {
  const auto record = io::read_json_file(unit_record_path(dir, unit.id));
  if (!record.is_object()) return false;
  const std::string key = key_in.empty() ? unit_key(unit) : key_in;
  const FileFingerprint out = file_fingerprint(unit.output);
  // The record names the output it describes: the same file, or the same name in this folder when the
  // folder was moved or linked as a whole (a service job updating an earlier one's); size and date must
  // match.
  const std::string recorded = record.value("output", "");
  const bool same_output =
      absolute_path(recorded) == absolute_path(unit.output) ||
      (fs::path(recorded).filename() == fs::path(unit.output).filename() &&
       fs::path(absolute_path(unit.output)).parent_path() == fs::path(absolute_path(dir)));
  return out.size >= 0 && record.value("key", "") == key && same_output &&
         record.value("output_size", -2LL) == out.size &&
         record.value("output_mtime_ns", -2LL) == out.mtime_ns;
}

void record_unit(const std::string& dir, const WorkUnit& unit, double seconds, const std::string& key) {
  const FileFingerprint out = file_fingerprint(unit.output);
  if (out.size < 0) {
    throw IoError(fmt::format("{}: the result of unit {} is missing after its run", unit.output, unit.id));
  }
  const nlohmann::json record = {
      {"unit", unit.id},       {"operation", unit.operation}, {"key", key.empty() ? unit_key(unit) : key},
      {"output", unit.output}, {"output_size", out.size},     {"output_mtime_ns", out.mtime_ns},
      {"seconds", seconds},    {"host", host_name()},         {"completed_at", now_utc()}};
  std::error_code ec;
  fs::remove(unit_skip_path(dir, unit.id), ec);
  fs::remove(unit_error_path(dir, unit.id), ec);
  write_text_atomically(unit_record_path(dir, unit.id), record.dump(1) + "\n");
}

void forget_unit(const std::string& dir, const WorkUnit& unit) {
  std::error_code ec;
  fs::remove(unit_record_path(dir, unit.id), ec);
  fs::remove(unit_skip_path(dir, unit.id), ec);
  fs::remove(unit_error_path(dir, unit.id), ec);
}

void record_skipped_unit(const std::string& dir, const WorkUnit& unit, const std::string& reason) {
  write_text_atomically(
      unit_skip_path(dir, unit.id),
      nlohmann::json{{"unit", unit.id}, {"reason", reason}, {"host", host_name()}}.dump(1) + "\n");
}

std::optional<std::string> skipped_reason(const std::string& dir, const WorkUnit& unit) {
  const auto j = io::read_json_file(unit_skip_path(dir, unit.id));
  if (!j.is_object()) return std::nullopt;
  return j.value("reason", std::string("skipped"));
}

// A unit's parameters are written through the declarations of every field (unit_parameters.hpp), with the
// operations' parameter names: not field by field, where one is easily left out of the cache key.
nlohmann::json correlate_options_json(const correlate::CorrelateOptions& o) {
  return correlate_unit_parameters().to_json(o);
}

correlate::CorrelateOptions correlate_options_from_json(const nlohmann::json& j) {
  try {
    correlate::CorrelateOptions o;
    correlate_unit_parameters().from_json(j, o);
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("work unit: correlation parameters: {}", e.what()));
  } catch (const InvalidArgument& e) {
    throw FormatError(fmt::format("work unit: correlation parameters: {}", e.what()));
  }
}

nlohmann::json filter_options_json(const filter::FilterOptions& o) {
  return filter_unit_parameters().to_json(o);
}

filter::FilterOptions filter_options_from_json(const nlohmann::json& j) {
  try {
    filter::FilterOptions o;
    filter_unit_parameters().from_json(j, o);
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("work unit: filter parameters: {}", e.what()));
  } catch (const InvalidArgument& e) {
    throw FormatError(fmt::format("work unit: filter parameters: {}", e.what()));
  }
}

WorkUnit correlate_unit(const std::string& id, const std::string& ref, const std::string& sec,
                        const std::string& output, const correlate::CorrelateOptions& options) {
  WorkUnit u;
  u.id = id;
  u.operation = "correlate";
  u.parameters = {{"correlation", correlate_options_json(options)}};
  u.inputs = {ref, sec};
  for (const auto* extra : {&options.mask_path, &options.guess_path, &options.stable_path}) {
    if (!extra->empty()) u.inputs.push_back(*extra);
  }
  u.output = output;
  return u;
}

WorkUnit filter_unit(const std::string& id, const std::string& input, const std::string& output,
                     const filter::FilterOptions& options) {
  WorkUnit u;
  u.id = id;
  u.operation = "filter";
  u.parameters = {{"filter", filter_options_json(options)}};
  u.inputs = {input};
  for (const auto* extra : {&options.stable_path, &options.exclude_path}) {
    if (!extra->empty()) u.inputs.push_back(*extra);
  }
  u.output = output;
  return u;
}

Summary execute_unit(const UnitList& list, const WorkUnit& unit, RunContext& context) {
  if (unit.operation == "correlate") {
    if (unit.inputs.size() < 2)
      throw FormatError(fmt::format("unit {}: correlate needs two inputs", unit.id));
    const auto options = correlate_options_from_json(unit.parameters.at("correlation"));
    RunContext pair_context = context;
    if (pair_context.command_line.empty()) pair_context.command_line = list.command_line;
    return correlate::correlate_pair(unit.inputs[0], unit.inputs[1], unit.output, options, pair_context);
  }
  if (unit.operation == "filter") {
    if (unit.inputs.empty()) throw FormatError(fmt::format("unit {}: filter needs an input", unit.id));
    filter::FilterRun run;
    run.input = unit.inputs[0];
    run.output = unit.output;
    run.options = filter_options_from_json(unit.parameters.at("filter"));
    run.command_line = context.command_line.empty() ? list.command_line : context.command_line;
    run.parameters = unit.parameters.at("filter");
    run.ram_budget_mb = context.ram_budget_mb;
    run.progress = context.progress;
    return filter::filter_result(run);
  }
  if (unit.operation == kInvertBlockOperation) return execute_invert_block(list, unit, context);
  if (const UnitRunner runner = unit_operation(unit.operation)) return runner(list, unit, context);
  throw InvalidArgument(
      fmt::format("unit {}: operation '{}' cannot run as a unit (expected correlate, filter or invert-block)",
                  unit.id, unit.operation));
}

UnitOutcome run_unit(const UnitList& list, std::size_t index, RunContext& context) {
  if (index >= list.units.size()) {
    throw InvalidArgument(fmt::format("parameter INDEX: {} is out of range (the list has {} units, 0 to {})",
                                      index, list.units.size(),
                                      list.units.empty() ? 0 : list.units.size() - 1));
  }
  const WorkUnit& unit = list.units[index];
  const std::string key = unit_key(unit);
  if (unit_complete(list.dir, unit, key)) {
    run_log()->info("unit {} ({}): complete from an earlier run", unit.id, list.stage);
    return UnitOutcome::kReused;
  }
  forget_unit(list.dir, unit);
  const auto started = std::chrono::steady_clock::now();
  try {
    if (const char* fail = std::getenv("DEFORMA_TEST_FAIL_UNIT"); fail && *fail) {
      const std::string spec = fail;
      const bool once = spec.size() > 5 && spec.compare(spec.size() - 5, 5, ":once") == 0;
      const std::string target = once ? spec.substr(0, spec.size() - 5) : spec;
      if (target == unit.id || target == list.stage + "/" + unit.id) {
        const std::string marker = (fs::path(list.dir) / "units" / (unit.id + ".injected")).string();
        if (!once || !fs::exists(marker)) {
          if (once) write_text_atomically(marker, "1\n");
          // Not a data error: a skip_bad list must not take it for a bad pair.
          throw Error(fmt::format("unit {}: failure injected by DEFORMA_TEST_FAIL_UNIT", unit.id),
                      ExitCode::kInternal);
        }
      }
    }
    try {
      execute_unit(list, unit, context);
    } catch (const Error& e) {
      const bool data_problem = dynamic_cast<const IoError*>(&e) || dynamic_cast<const FormatError*>(&e) ||
                                dynamic_cast<const NumericalError*>(&e);
      if (list.skip_bad && data_problem) {
        run_log()->warn("unit {} ({}) skipped: {}", unit.id, list.stage, e.what());
        record_skipped_unit(list.dir, unit, e.what());
        // A result left from an earlier run is not this run's: a later stage must not take it as input.
        std::error_code ec;
        fs::remove(unit.output, ec);
        return UnitOutcome::kSkipped;
      }
      throw;
    }
  } catch (const Error& e) {
    try {
      write_text_atomically(unit_error_path(list.dir, unit.id),
                            nlohmann::json{{"unit", unit.id},
                                           {"kind", e.kind()},
                                           {"exit_code", static_cast<int>(e.exit_code())},
                                           {"message", e.what()},
                                           {"host", host_name()}}
                                    .dump(1) +
                                "\n");
    } catch (const Error&) {
      // The log still has the message.
    }
    throw;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The key of the inputs as they were read: an input replaced during the run leaves a stale record that the
  // next check refuses.
  record_unit(list.dir, unit, seconds, key);
  return UnitOutcome::kComputed;
}

}  // namespace deforma::pipeline
