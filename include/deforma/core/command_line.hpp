#pragma once
// The command line recorded in every product's provenance, written so that it can be pasted into a POSIX
// shell to run the same command again.
#include <string>
#include <vector>

namespace deforma {

/// One argument quoted for a POSIX shell: kept as is when it holds only characters no shell interprets
/// (letters, digits and _ @ % + = : , . / -), else wrapped in single quotes (a quote inside becomes '\'').
/// An empty argument gives ''.
std::string shell_quote(const std::string& argument);

/// The arguments quoted one by one (shell_quote) and joined by spaces.
std::string shell_quote_command_line(const std::vector<std::string>& arguments);
std::string shell_quote_command_line(int argc, const char* const* argv);

}  // namespace deforma
