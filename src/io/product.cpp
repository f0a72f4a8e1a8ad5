#include "deforma/io/product.hpp"

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::io::product {

const std::string& flags_description() {
  static const std::string text =
      "0 valid, 1 low_snr, 2 no_texture, 3 masked, 4 search_border, 5 outside_overlap, 6 no_peak, "
      "7 median_test, 8 above_max_displacement, 9 low_corr; 16 valid, translation only (the affine shape "
      "was asked for but its fit was ill-conditioned)";
  return text;
}

const std::vector<BandSpec>& base_bands() {
  static const std::vector<BandSpec> bands = {{band::kDx, "px"},   {band::kDy, "px"},  {band::kEast, "m"},
                                              {band::kNorth, "m"}, {band::kCorr, ""},  {band::kSnr, ""},
                                              {band::kFlag, ""}};
  return bands;
}

std::vector<BandSpec> velocity_bands(bool georeferenced) {
  if (georeferenced) {
    return {{band::kEastVelocity, "m/yr"}, {band::kNorthVelocity, "m/yr"}, {band::kSpeed, "m/yr"}};
  }
  return {{band::kVxPixels, "px/yr"}, {band::kVyPixels, "px/yr"}, {band::kSpeedPixels, "px/yr"}};
}

const std::vector<BandSpec>& gradient_bands() {
  static const std::vector<BandSpec> bands = {
      {"dudx", "px/px"}, {"dudy", "px/px"}, {"dvdx", "px/px"}, {"dvdy", "px/px"}};
  return bands;
}

const std::vector<BandSpec>& strain_rate_bands() {
  static const std::vector<BandSpec> bands = {
      {"exx", "1/yr"}, {"eyy", "1/yr"}, {"exy", "1/yr"}, {"effective_strain_rate", "1/yr"}};
  return bands;
}

void check_bands(const RasterInfo& info, const std::vector<std::string>& required) {
  std::vector<std::string> missing;
  for (const auto& name : required) {
    bool found = false;
    for (const auto& b : info.bands) found = found || b.description == name;
    if (!found) missing.push_back(fmt::format("'{}'", name));
  }
  if (missing.empty()) return;
  throw FormatError(fmt::format(
      "{}: no band described as {}; expected a correlation result with bands dx_px, dy_px, flag (and "
      "optionally east_m, north_m, corr, snr); it has {}",
      info.path, fmt::join(missing, ", "), band_names(info)));
}

}  // namespace deforma::io::product
