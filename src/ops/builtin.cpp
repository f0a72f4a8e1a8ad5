#include "deforma/ops.hpp"

#include "ops/registration.hpp"

namespace deforma {

const OperationRegistry& builtin_operations() {
  static const OperationRegistry registry = [] {
    OperationRegistry r;
    ops::register_io_operations(r);
    ops::register_correlate_operations(r);
    ops::register_filter_operations(r);
    ops::register_timeseries_operations(r);
    ops::register_pipeline_operations(r);
    ops::register_egms_operations(r);
    ops::register_workflow_operations(r);
    ops::register_catalog_operations(r);
    ops::register_describe_operation(r);
    return r;
  }();
  return registry;
}

}  // namespace deforma
