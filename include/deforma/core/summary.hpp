#pragma once
// Every operation returns a Summary (after Ceres Solver): what was processed, masked and failed, how long
// it took, what was written, and operation-specific details. The CLI prints it; the service returns it as
// JSON.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deforma {

struct Summary {
  std::string operation;                       ///< registered operation name
  std::map<std::string, std::int64_t> counts;  ///< e.g. {"nodes": 1000, "valid": 950, "masked": 30}
  double seconds = 0.0;                        ///< wall-clock duration
  std::vector<std::string> outputs;            ///< files written
  std::vector<std::string> warnings;           ///< non-fatal issues the user should know about
  nlohmann::json details = nlohmann::json::object();  ///< operation-specific figures
  std::string report;                          ///< human-readable text, printed by the CLI

  nlohmann::json to_json() const;
  /// The report (or, without one, the counts and details) followed by outputs and warnings.
  std::string to_text() const;
};

/// Seconds elapsed since `start` (steady clock): the Summary's duration.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace deforma
