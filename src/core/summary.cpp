#include "deforma/core/summary.hpp"

#include <fmt/format.h>

#include "deforma/core/progress.hpp"

namespace deforma {

nlohmann::json Summary::to_json() const {
  return nlohmann::json{{"operation", operation}, {"counts", counts},     {"seconds", seconds},
                        {"outputs", outputs},     {"warnings", warnings}, {"details", details}};
}

std::string Summary::to_text() const {
  std::string text;
  if (!report.empty()) {
    text = report;
    if (text.back() != '\n') text += '\n';
  } else {
    text += fmt::format("{} finished in {}\n", operation, format_duration(seconds));
    for (const auto& [name, value] : counts) text += fmt::format("  {:<20} {}\n", name, value);
  }
  for (const auto& output : outputs) text += fmt::format("  wrote {}\n", output);
  for (const auto& warning : warnings) text += fmt::format("  warning: {}\n", warning);
  return text;
}

}  // namespace deforma
