#include "deforma/service/job.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>

#include <fmt/format.h>
#include <gdal.h>
#include <ogr_spatialref.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/ops.hpp"

namespace deforma::service {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_terminate(int) {
  g_stop.store(true);
}

// Reports progress to the service through DIR/progress.json: percent 0-100 rising continuously across the
// operation's stages (each new stage covers what is left of the range, since the number of stages is not
// known in advance), rewritten at most every 50 ms.
class FileProgress final : public Progress {
 public:
  explicit FileProgress(std::filesystem::path path) : path_(std::move(path)) {}

  void start(const std::string& label, std::uint64_t total) override {
    std::lock_guard lock(mutex_);
    base_ = percent_;
    label_ = label;
    total_ = total;
    done_ = 0;
    write_locked(true);
  }
  void advance(std::uint64_t units) override {
    std::lock_guard lock(mutex_);
    done_ += units;
    if (total_ > 0) {
      const double fraction = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
      percent_ = std::max(percent_, base_ + (99.0 - base_) * fraction);
    }
    write_locked(false);
  }
  void finish() override {
    std::lock_guard lock(mutex_);
    write_locked(true);
  }
  bool cancelled() const override { return g_stop.load(); }

 private:
  void write_locked(bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(50)) return;
    last_ = now;
    try {
      io::write_text_atomically(
          path_, nlohmann::json{{"percent", static_cast<int>(percent_)}, {"stage", label_}}.dump());
    } catch (const Error&) {
      // A progress file that cannot be written does not stop the work; the final result says how it went.
    }
  }

  std::filesystem::path path_;
  std::mutex mutex_;
  double percent_ = 0, base_ = 0;
  std::string label_;
  std::uint64_t total_ = 0, done_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

// Registers GDAL's drivers, opens PROJ's database and builds the operation table.
void warm_up() {
  try {
    io::ensure_gdal_initialized();
    OGRSpatialReference wgs84;
    wgs84.importFromEPSG(4326);
    OGRSpatialReference utm;
    utm.importFromEPSG(32633);
    const std::unique_ptr<OGRCoordinateTransformation> transform(
        OGRCreateCoordinateTransformation(&wgs84, &utm));
    (void)builtin_operations().list();
  } catch (const std::exception&) {
    // A failure here shows again, with its context, when the job itself needs the same thing.
  }
}

// The run's log goes to the job's log, kept with its results, whatever the process's own verbosity (the
// service starts jobs quiet): warnings and notes of the run, time-stamped, written as they come so that the
// log can be followed while the job runs.
std::shared_ptr<spdlog::logger> job_logger(const std::filesystem::path& path) {
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> sink;
  try {
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string(), false);
  } catch (const spdlog::spdlog_ex& e) {
    throw IoError(fmt::format("{}: cannot open the job's log for writing: {}", path.string(), e.what()));
  }
  auto logger = std::make_shared<spdlog::logger>("job", std::move(sink));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l: %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return logger;
}

}  // namespace

int run_job_folder(const std::filesystem::path& dir_arg) {
  // The job dies with the service that started it (a restarted service runs it again), so that two
  // children never write into the same folder.
  const char* parent = std::getenv("DEFORMA_SERVICE_PID");
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent && std::to_string(getppid()) != parent) return static_cast<int>(ExitCode::kCancelled);
  std::filesystem::path dir = dir_arg;
  if (dir == "-") {
    // Started ahead of need by the service: the job folder comes on standard input, the log goes there.
    // Meanwhile, pay what every job pays before its first pixel: GDAL's driver registration and PROJ's
    // database (most of a short job's time after the process start itself).
    warm_up();
    std::string line;
    if (!std::getline(std::cin, line) || line.empty()) return 0;
    dir = line;
    const int log = ::open((dir / "job.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::close(log);
    }
  }
  // Below the service's own priority: the HTTP threads stay responsive while jobs compute.
  if (parent && ::nice(10) == -1) std::perror("nice");
  std::signal(SIGTERM, on_terminate);
  std::signal(SIGINT, on_terminate);

  auto fail = [&](const std::string& kind, const std::string& message, ExitCode code) {
    std::fprintf(stderr, "job %s: error: %s\n", dir.filename().c_str(), message.c_str());
    try {
      io::write_text_atomically(dir / "error.json", nlohmann::json{{"kind", kind}, {"message", message}}.dump(2));
    } catch (const Error&) {
    }
    return static_cast<int>(code);
  };
  try {
    const auto job = io::read_json_file(dir / "job.json");
    if (!job.is_object() || !job.contains("process") || !job.contains("values")) {
      throw FormatError(fmt::format("{}: missing or not a job description", (dir / "job.json").string()));
    }
    const auto* op = builtin_operations().find_process(job["process"].get<std::string>());
    if (!op) throw InvalidArgument(fmt::format("process '{}' is unknown", job["process"].get<std::string>()));
    const auto params = ParamValues::from_json(op->params, job["values"]);
    const int threads = job.value("threads", 0);
    const std::size_t ram_mb = job.value("ram_mb", std::size_t{1024});
    FileProgress progress(dir / "progress.json");
    RunContext context;
    context.progress = &progress;
    context.threads = threads;
    context.ram_budget_mb = ram_mb;
    context.command_line = fmt::format("deforma job run {}", dir.string());
    context.logger = job_logger(dir / "job.log");
    auto summary = io::run_operation(*op, params, context);
    if (g_stop.load()) throw Cancelled("cancelled");
    io::write_text_atomically(dir / "result.json", summary.to_json().dump(2));
    return 0;
  } catch (const Error& e) {
    return fail(e.kind(), e.what(), e.exit_code());
  } catch (const std::bad_alloc&) {
    return fail("internal", "out of memory", ExitCode::kInternal);
  } catch (const std::exception& e) {
    return fail("internal", e.what(), ExitCode::kInternal);
  }
}

}  // namespace deforma::service
