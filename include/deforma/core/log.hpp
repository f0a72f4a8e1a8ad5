#pragma once
// Logging. Each run has its own logger (RunContext::logger): its level and sink are the run's, so two runs in
// one process (two service jobs, a test) log side by side without changing each other's. Library code logs
// through run_log(), which is the logger of the run the calling thread works for: io::run_operation binds
// it to the calling thread and to every thread of the run's task arena. Outside a run, run_log() is
// spdlog's default logger. GDAL's own messages go to the same logger at debug level (io/gdal_setup.hpp).
#include <memory>

#include <spdlog/logger.h>

namespace deforma {

enum class Verbosity { kQuiet, kNormal, kVerbose };

/// The CLI's logger: one-line messages ("warning: ...") on standard error, at the verbosity's level.
/// Installed as spdlog's default logger.
void init_logging(Verbosity verbosity);

/// The logger of the run the calling thread works for; spdlog's default logger when it works for none.
std::shared_ptr<spdlog::logger> run_log();

/// Makes `logger` this thread's run logger until destroyed (scopes nest; a null logger binds nothing).
class RunLogScope {
 public:
  explicit RunLogScope(std::shared_ptr<spdlog::logger> logger);
  ~RunLogScope();
  RunLogScope(const RunLogScope&) = delete;
  RunLogScope& operator=(const RunLogScope&) = delete;

  /// The binding that threads of the run's task arena take up on entry (see io::run_operation); it expires
  /// with the scope, whoever else keeps the logger.
  std::weak_ptr<spdlog::logger> binding() const { return binding_; }

 private:
  std::shared_ptr<spdlog::logger> binding_;
};

/// Low-level binding for thread pools: `binding` (RunLogScope::binding()) becomes this thread's run logger
/// until the matching pop_run_log(). A binding whose scope has ended is ignored, so a thread that missed
/// its pop never logs to a finished run.
void push_run_log(const std::weak_ptr<spdlog::logger>& logger);
void pop_run_log();

}  // namespace deforma
