#pragma once
// Where the work units of an operation run (internal header): the executor and the Slurm placement options,
// declared once for every operation whose work is split into units (pipeline, egms fit).
#include <string>
#include <vector>

#include "deforma/core/operation.hpp"
#include "deforma/pipeline/slurm.hpp"

namespace deforma::ops {

/// --executor, --partition, --account, --max-parallel, --time-per-unit, --mem-per-unit, --cpus-per-unit,
/// --retries (docs/cluster.md).
std::vector<ParamDecl> executor_parameters();

/// --pair-ram and --invert-block-rows: the size of a run's pair and inversion units (pipeline, survey).
std::vector<ParamDecl> pair_unit_parameters();

/// The executor given ("local" or "slurm").
std::string executor_of(const ParamValues& p);

/// The Slurm options given (DEFORMA_SLURM_POLL_SECONDS, for tests, sets how often the cluster is read).
pipeline::SlurmOptions slurm_options_of(const ParamValues& p);

}  // namespace deforma::ops
