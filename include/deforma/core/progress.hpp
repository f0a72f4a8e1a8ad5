#pragma once
// Progress reporting and cancellation for long operations. Library code reports through the abstract
// Progress interface; the CLI plugs in a terminal-aware bar (make_terminal_progress), the service a job
// record, tests a silent or recording implementation.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace deforma {

class Progress {
 public:
  virtual ~Progress() = default;
  /// Starts a stage of `total` units (tiles, pairs, points...) with a short label.
  virtual void start(const std::string& label, std::uint64_t total) = 0;
  /// Adds `units` completed units; thread-safe.
  virtual void advance(std::uint64_t units = 1) = 0;
  /// Ends the current stage.
  virtual void finish() = 0;
  /// True when the caller asked to stop; long loops check it and throw deforma::Cancelled.
  virtual bool cancelled() const { return false; }
};

/// Does nothing; the default when a caller passes no progress.
class NullProgress final : public Progress {
 public:
  void start(const std::string&, std::uint64_t) override {}
  void advance(std::uint64_t) override {}
  void finish() override {}
};

/// Shared state of a progress stage, usable by any implementation (counts, rate, ETA).
class ProgressCounter {
 public:
  void reset(std::uint64_t total);
  std::uint64_t add(std::uint64_t units) { return done_.fetch_add(units) + units; }
  std::uint64_t done() const { return done_.load(); }
  std::uint64_t total() const { return total_; }
  double elapsed_s() const;
  /// Units per second since the start; 0 before the first unit.
  double rate_per_s() const;
  /// Estimated seconds left; negative when unknown.
  double eta_s() const;

 private:
  std::atomic<std::uint64_t> done_{0};
  std::uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

enum class ProgressStyle {
  kAuto,   ///< a bar when standard error is a terminal, periodic log lines otherwise
  kBar,    ///< a redrawn bar with percentage, rate and ETA
  kLines,  ///< a log line every few seconds (for logs and CI)
  kQuiet,  ///< nothing
};

/// The CLI's progress display on standard error.
std::unique_ptr<Progress> make_terminal_progress(ProgressStyle style = ProgressStyle::kAuto,
                                                 double line_interval_s = 5.0);

/// Formats seconds as "1h02m", "3m05s" or "12.4s".
std::string format_duration(double seconds);

/// Returns `progress` or a shared NullProgress when it is null.
Progress& progress_or_null(Progress* progress);

}  // namespace deforma
