// deforma's command-line tool: thin dispatch. Every subcommand and its options come from the library's
// operation declarations (deforma::builtin_operations); this file only turns them into CLI11 options,
// runs the operation, prints its Summary, and maps errors to exit codes (docs/cli.md).
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <gdal.h>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include "deforma/core/command_line.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/ops.hpp"
#include "deforma/version.hpp"

namespace {

struct Subcommand {
  const deforma::OperationDecl* op = nullptr;
  CLI::App* app = nullptr;
  std::map<std::string, std::vector<std::string>> lists;  // list parameters
  std::map<std::string, std::string> singles;              // every other parameter, as typed
  std::map<std::string, bool> flags;
};

std::string option_help(const deforma::ParamDecl& p) {
  std::string help = p.help;
  if (!p.unit.empty()) help += fmt::format(" [{}]", p.unit);
  if (!p.choices.empty()) help += fmt::format(" ({})", fmt::join(p.choices, "|"));
  if (!p.default_value.empty()) help += fmt::format(" (default: {})", p.default_value);
  return help;
}

// Finds or creates the CLI11 subcommand for an operation name with spaces ("egms ortho").
CLI::App* subcommand_for(CLI::App& root, const std::string& name, const std::string& summary) {
  CLI::App* parent = &root;
  std::size_t start = 0;
  while (true) {
    const auto space = name.find(' ', start);
    const std::string part = name.substr(start, space == std::string::npos ? std::string::npos : space - start);
    CLI::App* existing = nullptr;
    for (auto* sub : parent->get_subcommands([](CLI::App*) { return true; })) {
      if (sub->get_name() == part) existing = sub;
    }
    if (space == std::string::npos) {
      return existing ? existing->description(summary) : parent->add_subcommand(part, summary);
    }
    if (!existing) {
      existing = parent->add_subcommand(part, fmt::format("{} commands", part));
      existing->require_subcommand(1);
    }
    parent = existing;
    start = space + 1;
  }
}

void add_options(Subcommand& cmd) {
  // Requiredness is checked by the library, so the message names the parameter the same way everywhere.
  for (const auto& p : cmd.op->params) {
    const bool list = p.type == deforma::ParamType::kList;
    std::string names = p.positional ? p.name : "--" + p.name;
    if (!p.positional && !p.short_name.empty()) names = "-" + p.short_name + "," + names;
    if (p.type == deforma::ParamType::kBool && !p.positional) {
      cmd.app->add_flag(names, cmd.flags[p.name], option_help(p));
      continue;
    }
    CLI::Option* opt = list ? cmd.app->add_option(names, cmd.lists[p.name], option_help(p))
                            : cmd.app->add_option(names, cmd.singles[p.name], option_help(p));
    if (!p.unit.empty()) {
      opt->type_name(fmt::format("<{}>", p.unit));
    } else if (p.type == deforma::ParamType::kInt) {
      opt->type_name("INT");
    } else if (p.type == deforma::ParamType::kDouble) {
      opt->type_name("NUMBER");
    } else if (p.type == deforma::ParamType::kPath) {
      opt->type_name("PATH");
    }
  }
  if (!cmd.op->examples.empty()) {
    cmd.app->footer(fmt::format("Examples:\n  {}", fmt::join(cmd.op->examples, "\n  ")));
  }
}

std::string joined_command_line(int argc, char** argv) {
  return deforma::shell_quote_command_line(argc, argv);  // pasted into a shell, it runs the same command
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deforma: ground-motion observatory (image correlation, time series, InSAR products)"};
  app.footer(
      "Run 'deforma COMMAND --help' for a command's options and examples.\n"
      "Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid argument, 4 input/output, 5 format, "
      "6 numerical, 7 cancelled.");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("deforma ") + deforma::kVersion);
  bool verbose = false;
  bool quiet = false;
  bool json_summary = false;
  int threads = 0;
  std::size_t ram_mb = 1024;
  app.add_flag("-v,--verbose", verbose, "show debug messages, GDAL's included");
  app.add_flag("-q,--quiet", quiet, "only errors; no progress");
  app.add_flag("--summary-json", json_summary, "print the run summary as JSON on standard output");
  app.add_option("--threads", threads, "worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--ram", ram_mb, "memory budget for streamed processing [MB] (default: 1024)")
      ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 22));

  std::vector<Subcommand> commands;
  const auto& registry = deforma::builtin_operations();
  commands.reserve(registry.list().size());
  for (const auto* op : registry.list()) {
    Subcommand cmd;
    cmd.op = op;
    cmd.app = subcommand_for(app, op->name, op->summary);
    commands.push_back(std::move(cmd));
  }
  for (auto& cmd : commands) {
    add_options(cmd);
    cmd.app->fallthrough();  // global options (--threads, --ram, -q...) may also follow the command
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : static_cast<int>(deforma::ExitCode::kUsage);
  }

  deforma::init_logging(quiet ? deforma::Verbosity::kQuiet
                              : (verbose ? deforma::Verbosity::kVerbose : deforma::Verbosity::kNormal));
  // GDAL's block cache counts against the memory budget: a quarter of --ram (GDAL's default is 5 % of the
  // machine's memory, whatever the budget).
  GDALSetCacheMax64(static_cast<GIntBig>(ram_mb) * (1 << 20) / 4);
  const int thread_count = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control thread_limit(tbb::global_control::max_allowed_parallelism, thread_count);

  for (auto& cmd : commands) {
    if (!cmd.app->parsed()) continue;
    try {
      std::map<std::string, std::vector<std::string>> raw;
      for (auto& [name, values] : cmd.lists) {
        if (!values.empty()) raw[name] = values;
      }
      for (auto& [name, value] : cmd.singles) {
        if (!value.empty()) raw[name] = {value};
      }
      for (auto& [name, set] : cmd.flags) {
        if (set) raw[name] = {"true"};
      }
      const auto params = deforma::ParamValues::parse(cmd.op->params, raw);
      auto progress = deforma::make_terminal_progress(quiet ? deforma::ProgressStyle::kQuiet
                                                            : deforma::ProgressStyle::kAuto);
      deforma::RunContext context;
      context.progress = progress.get();
      context.threads = thread_count;
      context.ram_budget_mb = ram_mb;
      context.command_line = joined_command_line(argc, argv);
      const auto summary = cmd.op->run(params, context);
      if (json_summary) {
        std::cout << summary.to_json().dump(2) << '\n';
      } else if (params.get_bool("json")) {
        std::cout << summary.details.dump(2) << '\n';
      } else if (!quiet) {
        std::cout << summary.to_text();
      }
      return 0;
    } catch (const deforma::Error& e) {
      std::fprintf(stderr, "deforma %s: error: %s\n", cmd.op->name.c_str(), e.what());
      return static_cast<int>(e.exit_code());
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "deforma %s: error: out of memory (lower --ram or the tile size)\n",
                   cmd.op->name.c_str());
      return static_cast<int>(deforma::ExitCode::kInternal);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "deforma %s: internal error: %s\n", cmd.op->name.c_str(), e.what());
      return static_cast<int>(deforma::ExitCode::kInternal);
    }
  }
  return static_cast<int>(deforma::ExitCode::kUsage);
}
