#pragma once
// Shared FFTW3 (single precision) plans of the correlation kernels. FFTW's planner is not thread-safe,
// its execution with the new-array functions is: plans are made once per size under a global mutex and
// then executed by any thread on its own fftwf_malloc'd (hence equally aligned) buffers. FFTW_ESTIMATE
// keeps the plan choice deterministic, so results do not depend on which thread planned first.
#include <complex>
#include <cstddef>
#include <memory>
#include <mutex>

#include <fftw3.h>

namespace deforma::correlate::detail {

/// The global mutex that serializes FFTW planning in deforma.
std::mutex& fftw_planner_mutex();

/// Forward real-to-complex and inverse complex-to-real plans of an n x n transform (row-major, out of place;
/// the complex side is n x (n/2 + 1)).
struct FftPlan2d {
  int n = 0;
  fftwf_plan forward = nullptr;
  fftwf_plan inverse = nullptr;

  FftPlan2d() = default;
  FftPlan2d(const FftPlan2d&) = delete;
  FftPlan2d& operator=(const FftPlan2d&) = delete;
  /// Plans live until the process exits (the cache is a function-local static); destroying them then
  /// keeps leak checkers quiet.
  ~FftPlan2d();
};

/// The shared plan for size n (made on first use, kept for the life of the process).
const FftPlan2d& plan_2d(int n);

/// The n x n correlation of a template against a search window through transforms that skip what is known
/// to be zero or not needed: the row transforms run on the template's and the window's rows only (the other
/// rows are zero), the inverse's row transforms on the rows of the surface only. Same layout as FftPlan2d
/// (row-major real arrays of n x n, spectra of n x (n/2 + 1)); each array is transformed in place along the
/// columns.
struct PrunedCorrelationPlan {
  int n = 0, template_rows = 0, window_rows = 0, surface_rows = 0;
  fftwf_plan template_rows_forward = nullptr;  ///< r2c of template_rows rows: real array -> spectrum
  fftwf_plan window_rows_forward = nullptr;    ///< r2c of window_rows rows
  fftwf_plan columns_forward = nullptr;        ///< c2c of the n/2 + 1 columns, in place
  fftwf_plan columns_inverse = nullptr;        ///< inverse c2c of the columns, in place
  fftwf_plan surface_rows_inverse = nullptr;   ///< c2r of surface_rows rows: spectrum -> real array

  PrunedCorrelationPlan() = default;
  PrunedCorrelationPlan(const PrunedCorrelationPlan&) = delete;
  PrunedCorrelationPlan& operator=(const PrunedCorrelationPlan&) = delete;
  ~PrunedCorrelationPlan();
};

/// The shared pruned plan for these sizes (made on first use, kept for the life of the process).
const PrunedCorrelationPlan& pruned_correlation_plan(int n, int template_rows, int window_rows,
                                                     int surface_rows);

/// A size >= n that FFTW transforms fast with estimated plans (a measured list up to 288, then the smallest
/// size whose only prime factors are 2, 3 and 5).
int fast_fft_size(int n);

/// fftwf_malloc'd array with RAII.
template <typename T>
struct FftwDeleter {
  void operator()(T* p) const noexcept { fftwf_free(p); }
};
template <typename T>
using FftwArray = std::unique_ptr<T[], FftwDeleter<T>>;

template <typename T>
FftwArray<T> fftw_alloc(std::size_t count) {
  void* p = fftwf_malloc(sizeof(T) * (count > 0 ? count : 1));
  if (!p) throw std::bad_alloc();
  return FftwArray<T>(static_cast<T*>(p));
}

}  // namespace deforma::correlate::detail
