#pragma once
// The inversion of a pipeline as work units: the node grid is split into blocks of rows, and each block is
// one unit (operation "invert-block") that reads its rows of every filtered pair, inverts them
// (timeseries::invert_pair_block) and writes its results to a block file in the run folder. The products
// (cubes, velocity, NetCDF, quicklooks) are then assembled from the block files on the submitting machine
// (timeseries::assemble_inversion_products): cheap, a pass of writing. The products are those of one
// process inverting everything, value for value, since every node is solved on its own.
//
// A block unit lists every pair of the network (its filtered result among the unit's inputs, so that a
// pair redone changes the key) and inverts those whose filter unit is recorded complete when it runs: on
// Slurm the block array waits for the filter array (afterok) without knowing which pairs filtering will
// leave out. The block file names the pairs used; the assembly refuses a block whose pairs differ from the
// run's.
//
// The number of node rows is known only once the pairs are correlated, so a unit holds a row range
// planned from the image size and the step (`rows` < 0: to the last row); a block whose range starts past
// the last row writes an empty block file. Each block file records the rows it actually holds.
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/pipeline/unit.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "deforma/timeseries/products.hpp"

namespace deforma::pipeline {

inline constexpr const char* kInvertBlockOperation = "invert-block";

/// Every field of the inversion options as typed JSON (the loss by name), and back.
nlohmann::json inversion_options_json(const timeseries::InversionOptions& o);
timeseries::InversionOptions inversion_options_from_json(const nlohmann::json& j);

/// The row ranges of the units: `block_rows` rows each over `planned_rows` rows, the last one open-ended
/// (rows = -1) so that a grid taller than planned is still covered.
std::vector<timeseries::RowBlock> plan_row_blocks(int planned_rows, int block_rows);

/// The unit inverting rows `block` (rows < 0: to the last row) of the pairs `candidates`, whose
/// result_path is each pair's filtered result, written by a unit recorded in the result's folder; the
/// block file is `output`. `options` gives the units, weight band and inversion options.
WorkUnit invert_block_unit(const std::string& id, const std::vector<timeseries::Pair>& candidates,
                           const timeseries::InvertRastersOptions& options, const timeseries::RowBlock& block,
                           const std::string& output);

/// Runs an invert-block unit (execute_unit's "invert-block"): writes its block file atomically.
Summary execute_invert_block(const UnitList& list, const WorkUnit& unit, RunContext& context);

/// What a block file holds besides the results.
struct InvertBlockHeader {
  timeseries::RowBlock block;  ///< rows held (rows = 0: none, the range began past the grid)
  int width = 0;
  int dates = 0;
  std::vector<std::string> pair_ids;  ///< the pairs inverted, in order
  timeseries::InversionStats stats;
};

/// Reads a block file's header; IoError when unreadable, FormatError when not a block file.
InvertBlockHeader read_invert_block_header(const std::string& path);
/// Reads a block file's results; the same errors.
timeseries::InversionResult read_invert_block(const std::string& path, InvertBlockHeader* header = nullptr);

/// The products of the pipeline's inversion from its block units (in `list`, all complete): checks that
/// every block inverted exactly `pairs` and that the blocks cover the grid, then writes the products.
/// FormatError naming the block file otherwise.
Summary assemble_invert_blocks(const UnitList& list, const std::vector<timeseries::Pair>& pairs,
                               const timeseries::InvertRastersOptions& options, RunContext& context);

}  // namespace deforma::pipeline
