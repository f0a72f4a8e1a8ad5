// Unit operations declared by modules above the pipeline (which cannot be included from here): they register
// their runner once, before any unit runs.
#include <map>
#include <mutex>

#include "deforma/pipeline/unit_registry.hpp"

namespace deforma::pipeline {

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, UnitRunner> runners;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_unit_operation(const std::string& operation, UnitRunner runner) {
  auto& r = registry();
  const std::lock_guard lock(r.mutex);
  r.runners[operation] = std::move(runner);
}

UnitRunner unit_operation(const std::string& operation) {
  auto& r = registry();
  const std::lock_guard lock(r.mutex);
  const auto it = r.runners.find(operation);
  return it == r.runners.end() ? UnitRunner{} : it->second;
}

}  // namespace deforma::pipeline
