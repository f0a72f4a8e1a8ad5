// The NCC method of the chip matcher: the correlation surface (FFTW or direct, normalized with sliding
// sums) and the iterative re-matching at the sub-pixel estimate.
#include "correlate/matcher_impl.hpp"

namespace deforma::correlate {

// Zero-mean NCC of the template against every offset of the search window, offsets (kx, ky) in
// [0, 2S]^2 for displacements (gx - S + kx, gy - S + ky). Returns false when the window is constant.
bool Matcher::Impl::ncc_surface() {
  // The secondary window minus its mean: the template sums to zero, so the mean does not change the
  // numerator, and removing it keeps float precision for large digital numbers.
  const int off = kRefineMargin;
  for (int j = 0; j < wsearch; ++j) {
    const float* src = sec_buf.data() + static_cast<std::size_t>(j + off) * wbuf + off;
    float* dst = window.data() + static_cast<std::size_t>(j) * wsearch;
    const float mean_f = static_cast<float>(sec_mean);
    for (int i = 0; i < wsearch; ++i) dst[i] = src[i] - mean_f;
  }
  const int m = 2 * search + 1;
  if (spatial) {
    numerator_spatial();
  } else {
    numerator_fft();
  }
  // Sums of the window and of its square over every chip-sized box: column sums over C rows, slid down
  // one row per ky (double: the sums of squares of large digital numbers need it), then C-wide sums
  // along the row, slid across kx.
  std::fill(col1.begin(), col1.end(), 0.0);
  std::fill(col2.begin(), col2.end(), 0.0);
  for (int j = 0; j < chip; ++j) {
    const float* w = window.data() + static_cast<std::size_t>(j) * wsearch;
    for (int i = 0; i < wsearch; ++i) {
      col1[i] += w[i];
      col2[i] += double(w[i]) * w[i];
    }
  }
  const double count = static_cast<double>(chip) * chip;
  const double inv_count = 1.0 / count;
  const double floor = texture_floor(sec_mean);
  bool any = false;
  for (int ky = 0; ky < m; ++ky) {
    if (ky > 0) {
      const float* out_row = window.data() + static_cast<std::size_t>(ky - 1) * wsearch;
      const float* in_row = window.data() + static_cast<std::size_t>(ky - 1 + chip) * wsearch;
      for (int i = 0; i < wsearch; ++i) {
        col1[i] += double(in_row[i]) - out_row[i];
        col2[i] += double(in_row[i]) * in_row[i] - double(out_row[i]) * out_row[i];
      }
    }
    double s1 = 0, s2 = 0;
    for (int i = 0; i < chip; ++i) {
      s1 += col1[i];
      s2 += col2[i];
    }
    // The sliding sums are sequential; the square roots and divisions then run as a vector loop.
    for (int kx = 0; kx < m; ++kx) {
      if (kx > 0) {
        s1 += col1[kx - 1 + chip] - col1[kx - 1];
        s2 += col2[kx - 1 + chip] - col2[kx - 1];
      }
      var_row[kx] = s2 - s1 * s1 * inv_count;
    }
    float* surface_row = surface.data() + static_cast<std::size_t>(ky) * m;
    any = detail::normalize_by_deviation(surface_row, var_row.data(), m, 1.0 / t0_norm,
                                         floor * floor * count) ||
          any;
  }
  return any;
}

// surface(kx, ky) = sum_j t0(j) window(j + k), through FFTW (large searches). The transforms skip the rows
// known to be zero (below the template and the window) and the rows of the result beyond the surface
// (detail::PrunedCorrelationPlan): about a fifth less work than three full 2-D transforms.
void Matcher::Impl::numerator_fft() {
  const detail::PrunedCorrelationPlan& plan = *plan_ncc;
  const int n = nfft;
  const int nc = n / 2 + 1;
  float* a = real_a.get();
  float* b = real_b.get();
  fftwf_complex* sa = spec_a.get();
  fftwf_complex* sb = spec_b.get();
  // Only the rows the row transforms read are filled: the values, then zeros to the end of the row.
  for (int j = 0; j < chip; ++j) {
    float* row = a + static_cast<std::size_t>(j) * n;
    std::copy_n(t0.data() + static_cast<std::size_t>(j) * chip, chip, row);
    std::fill(row + chip, row + n, 0.0f);
  }
  for (int j = 0; j < wsearch; ++j) {
    float* row = b + static_cast<std::size_t>(j) * n;
    std::copy_n(window.data() + static_cast<std::size_t>(j) * wsearch, wsearch, row);
    std::fill(row + wsearch, row + n, 0.0f);
  }
  fftwf_execute_dft_r2c(plan.template_rows_forward, a, sa);
  fftwf_execute_dft_r2c(plan.window_rows_forward, b, sb);
  // The rows below the template's and the window's are zero: their transforms are zero too.
  std::fill(&sa[static_cast<std::size_t>(chip) * nc][0], &sa[static_cast<std::size_t>(n) * nc][0], 0.0f);
  std::fill(&sb[static_cast<std::size_t>(wsearch) * nc][0], &sb[static_cast<std::size_t>(n) * nc][0], 0.0f);
  fftwf_execute_dft(plan.columns_forward, sa, sa);
  fftwf_execute_dft(plan.columns_forward, sb, sb);
  for (int k = 0; k < n * nc; ++k) {
    // conj(A) * B: correlation sum_j t(j) s(j + k)
    const float re = sa[k][0] * sb[k][0] + sa[k][1] * sb[k][1];
    const float im = sa[k][0] * sb[k][1] - sa[k][1] * sb[k][0];
    sb[k][0] = re;
    sb[k][1] = im;
  }
  fftwf_execute_dft(plan.columns_inverse, sb, sb);
  fftwf_execute_dft_c2r(plan.surface_rows_inverse, sb, a);
  const float scale = 1.0f / (static_cast<float>(n) * n);
  const int m = 2 * search + 1;
  for (int ky = 0; ky < m; ++ky)
    for (int kx = 0; kx < m; ++kx) surface[ky * m + kx] = a[ky * n + kx] * scale;
}

// The same sum computed directly: faster than three FFTs for small searches (fine pass).
void Matcher::Impl::numerator_spatial() {
  detail::correlate_direct(t0.data(), chip, window.data(), wsearch, 2 * search + 1, surface.data());
}

// Iterative re-matching (inverse-compositional Lucas-Kanade with a gain/offset model): the secondary chip
// is interpolated at the current estimate, the residual against gain * ref + offset is projected on the
// reference gradients, and the estimate moves until the step is below 1e-3 px. At the fixed point the
// residual is orthogonal to the gradients: the exact displacement when the interpolation is exact, so the
// choice of gradient operator changes only the convergence rate. Returns false when it diverges.
bool Matcher::Impl::refine_iterative(double& dx, double& dy, double& corr) {
  if (!compute_gradients()) return false;
  const double det = h00 * h11 - h01 * h01;
  const double t_var = t0_norm * t0_norm;
  const int count = chip * chip;
  // Invalid reference pixels have t0 = 0 and zero gradients; they are excluded from the sums through
  // the mask `okf` (1 or 0) so that the loops below stay branch-free.
  const float mean_f = static_cast<float>(sec_mean);
  for (int it = 0; it <= opt.max_iterations; ++it) {
    if (std::abs(dx - gx) > search + 1 || std::abs(dy - gy) > search + 1) return false;
    interpolate_chip(dx, dy);
    const InterpolatedFit fit = fit_interpolated();
    const double s_mean = fit.sum / ref_valid_count;
    corr = fit.ncc;
    if (it == opt.max_iterations) break;
    const double gain = fit.cross / t_var;  // least-squares gain of s against t0
    if (!(gain > 0)) return false;
    float bx = 0, by = 0;
    detail::project_residual(interp_out.data(), t0.data(), grad_x.data(), grad_y.data(), count, mean_f,
                             static_cast<float>(s_mean), static_cast<float>(gain), bx, by);
    double step_x = -(h11 * bx - h01 * by) / det / gain;
    double step_y = -(h00 * by - h01 * bx) / det / gain;
    const double len = std::hypot(step_x, step_y);
    if (len > 1.0) {
      step_x /= len;
      step_y /= len;
    }
    dx += step_x;
    dy += step_y;
    // The correlation of this iteration stands for the final one: near the peak it changes with the square
    // of the step, by about 1e-4 for a step of 0.02 px.
    if (len < 2e-2) break;
  }
  return std::isfinite(dx) && std::isfinite(dy);
}

NodeResult Matcher::Impl::match_ncc() {
  NodeResult result;
  if (!ncc_surface()) {
    result.flag = NodeFlag::kNoTexture;
    return result;
  }
  const int m = 2 * search + 1;
  const SurfacePeak found = find_peak();
  const int px = found.px, py = found.py;
  const float peak = found.peak, snr = found.snr;
  result.corr = peak;
  result.snr = snr;
  result.flag = found.flag;
  if (result.flag != NodeFlag::kValid) return result;
  const bool gaussian = opt.subpixel == Subpixel::kGaussian;
  const double fx = vertex(surface[py * m + px - 1], peak, surface[py * m + px + 1], gaussian);
  const double fy = vertex(surface[(py - 1) * m + px], peak, surface[(py + 1) * m + px], gaussian);
  double dx = gx - search + px + fx;
  double dy = gy - search + py + fy;
  double corr = peak;
  if (opt.subpixel == Subpixel::kIterative) {
    if (!refine_iterative(dx, dy, corr)) {
      result.flag = NodeFlag::kNoPeak;
      return result;
    }
  }
  refine_affine(dx, dy, corr, result);
  return finish(result, dx, dy, snr, corr);
}

}  // namespace deforma::correlate
