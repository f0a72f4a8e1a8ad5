#pragma once
// Helpers of the correlation tests: band-limited synthetic texture, exact (Fourier) sub-pixel shifts,
// warping by a displacement field, and error statistics.
#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <mutex>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <fftw3.h>
#include <opencv2/imgproc.hpp>

#include "deforma/core/grid.hpp"
#include "deforma/correlate/matcher.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::test {

/// Median and 95th percentile of the absolute values (NaN when empty).
struct ErrorStats {
  double median = 0;
  double p95 = 0;
  double rmse = 0;
  std::size_t count = 0;
};


inline GridF make_noise_texture(int width, int height, double sigma_px, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  cv::Mat noise(height, width, CV_32F);
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) noise.at<float>(r, c) = normal(rng);
  cv::Mat smooth;
  cv::GaussianBlur(noise, smooth, cv::Size(0, 0), sigma_px, sigma_px, cv::BORDER_REFLECT);
  double lo = 0, hi = 0;
  cv::minMaxLoc(smooth, &lo, &hi);
  GridF out(width, height);
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c)
      out(c, r) = static_cast<float>(1000.0 * (smooth.at<float>(r, c) - lo) / (hi - lo));
  return out;
}

namespace detail {
// Mirror-padded 2W x 2H complex spectrum, multiplied by `ramp(kx, ky)` and transformed back; the result is
// cropped to W x H.
inline GridF spectral_filter(const GridF& in, int out_scale,
                      const std::function<std::complex<float>(double fx, double fy)>& ramp) {
  const int w = in.width();
  const int h = in.height();
  const int pw = 2 * w;
  const int ph = 2 * h;
  std::vector<std::complex<float>> buf(static_cast<std::size_t>(pw) * ph);
  for (int r = 0; r < ph; ++r)
    for (int c = 0; c < pw; ++c) {
      const int sc = c < w ? c : pw - 1 - c;
      const int sr = r < h ? r : ph - 1 - r;
      buf[static_cast<std::size_t>(r) * pw + c] = in(sc, sr);
    }
  const int ow = pw * out_scale;
  const int oh = ph * out_scale;
  std::vector<std::complex<float>> spec(static_cast<std::size_t>(ow) * oh);
  {
    fftwf_plan p = fftwf_plan_dft_2d(ph, pw, reinterpret_cast<fftwf_complex*>(buf.data()),
                                   reinterpret_cast<fftwf_complex*>(buf.data()), FFTW_FORWARD, FFTW_ESTIMATE);
    fftwf_execute(p);
    fftwf_destroy_plan(p);
  }
  for (int r = 0; r < ph; ++r) {
    const int ky = r <= ph / 2 ? r : r - ph;
    for (int c = 0; c < pw; ++c) {
      const int kx = c <= pw / 2 ? c : c - pw;
      std::complex<float> v = buf[static_cast<std::size_t>(r) * pw + c] * ramp(double(kx) / pw, double(ky) / ph);
      // Nyquist terms: keep the result real by splitting them evenly (only matters when upsampling).
      if ((2 * kx == pw || 2 * ky == ph) && out_scale > 1) v *= 0.5f;
      const int oc = kx >= 0 ? kx : ow + kx;
      const int orow = ky >= 0 ? ky : oh + ky;
      spec[static_cast<std::size_t>(orow) * ow + oc] += v;
    }
  }
  fftwf_plan p = fftwf_plan_dft_2d(oh, ow, reinterpret_cast<fftwf_complex*>(spec.data()),
                                 reinterpret_cast<fftwf_complex*>(spec.data()), FFTW_BACKWARD, FFTW_ESTIMATE);
  fftwf_execute(p);
  fftwf_destroy_plan(p);
  GridF out(w * out_scale, h * out_scale);
  const double norm = 1.0 / (static_cast<double>(pw) * ph);
  for (int r = 0; r < h * out_scale; ++r)
    for (int c = 0; c < w * out_scale; ++c)
      out(c, r) = static_cast<float>(spec[static_cast<std::size_t>(r) * ow + c].real() * norm);
  return out;
}
}  // namespace detail

inline GridF fourier_shift(const GridF& in, double dx_px, double dy_px) {
  return detail::spectral_filter(in, 1, [&](double fx, double fy) {
    return std::polar(1.0f, static_cast<float>(-2.0 * std::numbers::pi * (fx * dx_px + fy * dy_px)));
  });
}

inline GridF warp_by_field(const GridF& in, const std::function<void(double, double, double&, double&)>& field) {
  constexpr int kUp = 4;
  const GridF up = detail::spectral_filter(in, kUp, [](double, double) { return std::complex<float>(1.0f, 0.0f); });
  cv::Mat src(up.height(), up.width(), CV_32F, const_cast<float*>(up.data()));
  cv::Mat map_x(in.height(), in.width(), CV_32F), map_y(in.height(), in.width(), CV_32F);
  for (int r = 0; r < in.height(); ++r)
    for (int c = 0; c < in.width(); ++c) {
      double u = 0, v = 0;
      field(c, r, u, v);
      // Fixed-point inverse: the source of (c, r) is p with p + field(p) = (c, r).
      double pc = c - u, pr = r - v;
      for (int it = 0; it < 3; ++it) {
        field(pc, pr, u, v);
        pc = c - u;
        pr = r - v;
      }
      map_x.at<float>(r, c) = static_cast<float>(pc * kUp);
      map_y.at<float>(r, c) = static_cast<float>(pr * kUp);
    }
  cv::Mat dst;
  cv::remap(src, dst, map_x, map_y, cv::INTER_CUBIC, cv::BORDER_REFLECT);
  GridF out(in.width(), in.height());
  for (int r = 0; r < in.height(); ++r)
    for (int c = 0; c < in.width(); ++c) out(c, r) = dst.at<float>(r, c);
  return out;
}

inline GridF read_crop(const std::string& path, int col, int row, int width, int height) {
  const io::Raster raster = io::Raster::open(path);
  io::BandWindow w = raster.read(1, io::Window{col, row, width, height});
  return std::move(w.values);
}

inline ErrorStats error_stats(std::vector<double> v) {
  ErrorStats s;
  s.count = v.size();
  if (v.empty()) {
    s.median = s.p95 = s.rmse = std::nan("");
    return s;
  }
  double ss = 0;
  for (double e : v) ss += e * e;
  s.rmse = std::sqrt(ss / v.size());
  std::sort(v.begin(), v.end());
  s.median = v[v.size() / 2];
  s.p95 = v[std::min(v.size() - 1, static_cast<std::size_t>(std::ceil(0.95 * v.size())) - 1)];
  return s;
}

inline correlate::NodeGrid interior_nodes(int width, int height, int margin, int step) {
  correlate::NodeGrid g;
  g.first_col = margin;
  g.first_row = margin;
  g.step_px = step;
  g.cols = (width - 2 * margin - 1) / step + 1;
  g.rows = (height - 2 * margin - 1) / step + 1;
  return g;
}

}  // namespace deforma::test
