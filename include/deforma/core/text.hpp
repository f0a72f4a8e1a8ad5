#pragma once
// Small text helpers shared by the readers of the modules (headers, key = value files, HTTP fields).
#include <string_view>

namespace deforma {

/// The characters std::isspace accepts in the "C" locale.
inline constexpr std::string_view kWhitespace = " \t\n\v\f\r";

/// `text` without the leading and trailing `characters` (a view into `text`).
constexpr std::string_view trim(std::string_view text, std::string_view characters = kWhitespace) {
  const auto first = text.find_first_not_of(characters);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(characters) - first + 1);
}

}  // namespace deforma
