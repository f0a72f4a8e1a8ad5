// deforma's command-line tool: thin dispatch. Every subcommand and its options come from the library's
// operation declarations (deforma::builtin_operations); this file only turns them into CLI11 options,
// runs the operation, prints its Summary, and maps errors to exit codes (docs/cli.md).
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/command_line.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/progress.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/ops.hpp"
#include "deforma/version.hpp"
#include "service_commands.hpp"
#include "unit_command.hpp"

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
CLI::App* subcommand_for(CLI::App& root, const std::string& name, const std::string& summary,
                         const deforma::OperationRegistry& registry) {
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
      const std::string group = registry.group_description(part);
      existing = parent->add_subcommand(part, group.empty() ? fmt::format("{} commands", part) : group);
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

// Levenshtein distance, to suggest the name a user meant.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> previous(b.size() + 1), current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      current[j] =
          std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1] ? 1 : 0)});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// The closest of `names` to `typed`, when close enough to be a plausible typo.
std::optional<std::string> closest(const std::string& typed, const std::vector<std::string>& names) {
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  for (const auto& name : names) {
    const std::size_t d = edit_distance(typed, name);
    if (!best || d < best_distance) best = name, best_distance = d;
  }
  const std::size_t tolerance = std::max<std::size_t>(2, typed.size() / 3);
  if (best && best_distance <= tolerance) return best;
  return std::nullopt;
}

bool looks_like_number(const std::string& text) {
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() ||
         (text.size() > 1 && (std::isdigit(static_cast<unsigned char>(text[1])) || text[1] == '.'));
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

struct UsageProblem {
  std::string command;  // "" for the root
  std::string message;
};

// Checks the command line before CLI11 does, so that a misspelt command or option gets a one-line error
// with a suggestion rather than CLI11's "A subcommand is required" or a list of unexpected arguments.
std::optional<UsageProblem> check_usage(CLI::App& root, int argc, char** argv) {
  CLI::App* current = &root;
  std::string command;
  std::vector<const CLI::App*> chain{&root};
  std::set<std::string> long_names{"help"}, short_names{"h"};
  std::set<std::string> options_with_values;
  auto learn = [&](const CLI::App* app) {
    for (const CLI::Option* opt : app->get_options()) {
      for (const auto& n : opt->get_lnames()) {
        long_names.insert(n);
        if (opt->get_expected_max() > 0 && opt->get_type_size_max() > 0) options_with_values.insert("--" + n);
      }
      for (const auto& n : opt->get_snames()) {
        short_names.insert(n);
        if (opt->get_expected_max() > 0 && opt->get_type_size_max() > 0) options_with_values.insert("-" + n);
      }
    }
  };
  learn(&root);
  bool skip_value = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (skip_value) {
      skip_value = false;
      continue;
    }
    if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
      const std::string name =
          arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
      if (arg.find('=') == std::string::npos && options_with_values.count("--" + name)) skip_value = true;
      if (long_names.count(name) || name == "version") continue;
      std::vector<std::string> candidates(long_names.begin(), long_names.end());
      const auto suggestion = closest(name, candidates);
      std::string message = fmt::format("unknown option `--{}`", name);
      if (suggestion) message += fmt::format("; did you mean `--{}`?", *suggestion);
      if (file_exists(arg)) message += fmt::format(" (to name the file `{}`, put `--` before it)", arg);
      message += fmt::format(" (see 'deforma {}{}--help')", command, command.empty() ? "" : " ");
      return UsageProblem{command, message};
    }
    if (arg.size() > 1 && arg[0] == '-' && !looks_like_number(arg)) {
      // -o, -q, or a cluster of one-letter flags (-qv); anything else is probably a file name.
      const std::string letters = arg.substr(1);
      const bool single = short_names.count(letters) != 0;
      const bool cluster = std::all_of(letters.begin(), letters.end(),
                                       [&](char c) { return short_names.count(std::string(1, c)) != 0; });
      if (single || cluster) {
        if (single && options_with_values.count(arg)) skip_value = true;
        continue;
      }
      return UsageProblem{command,
                          fmt::format("unknown option `{}`; if it is a file name, put `--` before it "
                                      "(deforma {}{}-- {}) or write it as ./{}",
                                      arg, command, command.empty() ? "" : " ", arg, arg)};
    }
    if (arg[0] == '-') continue;  // a negative number, the value of an option
    // A bare word: a subcommand while the current command has subcommands, else an argument.
    const auto subs = current->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty()) continue;
    std::vector<std::string> names;
    CLI::App* next = nullptr;
    for (auto* sub : subs) {
      names.push_back(sub->get_name());
      if (sub->get_name() == arg) next = sub;
    }
    if (!next) {
      const auto suggestion = closest(arg, names);
      std::string message = fmt::format("unknown command `{}{}{}`", command, command.empty() ? "" : " ", arg);
      if (suggestion)
        message += fmt::format("; did you mean `{}{}{}`?", command, command.empty() ? "" : " ", *suggestion);
      else
        message += fmt::format("; the commands are: {}", fmt::join(names, ", "));
      return UsageProblem{command, message};
    }
    current = next;
    command += (command.empty() ? "" : " ") + arg;
    learn(current);
  }
  return std::nullopt;
}

int usage_error(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "deforma%s%s: error: %s\n", command.empty() ? "" : " ", command.c_str(),
               message.c_str());
  return static_cast<int>(deforma::ExitCode::kUsage);
}

