#pragma once
// Unit operations of modules above the pipeline (EGMS point parts: egms/units.hpp), which the pipeline
// cannot include: they register what runs their units, so that execute_unit (`deforma unit run` on a
// cluster node, or the local executor) runs them like the pipeline's own correlate, filter and
// invert-block units.
#include <functional>
#include <string>

#include "deforma/core/operation.hpp"
#include "deforma/pipeline/unit.hpp"

namespace deforma::pipeline {

/// Runs one unit of a registered operation from its JSON; writes the unit's output atomically.
using UnitRunner = std::function<Summary(const UnitList& list, const WorkUnit& unit, RunContext& context)>;

/// Makes execute_unit run units of `operation` with `runner` (a later call for the same name replaces
/// it). Thread-safe.
void register_unit_operation(const std::string& operation, UnitRunner runner);

/// The runner registered for `operation`; empty when none.
UnitRunner unit_operation(const std::string& operation);

}  // namespace deforma::pipeline
