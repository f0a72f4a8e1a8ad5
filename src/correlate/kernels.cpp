// Inner loops of the chip matcher (kernels.hpp), written on eight-float vectors (GCC vector extensions): one
// AVX register in the x86-64-v3 version, two SSE registers in the baseline one.
#include "correlate/kernels.hpp"

#include <cmath>

#include "correlate/vector8.hpp"

namespace deforma::correlate::detail {

DEFORMA_KERNEL_CLONES
void correlate_direct(const float* t, int chip, const float* w, int w_stride, int m, float* surface) {
  const int full = chip / kLanes * kLanes;
  for (int ky = 0; ky < m; ++ky) {
    int kx = 0;
    // Four offsets at a time: each template load feeds four independent accumulators.
    for (; kx + 4 <= m; kx += 4) {
      f32x8 a0{}, a1{}, a2{}, a3{};
      float r0 = 0, r1 = 0, r2 = 0, r3 = 0;
      for (int j = 0; j < chip; ++j) {
        const float* tr = t + static_cast<long>(j) * chip;
        const float* wr = w + static_cast<long>(j + ky) * w_stride + kx;
        for (int i = 0; i < full; i += kLanes) {
          const f32x8 tv = load8(tr + i);
          a0 += tv * load8(wr + i);
          a1 += tv * load8(wr + i + 1);
          a2 += tv * load8(wr + i + 2);
          a3 += tv * load8(wr + i + 3);
        }
        for (int i = full; i < chip; ++i) {
          r0 += tr[i] * wr[i];
          r1 += tr[i] * wr[i + 1];
          r2 += tr[i] * wr[i + 2];
          r3 += tr[i] * wr[i + 3];
        }
      }
      float* out = surface + static_cast<long>(ky) * m + kx;
      out[0] = lane_sum(a0) + r0;
      out[1] = lane_sum(a1) + r1;
      out[2] = lane_sum(a2) + r2;
      out[3] = lane_sum(a3) + r3;
    }
    for (; kx < m; ++kx) {
      f32x8 a{};
      float r = 0;
      for (int j = 0; j < chip; ++j) {
        const float* tr = t + static_cast<long>(j) * chip;
        const float* wr = w + static_cast<long>(j + ky) * w_stride + kx;
        for (int i = 0; i < full; i += kLanes) a += load8(tr + i) * load8(wr + i);
        for (int i = full; i < chip; ++i) r += tr[i] * wr[i];
      }
      surface[static_cast<long>(ky) * m + kx] = lane_sum(a) + r;
    }
  }
}

DEFORMA_KERNEL_CLONES
bool normalize_by_deviation(float* values, const double* var, int n, double scale, double threshold) {
  // Four values at a time in plain arithmetic (every lane divides, by 1 where the chip is flat), which
  // vectorizes; the flat ones are zeroed afterwards.
  bool any = false;
  for (int start = 0; start < n; start += 4) {
    const int count = n - start < 4 ? n - start : 4;
    double v[4] = {1.0, 1.0, 1.0, 1.0}, x[4] = {0, 0, 0, 0};
    bool ok[4] = {false, false, false, false};
    for (int l = 0; l < count; ++l) {
      ok[l] = var[start + l] > threshold;
      v[l] = ok[l] ? var[start + l] : 1.0;
      x[l] = values[start + l];
    }
    for (int l = 0; l < 4; ++l) x[l] = x[l] * scale / std::sqrt(v[l]);
    for (int l = 0; l < count; ++l) {
      values[start + l] = ok[l] ? static_cast<float>(x[l]) : 0.0f;
      any = any || ok[l];
    }
  }
  return any;
}

namespace {
// One row of an 8-tap filter: out[i] = sum_t weights[t] * in[i + t * step], i < count. Four blocks of eight
// outputs accumulate together (independent chains).
DEFORMA_INLINE void filter_row_8tap(const float* in, long step, const float* weights, int count, float* out) {
  const f32x8 w0 = splat(weights[0]), w1 = splat(weights[1]), w2 = splat(weights[2]), w3 = splat(weights[3]);
  const f32x8 w4 = splat(weights[4]), w5 = splat(weights[5]), w6 = splat(weights[6]), w7 = splat(weights[7]);
  auto block = [&](int i) {
    const float* p = in + i;
    f32x8 acc = w0 * load8(p);
    acc += w1 * load8(p + step);
    acc += w2 * load8(p + 2 * step);
    acc += w3 * load8(p + 3 * step);
    acc += w4 * load8(p + 4 * step);
    acc += w5 * load8(p + 5 * step);
    acc += w6 * load8(p + 6 * step);
    acc += w7 * load8(p + 7 * step);
    return acc;
  };
  const int full = count / kLanes * kLanes;
  int i = 0;
  for (; i + 4 * kLanes <= full; i += 4 * kLanes) {
    const f32x8 b0 = block(i), b1 = block(i + kLanes), b2 = block(i + 2 * kLanes), b3 = block(i + 3 * kLanes);
    store8(out + i, b0);
    store8(out + i + kLanes, b1);
    store8(out + i + 2 * kLanes, b2);
    store8(out + i + 3 * kLanes, b3);
  }
  for (; i < full; i += kLanes) store8(out + i, block(i));
  for (; i < count; ++i) {
    float acc = weights[0] * in[i];
    for (int t = 1; t < 8; ++t) acc += weights[t] * in[i + t * step];
    out[i] = acc;
  }
}
}  // namespace

DEFORMA_KERNEL_CLONES
void separable_8tap(const float* src, int stride, const float* wx, const float* wy, int chip, float* tmp,
                    float* out) {
  for (int r = 0; r < chip + 7; ++r)
    filter_row_8tap(src + static_cast<long>(r) * stride, 1, wx, chip, tmp + static_cast<long>(r) * chip);
  for (int j = 0; j < chip; ++j)
    filter_row_8tap(tmp + static_cast<long>(j) * chip, chip, wy, chip, out + static_cast<long>(j) * chip);
}

DEFORMA_KERNEL_CLONES
void masked_moments(const float* s, const float* mask, const float* t, int n, float mean, float& s1,
                    float& s2, float& st) {
  const f32x8 mv = splat(mean);
  f32x8 a1{}, a2{}, at{};
  const int full = n / kLanes * kLanes;
  for (int i = 0; i < full; i += kLanes) {
    const f32x8 v = (load8(s + i) - mv) * load8(mask + i);
    a1 += v;
    a2 += v * v;
    at += load8(t + i) * v;
  }
  float r1 = 0, r2 = 0, rt = 0;
  for (int i = full; i < n; ++i) {
    const float v = (s[i] - mean) * mask[i];
    r1 += v;
    r2 += v * v;
    rt += t[i] * v;
  }
  s1 = lane_sum(a1) + r1;
  s2 = lane_sum(a2) + r2;
  st = lane_sum(at) + rt;
}

DEFORMA_KERNEL_CLONES
void cross_moments(const float* a, const float* b, int n, float& aa, float& ab, float& bb) {
  f32x8 s_aa{}, s_ab{}, s_bb{};
  const int full = n / kLanes * kLanes;
  for (int i = 0; i < full; i += kLanes) {
    const f32x8 va = load8(a + i), vb = load8(b + i);
    s_aa += va * va;
    s_ab += va * vb;
    s_bb += vb * vb;
  }
  float r_aa = 0, r_ab = 0, r_bb = 0;
  for (int i = full; i < n; ++i) {
    r_aa += a[i] * a[i];
    r_ab += a[i] * b[i];
    r_bb += b[i] * b[i];
  }
  aa = lane_sum(s_aa) + r_aa;
  ab = lane_sum(s_ab) + r_ab;
  bb = lane_sum(s_bb) + r_bb;
}

DEFORMA_KERNEL_CLONES
void project_residual(const float* s, const float* t, const float* gx, const float* gy, int n, float mean,
                      float offset, float gain, float& bx, float& by) {
  const f32x8 mv = splat(mean), ov = splat(offset), gv = splat(gain);
  f32x8 ax{}, ay{};
  const int full = n / kLanes * kLanes;
  for (int i = 0; i < full; i += kLanes) {
    const f32x8 e = ((load8(s + i) - mv) - ov) - gv * load8(t + i);
    ax += load8(gx + i) * e;
    ay += load8(gy + i) * e;
  }
  float rx = 0, ry = 0;
  for (int i = full; i < n; ++i) {
    const float e = ((s[i] - mean) - offset) - gain * t[i];
    rx += gx[i] * e;
    ry += gy[i] * e;
  }
  bx = lane_sum(ax) + rx;
  by = lane_sum(ay) + ry;
}

namespace {
using i32x8 = int __attribute__((vector_size(32)));

// Whether the n bytes at p are all 1 (eight at a time).
DEFORMA_INLINE bool all_ones(const std::uint8_t* p, int n) {
  std::uint64_t all = ~std::uint64_t{0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    __builtin_memcpy(&word, p + i, sizeof word);
    all &= word == 0x0101010101010101ULL ? ~std::uint64_t{0} : 0;
  }
  for (; i < n; ++i) all &= p[i] == 1 ? ~std::uint64_t{0} : 0;
  return all != 0;
}

// Sum of n floats: one vector accumulator, its lanes and the tail combined in a fixed order.
DEFORMA_INLINE float row_sum(const float* v, int n) {
  f32x8 acc{};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) acc += load8(v + i);
  float tail = 0;
  for (; i < n; ++i) tail += v[i];
  return lane_sum(acc) + tail;
}

// The general case, pixel by pixel.
DEFORMA_INLINE int copy_valid_each(const float* src, const std::uint8_t* ok, int n, float* dst,
                                   std::uint8_t* state) {
  int count = 0;
  for (int i = 0; i < n; ++i) {
    const float v = src[i];
    // v - v is 0 for finite values and NaN for NaN and infinities.
    const bool good = (!ok || ok[i] != 0) && v - v == 0.0f;
    dst[i] = good ? v : 0.0f;
    state[i] = good ? 1 : 0;
    count += good ? 1 : 0;
  }
  return count;
}
}  // namespace

