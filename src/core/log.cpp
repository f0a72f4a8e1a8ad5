#include "deforma/core/log.hpp"

#include <mutex>

#include <cpl_error.h>
#include <gdal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace deforma {
namespace {

thread_local std::string g_last_gdal_error;

// GDAL reports through CPLError; keep the text for exception messages and show it only with --verbose,
// because raw GDAL messages mean little to most users and the library says what went wrong itself.
void CPL_STDCALL gdal_error_handler(CPLErr level, CPLErrorNum code, const char* message) {
  const std::string text = message ? message : "";
  if (level >= CE_Failure) g_last_gdal_error = text;
  if (level == CE_Debug) {
    spdlog::trace("GDAL: {}", text);
  } else {
    spdlog::debug("GDAL {} {}: {}", level >= CE_Failure ? "error" : "warning", static_cast<int>(code), text);
  }
}

}  // namespace

void ensure_gdal_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    GDALAllRegister();
    CPLSetErrorHandler(gdal_error_handler);
  });
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

}  // namespace deforma
