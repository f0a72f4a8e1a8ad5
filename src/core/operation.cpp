#include "deforma/core/operation.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/version.hpp"

namespace deforma {
namespace {

const char* type_name(ParamType type) {
  switch (type) {
    case ParamType::kInt: return "integer";
    case ParamType::kDouble: return "number";
    case ParamType::kString: return "string";
    case ParamType::kBool: return "boolean";
    case ParamType::kPath: return "path";
    case ParamType::kChoice: return "choice";
    case ParamType::kList: return "list";
  }
  return "string";
}

std::string bounds_text(const ParamDecl& p) {
  if (p.min_value && p.max_value) return fmt::format("between {} and {}", *p.min_value, *p.max_value);
  if (p.min_value) return fmt::format(">= {}", *p.min_value);
  if (p.max_value) return fmt::format("<= {}", *p.max_value);
  return "";
}

// The same in words, for error messages.
std::string bounds_in_words(const ParamDecl& p) {
  if (p.min_value && p.max_value) return fmt::format("between {} and {}", *p.min_value, *p.max_value);
  if (p.min_value) return fmt::format("of at least {}", *p.min_value);
  if (p.max_value) return fmt::format("of at most {}", *p.max_value);
  return "";
}

double parse_number(const ParamDecl& p, const std::string& text, bool integer) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  double value = 0;
  if (integer) {
    long long v = 0;
    auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && ptr == end &&
         (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()))) {
      // Operations hold integers as int: a larger value would wrap around into a nonsense message later.
      throw InvalidArgument(fmt::format("parameter --{}: {} is out of range, expected {}", p.name, text,
                                        bounds_in_words(p).empty()
                                            ? "a value between -2147483648 and 2147483647"
                                            : "a value " + bounds_in_words(p)));
    }
    if (ec != std::errc() || ptr != end)
      throw InvalidArgument(fmt::format("parameter --{}: expected an integer, got '{}'", p.name, text));
    value = static_cast<double>(v);
  } else {
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || ptr != end || !std::isfinite(value))
      throw InvalidArgument(fmt::format("parameter --{}: expected a number, got '{}'", p.name, text));
  }
  if ((p.min_value && value < *p.min_value) || (p.max_value && value > *p.max_value)) {
    throw InvalidArgument(fmt::format("parameter --{}: {} is out of range, expected a value {}{}", p.name,
                                      text, bounds_in_words(p), p.unit.empty() ? "" : " " + p.unit));
  }
  return value;
}

bool parse_bool(const ParamDecl& p, const std::string& text) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off") return false;
  throw InvalidArgument(fmt::format("parameter --{}: expected true or false, got '{}'", p.name, text));
}

void check_value(const ParamDecl& p, const std::string& text) {
  switch (p.type) {
    case ParamType::kInt: parse_number(p, text, true); break;
    case ParamType::kDouble: parse_number(p, text, false); break;
    case ParamType::kBool: parse_bool(p, text); break;
    case ParamType::kChoice:
      if (std::find(p.choices.begin(), p.choices.end(), text) == p.choices.end()) {
        throw InvalidArgument(fmt::format("parameter --{}: '{}' is not one of {}", p.name, text,
                                          fmt::join(p.choices, ", ")));
      }
      break;
    case ParamType::kPath:
      if (text.empty()) throw InvalidArgument(fmt::format("parameter --{}: empty path", p.name));
      break;
    case ParamType::kString:
    case ParamType::kList: break;
  }
}

}  // namespace

ParamDecl ParamDecl::option(std::string name, ParamType type, std::string help) {
  ParamDecl p;
  p.name = std::move(name);
  p.type = type;
  p.help = std::move(help);
  return p;
}

ParamDecl ParamDecl::argument(std::string name, ParamType type, std::string help) {
  ParamDecl p = option(std::move(name), type, std::move(help));
  p.positional = true;
  p.required = true;
  return p;
}

ParamValues ParamValues::parse(const std::vector<ParamDecl>& params,
                               const std::map<std::string, std::vector<std::string>>& raw) {
  ParamValues result;
  for (const auto& [name, values] : raw) {
    const bool known = std::any_of(params.begin(), params.end(), [&](const ParamDecl& p) { return p.name == name; });
    if (!known) throw InvalidArgument(fmt::format("unknown parameter '{}'", name));
  }
  for (const auto& p : params) {
    result.types_[p.name] = p.type;
    auto it = raw.find(p.name);
    std::vector<std::string> values;
    if (it != raw.end() && !it->second.empty()) {
      values = it->second;
    } else if (!p.default_value.empty()) {
      values = {p.default_value};
    } else if (p.required) {
      throw InvalidArgument(fmt::format("parameter {}{} is required: {}", p.positional ? "" : "--", p.name,
                                        p.help));
    } else {
      continue;
    }
    if (p.type != ParamType::kList && values.size() > 1) {
      throw InvalidArgument(fmt::format("parameter --{}: given {} times, expected once", p.name, values.size()));
    }
    for (const auto& v : values) check_value(p, v);
    result.values_[p.name] = std::move(values);
  }
  return result;
}

