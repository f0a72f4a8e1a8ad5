#pragma once
// Running the unit lists of a pipeline on a Slurm cluster (docs/cluster.md).
//
// Each stage with work to do becomes ONE `sbatch --array` job (throttled with %N), whose task I runs
// `deforma unit run <stage>/units.json I` on a node; a later stage waits for the earlier one with
// `--dependency=afterok`. The coordinator (this process) follows the tasks through `squeue` and the units'
// completion records (pipeline/unit.hpp) on the shared filesystem, resubmits a failed task (killed,
// timed out, a node lost, an error) up to `retries` times, and, once a stage whose tasks were retried is
// complete, releases the next stage (its afterok on the first array can no longer be satisfied). A
// cancelled run (Progress::cancelled(): Ctrl-C, a dismissed service job) `scancel`s every array it
// submitted. Each task's log is kept in <stage>/logs/<job>_<task>.log; the error of a unit that failed on
// every attempt names the unit and quotes the end of its last log.
//
// Units complete from an earlier run are not submitted; when nothing is left, nothing is submitted.
// Slurm's commands run as child processes with argument vectors (no shell); the batch script holds only
// quoted paths.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "deforma/core/progress.hpp"
#include "deforma/pipeline/unit.hpp"

namespace deforma::pipeline {

struct SlurmOptions {
  std::string partition;      ///< --partition; empty = the cluster's default
  std::string account;        ///< --account; empty = the user's default
  /// Tasks of the run at once (the arrays' %N, shared by the arrays of a stage; resubmitted tasks wait
  /// for room); 0 = no limit. Stages never overlap (afterok).
  int max_parallel = 0;
  std::string time_per_unit;  ///< --time of each task ("30", "1:00:00", "2-0"); empty = partition default
  std::size_t mem_per_unit_mb = 0;  ///< --mem of each task; 0 = not requested
  int cpus_per_unit = 1;            ///< --cpus-per-task, and the task's --threads
  int retries = 2;                  ///< resubmissions of a failed task before the run fails
  double poll_seconds = 2.0;        ///< how often squeue and the records are read
  std::string deforma_path;         ///< the deforma executable on the nodes; empty = this process's own

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

struct StageOutcome {
  std::vector<std::size_t> completed;                        ///< indices complete at the end, list order
  std::vector<std::pair<std::size_t, std::string>> skipped;  ///< skip_bad units left out, with the reason
  int reused = 0;                                            ///< complete before the run
  int computed = 0;                                          ///< computed by this run's tasks
  int retried = 0;                                           ///< task resubmissions
  std::vector<std::string> job_ids;                          ///< the arrays submitted (first, then retries)
};

/// Runs the stages in order on Slurm: stage k's unit "ID" needs stage k-1's unit "ID" (a unit redone in
/// stage k-1 is redone in stage k), or, with the list's after_whole_stage, every unit of stage k-1 (one
/// unit redone there redoes all of stage k). Writes each list to <dir>/units.json. Returns one outcome per
/// stage. Throws Cancelled after scancel when progress.cancelled() or cancellation_requested()
/// (core/cancel.hpp); the failing unit's error (its kind, the unit named, its log quoted) when one fails on
/// every attempt; IoError when sbatch or squeue cannot run.
std::vector<StageOutcome> run_on_slurm(std::vector<UnitList>& stages, const SlurmOptions& options,
                                       Progress& progress);

/// Runs `argv` (argv[0] searched on PATH) with standard output and error captured into `output`; returns
/// its exit status (128 + signal when killed). IoError naming the command when it cannot be started.
int run_command(const std::vector<std::string>& argv, std::string& output);

/// How one array of a stage split into `arrays` arrays (past MaxArraySize) keeps the run under
/// `max_parallel` tasks at once: its `%N` throttle (0 = none), and the index of an earlier array of the
/// stage it waits for (afterany; -1 = none) when there are more arrays than the limit.
struct ArrayThrottle {
  int throttle = 0;
  int after = -1;
};
std::vector<ArrayThrottle> throttle_shares(int max_parallel, std::size_t arrays);

/// The Slurm array spec of sorted indices: "0-3,7,9-12".
std::string array_ranges(const std::vector<std::size_t>& indices);

}  // namespace deforma::pipeline
