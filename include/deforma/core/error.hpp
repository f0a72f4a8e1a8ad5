#pragma once
// deforma's exception hierarchy. Everything the library throws derives from deforma::Error, so callers can
// catch one type; the subclasses say what went wrong, and the CLI maps each to its own exit code
// (docs/cli.md). Messages name the file, band and parameter concerned and what was expected.
//
// The library never throws per pixel or per node: a pixel that cannot be computed is written as nodata
// with a flag, and only conditions that make the whole result meaningless become exceptions.
#include <stdexcept>
#include <string>

namespace deforma {

/// Process exit codes of the command-line tools, one per error kind.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,         ///< an unexpected condition: a bug to report
  kUsage = 2,            ///< malformed command line (unknown option, missing argument)
  kInvalidArgument = 3,  ///< a parameter value is out of its domain or inconsistent with the inputs
  kIo = 4,               ///< a file cannot be found, read or written
  kFormat = 5,           ///< a file exists but is not what was expected (not a raster, truncated, bad columns)
  kNumerical = 6,        ///< the data do not allow a meaningful result (no texture, singular system)
  kCancelled = 7,        ///< the run was cancelled before completion
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ExitCode code = ExitCode::kInternal)
      : std::runtime_error(message), code_(code) {}
  ExitCode exit_code() const noexcept { return code_; }
  /// Short machine-readable name of the error kind ("io", "format", ...), used in JSON error replies.
  const char* kind() const noexcept;

 private:
  ExitCode code_;
};

/// A parameter has a value outside its domain or inconsistent with the inputs.
class InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string& message) : Error(message, ExitCode::kInvalidArgument) {}
};

/// A file or folder cannot be found, opened, read or written.
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(message, ExitCode::kIo) {}
};

/// A file was read but its content is not what was expected (wrong format, truncated, missing column).
class FormatError : public Error {
 public:
  explicit FormatError(const std::string& message) : Error(message, ExitCode::kFormat) {}
};

/// The data do not allow a meaningful result (singular system, no valid sample at all).
class NumericalError : public Error {
 public:
  explicit NumericalError(const std::string& message) : Error(message, ExitCode::kNumerical) {}
};

/// The caller asked to stop (progress callback) before the work was complete.
class Cancelled : public Error {
 public:
  explicit Cancelled(const std::string& message) : Error(message, ExitCode::kCancelled) {}
};

}  // namespace deforma
