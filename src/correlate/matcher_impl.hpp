#pragma once
// Matcher::Impl, shared by the files of the chip matcher: matcher.cpp (chips, peaks, the translation's
// interpolation, the node loop), matcher_ncc.cpp (NCC surface and iterative re-matching), matcher_phase.cpp
// (phase correlation) and matcher_affine.cpp (the affine shape's hand-over to affine_refine.cpp).
// Internal header of the correlation module.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "correlate/affine_refine.hpp"
#include "correlate/fft_plans.hpp"
#include "correlate/kernels.hpp"
#include "deforma/correlate/matcher.hpp"

namespace deforma::correlate {

using detail::FftwArray;

// Half-width of the windowed-sinc (Lanczos) interpolator of the iterative refinement: 2 * kLanczos taps.
// Lanczos-4 was measured against Lanczos-3/6 on Fourier-shifted Landsat texture (docs/correlate.md).
inline constexpr int kLanczos = 4;
// Extra pixels kept around the search window for the interpolation of the refinement.
inline constexpr int kRefineMargin = kLanczos + 2;
inline constexpr int kRefBorder = 3;
struct Matcher::Impl {
  MatchOptions opt;
  int chip = 0;     // C
  int search = 0;   // S
  int half = 0;     // C / 2: chip pixel j covers image pixel node - half + j
  int wsearch = 0;  // C + 2S: secondary search window
  int wbuf = 0;     // C + 2S + 2M: secondary buffer with the interpolation margin
  int nfft = 0;     // FFT size of the NCC surface
  int nphase = 0;   // FFT size of the phase correlation (the chip)
  const detail::PrunedCorrelationPlan* plan_ncc = nullptr;  // null for direct correlation (spatial)
  const detail::FftPlan2d* plan_phase = nullptr;

  // Reference chip with a border of kRefBorder pixels (for the gradients): (C + 2B)^2, invalid pixels
  // filled with the mean.
  std::vector<float> ref_raw;
  std::vector<unsigned char> ref_state;  // (C + 2B)^2, as read_rect
  std::vector<float> okf;                // C^2, weight of each chip pixel: 1 valid, 0 invalid
  std::vector<float> t0;                 // C^2, zero-mean template (0 at invalid pixels)
  double t0_norm = 0;                    // ||t0||
  double ref_std = 0;
  int ref_valid_count = 0;
  // Secondary buffer, origin (col + gx - half - S - M, row + gy - half - S - M).
  std::vector<float> sec_buf;
  std::vector<unsigned char> sec_ok;  // 1 valid, 0 invalid (nodata), 2 outside the window
  std::vector<int> sec_bad_sat;       // summed-area table of invalid pixels (any kind)
  std::vector<int> sec_out_sat;       // summed-area table of outside pixels
  double sec_mean = 0;
  bool sec_all_valid = false;
  int gx = 0, gy = 0;
  // NCC surface (2S + 1)^2.
  std::vector<float> surface;
  std::vector<float> window;       // wsearch^2: secondary search window minus its mean
  std::vector<float> row_acc;      // 2S + 1
  bool spatial = false;            // direct correlation instead of FFT (small searches)
  std::vector<double> col1, col2;  // wsearch: column sums of the window and of its square
  std::vector<double> var_row;     // 2S + 1: chip variance (times n) at each offset of a surface row
  FftwArray<float> real_a, real_b;
  FftwArray<fftwf_complex> spec_a, spec_b;
  // Refinement work space.
  std::vector<float> interp_tmp, interp_out, grad_x, grad_y;
  bool interp_ready = false;  // interp_out holds the secondary at (interp_dx, interp_dy) of this node
  double interp_dx = 0, interp_dy = 0;
  bool gradients_ready = false;  // grad_x / grad_y hold the current reference chip's gradients
  bool gradients_ok = false;     // ... and they are not degenerate
  detail::AffineRefiner affine;