DEFORMA_KERNEL_CLONES
int copy_valid(const float* src, const std::uint8_t* ok, int n, float* dst, std::uint8_t* state) {
  // Nearly every row of a real scene is entirely valid: check that cheaply (mask bytes equal to 1, eight at a
  // time; values finite while they are copied), and fall back to the pixel-by-pixel copy otherwise.
  if (ok && !all_ones(ok, n)) return copy_valid_each(src, ok, n, dst, state);
  i32x8 finite = ~i32x8{};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const f32x8 v = load8(src + i);
    finite &= (v - v) == splat(0.0f);
    store8(dst + i, v);
  }
  bool all_finite = true;
  for (int l = 0; l < kLanes; ++l) all_finite = all_finite && finite[l] != 0;
  for (; i < n; ++i) {
    dst[i] = src[i];
    all_finite = all_finite && src[i] - src[i] == 0.0f;
  }
  if (!all_finite) return copy_valid_each(src, ok, n, dst, state);
  __builtin_memset(state, 1, static_cast<std::size_t>(n));
  return n;
}

DEFORMA_KERNEL_CLONES
void window_sums(const float* values, const std::uint8_t* states, int stride, int chip, double& sum,
                 int& valid, int& outside) {
  sum = 0;
  valid = outside = 0;
  for (int j = 0; j < chip; ++j) {
    const float* v = values + static_cast<long>(j) * stride;
    const std::uint8_t* st = states + static_cast<long>(j) * stride;
    // Invalid pixels were read as 0: they add nothing to the sum.
    sum += row_sum(v, chip);
    if (all_ones(st, chip)) {
      valid += chip;
      continue;
    }
    for (int i = 0; i < chip; ++i) {
      valid += st[i] == 1;
      outside += st[i] == 2;
    }
  }
}

