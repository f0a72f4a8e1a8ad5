// Chip matching: zero-mean NCC through FFTW with summed-area-table normalization, phase correlation with
// a phase-plane fit, and the sub-pixel refinements compared in docs/correlate.md. This file: the options,
// names and the Matcher's entry points; Matcher::Impl is in matcher_impl.hpp, its method-specific parts in
// matcher_ncc.cpp, matcher_phase.cpp and matcher_affine.cpp.
#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <string>

#include <tbb/enumerable_thread_specific.h>

#include "correlate/matcher_count.hpp"
#include "correlate/matcher_impl.hpp"
#include "deforma/core/error.hpp"
#include "deforma/correlate/matcher.hpp"

namespace deforma::correlate {

Method parse_method(const std::string& text) {
  if (text == "ncc") return Method::kNcc;
  if (text == "phase") return Method::kPhase;
  if (text == "flow") return Method::kFlow;
  throw InvalidArgument("--method: unknown method '" + text + "' (expected ncc, phase or flow)");
}

Prefilter parse_prefilter(const std::string& text) {
  if (text == "none") return Prefilter::kNone;
  if (text == "highpass") return Prefilter::kHighpass;
  if (text == "wallis") return Prefilter::kWallis;
  if (text == "orientation") return Prefilter::kOrientation;
  throw InvalidArgument("--prefilter: unknown prefilter '" + text +
                        "' (expected none, highpass, wallis or orientation)");
}

Shape parse_shape(const std::string& text) {
  if (text == "translation") return Shape::kTranslation;
  if (text == "affine") return Shape::kAffine;
  throw InvalidArgument("--shape: unknown shape '" + text + "' (expected translation or affine)");
}

std::string to_string(Shape shape) {
  return shape == Shape::kAffine ? "affine" : "translation";
}

std::string to_string(Method method) {
  switch (method) {
    case Method::kNcc:
      return "ncc";
    case Method::kPhase:
      return "phase";
    case Method::kFlow:
      return "flow";
  }
  return "?";
}

std::string to_string(Prefilter prefilter) {
  switch (prefilter) {
    case Prefilter::kNone:
      return "none";
    case Prefilter::kHighpass:
      return "highpass";
    case Prefilter::kWallis:
      return "wallis";
    case Prefilter::kOrientation:
      return "orientation";
  }
  return "?";
}

const char* to_string(NodeFlag flag) {
  switch (flag) {
    case NodeFlag::kValid:
      return "valid";
    case NodeFlag::kLowSnr:
      return "low_snr";
    case NodeFlag::kNoTexture:
      return "no_texture";
    case NodeFlag::kMasked:
      return "masked";
    case NodeFlag::kSearchBorder:
      return "search_border";
    case NodeFlag::kOutsideOverlap:
      return "outside_overlap";
    case NodeFlag::kNoPeak:
      return "no_peak";
    case NodeFlag::kMedianTest:
      return "median_test";
    case NodeFlag::kAboveMaxDisplacement:
      return "above_max_displacement";
    case NodeFlag::kLowCorrelation:
      return "low_corr";
  }
  return "?";
}

void MatchOptions::validate() const {
  // Parameters exposed by the operations are named as declared there (chip, search...); the others by
  // their field name, so that no message points to an option that does not exist.
  if (chip_px < kMinChipPx || chip_px > kMaxChipPx)
    throw InvalidArgument(fmt::format("parameter --chip: {} px is out of range (expected {} to {} px)",
                                      chip_px, kMinChipPx, kMaxChipPx));
  if (search_px < kMinSearchPx || search_px > kMaxSearchPx)
    throw InvalidArgument(fmt::format("parameter --search: {} px is out of range (expected {} to {} px)",
                                      search_px, kMinSearchPx, kMaxSearchPx));
  if (method == Method::kPhase && 2 * search_px >= chip_px &&
      (coarse_above_px <= 0 || search_px <= coarse_above_px))
    throw InvalidArgument(
        fmt::format("parameter --search: the phase method measures displacements smaller than "
                    "half the chip; {} px needs a chip > {} px (or a coarse-to-fine search)",
                    search_px, 2 * search_px));
  if (!std::isfinite(min_snr) || min_snr < 0)
    throw InvalidArgument(fmt::format("parameter --min-snr: expected a finite value >= 0, got {}", min_snr));
  if (!std::isfinite(min_corr) || min_corr < -1 || min_corr > 1)
    throw InvalidArgument(fmt::format("parameter --min-corr: expected a value in [-1, 1], got {}", min_corr));
  if (!std::isfinite(min_texture) || min_texture < 0)
    throw InvalidArgument(fmt::format("min_texture: expected a finite value >= 0, got {}", min_texture));
  if (!(max_invalid_fraction >= 0 && max_invalid_fraction < 1))
    throw InvalidArgument(
        fmt::format("max_invalid_fraction: expected a fraction in [0, 1), got {}", max_invalid_fraction));
  if (max_iterations < 0 || max_iterations > 100)
    throw InvalidArgument(fmt::format("max_iterations: expected 0 to 100, got {}", max_iterations));
  if (coarse_above_px < 0)
    throw InvalidArgument(fmt::format("coarse_above_px: expected >= 0 px, got {}", coarse_above_px));
}

int MatchOptions::halo_px() const {
  return chip_px / 2 + 1 + search_px + kRefineMargin;
}

namespace {
std::atomic<long long> g_matchers_made{0};
}  // namespace

long long detail::matchers_made() {
  return g_matchers_made.load(std::memory_order_relaxed);
}

Matcher::Matcher(const MatchOptions& options) {
  g_matchers_made.fetch_add(1, std::memory_order_relaxed);
  MatchOptions own = options;
  if (own.method == Method::kFlow) own.method = Method::kNcc;  // flow nodes are evaluated with NCC
  impl_ = std::make_unique<Impl>(own);
}
Matcher::~Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;

const MatchOptions& Matcher::options() const {
  return impl_->opt;
}

NodeResult Matcher::match(const ImageWindow& ref, const ImageWindow& sec, int col, int row,
                          double guess_dx_px, double guess_dy_px) {
  return impl_->match(ref, sec, col, row, guess_dx_px, guess_dy_px);
}

NodeResult Matcher::evaluate(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double dx_px,
                             double dy_px) {
  return impl_->evaluate(ref, sec, col, row, dx_px, dy_px);
}

struct MatcherPool::Impl {
  struct Entry {
    MatchOptions options;  // as asked for (Matcher::options() holds them normalized)
    Matcher matcher;
  };
  // A deque: adding a thread's next options set keeps the references to its earlier matchers valid.
  tbb::enumerable_thread_specific<std::deque<Entry>> per_thread;
  std::atomic<long long> made{0};
};

MatcherPool::MatcherPool() : impl_(std::make_unique<Impl>()) {}
MatcherPool::~MatcherPool() = default;

Matcher& MatcherPool::local(const MatchOptions& options) {
  std::deque<Impl::Entry>& mine = impl_->per_thread.local();
  // A run has at most a handful of options sets (fine, coarse, full-range, evaluation).
  for (Impl::Entry& entry : mine)
    if (entry.options == options) return entry.matcher;
  mine.push_back(Impl::Entry{options, Matcher(options)});
  impl_->made.fetch_add(1, std::memory_order_relaxed);
  return mine.back().matcher;
}

long long MatcherPool::made() const {
  return impl_->made.load(std::memory_order_relaxed);
}

NodeResult evaluate_displacement(const ImageWindow& ref, const ImageWindow& sec, int col, int row,
                                 double dx_px, double dy_px, const MatchOptions& options) {
  Matcher matcher(options);
  return matcher.evaluate(ref, sec, col, row, dx_px, dy_px);
}

}  // namespace deforma::correlate