ParamValues ParamValues::from_json(const std::vector<ParamDecl>& params, const nlohmann::json& values) {
  if (!values.is_object()) throw InvalidArgument("parameters must be a JSON object");
  std::map<std::string, std::vector<std::string>> raw;
  for (const auto& [name, value] : values.items()) {
    auto& out = raw[name];
    auto as_text = [&](const nlohmann::json& v) -> std::string {
      if (v.is_string()) return v.get<std::string>();
      if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
      if (v.is_number_integer()) return std::to_string(v.get<long long>());
      if (v.is_number()) return fmt::format("{}", v.get<double>());
      throw InvalidArgument(fmt::format("parameter '{}': expected a string, number or boolean", name));
    };
    if (value.is_array()) {
      for (const auto& v : value) out.push_back(as_text(v));
    } else {
      out.push_back(as_text(value));
    }
  }
  return parse(params, raw);
}

bool ParamValues::has(const std::string& name) const { return values_.count(name) > 0; }

const std::vector<std::string>& ParamValues::raw(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) {
    throw InvalidArgument(fmt::format("parameter --{} has no value", name));
  }
  return it->second;
}

std::string ParamValues::get_string(const std::string& name) const { return raw(name).front(); }

std::string ParamValues::get_string_or(const std::string& name, const std::string& fallback) const {
  return has(name) ? get_string(name) : fallback;
}

long long ParamValues::get_int(const std::string& name) const { return std::stoll(raw(name).front()); }

double ParamValues::get_double(const std::string& name) const { return std::stod(raw(name).front()); }

bool ParamValues::get_bool(const std::string& name) const {
  if (!has(name)) return false;
  ParamDecl p;
  p.name = name;
  return parse_bool(p, raw(name).front());
}

std::vector<std::string> ParamValues::get_list(const std::string& name) const {
  return has(name) ? values_.at(name) : std::vector<std::string>{};
}

nlohmann::json ParamValues::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, values] : values_) {
    const auto type = types_.count(name) ? types_.at(name) : ParamType::kString;
    if (type == ParamType::kList) {
      j[name] = values;
    } else if (type == ParamType::kInt) {
      j[name] = std::stoll(values.front());
    } else if (type == ParamType::kDouble) {
      j[name] = std::stod(values.front());
    } else if (type == ParamType::kBool) {
      j[name] = get_bool(name);
    } else {
      j[name] = values.front();
    }
  }
  return j;
}

std::string process_id(const OperationDecl& op) {
  std::string id = op.name;
  std::replace(id.begin(), id.end(), ' ', '-');
  return id;
}

bool is_cli_only(const ParamDecl& p) {
  // `--json` only switches the CLI's printout between text and JSON; a process always answers JSON.
  if (p.type == ParamType::kBool && p.name == "json") return true;
  // Where work runs on a cluster, on whose account and how wide, is the choice of whoever runs the service
  // (its configuration), never a remote client's.
  return p.name == "executor" || p.name == "partition" || p.name == "account" || p.name == "max-parallel";
}

namespace {

// A default given as text, typed as its schema says (JSON Schema wants 32, not "32").
nlohmann::json typed_default(const ParamDecl& p) {
  switch (p.type) {
    case ParamType::kInt: return static_cast<long long>(parse_number(p, p.default_value, true));
    case ParamType::kDouble: return parse_number(p, p.default_value, false);
    case ParamType::kBool: return parse_bool(p, p.default_value);
    case ParamType::kList: return nlohmann::json::array({p.default_value});
    default: return p.default_value;
  }
}

nlohmann::json reference_schema() {
  return {{"oneOf",
           nlohmann::json::array(
               {{{"type", "string"}, {"format", "uri"}},
                {{"type", "object"},
                 {"required", {"href"}},
                 {"properties", {{"href", {{"type", "string"}, {"format", "uri"}}}}}}})}};
}

}  // namespace

