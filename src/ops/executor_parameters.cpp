#include "ops/executor_parameters.hpp"

#include <algorithm>
#include <cstdlib>

namespace deforma::ops {

std::vector<ParamDecl> executor_parameters() {
  return {
      ParamDecl::option("executor", ParamType::kChoice,
                        "where the work units run: threads of this process, or Slurm array jobs "
                        "(docs/cluster.md; the output must be on a filesystem the nodes share)")
          .one_of({"local", "slurm"})
          .defaults_to("local"),
      ParamDecl::option("partition", ParamType::kString,
                        "slurm: partition of the array jobs (default: the cluster's)"),
      ParamDecl::option("account", ParamType::kString, "slurm: account charged (default: the user's)"),
      ParamDecl::option("max-parallel", ParamType::kInt,
                        "slurm: tasks of the run at once, all arrays together (0 = no limit)")
          .defaults_to("0")
          .at_least(0),
      ParamDecl::option("time-per-unit", ParamType::kString,
                        "slurm: time limit of one unit's task (minutes, HH:MM:SS or D-HH:MM:SS; default: the "
                        "partition's)"),
      ParamDecl::option("mem-per-unit", ParamType::kInt,
                        "slurm: memory requested per task (0 = not requested)")
          .in_unit("MB")
          .defaults_to("0")
          .at_least(0),
      ParamDecl::option("cpus-per-unit", ParamType::kInt, "slurm: CPUs (and threads) of one task")
          .defaults_to("1")
          .between(1, 256),
      ParamDecl::option(
          "retries", ParamType::kInt,
          "slurm: resubmissions of a failed task (killed, timed out, node lost) before the run fails")
          .defaults_to("2")
          .between(0, 100),
  };
}

std::vector<ParamDecl> pair_unit_parameters() {
  return {
      ParamDecl::option("pair-ram", ParamType::kInt,
                        "memory budget of one pair; pairs in flight = --ram / this (and at most --threads)")
          .in_unit("MB")
          .defaults_to("256")
          .at_least(16),
      ParamDecl::option("invert-block-rows", ParamType::kInt,
                        "rows of nodes of one inversion unit (one task on Slurm); 0 = as many as --pair-ram "
                        "allows")
          .defaults_to("0")
          .at_least(0),
  };
}

std::string executor_of(const ParamValues& p) {
  return p.get_string("executor");
}

pipeline::SlurmOptions slurm_options_of(const ParamValues& p) {
  pipeline::SlurmOptions o;
  o.partition = p.get_string_or("partition", "");
  o.account = p.get_string_or("account", "");
  o.max_parallel = static_cast<int>(p.get_int("max-parallel"));
  o.time_per_unit = p.get_string_or("time-per-unit", "");
  o.mem_per_unit_mb = static_cast<std::size_t>(p.get_int("mem-per-unit"));
  o.cpus_per_unit = static_cast<int>(p.get_int("cpus-per-unit"));
  o.retries = static_cast<int>(p.get_int("retries"));
  if (const char* poll = std::getenv("DEFORMA_SLURM_POLL_SECONDS")) {
    // Tests follow a local cluster more closely than the default suits a real one.
    o.poll_seconds = std::max(0.05, std::atof(poll));
  }
  return o;
}

}  // namespace deforma::ops
