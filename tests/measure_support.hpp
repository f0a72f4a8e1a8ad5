#pragma once
// Running the CLI in a child process and measuring its peak memory.
#include <string>
#include <vector>

#include "test_support.hpp"

namespace deforma::test {

struct MeasuredCliResult : CliResult {
  double peak_rss_mb = 0;  ///< the child's peak resident set (ru_maxrss), in MiB
};

/// Runs the deforma binary with `args` (one argument each, no shell) in a child process and reports its peak
/// resident memory as the kernel accounted it, so that a test can hold an operation to its --ram budget.
/// DEFORMA_TEST_CLI, when set, names another build to run instead (to measure a baseline on the same inputs).
MeasuredCliResult run_cli_measured(const std::vector<std::string>& args);

}  // namespace deforma::test
