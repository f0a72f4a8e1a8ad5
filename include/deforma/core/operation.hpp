#pragma once
// Operations and their parameters, declared once. An OperationDecl lists an operation's parameters with
// type, unit, default, domain and help; from that single declaration come the CLI options (apps/),
// the machine-readable process description (describe_json, for the HTTP service) and the docs page
// (describe_markdown). Operations are registered by name in an OperationRegistry and run with a
// ParamValues object that has been checked against the declaration (PDAL-style dispatch).
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"

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

/// What a run needs besides its parameters.
struct RunContext {
  Progress* progress = nullptr;    ///< null = silent
  int threads = 0;                 ///< 0 = all cores
  std::size_t ram_budget_mb = 1024;
  std::string command_line;        ///< recorded in provenance metadata
};

struct OperationDecl {
  std::string name;     ///< "info", "correlate", "egms ortho"...
  std::string summary;  ///< one line
  std::string description;
  std::vector<ParamDecl> params;
  std::vector<std::string> examples;  ///< full command lines
  std::function<Summary(const ParamValues&, RunContext&)> run;
};

/// The machine-readable description of an operation (inputs with schema), as an OGC API - Processes
/// process description would carry it.
nlohmann::json describe_json(const OperationDecl& op);

/// The docs page of an operation in Markdown.
std::string describe_markdown(const OperationDecl& op);

class OperationRegistry {
 public:
  void add(OperationDecl op);
  const OperationDecl* find(const std::string& name) const;
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
