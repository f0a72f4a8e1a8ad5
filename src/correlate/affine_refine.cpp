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

// The 8 x 8 taps of one sample: the eight columns interpolated along y, times the x weights (summing the
// lanes gives the sample). Two independent chains of four rows: half the latency of one chain of eight.
DEFORMA_INLINE f32x8 warp_taps(const float* sec, int stride, const float* table, int offset, int qx, int qy) {
  const float* wy = table + qy * kTaps;
  const float* p = sec + offset;
  f32x8 a0 = splat(wy[0]) * load8(p);
  f32x8 a1 = splat(wy[1]) * load8(p + stride);
  a0 += splat(wy[2]) * load8(p + 2 * stride);
  a1 += splat(wy[3]) * load8(p + 3 * stride);
  a0 += splat(wy[4]) * load8(p + 4 * stride);
  a1 += splat(wy[5]) * load8(p + 5 * stride);
  a0 += splat(wy[6]) * load8(p + 6 * stride);
  a1 += splat(wy[7]) * load8(p + 7 * stride);
  return (a0 + a1) * load8(table + qx * kTaps);
}

// Lane l of the result is the sum of the lanes of v[l]: three rounds of pairwise sums of shuffled vectors,
// in the same order in every clone.
DEFORMA_INLINE f32x8 sum8(const f32x8 (&v)[kLanes]) {
  using i32x8 = int __attribute__((vector_size(32)));
  const i32x8 even{0, 8, 2, 10, 4, 12, 6, 14}, odd{1, 9, 3, 11, 5, 13, 7, 15};
  const i32x8 low_pairs{0, 1, 8, 9, 4, 5, 12, 13}, high_pairs{2, 3, 10, 11, 6, 7, 14, 15};
  const i32x8 low_half{0, 1, 2, 3, 8, 9, 10, 11}, high_half{4, 5, 6, 7, 12, 13, 14, 15};
  f32x8 t[4], u[2];
  for (int k = 0; k < 4; ++k)
    t[k] = __builtin_shuffle(v[2 * k], v[2 * k + 1], even) + __builtin_shuffle(v[2 * k], v[2 * k + 1], odd);
  for (int k = 0; k < 2; ++k)
    u[k] = __builtin_shuffle(t[2 * k], t[2 * k + 1], low_pairs) +
           __builtin_shuffle(t[2 * k], t[2 * k + 1], high_pairs);
  return __builtin_shuffle(u[0], u[1], low_half) + __builtin_shuffle(u[0], u[1], high_half);
}

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
    // Eight output pixels at a time: each pixel's taps give one vector (the columns interpolated along y,
    // times the x weights), and the eight vectors are summed lane-wise together (sum8), which costs less
    // than reducing each one on its own.
    const int full = chip / kLanes * kLanes;
    for (int i = 0; i < full; i += kLanes) {
      const f32x8 r[kLanes] = {warp_taps(sec, stride, table, offset[i], qx[i], qy[i]),
                               warp_taps(sec, stride, table, offset[i + 1], qx[i + 1], qy[i + 1]),
                               warp_taps(sec, stride, table, offset[i + 2], qx[i + 2], qy[i + 2]),
                               warp_taps(sec, stride, table, offset[i + 3], qx[i + 3], qy[i + 3]),
                               warp_taps(sec, stride, table, offset[i + 4], qx[i + 4], qy[i + 4]),
                               warp_taps(sec, stride, table, offset[i + 5], qx[i + 5], qy[i + 5]),
                               warp_taps(sec, stride, table, offset[i + 6], qx[i + 6], qy[i + 6]),
                               warp_taps(sec, stride, table, offset[i + 7], qx[i + 7], qy[i + 7])};
      store8(orow + i, sum8(r) - splat(mean));
    }
    if (full < chip) {
      // The last pixels of a row whose length is not a multiple of eight, summed in the same order.
      f32x8 r[kLanes] = {};
      for (int l = 0; full + l < chip; ++l)
        r[l] = warp_taps(sec, stride, table, offset[full + l], qx[full + l], qy[full + l]);
      const f32x8 samples = sum8(r) - splat(mean);
      for (int l = 0; full + l < chip; ++l) orow[full + l] = samples[l];
    }
  }
}

// The sums below run over the chip as one flat vector loop, each pixel with its coordinates from the chip
// centre (xi, eta), one eight-lane accumulator per sum, as the translation's kernels do (kernels.cpp):
// summing row by row and reducing every row's lanes cost more than the arithmetic itself at 32 px chips.

