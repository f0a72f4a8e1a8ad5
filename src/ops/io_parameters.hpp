#pragma once
// The io operations' parameters bound to library options (internal header).
#include "deforma/core/operation.hpp"
#include "deforma/io/cog_writer.hpp"

namespace deforma::ops {

/// cog: the compression, bound to io::CogOptions.
ParamGroup<io::CogOptions> cog_parameters();

}  // namespace deforma::ops
