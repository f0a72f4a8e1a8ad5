#include "deforma/egms/units.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/provenance.hpp"
#include "deforma/io/staged_file.hpp"
#include "egms/stream.hpp"

namespace deforma::egms {
namespace fs = std::filesystem;

void UnitExecution::validate() const {
  if (unit_points < 1) throw InvalidArgument("unit-points: must be >= 1 to split the product into units");
  if (executor != "local" && executor != "slurm") {
    throw InvalidArgument(fmt::format("executor: '{}' is not one of local, slurm", executor));
  }
  if (executor == "slurm") slurm.validate();
}

nlohmann::json PointRange::to_json() const {
  return {{"first_byte", first_byte},
          {"end_byte", end_byte},
          {"scalar_decimals", scalar_decimals},
          {"series_decimals", series_decimals}};
}

PointRange PointRange::from_json(const nlohmann::json& j) {
  try {
    PointRange r;
    r.first_byte = j.at("first_byte").get<std::uint64_t>();
    r.end_byte = j.at("end_byte").get<std::uint64_t>();
    r.scalar_decimals = j.at("scalar_decimals").get<std::vector<int>>();
    r.series_decimals = j.at("series_decimals").get<int>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("work unit: point range: {}", e.what()));
  }
}

std::string rows_path_of(const std::string& record_path) {
  return fs::path(record_path).replace_extension(".rows.csv").string();
}

namespace {

std::string absolute(const std::string& path) {
  std::error_code ec;
  const auto p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// Writes a part's rows through a temporary file renamed when complete, like every output.
class RowsFile {
 public:
  explicit RowsFile(const std::string& path) : staged_(path) {
    file_ = std::fopen(staged_.temp_path().c_str(), "wb");
    if (!file_) throw IoError(fmt::format("{}: cannot create", path));
  }
  RowsFile(const RowsFile&) = delete;
  RowsFile& operator=(const RowsFile&) = delete;
  ~RowsFile() {
    if (file_) std::fclose(file_);
  }
  void write(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), file_) != text.size()) {
      throw IoError(fmt::format("{}: write failed (disk full?)", staged_.final_path()));
    }
  }
  void commit() {
    const bool failed = std::fclose(file_) != 0;
    file_ = nullptr;
    if (failed) throw IoError(fmt::format("{}: cannot finish writing (disk full?)", staged_.final_path()));
    staged_.commit();
  }

 private:
  io::StagedFile staged_;
  std::FILE* file_ = nullptr;
};

// A part of a product as a work unit reads it: limited to its byte range, with the whole product's
// decimals so that its rows are written as a single run would write them.
ProductReader open_part(const std::string& input, const PointRange& range) {
  auto reader = ProductReader::open(input);
  reader.use_decimals(range.scalar_decimals, range.series_decimals);
  reader.restrict_to(range.first_byte, range.end_byte);
  return reader;
}

// Streams a part: `process` computes the model columns of each chunk, whose rows then go to the rows file
// (committed when complete).
template <class Process>
void write_part_rows(ProductReader& reader, const StreamOptions& options, const RunContext& context,
                     const std::string& rows_path, Process&& process) {
  const ProductLayout& layout = reader.layout();
  Progress& progress = progress_or_null(context.progress);
  const std::size_t chunk_points = detail::chunk_points_for(options, layout, context);
  RowsFile rows(rows_path);
  PointChunk chunk;
  std::string text;
  while (reader.read(chunk, chunk_points)) {
    detail::check_cancelled(progress);
    process(chunk);
    text.clear();
    format_product_rows(layout, chunk, text);
    rows.write(text);
  }
  rows.commit();
}

// The part's record beside its rows: what the part found, its range and the rows' size.
void write_part_record(nlohmann::json record, const PointRange& range, const std::string& rows_path,
                       const std::string& record_path) {
  record["rows_bytes"] = fs::file_size(rows_path);
  record["first_byte"] = range.first_byte;
  record["end_byte"] = range.end_byte;
  io::write_text_atomically(record_path, record.dump() + "\n");
}

}  // namespace

