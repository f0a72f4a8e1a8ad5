#include "deforma/core/progress.hpp"

#include "deforma/core/cancel.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace deforma {

namespace {
// Lock-free, so that a signal handler may set it.
std::atomic<bool> g_cancellation_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);
}  // namespace

void request_cancellation() noexcept {
  g_cancellation_requested.store(true, std::memory_order_relaxed);
}
bool cancellation_requested() noexcept {
  return g_cancellation_requested.load(std::memory_order_relaxed);
}
void reset_cancellation() noexcept {
  g_cancellation_requested.store(false, std::memory_order_relaxed);
}

void ProgressCounter::reset(std::uint64_t total) {
  total_ = total;
  done_.store(0);
  start_ = std::chrono::steady_clock::now();
}

double ProgressCounter::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double ProgressCounter::rate_per_s() const {
  const double t = elapsed_s();
  const auto d = done();
  return (t > 0 && d > 0) ? static_cast<double>(d) / t : 0.0;
}

double ProgressCounter::eta_s() const {
  const double rate = rate_per_s();
  if (rate <= 0 || total_ == 0) return -1.0;
  const auto d = done();
  return d >= total_ ? 0.0 : static_cast<double>(total_ - d) / rate;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "--";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const auto total = static_cast<long long>(std::llround(seconds));
  if (total < 3600) return fmt::format("{}m{:02d}s", total / 60, static_cast<int>(total % 60));
  return fmt::format("{}h{:02d}m", total / 3600, static_cast<int>((total % 3600) / 60));
}

Progress& progress_or_null(Progress* progress) {
  static NullProgress null_progress;
  return progress ? *progress : null_progress;
}

namespace {

// Draws on standard error. On a terminal: one line redrawn at most ~10 times a second with a bar, count,
// rate and ETA. Elsewhere (logs, CI): a plain line every `interval` seconds and one at the end.
class TerminalProgress final : public Progress {
 public:
  TerminalProgress(bool bar, double interval_s) : bar_(bar), interval_s_(interval_s) {}

  void start(const std::string& label, std::uint64_t total) override {
    std::lock_guard lock(mutex_);
    label_ = label;
    counter_.reset(total);
    last_draw_s_ = -1e9;
    active_ = true;
    draw_locked(false);
  }

  void advance(std::uint64_t units) override {
    counter_.add(units);
    const double now = counter_.elapsed_s();
    const double min_gap = bar_ ? 0.1 : interval_s_;
    if (now - last_draw_s_ < min_gap) return;
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || !active_) return;
    draw_locked(false);
  }

  void finish() override {
    std::lock_guard lock(mutex_);
    if (!active_) return;
    draw_locked(true);
    active_ = false;
  }

  bool cancelled() const override { return cancellation_requested(); }

 private:
  void draw_locked(bool final_line) {
    last_draw_s_ = counter_.elapsed_s();
    const auto done = counter_.done();
    const auto total = counter_.total();
    const double fraction = total ? std::min(1.0, static_cast<double>(done) / total) : 0.0;
    const std::string rate = fmt::format("{:.1f}/s", counter_.rate_per_s());
    if (bar_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(fraction * kWidth);
      std::string bar(filled, '#');
      bar.append(kWidth - filled, '-');
      const std::string eta = final_line ? format_duration(counter_.elapsed_s())
                                         : "ETA " + format_duration(counter_.eta_s());
      std::fprintf(stderr, "\r%s [%s] %3.0f%% %llu/%llu %s %s\033[K%s", label_.c_str(), bar.c_str(),
                   fraction * 100.0, static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(total), rate.c_str(), eta.c_str(), final_line ? "\n" : "");
    } else {
      if (!final_line && done == 0 && last_line_done_ == 0 && printed_any_) return;
      std::fprintf(stderr, "%s: %llu/%llu (%.0f%%) %s, %s %s\n", label_.c_str(),
                   static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                   fraction * 100.0, rate.c_str(), final_line ? "done in" : "ETA",
                   format_duration(final_line ? counter_.elapsed_s() : counter_.eta_s()).c_str());
      last_line_done_ = done;
      printed_any_ = true;
    }
    std::fflush(stderr);
  }

  bool bar_;
  double interval_s_;
  std::mutex mutex_;
  std::string label_;
  ProgressCounter counter_;
  std::atomic<double> last_draw_s_{-1e9};
  bool active_ = false;
  std::uint64_t last_line_done_ = 0;
  bool printed_any_ = false;
};

// Shows nothing, but still hears an interrupt.
class QuietProgress final : public Progress {
 public:
  void start(const std::string&, std::uint64_t) override {}
  void advance(std::uint64_t) override {}
  void finish() override {}
  bool cancelled() const override { return cancellation_requested(); }
};

}  // namespace

std::unique_ptr<Progress> make_terminal_progress(ProgressStyle style, double line_interval_s) {
  if (style == ProgressStyle::kQuiet) return std::make_unique<QuietProgress>();
  bool bar = style == ProgressStyle::kBar;
  if (style == ProgressStyle::kAuto) bar = ::isatty(STDERR_FILENO) != 0;
  return std::make_unique<TerminalProgress>(bar, line_interval_s);
}

}  // namespace deforma
