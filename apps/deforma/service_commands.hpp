#pragma once
// The service's commands (not operations: they manage a service, they do not process data):
// `deforma serve`, `deforma users add|list|remove|set-quota` and `deforma job run JOBDIR`.
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace deforma::cli {

class ServiceCommands {
 public:
  /// Adds the commands to `app` (before parsing).
  explicit ServiceCommands(CLI::App& app);
  ~ServiceCommands();
  /// After parsing: runs the command given, returning its exit code; nullopt when none of these was given.
  std::optional<int> run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace deforma::cli
