#pragma once
// `deforma unit run LIST INDEX`: runs one work unit of a unit list (pipeline/unit.hpp). A Slurm array task
// runs this on a node (pipeline/slurm.hpp); it is the same code a local run's threads use.
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace deforma::cli {

class UnitCommand {
 public:
  explicit UnitCommand(CLI::App& app);
  ~UnitCommand();
  /// After parsing: runs the unit when `unit run` was given and returns the exit code; nullopt otherwise.
  /// `threads` and `ram_mb` are the global --threads and --ram.
  std::optional<int> run(int threads, std::size_t ram_mb);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace deforma::cli
