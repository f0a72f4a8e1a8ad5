#include <chrono>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/ops.hpp"
#include "ops/registration.hpp"

namespace deforma::ops {
namespace {

std::string page_name(const std::string& operation) {
  std::string name = operation;
  for (auto& c : name) {
    if (c == ' ') c = '-';
  }
  return name + ".md";
}

}  // namespace

std::string command_page_file_name(const std::string& operation) { return page_name(operation); }

void register_describe_operation(OperationRegistry& registry) {
  OperationDecl op;
  op.name = "describe";
  op.servable = false;  // a CLI meta-operation, not a process
  op.summary = "Describe deforma's operations: their parameters as Markdown or as a JSON process description";
  op.description =
      "Every operation's parameters are declared once in the library; this command prints that declaration as "
      "the Markdown page of docs/commands/ or as the JSON process description the HTTP service serves. "
      "With --write-docs DIR, writes one page per operation into DIR.";
  op.params = {
      ParamDecl::argument("operation", ParamType::kString, "operation to describe (default: all)").optional(),
      ParamDecl::option("json", ParamType::kBool, "JSON process description instead of Markdown"),
      ParamDecl::option("write-docs", ParamType::kPath, "write every operation's page into this folder").as_output("inode/directory"),
  };
  op.examples = {"deforma describe correlate", "deforma describe correlate --json",
                 "deforma describe --write-docs docs/commands"};
  op.run = [](const ParamValues& params, RunContext&) {
    const auto start = std::chrono::steady_clock::now();
    const auto& registry = builtin_operations();
    std::vector<const OperationDecl*> ops;
    if (params.has("operation")) {
      const auto* found = registry.find(params.get_string("operation"));
      if (!found) {
        std::string known;
        for (const auto* o : registry.list()) known += (known.empty() ? "" : ", ") + o->name;
        throw InvalidArgument(fmt::format("operation '{}' is unknown; known operations: {}",
                                          params.get_string("operation"), known));
      }
      ops.push_back(found);
    } else {
      ops = registry.list();
    }
    Summary summary;
    summary.operation = "describe";
    if (params.has("write-docs")) {
      const std::filesystem::path dir = params.get_string("write-docs");
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      for (const auto* o : ops) {
        const auto path = (dir / page_name(o->name)).string();
        io::write_atomically(path, [&](const std::string& tmp) {
          std::ofstream out(tmp);
          out << describe_markdown(*o);
          if (!out) throw IoError(fmt::format("{}: cannot write", path));
        });
        summary.outputs.push_back(path);
      }
      summary.report = fmt::format("wrote {} command pages\n", ops.size());
    } else if (params.get_bool("json")) {
      nlohmann::json all = nlohmann::json::array();
      for (const auto* o : ops) all.push_back(describe_json(*o));
      summary.details = ops.size() == 1 ? all.front() : all;
    } else {
      for (const auto* o : ops) summary.report += describe_markdown(*o) + "\n";
    }
    summary.counts["operations"] = static_cast<std::int64_t>(ops.size());
    summary.seconds = seconds_since(start);
    return summary;
  };
  registry.add(std::move(op));
}

}  // namespace deforma::ops
