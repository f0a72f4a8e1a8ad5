// Chip matching: zero-mean NCC through FFTW with summed-area-table normalization, phase correlation with
// a phase-plane fit, and the sub-pixel refinements compared in docs/correlate.md.
#include "deforma/correlate/matcher.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "correlate/fft_plans.hpp"
#include "deforma/core/error.hpp"

namespace deforma::correlate {

using detail::FftwArray;

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

std::string to_string(Method method) {
  switch (method) {
    case Method::kNcc: return "ncc";
    case Method::kPhase: return "phase";
    case Method::kFlow: return "flow";
  }
  return "?";
}

std::string to_string(Prefilter prefilter) {
  switch (prefilter) {
    case Prefilter::kNone: return "none";
    case Prefilter::kHighpass: return "highpass";
    case Prefilter::kWallis: return "wallis";
    case Prefilter::kOrientation: return "orientation";
  }
  return "?";
}

const char* to_string(NodeFlag flag) {
  switch (flag) {
    case NodeFlag::kValid: return "valid";
    case NodeFlag::kLowSnr: return "low_snr";
    case NodeFlag::kNoTexture: return "no_texture";
    case NodeFlag::kMasked: return "masked";
    case NodeFlag::kSearchBorder: return "search_border";
    case NodeFlag::kOutsideOverlap: return "outside_overlap";
    case NodeFlag::kNoPeak: return "no_peak";
  }
  return "?";
}

namespace {
// Half-width of the windowed-sinc (Lanczos) interpolator of the iterative refinement: 2 * kLanczos taps.
// Lanczos-4 was measured against Lanczos-3/6 on Fourier-shifted Landsat texture (docs/correlate.md).
constexpr int kLanczos = 4;
// Extra pixels kept around the search window for the interpolation of the refinement.
constexpr int kRefineMargin = kLanczos + 2;
}  // namespace

void MatchOptions::validate() const {
  if (chip_px < 8 || chip_px > 1024)
    throw InvalidArgument("--chip: " + std::to_string(chip_px) + " px is out of range (expected 8 to 1024)");
  if (search_px < 2 || search_px > 2048)
    throw InvalidArgument("--search: " + std::to_string(search_px) +
                          " px is out of range (expected 2 to 2048 px)");
  if (method == Method::kPhase && 2 * search_px >= chip_px && (coarse_above_px <= 0 || search_px <= coarse_above_px))
    throw InvalidArgument("--search: the phase method measures displacements smaller than half the chip; " +
                          std::to_string(search_px) + " px needs --chip > " + std::to_string(2 * search_px) +
                          " (or a coarse-to-fine search)");
  if (!std::isfinite(min_snr) || min_snr < 0)
    throw InvalidArgument("--min-snr: expected a finite value >= 0, got " + std::to_string(min_snr));
  if (!std::isfinite(min_corr) || min_corr < -1 || min_corr > 1)
    throw InvalidArgument("--min-corr: expected a value in [-1, 1], got " + std::to_string(min_corr));
  if (!std::isfinite(min_texture) || min_texture < 0)
    throw InvalidArgument("--min-texture: expected a finite value >= 0, got " + std::to_string(min_texture));
  if (!(max_invalid_fraction >= 0 && max_invalid_fraction < 1))
    throw InvalidArgument("--max-invalid: expected a fraction in [0, 1), got " +
                          std::to_string(max_invalid_fraction));
  if (max_iterations < 0 || max_iterations > 100)
    throw InvalidArgument("--max-iterations: expected 0 to 100, got " + std::to_string(max_iterations));
  if (coarse_above_px < 0) throw InvalidArgument("--coarse-above: expected >= 0 px");
}

int MatchOptions::halo_px() const { return chip_px / 2 + 1 + search_px + kRefineMargin; }

// ---------------------------------------------------------------------------------------------------------
struct Matcher::Impl {
  MatchOptions opt;
  int chip = 0;    // C
  int search = 0;  // S
  int half = 0;    // C / 2: chip pixel j covers image pixel node - half + j
  int wsearch = 0; // C + 2S: secondary search window
  int wbuf = 0;    // C + 2S + 2M: secondary buffer with the interpolation margin
  int nfft = 0;    // FFT size of the NCC surface
  int nphase = 0;  // FFT size of the phase correlation (the chip)
  const detail::FftPlan2d* plan_ncc = nullptr;
  const detail::FftPlan2d* plan_phase = nullptr;

