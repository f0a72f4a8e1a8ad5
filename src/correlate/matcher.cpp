// Chip matching: zero-mean NCC through FFTW with summed-area-table normalization, phase correlation with
// a phase-plane fit, and the sub-pixel refinements compared in docs/correlate.md.
#include <fmt/format.h>

#include "deforma/correlate/matcher.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "correlate/affine_refine.hpp"
#include "correlate/fft_plans.hpp"
#include "correlate/kernels.hpp"
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

namespace {
// Half-width of the windowed-sinc (Lanczos) interpolator of the iterative refinement: 2 * kLanczos taps.
// Lanczos-4 was measured against Lanczos-3/6 on Fourier-shifted Landsat texture (docs/correlate.md).
constexpr int kLanczos = 4;
// Extra pixels kept around the search window for the interpolation of the refinement.
constexpr int kRefineMargin = kLanczos + 2;
constexpr int kRefBorder = 3;
// Relative gain of the affine fit over the translation, (corr_affine - corr_translation) / (1 - corr_affine),
// below which the translation's displacement is kept and above which the affine one is (refine_affine).
// Measured: 0.004 to 0.083 (10th to 90th percentile) on the stable rock of the Yahtse pair; above 0.3 on
// Landsat texture warped by gradients of 0.004 px/px and more, above 1 from 0.01 px/px.
constexpr double kAffineFromGain = 0.1;
constexpr double kAffineFullGain = 0.3;
// The affine fit iterates only where its first Gauss-Newton step predicts a relative gain of at least
// kAffineFromGain, from which the model selection starts using the affine displacement; below, the
// displacement is the translation's and the gradients are the first step's. On the Yahtse pair 89 % of the
// nodes stop there (the iteration is most of the affine cost); 2 % of all nodes would have reached a gain
// above 0.2 (docs/correlate.md).
constexpr double kAffineIterateGain = kAffineFromGain;
// Standard deviation of the Gaussian window that weights the affine fit's sums, as a fraction of the chip:
// it brings the chip's second moment across a band from 85 to 50 px^2 (32 px chips), and with it the bias
// a first-order shape function takes from the field's curvature (on the narrow band's flanks, median error
// 0.027 to 0.018 px), for little noise on rigid shifts (docs/correlate.md).
constexpr double kAffineWindowSigma = 0.25;
}  // namespace

