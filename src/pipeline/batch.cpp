#include "deforma/pipeline/batch.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/pipeline/unit.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

void BatchOptions::validate() const {
  if (output_dir.empty()) throw InvalidArgument("batch: the output folder (-o) is empty");
  if (stage.empty()) throw InvalidArgument("batch: empty stage name");
  if (per_pair_ram_mb == 0) throw InvalidArgument("--ram: the per-pair budget must be > 0 MB");
  if (ram_budget_mb < per_pair_ram_mb) {
    throw InvalidArgument(
        fmt::format("--ram: {} MB is less than the {} MB one pair needs", ram_budget_mb, per_pair_ram_mb));
  }
  if (threads < 0) throw InvalidArgument("--threads: must be >= 0");
}

std::string parameters_hash(const nlohmann::json& parameters) {
  return sha256_hex(parameters.dump());  // nlohmann::json objects are key-sorted: canonical
}

std::string pair_result_path(const std::string& output_dir, const timeseries::Pair& pair) {
  return (fs::path(output_dir) / (pair.id + ".tif")).string();
}

namespace {

// Hands cancellation down to a pair's worker; the counts of its inner stages are not shown (the batch
// shows progress over pairs).
class ForwardingProgress final : public Progress {
 public:
  ForwardingProgress(Progress& parent, const std::atomic<bool>& stop) : parent_(parent), stop_(stop) {}
  void start(const std::string&, std::uint64_t) override {}
  void advance(std::uint64_t) override {}
  void finish() override {}
  bool cancelled() const override { return stop_.load() || parent_.cancelled(); }

 private:
  Progress& parent_;
  const std::atomic<bool>& stop_;
};

}  // namespace