  // Reference chip with a one-pixel border (for gradients): (C + 2)^2, invalid pixels filled with the mean.
  std::vector<float> ref_raw;
  std::vector<unsigned char> ref_ok;  // C^2, validity of the chip core
  std::vector<float> t0;              // C^2, zero-mean template (0 at invalid pixels)
  double t0_norm = 0;                 // ||t0||
  double ref_std = 0;
  int ref_valid_count = 0;
  // Secondary buffer, origin (col + gx - half - S - M, row + gy - half - S - M).
  std::vector<float> sec_buf;
  std::vector<unsigned char> sec_ok;     // 1 valid, 0 invalid (nodata), 2 outside the window
  std::vector<int> sec_bad_sat;          // summed-area table of invalid pixels (any kind)
  std::vector<int> sec_out_sat;          // summed-area table of outside pixels
  double sec_mean = 0;
  int gx = 0, gy = 0;
  // NCC surface (2S + 1)^2.
  std::vector<float> surface;
  std::vector<double> sat1, sat2;
  FftwArray<float> real_a, real_b;
  FftwArray<fftwf_complex> spec_a, spec_b;
  // Refinement work space.
  std::vector<float> interp_tmp, interp_out, grad_x, grad_y;

  explicit Impl(const MatchOptions& o) : opt(o) {
    opt.validate();
    chip = opt.chip_px;
    search = opt.search_px;
    half = chip / 2;
    wsearch = chip + 2 * search;
    wbuf = wsearch + 2 * kRefineMargin;
    nfft = detail::fast_fft_size(wsearch);
    nphase = chip;
    plan_ncc = &detail::plan_2d(nfft);
    if (opt.method == Method::kPhase) plan_phase = &detail::plan_2d(nphase);
    const int nmax = std::max(nfft, nphase);
    real_a = detail::fftw_alloc<float>(static_cast<std::size_t>(nmax) * nmax);
    real_b = detail::fftw_alloc<float>(static_cast<std::size_t>(nmax) * nmax);
    spec_a = detail::fftw_alloc<fftwf_complex>(static_cast<std::size_t>(nmax) * (nmax / 2 + 1));
    spec_b = detail::fftw_alloc<fftwf_complex>(static_cast<std::size_t>(nmax) * (nmax / 2 + 1));
    ref_raw.resize(static_cast<std::size_t>(chip + 2) * (chip + 2));
    ref_ok.resize(static_cast<std::size_t>(chip) * chip);
    t0.resize(static_cast<std::size_t>(chip) * chip);
    sec_buf.resize(static_cast<std::size_t>(wbuf) * wbuf);
    sec_ok.resize(static_cast<std::size_t>(wbuf) * wbuf);
    sec_bad_sat.resize(static_cast<std::size_t>(wbuf + 1) * (wbuf + 1));
    sec_out_sat.resize(static_cast<std::size_t>(wbuf + 1) * (wbuf + 1));
    surface.resize(static_cast<std::size_t>(2 * search + 1) * (2 * search + 1));
    sat1.resize(static_cast<std::size_t>(wsearch + 1) * (wsearch + 1));
    sat2.resize(sat1.size());
    interp_tmp.resize(static_cast<std::size_t>(chip + 2 * kLanczos) * chip);
    interp_out.resize(static_cast<std::size_t>(chip) * chip);
    grad_x.resize(static_cast<std::size_t>(chip) * chip);
    grad_y.resize(static_cast<std::size_t>(chip) * chip);
  }

