#include "deforma/egms/pid.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::egms {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

constexpr std::uint64_t pow62(int exponent) {
  std::uint64_t v = 1;
  for (int i = 0; i < exponent; ++i) v *= 62;
  return v;
}

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  if (c >= 'a' && c <= 'z') return c - 'a' + 36;
  return -1;
}

void check_range(const char* field, long long value, long long max_value) {
  if (value < 0 || value > max_value) {
    throw InvalidArgument(fmt::format("EGMS pid: {} = {} is outside 0..{}", field, value, max_value));
  }
}

}  // namespace

std::string encode_base62(std::uint64_t value, int width) {
  char reversed[16];
  int length = 0;
  do {
    reversed[length++] = kAlphabet[value % 62];
    value /= 62;
  } while (value != 0);
  std::string digits(static_cast<std::size_t>(std::max(width, length)), '0');
  for (int i = 0; i < length; ++i) digits[digits.size() - 1 - static_cast<std::size_t>(i)] = reversed[i];
  return digits;
}

std::uint64_t decode_base62(std::string_view text) {
  if (text.empty()) throw InvalidArgument("EGMS pid: empty identifier");
  std::uint64_t value = 0;
  for (const char c : text) {
    const int d = digit_value(c);
    if (d < 0) {
      throw InvalidArgument(fmt::format("EGMS pid '{}': character '{}' is not a base-62 digit", text, c));
    }
    if (value > (std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(d)) / 62) {
      throw InvalidArgument(fmt::format("EGMS pid '{}': value does not fit in 64 bits", text));
    }
    value = value * 62 + static_cast<std::uint64_t>(d);
  }
  return value;
}

L2PointId decode_l2_pid(std::string_view pid) {
  if (pid.size() != 10 || pid.front() != '1') {
    throw InvalidArgument(
        fmt::format("EGMS pid '{}': expected 10 base-62 characters starting with '1'", pid));
  }
  const std::uint64_t n = decode_base62(pid) - pow62(9);
  const std::uint64_t burst_key = n / pow62(5);
  const std::uint64_t position = n % pow62(5);
  L2PointId id;
  id.line = static_cast<int>(position >> 16);
  id.pixel = static_cast<int>(position & 0xffff);
  id.track = static_cast<int>(burst_key >> 16);
  id.burst = static_cast<int>((burst_key >> 4) & 0xfff);
  id.code = static_cast<int>(burst_key & 0xf);
  return id;
}

std::string encode_l2_pid(const L2PointId& id) {
  check_range("track", id.track, 255);
  check_range("burst", id.burst, 4095);
  check_range("code", id.code, 15);
  check_range("line", id.line, 65535);
  check_range("pixel", id.pixel, 65535);
  const std::uint64_t position =
      (static_cast<std::uint64_t>(id.line) << 16) | static_cast<std::uint64_t>(id.pixel);
  if (position >= pow62(5)) throw InvalidArgument("EGMS pid: line/pixel do not fit in 5 base-62 digits");
  const std::uint64_t burst_key = (static_cast<std::uint64_t>(id.track) << 16) |
                                  (static_cast<std::uint64_t>(id.burst) << 4) |
                                  static_cast<std::uint64_t>(id.code);
  return encode_base62(pow62(9) + burst_key * pow62(5) + position, 10);
}

L3CellId decode_l3_pid(std::string_view pid) {
  if (pid.size() != 10 || pid.front() != '1') {
    throw InvalidArgument(
        fmt::format("EGMS L3 pid '{}': expected '1' followed by 9 base-62 characters", pid));
  }
  const std::uint64_t n = decode_base62(pid.substr(1));
  return L3CellId{static_cast<std::int64_t>(n & 0xffffffffULL), static_cast<std::int64_t>(n >> 32)};
}

std::string encode_l3_pid(const L3CellId& cell) {
  check_range("cell column", cell.column, 0xffffffffLL);
  check_range("cell row", cell.row, 0xffffffffLL);
  const std::uint64_t n =
      (static_cast<std::uint64_t>(cell.row) << 32) | static_cast<std::uint64_t>(cell.column);
  return std::string("1").append(encode_base62(n, 9));
}

std::string l3_pid_at(double easting_m, double northing_m) {
  return encode_l3_pid(L3CellId{static_cast<std::int64_t>(std::floor(easting_m / 100.0)),
                                static_cast<std::int64_t>(std::floor(northing_m / 100.0))});
}

}  // namespace deforma::egms
