#pragma once
// The catalogue operations' parameters bound to library options (internal header).
#include "deforma/catalog/catalog.hpp"
#include "deforma/core/operation.hpp"

namespace deforma::ops {

/// catalog add: the collection and owner, bound to catalog::IngestOptions (`public` is declared only: it
/// counts with an owner alone).
ParamGroup<catalog::IngestOptions> ingest_parameters();

}  // namespace deforma::ops