  static bool fetch(const ImageWindow& w, int c, int r, float& value, unsigned char& state) {
    const int lc = c - w.origin_col;
    const int lr = r - w.origin_row;
    if (!w.values || !w.values->contains(lc, lr)) {
      state = 2;
      return false;
    }
    value = (*w.values)(lc, lr);
    if ((w.valid && !(*w.valid)(lc, lr)) || !std::isfinite(value)) {
      state = 0;
      return false;
    }
    state = 1;
    return true;
  }

  double texture_floor(double mean) const { return std::max(opt.min_texture, 1e-5 * std::abs(mean)); }

  // Reads the reference chip; returns kValid or the flag that ends the node.
  NodeFlag load_reference(const ImageWindow& ref, int col, int row) {
    const int c0 = col - half - 1;
    const int r0 = row - half - 1;
    const int cb = chip + 2;
    int outside = 0;
    int invalid = 0;
    double sum = 0;
    ref_valid_count = 0;
    std::vector<unsigned char> border_ok(static_cast<std::size_t>(cb) * cb);
    for (int j = 0; j < cb; ++j) {
      for (int i = 0; i < cb; ++i) {
        float v = 0;
        unsigned char state = 0;
        fetch(ref, c0 + i, r0 + j, v, state);
        const bool core = i >= 1 && j >= 1 && i <= chip && j <= chip;
        ref_raw[j * cb + i] = state == 1 ? v : 0.0f;
        border_ok[j * cb + i] = state == 1;
        if (core) {
          ref_ok[(j - 1) * chip + (i - 1)] = state == 1;
          if (state == 1) {
            sum += v;
            ++ref_valid_count;
          } else if (state == 2) {
            ++outside;
          } else {
            ++invalid;
          }
        }
      }
    }
    const double limit = opt.max_invalid_fraction * chip * chip;
    if (outside > limit) return NodeFlag::kOutsideOverlap;
    if (outside + invalid > limit || ref_valid_count == 0) return NodeFlag::kMasked;
    const double mean = sum / ref_valid_count;
    double ss = 0;
    for (int j = 0; j < chip; ++j) {
      for (int i = 0; i < chip; ++i) {
        const int k = j * chip + i;
        const double d = ref_ok[k] ? ref_raw[(j + 1) * cb + i + 1] - mean : 0.0;
        t0[k] = static_cast<float>(d);
        ss += d * d;
      }
    }
    for (std::size_t k = 0; k < ref_raw.size(); ++k)
      if (!border_ok[k]) ref_raw[k] = static_cast<float>(mean);
    t0_norm = std::sqrt(ss);
    ref_std = std::sqrt(ss / ref_valid_count);
    if (ref_std <= texture_floor(mean)) return NodeFlag::kNoTexture;
    return NodeFlag::kValid;
  }

