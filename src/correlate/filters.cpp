// Prefilters and dense optical flow, on OpenCV.
#include <algorithm>
#include <cmath>
#include <vector>

#include <tbb/parallel_for.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/correlate/matcher.hpp"

namespace deforma::correlate {

namespace {
constexpr double kHighpassSigmaPx = 1.5;
constexpr int kWallisWindowPx = 15;

cv::Mat as_mat(GridF& grid) {
  return cv::Mat(grid.height(), grid.width(), CV_32F, grid.data());
}

// Pixels of a row that are valid and finite (v - v is 0 for finite values, NaN otherwise); branch-free.
int usable_pixels(const float* values, const unsigned char* ok, int n) {
  int count = 0;
  for (int c = 0; c < n; ++c) count += (ok[c] != 0) & (values[c] - values[c] == 0.0f);
  return count;
}

// Fills invalid pixels with a normalized Gaussian average of their valid neighbourhood (then the mean of the
// valid pixels of the band where no valid pixel is near), so that filters and flow do not ring on holes.
void fill_invalid(GridF& image, const GridU8& valid) {
  const int w = image.width();
  const int h = image.height();
  // Most bands have no invalid pixel: count first (cheap), sum only when there is something to fill.
  long long count = 0;
  for (int r = 0; r < h; ++r) count += usable_pixels(image.row(r), valid.row(r), w);
  if (count == static_cast<long long>(w) * h) return;
  double sum = 0;
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c)
      if (valid(c, r) && std::isfinite(image(c, r))) sum += image(c, r);
  const float mean = count > 0 ? static_cast<float>(sum / count) : 0.0f;
  cv::Mat values(h, w, CV_32F), weights(h, w, CV_32F);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const bool ok = valid(c, r) && std::isfinite(image(c, r));
      values.at<float>(r, c) = ok ? image(c, r) : 0.0f;
      weights.at<float>(r, c) = ok ? 1.0f : 0.0f;
    }
  cv::Mat sv, sw;
  cv::GaussianBlur(values, sv, cv::Size(0, 0), 4.0, 4.0, cv::BORDER_REFLECT);
  cv::GaussianBlur(weights, sw, cv::Size(0, 0), 4.0, 4.0, cv::BORDER_REFLECT);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      if (weights.at<float>(r, c) > 0) continue;
      const float wsum = sw.at<float>(r, c);
      // Any positive weight: the Gaussian's support (16 px) is finite, so the fill of a pixel depends only on
      // pixels within that distance, never on the band's extent (strips then agree with whole images).
      // The band mean only reaches pixels too far from valid ones to influence any filter of a valid pixel.
      image(c, r) = wsum > 0.0f ? sv.at<float>(r, c) / wsum : mean;
    }
}
}  // namespace

int prefilter_halo_px(Prefilter filter) {
  switch (filter) {
    case Prefilter::kNone:
      return 0;
    case Prefilter::kHighpass:
      return static_cast<int>(std::ceil(4 * kHighpassSigmaPx));
    case Prefilter::kWallis:
      return kWallisWindowPx / 2 + 1;
    case Prefilter::kOrientation:
      return 2;
  }
  return 0;
}

int prefilter_context_px(Prefilter filter) {
  // The hole filling is a Gaussian of sigma 4 px cut at 16 px: a filtered pixel sees filled values up to
  // prefilter_halo_px() + 16 px away; 4 px more keep a margin.
  return filter == Prefilter::kNone ? 0 : prefilter_halo_px(filter) + 20;
}