Summary run_fit_part(const std::string& input, const PointRange& range, const StreamOptions& options,
                     const std::string& rows_path, const std::string& record_path,
                     const RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  auto reader = open_part(input, range);
  const ProductLayout& layout = reader.layout();
  const TimeSeriesModel model(layout.dates, options.model);
  detail::FitComparison comparison(layout);
  std::vector<PointModel> results;
  write_part_rows(reader, options, context, rows_path, [&](PointChunk& chunk) {
    detail::fit_chunk(model, chunk, results);
    comparison.add(chunk, results);  // against the input's columns, before they are replaced
    detail::store_model(layout, chunk, results);
  });
  write_part_record(comparison.to_json(), range, rows_path, record_path);
  Summary summary;
  summary.operation = kFitUnitOperation;
  summary.counts["points"] = comparison.points();
  summary.outputs = {rows_path, record_path};
  summary.seconds = seconds_since(start);
  return summary;
}

namespace {

void check_unit_outputs(const std::string& input, const ProductOutputs& outputs) {
  if (outputs.product.empty()) {
    throw InvalidArgument("output: give --output (-o) FILE.zip|FILE.csv to split the product into units");
  }
  if (!outputs.gpkg.empty()) {
    throw InvalidArgument(
        "gpkg: a GeoPackage is not assembled from units; run without --unit-points and "
        "--executor slurm, or convert the product afterwards");
  }
  detail::check_outputs(input, outputs);
}

// The units of a run, once they are all complete: the list (absolute paths) and what the summary says of
// them.
struct PartsRun {
  pipeline::UnitList list;
  nlohmann::json details;
};

// Cuts the product of `reader` into parts of about execution.unit_points points, each a unit of
// `operation` with `parameters` plus its range and the decimals `reader` has learnt (the whole product's),
// and runs them. `reader` is left after its first chunk.
PartsRun run_parts(ProductReader& reader, const std::string& input, const std::string& output,
                   const std::string& operation, const nlohmann::json& parameters,
                   const StreamOptions& options, const UnitExecution& execution, const RunContext& context) {
  Progress& progress = progress_or_null(context.progress);
  const std::uint64_t header_bytes = reader.header_bytes();
  const std::uint64_t total_bytes = reader.total_bytes();
  reader.rewind();
  PointChunk first;
  reader.read(first, detail::chunk_points_for(options, reader.layout(), context));
  const ProductLayout& layout = reader.layout();
  // Parts of about unit_points points: their byte length from the mean line length of the first chunk.
  const double line_bytes = first.size() > 0 ? static_cast<double>(reader.bytes_read() - header_bytes) /
                                                   static_cast<double>(first.size())
                                             : 1.0;
  const auto unit_bytes = static_cast<std::uint64_t>(
      std::max(1.0, std::ceil(line_bytes * static_cast<double>(execution.unit_points))));

  const std::string work_dir = absolute(output + ".units");
  std::error_code ec;
  fs::create_directories(fs::path(work_dir) / "parts", ec);
  if (ec) throw IoError(fmt::format("{}: cannot create the units folder: {}", work_dir, ec.message()));

  PartsRun run;
  pipeline::UnitList& list = run.list;
  list.stage = "egms-" + operation.substr(operation.rfind(' ') + 1);
  list.dir = work_dir;
  list.ram_mb = context.ram_budget_mb;
  list.command_line = context.command_line;
  const std::string input_path = absolute(input);
  for (std::uint64_t first_byte = header_bytes, index = 0; first_byte < total_bytes || index == 0;
       first_byte += unit_bytes, ++index) {
    PointRange range;
    range.first_byte = first_byte;
    range.end_byte = std::min(total_bytes, first_byte + unit_bytes);
    range.scalar_decimals = layout.scalar_decimals;
    range.series_decimals = layout.series_decimals;
    pipeline::WorkUnit unit;
    unit.id = fmt::format("part_{:06d}", index);
    unit.operation = operation;
    unit.parameters = parameters;
    unit.parameters["range"] = range.to_json();
    unit.inputs = {input_path};
    unit.output = (fs::path(work_dir) / "parts" / (unit.id + ".json")).string();
    list.units.push_back(std::move(unit));
  }
  // The last part is open-ended: lines past the size the stream announced still belong to one.
  list.units.back().parameters["range"]["end_byte"] = std::numeric_limits<std::uint64_t>::max();

  run.details = {{"units", list.units.size()},
                 {"unit_points", execution.unit_points},
                 {"folder", work_dir},
                 {"executor", execution.executor}};
  if (execution.executor == "slurm") {
    std::vector<pipeline::UnitList> stages = {list};
    const auto outcomes = pipeline::run_on_slurm(stages, execution.slurm, progress);
    list = stages.front();
    run.details["reused"] = outcomes.front().reused;
    run.details["computed"] = outcomes.front().computed;
    run.details["retried"] = outcomes.front().retried;
    run.details["slurm_jobs"] = outcomes.front().job_ids;
  } else {
    list.write((fs::path(work_dir) / "units.json").string());
    int reused = 0, computed = 0;
    progress.start(fmt::format("{} (units)", operation), list.units.size());
    for (std::size_t i = 0; i < list.units.size(); ++i) {
      if (progress.cancelled() || cancellation_requested()) throw Cancelled("cancelled");
      // The unit's own progress is that of this run: it hears a cancel; the bar counts units.
      RunContext unit_context = context;
      const auto outcome = pipeline::run_unit(list, i, unit_context);
      (outcome == pipeline::UnitOutcome::kReused ? reused : computed) += 1;
      progress.advance(1);
    }
    progress.finish();
    run.details["reused"] = reused;
    run.details["computed"] = computed;
  }
  return run;
}

// Appends the rows of every part, in order, each checked against its record, and hands each record to
// `merge`.
template <typename Merge>
void assemble_parts(const pipeline::UnitList& list, ProductWriter& writer, Merge&& merge) {
  for (const auto& unit : list.units) {
    const auto record = io::read_json_file(unit.output);
    const std::string rows = rows_path_of(unit.output);
    if (!record.is_object()) {
      throw IoError(fmt::format("{}: the record of unit {} is missing", unit.output, unit.id));
    }
    std::error_code size_ec;
    const auto rows_bytes = fs::file_size(rows, size_ec);
    if (size_ec || record.value("rows_bytes", std::uint64_t{0}) != rows_bytes) {
      throw IoError(
          fmt::format("{}: the rows of unit {} are missing or not those its record describes "
                      "(rerun to recompute it)",
                      rows, unit.id));
    }
    try {
      merge(record);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(fmt::format("{}: not a record of egms units: {}", unit.output, e.what()));
    } catch (const FormatError& e) {
      throw FormatError(fmt::format("{}: {}", unit.output, e.what()));
    }
    writer.append_rows(rows);
  }
}

std::string units_line(const PartsRun& run, const UnitExecution& execution) {
  return fmt::format("  {} units of about {} points ({}), in {}\n", run.list.units.size(),
                     execution.unit_points, execution.executor, run.details.value("folder", ""));
}

nlohmann::json series_json(const std::vector<float>& series) {
  nlohmann::json j = nlohmann::json::array();
  for (const float v : series) {
    if (std::isnan(v)) {
      j.push_back(nullptr);
    } else {
      j.push_back(static_cast<double>(v));  // a float is exactly a double: read back to the same float
    }
  }
  return j;
}

}  // namespace