DEFORMA_KERNEL_CLONES
double zero_mean_template(const float* values, const std::uint8_t* states, int stride, int chip, float mean,
                          float* weight, float* t) {
  const f32x8 mv = splat(mean);
  double ss = 0;
  for (int j = 0; j < chip; ++j) {
    const float* v = values + static_cast<long>(j) * stride;
    const std::uint8_t* st = states + static_cast<long>(j) * stride;
    float* w = weight + static_cast<long>(j) * chip;
    float* tr = t + static_cast<long>(j) * chip;
    for (int i = 0; i < chip; ++i) w[i] = st[i] == 1 ? 1.0f : 0.0f;
    f32x8 acc{};
    int i = 0;
    for (; i + kLanes <= chip; i += kLanes) {
      const f32x8 d = (load8(v + i) - mv) * load8(w + i);
      store8(tr + i, d);
      acc += d * d;
    }
    float tail = 0;
    for (; i < chip; ++i) {
      const float d = (v[i] - mean) * w[i];
      tr[i] = d;
      tail += d * d;
    }
    ss += lane_sum(acc) + tail;
  }
  return ss;
}

DEFORMA_KERNEL_CLONES
void gradients_7point(const float* values, int stride, const float* weight, int chip, float* gx, float* gy) {
  // The 7-point central difference is exact for polynomials up to degree 6.
  const f32x8 c45 = splat(45.0f), c9 = splat(9.0f), inv60 = splat(1.0f / 60.0f);
  const long s = stride;
  for (int j = 0; j < chip; ++j) {
    const float* p = values + j * s;
    const float* w = weight + static_cast<long>(j) * chip;
    float* gxr = gx + static_cast<long>(j) * chip;
    float* gyr = gy + static_cast<long>(j) * chip;
    int i = 0;
    for (; i + kLanes <= chip; i += kLanes) {
      const float* q = p + i;
      const f32x8 wv = load8(w + i);
      const f32x8 dx = c45 * (load8(q + 1) - load8(q - 1)) - c9 * (load8(q + 2) - load8(q - 2)) +
                       (load8(q + 3) - load8(q - 3));
      const f32x8 dy = c45 * (load8(q + s) - load8(q - s)) - c9 * (load8(q + 2 * s) - load8(q - 2 * s)) +
                       (load8(q + 3 * s) - load8(q - 3 * s));
      store8(gxr + i, wv * (dx * inv60));
      store8(gyr + i, wv * (dy * inv60));
    }
    for (; i < chip; ++i) {
      const float* q = p + i;
      gxr[i] = w[i] * ((45.0f * (q[1] - q[-1]) - 9.0f * (q[2] - q[-2]) + (q[3] - q[-3])) * (1.0f / 60.0f));
      gyr[i] = w[i] * ((45.0f * (q[s] - q[-s]) - 9.0f * (q[2 * s] - q[-2 * s]) + (q[3 * s] - q[-3 * s])) *
                       (1.0f / 60.0f));
    }
  }
}

DEFORMA_KERNEL_CLONES
void valid_sum(const float* values, const std::uint8_t* states, int n, float& sum, int& valid) {
  // Four accumulators: a long buffer would otherwise wait on the latency of one chain of additions.
  f32x8 a0{}, a1{}, a2{}, a3{};
  int i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    a0 += load8(values + i);
    a1 += load8(values + i + kLanes);
    a2 += load8(values + i + 2 * kLanes);
    a3 += load8(values + i + 3 * kLanes);
  }
  sum = lane_sum((a0 + a1) + (a2 + a3)) + row_sum(values + i, n - i);
  int count = 0;
  for (int k = 0; k < n; ++k) count += states[k] == 1 ? 1 : 0;
  valid = count;
}

DEFORMA_KERNEL_CLONES
void fill_invalid(float* values, const std::uint8_t* states, int n, float fill) {
  for (int k = 0; k < n; ++k) values[k] = states[k] == 1 ? values[k] : fill;
}

}  // namespace deforma::correlate::detail
