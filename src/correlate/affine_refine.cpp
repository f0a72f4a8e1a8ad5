// Affine sub-pixel refinement (affine_refine.hpp): inverse-compositional Gauss-Newton on the zero-mean
// normalized SSD. The reference chip's steepest-descent images and Hessian are fixed (the inverse-
// compositional trick), so that an iteration costs one interpolation of the secondary chip and nine sums.
#include "correlate/affine_refine.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>

#include <Eigen/Dense>

#include "correlate/vector8.hpp"

namespace deforma::correlate::detail {

namespace {

// Lanczos-4 weights (the matcher's interpolator) tabulated at kSteps + 1 fractional positions: a sample's
// position is rounded to 1/kSteps px, 2.5e-4 px at most, well under the accuracy of any match.
constexpr int kLanczos = 4;
constexpr int kTaps = 2 * kLanczos;
constexpr int kSteps = 2048;

const float* lanczos_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(static_cast<std::size_t>(kSteps + 1) * kTaps);
    const double pi = std::numbers::pi;
    for (int q = 0; q <= kSteps; ++q) {
      const double frac = static_cast<double>(q) / kSteps;
      double w[kTaps];
      double sum = 0;
      for (int k = 0; k < kTaps; ++k) {
        const double x = frac - (k - kLanczos + 1);
        w[k] = std::abs(x) < 1e-12
                   ? 1.0
                   : kLanczos * std::sin(pi * x) * std::sin(pi * x / kLanczos) / (pi * pi * x * x);
        sum += w[k];
      }
      for (int k = 0; k < kTaps; ++k)
        t[static_cast<std::size_t>(q) * kTaps + k] = static_cast<float>(w[k] / sum);
    }
    return t;
  }();
  return table.data();
}

// The affine map of a chip pixel (xi, eta) to the secondary buffer: x = x0 + ax xi + bx eta,
// y = y0 + ay xi + by eta.
struct Map {
  double x0, ax, bx, y0, ay, by;
};

// out(i, j) = sec at the mapped position of chip pixel (i, j), minus `mean`. Every tap must lie inside the
// buffer (checked by the caller at the chip corners). `xi` holds the chip's column coordinates; `offset`,
// `qx`, `qy` are work space of `chip` elements.
DEFORMA_KERNEL_CLONES
void warp_chip(const float* sec, int stride, const float* table, int chip, const float* xi, const Map& m,
               float mean, int* offset, int* qx, int* qy, float* out) {
  const float ax = static_cast<float>(m.ax), ay = static_cast<float>(m.ay);
  for (int j = 0; j < chip; ++j) {
    const double eta = j + xi[0];  // xi[0] = -c0
    const float rx = static_cast<float>(m.x0 + m.bx * eta), ry = static_cast<float>(m.y0 + m.by * eta);
    // Positions, table rows and tap origins of the row first, as a vector loop (float positions err by
    // 1e-5 px at most, well under the table's step).
#pragma omp simd
    for (int i = 0; i < chip; ++i) {
      const float x = rx + ax * xi[i], y = ry + ay * xi[i];
      const float fx = std::floor(x), fy = std::floor(y);
      qx[i] = static_cast<int>((x - fx) * kSteps + 0.5f);
      qy[i] = static_cast<int>((y - fy) * kSteps + 0.5f);
      offset[i] = (static_cast<int>(fy) - kLanczos + 1) * stride + static_cast<int>(fx) - kLanczos + 1;
    }
    float* orow = out + static_cast<long>(j) * chip;
    for (int i = 0; i < chip; ++i) {
      const float* wy = table + qy[i] * kTaps;
      const float* p = sec + offset[i];
      // Two independent chains of four rows: half the latency of one chain of eight.
      f32x8 a0 = splat(wy[0]) * load8(p);
      f32x8 a1 = splat(wy[1]) * load8(p + stride);
      a0 += splat(wy[2]) * load8(p + 2 * stride);
      a1 += splat(wy[3]) * load8(p + 3 * stride);
      a0 += splat(wy[4]) * load8(p + 4 * stride);
      a1 += splat(wy[5]) * load8(p + 5 * stride);
      a0 += splat(wy[6]) * load8(p + 6 * stride);
      a1 += splat(wy[7]) * load8(p + 7 * stride);
      orow[i] = lane_sum((a0 + a1) * load8(table + qx[i] * kTaps)) - mean;
    }
  }
}