std::vector<float> reference_series_from_json(const nlohmann::json& j) {
  if (!j.is_array()) throw FormatError("work unit: reference_series: expected an array of numbers or null");
  std::vector<float> series;
  series.reserve(j.size());
  for (const auto& v : j) {
    if (v.is_null()) {
      series.push_back(std::numeric_limits<float>::quiet_NaN());
    } else if (v.is_number()) {
      series.push_back(static_cast<float>(v.get<double>()));
    } else {
      throw FormatError("work unit: reference_series: expected an array of numbers or null");
    }
  }
  return series;
}

Summary run_fit_units(const std::string& input, const ProductOutputs& outputs, const StreamOptions& options,
                      const UnitExecution& execution, const RunContext& context,
                      const io::Provenance& provenance) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  execution.validate();
  check_unit_outputs(input, outputs);
  // The whole product's decimals are learnt from its first chunk, as a single run learns them.
  auto reader = ProductReader::open(input);
  const PartsRun run = run_parts(reader, input, outputs.product, kFitUnitOperation,
                                 {{"stream", execution.stream_parameters}}, options, execution, context);
  const ProductLayout& layout = reader.layout();
  detail::FitComparison comparison(layout);
  ProductWriter writer(outputs.product, layout, reader.metadata(), detail::with_input(provenance, input),
                       detail::fit_record(options));
  assemble_parts(run.list, writer, [&](const nlohmann::json& record) { comparison.merge_json(record); });
  Summary summary;
  summary.operation = "egms fit";
  comparison.fill(summary, input, layout, options);
  summary.outputs = writer.close();
  summary.details["units"] = run.details;
  summary.report += units_line(run, execution);
  summary.seconds = seconds_since(start);
  return summary;
}

