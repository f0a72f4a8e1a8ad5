#include "deforma/core/log.hpp"

#include "deforma/core/gdal_error_trap.hpp"

#include <mutex>
#include <vector>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace deforma {
namespace {

thread_local std::string g_last_gdal_error;

// The run bindings of this thread, innermost last; expired ones (a scope that ended while a pool thread
// missed its pop) are skipped and pruned.
thread_local std::vector<std::weak_ptr<spdlog::logger>> g_run_logs;

// GDAL reports through CPLError; keep the text for exception messages and show it only with --verbose,
// because raw GDAL messages mean little to most users and the library says what went wrong itself.
void CPL_STDCALL gdal_error_handler(CPLErr level, CPLErrorNum code, const char* message) {
  const std::string text = message ? message : "";
  if (level >= CE_Failure) g_last_gdal_error = text;
  if (level == CE_Debug) {
    run_log()->trace("GDAL: {}", text);
  } else {
    run_log()->debug("GDAL {} {}: {}", level >= CE_Failure ? "error" : "warning", static_cast<int>(code), text);
  }
}

void CPL_STDCALL trap_error_handler(CPLErr level, CPLErrorNum code, const char* message) {
  if (auto* trap = static_cast<GdalErrorTrap*>(CPLGetErrorHandlerUserData())) {
    trap->record(static_cast<int>(level), message);
  }
  gdal_error_handler(level, code, message);
}

}  // namespace

void ensure_gdal_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    GDALAllRegister();
    CPLSetErrorHandler(gdal_error_handler);
    // libjpeg calls a truncated or corrupt stream a warning and fills the rest of the image with grey;
    // as an error, the read fails instead of giving made-up pixels.
    if (!CPLGetConfigOption("GDAL_ERROR_ON_LIBJPEG_WARNING", nullptr)) {
      CPLSetConfigOption("GDAL_ERROR_ON_LIBJPEG_WARNING", "TRUE");
    }
  });
}

GdalErrorTrap::GdalErrorTrap() {
  ensure_gdal_initialized();
  CPLPushErrorHandlerEx(trap_error_handler, this);
  // Debug messages go on to the previous handler; only errors and warnings come here.
  CPLSetCurrentErrorHandlerCatchDebug(FALSE);
}

GdalErrorTrap::~GdalErrorTrap() {
  CPLPopErrorHandler();
}

void GdalErrorTrap::record(int level, const char* message) {
  if (level < CE_Failure) return;
  if (error_count_++ == 0) first_error_ = message ? message : "";
}

std::string GdalErrorTrap::describe() const {
  if (error_count_ <= 1) return first_error_;
  return first_error_ + " (and " + std::to_string(error_count_ - 1) + " more GDAL error" +
         (error_count_ > 2 ? "s" : "") + ")";
}

std::string last_gdal_error() { return g_last_gdal_error; }
void clear_gdal_error() {
  g_last_gdal_error.clear();
  CPLErrorReset();
}

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
  ensure_gdal_initialized();
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