void MatchOptions::validate() const {
  // Parameters exposed by the operations are named as declared there (chip, search...); the others by
  // their field name, so that no message points to an option that does not exist.
  if (chip_px < kMinChipPx || chip_px > kMaxChipPx)
    throw InvalidArgument(fmt::format("parameter --chip: {} px is out of range (expected {} to {} px)", chip_px,
                                      kMinChipPx, kMaxChipPx));
  if (search_px < kMinSearchPx || search_px > kMaxSearchPx)
    throw InvalidArgument(fmt::format("parameter --search: {} px is out of range (expected {} to {} px)",
                                      search_px, kMinSearchPx, kMaxSearchPx));
  if (method == Method::kPhase && 2 * search_px >= chip_px &&
      (coarse_above_px <= 0 || search_px <= coarse_above_px))
    throw InvalidArgument(fmt::format("parameter --search: the phase method measures displacements smaller than "
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

// ---------------------------------------------------------------------------------------------------------
struct Matcher::Impl {
  MatchOptions opt;
  int chip = 0;     // C
  int search = 0;   // S
  int half = 0;     // C / 2: chip pixel j covers image pixel node - half + j
  int wsearch = 0;  // C + 2S: secondary search window
  int wbuf = 0;     // C + 2S + 2M: secondary buffer with the interpolation margin
  int nfft = 0;     // FFT size of the NCC surface
  int nphase = 0;   // FFT size of the phase correlation (the chip)
  const detail::FftPlan2d* plan_ncc = nullptr;
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
    plan_ncc = &detail::plan_2d(nfft);  // also used by evaluate()
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
    int outside = 0;
    int invalid = 0;
    double sum = 0;
    ref_valid_count = 0;
    // Branch-free: invalid pixels were read as 0, so they add nothing to the sum.
    for (int j = 0; j < chip; ++j) {
      const float* values = ref_raw.data() + (j + kRefBorder) * cb + kRefBorder;
      const unsigned char* states = ref_state.data() + (j + kRefBorder) * cb + kRefBorder;
      float row_sum = 0;
      int row_valid = 0, row_outside = 0;
      for (int i = 0; i < chip; ++i) {
        row_sum += values[i];
        row_valid += states[i] == 1;
        row_outside += states[i] == 2;
      }
      sum += row_sum;
      ref_valid_count += row_valid;
      outside += row_outside;
    }
    invalid = chip * chip - ref_valid_count - outside;
    const double limit = opt.max_invalid_fraction * chip * chip;
    if (outside > limit) return NodeFlag::kOutsideOverlap;
    if (outside + invalid > limit || ref_valid_count == 0) return NodeFlag::kMasked;
    const double mean = sum / ref_valid_count;
    const float mean_f = static_cast<float>(mean);
    double ss = 0;
    for (int j = 0; j < chip; ++j) {
      const float* values = ref_raw.data() + (j + kRefBorder) * cb + kRefBorder;
      const unsigned char* states = ref_state.data() + (j + kRefBorder) * cb + kRefBorder;
      float* t = t0.data() + j * chip;
      float* weight = okf.data() + j * chip;
      float row_ss = 0;
      for (int i = 0; i < chip; ++i) {
        weight[i] = states[i] == 1 ? 1.0f : 0.0f;
        const float d = (values[i] - mean_f) * weight[i];
        t[i] = d;
        row_ss += d * d;
      }
      ss += row_ss;
    }
    // Invalid pixels take the mean, so that the gradients of the refinement do not see steps at holes.
    for (std::size_t k = 0; k < ref_raw.size(); ++k) ref_raw[k] = ref_state[k] == 1 ? ref_raw[k] : mean_f;
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
    const std::size_t total = sec_buf.size();
    const float* values = sec_buf.data();
    const unsigned char* states = sec_ok.data();
#pragma omp simd reduction(+ : sum, count)
    for (std::size_t k = 0; k < total; ++k) {
      sum += values[k];  // invalid pixels were read as 0
      count += states[k] == 1 ? 1 : 0;
    }
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
  bool ncc_surface() {
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

  // surface(kx, ky) = sum_j t0(j) window(j + k), through FFTW (large searches).
  void numerator_fft() {
    const int n = nfft;
    const int nc = n / 2 + 1;
    float* a = real_a.get();
    float* b = real_b.get();
    std::fill(a, a + static_cast<std::size_t>(n) * n, 0.0f);
    std::fill(b, b + static_cast<std::size_t>(n) * n, 0.0f);
    for (int j = 0; j < chip; ++j)
      std::copy_n(t0.data() + static_cast<std::size_t>(j) * chip, chip, a + static_cast<std::size_t>(j) * n);
    for (int j = 0; j < wsearch; ++j)
      std::copy_n(window.data() + static_cast<std::size_t>(j) * wsearch, wsearch,
                  b + static_cast<std::size_t>(j) * n);
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
    const float scale = 1.0f / (static_cast<float>(n) * n);
    const int m = 2 * search + 1;
    for (int ky = 0; ky < m; ++ky)
      for (int kx = 0; kx < m; ++kx) surface[ky * m + kx] = a[ky * n + kx] * scale;
  }

  // The same sum computed directly: faster than three FFTs for small searches (fine pass).
  void numerator_spatial() {
    detail::correlate_direct(t0.data(), chip, window.data(), wsearch, 2 * search + 1, surface.data());
  }

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
  double ncc_interpolated() const {
    return fit_interpolated().ncc;
  }

  // Gradients of the reference chip into grad_x / grad_y (once per node); false when they are degenerate
  // (no texture along some direction: the 2 x 2 Hessian of the translation is singular).
  double h00 = 0, h01 = 0, h11 = 0;
  bool compute_gradients() {
    if (gradients_ready) return gradients_ok;
    const int cb = chip + 2 * kRefBorder;
    // Gradients of the reference chip: the 7-point central difference (exact for polynomials up to degree
    // 6), close enough to the derivative of the interpolated signal that the iteration converges in two or
    // three steps (a 3-point difference needed five to six on highpassed texture).
    for (int j = 0; j < chip; ++j) {
      const float* p = ref_raw.data() + (j + kRefBorder) * cb + kRefBorder;
      const float* weight = okf.data() + j * chip;
      float* gxr = grad_x.data() + j * chip;
      float* gyr = grad_y.data() + j * chip;
      for (int i = 0; i < chip; ++i) {
        const float* q = p + i;
        gxr[i] =
            weight[i] * ((45.0f * (q[1] - q[-1]) - 9.0f * (q[2] - q[-2]) + (q[3] - q[-3])) * (1.0f / 60.0f));
        gyr[i] = weight[i] *
                 ((45.0f * (q[cb] - q[-cb]) - 9.0f * (q[2 * cb] - q[-2 * cb]) + (q[3 * cb] - q[-3 * cb])) *
                  (1.0f / 60.0f));
      }
    }
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
  bool refine_iterative(double& dx, double& dy, double& corr) {
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

  // Affine refinement (Shape::kAffine) from the translation (dx, dy): on success the displacement, the
  // correlation and the gradients of `result` come from the affine fit; otherwise the translation stays and
  // the node is marked translation_only.
  void refine_affine(double& dx, double& dy, double& corr, NodeResult& result) {
    if (opt.shape != Shape::kAffine) return;
    result.translation_only = true;
    if (!compute_gradients()) return;
    if (std::abs(dx - gx) > search + 1 || std::abs(dy - gy) > search + 1) return;
    // The fit starts where the translation last interpolated the secondary (the translation refinement's
    // last iterate, within its 0.02 px tolerance of (dx, dy)), so that its first iteration needs no warp.
    if (!interp_ready) interpolate_chip(dx, dy);
    detail::AffineInput in;
    in.chip = chip;
    in.t0 = t0.data();
    in.weight = okf.data();
    in.grad_x = grad_x.data();
    in.grad_y = grad_y.data();
    in.valid_count = ref_valid_count;
    in.sec = sec_buf.data();
    in.sec_state = sec_ok.data();
    in.sec_all_valid = sec_all_valid;
    in.size = wbuf;
    // Chip pixel i at displacement dx lies at buffer column i + dx - gx + S + M (as in interpolate_chip).
    in.offset_x = -gx + search + kRefineMargin;
    in.offset_y = -gy + search + kRefineMargin;
    in.max_invalid_fraction = opt.max_invalid_fraction;
    in.start_chip = interp_out.data();
    in.min_predicted_gain = kAffineIterateGain;
    in.subset_sigma_px = kAffineWindowSigma * chip;
    const detail::AffineFit fit = affine.refine(in, interp_dx, interp_dy);
    if (!fit.ok) return;
    // Where the affine fit explains little more than the translation, its four extra parameters only add
    // noise to the displacement (on the stable rock of the Yahtse pair, NMAD 0.077 px instead of 0.069):
    // the displacement and correlation are the translation's while the affine fit reduces the normalized
    // residual 1 - corr by less than kAffineFromGain of what is left, the affine ones from kAffineFullGain,
    // blended linearly in between. The gradients are the affine fit's in every case.
    // Both correlations with the fit's weights: its start is the translation.
    const double gain = (fit.corr - fit.start_corr) / std::max(1e-9, 1 - fit.corr);
    const double w =
        fit.stop == detail::AffineStop::kSmallGain
            ? 0.0
            : std::clamp((gain - kAffineFromGain) / (kAffineFullGain - kAffineFromGain), 0.0, 1.0);
    dx += w * (fit.dx_px - dx);
    dy += w * (fit.dy_px - dy);
    corr += w * (fit.corr - fit.start_corr);
    result.dudx = static_cast<float>(fit.dudx);
    result.dudy = static_cast<float>(fit.dudy);
    result.dvdx = static_cast<float>(fit.dvdx);
    result.dvdy = static_cast<float>(fit.dvdy);
    result.translation_only = false;
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

  NodeResult match_ncc() {
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
    refine_affine(dx, dy, corr, result);
    return finish(result, dx, dy, snr, corr);
  }

  // Phase correlation (COSI-Corr style). Both chips are tapered with a raised cosine; the normalized
  // cross-power keeps only the frequencies whose amplitude is within e^3 of the geometric-mean amplitude
  // (weaker ones carry mostly noise and aliasing). The integer peak of its inverse transform gives the first
  // estimate; then the secondary chip is re-interpolated at the current estimate and the residual shift is
  // read from the phase plane of the masked cross-power (Gauss-Newton on sum W |Q - exp(-i w.d)|^2) until it
  // is below 1e-3 px. Re-interpolating makes both tapered chips cover the same ground, which removes the bias
  // a taper fixed on the integer guess would leave.
  std::vector<float> taper, phase_chip, qre, qim, qweight;

  // Cross-power of the template and a C x C secondary chip; false when the chip has no texture.
  bool cross_power(const float* sec_chip) {
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
  void fit_phase_plane(double& ex, double& ey) const {
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

  NodeResult match_phase() {
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
    double ex = px - search, ey = py - search;
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

  NodeResult match(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double gdx, double gdy) {
    NodeResult result;
    gx = std::isfinite(gdx) ? static_cast<int>(std::lround(gdx)) : 0;
    gy = std::isfinite(gdy) ? static_cast<int>(std::lround(gdy)) : 0;
    gradients_ready = false;
    interp_ready = false;
    result.flag = load_reference(ref, col, row);
    if (result.flag != NodeFlag::kValid) return result;
    result.flag = load_secondary(sec, col, row);
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
    gx = static_cast<int>(std::lround(dx));
    gy = static_cast<int>(std::lround(dy));
    gradients_ready = false;
    interp_ready = false;
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
    // SNR of the given displacement: its correlation over the highest local maximum away from it.
    const int cx = std::clamp(static_cast<int>(std::lround(dx)) - gx + search, 0, m - 1);
    const int cy = std::clamp(static_cast<int>(std::lround(dy)) - gy + search, 0, m - 1);
    result.snr = static_cast<float>(corr / second_level(surface, m, cx, cy));
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

NodeResult evaluate_displacement(const ImageWindow& ref, const ImageWindow& sec, int col, int row,
                                 double dx_px, double dy_px, const MatchOptions& options) {
  Matcher matcher(options);
  return matcher.evaluate(ref, sec, col, row, dx_px, dy_px);
}

}  // namespace deforma::correlate