  explicit Impl(const MatchOptions& o) : opt(o) {
    opt.validate();
    chip = opt.chip_px;
    search = opt.search_px;
    half = chip / 2;
    wsearch = chip + 2 * search;
    wbuf = wsearch + 2 * kRefineMargin;
    nfft = detail::fast_fft_size(wsearch);
    nphase = chip;
    if (opt.method == Method::kPhase) plan_phase = &detail::plan_2d(nphase);
    const int nmax = std::max(nfft, nphase);
    real_a = detail::fftw_alloc<float>(static_cast<std::size_t>(nmax) * nmax);
    real_b = detail::fftw_alloc<float>(static_cast<std::size_t>(nmax) * nmax);
    spec_a = detail::fftw_alloc<fftwf_complex>(static_cast<std::size_t>(nmax) * (nmax / 2 + 1));
    spec_b = detail::fftw_alloc<fftwf_complex>(static_cast<std::size_t>(nmax) * (nmax / 2 + 1));
    ref_raw.resize(static_cast<std::size_t>(chip + 2 * kRefBorder) * (chip + 2 * kRefBorder));
    ref_state.resize(ref_raw.size());
    t0.resize(static_cast<std::size_t>(chip) * chip);
    sec_buf.resize(static_cast<std::size_t>(wbuf) * wbuf);
    sec_ok.resize(static_cast<std::size_t>(wbuf) * wbuf);
    sec_bad_sat.resize(static_cast<std::size_t>(wbuf + 1) * (wbuf + 1));
    sec_out_sat.resize(static_cast<std::size_t>(wbuf + 1) * (wbuf + 1));
    surface.resize(static_cast<std::size_t>(2 * search + 1) * (2 * search + 1));
    window.resize(static_cast<std::size_t>(wsearch) * wsearch);
    row_acc.resize(2 * search + 1);
    // Direct correlation costs (2S+1)^2 C^2 multiply-adds; three FFTs of N^2 cost about 3 * 2.5 N^2 log2(N^2)
    // flops plus overheads. Measured on 32 px chips, direct correlation is faster up to S = 5.
    spatial = (2 * search + 1) * (2 * search + 1) <= 121;
    if (!spatial) plan_ncc = &detail::pruned_correlation_plan(nfft, chip, wsearch, 2 * search + 1);
    col1.resize(wsearch);
    col2.resize(wsearch);
    var_row.resize(2 * search + 1);
    interp_tmp.resize(static_cast<std::size_t>(chip + 2 * kLanczos) * chip);
    interp_out.resize(static_cast<std::size_t>(chip) * chip);
    grad_x.resize(static_cast<std::size_t>(chip) * chip);
    grad_y.resize(static_cast<std::size_t>(chip) * chip);
    okf.resize(static_cast<std::size_t>(chip) * chip);
  }

  // Copies the rectangle [c0, c0 + width) x [r0, r0 + height) of a window into `values` / `state`
  // (1 valid, 0 invalid: nodata or not finite, 2 outside the window). Rows fully inside the window are
  // copied directly; the rest pixel by pixel.
  static void read_rect(const ImageWindow& w, int c0, int r0, int width, int height, float* values,
                        unsigned char* state) {
    const int ww = w.values ? w.values->width() : 0;
    const int wh = w.values ? w.values->height() : 0;
    const int lc0 = c0 - w.origin_col;
    for (int j = 0; j < height; ++j) {
      float* vrow = values + static_cast<std::size_t>(j) * width;
      unsigned char* srow = state + static_cast<std::size_t>(j) * width;
      const int lr = r0 + j - w.origin_row;
      if (lr < 0 || lr >= wh) {
        std::fill(vrow, vrow + width, 0.0f);
        std::fill(srow, srow + width, static_cast<unsigned char>(2));
        continue;
      }
      const float* src = w.values->row(lr);
      const unsigned char* ok = w.valid ? w.valid->row(lr) : nullptr;
      if (lc0 >= 0 && lc0 + width <= ww) {
        detail::copy_valid(src + lc0, ok ? ok + lc0 : nullptr, width, vrow, srow);
        // The next node along the row reads the pixels just right of this rectangle: ask for them now.
        if (lc0 + width + 32 <= ww) {
          __builtin_prefetch(src + lc0 + width + 16);
          if (ok) __builtin_prefetch(ok + lc0 + width + 16);
        }
        continue;
      }
      for (int i = 0; i < width; ++i) {
        const int lc = lc0 + i;
        if (lc < 0 || lc >= ww) {
          vrow[i] = 0.0f;
          srow[i] = 2;
          continue;
        }
        const float v = src[lc];
        const bool good = (!ok || ok[lc]) && std::isfinite(v);
        vrow[i] = good ? v : 0.0f;
        srow[i] = good ? 1 : 0;
      }
    }
  }