// Sums over the chip of one iteration with per-pixel weights w: sum g, sum g^2, sum f g and the projections
// of g on the six steepest-descent images (gx, gx xi, gx eta, gy, gy xi, gy eta).
struct IterationSums {
  double g = 0, gg = 0, fg = 0;
  std::array<double, 6> jg{};
};

DEFORMA_KERNEL_CLONES
void iteration_sums(const float* w, const float* g, const float* f, const float* gx, const float* gy,
                    const float* xi, const float* eta, int n_px, IterationSums& s) {
  f32x8 sg{}, sgg{}, sfg{}, a0{}, a1{}, a2{}, b0{}, b1{}, b2{};
  const int full = n_px / kLanes * kLanes;
  for (int k = 0; k < full; k += kLanes) {
    const f32x8 gv = load8(g + k), v = gv * load8(w + k), x = load8(xi + k), e = load8(eta + k);
    const f32x8 a = load8(gx + k) * v, b = load8(gy + k) * v;
    sg += v;
    sgg += v * gv;
    sfg += load8(f + k) * v;
    a0 += a;
    a1 += a * x;
    a2 += a * e;
    b0 += b;
    b1 += b * x;
    b2 += b * e;
  }
  float r[9] = {};
  for (int k = full; k < n_px; ++k) {
    const float v = g[k] * w[k], a = gx[k] * v, b = gy[k] * v;
    r[0] += v, r[1] += v * g[k], r[2] += f[k] * v;
    r[3] += a, r[4] += a * xi[k], r[5] += a * eta[k], r[6] += b, r[7] += b * xi[k], r[8] += b * eta[k];
  }
  s.g = lane_sum(sg) + r[0], s.gg = lane_sum(sgg) + r[1], s.fg = lane_sum(sfg) + r[2];
  s.jg = {lane_sum(a0) + r[3], lane_sum(a1) + r[4], lane_sum(a2) + r[5],
          lane_sum(b0) + r[6], lane_sum(b1) + r[7], lane_sum(b2) + r[8]};
}

// Sum over the chip of p = w a b times (1, xi, xi^2, eta, xi eta, eta^2): one 3 x 3 block of the Hessian.
DEFORMA_KERNEL_CLONES
void product_moments(const float* w, const float* a, const float* b, const float* xi, const float* eta,
                     int n_px, double out[6]) {
  f32x8 s[6] = {};
  const int full = n_px / kLanes * kLanes;
  for (int k = 0; k < full; k += kLanes) {
    const f32x8 p = load8(w + k) * load8(a + k) * load8(b + k), x = load8(xi + k), e = load8(eta + k);
    const f32x8 px = p * x, pe = p * e;
    s[0] += p;
    s[1] += px;
    s[2] += px * x;
    s[3] += pe;
    s[4] += px * e;
    s[5] += pe * e;
  }
  float r[6] = {};
  for (int k = full; k < n_px; ++k) {
    const float p = w[k] * a[k] * b[k], px = p * xi[k], pe = p * eta[k];
    r[0] += p, r[1] += px, r[2] += px * xi[k], r[3] += pe, r[4] += px * eta[k], r[5] += pe * eta[k];
  }
  for (int i = 0; i < 6; ++i) out[i] = lane_sum(s[i]) + r[i];
}

// The reference terms of the fit with per-pixel weights w: the Hessian, the sums of the steepest-descent
// images (J) and of their products with the reference f, and the weighted count, sum and sum of squares of f.
struct FullSums {
  double n = 0, f = 0, ff = 0;
  Eigen::Matrix<double, 6, 6> h = Eigen::Matrix<double, 6, 6>::Zero();
  Eigen::Matrix<double, 6, 1> j = Eigen::Matrix<double, 6, 1>::Zero();   // sum J
  Eigen::Matrix<double, 6, 1> jf = Eigen::Matrix<double, 6, 1>::Zero();  // sum J f
};

