#pragma once
// Operations and their parameters, declared once. An OperationDecl lists an operation's parameters with
// type, unit, default, domain and help; from that single declaration come the CLI options (apps/),
// the machine-readable process description (describe_json, for the HTTP service) and the docs page
// (describe_markdown). Operations are registered by name in an OperationRegistry and run with a
// ParamValues object that has been checked against the declaration (PDAL-style dispatch).
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"

namespace spdlog {
class logger;
}

namespace deforma {

enum class ParamType {
  kInt,
  kDouble,
  kString,
  kBool,    ///< a flag: present = true
  kPath,    ///< a file or folder name
  kChoice,  ///< one of `choices`
  kList,    ///< one or more strings (a positional list of files, say)
};

/// What a parameter is to a caller that runs the operation on someone else's behalf (the HTTP service):
/// an input dataset is a reference it resolves within its data roots; an output is a file or folder it
/// places itself (never chosen by a remote client); anything else is a plain value.
enum class ParamRole {
  kValue,
  kInput,   ///< an existing file or folder read by the operation (kPath or kList of paths)
  kOutput,  ///< a file, folder or file-name prefix written by the operation
};

struct ParamDecl {
  std::string name;  ///< long option name without dashes, e.g. "min-snr"; positional when `positional`
  ParamType type = ParamType::kString;
  std::string help;
  std::string unit;           ///< "px", "m", "mm/yr", "MB"... shown in help and docs
  std::string default_value;  ///< as text; empty = no default
  std::vector<std::string> choices;
  std::optional<double> min_value;  ///< inclusive bound for kInt/kDouble
  std::optional<double> max_value;  ///< inclusive bound for kInt/kDouble
  bool required = false;
  bool positional = false;
  std::string short_name;  ///< single letter, e.g. "o"
  ParamRole role = ParamRole::kValue;
  std::string media_type;  ///< outputs: what is written ("image/tiff; application=geotiff; profile=cloud-optimized",
                           ///< "image/png", "text/csv", "inode/directory" for a folder...)

  /// A named option (--name), optional unless mandatory() is called.
  static ParamDecl option(std::string name, ParamType type, std::string help);
  /// A positional argument, required unless optional() is called.
  static ParamDecl argument(std::string name, ParamType type, std::string help);

  ParamDecl& in_unit(std::string u) { unit = std::move(u); return *this; }
  ParamDecl& defaults_to(std::string v) { default_value = std::move(v); return *this; }
  ParamDecl& between(double lo, double hi) { min_value = lo; max_value = hi; return *this; }
  ParamDecl& at_least(double lo) { min_value = lo; return *this; }
  ParamDecl& one_of(std::vector<std::string> values) { choices = std::move(values); return *this; }
  ParamDecl& mandatory() { required = true; return *this; }
  ParamDecl& optional() { required = false; return *this; }
  ParamDecl& alias(std::string letter) { short_name = std::move(letter); return *this; }
  ParamDecl& as_input() { role = ParamRole::kInput; return *this; }
  ParamDecl& as_output(std::string type) { role = ParamRole::kOutput; media_type = std::move(type); return *this; }
};

/// Values of one run, checked against the declaration (types, domains, required ones present).
class ParamValues {
 public:
  ParamValues() = default;
  /// Parses and validates raw text values (name -> text, lists as several entries) against `params`.
  /// Throws InvalidArgument naming the parameter and what was expected.
  static ParamValues parse(const std::vector<ParamDecl>& params,
                           const std::map<std::string, std::vector<std::string>>& raw);
  /// Same from a JSON object (the service's request body).
  static ParamValues from_json(const std::vector<ParamDecl>& params, const nlohmann::json& values);