  double texture_floor(double mean) const { return std::max(opt.min_texture, 1e-5 * std::abs(mean)); }

  // Reads the reference chip; returns kValid or the flag that ends the node.
  NodeFlag load_reference(const ImageWindow& ref, int col, int row) {
    const int cb = chip + 2 * kRefBorder;
    read_rect(ref, col - half - kRefBorder, row - half - kRefBorder, cb, cb, ref_raw.data(),
              ref_state.data());
    const std::size_t first = static_cast<std::size_t>(kRefBorder) * cb + kRefBorder;  // chip's top-left
    int outside = 0;
    double sum = 0;
    detail::window_sums(ref_raw.data() + first, ref_state.data() + first, cb, chip, sum, ref_valid_count,
                        outside);
    const int invalid = chip * chip - ref_valid_count - outside;
    const double limit = opt.max_invalid_fraction * chip * chip;
    if (outside > limit) return NodeFlag::kOutsideOverlap;
    if (outside + invalid > limit || ref_valid_count == 0) return NodeFlag::kMasked;
    const double mean = sum / ref_valid_count;
    const float mean_f = static_cast<float>(mean);
    const double ss = detail::zero_mean_template(ref_raw.data() + first, ref_state.data() + first, cb, chip,
                                                 mean_f, okf.data(), t0.data());
    // Invalid pixels take the mean, so that the gradients of the refinement do not see steps at holes.
    detail::fill_invalid(ref_raw.data(), ref_state.data(), static_cast<int>(ref_raw.size()), mean_f);
    t0_norm = std::sqrt(ss);
    ref_std = std::sqrt(ss / ref_valid_count);
    if (ref_std <= texture_floor(mean)) return NodeFlag::kNoTexture;
    return NodeFlag::kValid;
  }

  // Reads the secondary buffer around the integer guess; fills invalid pixels with the mean of the valid.
  NodeFlag load_secondary(const ImageWindow& sec, int col, int row) {
    const int c0 = col + gx - half - search - kRefineMargin;
    const int r0 = row + gy - half - search - kRefineMargin;
    read_rect(sec, c0, r0, wbuf, wbuf, sec_buf.data(), sec_ok.data());
    // Float partial sums suffice: the mean is only subtracted to keep values small, and any value would do
    // for the correlation itself.
    float sum = 0;
    int count = 0;
    detail::valid_sum(sec_buf.data(), sec_ok.data(), static_cast<int>(sec_buf.size()), sum, count);
    if (count == 0) {
      // Nothing valid: outside the image, or a hole.
      int outside = 0;
      for (unsigned char st : sec_ok) outside += st == 2;
      return outside * 2 > wbuf * wbuf ? NodeFlag::kOutsideOverlap : NodeFlag::kMasked;
    }
    sec_mean = static_cast<double>(sum) / count;
    sec_all_valid = count == wbuf * wbuf;
    if (sec_all_valid) return NodeFlag::kValid;  // no filling, no invalid-pixel tables needed
    const int ws = wbuf + 1;
    for (int j = 0; j < wbuf; ++j) {
      int row_bad = 0;
      int row_out = 0;
      for (int i = 0; i < wbuf; ++i) {
        const std::size_t k = static_cast<std::size_t>(j) * wbuf + i;
        if (sec_ok[k] != 1) sec_buf[k] = static_cast<float>(sec_mean);
        row_bad += sec_ok[k] != 1;
        row_out += sec_ok[k] == 2;
        sec_bad_sat[(j + 1) * ws + i + 1] = sec_bad_sat[j * ws + i + 1] + row_bad;
        sec_out_sat[(j + 1) * ws + i + 1] = sec_out_sat[j * ws + i + 1] + row_out;
      }
    }
    return NodeFlag::kValid;
  }

