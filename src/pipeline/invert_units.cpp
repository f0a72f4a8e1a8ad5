#include "deforma/pipeline/invert_units.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/io/staged_file.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

namespace {

// A block file: this line, one line of JSON (the header), then the results as raw float32 arrays in the
// order of kSeries and kMaps, and the flags as bytes. Native byte order: the nodes of a cluster share it.
constexpr const char* kBlockMagic = "deforma-invert-block/1";

const char* loss_name(timeseries::RobustLoss loss) {
  switch (loss) {
    case timeseries::RobustLoss::kNone:
      return "none";
    case timeseries::RobustLoss::kTukey:
      return "tukey";
    case timeseries::RobustLoss::kHuber:
      return "huber";
  }
  return "tukey";
}

std::vector<std::vector<float>*> series_of(timeseries::InversionResult& r) {
  return {&r.east, &r.north, &r.east_sigma, &r.north_sigma};
}
std::vector<std::vector<float>*> maps_of(timeseries::InversionResult& r) {
  return {&r.velocity_east,
          &r.velocity_north,
          &r.velocity_magnitude,
          &r.velocity_east_std,
          &r.velocity_north_std,
          &r.velocity_magnitude_std,
          &r.rmse,
          &r.valid_pairs,
          &r.consistency};
}

std::string absolute_normal(const std::string& path) {
  std::error_code ec;
  const auto p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// True when the unit that wrote `result_path` (pair `id` of a stage whose folder holds the result) is
// recorded complete and its result is the one recorded: the pairs filtering left out have no such record.
bool pair_recorded(const std::string& id, const std::string& result_path) {
  const std::string dir = fs::path(result_path).parent_path().string();
  const auto record = io::read_json_file(unit_record_path(dir, id));
  if (!record.is_object()) return false;
  const FileFingerprint f = file_fingerprint(result_path);
  // The same file, or the same name in this folder when the run folder was moved or linked as a whole (the
  // rule of unit_complete: a reused filter unit keeps the record written where it ran).
  const std::string recorded = record.value("output", "");
  const bool same_output = absolute_normal(recorded) == absolute_normal(result_path) ||
                           fs::path(recorded).filename() == fs::path(result_path).filename();
  return f.size >= 0 && same_output && record.value("output_size", -2LL) == f.size &&
         record.value("output_mtime_ns", -2LL) == f.mtime_ns;
}

timeseries::InvertRastersOptions raster_options_from(const nlohmann::json& p) {
  // Not written by a block, but validate() wants an output folder.
  timeseries::InvertRastersOptions o;
  o.output_dir = fs::current_path().string();
  o.units = p.at("units").get<std::string>();
  o.weight_band = p.at("weight_band").get<std::string>();
  o.inversion = inversion_options_from_json(p.at("inversion"));
  o.netcdf = false;
  o.quicklooks = false;
  return o;
}

void write_block_file(const std::string& path, const InvertBlockHeader& header,
                      timeseries::InversionResult& result) {
  nlohmann::json ids = header.pair_ids;
  const nlohmann::json j = {{"row0", header.block.row0},
                            {"rows", header.block.rows},
                            {"width", header.width},
                            {"dates", header.dates},
                            {"pairs", ids},
                            {"stats",
                             {{"nodes", header.stats.nodes},
                              {"nodata", header.stats.nodes_nodata},
                              {"reweighted", header.stats.nodes_reweighted},
                              {"bridged", header.stats.nodes_bridged},
                              {"patterns", header.stats.patterns}}}};
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  io::write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << kBlockMagic << '\n' << j.dump() << '\n';
    if (header.block.rows > 0) {
      for (auto* v : series_of(result))
        f.write(reinterpret_cast<const char*>(v->data()), static_cast<std::streamsize>(v->size() * 4));
      for (auto* v : maps_of(result))
        f.write(reinterpret_cast<const char*>(v->data()), static_cast<std::streamsize>(v->size() * 4));
      f.write(reinterpret_cast<const char*>(result.flags.data()),
              static_cast<std::streamsize>(result.flags.size()));
    }
    if (!f) throw IoError(fmt::format("{}: cannot write the inversion block", path));
  });
}

