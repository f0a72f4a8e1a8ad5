#pragma once
// EGMS point identifiers (pid): base-62 strings (digits 0-9, then A-Z, then a-z) of a packed integer.
//
// Level 2 (Basic and Calibrated), 10 characters. The integer is
//   N = 62^9 + ((track * 2^16 + burst * 2^4 + code) * 62^5) + line * 2^16 + pixel
// where the leading 62^9 is the constant first character '1', `track` the relative orbit, `burst` the
// EGMS burst number of the product name (EGMS_L2b_<track>_<burst>_...), `code` a 4-bit tag (11 in the
// IW2 VV products of the 2020-2024 release; its meaning is not documented), and `line`/`pixel` the
// radar coordinates found in the `line`/`pixel` columns. The layout was established on the real
// Ustica products: every pid of both bursts decodes to the track, burst, line and pixel of its row.
//
// Level 3 (Ortho), 10 characters: '1' followed by 9 base-62 digits of
//   floor(northing / 100) * 2^32 + floor(easting / 100)
// with the cell centre coordinates in EPSG:3035 metres.
#include <cstdint>
#include <string>
#include <string_view>

namespace deforma::egms {

/// The fields packed in a Level 2 pid.
struct L2PointId {
  int track = 0;  ///< relative orbit, 1..175
  int burst = 0;  ///< EGMS burst number, 0..4095
  int code = 0;   ///< 4-bit tag, 0..15 (11 in the known IW2 VV products)
  int line = 0;   ///< radar line, 0..65535
  int pixel = 0;  ///< radar pixel, 0..65535
  bool operator==(const L2PointId&) const = default;
};

/// The cell of a Level 3 pid: indices of the 100 m cell in EPSG:3035 (x = easting / 100).
struct L3CellId {
  std::int64_t column = 0;  ///< floor(easting / 100)
  std::int64_t row = 0;     ///< floor(northing / 100)
  bool operator==(const L3CellId&) const = default;
};

/// Base-62 digits of `value`, left-padded with '0' to `width` characters (no padding when 0).
std::string encode_base62(std::uint64_t value, int width = 0);
/// Inverse of encode_base62. Throws InvalidArgument naming the pid and the offending character, or when
/// the value does not fit in 64 bits.
std::uint64_t decode_base62(std::string_view text);

/// Decodes a Level 2 pid. Throws InvalidArgument when it is not a 10-character L2 pid.
L2PointId decode_l2_pid(std::string_view pid);
/// Encodes a Level 2 pid; throws InvalidArgument naming the field out of range.
std::string encode_l2_pid(const L2PointId& id);

/// Decodes a Level 3 pid; throws InvalidArgument when malformed.
L3CellId decode_l3_pid(std::string_view pid);
/// Encodes a Level 3 pid from cell indices (both must be non-negative and < 2^32).
std::string encode_l3_pid(const L3CellId& cell);
/// The Level 3 pid of the 100 m cell containing (easting, northing) in EPSG:3035 metres.
std::string l3_pid_at(double easting_m, double northing_m);

}  // namespace deforma::egms