// Sums over the chip of one iteration without masking: sum g, sum g^2, sum f g and the projections of g on
// the six steepest-descent images (gx, gx xi, gx eta, gy, gy xi, gy eta). Row sums in float, rows in double.
struct IterationSums {
  double g = 0, gg = 0, fg = 0;
  std::array<double, 6> jg{};
};

DEFORMA_KERNEL_CLONES
void iteration_sums(const float* w, const float* g, const float* f, const float* gx, const float* gy,
                    const float* xi, int chip, double c0, IterationSums& s) {
  for (int j = 0; j < chip; ++j) {
    const long o = static_cast<long>(j) * chip;
    float sg = 0, sgg = 0, sfg = 0, a0 = 0, a1 = 0, b0 = 0, b1 = 0;
#pragma omp simd reduction(+ : sg, sgg, sfg, a0, a1, b0, b1)
    for (int i = 0; i < chip; ++i) {
      const float v = g[o + i] * w[o + i];
      const float a = gx[o + i] * v, b = gy[o + i] * v;
      sg += v;
      sgg += v * g[o + i];
      sfg += f[o + i] * v;
      a0 += a;
      a1 += a * xi[i];
      b0 += b;
      b1 += b * xi[i];
    }
    const double eta = j - c0;
    s.g += sg, s.gg += sgg, s.fg += sfg;
    s.jg[0] += a0, s.jg[1] += a1, s.jg[2] += eta * a0;
    s.jg[3] += b0, s.jg[4] += b1, s.jg[5] += eta * b0;
  }
}

// Every sum of the fit with per-pixel weights w (0 or 1): for the Hessian and the reference terms (g null),
// or for an iteration where some secondary samples are invalid.
struct FullSums {
  double n = 0, f = 0, ff = 0;
  Eigen::Matrix<double, 6, 6> h = Eigen::Matrix<double, 6, 6>::Zero();
  Eigen::Matrix<double, 6, 1> j = Eigen::Matrix<double, 6, 1>::Zero();   // sum J
  Eigen::Matrix<double, 6, 1> jf = Eigen::Matrix<double, 6, 1>::Zero();  // sum J f
  IterationSums it;                                                      // with g
};