  bool has(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  std::string get_string_or(const std::string& name, const std::string& fallback) const;
  long long get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  std::vector<std::string> get_list(const std::string& name) const;

  /// All values (defaults included) as JSON, for provenance metadata.
  nlohmann::json to_json() const;

 private:
  const std::vector<std::string>& raw(const std::string& name) const;
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, ParamType> types_;
};

/// Parameters bound to the fields of an Options struct: the declaration and the library field are one
/// thing, so defaults, bounds and names cannot drift apart. The default of each parameter is read from the
/// `defaults` instance the group is built with (the Options' own defaults, or an operation's preset), and
/// apply() copies the parsed values into an Options object (no hand-written `o.x = p.get_int("x")`).
///
///   ParamGroup<MatchOptions> g;
///   g.bind(&MatchOptions::chip_px, "chip", "template (chip) size").in_unit("px").between(8, 1024);
///
/// Nested fields use an accessor: g.bind([](CorrelateOptions& o) -> int& { return o.match.chip_px; }, ...).
template <class Options>
class ParamGroup {
 public:
  struct Entry {
    ParamDecl decl;
    /// Copies the parsed value (given or defaulted) into the options; null for unbound declarations.
    std::function<void(const ParamValues&, Options&)> apply;
    /// Numeric parameters: sets the field to a value (for checking declarations against validate()).
    std::function<void(Options&, double)> set_number;
    /// Bound fields: the field's value as typed JSON (a number, a string, a bool, a choice by name), and
    /// back; null for unbound declarations. A work unit's parameters are written and read with these.
    std::function<nlohmann::json(const Options&)> to_json;
    std::function<void(const nlohmann::json&, Options&)> from_json;
  };

  explicit ParamGroup(Options defaults = Options{}) : defaults_(std::move(defaults)) {}

  /// A numeric (int, size_t, double) or string field given by a member pointer.
  template <class T>
  ParamDecl& bind(T Options::*field, std::string name, std::string help) {
    return bind_accessor<T>([field](Options& o) -> T& { return o.*field; }, std::move(name), std::move(help));
  }
  /// A numeric or string field reached through an accessor (a member of a member).
  template <class Access>
  ParamDecl& bind(Access access, std::string name, std::string help) {
    using T = std::remove_reference_t<std::invoke_result_t<Access, Options&>>;
    return bind_accessor<T>(std::function<T&(Options&)>(access), std::move(name), std::move(help));
  }
  /// A flag (present = true) that sets a bool field to `when_set` (false for "no-..." flags).
  template <class Access>
  ParamDecl& bind_flag(Access access, std::string name, std::string help, bool when_set = true) {
    Entry e{ParamDecl::option(name, ParamType::kBool, std::move(help)), nullptr, nullptr, nullptr, nullptr};
    e.apply = [access, name, when_set](const ParamValues& p, Options& o) {
      if (p.has(name) && p.get_bool(name)) access(o) = when_set;
    };
    // As JSON, whether the flag is in effect ("no-median-test": true when the test is off).
    e.to_json = [access, when_set](const Options& o) {
      return nlohmann::json(access(const_cast<Options&>(o)) == when_set);
    };
    e.from_json = [access, when_set](const nlohmann::json& j, Options& o) {
      access(o) = j.get<bool>() ? when_set : !when_set;
    };
    entries_.push_back(std::move(e));
    return entries_.back().decl;
  }
  /// An enumerated field: `format` gives the default's text, `parse` reads the chosen one.
  template <class Access, class Parse, class Format>
  ParamDecl& bind_choice(Access access, std::string name, std::string help, std::vector<std::string> choices,
                         Parse parse, Format format) {
    Options d = defaults_;
    Entry e{ParamDecl::option(name, ParamType::kChoice, std::move(help)), nullptr, nullptr, nullptr, nullptr};
    e.decl.one_of(std::move(choices)).defaults_to(std::string(format(access(d))));
    e.apply = [access, name, parse](const ParamValues& p, Options& o) {
      if (p.has(name)) access(o) = parse(p.get_string(name));
    };
    e.to_json = [access, format](const Options& o) {
      return nlohmann::json(std::string(format(access(const_cast<Options&>(o)))));
    };
    e.from_json = [access, parse](const nlohmann::json& j, Options& o) { access(o) = parse(j.get<std::string>()); };
    entries_.push_back(std::move(e));
    return entries_.back().decl;
  }
  /// A declaration that the operation reads itself (it needs more than the value, e.g. a raster's grid).
  ParamDecl& declare(ParamDecl decl) {
    entries_.push_back(Entry{std::move(decl), nullptr, nullptr, nullptr, nullptr});
    return entries_.back().decl;
  }
  /// A field of any type carried as JSON only (a region, an optional date): part of to_json()/from_json(),
  /// not a parameter of the CLI or the service.
  ParamDecl& bind_json(std::string name, std::string help, std::function<nlohmann::json(const Options&)> to,
                       std::function<void(const nlohmann::json&, Options&)> from) {
    entries_.push_back(Entry{ParamDecl::option(std::move(name), ParamType::kString, std::move(help)), nullptr,
                             nullptr, std::move(to), std::move(from)});
    return entries_.back().decl;
  }