  // Reads the secondary buffer around the integer guess; fills invalid pixels with the mean of the valid.
  NodeFlag load_secondary(const ImageWindow& sec, int col, int row) {
    const int c0 = col + gx - half - search - kRefineMargin;
    const int r0 = row + gy - half - search - kRefineMargin;
    double sum = 0;
    int count = 0;
    for (int j = 0; j < wbuf; ++j) {
      for (int i = 0; i < wbuf; ++i) {
        float v = 0;
        unsigned char state = 0;
        fetch(sec, c0 + i, r0 + j, v, state);
        const std::size_t k = static_cast<std::size_t>(j) * wbuf + i;
        sec_ok[k] = state;
        sec_buf[k] = v;
        if (state == 1) {
          sum += v;
          ++count;
        }
      }
    }
    if (count == 0) {
      // Nothing valid: outside the image, or a hole.
      int outside = 0;
      for (unsigned char s : sec_ok) outside += s == 2;
      return outside * 2 > wbuf * wbuf ? NodeFlag::kOutsideOverlap : NodeFlag::kMasked;
    }
    sec_mean = sum / count;
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
  bool ncc_surface() {
    const int n = nfft;
    const int nc = n / 2 + 1;
    float* a = real_a.get();
    float* b = real_b.get();
    std::fill(a, a + static_cast<std::size_t>(n) * n, 0.0f);
    std::fill(b, b + static_cast<std::size_t>(n) * n, 0.0f);
    for (int j = 0; j < chip; ++j)
      for (int i = 0; i < chip; ++i) a[j * n + i] = t0[j * chip + i];
    // The secondary window minus its mean: the template sums to zero, so the mean does not change the
    // numerator, and removing it keeps float precision for large digital numbers.
    const int off = kRefineMargin;
    const int ws = wsearch + 1;
    for (int j = 0; j < wsearch; ++j) {
      double row1 = 0, row2 = 0;
      for (int i = 0; i < wsearch; ++i) {
        const double v = sec_buf[static_cast<std::size_t>(j + off) * wbuf + i + off] - sec_mean;
        b[j * n + i] = static_cast<float>(v);
        row1 += v;
        row2 += v * v;
        sat1[(j + 1) * ws + i + 1] = sat1[j * ws + i + 1] + row1;
        sat2[(j + 1) * ws + i + 1] = sat2[j * ws + i + 1] + row2;
      }
    }
    fftwf_execute_dft_r2c(plan_ncc->forward, a, spec_a.get());
    fftwf_execute_dft_r2c(plan_ncc->forward, b, spec_b.get());
    fftwf_complex* sa = spec_a.get();
    fftwf_complex* sb = spec_b.get();
    for (int k = 0; k < n * nc; ++k) {
      // conj(A) * B: correlation sum_j t(j) s(j + k)
      const float re = sa[k][0] * sb[k][0] + sa[k][1] * sb[k][1];
      const float im = sa[k][0] * sb[k][1] - sa[k][1] * sb[k][0];
      sb[k][0] = re;
      sb[k][1] = im;
    }
    fftwf_execute_dft_c2r(plan_ncc->inverse, sb, a);
    const double scale = 1.0 / (static_cast<double>(n) * n);
    const int m = 2 * search + 1;
    const double count = static_cast<double>(chip) * chip;
    bool any = false;
    for (int ky = 0; ky < m; ++ky) {
      for (int kx = 0; kx < m; ++kx) {
        const double s1 = sat1[(ky + chip) * ws + kx + chip] - sat1[ky * ws + kx + chip] -
                          sat1[(ky + chip) * ws + kx] + sat1[ky * ws + kx];
        const double s2 = sat2[(ky + chip) * ws + kx + chip] - sat2[ky * ws + kx + chip] -
                          sat2[(ky + chip) * ws + kx] + sat2[ky * ws + kx];
        const double var = std::max(0.0, s2 - s1 * s1 / count);
        const double floor = texture_floor(sec_mean);
        float value = 0.0f;
        if (var > floor * floor * count) {
          value = static_cast<float>(a[ky * n + kx] * scale / (t0_norm * std::sqrt(var)));
          any = true;
        }
        surface[ky * m + kx] = value;
      }
    }
    return any;
  }

  // Integer peak of a (2S+1)^2 surface and its SNR: peak / mean |surface| outside the peak neighbourhood.
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
    const int radius = m >= 7 ? 2 : 1;
    double sum = 0;
    int count = 0;
    for (int y = 0; y < m; ++y)
      for (int x = 0; x < m; ++x)
        if (std::abs(x - px) > radius || std::abs(y - py) > radius) {
          sum += std::abs(surf[y * m + x]);
          ++count;
        }
    const double mean_abs = count > 0 ? sum / count : 0.0;
    snr = mean_abs > 0 ? static_cast<float>(peak / mean_abs) : std::numeric_limits<float>::infinity();
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
    const int rows = chip + 2 * kLanczos - 1;
    for (int r = 0; r < rows; ++r) {
      const float* src = sec_buf.data() + static_cast<std::size_t>(iy - kLanczos + 1 + r) * wbuf + ix - kLanczos + 1;
      float* dst = interp_tmp.data() + static_cast<std::size_t>(r) * chip;
      for (int i = 0; i < chip; ++i) {
        float acc = 0;
        for (int t = 0; t < 2 * kLanczos; ++t) acc += wx[t] * src[i + t];
        dst[i] = acc;
      }
    }
    for (int j = 0; j < chip; ++j) {
      float* dst = interp_out.data() + static_cast<std::size_t>(j) * chip;
      for (int i = 0; i < chip; ++i) dst[i] = 0;
      for (int t = 0; t < 2 * kLanczos; ++t) {
        const float w = wy[t];
        const float* src = interp_tmp.data() + static_cast<std::size_t>(j + t) * chip;
        for (int i = 0; i < chip; ++i) dst[i] += w * src[i];
      }
    }
  }