DEFORMA_KERNEL_CLONES
void full_sums(const float* w, const float* f, const float* gx, const float* gy, const float* xi, int chip,
               double c0, const float* g, FullSums& s) {
  // Products of the gradients times 1, xi, xi^2 along each row; eta and eta^2 are applied per row.
  double xx[3] = {0, 0, 0}, xy[3] = {0, 0, 0}, yy[3] = {0, 0, 0};
  double xx_e[2] = {0, 0}, xy_e[2] = {0, 0}, yy_e[2] = {0, 0}, xx_ee = 0, xy_ee = 0, yy_ee = 0;
  double jx[3] = {0, 0, 0}, jy[3] = {0, 0, 0}, fx[3] = {0, 0, 0}, fy[3] = {0, 0, 0};
  for (int r = 0; r < chip; ++r) {
    const long o = static_cast<long>(r) * chip;
    const float* wr = w + o;
    const float* fr = f + o;
    const float* gxr = gx + o;
    const float* gyr = gy + o;
    // Three passes over the row, each with few enough accumulators to stay in vector registers (one pass
    // with all 27 spilled them to memory).
    float pxx0 = 0, pxx1 = 0, pxx2 = 0, pxy0 = 0, pxy1 = 0, pxy2 = 0, pyy0 = 0, pyy1 = 0, pyy2 = 0;
#pragma omp simd reduction(+ : pxx0, pxx1, pxx2, pxy0, pxy1, pxy2, pyy0, pyy1, pyy2)
    for (int i = 0; i < chip; ++i) {
      const float x = xi[i];
      const float dx = gxr[i] * wr[i], dy = gyr[i] * wr[i];
      const float dxx = dx * gxr[i], dxy = dx * gyr[i], dyy = dy * gyr[i];
      pxx0 += dxx, pxx1 += dxx * x, pxx2 += dxx * x * x;
      pxy0 += dxy, pxy1 += dxy * x, pxy2 += dxy * x * x;
      pyy0 += dyy, pyy1 += dyy * x, pyy2 += dyy * x * x;
    }
    float n = 0, sf = 0, sff = 0, gx0 = 0, gx1 = 0, gy0 = 0, gy1 = 0, fx0 = 0, fx1 = 0, fy0 = 0, fy1 = 0;
#pragma omp simd reduction(+ : n, sf, sff, gx0, gx1, gy0, gy1, fx0, fx1, fy0, fy1)
    for (int i = 0; i < chip; ++i) {
      const float x = xi[i];
      const float dx = gxr[i] * wr[i], dy = gyr[i] * wr[i];
      const float fv = fr[i] * wr[i];
      n += wr[i];
      sf += fv;
      sff += fv * fr[i];
      gx0 += dx, gx1 += dx * x, gy0 += dy, gy1 += dy * x;
      fx0 += dx * fr[i], fx1 += dx * fr[i] * x, fy0 += dy * fr[i], fy1 += dy * fr[i] * x;
    }
    const double e = r - c0;
    if (g) {
      const float* gr = g + o;
      float sg = 0, sgg = 0, sfg = 0, ax0 = 0, ax1 = 0, ay0 = 0, ay1 = 0;
#pragma omp simd reduction(+ : sg, sgg, sfg, ax0, ax1, ay0, ay1)
      for (int i = 0; i < chip; ++i) {
        const float gv = gr[i] * wr[i];
        sg += gv;
        sgg += gv * gr[i];
        sfg += gv * fr[i];
        const float a = gxr[i] * gv, b = gyr[i] * gv;
        ax0 += a, ax1 += a * xi[i], ay0 += b, ay1 += b * xi[i];
      }
      s.it.g += sg, s.it.gg += sgg, s.it.fg += sfg;
      s.it.jg[0] += ax0, s.it.jg[1] += ax1, s.it.jg[2] += e * ax0;
      s.it.jg[3] += ay0, s.it.jg[4] += ay1, s.it.jg[5] += e * ay0;
    }
    s.n += n, s.f += sf, s.ff += sff;
    xx[0] += pxx0, xx[1] += pxx1, xx[2] += pxx2, xx_e[0] += e * pxx0, xx_e[1] += e * pxx1,
        xx_ee += e * e * pxx0;
    xy[0] += pxy0, xy[1] += pxy1, xy[2] += pxy2, xy_e[0] += e * pxy0, xy_e[1] += e * pxy1,
        xy_ee += e * e * pxy0;
    yy[0] += pyy0, yy[1] += pyy1, yy[2] += pyy2, yy_e[0] += e * pyy0, yy_e[1] += e * pyy1,
        yy_ee += e * e * pyy0;
    jx[0] += gx0, jx[1] += gx1, jx[2] += e * gx0, jy[0] += gy0, jy[1] += gy1, jy[2] += e * gy0;
    fx[0] += fx0, fx[1] += fx1, fx[2] += e * fx0, fy[0] += fy0, fy[1] += fy1, fy[2] += e * fy0;
  }
  // Block of the Hessian for gradient products p (sum p m_a m_b, m = (1, xi, eta)).
  auto block = [](const double* p, const double* p_e, double p_ee) {
    Eigen::Matrix3d b;
    b << p[0], p[1], p_e[0], p[1], p[2], p_e[1], p_e[0], p_e[1], p_ee;
    return b;
  };
  s.h.block<3, 3>(0, 0) = block(xx, xx_e, xx_ee);
  s.h.block<3, 3>(0, 3) = block(xy, xy_e, xy_ee);
  s.h.block<3, 3>(3, 0) = s.h.block<3, 3>(0, 3).transpose();
  s.h.block<3, 3>(3, 3) = block(yy, yy_e, yy_ee);
  s.j << jx[0], jx[1], jx[2], jy[0], jy[1], jy[2];
  s.jf << fx[0], fx[1], fx[2], fy[0], fy[1], fy[2];
}