  // Invalid pixels of the secondary chip whose top-left corner is at buffer position (bx, by).
  void chip_invalid(int bx, int by, int& bad, int& out) const {
    if (sec_all_valid) {
      bad = out = 0;
      return;
    }
    bx = std::clamp(bx, 0, wbuf - chip);
    by = std::clamp(by, 0, wbuf - chip);
    const int ws = wbuf + 1;
    auto box = [&](const std::vector<int>& sat) {
      return sat[(by + chip) * ws + bx + chip] - sat[by * ws + bx + chip] - sat[(by + chip) * ws + bx] +
             sat[by * ws + bx];
    };
    bad = box(sec_bad_sat);
    out = box(sec_out_sat);
  }

  // Zero-mean NCC of the template against every offset of the search window, offsets (kx, ky) in
  // [0, 2S]^2 for displacements (gx - S + kx, gy - S + ky). Returns false when the window is constant.
  bool ncc_surface();

  // surface(kx, ky) = sum_j t0(j) window(j + k), through FFTW (large searches).
  void numerator_fft();

  // The same sum computed directly: faster than three FFTs for small searches (fine pass).
  void numerator_spatial();

  // Integer peak of a (2S+1)^2 surface and its SNR: the peak over the highest other local maximum of the
  // surface (a surface-border sample counts when it is not below its neighbours), floored by the mean
  // |surface| so that a lone peak on a flat surface is not rated infinite. A local maximum adjacent to the
  // peak is part of its lobe and ignored.
  static void peak_and_snr(const std::vector<float>& surf, int m, int& px, int& py, float& peak, float& snr) {
    px = py = 0;
    peak = -std::numeric_limits<float>::infinity();
    for (int y = 0; y < m; ++y)
      for (int x = 0; x < m; ++x)
        if (surf[y * m + x] > peak) {
          peak = surf[y * m + x];
          px = x;
          py = y;
        }
    snr = static_cast<float>(peak / second_level(surf, m, px, py));
  }

  // The integer peak of `surface` ((2S + 1)^2, offsets from the integer guess), its SNR, and whether the
  // node can go on from it: kNoPeak when no offset correlates positively, kSearchBorder when the peak lies
  // on the border of the search (the true maximum may lie beyond it). Shared by the ncc and phase methods.
  struct SurfacePeak {
    int px = 0, py = 0;
    float peak = 0, snr = 0;
    NodeFlag flag = NodeFlag::kValid;
  };
  SurfacePeak find_peak() const {
    const int m = 2 * search + 1;
    SurfacePeak p;
    peak_and_snr(surface, m, p.px, p.py, p.peak, p.snr);
    if (!(p.peak > 0))
      p.flag = NodeFlag::kNoPeak;
    else if (p.px == 0 || p.py == 0 || p.px == m - 1 || p.py == m - 1)
      p.flag = NodeFlag::kSearchBorder;
    return p;
  }

