#pragma once
// Resumable batch processing of the pairs of a network: every pair is an independent work unit (described
// by data: a timeseries::Pair), processed in parallel under a memory budget, with a progress bar over
// pairs (rate and ETA), and resumable after a kill.
//
// Resumption. Each pair is a work unit (pipeline/unit.hpp): its result is written under its final name
// atomically (io::CogWriter renames a finished temporary file), and only then is the unit recorded as
// complete in `<output_dir>/units/<pair id>.json`: the unit's key (SHA-256 of its operation, its typed
// parameters and the size and modification time of every input) and the size and modification time of the
// result. A rerun skips a pair only when its record exists and holds the current key and result
// fingerprint; anything else (no record: killed between the rename and the record; other parameters; a
// changed input; a result replaced or truncated since) is redone. So a partial result is never taken for a
// complete one, and the same records serve a run on a cluster (pipeline/slurm.hpp).
//
// Memory. pairs_in_flight x per_pair_ram_mb <= ram_budget_mb: each pair runs with per_pair_ram_mb as its
// own streaming budget; the number of pairs in flight is also capped by the thread count.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/pipeline/unit.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace deforma::pipeline {

/// What a pair's worker receives besides the pair.
struct PairTask {
  const timeseries::Pair* pair = nullptr;
  std::string input_a;  ///< first input file (the reference image, or the stage's input raster)
  std::string input_b;  ///< second input file (the secondary image), may be empty
  std::string output;   ///< where to write the result (atomically)
  std::size_t ram_budget_mb = 256;
  Progress* progress = nullptr;  ///< forwards cancellation; the worker may ignore its counts
  const WorkUnit* unit = nullptr;  ///< the pair's unit (BatchOptions::unit_of, or the default one)
};

/// Processes one pair: must write `task.output` atomically or throw.
using PairWorker = std::function<Summary(const PairTask& task)>;

struct BatchOptions {
  std::string stage = "correlate";  ///< name of the stage in the completion records ("correlate", "filter")
  std::string output_dir;           ///< results go to <output_dir>/<pair id>.tif; records to units/
  /// The stage parameters that determine a result; a completed pair is reused only with the same ones.
  nlohmann::json parameters = nlohmann::json::object();
  /// The unit of a pair, when the caller builds them (typed parameters per pair); by default: operation =
  /// stage, `parameters`, the inputs of inputs_of and the output pair_result_path(output_dir, pair).
  std::function<WorkUnit(const timeseries::Pair&)> unit_of;
  std::size_t ram_budget_mb = 1024;   ///< for all pairs in flight together
  std::size_t per_pair_ram_mb = 256;  ///< budget of one pair
  int threads = 0;                    ///< 0 = all cores; caps pairs in flight
  /// Keep going when a pair fails with an input/format/numerical error: it is reported and left out.
  bool skip_bad = false;
  /// Which files of a pair are its inputs: by default the reference and secondary images; a later stage
  /// (filtering) takes the previous result instead.
  std::function<std::pair<std::string, std::string>(const timeseries::Pair&)> inputs_of;

  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

struct BatchResult {
  std::vector<timeseries::Pair> pairs;  ///< the completed pairs, result_path set, in input order
  std::vector<std::string> failed;      ///< "pair id: reason" (only with skip_bad)
  int reused = 0;                       ///< complete from an earlier run
  int computed = 0;                     ///< computed in this run
  Summary summary;                      ///< counts, seconds, outputs, warnings, report
};

/// SHA-256 of the canonical JSON text, as 64 hex digits: the parameters' identity.
std::string parameters_hash(const nlohmann::json& parameters);

/// Runs `worker` on every pair not already complete. Cancellation (progress->cancelled()) stops starting
/// pairs, lets those in flight finish or abort, records the finished ones and throws Cancelled. Without
/// skip_bad the first failure stops the batch the same way and is rethrown with the pair id.
BatchResult run_batch(const std::vector<timeseries::Pair>& pairs, const BatchOptions& options,
                      const PairWorker& worker, Progress* progress = nullptr);

/// The path of a pair's result in `output_dir`.
std::string pair_result_path(const std::string& output_dir, const timeseries::Pair& pair);

}  // namespace deforma::pipeline