nlohmann::json param_schema(const ParamDecl& p) {
  nlohmann::json schema;
  if (p.role == ParamRole::kInput) {
    schema = p.type == ParamType::kList
                 ? nlohmann::json{{"type", "array"}, {"minItems", 1}, {"items", reference_schema()}}
                 : reference_schema();
    return schema;
  }
  switch (p.type) {
    case ParamType::kInt: schema["type"] = "integer"; break;
    case ParamType::kDouble: schema["type"] = "number"; break;
    case ParamType::kBool: schema["type"] = "boolean"; break;
    case ParamType::kList: schema = {{"type", "array"}, {"items", {{"type", "string"}}}}; break;
    case ParamType::kChoice: schema = {{"type", "string"}, {"enum", p.choices}}; break;
    case ParamType::kPath: schema = {{"type", "string"}, {"format", "path"}}; break;
    case ParamType::kString: schema["type"] = "string"; break;
  }
  if (p.min_value) schema["minimum"] = *p.min_value;
  if (p.max_value) schema["maximum"] = *p.max_value;
  if (!p.default_value.empty()) {
    schema["default"] = typed_default(p);
  } else if (p.type == ParamType::kBool) {
    schema["default"] = false;  // a flag is off unless given
  }
  return schema;
}

nlohmann::json describe_json(const OperationDecl& op) {
  nlohmann::json inputs = nlohmann::json::object();
  nlohmann::json outputs = nlohmann::json::object();
  for (const auto& p : op.params) {
    if (is_cli_only(p)) continue;
    if (p.role == ParamRole::kOutput) {
      // The service places outputs in the job's folder: they are results, never client inputs.
      nlohmann::json output{{"title", p.name},
                            {"description", p.help},
                            {"schema", {{"type", "string"}, {"contentMediaType", p.media_type}}}};
      output["x-required"] = p.required;
      outputs[p.name] = output;
      continue;
    }
    nlohmann::json input{{"title", p.name},
                         {"description", p.help},
                         {"schema", param_schema(p)},
                         {"minOccurs", p.required ? 1 : 0},
                         {"maxOccurs", p.type == ParamType::kList ? nlohmann::json("unbounded") : nlohmann::json(1)}};
    if (!p.unit.empty()) input["unit"] = p.unit;
    if (p.role == ParamRole::kInput) input["keywords"] = nlohmann::json::array({"dataset"});
    inputs[p.name] = input;
  }
  outputs["summary"] = {{"title", "summary"},
                        {"description", "the run's summary: counts, duration, details, warnings"},
                        {"schema", {{"type", "object"}, {"contentMediaType", "application/json"}}}};
  nlohmann::json control = op.quick ? nlohmann::json::array({"sync-execute", "async-execute", "dismiss"})
                                    : nlohmann::json::array({"async-execute", "dismiss"});
  return {{"id", process_id(op)},
          {"version", kVersion},
          {"title", op.summary},
          {"description", op.description.empty() ? op.summary : op.description},
          {"keywords", nlohmann::json::array({"deforma"})},
          {"jobControlOptions", control},
          {"outputTransmission", nlohmann::json::array({"value", "reference"})},
          {"inputs", inputs},
          {"outputs", outputs},
          {"examples", op.examples}};
}

std::string describe_markdown(const OperationDecl& op) {
  std::string md = fmt::format("# deforma {}\n\n{}\n\n", op.name, op.summary);
  if (!op.description.empty()) md += op.description + "\n\n";
  md += "| parameter | type | unit | default | description |\n|---|---|---|---|---|\n";
  for (const auto& p : op.params) {
    std::string type = type_name(p.type);
    if (p.type == ParamType::kChoice) type = fmt::format("{}", fmt::join(p.choices, " \\| "));
    const std::string bounds = bounds_text(p);
    md += fmt::format("| {}{}{} | {} | {} | {} | {}{}{} |\n", p.positional ? "" : "`--", p.name,
                      p.positional ? "" : "`", type, p.unit, p.default_value.empty() ? "" : "`" + p.default_value + "`",
                      p.help, bounds.empty() ? "" : " (" + bounds + ")", p.required ? " **Required.**" : "");
  }
  if (!op.examples.empty()) {
    md += "\n## Examples\n\n```sh\n";
    for (const auto& e : op.examples) md += e + "\n";
    md += "```\n";
  }
  return md;
}

void OperationRegistry::add(OperationDecl op) {
  if (op.name.empty()) throw InvalidArgument("an operation needs a name");
  if (ops_.count(op.name)) throw InvalidArgument(fmt::format("operation '{}' registered twice", op.name));
  const std::string name = op.name;
  ops_.emplace(name, std::move(op));
}

const OperationDecl* OperationRegistry::find_process(const std::string& id) const {
  for (const auto& [name, op] : ops_) {
    if (op.servable && process_id(op) == id) return &op;
  }
  return nullptr;
}

const OperationDecl* OperationRegistry::find(const std::string& name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<const OperationDecl*> OperationRegistry::list() const {
  std::vector<const OperationDecl*> out;
  for (const auto& [name, op] : ops_) out.push_back(&op);
  return out;
}

void OperationRegistry::describe_group(const std::string& group, std::string description) {
  groups_[group] = std::move(description);
}

std::string OperationRegistry::group_description(const std::string& group) const {
  const auto it = groups_.find(group);
  return it == groups_.end() ? std::string() : it->second;
}

}  // namespace deforma
