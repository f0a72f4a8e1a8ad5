#pragma once
// A scoped catcher of GDAL errors, whatever the logging set-up (io/gdal_setup.hpp routes GDAL messages to the
// log at debug level, where they would be lost).
#include <string>

namespace deforma::io {

/// Catches the GDAL/CPL errors raised on this thread while it lives: reads
/// check failed() after RasterIO, since GDAL may report a corrupt block as an error yet return the buffer
/// filled with zeros. Warnings and debug messages still go to the log. Nestable (GDAL's handler stack).
class GdalErrorTrap {
 public:
  GdalErrorTrap();
  GdalErrorTrap(const GdalErrorTrap&) = delete;
  GdalErrorTrap& operator=(const GdalErrorTrap&) = delete;
  ~GdalErrorTrap();

  bool failed() const { return error_count_ > 0; }
  int error_count() const { return error_count_; }
  /// The first error's text ("" when none): the cause; later ones are often its consequences.
  const std::string& first_error() const { return first_error_; }
  /// "first error (and N more)" for messages.
  std::string describe() const;

  /// Used by GDAL's handler stack.
  void record(int level, const char* message);

 private:
  int error_count_ = 0;
  std::string first_error_;
};

}  // namespace deforma::io
