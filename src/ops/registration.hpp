#pragma once
// Each module's operations, registered by name (internal header).
#include "deforma/core/operation.hpp"

namespace deforma::ops {

void register_io_operations(OperationRegistry& registry);
void register_filter_operations(OperationRegistry& registry);

}  // namespace deforma::ops