InvertBlockHeader parse_header(std::ifstream& in, const std::string& path) {
  std::string magic, line;
  std::getline(in, magic);
  if (magic != kBlockMagic || !std::getline(in, line)) {
    throw FormatError(fmt::format("{}: not an inversion block file (expected '{}')", path, kBlockMagic));
  }
  const auto j = nlohmann::json::parse(line, nullptr, false);
  try {
    if (j.is_discarded()) throw FormatError("");
    InvertBlockHeader h;
    h.block = {j.at("row0").get<int>(), j.at("rows").get<int>()};
    h.width = j.at("width").get<int>();
    h.dates = j.at("dates").get<int>();
    h.pair_ids = j.at("pairs").get<std::vector<std::string>>();
    const auto& s = j.at("stats");
    h.stats.nodes = s.at("nodes").get<std::int64_t>();
    h.stats.nodes_nodata = s.at("nodata").get<std::int64_t>();
    h.stats.nodes_reweighted = s.at("reweighted").get<std::int64_t>();
    h.stats.nodes_bridged = s.at("bridged").get<std::int64_t>();
    h.stats.patterns = s.at("patterns").get<std::int64_t>();
    if (h.block.rows < 0 || h.width < 0 || h.dates < 0) throw FormatError("");
    return h;
  } catch (const std::exception&) {
    throw FormatError(fmt::format("{}: the header of the inversion block is damaged", path));
  }
}

}  // namespace

nlohmann::json inversion_options_json(const timeseries::InversionOptions& o) {
  return {{"regularization", o.regularization},
          {"robust", loss_name(o.robust)},
          {"outlier_threshold", o.outlier_threshold},
          {"max_irls_iterations", o.max_irls_iterations},
          {"min_sigma", o.min_sigma},
          {"min_valid_pairs", o.min_valid_pairs}};
}

timeseries::InversionOptions inversion_options_from_json(const nlohmann::json& j) {
  try {
    timeseries::InversionOptions o;
    o.regularization = j.at("regularization").get<double>();
    o.robust = timeseries::parse_robust_loss(j.at("robust").get<std::string>());
    o.outlier_threshold = j.at("outlier_threshold").get<double>();
    o.max_irls_iterations = j.at("max_irls_iterations").get<int>();
    o.min_sigma = j.at("min_sigma").get<double>();
    o.min_valid_pairs = j.at("min_valid_pairs").get<int>();
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("work unit: inversion parameters: {}", e.what()));
  } catch (const InvalidArgument& e) {
    throw FormatError(fmt::format("work unit: inversion parameters: {}", e.what()));
  }
}

std::vector<timeseries::RowBlock> plan_row_blocks(int planned_rows, int block_rows) {
  if (block_rows < 1)
    throw InvalidArgument(fmt::format("inversion block rows {}: expected >= 1", block_rows));
  std::vector<timeseries::RowBlock> blocks;
  for (int row0 = 0; row0 < std::max(planned_rows, 1); row0 += block_rows)
    blocks.push_back({row0, block_rows});
  blocks.back().rows = -1;
  return blocks;
}

WorkUnit invert_block_unit(const std::string& id, const std::vector<timeseries::Pair>& candidates,
                           const timeseries::InvertRastersOptions& options, const timeseries::RowBlock& block,
                           const std::string& output) {
  WorkUnit u;
  u.id = id;
  u.operation = kInvertBlockOperation;
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& p : candidates) {
    nlohmann::json pair = {
        {"id", p.id}, {"ref_date", p.ref_date.iso()}, {"sec_date", p.sec_date.iso()}, {"weight", p.weight}};
    // Times to the second only where the images carry them (SAR): the block's time axis is then instants,
    // and the units of date-only series keep the parameters (and so the keys) they always had.
    if (p.ref_time_s && p.sec_time_s) {
      pair["ref_time_s"] = *p.ref_time_s;
      pair["sec_time_s"] = *p.sec_time_s;
    }
    pairs.push_back(std::move(pair));
    u.inputs.push_back(p.result_path);
  }
  u.parameters = {{"units", options.units},
                  {"weight_band", options.weight_band},
                  {"inversion", inversion_options_json(options.inversion)},
                  {"row0", block.row0},
                  {"rows", block.rows},
                  {"pairs", pairs}};
  u.output = output;
  return u;
}

