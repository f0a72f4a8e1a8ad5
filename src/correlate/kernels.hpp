#pragma once
// Inner loops of the chip matcher, on raw arrays. Each is compiled twice (x86-64-v3: AVX2 + FMA, and the
// baseline) and the loader picks the version the processor runs, so one binary serves old and new machines.
// Sums are kept in fixed lanes and combined in a fixed order: a given processor always gets the same result,
// whatever the thread that computes a node.
#include <cstdint>

namespace deforma::correlate::detail {

/// surface[ky * m + kx] = sum over j, i < chip of t[j * chip + i] * w[(j + ky) * w_stride + i + kx], for
/// kx, ky in [0, m): the correlation numerator of a chip against every offset of a search window.
void correlate_direct(const float* t, int chip, const float* w, int w_stride, int m, float* surface);

/// Normalizes a row of correlation numerators: values[i] *= scale / sqrt(var[i]) where var[i] > threshold,
/// 0 elsewhere (flat chips). Returns whether any value was above the threshold.
bool normalize_by_deviation(float* values, const double* var, int n, double scale, double threshold);

/// Separable 8-tap filter of a chip x chip output: out[j * chip + i] = sum over ty, tx < 8 of
/// wy[ty] * wx[tx] * src[(j + ty) * stride + i + tx]. `tmp` holds (chip + 7) * chip floats.
void separable_8tap(const float* src, int stride, const float* wx, const float* wy, int chip, float* tmp,
                    float* out);

/// Moments of v = (s - mean) * mask over n values: s1 = sum v, s2 = sum v^2, st = sum t * v.
void masked_moments(const float* s, const float* mask, const float* t, int n, float mean, float& s1,
                    float& s2, float& st);

/// Sums over n values: aa = sum a^2, ab = sum a * b, bb = sum b^2.
void cross_moments(const float* a, const float* b, int n, float& aa, float& ab, float& bb);

/// Projection of the residual e = (s - mean - offset) - gain * t on the gradients: bx = sum gx * e,
/// by = sum gy * e over n values (gx, gy are zero where a pixel does not count).
void project_residual(const float* s, const float* t, const float* gx, const float* gy, int n, float mean,
                      float offset, float gain, float& bx, float& by);

/// Over the chip x chip window at `values` / `states` (row stride `stride`): the sum of the values and the
/// numbers of valid (state 1) and outside (state 2) pixels. Row sums in float, their total in double.
void window_sums(const float* values, const std::uint8_t* states, int stride, int chip, double& sum,
                 int& valid, int& outside);

/// The zero-mean template of that window: weight[k] = 1 where the state is 1, else 0, and
/// t[k] = (value - mean) * weight[k] (chip x chip, row major). Returns sum t^2 (row sums in float, their
/// total in double).
double zero_mean_template(const float* values, const std::uint8_t* states, int stride, int chip, float mean,
                          float* weight, float* t);

/// Gradients of the chip x chip window at `values` (row stride `stride`, at least 3 pixels of border on
/// every side) by the 7-point central difference, times weight (chip x chip): gx along rows, gy along
/// columns.
void gradients_7point(const float* values, int stride, const float* weight, int chip, float* gx, float* gy);

/// Sum of n values (invalid ones read as 0) and the number whose state is 1 (valid).
void valid_sum(const float* values, const std::uint8_t* states, int n, float& sum, int& valid);

/// values[k] = fill wherever states[k] is not 1, over n values.
void fill_invalid(float* values, const std::uint8_t* states, int n, float fill);

/// Copies n values, zeroing the invalid ones (ok[i] == 0 when ok is given, or not finite): dst[i], and
/// state[i] = 1 (valid) or 0. Returns the number of valid values.
int copy_valid(const float* src, const std::uint8_t* ok, int n, float* dst, std::uint8_t* state);

}  // namespace deforma::correlate::detail
