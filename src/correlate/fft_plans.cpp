#include "correlate/fft_plans.hpp"

#include <map>
#include <tuple>

namespace deforma::correlate::detail {

FftPlan2d::~FftPlan2d() {
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  if (forward) fftwf_destroy_plan(forward);
  if (inverse) fftwf_destroy_plan(inverse);
}

std::mutex& fftw_planner_mutex() {
  static std::mutex mutex;
  return mutex;
}

const FftPlan2d& plan_2d(int n) {
  // Plans are few (one per size) and live as long as the process. The mutex is made before the cache, so
  // it outlives the cache at exit, when the plans are destroyed under it.
  std::mutex& mutex = fftw_planner_mutex();
  static std::map<int, std::unique_ptr<FftPlan2d>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = plans[n];
  if (!slot) {
    auto plan = std::make_unique<FftPlan2d>();
    plan->n = n;
    const std::size_t real_count = static_cast<std::size_t>(n) * n;
    const std::size_t complex_count = static_cast<std::size_t>(n) * (n / 2 + 1);
    auto real = fftw_alloc<float>(real_count);
    auto spectrum = fftw_alloc<fftwf_complex>(complex_count);
    plan->forward = fftwf_plan_dft_r2c_2d(n, n, real.get(), spectrum.get(), FFTW_ESTIMATE);
    plan->inverse = fftwf_plan_dft_c2r_2d(n, n, spectrum.get(), real.get(), FFTW_ESTIMATE);
    slot = std::move(plan);
  }
  return *slot;
}

PrunedCorrelationPlan::~PrunedCorrelationPlan() {
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  for (fftwf_plan plan :
       {template_rows_forward, window_rows_forward, columns_forward, columns_inverse, surface_rows_inverse})
    if (plan) fftwf_destroy_plan(plan);
}

const PrunedCorrelationPlan& pruned_correlation_plan(int n, int template_rows, int window_rows,
                                                     int surface_rows) {
  std::mutex& mutex = fftw_planner_mutex();
  static std::map<std::tuple<int, int, int, int>, std::unique_ptr<PrunedCorrelationPlan>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = plans[{n, template_rows, window_rows, surface_rows}];
  if (!slot) {
    auto plan = std::make_unique<PrunedCorrelationPlan>();
    plan->n = n;
    plan->template_rows = template_rows;
    plan->window_rows = window_rows;
    plan->surface_rows = surface_rows;
    const int nc = n / 2 + 1;
    auto real = fftw_alloc<float>(static_cast<std::size_t>(n) * n);
    auto spectrum = fftw_alloc<fftwf_complex>(static_cast<std::size_t>(n) * nc);
    // Rows: contiguous transforms of length n, one per row (real rows n apart, spectrum rows nc apart).
    auto rows_forward = [&](int rows) {
      return fftwf_plan_many_dft_r2c(1, &n, rows, real.get(), nullptr, 1, n, spectrum.get(), nullptr, 1, nc,
                                     FFTW_ESTIMATE);
    };
    plan->template_rows_forward = rows_forward(template_rows);
    plan->window_rows_forward = rows_forward(window_rows);
    // Columns: nc transforms of length n, elements nc apart, neighbouring columns 1 apart.
    auto columns = [&](int sign) {
      return fftwf_plan_many_dft(1, &n, nc, spectrum.get(), nullptr, nc, 1, spectrum.get(), nullptr, nc, 1,
                                 sign, FFTW_ESTIMATE);
    };
    plan->columns_forward = columns(FFTW_FORWARD);
    plan->columns_inverse = columns(FFTW_BACKWARD);
    plan->surface_rows_inverse = fftwf_plan_many_dft_c2r(1, &n, surface_rows, spectrum.get(), nullptr, 1, nc,
                                                         real.get(), nullptr, 1, n, FFTW_ESTIMATE);
    slot = std::move(plan);
  }
  return *slot;
}

int fast_fft_size(int n) {
  // FFTW's estimated plans (FFTW_ESTIMATE: deterministic, no timing at run time) are much slower for some
  // 2^a 3^b 5^c sizes than for slightly larger ones: a 2-D r2c + c2r pair of size 60 takes about twice as
  // long as one of size 64, 96 half as long again as 100. Sizes up to 288 come from this list, measured
  // with FFTW 3.3.10 on x86-64 (each is the fastest of all sizes at or above the ones it serves).
  static constexpr int kFastSizes[] = {16,  20,  32,  36,  40,  48,  64,  72,  80, 100,
                                       108, 120, 144, 160, 192, 200, 240, 256, 288};
  for (int size : kFastSizes)
    if (size >= n) return size;
  for (int m = n > 1 ? n : 1;; ++m) {
    int r = m;
    for (int p : {2, 3, 5}) {
      while (r % p == 0) r /= p;
    }
    if (r == 1) return m;
  }
}

}  // namespace deforma::correlate::detail