Summary run_reference_part(const std::string& input, const PointRange& range,
                           const std::vector<float>& reference_series, const StreamOptions& options,
                           const std::string& rows_path, const std::string& record_path,
                           const RunContext& context) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  auto reader = open_part(input, range);
  const ProductLayout& layout = reader.layout();
  if (reference_series.size() != layout.date_count()) {
    throw FormatError(fmt::format("work unit: the reference series has {} dates, {} has {}",
                                  reference_series.size(), input, layout.date_count()));
  }
  const TimeSeriesModel model(layout.dates, options.model);
  std::vector<PointModel> results;
  std::int64_t points = 0, failed = 0;
  write_part_rows(reader, options, context, rows_path, [&](PointChunk& chunk) {
    detail::subtract_reference(chunk, reference_series);
    detail::fit_chunk(model, chunk, results);
    for (const auto& r : results) failed += std::isnan(r.mean_velocity) ? 1 : 0;
    points += static_cast<std::int64_t>(chunk.size());
    detail::store_model(layout, chunk, results);
  });
  write_part_record({{"points", points}, {"failed", failed}}, range, rows_path, record_path);
  Summary summary;
  summary.operation = kReferenceUnitOperation;
  summary.counts["points"] = points;
  summary.outputs = {rows_path, record_path};
  summary.seconds = seconds_since(start);
  return summary;
}

Summary run_reference_units(const std::string& input, const ReferenceOptions& reference,
                            const ProductOutputs& outputs, const StreamOptions& options,
                            const UnitExecution& execution, const RunContext& context,
                            const io::Provenance& provenance) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  reference.validate();
  execution.validate();
  check_unit_outputs(input, outputs);
  // The global step, here, once: the reference series, from passes over the whole product (which learn
  // its decimals as a single run does).
  auto reader = ProductReader::open(input);
  const detail::ReferencePlan plan = detail::plan_reference(reader, input, reference, options, context);
  const PartsRun run =
      run_parts(reader, input, outputs.product, kReferenceUnitOperation,
                {{"stream", execution.stream_parameters}, {"reference_series", series_json(plan.series)}},
                options, execution, context);
  std::int64_t points = 0, failed = 0;
  ProductWriter writer(outputs.product, reader.layout(), detail::ReferencePlan::metadata(reader.metadata()),
                       detail::with_input(provenance, input), plan.record());
  assemble_parts(run.list, writer, [&](const nlohmann::json& record) {
    points += record.at("points").get<std::int64_t>();
    failed += record.at("failed").get<std::int64_t>();
  });
  Summary summary;
  plan.fill(summary, input, points, failed);
  summary.outputs = writer.close();
  summary.details["units"] = run.details;
  summary.report += units_line(run, execution);
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace deforma::egms