BatchResult run_batch(const std::vector<timeseries::Pair>& pairs, const BatchOptions& options,
                      const PairWorker& worker, Progress* progress_in) {
  const auto started = std::chrono::steady_clock::now();
  options.validate();
  Progress& progress = progress_or_null(progress_in);
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (!fs::is_directory(options.output_dir, ec)) {
    throw IoError(fmt::format("-o {}: cannot create the output folder", options.output_dir));
  }
  auto inputs_of = options.inputs_of ? options.inputs_of : [](const timeseries::Pair& p) {
    return std::pair<std::string, std::string>{p.ref_path, p.sec_path};
  };
  const std::string hash = parameters_hash(options.parameters);
  std::vector<WorkUnit> units;
  units.reserve(pairs.size());
  for (const auto& pair : pairs) {
    if (options.unit_of) {
      units.push_back(options.unit_of(pair));
    } else {
      const auto [a, b] = inputs_of(pair);
      WorkUnit u;
      u.id = pair.id;
      u.operation = options.stage;
      u.parameters = options.parameters;
      u.inputs = {a};
      if (!b.empty()) u.inputs.push_back(b);
      u.output = pair_result_path(options.output_dir, pair);
      units.push_back(std::move(u));
    }
  }

  BatchResult result;
  std::vector<std::size_t> todo;
  std::vector<std::string> keys(pairs.size());
  std::vector<char> done(pairs.size(), 0);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    keys[i] = unit_key(units[i]);
    if (unit_complete(options.output_dir, units[i], keys[i])) {
      done[i] = 1;
      ++result.reused;
    } else {
      // A stale record must not survive a failed redo.
      forget_unit(options.output_dir, units[i]);
      todo.push_back(i);
    }
  }

  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  const auto by_ram =
      static_cast<int>(std::max<std::size_t>(1, options.ram_budget_mb / options.per_pair_ram_mb));
  const int in_flight =
      std::max(1, std::min({threads, by_ram, static_cast<int>(std::max<std::size_t>(todo.size(), 1))}));
  const std::size_t per_pair_mb = options.ram_budget_mb / static_cast<std::size_t>(in_flight);

  std::mutex mutex;  // guards the counts, the failure list and the first error
  std::atomic<bool> stop{false};
  std::exception_ptr first_error;
  std::string first_error_pair;
  ForwardingProgress forward(progress, stop);
  progress.start(fmt::format("{}: pairs", options.stage), todo.size());
  std::size_t next = 0;
  tbb::parallel_pipeline(
      static_cast<std::size_t>(in_flight),
      tbb::make_filter<void, std::size_t>(tbb::filter_mode::serial_in_order,
                                          [&](tbb::flow_control& fc) -> std::size_t {
                                            if (next >= todo.size() || stop.load() || progress.cancelled()) {
                                              fc.stop();
                                              return 0;
                                            }
                                            return todo[next++];
                                          }) &
          tbb::make_filter<std::size_t, void>(tbb::filter_mode::parallel, [&](std::size_t i) {
            const auto& pair = pairs[i];
            const WorkUnit& unit = units[i];
            PairTask task;
            task.pair = &pair;
            task.unit = &unit;
            task.input_a = unit.inputs.empty() ? std::string() : unit.inputs[0];
            task.input_b = unit.inputs.size() < 2 ? std::string() : unit.inputs[1];
            task.output = unit.output;
            task.ram_budget_mb = per_pair_mb;
            task.progress = &forward;
            const auto pair_started = std::chrono::steady_clock::now();
            try {
              worker(task);
              const double seconds =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - pair_started).count();
              // The key of the inputs as they were before the run: one replaced meanwhile is redone next time.
              record_unit(options.output_dir, unit, seconds, keys[i]);
              std::lock_guard lock(mutex);
              done[i] = 1;
              ++result.computed;
            } catch (const Cancelled&) {
              stop = true;
            } catch (const Error& e) {
              std::lock_guard lock(mutex);
              const bool data_problem = dynamic_cast<const IoError*>(&e) ||
                                        dynamic_cast<const FormatError*>(&e) ||
                                        dynamic_cast<const NumericalError*>(&e);
              if (options.skip_bad && data_problem) {
                result.failed.push_back(fmt::format("{}: {}", pair.id, e.what()));
                run_log()->warn("pair {} skipped: {}", pair.id, e.what());
              } else if (!first_error) {
                first_error = std::current_exception();
                first_error_pair = pair.id;
                stop = true;
              }
            } catch (...) {
              std::lock_guard lock(mutex);
              if (!first_error) {
                first_error = std::current_exception();
                first_error_pair = pair.id;
              }
              stop = true;
            }
            progress.advance();
          }));
  progress.finish();
  if (first_error) {
    try {
      std::rethrow_exception(first_error);
    } catch (const Error& e) {
      // Re-throw the same kind with the pair named (the exit code stays that of the cause).
      const std::string message = fmt::format("pair {}: {}", first_error_pair, e.what());
      switch (e.exit_code()) {
        case ExitCode::kInvalidArgument:
          throw InvalidArgument(message);
        case ExitCode::kIo:
          throw IoError(message);
        case ExitCode::kFormat:
          throw FormatError(message);
        case ExitCode::kNumerical:
          throw NumericalError(message);
        case ExitCode::kCancelled:
          throw Cancelled(message);
        default:
          throw Error(message, e.exit_code());
      }
    }
  }
  if (stop.load() || progress.cancelled()) {
    throw Cancelled(fmt::format("{}: cancelled after {} of {} pairs; rerun to complete the rest",
                                options.stage, result.reused + result.computed, pairs.size()));
  }
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (!done[i]) continue;
    timeseries::Pair p = pairs[i];
    p.result_path = units[i].output;
    result.pairs.push_back(p);
    result.summary.outputs.push_back(p.result_path);
  }
  auto& s = result.summary;
  s.operation = options.stage;
  s.counts = {{"pairs", static_cast<std::int64_t>(pairs.size())},
              {"reused", result.reused},
              {"computed", result.computed},
              {"failed", static_cast<std::int64_t>(result.failed.size())},
              {"pairs_in_flight", in_flight}};
  s.warnings = result.failed;
  s.seconds = seconds_since(started);
  s.details = {{"parameters_hash", hash}, {"per_pair_ram_mb", per_pair_mb}};
  s.report = fmt::format("{}: {} pairs ({} reused from an earlier run, {} computed, {} failed) in {}\n",
                         options.stage, pairs.size(), result.reused, result.computed, result.failed.size(),
                         format_duration(s.seconds));
  return result;
}

}  // namespace deforma::pipeline
