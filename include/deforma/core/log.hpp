#pragma once
// Logging set-up shared by the tools. The library logs through spdlog's default logger; GDAL's own
// messages are routed there at debug level so that they appear only with --verbose.
#include <string>

namespace deforma {

enum class Verbosity { kQuiet, kNormal, kVerbose };

/// Configures the default logger (stderr) and routes GDAL/CPL errors and warnings to it.
void init_logging(Verbosity verbosity);

/// Registers GDAL drivers once and installs the error handler; safe to call from any thread, repeatedly.
void ensure_gdal_initialized();

/// The last GDAL error message of this thread ("" when none), to enrich exception messages.
std::string last_gdal_error();

/// Clears the last GDAL error of this thread.
void clear_gdal_error();

}  // namespace deforma
