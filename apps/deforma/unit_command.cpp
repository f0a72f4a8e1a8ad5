#include "unit_command.hpp"

#include <csignal>
#include <cstdio>
#include <string>

#include <spdlog/spdlog.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/progress.hpp"
#include "deforma/pipeline/unit.hpp"

namespace deforma::cli {

struct UnitCommand::State {
  CLI::App* run = nullptr;
  std::string list;
  long long index = -1;
};

UnitCommand::UnitCommand(CLI::App& app) : state_(std::make_unique<State>()) {
  auto* unit = app.add_subcommand("unit", "Run one work unit of a unit list (what a cluster task runs)");
  unit->require_subcommand(1);
  state_->run = unit->add_subcommand("run",
                                     "Run unit INDEX (0-based) of LIST (a <stage>/units.json written by "
                                     "'deforma pipeline --executor slurm')");
  state_->run->add_option("list", state_->list, "the unit list (units.json)")->required();
  state_->run->add_option("index", state_->index, "the unit's index in the list (SLURM_ARRAY_TASK_ID)")
      ->required();
  state_->run->fallthrough();
}

UnitCommand::~UnitCommand() = default;

namespace {
extern "C" void on_unit_signal(int) {
  request_cancellation();
}
}  // namespace

std::optional<int> UnitCommand::run(int threads, std::size_t ram_mb) {
  auto& s = *state_;
  if (!s.run->parsed()) return std::nullopt;
  std::signal(SIGTERM, on_unit_signal);
  std::signal(SIGINT, on_unit_signal);
  try {
    if (s.index < 0) throw InvalidArgument(fmt::format("parameter INDEX: {} must be >= 0", s.index));
    const auto list = pipeline::UnitList::read(s.list);
    // Slurm sends SIGTERM to a cancelled or timed-out task: a quiet progress still hears it, so the unit stops
    // at its next check and removes what it staged; no partial result is left under its final name.
    const auto progress = make_terminal_progress(ProgressStyle::kQuiet);
    RunContext context;
    context.progress = progress.get();
    context.threads = threads;
    context.ram_budget_mb = std::max(ram_mb, list.ram_mb);
    context.command_line = list.command_line;
    const auto index = static_cast<std::size_t>(s.index);
    const auto outcome = pipeline::run_unit(list, index, context);
    const char* words = outcome == pipeline::UnitOutcome::kReused    ? "complete from an earlier run"
                        : outcome == pipeline::UnitOutcome::kSkipped ? "skipped (see the warning)"
                                                                     : "computed";
    std::printf("unit %s (%s, %zu of %zu): %s\n", list.units[index].id.c_str(), list.stage.c_str(), index,
                list.units.size(), words);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "deforma unit run: error: %s\n", e.what());
    return static_cast<int>(cancellation_requested() ? ExitCode::kCancelled : e.exit_code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deforma unit run: internal error: %s\n", e.what());
    return static_cast<int>(ExitCode::kInternal);
  }
}

}  // namespace deforma::cli
