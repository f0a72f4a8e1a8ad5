#include "deforma/core/log.hpp"

#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace deforma {
namespace {

// The run bindings of this thread, innermost last; expired ones (a scope that ended while a pool thread
// missed its pop) are skipped and pruned.
thread_local std::vector<std::weak_ptr<spdlog::logger>> g_run_logs;

}  // namespace

void init_logging(Verbosity verbosity) {
  auto logger = spdlog::get("deforma");
  if (!logger) logger = spdlog::stderr_logger_mt("deforma");
  logger->set_pattern("%^%l%$: %v");
  switch (verbosity) {
    case Verbosity::kQuiet: logger->set_level(spdlog::level::err); break;
    case Verbosity::kNormal: logger->set_level(spdlog::level::info); break;
    case Verbosity::kVerbose: logger->set_level(spdlog::level::debug); break;
  }
  spdlog::set_default_logger(logger);
}

std::shared_ptr<spdlog::logger> run_log() {
  for (auto it = g_run_logs.rbegin(); it != g_run_logs.rend(); ++it) {
    if (auto logger = it->lock()) return logger;
  }
  return spdlog::default_logger();
}

void push_run_log(const std::weak_ptr<spdlog::logger>& binding) {
  std::erase_if(g_run_logs, [](const auto& b) { return b.expired(); });
  g_run_logs.push_back(binding);
}

void pop_run_log() {
  if (!g_run_logs.empty()) g_run_logs.pop_back();
}

RunLogScope::RunLogScope(std::shared_ptr<spdlog::logger> logger) {
  if (!logger) return;
  // A control block of the scope's own, keeping the logger alive: the binding expires when the scope ends
  // even when the logger lives on (the CLI's, shared by runs one after another).
  spdlog::logger* raw = logger.get();
  binding_ = std::shared_ptr<spdlog::logger>(raw, [keep = std::move(logger)](spdlog::logger*) {});
  push_run_log(binding_);
}

RunLogScope::~RunLogScope() {
  if (binding_) pop_run_log();
}

}  // namespace deforma