  static void lanczos_weights(double frac, float* w) {
    double sum = 0;
    double tmp[2 * kLanczos];
    for (int t = 0; t < 2 * kLanczos; ++t) {
      const double x = frac - (t - kLanczos + 1);
      double v = 1.0;
      if (std::abs(x) > 1e-12) {
        const double px = std::numbers::pi * x;
        v = kLanczos * std::sin(px) * std::sin(px / kLanczos) / (px * px);
      }
      tmp[t] = v;
      sum += v;
    }
    for (int t = 0; t < 2 * kLanczos; ++t) w[t] = static_cast<float>(tmp[t] / sum);
  }

  // Zero-mean NCC of the template with interp_out, over valid reference pixels.
  double ncc_interpolated() const {
    double s1 = 0, s2 = 0, st = 0;
    for (int k = 0; k < chip * chip; ++k) {
      if (!ref_ok[k]) continue;
      const double s = interp_out[k] - sec_mean;
      s1 += s;
      s2 += s * s;
      st += t0[k] * s;
    }
    const double var = s2 - s1 * s1 / ref_valid_count;
    if (!(var > 0) || !(t0_norm > 0)) return 0.0;
    return st / (t0_norm * std::sqrt(var));
  }

  // Iterative re-matching (inverse-compositional Lucas-Kanade with a gain/offset model): the secondary chip
  // is interpolated at the current estimate, the residual against gain * ref + offset is projected on the
  // reference gradients, and the estimate moves until the step is below 1e-3 px. At the fixed point the
  // residual is orthogonal to the gradients: the exact displacement when the interpolation is exact, so the
  // choice of gradient operator changes only the convergence rate. Returns false when it diverges.
  bool refine_iterative(double& dx, double& dy, double& corr) {
    const int cb = chip + 2;
    double h00 = 0, h01 = 0, h11 = 0;
    for (int j = 0; j < chip; ++j) {
      for (int i = 0; i < chip; ++i) {
        const int k = j * chip + i;
        const float* p = ref_raw.data() + (j + 1) * cb + i + 1;
        const float gxv = ref_ok[k] ? 0.5f * (p[1] - p[-1]) : 0.0f;
        const float gyv = ref_ok[k] ? 0.5f * (p[cb] - p[-cb]) : 0.0f;
        grad_x[k] = gxv;
        grad_y[k] = gyv;
        h00 += gxv * gxv;
        h01 += gxv * gyv;
        h11 += gyv * gyv;
      }
    }
    const double det = h00 * h11 - h01 * h01;
    if (!(det > 1e-12 * (h00 + h11) * (h00 + h11))) return false;
    const double t_var = t0_norm * t0_norm;
    for (int it = 0; it <= opt.max_iterations; ++it) {
      if (std::abs(dx - gx) > search + 1 || std::abs(dy - gy) > search + 1) return false;
      interpolate_chip(dx, dy);
      double s1 = 0, st = 0, s2 = 0;
      for (int k = 0; k < chip * chip; ++k) {
        if (!ref_ok[k]) continue;
        const double s = interp_out[k] - sec_mean;
        s1 += s;
        s2 += s * s;
        st += t0[k] * s;
      }
      const double s_mean = s1 / ref_valid_count;
      const double var = s2 - s1 * s1 / ref_valid_count;
      corr = var > 0 ? st / (t0_norm * std::sqrt(var)) : 0.0;
      if (it == opt.max_iterations) break;
      const double gain = st / t_var;  // least-squares gain of s against t0
      if (!(gain > 0)) return false;
      double bx = 0, by = 0;
      for (int k = 0; k < chip * chip; ++k) {
        if (!ref_ok[k]) continue;
        const double e = (interp_out[k] - sec_mean - s_mean) - gain * t0[k];
        bx += grad_x[k] * e;
        by += grad_y[k] * e;
      }
      double step_x = -(h11 * bx - h01 * by) / det / gain;
      double step_y = -(h00 * by - h01 * bx) / det / gain;
      const double len = std::hypot(step_x, step_y);
      if (len > 1.0) {
        step_x /= len;
        step_y /= len;
      }
      dx += step_x;
      dy += step_y;
      if (len < 1e-3) {
        interpolate_chip(dx, dy);
        corr = ncc_interpolated();
        break;
      }
    }
    return std::isfinite(dx) && std::isfinite(dy);
  }

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

