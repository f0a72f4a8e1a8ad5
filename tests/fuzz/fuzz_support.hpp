#pragma once
// Shared helpers of the libFuzzer targets. The readers under test take paths (and pick their behaviour
// from the file extension), so each input is written to a real file in a per-process temporary folder:
// a /vsimem/ path would bypass the checks a reader makes on the file itself.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::fuzz {

/// Silences the library's logging: warnings about each malformed input would drown libFuzzer's report.
inline void quiet_logging() {
  deforma::init_logging(deforma::Verbosity::kQuiet);
  deforma::io::ensure_gdal_initialized();
  spdlog::set_level(spdlog::level::off);
}

/// The input as text.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// A file holding one input, in a temporary folder of this process (removed at exit).
class InputFile {
 public:
  InputFile() {
    std::error_code ec;
    dir_ = std::filesystem::temp_directory_path(ec);
    if (ec) dir_ = "/tmp";
    dir_ /= "deforma-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
  }
  ~InputFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// Writes `bytes` to `name` in the folder (replacing the previous input) and returns its path.
  std::string write(const std::string& name, std::string_view bytes) {
    std::error_code ec;
    // Earlier inputs may have had another name; a reader must only ever see this one.
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
      std::filesystem::remove_all(entry, ec);
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace deforma::fuzz