DEFORMA_KERNEL_CLONES
void reference_sums(const float* w, const float* f, const float* gx, const float* gy, const float* xi,
                    const float* eta, int n_px, FullSums& s) {
  // Two passes with at most nine accumulators each (more would spill the vector registers): the
  // weighted f terms, then the sums of J.
  f32x8 n{}, sf{}, sff{}, fx0{}, fx1{}, fx2{}, fy0{}, fy1{}, fy2{};
  const int full = n_px / kLanes * kLanes;
  for (int k = 0; k < full; k += kLanes) {
    const f32x8 wv = load8(w + k), fv = load8(f + k), x = load8(xi + k), e = load8(eta + k);
    const f32x8 wf = wv * fv, dxf = load8(gx + k) * wf, dyf = load8(gy + k) * wf;
    n += wv;
    sf += wf;
    sff += wf * fv;
    fx0 += dxf;
    fx1 += dxf * x;
    fx2 += dxf * e;
    fy0 += dyf;
    fy1 += dyf * x;
    fy2 += dyf * e;
  }
  f32x8 jx0{}, jx1{}, jx2{}, jy0{}, jy1{}, jy2{};
  for (int k = 0; k < full; k += kLanes) {
    const f32x8 wv = load8(w + k), x = load8(xi + k), e = load8(eta + k);
    const f32x8 dx = load8(gx + k) * wv, dy = load8(gy + k) * wv;
    jx0 += dx;
    jx1 += dx * x;
    jx2 += dx * e;
    jy0 += dy;
    jy1 += dy * x;
    jy2 += dy * e;
  }
  float r[15] = {};
  for (int k = full; k < n_px; ++k) {
    const float wf = w[k] * f[k], dxf = gx[k] * wf, dyf = gy[k] * wf, dx = gx[k] * w[k], dy = gy[k] * w[k];
    r[0] += w[k], r[1] += wf, r[2] += wf * f[k];
    r[3] += dxf, r[4] += dxf * xi[k], r[5] += dxf * eta[k], r[6] += dyf, r[7] += dyf * xi[k],
        r[8] += dyf * eta[k];
    r[9] += dx, r[10] += dx * xi[k], r[11] += dx * eta[k], r[12] += dy, r[13] += dy * xi[k],
        r[14] += dy * eta[k];
  }
  s.n = lane_sum(n) + r[0], s.f = lane_sum(sf) + r[1], s.ff = lane_sum(sff) + r[2];
  s.jf << lane_sum(fx0) + r[3], lane_sum(fx1) + r[4], lane_sum(fx2) + r[5], lane_sum(fy0) + r[6],
      lane_sum(fy1) + r[7], lane_sum(fy2) + r[8];
  s.j << lane_sum(jx0) + r[9], lane_sum(jx1) + r[10], lane_sum(jx2) + r[11], lane_sum(jy0) + r[12],
      lane_sum(jy1) + r[13], lane_sum(jy2) + r[14];
  // Blocks of the Hessian for the gradient products gx gx, gx gy and gy gy: with m = (1, xi, eta),
  // sum p m_a m_b.
  double xx[6], xy[6], yy[6];
  product_moments(w, gx, gx, xi, eta, n_px, xx);
  product_moments(w, gx, gy, xi, eta, n_px, xy);
  product_moments(w, gy, gy, xi, eta, n_px, yy);
  auto block = [](const double* m) {
    Eigen::Matrix3d b;
    b << m[0], m[1], m[3], m[1], m[2], m[4], m[3], m[4], m[5];
    return b;
  };
  s.h.block<3, 3>(0, 0) = block(xx);
  s.h.block<3, 3>(0, 3) = block(xy);
  s.h.block<3, 3>(3, 0) = s.h.block<3, 3>(0, 3).transpose();
  s.h.block<3, 3>(3, 3) = block(yy);
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
  pixel_xi_.resize(static_cast<std::size_t>(chip) * chip);
  pixel_eta_.resize(static_cast<std::size_t>(chip) * chip);
  offset_.resize(chip);
  qx_.resize(chip);
  qy_.resize(chip);
  for (int i = 0; i < chip; ++i) xi_[i] = static_cast<float>(i - c0);
  for (int j = 0; j < chip; ++j)
    for (int i = 0; i < chip; ++i) {
      pixel_xi_[static_cast<std::size_t>(j) * chip + i] = xi_[i];
      pixel_eta_[static_cast<std::size_t>(j) * chip + i] = xi_[j];
    }
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
  const float* pxi = pixel_xi_.data();
  const float* peta = pixel_eta_.data();
  reference_sums(w_ref, in.t0, in.grad_x, in.grad_y, pxi, peta, n_px, ref);
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
      iteration_sums(w_ref, interp_.data(), in.t0, in.grad_x, in.grad_y, pxi, peta, n_px, s);
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
      reference_sums(weight_.data(), in.t0, in.grad_x, in.grad_y, pxi, peta, n_px, full);
      iteration_sums(weight_.data(), interp_.data(), in.t0, in.grad_x, in.grad_y, pxi, peta, n_px, s);
      n = full.n, sf = full.f, sff = full.ff, sj = full.j, sjf = full.jf;
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
