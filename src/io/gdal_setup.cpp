#include "deforma/io/gdal_setup.hpp"

#include <mutex>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>

#include "deforma/core/log.hpp"
#include "deforma/io/gdal_error_trap.hpp"

namespace deforma::io {
namespace {

thread_local std::string g_last_gdal_error;

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

}  // namespace deforma::io
