// The phase method of the chip matcher (COSI-Corr style phase correlation).
#include "correlate/matcher_impl.hpp"

namespace deforma::correlate {

// Cross-power of the template and a C x C secondary chip; false when the chip has no texture.
bool Matcher::Impl::cross_power(const float* sec_chip) {
  const int n = nphase;
  const int nc = n / 2 + 1;
  float* a = real_a.get();
  float* b = real_b.get();
  if (taper.size() != static_cast<std::size_t>(n)) {
    taper.resize(n);
    for (int i = 0; i < n; ++i)
      taper[i] = static_cast<float>(0.5 - 0.5 * std::cos(2 * std::numbers::pi * (i + 0.5) / n));
  }
  double sum = 0;
  for (int k = 0; k < n * n; ++k) sum += sec_chip[k];
  const double mean = sum / (n * n);
  double ss = 0;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) {
      const float w = taper[i] * taper[j];
      const double v = sec_chip[j * n + i] - mean;
      ss += v * v;
      a[j * n + i] = w * t0[j * chip + i];
      b[j * n + i] = static_cast<float>(w * v);
    }
  if (!(std::sqrt(ss / (n * n)) > texture_floor(mean))) return false;
  fftwf_execute_dft_r2c(plan_phase->forward, a, spec_a.get());
  fftwf_execute_dft_r2c(plan_phase->forward, b, spec_b.get());
  const fftwf_complex* sa = spec_a.get();
  const int total = n * nc;
  qre.resize(total);
  qim.resize(total);
  qweight.resize(total);
  double log_sum = 0;
  int log_count = 0;
  fftwf_complex* sb = spec_b.get();
  for (int k = 0; k < total; ++k) {
    const double re = double(sa[k][0]) * sb[k][0] + double(sa[k][1]) * sb[k][1];
    const double im = double(sa[k][0]) * sb[k][1] - double(sa[k][1]) * sb[k][0];
    const double mag = std::hypot(re, im);
    qre[k] = mag > 0 ? static_cast<float>(re / mag) : 0.0f;
    qim[k] = mag > 0 ? static_cast<float>(im / mag) : 0.0f;
    qweight[k] = static_cast<float>(mag);
    if (mag > 0 && k != 0) {
      log_sum += std::log(mag);
      ++log_count;
    }
  }
  const double threshold = log_count > 0 ? std::exp(log_sum / log_count - 3.0) : 0.0;
  for (int k = 0; k < total; ++k) qweight[k] = (k != 0 && qweight[k] > threshold) ? 1.0f : 0.0f;
  return true;
}

// Gauss-Newton fit of the phase plane of the masked cross-power, from (ex, ey).
void Matcher::Impl::fit_phase_plane(double& ex, double& ey) const {
  const int n = nphase;
  const int nc = n / 2 + 1;
  for (int it = 0; it < 8; ++it) {
    double h00 = 0, h01 = 0, h11 = 0, g0 = 0, g1 = 0;
    for (int v = 0; v < n; ++v) {
      const double wy = 2 * std::numbers::pi * (v <= n / 2 ? v : v - n) / n;
      for (int u = 0; u < nc; ++u) {
        const int k = v * nc + u;
        if (qweight[k] == 0) continue;
        const double wx = 2 * std::numbers::pi * u / n;
        // Half spectrum: interior columns stand for their conjugate twins too.
        const double w = (u == 0 || 2 * u == n) ? 1.0 : 2.0;
        const double phase = wx * ex + wy * ey;
        const double cr = std::cos(phase), ci = std::sin(phase);
        const double re = qre[k] * cr - qim[k] * ci;  // Re(Q e^{i w.d})
        const double im = qre[k] * ci + qim[k] * cr;  // Im(Q e^{i w.d})
        h00 += w * wx * wx * re;
        h01 += w * wx * wy * re;
        h11 += w * wy * wy * re;
        g0 += w * wx * im;
        g1 += w * wy * im;
      }
    }
    const double det = h00 * h11 - h01 * h01;
    if (!(det > 0) || !(h00 > 0)) return;
    double sx = -(h11 * g0 - h01 * g1) / det;
    double sy = -(h00 * g1 - h01 * g0) / det;
    const double len = std::hypot(sx, sy);
    if (len > 0.5) {
      sx *= 0.5 / len;
      sy *= 0.5 / len;
    }
    ex += sx;
    ey += sy;
    if (len < 1e-5) return;
  }
}

NodeResult Matcher::Impl::match_phase() {
  NodeResult result;
  const int n = nphase;
  const int nc = n / 2 + 1;
  phase_chip.resize(static_cast<std::size_t>(n) * n);
  const int off = search + kRefineMargin;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i)
      phase_chip[j * n + i] = sec_buf[static_cast<std::size_t>(j + off) * wbuf + i + off];
  if (!cross_power(phase_chip.data())) {
    result.flag = NodeFlag::kNoTexture;
    return result;
  }
  fftwf_complex* sb = spec_b.get();
  for (int k = 0; k < n * nc; ++k) {
    sb[k][0] = qweight[k] * qre[k];
    sb[k][1] = qweight[k] * qim[k];
  }
  float* a = real_a.get();
  fftwf_execute_dft_c2r(plan_phase->inverse, sb, a);
  // Surface over displacements -S..S around the guess (wrapping indices).
  const int m = 2 * search + 1;
  std::vector<float>& surf = surface;
  const float scale = 1.0f / static_cast<float>(n * n);
  for (int y = 0; y < m; ++y)
    for (int x = 0; x < m; ++x) {
      const int sx = ((x - search) % n + n) % n;
      const int sy = ((y - search) % n + n) % n;
      surf[y * m + x] = a[sy * n + sx] * scale;
    }
  const SurfacePeak found = find_peak();
  const float snr = found.snr;
  result.snr = snr;
  result.flag = found.flag;
  if (result.flag != NodeFlag::kValid) return result;
  double ex = found.px - search, ey = found.py - search;
  fit_phase_plane(ex, ey);
  if (opt.subpixel == Subpixel::kIterative) {
    for (int it = 0; it < opt.max_iterations; ++it) {
      if (std::abs(ex) > search || std::abs(ey) > search) break;
      interpolate_chip(gx + ex, gy + ey);
      if (!cross_power(interp_out.data())) break;
      double rx = 0, ry = 0;
      fit_phase_plane(rx, ry);
      ex += rx;
      ey += ry;
      if (std::hypot(rx, ry) < 1e-3) break;
    }
  }
  if (!std::isfinite(ex) || !std::isfinite(ey) || std::abs(ex) > search || std::abs(ey) > search) {
    result.flag = NodeFlag::kSearchBorder;
    return result;
  }
  double dx = gx + ex;
  double dy = gy + ey;
  interpolate_chip(dx, dy);
  double corr = ncc_interpolated();
  refine_affine(dx, dy, corr, result);
  return finish(result, dx, dy, snr, corr);
}

}  // namespace deforma::correlate
