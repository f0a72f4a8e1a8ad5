#pragma once
// EGMS products split into work units (docs/cluster.md): the points of a product, a country of them, are cut
// into parts of about `unit_points` points (byte ranges of the CSV: each part holds the lines that start in
// its range), each part a pipeline::WorkUnit run by the local or the Slurm executor (pipeline/slurm.hpp),
// which writes its rows and a small record; the submitting process then concatenates the parts in order
// into the product. The result is the one a single process writes, row for row (tests compare them).
//
// What needs the whole product is done once, here, before the units are written: the decimals each column
// is written with (learnt from the first chunk, as a single run does), and for egms reference the
// reference series, go to every unit as typed parameters.
// The units of a run live in `<output>.units/` (the unit list, the parts, the records, the task logs), on
// a filesystem the nodes share; a rerun with the same parameters and input reuses the parts complete, and
// an unchanged rerun submits nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/egms/processing.hpp"
#include "deforma/pipeline/slurm.hpp"
#include "deforma/pipeline/unit.hpp"

namespace deforma::egms {

/// The unit operation of a part of `egms fit` (the operation's own id).
inline constexpr const char* kFitUnitOperation = "egms fit";

/// How a product is split and where its units run.
struct UnitExecution {
  std::size_t unit_points = 0;     ///< points per unit, about (the parts are byte ranges); >= 1
  std::string executor = "local";  ///< "local" (this process, one unit after the other) or "slurm"
  pipeline::SlurmOptions slurm;    ///< executor slurm
  /// The operation's streaming and model parameters as typed JSON (the declarations' names): a unit's
  /// parameters, from which the task rebuilds its StreamOptions.
  nlohmann::json stream_parameters = nlohmann::json::object();
  /// Throws InvalidArgument naming the parameter.
  void validate() const;
};

/// One part of a product: the lines starting at a byte in [first_byte, end_byte) of its CSV, and the
/// decimals of the whole product's columns.
struct PointRange {
  std::uint64_t first_byte = 0;
  std::uint64_t end_byte = 0;
  std::vector<int> scalar_decimals;
  int series_decimals = -1;

  nlohmann::json to_json() const;
  /// Throws FormatError naming what is missing.
  static PointRange from_json(const nlohmann::json& j);
};

/// egms fit over units: the same product (-o, .csv or .zip) and report as run_fit. GeoPackage output is
/// not assembled from parts: InvalidArgument when outputs.gpkg is set, or when outputs.product is empty.
/// Throws what the units threw (the unit named), Cancelled after a cancel.
Summary run_fit_units(const std::string& input, const ProductOutputs& outputs, const StreamOptions& options,
                      const UnitExecution& execution, const RunContext& context,
                      const io::Provenance& provenance);

/// What a unit of egms fit runs (in a Slurm task, or the local executor): fits the points of `range` of
/// `input` and writes their rows to `rows_path`, then the unit's record (counts and histograms) to
/// `record_path`, each atomically.
Summary run_fit_part(const std::string& input, const PointRange& range, const StreamOptions& options,
                     const std::string& rows_path, const std::string& record_path, const RunContext& context);

/// The unit operation of a part of `egms reference`.
inline constexpr const char* kReferenceUnitOperation = "egms reference";

/// egms reference over units: the reference series is computed here, once, from the whole product (the
/// global step: one or two passes), and passed to every unit as a typed parameter (`reference_series`,
/// null for a date without value); each unit subtracts it from its points and refits them. The same
/// product and report as run_reference; the same refusals as run_fit_units.
Summary run_reference_units(const std::string& input, const ReferenceOptions& reference,
                            const ProductOutputs& outputs, const StreamOptions& options,
                            const UnitExecution& execution, const RunContext& context,
                            const io::Provenance& provenance);

/// What a unit of egms reference runs: subtracts `reference_series` from the points of `range`, refits
/// them and writes their rows and the unit's record (points, points without a fit).
Summary run_reference_part(const std::string& input, const PointRange& range,
                           const std::vector<float>& reference_series, const StreamOptions& options,
                           const std::string& rows_path, const std::string& record_path,
                           const RunContext& context);

/// A reference series written in a unit's parameters (numbers, null for NaN). Throws FormatError.
std::vector<float> reference_series_from_json(const nlohmann::json& j);

/// The rows file of a unit whose record (its output) is `record_path`.
std::string rows_path_of(const std::string& record_path);

}  // namespace deforma::egms
