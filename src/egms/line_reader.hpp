#pragma once
// Internal to the egms module: a bounded line reader over GDAL's virtual file systems (plain files,
// /vsizip/...), shared by the product and GNSS readers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <cpl_vsi.h>

namespace deforma::egms::detail {

/// Longest CSV line the EGMS product and GNSS readers accept, end of line excluded (docs/egms.md). A
/// real EGMS line holds a few kB (about 8 bytes per date); the bound keeps the memory of a reader fixed
/// whatever it is given (a zip holding one 2 GB line, /dev/zero).
inline constexpr std::size_t kMaxLineBytes = std::size_t{1} << 20;

/// Reads lines by blocks; memory stays below max_line_bytes + one block. Not thread-safe.
class LineReader {
 public:
  /// `vsi_path` is opened, `display_path` names the file in messages; `expected_bytes` (0 = unknown) is
  /// the size the stream must reach, so that a truncated zip entry is an error rather than a short file.
  LineReader(std::string vsi_path, std::string display_path, std::uint64_t expected_bytes = 0,
             std::size_t max_line_bytes = kMaxLineBytes);
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  ~LineReader();

  /// (Re)opens the stream at its first byte. Throws IoError.
  void open();
  /// Moves to byte `offset` of the stream (an open stream; the next line starts there). Line numbers then
  /// count from that position. Throws IoError.
  void seek(std::uint64_t offset);
  /// The next line without its end of line (`\r\n` or `\n`); false at the end. Throws FormatError naming
  /// the file and line when a line exceeds the limit, IoError when the stream fails or ends early.
  bool next(std::string_view& line);

  std::int64_t line_number() const { return line_number_; }
  void set_display_path(std::string display_path) { display_path_ = std::move(display_path); }
  std::uint64_t consumed() const { return consumed_; }
  std::size_t max_line_bytes() const { return max_line_bytes_; }

 private:
  std::string vsi_path_, display_path_;
  std::uint64_t expected_ = 0;
  std::size_t max_line_bytes_;
  VSILFILE* file_ = nullptr;
  std::string buffer_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  std::uint64_t consumed_ = 0;
  std::int64_t line_number_ = 0;
};

}  // namespace deforma::egms::detail
