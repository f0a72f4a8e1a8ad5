#pragma once
// Eight-float vectors (GCC vector extensions) for the matcher's inner loops (internal; included by the
// kernel files only): one AVX register in the x86-64-v3 clone of a kernel, two SSE registers in the baseline
// one. Functions marked DEFORMA_KERNEL_CLONES are compiled for both and picked at load time.

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define DEFORMA_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DEFORMA_KERNEL_CLONES
#endif
#define DEFORMA_INLINE inline __attribute__((always_inline))

// The helpers below are always inlined: no vector crosses a function boundary, so the note about the AVX
// calling convention does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace deforma::correlate::detail {

using f32x8 = float __attribute__((vector_size(32)));
constexpr int kLanes = 8;

DEFORMA_INLINE f32x8 load8(const float* p) {
  f32x8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
DEFORMA_INLINE void store8(float* p, const f32x8& v) {
  __builtin_memcpy(p, &v, sizeof v);
}
DEFORMA_INLINE f32x8 splat(float x) {
  return f32x8{x, x, x, x, x, x, x, x};
}
// Fixed combination order of the lanes: the same sum whatever the clone.
DEFORMA_INLINE float lane_sum(const f32x8& v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

}  // namespace deforma::correlate::detail
