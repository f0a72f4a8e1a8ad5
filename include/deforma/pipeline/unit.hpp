#pragma once
// Work units as data. A pipeline stage is a list of units, each one operation invocation on one pair:
// (operation id, typed parameters, input files, output file). The same unit runs in a thread of a local run
// (run_batch) or in a Slurm array task on another machine (`deforma unit run LIST INDEX`): both call
// execute_unit on the unit read back from its JSON, so what a unit computes is exactly what its JSON says.
//
// A unit's key is the SHA-256 of the canonical JSON of its operation, parameters and input fingerprints
// (path, size, modification time in ns): any parameter (every field of the library's options, enums by
// name, region of interest included) or input that changes gives another key. Completion is one small
// JSON file per unit, `<stage folder>/units/<unit id>.json` (the key, and the size and modification time
// of the output), written through a temporary file and a rename, so a reader never sees half of one and
// no database is shared over a network filesystem. A unit is complete when its record exists, its key is
// the unit's current key and its output still has the recorded size and time.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::pipeline {

struct WorkUnit {
  std::string id;         ///< the pair id: unique in its list, used in file names
  std::string operation;  ///< "correlate", "filter" (execute_unit), or a caller's own stage name
  nlohmann::json parameters = nlohmann::json::object();  ///< typed parameters: all a result depends on
  std::vector<std::string> inputs;  ///< every file the unit reads (the first ones are its main inputs)
  std::string output;               ///< the file it writes (atomically)

  nlohmann::json to_json() const;
  /// Throws FormatError naming what is missing.
  static WorkUnit from_json(const nlohmann::json& j);
};

/// The units of one stage and what their runs share. Written as `<dir>/units.json` for cluster tasks.
struct UnitList {
  std::string stage;         ///< "correlate", "filter"
  std::string dir;           ///< the stage's output folder (results, units/, logs/)
  bool skip_bad = false;     ///< a unit failing on its data is recorded as skipped instead of failing the run
  std::size_t ram_mb = 256;  ///< memory budget of one unit
  /// Every unit needs every unit of the stage before (an inversion block needs all the filtered pairs),
  /// not only the unit of the same id: one unit redone there redoes the whole stage. Not written to the
  /// list: it is the coordinator's business.
  bool after_whole_stage = false;
  std::string command_line;  ///< provenance written into the results
  std::vector<WorkUnit> units;

  nlohmann::json to_json() const;
  static UnitList from_json(const nlohmann::json& j);
  /// Writes atomically; IoError when it cannot.
  void write(const std::string& path) const;
  /// IoError when unreadable, FormatError when not a unit list.
  static UnitList read(const std::string& path);
  /// Index of the unit `id`; nullopt when absent.
  std::optional<std::size_t> find(const std::string& id) const;
};

/// Lower-case hex SHA-256 of `text`.
std::string sha256_hex(const std::string& text);

/// Size and modification time (ns) of a file; -1, -1 when it does not exist.
struct FileFingerprint {
  long long size = -1;
  long long mtime_ns = -1;
  bool operator==(const FileFingerprint&) const = default;
};
FileFingerprint file_fingerprint(const std::string& path);

/// SHA-256 of the canonical JSON of {operation, parameters, inputs with their current fingerprints}.
std::string unit_key(const WorkUnit& unit);

/// `<dir>/units/<id>.json`, the completion record.
std::string unit_record_path(const std::string& dir, const std::string& unit_id);
/// `<dir>/units/<id>.skipped.json`: a unit left out on its data (skip_bad), with the reason.
std::string unit_skip_path(const std::string& dir, const std::string& unit_id);
/// `<dir>/units/<id>.error.json`: the last failure of the unit (kind, exit code, message), for the
/// coordinator.
std::string unit_error_path(const std::string& dir, const std::string& unit_id);
/// True when the record exists, holds `key` (unit_key(unit) when empty) and the output is unchanged.
bool unit_complete(const std::string& dir, const WorkUnit& unit, const std::string& key = "");
/// Records the unit as complete (after its output is in place); IoError when the output is missing.
void record_unit(const std::string& dir, const WorkUnit& unit, double seconds, const std::string& key = "");
/// Removes the unit's records (completion, skip and error).
void forget_unit(const std::string& dir, const WorkUnit& unit);
/// Records the unit as skipped with `reason`.
void record_skipped_unit(const std::string& dir, const WorkUnit& unit, const std::string& reason);
/// The reason of a skipped unit; nullopt when it has no skip record.
std::optional<std::string> skipped_reason(const std::string& dir, const WorkUnit& unit);

/// Every field of the options as typed JSON (enums by name, the region of interest, dates...), and back.
nlohmann::json correlate_options_json(const correlate::CorrelateOptions& o);
correlate::CorrelateOptions correlate_options_from_json(const nlohmann::json& j);
nlohmann::json filter_options_json(const filter::FilterOptions& o);
filter::FilterOptions filter_options_from_json(const nlohmann::json& j);

/// The unit of correlating `ref` and `sec` into `output` with `options` (mask, guess and stable-ground
/// files among its inputs, so that replacing one of them changes the key).
WorkUnit correlate_unit(const std::string& id, const std::string& ref, const std::string& sec,
                        const std::string& output, const correlate::CorrelateOptions& options);
/// The unit of filtering `input` into `output` with `options`.
WorkUnit filter_unit(const std::string& id, const std::string& input, const std::string& output,
                     const filter::FilterOptions& options);

/// Runs the unit's operation ("correlate", "filter" or "invert-block": pipeline/invert_units.hpp) from its
/// JSON; the result is written atomically. InvalidArgument for another operation.
Summary execute_unit(const UnitList& list, const WorkUnit& unit, RunContext& context);

enum class UnitOutcome { kReused, kComputed, kSkipped };

/// What `deforma unit run LIST INDEX` does: reuses the unit when complete; otherwise runs it and records
/// it. A failure is also written to unit_error_path. With the list's skip_bad, a data error (input/output,
/// format, numerical) is recorded as skipped and is not an error; the unit's output left from an earlier
/// run is then removed. For tests, DEFORMA_TEST_FAIL_UNIT=ID makes
/// unit ID fail every time, and ID:once makes it fail on its first attempt only (a marker file in `units/`
/// remembers the attempt).
UnitOutcome run_unit(const UnitList& list, std::size_t index, RunContext& context);

}  // namespace deforma::pipeline