namespace {
// Filters rows [row0, row1) of `image` into the same rows of `out`, from a band of rows with
// prefilter_context_px() of context above and below: the values do not depend on where the band is cut.
void filter_rows(Prefilter filter, const GridF& image, const GridU8& valid, int row0, int row1, GridF& out) {
  const int context = prefilter_context_px(filter);
  const int band0 = std::max(0, row0 - context);
  const int band1 = std::min(image.height(), row1 + context);
  const int width = image.width();
  const int rows = band1 - band0;
  // A band without invalid pixels is filtered where it lies (a matrix header on the image's rows: the same
  // values as a copy, whose borders are reflected the same way); otherwise a copy is filled first.
  bool all_valid = true;
  for (int r = band0; r < band1 && all_valid; ++r)
    all_valid = usable_pixels(image.row(r), valid.row(r), width) == width;
  GridF band;
  cv::Mat src;
  if (all_valid) {
    src = cv::Mat(rows, width, CV_32F, const_cast<float*>(image.row(band0)));
  } else {
    band = GridF(width, rows);
    GridU8 band_valid(width, rows);
    for (int r = band0; r < band1; ++r) {
      std::copy_n(image.row(r), width, band.row(r - band0));
      std::copy_n(valid.row(r), width, band_valid.row(r - band0));
    }
    fill_invalid(band, band_valid);
    src = as_mat(band);
  }
  cv::Mat result;
  switch (filter) {
    case Prefilter::kNone:
      return;
    case Prefilter::kHighpass: {
      // Written straight into the output rows: src - low where valid.
      cv::Mat low;
      cv::GaussianBlur(src, low, cv::Size(0, 0), kHighpassSigmaPx, kHighpassSigmaPx, cv::BORDER_REFLECT);
      for (int r = row0; r < row1; ++r) {
        const float* values = src.ptr<float>(r - band0);
        const float* smooth = low.ptr<float>(r - band0);
        const unsigned char* ok = valid.row(r);
        float* dst = out.row(r);
        for (int c = 0; c < width; ++c) dst[c] = ok[c] ? values[c] - smooth[c] : 0.0f;
      }
      return;
    }
    case Prefilter::kWallis: {
      // (x - local mean) / local std, both over a box window; a small floor keeps flat areas finite.
      cv::Mat mean, sq_mean;
      cv::boxFilter(src, mean, CV_32F, cv::Size(kWallisWindowPx, kWallisWindowPx), cv::Point(-1, -1), true,
                    cv::BORDER_REFLECT);
      cv::boxFilter(src.mul(src), sq_mean, CV_32F, cv::Size(kWallisWindowPx, kWallisWindowPx),
                    cv::Point(-1, -1), true, cv::BORDER_REFLECT);
      result.create(src.size(), CV_32F);
      for (int r = 0; r < src.rows; ++r)
        for (int c = 0; c < src.cols; ++c) {
          const float m = mean.at<float>(r, c);
          const float var = std::max(0.0f, sq_mean.at<float>(r, c) - m * m);
          const float floor = 1e-4f * std::max(1.0f, std::abs(m));
          result.at<float>(r, c) = (src.at<float>(r, c) - m) / std::sqrt(var + floor * floor);
        }
      break;
    }
    case Prefilter::kOrientation: {
      cv::Mat gx, gy;
      cv::Sobel(src, gx, CV_32F, 1, 0, 3, 1.0, 0.0, cv::BORDER_REFLECT);
      cv::Sobel(src, gy, CV_32F, 0, 1, 3, 1.0, 0.0, cv::BORDER_REFLECT);
      result.create(src.size(), CV_32F);
      for (int r = 0; r < src.rows; ++r)
        for (int c = 0; c < src.cols; ++c) {
          const float a = gx.at<float>(r, c);
          const float b = gy.at<float>(r, c);
          const float mag = std::sqrt(a * a + b * b);
          result.at<float>(r, c) = mag > 1e-6f ? (a + b) / mag : 0.0f;
        }
      break;
    }
  }
  for (int r = row0; r < row1; ++r) {
    const float* filtered = result.ptr<float>(r - band0);
    const unsigned char* ok = valid.row(r);
    float* dst = out.row(r);
    for (int c = 0; c < width; ++c) dst[c] = ok[c] ? filtered[c] : 0.0f;
  }
}
}  // namespace

GridF prefiltered(Prefilter filter, const GridF& image, const GridU8& valid) {
  if (filter == Prefilter::kNone || image.empty()) return image;
  if (valid.width() != image.width() || valid.height() != image.height())
    throw InvalidArgument("apply_prefilter: the validity mask and the image differ in size");
  // Bands of rows, in parallel: their scratch stays small (a few MB, reused by the allocator instead of
  // fresh pages for every full-size temporary) and the filling and filtering use every thread.
  constexpr int kBandRows = 128;
  GridF out(image.width(), image.height());
  const int bands = (image.height() + kBandRows - 1) / kBandRows;
  tbb::parallel_for(0, bands, [&](int b) {
    filter_rows(filter, image, valid, b * kBandRows, std::min(image.height(), (b + 1) * kBandRows), out);
  });
  return out;
}

void apply_prefilter(Prefilter filter, GridF& image, const GridU8& valid) {
  if (filter == Prefilter::kNone || image.empty()) return;
  image = prefiltered(filter, image, valid);
}

FlowField dense_flow(const GridF& ref, const GridU8& ref_valid, const GridF& sec, const GridU8& sec_valid) {
  const int w = ref.width();
  const int h = ref.height();
  if (sec.width() != w || sec.height() != h || ref_valid.width() != w || ref_valid.height() != h ||
      sec_valid.width() != w || sec_valid.height() != h)
    throw InvalidArgument(
        "dense_flow: the reference and secondary windows (and masks) must have the same size");
  FlowField field{GridF(w, h, std::numeric_limits<float>::quiet_NaN()),
                  GridF(w, h, std::numeric_limits<float>::quiet_NaN())};
  if (w < 8 || h < 8) return field;
  // One linear 8-bit mapping for both images (robust percentiles of the valid pixels of both).
  std::vector<float> samples;
  samples.reserve(ref.size() / 4 + sec.size() / 4 + 2);
  for (std::size_t k = 0; k < ref.size(); k += 2) {
    if (ref_valid.data()[k] && std::isfinite(ref.data()[k])) samples.push_back(ref.data()[k]);
    if (sec_valid.data()[k] && std::isfinite(sec.data()[k])) samples.push_back(sec.data()[k]);
  }
  if (samples.size() < 16) return field;
  // The sample values themselves (rank floor(q (n - 1))), so the double converts back exactly.
  const float lo = static_cast<float>(percentile_in_place(samples, 0.005));
  const float hi = static_cast<float>(percentile_in_place(samples, 0.995));
  const float scale = hi > lo ? 255.0f / (hi - lo) : 1.0f;
  auto to_u8 = [&](const GridF& image, const GridU8& valid) {
    GridF filled = image;
    fill_invalid(filled, valid);
    cv::Mat out(h, w, CV_8U);
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c)
        out.at<unsigned char>(r, c) = cv::saturate_cast<unsigned char>((filled(c, r) - lo) * scale);
    return out;
  };
  const cv::Mat a = to_u8(ref, ref_valid);
  const cv::Mat b = to_u8(sec, sec_valid);
  auto dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
  dis->setUseSpatialPropagation(true);
  cv::Mat flow;
  dis->calc(a, b, flow);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      if (!ref_valid(c, r)) continue;
      const cv::Vec2f f = flow.at<cv::Vec2f>(r, c);
      field.dx_px(c, r) = f[0];
      field.dy_px(c, r) = f[1];
    }
  return field;
}

}  // namespace deforma::correlate
