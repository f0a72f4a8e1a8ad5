#pragma once
// The registry of every built-in operation: the top layer of the library, used by the CLI and the service.
// Each module contributes a register_*_operations(OperationRegistry&) function, called here in order.
#include "deforma/core/operation.hpp"

namespace deforma {

/// The registry holding every built-in operation of the library (built once, thread-safe).
const OperationRegistry& builtin_operations();

}  // namespace deforma
