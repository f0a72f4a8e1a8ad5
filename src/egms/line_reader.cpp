#include "egms/line_reader.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::egms::detail {

LineReader::LineReader(std::string vsi_path, std::string display_path, std::uint64_t expected_bytes,
                       std::size_t max_line_bytes)
    : vsi_path_(std::move(vsi_path)),
      display_path_(std::move(display_path)),
      expected_(expected_bytes),
      max_line_bytes_(max_line_bytes) {}

LineReader::~LineReader() {
  if (file_) VSIFCloseL(file_);
}

void LineReader::open() {
  if (file_) VSIFCloseL(file_);
  io::clear_gdal_error();
  file_ = VSIFOpenL(vsi_path_.c_str(), "rb");
  if (!file_) {
    throw IoError(fmt::format("{}: cannot open{}", display_path_,
                              io::last_gdal_error().empty() ? "" : " (" + io::last_gdal_error() + ")"));
  }
  buffer_.clear();
  pos_ = 0;
  eof_ = false;
  consumed_ = 0;
  line_number_ = 0;
}

void LineReader::seek(std::uint64_t offset) {
  if (!file_) open();
  io::clear_gdal_error();
  if (VSIFSeekL(file_, static_cast<vsi_l_offset>(offset), SEEK_SET) != 0) {
    throw IoError(fmt::format("{}: cannot seek to byte {}{}", display_path_, offset,
                              io::last_gdal_error().empty() ? "" : " (" + io::last_gdal_error() + ")"));
  }
  buffer_.clear();
  pos_ = 0;
  eof_ = false;
  consumed_ = offset;
  line_number_ = 0;
}

bool LineReader::next(std::string_view& line) {
  const auto too_long = [&] {
    return FormatError(
        fmt::format("{}: line {} is longer than {} bytes, the longest CSV line accepted "
                    "(not a CSV file, or a damaged one?)",
                    display_path_, line_number_ + 1, max_line_bytes_));
  };
  while (true) {
    const auto nl = buffer_.find('\n', pos_);
    if (nl != std::string::npos) {
      if (nl - pos_ > max_line_bytes_) throw too_long();
      line = std::string_view(buffer_).substr(pos_, nl - pos_);
      consumed_ += nl + 1 - pos_;
      pos_ = nl + 1;
      ++line_number_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      return true;
    }
    // No end of line in what is buffered: the line so far must stay within the bound before more is read.
    if (buffer_.size() - pos_ > max_line_bytes_) throw too_long();
    if (eof_) {
      if (pos_ >= buffer_.size()) return false;
      line = std::string_view(buffer_).substr(pos_);
      consumed_ += buffer_.size() - pos_;
      pos_ = buffer_.size();
      ++line_number_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      return true;
    }
    buffer_.erase(0, pos_);
    pos_ = 0;
    // Never read more than the line may still hold (plus its end of line): the buffer stays bounded.
    const std::size_t block = std::min<std::size_t>(std::size_t{4} << 20, max_line_bytes_ + 2);
    const std::size_t old = buffer_.size();
    buffer_.resize(old + block);
    io::clear_gdal_error();
    const std::size_t got = VSIFReadL(buffer_.data() + old, 1, block, file_);
    buffer_.resize(old + got);
    if (got < block) {
      const std::string err = io::last_gdal_error();
      if (!err.empty()) {
        throw IoError(fmt::format("{}: read error after line {} (truncated or corrupt file?): {}",
                                  display_path_, line_number_, err));
      }
      eof_ = true;
      if (expected_ > 0 && consumed_ + buffer_.size() < expected_) {
        throw IoError(fmt::format("{}: the CSV ends after {} of its {} bytes, near line {} (truncated file)",
                                  display_path_, consumed_ + buffer_.size(), expected_, line_number_ + 1));
      }
    }
  }
}

}  // namespace deforma::egms::detail