  // The level the peak at (px, py) is compared with (see peak_and_snr).
  static double second_level(const std::vector<float>& surf, int m, int px, int py) {
    double second = 0;
    double sum = 0;
    for (int y = 0; y < m; ++y)
      for (int x = 0; x < m; ++x) {
        const float v = surf[y * m + x];
        sum += std::abs(v);
        if (std::abs(x - px) <= 1 && std::abs(y - py) <= 1) continue;
        if (!(v > second)) continue;
        bool local_max = true;
        for (int dy = -1; dy <= 1 && local_max; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            const int nx = x + dx, ny = y + dy;
            if ((dx || dy) && nx >= 0 && ny >= 0 && nx < m && ny < m && surf[ny * m + nx] > v) {
              local_max = false;
              break;
            }
          }
        if (local_max) second = v;
      }
    const double mean_abs = sum / (static_cast<double>(m) * m);
    return std::max({second, mean_abs, 1e-6});
  }

  // Sub-pixel offset of the vertex of a 1-D parabola (or Gaussian) through (-1, a), (0, b), (1, c).
  static double vertex(double a, double b, double c, bool gaussian) {
    if (gaussian && a > 0 && b > 0 && c > 0) {
      a = std::log(a);
      b = std::log(b);
      c = std::log(c);
    }
    const double den = a - 2 * b + c;
    if (!(den < 0)) return 0.0;
    return std::clamp(0.5 * (a - c) / den, -0.5, 0.5);
  }

  // Windowed-sinc interpolation of the secondary chip displaced by (dx, dy) from the node: interp_out(j, i)
  // = sec(col - half + i + dx, row - half + j + dy). Requires |d - g| <= S + 1.
  void interpolate_chip(double dx, double dy) {
    const double ux = dx - gx + search + kRefineMargin;
    const double uy = dy - gy + search + kRefineMargin;
    const int ix = static_cast<int>(std::floor(ux));
    const int iy = static_cast<int>(std::floor(uy));
    float wx[2 * kLanczos], wy[2 * kLanczos];
    lanczos_weights(ux - ix, wx);
    lanczos_weights(uy - iy, wy);
    static_assert(2 * kLanczos == 8, "separable_8tap interpolates with 8 taps");
    const float* src =
        sec_buf.data() + static_cast<std::size_t>(iy - kLanczos + 1) * wbuf + ix - kLanczos + 1;
    detail::separable_8tap(src, wbuf, wx, wy, chip, interp_tmp.data(), interp_out.data());
    interp_ready = true;
    interp_dx = dx;
    interp_dy = dy;
  }

  // Tap t sits at x = frac - (t - kLanczos + 1), an integer away from frac: sin(pi x) = +-sin(pi frac), and
  // sin(pi x / kLanczos) follows from sin and cos of pi frac / kLanczos by the angle-sum formula. Three
  // trigonometric calls instead of two per tap.
  static void lanczos_weights(double frac, float* w) {
    const double pi = std::numbers::pi;
    const double sin_frac = std::sin(pi * frac);
    const double sin_a = std::sin(pi * frac / kLanczos), cos_a = std::cos(pi * frac / kLanczos);
    // sin and cos of pi * shift / kLanczos for every tap, computed once.
    static const auto tap_angles = [] {
      std::array<std::array<double, 2>, 2 * kLanczos> table{};
      for (int t = 0; t < 2 * kLanczos; ++t) {
        const double b = std::numbers::pi * (t - kLanczos + 1) / kLanczos;
        table[t] = {std::sin(b), std::cos(b)};
      }
      return table;
    }();
    double sum = 0;
    double tmp[2 * kLanczos];
    for (int t = 0; t < 2 * kLanczos; ++t) {
      const int shift = t - kLanczos + 1;  // x = frac - shift
      const double x = frac - shift;
      double v = 1.0;
      if (std::abs(x) > 1e-12) {
        const double sin_px = (shift % 2 == 0) ? sin_frac : -sin_frac;
        const double sin_px_over_n = sin_a * tap_angles[t][1] - cos_a * tap_angles[t][0];
        v = kLanczos * sin_px * sin_px_over_n / (pi * pi * x * x);
      }
      tmp[t] = v;
      sum += v;
    }
    for (int t = 0; t < 2 * kLanczos; ++t) w[t] = static_cast<float>(tmp[t] / sum);
  }

