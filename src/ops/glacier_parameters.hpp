#pragma once
// `--glaciers OUTLINES` and its companions, shared by `deforma correlate` and `deforma pipeline` (internal
// header): the same names, units and bounds in both, bound to filter::GlacierOptions.
#include "deforma/core/operation.hpp"
#include "deforma/filter/glaciers.hpp"

namespace deforma::ops {

/// glaciers, glacier-buffer-m, glacier-margin-m, centrelines.
ParamGroup<filter::GlacierOptions> glacier_parameters();

}  // namespace deforma::ops