  NodeResult match_ncc(int col, int row) {
    NodeResult result;
    if (!ncc_surface()) {
      result.flag = NodeFlag::kNoTexture;
      return result;
    }
    const int m = 2 * search + 1;
    int px = 0, py = 0;
    float peak = 0, snr = 0;
    peak_and_snr(surface, m, px, py, peak, snr);
    result.corr = peak;
    result.snr = snr;
    if (!(peak > 0)) {
      result.flag = NodeFlag::kNoPeak;
      return result;
    }
    if (px == 0 || py == 0 || px == m - 1 || py == m - 1) {
      result.flag = NodeFlag::kSearchBorder;
      return result;
    }
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
    (void)col;
    (void)row;
    result.corr = static_cast<float>(corr);
    result.flag = check_match(dx, dy, snr, corr);
    if (result.flag == NodeFlag::kValid) {
      result.dx_px = static_cast<float>(dx);
      result.dy_px = static_cast<float>(dy);
    }
    return result;
  }

  // Phase correlation of the reference chip and the secondary chip at the integer guess, both tapered with a
  // raised cosine; frequencies whose cross-power amplitude is far below the typical one are masked out. The
  // integer peak of the inverse transform is refined by fitting the phase plane of the masked normalized
  // cross-power (Gauss-Newton on sum W |Q - exp(-i w.d)|^2), as COSI-Corr does.
  NodeResult match_phase() {
    NodeResult result;
    const int n = nphase;
    const int nc = n / 2 + 1;
    float* a = real_a.get();
    float* b = real_b.get();
    std::vector<float> taper(n);
    for (int i = 0; i < n; ++i) taper[i] = static_cast<float>(0.5 - 0.5 * std::cos(2 * std::numbers::pi * (i + 0.5) / n));
    double sec_sum = 0;
    const int off = search + kRefineMargin;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) sec_sum += sec_buf[static_cast<std::size_t>(j + off) * wbuf + i + off];
    const double sec_chip_mean = sec_sum / (n * n);
    double sec_ss = 0;
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < n; ++i) {
        const float w = taper[i] * taper[j];
        a[j * n + i] = w * t0[j * chip + i];
        const double s = sec_buf[static_cast<std::size_t>(j + off) * wbuf + i + off] - sec_chip_mean;
        sec_ss += s * s;
        b[j * n + i] = static_cast<float>(w * s);
      }
    }
    if (!(std::sqrt(sec_ss / (n * n)) > texture_floor(sec_chip_mean + sec_mean * 0))) {
      result.flag = NodeFlag::kNoTexture;
      return result;
    }
    fftwf_execute_dft_r2c(plan_phase->forward, a, spec_a.get());
    fftwf_execute_dft_r2c(plan_phase->forward, b, spec_b.get());
    fftwf_complex* sa = spec_a.get();
    fftwf_complex* sb = spec_b.get();
    const int total = n * nc;
    std::vector<float> qre(total), qim(total), weight(total);
    double log_sum = 0;
    int log_count = 0;
    for (int k = 0; k < total; ++k) {
      const double re = double(sa[k][0]) * sb[k][0] + double(sa[k][1]) * sb[k][1];
      const double im = double(sa[k][0]) * sb[k][1] - double(sa[k][1]) * sb[k][0];
      const double mag = std::hypot(re, im);
      qre[k] = mag > 0 ? static_cast<float>(re / mag) : 0.0f;
      qim[k] = mag > 0 ? static_cast<float>(im / mag) : 0.0f;
      weight[k] = static_cast<float>(mag);
      if (mag > 0 && k != 0) {
        log_sum += std::log(mag);
        ++log_count;
      }
    }
    // Frequency mask: keep frequencies whose cross-power amplitude is within e^3 (~20x) below the geometric
    // mean amplitude; weaker ones carry mostly noise and aliasing.
    const double threshold = log_count > 0 ? std::exp(log_sum / log_count - 3.0) : 0.0;
    for (int k = 0; k < total; ++k) {
      const bool keep = k != 0 && weight[k] > threshold;
      weight[k] = keep ? 1.0f : 0.0f;
      sb[k][0] = keep ? qre[k] : 0.0f;
      sb[k][1] = keep ? qim[k] : 0.0f;
    }
    fftwf_execute_dft_c2r(plan_phase->inverse, sb, a);
    // Surface over displacements -S..S around the guess (wrapping indices).
    const int m = 2 * search + 1;
    std::vector<float> surf(static_cast<std::size_t>(m) * m);
    const float scale = 1.0f / static_cast<float>(n * n);
    for (int y = 0; y < m; ++y)
      for (int x = 0; x < m; ++x) {
        const int sx = ((x - search) % n + n) % n;
        const int sy = ((y - search) % n + n) % n;
        surf[y * m + x] = a[sy * n + sx] * scale;
      }
    int px = 0, py = 0;
    float peak = 0, snr = 0;
    peak_and_snr(surf, m, px, py, peak, snr);
    result.snr = snr;
    if (!(peak > 0)) {
      result.flag = NodeFlag::kNoPeak;
      return result;
    }
    if (px == 0 || py == 0 || px == m - 1 || py == m - 1) {
      result.flag = NodeFlag::kSearchBorder;
      return result;
    }
    double ex = px - search + vertex(surf[py * m + px - 1], peak, surf[py * m + px + 1], false);
    double ey = py - search + vertex(surf[(py - 1) * m + px], peak, surf[(py + 1) * m + px], false);
    if (opt.subpixel == Subpixel::kIterative) {
      for (int it = 0; it < opt.max_iterations; ++it) {
        double h00 = 0, h01 = 0, h11 = 0, g0 = 0, g1 = 0;
        for (int v = 0; v < n; ++v) {
          const double wy = 2 * std::numbers::pi * (v <= n / 2 ? v : v - n) / n;
          for (int u = 0; u < nc; ++u) {
            const int k = v * nc + u;
            if (weight[k] == 0) continue;
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
        if (!(det > 0) || !(h00 > 0)) break;
        double sx = -(h11 * g0 - h01 * g1) / det;
        double sy = -(h00 * g1 - h01 * g0) / det;
        const double len = std::hypot(sx, sy);
        if (len > 0.5) {
          sx *= 0.5 / len;
          sy *= 0.5 / len;
        }
        ex += sx;
        ey += sy;
        if (len < 1e-4) break;
      }
    }
    if (std::abs(ex) > search || std::abs(ey) > search) {
      result.flag = NodeFlag::kSearchBorder;
      return result;
    }
    const double dx = gx + ex;
    const double dy = gy + ey;
    interpolate_chip(dx, dy);
    const double corr = ncc_interpolated();
    result.corr = static_cast<float>(corr);
    result.flag = check_match(dx, dy, snr, opt.min_corr);
    if (!(corr >= opt.min_corr) && result.flag == NodeFlag::kValid) result.flag = NodeFlag::kLowSnr;
    if (result.flag == NodeFlag::kValid) {
      result.dx_px = static_cast<float>(dx);
      result.dy_px = static_cast<float>(dy);
    }
    return result;
  }

  NodeResult match(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double gdx, double gdy) {
    NodeResult result;
    gx = std::isfinite(gdx) ? static_cast<int>(std::lround(gdx)) : 0;
    gy = std::isfinite(gdy) ? static_cast<int>(std::lround(gdy)) : 0;
    result.flag = load_reference(ref, col, row);
    if (result.flag != NodeFlag::kValid) return result;
    result.flag = load_secondary(sec, col, row);
    if (result.flag != NodeFlag::kValid) return result;
    if (opt.method == Method::kPhase) return match_phase();
    return match_ncc(col, row);
  }

  NodeResult evaluate(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double dx, double dy) {
    NodeResult result;
    if (!std::isfinite(dx) || !std::isfinite(dy)) {
      result.flag = NodeFlag::kNoPeak;
      return result;
    }
    gx = static_cast<int>(std::lround(dx));
    gy = static_cast<int>(std::lround(dy));
    result.flag = load_reference(ref, col, row);
    if (result.flag != NodeFlag::kValid) return result;
    result.flag = load_secondary(sec, col, row);
    if (result.flag != NodeFlag::kValid) return result;
    if (!ncc_surface()) {
      result.flag = NodeFlag::kNoTexture;
      return result;
    }
    const int m = 2 * search + 1;
    int px = 0, py = 0;
    float peak = 0, snr = 0;
    peak_and_snr(surface, m, px, py, peak, snr);
    interpolate_chip(dx, dy);
    const double corr = ncc_interpolated();
    // SNR of the given displacement: its correlation over the mean |surface| away from it.
    double sum = 0;
    int count = 0;
    const int cx = search, cy = search;
    const int radius = m >= 7 ? 2 : 1;
    for (int y = 0; y < m; ++y)
      for (int x = 0; x < m; ++x)
        if (std::abs(x - cx) > radius || std::abs(y - cy) > radius) {
          sum += std::abs(surface[y * m + x]);
          ++count;
        }
    const double mean_abs = count > 0 ? sum / count : 0.0;
    result.snr = mean_abs > 0 ? static_cast<float>(corr / mean_abs) : std::numeric_limits<float>::infinity();
    result.corr = static_cast<float>(corr);
    result.flag = check_match(dx, dy, result.snr, corr);
    if (result.flag == NodeFlag::kValid) {
      result.dx_px = static_cast<float>(dx);
      result.dy_px = static_cast<float>(dy);
    }
    return result;
  }
};

Matcher::Matcher(const MatchOptions& options) {
  MatchOptions own = options;
  if (own.method == Method::kFlow) own.method = Method::kNcc;  // flow nodes are evaluated with NCC
  impl_ = std::make_unique<Impl>(own);
}
Matcher::~Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;

const MatchOptions& Matcher::options() const { return impl_->opt; }

NodeResult Matcher::match(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double guess_dx_px,
                          double guess_dy_px) {
  return impl_->match(ref, sec, col, row, guess_dx_px, guess_dy_px);
}

NodeResult Matcher::evaluate(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double dx_px,
                             double dy_px) {
  return impl_->evaluate(ref, sec, col, row, dx_px, dy_px);
}

NodeResult evaluate_displacement(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double dx_px,
                                 double dy_px, const MatchOptions& options) {
  Matcher matcher(options);
  return matcher.evaluate(ref, sec, col, row, dx_px, dy_px);
}

}  // namespace deforma::correlate