  // interp_out (minus the window mean) over the valid reference pixels: its sum, its sum of products with
  // the template, and their zero-mean NCC.
  struct InterpolatedFit {
    double sum = 0;
    double cross = 0;
    double ncc = 0;
  };
  InterpolatedFit fit_interpolated() const {
    float s1 = 0, s2 = 0, st = 0;
    detail::masked_moments(interp_out.data(), okf.data(), t0.data(), chip * chip,
                           static_cast<float>(sec_mean), s1, s2, st);
    const double var = s2 - double(s1) * s1 / ref_valid_count;
    InterpolatedFit fit{s1, st, 0.0};
    if (var > 0 && t0_norm > 0) fit.ncc = st / (t0_norm * std::sqrt(var));
    return fit;
  }
  double ncc_interpolated() const { return fit_interpolated().ncc; }

  // Gradients of the reference chip into grad_x / grad_y (once per node); false when they are degenerate
  // (no texture along some direction: the 2 x 2 Hessian of the translation is singular).
  double h00 = 0, h01 = 0, h11 = 0;
  bool compute_gradients() {
    if (gradients_ready) return gradients_ok;
    const int cb = chip + 2 * kRefBorder;
    // Gradients of the reference chip: the 7-point central difference (exact for polynomials up to degree
    // 6), close enough to the derivative of the interpolated signal that the iteration converges in two or
    // three steps (a 3-point difference needed five to six on highpassed texture).
    detail::gradients_7point(ref_raw.data() + static_cast<std::size_t>(kRefBorder) * cb + kRefBorder, cb,
                             okf.data(), chip, grad_x.data(), grad_y.data());
    float h00f = 0, h01f = 0, h11f = 0;
    detail::cross_moments(grad_x.data(), grad_y.data(), chip * chip, h00f, h01f, h11f);
    h00 = h00f, h01 = h01f, h11 = h11f;
    gradients_ready = true;
    const double det = h00 * h11 - h01 * h01;
    gradients_ok = det > 1e-12 * (h00 + h11) * (h00 + h11);
    return gradients_ok;
  }

  // Iterative re-matching (inverse-compositional Lucas-Kanade with a gain/offset model): the secondary chip
  // is interpolated at the current estimate, the residual against gain * ref + offset is projected on the
  // reference gradients, and the estimate moves until the step is below 1e-3 px. At the fixed point the
  // residual is orthogonal to the gradients: the exact displacement when the interpolation is exact, so the
  // choice of gradient operator changes only the convergence rate. Returns false when it diverges.
  bool refine_iterative(double& dx, double& dy, double& corr);

  // Affine refinement (Shape::kAffine) from the translation (dx, dy): on success the displacement, the
  // correlation and the gradients of `result` come from the affine fit; otherwise the translation stays and
  // the node is marked translation_only.
  void refine_affine(double& dx, double& dy, double& corr, NodeResult& result);

  // Final checks common to every method: invalid pixels of the matched secondary chip, SNR, correlation.
  NodeFlag check_match(double dx, double dy, float snr, double corr) const {
    const int bx = static_cast<int>(std::lround(dx - gx)) + search + kRefineMargin;
    const int by = static_cast<int>(std::lround(dy - gy)) + search + kRefineMargin;
    int bad = 0, out = 0;
    chip_invalid(bx, by, bad, out);
    const double limit = opt.max_invalid_fraction * chip * chip;
    if (out > limit) return NodeFlag::kOutsideOverlap;
    if (bad > limit) return NodeFlag::kMasked;
    if (!(snr >= opt.min_snr) || !(corr >= opt.min_corr)) return NodeFlag::kLowSnr;
    return NodeFlag::kValid;
  }