  /// The declarations, in order, for OperationDecl::params.
  std::vector<ParamDecl> decls() const {
    std::vector<ParamDecl> out;
    for (const auto& e : entries_) out.push_back(e.decl);
    return out;
  }
  /// Copies every bound value of `p` into `o`.
  void apply(const ParamValues& p, Options& o) const {
    for (const auto& e : entries_) {
      if (e.apply) e.apply(p, o);
    }
  }
  /// Adds the entries of `other`, a group of the same Options, after these.
  void append(const ParamGroup& other) {
    for (const auto& e : other.entries_) entries_.push_back(e);
  }
  /// Every bound field of `o` as typed JSON, keyed by parameter name. (The accessors take Options& because
  /// apply() writes through them; reading through them leaves `o` unchanged.)
  nlohmann::json to_json(const Options& o) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& e : entries_) {
      if (e.to_json) j[e.decl.name] = e.to_json(o);
    }
    return j;
  }
  /// Reads what to_json() wrote: every bound field must be present (nlohmann::json::exception otherwise,
  /// for the caller to report with its context).
  void from_json(const nlohmann::json& j, Options& o) const {
    for (const auto& e : entries_) {
      if (e.from_json) e.from_json(j.at(e.decl.name), o);
    }
  }
  const std::deque<Entry>& entries() const { return entries_; }
  const Options& defaults() const { return defaults_; }

 private:
  template <class T>
  ParamDecl& bind_accessor(std::function<T&(Options&)> access, std::string name, std::string help) {
    Options d = defaults_;
    Entry e;
    if constexpr (std::is_same_v<T, std::string>) {
      e.decl = ParamDecl::option(name, ParamType::kString, std::move(help));
      e.decl.default_value = access(d);
      e.apply = [access, name](const ParamValues& p, Options& o) {
        if (p.has(name)) access(o) = p.get_string(name);
      };
      e.to_json = [access](const Options& o) { return nlohmann::json(access(const_cast<Options&>(o))); };
      e.from_json = [access](const nlohmann::json& j, Options& o) { access(o) = j.get<std::string>(); };
    } else {
      static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "bind a number, a string or a flag");
      constexpr bool integral = std::is_integral_v<T>;
      e.decl = ParamDecl::option(name, integral ? ParamType::kInt : ParamType::kDouble, std::move(help));
      e.decl.default_value = fmt::format("{}", access(d));
      e.apply = [access, name](const ParamValues& p, Options& o) {
        if (!p.has(name)) return;
        if constexpr (integral) {
          access(o) = static_cast<T>(p.get_int(name));
        } else {
          access(o) = static_cast<T>(p.get_double(name));
        }
      };
      e.set_number = [access](Options& o, double v) { access(o) = static_cast<T>(v); };
      e.to_json = [access](const Options& o) { return nlohmann::json(access(const_cast<Options&>(o))); };
      e.from_json = [access](const nlohmann::json& j, Options& o) { access(o) = j.get<T>(); };
    }
    entries_.push_back(std::move(e));
    return entries_.back().decl;
  }

  Options defaults_;
  // A deque keeps the references returned by bind() valid while the group grows.
  std::deque<Entry> entries_;
};