// SIGINT and SIGTERM ask the running operation to stop (it removes what it staged); a second signal
// kills at once, as the handler resets itself.
extern "C" void on_interrupt(int) {
  deforma::request_cancellation();
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
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
  long long threads = 0;
  long long ram_mb = 1024;
  app.add_flag("-v,--verbose", verbose, "show debug messages, GDAL's included");
  app.add_flag("-q,--quiet", quiet, "no progress and no warnings; errors and results are still printed");
  app.add_flag("--summary-json", json_summary, "print the run summary as JSON on standard output");
  // Checked below with messages in words: CLI11's own range check prints the full range of a double.
  app.add_option("--threads", threads, "worker threads (default: all cores)");
  app.add_option("--ram", ram_mb, "memory budget for streamed processing [MB] (default: 1024)");

  std::vector<Subcommand> commands;
  const auto& registry = deforma::builtin_operations();
  commands.reserve(registry.list().size());
  for (const auto* op : registry.list()) {
    Subcommand cmd;
    cmd.op = op;
    cmd.app = subcommand_for(app, op->name, op->summary, registry);
    commands.push_back(std::move(cmd));
  }
  for (auto& cmd : commands) {
    add_options(cmd);
    cmd.app->fallthrough();  // global options (--threads, --ram, -q...) may also follow the command
  }

  deforma::cli::ServiceCommands service_commands(app);  // serve, users, job run
  deforma::cli::UnitCommand unit_command(app);          // unit run (a cluster task)

  if (const auto problem = check_usage(app, argc, argv))
    return usage_error(problem->command, problem->message);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string command;
    for (const CLI::App* sub = &app; sub;) {
      const auto parsed = sub->get_subcommands();
      sub = parsed.empty() ? nullptr : parsed.front();
      if (sub) command += (command.empty() ? "" : " ") + sub->get_name();
    }
    std::string message = e.what();
    if (dynamic_cast<const CLI::RequiredError*>(&e) && message.find("subcommand") != std::string::npos) {
      message = "a command is required; run 'deforma " + command + (command.empty() ? "" : " ") +
                "--help' for the list";
    }
    return usage_error(command, message);
  }
  constexpr long long kMaxThreads = 4096;
  if (threads < 0 || threads > kMaxThreads) {
    std::fprintf(stderr,
                 "deforma: error: --threads %lld is out of range: expected 0 (all cores) or a number of "
                 "threads between 1 and %lld\n",
                 threads, kMaxThreads);
    return static_cast<int>(deforma::ExitCode::kInvalidArgument);
  }
  constexpr long long kMinRamMb = 16, kMaxRamMb = 1LL << 22;
  if (ram_mb < kMinRamMb || ram_mb > kMaxRamMb) {
    std::fprintf(stderr,
                 "deforma: error: --ram %lld is out of range: expected a memory budget between %lld MB and "
                 "%lld MB (4 TB)\n",
                 ram_mb, kMinRamMb, kMaxRamMb);
    return static_cast<int>(deforma::ExitCode::kInvalidArgument);
  }

  deforma::init_logging(quiet ? deforma::Verbosity::kQuiet
                              : (verbose ? deforma::Verbosity::kVerbose : deforma::Verbosity::kNormal));
  // GDAL's messages go to that log (debug level) from the start, not to standard error.
  deforma::io::ensure_gdal_initialized();
  // The run's thread limit and memory budget (a quarter of it for GDAL's block cache) are applied to the
  // run itself by io::run_operation.
  const int thread_count = static_cast<int>(threads);
  if (auto code = service_commands.run()) return *code;
  if (auto code = unit_command.run(thread_count, static_cast<std::size_t>(ram_mb))) return *code;

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
      install_interrupt_handlers();
      auto progress = deforma::make_terminal_progress(quiet ? deforma::ProgressStyle::kQuiet
                                                            : deforma::ProgressStyle::kAuto);
      deforma::RunContext context;
      context.progress = progress.get();
      context.threads = thread_count;
      context.ram_budget_mb = static_cast<std::size_t>(ram_mb);
      context.command_line = joined_command_line(argc, argv);
      context.logger = spdlog::default_logger();  // the terminal's, at the level of -q/-v
      auto summary = deforma::io::run_operation(*cmd.op, params, context);
      if (json_summary) {
        std::cout << summary.to_json().dump(2) << '\n';
      } else if (params.get_bool("json")) {
        std::cout << summary.details.dump(2) << '\n';
      } else {
        // The answer on standard output, always: --quiet silences progress and warnings, not results.
        auto answer = summary;
        if (quiet) answer.warnings.clear();
        std::cout << answer.to_text();
      }
      std::cout.flush();
      // Warnings are part of the report, and repeated on standard error, where a user sees them when the
      // answer goes to a file or a pipe.
      if (!quiet) {
        for (const auto& warning : summary.warnings) {
          std::fprintf(stderr, "deforma %s: warning: %s\n", cmd.op->name.c_str(), warning.c_str());
        }
      }
      return 0;
    } catch (const deforma::Cancelled& e) {
      // Whatever the operation's own words, one line a script can rely on; the details with --verbose.
      spdlog::debug("{}", e.what());
      std::fprintf(stderr, "deforma %s: cancelled\n", cmd.op->name.c_str());
      return static_cast<int>(deforma::ExitCode::kCancelled);
    } catch (const deforma::Error& e) {
      if (deforma::cancellation_requested()) {
        // A step that failed because it was interrupted (a write stopped midway) is a cancellation.
        spdlog::debug("{}", e.what());
        std::fprintf(stderr, "deforma %s: cancelled\n", cmd.op->name.c_str());
        return static_cast<int>(deforma::ExitCode::kCancelled);
      }
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