Summary execute_invert_block(const UnitList& list, const WorkUnit& unit, RunContext& context) {
  const auto& p = unit.parameters;
  timeseries::InvertRastersOptions options;
  timeseries::RowBlock planned;
  std::vector<timeseries::Pair> used;
  try {
    options = raster_options_from(p);
    planned = {p.at("row0").get<int>(), p.at("rows").get<int>()};
    const auto& pairs = p.at("pairs");
    if (pairs.size() != unit.inputs.size()) {
      throw FormatError(
          fmt::format("unit {}: {} pairs but {} inputs", unit.id, pairs.size(), unit.inputs.size()));
    }
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      timeseries::Pair pair;
      pair.id = pairs[k].at("id").get<std::string>();
      pair.ref_date = io::Date::parse(pairs[k].at("ref_date").get<std::string>());
      pair.sec_date = io::Date::parse(pairs[k].at("sec_date").get<std::string>());
      pair.weight = pairs[k].at("weight").get<double>();
      if (pairs[k].contains("ref_time_s") && pairs[k].contains("sec_time_s")) {
        pair.ref_time_s = pairs[k].at("ref_time_s").get<double>();
        pair.sec_time_s = pairs[k].at("sec_time_s").get<double>();
      }
      pair.result_path = unit.inputs[k];
      if (pair_recorded(pair.id, pair.result_path)) used.push_back(pair);
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("unit {}: invert-block parameters: {}", unit.id, e.what()));
  }
  InvertBlockHeader header;
  for (const auto& pair : used) header.pair_ids.push_back(pair.id);
  timeseries::InversionResult result;
  Summary summary;
  summary.operation = kInvertBlockOperation;
  // Fewer than two pairs: nothing to invert (the pipeline then stops, or writes a single pair's velocity);
  // an empty block keeps the array's other tasks and the assembly's check simple.
  if (used.size() >= 2) {
    const auto blocks = timeseries::inversion_row_blocks(used, options, list.ram_mb);
    const int height = blocks.back().row0 + blocks.back().rows;
    const int row_end = planned.rows < 0 ? height : std::min(height, planned.row0 + planned.rows);
    header.block = {std::min(planned.row0, height), std::max(0, row_end - planned.row0)};
    if (header.block.rows > 0) {
      RunContext block_context = context;
      if (block_context.command_line.empty()) block_context.command_line = list.command_line;
      result = timeseries::invert_pair_block(used, options, header.block, block_context, &header.stats);
      header.width = result.node_count / header.block.rows;
      header.dates = result.date_count;
    }
  }
  write_block_file(unit.output, header, result);
  summary.counts = {{"pairs", static_cast<std::int64_t>(used.size())},
                    {"rows", header.block.rows},
                    {"nodes", header.stats.nodes}};
  summary.outputs = {unit.output};
  summary.report = fmt::format("inversion rows {}+{}: {} pairs, {} nodes", header.block.row0,
                               header.block.rows, used.size(), header.stats.nodes);
  return summary;
}

InvertBlockHeader read_invert_block_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read the inversion block", path));
  return parse_header(in, path);
}

timeseries::InversionResult read_invert_block(const std::string& path, InvertBlockHeader* header_out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read the inversion block", path));
  const InvertBlockHeader header = parse_header(in, path);
  timeseries::InversionResult result;
  if (header.block.rows > 0) {
    result.resize(header.width * header.block.rows, header.dates);
    for (auto* v : series_of(result))
      in.read(reinterpret_cast<char*>(v->data()), static_cast<std::streamsize>(v->size() * 4));
    for (auto* v : maps_of(result))
      in.read(reinterpret_cast<char*>(v->data()), static_cast<std::streamsize>(v->size() * 4));
    in.read(reinterpret_cast<char*>(result.flags.data()), static_cast<std::streamsize>(result.flags.size()));
    if (!in || in.peek() != std::char_traits<char>::eof()) {
      throw FormatError(fmt::format("{}: the inversion block is truncated or has trailing data", path));
    }
  }
  if (header_out) *header_out = header;
  return result;
}

Summary assemble_invert_blocks(const UnitList& list, const std::vector<timeseries::Pair>& pairs,
                               const timeseries::InvertRastersOptions& options, RunContext& context) {
  std::vector<std::string> ids;
  for (const auto& p : pairs) ids.push_back(p.id);
  std::vector<timeseries::RowBlock> blocks;
  std::vector<std::string> files;
  for (const auto& unit : list.units) {
    const auto header = read_invert_block_header(unit.output);
    if (header.pair_ids != ids) {
      throw FormatError(fmt::format(
          "{}: the block inverted {} pairs, the run has {} after filtering; rerun the pipeline to redo it",
          unit.output, header.pair_ids.size(), ids.size()));
    }
    if (header.block.rows == 0) continue;
    blocks.push_back(header.block);
    files.push_back(unit.output);
  }
  std::size_t next = 0;
  return timeseries::assemble_inversion_products(
      pairs, options, blocks,
      [&](const timeseries::RowBlock& block, timeseries::InversionStats& stats) {
        InvertBlockHeader header;
        auto result = read_invert_block(files.at(next++), &header);
        if (!(header.block == block)) {
          throw FormatError(fmt::format("{}: holds rows {}+{}, expected {}+{}", files.at(next - 1),
                                        header.block.row0, header.block.rows, block.row0, block.rows));
        }
        stats = header.stats;
        return result;
      },
      context);
}

}  // namespace deforma::pipeline