/// What a run needs besides its parameters: its runtime. io::run_operation applies it to the run only,
/// so two runs in one process (a test, an embedding program) do not change each other's settings.
struct RunContext {
  Progress* progress = nullptr;  ///< null = silent
  /// Threads of the run's parallel work (a oneTBB task arena of this many slots); 0 = all cores.
  int threads = 0;
  /// Memory budget of the run; a quarter goes to GDAL's block cache (which is one per process: it is
  /// raised to the largest budget among the runs of the process, never lowered under a running one).
  std::size_t ram_budget_mb = 1024;
  std::string command_line;  ///< recorded in provenance metadata
  /// This run's own stop request, besides the process-wide one (core/cancel.hpp): set it from any thread
  /// to stop this run alone at its next check. Long loops see it through Progress::cancelled().
  std::shared_ptr<std::atomic<bool>> stop;
  /// This run's logger (its level and sink: the terminal for the CLI, the job's log for a service job); null
  /// = spdlog's default logger. Library code reaches it through run_log() (core/log.hpp).
  std::shared_ptr<spdlog::logger> logger;
};

struct OperationDecl {
  std::string name;     ///< "info", "correlate", "egms ortho"...
  std::string summary;  ///< one line
  std::string description;
  std::vector<ParamDecl> params;
  std::vector<std::string> examples;  ///< full command lines
  std::function<Summary(const ParamValues&, RunContext&)> run;
  /// False for CLI-only meta-operations (`describe`): they are not offered as processes by the service.
  bool servable = true;
  /// True when a run takes seconds at most (describing a file, band statistics): the service may run it
  /// synchronously (OGC `sync-execute`); everything else is executed asynchronously as a job.
  bool quick = false;
};

/// The process id of an operation: its name with spaces replaced by '-' ("egms ortho" -> "egms-ortho").
std::string process_id(const OperationDecl& op);

/// True for parameters that are no process input: the `json` flag (it only shapes the CLI's printout) and
/// the cluster placement (`executor`, `partition`, `account`, `max-parallel`), which the service's own
/// configuration decides.
bool is_cli_only(const ParamDecl& p);

/// The JSON Schema of one parameter's value with its typed default (an integer default is a number):
/// input datasets are references (a string URI or {"href": ...}).
nlohmann::json param_schema(const ParamDecl& p);

/// The operation's OGC API - Processes 1.0 processDescription (OGC 18-062r2): id, version, title,
/// description, jobControlOptions, outputTransmission, inputs (values and dataset references; outputs
/// are not inputs, the service places them) and outputs (the parameters of role kOutput, with their media
/// types, plus the run's JSON summary).
nlohmann::json describe_json(const OperationDecl& op);

/// The docs page of an operation in Markdown.
std::string describe_markdown(const OperationDecl& op);

class OperationRegistry {
 public:
  void add(OperationDecl op);
  const OperationDecl* find(const std::string& name) const;
  /// The servable operation whose process id is `id` ("egms-ortho"); null when none.
  const OperationDecl* find_process(const std::string& id) const;
  std::vector<const OperationDecl*> list() const;
  /// A command group ("egms", the first word of "egms fit"...): its description for `deforma egms --help`.
  void describe_group(const std::string& group, std::string description);
  /// The description of a group; "" when none was registered.
  std::string group_description(const std::string& group) const;

 private:
  std::map<std::string, OperationDecl> ops_;
  std::map<std::string, std::string> groups_;
};

}  // namespace deforma
