#pragma once
// The schema of a correlation product (what `correlate` writes and `filter`, `invert`, the pipeline and the
// map server read), defined once: band names and units, nodata, and the values of the flag band.
#include <cstdint>
#include <string>
#include <vector>

#include "deforma/io/raster.hpp"

namespace deforma::io::product {

/// Nodata of every float band of a correlation product.
inline constexpr float kNodata = -9999.0f;

/// The value of the `flag` band of a node. `correlate` writes 0..6; `filter` adds 7..9.
enum class NodeFlag : std::uint8_t {
  kValid = 0,           ///< a displacement was measured
  kLowSnr = 1,          ///< the correlation peak is not distinct enough (snr < min_snr) or corr < min_corr
  kNoTexture = 2,       ///< the reference or the matched secondary chip is (numerically) constant
  kMasked = 3,          ///< too many invalid (nodata, NaN, masked) pixels in the chips, or in --mask
  kSearchBorder = 4,    ///< the integer peak lies on the border of the search window: motion may be larger
  kOutsideOverlap = 5,  ///< the chip or search window falls outside the images (or their common footprint)
  kNoPeak = 6,          ///< no usable peak (refinement diverged, degenerate surface) or not computed
  kMedianTest = 7,      ///< filter: rejected by the normalized median test
  kAboveMaxDisplacement = 8,  ///< filter: above --max-displacement or --max-velocity
  kLowCorrelation = 9,        ///< filter: below --min-corr
};

/// Bit added to the flag of a valid node (16 instead of 0) when the affine shape was asked for and the node
/// kept the translation. Its displacement is valid; its gradients are nodata.
inline constexpr std::uint8_t kTranslationOnlyBit = 16;

/// True for a flag value that carries a displacement: 0, or 16 (valid, translation only).
inline bool is_measured(float flag) { return flag == 0.0f || flag == static_cast<float>(kTranslationOnlyBit); }

/// The flag values as the products' DEFORMA_FLAGS metadata and the filter's record describe them.
const std::string& flags_description();

/// Band names (the GDAL band descriptions) and their units.
namespace band {
inline constexpr const char* kDx = "dx_px";
inline constexpr const char* kDy = "dy_px";
inline constexpr const char* kEast = "east_m";
inline constexpr const char* kNorth = "north_m";
inline constexpr const char* kCorr = "corr";
inline constexpr const char* kSnr = "snr";
inline constexpr const char* kFlag = "flag";
inline constexpr const char* kEastVelocity = "east_m_per_yr";
inline constexpr const char* kNorthVelocity = "north_m_per_yr";
inline constexpr const char* kSpeed = "speed_m_per_yr";
inline constexpr const char* kVxPixels = "vx_px_per_yr";  ///< without georeferencing
inline constexpr const char* kVyPixels = "vy_px_per_yr";
inline constexpr const char* kSpeedPixels = "speed_px_per_yr";
}  // namespace band

struct BandSpec {
  std::string name;
  std::string unit;
};

/// The bands every correlation product starts with, in order: dx_px, dy_px, east_m, north_m, corr, snr, flag.
const std::vector<BandSpec>& base_bands();

/// The velocity bands `correlate --velocity` adds: in m/yr when georeferenced, else in px/yr.
std::vector<BandSpec> velocity_bands(bool georeferenced);

/// The affine shape's displacement gradients (px/px) and strain rates (1/yr).
const std::vector<BandSpec>& gradient_bands();
const std::vector<BandSpec>& strain_rate_bands();

/// Checks that `info` holds the bands `required` (by description); throws FormatError naming the file, every
/// missing band and what a correlation product holds.
void check_bands(const RasterInfo& info, const std::vector<std::string>& required);

}  // namespace deforma::io::product
