#include "deforma/core/command_line.hpp"

namespace deforma {

std::string shell_quote(const std::string& argument) {
  if (argument.empty()) return "''";
  bool plain = true;
  for (const char ch : argument) {
    const bool safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '_' || ch == '@' || ch == '%' || ch == '+' || ch == '=' || ch == ':' ||
                      ch == ',' || ch == '.' || ch == '/' || ch == '-';
    if (!safe) {
      plain = false;
      break;
    }
  }
  if (plain) return argument;
  std::string quoted = "'";
  for (const char ch : argument) {
    if (ch == '\'') {
      quoted += "'\\''";  // close the quote, an escaped quote, reopen
    } else {
      quoted += ch;
    }
  }
  quoted += '\'';
  return quoted;
}

std::string shell_quote_command_line(const std::vector<std::string>& arguments) {
  std::string line;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    if (i) line += ' ';
    line += shell_quote(arguments[i]);
  }
  return line;
}

std::string shell_quote_command_line(int argc, const char* const* argv) {
  std::vector<std::string> arguments;
  for (int i = 0; i < argc; ++i) arguments.emplace_back(argv[i] ? argv[i] : "");
  return shell_quote_command_line(arguments);
}

}  // namespace deforma
