// The pair correlation's options: defaults, checks, and the lengths and regions given on the command line.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/correlate/oversample.hpp"

namespace deforma::correlate {

MatchOptions default_pair_match_options() {
  MatchOptions options;
  options.min_snr = 1.5;
  options.min_corr = 0.2;
  options.prefilter = Prefilter::kHighpass;  // as autoRIFT: removes illumination gradients and boosts SNR
  // The affine shape (docs/correlate.md): more accurate wherever the displacement varies across a chip,
  // and it gives the gradient and strain-rate bands, within the pair driver's throughput targets.
  options.shape = Shape::kAffine;
  return options;
}

namespace {
std::vector<std::string> names_of(const std::vector<io::product::BandSpec>& bands) {
  std::vector<std::string> names;
  for (const auto& b : bands) names.push_back(b.name);
  return names;
}
}  // namespace

const std::vector<std::string>& result_band_names() {
  static const std::vector<std::string> names = names_of(io::product::base_bands());
  return names;
}

const std::vector<std::string>& gradient_band_names() {
  static const std::vector<std::string> names = names_of(io::product::gradient_bands());
  return names;
}

const std::vector<std::string>& strain_rate_band_names() {
  static const std::vector<std::string> names = names_of(io::product::strain_rate_bands());
  return names;
}

void CorrelateOptions::validate() const {
  match.validate();
  if (step_px < 1) throw InvalidArgument(fmt::format("--step {}: expected >= 1 px", step_px));
  if (ref_band < 1) throw InvalidArgument(fmt::format("--band {}: expected >= 1", ref_band));
  if (sec_band < 1) throw InvalidArgument(fmt::format("--sec-band {}: expected >= 1", sec_band));
  if (years_between && !(*years_between > 0)) {
    throw InvalidArgument(
        fmt::format("--velocity: the time between acquisitions must be > 0 (got {:.4f} yr); "
                    "check the dates of the two images",
                    *years_between));
  }
  if (roi && roi->empty()) throw InvalidArgument("--roi: empty window");
  check_oversample(oversample);
}

int parse_length_px(const std::string& text, const io::RasterInfo& grid, const std::string& parameter) {
  std::string number = text;
  double scale_m = 0;  // 0 = pixels
  auto ends_with = [&](const std::string& suffix) {
    return number.size() > suffix.size() &&
           number.compare(number.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("px")) {
    number.resize(number.size() - 2);
  } else if (ends_with("km")) {
    number.resize(number.size() - 2), scale_m = 1000;
  } else if (ends_with("m")) {
    number.resize(number.size() - 1), scale_m = 1;
  }
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size() || !(value > 0)) {
    throw InvalidArgument(
        fmt::format("--{} '{}': expected a positive length in pixels (20, 20px) or metres "
                    "(300m, 1.5km)",
                    parameter, text));
  }
  // Checked before the conversion to int, which a huge value (1e308) would overflow into a negative length.
  constexpr double kLongestLengthPx = 1 << 20;
  auto whole_pixels = [&](double length_px) {
    if (!(length_px <= kLongestLengthPx)) {
      throw InvalidArgument(
          fmt::format("--{} '{}': {:.4g} px is longer than any image deforma reads "
                      "(expected at most {:.0f} px)",
                      parameter, text, length_px, kLongestLengthPx));
    }
    return static_cast<int>(std::ceil(length_px));
  };
  if (scale_m == 0) return whole_pixels(value);
  const double pixel_m = std::min(grid.pixel_size_x_m, grid.pixel_size_y_m);
  if (!(pixel_m > 0)) {
    throw InvalidArgument(
        fmt::format("--{} {}: a length in metres needs a georeferenced image; {} has none "
                    "(give pixels)",
                    parameter, text, grid.path));
  }
  return whole_pixels(value * scale_m / pixel_m);
}

io::Window parse_roi(const std::string& text, const io::RasterInfo& grid) {
  const bool pixels = text.rfind("px:", 0) == 0;
  std::vector<double> v;
  std::stringstream ss(pixels ? text.substr(3) : text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    double x = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), x);
    if (ec != std::errc() || ptr != item.data() + item.size()) {
      throw InvalidArgument(fmt::format("--roi '{}': '{}' is not a number", text, item));
    }
    v.push_back(x);
  }
  if (v.size() != 4) {
    throw InvalidArgument(
        fmt::format("--roi '{}': expected px:COL,ROW,WIDTH,HEIGHT or XMIN,YMIN,XMAX,YMAX", text));
  }
  io::Window w;
  if (pixels) {
    w = io::Window{static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]),
                   static_cast<int>(v[3])};
  } else {
    if (!grid.georeferenced) {
      throw InvalidArgument(
          fmt::format("--roi {}: map coordinates need a georeferenced image; {} has none "
                      "(use px:COL,ROW,WIDTH,HEIGHT)",
                      text, grid.path));
    }
    if (v[0] >= v[2] || v[1] >= v[3])
      throw InvalidArgument(fmt::format("--roi {}: expected XMIN < XMAX and YMIN < YMAX", text));
    double cmin = 1e300, cmax = -1e300, rmin = 1e300, rmax = -1e300;
    for (double x : {v[0], v[2]}) {
      for (double y : {v[1], v[3]}) {
        double c, r;
        grid.geotransform.map_to_pixel(x, y, c, r);
        cmin = std::min(cmin, c), cmax = std::max(cmax, c), rmin = std::min(rmin, r),
        rmax = std::max(rmax, r);
      }
    }
    w = io::Window{static_cast<int>(std::floor(cmin)), static_cast<int>(std::floor(rmin)),
                   static_cast<int>(std::ceil(cmax) - std::floor(cmin)),
                   static_cast<int>(std::ceil(rmax) - std::floor(rmin))};
  }
  const auto clipped = w.intersect(io::Window{0, 0, grid.width, grid.height});
  if (clipped.empty())
    throw InvalidArgument(
        fmt::format("--roi {}: outside {} ({}x{} px)", text, grid.path, grid.width, grid.height));
  return clipped;
}

void check_fits_image(const CorrelateOptions& options, const io::RasterInfo& ref_info) {
  const io::Window roi = options.roi
                             ? options.roi->intersect(io::Window{0, 0, ref_info.width, ref_info.height})
                             : io::Window{0, 0, ref_info.width, ref_info.height};
  const int chip = options.match.chip_px;
  if (chip > roi.width || chip > roi.height) {
    throw InvalidArgument(fmt::format("--chip {} px is larger than the {} ({}x{} px)", chip,
                                      options.roi ? "region of interest" : "image " + ref_info.path,
                                      roi.width, roi.height));
  }
  if (options.match.search_px >= std::max(ref_info.width, ref_info.height)) {
    throw InvalidArgument(fmt::format("--search {} px is larger than the image {} ({}x{} px)",
                                      options.match.search_px, ref_info.path, ref_info.width,
                                      ref_info.height));
  }
}

}  // namespace deforma::correlate
