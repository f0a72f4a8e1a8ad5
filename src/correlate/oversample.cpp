// Frequency-domain oversampling of matching windows (include/deforma/correlate/oversample.hpp).
#include "deforma/correlate/oversample.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <mutex>

#include <fmt/format.h>

#include "correlate/fft_plans.hpp"
#include "deforma/core/error.hpp"

namespace deforma::correlate {

void check_oversample(int factor) {
  if (factor != 1 && factor != 2)
    throw InvalidArgument(fmt::format("--oversample {}: expected 1 (off) or 2", factor));
}

GridF fourier_oversample(const GridF& image, const GridU8& valid, int factor, GridU8* valid_out) {
  check_oversample(factor);
  const int w = image.width(), h = image.height();
  if (factor == 1 || w == 0 || h == 0) {
    if (valid_out) *valid_out = valid;
    return image;
  }
  // Invalid pixels would ring across the window; the mean of the valid ones does not.
  double sum = 0;
  long long count = 0;
  for (std::size_t k = 0; k < image.size(); ++k) {
    if (valid.data()[k] && std::isfinite(image.data()[k])) {
      sum += image.data()[k];
      ++count;
    }
  }
  const float fill = count ? static_cast<float>(sum / count) : 0.f;
  const int w2 = w * factor, h2 = h * factor;
  const int wc = w / 2 + 1, w2c = w2 / 2 + 1;
  auto in = detail::fftw_alloc<float>(static_cast<std::size_t>(w) * h);
  auto spectrum = detail::fftw_alloc<fftwf_complex>(static_cast<std::size_t>(wc) * h);
  auto padded = detail::fftw_alloc<fftwf_complex>(static_cast<std::size_t>(w2c) * h2);
  auto out = detail::fftw_alloc<float>(static_cast<std::size_t>(w2) * h2);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const float v = image(c, r);
      in[static_cast<std::size_t>(r) * w + c] = valid(c, r) && std::isfinite(v) ? v : fill;
    }
  fftwf_plan forward, inverse;
  {
    // FFTW's planner is not thread-safe; executing the plans is.
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    forward = fftwf_plan_dft_r2c_2d(h, w, in.get(), spectrum.get(), FFTW_ESTIMATE);
    inverse = fftwf_plan_dft_c2r_2d(h2, w2, padded.get(), out.get(), FFTW_ESTIMATE);
  }
  fftwf_execute(forward);
  for (std::size_t k = 0; k < static_cast<std::size_t>(w2c) * h2; ++k) padded[k][0] = padded[k][1] = 0.f;
  // Each frequency keeps its place (negative row frequencies at the end of the larger array); a Nyquist
  // row or column of an even size is split between +N/2 and -N/2 so that the interpolation stays real and
  // passes through the input samples.
  for (int ky = 0; ky < h; ++ky) {
    const bool nyquist_row = h % 2 == 0 && ky == h / 2;
    const int rows_out[2] = {ky < (h + 1) / 2 || nyquist_row ? ky : ky + h2 - h,
                             nyquist_row ? h2 - h / 2 : -1};
    for (int kx = 0; kx < wc; ++kx) {
      const bool nyquist_col = w % 2 == 0 && kx == w / 2;
      float scale = 1.f / (static_cast<float>(w) * static_cast<float>(h));
      if (nyquist_row) scale *= 0.5f;
      if (nyquist_col) scale *= 0.5f;
      const auto& s = spectrum[static_cast<std::size_t>(ky) * wc + kx];
      for (const int ro : rows_out) {
        if (ro < 0) continue;
        auto& d = padded[static_cast<std::size_t>(ro) * w2c + kx];
        d[0] += s[0] * scale;
        d[1] += s[1] * scale;
      }
    }
  }
  fftwf_execute(inverse);
  {
    std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
    fftwf_destroy_plan(forward);
    fftwf_destroy_plan(inverse);
  }
  GridF result(w2, h2);
  for (int r = 0; r < h2; ++r)
    for (int c = 0; c < w2; ++c) result(c, r) = out[static_cast<std::size_t>(r) * w2 + c];
  if (valid_out) {
    *valid_out = GridU8(w2, h2, 0);
    for (int r = 0; r < h2; ++r)
      for (int c = 0; c < w2; ++c) {
        // The input pixels on either side of the output one (the same pixel at even positions).
        const int c0 = c / factor, r0 = r / factor;
        const int c1 = std::min(w - 1, (c + factor - 1) / factor),
                  r1 = std::min(h - 1, (r + factor - 1) / factor);
        (*valid_out)(c, r) = valid(c0, r0) && valid(c1, r0) && valid(c0, r1) && valid(c1, r1);
      }
  }
  return result;
}

GridResult correlate_grid_oversampled(const ImageWindow& ref, const ImageWindow& sec,
                                      const MatchOptions& options, const NodeGrid& nodes, int factor,
                                      const GridF* guess_dx_px, const GridF* guess_dy_px) {
  MatcherPool matchers;
  return correlate_grid_oversampled(ref, sec, options, nodes, factor, matchers, guess_dx_px, guess_dy_px);
}

GridResult correlate_grid_oversampled(const ImageWindow& ref, const ImageWindow& sec,
                                      const MatchOptions& options, const NodeGrid& nodes, int factor,
                                      MatcherPool& matchers, const GridF* guess_dx_px,
                                      const GridF* guess_dy_px) {
  check_oversample(factor);
  if (factor == 1) return correlate_grid(ref, sec, options, nodes, matchers, guess_dx_px, guess_dy_px);
  auto oversampled = [&](const ImageWindow& window) {
    ImageBuffer b;
    const GridF filtered = prefiltered(options.prefilter, *window.values, *window.valid);
    b.values = fourier_oversample(filtered, *window.valid, factor, &b.valid);
    b.origin_col = window.origin_col * factor;
    b.origin_row = window.origin_row * factor;
    return b;
  };
  const ImageBuffer ref2 = oversampled(ref), sec2 = oversampled(sec);
  MatchOptions o = options;
  o.prefilter = Prefilter::kNone;
  o.chip_px = options.chip_px * factor;
  o.search_px = options.search_px * factor;
  o.coarse_above_px = options.coarse_above_px * factor;
  NodeGrid n = nodes;
  n.first_col *= factor;
  n.first_row *= factor;
  n.step_px *= factor;
  GridF gx, gy;
  if (guess_dx_px && guess_dy_px) {
    gx = *guess_dx_px;
    gy = *guess_dy_px;
    for (std::size_t k = 0; k < gx.size(); ++k) gx.data()[k] *= static_cast<float>(factor);
    for (std::size_t k = 0; k < gy.size(); ++k) gy.data()[k] *= static_cast<float>(factor);
  }
  GridResult result = correlate_grid(ref2.view(), sec2.view(), o, n, matchers, guess_dx_px ? &gx : nullptr,
                                     guess_dy_px ? &gy : nullptr);
  for (std::size_t k = 0; k < result.dx_px.size(); ++k) result.dx_px.data()[k] /= static_cast<float>(factor);
  for (std::size_t k = 0; k < result.dy_px.size(); ++k) result.dy_px.data()[k] /= static_cast<float>(factor);
  return result;
}

}  // namespace deforma::correlate