  // Sets the flag of a matched node; a node that is not valid keeps no displacement nor gradients.
  NodeResult finish(NodeResult& result, double dx, double dy, float snr, double corr) const {
    result.corr = static_cast<float>(corr);
    result.flag = check_match(dx, dy, snr, corr);
    if (result.flag == NodeFlag::kValid) {
      result.dx_px = static_cast<float>(dx);
      result.dy_px = static_cast<float>(dy);
    } else {
      result.dudx = result.dudy = result.dvdx = result.dvdy = std::numeric_limits<float>::quiet_NaN();
      result.translation_only = false;
    }
    return result;
  }

  NodeResult match_ncc();

  // Phase correlation (COSI-Corr style). Both chips are tapered with a raised cosine; the normalized
  // cross-power keeps only the frequencies whose amplitude is within e^3 of the geometric-mean amplitude
  // (weaker ones carry mostly noise and aliasing). The integer peak of its inverse transform gives the first
  // estimate; then the secondary chip is re-interpolated at the current estimate and the residual shift is
  // read from the phase plane of the masked cross-power (Gauss-Newton on sum W |Q - exp(-i w.d)|^2) until it
  // is below 1e-3 px. Re-interpolating makes both tapered chips cover the same ground, which removes the bias
  // a taper fixed on the integer guess would leave.
  std::vector<float> taper, phase_chip, qre, qim, qweight;

  // Cross-power of the template and a C x C secondary chip; false when the chip has no texture.
  bool cross_power(const float* sec_chip);

  // Gauss-Newton fit of the phase plane of the masked cross-power, from (ex, ey).
  void fit_phase_plane(double& ex, double& ey) const;

  NodeResult match_phase();

  // Starts a node: the reference chip at (col, row) and the secondary buffer around the integer guess
  // (the nearest integer to (gdx, gdy); 0 where not finite). Returns kValid or the flag that ends the node.
  NodeFlag load_chips(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double gdx,
                      double gdy) {
    gx = std::isfinite(gdx) ? static_cast<int>(std::lround(gdx)) : 0;
    gy = std::isfinite(gdy) ? static_cast<int>(std::lround(gdy)) : 0;
    gradients_ready = false;
    interp_ready = false;
    const NodeFlag flag = load_reference(ref, col, row);
    return flag != NodeFlag::kValid ? flag : load_secondary(sec, col, row);
  }

  NodeResult match(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double gdx, double gdy) {
    NodeResult result;
    result.flag = load_chips(ref, sec, col, row, gdx, gdy);
    if (result.flag != NodeFlag::kValid) return result;
    if (opt.method == Method::kPhase) return match_phase();
    return match_ncc();
  }

  NodeResult evaluate(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double dx,
                      double dy) {
    NodeResult result;
    if (!std::isfinite(dx) || !std::isfinite(dy)) {
      result.flag = NodeFlag::kNoPeak;
      return result;
    }
    // The chips as match() loads them, centred on the given displacement.
    result.flag = load_chips(ref, sec, col, row, dx, dy);
    if (result.flag != NodeFlag::kValid) return result;
    if (!ncc_surface()) {
      result.flag = NodeFlag::kNoTexture;
      return result;
    }
    interpolate_chip(dx, dy);
    const double corr = ncc_interpolated();
    // SNR of the given displacement: its correlation over the highest local maximum away from it (the
    // surface's own peak is not needed: the displacement is given).
    const int m = 2 * search + 1;
    const int cx = std::clamp(static_cast<int>(std::lround(dx)) - gx + search, 0, m - 1);
    const int cy = std::clamp(static_cast<int>(std::lround(dy)) - gy + search, 0, m - 1);
    result.snr = static_cast<float>(corr / second_level(surface, m, cx, cy));
    return finish(result, dx, dy, result.snr, corr);
  }
};

}  // namespace deforma::correlate
