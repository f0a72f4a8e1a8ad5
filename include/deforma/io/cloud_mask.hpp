#pragma once
// Cloud masks of optical scenes and the cloud cover they give over an area of interest (GDM-Survey's rule:
// the share of the aoi's valid pixels that are cloud or cloud shadow, rather than the scene-wide figure of
// the metadata). Shared by the catalogue (search by cloud cover) and the pair selection of `pairs` and
// `pipeline`, so it lives below both.
#include <optional>
#include <string>
#include <vector>

namespace deforma::io {

enum class CloudMaskKind {
  kSentinel2Scl,    ///< Sentinel-2 L2A scene classification: one class per pixel, 0 = no data
  kLandsatQaPixel,  ///< Landsat Collection 2 QA_PIXEL: bit flags, bit 0 = fill
  kLandsatBqa,      ///< Landsat Collection 1 BQA: bit flags and 2-bit confidences, bit 0 = fill
};

struct CloudMask {
  std::string path;
  CloudMaskKind kind = CloudMaskKind::kSentinel2Scl;
};

/// Sentinel-2 SCL classes counted as cloud: cloud shadow (3), cloud medium (8) and high (9) probability,
/// thin cirrus (10).
inline const std::vector<int> kSclCloudClasses{3, 8, 9, 10};

/// Landsat Collection 2 QA_PIXEL bits counted as cloud: dilated cloud (1), cirrus (2), cloud (3), cloud
/// shadow (4). Bit 0 marks fill pixels, which are not valid.
inline constexpr unsigned kQaPixelCloudBits = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4);
inline constexpr unsigned kQaPixelFillBit = 1u << 0;

/// Landsat Collection 1 Level-1 BQA (USGS, "Landsat Collection 1 Level-1 Quality Assessment Band", and the
/// Landsat QA Tools user guide, version 1.4, 2017): bit 0 designated fill, bit 4 cloud, bits 5-6 cloud
/// confidence, bits 7-8 cloud shadow confidence, bits 11-12 cirrus confidence (Landsat 8 only; zero on
/// Landsat 4-7). A confidence is 0 not determined, 1 low, 2 medium, 3 high. A pixel counts as cloud when
/// the cloud bit is set or the cloud, cloud shadow or cirrus confidence is high, as QA_PIXEL's cloud,
/// shadow and cirrus bits are counted.
inline constexpr unsigned kBqaFillBit = 1u << 0;
inline constexpr unsigned kBqaCloudBit = 1u << 4;
inline constexpr unsigned kBqaCloudConfidenceShift = 5;
inline constexpr unsigned kBqaShadowConfidenceShift = 7;
inline constexpr unsigned kBqaCirrusConfidenceShift = 11;
inline constexpr unsigned kBqaHighConfidence = 3;

/// Whether a Collection 1 BQA value is cloud (or cloud shadow, or cirrus) by the rule above.
constexpr bool bqa_is_cloud(unsigned value) {
  return (value & kBqaCloudBit) != 0 || ((value >> kBqaCloudConfidenceShift) & 3u) == kBqaHighConfidence ||
         ((value >> kBqaShadowConfidenceShift) & 3u) == kBqaHighConfidence ||
         ((value >> kBqaCirrusConfidenceShift) & 3u) == kBqaHighConfidence;
}

/// The cloud mask of an image, found beside it by name: for a Sentinel-2 band
/// (T29UNU_20221005T115411_B04_60m.jp2, also .tif) the SCL of the same tile and time in its folder or in the
/// R20m/R60m folders of its granule (20 m preferred); for a Landsat Collection 2 band (..._SR_B4.TIF,
/// ..._B8.TIF) the scene's _QA_PIXEL.TIF, for a Collection 1 band (..._01_T1_B8.TIF) its _BQA.TIF. nullopt
/// when there is none.
std::optional<CloudMask> find_cloud_mask(const std::string& image_path);

/// Where find_cloud_mask looks, in words, for error messages.
std::string cloud_mask_rule();

/// Cloud cover (%) over `aoi` of a mask: cloud pixels over valid pixels whose centre lies inside the aoi.
/// `aoi` is a polygon in WGS84 lon/lat as WKT ("POLYGON((...))"), GeoJSON geometry text, or a bbox
/// "west,south,east,north"; empty = the whole mask. `scl_classes` are the SCL values counted as cloud
/// (unused for Landsat QA). nullopt when the aoi holds no valid pixel of the mask (it misses the scene or
/// only covers no-data). Throws InvalidArgument for an aoi that is none of these, IoError/FormatError
/// naming the mask file.
std::optional<double> cloud_cover_percent(const CloudMask& mask, const std::string& aoi,
                                          const std::vector<int>& scl_classes = kSclCloudClasses);

}  // namespace deforma::io