// The warp as a 3 x 3 matrix acting on (xi, eta, 1): parameters (u, dudx, dudy, v, dvdx, dvdy).
Eigen::Matrix3d warp_matrix(const Eigen::Matrix<double, 6, 1>& p) {
  Eigen::Matrix3d m;
  m << 1 + p[1], p[2], p[0], p[4], 1 + p[5], p[3], 0, 0, 1;
  return m;
}

}  // namespace

void AffineRefiner::resize(int chip) {
  if (chip == chip_) return;
  chip_ = chip;
  const double c0 = (chip - 1) / 2.0;
  xi_.resize(chip);
  offset_.resize(chip);
  qx_.resize(chip);
  qy_.resize(chip);
  for (int i = 0; i < chip; ++i) xi_[i] = static_cast<float>(i - c0);
  interp_.assign(static_cast<std::size_t>(chip) * chip + 8, 0.0f);
  weight_.assign(static_cast<std::size_t>(chip) * chip, 0.0f);
  subset_weight_.assign(static_cast<std::size_t>(chip) * chip, 0.0f);
  gauss_.assign(static_cast<std::size_t>(chip) * chip, 0.0f);
  gauss_sigma_ = 0;
}

AffineFit AffineRefiner::refine(const AffineInput& in, double dx0_px, double dy0_px) {
  resize(in.chip);
  const int chip = in.chip;
  const int n_px = chip * chip;
  const double c0 = (chip - 1) / 2.0;
  const double node = chip / 2 - c0;  // the node's offset from the chip centre (0.5 for even chips)
  const float* table = lanczos_table();
  AffineFit fit;

  // Reference terms, with the reference's own weights (times the subset's Gaussian window).
  const float* w_ref = in.weight;
  if (in.subset_sigma_px > 0) {
    if (gauss_sigma_ != in.subset_sigma_px) {
      gauss_sigma_ = in.subset_sigma_px;
      const double k = -0.5 / (gauss_sigma_ * gauss_sigma_);
      for (int j = 0; j < chip; ++j)
        for (int i = 0; i < chip; ++i)
          gauss_[j * chip + i] = static_cast<float>(std::exp(k * (xi_[i] * xi_[i] + xi_[j] * xi_[j])));
    }
    for (int k = 0; k < n_px; ++k) subset_weight_[k] = in.weight[k] * gauss_[k];
    w_ref = subset_weight_.data();
  }
  FullSums ref;
  full_sums(w_ref, in.t0, in.grad_x, in.grad_y, xi_.data(), chip, c0, nullptr, ref);
  // Parameters scaled so that the gradients are expressed as pixels of motion at the chip's edge: the
  // Hessian's condition then measures texture, not the chip size.
  Eigen::Matrix<double, 6, 1> scale;
  scale << 1, 1 / c0, 1 / c0, 1, 1 / c0, 1 / c0;
  auto factorize = [&](const Eigen::Matrix<double, 6, 6>& h) {
    return Eigen::LDLT<Eigen::Matrix<double, 6, 6>>(scale.asDiagonal() * h * scale.asDiagonal());
  };
  const Eigen::LDLT<Eigen::Matrix<double, 6, 6>> ref_ldlt = factorize(ref.h);
  if (ref_ldlt.info() != Eigen::Success || !(ref_ldlt.rcond() >= kMinRcond) || !ref_ldlt.isPositive()) {
    fit.stop = AffineStop::kIllConditioned;
    return fit;
  }

  Eigen::Matrix<double, 6, 1> p;
  p << dx0_px, 0, 0, dy0_px, 0, 0;
  const float* sec_at_origin = in.sec;
  const double lo = kLanczos - 1, hi = in.size - kLanczos - 1;  // taps from floor(x) - 3 to floor(x) + 4
  Eigen::LDLT<Eigen::Matrix<double, 6, 6>> masked_ldlt;
  double corr = 0;
  bool converged = false;
  bool small_gain = false;
  const int valid_limit = static_cast<int>(in.max_invalid_fraction * in.valid_count);
  for (int it = 0; it <= kMaxIterations; ++it) {
    const Map m{in.offset_x + c0 + p[0], 1 + p[1], p[2], in.offset_y + c0 + p[3], p[4], 1 + p[5]};
    for (const double cx : {-c0, c0})
      for (const double cy : {-c0, c0}) {
        const double x = m.x0 + m.ax * cx + m.bx * cy, y = m.y0 + m.ay * cx + m.by * cy;
        if (!(x >= lo && x < hi && y >= lo && y < hi)) {
          fit.stop = AffineStop::kDiverged;
          return fit;
        }
      }
    // Subtracting the chip's central sample keeps float sums accurate on large digital numbers.
    const std::size_t centre = static_cast<std::size_t>(chip / 2) * chip + chip / 2;
    if (it == 0 && in.start_chip) {
      const float shift = in.start_chip[centre];
      for (int k = 0; k < n_px; ++k) interp_[k] = in.start_chip[k] - shift;
    } else {
      warp_chip(sec_at_origin, in.size, table, chip, xi_.data(), m, 0.0f, offset_.data(), qx_.data(),
                qy_.data(), interp_.data());
      const float shift = interp_[centre];
      for (int k = 0; k < n_px; ++k) interp_[k] -= shift;
    }

    const Eigen::LDLT<Eigen::Matrix<double, 6, 6>>* ldlt = &ref_ldlt;
    const Eigen::Matrix<double, 6, 6>* hessian = &ref.h;
    FullSums full;
    double n = ref.n, sf = ref.f, sff = ref.ff;
    Eigen::Matrix<double, 6, 1> sj = ref.j, sjf = ref.jf;
    IterationSums s;
    if (in.sec_all_valid) {
      iteration_sums(w_ref, interp_.data(), in.t0, in.grad_x, in.grad_y, xi_.data(), chip, c0, s);
    } else {
      // Reference pixels that sample an invalid secondary pixel (nearest) leave every sum of this iteration.
      int dropped = 0;
      for (int j = 0; j < chip; ++j)
        for (int i = 0; i < chip; ++i) {
          const double xi = i - c0, eta = j - c0;
          const long bx = std::lround(m.x0 + m.ax * xi + m.bx * eta);
          const long by = std::lround(m.y0 + m.ay * xi + m.by * eta);
          const bool ok = in.sec_state[by * in.size + bx] == 1;
          const float w = w_ref[j * chip + i];
          weight_[j * chip + i] = ok ? w : 0.0f;
          dropped += (!ok && w > 0) ? 1 : 0;
        }
      if (dropped > valid_limit) {
        fit.stop = AffineStop::kMasked;
        return fit;
      }
      full_sums(weight_.data(), in.t0, in.grad_x, in.grad_y, xi_.data(), chip, c0, interp_.data(), full);
      n = full.n, sf = full.f, sff = full.ff, sj = full.j, sjf = full.jf, s = full.it;
      if (dropped > 0) {
        masked_ldlt = factorize(full.h);
        ldlt = &masked_ldlt;
        hessian = &full.h;
        if (masked_ldlt.info() != Eigen::Success || !(masked_ldlt.rcond() >= kMinRcond)) {
          fit.stop = AffineStop::kIllConditioned;
          return fit;
        }
      }
    }
    if (!(n > 0)) {
      fit.stop = AffineStop::kMasked;
      return fit;
    }
    const double var_f = sff - sf * sf / n, var_g = s.gg - s.g * s.g / n;
    if (!(var_f > 0) || !(var_g > 0)) {
      fit.stop = AffineStop::kDiverged;
      return fit;
    }
    corr = (s.fg - sf * s.g / n) / std::sqrt(var_f * var_g);
    if (it == 0) fit.start_corr = corr;
    fit.iterations = it;
    if (it == kMaxIterations) break;
    // Gauss-Newton step of the ZNSSD (Pan et al. 2013, eq. 11): the residual (f - mean f) - k (g - mean g)
    // with k = ||f - mean f|| / ||g - mean g||, projected on the steepest-descent images.
    const double k = std::sqrt(var_f / var_g);
    const Eigen::Matrix<double, 6, 1> jg(s.jg.data());
    const Eigen::Matrix<double, 6, 1> b = (sjf - (sf / n) * sj) - k * (jg - (s.g / n) * sj);
    const Eigen::Matrix<double, 6, 1> dp = -(scale.asDiagonal() * ldlt->solve(scale.asDiagonal() * b)).eval();
    if (!dp.allFinite()) {
      fit.stop = AffineStop::kDiverged;
      return fit;
    }
    if (it == 0) {
      // The step reduces the squared residual, 2 var_f (1 - corr), by b' H^-1 b to first order, and by
      // b_t' H_tt^-1 b_t with the translation alone (rows u, v): their difference over what the step leaves
      // is the relative gain the gradients would bring.
      const double q_affine = -b.dot(dp);
      Eigen::Matrix2d h_t;
      h_t << (*hessian)(0, 0), (*hessian)(0, 3), (*hessian)(3, 0), (*hessian)(3, 3);
      const Eigen::Vector2d b_t(b[0], b[3]);
      const double q_translation = b_t.dot(h_t.ldlt().solve(b_t));
      const double left = 2 * var_f * (1 - corr) - q_affine;
      fit.predicted_gain =
          left > 0 ? (q_affine - q_translation) / left : std::numeric_limits<double>::infinity();
    }
    // Inverse composition: W(p) <- W(p) o W(dp)^-1.
    const Eigen::Matrix3d w = warp_matrix(p) * warp_matrix(dp).inverse();
    p << w(0, 2), w(0, 0) - 1, w(0, 1), w(1, 2), w(1, 0), w(1, 1) - 1;
    // The largest motion of a chip corner in this update.
    const double move = std::max(std::abs(dp[0]) + c0 * (std::abs(dp[1]) + std::abs(dp[2])),
                                 std::abs(dp[3]) + c0 * (std::abs(dp[4]) + std::abs(dp[5])));
    if (!p.allFinite() || std::abs(p[1]) > 0.5 || std::abs(p[2]) > 0.5 || std::abs(p[4]) > 0.5 ||
        std::abs(p[5]) > 0.5 || std::hypot(p[0] - dx0_px, p[3] - dy0_px) > in.max_move_px) {
      fit.stop = AffineStop::kDiverged;
      return fit;
    }
    // The correlation of this iteration stands for the final one: near the optimum it changes with the
    // square of the update.
    converged = move < kTolerancePx;
    if (converged) break;
    if (it == 0 && fit.predicted_gain < in.min_predicted_gain) {
      small_gain = true;
      break;
    }
  }
  fit.ok = true;
  fit.stop = small_gain  ? AffineStop::kSmallGain
             : converged ? AffineStop::kConverged
                         : AffineStop::kIterationCap;
  fit.dudx = p[1], fit.dudy = p[2], fit.dvdx = p[4], fit.dvdy = p[5];
  fit.dx_px = p[0] + p[1] * node + p[2] * node;
  fit.dy_px = p[3] + p[4] * node + p[5] * node;
  fit.corr = corr;
  return fit;
}

}  // namespace deforma::correlate::detail
