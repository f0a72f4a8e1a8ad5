#pragma once
// GDAL's set-up for deforma: drivers registered once, and GDAL/CPL errors and warnings routed to the log of
// the run (core/log.hpp) at debug level, so that they appear only with --verbose; the library says what went
// wrong in its own words and keeps GDAL's last error to add to its messages.
#include <string>

namespace deforma::io {

/// Registers GDAL drivers once and installs the error handler; safe to call from any thread, repeatedly.
void ensure_gdal_initialized();

/// The last GDAL error message of this thread ("" when none), to enrich exception messages.
std::string last_gdal_error();

/// Clears the last GDAL error of this thread.
void clear_gdal_error();

}  // namespace deforma::io
